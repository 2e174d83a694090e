//! `args` and `deny_args`: a program's arguments, judged as a list.

use crate::{Access, Policy, Request, WarningKind};

fn policy(rules: &str) -> Policy {
    let text =
        format!("kernel: {{version: \"1.0\", mode: strict}}\nsignals: []\npolicies:\n{rules}");
    match Policy::parse("t.md", &text) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn exec(argv: &[&str]) -> (String, Vec<String>) {
    (
        argv.join(" "),
        argv[1..].iter().map(|a| a.to_string()).collect(),
    )
}

fn allowed(p: &Policy, argv: &[&str]) -> bool {
    let (line, args) = exec(argv);
    let req = Request {
        action: "code_execution",
        resource: &line,
        access: Access::Read,
        bytes: 0,
        now_ms: 0,
    };
    p.decide_args(&req, Some(&args)).allowed
}

const GIT: &str = "  - name: git\n    action: code_execution\n    effect: allow\n    constraints:\n      commands: [git]\n      args: [status, \"log*\", \"diff*\", \"--oneline\", \"--\", \"/workspace/*\"]\n      deny_args: [\"-c*\", \"--exec*\", \"*upload-pack*\"]\n";

#[test]
fn every_argument_must_be_admitted_and_none_denied() {
    let p = policy(GIT);
    assert!(allowed(&p, &["git", "status"]));
    assert!(allowed(&p, &["git"]));
    assert!(allowed(&p, &["git", "log", "--oneline"]));
    // `*` crosses `/` in arguments.
    assert!(allowed(&p, &["git", "diff", "--", "/workspace/a/b.rs"]));
    assert!(!allowed(&p, &["git", "push"]));
    assert!(!allowed(&p, &["git", "status", "-c", "core.pager=sh"]));
    // deny_args overrides args: `log*` admits it, `*upload-pack*` denies it.
    assert!(allowed(&p, &["git", "logx"]));
    assert!(!allowed(&p, &["git", "log--upload-pack=x"]));
    let p2 = policy("  - {action: code_execution, effect: allow, constraints: {commands: [git], deny_args: [\"-c*\", \"*upload-pack*\"]}}\n");
    assert!(allowed(&p2, &["git", "status"]));
    assert!(!allowed(&p2, &["git", "-ccore.pager=sh", "log"]));
    assert!(!allowed(&p2, &["git", "fetch", "--upload-pack=touch /x"]));
}

#[test]
fn arguments_are_a_list_not_words() {
    // One argument holding a space is one argument: `status -c x` is not three.
    let p = policy("  - {action: code_execution, effect: allow, constraints: {commands: [git], args: [\"status*\"]}}\n");
    assert!(allowed(&p, &["git", "status -c x"]));
    // The joined line would split into `status`, `-c`, `x`: the fallback (no list) sees words.
    let req = Request {
        action: "code_execution",
        resource: "git status -c x",
        access: Access::Read,
        bytes: 0,
        now_ms: 0,
    };
    assert!(!p.decide(&req).allowed);
}

#[test]
fn a_deny_rule_with_deny_args_fires_only_on_them_and_names_the_argument() {
    let p = policy("  - {action: code_execution, effect: allow, constraints: {commands: [find]}}\n  - {name: no-exec, action: code_execution, effect: deny, constraints: {commands: [find], deny_args: [\"-exec*\", \"-ok*\", \"-delete\"]}}\n");
    assert!(allowed(&p, &["find", ".", "-name", "x"]));
    let (line, args) = exec(&["find", ".", "-exec", "sh", "{}", ";"]);
    let d = p.decide_args(
        &Request {
            action: "code_execution",
            resource: &line,
            access: Access::Read,
            bytes: 0,
            now_ms: 0,
        },
        Some(&args),
    );
    assert!(!d.allowed);
    assert_eq!(d.rule.map(|r| r.id), Some("no-exec".to_string()));
    assert_eq!(d.reason, "argument 2 `-exec` matches deny_args `-exec*`");
}

#[test]
fn args_only_on_code_execution_rules() {
    let text = "kernel: {version: \"1.0\", mode: strict}\nsignals: []\npolicies:\n  - {action: file_read, effect: allow, constraints: {args: [x]}}\n";
    let e = Policy::parse("t.md", text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("`args` applies only to `code_execution` rules"),
        "{e}"
    );
}

#[test]
fn lint_warns_about_programs_that_run_programs() {
    let kinds = |rules: &str| -> Vec<String> {
        policy(rules)
            .lint()
            .into_iter()
            .filter(|w| w.kind == WarningKind::RunsPrograms)
            .map(|w| w.message)
            .collect()
    };
    let w = kinds("  - {action: code_execution, effect: allow, constraints: {commands: [cat, /bin/sh, python3, \"/usr/bin/*\"]}}\n");
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("`/bin/sh`") && w[0].contains("`python3`") && w[0].contains("`/usr/bin/*`"),
        "{w:?}"
    );
    assert!(!w[0].contains("`cat`"));
    assert_eq!(
        kinds("  - {action: code_execution, effect: allow}\n").len(),
        1
    );
    // An allow-list of arguments holds any of them; deny_args holds only option runners.
    assert!(kinds("  - {action: code_execution, effect: allow, constraints: {commands: [sh], args: [\"/workspace/build.sh\"]}}\n").is_empty());
    assert!(kinds(GIT).is_empty());
    assert!(kinds("  - {action: code_execution, effect: allow, constraints: {commands: [git, find], deny_args: [\"-c*\", \"-exec*\"]}}\n").is_empty());
    assert_eq!(kinds("  - {action: code_execution, effect: allow, constraints: {commands: [env], deny_args: [\"-i\"]}}\n").len(), 1);
    assert!(kinds("  - {action: code_execution, effect: allow, constraints: {commands: [cat, grep, /usr/bin/wc]}}\n").is_empty());
}

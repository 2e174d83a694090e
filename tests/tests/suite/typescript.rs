//! Real Node agents (`tests/typescript/tsagent.mjs`, importing the TypeScript SDK from the
//! kernel's own read-only copy with nothing installed) under real kernels: syscalls
//! round-trip, a strict violation rejects with `PermissionDenied` and its rule before
//! SIGPOLICY, a SIGTERM event reaches the agent's handler, and many calls are in flight at
//! once on one connection.

use std::path::Path;

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::Syscall;
use agentos_tests::{repo_root, write_policy, TestKernel};

fn tsagent() -> String {
    repo_root()
        .join("tests/typescript/tsagent.mjs")
        .display()
        .to_string()
}

/// `/usr/bin/node` exists on every host the suite supports (`.ci/run` installs `nodejs`).
fn have_node() -> bool {
    Path::new("/usr/bin/node").is_file()
}

/// Spawns `node tsagent.mjs ARGS` through `agentctl spawn` (which resolves `node` into the
/// jail's runtime and grants the script's directory read-only).
fn spawn_ts(k: &TestKernel, policy: &Path, args: &[&str]) -> u64 {
    k.spawn_script(policy, "node", &tsagent(), args)
}

#[test]
fn syscalls_round_trip_from_a_jailed_node_agent() {
    assert!(
        have_node(),
        "/usr/bin/node is required (.ci/run installs nodejs)"
    );
    let k = TestKernel::start();
    let rules = "  - name: echo\n    action: code_execution\n    effect: allow\n";
    let policy = write_policy(&k.work, "tstour", "strict", &[], rules);
    let id = spawn_ts(&k, &policy, &["tour"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    let expected = [
        &format!(
            "hello: agent {id} abi {} in-flight ",
            agentos_syscalls::ABI_VERSION
        ) as &str,
        "write: ok 5",
        "append: ok 1",
        "read: ok hello!",
        "read_at: ok ell",
        "stat: ok File 6",
        "list: ok b.txt",
        "create_new: err AlreadyExists errno=17",
        "check_allowed: ok true working-rw (",
        "check_denied: ok false",
        "rename: ok undefined",
        "read_renamed: ok hello!",
        "unlink: ok undefined",
        "stat_gone: err NotFound errno=2",
        "exec: ok 0 hi",
        "recv: err TimedOut errno=110",
        "close: err BadDescriptor errno=9",
        "checkpoint: ok 1",
        "exit: ok undefined",
        "tour done",
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{out}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "expected `{want}…`, got `{line}`\n{out}"
        );
    }
    assert_eq!(last["denied"], 0, "{last}");
    let evs = k.events(id);
    assert!(
        evs.iter().any(|e| matches!(e, RecordEvent::Handshake { sdk, .. } if sdk.starts_with("agentos-typescript/"))),
        "{evs:?}"
    );
    let script_dir = repo_root()
        .join("tests/typescript")
        .canonicalize()
        .expect("dir");
    assert!(
        evs.iter().any(|e| matches!(e, RecordEvent::ReadOnlyGranted { paths } if paths == &vec![script_dir.clone()])),
        "{evs:?}"
    );
}

#[test]
fn a_denial_rejects_with_its_rule_before_sigpolicy() {
    assert!(have_node(), "/usr/bin/node is required");
    let k = TestKernel::start();
    let deny = "  - name: no-forbidden\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/working/forbidden/**\"]\n";
    let policy = write_policy(&k.work, "tsstrict", "strict", &[], deny);
    let id = spawn_ts(&k, &policy, &["deny"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}");
    let out = k.logs(id);
    assert!(
        out.contains("PermissionDenied errno=13 rule=\"no-forbidden (")
            && out.contains("wire=PermissionDenied"),
        "the agent saw the typed error, with its rule, before the kill: {out}"
    );
    assert!(!out.contains("still alive"), "{out}");
    agentos_tests::assert_write_refused_then_sigpolicy(&k.events(id), "/mem/working/forbidden/x");
}

#[test]
fn a_sigterm_event_reaches_the_node_handler() {
    assert!(have_node(), "/usr/bin/node is required");
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "tsterm", "strict", &["SIGTERM"], "");
    let id = spawn_ts(&k, &policy, &["term"]);
    k.wait_for_line(id, "ready");
    k.ctl_ok(&["signal", &id.to_string(), "SIGTERM"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(
        out.contains("event SIGTERM ("),
        "the iterator saw it: {out}"
    );
    assert!(out.contains("handler ran for SIGTERM ("), "{out}");
    assert!(out.contains("clean shutdown"), "{out}");
    // The handler's own syscall went through before the exit.
    let evs = k.events(id);
    assert!(
        evs.iter().any(|e| matches!(e, RecordEvent::Syscall { call: Syscall::Write { path, .. }, result: Ok(_), .. } if path == "/mem/working/goodbye")),
        "{evs:?}"
    );
}

#[test]
fn many_calls_are_in_flight_at_once_from_node() {
    assert!(have_node(), "/usr/bin/node is required");
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "tsmany", "strict", &[], "");
    let id = spawn_ts(&k, &policy, &["many", "200"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("in flight: ok 200/200, at most "))
        .unwrap_or_else(|| panic!("{out}"));
    let most: u64 = line
        .trim_start_matches("in flight: ok 200/200, at most ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number");
    assert!(most > 1, "calls were not in flight together: {line}");
    assert_eq!(k.info(id)["syscalls"], 400);
}

#[test]
fn the_typescript_example_runs_under_agentctl_run() {
    assert!(have_node(), "/usr/bin/node is required");
    let state = tempfile::tempdir().expect("state dir");
    // The README's command, twice on one state dir: the second run remembers the first.
    let run = || {
        let out = std::process::Command::new("bash")
            .current_dir(repo_root())
            .env("AGENTCTL", agentos_tests::binary("agentctl"))
            .args(["examples/typescript-agent/run.sh", "--state-dir"])
            .arg(state.path())
            .output()
            .expect("run.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        stdout
    };
    let first = run();
    for line in [
        "connected (sdk agentos-typescript/",
        "workspace: tasks.csv",
        "tasks: 4, 3 open",
        // /usr/bin/wc ran in a jail of its own, reading the read-only workspace.
        "exec wc -l: 5 lines (status 0)",
        "notes: 3 written in parallel",
        "episodic: 0 earlier runs remembered; this is run 1",
        "policy: writing the workspace is denied (default deny)",
        "done",
    ] {
        assert!(first.contains(line), "missing `{line}` in:\n{first}");
    }
    let second = run();
    assert!(
        second.contains("episodic: 1 earlier runs remembered; this is run 2"),
        "{second}"
    );
}

/// The README's test command runs the TypeScript SDK's tests with Node alone (`node --test`,
/// nothing installed), and `.ci/run` runs the very same line; run here as written, they pass.
#[test]
fn the_readme_test_command_runs_the_typescript_tests() {
    assert!(have_node(), "/usr/bin/node is required");
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo test --workspace && "))
        .expect("the README's test command");
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l == line),
        ".ci/run must run the README's test command as written: {line}"
    );
    let node = line
        .split(" && ")
        .find(|c| c.starts_with("node --test "))
        .expect("a `node --test` command in the README's test command");
    // Through a shell, as the README's reader and `.ci/run` run it: the shell expands the test
    // files' pattern (Node before 21 has no globs of its own, and some later versions do not
    // search a directory argument).
    let out = std::process::Command::new("sh")
        .args(["-c", node])
        .current_dir(repo_root())
        .output()
        .expect("sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{line} failed:\n{stdout}");
    let count = |key: &str| -> u32 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` line:\n{stdout}"))
    };
    let golden = std::fs::read_dir(repo_root().join("syscalls/tests/golden"))
        .expect("golden dir")
        .count() as u32;
    assert!(
        count("# pass ") > golden,
        "fewer tests than golden vectors:\n{stdout}"
    );
    assert_eq!(count("# fail "), 0, "{stdout}");
}

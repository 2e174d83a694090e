//! Real Python agents (`tests/python/pyagent.py`, the pure-Python SDK from the kernel's own
//! read-only copy) under real kernels: every served syscall round-trips, a strict violation
//! raises `PermissionDenied` before SIGPOLICY, rate limits carry their hint, a SIGTERM handler
//! runs, malformed input never reaches the kernel, and the example runs under `agentctl run`.

use std::path::Path;
use std::process::Command;

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{binary, repo_root, write_policy, TestKernel};

fn pyagent() -> String {
    repo_root()
        .join("tests/python/pyagent.py")
        .display()
        .to_string()
}

/// `/usr/bin/python3` exists on every host the suite supports (`.ci/run` installs it).
fn have_python() -> bool {
    Path::new("/usr/bin/python3").is_file()
}

/// Spawns `python3 pyagent.py ARGS` through `agentctl spawn` (which resolves `python3` into
/// the jail's runtime and grants the script's directory read-only).
fn spawn_py(k: &TestKernel, policy: &Path, args: &[&str]) -> u64 {
    k.spawn_script(policy, "python3", &pyagent(), args)
}

#[test]
fn every_served_syscall_round_trips_from_python() {
    if !have_python() {
        eprintln!("skipped: /usr/bin/python3 is missing");
        return;
    }
    let k = TestKernel::start();
    let rules = "  - name: signal-peers\n    action: signal\n    effect: allow\n  - name: ipc\n    action: ipc_send\n    effect: allow\n  - name: echo\n    action: code_execution\n    effect: allow\n  - name: api\n    action: api_call\n    effect: allow\n";
    let policy = write_policy(&k.work, "pytour", "strict", &["SIGUSR1"], rules);
    let peer = spawn_py(&k, &policy, &["park"]);
    k.wait_for_line(peer, "ready");
    let id = spawn_py(&k, &policy, &["tour", &peer.to_string()]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    let expected = [
        "write: ok 5",
        "append: ok 1",
        "read: ok hello!",
        "read_at: ok ell",
        "stat: ok FILE 6",
        "list: ok b.txt",
        "create_new: err AlreadyExists errno=17",
        "check_allowed: ok True working-rw (",
        "check_denied: ok False",
        "unlink: ok None",
        "stat_gone: err NotFound errno=2",
        "exec: ok 0 hi",
        "call: err Unsupported errno=38",
        "send: ok None",
        "recv: err TimedOut errno=110",
        "open: err NotFound errno=2",
        "close: err BadDescriptor errno=9",
        "read_fd: err BadDescriptor errno=9",
        "write_fd: err BadDescriptor errno=9",
        "checkpoint: ok 1",
        "signal: ok None",
        "signal_missing: err NotFound errno=2",
        "exit: ok None",
        "threads: ok",
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
    assert_eq!(k.info(peer)["signals"], 1);
    // The handshake names the Python SDK, and the script's dir was granted and recorded.
    let evs = k.events(id);
    assert!(
        evs.iter().any(|e| matches!(e, RecordEvent::Handshake { sdk, .. } if sdk.starts_with("agentos-python/"))),
        "{evs:?}"
    );
    let script_dir = repo_root()
        .join("tests/python")
        .canonicalize()
        .expect("dir");
    assert!(
        evs.iter().any(|e| matches!(e, RecordEvent::ReadOnlyGranted { paths } if paths == &vec![script_dir.clone()])),
        "{evs:?}"
    );
    k.ctl_ok(&["kill", &peer.to_string()]);
}

#[test]
fn async_client_keeps_many_calls_in_flight() {
    if !have_python() {
        return;
    }
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "pyasync", "strict", &[], "");
    let id = spawn_py(&k, &policy, &["async", "64"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(out.contains("async ok 64/64"), "{out}");
    assert_eq!(k.info(id)["syscalls"], 128);
}

#[test]
fn strict_violation_raises_permission_denied_then_sigpolicy() {
    if !have_python() {
        return;
    }
    let k = TestKernel::start();
    let deny = "  - name: no-forbidden\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/working/forbidden/**\"]\n";
    let policy = write_policy(&k.work, "pystrict", "strict", &[], deny);
    let id = spawn_py(&k, &policy, &["violate"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}");
    let out = k.logs(id);
    assert!(
        out.contains("PermissionDenied errno=13 rule='no-forbidden ("),
        "the agent saw the exception before the kill: {out}"
    );
    assert!(!out.contains("still alive"), "{out}");
    agentos_tests::assert_write_refused_then_sigpolicy(&k.events(id), "/mem/working/forbidden/x");
}

#[test]
fn rate_limited_carries_its_hint() {
    if !have_python() {
        return;
    }
    let k = TestKernel::start();
    let limited = "  - name: limited\n    action: file_write\n    effect: allow\n    rate_limit: \"5/second\"\n    constraints:\n      paths: [\"/mem/working/limited/**\"]\n";
    let policy = write_policy(&k.work, "pylimited", "strict", &[], limited);
    let id = spawn_py(&k, &policy, &["burst", "6", "/mem/working/limited/x"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    for i in 1..=5 {
        assert!(out.contains(&format!("call {i}: ok\n")), "{out}");
    }
    let line = out
        .lines()
        .find(|l| l.starts_with("call 6: RateLimited retry_after_ms="))
        .unwrap_or_else(|| panic!("{out}"));
    let hint: u64 = line
        .trim_start_matches("call 6: RateLimited retry_after_ms=")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number");
    assert!(hint > 0 && line.ends_with("errno=11"), "{line}");
    assert!(out.contains("after hint: ok"), "{out}");
}

#[test]
fn sigterm_handler_runs() {
    if !have_python() {
        return;
    }
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "pyterm", "strict", &["SIGTERM"], "");
    let id = spawn_py(&k, &policy, &["term"]);
    k.wait_for_line(id, "ready");
    k.ctl_ok(&["signal", &id.to_string(), "SIGTERM"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(out.contains("handler ran for SIGTERM"), "{out}");
    assert!(out.contains("clean shutdown"), "{out}");
}

#[test]
fn malformed_input_is_a_python_exception_never_a_kernel_error() {
    if !have_python() {
        return;
    }
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "pymalformed", "strict", &[], "");
    let id = spawn_py(&k, &policy, &["malformed"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    for want in [
        "oversized: TooLarge: too large: ",
        "path_type: TypeError: ",
        "data_type: TypeError: ",
        "fd_range: ValueError: ",
        "u64_range: ValueError: ",
        "argv_str: TypeError: ",
        "signal_type: TypeError: ",
        "surrogate: ValueError: ",
        "after: ok 4",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(want)),
            "no `{want}`: {out}"
        );
    }
    assert!(!out.contains("sent?!"), "{out}");
    let evs = k.events(id);
    assert!(
        !evs.iter()
            .any(|e| matches!(e, RecordEvent::ProtocolViolation { .. })),
        "{evs:?}"
    );
    // Only the one good write reached the kernel.
    assert_eq!(k.info(id)["syscalls"], 1);
}

#[test]
fn the_python_example_runs_under_agentctl_run() {
    if !have_python() {
        return;
    }
    let state = tempfile::tempdir().expect("state dir");
    // The README's command, twice on one state dir: the second run remembers the first.
    let run = || {
        let out = Command::new("bash")
            .current_dir(repo_root())
            .env("AGENTCTL", binary("agentctl"))
            .args(["examples/python-agent/run.sh", "--state-dir"])
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
        "workspace: README.md, observations.csv",
        "observations: 5 rows; warmest Nice on mon (17 C)",
        // /usr/bin/wc ran in a jail of its own, reading the read-only workspace.
        "exec wc -l: 6 lines (status 0,",
        // Through the policy's `hosts`, the jailed HTTP provider and the loopback API.
        "api_call: HTTP 200: Paris 12 C, overcast",
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

/// The README's test command, as written, runs the Python SDK's tests with the standard
/// library alone: run under `python3 -S` (no site-packages, so no pytest even where one is
/// installed) it passes, and `.ci/run` runs the very same line.
#[test]
fn the_readme_test_command_needs_no_pytest() {
    assert!(
        have_python(),
        "/usr/bin/python3 is required (.ci/run installs it)"
    );
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo test --workspace && "))
        .expect("the README's test command (a line `cargo test --workspace && …`)");
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l == line),
        ".ci/run must run the README's test command as written: {line}"
    );
    let python: Vec<&str> = line
        .split(" && ")
        .find(|c| c.starts_with("python3 "))
        .expect("a python3 command")
        .split_whitespace()
        .collect();
    assert_eq!(python[0], "python3", "{line}");
    let no_site = |args: &[&str]| {
        Command::new("/usr/bin/python3")
            .arg("-S")
            .args(args)
            .current_dir(repo_root())
            .output()
            .expect("python3")
    };
    assert!(
        !no_site(&["-c", "import pytest"]).status.success(),
        "pytest importable without site-packages: the check below would prove nothing"
    );
    let out = no_site(&python[1..]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{line} failed without pytest:\n{stderr}"
    );
    let ran: u32 = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `Ran N tests` line:\n{stderr}"));
    assert!(ran >= 16, "only {ran} tests ran:\n{stderr}");
    assert!(!stderr.contains("skipped"), "{stderr}");
}

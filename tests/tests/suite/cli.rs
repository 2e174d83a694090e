//! `agentctl`'s errors and exit codes (DESIGN §9), and `agentctl run`.

use std::process::Command;

use agentos_tests::{binary, test_agent, write_policy, TestKernel};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_kernel_running_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary("agentctl"))
        .arg("--state-dir")
        .arg(dir.path())
        .arg("ps")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("no kernel is running on"), "{t}");
    assert!(t.contains("kernel start"), "{t}");
}

#[test]
fn unknown_agent_exits_4_and_points_at_ps() {
    let k = TestKernel::start();
    for cmd in [
        &["signal", "77", "SIGTERM"][..],
        &["wait", "77"],
        &["logs", "nobody"],
        &["kill", "77"],
    ] {
        let out = k.ctl(cmd);
        assert_eq!(out.status.code(), Some(4), "{cmd:?}: {}", text(&out));
        assert!(text(&out).contains("agentctl ps"), "{cmd:?}");
    }
}

#[test]
fn signal_not_in_policy_list_exits_3_with_a_clear_message() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "nosig", "strict", &["SIGTERM"], "");
    let id = k.spawn(&policy, &["park"]);
    k.wait_for_line(id, "ready");
    let out = k.ctl(&["stop", &id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("SIGSTOP is not in the `signals:` list"),
        "{}",
        text(&out)
    );
    // Non-maskable signals are always deliverable.
    k.ctl_ok(&["kill", &id.to_string()]);
    assert_eq!(k.wait(id)["exit"]["signal"], "SIGKILL");
}

#[test]
fn bad_signal_name_is_a_usage_error() {
    let k = TestKernel::start();
    let out = k.ctl(&["signal", "1", "SIGHUP"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("unknown signal `SIGHUP`"));
}

#[test]
fn a_policy_that_does_not_parse_refuses_the_spawn_with_its_position() {
    let k = TestKernel::start();
    let bad = k.work.join("bad.md");
    std::fs::write(&bad, "kernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies:\n  - action: file_read\n    efect: allow\n").unwrap();
    let agent = k.agent_bin.to_str().unwrap().to_string();
    let out = k.ctl(&[
        "spawn",
        "--policy",
        bad.to_str().unwrap(),
        "--",
        &agent,
        "echo",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("bad.md:7:5"), "{t}");
    assert!(t.contains("efect"), "{t}");
    assert!(t.contains("effect"), "a did-you-mean is expected: {t}");
    assert!(k.ctl_ok(&["ps"]).contains("no agents"));
}

#[test]
fn run_streams_output_summarises_and_exits_with_the_agents_code() {
    let work = tempfile::tempdir().unwrap();
    let policy = write_policy(work.path(), "run", "strict", &[], "");
    let state = work.path().join("state");
    let out = Command::new(binary("agentctl"))
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--policy", policy.to_str().unwrap(), "--"])
        .arg(test_agent())
        .args(["exit", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exited with code 7"), "{err}");
    assert!(err.contains("syscalls: 1 (1 allowed, 0 denied)"), "{err}");
    assert!(
        err.contains(&format!("recorder: {}", state.join("recorder").display())),
        "{err}"
    );
    let echo = Command::new(binary("agentctl"))
        .args(["run", "--policy", policy.to_str().unwrap(), "--"])
        .arg(test_agent())
        .arg("echo")
        .output()
        .unwrap();
    assert_eq!(echo.status.code(), Some(0), "{}", text(&echo));
    assert_eq!(String::from_utf8_lossy(&echo.stdout), "echo ping\n");
}

/// `agentctl --state-dir rel-state ARGS…` run from `dir`.
fn ctl_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("agentctl"))
        .current_dir(dir)
        .args(["--state-dir", "rel-state"])
        .args(args)
        .output()
        .unwrap()
}

/// Stops the daemon on `rel-state` in its dir when dropped (also when an assertion failed).
struct StopKernel<'a>(&'a std::path::Path);

impl Drop for StopKernel<'_> {
    fn drop(&mut self) {
        ctl_in(self.0, &["kernel", "stop"]);
    }
}

/// A relative `--state-dir` names the same dir for `kernel start`, `spawn` and `run` (the
/// launcher, which builds the jail elsewhere, is handed absolute paths).
#[test]
fn a_relative_state_dir_works_for_the_daemon_and_for_run() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let policy = write_policy(dir, "rel", "strict", &[], "");
    let policy = policy.to_str().unwrap();
    let agent = test_agent();
    let agent = agent.to_str().unwrap();
    let out = ctl_in(dir, &["kernel", "start"]);
    assert!(out.status.success(), "{}", text(&out));
    let daemon = StopKernel(dir);
    let out = ctl_in(dir, &["spawn", "--policy", policy, "--", agent, "echo"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = ctl_in(dir, &["wait", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl_in(dir, &["logs", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo ping\n");
    drop(daemon);
    let out = ctl_in(dir, &["run", "--policy", policy, "--", agent, "echo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(dir.join("rel-state/recorder").is_dir());
}

#[test]
fn run_refuses_a_missing_program_with_exit_4() {
    let work = tempfile::tempdir().unwrap();
    let policy = write_policy(work.path(), "run", "strict", &[], "");
    let out = Command::new(binary("agentctl"))
        .args([
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "/nonexistent/agent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
}

#[test]
fn policy_explain_for_an_agent_uses_its_file_and_refuses_a_changed_one() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "explain", "strict", &["SIGTERM"], "");
    let id = k.spawn(&policy, &["park"]);
    k.wait_for_line(id, "ready");
    let id_s = id.to_string();
    let explain = |resource: &str| {
        k.ctl(&[
            "policy",
            "explain",
            "--agent",
            &id_s,
            "--action",
            "file_write",
            "--resource",
            resource,
            "--write",
        ])
    };
    let out = explain("/mem/working/x");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("allowed by working-rw ("),
        "{}",
        text(&out)
    );
    let out = explain("/mem/other/x");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("nearest: rule `working-rw`"),
        "{}",
        text(&out)
    );
    // The file changes after the spawn: explain refuses rather than explain another policy.
    let mut changed = std::fs::read_to_string(&policy).unwrap();
    changed.push_str("\nedited\n");
    std::fs::write(&policy, changed).unwrap();
    let out = explain("/mem/working/x");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("changed since agent"), "{}", text(&out));
    k.ctl_ok(&["kill", &id_s]);
    k.wait(id);
}

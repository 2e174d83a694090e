//! The README runs as written: every command of its `sh` blocks, in order, in one shell, from
//! a directory laid out like the repository after `cargo build --release` (its `examples/`,
//! and `target/release/` holding this build's binaries), against a temporary state dir. What
//! the test itself adds: `cargo build --release && ` is dropped (this suite's build stands in
//! for it), the README's own test command is not re-run (`python::the_readme_test_command_
//! needs_no_pytest` checks it), and before `agentctl approve N` the test waits until a call is
//! parked — a person typing the commands is never faster than the agent.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentos_tests::{binary, repo_root, target_dir};

/// The lines of the README's `sh` blocks, with their line numbers, in order.
fn readme_commands(readme: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for (i, line) in readme.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            inside = !inside && t == "```sh";
            continue;
        }
        if inside && !t.is_empty() && !t.starts_with('#') {
            out.push((i + 1, line.to_string()));
        }
    }
    out
}

/// A bash script that runs `lines` in order and stops at the first that fails, naming it.
fn script(lines: &[(usize, String)]) -> String {
    let mut s = String::from("set -uo pipefail\n");
    for (n, line) in lines {
        let line = line
            .strip_prefix("cargo build --release && ")
            .unwrap_or(line);
        if line.starts_with("cargo test") {
            continue;
        }
        if line.starts_with("agentctl approve ") {
            s.push_str(
                "for _ in $(seq 600); do agentctl approvals --json | grep -q '\"id\"' && break; \
                 sleep 0.05; done\n",
            );
        }
        let quoted = line.replace('\'', r"'\''");
        s.push_str(&format!(
            "echo '+ {quoted}' >&2\n{line}\nrc=$?; if [ $rc -ne 0 ]; then echo \"README.md:{n}: exit $rc: {}\" >&2; exit 1; fi\n",
            quoted.replace('"', "\\\"")
        ));
    }
    s
}

#[test]
fn every_readme_command_runs_as_written() {
    for b in ["agentctl", "agentos-kernel", "hello-agent"] {
        binary(b);
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let lines = readme_commands(&readme);
    assert!(
        lines.iter().any(|(_, l)| l.contains("agentctl run"))
            && lines
                .iter()
                .any(|(_, l)| l.contains("agentctl kernel start")),
        "the README's command blocks were not found"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("repo");
    std::fs::create_dir_all(work.join("target")).expect("mkdir");
    std::os::unix::fs::symlink(repo_root().join("examples"), work.join("examples")).expect("link");
    std::os::unix::fs::symlink(target_dir(), work.join("target/release")).expect("link");
    let state = tmp.path().join("state");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let script = script(&lines);
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .current_dir(&work)
        .env("AGENTOS_STATE_DIR", &state)
        .env("HOME", &home)
        .env_remove("XDG_STATE_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever happened, leave no kernel behind.
    let _ = Command::new(binary("agentctl"))
        .arg("--state-dir")
        .arg(&state)
        .args(["kernel", "stop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let (out, err) = (out.join().expect("stdout"), err.join().expect("stderr"));
    let status = status.unwrap_or_else(|| panic!("the README's commands took over 300 s\n{err}"));
    assert!(
        status.success(),
        "a README command failed:\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    for expected in [
        "hello-agent: done",
        "hello-agent: report approved",
        "hello-agent: got SIGTERM",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
}

#[test]
fn the_runner_stops_at_a_failing_line_and_names_it() {
    let lines = vec![
        (3, "true".to_string()),
        (4, "cargo build --release && false".to_string()),
        (5, "echo never".to_string()),
    ];
    let out = Command::new("bash")
        .args(["-c", &script(&lines)])
        .output()
        .expect("bash");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("README.md:4: exit 1: false"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never"));
}

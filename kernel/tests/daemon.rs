//! The `agentos-kernel` binary: one kernel per state dir, readable errors.

use std::process::{Command, Stdio};

#[test]
fn a_second_kernel_on_the_same_state_dir_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let kernel = env!("CARGO_BIN_EXE_agentos-kernel");
    let (read_end, write_end) = std::io::pipe().unwrap();
    let mut first = Command::new(kernel)
        .arg("--state-dir")
        .arg(&state)
        .args(["--ready-fd", "1"])
        .stdout(write_end)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for readiness on the pipe, not for time.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(read_end), &mut line).ok();
    if !line.starts_with("ready ") {
        let _ = first.kill();
        panic!("the first kernel did not become ready: {line:?}");
    }
    let second = Command::new(kernel).arg("--state-dir").arg(&state).output();
    let _ = first.kill();
    let _ = first.wait();
    let second = second.unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("another kernel (pid {})", first.id())),
        "{err}"
    );
    assert!(err.contains("agentctl kernel stop"), "{err}");
}

#[test]
fn a_missing_launcher_is_reported_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agentos-kernel"))
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--launcher", "/nonexistent/agentos-launch"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("launcher /nonexistent/agentos-launch not found"),
        "{err}"
    );
}

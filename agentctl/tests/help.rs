//! `agentctl`'s help teaches the commands DESIGN §9 promises.

use std::process::Command;

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentctl"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "kernel", "run", "spawn", "ps", "logs", "wait", "signal", "kill", "stop", "cont",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "`{cmd}` missing from:\n{help}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentctl"))
        .args(["spawn", "--policy", "x.md"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

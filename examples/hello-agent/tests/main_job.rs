//! The README's main job: `agentctl run` on this example under its bundled policy, in an
//! ephemeral kernel. It must run to its end, print its summary with the permissive violation
//! named by its rule, and exit 0. (This test target also makes `cargo test --workspace` build
//! the `hello-agent` binary itself, which the README walk-through in the suite starts.)

use std::path::Path;
use std::process::Command;

#[test]
fn agentctl_run_runs_the_example_to_its_end() {
    let agent = Path::new(env!("CARGO_BIN_EXE_hello-agent"));
    let bins = agent.parent().expect("the target dir");
    let agentctl = bins.join("agentctl");
    assert!(
        agentctl.is_file() && bins.join("agentos-launch").is_file(),
        "{} and agentos-launch are missing: run `cargo test --workspace` (it builds every binary)",
        agentctl.display()
    );
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join(".agents/security.md");
    let state = std::env::temp_dir().join(format!("hello-agent-main-job-{}", std::process::id()));
    let out = Command::new(&agentctl)
        .arg("--state-dir")
        .arg(&state)
        .arg("run")
        .arg("--policy")
        .arg(&policy)
        .arg("--")
        .arg(agent)
        .output()
        .expect("agentctl run");
    let _ = std::fs::remove_dir_all(&state);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for line in [
        "hello-agent: my plan:",
        "hello-agent: may I write /mem/working/secrets/key? no",
        "hello-agent: done",
    ] {
        assert!(stdout.contains(line), "no {line:?} in\n{stdout}");
    }
    assert!(
        stderr.contains("exited with code 0") && stderr.contains("no-secrets ("),
        "the summary names the violation's rule:\n{stderr}"
    );
}

//! The Python and TypeScript SDK round-trip bench as part of `cargo bench -p agentos-benches`:
//! runs `benches/python_sdk/bench.sh` (a jailed python3 agent's `Read`, a jailed node agent's,
//! a jailed Rust agent's, and `agent-os-kernel`'s `StatelessKernel.execute` in a throwaway venv,
//! in one run) on the release binaries beside this bench, and fails when the Python or the
//! TypeScript SDK is over 2× the Rust SDK.
//! A name filter (`cargo bench -- FILTER`) that does not match `python_sdk` skips it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| "python_sdk".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    // target/release/bench-agent → target
    let target = Path::new(env!("CARGO_BIN_EXE_bench-agent"))
        .parent()
        .and_then(Path::parent)
        .expect("the target dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python_sdk/bench.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env("SKIP_BUILD", "1")
        .env("CARGO_TARGET_DIR", target)
        .status()
        .expect("run bash");
    if status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} ended with {status}", script.display());
        ExitCode::FAILURE
    }
}

//! `Exec` of `/bin/true`, N times, for `perf record`/`perf trace`/`strace`: starts one
//! in-process kernel, runs `bench-agent exec N` in it and prints what the agent measured
//! (`benches/README.md`, "Where an `Exec` goes").
//!
//! `exec_count N`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use agentos_benches::BenchKernel;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("usage: exec_count N");
    // bench-agent sits beside this example's directory (target/release/bench-agent).
    let exe = std::env::current_exe().unwrap();
    let agent: PathBuf = exe
        .parent()
        .and_then(|examples| examples.parent())
        .unwrap()
        .join("bench-agent");
    assert!(agent.is_file(), "{} is missing", agent.display());
    let kernel = BenchKernel::start();
    let t = kernel.exec_true(&agent, n);
    println!(
        "n {n} elapsed {t:?} per_exec_us {}",
        t.as_micros() as u64 / n.max(1)
    );
    kernel.shutdown();
}

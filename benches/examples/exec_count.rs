//! `Exec` of `/bin/true`, N times, for `perf record`/`perf trace`/`strace`: starts one
//! in-process kernel, runs `bench-agent exec N` in it and prints what the agent measured
//! (`benches/README.md`, "Where an `Exec` goes").
//!
//! `exec_count N`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentos_benches::{bench_agent_beside_examples, BenchKernel};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("usage: exec_count N");
    let agent = bench_agent_beside_examples();
    let kernel = BenchKernel::start();
    let t = kernel.exec_true(&agent, n);
    println!(
        "n {n} elapsed {t:?} per_exec_us {}",
        t.as_micros() as u64 / n.max(1)
    );
    kernel.shutdown();
}

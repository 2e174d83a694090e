//! DESIGN §10: agent spawn to first answered syscall ≤ 10 ms.
//!
//! - `agentos/spawn_to_first_syscall`: each op spawns a real jailed `bench-agent first`
//!   through an in-process kernel and takes the kernel's own `first_syscall_us` (launcher
//!   fork → jail → exec → SDK handshake → first answered `write`); the sample reports the sum.
//! - `floor/fork_exec_true`: `std::process::Command::new("/bin/true").status()`, i.e. a bare
//!   fork + exec + wait with no jail.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::process::Command;
use std::time::{Duration, Instant};

use agentos_benches::{fmt_ns, own_binary, BenchKernel, Samples};
use criterion::Criterion;

const FLOOR: &str = "floor/fork_exec_true";
const AGENTOS: &str = "agentos/spawn_to_first_syscall";
const BUDGET_NS: f64 = 10e6;
const SAMPLE_SIZE: usize = 20;
/// Not a criterion bench: the wall time of a whole agent life (spawn → exit → reaped) seen
/// from the caller, recorded beside `AGENTOS` for the summary.
const WALL: &str = "info/spawn_run_exit_wall";

fn spawn(c: &mut Criterion) -> Samples {
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let kernel = BenchKernel::start();

    let mut group = c.benchmark_group("spawn");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function(FLOOR, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let status = Command::new("/bin/true").status().expect("run /bin/true");
                assert!(status.success());
            }
            let t = start.elapsed();
            samples.borrow_mut().push(FLOOR, iters, t);
            t
        })
    });
    group.bench_function(AGENTOS, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let t: Duration = (0..iters).map(|_| kernel.first_syscall(&agent)).sum();
            let wall = start.elapsed();
            let mut s = samples.borrow_mut();
            s.push(AGENTOS, iters, t);
            s.push(WALL, iters, wall);
            t
        })
    });
    group.finish();
    kernel.shutdown();
    samples.into_inner()
}

fn report(s: &Samples) {
    let show = |v: Option<f64>| v.map_or_else(|| "not run".into(), fmt_ns);
    println!();
    println!("spawn summary (median of per-sample means, per spawn)");
    println!("{:<40} {:>12} {:>8}", "bench", "median", "samples");
    for n in [FLOOR, AGENTOS, WALL] {
        println!("{:<40} {:>12} {:>8}", n, show(s.median(n)), s.count(n));
    }
    if let (Some(a), Some(f)) = (s.median(AGENTOS), s.median(FLOOR)) {
        let verdict = if a <= BUDGET_NS { "within" } else { "OVER" };
        println!(
            "spawn → first syscall: {} ({verdict} the 10 ms budget), {:.1}× fork+exec of /bin/true",
            fmt_ns(a),
            a / f
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = spawn(&mut c);
    c.final_summary();
    report(&samples);
}

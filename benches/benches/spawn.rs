//! DESIGN §10: agent spawn to first answered syscall ≤ 10 ms; issue 18: ≤ `floor/bwrap_true`.
//!
//! - `agentos/spawn_to_first_syscall`: each op spawns a real jailed `bench-agent first`
//!   through an in-process kernel and takes the kernel's own `first_syscall_us` (launcher
//!   fork → jail → exec → SDK handshake → first answered `write`); the sample reports the sum.
//! - `floor/fork_exec_true`: `std::process::Command::new("/bin/true").status()`, i.e. a bare
//!   fork + exec + wait with no jail.
//! - `floor/bwrap_true`: `bwrap --unshare-all --die-with-parent --ro-bind / / /bin/true`, the
//!   same life inside bubblewrap's sandbox (namespaces, no landlock/seccomp/cgroup); skipped,
//!   with a line saying so, when `bwrap` is not installed (`benches/install-bench-deps.sh`).
//! - `agentos/jailed_spawn_to_exit`: the kernel spawns `/bin/true` as an agent into the full
//!   jail (cgroup included where the host gives one) and the caller waits until it is reaped.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::process::Command;
use std::time::{Duration, Instant};

use agentos_benches::{fmt_ns, fork_exec_true, own_binary, BenchKernel, Samples};
use criterion::Criterion;

const FLOOR: &str = "floor/fork_exec_true";
const BWRAP: &str = "floor/bwrap_true";
const JAILED: &str = "agentos/jailed_spawn_to_exit";
const BWRAP_ARGS: &[&str] = &[
    "--unshare-all",
    "--die-with-parent",
    "--ro-bind",
    "/",
    "/",
    "/bin/true",
];
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
            let t = fork_exec_true(iters);
            samples.borrow_mut().push(FLOOR, iters, t);
            t
        })
    });
    if let Some(bwrap) = bwrap() {
        group.bench_function(BWRAP, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let status = Command::new(&bwrap)
                        .args(BWRAP_ARGS)
                        .status()
                        .expect("run bwrap");
                    assert!(status.success(), "bwrap {BWRAP_ARGS:?} ended with {status}");
                }
                let t = start.elapsed();
                samples.borrow_mut().push(BWRAP, iters, t);
                t
            })
        });
    }
    let true_bin = std::path::Path::new("/bin/true");
    group.bench_function(JAILED, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                kernel.run(true_bin, &[]);
            }
            let t = start.elapsed();
            samples.borrow_mut().push(JAILED, iters, t);
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

/// The `bwrap` on `PATH`, if it runs here.
fn bwrap() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join("bwrap"))
        .find(|p| p.is_file());
    let Some(found) = found else {
        println!(
            "{BWRAP}: skipped: bwrap is not installed (run `bash benches/install-bench-deps.sh`)"
        );
        return None;
    };
    let works = Command::new(&found)
        .args(BWRAP_ARGS)
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        println!(
            "{BWRAP}: skipped: {} {BWRAP_ARGS:?} fails on this host",
            found.display()
        );
        return None;
    }
    Some(found)
}

fn report(s: &Samples) {
    let show = |v: Option<f64>| v.map_or_else(|| "not run".into(), fmt_ns);
    println!();
    println!("spawn summary (median of per-sample means, per spawn)");
    println!("{:<40} {:>12} {:>8}", "bench", "median", "samples");
    for n in [FLOOR, BWRAP, JAILED, AGENTOS, WALL] {
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
    if let (Some(a), Some(b)) = (s.median(AGENTOS), s.median(BWRAP)) {
        let verdict = if a <= b { "✔" } else { "✘" };
        println!(
            "spawn → first syscall vs bwrap --unshare-all of /bin/true: {} vs {} = {:.2}× (issue 18 budget ≤ 1×) {verdict}",
            fmt_ns(a),
            fmt_ns(b),
            a / b
        );
    }
    if let (Some(j), Some(f)) = (s.median(JAILED), s.median(FLOOR)) {
        let vs_bwrap = s.median(BWRAP).map_or_else(
            || "bwrap not run".into(),
            |b| format!("{:.1}× bwrap", j / b),
        );
        println!(
            "jailed spawn → exit of /bin/true: {}, {:.1}× fork+exec, {vs_bwrap}",
            fmt_ns(j),
            j / f
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = spawn(&mut c);
    c.final_summary();
    report(&samples);
}

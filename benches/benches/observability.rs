//! Issue budget: what metrics and the event hook cost a syscall round trip, in one run.
//!
//! - `floor/read_64b_metrics_off`: the `syscall_rtt` agentos bench (a jailed `bench-agent rtt
//!   N`, N reads of a 64-byte file through the blocking SDK) on a kernel with no
//!   `--metrics-addr` and no `--on-event`: nothing counted, nothing told.
//! - `agentos/read_64b_metrics_on`: the same on a kernel serving metrics, the agent's policy
//!   opted in (`observability.metrics: true`), so every call feeds the aggregate and the
//!   per-agent series.
//! - `agentos/read_64b_metrics_and_hook_on`: the same with an `--on-event` hook as well
//!   (`/bin/true`; these calls break no rule, so the cost is deciding that they are no event).
//!
//! Budget: each ≤ 1.05× the floor. Traces (OTLP) are not built yet, so they have no row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::time::Duration;

use agentos_benches::{fmt_ns, own_binary, BenchKernel, Samples};
use agentos_kernel::hooks::HookConfig;
use criterion::Criterion;

const OFF: &str = "floor/read_64b_metrics_off";
const METRICS: &str = "agentos/read_64b_metrics_on";
const BOTH: &str = "agentos/read_64b_metrics_and_hook_on";
const BUDGET: f64 = 1.05;
const SAMPLE_SIZE: usize = 20;

fn observability(c: &mut Criterion) -> Samples {
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let off = BenchKernel::start();
    let metrics = BenchKernel::start_with(|c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    });
    let both = BenchKernel::start_with(|c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        c.hook = Some(HookConfig {
            program: "/bin/true".into(),
            timeout: Duration::from_secs(10),
            sandbox_threshold: 10,
        });
    });
    let mut group = c.benchmark_group("observability");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, kernel) in [(OFF, &off), (METRICS, &metrics), (BOTH, &both)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = kernel.rtt(&agent, iters);
                samples.borrow_mut().push(name, iters, t);
                t
            })
        });
    }
    group.finish();
    off.shutdown();
    metrics.shutdown();
    both.shutdown();
    samples.into_inner()
}

fn report(s: &Samples) {
    println!();
    println!("observability summary (median of per-sample means, per round trip)");
    println!("{:<42} {:>12} {:>8}", "bench", "median", "samples");
    for n in [OFF, METRICS, BOTH] {
        let m = s.median(n).map_or_else(|| "not run".into(), fmt_ns);
        println!("{:<42} {:>12} {:>8}", n, m, s.count(n));
    }
    if let Some(floor) = s.median(OFF) {
        for n in [METRICS, BOTH] {
            if let Some(v) = s.median(n) {
                let ratio = v / floor;
                let verdict = if ratio <= BUDGET { "within" } else { "OVER" };
                println!("ratio {n} / floor: {ratio:.3}× ({verdict} the {BUDGET}× budget)");
            }
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = observability(&mut c);
    c.final_summary();
    report(&samples);
}

//! Issue budget: what metrics, traces and the event hook cost a syscall round trip, in one
//! run.
//!
//! - `floor/read_64b_observability_off`: the `syscall_rtt` agentos bench (a jailed
//!   `bench-agent rtt N`, N reads of a 64-byte file through the blocking SDK) on a kernel with
//!   no `--metrics-addr`, no `--otlp-endpoint` and no `--on-event`: nothing counted, traced
//!   or told.
//! - `agentos/read_64b_metrics_on`: the same on a kernel serving metrics, the agent's policy
//!   opted in (`observability.metrics: true`), so every call feeds the aggregate and the
//!   per-agent series.
//! - `agentos/read_64b_traces_sampled_out`: a kernel exporting traces to a real OTLP
//!   receiver on loopback with `--otlp-sample-ratio 0`, the agent's policy asking for traces
//!   (`observability.traces: true`): its life is not sampled, so no span is made.
//! - `agentos/read_64b_traces_on`: the same with every life sampled: each call is a
//!   `kernel.syscall` span with its `kernel.policy_check` and `kernel.execute` children,
//!   exported in batches by the SDK's thread.
//! - `agentos/read_64b_metrics_and_hook_on`: metrics with an `--on-event` hook as well
//!   (`/bin/true`; these calls break no rule, so the cost is deciding that they are no event).
//!
//! Budgets: metrics, sampled-out traces and the hook ≤ 1.05× the floor; traces on ≤ 1.25×.
//!
//! Each row runs on a kernel of its own, started just before the row and shut down after it,
//! so no other kernel's threads (the traced kernel's exporter above all) share the CPUs with it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::time::Duration;

use agentos_benches::{fmt_ns, own_binary, BenchKernel, Samples, POLICY};
use agentos_kernel::hooks::HookConfig;
use agentos_kernel::traces::TraceConfig;
use agentos_tests::otlp::{Answer, OtlpReceiver};
use criterion::Criterion;

const OFF: &str = "floor/read_64b_observability_off";
const METRICS: &str = "agentos/read_64b_metrics_on";
const SAMPLED_OUT: &str = "agentos/read_64b_traces_sampled_out";
const TRACES: &str = "agentos/read_64b_traces_on";
const BOTH: &str = "agentos/read_64b_metrics_and_hook_on";
const SAMPLE_SIZE: usize = 20;

/// Each row and its budget over the floor.
const BUDGETS: [(&str, f64); 4] = [
    (METRICS, 1.05),
    (SAMPLED_OUT, 1.05),
    (TRACES, 1.25),
    (BOTH, 1.05),
];

fn observability(c: &mut Criterion) -> (Samples, u64) {
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let traced_policy = POLICY.replace("traces: false", "traces: true");
    assert_ne!(
        traced_policy, POLICY,
        "the bench policy names `traces: false`"
    );
    let receiver = OtlpReceiver::start(Answer::Discard);
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let endpoint = format!("{}/v1/traces", receiver.endpoint());
    let traces_to = |ratio: f64| {
        let endpoint = endpoint.clone();
        move |c: &mut agentos_kernel::config::Config| {
            c.traces = Some(TraceConfig {
                endpoint,
                sample_ratio: ratio,
            });
        }
    };
    // Each row gets a kernel of its own, started just before it and shut down after it: a
    // kernel left running (the traced one's exporter still sending its last batches, every
    // kernel's recorder and runtime threads) must not share the two CPUs with the next row.
    type Configure = Box<dyn FnOnce(&mut agentos_kernel::config::Config)>;
    let rows: [(&str, Configure, &str); 5] = [
        (OFF, Box::new(|_| {}), POLICY),
        (
            METRICS,
            Box::new(|c| c.metrics_addr = Some("127.0.0.1:0".parse().unwrap())),
            POLICY,
        ),
        (
            SAMPLED_OUT,
            Box::new(traces_to(0.0)),
            traced_policy.as_str(),
        ),
        (TRACES, Box::new(traces_to(1.0)), traced_policy.as_str()),
        (
            BOTH,
            Box::new(|c| {
                c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
                c.hook = Some(HookConfig {
                    program: "/bin/true".into(),
                    timeout: Duration::from_secs(10),
                    sandbox_threshold: 10,
                });
            }),
            POLICY,
        ),
    ];
    let mut group = c.benchmark_group("observability");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, configure, policy) in rows {
        let kernel = BenchKernel::start_with(configure);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = kernel.rtt_under(&agent, iters, policy);
                samples.borrow_mut().push(name, iters, t);
                t
            })
        });
        kernel.shutdown();
    }
    group.finish();
    (samples.into_inner(), receiver.span_count())
}

fn report(s: &Samples, spans: u64) {
    println!();
    println!("observability summary (median of per-sample means, per round trip)");
    println!("{:<42} {:>12} {:>8}", "bench", "median", "samples");
    for n in [OFF, METRICS, SAMPLED_OUT, TRACES, BOTH] {
        let m = s.median(n).map_or_else(|| "not run".into(), fmt_ns);
        println!("{:<42} {:>12} {:>8}", n, m, s.count(n));
    }
    if let Some(floor) = s.median(OFF) {
        for (n, budget) in BUDGETS {
            if let Some(v) = s.median(n) {
                let ratio = v / floor;
                let verdict = if ratio <= budget {
                    "✔ within"
                } else {
                    "✘ OVER"
                };
                println!("ratio {n} / floor: {ratio:.3}× ({verdict} the {budget}× budget)");
            }
        }
    }
    println!("spans the OTLP receiver took: {spans}");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let (samples, spans) = observability(&mut c);
    c.final_summary();
    report(&samples, spans);
}

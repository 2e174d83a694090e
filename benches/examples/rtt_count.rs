//! Per-call costs of the `syscall_rtt` round trip, for `perf stat`: starts one in-process
//! kernel (observability as asked), runs `bench-agent rtt N` in it and prints what the agent
//! measured. Run it twice under `perf stat -e context-switches,task-clock,instructions` with two
//! `N`s and divide the difference by the difference of the `N`s: context switches and CPU time
//! per call, independent of how loaded the machine is (`benches/README.md`, "Per-call counts").
//!
//! `rtt_count N [same-cpu] [off|metrics|sampled-out|traces|metrics-hook]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use agentos_benches::{
    all_cpus, bench_agent_beside_examples, pin_whole_process, BenchKernel, POLICY,
};
use agentos_kernel::hooks::HookConfig;
use agentos_kernel::traces::TraceConfig;
use agentos_tests::otlp::{Answer, OtlpReceiver};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .expect("usage: rtt_count N [same-cpu] [off|metrics|sampled-out|traces|metrics-hook]");
    let same_cpu = args.iter().any(|a| a == "same-cpu");
    let mode = args
        .iter()
        .skip(1)
        .find(|a| *a != "same-cpu")
        .map_or("off", String::as_str);
    let agent = bench_agent_beside_examples();
    let receiver = OtlpReceiver::start(Answer::Discard);
    let endpoint = format!("{}/v1/traces", receiver.endpoint());
    pin_whole_process(&all_cpus());
    let kernel = BenchKernel::start_with(|c| match mode {
        "off" => {}
        "metrics" => c.metrics_addr = Some("127.0.0.1:0".parse().unwrap()),
        "sampled-out" | "traces" => {
            c.traces = Some(TraceConfig {
                endpoint,
                sample_ratio: if mode == "traces" { 1.0 } else { 0.0 },
            })
        }
        "metrics-hook" => {
            c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
            c.hook = Some(HookConfig {
                program: "/bin/true".into(),
                timeout: Duration::from_secs(10),
                sandbox_threshold: 10,
            });
        }
        other => panic!("unknown mode {other}"),
    });
    if same_cpu {
        pin_whole_process(&[0]);
    }
    let policy = if matches!(mode, "sampled-out" | "traces") {
        POLICY.replace("traces: false", "traces: true")
    } else {
        POLICY.to_string()
    };
    let t = kernel.rtt_under(&agent, n, &policy);
    println!(
        "mode {mode} same_cpu {same_cpu} n {n} elapsed {:?} per_call_ns {}",
        t,
        t.as_nanos() as u64 / n.max(1)
    );
    kernel.shutdown();
}

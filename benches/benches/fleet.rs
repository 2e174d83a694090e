//! Issue budget (performance at scale): what a fleet of idle agents costs to start, to list
//! and to stop.
//!
//! Each sample starts a fresh kernel in this process, spawns `FLEET_AGENTS` (default 1000)
//! jailed `bench-agent idle` agents (connected, then idle; their policy lists SIGTERM) and
//! waits until every one is running, lists them (`Kernel::ps`, what `agentctl ps` asks), then
//! times `Kernel::shutdown`: SIGTERM to every agent, each ended by it, every exit recorded,
//! the recorder sealed. Criterion measures the shutdown (`fleet/stop_<N>_idle_agents`); the
//! summary adds the spawn time, the `ps` time and the kernel's resident memory per agent
//! (this process's RSS with the fleet running minus before it, per agent: the kernel runs
//! here, so that is the kernel's share).
//!
//! Budgets (1,000 agents): `kernel stop` ≤ 3 s, spawning ≤ 3 s, `ps` ≤ 100 ms, kernel
//! ≤ 64 KiB per agent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::time::{Duration, Instant};

use agentos_benches::{fmt_ns, own_binary, BenchKernel, POLICY};
use agentos_syscalls::control::AgentState;
use criterion::{Criterion, SamplingMode};

const SAMPLE_SIZE: usize = 10;

fn agents() -> usize {
    std::env::var("FLEET_AGENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// This process's resident memory, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[derive(Debug, Default)]
struct Seen {
    spawn: Vec<Duration>,
    ps: Vec<Duration>,
    rss_per_agent: Vec<f64>,
    stop: Vec<Duration>,
}

/// One fleet: started, listed, and its kernel's shutdown timed.
fn one_fleet(agent: &std::path::Path, policy: &str, n: usize, seen: &mut Seen) -> Duration {
    let k = BenchKernel::start();
    let before = rss();
    let started = Instant::now();
    for _ in 0..n {
        k.start_agent(agent, &["idle"], None, policy);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let running = k
            .kernel
            .ps()
            .iter()
            .filter(|a| a.state == AgentState::Running)
            .count();
        if running == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{running} of {n} agents running after 120 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    seen.spawn.push(started.elapsed());
    let listed = Instant::now();
    let rows = k.kernel.ps();
    seen.ps.push(listed.elapsed());
    assert_eq!(rows.len(), n);
    seen.rss_per_agent
        .push(rss().saturating_sub(before) as f64 / n as f64);
    let stopping = Instant::now();
    k.rt.block_on(k.kernel.shutdown("fleet bench"));
    let took = stopping.elapsed();
    let ended = k.kernel.ps();
    assert!(
        ended.iter().all(|a| a.state == AgentState::Exited),
        "an agent outlived the shutdown"
    );
    seen.stop.push(took);
    took
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let n = agents();
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let policy = POLICY.replace("signals: []", "signals: [SIGTERM]");
    let seen = RefCell::new(Seen::default());
    let name = format!("stop_{n}_idle_agents");
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("fleet");
        group
            .sample_size(SAMPLE_SIZE)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(1));
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| one_fleet(&agent, &policy, n, &mut seen.borrow_mut()))
                    .sum()
            })
        });
        group.finish();
    }
    c.final_summary();
    let s = seen.into_inner();
    let check = |what: &str, v: Duration, budget: Duration| {
        let verdict = if v <= budget { "✔" } else { "✘" };
        println!(
            "{what:<34} {:>12}   budget {:>10} {verdict}",
            fmt_ns(v.as_nanos() as f64),
            fmt_ns(budget.as_nanos() as f64)
        );
    };
    println!();
    println!(
        "fleet summary: {n} idle agents, medians of {} fleets",
        s.stop.len()
    );
    check("kernel stop", median(&s.stop), Duration::from_secs(3));
    check(
        "spawn until all running",
        median(&s.spawn),
        Duration::from_secs(3),
    );
    check("ps", median(&s.ps), Duration::from_millis(100));
    let mut per = s.rss_per_agent.clone();
    per.sort_by(f64::total_cmp);
    let kib = per.get(per.len() / 2).copied().unwrap_or(0.0) / 1024.0;
    let verdict = if kib <= 64.0 { "✔" } else { "✘" };
    println!(
        "{:<34} {:>9.1} KiB   budget {:>6} KiB {verdict}",
        "kernel memory per agent", kib, 64
    );
}

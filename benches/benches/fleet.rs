//! Issue budget (performance at scale): what a fleet of idle agents costs to start, to list
//! and to stop.
//!
//! Each sample starts a fresh kernel in this process, spawns `FLEET_AGENTS` (default 1000)
//! jailed `bench-agent idle` agents (connected, then idle; their policy lists SIGTERM),
//! `FLEET_SPAWN_AT_ONCE` spawns in flight (default 1: one after another; 8 is what
//! `xargs -P8 agentctl spawn` would do), and waits until every one is running (each on its
//! own start, `Kernel::wait_started`: nothing polls a listing beside the spawns), lists them
//! (`Kernel::ps`, what `agentctl ps` asks), then
//! times `Kernel::shutdown`: SIGTERM to every agent, each ended by it, every exit recorded,
//! the recorder sealed. Criterion measures the shutdown (`fleet/stop_<N>_idle_agents`); the
//! summary adds the spawn time, the `ps` time and the kernel's resident memory per agent
//! (this process's RSS with the fleet running minus before it, per agent, from a heap
//! trimmed before the fleet: the kernel runs here, so that is the kernel's share).
//!
//! With the fleet running it also counts each agent's processes and its helpers (every
//! process of its tree but the agent program: the init, and a launcher above it where the
//! launcher was exec'd) and sums the helpers' PSS (`/proc/PID/smaps_rollup`, plus the
//! zygote's, shared by the fleet) per agent.
//!
//! Budgets (1,000 agents): `kernel stop` ≤ 3 s, spawning ≤ 3 s, `ps` ≤ 100 ms, kernel
//! ≤ 64 KiB per agent, at most one helper process per agent, helpers' PSS ≤ 150 KiB per
//! agent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::time::{Duration, Instant};

use agentos_benches::{fmt_ns, own_binary, spawn_request, BenchKernel, POLICY};
use agentos_syscalls::control::{AgentRef, AgentState};
use criterion::{Criterion, SamplingMode};

const SAMPLE_SIZE: usize = 10;

fn agents() -> usize {
    std::env::var("FLEET_AGENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// How many spawns are in flight at once (`FLEET_SPAWN_AT_ONCE`, default 1: one after
/// another, as a script of `agentctl spawn`s would).
fn spawns_at_once() -> usize {
    std::env::var("FLEET_SPAWN_AT_ONCE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Hands the heap glibc keeps free for reuse back to the system (`malloc_trim(0)`), so that
/// what [`rss`] reads next is what the process holds, not what it freed: a fleet's growth
/// measured from an untrimmed heap is partly taken from the memory the fleet before it freed.
fn trim_heap() {
    // SAFETY: `malloc_trim` takes no pointer; it only releases free memory of the allocator's
    // own arenas, which nothing refers to.
    unsafe {
        libc::malloc_trim(0);
    }
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
    /// Processes per agent (its whole tree), the helpers among them (all but the agent
    /// program), and the helpers' PSS per agent (bytes; the zygote's share included).
    processes: Vec<f64>,
    helpers: Vec<f64>,
    helper_pss: Vec<f64>,
    /// Every fleet's state dir, removed once all are measured
    /// ([`agentos_benches::BenchKernel::into_state`]).
    kept: Vec<tempfile::TempDir>,
}

/// `Pss` of `/proc/PID/smaps_rollup`, bytes.
fn pss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Per agent: its processes, its helpers (every process of its tree but the agent program:
/// a launcher and the init, or the init alone), and their PSS plus this agent's share of the
/// zygote's (the process the kernel's spawner started with `--zygote`, if any).
fn helper_costs(roots: &[u32]) -> (f64, f64, f64) {
    let table = agentos_tests::process_table();
    let children = |p: u32| -> Vec<u32> {
        let mut c: Vec<u32> = table.iter().filter(|e| e.1 == p).map(|e| e.0).collect();
        c.sort_unstable();
        c
    };
    let (mut processes, mut helpers, mut bytes) = (0usize, 0usize, 0u64);
    for &root in roots {
        let mut tree = vec![root];
        let mut i = 0;
        while i < tree.len() {
            tree.extend(children(tree[i]));
            i += 1;
        }
        processes += tree.len();
        let init = if agentos_tests::is_namespace_init(root) {
            root
        } else {
            children(root).first().copied().unwrap_or(root)
        };
        let mut helper = vec![root];
        if init != root {
            helper.push(init);
        }
        helpers += helper.len();
        bytes += helper.iter().map(|&p| pss(p)).sum::<u64>();
    }
    // The zygote: our child running `--zygote` that is no namespace's init (the inits it
    // cloned are our children too, and show its command line: they never exec'd).
    let me = std::process::id();
    for zygote in children(me) {
        let cmdline = std::fs::read(format!("/proc/{zygote}/cmdline")).unwrap_or_default();
        if cmdline.windows(8).any(|w| w == b"--zygote") && !agentos_tests::is_namespace_init(zygote)
        {
            bytes += pss(zygote);
        }
    }
    let n = roots.len().max(1) as f64;
    (processes as f64 / n, helpers as f64 / n, bytes as f64 / n)
}

/// One fleet: started, listed, and its kernel's shutdown timed.
fn one_fleet(
    agent: &std::path::Path,
    policy: &str,
    n: usize,
    at_once: usize,
    seen: &mut Seen,
) -> Duration {
    let k = BenchKernel::start();
    // From a trimmed heap: the growth counts no memory an earlier fleet freed and the
    // allocator kept.
    trim_heap();
    let before = rss();
    let started = Instant::now();
    // `at_once` spawns in flight (no more spawn futures than that exist at once: the RSS
    // growth below is the kernel's); then each agent's start is awaited (nothing polls a
    // listing beside the spawns: a `ps` of a thousand agents reads two cgroup files of each).
    let states = k.rt.block_on(async {
        let mut ids = Vec::with_capacity(n);
        let mut spawning = tokio::task::JoinSet::new();
        for _ in 0..n {
            if spawning.len() >= at_once {
                ids.push(spawning.join_next().await.expect("a spawn in flight"));
            }
            let kernel = k.kernel.clone();
            let req = spawn_request(agent, &["idle"], None, policy);
            spawning
                .spawn(async move { kernel.spawn(req).await.expect("spawn the bench agent").id });
        }
        while let Some(id) = spawning.join_next().await {
            ids.push(id);
        }
        let mut states = Vec::with_capacity(n);
        for id in ids {
            let id = id.expect("a spawn task panicked");
            let state = k.kernel.wait_started(&AgentRef::Id(id)).await;
            states.push(state.expect("a spawned agent is in the table"));
        }
        states
    });
    seen.spawn.push(started.elapsed());
    assert!(
        states.iter().all(|s| *s == AgentState::Running),
        "an agent did not start: {:?}",
        states.iter().find(|s| **s != AgentState::Running)
    );
    let listed = Instant::now();
    let rows = k.kernel.ps();
    seen.ps.push(listed.elapsed());
    assert_eq!(rows.len(), n);
    let roots: Vec<u32> = rows.iter().filter_map(|a| a.pid).collect();
    assert_eq!(roots.len(), n, "an agent without a pid");
    let (processes, helpers, helper_pss) = helper_costs(&roots);
    seen.processes.push(processes);
    seen.helpers.push(helpers);
    seen.helper_pss.push(helper_pss);
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
    seen.kept.push(k.into_state());
    took
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let n = agents();
    let at_once = spawns_at_once();
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
                    .map(|_| one_fleet(&agent, &policy, n, at_once, &mut seen.borrow_mut()))
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
            "{what:<38} {:>12}   budget {:>10} {verdict}",
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
        &format!("spawn until all running ({at_once} at once)"),
        median(&s.spawn),
        Duration::from_secs(3),
    );
    check("ps", median(&s.ps), Duration::from_millis(100));
    let mut per = s.rss_per_agent.clone();
    per.sort_by(f64::total_cmp);
    let kib = per.get(per.len() / 2).copied().unwrap_or(0.0) / 1024.0;
    let verdict = if kib <= 64.0 { "✔" } else { "✘" };
    println!(
        "{:<38} {:>9.1} KiB   budget {:>6} KiB {verdict}",
        "kernel memory per agent", kib, 64
    );
    let mid = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!("{:<38} {:>9.2}", "processes per agent", mid(&s.processes));
    let helpers = mid(&s.helpers);
    let verdict = if helpers <= 1.0 { "✔" } else { "✘" };
    println!(
        "{:<38} {:>9.2}       budget {:>6}     {verdict}",
        "helper processes per agent", helpers, 1
    );
    let kib = mid(&s.helper_pss) / 1024.0;
    let verdict = if kib <= 150.0 { "✔" } else { "✘" };
    println!(
        "{:<38} {:>9.1} KiB   budget {:>6} KiB {verdict}",
        "helper PSS per agent", kib, 150
    );
}

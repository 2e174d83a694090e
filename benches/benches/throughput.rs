//! Issue budget (performance at scale): many agents doing syscalls at once, beside as many
//! socketpair ping-pong pairs running at once on the same machine in the same run.
//!
//! - `floor/N_pingpong_pairs`: `N` threads of this process, each with its own `pingpong-echo`
//!   child over a `socketpair`, all doing 64-byte round trips over the same window; the op is
//!   one round trip of the aggregate (window ÷ all round trips).
//! - `agentos/N_agents_read_64b`: `N` jailed `bench-agent load START WINDOW` agents of one
//!   in-process kernel (tokio, 2 workers), spawned before the window opens; each sleeps until
//!   the shared wall-clock start, then `read`s its 64-byte `/mem/working/x` through the
//!   blocking SDK until the window closes and prints its count. The op is one `Read` of the
//!   aggregate (window ÷ all reads). An agent that could not start on time (spawning took
//!   longer than the allowance) only counts what it read inside the window, and the summary
//!   says how many were late.
//!
//! Nothing is pinned (default placement). N = 1, 8 and 64.
//!
//! Budgets: 8 agents ≥ 50% of 8 ping-pong pairs' aggregate; 64 agents within 20% of the
//! 8-agent aggregate (no collapse).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentos_benches::{own_binary, BenchKernel, Echo, Samples, MSG, POLICY};
use agentos_syscalls::control::{AgentRef, ExitStatus};
use criterion::{Criterion, SamplingMode};

const SAMPLE_SIZE: usize = 10;
/// The window; `AGENTOS_THROUGHPUT_WINDOW_MS` lengthens it to profile one (`perf record`,
/// `vmstat`) without the spawns between windows in the samples. Read once.
fn window() -> Duration {
    static WINDOW: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *WINDOW.get_or_init(|| {
        let ms = std::env::var("AGENTOS_THROUGHPUT_WINDOW_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400);
        Duration::from_millis(ms)
    })
}
const COUNTS: [usize; 3] = [1, 8, 64];

fn floor_name(n: usize) -> String {
    format!("floor/{n}_pingpong_pairs")
}

fn agentos_name(n: usize) -> String {
    format!("agentos/{n}_agents_read_64b")
}

/// `n` ping-pong pairs over one window: the total number of round trips.
fn pairs(echo_bin: &Path, n: usize) -> u64 {
    let echoes: Vec<Echo> = (0..n).map(|_| Echo::start(echo_bin)).collect();
    // Every thread is started (and its child running) before the window opens.
    let start = Instant::now() + Duration::from_millis(50 + 2 * n as u64);
    let end = start + window();
    let threads: Vec<_> = echoes
        .into_iter()
        .map(|mut echo| {
            std::thread::spawn(move || {
                let msg = [0x5au8; MSG];
                let mut back = [0u8; MSG];
                std::thread::sleep(start.saturating_duration_since(Instant::now()));
                let mut count = 0u64;
                while Instant::now() < end {
                    echo.round_trip(black_box(&msg), &mut back);
                    count += 1;
                }
                echo.stop();
                count
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}

/// What one window of `n` agents gave.
struct Window {
    reads: u64,
    late: usize,
}

/// `n` agents over one window; `allowance` is how long spawning them all may take.
fn agents(k: &BenchKernel, agent: &Path, n: usize, allowance: &mut Duration) -> Window {
    let began = Instant::now();
    let start = SystemTime::now() + *allowance;
    let start_ns = start
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    let window_ms = window().as_millis().to_string();
    let spawned: Vec<_> = (0..n)
        .map(|_| k.start_agent(agent, &["load", &start_ns, &window_ms], None, POLICY))
        .collect();
    // The next window's allowance: three times what this spawning took, at least 500 ms
    // (spawn times swing with the machine's load).
    *allowance = (began.elapsed() * 3).max(Duration::from_millis(500));
    let mut w = Window { reads: 0, late: 0 };
    for a in spawned {
        let info =
            k.rt.block_on(k.kernel.wait(&AgentRef::Id(a.id)))
                .expect("wait for a load agent");
        let log = std::fs::read_to_string(&info.log_path).unwrap_or_default();
        assert!(
            matches!(info.exit, Some(ExitStatus::Code(0))),
            "load agent ended with {:?}; its output:\n{log}",
            info.exit
        );
        let field = |name: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no `{name}` line in the agent's output:\n{log}"))
        };
        w.reads += field("reads ");
        if field("late_ns ") > 0 {
            w.late += 1;
        }
    }
    w
}

/// The time one op of the aggregate took, for `iters` ops at `per_window` ops per window.
fn per_op_total(iters: u64, per_window: u64) -> Duration {
    let per_op = window().as_secs_f64() / per_window.max(1) as f64;
    Duration::from_secs_f64(per_op * iters as f64)
}

fn main() {
    let echo_bin = own_binary(env!("CARGO_BIN_EXE_pingpong-echo"));
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let late = RefCell::new(vec![(0usize, 0usize); COUNTS.len()]);
    let kernel = BenchKernel::start();
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("throughput");
        group
            .sample_size(SAMPLE_SIZE)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(1));
        for (i, n) in COUNTS.into_iter().enumerate() {
            let name = floor_name(n);
            group.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    let t = per_op_total(iters, pairs(&echo_bin, n));
                    samples.borrow_mut().push(&name, iters, t);
                    t
                })
            });
            let name = agentos_name(n);
            let mut allowance = Duration::from_millis(300 + 40 * n as u64);
            group.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    let w = agents(&kernel, &agent, n, &mut allowance);
                    let mut l = late.borrow_mut();
                    l[i].0 += w.late;
                    l[i].1 += n;
                    let t = per_op_total(iters, w.reads);
                    samples.borrow_mut().push(&name, iters, t);
                    t
                })
            });
        }
        group.finish();
    }
    c.final_summary();
    kernel.shutdown();
    report(&samples.into_inner(), &late.into_inner());
}

fn report(s: &Samples, late: &[(usize, usize)]) {
    let rate = |name: &str| s.median(name).map(|ns| 1e9 / ns);
    let show =
        |r: Option<f64>| r.map_or_else(|| "not run".into(), |r| format!("{:.0}k/s", r / 1e3));
    println!();
    println!(
        "throughput summary: aggregate 64-byte round trips per second over a {} ms window (median of {SAMPLE_SIZE} windows), nothing pinned",
        window().as_millis()
    );
    println!(
        "{:>4} {:>14} {:>16} {:>7}  late agents",
        "N", "ping-pong pairs", "agentos agents", "ratio"
    );
    for (i, n) in COUNTS.into_iter().enumerate() {
        let (f, a) = (rate(&floor_name(n)), rate(&agentos_name(n)));
        let ratio = match (a, f) {
            (Some(a), Some(f)) => format!("{:.2}×", a / f),
            _ => "-".into(),
        };
        println!(
            "{n:>4} {:>14} {:>16} {ratio:>7}  {} of {}",
            show(f),
            show(a),
            late[i].0,
            late[i].1
        );
    }
    let mark = |ok: bool| if ok { "✔" } else { "✘" };
    if let (Some(a8), Some(f8)) = (rate(&agentos_name(8)), rate(&floor_name(8))) {
        let r = a8 / f8;
        println!(
            "budget: 8 agents ≥ 50% of 8 ping-pong pairs: {:.0}% {}",
            r * 100.0,
            mark(r >= 0.5)
        );
        if let Some(a64) = rate(&agentos_name(64)) {
            let r = a64 / a8;
            println!(
                "budget: 64 agents within 20% of 8 agents (no collapse): {:.0}% of the 8-agent aggregate {}",
                r * 100.0,
                mark(r >= 0.8)
            );
        }
    }
}

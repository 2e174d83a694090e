//! A syscall round trip (SDK → kernel → policy → recorder → SDK) within 2× of a bare
//! Unix-socket ping-pong of the same placement (issue 18; DESIGN §10 asked 3×), measured in
//! both placements in the same run: unpinned beside the unpinned floor, all on one CPU beside
//! the one-CPU floor. The cross-CPU floor is shown too, for reference.
//!
//! - `floor/unix_pingpong_default_placement`: the same ping-pong with nothing pinned (the
//!   like-for-like floor of the unpinned agentos variant).
//! - `floor/unix_pingpong_cross_cpu`: this process (CPU 0) ↔ a `pingpong-echo` child (CPU 1)
//!   over a `socketpair`, one 64-byte write + one 64-byte read per op.
//! - `floor/unix_pingpong_same_cpu`: the same with both on CPU 0.
//! - `agentos/read_64b_default_placement`: a real jailed `bench-agent rtt N` spawned by an
//!   in-process kernel (tokio, 2 workers); the agent times `N` reads of a 64-byte file and
//!   prints the total, which is what each sample reports. No pinning.
//! - `agentos/read_64b_same_cpu`: the same with every thread of this process pinned to CPU 0
//!   (the kernel's workers and its spawner thread, whose affinity the agents inherit).

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use agentos_benches::{
    all_cpus, fmt_ns, own_binary, pin_current_thread, pin_pid, pin_whole_process, BenchKernel,
    Echo, Samples, MSG,
};
use criterion::Criterion;

const FLOOR_DEFAULT: &str = "floor/unix_pingpong_default_placement";
const FLOOR_CROSS: &str = "floor/unix_pingpong_cross_cpu";
const FLOOR_SAME: &str = "floor/unix_pingpong_same_cpu";
const AGENTOS_DEFAULT: &str = "agentos/read_64b_default_placement";
const AGENTOS_SAME: &str = "agentos/read_64b_same_cpu";
/// agentos ≤ this many times the floor of the same placement.
const BUDGET: f64 = 2.0;
const SAMPLE_SIZE: usize = 30;

fn floor(echo: &mut Echo, iters: u64) -> Duration {
    let msg = [0x5au8; MSG];
    let mut back = [0u8; MSG];
    let start = Instant::now();
    for _ in 0..iters {
        echo.round_trip(black_box(&msg), &mut back);
    }
    let elapsed = start.elapsed();
    black_box(&back);
    elapsed
}

fn syscall_rtt(c: &mut Criterion) -> Samples {
    let echo_bin = own_binary(env!("CARGO_BIN_EXE_pingpong-echo"));
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let all = all_cpus();
    assert!(
        all.len() >= 2,
        "the cross-CPU placements need two CPUs; this machine has {}",
        all.len()
    );
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));

    // The kernel's threads are created now, before any pinning: default placement.
    pin_whole_process(&all);
    let kernel = BenchKernel::start();

    let mut group = c.benchmark_group("syscall_rtt");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let mut echo = Echo::start(&echo_bin);
    group.bench_function(FLOOR_DEFAULT, |b| {
        b.iter_custom(|iters| {
            let t = floor(&mut echo, iters);
            samples.borrow_mut().push(FLOOR_DEFAULT, iters, t);
            t
        })
    });
    pin_current_thread(&[0]);
    pin_pid(echo.pid(), &[1]);
    group.bench_function(FLOOR_CROSS, |b| {
        b.iter_custom(|iters| {
            let t = floor(&mut echo, iters);
            samples.borrow_mut().push(FLOOR_CROSS, iters, t);
            t
        })
    });
    pin_pid(echo.pid(), &[0]);
    group.bench_function(FLOOR_SAME, |b| {
        b.iter_custom(|iters| {
            let t = floor(&mut echo, iters);
            samples.borrow_mut().push(FLOOR_SAME, iters, t);
            t
        })
    });
    echo.stop();
    pin_current_thread(&all);

    group.bench_function(AGENTOS_DEFAULT, |b| {
        b.iter_custom(|iters| {
            let t = kernel.rtt(&agent, iters);
            samples.borrow_mut().push(AGENTOS_DEFAULT, iters, t);
            t
        })
    });

    // Every existing thread of this process (kernel workers, spawner, this one) to CPU 0;
    // agents forked by the spawner inherit it.
    pin_whole_process(&[0]);
    group.bench_function(AGENTOS_SAME, |b| {
        b.iter_custom(|iters| {
            let t = kernel.rtt(&agent, iters);
            samples.borrow_mut().push(AGENTOS_SAME, iters, t);
            t
        })
    });
    pin_whole_process(&all);
    group.finish();
    kernel.shutdown();
    samples.into_inner()
}

fn report(s: &Samples) {
    let med = |n| s.median(n);
    let show = |v: Option<f64>| v.map_or_else(|| "not run".into(), fmt_ns);
    println!();
    println!("syscall_rtt summary (median of per-sample means, per round trip)");
    println!("{:<40} {:>12} {:>8}", "bench", "median", "samples");
    for n in [
        FLOOR_DEFAULT,
        FLOOR_CROSS,
        FLOOR_SAME,
        AGENTOS_DEFAULT,
        AGENTOS_SAME,
    ] {
        println!("{:<40} {:>12} {:>8}", n, show(med(n)), s.count(n));
    }
    let rows = [
        (
            "default placement / floor default placement",
            AGENTOS_DEFAULT,
            FLOOR_DEFAULT,
            true,
        ),
        ("same CPU / floor same CPU", AGENTOS_SAME, FLOOR_SAME, true),
        (
            "default placement / floor cross-CPU",
            AGENTOS_DEFAULT,
            FLOOR_CROSS,
            false,
        ),
    ];
    println!();
    println!("{:<46} {:>7}  budget", "ratio", "value");
    for (what, a, f, budgeted) in rows {
        if let (Some(a), Some(f)) = (med(a), med(f)) {
            let ratio = a / f;
            let verdict = if !budgeted {
                "informational".to_string()
            } else if ratio <= BUDGET {
                format!("≤ {BUDGET}× ✔")
            } else {
                format!("≤ {BUDGET}× ✘")
            };
            println!("{what:<46} {ratio:>6.2}×  {verdict}");
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = syscall_rtt(&mut c);
    c.final_summary();
    report(&samples);
}

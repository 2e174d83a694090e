//! The VFS's one-shot `Read` and `Write` of a workspace file, 4 KiB and 1 MiB, through the
//! kernel (a real jailed `bench-agent vfs …` whose workspace holds the file: SDK → kernel →
//! policy → `openat2` beneath the workspace → recorder → SDK), beside the floor: the bench
//! process reading (`std::fs::read`) or writing (`std::fs::write`) the same host file, in the
//! same run.
//!
//! Each agentos sample spawns one agent that times its own `N` calls (spawn not included).
//! Every call is recorded with its payload, so the write path includes recording 4 KiB /
//! 1 MiB in the flight recorder: that is the price of "record everything".

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use agentos_benches::{elapsed, fmt_ns, own_binary, BenchKernel, Samples, WORKSPACE_POLICY};
use criterion::Criterion;

const SAMPLE_SIZE: usize = 10;
const SIZES: [(usize, &str); 2] = [(4 << 10, "4KiB"), (1 << 20, "1MiB")];

fn agent_time(kernel: &BenchKernel, agent: &Path, ws: &Path, args: &[&str]) -> Duration {
    let (_, log) = kernel.run_with(agent, args, Some(ws), WORKSPACE_POLICY);
    elapsed(&log)
}

fn names(label: &str) -> [String; 4] {
    [
        format!("floor/direct_read_{label}"),
        format!("agentos/read_{label}"),
        format!("floor/direct_write_{label}"),
        format!("agentos/write_{label}"),
    ]
}

fn vfs(c: &mut Criterion) -> Samples {
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let ws = tempfile::Builder::new()
        .prefix("agentos-bench-ws-")
        .tempdir()
        .expect("workspace dir");
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let kernel = BenchKernel::start();
    let mut group = c.benchmark_group("vfs");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (size, label) in SIZES {
        let file = format!("f_{label}");
        let host = ws.path().join(&file);
        std::fs::write(&host, vec![0xa5u8; size]).unwrap();
        let vpath = format!("/workspace/{file}");
        let size_s = size.to_string();
        let [floor_r, os_r, floor_w, os_w] = names(label);
        group.bench_function(&floor_r, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let d = std::fs::read(black_box(&host)).unwrap();
                    assert_eq!(d.len(), size);
                }
                let t = start.elapsed();
                samples.borrow_mut().push(&floor_r, iters, t);
                t
            })
        });
        group.bench_function(&os_r, |b| {
            b.iter_custom(|iters| {
                let n = iters.to_string();
                let t = agent_time(
                    &kernel,
                    &agent,
                    ws.path(),
                    &["vfs", "read", &vpath, &size_s, &n],
                );
                samples.borrow_mut().push(&os_r, iters, t);
                t
            })
        });
        let data = vec![0xa5u8; size];
        group.bench_function(&floor_w, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    std::fs::write(black_box(&host), &data).unwrap();
                }
                let t = start.elapsed();
                samples.borrow_mut().push(&floor_w, iters, t);
                t
            })
        });
        group.bench_function(&os_w, |b| {
            b.iter_custom(|iters| {
                let n = iters.to_string();
                let t = agent_time(
                    &kernel,
                    &agent,
                    ws.path(),
                    &["vfs", "write", &vpath, &size_s, &n],
                );
                samples.borrow_mut().push(&os_w, iters, t);
                t
            })
        });
    }
    group.finish();
    kernel.shutdown();
    samples.into_inner()
}

fn report(s: &Samples) {
    let show = |v: Option<f64>| v.map_or_else(|| "not run".into(), fmt_ns);
    println!();
    println!("vfs summary (median of per-sample means, per call)");
    println!("{:<32} {:>12} {:>8}", "bench", "median", "samples");
    for (_, label) in SIZES {
        let [floor_r, os_r, floor_w, os_w] = names(label);
        for n in [&floor_r, &os_r, &floor_w, &os_w] {
            println!("{:<32} {:>12} {:>8}", n, show(s.median(n)), s.count(n));
        }
        for (what, a, f) in [("read", &os_r, &floor_r), ("write", &os_w, &floor_w)] {
            if let (Some(a), Some(f)) = (s.median(a), s.median(f)) {
                println!("ratio {what} {label}: {:.1}× the direct {what}", a / f);
            }
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = vfs(&mut c);
    c.final_summary();
    report(&samples);
}

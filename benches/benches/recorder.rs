//! DESIGN §10: the flight recorder appends and verifies ≥ 500k records/s, and ≥ 50k/s in
//! `always` durability.
//!
//! Every op is one typical syscall record (a 8-byte `write` to `/mem/working/counter` with its
//! decision), through the real [`Recorder`] in a temp dir on the state dir's disk:
//! - `agentos/append_batch`: `batch` durability, `WINDOW` records in flight (as many agents'
//!   syscalls are), each appender waiting for its write.
//! - `agentos/append_always`: the same in `always` durability (each record fsynced before its
//!   appender returns; group commit shares one `fdatasync` per group).
//! - `agentos/verify`: `verify::scan` of a sealed 100k-record log (chain, CRC, decode,
//!   sequence, signatures, HEAD), per record.
//! - `floor/append_batch_without_tlog`: `agentos/append_batch` with
//!   `RecorderOptions::transparency_log` off (no leaves kept, no tiles, bundles or notes
//!   published): the recorder without the transparency log, for its ≥ 80% budget.
//! - `info/append_batch_one_appender`: one appender, one record at a time (latency-bound).
//! - `floor/raw_buffered_write`: the same frame bytes through a `BufWriter<File>`.
//! - `floor/raw_fdatasync_per_group`: the same bytes, `WINDOW` frames per `write` +
//!   `fdatasync`.
//! - `tlog/tree_push`: what the transparency log adds to each append (`tlog::Tree::push` of a
//!   typical record's leaf: its SHA-256 leaf hash and the interior hashes it completes); the
//!   append rows above include it and the tiles and notes written with each checkpoint.
//! - `tlog/prove`, `tlog/check_inclusion`: an inclusion proof of a record in a 100k-record tree
//!   made, and checked against the root, per record.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use agentos_benches::{fmt_ns, Samples};
use agentos_kernel::recorder::format::{
    push_frame, FrameMeta, RecordBodyRef, GENESIS, TYPE_RECORD,
};
use agentos_kernel::recorder::tlog;
use agentos_kernel::recorder::{
    scan, DecisionRecord, Durability, RecordEvent, Recorder, RecorderOptions, ScanOptions,
};
use agentos_syscalls::{AgentId, Reply, Syscall, WriteMode};
use criterion::Criterion;

const SAMPLE_SIZE: usize = 10;
const WINDOW: usize = 256;
const VERIFY_LOG: u64 = 100_000;

const BATCH: &str = "agentos/append_batch";
const ALWAYS: &str = "agentos/append_always";
const VERIFY: &str = "agentos/verify";
const ONE: &str = "info/append_batch_one_appender";
const NO_TLOG: &str = "floor/append_batch_without_tlog";
const RAW: &str = "floor/raw_buffered_write";
const RAW_SYNC: &str = "floor/raw_fdatasync_per_group";
const PUSH: &str = "tlog/tree_push";
const PROVE: &str = "tlog/prove";
const CHECK: &str = "tlog/check_inclusion";

fn event(i: u64) -> RecordEvent {
    RecordEvent::Syscall {
        id: i,
        call: Syscall::Write {
            path: "/mem/working/counter".into(),
            data: i.to_le_bytes().to_vec(),
            mode: WriteMode::Truncate,
        },
        decision: DecisionRecord {
            allowed: true,
            policy_allowed: true,
            rule: "working-rw (.agents/security.md:7)".into(),
            reason: "allowed by rule working-rw".into(),
            violation: false,
            mode: "strict".into(),
        },
        result: Ok(Reply::Written { bytes: 8 }),
        duration_us: 12,
    }
}

fn frame_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chain = GENESIS;
    for i in 0..n as u64 {
        let meta = FrameMeta {
            seq: i,
            wall_ms: 1_700_000_000_000,
            mono_us: i,
        };
        let body = RecordBodyRef {
            agent: &Some(AgentId(1)),
            event: &event(i),
        };
        chain = push_frame(
            &mut out,
            &chain,
            TYPE_RECORD,
            meta,
            &postcard::to_stdvec(&body).unwrap(),
        );
    }
    out
}

fn open(dir: &Path, durability: Durability, transparency_log: bool) -> Recorder {
    let opts = RecorderOptions {
        durability,
        transparency_log,
        ..RecorderOptions::default()
    };
    Recorder::open_with(dir, opts).unwrap().0
}

/// `iters` records through `rec`, `window` in flight.
fn pipelined(rec: &Recorder, iters: u64, window: usize) -> Duration {
    let start = Instant::now();
    let mut q = VecDeque::with_capacity(window);
    for i in 0..iters {
        if q.len() == window {
            let t: agentos_kernel::recorder::Ticket = q.pop_front().unwrap();
            t.wait().unwrap();
        }
        q.push_back(rec.submit(Some(AgentId(1)), event(i)).unwrap());
    }
    for t in q {
        t.wait().unwrap();
    }
    start.elapsed()
}

fn benches(c: &mut Criterion) -> Samples {
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let tmp = tempfile::Builder::new()
        .prefix("agentos-recorder-bench-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let mut group = c.benchmark_group("recorder");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let frames = frame_bytes(WINDOW);
    let frame_len = frames.len() / WINDOW;
    group.bench_function(RAW, |b| {
        let path = tmp.path().join("raw");
        b.iter_custom(|iters| {
            let f = std::fs::File::create(&path).unwrap();
            let mut w = std::io::BufWriter::with_capacity(64 << 10, f);
            let start = Instant::now();
            for i in 0..iters as usize {
                let at = (i % WINDOW) * frame_len;
                w.write_all(&frames[at..at + frame_len]).unwrap();
            }
            w.flush().unwrap();
            let t = start.elapsed();
            samples.borrow_mut().push(RAW, iters, t);
            t
        })
    });
    group.bench_function(RAW_SYNC, |b| {
        let path = tmp.path().join("raw-sync");
        b.iter_custom(|iters| {
            let mut f = std::fs::File::create(&path).unwrap();
            let start = Instant::now();
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(WINDOW);
                f.write_all(&frames[..n * frame_len]).unwrap();
                f.sync_data().unwrap();
                left -= n;
            }
            let t = start.elapsed();
            samples.borrow_mut().push(RAW_SYNC, iters, t);
            t
        })
    });
    for (name, durability, window, tlog) in [
        (NO_TLOG, Durability::Batch, WINDOW, false),
        (BATCH, Durability::Batch, WINDOW, true),
        (ALWAYS, Durability::Always, WINDOW, true),
        (ONE, Durability::Batch, 1, true),
    ] {
        let dir = tmp.path().join(name.replace('/', "-"));
        let rec = open(&dir, durability, tlog);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = pipelined(&rec, iters, window);
                samples.borrow_mut().push(name, iters, t);
                t
            })
        });
        // The log stays until the run ends (with `tmp`): deleting a few thousand tile files
        // here would slow the next group's file creations on ext4 without a journal (its
        // inode allocator steps over inodes freed in the last seconds).
        drop(rec);
    }
    let dir = tmp.path().join("verify");
    let rec = open(&dir, Durability::Batch, true);
    pipelined(&rec, VERIFY_LOG, WINDOW);
    drop(rec);
    group.bench_function(VERIFY, |b| {
        b.iter_custom(|iters| {
            let runs = iters.div_ceil(VERIFY_LOG);
            let start = Instant::now();
            for _ in 0..runs {
                let v = scan(&dir, ScanOptions { signatures: true }, |_, _| {}).unwrap();
                assert_eq!((v.exit_code(), v.records), (0, VERIFY_LOG));
            }
            let per = start.elapsed().as_secs_f64() / (runs * (VERIFY_LOG)) as f64;
            let t = Duration::from_secs_f64(per * iters as f64);
            samples.borrow_mut().push(VERIFY, iters, t);
            t
        })
    });
    // The leaves: each frame's header and body (all but its chain and CRC).
    let leaves: Vec<&[u8]> = (0..WINDOW)
        .map(|i| &frames[i * frame_len..(i + 1) * frame_len - 36])
        .collect();
    group.bench_function(PUSH, |b| {
        b.iter_custom(|iters| {
            let mut tree = tlog::Tree::default();
            let start = Instant::now();
            for i in 0..iters as usize {
                tree.push(leaves[i % WINDOW]);
            }
            let t = start.elapsed();
            samples.borrow_mut().push(PUSH, iters, t);
            t
        })
    });
    let mut tree = tlog::Tree::default();
    for i in 0..VERIFY_LOG as usize {
        tree.push(leaves[i % WINDOW]);
    }
    let root = tree.root();
    group.bench_function(PROVE, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let p = tree.prove(VERIFY_LOG, (i * 7919) % VERIFY_LOG).unwrap();
                std::hint::black_box(p);
            }
            let t = start.elapsed();
            samples.borrow_mut().push(PROVE, iters, t);
            t
        })
    });
    let proofs: Vec<(u64, Vec<tlog::Hash>)> = (0..WINDOW as u64)
        .map(|i| {
            let n = (i * 7919) % VERIFY_LOG;
            (n, tree.prove(VERIFY_LOG, n).unwrap())
        })
        .collect();
    group.bench_function(CHECK, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters as usize {
                let (n, p) = &proofs[i % WINDOW];
                let leaf = leaves[*n as usize % WINDOW];
                assert!(tlog::check_inclusion(p, VERIFY_LOG, root, *n, leaf));
            }
            let t = start.elapsed();
            samples.borrow_mut().push(CHECK, iters, t);
            t
        })
    });
    group.finish();
    samples.into_inner()
}

fn report(s: &Samples) {
    let rate = |ns: f64| format!("{:.0}k/s", 1e6 / ns);
    println!();
    println!("recorder summary (median of per-sample means, per record; window {WINDOW})");
    println!(
        "{:<36} {:>12} {:>12} {:>8}",
        "bench", "median", "records/s", "samples"
    );
    for n in [
        RAW, RAW_SYNC, NO_TLOG, BATCH, ALWAYS, ONE, VERIFY, PUSH, PROVE, CHECK,
    ] {
        match s.median(n) {
            Some(m) => println!(
                "{:<36} {:>12} {:>12} {:>8}",
                n,
                fmt_ns(m),
                rate(m),
                s.count(n)
            ),
            None => println!("{n:<36} not run"),
        }
    }
    let budget = |name: &str, floor: &str, need: f64| {
        if let (Some(a), Some(f)) = (s.median(name), s.median(floor)) {
            let per_s = 1e9 / a;
            let verdict = if per_s >= need { "within" } else { "OVER" };
            println!(
                "{name}: {:.0} records/s ({verdict} the {:.0}k/s budget), {:.1}× {floor}",
                per_s,
                need / 1e3,
                a / f
            );
        }
    };
    budget(BATCH, RAW, 500e3);
    budget(VERIFY, RAW, 500e3);
    budget(ALWAYS, RAW_SYNC, 50e3);
    // The transparency log's budget: appends with it ≥ 80% of the rate without it.
    if let (Some(a), Some(f)) = (s.median(BATCH), s.median(NO_TLOG)) {
        let share = f / a;
        println!(
            "{BATCH} with the transparency log: {:.0}% of {NO_TLOG}'s rate {} (budget ≥ 80%)",
            share * 100.0,
            if share >= 0.8 { "✔" } else { "✘" }
        );
    }
    // The tree's hashing per record (done by the publisher thread, beside the appenders).
    if let (Some(a), Some(p)) = (s.median(BATCH), s.median(PUSH)) {
        println!(
            "{PUSH}: {} per record, {:.0}% of an {BATCH} record's time",
            fmt_ns(p),
            p / a * 100.0
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = benches(&mut c);
    c.final_summary();
    report(&samples);
}

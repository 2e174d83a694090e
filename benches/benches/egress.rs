//! Network through an agent's egress proxy, beside the same network used directly, in one run.
//!
//! The source is an HTTP server of the bench process on `127.0.0.1` (`agentos_benches::http`)
//! answering every request with 64 MiB from memory.
//!
//! - `floor/direct_download_64MiB`: the bench process downloads it directly (one TCP
//!   connection, `GET /`, read to the end).
//! - `agentos/proxied_download_64MiB`: a jailed `bench-agent download` does the same through
//!   its egress proxy (`HTTP_PROXY`): the kernel judges `network` on `127.0.0.1:PORT`,
//!   records the connection, forwards the request and copies the body into the agent's
//!   namespace. Timed inside the agent, N downloads per agent.
//! - `floor/direct_connect` and `agentos/proxied_connect`: a TCP connection opened and closed,
//!   beside a `CONNECT` through the proxy up to its `200` (which includes the kernel's own
//!   connect to the server and the `Egress` record). Both dial a sink on `127.0.0.1` that
//!   accepts and closes at once on one thread, so neither waits on a full accept queue.
//!
//! The kernel runs with `--egress-bytes-per-sec 0` (its default paces each agent at 256 MiB/s,
//! which would measure the budget, not the proxy).
//!
//! Budgets (issue 16): proxied throughput ≥ 70% of direct; added setup ≤ 1 ms.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::time::{Duration, Instant};

use agentos_benches::{elapsed, http, own_binary, BenchKernel, Samples, POLICY};
use criterion::Criterion;

const BODY: usize = 64 << 20;
const SAMPLE_SIZE: usize = 10;
const DOWNLOADS: u64 = 4;
const SETUPS: u64 = 200;

fn policy(server: std::net::SocketAddr, sink: std::net::SocketAddr) -> String {
    let rule = format!(
        "  - name: source\n    action: network\n    effect: allow\n    constraints:\n      hosts: [\"{}\"]\n      ports: [{}, {}]\n",
        server.ip(),
        server.port(),
        sink.port()
    );
    POLICY.replacen("policies:\n", &format!("policies:\n{rule}"), 1)
}

fn egress(c: &mut Criterion) -> Samples {
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let server = http::serve(BODY);
    let sink = http::sink();
    let kernel = BenchKernel::start_with(|c| c.egress.bytes_per_sec = 0);
    let policy = policy(server, sink);
    let addr = server.to_string();
    let sink_addr = sink.to_string();
    let size = BODY.to_string();

    let mut group = c.benchmark_group("egress");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function("floor/direct_download_64MiB", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                assert_eq!(http::download(None, server), BODY);
            }
            let t = start.elapsed();
            samples
                .borrow_mut()
                .push("floor/direct_download_64MiB", iters, t);
            t
        })
    });
    group.bench_function("agentos/proxied_download_64MiB", |b| {
        b.iter_custom(|iters| {
            let n = (iters * DOWNLOADS).to_string();
            let (_, log) = kernel.run_with(&agent, &["download", &addr, &size, &n], None, &policy);
            let t = elapsed(&log) / DOWNLOADS as u32;
            samples
                .borrow_mut()
                .push("agentos/proxied_download_64MiB", iters, t);
            t
        })
    });
    group.bench_function("floor/direct_connect", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                http::setup(None, sink);
            }
            let t = start.elapsed();
            samples.borrow_mut().push("floor/direct_connect", iters, t);
            t
        })
    });
    group.bench_function("agentos/proxied_connect", |b| {
        b.iter_custom(|iters| {
            let n = (iters * SETUPS).to_string();
            let (_, log) = kernel.run_with(&agent, &["setup", &sink_addr, &n], None, &policy);
            let t = elapsed(&log) / SETUPS as u32;
            samples
                .borrow_mut()
                .push("agentos/proxied_connect", iters, t);
            t
        })
    });
    group.finish();
    kernel.shutdown();
    samples.into_inner()
}

fn report(s: &Samples) {
    s.report_pair(
        "egress summary: 64 MiB download (median of per-sample means)",
        "floor/direct_download_64MiB",
        "agentos/proxied_download_64MiB",
        "a 64 MiB download",
        "a direct one",
    );
    if let (Some(p), Some(d)) = (
        s.median("agentos/proxied_download_64MiB"),
        s.median("floor/direct_download_64MiB"),
    ) {
        let mib = BODY as f64 / (1 << 20) as f64;
        println!(
            "throughput: proxied {:.0} MiB/s, direct {:.0} MiB/s: {:.0}% of direct (budget ≥ 70%)",
            mib / (p / 1e9),
            mib / (d / 1e9),
            100.0 * d / p
        );
    }
    s.report_pair(
        "egress summary: connection setup (median of per-sample means)",
        "floor/direct_connect",
        "agentos/proxied_connect",
        "a connection setup",
        "a direct TCP connect",
    );
    if let (Some(p), Some(d)) = (
        s.median("agentos/proxied_connect"),
        s.median("floor/direct_connect"),
    ) {
        println!(
            "added setup through the proxy: {:.0} µs (budget ≤ 1000 µs)",
            (p - d) / 1e3
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = egress(&mut c);
    report(&samples);
    c.final_summary();
}

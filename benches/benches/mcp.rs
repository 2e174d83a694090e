//! An MCP tool call through the kernel, beside a direct call to the same server.
//!
//! The server is the MCP project's reference server, `mcp-server-everything` (npm
//! `@modelcontextprotocol/server-everything`, under `/usr/bin`); its `echo` tool is called with
//! `{"message":"hi"}`.
//!
//! - `floor/direct_echo`: the bench process starts the server itself (no jail) once and calls
//!   `echo` over its stdio with the same MCP client the kernel uses (`rmcp`).
//! - `agentos/mcp_echo`: a jailed `bench-agent mcp N` calls `call_tool("everything", "echo",
//!   …)` N times (100 per criterion iteration), timed inside the agent (after one untimed
//!   call that starts its copy of the server): SDK → kernel (judged as `mcp_tool`, recorded with arguments and result) → the
//!   agent's jailed copy of the server → back.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentos_benches::{elapsed, own_binary, BenchKernel, Samples, POLICY};
use criterion::Criterion;
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;

const FLOOR: &str = "floor/direct_echo";
const AGENTOS: &str = "agentos/mcp_echo";
const SAMPLE_SIZE: usize = 20;
/// Calls per criterion iteration of the agentos row: an agent (and its copy of the server)
/// starts per sample, so each sample makes enough calls for a warm server.
const INNER: u64 = 100;

fn server() -> PathBuf {
    let p = PathBuf::from("/usr/bin/mcp-server-everything");
    assert!(
        p.exists(),
        "{} is missing: `npm install -g --prefix /usr @modelcontextprotocol/server-everything`",
        p.display()
    );
    p
}

/// The bench policy plus `everything/echo`.
fn policy() -> String {
    let rule = "  - name: echo\n    action: mcp_tool\n    effect: allow\n    constraints:\n      tools: [\"everything/echo\"]\n";
    POLICY.replacen("policies:\n", &format!("policies:\n{rule}"), 1)
}

fn mcp(c: &mut Criterion) -> Samples {
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let decl = format!("everything={}", server().display());
    let kernel = BenchKernel::start_with(|c| {
        c.mcp
            .push(agentos_kernel::mcp::McpServer::parse(&decl).expect("--mcp"));
    });
    let policy = policy();

    // The floor: one server of our own, no jail.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut child = tokio::process::Command::new(server());
    child
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let (service, _child) = rt.block_on(async {
        let mut child = child.spawn().expect("start mcp-server-everything");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let service = ().serve((stdout, stdin)).await.expect("MCP handshake");
        (service, child)
    });
    let args = serde_json::json!({"message": "hi"})
        .as_object()
        .cloned()
        .unwrap();

    let mut group = c.benchmark_group("mcp");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function(FLOOR, |b| {
        b.iter_custom(|iters| {
            let t = rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let params = CallToolRequestParams::new("echo").with_arguments(args.clone());
                    service.peer().call_tool(params).await.expect("echo");
                }
                start.elapsed()
            });
            samples.borrow_mut().push(FLOOR, iters, t);
            t
        })
    });
    group.bench_function(AGENTOS, |b| {
        b.iter_custom(|iters| {
            let n = (iters * INNER).to_string();
            let (_, log) = kernel.run_with(&agent, &["mcp", &n], None, &policy);
            let t = elapsed(&log) / INNER as u32;
            samples.borrow_mut().push(AGENTOS, iters, t);
            t
        })
    });
    group.finish();
    kernel.shutdown();
    samples.into_inner()
}

fn report(s: &Samples) {
    s.report_pair(
        "mcp summary (median of per-sample means, per call of everything/echo)",
        FLOOR,
        AGENTOS,
        "MCP tool call",
        "a direct call",
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = mcp(&mut c);
    c.final_summary();
    report(&samples);
}

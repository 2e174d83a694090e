//! DESIGN §10 isolation: while one agent attacks the kernel, another keeps its p99 round trip
//! within 5 ms. One run measures the neighbour idle (the floor) and under each attack of the
//! DoS suite (`tests/tests/dos.rs`), side by side.
//!
//! - `isolation/idle`: `bench-agent victim N` (N `Stat /mem/working` round trips through the
//!   blocking SDK, each timed by the agent) on an in-process kernel with nothing else running.
//! - `isolation/<attack>`: the same while `bench-agent dos <attack>` (a real jailed attacker,
//!   `agentos_tests::dos_modes`) runs beside it; the attacker is started before the group's
//!   samples and killed after them.
//!
//! Criterion reports the neighbour's mean round trip per sample; the summary table adds the
//! p50/p99/max the agent measured per call (medians over the samples) and checks the p99
//! against the budget.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentos_benches::{median, own_binary, BenchKernel, POLICY, WORKSPACE_POLICY};
use criterion::Criterion;

/// The neighbour's p99 budget (DESIGN §10).
const P99_BUDGET_US: f64 = 5_000.0;

const ZERO_PERMISSION: &str =
    "---\nkernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies: []\n---\n";

/// One attack: its name, the attacker's policy, its argv after `bench-agent`, and whether it
/// needs the FIFO workspace.
struct Attack {
    name: &'static str,
    policy: &'static str,
    args: &'static [&'static str],
    workspace: bool,
}

const ATTACKS: &[Attack] = &[
    Attack {
        name: "fifo",
        policy: WORKSPACE_POLICY,
        args: &["dos", "fifo", "/workspace/fifo"],
        workspace: true,
    },
    Attack {
        name: "long-path",
        policy: POLICY,
        args: &["dos", "long-path"],
        workspace: false,
    },
    Attack {
        name: "big-exec",
        policy: POLICY,
        args: &["dos", "big-exec"],
        workspace: false,
    },
    Attack {
        name: "pipeline",
        policy: POLICY,
        args: &["dos", "pipeline"],
        workspace: false,
    },
    Attack {
        name: "long-names",
        policy: POLICY,
        args: &["dos", "long-names"],
        workspace: false,
    },
    Attack {
        name: "checkpolicy-flood",
        policy: ZERO_PERMISSION,
        args: &["dos", "checkpolicy-flood"],
        workspace: false,
    },
    Attack {
        name: "stdout-flood",
        policy: ZERO_PERMISSION,
        args: &["dos", "stdout-flood"],
        workspace: false,
    },
    Attack {
        name: "scratch-fill",
        policy: ZERO_PERMISSION,
        args: &["dos", "scratch-fill"],
        workspace: false,
    },
    Attack {
        name: "checkpoint-flood",
        policy: ZERO_PERMISSION,
        args: &["dos", "checkpoint-flood"],
        workspace: false,
    },
];

/// `(p50, p99, max)` in µs of every sample of one bench.
type Tails = Vec<(f64, f64, f64)>;

/// Runs the neighbour for `iters` round trips; returns its own total and records its tails.
fn victim(k: &BenchKernel, agent: &Path, iters: u64, tails: &RefCell<Tails>) -> Duration {
    let n = iters.max(50).to_string();
    let (_, log) = k.run(agent, &["victim", &n]);
    let line = log
        .lines()
        .find(|l| l.starts_with("victim n="))
        .unwrap_or_else(|| panic!("the victim printed no result: {log}"));
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in `{line}`"))
    };
    tails
        .borrow_mut()
        .push((field("p50_us="), field("p99_us="), field("max_us=")));
    // Report per requested iteration, whatever minimum the victim ran.
    let per_call = field("total_ns=") / iters.max(50) as f64;
    Duration::from_nanos((per_call * iters as f64) as u64)
}

fn fifo_workspace() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(ws.join("fifo"))
        .status()
        .expect("mkfifo");
    assert!(status.success(), "mkfifo failed");
    (root, ws)
}

fn main() {
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let k = BenchKernel::start();
    let (_ws_root, ws) = fifo_workspace();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut table: Vec<(String, Tails)> = Vec::new();
    {
        let tails = RefCell::new(Tails::new());
        let mut g = c.benchmark_group("isolation");
        g.bench_function("idle", |b| {
            b.iter_custom(|iters| victim(&k, &agent, iters, &tails))
        });
        g.finish();
        table.push(("idle".into(), tails.into_inner()));
    }
    for a in ATTACKS {
        let attacker = k.start_agent(
            &agent,
            a.args,
            a.workspace.then_some(ws.as_path()),
            a.policy,
        );
        k.wait_for_line(&attacker, "attacking");
        let tails = RefCell::new(Tails::new());
        let mut g = c.benchmark_group("isolation");
        g.bench_function(a.name, |b| {
            b.iter_custom(|iters| victim(&k, &agent, iters, &tails))
        });
        g.finish();
        k.end(&attacker);
        table.push((a.name.into(), tails.into_inner()));
    }
    k.shutdown();

    println!("\nisolation: the neighbour's round trip, idle and under each attack (medians over samples; warm-up samples included)");
    println!(
        "{:<20} {:>10} {:>10} {:>10}  p99 ≤ {} µs",
        "attack", "p50 µs", "p99 µs", "max µs", P99_BUDGET_US
    );
    for (name, tails) in &table {
        let col = |f: fn(&(f64, f64, f64)) -> f64| {
            median(&tails.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
        };
        let (p50, p99, max) = (col(|t| t.0), col(|t| t.1), col(|t| t.2));
        println!(
            "{name:<20} {p50:>10.0} {p99:>10.0} {max:>10.0}  {}",
            if p99 <= P99_BUDGET_US { "ok" } else { "OVER" }
        );
    }
    c.final_summary();
}

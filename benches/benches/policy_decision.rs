//! Issue budget (performance at scale): a policy decision ≤ 0.5 µs (median) at 50 rules and
//! ≤ 3 µs at 1,000 rules (DESIGN §10 asks ≤ 1 µs at 50).
//!
//! For generated 5-, 50- and 1,000-rule policies (file_read/file_write rules with path globs
//! under many directories, a few deny rules, api_call rules with hosts, code_execution rules
//! with commands), each group measures `Policy::decide` (the index: per action, then per path
//! prefix, program or host) beside its floor, `Policy::decide_unindexed` (a plain loop over
//! the same rules). One op is one decision; the ops cycle through a fixed mix of requests:
//! reads and writes that an allow rule admits, an API call, a command, and two refusals (a
//! deny rule's, and a default deny naming the nearest allow rules). A summary with the
//! budgets follows criterion's output.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

use agentos_benches::{fmt_ns, Samples};
use agentos_policy::{Access, Policy, Request};
use criterion::Criterion;

/// Samples per bench (criterion's and the summary's).
const SAMPLE_SIZE: usize = 100;
/// The rule counts measured, with their budget (ns per decision) where the issue sets one.
const SIZES: [(usize, Option<f64>); 3] = [(5, None), (50, Some(500.0)), (1000, Some(3000.0))];

/// A policy of exactly `n` rules (n ≥ 5).
fn policy_text(n: usize) -> String {
    let mut s = String::from(
        "# Generated bench policy\n\n```yaml\nkernel: {version: \"1.0\", mode: strict}\nsignals: [SIGSTOP, SIGINT]\npolicies:\n",
    );
    for base in [
        r#"{name: read-workspace, action: file_read, effect: allow, mode: read_only, constraints: {paths: ["/workspace/**"], deny_patterns: ['\.env$']}}"#,
        r#"{name: write-src, action: file_write, effect: allow, rate_limit: 30/minute, constraints: {paths: ["/workspace/src/**"], max_bytes: 1MiB}}"#,
        r#"{name: github, action: api_call, effect: allow, constraints: {hosts: [api.github.com, "*.githubusercontent.com"]}}"#,
        r#"{name: git, action: code_execution, effect: allow, constraints: {commands: [git, cargo]}}"#,
        r#"{name: no-secrets, action: "*", effect: deny, constraints: {paths: ["/workspace/secrets/**"]}}"#,
    ] {
        writeln!(s, "  - {base}").unwrap();
    }
    for i in 5..n {
        let d = i / 10;
        let line = match i % 10 {
            0..=2 => format!("  - {{name: r{i}, action: file_read, effect: allow, constraints: {{paths: [\"/data/d{d}/k{i}/**\", \"/mem/d{d}/k{i}/*\"]}}}}"),
            3..=5 => format!("  - {{name: w{i}, action: file_write, effect: allow, constraints: {{paths: [\"/data/d{d}/out{i}/**\"], max_bytes: 65536}}}}"),
            6 => format!("  - {{name: api{i}, action: api_call, effect: allow, rate_limit: 100/hour, constraints: {{hosts: [\"api{i}.example.com\", \"*.svc{i}.internal\"]}}}}"),
            7 => format!("  - {{name: exec{i}, action: code_execution, effect: allow, constraints: {{commands: [\"tool{i}\", \"/opt/bin/t{i}*\"]}}}}"),
            8 => format!("  - {{name: deny{i}, action: file_write, effect: deny, constraints: {{paths: [\"/data/d{d}/out{}/locked/**\"]}}}}", i - 3),
            _ => format!("  - {{name: log{i}, action: file_read, effect: allow, constraints: {{paths: [\"/data/d{d}/**/*.log\"], log: true}}}}"),
        };
        writeln!(s, "{line}").unwrap();
    }
    s.push_str("```\n");
    s
}

fn requests(n: usize) -> Vec<(String, String, Access, u64)> {
    // A generated directory in the middle of the file, when there is one.
    let mid = (n / 2 / 10) * 10;
    let (read, write) = if n > 10 {
        (
            format!("/data/d{}/k{mid}/part-7.csv", mid / 10),
            format!("/data/d{}/out{}/report.json", mid / 10, mid + 3),
        )
    } else {
        (
            "/workspace/docs/guide.md".to_string(),
            "/workspace/src/main.rs".to_string(),
        )
    };
    vec![
        ("file_read".into(), read, Access::Read, 0),
        ("file_write".into(), write, Access::Write, 4096),
        (
            "file_read".into(),
            "/workspace/src/lib.rs".into(),
            Access::Read,
            0,
        ),
        (
            "api_call".into(),
            "https://api.github.com/repos/x/y".into(),
            Access::Read,
            0,
        ),
        (
            "code_execution".into(),
            "git status --short".into(),
            Access::Read,
            0,
        ),
        (
            "file_write".into(),
            "/workspace/src/engine/mod.rs".into(),
            Access::Write,
            2000,
        ),
        (
            "file_read".into(),
            "/workspace/.env".into(),
            Access::Read,
            0,
        ),
        (
            "file_write".into(),
            "/workspace/secrets/key".into(),
            Access::Write,
            10,
        ),
    ]
}

/// `Policy::decide` or its floor.
type Decide = fn(&Policy, &Request<'_>) -> agentos_policy::Decision;

fn name(n: usize, bench: &str) -> String {
    format!("policy_decision/{n}_rules/{bench}")
}

fn policy_decision(c: &mut Criterion) -> Samples {
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    for (n, _) in SIZES {
        let policy = Policy::parse("bench.md", &policy_text(n)).expect("generated policy loads");
        assert_eq!(policy.rules().len(), n);
        let owned = requests(n);
        let reqs: Vec<Request<'_>> = owned
            .iter()
            .map(|(a, r, access, bytes)| Request {
                action: a,
                resource: r,
                access: *access,
                bytes: *bytes,
                now_ms: 0,
            })
            .collect();
        // The mix is what the docs say it is, and both paths agree on it.
        let allowed: Vec<bool> = reqs.iter().map(|r| policy.decide(r).allowed).collect();
        assert_eq!(allowed, [true, true, true, true, true, true, false, false]);
        for r in &reqs {
            assert_eq!(policy.decide(r), policy.decide_unindexed(r));
        }

        let mut group = c.benchmark_group(format!("policy_decision/{n}_rules"));
        group
            .sample_size(SAMPLE_SIZE)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let subjects: [(&str, Decide); 2] = [
            ("decide", Policy::decide),
            ("floor/decide_unindexed", Policy::decide_unindexed),
        ];
        for (bench, decide) in subjects {
            group.bench_function(bench, |b| {
                b.iter_custom(|iters| {
                    let mut i = 0;
                    let start = Instant::now();
                    for _ in 0..iters {
                        i = (i + 1) % reqs.len();
                        black_box(decide(&policy, black_box(&reqs[i])));
                    }
                    let t = start.elapsed();
                    samples.borrow_mut().push(&name(n, bench), iters, t);
                    t
                })
            });
        }
        group.finish();
    }
    samples.into_inner()
}

fn report(s: &Samples) {
    println!();
    println!("policy_decision summary (median of per-sample means, per decision)");
    println!(
        "{:>6} {:>12} {:>12} {:>8}  budget",
        "rules", "decide", "floor", "ratio"
    );
    for (n, budget) in SIZES {
        let (Some(d), Some(f)) = (
            s.median(&name(n, "decide")),
            s.median(&name(n, "floor/decide_unindexed")),
        ) else {
            println!("{n:>6} not run");
            continue;
        };
        let verdict = budget.map_or_else(String::new, |b| {
            let mark = if d <= b { "✔" } else { "✘" };
            format!("≤ {} {mark}", fmt_ns(b))
        });
        println!(
            "{n:>6} {:>12} {:>12} {:>7.2}×  {verdict}",
            fmt_ns(d),
            fmt_ns(f),
            d / f
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = policy_decision(&mut c);
    c.final_summary();
    report(&samples);
}

//! DESIGN §10: a policy decision ≤ 1 µs (median) for a 50-rule file.
//!
//! For generated 5-, 50- and 1,000-rule policies (file_read/file_write rules with path globs
//! under many directories, a few deny rules, api_call rules with hosts, code_execution rules
//! with commands), each group measures `Policy::decide` (the per-action, per-path-prefix
//! index) beside its floor, `Policy::decide_unindexed` (a plain loop over the same rules).
//! One op is one decision; the ops cycle through a fixed mix of requests: reads and writes
//! that an allow rule admits, an API call, a command, and two that a deny rule refuses.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

use agentos_policy::{Access, Policy, Request};
use criterion::{criterion_group, criterion_main, Criterion};

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

fn policy_decision(c: &mut Criterion) {
    for n in [5usize, 50, 1000] {
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
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("decide", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % reqs.len();
                black_box(policy.decide(black_box(&reqs[i])))
            })
        });
        group.bench_function("floor/decide_unindexed", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % reqs.len();
                black_box(policy.decide_unindexed(black_box(&reqs[i])))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, policy_decision);
criterion_main!(benches);

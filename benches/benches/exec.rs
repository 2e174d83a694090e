//! `Exec` of `/bin/true` through the kernel, beside a plain fork + exec of `/bin/true`.
//!
//! - `floor/fork_exec_true`: `std::process::Command::new("/bin/true").status()` from the bench
//!   process: fork + exec + wait, no jail.
//! - `agentos/exec_true`: a jailed `bench-agent exec N` times N `Exec { argv: ["/bin/true"] }`
//!   calls; each is judged by the policy, recorded, and runs `/bin/true` in a jail of its own
//!   (its init cloned by the kernel's zygote, user/pid/ipc/uts/mount/net namespaces, minimal
//!   root, landlock, seccomp, rlimits, the agent's cgroup, a fresh scratch dir) before its
//!   answer comes back. The time
//!   is measured inside the agent, so the agent's own spawn is not in it.
//!
//! The summary ends with the budget line: `Exec` ≤ 3× the plain fork+exec of the same run.

// Bench code: a failure must abort the run loudly, so unwrap/expect are intended here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::time::Duration;

use agentos_benches::{fork_exec_true, own_binary, BenchKernel, Samples};
use criterion::Criterion;

const FLOOR: &str = "floor/fork_exec_true";
const AGENTOS: &str = "agentos/exec_true";
const SAMPLE_SIZE: usize = 20;

fn exec(c: &mut Criterion) -> Samples {
    let agent = own_binary(env!("CARGO_BIN_EXE_bench-agent"));
    let samples = RefCell::new(Samples::new(SAMPLE_SIZE));
    let kernel = BenchKernel::start();

    let mut group = c.benchmark_group("exec");
    group
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function(FLOOR, |b| {
        b.iter_custom(|iters| {
            let t = fork_exec_true(iters);
            samples.borrow_mut().push(FLOOR, iters, t);
            t
        })
    });
    group.bench_function(AGENTOS, |b| {
        b.iter_custom(|iters| {
            let t = kernel.exec_true(&agent, iters);
            samples.borrow_mut().push(AGENTOS, iters, t);
            t
        })
    });
    group.finish();
    kernel.shutdown();
    samples.into_inner()
}

/// DESIGN §10 (issue 18): an `Exec` of `/bin/true` costs at most this many plain fork+execs.
const BUDGET: f64 = 3.0;

fn report(s: &Samples) {
    s.report_pair(
        "exec summary (median of per-sample means, per run of /bin/true)",
        FLOOR,
        AGENTOS,
        "Exec of /bin/true",
        "a plain fork+exec",
    );
    if let (Some(a), Some(f)) = (s.median(AGENTOS), s.median(FLOOR)) {
        let ratio = a / f;
        println!(
            "budget: Exec ≤ {BUDGET}× a plain fork+exec: {ratio:.1}× {}",
            if ratio <= BUDGET { "✔" } else { "✘" }
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let samples = exec(&mut c);
    c.final_summary();
    report(&samples);
}

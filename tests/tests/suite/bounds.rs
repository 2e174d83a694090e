//! Every agent-controlled size is bounded before work starts, every operation is linear, and
//! each agent's kernel memory has a byte budget — proven from inside real jailed agents
//! (modes in `agentos_tests::bounds_modes`), with a root kernel and an unprivileged one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{wait_until, write_policy, TestKernel};

/// Kernel memory from `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
fn kernel_mem(pid: u32, field: &str) -> u64 {
    try_kernel_mem(pid, field).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn try_kernel_mem(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(kb << 10)
}

/// `bound NAME: KIND MS` lines of the agent's log.
fn bounds_answers(k: &TestKernel, id: u64) -> BTreeMap<String, (String, u64)> {
    k.wait_for_line(id, "bounds done");
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    log.lines()
        .filter_map(|l| l.strip_prefix("bound "))
        .filter_map(|l| {
            let (name, rest) = l.split_once(": ")?;
            let (kind, ms) = rest.split_once(' ')?;
            Some((name.to_string(), (kind.to_string(), ms.parse().ok()?)))
        })
        .collect()
}

/// The syscalls of agent `id` the recorder holds as refused by rule `limits`, by name.
fn limit_refusals(k: &TestKernel, id: u64) -> Vec<String> {
    k.records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            RecordEvent::Syscall { call, decision, .. } if decision.rule == "limits" => {
                assert!(!decision.allowed && !decision.violation, "{decision:?}");
                Some(call.name().to_string())
            }
            _ => None,
        })
        .collect()
}

fn over_limit_calls(unprivileged: bool) {
    let k = if unprivileged {
        TestKernel::start_unprivileged()
    } else {
        TestKernel::start()
    };
    let policy = write_policy(&k.work, "bounds", "strict", &[], "");
    let id = k.spawn(&policy, &["bounds-calls"]);
    let answers = bounds_answers(&k, id);
    let want = [
        ("path-5000", "InvalidArgument"),
        ("name-300", "InvalidArgument"),
        ("path-1mib", "InvalidArgument"),
        ("argv-count", "InvalidArgument"),
        ("argv-bytes", "TooLarge"),
        ("arg-strlen", "TooLarge"),
        ("check-action", "InvalidArgument"),
        ("check-resource", "InvalidArgument"),
        ("call-action", "InvalidArgument"),
        ("call-params", "TooLarge"),
        ("ok", "ok"),
    ];
    let got: Vec<(&str, &str)> = want
        .iter()
        .map(|(name, _)| {
            let kind = answers.get(*name).map_or("missing", |(k, _)| k.as_str());
            (*name, kind)
        })
        .collect();
    assert_eq!(got, want.to_vec(), "answers: {answers:?}");
    // Refused before any work: a 1 MiB path is answered at once (it took ~12 s of quadratic
    // work before the bounds), and so is every other over-limit call.
    for (name, (_, ms)) in &answers {
        assert!(*ms < 3000, "{name} took {ms} ms");
    }
    // Each refusal is recorded, not a violation (the agent runs on in strict mode).
    let mut recorded = limit_refusals(&k, id);
    recorded.sort();
    let mut expected = vec![
        "write",
        "write",
        "write",
        "exec",
        "exec",
        "exec",
        "check_policy",
        "check_policy",
        "call",
        "call",
    ];
    expected.sort();
    assert_eq!(recorded, expected);
    assert_eq!(k.wait(id)["exit"]["code"], 0, "the agent ended on its own");
}

#[test]
fn over_limit_calls_are_refused_promptly_and_recorded() {
    over_limit_calls(false);
}

#[test]
fn over_limit_calls_are_refused_by_an_unprivileged_kernel_too() {
    over_limit_calls(true);
}

/// One frame of 15 million empty `Exec` arguments (15 MiB, within the frame limit): decoded
/// unbounded it costs 360 MiB of `String`s; bounded, the decoder keeps 4097 and the call is
/// refused like any argv over the limit.
#[test]
fn a_frame_of_millions_of_empty_arguments_is_refused_without_the_memory() {
    let k = TestKernel::start();
    let pid = k.kernel_pid();
    let policy = write_policy(&k.work, "raw", "strict", &[], "");
    let before = kernel_mem(pid, "VmRSS");
    let id = k.spawn(&policy, &["bounds-raw-argv", "15000000"]);
    let line = k.wait_for_line(id, "raw-argv: ");
    assert!(line.starts_with("raw-argv: InvalidArgument "), "{line}");
    let ms: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(ms < 5000, "refused after {ms} ms");
    let peak = kernel_mem(pid, "VmHWM");
    assert!(
        peak < before + (96 << 20),
        "the kernel's peak RSS grew from {before} to {peak} bytes"
    );
    assert_eq!(limit_refusals(&k, id), vec!["exec"]);
}

/// An agent pipelines reads of a 1 MiB file and never reads an answer: the kernel stops
/// reading its socket once the agent's memory budget (8 MiB here) is spent, so its RSS does
/// not grow with the flood, and another agent keeps being answered meanwhile.
fn unread_answers_are_bounded(unprivileged: bool) {
    let budget: u64 = 8 << 20;
    let k = TestKernel::start_with(unprivileged, &["--agent-memory-bytes", &budget.to_string()]);
    let pid = k.kernel_pid();
    let policy = write_policy(&k.work, "flood", "strict", &[], "");
    let steady = k.spawn(&policy, &["spin", "print"]);
    k.wait_for_line(steady, "n 100");
    let before = kernel_mem(pid, "VmRSS");
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let Some(rss) = try_kernel_mem(pid, "VmRSS") else {
                    return;
                };
                peak.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let flood = k.spawn(&policy, &["bounds-flood", "1048576", "300"]);
    k.wait_for_line(flood, "flooding");
    let syscalls = |id: u64| k.info(id)["syscalls"].as_u64().unwrap_or(0);
    wait_until("the flood's first answered reads", || syscalls(flood) >= 3);
    // The other agent keeps being answered while the flood is held back.
    let n_now = {
        let log = k.ctl_ok(&["logs", &steady.to_string()]);
        log.lines()
            .filter_map(|l| l.strip_prefix("n "))
            .filter_map(|v| v.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    k.wait_for_line(steady, &format!("n {}", n_now + 300));
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let answered = syscalls(flood);
    // 1 write + at most budget / (1 MiB + a small answer's reservation) reads.
    assert!(
        answered <= 1 + (budget >> 20),
        "the kernel read {answered} of the flood's calls past its budget"
    );
    let grown = peak.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        grown < budget + (48 << 20),
        "the kernel grew by {grown} bytes under the flood"
    );
    // The operator is answered, and the held-back agent can still be ended: its stuck
    // connection blocks nothing but itself.
    let t = std::time::Instant::now();
    k.ctl_ok(&["ps"]);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "ps took {:?}",
        t.elapsed()
    );
    k.ctl_ok(&["kill", &flood.to_string()]);
    assert_eq!(k.wait(flood)["exit"]["signal"], "SIGKILL");
    k.wait_for_line(steady, &format!("n {}", n_now + 400));
}

#[test]
fn unread_answers_are_bounded_by_the_memory_budget() {
    unread_answers_are_bounded(false);
}

#[test]
fn unread_answers_are_bounded_by_an_unprivileged_kernel_too() {
    unread_answers_are_bounded(true);
}

/// Long names in working memory are charged to the quota (path + 64 bytes per file): with a
/// 64 KiB quota, empty files under 753-byte paths run out after ~80, not at the 4096-file
/// limit.
fn long_names_are_charged(unprivileged: bool) {
    let k = TestKernel::start_with(unprivileged, &["--quota-bytes", "65536"]);
    let policy = write_policy(&k.work, "names", "strict", &[], "");
    let id = k.spawn(&policy, &["bounds-names", "250"]);
    let line = k.wait_for_line(id, "names: ");
    let mut parts = line.split_whitespace().skip(1);
    let count: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap();
    assert_eq!(parts.next(), Some("QuotaExceeded"), "{line}");
    let per_file = 3 * 250 + 3 + 64;
    assert_eq!(count, 65536 / per_file, "{line}");
}

#[test]
fn long_names_in_working_memory_are_charged_to_the_quota() {
    long_names_are_charged(false);
}

#[test]
fn long_names_are_charged_by_an_unprivileged_kernel_too() {
    long_names_are_charged(true);
}

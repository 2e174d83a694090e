//! The operator's event hook (`--on-event`): a call waiting for approval runs it with that
//! call as JSON; a hook that hangs delays no agent; a hook that fails is recorded.

use std::path::Path;

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{shell_script, wait_until, write_policy, TestKernel};
use serde_json::Value;

const GATED: &str = "  - name: gated\n    action: file_write\n    effect: allow\n    requires_approval: true\n    constraints:\n      paths: [\"/mem/working/gated/**\"]\n";

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn an_approval_pending_runs_the_hook_with_the_call() {
    let (dir, program) = shell_script(&format!(
        "[ \"$AGENTOS_EVENT\" = approval_pending ] || exit 0\ncat >> {}/events.jsonl",
        "$(dirname \"$0\")"
    ));
    let events = dir.path().join("events.jsonl");
    let k = TestKernel::start_with(false, &["--on-event", program.to_str().expect("utf-8")]);
    let policy = write_policy(&k.work, "gated", "strict", &[], GATED);
    let id = k.spawn_with(
        &policy,
        &["--name", "builder"],
        &["write", "/mem/working/gated/report\u{1b}[2J"],
    );
    wait_until("the hook to hear of the approval", || {
        !lines(&events).is_empty()
    });
    let e = &lines(&events)[0];
    assert_eq!(e["v"], 1, "{e}");
    assert_eq!(e["event"], "approval_pending", "{e}");
    assert_eq!(e["agent"]["id"], id, "{e}");
    assert_eq!(e["agent"]["name"], "builder", "{e}");
    assert_eq!(e["action"], "file_write", "{e}");
    assert_eq!(e["resource"], "/mem/working/gated/report\u{1b}[2J", "{e}");
    assert!(
        e["rule"].as_str().is_some_and(|r| r.contains("gated.md:")),
        "{e}"
    );
    let approval = e["approval"].as_u64().expect("approval id").to_string();
    k.ctl_ok(&["approve", &approval]);
    assert_eq!(k.wait_for_line(id, "wrote"), "wrote 4");
    // The raw line escapes the control characters the agent chose.
    let raw = std::fs::read_to_string(&events).expect("events");
    assert!(
        raw.contains("\\u001b[2J") && !raw.contains('\u{1b}'),
        "{raw}"
    );
}

#[test]
fn a_hanging_hook_delays_no_agent_and_a_failing_one_is_recorded() {
    let (dir, hanging) = shell_script("echo $$ >> \"$(dirname \"$0\")/pids\"\nexec sleep 1000");
    let k = TestKernel::start_with(
        false,
        &[
            "--on-event",
            hanging.to_str().expect("utf-8"),
            "--on-event-timeout-ms",
            "600000",
        ],
    );
    let policy = write_policy(&k.work, "loose", "permissive", &[], "");
    // Every call below is a violation, each an event for the hook, which never returns.
    let mut steps = vec!["script".to_string()];
    steps.extend((0..20).map(|i| format!("write:/mem/episodic/x{i}=1")));
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let id = k.spawn(&policy, &steps);
    let end = k.wait(id);
    assert_eq!(end["exit"]["code"], 0, "{end}");
    assert_eq!(end["syscalls"], 20, "{end}");
    // The agent is done while the first hook still runs: nothing waited for it.
    let pids = std::fs::read_to_string(dir.path().join("pids")).expect("the hook ran");
    let first: u32 = pids
        .lines()
        .next()
        .and_then(|l| l.parse().ok())
        .expect("pid");
    assert!(
        Path::new(&format!("/proc/{first}")).exists(),
        "the hanging hook ended before the agent did"
    );
    drop(k);

    let (_dir, failing) = shell_script("exit 3");
    let k = TestKernel::start_with(false, &["--on-event", failing.to_str().expect("utf-8")]);
    let policy = write_policy(&k.work, "loose", "permissive", &[], "");
    let id = k.spawn(&policy, &["write", "/mem/episodic/x"]);
    assert_eq!(k.wait_for_line(id, "wrote"), "wrote 4");
    wait_until("the hook's failure to be recorded", || {
        k.records().iter().any(|r| {
            matches!(&r.event, RecordEvent::HookFailed { event, why }
                if event == "violation" && why.contains("exit status: 3"))
        })
    });
}

/// An agent that floods the hook's queue with violations while the hook is busy cannot make
/// the kernel write a record per dropped event, nor hold more than the queue: the agent is
/// served at once, and when the runner catches up the drops are one `HookFailed` with their
/// count.
#[test]
fn a_flood_of_events_is_dropped_and_told_once_not_recorded_per_event() {
    const CALLS: u64 = 1000;
    // Each run hangs until the kernel kills it after 3 s: meanwhile the queue fills.
    let (_dir, slow) = shell_script("exec sleep 1000");
    let k = TestKernel::start_with(
        false,
        &[
            "--on-event",
            slow.to_str().expect("utf-8"),
            "--on-event-timeout-ms",
            "3000",
        ],
    );
    let policy = write_policy(&k.work, "loose", "permissive", &[], "");
    let id = k.spawn(&policy, &["burst", &CALLS.to_string(), "/mem/episodic/x"]);
    k.wait_for_line(id, "burst done");
    let hook_failed = |k: &TestKernel| -> Vec<(String, String)> {
        k.records()
            .into_iter()
            .filter_map(|r| match r.event {
                RecordEvent::HookFailed { event, why } => Some((event, why)),
                _ => None,
            })
            .collect()
    };
    // Before the first run is killed, nothing about the drops is written.
    let before = hook_failed(&k);
    wait_until("the drops to be told", || {
        hook_failed(&k).iter().any(|(e, _)| e == "dropped")
    });
    let after = hook_failed(&k);
    let (_, why) = after
        .iter()
        .find(|(e, _)| e == "dropped")
        .expect("a dropped record");
    let dropped: u64 = why
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{why}"));
    // The queue held 256 and the runner one; every other event was dropped, and said once.
    assert!(
        (CALLS / 2..=CALLS - 257).contains(&dropped),
        "{dropped} dropped of {CALLS}: {why}"
    );
    assert!(
        after.len() <= before.len() + 3,
        "one record for the drops and one per killed run, not one per event: {after:?}"
    );
    assert!(
        after.iter().filter(|(e, _)| e == "dropped").count() == 1,
        "{after:?}"
    );
}

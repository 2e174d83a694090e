//! Every syscall this kernel serves, from a real jailed agent, and the async client with many
//! requests in flight on one connection.

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{write_policy, TestKernel};

#[test]
fn every_served_syscall_answers_as_documented() {
    let k = TestKernel::start();
    let signal_rule = "  - name: signal-peers\n    action: signal\n    effect: allow\n";
    let policy = write_policy(
        &k.work,
        "tour",
        "strict",
        &["SIGUSR1", "SIGTERM"],
        signal_rule,
    );
    let target = k.spawn(&policy, &["park"]);
    k.wait_for_line(target, "ready");
    let id = k.spawn(&policy, &["tour", &target.to_string()]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    let lines: Vec<&str> = log.lines().collect();
    let expected = [
        "write: ok 5",
        "append: ok 1",
        "read: ok hello!",
        "read_at: ok ell",
        "stat: ok File 6",
        "list: ok b.txt",
        "create_new: err AlreadyExists",
        "check_allowed: ok true working-rw (",
        "check_denied: ok false ",
        "unlink: ok ",
        "stat_gone: err NotFound",
        "recv: err TimedOut",
        "checkpoint: ok 1",
        "close: err BadDescriptor",
        "raw_exit: ok Done",
        "signal: ok ",
        "signal_missing: err NotFound",
        "tour done",
    ];
    assert_eq!(lines.len(), expected.len(), "{log}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "expected `{want}…`, got `{line}`\n{log}"
        );
    }
    // A dry-run check of a denied action is never a violation: the agent ran to the end.
    assert_eq!(last["denied"], 0, "{last}");
    // The signal reached the other agent (counted and recorded with its source).
    assert_eq!(k.info(target)["signals"], 1);
    let from_agent = k.records().into_iter().any(|r| {
        r.agent.map(|a| a.0) == Some(target)
            && matches!(&r.event, RecordEvent::Signal { source, delivered: true, .. } if source == &format!("agent {id}"))
    });
    assert!(
        from_agent,
        "the agent-to-agent signal must be recorded with its source"
    );
    k.ctl_ok(&["kill", &target.to_string()]);
}

#[test]
fn async_client_keeps_many_requests_in_flight() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "async", "strict", &[], "");
    let id = k.spawn(&policy, &["async-burst", "64"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    assert!(k
        .ctl_ok(&["logs", &id.to_string()])
        .contains("async ok 64/64"));
    assert_eq!(k.info(id)["syscalls"], 128);
}

/// Hundreds of calls pipelined on one connection behind a call that waits (a `Recv` with a
/// timeout): each is answered exactly once under its own id, none waits for the `Recv`, and
/// each is in the flight recorder once, with its answer — whether the kernel answered it on
/// the connection's own task or on a task of its own.
#[test]
fn pipelined_calls_are_each_answered_once_and_recorded_and_a_waiting_call_holds_up_none() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "pipeline", "strict", &[], "");
    let id = k.spawn(&policy, &["pipeline-order", "300"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let logs = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(
        logs.contains("pipeline answers=601 dups=0 strays=0 ok=600 recv_last=true"),
        "{logs}"
    );
    let mut ids: Vec<u64> = k
        .records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            RecordEvent::Syscall { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=601).collect::<Vec<u64>>());
}

#[test]
fn kernel_stop_sends_sigterm_to_agents_and_records_its_end() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "stop", "strict", &["SIGTERM"], "");
    let id = k.spawn(&policy, &["term-handler"]);
    k.wait_for_line(id, "ready");
    let log_path = k.info(id)["log"].as_str().unwrap().to_string();
    k.ctl_ok(&["kernel", "stop"]);
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(
        log.contains("handler ran for SIGTERM (kernel shutdown)"),
        "{log}"
    );
    assert!(log.contains("clean shutdown"), "{log}");
    let records = k.records();
    let exit = records.iter().find_map(|r| match &r.event {
        RecordEvent::Exit { status } if r.agent.map(|a| a.0) == Some(id) => Some(status.clone()),
        _ => None,
    });
    assert_eq!(exit, Some(agentos_syscalls::control::ExitStatus::Code(0)));
    assert!(matches!(
        records.last().map(|r| &r.event),
        Some(RecordEvent::KernelStop { .. })
    ));
}

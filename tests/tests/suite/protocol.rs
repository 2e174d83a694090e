//! Protocol violations from inside a real sandboxed agent: refused, recorded, and the kernel
//! keeps serving; in strict mode the agent ends with SIGTRUST.

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{write_policy, TestKernel};

fn violations(k: &TestKernel, id: u64) -> Vec<String> {
    k.records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            RecordEvent::ProtocolViolation { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

fn abuse(mode: &str, how: &str) -> (TestKernel, u64, serde_json::Value, String) {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "proto", mode, &["SIGTERM"], "");
    let id = k.spawn(&policy, &["raw", how]);
    let last = k.wait(id);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    // The kernel keeps serving: a well-behaved agent still runs to completion.
    let echo = k.spawn(&policy, &["echo"]);
    assert_eq!(
        k.wait(echo)["exit"]["code"],
        0,
        "kernel stopped serving after a {how} frame"
    );
    (k, id, last, log)
}

#[test]
fn malformed_frame_is_refused_recorded_and_kernel_keeps_serving() {
    let (k, id, last, log) = abuse("permissive", "malformed");
    assert!(
        log.contains("answer id 0 Err(\"ProtocolViolation\")"),
        "{log}"
    );
    assert!(log.contains("closed"), "{log}");
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let v = violations(&k, id);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("does not decode"), "{v:?}");
}

#[test]
fn oversized_frame_is_refused_before_allocation_and_recorded() {
    let (k, id, _, log) = abuse("permissive", "oversized");
    assert!(
        log.contains("answer id 0 Err(\"ProtocolViolation\")"),
        "{log}"
    );
    let v = violations(&k, id);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("4294967280 bytes is over the limit"), "{v:?}");
}

#[test]
fn wrong_abi_version_is_refused_with_both_versions_named() {
    let (k, id, _, log) = abuse("permissive", "bad-abi");
    assert!(log.contains("refused ProtocolViolation"), "{log}");
    assert!(log.contains("agent speaks ABI 999"), "{log}");
    let v = violations(&k, id);
    assert_eq!(v.len(), 1, "{v:?}");
    let ours = format!("this kernel speaks ABI {}", agentos_syscalls::ABI_VERSION);
    assert!(v[0].contains(&ours), "{v:?}");
}

#[test]
fn second_hello_is_a_violation() {
    let (k, id, _, _) = abuse("permissive", "second-hello");
    assert_eq!(violations(&k, id), vec!["a second Hello".to_string()]);
}

/// A tool's exit status is the word of a tool jail's init, on its own report socket: an agent
/// that sends one on its socket, before or after its Hello, is a protocol violator, and no
/// call of its is answered on the strength of it.
#[test]
fn an_agent_sending_a_tools_exit_status_is_a_violation() {
    for (how, reason) in [
        (
            "tool-exit",
            "a tool's exit status from the agent (only a tool's init sends one)",
        ),
        (
            "tool-exit-first",
            "a tool's exit status on an agent's socket (only a tool's init sends one)",
        ),
    ] {
        let (k, id, _, log) = abuse("permissive", how);
        assert!(
            log.contains("answer id 0 Err(\"ProtocolViolation\")") && log.contains("closed"),
            "{how}: {log}"
        );
        assert_eq!(violations(&k, id), vec![reason.to_string()], "{how}");
    }
}

#[test]
fn strict_mode_ends_a_protocol_violator_with_sigtrust() {
    for how in ["malformed", "oversized", "bad-abi"] {
        let (k, id, last, _) = abuse("strict", how);
        assert_eq!(last["exit"]["signal"], "SIGTRUST", "{how}: {last}");
        assert_eq!(violations(&k, id).len(), 1, "{how}");
    }
}

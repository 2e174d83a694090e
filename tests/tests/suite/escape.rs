//! Attacks on the kernel from inside a real sandboxed agent. (The full escape suite belongs to
//! the ring-3 hardening work; these are the ones the lifecycle depends on.)

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{write_policy, TestKernel};

#[test]
fn an_agent_cannot_drive_its_kernel_through_the_control_socket() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "attack", "strict", &["SIGTERM"], "");
    let sock = k.state_dir.join("kernel.sock");
    let id = k.spawn(&policy, &["connect", sock.to_str().unwrap()]);
    let last = k.wait(id);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(!log.contains("ESCAPED"), "{log}");
    // Either the socket is not even reachable from the jail, or the kernel refuses the peer and
    // ends the agent (strict mode) with SIGTRUST.
    if log.contains("kernel refused") {
        assert!(log.contains("another pid namespace"), "{log}");
        assert_eq!(last["exit"]["signal"], "SIGTRUST", "{last}");
        let recorded = k.records().into_iter().any(|r| {
            r.agent.map(|a| a.0) == Some(id)
                && matches!(&r.event, RecordEvent::ProtocolViolation { reason } if reason.contains("control socket"))
        });
        assert!(recorded, "the attempt must be in the flight recorder");
    } else {
        assert!(log.contains("connect failed"), "{log}");
    }
    // The kernel still answers promptly.
    assert!(k.ctl_ok(&["ps"]).contains(&id.to_string()));
}

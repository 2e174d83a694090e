//! Who may drive the kernel: the admission decision for a control connection, as a pure
//! function of what the caller read about the peer.
//!
//! Guarantees:
//! - A peer is admitted only when its credentials are known, it runs in the kernel's own pid
//!   namespace, and its uid is root or the kernel's own.
//! - The pid namespace is checked before the uid: an agent shares the kernel's uid (inside its
//!   user namespace), so the uid check alone would let an agent that can name the socket drive
//!   its own kernel. Every agent lives in a pid namespace of its own, so a peer outside ours is
//!   refused, and the caller is told to treat it as a possible agent (record a protocol
//!   violation; SIGTRUST in strict mode).
//! - An unknown namespace counts as another one (refused).
//!
//! Never: read `/proc`, record or signal here; the caller does the I/O ([`super::connection`]).

use agentos_syscalls::control::{ControlError, ControlErrorKind};

use crate::util::control_error;

/// What `SO_PEERCRED` and `/proc` say about a control peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub uid: u32,
    /// `Ok` when the peer runs in the kernel's pid namespace, otherwise why not.
    pub namespace: Result<(), String>,
}

/// What to do with a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Read its request.
    Admit,
    /// Answer `error` and close. With `agent_reason`, the peer may be an agent process: if its
    /// pid belongs to an agent, record a protocol violation with this reason and, in strict
    /// mode, end the agent with SIGTRUST.
    Refuse {
        error: ControlError,
        agent_reason: Option<String>,
    },
    /// No credentials: close without an answer.
    Drop,
}

/// The admission decision for a peer (`None`: its credentials could not be read) of a kernel
/// running as uid `me`.
pub(crate) fn admit(peer: Option<&Peer>, me: u32) -> Admission {
    let Some(peer) = peer else {
        return Admission::Drop;
    };
    if let Err(why) = &peer.namespace {
        return Admission::Refuse {
            error: control_error(
                ControlErrorKind::Denied,
                format!("control connection refused: {why}"),
                "run agentctl on the host, not inside an agent",
            ),
            agent_reason: Some(format!(
                "agent process tried to use the kernel's control socket ({why})"
            )),
        };
    }
    if peer.uid != 0 && peer.uid != me {
        return Admission::Refuse {
            error: control_error(
                ControlErrorKind::Denied,
                format!(
                    "uid {} may not control this kernel (it belongs to uid {me})",
                    peer.uid
                ),
                "run agentctl as the kernel's user or as root",
            ),
            agent_reason: None,
        };
    }
    Admission::Admit
}

/// Whether peer `pid` runs in the kernel's own pid namespace, given `depth`: how deep in nested
/// pid namespaces a process runs (`"self"` for the kernel, the pid otherwise), `None` when it
/// cannot be read. A peer in a child namespace (every agent is) sits deeper; one in an
/// unrelated namespace has no pid here (`None` or 0). Unknown counts as no.
pub(crate) fn same_pid_namespace(
    pid: Option<i32>,
    depth: impl Fn(&str) -> Option<usize>,
) -> Result<(), String> {
    let pid = pid
        .filter(|p| *p > 0)
        .ok_or("the peer's pid is unknown (it is in another pid namespace)")?;
    let theirs = depth(&pid.to_string())
        .ok_or_else(|| format!("cannot read the pid namespace of pid {pid}"))?;
    let ours = depth("self").ok_or("cannot read the kernel's own pid namespace")?;
    if theirs != ours {
        return Err(format!("pid {pid} runs in another pid namespace"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: u32 = 1000;

    fn peer(uid: u32) -> Peer {
        Peer {
            uid,
            namespace: Ok(()),
        }
    }

    fn denied(message: &str, hint: &str, agent_reason: Option<&str>) -> Admission {
        Admission::Refuse {
            error: ControlError {
                kind: ControlErrorKind::Denied,
                message: message.into(),
                hint: hint.into(),
            },
            agent_reason: agent_reason.map(String::from),
        }
    }

    #[test]
    fn root_is_admitted_by_any_kernel() {
        assert_eq!(admit(Some(&peer(0)), OWNER), Admission::Admit);
        assert_eq!(admit(Some(&peer(0)), 0), Admission::Admit);
    }

    #[test]
    fn the_kernels_own_user_is_admitted() {
        assert_eq!(admit(Some(&peer(OWNER)), OWNER), Admission::Admit);
    }

    #[test]
    fn another_uid_is_refused_as_an_operator_not_an_agent() {
        assert_eq!(
            admit(Some(&peer(1001)), OWNER),
            denied(
                "uid 1001 may not control this kernel (it belongs to uid 1000)",
                "run agentctl as the kernel's user or as root",
                None,
            )
        );
        // A root kernel admits only root.
        assert_eq!(
            admit(Some(&peer(OWNER)), 0),
            denied(
                "uid 1000 may not control this kernel (it belongs to uid 0)",
                "run agentctl as the kernel's user or as root",
                None,
            )
        );
    }

    #[test]
    fn a_peer_in_another_pid_namespace_is_refused_and_treated_as_an_agent() {
        let why = "pid 42 runs in another pid namespace";
        let expected = denied(
            &format!("control connection refused: {why}"),
            "run agentctl on the host, not inside an agent",
            Some(&format!(
                "agent process tried to use the kernel's control socket ({why})"
            )),
        );
        // The kernel's own uid (an agent's, seen from outside its user namespace) and root
        // alike: the namespace decides first.
        for uid in [OWNER, 0, 1001] {
            let p = Peer {
                uid,
                namespace: Err(why.into()),
            };
            assert_eq!(admit(Some(&p), OWNER), expected, "uid {uid}");
        }
    }

    #[test]
    fn a_peer_without_credentials_is_dropped_unanswered() {
        assert_eq!(admit(None, OWNER), Admission::Drop);
        assert_eq!(admit(None, 0), Admission::Drop);
    }

    /// `/proc` as a table: the kernel at depth 1, pid 10 beside it, pid 20 in an agent's
    /// namespace, pid 30 unreadable.
    fn depth(p: &str) -> Option<usize> {
        match p {
            "self" | "10" => Some(1),
            "20" => Some(2),
            _ => None,
        }
    }

    #[test]
    fn same_pid_namespace_compares_nesting_depths() {
        assert_eq!(same_pid_namespace(Some(10), depth), Ok(()));
        assert_eq!(
            same_pid_namespace(Some(20), depth),
            Err("pid 20 runs in another pid namespace".into())
        );
    }

    #[test]
    fn an_unknown_pid_or_namespace_counts_as_another_namespace() {
        let unknown = Err("the peer's pid is unknown (it is in another pid namespace)".into());
        assert_eq!(same_pid_namespace(None, depth), unknown);
        assert_eq!(same_pid_namespace(Some(0), depth), unknown);
        assert_eq!(same_pid_namespace(Some(-1), depth), unknown);
        assert_eq!(
            same_pid_namespace(Some(30), depth),
            Err("cannot read the pid namespace of pid 30".into())
        );
        assert_eq!(
            same_pid_namespace(Some(10), |p| (p != "self").then_some(1)),
            Err("cannot read the kernel's own pid namespace".into())
        );
    }
}

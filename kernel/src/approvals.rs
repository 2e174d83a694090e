//! The approval queue: calls whose rule says `requires_approval` park here until an operator
//! approves or denies them (`agentctl approve|deny ID`), the kernel's approval timeout denies
//! them, or their agent ends.
//!
//! Invariants:
//! - An approval id is handed out once and bound to one request (agent, request id, action,
//!   resource). Deciding it twice, or deciding an id that never existed, is `NotFound`.
//! - Only the control socket decides. Nothing an agent puts in its request (an
//!   `"approved": true` param, a path that says "approved") is looked at here.
//! - The decision is sent while the entry is removed under the same lock, so a waiter that
//!   finds its entry gone always finds the decision in its channel.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use agentos_syscalls::control::{ApprovalInfo, ControlError, ControlErrorKind};
use agentos_syscalls::AgentId;
use tokio::sync::oneshot;

use crate::agent::lock;
use crate::kernel::control_error;

/// An operator's answer to one parked call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub approved: bool,
    /// Who decided, e.g. `operator (uid 0)`.
    pub by: String,
}

/// The request a parked call belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ask {
    pub agent: AgentId,
    pub request: u64,
    pub action: String,
    pub resource: String,
    pub rule: String,
}

#[derive(Debug)]
struct Pending {
    ask: Ask,
    since: Instant,
    decide: oneshot::Sender<Verdict>,
}

/// Every parked call of one kernel.
#[derive(Debug, Default)]
pub(crate) struct Approvals {
    next: AtomicU64,
    pending: Mutex<BTreeMap<u64, Pending>>,
}

impl Approvals {
    /// A fresh approval id (never reused by this kernel).
    pub fn reserve(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Parks a call under `id` (from [`Approvals::reserve`]); the receiver gets the verdict.
    pub fn park(&self, id: u64, ask: Ask) -> oneshot::Receiver<Verdict> {
        let (decide, rx) = oneshot::channel();
        lock(&self.pending).insert(
            id,
            Pending {
                ask,
                since: Instant::now(),
                decide,
            },
        );
        rx
    }

    /// The parked calls, oldest first.
    pub fn list(&self) -> Vec<ApprovalInfo> {
        lock(&self.pending)
            .iter()
            .map(|(id, p)| ApprovalInfo {
                id: *id,
                agent: p.ask.agent,
                action: p.ask.action.clone(),
                resource: p.ask.resource.clone(),
                age_ms: p.since.elapsed().as_millis() as u64,
                rule: p.ask.rule.clone(),
            })
            .collect()
    }

    /// Approves or denies parked call `id`.
    pub fn decide(&self, id: u64, verdict: Verdict) -> Result<(), ControlError> {
        let mut pending = lock(&self.pending);
        let Some(p) = pending.remove(&id) else {
            return Err(control_error(
                ControlErrorKind::NotFound,
                format!("no pending approval {id} (it was never issued, or was already decided, timed out or withdrawn)"),
                "list pending approvals with `agentctl approvals`",
            ));
        };
        // The waiter may have just given up (its agent ended); then nobody needs the answer.
        let _ = p.decide.send(verdict);
        Ok(())
    }

    /// Takes call `id` off the queue (it timed out, or its agent ended). `false` when it was
    /// already decided: the verdict is then waiting in its receiver.
    pub fn withdraw(&self, id: u64) -> bool {
        lock(&self.pending).remove(&id).is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ask(request: u64) -> Ask {
        Ask {
            agent: AgentId(1),
            request,
            action: "file_write".into(),
            resource: "/mem/working/x".into(),
            rule: "gated (p.md:3)".into(),
        }
    }

    #[test]
    fn an_approval_is_decided_once() {
        let q = Approvals::default();
        let id = q.reserve();
        let mut rx = q.park(id, ask(7));
        assert_eq!(q.list().len(), 1);
        assert_eq!(q.list()[0].id, id);
        let v = Verdict {
            approved: true,
            by: "operator (uid 0)".into(),
        };
        q.decide(id, v.clone()).unwrap();
        assert_eq!(rx.try_recv().unwrap(), v);
        let again = q.decide(id, v).unwrap_err();
        assert_eq!(again.kind, ControlErrorKind::NotFound);
        assert!(q.list().is_empty());
        assert!(!q.withdraw(id));
    }

    #[test]
    fn ids_are_unique_and_unknown_ids_are_not_found() {
        let q = Approvals::default();
        let (a, b) = (q.reserve(), q.reserve());
        assert_ne!(a, b);
        let err = q
            .decide(
                99,
                Verdict {
                    approved: false,
                    by: "x".into(),
                },
            )
            .unwrap_err();
        assert_eq!(err.kind, ControlErrorKind::NotFound);
        let _rx = q.park(a, ask(1));
        assert!(q.withdraw(a));
        assert!(q.list().is_empty());
    }
}

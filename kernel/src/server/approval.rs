//! Approvals: a call whose allowing rule has `requires_approval` parks here until an operator
//! decides (`agentctl approve|deny`), the approval timeout denies it, or the agent ends. At
//! most `max_approvals_per_agent` calls of one agent wait at once; the next is refused `Busy`.
//! Both the parking and the outcome are recorded, the request before anyone can see it.

use std::sync::Arc;
use std::time::Instant;

use agentos_syscalls::Errno;

use super::judge::{Judgment, Pending};
use crate::agent::Agent;
use crate::approvals::{Ask, Verdict};
use crate::recorder::RecordEvent;
use crate::state::KernelInner;

/// Parks a call that needs approval until an operator decides, the approval timeout passes or
/// the agent ends, recording both the parking and the outcome; fills in the judgment.
pub(super) async fn await_approval(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    request: u64,
    pending: Pending,
    payload: Option<agentos_syscalls::control::PayloadPreview>,
    j: &mut Judgment,
) {
    // At most `max_approvals_per_agent` waiting calls per agent: the next is refused now.
    // The slot is held until the call is decided.
    let slot = match k
        .approvals
        .reserve(agent.id, k.config.max_approvals_per_agent)
    {
        Ok(slot) => slot,
        Err(held) => {
            j.record.allowed = false;
            j.record.reason = format!("{held} calls already wait for approval ({})", pending.rule);
            j.refusal = Some(Errno::Busy {
                what: format!("agent {} already has {held} calls waiting for approval; wait for an answer before asking again (the kernel's --max-approvals-per-agent)", agent.id),
            });
            return;
        }
    };
    let approval = slot.id;
    let parked = Instant::now();
    // Recorded before anyone can see it in `agentctl approvals`, so a decision always
    // follows its request in the log.
    if !k.record(
        Some(agent.id),
        RecordEvent::ApprovalRequested {
            approval,
            request,
            action: pending.action.clone(),
            resource: pending.resource.clone(),
            rule: pending.rule.clone(),
        },
    ) {
        j.record.allowed = false;
        j.refusal = Some(Errno::Internal {
            reason: "the flight recorder failed; the call was not parked for approval".into(),
        });
        return;
    }
    let rule = pending.rule.clone();
    let outcome = {
        // Parked on the operator: counted (parked, awaiting approval) until decided.
        let _parked = Parked::on(agent);
        wait(k, agent, approval, request, pending, payload).await
    };
    let waited_ms = parked.elapsed().as_millis() as u64;
    let decided = Decided::of(outcome);
    k.record(
        Some(agent.id),
        RecordEvent::ApprovalDecided {
            approval,
            request,
            approved: decided.approved,
            outcome: decided.label.into(),
            by: decided.by.clone(),
            waited_ms,
        },
    );
    decided.settle(approval, waited_ms, &rule, j);
    drop(slot);
}

/// Parks the call in the approval queue and waits for the operator's verdict, the timeout or
/// the agent's end (`Err` says which).
async fn wait(
    k: &KernelInner,
    agent: &Agent,
    approval: u64,
    request: u64,
    Pending {
        action,
        resource,
        rule,
    }: Pending,
    payload: Option<agentos_syscalls::control::PayloadPreview>,
) -> Result<Verdict, &'static str> {
    let ask = Ask {
        agent: agent.id,
        agent_name: agent.name.clone(),
        payload,
        request,
        action,
        resource,
        rule,
    };
    tracing::info!(agent_id = %agent.id, request, approval, action = %ask.action, "call parked for operator approval");
    let mut rx = k.approvals.park(approval, ask);
    let waited = tokio::select! {
        r = tokio::time::timeout(k.config.approval_timeout, &mut rx) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err("withdrawn"),
            Err(_) => Err("timed out"),
        },
        _ = agent.wait_exit() => Err("agent ended"),
    };
    match waited {
        Ok(v) => Ok(v),
        // Decided at the last moment: the verdict is in the channel.
        Err(why) if !k.approvals.withdraw(approval) => rx.try_recv().map_err(|_| why),
        Err(why) => Err(why),
    }
}

/// A call of the agent parked on an operator's approval: counted in `parked` and
/// `awaiting_approval` while it lives (`ps` shows the agent `awaiting-approval`).
struct Parked<'a>(&'a Agent);

impl<'a> Parked<'a> {
    fn on(agent: &'a Agent) -> Self {
        let mut c = agent.counters();
        c.parked += 1;
        c.awaiting_approval += 1;
        drop(c);
        Parked(agent)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        let mut c = self.0.counters();
        c.parked = c.parked.saturating_sub(1);
        c.awaiting_approval = c.awaiting_approval.saturating_sub(1);
    }
}

/// How an approval ended.
#[derive(Debug, PartialEq, Eq)]
struct Decided {
    approved: bool,
    /// `approved`, `denied`, `timed out`, `withdrawn` or `agent ended`.
    label: &'static str,
    /// Who decided: the operator, or `kernel`.
    by: String,
}

impl Decided {
    fn of(outcome: Result<Verdict, &'static str>) -> Decided {
        match outcome {
            Ok(v) => Decided {
                approved: v.approved,
                label: if v.approved { "approved" } else { "denied" },
                by: v.by,
            },
            Err(why) => Decided {
                approved: false,
                label: why,
                by: "kernel".into(),
            },
        }
    }

    /// Fills in the judgment: the decision's reason, and a refusal unless approved (a timeout
    /// answers `ApprovalTimeout`, every other refusal `ApprovalDenied`).
    fn settle(&self, approval: u64, waited_ms: u64, rule: &str, j: &mut Judgment) {
        let Decided {
            approved,
            label,
            by,
        } = self;
        j.record.reason =
            format!("approval {approval} {label} by {by} after {waited_ms} ms ({rule})");
        if !approved {
            j.record.allowed = false;
            j.refusal = Some(if *label == "timed out" {
                Errno::ApprovalTimeout
            } else {
                Errno::ApprovalDenied
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::DecisionRecord;

    fn pending_judgment() -> Judgment {
        Judgment {
            record: DecisionRecord {
                allowed: true,
                policy_allowed: true,
                rule: "ask (p.md:3)".into(),
                reason: "requires_approval".into(),
                violation: false,
                mode: "strict".into(),
            },
            refusal: None,
            approval: None,
            class: None,
        }
    }

    fn settled(outcome: Result<Verdict, &'static str>) -> Judgment {
        let mut j = pending_judgment();
        Decided::of(outcome).settle(4, 120, "ask (p.md:3)", &mut j);
        j
    }

    #[test]
    fn an_approved_call_goes_on_with_who_approved_it_in_the_record() {
        let j = settled(Ok(Verdict {
            approved: true,
            by: "operator (uid 0)".into(),
        }));
        assert_eq!(j.refusal, None);
        assert!(j.record.allowed);
        assert_eq!(
            j.record.reason,
            "approval 4 approved by operator (uid 0) after 120 ms (ask (p.md:3))"
        );
    }

    #[test]
    fn a_denied_withdrawn_or_orphaned_call_is_refused_denied_and_a_late_one_timed_out() {
        let denied = settled(Ok(Verdict {
            approved: false,
            by: "operator (uid 0)".into(),
        }));
        assert_eq!(denied.refusal, Some(Errno::ApprovalDenied));
        assert!(!denied.record.allowed);
        assert_eq!(
            denied.record.reason,
            "approval 4 denied by operator (uid 0) after 120 ms (ask (p.md:3))"
        );
        for why in ["withdrawn", "agent ended"] {
            let j = settled(Err(why));
            assert_eq!(j.refusal, Some(Errno::ApprovalDenied), "{why}");
            assert_eq!(
                j.record.reason,
                format!("approval 4 {why} by kernel after 120 ms (ask (p.md:3))")
            );
        }
        let late = settled(Err("timed out"));
        assert_eq!(late.refusal, Some(Errno::ApprovalTimeout));
        assert!(!late.record.allowed);
    }
}

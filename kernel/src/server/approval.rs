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
use crate::kernel::KernelInner;
use crate::recorder::RecordEvent;

/// Parks a call that needs approval until an operator decides, the approval timeout passes or
/// the agent ends, recording both the parking and the outcome; fills in the judgment.
pub(super) async fn await_approval(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    request: u64,
    Pending {
        action,
        resource,
        rule,
    }: Pending,
    j: &mut Judgment,
) {
    // At most `max_approvals_per_agent` waiting calls per agent: the next is refused now.
    let slot = match k
        .approvals
        .reserve(agent.id, k.config.max_approvals_per_agent)
    {
        Ok(slot) => slot,
        Err(held) => {
            j.record.allowed = false;
            j.record.reason = format!("{held} calls already wait for approval ({rule})");
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
            action: action.clone(),
            resource: resource.clone(),
            rule: rule.clone(),
        },
    ) {
        j.record.allowed = false;
        j.refusal = Some(Errno::Internal {
            reason: "the flight recorder failed; the call was not parked for approval".into(),
        });
        return;
    }
    let mut rx = k.approvals.park(
        approval,
        Ask {
            agent: agent.id,
            request,
            action: action.clone(),
            resource,
            rule: rule.clone(),
        },
    );
    tracing::info!(agent_id = %agent.id, request, approval, %action, "call parked for operator approval");
    let waited: Result<Verdict, &'static str> = tokio::select! {
        r = tokio::time::timeout(k.config.approval_timeout, &mut rx) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err("withdrawn"),
            Err(_) => Err("timed out"),
        },
        _ = agent.wait_exit() => Err("agent ended"),
    };
    let outcome = match waited {
        Ok(v) => Ok(v),
        // Decided at the last moment: the verdict is in the channel.
        Err(why) if !k.approvals.withdraw(approval) => rx.try_recv().map_err(|_| why),
        Err(why) => Err(why),
    };
    let waited_ms = parked.elapsed().as_millis() as u64;
    let (approved, label, by) = match &outcome {
        Ok(v) if v.approved => (true, "approved", v.by.clone()),
        Ok(v) => (false, "denied", v.by.clone()),
        Err(why) => (false, *why, "kernel".to_string()),
    };
    k.record(
        Some(agent.id),
        RecordEvent::ApprovalDecided {
            approval,
            request,
            approved,
            outcome: label.into(),
            by: by.clone(),
            waited_ms,
        },
    );
    j.record.reason = format!("approval {approval} {label} by {by} after {waited_ms} ms ({rule})");
    if !approved {
        j.record.allowed = false;
        j.refusal = Some(if label == "timed out" {
            Errno::ApprovalTimeout
        } else {
            Errno::ApprovalDenied
        });
    }
}

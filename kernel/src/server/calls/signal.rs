//! `Signal`: one agent signalling another (the policy's `signal` action has allowed it; the
//! target's own `signals:` list still gates maskable signals).

use std::sync::Arc;

use agentos_policy::Access;
use agentos_syscalls::control::{AgentRef, ControlErrorKind};
use agentos_syscalls::{AgentId, Errno, Reply, Signal};

use super::class::Class;
use crate::agent::Agent;
use crate::state::KernelInner;

pub(super) async fn signal(
    k: &Arc<KernelInner>,
    agent: &Agent,
    target: AgentId,
    sig: Signal,
) -> Result<Reply, Errno> {
    let to = k.find(&AgentRef::Id(target)).map_err(|_| Errno::NotFound {
        what: format!("agent {target}"),
    })?;
    let source = format!("agent {}", agent.id);
    crate::signals::deliver(k, &to, sig, &source, String::new())
        .await
        .map_err(|e| match e.kind {
            ControlErrorKind::Denied => Errno::PermissionDenied {
                rule: String::new(),
                reason: e.message,
            },
            ControlErrorKind::NotFound => Errno::NotFound {
                what: format!("agent {target}"),
            },
            ControlErrorKind::Failed | ControlErrorKind::Usage => {
                Errno::InvalidArgument { reason: e.message }
            }
        })?;
    Ok(Reply::Done)
}

/// `signal` to the target's id.
pub(super) fn classify(target: AgentId) -> Result<Option<Class>, Errno> {
    Ok(Some(Class::new(
        "signal",
        target.to_string(),
        Access::Write,
        0,
    )))
}

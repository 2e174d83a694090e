//! `CheckPolicy`: how the agent's policy (composed with the kernel's base policy) would decide
//! an action. A dry run: never a violation, never performed, whatever the answer.

use agentos_policy::Access;
use agentos_syscalls::{Decision, Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::util::now_ms;

pub(super) fn check_policy(
    base: Option<&agentos_policy::Policy>,
    agent: &Agent,
    action: &str,
    resource: &str,
) -> Result<Reply, Errno> {
    let file_action = matches!(action, "file_read" | "file_write");
    let resource = if file_action {
        agentos_vfs::normalize(resource)?
    } else {
        resource.to_string()
    };
    let access = if matches!(action, "file_write" | "ipc_send" | "signal") {
        Access::Write
    } else {
        Access::Read
    };
    let req = agentos_policy::Request {
        action,
        resource: &resource,
        access,
        bytes: 0,
        now_ms: now_ms(),
    };
    let d = crate::policy::compose(&agent.policy(), base, &req);
    Ok(Reply::Decision(Decision {
        allowed: d.allowed,
        rule: d.rule,
        reason: d.reason,
    }))
}

/// A dry run: no rule governs it, it is never a violation.
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

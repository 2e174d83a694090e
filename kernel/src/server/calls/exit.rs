//! `Exit`: the agent announces its exit code. The kernel records it; the process still has
//! to exit, and the recorded `Exit` event comes from the reaper.

use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;

pub(super) fn exit(agent: &Agent, code: i32) -> Result<Reply, Errno> {
    tracing::info!(agent_id = %agent.id, code, "agent announced its exit");
    Ok(Reply::Done)
}

/// Ending oneself: no rule governs it.
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

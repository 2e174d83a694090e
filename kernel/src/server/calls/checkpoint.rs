//! `Checkpoint`: snapshot `/mem/working` to `/state/checkpoints/<n>` (kept on disk after the
//! agent ends; `agentctl spawn --restore ID[:N]` starts a new agent from it).

use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn checkpoint(ctx: &TreeCtx<'_>, agent: &Agent) -> Result<Reply, Errno> {
    crate::tree::checkpoint(ctx, agent, "Checkpoint syscall")
        .map(|number| Reply::Checkpoint { number })
}

/// Snapshotting one's own working memory: no rule governs it.
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

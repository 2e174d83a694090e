//! `Checkpoint`: snapshot `/mem/working` to `/state/checkpoints/<n>` (kept on disk after the
//! agent ends; `agentctl spawn --restore ID[:N]` starts a new agent from it).

use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;
use crate::server::judge::Class;

pub(super) fn checkpoint(k: &KernelInner, agent: &Agent) -> Result<Reply, Errno> {
    crate::tree::checkpoint(&k.tree(), agent, "Checkpoint syscall")
        .map(|number| Reply::Checkpoint { number })
}

/// Snapshotting one's own working memory: no rule governs it.
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

//! `Unlink`: remove a file from the agent's writable tree.

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn unlink(ctx: &TreeCtx<'_>, agent: &Agent, path: &str) -> Result<Reply, Errno> {
    crate::tree::unlink(ctx, agent, path).map(|()| Reply::Done)
}

/// `file_write` of the normalized path.
pub(super) fn classify(path: &str) -> Result<Option<Class>, Errno> {
    let path = agentos_vfs::normalize(path)?;
    Ok(Some(Class::new("file_write", path, Access::Write, 0)))
}

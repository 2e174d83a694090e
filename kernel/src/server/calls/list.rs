//! `List`: a directory of the agent's tree.

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn list(ctx: &TreeCtx<'_>, agent: &Agent, path: &str) -> Result<Reply, Errno> {
    crate::tree::list(ctx, agent, path).map(Reply::Entries)
}

/// `file_read` of the normalized path.
pub(super) fn classify(path: &str) -> Result<Option<Class>, Errno> {
    let path = agentos_vfs::normalize(path)?;
    Ok(Some(Class::new("file_read", path, Access::Read, 0)))
}

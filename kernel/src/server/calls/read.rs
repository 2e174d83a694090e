//! `Read`: one-shot read of a file anywhere in the agent's tree, at most one frame's worth
//! (a larger file is refused with `TooLarge`: read it by offset/len, or `Open` + `ReadFd`).

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn read(
    ctx: &TreeCtx<'_>,
    agent: &Agent,
    path: &str,
    offset: u64,
    len: Option<u64>,
) -> Result<Reply, Errno> {
    crate::tree::read(ctx, agent, path, offset, len).map(Reply::Data)
}

/// `file_read` of the normalized path.
pub(super) fn classify(path: &str) -> Result<Option<Class>, Errno> {
    let path = agentos_vfs::normalize(path)?;
    Ok(Some(Class::new("file_read", path, Access::Read, 0)))
}

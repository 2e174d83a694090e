//! `Open`: a descriptor for streaming (`ReadFd`/`WriteFd`), from the agent's bounded table.

use agentos_policy::Access;
use agentos_syscalls::{Errno, OpenMode, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn open(
    ctx: &TreeCtx<'_>,
    agent: &Agent,
    path: &str,
    mode: OpenMode,
) -> Result<Reply, Errno> {
    crate::tree::open(ctx, agent, path, mode).map(|fd| Reply::Opened { fd })
}

/// `file_read` of the normalized path to read it, `file_write` to write it.
pub(super) fn classify(path: &str, mode: OpenMode) -> Result<Option<Class>, Errno> {
    let path = agentos_vfs::normalize(path)?;
    Ok(Some(match mode {
        OpenMode::Read => Class::new("file_read", path, Access::Read, 0),
        OpenMode::Write(_) => Class::new("file_write", path, Access::Write, 0),
    }))
}

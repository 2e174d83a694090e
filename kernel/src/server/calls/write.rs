//! `Write`: one-shot write of a file in the agent's writable tree (quota-checked; a refused
//! write leaves the old content).

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply, WriteMode};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn write(
    ctx: &TreeCtx<'_>,
    agent: &Agent,
    path: &str,
    data: &[u8],
    mode: WriteMode,
) -> Result<Reply, Errno> {
    crate::tree::write(ctx, agent, path, data, mode).map(|bytes| Reply::Written { bytes })
}

/// `file_write` of the normalized path, the payload's size as its bytes.
pub(super) fn classify(path: &str, data: &[u8]) -> Result<Option<Class>, Errno> {
    let path = agentos_vfs::normalize(path)?;
    Ok(Some(Class::new(
        "file_write",
        path,
        Access::Write,
        data.len() as u64,
    )))
}

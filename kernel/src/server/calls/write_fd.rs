//! `WriteFd`: write a chunk through a descriptor opened for writing (quota-checked).

use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn write_fd(
    ctx: &TreeCtx<'_>,
    agent: &Agent,
    fd: u32,
    data: &[u8],
) -> Result<Reply, Errno> {
    crate::tree::write_fd(ctx, agent, fd, data).map(|bytes| Reply::Written { bytes })
}

/// Writing a descriptor: no rule governs it (opening it was judged).
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

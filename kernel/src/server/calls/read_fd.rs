//! `ReadFd`: the next chunk (at most one frame's worth) from a descriptor; empty at the end.

use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn read_fd(ctx: &TreeCtx<'_>, agent: &Agent, fd: u32, len: u32) -> Result<Reply, Errno> {
    crate::tree::read_fd(ctx, agent, fd, len).map(Reply::Data)
}

/// Reading a descriptor: no rule governs it (opening it was judged).
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

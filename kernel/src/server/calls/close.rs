//! `Close`: release a descriptor from `Open`.

use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;

pub(super) fn close(agent: &Agent, fd: u32) -> Result<Reply, Errno> {
    crate::tree::close(agent, fd).map(|()| Reply::Done)
}

/// Closing a descriptor: no rule governs it (opening it was judged).
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

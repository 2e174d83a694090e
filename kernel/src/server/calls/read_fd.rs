//! `ReadFd`: the next chunk (at most one frame's worth) from a descriptor; empty at the end.

use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;
use crate::server::judge::Class;

pub(super) fn read_fd(k: &KernelInner, agent: &Agent, fd: u32, len: u32) -> Result<Reply, Errno> {
    crate::tree::read_fd(&k.tree(), agent, fd, len).map(Reply::Data)
}

/// Reading a descriptor: no rule governs it (opening it was judged).
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

//! `WriteFd`: write a chunk through a descriptor opened for writing (quota-checked).

use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;
use crate::server::judge::Class;

pub(super) fn write_fd(
    k: &KernelInner,
    agent: &Agent,
    fd: u32,
    data: &[u8],
) -> Result<Reply, Errno> {
    crate::tree::write_fd(&k.tree(), agent, fd, data).map(|bytes| Reply::Written { bytes })
}

/// Writing a descriptor: no rule governs it (opening it was judged).
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

//! `Unlink`: remove a file from the agent's writable tree.

use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;

pub(super) fn unlink(k: &KernelInner, agent: &Agent, path: &str) -> Result<Reply, Errno> {
    crate::tree::unlink(&k.tree(), agent, path).map(|()| Reply::Done)
}

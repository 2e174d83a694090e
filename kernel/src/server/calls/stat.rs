//! `Stat`: describe a path of the agent's tree.

use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;

pub(super) fn stat(k: &KernelInner, agent: &Agent, path: &str) -> Result<Reply, Errno> {
    crate::tree::stat(&k.tree(), agent, path).map(Reply::Stat)
}

//! `List`: a directory of the agent's tree.

use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;

pub(super) fn list(k: &KernelInner, agent: &Agent, path: &str) -> Result<Reply, Errno> {
    crate::tree::list(&k.tree(), agent, path).map(Reply::Entries)
}

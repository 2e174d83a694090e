//! `Stat`: describe a path of the agent's tree.

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;
use crate::server::judge::Class;

pub(super) fn stat(k: &KernelInner, agent: &Agent, path: &str) -> Result<Reply, Errno> {
    crate::tree::stat(&k.tree(), agent, path).map(Reply::Stat)
}

/// `file_read` of the normalized path.
pub(super) fn classify(path: &str) -> Result<Option<Class>, Errno> {
    let path = agentos_vfs::normalize(path)?;
    Ok(Some(Class::new("file_read", path, Access::Read, 0)))
}

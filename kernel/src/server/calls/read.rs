//! `Read`: one-shot read of a file anywhere in the agent's tree, at most one frame's worth
//! (a larger file is refused with `TooLarge`: read it by offset/len, or `Open` + `ReadFd`).

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;
use crate::server::judge::Class;

pub(super) fn read(
    k: &KernelInner,
    agent: &Agent,
    path: &str,
    offset: u64,
    len: Option<u64>,
) -> Result<Reply, Errno> {
    crate::tree::read(&k.tree(), agent, path, offset, len).map(Reply::Data)
}

/// `file_read` of the normalized path.
pub(super) fn classify(path: &str) -> Result<Option<Class>, Errno> {
    let path = agentos_vfs::normalize(path)?;
    Ok(Some(Class::new("file_read", path, Access::Read, 0)))
}

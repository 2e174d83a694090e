//! `Write`: one-shot write of a file in the agent's writable tree (quota-checked; a refused
//! write leaves the old content).

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply, WriteMode};

use crate::agent::Agent;
use crate::kernel::KernelInner;
use crate::server::judge::Class;

pub(super) fn write(
    k: &KernelInner,
    agent: &Agent,
    path: &str,
    data: &[u8],
    mode: WriteMode,
) -> Result<Reply, Errno> {
    crate::tree::write(&k.tree(), agent, path, data, mode).map(|bytes| Reply::Written { bytes })
}

/// `file_write` of the normalized path, the payload's size as its bytes.
pub(super) fn classify(path: &str, data: &[u8]) -> Result<Option<Class>, Errno> {
    let path = agentos_vfs::normalize(path)?;
    Ok(Some(Class::new(
        "file_write",
        path,
        Access::Write,
        data.len() as u64,
    )))
}

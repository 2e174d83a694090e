//! `Write`: one-shot write of a file in the agent's writable tree (quota-checked; a refused
//! write leaves the old content).

use agentos_syscalls::{Errno, Reply, WriteMode};

use crate::agent::Agent;
use crate::kernel::KernelInner;

pub(super) fn write(
    k: &KernelInner,
    agent: &Agent,
    path: &str,
    data: &[u8],
    mode: WriteMode,
) -> Result<Reply, Errno> {
    crate::tree::write(&k.tree(), agent, path, data, mode).map(|bytes| Reply::Written { bytes })
}

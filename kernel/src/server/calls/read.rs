//! `Read`: one-shot read of a file anywhere in the agent's tree, at most one frame's worth
//! (a larger file is refused with `TooLarge`: read it by offset/len, or `Open` + `ReadFd`).

use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;

pub(super) fn read(
    k: &KernelInner,
    agent: &Agent,
    path: &str,
    offset: u64,
    len: Option<u64>,
) -> Result<Reply, Errno> {
    crate::tree::read(&k.tree(), agent, path, offset, len).map(Reply::Data)
}

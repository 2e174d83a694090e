//! `Open`: a descriptor for streaming (`ReadFd`/`WriteFd`), from the agent's bounded table.

use agentos_syscalls::{Errno, OpenMode, Reply};

use crate::agent::Agent;
use crate::kernel::KernelInner;

pub(super) fn open(
    k: &KernelInner,
    agent: &Agent,
    path: &str,
    mode: OpenMode,
) -> Result<Reply, Errno> {
    crate::tree::open(&k.tree(), agent, path, mode).map(|fd| Reply::Opened { fd })
}

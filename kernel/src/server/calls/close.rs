//! `Close`: release a descriptor from `Open`.

use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;

pub(super) fn close(agent: &Agent, fd: u32) -> Result<Reply, Errno> {
    crate::tree::close(agent, fd).map(|()| Reply::Done)
}

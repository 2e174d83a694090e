//! `Read`: one-shot read of a file in working memory.

use agentos_syscalls::{Errno, Reply};

use super::working_path;
use crate::agent::{lock, Agent};

pub(super) fn read(
    agent: &Agent,
    path: &str,
    offset: u64,
    len: Option<u64>,
) -> Result<Reply, Errno> {
    let p = working_path(path)?;
    lock(&agent.working).read(&p, offset, len).map(Reply::Data)
}

//! `Unlink`: remove a file from working memory.

use agentos_syscalls::{Errno, Reply};

use super::working_path;
use crate::agent::{lock, Agent};

pub(super) fn unlink(agent: &Agent, path: &str) -> Result<Reply, Errno> {
    let p = working_path(path)?;
    lock(&agent.working).unlink(&p).map(|()| Reply::Done)
}

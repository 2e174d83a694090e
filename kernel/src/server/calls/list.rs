//! `List`: a directory of working memory.

use agentos_syscalls::{Errno, Reply};

use super::working_path;
use crate::agent::{lock, Agent};

pub(super) fn list(agent: &Agent, path: &str) -> Result<Reply, Errno> {
    let p = working_path(path)?;
    lock(&agent.working).list(&p).map(Reply::Entries)
}

//! `Stat`: describe a path in working memory.

use agentos_syscalls::{Errno, Reply};

use super::working_path;
use crate::agent::{lock, Agent};

pub(super) fn stat(agent: &Agent, path: &str) -> Result<Reply, Errno> {
    let p = working_path(path)?;
    lock(&agent.working).stat(&p).map(Reply::Stat)
}

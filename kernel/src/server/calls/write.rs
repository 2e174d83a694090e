//! `Write`: one-shot write of a file in working memory (quota-checked; a refused write leaves
//! the old content).

use agentos_syscalls::{Errno, Reply, WriteMode};

use super::working_path;
use crate::agent::{lock, Agent};

pub(super) fn write(
    agent: &Agent,
    path: &str,
    data: &[u8],
    mode: WriteMode,
) -> Result<Reply, Errno> {
    let p = working_path(path)?;
    lock(&agent.working)
        .write(&p, data, mode)
        .map(|bytes| Reply::Written { bytes })
}

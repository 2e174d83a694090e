//! `Rename`: move a file within one mount of the agent's writable tree. Judged as
//! `file_write` on both names: the source is the class's resource, the target its `also`
//! (`crate::server::judge::both_resources`), so the call is refused when the policy denies
//! either.

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::tree::TreeCtx;

pub(super) fn rename(
    ctx: &TreeCtx<'_>,
    agent: &Agent,
    from: &str,
    to: &str,
) -> Result<Reply, Errno> {
    crate::tree::rename(ctx, agent, from, to).map(|()| Reply::Done)
}

/// `file_write` of the normalized source, and of the normalized target.
pub(super) fn classify(from: &str, to: &str) -> Result<Option<Class>, Errno> {
    let from = agentos_vfs::normalize(from)?;
    let to = agentos_vfs::normalize(to)?;
    Ok(Some(
        Class::new("file_write", from, Access::Write, 0).and_also(to),
    ))
}

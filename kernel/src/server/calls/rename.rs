//! `Rename`: move a file within one mount of the agent's writable tree (`crate::tree::rename`
//! performs it per mount). Judged as `file_write` on both paths: [`target_resource`] names the
//! second one the judge decides, beside the source that `server::classify` names.

use agentos_syscalls::{Errno, Reply, Syscall};

use crate::agent::Agent;
use crate::kernel::KernelInner;

pub(super) fn rename(k: &KernelInner, agent: &Agent, from: &str, to: &str) -> Result<Reply, Errno> {
    crate::tree::rename(k, agent, from, to).map(|()| Reply::Done)
}

/// A `Rename`'s target, normalized as the policy sees paths: judged with the same action and
/// access as its source (a rename writes both names), so the call is refused when the policy
/// denies either. `None` for every other call.
pub(crate) fn target_resource(call: &Syscall) -> Result<Option<String>, Errno> {
    let Syscall::Rename { to, .. } = call else {
        return Ok(None);
    };
    agentos_vfs::normalize(to).map(Some)
}

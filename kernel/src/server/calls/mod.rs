//! One file per served syscall. `perform` runs a call that the policy has already allowed.

pub(crate) mod call;
mod check_policy;
mod exec;
mod exit;
mod list;
mod read;
mod signal;
mod stat;
mod unlink;
mod write;

use std::sync::Arc;

use agentos_syscalls::{Errno, Reply, Syscall};

use crate::agent::Agent;
use crate::kernel::KernelInner;

/// The mount point of the agent's in-memory working tree.
pub(crate) const WORKING: &str = "/mem/working";

/// The VFS roots that later kernels serve; a path under them is `Unsupported` here rather than
/// `NotFound`, so the agent can tell "not yet" from "no such file".
const LATER_ROOTS: [&str; 6] = [
    "/mem/episodic",
    "/mem/semantic",
    "/state",
    "/policy",
    "/ipc",
    "/workspace",
];

/// Maps an agent path to a path inside `/mem/working` (`/` for its root).
pub(crate) fn working_path(path: &str) -> Result<String, Errno> {
    let path = agentos_vfs::normalize(path)?;
    if let Some(rest) = path.strip_prefix(WORKING) {
        if rest.is_empty() {
            return Ok("/".into());
        }
        if rest.starts_with('/') {
            return Ok(rest.into());
        }
    }
    let under =
        |root: &str| path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/'));
    if LATER_ROOTS.iter().any(|r| under(r)) {
        return Err(Errno::Unsupported {
            what: format!("{path}: only {WORKING} is served by this kernel yet"),
        });
    }
    Err(Errno::NotFound { what: path })
}

pub(crate) async fn perform(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    call: &Syscall,
) -> Result<Reply, Errno> {
    match call {
        Syscall::Read { path, offset, len } => read::read(agent, path, *offset, *len),
        Syscall::Write { path, data, mode } => write::write(agent, path, data, *mode),
        Syscall::List { path } => list::list(agent, path),
        Syscall::Stat { path } => stat::stat(agent, path),
        Syscall::Unlink { path } => unlink::unlink(agent, path),
        Syscall::CheckPolicy { action, resource } => {
            check_policy::check_policy(k, agent, action, resource)
        }
        Syscall::Signal { target, signal } => signal::signal(k, agent, *target, *signal).await,
        Syscall::Exit { code } => exit::exit(agent, *code),
        Syscall::Call {
            action,
            params_json,
        } => call::call(k, agent, action, params_json).await,
        Syscall::Exec {
            argv,
            stdin,
            cwd,
            timeout_ms,
        } => exec::exec(k, agent, argv, stdin, cwd.as_deref(), *timeout_ms).await,
        Syscall::Open { .. }
        | Syscall::Close { .. }
        | Syscall::ReadFd { .. }
        | Syscall::WriteFd { .. }
        | Syscall::Send { .. }
        | Syscall::Recv { .. }
        | Syscall::Checkpoint => super::unsupported(call),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_paths_on_component_boundaries() {
        assert_eq!(working_path("/mem/working").unwrap(), "/");
        assert_eq!(working_path("/mem/working/a/../b").unwrap(), "/b");
        assert!(matches!(
            working_path("/mem/workingfoo"),
            Err(Errno::NotFound { .. })
        ));
        assert!(matches!(
            working_path("/mem/working/../../policy/x"),
            Err(Errno::Unsupported { .. })
        ));
        assert!(matches!(
            working_path("/policyfoo"),
            Err(Errno::NotFound { .. })
        ));
        assert!(working_path("relative").is_err());
    }
}

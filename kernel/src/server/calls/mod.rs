//! One file per served syscall. `perform` runs a call that the policy has already allowed.

pub(crate) mod call;
mod check_policy;
mod checkpoint;
mod close;
mod exec;
mod exit;
mod list;
mod open;
mod read;
mod read_fd;
mod recv;
mod send;
mod signal;
mod stat;
mod unlink;
mod write;
mod write_fd;

use std::sync::Arc;

use agentos_syscalls::{Errno, Reply, Syscall};

use crate::agent::Agent;
use crate::kernel::KernelInner;

/// The path a file syscall names, if any (to spot a reach into another agent's tree). A
/// `CheckPolicy` dry run is never a violation, so it names none.
pub(crate) fn path_of(call: &Syscall) -> Option<&str> {
    match call {
        Syscall::Read { path, .. }
        | Syscall::Write { path, .. }
        | Syscall::Open { path, .. }
        | Syscall::List { path }
        | Syscall::Stat { path }
        | Syscall::Unlink { path } => Some(path),
        Syscall::Close { .. }
        | Syscall::Exec { .. }
        | Syscall::Call { .. }
        | Syscall::Send { .. }
        | Syscall::Recv { .. }
        | Syscall::Signal { .. }
        | Syscall::CheckPolicy { .. }
        | Syscall::Checkpoint
        | Syscall::Exit { .. }
        | Syscall::ReadFd { .. }
        | Syscall::WriteFd { .. } => None,
    }
}

pub(crate) async fn perform(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    call: &Syscall,
) -> Result<Reply, Errno> {
    match call {
        Syscall::Read { path, offset, len } => read::read(k, agent, path, *offset, *len),
        Syscall::Write { path, data, mode } => write::write(k, agent, path, data, *mode),
        Syscall::List { path } => list::list(k, agent, path),
        Syscall::Stat { path } => stat::stat(k, agent, path),
        Syscall::Unlink { path } => unlink::unlink(k, agent, path),
        Syscall::Open { path, mode } => open::open(k, agent, path, *mode),
        Syscall::Close { fd } => close::close(agent, *fd),
        Syscall::ReadFd { fd, len } => read_fd::read_fd(k, agent, *fd, *len),
        Syscall::WriteFd { fd, data } => write_fd::write_fd(k, agent, *fd, data),
        Syscall::Checkpoint => checkpoint::checkpoint(k, agent),
        Syscall::CheckPolicy { action, resource } => {
            check_policy::check_policy(k, agent, action, resource)
        }
        Syscall::Signal { target, signal } => signal::signal(k, agent, *target, *signal).await,
        Syscall::Exit { code } => exit::exit(agent, *code),
        Syscall::Send { to, payload } => send::send(k, agent, *to, payload),
        Syscall::Recv { timeout_ms } => recv::recv(agent, *timeout_ms).await.map(Reply::Message),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_calls_name_their_path() {
        let read = Syscall::Read {
            path: "/agent/2/mem/working/x".into(),
            offset: 0,
            len: None,
        };
        assert_eq!(path_of(&read), Some("/agent/2/mem/working/x"));
        assert_eq!(path_of(&Syscall::Checkpoint), None);
    }
}

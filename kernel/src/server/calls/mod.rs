//! One file per served syscall, owning its whole path: how the policy sees it (its
//! `classify`) and how it is performed (its perform function). This module is the one dispatch
//! table: each function here is one exhaustive `match` over `Syscall`, with no wildcard arm, so
//! a new syscall (its ABI variant and its file here) is a compile error at every place it must
//! be handled.
//!
//! [`perform`] runs a call that the policy has already allowed: host file work (workspace,
//! persistent store, checkpoints) on the bounded host I/O pool of [`crate::hostio`], in-memory
//! calls inline.

pub(crate) mod call;
mod check_policy;
mod checkpoint;
mod class;
mod close;
mod exec;
mod exit;
mod list;
pub(crate) mod list_tools;
mod open;
mod read;
mod read_fd;
mod recv;
mod rename;
mod send;
mod signal;
mod stat;
mod unlink;
mod write;
mod write_fd;

use std::sync::Arc;

use agentos_syscalls::{Errno, Reply, Syscall};

use crate::agent::Agent;
use crate::state::KernelInner;
pub(crate) use class::Class;

/// How the policy sees a call (see [`crate::server::judge::classify`], which checks its
/// bounds first): each call's own `classify`.
pub(crate) fn classify(call: &Syscall) -> Result<Option<Class>, Errno> {
    match call {
        Syscall::Read { path, .. } => read::classify(path),
        Syscall::Write { path, data, .. } => write::classify(path, data),
        Syscall::Open { path, mode } => open::classify(path, *mode),
        Syscall::Close { .. } => close::classify(),
        Syscall::List { path } => list::classify(path),
        Syscall::Stat { path } => stat::classify(path),
        Syscall::Unlink { path } => unlink::classify(path),
        Syscall::Rename { from, to } => rename::classify(from, to),
        Syscall::Exec { argv, stdin, .. } => exec::classify(argv, stdin),
        Syscall::Call {
            action,
            params_json,
        } => call::classify(action, params_json),
        Syscall::Send { to, payload } => send::classify(*to, payload),
        Syscall::Recv { .. } => recv::classify(),
        Syscall::Signal { target, .. } => signal::classify(*target),
        Syscall::CheckPolicy { .. } => check_policy::classify(),
        Syscall::Checkpoint => checkpoint::classify(),
        Syscall::Exit { .. } => exit::classify(),
        Syscall::ReadFd { .. } => read_fd::classify(),
        Syscall::WriteFd { .. } => write_fd::classify(),
        Syscall::ListTools => list_tools::classify(),
    }
}

/// The name of a `Send`'s target, when it has one (the judge matches `peers` by id or by
/// name); `None` for every other call.
pub(crate) fn peer_name(k: &KernelInner, call: &Syscall) -> Option<String> {
    let Syscall::Send { to, .. } = call else {
        return None;
    };
    send::target_name(&k.agents, *to)
}

/// The paths a file syscall names (to spot a reach into another agent's tree): one for most,
/// two for `Rename`. A `CheckPolicy` dry run is never a violation, so it names none.
pub(crate) fn paths_of(call: &Syscall) -> [Option<&str>; 2] {
    match call {
        Syscall::Read { path, .. }
        | Syscall::Write { path, .. }
        | Syscall::Open { path, .. }
        | Syscall::List { path }
        | Syscall::Stat { path }
        | Syscall::Unlink { path } => [Some(path), None],
        Syscall::Rename { from, to } => [Some(from), Some(to)],
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
        | Syscall::WriteFd { .. }
        | Syscall::ListTools => [None, None],
    }
}

/// Performs an allowed call. A call that touches the host (see [`on_host`]) runs on the
/// bounded host I/O pool ([`crate::hostio`]); the rest runs inline. `call` is borrowed
/// mutably only to lend a `Write`/`WriteFd` payload to the pool without copying it; it is
/// put back before this returns (lost only if the pool task panicked).
pub(crate) async fn perform(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    call: &mut Syscall,
) -> Result<Reply, Errno> {
    if on_host(agent, call) {
        return Box::pin(on_pool(k, agent, call)).await;
    }
    match call {
        Syscall::Read { path, offset, len } => read::read(&k.tree(), agent, path, *offset, *len),
        Syscall::Write { path, data, mode } => write::write(&k.tree(), agent, path, data, *mode),
        Syscall::List { path } => list::list(&k.tree(), agent, path),
        Syscall::Stat { path } => stat::stat(&k.tree(), agent, path),
        Syscall::Unlink { path } => unlink::unlink(&k.tree(), agent, path),
        Syscall::Rename { from, to } => rename::rename(&k.tree(), agent, from, to),
        Syscall::Open { path, mode } => open::open(&k.tree(), agent, path, *mode),
        Syscall::Close { fd } => close::close(agent, *fd),
        Syscall::ReadFd { fd, len } => read_fd::read_fd(&k.tree(), agent, *fd, *len),
        Syscall::WriteFd { fd, data } => write_fd::write_fd(&k.tree(), agent, *fd, data),
        Syscall::Checkpoint => checkpoint::checkpoint(&k.tree(), agent),
        Syscall::CheckPolicy { action, resource } => {
            check_policy::check_policy(k.config.base_policy.as_ref(), agent, action, resource)
        }
        Syscall::Signal { target, signal } => {
            Box::pin(signal::signal(k, agent, *target, *signal)).await
        }
        Syscall::Exit { code } => exit::exit(agent, *code),
        Syscall::Send { to, payload } => send::send(&k.agents, agent, *to, payload),
        Syscall::Recv { timeout_ms } => Box::pin(recv::recv(agent, *timeout_ms))
            .await
            .map(Reply::Message),
        Syscall::Call {
            action,
            params_json,
        } => Box::pin(call::call(k, agent, action, params_json)).await,
        Syscall::Exec {
            argv,
            stdin,
            cwd,
            timeout_ms,
        } => {
            Box::pin(exec::exec(
                k,
                agent,
                argv,
                stdin,
                cwd.as_deref(),
                *timeout_ms,
            ))
            .await
        }
        Syscall::ListTools => Box::pin(list_tools::list_tools(k, agent)).await,
    }
}

/// Whether performing `call` touches the host: a file call on the workspace, the persistent
/// store or the checkpoints, a descriptor of one, or `Checkpoint` (which writes to disk).
fn on_host(agent: &Agent, call: &Syscall) -> bool {
    match call {
        Syscall::Read { path, .. }
        | Syscall::Write { path, .. }
        | Syscall::Open { path, .. }
        | Syscall::List { path }
        | Syscall::Stat { path }
        | Syscall::Unlink { path } => crate::tree::path_on_host(agent, path),
        Syscall::Rename { from, to } => {
            crate::tree::path_on_host(agent, from) || crate::tree::path_on_host(agent, to)
        }
        Syscall::ReadFd { fd, .. } | Syscall::WriteFd { fd, .. } => {
            crate::tree::fd_on_host(agent, *fd)
        }
        Syscall::Checkpoint => true,
        // Close drops a descriptor (closing a regular file does not wait); the rest are not
        // file calls (Exec and Call have their own sandboxes and timeouts).
        Syscall::Close { .. }
        | Syscall::Exec { .. }
        | Syscall::Call { .. }
        | Syscall::Send { .. }
        | Syscall::Recv { .. }
        | Syscall::Signal { .. }
        | Syscall::CheckPolicy { .. }
        | Syscall::Exit { .. }
        | Syscall::ListTools => false,
    }
}

/// Runs a host file call on the pool, within the agent's and the kernel's host I/O slots.
async fn on_pool(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    call: &mut Syscall,
) -> Result<Reply, Errno> {
    let (kc, a) = (Arc::clone(k), Arc::clone(agent));
    let pool = &k.host_io;
    let slots = &agent.tree.io_slots;
    match call {
        Syscall::Read { path, offset, len } => {
            let (path, offset, len) = (path.clone(), *offset, *len);
            pool.run(slots, move || {
                read::read(&kc.tree(), &a, &path, offset, len)
            })
            .await?
        }
        Syscall::Write { path, data, mode } => {
            let (p, lent, mode) = (path.clone(), std::mem::take(data), *mode);
            let (back, result) = pool
                .run(slots, move || {
                    let r = write::write(&kc.tree(), &a, &p, &lent, mode);
                    (lent, r)
                })
                .await?;
            *data = back;
            result
        }
        Syscall::List { path } => {
            let path = path.clone();
            pool.run(slots, move || list::list(&kc.tree(), &a, &path))
                .await?
        }
        Syscall::Stat { path } => {
            let path = path.clone();
            pool.run(slots, move || stat::stat(&kc.tree(), &a, &path))
                .await?
        }
        Syscall::Unlink { path } => {
            let path = path.clone();
            pool.run(slots, move || unlink::unlink(&kc.tree(), &a, &path))
                .await?
        }
        Syscall::Rename { from, to } => {
            let (from, to) = (from.clone(), to.clone());
            pool.run(slots, move || rename::rename(&kc.tree(), &a, &from, &to))
                .await?
        }
        Syscall::Open { path, mode } => {
            let (path, mode) = (path.clone(), *mode);
            pool.run(slots, move || open::open(&kc.tree(), &a, &path, mode))
                .await?
        }
        Syscall::ReadFd { fd, len } => {
            let (fd, len) = (*fd, *len);
            pool.run(slots, move || read_fd::read_fd(&kc.tree(), &a, fd, len))
                .await?
        }
        Syscall::WriteFd { fd, data } => {
            let (fd, lent) = (*fd, std::mem::take(data));
            let (back, result) = pool
                .run(slots, move || {
                    let r = write_fd::write_fd(&kc.tree(), &a, fd, &lent);
                    (lent, r)
                })
                .await?;
            *data = back;
            result
        }
        Syscall::Checkpoint => {
            pool.run(slots, move || checkpoint::checkpoint(&kc.tree(), &a))
                .await?
        }
        Syscall::Close { .. }
        | Syscall::Exec { .. }
        | Syscall::Call { .. }
        | Syscall::Send { .. }
        | Syscall::Recv { .. }
        | Syscall::Signal { .. }
        | Syscall::CheckPolicy { .. }
        | Syscall::Exit { .. }
        | Syscall::ListTools => Err(Errno::Internal {
            reason: "a call that does not touch the host was sent to the host I/O pool".into(),
        }),
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
        assert_eq!(paths_of(&read), [Some("/agent/2/mem/working/x"), None]);
        assert_eq!(paths_of(&Syscall::Checkpoint), [None, None]);
        let rename = Syscall::Rename {
            from: "/workspace/a".into(),
            to: "/agent/2/workspace/b".into(),
        };
        assert_eq!(
            paths_of(&rename),
            [Some("/workspace/a"), Some("/agent/2/workspace/b")]
        );
    }
}

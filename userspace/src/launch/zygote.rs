//! The zygote: `agentos-launch --zygote KERNEL_PID`, one per kernel, started once by the
//! kernel's spawner and kept. For each agent the kernel sends it one request on its fd 0 (a
//! `SOCK_SEQPACKET` socket): one byte of flags ([`SHARE_NETWORK`]) then the jail spec's JSON
//! as the message, and three descriptors
//! (`SCM_RIGHTS`): the agent's socket, and the write ends of its stdout and stderr pipes. The
//! zygote `clone3`s the agent's init straight into new user, pid, ipc, uts, mount (and,
//! unless the spec shares the host's network, net) namespaces with `CLONE_PARENT` — so the
//! kernel, not the zygote, is its parent: the kernel reaps it, and its parent-death signal
//! watches the kernel's spawner thread as the launcher's did — and answers with the init's
//! pid (a little-endian `i32`) and a pidfd for it, or with `-errno` and no descriptor (the
//! kernel then starts the launcher the old way).
//!
//! A tool's clone ([`TOOL`]) differs in one step only: its fd 0 is the tool's stdin pipe,
//! taken from the one byte and descriptor the kernel queued on the report socket before the
//! request (as an exec'd tool launcher does with `AGENTOS_LAUNCH_TOOL_STDIN_ON_SOCKET`); if
//! nothing is queued there it builds nothing and exits [`EXIT_SANDBOX_FAILED`]. Everything
//! else — the namespaces (a network namespace of its own), the steps, the report and
//! listener on fd 3, the tool's fd 3 closed before its `execve` — is the exec'd launcher's.
//!
//! The clone runs [`super::steps::run_cloned`]: the launcher's and the init's steps in their
//! order, without an `execve` of the launcher, without the launcher process that used to stay
//! above the init, and without its `unshare` (the clone made the namespaces). Per agent there
//! are two processes, the init and the agent program; the zygote's memory is shared
//! copy-on-write by every init.
//!
//! Invariants: single-threaded (the clone is a `fork`-like copy of the only thread); the
//! zygote keeps no descriptor of a request past its answer; a clone replaces fd 0 (the
//! zygote's socket) before anything else and closes everything above fd 3 in its first
//! steps, so no agent holds the zygote's socket; the zygote dies with the kernel
//! (parent-death signal, parent checked after it is set).

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use super::os::LinuxSys;
use super::spec::EXIT_SANDBOX_FAILED;
use crate::sys::{self, Cloned};

/// The argument that makes `agentos-launch` a zygote (followed by the kernel's pid).
pub const ZYGOTE_ARG: &str = "--zygote";
/// The largest spec JSON a request may carry (after its flags byte); a larger one is started
/// the old way.
pub const MAX_REQUEST: usize = 128 << 10;
/// The request's first byte: the spec shares the host's network (no `CLONE_NEWNET`).
pub const SHARE_NETWORK: u8 = 1;
/// The request's first byte: clone an init *ahead* — no spec, no descriptors. The init is
/// born in all its namespaces (its own network namespace included), maps its ids, then waits
/// on a new `SOCK_SEQPACKET` socket for one request in the same form as the zygote's (the
/// flags byte, the spec, [`REQUEST_FDS`] descriptors). The answer carries the init's pid, its
/// pidfd and the other end of that socket (two descriptors). Nothing of it depends on what it
/// will serve: an agent's request (flags 0) or a tool's ([`TOOL`]), never [`SHARE_NETWORK`]
/// (its network namespace is made).
pub const AHEAD: u8 = 2;
/// The request's first byte: a tool, whose stdin pipe is queued on its report socket.
pub const TOOL: u8 = 4;
/// The descriptors of a request, in order: the agent's socket, its stdout and stderr.
pub const REQUEST_FDS: usize = 3;
/// The namespaces of every clone.
const NAMESPACES: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNS) as u64;

/// The zygote's loop; exits 0 when the kernel closes its socket.
pub fn main(kernel_pid: Option<u32>) -> ! {
    if let Err(e) = serve(kernel_pid) {
        eprintln!("agentos-launch --zygote: {e}");
        std::process::exit(EXIT_SANDBOX_FAILED)
    }
    std::process::exit(0)
}

fn serve(kernel_pid: Option<u32>) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(io::Error::from)?;
    let ppid = u32::try_from(nix::unistd::getppid().as_raw()).unwrap_or(0);
    if kernel_pid != Some(ppid) {
        return Err(io::Error::other(format!(
            "parent is {ppid}, not the kernel {kernel_pid:?}"
        )));
    }
    // Read before any clone: inside a new user namespace they read as the overflow id.
    let ids = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // The spec is never parsed (nor copied) here, only in the clone: the zygote's memory,
    // which every later clone copies, holds no agent's spec but in `buf` while it is served,
    // and `buf` is zeroed after each request.
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    while let Some((len, fds)) = receive(&mut buf)? {
        let flags = buf.first().copied().unwrap_or(0);
        if flags & AHEAD != 0 {
            // Nothing of any agent is in this process now: `buf` holds the flags byte alone
            // (every earlier request was zeroed) and no agent's descriptor is open.
            if !fds.is_empty() || len != 1 {
                return Err(io::Error::other(
                    "an ahead request carried a spec or descriptors",
                ));
            }
            clone_ahead(&mut buf, null.as_raw_fd(), ids, kernel_pid)?;
            buf[..len].fill(0);
            continue;
        }
        let fds: [OwnedFd; REQUEST_FDS] = fds.try_into().map_err(|got: Vec<OwnedFd>| {
            io::Error::other(format!(
                "a request carried {} descriptors, not {REQUEST_FDS}",
                got.len()
            ))
        })?;
        let namespaces = if flags & SHARE_NETWORK != 0 {
            NAMESPACES
        } else {
            NAMESPACES | libc::CLONE_NEWNET as u64
        };
        match sys::clone_init(namespaces) {
            Ok(Cloned::Child) => {
                let json =
                    String::from_utf8_lossy(buf.get(1..len).unwrap_or_default()).into_owned();
                clone_main(json, fds, null.as_raw_fd(), ids, false, flags & TOOL != 0)
            }
            Ok(Cloned::Parent { pid, pidfd }) => {
                sys::send_with_fd(0, &pid.to_le_bytes(), std::os::fd::AsFd::as_fd(&pidfd))?
            }
            Err(e) => {
                let errno = -e.raw_os_error().unwrap_or(libc::EINVAL);
                sys::write_all_fd(0, &errno.to_le_bytes())?
            }
        }
        drop(fds);
        buf[..len].fill(0);
    }
    Ok(())
}

/// Clones an init ahead of its agent (see [`AHEAD`]) and answers with its pid, its pidfd and
/// the kernel's end of its request socket, or with `-errno`.
fn clone_ahead(
    buf: &mut [u8],
    null: RawFd,
    ids: (u32, u32),
    kernel_pid: Option<u32>,
) -> io::Result<()> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    let pair = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    );
    let (kernel_end, init_end) = match pair {
        Ok(pair) => pair,
        Err(e) => return sys::write_all_fd(0, &(-e.raw_os_error()).to_le_bytes()),
    };
    match sys::clone_init(NAMESPACES | libc::CLONE_NEWNET as u64) {
        Ok(Cloned::Child) => {
            drop(kernel_end);
            wait_main(buf, init_end, null, ids, kernel_pid)
        }
        Ok(Cloned::Parent { pid, pidfd }) => {
            drop(init_end);
            use std::os::fd::AsFd;
            sys::send_with_fds(0, &pid.to_le_bytes(), &[pidfd.as_fd(), kernel_end.as_fd()])
        }
        Err(e) => {
            let errno = -e.raw_os_error().unwrap_or(libc::EINVAL);
            sys::write_all_fd(0, &errno.to_le_bytes())
        }
    }
}

/// The init cloned ahead: dies with the kernel, replaces the zygote's socket at fd 0 by its
/// own request socket, maps its ids, and waits for its one agent. Without a request (the
/// kernel dropped it: stopping, or the kernel gone) it exits 0 having run nothing of any
/// agent. Never returns.
fn wait_main(
    buf: &mut [u8],
    sock: OwnedFd,
    null_fd: RawFd,
    ids: (u32, u32),
    kernel_pid: Option<u32>,
) -> ! {
    let mut sys = LinuxSys::default();
    // Born without a parent-death signal (clone3 clears it): arm it, then make sure the
    // kernel did not die in between. Its parent is the kernel's spawner thread.
    let armed = super::os::Sys::set_pdeathsig(&mut sys);
    let parent = super::os::Sys::getppid(&mut sys);
    if armed.is_err() || kernel_pid != Some(parent) {
        sys::exit_now(EXIT_SANDBOX_FAILED)
    }
    // Its socket at fd 0, /dev/null at 3, nothing else of the zygote's above (the original
    // of the socket included): it waits holding its socket, /dev/null and stderr only.
    let raw = sock.into_raw_fd();
    let null = 3;
    let moved = sys::dup2_raw(raw, 0)
        .and_then(|()| sys::dup2_raw(null_fd, null))
        .and_then(|()| sys::close_from(4));
    if let Err(e) = moved {
        eprintln!("agentos-launch: a waiting init cannot set up its descriptors: {e}");
        sys::exit_now(EXIT_SANDBOX_FAILED)
    }
    if let Err(e) = super::steps::map_ids_ahead(&mut sys, ids) {
        eprintln!("agentos-launch: a waiting init cannot map its ids: {e}");
        sys::exit_now(EXIT_SANDBOX_FAILED)
    }
    let request = match receive(buf) {
        Ok(Some(request)) => request,
        Ok(None) => sys::exit_now(0),
        Err(e) => {
            eprintln!("agentos-launch: a waiting init got a broken request: {e}");
            sys::exit_now(EXIT_SANDBOX_FAILED)
        }
    };
    let (len, fds) = request;
    let flags = buf.first().copied().unwrap_or(0);
    let fds: Result<[OwnedFd; REQUEST_FDS], _> = fds.try_into();
    let Ok(fds) = fds else {
        eprintln!("agentos-launch: a waiting init's request lacks its descriptors");
        sys::exit_now(EXIT_SANDBOX_FAILED)
    };
    if flags & !TOOL != 0 {
        // Its network namespace is made: it cannot serve a spec that shares the host's.
        eprintln!("agentos-launch: a waiting init was sent flags {flags:#x}");
        sys::exit_now(EXIT_SANDBOX_FAILED)
    }
    let json = String::from_utf8_lossy(buf.get(1..len).unwrap_or_default()).into_owned();
    clone_main(json, fds, null, ids, true, flags & TOOL != 0)
}

/// The next request: its length in `buf` and its descriptors; `None` at the end.
fn receive(buf: &mut [u8]) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; REQUEST_FDS]);
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(0, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => msg,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SCM_RIGHTS just installed these in this process: each is owned once, here.
                fds.extend(raw.into_iter().map(sys::own_fd));
            }
        }
        let len = msg.bytes;
        let truncated = msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        if len == 0 && fds.is_empty() {
            return Ok(None);
        }
        if truncated {
            return Err(io::Error::other("a request was truncated"));
        }
        return Ok(Some((len, fds)));
    }
}

/// The clone: puts `/dev/null` at fd 0 (replacing the zygote's socket), the agent's log pipes
/// at 1 and 2, its socket at 3 — a `tool`'s stdin pipe, queued on that socket, at 0 — then
/// runs the jail. Never returns.
fn clone_main(
    json: String,
    fds: [OwnedFd; REQUEST_FDS],
    null: RawFd,
    ids: (u32, u32),
    mapped: bool,
    tool: bool,
) -> ! {
    let [agent, out, err] = fds.map(IntoRawFd::into_raw_fd);
    let moved = sys::dup2_raw(null, 0)
        .and_then(|()| sys::dup2_raw(out, 1))
        .and_then(|()| sys::dup2_raw(err, 2))
        .and_then(|()| sys::dup2_raw(agent, agentos_syscalls::AGENT_FD));
    if let Err(e) = moved {
        eprintln!("agentos-launch: set up the init's descriptors: {e}");
        sys::exit_now(EXIT_SANDBOX_FAILED)
    }
    if tool {
        if let Err(e) = sys::stdin_from_socket(agentos_syscalls::AGENT_FD) {
            // No report: the kernel sees EXIT_SANDBOX_FAILED and this line, as from a launcher.
            eprintln!("agentos-launch: take the tool's stdin from the report socket: {e}");
            sys::exit_now(EXIT_SANDBOX_FAILED)
        }
    }
    // The rest (the originals, the zygote's /dev/null and buffer) is closed or dropped by the
    // steps' close_range and the exit.
    let code = super::steps::run_cloned(&mut LinuxSys::default(), Ok(json), ids, mapped);
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clone_gets_every_namespace_but_net_only_without_network() {
        assert_eq!(NAMESPACES & libc::CLONE_NEWNET as u64, 0);
        for flag in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWNS,
        ] {
            assert_ne!(NAMESPACES & flag as u64, 0);
        }
    }
}

//! Raw process control: the only `unsafe` in the kernel, plus the `/proc` walk that finds an
//! agent's process tree.
//!
//! An agent's tree, as the launcher builds it (pids as the kernel sees them):
//!
//! ```text
//! launcher L (child of the kernel)
//!   └─ init I (pid 1 of the agent's pid namespace; reaper)
//!        └─ agent A (session and process-group leader) ─ whatever A forks
//! ```
//!
//! Killing I empties the whole pid namespace (the kernel kills every other process in it
//! and I's exit waits for them), and L exits once I is reaped — so L's exit means the tree
//! is gone.

use std::io;
use std::os::fd::RawFd;

/// Bytes written to a Unix socket that its peer has not read yet (`SIOCOUTQ`).
pub(crate) fn unread_bytes(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int through the pointer, which points at `n`.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

/// Sends a POSIX signal to a process (`pid > 0`) or a process group (`pid < 0`).
/// A target that is already gone is not an error.
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// `(pid, ppid, state)` of every process, read from `/proc/<pid>/stat`.
pub(crate) fn process_table() -> Vec<(u32, u32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((state, ppid)) = parse_stat(&stat) {
            out.push((pid, ppid, state));
        }
    }
    out
}

/// The state and parent pid from a `/proc/<pid>/stat` line. The command name may hold
/// spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether no thread of `pid` is running or runnable (`/proc/<pid>/task/*/stat`): each
/// sleeps, waits on disk, is stopped or is a zombie. A process that is gone is at rest.
pub(crate) fn at_rest(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .is_none_or(|(state, _)| state != 'R')
    })
}

/// The parent of `pid` (`/proc/<pid>/stat`), `None` when it is gone.
pub(crate) fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, ppid)| ppid)
}

/// The direct children of `pid`, lowest pid first.
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let mut kids: Vec<u32> = process_table()
        .into_iter()
        .filter(|p| p.1 == pid)
        .map(|p| p.0)
        .collect();
    kids.sort_unstable();
    kids
}

/// Takes ownership of an inherited descriptor (the readiness pipe), after checking that it is
/// open.
pub(crate) fn file_from_fd(fd: RawFd) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only queries the descriptor table.
    if fd < 1 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not open"),
        ));
    }
    // SAFETY: `fd` is open (checked above), inherited for us alone, and owned by nothing else
    // in this process; the File takes sole ownership and closes it on drop.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        assert_eq!(parse_stat("42 (a b) c) S 7 42 42 0"), Some(('S', 7)));
        assert_eq!(parse_stat("1 (init) R 0 1"), Some(('R', 0)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn finds_own_children() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(children(me).contains(&child.id()));
        assert!(process_table()
            .iter()
            .any(|&(p, pp, _)| p == child.id() && pp == me));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_sleeping_process_is_at_rest_and_a_spinning_one_is_not() {
        let mut sleeper = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut spinner = std::process::Command::new("/bin/sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        // The sleeper settles into its nanosleep within moments of its exec.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !at_rest(sleeper.id()) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(at_rest(sleeper.id()));
        // The spinner, once in its loop (its start — the exec, the loader's page-ins — may
        // block for a moment), never sleeps: running or runnable at every look.
        while at_rest(spinner.id()) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!((0..20).all(|_| !at_rest(spinner.id())));
        for c in [&mut sleeper, &mut spinner] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        assert!(at_rest(sleeper.id()), "a reaped process is at rest");
    }
}

/// One seccomp user notification: a syscall the agent's filter did not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeccompNotification {
    /// The kernel's cookie for the answer.
    pub id: u64,
    /// The caller, as this process's pid namespace sees it.
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// Answers notification `id` with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the host kernel runs
/// the call as if the filter had allowed it (every other layer still applies). A caller that
/// died meanwhile (`ENOENT`) is not an error.
pub(crate) fn seccomp_notif_continue(fd: RawFd, id: u64) -> io::Result<()> {
    seccomp_notif_send(
        fd,
        libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        },
    )
}

/// `SECCOMP_IOCTL_NOTIF_SEND` of `resp`; a caller that died meanwhile (`ENOENT`) is not an
/// error.
fn seccomp_notif_send(fd: RawFd, mut resp: libc::seccomp_notif_resp) -> io::Result<()> {
    // SAFETY: the ioctl reads one `struct seccomp_notif_resp` through the pointer, which
    // points at `resp`, a live value of exactly that type.
    if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) } < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        return Err(err);
    }
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether notification `id` is still pending (its caller is
/// still blocked in that very syscall), so memory read from the caller belongs to it.
pub(crate) fn seccomp_notif_id_valid(fd: RawFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one `u64` through the pointer, which points at `id`.
    unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
}

/// Reads up to `buf.len()` bytes at `addr` in process `pid`'s memory (`process_vm_readv`;
/// a read that crosses into an unmapped page stops there). Returns the bytes read.
pub(crate) fn read_remote(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: `local` describes `buf`, which is live and writable for its whole length; the
    // remote iovec is only read by the host kernel, which checks it against the other process.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `SECCOMP_IOCTL_NOTIF_RECV` on a listener. Blocks unless a notification is pending (check
/// with [`poll_now`] first).
pub(crate) fn seccomp_notif_recv(fd: RawFd) -> io::Result<SeccompNotification> {
    // SAFETY: `seccomp_notif` is plain integers, for which all-zero bytes are a valid value
    // (the kernel also requires the buffer zeroed).
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one `struct seccomp_notif` through the pointer, which points at
    // `n`, a live value of exactly that type.
    if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SeccompNotification {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: fails the notified syscall with `errno`. A caller that is gone
/// meanwhile (`ENOENT`) is not an error.
pub(crate) fn seccomp_notif_deny(fd: RawFd, id: u64, errno: i32) -> io::Result<()> {
    seccomp_notif_send(
        fd,
        libc::seccomp_notif_resp {
            id,
            val: 0,
            error: -errno,
            flags: 0,
        },
    )
}

/// `poll(fd, 0)`: `(readable, hung up)` right now.
pub(crate) fn poll_now(fd: RawFd) -> io::Result<(bool, bool)> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes exactly one `pollfd`, which `p` is, for the duration of
    // the call (timeout 0: it does not block).
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((
        p.revents & libc::POLLIN != 0,
        p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0,
    ))
}

/// Registers an owned descriptor with the tokio reactor for readability.
pub(crate) fn async_fd_readable(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: an `OwnedFd` is open until dropped and always returns the same descriptor; the
    // `AsyncFd` takes ownership of it, so it stays open for the registration's lifetime.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}

/// How every `/workspace` path is resolved: never above the workspace root (`..`, absolute
/// symlinks and symlinks climbing out fail with `EXDEV`), never through a magic link
/// (`/proc/self/root`, `/proc/*/fd/*`: `ELOOP`), never across a mount point (a bind mount
/// inside the workspace pointing elsewhere: `EXDEV`).
pub(crate) fn workspace_resolve() -> rustix::fs::ResolveFlags {
    use rustix::fs::ResolveFlags;
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV
}

/// Opens the workspace root as an `O_PATH` directory descriptor (at spawn; every later access
/// is resolved beneath it with [`open_beneath`]).
pub(crate) fn open_workspace_root(path: &std::path::Path) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// `openat2(root, rel, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode, RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` (only `O_CLOEXEC` is added to an `O_PATH` open).
/// `rel` is relative (`.` for the root itself). `O_NONBLOCK` makes the open itself never wait
/// (a FIFO without a peer opens at once for reading and fails with `ENXIO` for writing) and
/// changes nothing for a regular file or a directory; `O_NOCTTY` keeps a terminal from
/// becoming the kernel's. The caller checks the type of what it opened (`fstat` on the
/// opened descriptor) before it reads or writes. `EAGAIN` (a concurrent rename seen by the
/// resolver) is retried a bounded number of times.
pub(crate) fn open_beneath(
    root: std::os::fd::BorrowedFd<'_>,
    rel: &str,
    flags: rustix::fs::OFlags,
    mode: u32,
) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::OFlags;
    let mode = rustix::fs::Mode::from_raw_mode(mode);
    // `openat2` refuses any flag beside `O_PATH` but these three (`EINVAL`); an `O_PATH`
    // open opens nothing for I/O and never waits.
    let flags = if flags.contains(OFlags::PATH) {
        flags | OFlags::CLOEXEC
    } else {
        flags | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
    };
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(root, rel, flags, mode, workspace_resolve()) {
            Err(rustix::io::Errno::AGAIN) if tries < 16 => tries += 1,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// `mkdirat(dir, name, mode)` for one component in a directory opened beneath the workspace.
pub(crate) fn mkdir_in(dir: std::os::fd::BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<()> {
    rustix::fs::mkdirat(dir, name, rustix::fs::Mode::from_raw_mode(mode)).map_err(io::Error::from)
}

/// `unlinkat(dir, name, 0)` for one component in a directory opened beneath the workspace.
pub(crate) fn unlink_in(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> io::Result<()> {
    rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty()).map_err(io::Error::from)
}

/// `renameat(from_dir, from, to_dir, to)` for one component in each of two directories opened
/// beneath the workspace. Neither name is followed (a symlink is moved, not its target), and a
/// single component cannot leave its directory.
pub(crate) fn rename_in(
    from_dir: std::os::fd::BorrowedFd<'_>,
    from: &str,
    to_dir: std::os::fd::BorrowedFd<'_>,
    to: &str,
) -> io::Result<()> {
    rustix::fs::renameat(from_dir, from, to_dir, to).map_err(io::Error::from)
}

/// The entries of a directory opened beneath the workspace: `(name, is_dir, size)`, not
/// following symlinks (a symlink is listed as a file of its own size). FIFOs, sockets and
/// devices are left out: the workspace serves only regular files and directories.
pub(crate) fn list_dir(dir: std::os::fd::OwnedFd) -> io::Result<Vec<(String, bool, u64)>> {
    use rustix::fs::{AtFlags, FileType};
    let mut out = Vec::new();
    let d = rustix::fs::Dir::read_from(&dir).map_err(io::Error::from)?;
    for entry in d {
        let entry = entry.map_err(io::Error::from)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        if !matches!(
            kind,
            FileType::RegularFile | FileType::Directory | FileType::Symlink
        ) {
            // FIFOs, sockets and devices are not served from the workspace: not listed.
            continue;
        }
        let is_dir = kind == FileType::Directory;
        out.push((name, is_dir, if is_dir { 0 } else { st.st_size as u64 }));
    }
    Ok(out)
}

/// Makes the allocator give large freed buffers back to the host at once: allocations of
/// 256 KiB or more are `mmap`ed and `munmap`ed when freed. Without it glibc raises its mmap
/// threshold after the first large free (up to 32 MiB) and from then on keeps freed frame
/// buffers in its per-thread arenas, so the largest frames agents ever sent would stay
/// resident in every worker thread's arena (DESIGN §10: the kernel's memory under attack).
pub(crate) fn return_large_frees_to_the_host() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `mallopt` only sets an allocator parameter; M_MMAP_THRESHOLD with a value
    // within glibc's accepted range (at most 32 MiB on 64-bit hosts) touches no memory.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

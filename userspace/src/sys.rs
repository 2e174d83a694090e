//! The one module of `agentos-userspace` allowed `unsafe`: raw Linux calls that have no safe
//! wrapper in `nix`/`rustix`, or whose wrapper is `unsafe` (`fork`, borrowing a raw fd).
//!
//! Invariants: every `unsafe` block carries a `// SAFETY:` line; nothing here keeps state;
//! functions return `std::io::Error` built from `errno`, never panic.

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, RawFd};

/// Which side of a `fork` we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Parent { child: i32 },
    Child,
}

/// `fork(2)`.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: the launcher is single-threaded (it never starts a thread), so the child is a
    // complete copy of the only thread and may run arbitrary code, including allocation.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent {
            child: child.as_raw(),
        }),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// `close_range(first, ~0, 0)`: closes every descriptor from `first` up.
pub(crate) fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers and touches no memory of ours. The launcher
    // holds no Rust object owning a descriptor >= `first` at this point (it is called before
    // any is opened), so no owner is left with a dangling fd.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes all of `bytes` to the raw descriptor `fd`, which the caller keeps owning.
pub(crate) fn write_all_fd(fd: RawFd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: the descriptor is only borrowed for the writes below; if it is not open the
    // write fails with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::unistd::write(borrowed, rest) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Moves the descriptor at fd 0 to `target` (close-on-exec clear) and puts `/dev/null` on
/// fd 0: how the launcher takes the agent socket the kernel handed it as stdin.
pub(crate) fn move_stdin_to(target: RawFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 takes two plain integers; the launcher is single-threaded and nothing in
    // Rust owns `target` (it is free, or an inherited descriptor dup2 replaces). The copy it
    // makes has FD_CLOEXEC clear.
    if unsafe { libc::dup2(0, target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: as above; fd 0 is replaced atomically, `null` (a Rust owner) is closed after.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes the one descriptor queued on the socket at `sock` (one byte with `SCM_RIGHTS`, sent
/// by the kernel before it started the launcher, so this never waits) and puts it at fd 0: a
/// tool's stdin pipe, when the kernel started the launcher without a pre-exec hook (see
/// [`crate::launch::TOOL_STDIN_ON_SOCKET_ENV`]). Fails if nothing, or no descriptor, is queued.
pub(crate) fn stdin_from_socket(sock: RawFd) -> io::Result<()> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, OwnedFd};
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock,
        &mut iov,
        Some(space.as_mut_slice()),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: each descriptor was just created in this process by recvmsg
            // (SCM_RIGHTS); nothing else owns it, so the OwnedFd is its only owner.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if msg.bytes != 1 || received.len() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "expected one byte and one descriptor (the tool's stdin) on fd {sock}, got {} byte(s) and {} descriptor(s)",
                msg.bytes,
                received.len()
            ),
        ));
    }
    // SAFETY: dup2 takes two plain integers; the source is open (owned by `received`) and fd 0
    // is replaced atomically; the copy has FD_CLOEXEC clear. `received` closes the original.
    if unsafe { libc::dup2(received[0].as_raw_fd(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `close(fd)` on a raw descriptor nothing in Rust owns (an inherited one such as fd 3).
pub(crate) fn close_raw(fd: RawFd) -> io::Result<()> {
    // SAFETY: close takes a plain integer; the caller guarantees no Rust owner of `fd` exists.
    let rc = unsafe { libc::close(fd) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Drops every capability from the bounding set, including ones newer than the `caps` crate
/// knows: `PR_CAPBSET_DROP` for each number until the kernel answers EINVAL (past the last).
pub(crate) fn drop_bounding_set() -> io::Result<()> {
    // Dropping a capability the set does not hold is no error (with CAP_SETPCAP, which
    // `lock_securebits` just needed too), so none is read first; EINVAL ends the numbers the
    // running kernel knows.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only; no memory is passed.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                return Ok(());
            }
            return Err(err);
        }
    }
    Ok(())
}

/// The capability numbers still in the bounding set (for verification after the drop).
pub(crate) fn bounding_set() -> io::Result<Vec<u32>> {
    let mut left = Vec::new();
    for cap in 0..64u32 {
        // SAFETY: prctl with integer arguments only; no memory is passed.
        let has = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
        if has < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(err);
        }
        if has == 1 {
            left.push(cap);
        }
    }
    Ok(left)
}

/// Locks the "root is not special" securebits (`NOROOT`, `NO_SETUID_FIXUP`, `KEEP_CAPS`
/// locked off, `NO_CAP_AMBIENT_RAISE`), so uid 0 inside the user namespace regains no
/// capability on `execve`. Needs `CAP_SETPCAP`, so it runs before the capability drop.
pub(crate) fn lock_securebits() -> io::Result<()> {
    const NOROOT: libc::c_ulong = 1 << 0;
    const NOROOT_LOCKED: libc::c_ulong = 1 << 1;
    const NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    const NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
    const KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
    const NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
    const NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;
    let bits = NOROOT
        | NOROOT_LOCKED
        | NO_SETUID_FIXUP
        | NO_SETUID_FIXUP_LOCKED
        | KEEP_CAPS_LOCKED
        | NO_CAP_AMBIENT_RAISE
        | NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Empties the process environment. Only sound because the launcher is single-threaded: no
/// other thread can be reading the environment concurrently.
pub(crate) fn clear_env() {
    let keys: Vec<_> = std::env::vars_os().map(|(k, _)| k).collect();
    for key in keys {
        std::env::remove_var(key);
    }
}

/// `execve(program, argv, env)`. Returns only on failure.
/// Starts `program` with `posix_spawn`, a vfork: the child borrows this process's memory
/// until its `execve`, so none of it is copied (no page tables, no copy-on-write faults after).
/// The child is in a new session (`POSIX_SPAWN_SETSID`), has `close` closed first, this
/// process's working directory and exactly `env`. Returns its pid; an error is the child's
/// (`setsid`, the close or `execve`), known before this returns (the C library reaps such a
/// child).
pub(crate) fn spawn(
    program: &CString,
    argv: &[CString],
    env: &[CString],
    close: Option<RawFd>,
) -> io::Result<i32> {
    use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_flags(PosixSpawnFlags::from_bits_retain(libc::c_int::from(
        libc::POSIX_SPAWN_SETSID,
    )))?;
    let mut actions = PosixSpawnFileActions::init()?;
    if let Some(fd) = close {
        actions.add_close(fd)?;
    }
    let pid = posix_spawn(program.as_c_str(), &actions, &attr, argv, env)?;
    Ok(pid.as_raw())
}

/// Sets `IFF_UP` on the network interface `name` (`SIOCGIFFLAGS`, then `SIOCSIFFLAGS`) through
/// a throwaway `AF_INET` datagram socket. Needs `CAP_NET_ADMIN` over the network namespace.
pub(crate) fn interface_up(name: &str) -> io::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is plain data (a byte array and a union of integers and plain structs),
    // for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated `ifr_name` and writes `ifr_flags`, both
    // inside `req`, which is a live, correctly sized `struct ifreq` for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel has just written the flags member of the union (SIOCGIFFLAGS).
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS only reads `ifr_name` and `ifr_flags` from `req`, a live, correctly
    // sized `struct ifreq`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs the BPF program `prog` on the calling thread with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER` and returns the user-notification listener
/// (close-on-exec, as the kernel creates it). Needs `no_new_privs` (or `CAP_SYS_ADMIN`).
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (`include/uapi/linux/seccomp.h`; not in libc).
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u64 = 1 << 5;

pub(crate) fn seccomp_with_listener(
    prog: &[seccompiler::sock_filter],
) -> io::Result<std::os::fd::OwnedFd> {
    let len = u16::try_from(prog.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        // seccompiler's `sock_filter` is `#[repr(C)]` with the same fields, in the same order,
        // as the kernel's (and libc's) `struct sock_filter`.
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // Once the kernel has received a notification, only a fatal signal interrupts the waiting
    // call (Linux 5.19+): a signal handler without SA_RESTART would otherwise see EINTR from a
    // call that never fails so (an open of a regular file, a large mmap). Older hosts: without.
    let install = |flags: u64| {
        // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the
        // program before returning and writes nothing into our memory.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            )
        }
    };
    let mut rc =
        install(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
    if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        rc = install(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
    }
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(rc).map_err(|_| io::Error::other("seccomp returned a bad fd"))?;
    // SAFETY: the kernel just created this descriptor for us; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Sends `bytes` on the raw socket `sock` (which the caller keeps owning) with `fd` attached
/// as `SCM_RIGHTS`, in one `sendmsg`.
pub(crate) fn send_with_fd(sock: RawFd, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    send_with_fds(sock, bytes, &[fd])
}

/// [`send_with_fd`] with several descriptors attached, in their order.
pub(crate) fn send_with_fds(sock: RawFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let fds: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [io::IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg(
            sock,
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None::<&nix::sys::socket::UnixAddr>,
        ) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("sendmsg sent {n} of {} bytes", bytes.len()),
                ))
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`: the host's landlock
/// ABI version.
pub(crate) fn landlock_abi() -> io::Result<i64> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: a null attribute pointer with size 0 is the documented way to ask for the
    // version; the kernel reads no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `_exit(code)`: leaves a forked child without running the parent's exit handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Which side of [`clone_init`] we are on.
#[derive(Debug)]
pub enum Cloned {
    /// The zygote: the child's pid (in the zygote's pid namespace) and a pidfd for it.
    Parent {
        pid: i32,
        pidfd: std::os::fd::OwnedFd,
    },
    Child,
}

/// The first 64 bytes of `struct clone_args` (`CLONE_ARGS_SIZE_VER0`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// `clone3(CLONE_PARENT | CLONE_PIDFD | namespaces)` without a new stack (the child goes on
/// like after `fork`): the child is a sibling of the caller (the kernel is its parent, reaps
/// it and is the parent its death signal watches), in new namespaces of `namespaces`
/// (`CLONE_NEW*` flags), with full capabilities in its new user namespace.
pub(crate) fn clone_init(namespaces: u64) -> io::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: libc::CLONE_PARENT as u64 | libc::CLONE_PIDFD as u64 | namespaces,
        // The pidfd's address; exit_signal stays 0 (CLONE_PARENT: the caller's own is used).
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        ..CloneArgs::default()
    };
    // SAFETY: the zygote is single-threaded (it never starts a thread), so the child is a
    // complete copy of the only thread and may run arbitrary code, as after fork; `args`
    // lives across the call and its size is the one passed; the kernel writes only `pidfd`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        rc if rc < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => {
            let pid = i32::try_from(pid).map_err(|_| io::Error::other("clone3: bad pid"))?;
            // SAFETY: CLONE_PIDFD made the kernel store a new descriptor here, ours alone.
            let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) };
            Ok(Cloned::Parent { pid, pidfd })
        }
    }
}

/// `dup2(from, to)` (clears `FD_CLOEXEC` on `to`).
pub(crate) fn dup2_raw(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table; `to` is replaced as intended by the
    // caller, who owns both numbers in this single-threaded process.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of `fd`, a descriptor the kernel just installed (`SCM_RIGHTS`).
pub(crate) fn own_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    // SAFETY: the caller passes a descriptor nothing else in this process owns.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// `malloc_trim(0)`: returns every whole free page of the heap to the host.
pub(crate) fn trim_heap() {
    // SAFETY: malloc_trim only inspects and shrinks the allocator's own free lists; the
    // launcher is single-threaded, so no allocation runs concurrently.
    unsafe {
        libc::malloc_trim(0);
    }
}

//! Sandbox events for what the jail refuses without seccomp: paths the agent's root hides or
//! keeps read-only, and signals aimed outside its pid namespace.
//!
//! ```text
//! agent ── openat/linkat/…/connect/kill … ──► filter: SECCOMP_RET_USER_NOTIF (seccomp_table::NOTIFIED)
//!        watch(): inspect() ── reads the path from the caller (process_vm_readv), re-checks
//!        the notification id, resolves the path inside the agent's root (/proc/<pid>/root,
//!        RESOLVE_IN_ROOT) ── refused by the jail? ─► record SandboxAccess
//!        ◄── CONTINUE (always) ── the host kernel runs the call under the jail
//! ```
//!
//! Why CONTINUE is sound: this module decides nothing. The mount namespace (the minimal root),
//! landlock and the pid namespace enforce exactly as they would without it, and the agent sees
//! their errno, not one modelled here. The path is read from memory the agent controls, so a
//! racing thread can change it between our read and the host kernel's (TOCTOU): that can only
//! hide an attempt from the log (or log a harmless one), never let it succeed.
//!
//! What counts as refused (recorded):
//! - a path that exists on the host but not in the agent's root (`/etc/shadow`,
//!   `/proc/<kernel pid>/mem`, the control socket, a link the agent made in scratch that leads
//!   out); a path that exists nowhere is a plain miss (runtimes probe for optional files), and a
//!   read-only runtime link that leads out of the root is the runtime's own, not an attempt:
//!   neither is recorded;
//! - a write (open for writing or creating, `truncate`) of a path outside the agent's scratch
//!   directory and devices (the root and every bind but scratch are read-only), or a change of
//!   an entry or inode outside scratch, devices included (their data is the agent's, their
//!   inodes and `/dev` entries the host's): link, rename, symlink, `mkdir`, `unlink`/`rmdir`,
//!   `chmod`, `chown`, `utimensat`. A new name that exists already (`mkdir`, `link`,
//!   `symlink`) fails with `EEXIST` before the jail looks, and an empty or NULL path
//!   (`AT_EMPTY_PATH`, `futimens`) is an operation on a descriptor: neither is recorded; a
//!   path through the caller's own `/proc/self/fd/N` is judged where that descriptor leads;
//! - an abstract Unix socket that is not bound in the agent's own network namespace;
//! - a signal to a pid (or process group) that does not exist in the agent's pid namespace,
//!   or `kill(-1)` by anyone but the agent's init (the launcher's final sweep).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::sys::{self, SeccompNotification};

/// One refused attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub syscall: String,
    pub target: String,
    pub why: String,
}

/// Where the agent may write: its scratch directory (and everything under it) and its devices;
/// and the runtime's read-only directories, whose reads need no look (see [`Writable::runtime_read`]).
#[derive(Debug, Clone)]
pub(crate) struct Writable {
    pub scratch: PathBuf,
    pub devices: Vec<PathBuf>,
    pub runtime: Vec<PathBuf>,
    /// More directories the jail binds writable: a tool's read-write workspace (at its host
    /// path and at `/workspace`, as the jail shows it) and a provider's `rw=` dirs.
    pub extra: Vec<PathBuf>,
}

impl Writable {
    /// A read of an absolute path under a runtime directory (`/usr`, `/lib`, …) without `..`:
    /// the root binds those trees whole, so the path is there exactly when it is on the host,
    /// and a runtime link that leads out is not recorded anyway. The common case of a start-up
    /// (the loader, an interpreter's library) is answered without touching `/proc`.
    pub fn runtime_read(&self, raw: &[u8]) -> bool {
        let path = Path::new(OsStr::from_bytes(raw));
        path.is_absolute()
            && !path.components().any(|c| c == Component::ParentDir)
            && self.runtime.iter().any(|r| path.starts_with(r))
    }

    /// Whether `path` (absolute, as the agent's root shows it) is writable for the agent.
    pub fn allows(&self, path: &Path) -> bool {
        self.allows_change(path) || self.devices.iter().any(|d| d == path)
    }

    /// Whether the entry or inode at `path` may be changed (made, removed, renamed, linked,
    /// its mode, owner or times set): scratch and the extra dirs, not the devices, whose data
    /// alone is the agent's (the jail binds them read-only).
    pub fn allows_change(&self, path: &Path) -> bool {
        path.starts_with(&self.scratch) || self.extra.iter().any(|d| path.starts_with(d))
    }
}

/// The longest path read from an agent (`PATH_MAX`).
const PATH_MAX: usize = 4096;
/// Memory is read up to page boundaries (a read crossing into an unmapped page fails).
const PAGE: u64 = 4096;

/// Reads a NUL-terminated string at `addr` in `pid`, at most `PATH_MAX` bytes.
fn read_cstr(pid: u32, addr: u64) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < PATH_MAX {
        let room = (PAGE - at % PAGE) as usize;
        let mut buf = vec![0u8; room.min(PATH_MAX - out.len())];
        let n = sys::read_remote(pid, at, &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(out);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    None
}

/// Reads exactly `len` bytes at `addr` in `pid`.
fn read_bytes(pid: u32, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = sys::read_remote(pid, addr + got as u64, &mut buf[got..]).ok()?;
        if n == 0 {
            return None;
        }
        got += n;
    }
    Some(buf)
}

/// The agent-side view of one caller: its host tid and how to reach its root.
struct Caller {
    pid: u32,
}

impl Caller {
    fn proc(&self, what: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{what}", self.pid))
    }

    /// `(tgid, tid)` of the caller in its own pid namespace (the last `NStgid`/`NSpid` fields).
    fn ns_ids(&self) -> Option<(u32, u32)> {
        let status = std::fs::read_to_string(self.proc("status")).ok()?;
        let last = |key: &str| -> Option<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))?
                .split_whitespace()
                .last()?
                .parse()
                .ok()
        };
        Some((last("NStgid:")?, last("NSpid:")?))
    }

    /// Whether pid `n` of the agent's pid namespace exists (its own `/proc`, through its root).
    fn pid_exists(&self, n: u32) -> bool {
        std::fs::symlink_metadata(self.proc(&format!("root/proc/{n}"))).is_ok()
    }

    /// The directory a relative path of the caller starts from, as the agent sees it.
    fn base(&self, dirfd: i32) -> Option<PathBuf> {
        let link = if dirfd == libc::AT_FDCWD {
            self.proc("cwd")
        } else {
            self.proc(&format!("fd/{dirfd}"))
        };
        let base = std::fs::read_link(link).ok()?;
        base.is_absolute().then_some(base)
    }

    /// The absolute path the agent named (`raw` relative to `dirfd`), with `/proc/self`,
    /// `/proc/thread-self` and `/proc/<n>/root` spelled as the agent's root would resolve them.
    fn absolute(&self, dirfd: i32, raw: &[u8]) -> Option<PathBuf> {
        let named = Path::new(OsStr::from_bytes(raw));
        let path = if named.is_absolute() {
            named.to_path_buf()
        } else {
            self.base(dirfd)?.join(named)
        };
        let parts: Vec<Component> = path.components().collect();
        let path = match parts.get(1..3) {
            Some([p, which]) if p.as_os_str() == "proc" => {
                let which = which.as_os_str();
                if which == "self" || which == "thread-self" {
                    let (tgid, tid) = self.ns_ids()?;
                    let mut p = PathBuf::from(format!("/proc/{tgid}"));
                    if which == "thread-self" {
                        p.push(format!("task/{tid}"));
                    }
                    p.extend(parts[3..].iter());
                    p
                } else {
                    path
                }
            }
            _ => path,
        };
        // Every process of the agent shares one root (chroot is denied): /proc/<n>/root/x is /x.
        let parts: Vec<Component> = path.components().collect();
        match parts.get(1..4) {
            Some([p, _, root]) if p.as_os_str() == "proc" && root.as_os_str() == "root" => Some(
                std::iter::once(Component::RootDir)
                    .chain(parts[4..].iter().copied())
                    .collect(),
            ),
            _ => Some(path),
        }
    }

    /// Where the magic link of one of the caller's own descriptors leads (`/proc/<its
    /// pid>/fd/N`, which is how [`Caller::absolute`] spells `/proc/self/fd/N`), as the agent's
    /// root shows it. `None` for any other path and for a descriptor that is no path (a pipe,
    /// a socket). Resolving such a link inside the root is refused (a magic link), so without
    /// this a write through it would go unseen.
    fn own_fd_target(&self, path: &Path) -> Option<PathBuf> {
        let parts: Vec<&OsStr> = path.components().skip(1).map(|c| c.as_os_str()).collect();
        let (pid, fd) = match parts.as_slice() {
            [p, pid, f, fd] if *p == "proc" && *f == "fd" => (pid, fd),
            [p, pid, t, _, f, fd] if *p == "proc" && *t == "task" && *f == "fd" => (pid, fd),
            _ => return None,
        };
        let fd: i32 = fd.to_str()?.parse().ok()?;
        let (tgid, _) = self.ns_ids()?;
        if pid.to_str()? != tgid.to_string() {
            return None;
        }
        self.base(fd)
    }

    /// Resolves `path` (absolute, agent view) inside the agent's root; `follow` the last link.
    fn resolve(&self, path: &Path, follow: bool) -> io::Result<OwnedFd> {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
        let root = rustix::fs::open(
            self.proc("root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let rel = path.strip_prefix("/").unwrap_or(path);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        Ok(openat2(
            root.as_fd(),
            rel,
            flags,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )?)
    }

    /// Where a resolved descriptor really is, as the agent's root shows it.
    fn real(fd: &OwnedFd) -> Option<PathBuf> {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
    }
}

/// How a path is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    /// Read without following the last symlink (`readlink`).
    Link,
    /// Its data written (opened for writing or creating, truncated): must be in scratch, a
    /// device or an extra writable dir.
    Write {
        create: bool,
        follow: bool,
    },
    /// The entry or the inode itself changed: removed, renamed, linked, replaced (`create`: a
    /// name that may be new), or its mode, owner or times set: must be in scratch or an extra
    /// writable dir ([`Writable::allows_change`]: not a device).
    Change {
        create: bool,
        follow: bool,
    },
    /// A new entry and nothing else (`mkdir`, the name a `link` or `symlink` makes): an
    /// existing one fails with `EEXIST` before the jail looks, so only a missing one is judged
    /// (as a creation).
    Make,
}

/// Why the jail refuses `path` for `how`, if it does.
fn refused(c: &Caller, path: &Path, how: Use, w: &Writable) -> Option<String> {
    let follow = match how {
        Use::Read => true,
        Use::Link | Use::Make => false,
        Use::Write { follow, .. } | Use::Change { follow, .. } => follow,
    };
    let create = matches!(
        how,
        Use::Write { create: true, .. } | Use::Change { create: true, .. } | Use::Make
    );
    // A device's data is the agent's; its inode and its entry in /dev are the host's.
    let data = matches!(how, Use::Write { .. });
    let may = |p: &Path| {
        if data {
            w.allows(p)
        } else {
            w.allows_change(p)
        }
    };
    let missing = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR));
    match c.resolve(path, follow) {
        Ok(fd) => match how {
            Use::Write { .. } | Use::Change { .. } => {
                let real = Caller::real(&fd).unwrap_or_else(|| path.to_path_buf());
                (!may(&real)).then(|| {
                    if data {
                        format!(
                            "{} is read-only for the agent (only its scratch {} and devices are writable)",
                            real.display(),
                            w.scratch.display(),
                        )
                    } else {
                        format!(
                            "{} is read-only for the agent (only entries in its scratch {} may be made, removed or changed; devices are only written)",
                            real.display(),
                            w.scratch.display(),
                        )
                    }
                })
            }
            Use::Read | Use::Link | Use::Make => None,
        },
        Err(e) if missing(&e) => {
            if create {
                // A new entry: its directory must exist in the root and be writable.
                let parent = path.parent()?;
                if let Ok(dir) = c.resolve(parent, true) {
                    let real = Caller::real(&dir)?.join(path.file_name()?);
                    return (!may(&real)).then(|| {
                        format!(
                            "{} is outside the agent's scratch {} (read-only for it)",
                            real.display(),
                            w.scratch.display()
                        )
                    });
                }
            }
            // A read-only link of the runtime that leads out of the root (Debian's
            // /usr/share/locale/locale.alias → /etc): the agent named a path the jail grants,
            // and could not have made the link; the C library's probing, not an attempt.
            if follow {
                if let Ok(link) = c.resolve(path, false) {
                    if Caller::real(&link).is_some_and(|r| !w.allows(&r)) {
                        return None;
                    }
                }
            }
            // Hidden by the jail if the host has it (or, for a link the agent made in its
            // scratch, which is a tmpfs of the jail and not on the host, the link's target);
            // a plain miss otherwise.
            let on_host = std::fs::symlink_metadata(path).is_ok()
                || (create && path.parent().is_some_and(|p| p.exists()))
                || (follow && link_target_on_host(c, path));
            on_host.then(|| format!("{} is not in the agent's root", path.display()))
        }
        Err(_) => None,
    }
}

/// Whether `path` is a symlink in the agent's root whose target (one level, relative to the
/// link's directory) exists on the host.
fn link_target_on_host(c: &Caller, path: &Path) -> bool {
    let Ok(link) = c.resolve(path, false) else {
        return false;
    };
    let Ok(target) = rustix::fs::readlinkat(&link, "", Vec::new()) else {
        return false;
    };
    let target = Path::new(OsStr::from_bytes(target.as_bytes()));
    let target = match path.parent() {
        Some(dir) if target.is_relative() => dir.join(target),
        _ => target.to_path_buf(),
    };
    std::fs::symlink_metadata(target).is_ok()
}

fn arg_i32(v: u64) -> i32 {
    v as u32 as i32
}

/// Looks at notification `n` (a [`seccomp_table::NOTIFIED`] call) and says whether the jail
/// refuses it. Returns `None` when it does not, when the caller's memory cannot be read, or
/// when the notification went stale meanwhile (`listener` answers `NOTIF_ID_VALID`).
///
/// [`seccomp_table::NOTIFIED`]: agentos_userspace::launch::seccomp_table::NOTIFIED
pub(crate) fn inspect(listener: RawFd, n: &SeccompNotification, w: &Writable) -> Option<Access> {
    let c = Caller { pid: n.pid };
    let a = n.args;
    let nr = i64::from(n.nr);
    let syscall = crate::util::syscall_name(nr);
    let str_at = |addr: u64| read_cstr(c.pid, addr);
    // Read everything from the caller's memory first, then make sure it was still blocked in
    // this call while we read (otherwise the memory may belong to something else).
    let plan = gather(&c, nr, &a, &str_at)?;
    if !sys::seccomp_notif_id_valid(listener, n.id) {
        return None;
    }
    let (target, why) = judge(&c, plan, w)?;
    Some(Access {
        syscall,
        target,
        why,
    })
}

/// What one notified call asks for, read from the caller.
enum Plan {
    Paths(Vec<(i32, Vec<u8>, Use)>),
    Signal { target: i32, group_ok: bool },
    Abstract(Vec<u8>),
    Socket(Vec<u8>),
}

fn open_use(flags: u64) -> Use {
    let f = flags as u32 as i32;
    let write = f & libc::O_ACCMODE != libc::O_RDONLY || f & (libc::O_CREAT | libc::O_TRUNC) != 0;
    if write {
        Use::Write {
            create: f & libc::O_CREAT != 0,
            follow: f & libc::O_NOFOLLOW == 0,
        }
    } else {
        Use::Read
    }
}

/// The name a rename replaces (or creates).
const NEW_ENTRY: Use = Use::Change {
    create: true,
    follow: false,
};

/// An existing entry itself (not what a last link leads to): renamed, linked or removed
/// (`unlink`, and `rmdir`/`unlinkat(AT_REMOVEDIR)`, which the jail refuses alike).
const OLD_ENTRY: Use = Use::Change {
    create: false,
    follow: false,
};

/// An existing file's data cut (`truncate`), through the last link.
const TRUNCATED: Use = Use::Write {
    create: false,
    follow: true,
};

/// An existing inode's mode, owner or times set (`chmod`, `chown`, `utimensat`), through the
/// last link unless `follow` is false (`AT_SYMLINK_NOFOLLOW`, `lchown`).
fn changed(follow: bool) -> Use {
    Use::Change {
        create: false,
        follow,
    }
}

/// Whether an `*at` call's `flags` argument follows the last link (no `AT_SYMLINK_NOFOLLOW`).
fn follows(flags: u64) -> bool {
    arg_i32(flags) & libc::AT_SYMLINK_NOFOLLOW == 0
}

fn gather(
    c: &Caller,
    nr: i64,
    a: &[u64; 6],
    str_at: &dyn Fn(u64) -> Option<Vec<u8>>,
) -> Option<Plan> {
    let cwd = libc::AT_FDCWD;
    let paths = |v: Vec<(i32, u64, Use)>| -> Option<Plan> {
        let mut out = Vec::new();
        for (dirfd, addr, how) in v {
            out.push((dirfd, str_at(addr)?, how));
        }
        Some(Plan::Paths(out))
    };
    match nr {
        libc::SYS_openat => paths(vec![(arg_i32(a[0]), a[1], open_use(a[2]))]),
        libc::SYS_openat2 => {
            let how = read_bytes(c.pid, a[2], 8)?;
            let flags = u64::from_le_bytes(how.try_into().ok()?);
            paths(vec![(arg_i32(a[0]), a[1], open_use(flags))])
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => paths(vec![(cwd, a[0], open_use(a[1]))]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_creat => paths(vec![(
            cwd,
            a[0],
            open_use((libc::O_CREAT | libc::O_WRONLY) as u64),
        )]),
        libc::SYS_readlinkat => paths(vec![(arg_i32(a[0]), a[1], Use::Link)]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_readlink => paths(vec![(cwd, a[0], Use::Link)]),
        libc::SYS_linkat => paths(vec![
            (arg_i32(a[0]), a[1], OLD_ENTRY),
            (arg_i32(a[2]), a[3], Use::Make),
        ]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_link => paths(vec![(cwd, a[0], OLD_ENTRY), (cwd, a[1], Use::Make)]),
        libc::SYS_symlinkat => paths(vec![(arg_i32(a[1]), a[2], Use::Make)]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_symlink => paths(vec![(cwd, a[1], Use::Make)]),
        libc::SYS_renameat | libc::SYS_renameat2 => paths(vec![
            (arg_i32(a[0]), a[1], OLD_ENTRY),
            (arg_i32(a[2]), a[3], NEW_ENTRY),
        ]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_rename => paths(vec![(cwd, a[0], OLD_ENTRY), (cwd, a[1], NEW_ENTRY)]),
        libc::SYS_mkdirat => paths(vec![(arg_i32(a[0]), a[1], Use::Make)]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mkdir => paths(vec![(cwd, a[0], Use::Make)]),
        // AT_REMOVEDIR (rmdir) removes an entry of the same directory as unlink does.
        libc::SYS_unlinkat => paths(vec![(arg_i32(a[0]), a[1], OLD_ENTRY)]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_unlink | libc::SYS_rmdir => paths(vec![(cwd, a[0], OLD_ENTRY)]),
        libc::SYS_truncate => paths(vec![(cwd, a[0], TRUNCATED)]),
        // The syscall has no flags (glibc's AT_SYMLINK_NOFOLLOW goes through an O_PATH open).
        libc::SYS_fchmodat => paths(vec![(arg_i32(a[0]), a[1], changed(true))]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_chmod => paths(vec![(cwd, a[0], changed(true))]),
        libc::SYS_fchownat => paths(vec![(arg_i32(a[0]), a[1], changed(follows(a[4])))]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_chown => paths(vec![(cwd, a[0], changed(true))]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_lchown => paths(vec![(cwd, a[0], changed(false))]),
        // A NULL path (futimens) is an fd op: str_at fails and there is no plan.
        libc::SYS_utimensat => paths(vec![(arg_i32(a[0]), a[1], changed(follows(a[3])))]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_futimesat => paths(vec![(arg_i32(a[0]), a[1], changed(true))]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_utime | libc::SYS_utimes => paths(vec![(cwd, a[0], changed(true))]),
        libc::SYS_connect => {
            let len = usize::try_from(a[2])
                .ok()?
                .min(std::mem::size_of::<libc::sockaddr_un>());
            if len < 3 {
                return None;
            }
            let addr = read_bytes(c.pid, a[1], len)?;
            if u16::from_ne_bytes([addr[0], addr[1]]) != libc::AF_UNIX as u16 {
                return None;
            }
            let name = &addr[2..];
            if name[0] == 0 {
                Some(Plan::Abstract(name[1..].to_vec()))
            } else {
                let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
                Some(Plan::Socket(name[..end].to_vec()))
            }
        }
        libc::SYS_kill => Some(Plan::Signal {
            target: arg_i32(a[0]),
            group_ok: true,
        }),
        libc::SYS_tkill
        | libc::SYS_tgkill
        | libc::SYS_rt_sigqueueinfo
        | libc::SYS_rt_tgsigqueueinfo
        | libc::SYS_pidfd_open => Some(Plan::Signal {
            target: arg_i32(a[0]),
            group_ok: false,
        }),
        _ => None,
    }
}

/// Python's bytecode cache: the `__pycache__` dir made beside an imported module, and the
/// `.pyc` created in one (through a temporary `NAME.pyc.N`). The interpreter writes it where
/// it can and goes on quietly where it cannot (modules in a read-only dir): ordinary work,
/// not an attempt, so not judged. (Refused all the same: skipping the record is all this does.)
fn bytecode_cache(path: &Path, how: Use) -> bool {
    let name = path.file_name().map(OsStr::as_bytes).unwrap_or_default();
    let in_cache = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|p| p == "__pycache__");
    match how {
        Use::Make => name == b"__pycache__",
        Use::Write { create: true, .. } => {
            in_cache && (name.ends_with(b".pyc") || name.windows(5).any(|w| w == b".pyc."))
        }
        Use::Read | Use::Link | Use::Write { create: false, .. } | Use::Change { .. } => false,
    }
}

fn judge(c: &Caller, plan: Plan, w: &Writable) -> Option<(String, String)> {
    match plan {
        Plan::Paths(paths) => {
            for (dirfd, raw, how) in paths {
                // An empty path names the descriptor itself (AT_EMPTY_PATH: an fd op, like
                // fchown) or nothing (ENOENT): not a path the jail resolves.
                if raw.is_empty() || (how == Use::Read && w.runtime_read(&raw)) {
                    continue;
                }
                let shown = String::from_utf8_lossy(&raw).into_owned();
                let Some(path) = c.absolute(dirfd, &raw) else {
                    continue;
                };
                if bytecode_cache(&path, how) {
                    continue;
                }
                // A use through the last link goes where a descriptor's magic link leads.
                let through = matches!(
                    how,
                    Use::Read | Use::Write { follow: true, .. } | Use::Change { follow: true, .. }
                );
                let path = match through.then(|| c.own_fd_target(&path)).flatten() {
                    Some(target) => target,
                    None => path,
                };
                if let Some(why) = refused(c, &path, how, w) {
                    return Some((shown, why));
                }
            }
            None
        }
        Plan::Socket(raw) => {
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let path = c.absolute(libc::AT_FDCWD, &raw)?;
            refused(c, &path, Use::Read, w).map(|why| (shown, why))
        }
        Plan::Abstract(name) => {
            let shown = format!("@{}", String::from_utf8_lossy(&name));
            let table = std::fs::read_to_string(c.proc("net/unix")).ok()?;
            let bound = table
                .lines()
                .any(|l| l.split_whitespace().last() == Some(shown.as_str()));
            (!bound).then(|| {
                (
                    shown,
                    "no such abstract socket in the agent's network namespace (landlock scopes the rest)"
                        .to_string(),
                )
            })
        }
        Plan::Signal { target, group_ok } => {
            if target == -1 && group_ok {
                // The agent's init sweeps its namespace with kill(-1) once the agent is gone.
                let (tgid, _) = c.ns_ids()?;
                return (tgid != 1).then(|| {
                    (
                        "pid -1 (every process)".to_string(),
                        "kill(-1) reaches nothing outside the agent's pid namespace".to_string(),
                    )
                });
            }
            if target == 0 && group_ok {
                return None;
            }
            let (what, n) = if target < 0 && group_ok {
                ("process group", target.unsigned_abs())
            } else if target <= 0 {
                return None;
            } else {
                ("pid", target.unsigned_abs())
            };
            (!c.pid_exists(n)).then(|| {
                (
                    format!("{what} {n}"),
                    format!("{what} {n} is not in the agent's pid namespace"),
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_is_scratch_devices_and_extra_dirs_only() {
        let w = Writable {
            scratch: "/var/s/agent-1".into(),
            devices: vec!["/dev/null".into()],
            runtime: vec!["/usr".into()],
            extra: vec!["/ws".into()],
        };
        assert!(w.runtime_read(b"/usr/lib/libc.so.6"));
        assert!(!w.runtime_read(b"/usr/../etc/shadow"));
        assert!(!w.runtime_read(b"usr/lib/libc.so.6"));
        assert!(!w.runtime_read(b"/usrx/lib"));
        assert!(w.allows(Path::new("/var/s/agent-1/x/y")));
        assert!(w.allows(Path::new("/dev/null")));
        assert!(!w.allows(Path::new("/var/s/agent-10")));
        assert!(!w.allows(Path::new("/dev/zero")));
        assert!(!w.allows(Path::new("/etc/passwd")));
        assert!(w.allows(Path::new("/ws/f")));
        assert!(!w.allows(Path::new("/wsx/f")));
        // A device's data, not its inode or entry.
        assert!(w.allows_change(Path::new("/var/s/agent-1/x")));
        assert!(w.allows_change(Path::new("/ws/f")));
        assert!(!w.allows_change(Path::new("/dev/null")));
        assert!(!w.allows_change(Path::new("/etc/passwd")));
    }

    #[test]
    fn open_flags_tell_reads_from_writes() {
        assert_eq!(open_use(libc::O_RDONLY as u64), Use::Read);
        assert_eq!(
            open_use((libc::O_WRONLY | libc::O_CREAT) as u64),
            Use::Write {
                create: true,
                follow: true
            }
        );
        assert_eq!(
            open_use((libc::O_RDONLY | libc::O_TRUNC | libc::O_NOFOLLOW) as u64),
            Use::Write {
                create: false,
                follow: false
            }
        );
    }

    /// The `Use` of each path of a gathered call (the paths themselves come from `str_at`).
    fn uses(nr: i64, args: [u64; 6]) -> Option<Vec<(i32, Use)>> {
        let c = Caller {
            pid: std::process::id(),
        };
        // A NULL pointer is no string; anything else reads as "p".
        let str_at = |addr: u64| (addr != 0).then(|| b"p".to_vec());
        match gather(&c, nr, &args, &str_at)? {
            Plan::Paths(p) => Some(p.into_iter().map(|(fd, _, how)| (fd, how)).collect()),
            _ => None,
        }
    }

    #[test]
    fn path_writes_are_gathered_with_their_use() {
        let cwd = libc::AT_FDCWD as u32 as u64;
        let nofollow = libc::AT_SYMLINK_NOFOLLOW as u64;
        assert_eq!(
            uses(libc::SYS_mkdirat, [5, 1, 0o755, 0, 0, 0]),
            Some(vec![(5, Use::Make)])
        );
        // unlink and rmdir (AT_REMOVEDIR) both remove the entry itself.
        for flags in [0, libc::AT_REMOVEDIR as u64] {
            assert_eq!(
                uses(libc::SYS_unlinkat, [cwd, 1, flags, 0, 0, 0]),
                Some(vec![(libc::AT_FDCWD, OLD_ENTRY)])
            );
        }
        assert_eq!(
            uses(libc::SYS_truncate, [1, 0, 0, 0, 0, 0]),
            Some(vec![(libc::AT_FDCWD, TRUNCATED)])
        );
        assert_eq!(
            uses(libc::SYS_fchmodat, [cwd, 1, 0o4755, 0, 0, 0]),
            Some(vec![(libc::AT_FDCWD, changed(true))])
        );
        assert_eq!(
            uses(libc::SYS_fchownat, [3, 1, 0, 0, nofollow, 0]),
            Some(vec![(3, changed(false))])
        );
        assert_eq!(
            uses(libc::SYS_utimensat, [cwd, 1, 0, 0, 0, 0]),
            Some(vec![(libc::AT_FDCWD, changed(true))])
        );
        assert_eq!(
            uses(libc::SYS_utimensat, [cwd, 1, 0, nofollow, 0, 0]),
            Some(vec![(libc::AT_FDCWD, changed(false))])
        );
        // futimens: utimensat on a descriptor with a NULL path is no path at all.
        assert_eq!(uses(libc::SYS_utimensat, [3, 0, 0, 0, 0, 0]), None);
        // A link's and a symlink's new name only exists or not; a rename's may be replaced.
        assert_eq!(
            uses(libc::SYS_symlinkat, [1, cwd, 2, 0, 0, 0]),
            Some(vec![(libc::AT_FDCWD, Use::Make)])
        );
        assert_eq!(
            uses(libc::SYS_renameat2, [cwd, 1, cwd, 2, 0, 0]),
            Some(vec![
                (libc::AT_FDCWD, OLD_ENTRY),
                (libc::AT_FDCWD, NEW_ENTRY)
            ])
        );
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                uses(libc::SYS_mkdir, [1, 0o755, 0, 0, 0, 0]),
                Some(vec![(libc::AT_FDCWD, Use::Make)])
            );
            for nr in [libc::SYS_unlink, libc::SYS_rmdir] {
                assert_eq!(
                    uses(nr, [1, 0, 0, 0, 0, 0]),
                    Some(vec![(libc::AT_FDCWD, OLD_ENTRY)])
                );
            }
            for (nr, follow) in [
                (libc::SYS_chmod, true),
                (libc::SYS_chown, true),
                (libc::SYS_lchown, false),
                (libc::SYS_utime, true),
                (libc::SYS_utimes, true),
            ] {
                assert_eq!(
                    uses(nr, [1, 0, 0, 0, 0, 0]),
                    Some(vec![(libc::AT_FDCWD, changed(follow))])
                );
            }
            assert_eq!(
                uses(libc::SYS_futimesat, [4, 1, 0, 0, 0, 0]),
                Some(vec![(4, changed(true))])
            );
            assert_eq!(uses(libc::SYS_futimesat, [4, 0, 0, 0, 0, 0]), None);
        }
    }

    #[test]
    fn python_bytecode_cache_writes_are_not_attempts() {
        let create = open_use((libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64);
        assert!(bytecode_cache(Path::new("/ro/lib/__pycache__"), Use::Make));
        assert!(bytecode_cache(
            Path::new("/ro/lib/__pycache__/m.cpython-311.pyc.140234"),
            create
        ));
        assert!(bytecode_cache(
            Path::new("/ro/lib/__pycache__/m.cpython-311.pyc"),
            create
        ));
        // Nothing else: not a removal, not another name, not outside a cache dir.
        assert!(!bytecode_cache(Path::new("/ro/lib/__pycache__"), OLD_ENTRY));
        assert!(!bytecode_cache(
            Path::new("/ro/lib/__pycache__/m.py"),
            create
        ));
        assert!(!bytecode_cache(Path::new("/ro/lib/m.pyc"), create));
        assert!(!bytecode_cache(
            Path::new("/ro/lib/__pycache__/m.pyc"),
            changed(true)
        ));
    }

    /// `refused` on this process, whose root is the host's: scratch is a temporary dir.
    #[test]
    fn path_writes_outside_scratch_are_refused_existing_new_names_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(scratch.join("d")).unwrap();
        std::fs::write(scratch.join("f"), "x").unwrap();
        let w = Writable {
            scratch: scratch.clone(),
            devices: vec!["/dev/null".into()],
            runtime: vec!["/usr".into()],
            extra: Vec::new(),
        };
        let c = Caller {
            pid: std::process::id(),
        };
        let env = Path::new("/usr/bin/env");
        let refused_for = |p: &Path, how: Use| refused(&c, p, how, &w);
        // In scratch: anything goes.
        assert_eq!(refused_for(&scratch.join("d"), OLD_ENTRY), None);
        assert_eq!(refused_for(&scratch.join("f"), changed(true)), None);
        assert_eq!(refused_for(&scratch.join("new"), Use::Make), None);
        assert_eq!(refused_for(&scratch.join("f"), TRUNCATED), None);
        // The runtime: removed, changed, cut, a new directory in it.
        for how in [OLD_ENTRY, changed(true), changed(false), TRUNCATED] {
            let why = refused_for(env, how).unwrap_or_default();
            assert!(why.contains("read-only for the agent"), "{how:?}: {why}");
        }
        let why = refused_for(Path::new("/usr/agentos-no-such-dir"), Use::Make);
        assert!(why.is_some_and(|w| w.contains("outside the agent's scratch")));
        // An existing name fails EEXIST before the jail looks.
        assert_eq!(refused_for(Path::new("/usr"), Use::Make), None);
        // A device: written and cut, yes; its mode, owner or times, no.
        assert_eq!(refused_for(Path::new("/dev/null"), TRUNCATED), None);
        assert!(refused_for(Path::new("/dev/null"), changed(true)).is_some());
        // A path that is nowhere is a plain miss.
        assert_eq!(
            refused_for(Path::new("/usr/agentos-no-such-file"), OLD_ENTRY),
            None
        );
    }

    #[test]
    fn reads_a_string_across_pages_from_another_process() {
        // Our own memory, read the way the watcher reads an agent's: 300 bytes that start 100
        // bytes before a page boundary.
        let mut buf = vec![0u8; 3 * PAGE as usize];
        let base = buf.as_ptr() as u64;
        let at = (PAGE - base % PAGE) as usize + PAGE as usize - 100;
        buf[at..at + 300].fill(b'a');
        let got = read_cstr(std::process::id(), base + at as u64).unwrap_or_default();
        assert_eq!(got, vec![b'a'; 300]);
        // Longer than PATH_MAX: not a path.
        let long = vec![b'b'; PATH_MAX + 10];
        assert_eq!(read_cstr(std::process::id(), long.as_ptr() as u64), None);
        assert_eq!(read_cstr(std::process::id(), 0), None);
    }
}

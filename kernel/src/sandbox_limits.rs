//! Sandbox events for resource limits: the calls and processes an agent's rlimits and cgroup
//! stop, recorded as `SandboxLimit` with the agent's id.
//!
//! A limit is enforced by the host kernel inside the agent's own context (an rlimit answers
//! `EAGAIN`, `EMFILE`, `ENOMEM` or `EFBIG`, or sends `SIGXCPU`/`SIGXFSZ`); nothing of that
//! reaches this process by itself. So the kernel looks where it can see:
//!
//! ```text
//! open, openat, openat2, creat ─────────► notified ─► descriptors open ≥ RLIMIT_NOFILE?
//! mmap/mremap ≥ large_mmap(limit) ──────► notified ─► VmSize + request > RLIMIT_AS?
//! a write in scratch ─► inotify IN_MODIFY ─► the file's size ≥ RLIMIT_FSIZE?
//!                                         └► the scratch tmpfs full (statfs)?
//! every second ─► tasks in the agent's pid namespace (or its pids cgroup) ≥ the limit?
//! the agent's exit status ─► SIGXCPU / SIGXFSZ?
//! the agent's cgroup at its end ─► pids.events max, memory oom_kill / max counters
//! ```
//!
//! Every notified call is still answered CONTINUE: the limit itself decides, exactly as it
//! would unseen; this module only predicts, from the same numbers the host kernel compares,
//! which calls it will refuse, and records those. A prediction can be off by a race (another
//! thread of the agent closing a descriptor meanwhile); it never changes an outcome.
//!
//! Why processes are sampled and not notified: a notified call waits interruptibly until the
//! kernel has received it, and a signal in that window makes it fail with EINTR when the
//! handler lacks SA_RESTART. `fork` never fails so, and shells fork while their children's
//! SIGCHLD arrives: a notified `fork` made `sh` report "Cannot fork". A fork bomb holds its
//! processes, so the sample sees it at its limit (and a cgroup counts every refused fork).
//! Opens and large mappings are rare enough beside signals, and the listener is installed
//! with `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`, which closes the window once the kernel has
//! the notification.
//!
//! Not seen: a limit met by a call that is not shown to the kernel (`dup` at `RLIMIT_NOFILE`,
//! an `mmap` smaller than [`large_mmap`] that crosses `RLIMIT_AS`, `brk`), a process limit
//! met and left again between two samples without a cgroup, a process of the agent's own that
//! it reaps itself after `SIGXCPU`, and a file at its size limit that is gone before the
//! kernel reads the inotify event.
//!
//! [`large_mmap`]: agentos_userspace::launch::seccomp::large_mmap

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use agentos_syscalls::control::ExitStatus;
use agentos_userspace::launch::cgroup::AgentGroup;
use agentos_userspace::launch::ResourceLimits;

use crate::recorder::RecordEvent;
use crate::sys::SeccompNotification;

/// One limit the agent met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    /// `processes`, `open_files`, `address_space`, `file_size`, `cpu_seconds`, `memory`,
    /// `scratch_bytes`.
    pub resource: &'static str,
    pub limit: u64,
    /// What the agent had in use (same unit as `limit`), 0 when not known.
    pub used: u64,
    /// What met it: the syscall, `write`, `exit` or `cgroup`.
    pub by: String,
    pub detail: String,
}

impl Hit {
    pub fn event(self) -> RecordEvent {
        RecordEvent::SandboxLimit {
            resource: self.resource.to_string(),
            limit: self.limit,
            used: self.used,
            by: self.by,
            detail: self.detail,
        }
    }
}

/// A limit value that means something (the launcher's "unlimited" is far above this).
fn real(limit: u64) -> Option<u64> {
    (limit > 0 && limit < 1 << 56).then_some(limit)
}

/// What one jail's watcher compares against.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    pub limits: ResourceLimits,
    /// The agent's cgroup, if it has one: its pids controller is the process limit then.
    pub cgroup: Option<AgentGroup>,
    /// The jail's launcher (its only child is the jail's init, pid 1 of its pid namespace), or
    /// the init itself where the zygote cloned it.
    pub launcher: u32,
}

/// Looks at notification `n` (a call [`is_looked_at`] lets through) and says whether a limit
/// will refuse it.
///
/// [`is_looked_at`]: agentos_userspace::launch::seccomp::is_looked_at
pub(crate) fn look(n: &SeccompNotification, w: &Watched) -> Option<Hit> {
    // Every open comes here: the syscall's name is looked up only for a hit.
    let nr = i64::from(n.nr);
    let a = n.args;
    let mut hit = match nr {
        libc::SYS_openat | libc::SYS_openat2 => open_files(n.pid, w.limits.open_files),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open | libc::SYS_creat => open_files(n.pid, w.limits.open_files),
        libc::SYS_mmap => address_space(n.pid, a[1], 0, w.limits.address_space),
        libc::SYS_mremap => address_space(n.pid, a[2], a[1], w.limits.address_space),
        _ => None,
    }?;
    hit.by = crate::util::syscall_name(nr);
    Some(hit)
}

/// The process limit, sampled: records when the agent's tasks come to fill it (once, until
/// they drop below it again).
#[derive(Debug, Default)]
pub(crate) struct Processes {
    at_limit: bool,
    /// The group's `pids.max`, read at the first sample: the kernel wrote it at the spawn and
    /// nothing writes it after, so each later sample reads `pids.current` alone (a fleet's
    /// watchers read one file of each agent a second, not two).
    pids_max: Option<u64>,
}

impl Processes {
    pub fn sample(&mut self, w: &Watched) -> Option<Hit> {
        let (used, limit, detail) = processes(w, &mut self.pids_max)?;
        let was = std::mem::replace(&mut self.at_limit, used >= limit);
        (self.at_limit && !was).then(|| Hit {
            resource: "processes",
            limit,
            used,
            by: "sample".into(),
            detail,
        })
    }
}

/// `(tasks, limit, sentence)` of the jail: its pids cgroup where it has one (its `pids.max`
/// read once into `pids_max`), else its tasks against `RLIMIT_NPROC`.
fn processes(w: &Watched, pids_max: &mut Option<u64>) -> Option<(u64, u64, String)> {
    let pids = w.cgroup.as_ref().and_then(|g| {
        let max = match *pids_max {
            Some(max) => max,
            None => *pids_max.insert(g.pids_max()?),
        };
        Some((g.pids()?, max))
    });
    if let Some((used, max)) = pids {
        let detail = format!(
            "the agent's pids cgroup holds {used} tasks of its pids.max {max}: a new process is refused (EAGAIN)"
        );
        return Some((used, max, detail));
    }
    let limit = real(w.limits.processes)?;
    let (init, launcher_tasks) = match init_of(w.launcher)? {
        Init::Itself(init) => (init, 0),
        Init::Child(init) => (init, LAUNCHER_TASKS),
    };
    // RLIMIT_NPROC counts the tasks of the agent's uid in its user namespace: those of its pid
    // namespace, and the launcher (if the jail has one), which entered the user namespace by
    // unshare but stayed outside the pid namespace it made for the init.
    let used = tasks_in_namespace(init, limit)? + launcher_tasks;
    let detail = format!(
        "the agent runs {used} tasks, its RLIMIT_NPROC is {limit}: a new process is refused (EAGAIN)"
    );
    Some((used, limit, detail))
}

/// Where a jail's init is, from the pid the kernel started.
enum Init {
    /// The kernel's child is the init (cloned by the zygote).
    Itself(u32),
    /// The kernel's child is a launcher; this is its only child, the init.
    Child(u32),
}

/// The init of the jail whose first process (the kernel's child) is `pid`: `pid` itself when
/// it is pid 1 of its own pid namespace (the last `NSpid` entry), else its first child.
fn init_of(pid: u32) -> Option<Init> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let nspid: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .collect();
    if nspid.len() > 1 && nspid.last() == Some(&"1") {
        return Some(Init::Itself(pid));
    }
    first_child(pid).map(Init::Child)
}

/// The first child of `pid` (the launcher has exactly one: the init).
fn first_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The launcher's own task, counted in the agent's user namespace (see [`processes`]).
const LAUNCHER_TASKS: u64 = 1;

/// The tasks (threads included, as `RLIMIT_NPROC` counts them) of the pid namespace `pid` is
/// in, read from that namespace's own `/proc`; counting stops at `enough`.
fn tasks_in_namespace(pid: u32, enough: u64) -> Option<u64> {
    let proc = PathBuf::from(format!("/proc/{pid}/root/proc"));
    let mut tasks = 0u64;
    for entry in std::fs::read_dir(&proc).ok()?.flatten() {
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // A process that ended meanwhile counts for nothing.
        tasks += std::fs::read_to_string(proc.join(n).join("stat"))
            .ok()
            .and_then(|stat| num_threads(&stat))
            .unwrap_or(0);
        if tasks >= enough {
            break;
        }
    }
    Some(tasks)
}

/// Field 20 of `/proc/<pid>/stat` (the command, field 2, may hold spaces and parentheses).
fn num_threads(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(17)?.parse().ok()
}

/// An open: refused (EMFILE) when every descriptor below `RLIMIT_NOFILE` is taken. The cheap
/// test first (the highest allowed descriptor exists: the table fills from the bottom), then
/// the count.
fn open_files(pid: u32, limit: u64) -> Option<Hit> {
    let limit = real(limit)?;
    let fds = PathBuf::from(format!("/proc/{pid}/fd"));
    std::fs::symlink_metadata(fds.join((limit - 1).to_string())).ok()?;
    let used = std::fs::read_dir(&fds).ok()?.count() as u64;
    (used >= limit).then(|| Hit {
        resource: "open_files",
        limit,
        used,
        by: String::new(),
        detail: format!(
            "an open is refused (EMFILE): the agent's process holds {used} descriptors, its RLIMIT_NOFILE is {limit}"
        ),
    })
}

/// A mapping of `new` bytes (replacing `old`): refused (ENOMEM) when it takes the process's
/// address space over `RLIMIT_AS`.
fn address_space(pid: u32, new: u64, old: u64, limit: u64) -> Option<Hit> {
    let limit = real(limit)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let used = vm_size(&status)?;
    let after = used.saturating_add(new.saturating_sub(old));
    (after > limit).then(|| Hit {
        resource: "address_space",
        limit,
        used,
        by: String::new(),
        detail: format!(
            "a mapping of {} is refused (ENOMEM): the process maps {} of its RLIMIT_AS {}",
            bytes(new),
            bytes(used),
            bytes(limit)
        ),
    })
}

/// `VmSize` of a `/proc/<pid>/status`, in bytes.
fn vm_size(status: &str) -> Option<u64> {
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn bytes(n: u64) -> String {
    agentos_userspace::launch::cgroup::format_bytes(n)
}

/// How the agent's exit status shows a limit: its process ended by `SIGXCPU` (`RLIMIT_CPU`)
/// or `SIGXFSZ` (`RLIMIT_FSIZE` with the signal's default action).
pub(crate) fn exit_hit(status: &ExitStatus, limits: &ResourceLimits) -> Option<Hit> {
    let ExitStatus::PosixSignal(signal) = status else {
        return None;
    };
    let (resource, limit, what) = match *signal {
        libc::SIGXCPU => (
            "cpu_seconds",
            limits.cpu_seconds,
            format!("its RLIMIT_CPU of {} s", limits.cpu_seconds),
        ),
        libc::SIGXFSZ => (
            "file_size",
            limits.file_size,
            format!("its RLIMIT_FSIZE of {}", bytes(limits.file_size)),
        ),
        _ => return None,
    };
    Some(Hit {
        resource,
        limit,
        used: 0,
        by: "exit".into(),
        detail: format!("the agent was ended by signal {signal} at {what}"),
    })
}

/// What the agent's cgroup counted over its life: forks refused at `pids.max`, processes the
/// memory limit killed, times memory use met the limit.
pub(crate) fn cgroup_hits(group: &AgentGroup, limits: &ResourceLimits) -> Vec<Hit> {
    group
        .limit_counters()
        .into_iter()
        .filter(|c| c.count > 0)
        .map(|c| {
            let limit = match c.resource {
                "processes" => limits.processes,
                _ => limits.memory,
            };
            Hit {
                resource: c.resource,
                limit,
                used: c.count,
                by: "cgroup".into(),
                detail: format!("{} {} ({})", c.count, c.what, c.file),
            }
        })
        .collect()
}

/// Files at their size limit in the agent's scratch dir, and the scratch itself full: inotify
/// reports each write (`IN_MODIFY`, coalesced while unread); a file whose size reached
/// `RLIMIT_FSIZE` is one a write was cut short in (EFBIG, or SIGXFSZ), and a scratch tmpfs
/// with no block (or inode) left after a write is one the next write fails in (ENOSPC).
///
/// The scratch is a tmpfs in the jail's own mount namespace (see the launcher's rootfs), so it
/// is opened through the jail's root: `/proc/<init>/root`, then the scratch path resolved in
/// it (`openat2` `RESOLVE_IN_ROOT`, no magic link), as `sandbox_access` resolves the agent's
/// paths. The tree belongs to the agent, which can swap a directory for a symlink at any
/// moment: every path is resolved beneath the scratch dir (`openat2` `RESOLVE_BENEATH`, no
/// symlink as the last component), and a new directory is watched through the descriptor so
/// opened, so the kernel never watches or looks at anything outside it.
#[derive(Debug)]
pub(crate) struct FileSizes {
    fd: OwnedFd,
    scratch: PathBuf,
    root: OwnedFd,
    /// The file-size limit (`None`: not watched).
    limit: Option<u64>,
    /// The scratch tmpfs's size (`None`: not watched).
    space: Option<u64>,
    /// Watch descriptor → directory, relative to the scratch dir (empty for itself).
    dirs: HashMap<i32, PathBuf>,
    reported: HashSet<PathBuf>,
    /// The scratch was full at the last look (reported once until space returns).
    full: bool,
}

impl FileSizes {
    /// Watches the scratch of the jail whose launcher is `launcher` (its path `scratch` in the
    /// jail), and the directories made in it later; `None` without a real file-size limit or
    /// scratch size.
    pub fn new(launcher: u32, scratch: &Path, limit: u64, space: u64) -> io::Result<Option<Self>> {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
        if real(limit).is_none() && real(space).is_none() {
            return Ok(None);
        }
        let init = match init_of(launcher) {
            Some(Init::Itself(init) | Init::Child(init)) => init,
            None => return Err(io::Error::other("the jail's init is gone")),
        };
        let jail_root = rustix::fs::open(
            format!("/proc/{init}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let rel = scratch.strip_prefix("/").unwrap_or(scratch);
        let root = openat2(
            &jail_root,
            rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?;
        Self::at(root, scratch, limit, space)
    }

    /// Watches the directory `root` (shown as `scratch` in details).
    pub fn at(root: OwnedFd, scratch: &Path, limit: u64, space: u64) -> io::Result<Option<Self>> {
        use rustix::fs::inotify;
        let (limit, space) = (real(limit), real(space));
        if limit.is_none() && space.is_none() {
            return Ok(None);
        }
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)?;
        let mut me = Self {
            fd,
            scratch: scratch.to_path_buf(),
            root,
            limit,
            space,
            dirs: HashMap::new(),
            reported: HashSet::new(),
            full: false,
        };
        me.watch(Path::new(""))?;
        Ok(Some(me))
    }

    /// The scratch's filesystem seen full now (no block or no inode left): `(used bytes,
    /// why)`; `None` when it is not, or not known.
    fn fullness(&self) -> Option<(u64, &'static str)> {
        let st = rustix::fs::fstatvfs(&self.root).ok()?;
        let used = st.f_blocks.saturating_sub(st.f_bfree) * st.f_frsize;
        if st.f_bavail == 0 {
            Some((used, "no block left"))
        } else if st.f_files > 0 && st.f_favail == 0 {
            Some((used, "no inode left"))
        } else {
            None
        }
    }

    /// A second descriptor of the same inotify instance, to wait on (it turns readable with
    /// the first).
    pub fn readiness(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Opens `rel` beneath the scratch dir without following a last symlink.
    fn open(&self, rel: &Path, flags: rustix::fs::OFlags) -> io::Result<OwnedFd> {
        use rustix::fs::OFlags;
        let rel = match rel.to_str() {
            Some("") => ".",
            Some(rel) => rel,
            None => return Err(io::Error::other("a path that is not UTF-8")),
        };
        crate::sys::open_beneath(
            self.root.as_fd(),
            rel,
            flags | OFlags::PATH | OFlags::NOFOLLOW,
            0,
        )
    }

    fn watch(&mut self, rel: &Path) -> io::Result<()> {
        use rustix::fs::inotify::{add_watch, WatchFlags};
        let dir = self.open(rel, rustix::fs::OFlags::DIRECTORY)?;
        let flags = WatchFlags::MODIFY | WatchFlags::CREATE | WatchFlags::ONLYDIR;
        let wd = add_watch(
            &self.fd,
            format!("/proc/self/fd/{}", dir.as_raw_fd()),
            flags,
        )?;
        self.dirs.insert(wd, rel.to_path_buf());
        Ok(())
    }

    /// Reads every pending event; returns the files found at the limit (each once).
    pub fn drain(&mut self) -> Vec<Hit> {
        use rustix::fs::inotify::{ReadFlags, Reader};
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut changed: Vec<PathBuf> = Vec::new();
        let mut new_dirs: Vec<PathBuf> = Vec::new();
        let mut any = false;
        {
            let mut reader = Reader::new(&self.fd, &mut buf);
            while let Ok(event) = reader.next() {
                any = true;
                let flags = event.events();
                let (Some(dir), Some(name)) = (self.dirs.get(&event.wd()), event.file_name())
                else {
                    continue;
                };
                let rel = dir.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
                if flags.contains(ReadFlags::ISDIR) {
                    if flags.contains(ReadFlags::CREATE) {
                        new_dirs.push(rel);
                    }
                } else if flags.contains(ReadFlags::MODIFY) && !changed.contains(&rel) {
                    changed.push(rel);
                }
            }
        }
        for d in new_dirs {
            // Gone or swapped for a link meanwhile: nothing of the agent's to watch there.
            let _ = self.watch(&d);
        }
        let mut hits = Vec::new();
        if let (true, Some(space)) = (any, self.space) {
            let full = self.fullness();
            if let (Some((used, why)), false) = (full, self.full) {
                hits.push(Hit {
                    resource: "scratch_bytes",
                    limit: space,
                    used,
                    by: "write".into(),
                    detail: format!(
                        "the agent's scratch {} is full ({why}; its tmpfs holds {}): a write or a new file there is refused (ENOSPC)",
                        self.scratch.display(),
                        bytes(space)
                    ),
                });
            }
            self.full = full.is_some();
        }
        let Some(limit) = self.limit else {
            return hits;
        };
        for rel in changed {
            let Ok(size) = self
                .open(&rel, rustix::fs::OFlags::empty())
                .and_then(|f| Ok(rustix::fs::fstat(&f)?))
                .map(|st| {
                    (st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(st.st_size as u64)
                })
            else {
                continue;
            };
            let Some(size) = size else { continue };
            if size < limit || self.reported.contains(&rel) {
                continue;
            }
            hits.push(Hit {
                resource: "file_size",
                limit,
                used: size,
                by: "write".into(),
                detail: format!(
                    "{} reached the agent's RLIMIT_FSIZE of {}: a write past it is refused (EFBIG, or SIGXFSZ)",
                    self.scratch.join(&rel).display(),
                    bytes(limit)
                ),
            });
            self.reported.insert(rel);
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_thread_counts_and_vm_size() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 7 0 100 1000 50";
        assert_eq!(num_threads(stat), Some(7));
        assert_eq!(num_threads("garbage"), None);
        let status = "Name:\tx\nVmPeak:\t  20 kB\nVmSize:\t   12288 kB\n";
        assert_eq!(vm_size(status), Some(12288 * 1024));
        assert_eq!(vm_size("Name: x\n"), None);
    }

    #[test]
    fn this_process_is_seen_at_its_own_numbers() {
        let me = std::process::id();
        // Our own namespace's /proc, through our own root: at least this process's threads.
        let tasks = tasks_in_namespace(me, u64::MAX).unwrap_or(0);
        assert!(tasks >= 1);
        // More descriptors open than a limit of 3 allows (0, 1, 2 and the read_dir's own).
        let hit = open_files(me, 3);
        assert!(hit.is_some_and(|h| h.used >= 3));
        assert_eq!(open_files(me, 1 << 20), None);
        // A mapping larger than the limit is refused; a small one under a huge limit is not.
        let hit = address_space(me, 2 << 30, 0, 1 << 30).unwrap();
        assert_eq!(hit.resource, "address_space");
        assert!(hit.used > 0);
        assert_eq!(address_space(me, 4096, 0, 1 << 50), None);
    }

    #[test]
    fn exit_by_sigxcpu_or_sigxfsz_is_a_limit() {
        let limits = ResourceLimits::default();
        let cpu = exit_hit(&ExitStatus::PosixSignal(libc::SIGXCPU), &limits).unwrap();
        assert_eq!(
            (cpu.resource, cpu.limit),
            ("cpu_seconds", limits.cpu_seconds)
        );
        let fsize = exit_hit(&ExitStatus::PosixSignal(libc::SIGXFSZ), &limits).unwrap();
        assert_eq!(fsize.resource, "file_size");
        assert_eq!(
            exit_hit(&ExitStatus::PosixSignal(libc::SIGKILL), &limits),
            None
        );
        assert_eq!(exit_hit(&ExitStatus::Code(0), &limits), None);
    }

    #[test]
    fn a_file_at_its_size_limit_is_reported_once_in_any_subdirectory() {
        let dir = tempfile::tempdir().unwrap();
        let open = |p: &Path| {
            rustix::fs::open(
                p,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .unwrap()
        };
        let mut w = FileSizes::at(open(dir.path()), dir.path(), 1000, u64::MAX)
            .unwrap()
            .unwrap();
        std::fs::write(dir.path().join("small"), [0u8; 10]).unwrap();
        assert_eq!(w.drain(), []);
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(w.drain(), []);
        std::fs::write(sub.join("big"), [0u8; 1000]).unwrap();
        let hits = w.drain();
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].resource, hits[0].used), ("file_size", 1000));
        assert!(hits[0].detail.contains("sub/big"));
        std::fs::write(sub.join("big"), [0u8; 1000]).unwrap();
        assert_eq!(w.drain(), []);
        // A directory swapped for a link out of scratch after a write in it: the kernel does
        // not look through the link (the big file outside is not reported).
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x"), [0u8; 3000]).unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        assert_eq!(w.drain(), []);
        std::fs::write(d.join("x"), [0u8; 10]).unwrap();
        std::fs::remove_file(d.join("x")).unwrap();
        std::fs::remove_dir(&d).unwrap();
        std::os::unix::fs::symlink(outside.path(), &d).unwrap();
        assert_eq!(w.drain(), []);
        // Nor a file swapped for a link.
        std::fs::write(dir.path().join("y"), [0u8; 10]).unwrap();
        std::fs::remove_file(dir.path().join("y")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x"), dir.path().join("y")).unwrap();
        assert_eq!(w.drain(), []);
        assert!(
            FileSizes::at(open(dir.path()), dir.path(), u64::MAX, u64::MAX)
                .unwrap()
                .is_none()
        );
    }
}

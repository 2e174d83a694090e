//! The seccomp policy as reviewed data (Firecracker's habit): which syscalls an agent may make.
//!
//! - [`ALLOWED`] (+ [`ALLOWED_LEGACY`] on x86_64): allowed with any arguments.
//! - [`FILTERED`]: allowed only with the argument checks in [`super::seccomp`] (`socket` and
//!   `socketpair` for `AF_UNIX` only, `ioctl` but not `TIOCSTI`/`TIOCLINUX`, `clone` without
//!   namespace flags).
//! - [`NOTIFIED`] (+ [`NOTIFIED_LEGACY`]): allowed after the kernel has looked at them
//!   through the listener (it records the ones the jail will refuse).
//! - [`LIMITED`]: allowed; large requests are shown to the kernel first (resource limits).
//! - [`ENOSYS`]: answered `ENOSYS` so the C library falls back (`clone3` → `clone`, whose
//!   flags a classic BPF filter can inspect, unlike `clone3`'s struct in memory).
//! - [`MODE_CHECKED`]: calls that set a file's mode, allowed only without `S_ISUID`/`S_ISGID`
//!   in it (for `open`/`openat` only when they create: `O_CREAT` or `O_TMPFILE`): no agent or
//!   tool makes a setuid or setgid file, even in its own scratch or a writable workspace. A
//!   refused one is `EPERM` and recorded like any denied call. Device nodes cannot be made at
//!   all: `mknod`/`mknodat` are denied whatever their mode (FIFOs included; nothing we run
//!   needs one). `fchmodat2` and `openat2` carry their mode where a filter cannot read it (a
//!   flags argument `fchmodat2` may use to skip nothing, `openat2`'s `struct open_how` in
//!   memory): both are answered `ENOSYS`, and the C library falls back to `fchmodat` and
//!   `openat`. `openat2` is not left to the listener: the struct is in the agent's memory,
//!   which another thread can change between the kernel's look and the call's `CONTINUE`.
//! - [`DENIED`]: what DESIGN §4 and the threat model forbid. None of them may appear in the
//!   lists above (a unit test checks); like everything not allowed they get `EPERM`. The list
//!   exists to be reviewed and tested.
//!
//! Traced with `strace -f` from `python3 -I` (threads, `subprocess`, sockets), `/bin/sh` and
//! `bash` pipelines, and a Rust std binary with threads and Unix sockets. Entries are the
//! `libc::SYS_*` constants, so a name that does not exist on the target does not compile.

/// `(libc constant name, number)` pairs; [`name`] strips the `SYS_` prefix.
pub type Table = &'static [(&'static str, i64)];

/// The syscall name of a table entry (`"SYS_read"` → `"read"`).
pub fn name(entry: &(&'static str, i64)) -> &'static str {
    entry.0.trim_start_matches("SYS_")
}

macro_rules! table {
    ($($sys:ident),* $(,)?) => {
        &[$((stringify!($sys), libc::$sys)),*]
    };
}

/// Allowed with any arguments (syscalls every architecture has).
#[rustfmt::skip]
pub const ALLOWED: Table = table![
    // file descriptors and I/O
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv,
    SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_lseek, SYS_close, SYS_close_range, SYS_dup,
    SYS_dup3, SYS_pipe2, SYS_fcntl, SYS_flock, SYS_fsync, SYS_fdatasync, SYS_ftruncate,
    SYS_fallocate, SYS_fadvise64, SYS_readahead, SYS_sendfile, SYS_splice,
    SYS_tee, SYS_copy_file_range, SYS_sync_file_range,
    // paths (landlock decides which ones; the path writes are in NOTIFIED)
    SYS_newfstatat, SYS_fstat, SYS_statx, SYS_statfs, SYS_fstatfs,
    SYS_faccessat, SYS_faccessat2, SYS_getdents64, SYS_getcwd, SYS_chdir, SYS_fchdir,
    SYS_fchmod, SYS_fchown, SYS_umask, SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr,
    SYS_listxattr, SYS_llistxattr, SYS_flistxattr,
    // memory
    SYS_brk, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_msync, SYS_mincore, SYS_membarrier,
    // polling and events
    SYS_ppoll, SYS_pselect6, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait,
    SYS_epoll_pwait2, SYS_eventfd2, SYS_timerfd_create, SYS_timerfd_settime,
    SYS_timerfd_gettime, SYS_signalfd4, SYS_inotify_init1, SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
    // signals (landlock scopes them to the agent's own domain)
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigpending,
    SYS_rt_sigtimedwait, SYS_rt_sigsuspend, SYS_sigaltstack, SYS_pidfd_send_signal,
    // processes and threads (clone is argument-filtered, execveat denied)
    SYS_execve, SYS_exit, SYS_exit_group, SYS_wait4, SYS_waitid, SYS_set_tid_address,
    SYS_set_robust_list, SYS_get_robust_list, SYS_rseq, SYS_futex, SYS_futex_waitv,
    SYS_sched_yield, SYS_sched_getaffinity, SYS_sched_setaffinity, SYS_sched_getparam,
    SYS_sched_getscheduler, SYS_sched_get_priority_max, SYS_sched_get_priority_min,
    SYS_getpriority, SYS_setpriority, SYS_prctl, SYS_getcpu, SYS_restart_syscall,
    SYS_setsid, SYS_setpgid, SYS_getpgid, SYS_getsid,
    // seccomp: filters only ever narrow (prctl(PR_SET_SECCOMP) can do the same); the launcher
    // itself needs it to install its second (ENOSYS) filter after the allow-list
    SYS_seccomp,
    // identity (read-only; the setuid family is denied)
    SYS_getpid, SYS_getppid, SYS_gettid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid,
    SYS_getgroups, SYS_getresuid, SYS_getresgid, SYS_capget, SYS_uname,
    // time and limits (raising a hard rlimit needs CAP_SYS_RESOURCE, which is dropped)
    SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep, SYS_nanosleep,
    SYS_gettimeofday, SYS_getitimer, SYS_setitimer, SYS_timer_create, SYS_timer_settime,
    SYS_timer_gettime, SYS_timer_getoverrun, SYS_timer_delete, SYS_times, SYS_getrusage,
    SYS_getrlimit, SYS_setrlimit, SYS_prlimit64, SYS_sysinfo, SYS_getrandom,
    // Unix sockets (socket/socketpair themselves are filtered to AF_UNIX)
    SYS_accept, SYS_accept4, SYS_bind, SYS_listen, SYS_shutdown,
    SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg, SYS_sendmmsg, SYS_recvmmsg,
    SYS_getsockname, SYS_getpeername, SYS_setsockopt, SYS_getsockopt,
    // System V IPC: the agent has its own IPC namespace
    SYS_shmget, SYS_shmat, SYS_shmdt, SYS_shmctl, SYS_semget, SYS_semop, SYS_semctl,
    SYS_semtimedop, SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl,
];

/// x86_64's legacy entry points glibc and static binaries still use.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub const ALLOWED_LEGACY: Table = table![
    SYS_stat, SYS_lstat, SYS_access, SYS_pipe, SYS_dup2, SYS_poll, SYS_select,
    SYS_getdents, SYS_epoll_create, SYS_epoll_wait, SYS_eventfd, SYS_signalfd,
    SYS_inotify_init, SYS_alarm, SYS_pause, SYS_time, SYS_getpgrp, SYS_arch_prctl,
    SYS_fork, SYS_vfork,
];

/// No legacy entry points elsewhere.
#[cfg(not(target_arch = "x86_64"))]
pub const ALLOWED_LEGACY: Table = &[];

/// Allowed, but shown to the kernel first (`SECCOMP_RET_USER_NOTIF`, answered
/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE`): opens, `readlink`, links, renames, the path writes
/// (`mkdir`, `unlink`/`rmdir`, `truncate`, `chmod`, `chown`, `utimensat`) and Unix `connect`
/// that may aim at a path the jail hides or keeps read-only, and signals that may aim outside
/// the agent's pid namespace. The jail (mount namespace, landlock, pid namespace) still
/// decides them; the kernel only records the attempts the jail refuses
/// (`kernel/src/sandbox_access.rs`). Stat-family calls are not here: they are the bulk of a
/// runtime's start-up and reveal nothing a refused open would not. (A unit test keeps every
/// entry out of the other lists.)
#[rustfmt::skip]
pub const NOTIFIED: Table = table![
    SYS_openat, SYS_readlinkat, SYS_linkat, SYS_symlinkat, SYS_renameat,
    SYS_renameat2, SYS_connect, SYS_kill, SYS_tkill, SYS_tgkill, SYS_rt_sigqueueinfo,
    SYS_rt_tgsigqueueinfo, SYS_pidfd_open,
    SYS_mkdirat, SYS_unlinkat, SYS_truncate, SYS_fchmodat, SYS_fchownat, SYS_utimensat,
];

/// x86_64's legacy entry points of [`NOTIFIED`] calls.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub const NOTIFIED_LEGACY: Table = table![
    SYS_open, SYS_creat, SYS_readlink, SYS_link, SYS_symlink, SYS_rename,
    SYS_mkdir, SYS_rmdir, SYS_unlink, SYS_chmod, SYS_chown, SYS_lchown, SYS_utime,
    SYS_utimes, SYS_futimesat,
];

/// No legacy entry points elsewhere.
#[cfg(not(target_arch = "x86_64"))]
pub const NOTIFIED_LEGACY: Table = &[];

/// Whether syscall `nr` is one of [`NOTIFIED`] / [`NOTIFIED_LEGACY`].
pub fn is_notified(nr: i64) -> bool {
    NOTIFIED.iter().chain(NOTIFIED_LEGACY).any(|e| e.1 == nr)
}

/// Allowed only when the argument checks of [`super::seccomp`] pass.
pub const FILTERED: Table = table![SYS_socket, SYS_socketpair, SYS_ioctl, SYS_clone];

/// Always allowed; a request of at least the spec's size (a fraction of the address-space
/// limit) is shown to the kernel first, which records the ones the limit refuses
/// (`kernel/src/sandbox_limits.rs`): `mmap` by its length, `mremap` by its new length.
pub const LIMITED: Table = table![SYS_mmap, SYS_mremap];

/// Answered `ENOSYS` (by a second filter) so libc falls back to a filterable call: `clone3` to
/// `clone`, `openat2` to `openat` (whose mode a filter reads), and (x86_64) `fchmodat2`, which
/// a newer libc's `lchmod` tries first, to `fchmodat` (which the kernel is shown).
#[cfg(target_arch = "x86_64")]
pub const ENOSYS: Table = table![SYS_clone3, SYS_openat2, SYS_fchmodat2];

/// Answered `ENOSYS` (by a second filter) so libc falls back to a filterable call.
#[cfg(not(target_arch = "x86_64"))]
pub const ENOSYS: Table = table![SYS_clone3, SYS_openat2];

/// The mode bits no agent or tool may set: `S_ISUID | S_ISGID`.
pub const SETID_BITS: u64 = (libc::S_ISUID | libc::S_ISGID) as u64;

/// The `open` flags that create a file: `O_CREAT`, and `O_TMPFILE` without its `O_DIRECTORY`
/// part (a plain `O_DIRECTORY` open creates nothing).
pub const CREATE_FLAGS: u64 = (libc::O_CREAT | (libc::O_TMPFILE & !libc::O_DIRECTORY)) as u64;

/// A call that sets a mode: its number, the argument holding the mode, and for the opens the
/// argument holding the flags (the mode counts only with one of [`CREATE_FLAGS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeCheck {
    pub entry: (&'static str, i64),
    pub mode_arg: u8,
    pub flags_arg: Option<u8>,
}

macro_rules! mode_checks {
    ($($sys:ident: $mode:literal $(if creating $flags:literal)?),* $(,)?) => {
        &[$(ModeCheck {
            entry: (stringify!($sys), libc::$sys),
            mode_arg: $mode,
            flags_arg: mode_checks!(@flags $($flags)?),
        }),*]
    };
    (@flags) => { None };
    (@flags $f:literal) => { Some($f) };
}

/// The mode-setting calls the filter allows only without [`SETID_BITS`] (see the module docs).
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub const MODE_CHECKED: &[ModeCheck] = mode_checks![
    SYS_fchmod: 1, SYS_fchmodat: 2, SYS_openat: 3 if creating 2,
    SYS_chmod: 1, SYS_open: 2 if creating 1, SYS_creat: 1,
];

/// The mode-setting calls the filter allows only without [`SETID_BITS`] (see the module docs).
#[cfg(not(target_arch = "x86_64"))]
#[rustfmt::skip]
pub const MODE_CHECKED: &[ModeCheck] = mode_checks![
    SYS_fchmod: 1, SYS_fchmodat: 2, SYS_openat: 3 if creating 2,
];

/// Whether the call `nr` with `args` would set a setuid or setgid mode (the filter refuses it;
/// the kernel's listener, shown a notified call, answers it `EPERM` by this same test). The
/// mode and flags are compared in their low 32 bits, as the host kernel reads them.
pub fn mode_refused(nr: i64, args: &[u64; 6]) -> bool {
    let Some(check) = MODE_CHECKED.iter().find(|c| c.entry.1 == nr) else {
        return false;
    };
    let low = |i: u8| args[usize::from(i)] & 0xffff_ffff;
    if let Some(f) = check.flags_arg {
        if low(f) & CREATE_FLAGS == 0 {
            return false;
        }
    }
    low(check.mode_arg) & SETID_BITS != 0
}

/// Denied (reviewed list; see the module docs). Names, since some do not exist everywhere.
#[rustfmt::skip]
pub const DENIED: &[&str] = &[
    // debugging and other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise",
    "kcmp",
    // mounts, roots and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsmount",
    "fsconfig", "fspick", "move_mount", "open_tree", "mount_setattr",
    // kernel attack surface
    "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key",
    "request_key", "perf_event_open", "userfaultfd", "modify_ldt", "personality",
    "iopl", "ioperm", "memfd_create", "memfd_secret", "execveat",
    "open_by_handle_at", "name_to_handle_at", "fanotify_init", "lookup_dcookie",
    // the machine itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "syslog", "swapon", "swapoff", "acct", "quotactl", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "vhangup",
    "mbind", "migrate_pages", "move_pages", "set_mempolicy",
    // credentials
    "capset", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setfsuid", "setfsgid", "setgroups",
];

/// The numbers of what [`DENIED`] names (where the target has them), plus other calls an
/// attacker reaches for, so that a denial can be reported by name.
#[rustfmt::skip]
pub const DENIED_NUMBERS: Table = table![
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_pidfd_getfd,
    SYS_process_madvise, SYS_kcmp, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot,
    SYS_unshare, SYS_setns, SYS_fsopen, SYS_fsmount, SYS_fsconfig, SYS_fspick, SYS_move_mount,
    SYS_open_tree, SYS_mount_setattr, SYS_bpf, SYS_io_uring_setup, SYS_io_uring_enter,
    SYS_io_uring_register, SYS_keyctl, SYS_add_key, SYS_request_key, SYS_perf_event_open,
    SYS_userfaultfd, SYS_personality, SYS_memfd_create, SYS_memfd_secret, SYS_execveat,
    SYS_open_by_handle_at, SYS_name_to_handle_at, SYS_fanotify_init, SYS_kexec_load,
    SYS_kexec_file_load, SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_reboot,
    SYS_syslog, SYS_swapon, SYS_swapoff, SYS_acct, SYS_quotactl, SYS_settimeofday,
    SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex, SYS_sethostname, SYS_setdomainname,
    SYS_vhangup, SYS_mbind, SYS_migrate_pages, SYS_move_pages, SYS_set_mempolicy, SYS_capset,
    SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid,
    SYS_setfsuid, SYS_setfsgid, SYS_setgroups, SYS_mknodat, SYS_setxattr, SYS_lsetxattr,
    SYS_fsetxattr, SYS_removexattr, SYS_lremovexattr, SYS_fremovexattr,
];

/// x86_64-only denied calls.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub const DENIED_NUMBERS_LEGACY: Table = table![
    SYS_modify_ldt, SYS_iopl, SYS_ioperm, SYS_lookup_dcookie, SYS_mknod, SYS_uselib,
    SYS_ustat, SYS_sysfs, SYS__sysctl, SYS_nfsservctl,
];

/// No legacy entry points elsewhere.
#[cfg(not(target_arch = "x86_64"))]
pub const DENIED_NUMBERS_LEGACY: Table = &[];

/// The name of syscall `nr` on this target, if any table knows it.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    all_allowed()
        .chain(DENIED_NUMBERS)
        .chain(DENIED_NUMBERS_LEGACY)
        .find(|e| e.1 == nr)
        .map(name)
}

/// Every entry allowed in some form (all lists but [`DENIED`]).
pub fn all_allowed() -> impl Iterator<Item = &'static (&'static str, i64)> {
    ALLOWED
        .iter()
        .chain(ALLOWED_LEGACY)
        .chain(FILTERED)
        .chain(NOTIFIED)
        .chain(NOTIFIED_LEGACY)
        .chain(LIMITED)
        .chain(ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn denied_and_allowed_are_disjoint() {
        let allowed: HashSet<&str> = all_allowed().map(name).collect();
        let both: Vec<&&str> = DENIED.iter().filter(|d| allowed.contains(**d)).collect();
        assert!(
            both.is_empty(),
            "denied syscalls in the allow-list: {both:?}"
        );
    }

    #[test]
    fn design_denials_are_listed() {
        for must in [
            "ptrace",
            "mount",
            "bpf",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "keyctl",
            "perf_event_open",
            "userfaultfd",
            "unshare",
            "setns",
            "clone3",
        ] {
            let allowed_plain = ALLOWED
                .iter()
                .chain(ALLOWED_LEGACY)
                .any(|e| name(e) == must);
            assert!(!allowed_plain, "{must} is allowed unconditionally");
        }
    }

    #[test]
    fn denied_numbers_match_denied_names() {
        for e in DENIED_NUMBERS.iter().chain(DENIED_NUMBERS_LEGACY) {
            assert!(
                !all_allowed().any(|a| a.1 == e.1),
                "{} is both allowed and denied",
                name(e)
            );
        }
        assert_eq!(syscall_name(libc::SYS_ptrace), Some("ptrace"));
        assert_eq!(syscall_name(libc::SYS_socket), Some("socket"));
        for d in DENIED {
            let known = DENIED_NUMBERS
                .iter()
                .chain(DENIED_NUMBERS_LEGACY)
                .any(|e| name(e) == *d);
            assert!(known || !cfg!(target_arch = "x86_64"), "{d} has no number");
        }
    }

    /// Every call that can give a file a mode, or make a node, is mode-checked, answered
    /// ENOSYS or not allowed at all.
    #[test]
    fn every_mode_setting_call_is_checked_or_not_allowed() {
        let mut setters: Vec<i64> = vec![
            libc::SYS_fchmod,
            libc::SYS_fchmodat,
            libc::SYS_openat,
            libc::SYS_openat2,
            libc::SYS_mknodat,
        ];
        #[cfg(target_arch = "x86_64")]
        setters.extend([
            libc::SYS_chmod,
            libc::SYS_open,
            libc::SYS_creat,
            libc::SYS_mknod,
            libc::SYS_fchmodat2,
        ]);
        for nr in setters {
            let checked = MODE_CHECKED.iter().any(|c| c.entry.1 == nr);
            let nosys = ENOSYS.iter().any(|e| e.1 == nr);
            let allowed = all_allowed().any(|e| e.1 == nr);
            assert!(
                checked || nosys || !allowed,
                "{:?} sets a mode unchecked",
                syscall_name(nr)
            );
            assert!(!(checked && nosys), "{nr} is both checked and ENOSYS");
        }
        // Every checked call is allowed in some list (else the check would be dead).
        for c in MODE_CHECKED {
            assert!(all_allowed().any(|e| e.1 == c.entry.1), "{}", c.entry.0);
        }
        // No device node, in any form.
        assert!(!all_allowed().any(|e| e.1 == libc::SYS_mknodat));
    }

    #[test]
    fn setid_modes_are_refused_plain_ones_and_non_creating_opens_are_not() {
        let (cr, wr) = (libc::O_CREAT as u64, libc::O_WRONLY as u64);
        assert!(mode_refused(libc::SYS_fchmod, &[3, 0o4755, 0, 0, 0, 0]));
        assert!(mode_refused(libc::SYS_fchmodat, &[0, 0, 0o2755, 0, 0, 0]));
        assert!(!mode_refused(libc::SYS_fchmodat, &[0, 0, 0o1777, 0, 0, 0]));
        assert!(!mode_refused(libc::SYS_fchmod, &[3, 0o755, 0, 0, 0, 0]));
        assert!(mode_refused(
            libc::SYS_openat,
            &[0, 0, cr | wr, 0o4755, 0, 0]
        ));
        let tmpfile = (libc::O_TMPFILE | libc::O_RDWR) as u64;
        assert!(mode_refused(
            libc::SYS_openat,
            &[0, 0, tmpfile, 0o6000, 0, 0]
        ));
        // No creation: the mode argument is not read (whatever garbage it holds).
        let dir = libc::O_DIRECTORY as u64;
        assert!(!mode_refused(libc::SYS_openat, &[0, 0, dir, 0o4755, 0, 0]));
        assert!(!mode_refused(libc::SYS_openat, &[0, 0, wr, u64::MAX, 0, 0]));
        // High bits of a 32-bit argument are ignored, as the host kernel ignores them.
        assert!(!mode_refused(
            libc::SYS_fchmod,
            &[3, 0o6000 << 32, 0, 0, 0, 0]
        ));
        assert!(!mode_refused(
            libc::SYS_write,
            &[0, 0o4755, 0o4755, 0o4755, 0, 0]
        ));
        #[cfg(target_arch = "x86_64")]
        {
            assert!(mode_refused(libc::SYS_chmod, &[0, 0o4711, 0, 0, 0, 0]));
            assert!(mode_refused(libc::SYS_creat, &[0, 0o2700, 0, 0, 0, 0]));
            assert!(mode_refused(libc::SYS_open, &[0, cr, 0o4000, 0, 0, 0]));
            assert!(!mode_refused(libc::SYS_open, &[0, 0, 0o4000, 0, 0, 0]));
        }
    }

    #[test]
    fn no_duplicates_and_numbers_unique() {
        let mut names = HashSet::new();
        let mut numbers = HashSet::new();
        for e in all_allowed() {
            assert!(names.insert(name(e)), "duplicate {}", name(e));
            assert!(numbers.insert(e.1), "duplicate number {}", e.1);
        }
    }
}

//! The Rust attack agent (`agentos-test-agent attack NAME [ARG]`): one escape attempt from
//! inside the jail, reported as one line, `attack NAME: blocked ERRNO` or
//! `attack NAME: ESCAPED what happened`. The escape suite (`tests/suite/escape.rs`) asserts
//! on that line, on the kernel's health and on the flight recorder.

use crate::say;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::fcntl::AT_FDCWD;
use nix::sys::stat::Mode;

use crate::sys::raw_syscall;

/// How an attempt ended: `Err(errno)` = blocked, `Ok(detail)` = it worked (an escape).
pub type Outcome = Result<String, Errno>;

fn sys(nr: i64, args: [u64; 6]) -> Outcome {
    raw_syscall(nr, args)
        .map(|rc| format!("syscall {nr} returned {rc}"))
        .map_err(Errno::from_raw)
}

fn nix<T: std::fmt::Debug>(r: nix::Result<T>) -> Outcome {
    r.map(|v| format!("{v:?}"))
}

fn io<T: std::fmt::Debug>(r: std::io::Result<T>) -> Outcome {
    r.map(|v| format!("{v:?}"))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

fn socket(domain: i32, ty: i32, proto: i32) -> Outcome {
    sys(
        libc::SYS_socket,
        [domain as u64, ty as u64, proto as u64, 0, 0, 0],
    )
}

/// The runtime file the path-write attacks aim at (read-only in every jail).
pub const RUNTIME_FILE: &str = "/usr/bin/env";

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// What [`RUNTIME_FILE`] is now (mode, owner, length, times), as the jail shows it.
fn runtime_meta() -> Result<std::fs::Metadata, Errno> {
    std::fs::metadata(RUNTIME_FILE).map_err(|e| errno_of(&e))
}

/// Every attack the agent knows, by name.
pub const ATTACKS: &[&str] = &[
    "shadow",
    "write-outside",
    "poison-sdk",
    "symlink",
    "hardlink",
    "proc-root",
    "proc-mem",
    "dev-fd",
    "proc-fd",
    "mkdir-outside",
    "unlink-runtime",
    "rmdir-runtime",
    "chmod-runtime",
    "chown-runtime",
    "truncate-runtime",
    "utimensat-runtime",
    "chmod-device",
    "chmod-proc-fd",
    "mknod",
    "setxattr",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare-user",
    "setns",
    "ptrace",
    "process_vm_writev",
    "kill-all",
    "kill-pid",
    "setuid",
    "capset",
    "personality",
    "tiocsti",
    "tcp",
    "udp-dns",
    "ipv6",
    "raw",
    "netlink",
    "packet",
    "connect",
    "abstract",
    "io_uring_setup",
    "memfd_create",
    "execveat",
    "bpf",
    "userfaultfd",
    "perf_event_open",
    "keyctl",
    "modify_ldt",
    "init_module",
    "kexec_load",
    "reboot",
    "syslog",
    "fork-bomb",
    "memory-bomb",
    "disk-fill",
    "cpu-spin",
    "fd-exhaustion",
    "flood",
];

/// Runs attack `name` with its optional argument (a pid or a path from outside).
pub fn run(name: &str, arg: Option<&str>) -> Outcome {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    // `@FILE`: the pid is read from FILE once the test has written it there — a process that
    // only exists after this agent was spawned. (Never written: pid 1, the agent's own init,
    // which the verdict shows as not blocked.)
    let pid_arg = || match arg.and_then(|a| a.strip_prefix('@')) {
        Some(file) => pid_from_file(file),
        None => arg.and_then(|a| a.parse::<i32>().ok()).unwrap_or(1),
    };
    match name {
        n if crate::disk_modes::ATTACKS.contains(&n) => crate::disk_modes::run(n, arg),
        "shadow" => io(std::fs::read("/etc/shadow").map(|b| b.len())),
        "write-outside" => {
            let mut last = Errno::UnknownErrno;
            for p in [
                "/etc/agentos-escape",
                "/usr/agentos-escape",
                "/agentos-escape",
                "/proc/agentos-escape",
            ] {
                match std::fs::write(p, b"x") {
                    Ok(()) => return Ok(format!("wrote {p}")),
                    Err(e) => last = Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                }
            }
            Err(last)
        }
        // The SDKs every agent imports (Python on PYTHONPATH, Node on NODE_PATH): a new file
        // beside them, each existing file overwritten, truncated, unlinked, made writable. A
        // success would let one agent change the code its neighbours run.
        "poison-sdk" => {
            let mut last = Errno::ENOENT;
            let mut note = |e: std::io::Error| last = errno_of(&e);
            let mut tried = 0;
            for var in ["PYTHONPATH", "NODE_PATH"] {
                let Some(dir) = std::env::var_os(var) else {
                    continue;
                };
                let dir = std::path::PathBuf::from(dir);
                let new = dir.join("agentos-poison.py");
                match std::fs::write(&new, b"x") {
                    Ok(()) => return Ok(format!("wrote {}", new.display())),
                    Err(e) => note(e),
                }
                let mut stack = vec![dir];
                while let Some(d) = stack.pop() {
                    let Ok(entries) = std::fs::read_dir(&d) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let p = entry.path();
                        if p.is_dir() {
                            stack.push(p);
                            continue;
                        }
                        tried += 1;
                        let opened = std::fs::OpenOptions::new().write(true).open(&p);
                        match opened.and_then(|mut f| std::io::Write::write_all(&mut f, b"x")) {
                            Ok(()) => return Ok(format!("overwrote {}", p.display())),
                            Err(e) => note(e),
                        }
                        if std::fs::remove_file(&p).is_ok() {
                            return Ok(format!("unlinked {}", p.display()));
                        }
                        use std::os::unix::fs::PermissionsExt;
                        let perms = std::fs::Permissions::from_mode(0o666);
                        if std::fs::set_permissions(&p, perms).is_ok() {
                            return Ok(format!("made {} writable", p.display()));
                        }
                    }
                }
            }
            if tried == 0 {
                // Nothing found to attack is not a pass.
                return Ok("found no SDK file to attack".into());
            }
            Err(last)
        }
        "symlink" => {
            // Creating the link is allowed in scratch; following it out must not be.
            let _ = std::os::unix::fs::symlink("/etc/shadow", "shadow-link");
            io(std::fs::read("shadow-link").map(|b| b.len()))
        }
        "hardlink" => io(std::fs::hard_link("/usr/bin/env", "env-link")),
        "proc-root" => io(std::fs::read("/proc/self/root/../../etc/shadow").map(|b| b.len())),
        "proc-mem" => {
            // Our own init (pid 1), then the kernel's pid from outside.
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open("/proc/1/mem") {
                return Ok(format!("opened /proc/1/mem for writing: {f:?}"));
            }
            io(std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/{}/mem", pid_arg())))
        }
        "dev-fd" => io(std::fs::read_link("/dev/fd/3").and_then(|_| std::fs::read("/dev/fd/3"))),
        "proc-fd" => {
            let dir = std::fs::read_dir("/proc/self/fd")
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
            let fds: Vec<i32> = dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            // The directory being listed is the one extra descriptor.
            let extra: Vec<&i32> = fds.iter().filter(|f| **f > 4).collect();
            if extra.is_empty() && (0..=3).all(|f| fds.contains(&f)) {
                Err(Errno::EBADF)
            } else {
                Ok(format!("descriptors {fds:?}"))
            }
        }
        "mkdir-outside" => nix(nix::sys::stat::mkdirat(
            AT_FDCWD,
            "/usr/agentos-escape-dir",
            Mode::from_bits_truncate(0o755),
        )),
        "unlink-runtime" => nix(nix::unistd::unlinkat(
            AT_FDCWD,
            RUNTIME_FILE,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )),
        // A runtime directory that is not empty: harmless even where the jail failed.
        "rmdir-runtime" => nix(nix::unistd::unlinkat(
            AT_FDCWD,
            "/usr/share",
            nix::unistd::UnlinkatFlags::RemoveDir,
        )),
        // The metadata attacks set what the file already has (its mode, owner, length,
        // times): the host kernel checks the same rights as for a change, and a jail that
        // failed would still leave the host's file as it was.
        "chmod-runtime" => {
            let m = runtime_meta()?;
            nix(nix::sys::stat::fchmodat(
                AT_FDCWD,
                RUNTIME_FILE,
                Mode::from_bits_truncate(m.mode()),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            ))
        }
        "chown-runtime" => {
            let m = runtime_meta()?;
            nix(nix::unistd::fchownat(
                AT_FDCWD,
                RUNTIME_FILE,
                Some(nix::unistd::Uid::from_raw(m.uid())),
                Some(nix::unistd::Gid::from_raw(m.gid())),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ))
        }
        "truncate-runtime" => {
            let m = runtime_meta()?;
            nix(nix::unistd::truncate(RUNTIME_FILE, m.size() as i64))
        }
        "utimensat-runtime" => {
            let m = runtime_meta()?;
            let t = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
            nix(nix::sys::stat::utimensat(
                AT_FDCWD,
                RUNTIME_FILE,
                &t(m.atime(), m.atime_nsec()),
                &t(m.mtime(), m.mtime_nsec()),
                nix::sys::stat::UtimensatFlags::FollowSymlink,
            ))
        }
        // A device the jail binds writable: its data, not its metadata (the mode it has).
        "chmod-device" => {
            let m = std::fs::metadata("/dev/null").map_err(|e| errno_of(&e))?;
            nix(nix::sys::stat::fchmodat(
                AT_FDCWD,
                "/dev/null",
                Mode::from_bits_truncate(m.mode()),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            ))
        }
        // Through the descriptor's magic link (an O_PATH open is a read).
        "chmod-proc-fd" => {
            use std::os::fd::AsRawFd;
            let m = runtime_meta()?;
            let f = nix::fcntl::open(
                RUNTIME_FILE,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            nix(nix::sys::stat::fchmodat(
                AT_FDCWD,
                format!("/proc/self/fd/{}", f.as_raw_fd()).as_str(),
                Mode::from_bits_truncate(m.mode()),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            ))
        }
        "mknod" => nix(nix::sys::stat::mknod(
            "/usr/agentos-escape-fifo",
            nix::sys::stat::SFlag::S_IFIFO,
            Mode::from_bits_truncate(0o644),
            0,
        )),
        "setxattr" => crate::sys::setxattr(RUNTIME_FILE, "user.agentos-escape", b"x")
            .map(|rc| format!("setxattr returned {rc}"))
            .map_err(Errno::from_raw),
        "mount" => nix(nix::mount::mount(
            Some("none"),
            "/usr",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )),
        "umount2" => nix(nix::mount::umount2(
            "/usr",
            nix::mount::MntFlags::MNT_DETACH,
        )),
        "pivot_root" => nix(nix::unistd::pivot_root("/usr", "/usr")),
        "chroot" => nix(nix::unistd::chroot("/usr")),
        "unshare-user" => nix(nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)),
        "setns" => {
            let f = std::fs::File::open("/proc/1/ns/net")
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
            nix(nix::sched::setns(f, nix::sched::CloneFlags::empty()))
        }
        "ptrace" => sys(
            libc::SYS_ptrace,
            [libc::PTRACE_ATTACH as u64, pid_arg() as u64, 0, 0, 0, 0],
        ),
        "process_vm_writev" => sys(
            libc::SYS_process_vm_writev,
            [pid_arg() as u64, 0, 0, 0, 0, 0],
        ),
        "kill-all" => nix(kill(Pid::from_raw(-1), Signal::SIGKILL)),
        "kill-pid" => nix(kill(Pid::from_raw(pid_arg()), Signal::SIGKILL)),
        "setuid" => sys(libc::SYS_setuid, [0; 6]),
        "capset" => sys(libc::SYS_capset, [0; 6]),
        "personality" => sys(
            libc::SYS_personality,
            [libc::ADDR_NO_RANDOMIZE as u64, 0, 0, 0, 0, 0],
        ),
        "tiocsti" => crate::sys::ioctl_byte(0, libc::TIOCSTI, b'x')
            .map(|rc| format!("ioctl returned {rc}"))
            .map_err(Errno::from_raw),
        "tcp" => socket(libc::AF_INET, libc::SOCK_STREAM, 0),
        "udp-dns" => socket(libc::AF_INET, libc::SOCK_DGRAM, 0),
        "ipv6" => socket(libc::AF_INET6, libc::SOCK_STREAM, 0),
        "raw" => socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        "netlink" => socket(libc::AF_NETLINK, libc::SOCK_RAW, 0),
        "packet" => socket(libc::AF_PACKET, libc::SOCK_RAW, 0),
        "connect" => io(std::os::unix::net::UnixStream::connect(
            arg.unwrap_or("/kernel.sock"),
        )),
        "abstract" => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(
                arg.unwrap_or("agentos-escape").as_bytes(),
            )
            .map_err(|_| Errno::EINVAL)?;
            io(std::os::unix::net::UnixStream::connect_addr(&addr))
        }
        "io_uring_setup" => sys(libc::SYS_io_uring_setup, [1, 0, 0, 0, 0, 0]),
        "memfd_create" => sys(libc::SYS_memfd_create, [0; 6]),
        "execveat" => sys(
            libc::SYS_execveat,
            [0, 0, 0, 0, libc::AT_EMPTY_PATH as u64, 0],
        ),
        "bpf" => sys(libc::SYS_bpf, [0; 6]),
        "userfaultfd" => sys(libc::SYS_userfaultfd, [0; 6]),
        "perf_event_open" => sys(libc::SYS_perf_event_open, [0, 0, u64::MAX, u64::MAX, 0, 0]),
        "keyctl" => sys(libc::SYS_keyctl, [0; 6]),
        #[cfg(target_arch = "x86_64")]
        "modify_ldt" => sys(libc::SYS_modify_ldt, [0; 6]),
        "init_module" => sys(libc::SYS_init_module, [0; 6]),
        "kexec_load" => sys(libc::SYS_kexec_load, [0; 6]),
        "reboot" => sys(
            libc::SYS_reboot,
            [
                libc::LINUX_REBOOT_MAGIC1 as u64,
                libc::LINUX_REBOOT_MAGIC2 as u64,
                libc::LINUX_REBOOT_CMD_CAD_OFF as u64,
                0,
                0,
                0,
            ],
        ),
        "syslog" => sys(libc::SYS_syslog, [3, 0, 0, 0, 0, 0]),
        // Run as a setuid-root copy of this binary: no_new_privs must keep the euid.
        "setuid-binary" => {
            let (uid, euid) = (nix::unistd::getuid(), nix::unistd::geteuid());
            say(&format!("uid {uid} euid {euid}"));
            if uid == euid {
                Err(Errno::EPERM)
            } else {
                Ok(format!("euid {euid} (uid {uid})"))
            }
        }
        "fork-bomb" => fork_bomb(),
        "memory-bomb" => memory_bomb(),
        "disk-fill" => disk_fill(),
        "cpu-spin" => cpu_spin(),
        "fd-exhaustion" => fd_exhaustion(),
        "flood" => flood(arg.and_then(|a| a.parse().ok()).unwrap_or(100_000)),
        _ => Err(Errno::ENOSYS),
    }
}

/// Makes the same denied syscall (`syslog`) `n` times; blocked only if every one was refused
/// with the same errno (`flooded N` is printed before the verdict).
fn flood(n: u32) -> Outcome {
    say("flooding");
    let mut errno = None;
    for i in 0..n {
        match raw_syscall(libc::SYS_syslog, [3, 0, 0, 0, 0, 0]) {
            Ok(rc) => return Ok(format!("syslog returned {rc} on try {i}")),
            Err(e) if errno.is_none_or(|x| x == e) => errno = Some(e),
            Err(e) => return Ok(format!("errno changed to {e} on try {i}")),
        }
    }
    say(&format!("flooded {n}"));
    Err(Errno::from_raw(errno.unwrap_or(0)))
}

/// Forks until the process limit answers; the children wait to be killed.
fn fork_bomb() -> Outcome {
    let mut n = 0u32;
    loop {
        match std::process::Command::new("/bin/sleep").arg("1000").spawn() {
            Ok(child) => {
                std::mem::forget(child);
                n += 1;
                if n > 100_000 {
                    return Ok(format!("{n} processes"));
                }
            }
            Err(e) => {
                say(&format!("forked {n}"));
                return Err(Errno::from_raw(e.raw_os_error().unwrap_or(0)));
            }
        }
    }
}

/// Allocates (and touches) 64 MiB blocks until the address-space limit answers.
fn memory_bomb() -> Outcome {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut v: Vec<u8> = Vec::new();
        if v.try_reserve_exact(64 << 20).is_err() {
            return Err(Errno::ENOMEM);
        }
        v.resize(64 << 20, 1);
        blocks.push(v);
        if blocks.len() > 1024 {
            return Ok(format!("{} MiB", blocks.len() * 64));
        }
    }
}

/// Writes to a scratch file until the file-size limit answers (SIGXFSZ ignored, so EFBIG).
fn disk_fill() -> Outcome {
    crate::sys::ignore_sigxfsz();
    let mut f = std::fs::File::create("fill")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    let block = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => return Err(Errno::ENOSPC),
            Ok(n) => total += n as u64,
            Err(e) => {
                say(&format!("wrote {total} bytes"));
                return Err(Errno::from_raw(e.raw_os_error().unwrap_or(0)));
            }
        }
        if total > 64 << 30 {
            return Ok(format!("wrote {total} bytes"));
        }
    }
}

/// Spins; RLIMIT_CPU must end it (SIGXCPU, then SIGKILL at the hard limit).
fn cpu_spin() -> Outcome {
    say("spinning");
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Opens descriptors until the open-file limit answers.
fn fd_exhaustion() -> Outcome {
    let mut files = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                say(&format!("opened {}", files.len()));
                return Err(Errno::from_raw(e.raw_os_error().unwrap_or(0)));
            }
        }
        if files.len() > 1 << 20 {
            return Ok(format!("{} descriptors", files.len()));
        }
    }
}

/// The agent's main for `attack NAME [ARG]`: prints the verdict line; exit 0 when blocked,
/// 1 when escaped.
pub fn main(name: &str, arg: Option<&str>) -> u8 {
    match run(name, arg) {
        Err(errno) => {
            say(&format!("attack {name}: blocked {errno:?}"));
            if name == "fork-bomb" {
                // A bomb keeps what it got, as a real one does: the operator's kill ends it.
                loop {
                    std::thread::park();
                }
            }
            0
        }
        Ok(detail) => {
            say(&format!("attack {name}: ESCAPED {detail}"));
            1
        }
    }
}

/// The pid in `file` once it holds one (the test renames it into place whole), polled for up
/// to 20 s; 1 when it never comes.
fn pid_from_file(file: &str) -> i32 {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < end {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    1
}

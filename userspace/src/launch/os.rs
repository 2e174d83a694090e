//! The launcher's window on the operating system: [`Sys`], with the real [`LinuxSys`] and the
//! [`RecordingSys`] the step-order tests run on (youki's `Syscall` pattern).
//!
//! Invariants: [`super::steps`] makes every OS call through a [`Sys`], so the recorded call
//! list *is* the jail's build order; `LinuxSys` keeps all `unsafe` in `crate::sys`.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use agentos_syscalls::{frame, AgentFrame, JailReport, LayerStatus, AGENT_FD};
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::error::other;
use super::spec::JailSpec;
use crate::sys;

pub use crate::sys::Forked as ForkSide;

/// An rlimit the launcher sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    AddressSpace,
    OpenFiles,
    CpuSeconds,
    FileSize,
    Core,
    Processes,
}

impl Limit {
    /// The name used in messages and the report (`RLIMIT_` stripped, lowercase).
    pub fn name(self) -> &'static str {
        match self {
            Limit::AddressSpace => "as",
            Limit::OpenFiles => "nofile",
            Limit::CpuSeconds => "cpu",
            Limit::FileSize => "fsize",
            Limit::Core => "core",
            Limit::Processes => "nproc",
        }
    }

    fn resource(self) -> Resource {
        match self {
            Limit::AddressSpace => Resource::RLIMIT_AS,
            Limit::OpenFiles => Resource::RLIMIT_NOFILE,
            Limit::CpuSeconds => Resource::RLIMIT_CPU,
            Limit::FileSize => Resource::RLIMIT_FSIZE,
            Limit::Core => Resource::RLIMIT_CORE,
            Limit::Processes => Resource::RLIMIT_NPROC,
        }
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Every OS operation the launcher makes, in the words of the jail.
pub trait Sys {
    /// Checks that the scratch directory exists and is a directory.
    fn check_dir(&mut self, path: &Path) -> io::Result<()>;
    fn setsid(&mut self) -> io::Result<()>;
    /// `prctl(PR_SET_PDEATHSIG, SIGKILL)`.
    fn set_pdeathsig(&mut self) -> io::Result<()>;
    fn getppid(&mut self) -> u32;
    /// Closes every descriptor above [`AGENT_FD`].
    fn close_fds_above_agent_fd(&mut self) -> io::Result<()>;
    /// Empties the launcher's own environment.
    fn clear_env(&mut self);
    /// Sets the soft limit to `value`, and the hard one too (the CPU hard limit one second above).
    fn setrlimit(&mut self, limit: Limit, value: u64) -> io::Result<()>;
    /// Moves this (single-threaded) process into a cgroup: writes `0` to the group's join file
    /// (v1 `tasks`, v2 `cgroup.procs`; see `cgroup::AgentGroup::join_files`).
    fn join_cgroup(&mut self, procs: &Path) -> io::Result<()>;
    /// `unshare(CLONE_NEWUSER|NEWPID|NEWIPC|NEWUTS|NEWNS)`, and `CLONE_NEWNET` when `net`.
    fn unshare_namespaces(&mut self, net: bool) -> io::Result<()>;
    /// `(euid, egid)`.
    fn ids(&mut self) -> (u32, u32);
    /// Writes `contents` to `/proc/self/<file>` in one `write`.
    fn write_proc_self(&mut self, file: &'static str, contents: &str) -> io::Result<()>;
    /// Creates the pipe whose write end only the launcher keeps (the init's liveness probe).
    fn liveness_pipe(&mut self) -> io::Result<()>;
    fn fork(&mut self) -> io::Result<ForkSide>;
    /// Parent side: closes the read end, keeps the write end until exit.
    fn liveness_hold(&mut self);
    /// Child side: closes the write end; fails if the launcher is already gone (EOF).
    fn liveness_check(&mut self) -> io::Result<()>;
    /// Closes [`AGENT_FD`] in this process.
    fn close_agent_fd(&mut self) -> io::Result<()>;
    /// Waits for one child to end.
    fn wait_child(&mut self, pid: i32) -> io::Result<Exit>;
    fn sethostname(&mut self, name: &str) -> io::Result<()>;
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`.
    fn mount_private(&mut self) -> io::Result<()>;
    /// Sets `IFF_UP` on `lo` in the (new) network namespace.
    fn loopback_up(&mut self) -> io::Result<()>;
    /// Listens on `127.0.0.1:port` (TCP) of this network namespace; keeps the listener for
    /// [`Sys::send_egress_listener`].
    fn egress_listen(&mut self, port: u16) -> io::Result<()>;
    /// The minimal root (tmpfs, binds, symlinks, `/proc`), not yet the root; returns the
    /// layer detail. See [`super::rootfs`].
    fn build_root(&mut self, spec: &JailSpec) -> io::Result<String>;
    /// `pivot_root` into the root [`Sys::build_root`] made, old root detached.
    fn pivot_root(&mut self) -> io::Result<()>;
    /// Locks the securebits and empties every capability set; returns the layer detail.
    fn drop_capabilities(&mut self) -> io::Result<String>;
    fn set_no_new_privs(&mut self) -> io::Result<()>;
    fn landlock(&mut self, spec: &JailSpec) -> io::Result<LayerStatus>;
    /// Installs the seccomp layer; keeps its user-notification listener, if the host gave one,
    /// for [`Sys::send_listener`].
    fn seccomp(&mut self, network: bool, large_mmap: Option<u64>) -> io::Result<LayerStatus>;
    /// Sends the one `AgentFrame::JailReport` frame on [`AGENT_FD`].
    fn send_report(&mut self, report: &JailReport) -> io::Result<()>;
    /// Sends `AgentFrame::SandboxListener` with the seccomp listener attached (`SCM_RIGHTS`)
    /// on [`AGENT_FD`] and closes this process's copy; does nothing without a listener.
    fn send_listener(&mut self) -> io::Result<()>;
    /// Sends `AgentFrame::EgressListener` with the egress proxy's listener attached
    /// (`SCM_RIGHTS`) on [`AGENT_FD`] and closes this process's copy; does nothing without one.
    fn send_egress_listener(&mut self) -> io::Result<()>;
    /// Gives the allocator's free pages back to the host: from here on the init only reaps,
    /// and its resident memory is most of what an idle agent costs beside its program.
    fn release_memory(&mut self);
    /// `waitpid(-1)`: the next child to end.
    fn reap(&mut self) -> io::Result<(i32, Exit)>;
    /// `kill(-1, SIGKILL)`: every other process of the pid namespace.
    fn kill_all(&mut self);
    /// `waitpid(-1)` until no child is left (`ECHILD`): after [`Sys::kill_all`], every other
    /// process of the pid namespace is gone when this returns.
    fn reap_rest(&mut self);
    /// Closes stdout and stderr, the last copies of the tool's output pipes once its tree is
    /// reaped, so the kernel reads their end now, not when this process's exit releases them
    /// (after the namespaces' teardown). Nothing is printed from here on.
    fn close_output(&mut self);
    /// Sends `AgentFrame::ToolExit` with `status` on [`AGENT_FD`] (a tool's init only).
    fn send_tool_exit(&mut self, status: i32) -> io::Result<()>;
    fn chdir(&mut self, path: &Path) -> io::Result<()>;
    /// Starts the agent program (A) and returns its pid: `posix_spawn`, a vfork (nothing of
    /// this process is copied), in a new session, with [`AGENT_FD`] closed first when
    /// `close_agent_fd`, in this process's working directory, with exactly `env`. An error is
    /// A's (`setsid`, the close or `execve`), known before this returns.
    fn spawn(
        &mut self,
        program: &CString,
        argv: &[CString],
        env: &[CString],
        close_agent_fd: bool,
    ) -> io::Result<i32>;
    /// A line on stderr.
    fn eprint(&mut self, line: &str);
}

/// The real thing.
#[derive(Debug, Default)]
pub struct LinuxSys {
    live_read: Option<OwnedFd>,
    live_write: Option<OwnedFd>,
    /// The new root, between `build_root` and `pivot_root`.
    new_root: Option<PathBuf>,
    /// What `/` is now (landlock grants listing `/` and reading `/proc` only in the
    /// minimal root, the latter only if it is the agent's own proc).
    root_view: super::landlock_rules::RootView,
    proc_built: bool,
    /// The seccomp user-notification listener, between `seccomp` and `send_listener`.
    listener: Option<OwnedFd>,
    /// The egress proxy's listener, between `egress_listen` and `send_egress_listener`.
    egress: Option<OwnedFd>,
}

impl Sys for LinuxSys {
    fn check_dir(&mut self, path: &Path) -> io::Result<()> {
        if std::fs::metadata(path)?.is_dir() {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::NotADirectory))
        }
    }

    fn setsid(&mut self) -> io::Result<()> {
        nix::unistd::setsid().map(drop).map_err(io::Error::from)
    }

    fn set_pdeathsig(&mut self) -> io::Result<()> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)
    }

    fn getppid(&mut self) -> u32 {
        match u32::try_from(nix::unistd::getppid().as_raw()).unwrap_or(0) {
            // The zygote's clone is pid 1 of its own pid namespace, where its parent (the
            // kernel) has no pid: ask the host's /proc (not yet replaced by the jail's own),
            // whose pid namespace is the kernel's.
            0 => host_ppid().unwrap_or(0),
            ppid => ppid,
        }
    }

    fn close_fds_above_agent_fd(&mut self) -> io::Result<()> {
        sys::close_from(AGENT_FD as u32 + 1)
    }

    fn clear_env(&mut self) {
        sys::clear_env();
    }

    fn setrlimit(&mut self, limit: Limit, value: u64) -> io::Result<()> {
        // CPU: SIGXCPU at the limit (the default action ends the process, and the kernel sees
        // the signal in its exit status), SIGKILL one second later for an agent that catches it.
        let hard = match limit {
            Limit::CpuSeconds => value.saturating_add(1),
            _ => value,
        };
        nix::sys::resource::setrlimit(limit.resource(), value, hard).map_err(io::Error::from)
    }

    fn join_cgroup(&mut self, procs: &Path) -> io::Result<()> {
        use std::io::Write;
        // One write of "0": the kernel moves the writer itself.
        std::fs::OpenOptions::new()
            .write(true)
            .open(procs)?
            .write_all(b"0")
    }

    fn unshare_namespaces(&mut self, net: bool) -> io::Result<()> {
        use nix::sched::CloneFlags as F;
        let mut flags =
            F::CLONE_NEWUSER | F::CLONE_NEWPID | F::CLONE_NEWIPC | F::CLONE_NEWUTS | F::CLONE_NEWNS;
        if net {
            flags |= F::CLONE_NEWNET;
        }
        nix::sched::unshare(flags).map_err(io::Error::from)
    }

    fn ids(&mut self) -> (u32, u32) {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    }

    fn write_proc_self(&mut self, file: &'static str, contents: &str) -> io::Result<()> {
        std::fs::write(format!("/proc/self/{file}"), contents)
    }

    fn liveness_pipe(&mut self) -> io::Result<()> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        self.live_read = Some(r);
        self.live_write = Some(w);
        Ok(())
    }

    fn fork(&mut self) -> io::Result<ForkSide> {
        sys::fork()
    }

    fn liveness_hold(&mut self) {
        self.live_read = None;
    }

    fn liveness_check(&mut self) -> io::Result<()> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        self.live_write = None;
        let read = self
            .live_read
            .take()
            .ok_or_else(|| other("liveness pipe was not created"))?;
        fcntl(read.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let mut byte = [0u8; 1];
        match nix::unistd::read(read.as_fd(), &mut byte) {
            Ok(0) => Err(other("launcher exited before the init started")),
            Ok(_) => Err(other("unexpected data on the liveness pipe")),
            Err(nix::errno::Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn close_agent_fd(&mut self) -> io::Result<()> {
        sys::close_raw(AGENT_FD)
    }

    fn wait_child(&mut self, pid: i32) -> io::Result<Exit> {
        loop {
            match nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
                Ok(status) => {
                    if let Some(exit) = exit_of(status) {
                        return Ok(exit);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn sethostname(&mut self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(io::Error::from)
    }

    fn mount_private(&mut self) -> io::Result<()> {
        use nix::mount::MsFlags;
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(io::Error::from)
    }

    fn loopback_up(&mut self) -> io::Result<()> {
        sys::interface_up("lo")
    }

    fn egress_listen(&mut self, port: u16) -> io::Result<()> {
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))?;
        self.egress = Some(OwnedFd::from(listener));
        Ok(())
    }

    fn build_root(&mut self, spec: &JailSpec) -> io::Result<String> {
        let built = super::rootfs::build(spec)?;
        self.proc_built = built.proc.is_ok();
        self.new_root = Some(built.root.clone());
        Ok(built.detail())
    }

    fn pivot_root(&mut self) -> io::Result<()> {
        let root = self
            .new_root
            .take()
            .ok_or_else(|| other("pivot_root: no new root was built"))?;
        super::rootfs::pivot(&root)?;
        self.root_view = super::landlock_rules::RootView {
            minimal: true,
            own_proc: self.proc_built,
        };
        Ok(())
    }

    fn drop_capabilities(&mut self) -> io::Result<String> {
        use caps::CapSet;
        sys::lock_securebits()?;
        sys::drop_bounding_set()?;
        for set in [
            CapSet::Ambient,
            CapSet::Inheritable,
            CapSet::Effective,
            CapSet::Permitted,
        ] {
            caps::clear(None, set).map_err(other)?;
        }
        for set in [
            CapSet::Ambient,
            CapSet::Inheritable,
            CapSet::Effective,
            CapSet::Permitted,
        ] {
            let left = caps::read(None, set).map_err(other)?;
            if !left.is_empty() {
                return Err(other(format!("{set:?} set still holds {left:?}")));
            }
        }
        let bounding = sys::bounding_set()?;
        if !bounding.is_empty() {
            return Err(other(format!("bounding set still holds {bounding:?}")));
        }
        Ok("bounding, ambient, inheritable, permitted and effective sets empty; securebits noroot locked".into())
    }

    fn set_no_new_privs(&mut self) -> io::Result<()> {
        nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)
    }

    fn landlock(&mut self, spec: &JailSpec) -> io::Result<LayerStatus> {
        super::landlock_rules::apply(spec, self.root_view)
    }

    fn seccomp(&mut self, network: bool, large_mmap: Option<u64>) -> io::Result<LayerStatus> {
        let (status, listener) = super::seccomp::install(network, large_mmap)?;
        self.listener = listener;
        Ok(status)
    }

    fn send_report(&mut self, report: &JailReport) -> io::Result<()> {
        let bytes = frame::encode(&AgentFrame::JailReport(report.clone())).map_err(other)?;
        sys::write_all_fd(AGENT_FD, &bytes)
    }

    fn send_listener(&mut self) -> io::Result<()> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let bytes = frame::encode(&AgentFrame::SandboxListener).map_err(other)?;
        sys::send_with_fd(AGENT_FD, &bytes, listener.as_fd())
        // `listener` is dropped (closed) here: the kernel holds the only copy.
    }

    fn send_egress_listener(&mut self) -> io::Result<()> {
        let Some(listener) = self.egress.take() else {
            return Ok(());
        };
        let bytes = frame::encode(&AgentFrame::EgressListener).map_err(other)?;
        sys::send_with_fd(AGENT_FD, &bytes, listener.as_fd())
        // Closed here: only the kernel accepts on it; the agent never holds it.
    }

    fn release_memory(&mut self) {
        sys::trim_heap();
    }

    fn reap(&mut self) -> io::Result<(i32, Exit)> {
        loop {
            match nix::sys::wait::waitpid(Pid::from_raw(-1), None) {
                Ok(status) => {
                    if let (Some(pid), Some(exit)) = (status.pid(), exit_of(status)) {
                        return Ok((pid.as_raw(), exit));
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn kill_all(&mut self) {
        // ESRCH (nobody left) is the common, fine outcome.
        let _ = nix::sys::signal::kill(Pid::from_raw(-1), Signal::SIGKILL);
    }

    fn reap_rest(&mut self) {
        // Processes whose parents die are reparented here (pid 1) before those parents can be
        // reaped, so no child left means no process left. ECHILD ends it; so does any other
        // error, which then leaves the rest to this init's own exit.
        while self.reap().is_ok() {}
    }

    fn close_output(&mut self) {
        for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // EBADF (already closed) is fine: the aim is that this process holds neither.
            let _ = sys::close_raw(fd);
        }
    }

    fn send_tool_exit(&mut self, status: i32) -> io::Result<()> {
        let bytes = frame::encode(&AgentFrame::ToolExit { status }).map_err(other)?;
        sys::write_all_fd(AGENT_FD, &bytes)
    }

    fn chdir(&mut self, path: &Path) -> io::Result<()> {
        nix::unistd::chdir(path).map_err(io::Error::from)
    }

    fn spawn(
        &mut self,
        program: &CString,
        argv: &[CString],
        env: &[CString],
        close_agent_fd: bool,
    ) -> io::Result<i32> {
        sys::spawn(program, argv, env, close_agent_fd.then_some(AGENT_FD))
    }

    fn eprint(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

/// `PPid` of `/proc/self/status`: the parent's pid in the pid namespace of the `/proc`
/// mounted (the host's, before the jail mounts its own).
fn host_ppid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))?
        .trim()
        .parse()
        .ok()
}

fn exit_of(status: WaitStatus) -> Option<Exit> {
    match status {
        WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
        _ => None,
    }
}

/// Records every call as one string and succeeds; `fork` answers from a script the test
/// writes (parent or child), `reap` reports the agent (pid 2) exited 0.
#[derive(Debug, Default)]
pub struct RecordingSys {
    pub calls: Vec<String>,
    pub forks: VecDeque<ForkSide>,
    pub ppid: u32,
    pub ids: (u32, u32),
    /// Makes `join_cgroup` fail with EACCES.
    pub fail_cgroup: bool,
}

impl RecordingSys {
    /// A recorder whose forks answer `forks` in order and whose parent is `ppid`.
    pub fn new(ppid: u32, forks: impl IntoIterator<Item = ForkSide>) -> Self {
        Self {
            calls: Vec::new(),
            forks: forks.into_iter().collect(),
            ppid,
            ids: (1000, 1000),
            fail_cgroup: false,
        }
    }

    fn rec(&mut self, call: impl Into<String>) {
        self.calls.push(call.into());
    }
}

impl Sys for RecordingSys {
    fn check_dir(&mut self, path: &Path) -> io::Result<()> {
        self.rec(format!("check_dir {}", path.display()));
        Ok(())
    }
    fn setsid(&mut self) -> io::Result<()> {
        self.rec("setsid");
        Ok(())
    }
    fn set_pdeathsig(&mut self) -> io::Result<()> {
        self.rec("set_pdeathsig SIGKILL");
        Ok(())
    }
    fn getppid(&mut self) -> u32 {
        self.rec("getppid");
        self.ppid
    }
    fn close_fds_above_agent_fd(&mut self) -> io::Result<()> {
        self.rec("close_range 4..");
        Ok(())
    }
    fn clear_env(&mut self) {
        self.rec("clear_env");
    }
    fn setrlimit(&mut self, limit: Limit, value: u64) -> io::Result<()> {
        self.rec(format!("setrlimit {} {value}", limit.name()));
        Ok(())
    }
    fn join_cgroup(&mut self, procs: &Path) -> io::Result<()> {
        self.rec(format!("write {} \"0\"", procs.display()));
        if self.fail_cgroup {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        Ok(())
    }
    fn unshare_namespaces(&mut self, net: bool) -> io::Result<()> {
        self.rec(if net {
            "unshare user|pid|net|ipc|uts|mount"
        } else {
            "unshare user|pid|ipc|uts|mount"
        });
        Ok(())
    }
    fn ids(&mut self) -> (u32, u32) {
        self.rec("ids");
        self.ids
    }
    fn write_proc_self(&mut self, file: &'static str, contents: &str) -> io::Result<()> {
        self.rec(format!("write /proc/self/{file} {contents:?}"));
        Ok(())
    }
    fn liveness_pipe(&mut self) -> io::Result<()> {
        self.rec("liveness_pipe");
        Ok(())
    }
    fn fork(&mut self) -> io::Result<ForkSide> {
        let side = self
            .forks
            .pop_front()
            .ok_or_else(|| other("fork script exhausted"))?;
        self.rec(match side {
            ForkSide::Parent { .. } => "fork -> parent",
            ForkSide::Child => "fork -> child",
        });
        Ok(side)
    }
    fn liveness_hold(&mut self) {
        self.rec("liveness_hold");
    }
    fn liveness_check(&mut self) -> io::Result<()> {
        self.rec("liveness_check");
        Ok(())
    }
    fn close_agent_fd(&mut self) -> io::Result<()> {
        self.rec("close fd 3");
        Ok(())
    }
    fn wait_child(&mut self, pid: i32) -> io::Result<Exit> {
        self.rec(format!("waitpid {pid}"));
        Ok(Exit::Code(0))
    }
    fn sethostname(&mut self, name: &str) -> io::Result<()> {
        self.rec(format!("sethostname {name}"));
        Ok(())
    }
    fn mount_private(&mut self) -> io::Result<()> {
        self.rec("mount / MS_REC|MS_PRIVATE");
        Ok(())
    }
    fn loopback_up(&mut self) -> io::Result<()> {
        self.rec("ifup lo");
        Ok(())
    }
    fn egress_listen(&mut self, port: u16) -> io::Result<()> {
        self.rec(format!("listen 127.0.0.1:{port}"));
        Ok(())
    }
    fn build_root(&mut self, spec: &JailSpec) -> io::Result<String> {
        let paths = spec.read_exec.len() + spec.read_only.len() + spec.devices.len() + 1;
        let scratch = spec.limits.scratch_bytes;
        self.rec(format!(
            "build_root tmpfs + {paths} paths + scratch tmpfs {scratch} + proc, all nosuid,nodev"
        ));
        Ok("recorded".into())
    }
    fn pivot_root(&mut self) -> io::Result<()> {
        self.rec("pivot_root");
        Ok(())
    }
    fn drop_capabilities(&mut self) -> io::Result<String> {
        self.rec("drop_capabilities");
        Ok("all dropped".into())
    }
    fn set_no_new_privs(&mut self) -> io::Result<()> {
        self.rec("no_new_privs");
        Ok(())
    }
    fn landlock(&mut self, _spec: &JailSpec) -> io::Result<LayerStatus> {
        self.rec("landlock");
        Ok(LayerStatus::Active {
            detail: "recorded".into(),
        })
    }
    fn seccomp(&mut self, network: bool, _large_mmap: Option<u64>) -> io::Result<LayerStatus> {
        self.rec(if network { "seccomp +inet" } else { "seccomp" });
        Ok(LayerStatus::Active {
            detail: "recorded".into(),
        })
    }
    fn send_report(&mut self, report: &JailReport) -> io::Result<()> {
        let names: Vec<&str> = report.layers.iter().map(|l| l.name.as_str()).collect();
        self.rec(format!("send_report {}", names.join(",")));
        Ok(())
    }
    fn send_listener(&mut self) -> io::Result<()> {
        self.rec("send_listener");
        Ok(())
    }
    fn send_egress_listener(&mut self) -> io::Result<()> {
        self.rec("send_egress_listener");
        Ok(())
    }
    fn release_memory(&mut self) {
        self.rec("release_memory");
    }

    fn reap(&mut self) -> io::Result<(i32, Exit)> {
        self.rec("reap");
        Ok((2, Exit::Code(0)))
    }
    fn kill_all(&mut self) {
        self.rec("kill -1 SIGKILL");
    }
    fn reap_rest(&mut self) {
        self.rec("reap until ECHILD");
    }
    fn close_output(&mut self) {
        self.rec("close fd 1, fd 2");
    }
    fn send_tool_exit(&mut self, status: i32) -> io::Result<()> {
        self.rec(format!("send_tool_exit {status}"));
        Ok(())
    }
    fn chdir(&mut self, path: &Path) -> io::Result<()> {
        self.rec(format!("chdir {}", path.display()));
        Ok(())
    }
    /// Answers from the fork script: `Parent { child }` starts `child`; `Child` is an
    /// `execve` that failed (not found), as the child side of a fork would have met it.
    fn spawn(
        &mut self,
        program: &CString,
        argv: &[CString],
        env: &[CString],
        close_agent_fd: bool,
    ) -> io::Result<i32> {
        let close = if close_agent_fd { " close fd 3" } else { "" };
        self.rec(format!(
            "spawn setsid{close} execve {program:?} argv={argv:?} env={env:?}"
        ));
        match self.forks.pop_front() {
            Some(ForkSide::Parent { child }) => Ok(child),
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }
    fn eprint(&mut self, line: &str) {
        self.rec(format!("eprint {line}"));
    }
}

//! The jail spec: what the kernel asks the launcher to build.
//!
//! The kernel serializes a [`JailSpec`] as JSON into the launcher's environment
//! ([`SPEC_ENV`]); the launcher reads it first, then scrubs the environment, so the agent
//! never sees it.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable that carries the JSON [`JailSpec`] to `agentos-launch`.
pub const SPEC_ENV: &str = "AGENTOS_LAUNCH_SPEC";

/// Set (to `1`) in the launcher's environment when the kernel hands it the agent's socket as
/// fd 0 instead of fd 3: the launcher moves it to fd 3 and opens `/dev/null` as fd 0 before
/// anything else. The kernel can then start the launcher with `posix_spawn` (a `vfork`, no copy
/// of the kernel's address space) instead of `fork` + a pre-exec hook that places fd 3.
pub const AGENT_FD_ON_STDIN_ENV: &str = "AGENTOS_LAUNCH_AGENT_FD_ON_STDIN";

/// Set (to `1`) beside [`AGENT_FD_ON_STDIN_ENV`] when the kernel starts a tool's launcher: the
/// tool's stdin pipe is not inherited but waits on the report socket (one byte with the read
/// end attached, `SCM_RIGHTS`, queued before the launcher started); the launcher puts it at
/// fd 0 instead of `/dev/null`. So a tool's launcher, too, is started with `posix_spawn` (no
/// pre-exec hook, no copy of the kernel's address space).
pub const TOOL_STDIN_ON_SOCKET_ENV: &str = "AGENTOS_LAUNCH_TOOL_STDIN_ON_SOCKET";

/// The exit code of a launcher that could not build the jail (nothing of the agent ran).
pub const EXIT_SANDBOX_FAILED: i32 = 125;

/// Resource limits applied as rlimits (and, where available, a cgroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// `RLIMIT_AS`, bytes.
    pub address_space: u64,
    /// `RLIMIT_NPROC`: processes of the agent's user (counted inside its user namespace).
    pub processes: u64,
    /// `RLIMIT_NOFILE`.
    pub open_files: u64,
    /// `RLIMIT_CPU`, seconds.
    pub cpu_seconds: u64,
    /// `RLIMIT_FSIZE`, bytes.
    pub file_size: u64,
    /// The memory cgroup's limit, bytes (resident memory; applied only where a cgroup is).
    #[serde(default = "default_memory")]
    pub memory: u64,
    /// The size of the scratch tmpfs, bytes: everything the agent (or tool) writes in its
    /// scratch directory together. A write past it fails with `ENOSPC`; nothing of the
    /// scratch reaches the host's disk, and it is gone when the jail ends.
    #[serde(default = "default_scratch_bytes")]
    pub scratch_bytes: u64,
}

fn default_memory() -> u64 {
    1 << 30
}

/// The default size of an agent's scratch tmpfs: 64 MiB.
pub const DEFAULT_SCRATCH_BYTES: u64 = 64 << 20;

fn default_scratch_bytes() -> u64 {
    DEFAULT_SCRATCH_BYTES
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            address_space: 4 << 30,
            processes: 128,
            open_files: 256,
            cpu_seconds: 3600,
            file_size: 256 << 20,
            memory: default_memory(),
            scratch_bytes: default_scratch_bytes(),
        }
    }
}

/// The agent's cgroup(s), created and limited by the kernel; the launcher only joins them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupSpec {
    /// The file to write `0` to for each group to join (one per v1 controller hierarchy: its
    /// `tasks`; one for v2: its `cgroup.procs`). Empty: the kernel could not give the agent a cgroup (see `detail`).
    pub procs: Vec<PathBuf>,
    /// What the groups enforce (`v1 pids,memory: pids.max 128, memory 512MiB`), or why there
    /// is no group; the `cgroup` layer's detail in the jail report.
    pub detail: String,
    /// Refuse to run the agent if joining a group fails.
    pub required: bool,
}

/// A host directory bound at another path of the minimal root (a tool's `/workspace`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host directory (canonical).
    pub source: PathBuf,
    /// Where it appears in the jail: absolute, normalized, outside every other bound path.
    pub target: PathBuf,
    /// Read-write (landlock: every right but execute) instead of read-only.
    pub writable: bool,
    /// A tool's view of this mount: subtrees bound read-write over it and entries hidden,
    /// applied in order after the mount itself (see [`crate::launch::view`]).
    #[serde(default)]
    pub view: Vec<ViewEntry>,
}

/// The most [`ViewEntry`]s one jail may hold (each is one mount).
pub const MAX_VIEW_ENTRIES: usize = 256;

/// One change to a tool's view of a [`Mount`], at `path` relative to the mount's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEntry {
    /// Relative to the mount (no `.`, `..`, not empty); must name an existing entry of the
    /// kind expected, reached without any symlink, or the jail is refused.
    pub path: PathBuf,
    pub kind: ViewKind,
}

/// What a [`ViewEntry`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewKind {
    /// The directory (from the mount's source) is bound read-write over the (read-only)
    /// mount, `nosuid,nodev`; landlock grants it read-write.
    Writable,
    /// The directory is covered by an empty read-only directory.
    HiddenDir,
    /// The file (anything but a directory or a symlink) is covered by an empty read-only
    /// file.
    HiddenFile,
}

/// Everything the launcher needs to jail and start one agent (or one tool run by `Exec` or
/// `Call`: then `tool` is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailSpec {
    /// The agent's id (for messages and the hostname).
    pub agent_id: u64,
    /// The kernel's pid: the launcher's expected parent. If the parent is already gone when
    /// the launcher sets its parent-death signal, it exits instead of running orphaned.
    pub kernel_pid: u32,
    /// Absolute path of the agent program.
    pub program: PathBuf,
    /// The agent's argv, argv\[0\] included.
    pub argv: Vec<String>,
    /// The agent's whole environment (the launcher passes nothing else through).
    pub env: Vec<(String, String)>,
    /// The agent's private read-write scratch directory; also its working directory. In the
    /// jail a fresh tmpfs of `limits.scratch_bytes` (nosuid, nodev, mode 0700, owned by the
    /// agent) is mounted there; the host directory is only its mount point and stays empty.
    pub scratch: PathBuf,
    /// Paths the agent may read and execute (directories recursively, or single files).
    pub read_exec: Vec<PathBuf>,
    /// Paths the agent may only read (directories recursively, or single files).
    pub read_only: Vec<PathBuf>,
    /// Device files the agent may read and write (`/dev/null`, `/dev/zero`, `/dev/urandom`).
    pub devices: Vec<PathBuf>,
    pub limits: ResourceLimits,
    /// The cgroup(s) to join before anything is forked (absent from older kernels' specs).
    #[serde(default)]
    pub cgroup: CgroupSpec,
    /// Refuse to run the agent if any layer is missing or only partly in force.
    pub require_full: bool,
    /// Extra binds at other paths of the minimal root (a tool's `/workspace`).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// The program's working directory in the jail (default: `scratch`).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// A tool, not an agent: fd 3 (the report socket) is closed before the program runs, so
    /// the tool has no kernel socket.
    #[serde(default)]
    pub tool: bool,
    /// Share the host's network namespace and let seccomp and landlock allow TCP/UDP over
    /// `AF_INET`/`AF_INET6`: only for tool providers the operator declared `network`.
    #[serde(default)]
    pub network: bool,
    /// An agent whose policy has a `network` rule: before the jail closes, the init listens on
    /// `127.0.0.1:PORT` of the agent's own network namespace and hands the listener to the
    /// kernel (`AgentFrame::EgressListener`), which serves it as the agent's egress proxy.
    /// seccomp then admits `AF_INET`/`AF_INET6` sockets and landlock only TCP connects to
    /// this port (no bind): the namespace has nothing but its loopback, so the proxy is the
    /// only place a connection can reach.
    #[serde(default)]
    pub egress_port: Option<u16>,
}

impl JailSpec {
    /// Checks what the kernel could get wrong before anything is built: an absolute program
    /// path, a non-empty argv, no NUL byte anywhere, environment names without `=`.
    pub fn validate(&self) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let bad = |msg: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
        if !self.program.is_absolute() {
            return bad(format!(
                "program {} is not an absolute path",
                self.program.display()
            ));
        }
        if self.program.as_os_str().as_bytes().contains(&0) {
            return bad("program path contains a NUL byte".into());
        }
        if self.argv.is_empty() {
            return bad("argv is empty".into());
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return bad("an argument contains a NUL byte".into());
        }
        for m in &self.mounts {
            if !m.source.is_absolute()
                || !is_plain_absolute(&m.target)
                || m.target == Path::new("/")
            {
                return bad(format!(
                    "mount {} -> {}: the source must be absolute and the target an absolute path without `.` or `..`, not `/`",
                    m.source.display(),
                    m.target.display()
                ));
            }
            if m.view.len() > MAX_VIEW_ENTRIES {
                return bad(format!(
                    "mount {}: {} view entries, more than {MAX_VIEW_ENTRIES}",
                    m.target.display(),
                    m.view.len()
                ));
            }
            for e in &m.view {
                let plain = e.path.components().next().is_some()
                    && e.path
                        .components()
                        .all(|c| matches!(c, Component::Normal(_)));
                if !plain {
                    return bad(format!(
                        "mount {}: view entry {} is not a relative path of plain names",
                        m.target.display(),
                        e.path.display()
                    ));
                }
            }
        }
        if let Some(cwd) = &self.cwd {
            if !is_plain_absolute(cwd) {
                return bad(format!(
                    "working directory {} is not an absolute path without `.` or `..`",
                    cwd.display()
                ));
            }
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return bad(format!("invalid environment entry {k:?}"));
            }
        }
        Ok(())
    }
}

/// Absolute, and made of plain names only (no `.`, `..`).
fn is_plain_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

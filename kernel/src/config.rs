//! Kernel configuration and the state dir layout.
//!
//! ```text
//! STATE_DIR/
//!   kernel.sock        control socket (0600)
//!   kernel.lock        flock held by the running kernel; holds its pid
//!   kernel.log         the daemon's own log (when started by `agentctl kernel start`)
//!   recorder/          flight recorder: segments, key (0600), key.pub, HEAD
//!   sdk/python/        the kernel's read-only copy of the Python SDK (`agentos/`, 0444/0555),
//!                      on every agent's `PYTHONPATH`
//!   sdk/node/          the kernel's read-only copy of the TypeScript SDK and its preload
//!                      (`node_modules/agentos/`, `register.mjs`), on every agent's `NODE_OPTIONS`
//!   memory.redb        persistent agent memory (/mem/episodic, /mem/semantic), keyed by
//!                      agent name; unnamed agents' entries are removed when they end
//!   agents/<id>/
//!     output.log       the agent's stdout and stderr, in arrival order; at most
//!                      `--log-bytes` (its head and its tail, a cut marker between them)
//!     scratch/         only the mount point of the agent's scratch, a tmpfs of
//!                      `--scratch-bytes` in its jail: empty on the host (removed when it ends)
//!     checkpoints/<n>  working-memory checkpoints (Checkpoint syscall, SIGUSR1); kept after
//!                      the agent ends, restored with `agentctl spawn --restore ID[:N]`; at
//!                      most `--checkpoint-bytes` together
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentos_policy::Policy;
use agentos_syscalls::frame::DEFAULT_MAX_FRAME;
use agentos_userspace::launch::ResourceLimits;

/// The default per-agent kernel memory budget (32 MiB, `--agent-memory-bytes`): see
/// [`Config::agent_memory_bytes`].
pub const DEFAULT_AGENT_MEMORY_BYTES: u64 = 32 << 20;

/// How long a call waits for operator approval unless configured otherwise (5 minutes,
/// `--approval-timeout-ms`).
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_millis(DEFAULT_APPROVAL_TIMEOUT_MS);
/// [`DEFAULT_APPROVAL_TIMEOUT`] in milliseconds, the unit of its flag.
pub const DEFAULT_APPROVAL_TIMEOUT_MS: u64 = 300_000;

/// How long an agent has between SIGTERM and SIGKILL unless configured otherwise (5 s,
/// `--term-grace-ms`).
pub const DEFAULT_TERM_GRACE_MS: u64 = 5000;

/// Bytes each agent may keep across its writable tree unless configured otherwise (64 MiB,
/// `--quota-bytes`).
pub const DEFAULT_QUOTA_BYTES: u64 = 64 << 20;
/// Files each agent may keep across its writable tree unless configured otherwise
/// (`--quota-files`).
pub const DEFAULT_QUOTA_FILES: u64 = 4096;

/// Descriptors (`Open`) each agent may hold at once unless configured otherwise
/// (`--max-fds`).
pub const DEFAULT_MAX_FDS: u32 = 64;

/// How many calls one agent may have waiting for operator approval at once unless configured
/// otherwise (`--max-approvals-per-agent`).
pub const DEFAULT_MAX_APPROVALS_PER_AGENT: usize = 16;

/// The read-only runtime the jail lets every agent see (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Read and execute.
    pub read_exec: Vec<PathBuf>,
    /// Read only.
    pub read_only: Vec<PathBuf>,
    /// Read and write device files.
    pub devices: Vec<PathBuf>,
}

impl Default for Runtime {
    fn default() -> Self {
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect();
        Self {
            read_exec: p(&["/usr", "/lib", "/lib64", "/bin"]),
            read_only: p(&["/etc/ld.so.cache", "/etc/localtime"]),
            devices: p(&["/dev/null", "/dev/zero", "/dev/urandom"]),
        }
    }
}

/// What each agent may make the host keep on disk besides its writable tree and its share of
/// the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskBudget {
    /// Bytes of `output.log` kept (`--log-bytes`): the first half of the output and a rolling
    /// last half; what lies between is cut and counted.
    pub log_bytes: u64,
    /// Bytes of checkpoint files the agent may hold (`--checkpoint-bytes`): a checkpoint that
    /// would go past it is refused with `QuotaExceeded` before anything is written.
    pub checkpoint_bytes: u64,
}

/// The default `--log-bytes`: 8 MiB.
pub const DEFAULT_LOG_BYTES: u64 = 8 << 20;
/// The default `--checkpoint-bytes`: 64 MiB.
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 64 << 20;

impl Default for DiskBudget {
    fn default() -> Self {
        Self {
            log_bytes: DEFAULT_LOG_BYTES,
            checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
        }
    }
}

/// How a kernel runs. Built from the command line by
/// [`KernelOptions::config`](crate::options::KernelOptions::config), the one place a flag
/// becomes a field; [`Config::new`] holds the defaults (the same constants as the flags').
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    /// The `agentos-launch` binary.
    pub launcher: PathBuf,
    /// Refuse to spawn when a sandbox layer is missing (`--require-full-sandbox`).
    pub require_full_sandbox: bool,
    /// How long an agent has between SIGTERM and SIGKILL.
    pub term_grace: Duration,
    pub max_frame: u32,
    pub max_in_flight: u32,
    pub runtime: Runtime,
    pub limits: ResourceLimits,
    /// Bytes and files an agent may keep across its writable tree: `/mem/working`, its
    /// persistent memory and the growth of workspace files it writes.
    pub working_quota: (u64, u64),
    /// The per-agent kernel memory budget (`--agent-memory-bytes`): bytes of requests read but
    /// not answered plus answers not yet written into the agent's socket. When it is spent the
    /// kernel stops reading that agent's socket until the agent reads its answers (see
    /// `server::budget`). Raised to 64 KiB when smaller.
    pub agent_memory_bytes: u64,
    /// How many descriptors (`Open`) an agent may hold at once.
    pub max_fds: u32,
    /// How many host file operations (workspace, persistent memory, checkpoints) run at once,
    /// kernel-wide (`--io-threads`); see [`crate::hostio`].
    pub io_threads: usize,
    /// How many of those one agent may have running at once (`--io-per-agent`).
    pub io_per_agent: usize,
    /// The agent's disk budget outside the recorder and its writable tree (its scratch is
    /// `limits.scratch_bytes`, a tmpfs).
    pub disk: DiskBudget,
    /// How long a call that needs operator approval waits before it is denied with
    /// `ApprovalTimeout`.
    pub approval_timeout: Duration,
    /// How many calls one agent may have waiting for approval at once
    /// (`--max-approvals-per-agent`); the next is refused with `Busy`, recorded.
    pub max_approvals_per_agent: usize,
    /// A policy every agent's own policy composes with (`--base-policy`): a call is allowed
    /// only if both allow it.
    pub base_policy: Option<Policy>,
    /// The directory put on agents' `PYTHONPATH` (read-only in the jail). `None`: the SDK
    /// embedded in the kernel, written at start to `STATE_DIR/sdk/python`.
    pub python_sdk: Option<PathBuf>,
    /// How the flight recorder writes: durability, fsync interval, checkpoints.
    pub recorder: crate::recorder::RecorderOptions,
    /// How many messages and payload bytes each agent's inbox holds (`Send` answers `Busy`
    /// beyond).
    pub inbox: crate::ipc::InboxLimits,
    /// The tool providers `Call` actions are routed to (`--provider`), one per action.
    pub providers: Vec<crate::providers::Provider>,
    /// The MCP tool servers (`--mcp`), one per name.
    pub mcp: Vec<crate::mcp::McpServer>,
    /// How long an MCP tool call or a server's start may take (`--mcp-timeout-ms`).
    pub mcp_timeout: std::time::Duration,
    /// What one agent's egress proxy may hold and move.
    pub egress: EgressLimits,
    /// Where the kernel serves Prometheus metrics and `/healthz` (`--metrics-addr`); `None`:
    /// no metrics, and nothing counted.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The operator's event hook (`--on-event`); `None`: no hook.
    pub hook: Option<crate::hooks::HookConfig>,
    /// Where OpenTelemetry spans go (`--otlp-endpoint`); `None`: no traces.
    pub traces: Option<crate::traces::TraceConfig>,
    /// The transparency log's witnesses (`--witness`); empty: none.
    pub witnesses: Vec<crate::witnesses::WitnessTarget>,
}

impl Config {
    /// The defaults for a kernel on `state_dir`, with the launcher found beside the running
    /// executable (or beside its parent dir, for test binaries under `target/*/deps`).
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        // Absolute: every path derived from it (scratch dirs, sockets) is handed to launchers
        // and jails that run elsewhere than the caller's working directory.
        let state_dir = state_dir.into();
        Self {
            state_dir: std::path::absolute(&state_dir).unwrap_or(state_dir),
            launcher: sibling_binary("agentos-launch"),
            require_full_sandbox: true,
            term_grace: Duration::from_millis(DEFAULT_TERM_GRACE_MS),
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: 64,
            runtime: Runtime::default(),
            limits: ResourceLimits::default(),
            working_quota: (DEFAULT_QUOTA_BYTES, DEFAULT_QUOTA_FILES),
            agent_memory_bytes: DEFAULT_AGENT_MEMORY_BYTES,
            max_fds: DEFAULT_MAX_FDS,
            io_threads: crate::hostio::DEFAULT_IO_THREADS,
            io_per_agent: crate::hostio::DEFAULT_IO_PER_AGENT,
            disk: DiskBudget::default(),
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            max_approvals_per_agent: DEFAULT_MAX_APPROVALS_PER_AGENT,
            base_policy: None,
            python_sdk: None,
            recorder: crate::recorder::RecorderOptions::default(),
            inbox: crate::ipc::InboxLimits::default(),
            providers: Vec::new(),
            mcp: Vec::new(),
            mcp_timeout: std::time::Duration::from_millis(crate::mcp::DEFAULT_TIMEOUT_MS),
            egress: EgressLimits {
                connections: DEFAULT_EGRESS_CONNECTIONS,
                bytes_per_sec: DEFAULT_EGRESS_BYTES_PER_SEC,
            },
            metrics_addr: None,
            hook: None,
            traces: None,
            witnesses: Vec::new(),
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.state_dir)
    }

    pub fn recorder_dir(&self) -> PathBuf {
        self.state_dir.join("recorder")
    }

    /// The persistent agent memory store.
    pub fn memory_path(&self) -> PathBuf {
        self.state_dir.join("memory.redb")
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.state_dir.join("agents")
    }

    /// The directory agents import the Python SDK from.
    pub fn python_sdk_dir(&self) -> PathBuf {
        self.python_sdk
            .clone()
            .unwrap_or_else(|| self.state_dir.join("sdk/python"))
    }

    /// The directory agents' `node` imports the TypeScript SDK from (read-only in the jail).
    pub fn node_sdk_dir(&self) -> PathBuf {
        self.state_dir.join("sdk/node")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.state_dir.join("kernel.lock")
    }
}

/// The control socket of the kernel on `state_dir`
/// ([`agentos_syscalls::control::socket_path`]).
pub fn socket_path(state_dir: &Path) -> PathBuf {
    agentos_syscalls::control::socket_path(state_dir)
}

/// The state dir when none is given, for this process's effective uid
/// ([`agentos_syscalls::control::default_state_dir`]: `/var/lib/agentos` as root,
/// `$XDG_STATE_HOME/agentos` or `~/.local/state/agentos` otherwise).
pub fn default_state_dir() -> PathBuf {
    agentos_syscalls::control::default_state_dir(rustix::process::geteuid().is_root())
}

/// A binary that ships beside the current executable.
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let here = dir.join(name);
    if here.exists() {
        return here;
    }
    // Test and bench executables live in target/<profile>/deps.
    match dir.parent() {
        Some(up) if up.join(name).exists() => up.join(name),
        _ => here,
    }
}

/// Connections one agent may hold open through its egress proxy at once, by default.
pub const DEFAULT_EGRESS_CONNECTIONS: u32 = 64;

/// Bytes per second one agent's egress connections may move, each direction, by default
/// (256 MiB/s: a fast link, far below what the kernel's loopback copy can do).
pub const DEFAULT_EGRESS_BYTES_PER_SEC: u64 = 256 << 20;

/// What one agent's egress proxy may hold and move (`--egress-max-connections`,
/// `--egress-bytes-per-sec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressLimits {
    /// Connections open at once.
    pub connections: u32,
    /// Bytes per second, each direction, all its connections together; 0: unbounded.
    pub bytes_per_sec: u64,
}

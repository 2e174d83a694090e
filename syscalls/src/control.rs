//! The control protocol between `agentctl` and the kernel, over `STATE_DIR/kernel.sock`.
//!
//! Same framing as the agent socket ([`crate::frame`]). A connection carries one
//! [`ControlRequest`]; most get one [`ControlResponse`], `Logs { follow: true }` gets a stream
//! of `LogChunk`s ended by `LogEnd`. The socket is mode 0600 and the kernel checks the peer's
//! uid (`SO_PEERCRED`): root or the kernel's own user.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::abi::{AgentId, JailReport};
use crate::signal::Signal;

/// Names an agent by id (`7`) or by the name given at spawn (`builder`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentRef {
    Id(AgentId),
    Name(String),
}

impl AgentRef {
    /// Reads `7` as an id and anything else as a name.
    pub fn parse(s: &str) -> AgentRef {
        match s.parse::<u64>() {
            Ok(n) => AgentRef::Id(AgentId(n)),
            Err(_) => AgentRef::Name(s.to_string()),
        }
    }
}

impl std::fmt::Display for AgentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentRef::Id(id) => write!(f, "{id}"),
            AgentRef::Name(n) => f.write_str(n),
        }
    }
}

/// A policy file handed to the kernel: where it came from (for messages) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySource {
    pub path: String,
    pub text: String,
}

/// Everything the kernel needs to start an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnRequest {
    pub name: Option<String>,
    pub policy: PolicySource,
    /// A host directory the agent sees as `/workspace`.
    pub workspace: Option<PathBuf>,
    /// Absolute path of the program to run.
    pub program: PathBuf,
    /// Arguments after the program (not including argv\[0\]).
    pub args: Vec<String>,
    /// Extra environment variables for the agent, on top of the scrubbed base.
    pub env: Vec<(String, String)>,
    /// Extra host paths the agent may read (absolute, existing, outside the kernel's state
    /// dir), e.g. the directory of a `python3 agent.py` script. Appended field: control
    /// peers must upgrade together.
    pub extra_read_only: Vec<PathBuf>,
}

/// What the operator asks of the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRequest {
    Status,
    Spawn(SpawnRequest),
    Ps,
    /// Answer once the agent has ended.
    Wait {
        agent: AgentRef,
    },
    Signal {
        agent: AgentRef,
        signal: Signal,
    },
    Logs {
        agent: AgentRef,
        follow: bool,
    },
    /// Graceful shutdown: SIGTERM every agent, SIGKILL after the grace period, seal the
    /// recorder, exit.
    Shutdown,
    Inspect {
        agent: AgentRef,
    },
    /// List the calls parked for operator approval (`requires_approval`): the first page of
    /// the default query (see [`ControlRequest::ApprovalsPage`]).
    Approvals,
    /// Approve one parked call: it is performed and answered.
    Approve {
        id: u64,
    },
    /// Deny one parked call: it is answered with `ApprovalDenied`.
    Deny {
        id: u64,
    },
    /// Replace an agent's policy (atomically; a file that does not load changes nothing).
    ReloadPolicy {
        agent: AgentRef,
        policy: PolicySource,
    },
    /// Spawn, with the new agent's `/mem/working` restored from checkpoint `checkpoint` (the
    /// latest when `None`) of agent `from` (`agentctl spawn --restore ID[:N]`).
    SpawnRestored {
        spawn: SpawnRequest,
        from: AgentId,
        checkpoint: Option<u64>,
    },
    /// One page of the calls parked for approval, shared fairly between agents (answered
    /// with [`ControlResponse::ApprovalsPage`]). Appended (tag 13).
    ApprovalsPage(ApprovalQuery),
    /// Forget ended agents (`agentctl rm`): their row in the kernel's table and their dir
    /// under `STATE_DIR/agents/` (output log, checkpoints); never the flight recorder.
    /// Refused whole, removing nothing, when one of them is not found or has not ended.
    /// Answered with [`ControlResponse::Forgotten`]. Appended (tag 14, ABI 3).
    Forget {
        agents: Vec<AgentRef>,
    },
    /// Forget every ended agent (`agentctl prune`), or only those that ended more than
    /// `older_than_ms` milliseconds ago. Answered with [`ControlResponse::Forgotten`].
    /// Appended (tag 15, ABI 3).
    Prune {
        older_than_ms: Option<u64>,
    },
}

/// The largest answer frame a control client reads (and the kernel sends): an answer that
/// would be larger is replaced by an error saying so, so a client never gets a frame it must
/// refuse. Log chunks are at most 1 MiB; listings are bounded far below this.
pub const MAX_CONTROL_RESPONSE: u32 = 64 << 20;

/// Rows a page of approvals holds unless the operator asks for another number.
pub const DEFAULT_APPROVALS_PAGE: u32 = 50;

/// The most rows one page of approvals holds, whatever is asked: with every string of a row
/// cut to [`MAX_DISPLAY_BYTES`], a page stays far below the control frame limit.
pub const MAX_APPROVALS_PAGE: u32 = 500;

/// The longest agent-controlled string (resource, action, rule) a listing row carries, in
/// bytes; a longer one is cut by [`display_bound`], which says how long it was.
pub const MAX_DISPLAY_BYTES: usize = 512;

/// `s` cut to at most [`MAX_DISPLAY_BYTES`] bytes (on a character boundary), ending in
/// `…(N bytes)` with N the original length when it was cut. The kernel applies it to every
/// agent-controlled string of a listing row, so that the listing always fits its frame.
pub fn display_bound(s: &str) -> String {
    if s.len() <= MAX_DISPLAY_BYTES {
        return s.to_string();
    }
    let mut end = MAX_DISPLAY_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &s[..end], s.len())
}

/// Which parked calls to list (`agentctl approvals --limit N --after ID --agent A`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalQuery {
    /// At most this many rows; the kernel uses at most [`MAX_APPROVALS_PAGE`] (and
    /// [`DEFAULT_APPROVALS_PAGE`] for 0).
    pub limit: u32,
    /// Only calls whose approval id is greater than this.
    pub after: Option<u64>,
    /// Only this agent's calls.
    pub agent: Option<AgentId>,
}

/// How much of one agent's parked calls a page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalCount {
    pub agent: AgentId,
    /// Rows of this agent on the page.
    pub shown: u32,
    /// Its calls that match the query (shown or not).
    pub matching: u32,
    /// The approval id of its last row on the page: `--agent A --after ID` lists the rest.
    pub last_shown: Option<u64>,
}

/// A page of parked calls. Agents share the page round-robin (each agent's oldest calls
/// first), so a flood of one agent's requests never hides another agent's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPage {
    /// The rows, oldest first.
    pub approvals: Vec<ApprovalInfo>,
    /// Per agent with a matching call: shown and matching counts, by agent id.
    pub agents: Vec<ApprovalCount>,
    /// Matching calls not on this page.
    pub more: u32,
}

/// One call parked for operator approval (a row of `agentctl approvals`). The kernel cuts
/// `action`, `resource` and `rule` with [`display_bound`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalInfo {
    /// The approval id `agentctl approve|deny` takes; bound to this one request.
    pub id: u64,
    pub agent: AgentId,
    /// The policy action (`file_write`, `send_email`, …).
    pub action: String,
    /// The resource the call acts on (a path, a command line, the call's params).
    pub resource: String,
    /// Milliseconds the call has been waiting.
    pub age_ms: u64,
    /// The rule that asked for approval, `id (file:line)`.
    pub rule: String,
    /// The agent's name, when it was given one at spawn (cut by [`display_bound`]). ABI 3.
    pub agent_name: Option<String>,
    /// What the call would write or send, when it carries a payload (a `Write`'s data, a
    /// `Send`'s message, a `Call`'s params, an `Exec`'s stdin). ABI 3.
    pub payload: Option<PayloadPreview>,
}

/// The payload of a parked call, as an operator needs it to decide: its size, its first
/// bytes (raw: the reader escapes them) and a digest of the whole. ABI 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadPreview {
    /// The payload's full length in bytes.
    pub bytes: u64,
    /// Its first [`MAX_PREVIEW_BYTES`] bytes, unescaped.
    #[serde(with = "serde_bytes")]
    pub head: Vec<u8>,
    /// blake3 of the whole payload.
    pub blake3: [u8; 32],
}

/// How many bytes of a parked call's payload [`PayloadPreview::head`] carries.
pub const MAX_PREVIEW_BYTES: usize = 96;

/// The lifecycle state of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentState {
    /// Launched, jail being built or handshake not done yet.
    Starting,
    Running,
    /// Frozen by SIGSTOP; its syscalls are parked.
    Stopped,
    /// Ended; see [`AgentInfo::exit`].
    Exited,
    /// Running, with at least one call parked until an operator approves or denies it
    /// (`agentctl approvals`). A display state: the kernel derives it for listings from a
    /// running agent's parked approvals. Appended (ABI 3).
    AwaitingApproval,
}

impl AgentState {
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentState::Starting => "starting",
            AgentState::Running => "running",
            AgentState::Stopped => "stopped",
            AgentState::Exited => "exited",
            AgentState::AwaitingApproval => "awaiting-approval",
        }
    }
}

/// How an agent ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// The program exited with this code.
    Code(i32),
    /// A POSIX signal ended the program (one the kernel did not send).
    PosixSignal(i32),
    /// The kernel ended the tree with this agentos signal.
    Killed { signal: Signal, reason: String },
    /// The launcher could not build the jail; nothing of the agent ran.
    SandboxFailed { reason: String },
}

impl ExitStatus {
    /// The code `agentctl run` and `agentctl wait` exit with: the program's code, or
    /// 128 + signal number.
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Code(c) => *c,
            ExitStatus::PosixSignal(s) => 128 + s,
            ExitStatus::Killed { signal, .. } => 128 + i32::from(signal.number()),
            ExitStatus::SandboxFailed { .. } => 125,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with code {c}"),
            ExitStatus::PosixSignal(s) => write!(f, "ended by POSIX signal {s}"),
            ExitStatus::Killed { signal, reason } if reason.is_empty() => {
                write!(f, "killed by {signal}")
            }
            ExitStatus::Killed { signal, reason } => write!(f, "killed by {signal}: {reason}"),
            ExitStatus::SandboxFailed { reason } => write!(f, "sandbox failed: {reason}"),
        }
    }
}

/// Counters the kernel keeps per agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounters {
    pub syscalls: u64,
    pub allowed: u64,
    pub denied: u64,
    pub signals: u64,
    /// Syscalls parked now: waiting for the agent to be continued, or for an operator's
    /// approval (those are also in `awaiting_approval`).
    pub parked: u64,
    /// Calls no rule allowed (policy violations), refused in strict mode and let through in
    /// permissive and audit mode (then also counted in `allowed`). ABI 3.
    pub violations: u64,
    /// Operations the sandbox refused (a seccomp denial such as a network socket, a file the
    /// jail does not let it reach, a resource limit met), flooded ones included. ABI 3.
    pub sandbox_denied: u64,
    /// Calls parked now until an operator approves or denies them. ABI 3.
    pub awaiting_approval: u64,
}

/// Which kind of refusal a [`Denial`] row counts. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DenialKind {
    /// The kernel refused the call (a policy violation in strict mode, a dry run, a rate limit,
    /// an approval denied or timed out, a malformed call).
    Refused,
    /// A policy violation the kernel mode let through (permissive or audit): performed and
    /// recorded as a violation.
    Allowed,
    /// The sandbox refused an operation of the agent's program (seccomp, the jail's file
    /// access, a resource limit): the program got an error such as EPERM.
    Sandbox,
}

impl DenialKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            DenialKind::Refused => "refused",
            DenialKind::Allowed => "allowed",
            DenialKind::Sandbox => "sandbox",
        }
    }
}

/// One kind of refusal of an agent and how often it happened: a row of the denial summary
/// `agentctl run` and `agentctl inspect` show. ABI 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub kind: DenialKind,
    /// The policy action (`file_write`) or, for the sandbox, the syscall (`socket`, `openat`)
    /// or `limit`.
    pub action: String,
    /// What it aimed at: a path, a command line, `socket(AF_INET, SOCK_DGRAM)`, a limit.
    pub resource: String,
    /// What refused it: the policy rule `id (file:line)` (empty for a default deny), or the
    /// sandbox's reason (`sandbox: no network`).
    pub rule: String,
    /// The reason of the first such refusal (the policy's, or the jail's), with the mode of a
    /// let-through violation.
    pub reason: String,
    pub count: u64,
}

/// The most frequent refusals of an agent (at most [`MAX_DENIAL_ROWS`], most frequent
/// first) and how many refusals there were in all. ABI 3.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialSummary {
    pub top: Vec<Denial>,
    /// Every refusal counted (policy refusals, let-through violations, sandbox refusals),
    /// shown in `top` or not.
    pub total: u64,
}

/// Rows a [`DenialSummary`] carries at most.
pub const MAX_DENIAL_ROWS: usize = 8;

/// What an agent's cgroup says it uses (present only while the agent runs in one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUsage {
    /// Memory charged to the agent's processes, bytes (v1 `memory.usage_in_bytes`, v2
    /// `memory.current`; 0 without a memory controller).
    pub memory_bytes: u64,
    /// Processes and threads of the agent (`pids.current`; 0 without a pids controller).
    pub pids: u64,
}

/// One row of `agentctl ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub id: AgentId,
    pub name: Option<String>,
    pub state: AgentState,
    /// The launcher's pid in the kernel's pid namespace (the root of the agent's tree).
    pub pid: Option<u32>,
    pub program: String,
    pub args: Vec<String>,
    /// Spawn time, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// Microseconds from spawn to the first answered syscall.
    pub first_syscall_us: Option<u64>,
    pub counters: AgentCounters,
    pub exit: Option<ExitStatus>,
    pub policy_path: String,
    pub policy_digest: [u8; 32],
    pub log_path: PathBuf,
    pub jail: Option<JailReport>,
    /// Resource usage from the agent's cgroup (ABI 2); `None` without a cgroup or once the
    /// agent has ended.
    pub usage: Option<AgentUsage>,
    /// The agent's most frequent refusals (policy and sandbox). ABI 3.
    pub denials: DenialSummary,
}

/// The kernel's own state, for `agentctl kernel status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelStatus {
    pub pid: u32,
    pub uid: u32,
    pub version: String,
    pub abi: u16,
    pub state_dir: PathBuf,
    pub recorder_dir: PathBuf,
    pub started_ms: u64,
    pub agents_running: u32,
    pub agents_total: u32,
    /// The sandbox layers this host offers.
    pub sandbox: Vec<crate::abi::Layer>,
    /// The file the kernel logs to (its stderr, when that is a regular file: `STATE_DIR/
    /// kernel.log` for `agentctl kernel start`); `None` on a terminal or a pipe. Appended
    /// (ABI 3).
    pub log_path: Option<PathBuf>,
    /// What keeps the kernel from doing its work, one sentence each; empty when healthy: the
    /// recorder cannot write or the disk is below its watermark (new work is refused), a
    /// sandbox layer is missing while every layer is required (spawns are refused). The same
    /// as `/healthz` on `--metrics-addr`. Appended (ABI 3).
    pub health: Vec<String>,
    /// Where the kernel serves metrics (`--metrics-addr`, as `http://ADDR/metrics`); `None`:
    /// no metrics. Appended (ABI 4).
    pub metrics_url: Option<String>,
    /// Where the kernel exports traces (`--otlp-endpoint`, the full traces URL); `None`: no
    /// traces. Appended (ABI 4).
    pub otlp_endpoint: Option<String>,
}

/// Why the kernel refused a control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlErrorKind {
    /// Something failed (exit code 1).
    Failed,
    /// The request is malformed (exit code 2).
    Usage,
    /// The policy refused it (exit code 3).
    Denied,
    /// No such agent (exit code 4).
    NotFound,
}

impl ControlErrorKind {
    /// The `agentctl` exit code for this kind (DESIGN §9).
    pub const fn exit_code(self) -> i32 {
        match self {
            ControlErrorKind::Failed => 1,
            ControlErrorKind::Usage => 2,
            ControlErrorKind::Denied => 3,
            ControlErrorKind::NotFound => 4,
        }
    }
}

/// A refused control request: what went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlError {
    pub kind: ControlErrorKind,
    pub message: String,
    pub hint: String,
}

/// The kernel's answer to a [`ControlRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlResponse {
    Status(KernelStatus),
    Spawned(AgentInfo),
    Agents(Vec<AgentInfo>),
    /// The agent's final row (for `Wait`) or current row (for `Inspect`).
    Agent(AgentInfo),
    Signaled {
        agent: AgentId,
        signal: Signal,
    },
    LogChunk(#[serde(with = "serde_bytes")] Vec<u8>),
    LogEnd,
    ShuttingDown,
    Error(ControlError),
    /// The parked calls, oldest first: since `ApprovalsPage` exists, the first page of the
    /// default query (at most [`DEFAULT_APPROVALS_PAGE`] rows).
    Approvals(Vec<ApprovalInfo>),
    /// A parked call was approved or denied.
    Decided {
        id: u64,
        approved: bool,
    },
    /// An agent's policy was replaced.
    Reloaded {
        agent: AgentId,
        old_digest: [u8; 32],
        new_digest: [u8; 32],
    },
    /// The answer to [`ControlRequest::ApprovalsPage`]. Appended (tag 13).
    ApprovalsPage(ApprovalPage),
    /// The agents a `Forget` or `Prune` removed, by id, oldest first. Appended (tag 14,
    /// ABI 3).
    Forgotten {
        agents: Vec<AgentId>,
    },
}

/// Where the kernel on `state_dir` listens for control connections.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("kernel.sock")
}

/// The state dir when none is given, the same for the kernel and `agentctl`:
/// `/var/lib/agentos` when `root` (the caller's effective uid is 0), otherwise
/// `$XDG_STATE_HOME/agentos` or `~/.local/state/agentos` (`/tmp/agentos-state` without a
/// home).
pub fn default_state_dir(root: bool) -> PathBuf {
    if root {
        return PathBuf::from("/var/lib/agentos");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("agentos");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/agentos"),
        None => PathBuf::from("/tmp/agentos-state"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_state_dir_and_the_socket_in_it() {
        assert_eq!(default_state_dir(true), PathBuf::from("/var/lib/agentos"));
        assert_eq!(
            socket_path(Path::new("/s")),
            PathBuf::from("/s/kernel.sock")
        );
    }

    #[test]
    fn display_bound_cuts_on_a_character_boundary_and_says_how_long() {
        assert_eq!(display_bound("short"), "short");
        let exact = "a".repeat(MAX_DISPLAY_BYTES);
        assert_eq!(display_bound(&exact), exact);
        let long = format!("a{}", "é".repeat(MAX_DISPLAY_BYTES));
        let cut = display_bound(&long);
        assert!(cut.ends_with(&format!("…({} bytes)", long.len())));
        let kept = cut.trim_end_matches(&format!("…({} bytes)", long.len()));
        assert!(kept.len() <= MAX_DISPLAY_BYTES && long.starts_with(kept));
    }
}

//! The on-disk format of the flight recorder.
//!
//! ```text
//! recorder/
//!   segment-000001.log
//!   segment-000002.log   (a new segment per kernel start, or when a tail does not verify)
//!
//! segment := frame*
//! frame   := +-------------+------------------------+--------------------+
//!            | len: u32 LE | body: postcard(Record) | chain: [u8; 32]    |
//!            +-------------+------------------------+--------------------+
//! chain   := blake3(previous chain ‖ body)     (the first frame of the log chains from
//!                                               32 zero bytes; a new segment continues the
//!                                               chain of the one before it)
//! ```
//!
//! Every syscall, decision, signal, spawn and exit is one [`Record`]. Changing, dropping or
//! reordering a frame breaks every chain value after it, which [`super::read_log`] reports
//! with the record's sequence number and byte offset.

use std::path::PathBuf;

use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::{AgentId, Errno, JailReport, Reply, Signal, Syscall};
use serde::{Deserialize, Serialize};

/// The genesis chain value.
pub const GENESIS: [u8; 32] = [0; 32];

/// Bytes of the chain value after each body.
pub const CHAIN_LEN: usize = 32;

/// Refuse to read a frame body larger than this (a corrupt length).
pub const MAX_RECORD: u32 = 64 << 20;

/// How the policy decided a syscall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Whether the call was let through (after the kernel mode was applied).
    pub allowed: bool,
    /// The policy's own verdict, before the mode.
    pub policy_allowed: bool,
    /// The deciding rule, `id (file:line)`; empty for a default deny or a built-in call.
    pub rule: String,
    pub reason: String,
    /// The call broke the policy (in permissive mode it is still let through).
    pub violation: bool,
    /// `strict`, `permissive`, `audit`, or `builtin` for calls no rule governs.
    pub mode: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordEvent {
    KernelStart {
        pid: u32,
        uid: u32,
        version: String,
        state_dir: PathBuf,
    },
    KernelStop {
        reason: String,
    },
    Spawn {
        name: Option<String>,
        program: String,
        args: Vec<String>,
        policy_path: String,
        policy_digest: [u8; 32],
        launcher_pid: u32,
    },
    SpawnRefused {
        program: String,
        reason: String,
    },
    Sandbox(JailReport),
    Handshake {
        sdk: String,
        abi: u16,
    },
    Syscall {
        id: u64,
        call: Syscall,
        decision: DecisionRecord,
        result: Result<Reply, Errno>,
        duration_us: u64,
    },
    Signal {
        signal: Signal,
        source: String,
        reason: String,
        delivered: bool,
    },
    ProtocolViolation {
        reason: String,
    },
    Exit {
        status: ExitStatus,
    },
    /// The agent's seccomp filter stopped a syscall (reported through the user-notification
    /// listener); it was answered EPERM.
    SandboxDenied {
        /// The syscall's name (`syscall_<nr>` when unknown).
        syscall: String,
        nr: i64,
        args: [u64; 6],
    },
    /// At kernel start: the sandbox layers the host offers, and whether the kernel runs with
    /// `--allow-degraded-sandbox` (spawns then proceed with missing layers).
    SandboxCapabilities {
        layers: Vec<agentos_syscalls::Layer>,
        allow_degraded: bool,
    },
    /// A call parked for operator approval (`requires_approval`), before anyone can see it in
    /// `agentctl approvals`.
    ApprovalRequested {
        /// The approval id, bound to this one request.
        approval: u64,
        /// The agent's request id.
        request: u64,
        action: String,
        resource: String,
        /// The rule that asked for approval, `id (file:line)`.
        rule: String,
    },
    /// How a parked call's approval ended.
    ApprovalDecided {
        approval: u64,
        request: u64,
        approved: bool,
        /// `approved`, `denied`, `timed out` or `agent ended`.
        outcome: String,
        /// Who decided: `operator (uid N)`, or `kernel` for a timeout.
        by: String,
        /// Milliseconds the call waited.
        waited_ms: u64,
    },
    /// An operator replaced the agent's policy.
    PolicyReloaded {
        old_digest: [u8; 32],
        new_digest: [u8; 32],
        path: String,
    },
    /// Right after `Spawn`: host paths the jail lets the agent read beyond its runtime and
    /// its policy's `sandbox: read_only` (a script's directory, the kernel's Python SDK).
    /// Appended (not a field of `Spawn`) so that older segments still decode.
    ReadOnlyGranted {
        paths: Vec<PathBuf>,
    },
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Microseconds since the kernel started (monotonic).
    pub mono_us: u64,
    pub agent: Option<AgentId>,
    pub event: RecordEvent,
}

/// The file name of segment `n`.
pub fn segment_name(n: u32) -> String {
    format!("segment-{n:06}.log")
}

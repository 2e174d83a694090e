//! Agent ↔ kernel messages.
//!
//! ```text
//! agent                                   kernel
//!   | -- AgentFrame::Hello{abi, sdk} -------> |   (first frame the agent sends)
//!   | <- KernelFrame::Welcome{..} ----------- |   or KernelFrame::Refused(Errno) and close
//!   | -- AgentFrame::Request{id, call} -----> |   any number in flight, matched by id
//!   | <- KernelFrame::Response{id, result} -- |   in any order
//!   | <- KernelFrame::Event(..) ------------- |   at any time
//! ```
//!
//! Before the agent program runs, its launcher sends one [`AgentFrame::JailReport`] on the
//! same socket: the state of every sandbox layer. The kernel accepts it only as the first
//! frame; one anywhere else is a protocol violation. It may be followed by one
//! [`AgentFrame::SandboxListener`] carrying the seccomp listener as `SCM_RIGHTS`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::errno::Errno;
use crate::signal::Signal;

/// An agent's id, unique within one kernel's state dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgentId(pub u64);

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// First frame from an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The ABI version the agent speaks ([`crate::ABI_VERSION`]).
    pub abi: u16,
    /// The SDK's name and version, e.g. `agentos-rust/0.1.0`.
    pub sdk: String,
}

/// The kernel's answer to an accepted [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub abi: u16,
    pub agent_id: AgentId,
    pub limits: Limits,
    /// blake3 of the agent's active policy file.
    pub policy_digest: [u8; 32],
}

/// Limits the kernel enforces on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest frame body, in bytes, either way.
    pub max_frame: u32,
    /// How many requests may be in flight at once; more wait in the socket.
    pub max_in_flight: u32,
}

/// One syscall with the id its answer will carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub call: Syscall,
}

/// The answer to the [`Request`] with the same `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub result: Result<Reply, Errno>,
}

/// How a `Write` treats existing contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteMode {
    /// Replace the file's contents (create it if missing).
    Truncate,
    /// Append to the file (create it if missing).
    Append,
    /// Create the file; fail with `AlreadyExists` if it exists.
    CreateNew,
}

/// How an `Open` opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpenMode {
    Read,
    Write(WriteMode),
}

/// Every syscall an agent can make. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Syscall {
    /// Read `len` bytes (all, when `None`) at `offset` of the file at `path`. Action `file_read`.
    Read {
        path: String,
        offset: u64,
        len: Option<u64>,
    },
    /// Write `data` to the file at `path`. Action `file_write`.
    Write {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        mode: WriteMode,
    },
    /// Open a file for streaming; answers [`Reply::Opened`].
    Open { path: String, mode: OpenMode },
    /// Close a descriptor from `Open`.
    Close { fd: u32 },
    /// List a directory. Action `file_read`.
    List { path: String },
    /// Describe a path. Action `file_read`.
    Stat { path: String },
    /// Remove a file. Action `file_write`.
    Unlink { path: String },
    /// Run a tool in its own sandbox. Action `code_execution`.
    Exec {
        /// At most [`crate::limits::ARGV_MAX_COUNT`] arguments are served; a longer argv is
        /// decoded as its first `ARGV_MAX_COUNT + 1` (the rest skipped unallocated) and refused.
        #[serde(deserialize_with = "crate::bounded::argv")]
        argv: Vec<String>,
        #[serde(with = "serde_bytes")]
        stdin: Vec<u8>,
        cwd: Option<String>,
        timeout_ms: Option<u64>,
    },
    /// A named policy action (`api_call`, `database_query`, …) routed to a tool provider.
    Call { action: String, params_json: String },
    /// Send a message to another agent's inbox. Action `ipc_send`.
    Send {
        to: AgentId,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Take the next message from this agent's inbox.
    Recv { timeout_ms: Option<u64> },
    /// Send a signal to another agent. Action `signal`.
    Signal { target: AgentId, signal: Signal },
    /// Ask how the policy would decide, without acting. Never a violation.
    CheckPolicy { action: String, resource: String },
    /// Snapshot working memory to `/state/checkpoints/<n>`.
    Checkpoint,
    /// Tell the kernel the agent is exiting with `code`.
    Exit { code: i32 },
    /// Read up to `len` bytes from a descriptor from `Open`.
    ReadFd { fd: u32, len: u32 },
    /// Write to a descriptor from `Open`.
    WriteFd {
        fd: u32,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Move the file at `from` to `to` within one mount (replacing a file at `to`, as POSIX
    /// `rename` does). Action `file_write`, judged on both paths: refused when either is.
    Rename { from: String, to: String },
    /// The tools of the operator's MCP servers that this agent's policy could let it call
    /// (action `mcp_tool`); answers [`Reply::Tools`]. A tool is then called with
    /// `Call { action: "SERVER/TOOL", params_json: ARGUMENTS }`.
    ListTools,
}

/// The number of [`Syscall`] variants; [`Syscall::ordinal`] is below it.
pub const SYSCALL_COUNT: usize = 19;

impl Syscall {
    /// A stable name for logs, the recorder and `Unsupported` errors.
    pub const fn name(&self) -> &'static str {
        match self {
            Syscall::Read { .. } => "read",
            Syscall::Write { .. } => "write",
            Syscall::Open { .. } => "open",
            Syscall::Close { .. } => "close",
            Syscall::List { .. } => "list",
            Syscall::Stat { .. } => "stat",
            Syscall::Unlink { .. } => "unlink",
            Syscall::Exec { .. } => "exec",
            Syscall::Call { .. } => "call",
            Syscall::Send { .. } => "send",
            Syscall::Recv { .. } => "recv",
            Syscall::Signal { .. } => "signal",
            Syscall::CheckPolicy { .. } => "check_policy",
            Syscall::Checkpoint => "checkpoint",
            Syscall::Exit { .. } => "exit",
            Syscall::ReadFd { .. } => "read_fd",
            Syscall::WriteFd { .. } => "write_fd",
            Syscall::Rename { .. } => "rename",
            Syscall::ListTools => "list_tools",
        }
    }

    /// The bytes the call carries for the kernel to write or pass on: a `Write`'s or
    /// `WriteFd`'s data, an `Exec`'s stdin, a `Send`'s payload, a `Call`'s params (the
    /// recorder moves large ones to blobs; an approval shows a preview). `None` for calls
    /// that carry none. Exhaustive, so a new call is placed here.
    pub fn payload(&self) -> Option<&[u8]> {
        match self {
            Syscall::Write { data, .. } | Syscall::WriteFd { data, .. } => Some(data),
            Syscall::Exec { stdin, .. } => Some(stdin),
            Syscall::Send { payload, .. } => Some(payload),
            Syscall::Call { params_json, .. } => Some(params_json.as_bytes()),
            Syscall::Read { .. }
            | Syscall::Open { .. }
            | Syscall::Close { .. }
            | Syscall::List { .. }
            | Syscall::Stat { .. }
            | Syscall::Unlink { .. }
            | Syscall::Recv { .. }
            | Syscall::Signal { .. }
            | Syscall::CheckPolicy { .. }
            | Syscall::Checkpoint
            | Syscall::Exit { .. }
            | Syscall::ReadFd { .. }
            | Syscall::Rename { .. }
            | Syscall::ListTools => None,
        }
    }

    /// The variant's position in the enum (its postcard tag). Exhaustive, so a new variant
    /// cannot be added without giving it a number here and raising [`SYSCALL_COUNT`].
    pub const fn ordinal(&self) -> usize {
        match self {
            Syscall::Read { .. } => 0,
            Syscall::Write { .. } => 1,
            Syscall::Open { .. } => 2,
            Syscall::Close { .. } => 3,
            Syscall::List { .. } => 4,
            Syscall::Stat { .. } => 5,
            Syscall::Unlink { .. } => 6,
            Syscall::Exec { .. } => 7,
            Syscall::Call { .. } => 8,
            Syscall::Send { .. } => 9,
            Syscall::Recv { .. } => 10,
            Syscall::Signal { .. } => 11,
            Syscall::CheckPolicy { .. } => 12,
            Syscall::Checkpoint => 13,
            Syscall::Exit { .. } => 14,
            Syscall::ReadFd { .. } => 15,
            Syscall::WriteFd { .. } => 16,
            Syscall::Rename { .. } => 17,
            Syscall::ListTools => 18,
        }
    }
}

/// The kind of a VFS node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Directory,
}

/// One entry of a `List`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
}

/// The answer to `Stat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub kind: FileKind,
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub modified_ms: u64,
    pub read_only: bool,
}

/// What a tool run by `Exec` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Exit code, or 128 + signal number when a signal ended it.
    pub status: i32,
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    pub duration_ms: u64,
    /// Whether stdout or stderr was cut at the cap.
    pub truncated: bool,
    pub timed_out: bool,
}

/// A message taken from an inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: AgentId,
    pub seq: u64,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// How the policy decides (or would decide) an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// The deciding rule's id with `file:line`; empty for a default deny.
    pub rule: String,
    pub reason: String,
}

/// A successful syscall's value. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The call succeeded and has no value.
    Done,
    /// Bytes read.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Bytes written.
    Written { bytes: u64 },
    /// A descriptor from `Open`.
    Opened { fd: u32 },
    /// A directory listing.
    Entries(Vec<DirEntry>),
    /// A `Stat` answer.
    Stat(FileStat),
    /// An `Exec` result.
    Exec(ExecOutput),
    /// A `Call` result, as JSON.
    CallResult { result_json: String },
    /// A message from `Recv`.
    Message(Message),
    /// A `CheckPolicy` answer.
    Decision(Decision),
    /// The number of the checkpoint taken.
    Checkpoint { number: u64 },
    /// A `ListTools` answer: at most [`crate::limits::TOOLS_MAX`] tools.
    Tools(Vec<ToolInfo>),
}

/// One tool of an MCP server, as `ListTools` shows it. Every string is bounded by the kernel
/// ([`crate::limits`]: `TOOL_NAME_MAX`, `TOOL_DESCRIPTION_MAX`, `TOOL_SCHEMA_MAX`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The server's name, as the operator declared it (`--mcp NAME=…`).
    pub server: String,
    /// The tool's name; call it as `Call { action: "SERVER/NAME", … }`.
    pub name: String,
    /// What the server says the tool does (cut at `TOOL_DESCRIPTION_MAX`).
    pub description: String,
    /// The tool's input JSON Schema, as JSON text.
    pub input_schema_json: String,
}

/// Something the kernel tells an agent without being asked. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A signal was sent to the agent (for maskable ones, the POSIX signal follows).
    Signal { signal: Signal, reason: String },
}

/// The state of one sandbox layer, as the launcher found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerStatus {
    /// Fully in force.
    Active { detail: String },
    /// In force, but weaker than asked (e.g. an older landlock ABI).
    Partial { detail: String },
    /// Not in force.
    Missing { detail: String },
}

/// One sandbox layer and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// `landlock`, `seccomp`, `userns`, `pidns`, `netns`, …
    pub name: String,
    pub status: LayerStatus,
}

/// The launcher's account of the jail it built, sent before the agent program runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailReport {
    /// Decoded as at most [`crate::limits::JAIL_LAYERS_MAX`] + 1 layers (the rest skipped).
    #[serde(deserialize_with = "crate::bounded::layers")]
    pub layers: Vec<Layer>,
}

/// A frame from the agent's side of the socket. Append-only; `Hello` stays variant 0 forever
/// so that any ABI version can be told apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentFrame {
    Hello(Hello),
    Request(Request),
    JailReport(JailReport),
    /// Sent by the launcher's init right after the jail report, with the seccomp
    /// user-notification listener attached as `SCM_RIGHTS` (absent when the host has no user
    /// notification). The kernel reads the agent's denied syscalls from it, records them and
    /// answers them `EPERM`. Accepted only between the jail report and `Hello`.
    SandboxListener,
    /// A [`Request`] made inside a span of the agent's own trace: the kernel's span for the
    /// call becomes a child of `trace`, so the agent's spans and the kernel's join one trace
    /// (ABI 4). Answered like a `Request`; without a trace exporter the context is ignored.
    TracedRequest {
        request: Request,
        trace: TraceContext,
    },
    /// Sent by the launcher's init, after the jail report and the seccomp listener, for an
    /// agent whose policy has a `network` rule: the listening TCP socket of the agent's egress
    /// proxy (on the loopback of the agent's own network namespace) attached as `SCM_RIGHTS`.
    /// The kernel accepts the agent's connections on it and judges each one. Accepted once,
    /// between the jail report and `Hello`, and only for such an agent; the SDKs never send it.
    EgressListener,
    /// Sent by the init of a tool's jail (never an agent's), once the tool has ended and every
    /// other process of its pid namespace is killed and reaped: the tool's exit status (its
    /// code, or 128 + the signal that ended it). The kernel answers the tool's call on it
    /// without waiting for the init's own exit, which tears the jail's namespaces down.
    /// Accepted once, after the jail report; only the launcher sends it, the SDKs never do.
    ToolExit {
        status: i32,
    },
}

/// A W3C trace context (the `traceparent` header's fields, version 00): the trace and the
/// span a request was made in. The ids are bytes on the wire; [`TraceContext::parse`] and
/// [`TraceContext::traceparent`] convert from and to the header's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` header value, `00-<32 hex>-<16 hex>-<2 hex>` (lower-case hex;
    /// all-zero ids are invalid, as the W3C Trace Context recommendation says). The error
    /// names what is wrong.
    pub fn parse(traceparent: &str) -> Result<TraceContext, String> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        let [version, trace, span, flags] = parts.as_slice() else {
            return Err(format!(
                "`{traceparent}` is not a traceparent: expected 00-<32 hex>-<16 hex>-<2 hex>"
            ));
        };
        if *version != "00" {
            return Err(format!(
                "traceparent version `{version}` is not supported (only 00)"
            ));
        }
        let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let bytes = |s: &str, n: usize, what: &str| -> Result<Vec<u8>, String> {
            if s.len() != 2 * n || !lower_hex(s) {
                return Err(format!(
                    "traceparent {what} `{s}` is not {} lower-case hex digits",
                    2 * n
                ));
            }
            (0..n)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
                .collect()
        };
        let mut t = TraceContext {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        t.trace_id.copy_from_slice(&bytes(trace, 16, "trace id")?);
        t.span_id.copy_from_slice(&bytes(span, 8, "span id")?);
        t.flags = bytes(flags, 1, "flags")?[0];
        if !t.is_valid() {
            return Err("traceparent has an all-zero trace id or span id".into());
        }
        Ok(t)
    }

    /// Neither id is all zeros.
    pub fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.span_id != [0; 8]
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

/// A frame from the kernel. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KernelFrame {
    Welcome(Welcome),
    /// The handshake was refused; the kernel closes the socket after this.
    Refused(Errno),
    Response(Response),
    Event(Event),
}

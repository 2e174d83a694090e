//! The flight recorder for people: one line per record, in the style of `strace` and
//! `journalctl` (`agentctl recorder show|tail`).
//!
//! ```text
//! 20:12:34.620 builder#1 file_write /mem/working/secrets/key data=7B "hunter2" → DENY no-secrets (security.md:12) [violation, permissive] = 7B written
//! 20:12:35.002 builder#1 sandbox refused socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0) = EPERM
//! ```
//!
//! - time: local, `HH:MM:SS.mmm`, with the date in front when it is not today;
//! - who: `NAME#ID` (`agent#ID` for an agent spawned without `--name`), `kernel` for the
//!   kernel's own records; names come from the log's `Spawn` records;
//! - what: the policy action and its resource (`file_write PATH`), payloads as their length
//!   and a short escaped preview (`data=42B "hello\n…"`), sockets decoded, digests in hex;
//! - the decision, its rule as `id (file:line)`, and flags; then ` = ` and the outcome.
//!   Nothing after the resource is ever cut: only payload previews are.
//!
//! Safety (DESIGN §1 invariant 8): a line is a list of spans; [`Line::render`] escapes every
//! span ([`crate::safe::escape`], line breaks too) and is the only place colour codes are
//! added, so no agent string reaches the terminal raw. Colour only when stdout is a terminal
//! and `NO_COLOR` is unset or empty ([`color_enabled`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use agentos_recorder::{DecisionRecord, Record, RecordEvent};
use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::{Errno, LayerStatus, OpenMode, Reply, Syscall, WriteMode};

use crate::safe::escape;

/// Characters of a payload preview (after escaping) before it is cut with `…`.
const PREVIEW: usize = 24;

/// How a span is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Time,
    Who,
    What,
    Allow,
    Deny,
    Flag,
    Error,
    Note,
}

impl Tone {
    fn sgr(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Time => Some("2"),
            Tone::Who => Some("36"),
            Tone::What => Some("1"),
            Tone::Allow => Some("32"),
            Tone::Deny => Some("1;31"),
            Tone::Flag => Some("33"),
            Tone::Error => Some("31"),
            Tone::Note => Some("35"),
        }
    }
}

/// One line for a person, as spans.
#[derive(Debug, Default)]
pub struct Line {
    spans: Vec<(Tone, String)>,
}

impl Line {
    fn push(&mut self, tone: Tone, text: impl Into<String>) -> &mut Self {
        self.spans.push((tone, text.into()));
        self
    }

    fn plain(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Tone::Plain, text)
    }

    /// The line's text: every span escaped, coloured when `color`.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for (tone, text) in &self.spans {
            let text = escape(text);
            match tone.sgr().filter(|_| color) {
                Some(code) => {
                    let _ = write!(out, "\x1b[{code}m{text}\x1b[0m");
                }
                None => out.push_str(&text),
            }
        }
        out
    }
}

/// Colour: stdout is a terminal and `NO_COLOR` is unset or empty (no-color.org).
pub fn color_enabled() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

/// Every record kind, as `--kind` takes it and `kind` in the JSON says it.
pub const KINDS: &[&str] = &[
    "kernel_start",
    "kernel_stop",
    "spawn",
    "spawn_refused",
    "sandbox",
    "handshake",
    "syscall",
    "signal",
    "protocol_violation",
    "exit",
    "sandbox_denied",
    "sandbox_capabilities",
    "approval_requested",
    "approval_decided",
    "policy_reloaded",
    "read_only_granted",
    "recovery",
    "recorder_broken",
    "memory_checkpoint",
    "memory_restored",
    "sandbox_access",
    "sandbox_flood",
    "sandbox_limit",
    "recorder_resumed",
    "hook_failed",
    "mcp_server_exited",
    "egress",
    "egress_closed",
    "witness_cosigned",
    "witness_failed",
    "key_rotated",
];

/// The record's kind (one of [`KINDS`]).
pub fn kind(e: &RecordEvent) -> &'static str {
    match e {
        RecordEvent::KernelStart { .. } => "kernel_start",
        RecordEvent::KernelStop { .. } => "kernel_stop",
        RecordEvent::Spawn { .. } => "spawn",
        RecordEvent::SpawnRefused { .. } => "spawn_refused",
        RecordEvent::Sandbox(_) => "sandbox",
        RecordEvent::Handshake { .. } => "handshake",
        // Readers never see `SyscallBlobs` (verification resolves it to `Syscall`).
        RecordEvent::Syscall { .. } | RecordEvent::SyscallBlobs { .. } => "syscall",
        RecordEvent::Signal { .. } => "signal",
        RecordEvent::ProtocolViolation { .. } => "protocol_violation",
        RecordEvent::Exit { .. } => "exit",
        RecordEvent::SandboxDenied { .. } => "sandbox_denied",
        RecordEvent::SandboxCapabilities { .. } => "sandbox_capabilities",
        RecordEvent::ApprovalRequested { .. } => "approval_requested",
        RecordEvent::ApprovalDecided { .. } => "approval_decided",
        RecordEvent::PolicyReloaded { .. } => "policy_reloaded",
        RecordEvent::ReadOnlyGranted { .. } => "read_only_granted",
        RecordEvent::Recovery { .. } => "recovery",
        RecordEvent::RecorderBroken { .. } => "recorder_broken",
        RecordEvent::MemoryCheckpoint { .. } => "memory_checkpoint",
        RecordEvent::MemoryRestored { .. } => "memory_restored",
        RecordEvent::SandboxAccess { .. } => "sandbox_access",
        RecordEvent::SandboxFlood { .. } => "sandbox_flood",
        RecordEvent::SandboxLimit { .. } => "sandbox_limit",
        RecordEvent::RecorderResumed { .. } => "recorder_resumed",
        RecordEvent::HookFailed { .. } => "hook_failed",
        RecordEvent::McpServerExited { .. } => "mcp_server_exited",
        RecordEvent::Egress { .. } => "egress",
        RecordEvent::EgressClosed { .. } => "egress_closed",
        RecordEvent::WitnessCosigned { .. } => "witness_cosigned",
        RecordEvent::WitnessFailed { .. } => "witness_failed",
        RecordEvent::KeyRotated { .. } => "key_rotated",
    }
}

/// `--denied`: something was refused — a syscall the kernel did not let through (policy,
/// approval, rate limit, a built-in bound), a sandbox refusal (seccomp, the jail; a flood of
/// them), a refused spawn, a denied or timed-out approval.
pub fn denied(e: &RecordEvent) -> bool {
    match e {
        RecordEvent::Syscall {
            decision, result, ..
        }
        | RecordEvent::SyscallBlobs {
            decision, result, ..
        } => {
            !decision.allowed
                || matches!(
                    result,
                    Err(Errno::PermissionDenied { .. }
                        | Errno::ApprovalDenied
                        | Errno::ApprovalTimeout
                        | Errno::RateLimited { .. })
                )
        }
        RecordEvent::SandboxDenied { .. }
        | RecordEvent::SandboxAccess { .. }
        | RecordEvent::SandboxFlood { .. }
        | RecordEvent::SpawnRefused { .. } => true,
        RecordEvent::ApprovalDecided { approved, .. } => !approved,
        RecordEvent::Egress {
            decision, result, ..
        } => !decision.allowed || result.is_err(),
        RecordEvent::KernelStart { .. }
        | RecordEvent::KernelStop { .. }
        | RecordEvent::Spawn { .. }
        | RecordEvent::Sandbox(_)
        | RecordEvent::Handshake { .. }
        | RecordEvent::Signal { .. }
        | RecordEvent::ProtocolViolation { .. }
        | RecordEvent::Exit { .. }
        | RecordEvent::SandboxCapabilities { .. }
        | RecordEvent::ApprovalRequested { .. }
        | RecordEvent::PolicyReloaded { .. }
        | RecordEvent::ReadOnlyGranted { .. }
        | RecordEvent::Recovery { .. }
        | RecordEvent::RecorderBroken { .. }
        | RecordEvent::MemoryCheckpoint { .. }
        | RecordEvent::MemoryRestored { .. }
        | RecordEvent::SandboxLimit { .. }
        | RecordEvent::RecorderResumed { .. }
        | RecordEvent::HookFailed { .. }
        | RecordEvent::McpServerExited { .. }
        | RecordEvent::EgressClosed { .. }
        | RecordEvent::WitnessCosigned { .. }
        | RecordEvent::WitnessFailed { .. } => false,
        RecordEvent::KeyRotated { .. } => false,
    }
}

/// `--violations`: a call that broke the policy (refused in strict mode, let through and
/// recorded in permissive and audit), or a protocol violation.
pub fn violation(e: &RecordEvent) -> bool {
    match e {
        RecordEvent::Syscall { decision, .. } | RecordEvent::SyscallBlobs { decision, .. } => {
            decision.violation
        }
        RecordEvent::ProtocolViolation { .. } => true,
        RecordEvent::Egress { decision, .. } => decision.violation,
        RecordEvent::KernelStart { .. }
        | RecordEvent::KernelStop { .. }
        | RecordEvent::Spawn { .. }
        | RecordEvent::SpawnRefused { .. }
        | RecordEvent::Sandbox(_)
        | RecordEvent::Handshake { .. }
        | RecordEvent::Signal { .. }
        | RecordEvent::Exit { .. }
        | RecordEvent::SandboxDenied { .. }
        | RecordEvent::SandboxCapabilities { .. }
        | RecordEvent::ApprovalRequested { .. }
        | RecordEvent::ApprovalDecided { .. }
        | RecordEvent::PolicyReloaded { .. }
        | RecordEvent::ReadOnlyGranted { .. }
        | RecordEvent::Recovery { .. }
        | RecordEvent::RecorderBroken { .. }
        | RecordEvent::MemoryCheckpoint { .. }
        | RecordEvent::MemoryRestored { .. }
        | RecordEvent::SandboxAccess { .. }
        | RecordEvent::SandboxFlood { .. }
        | RecordEvent::SandboxLimit { .. }
        | RecordEvent::RecorderResumed { .. }
        | RecordEvent::HookFailed { .. }
        | RecordEvent::McpServerExited { .. }
        | RecordEvent::EgressClosed { .. }
        | RecordEvent::WitnessCosigned { .. }
        | RecordEvent::WitnessFailed { .. } => false,
        RecordEvent::KeyRotated { .. } => false,
    }
}

/// Agent names from the log's `Spawn` records.
#[derive(Debug, Default, Clone)]
pub struct Names {
    names: HashMap<u64, Option<String>>,
}

impl Names {
    /// Learns the name of the agent a `Spawn` record started.
    pub fn learn(&mut self, r: &Record) {
        if let (Some(a), RecordEvent::Spawn { name, .. }) = (r.agent, &r.event) {
            self.names.insert(a.0, name.clone());
        }
    }

    pub fn of(records: &[Record]) -> Names {
        let mut n = Names::default();
        for r in records {
            n.learn(r);
        }
        n
    }

    /// The agent's name, when it was spawned with one.
    pub fn name(&self, id: u64) -> Option<&str> {
        self.names.get(&id).and_then(|n| n.as_deref())
    }

    /// `NAME#ID`, or `agent#ID`.
    pub fn label(&self, id: u64) -> String {
        format!("{}#{id}", self.name(id).unwrap_or("agent"))
    }
}

/// What `--agent` named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentArg {
    Id(u64),
    Name(String),
}

impl AgentArg {
    pub fn parse(s: &str) -> AgentArg {
        match s.parse() {
            Ok(id) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => AgentArg::Id(id),
            _ => AgentArg::Name(s.to_string()),
        }
    }
}

/// The ids of the agents named `name`, oldest first.
pub fn ids_named(records: &[Record], name: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    for r in records {
        if let (Some(a), RecordEvent::Spawn { name: Some(n), .. }) = (r.agent, &r.event) {
            if n == name && !ids.contains(&a.0) {
                ids.push(a.0);
            }
        }
    }
    ids
}

/// Every distinct agent name in the log, for an error's hint.
pub fn known_names(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RecordEvent::Spawn { name: Some(n), .. } => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// Local time of `wall_ms`: `HH:MM:SS.mmm`, with the date in front when it is not today.
pub struct Clock {
    tz: jiff::tz::TimeZone,
    today: jiff::civil::Date,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("today", &self.today).finish()
    }
}

impl Clock {
    pub fn local() -> Clock {
        let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        let today = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date();
        Clock { tz, today }
    }

    /// A clock in `tz` for which `today` is today: renders the same on any machine and day.
    #[cfg(test)]
    pub fn fixed(tz: jiff::tz::TimeZone, today: jiff::civil::Date) -> Clock {
        Clock { tz, today }
    }

    pub fn format(&self, wall_ms: u64) -> String {
        let Ok(ts) = jiff::Timestamp::from_millisecond(wall_ms.min(i64::MAX as u64) as i64) else {
            return format!("@{wall_ms}ms");
        };
        let z = ts.to_zoned_datetime(self.tz.clone());
        if z.date() == self.today {
            z.strftime("%H:%M:%S%.3f").to_string()
        } else {
            z.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string()
        }
    }
}

/// RFC 3339 UTC time of `wall_ms`, for the JSON.
pub fn utc(wall_ms: u64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(i64::try_from(wall_ms).ok()?).ok()?;
    Some(ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// A payload: `data=11B "hello\nworld"`, cut after [`PREVIEW`] characters.
fn payload(label: &str, bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return format!("{label}=0B");
    }
    format!("{label}={} {}", size(bytes.len() as u64), preview(bytes))
}

/// `"hello\n…"`: printable text as is, `\n`, `\t`, `\"`, `\\`, other bytes `\xNN`.
pub fn preview(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut shown = 0;
    let text = String::from_utf8_lossy(bytes);
    let valid = std::str::from_utf8(bytes).is_ok();
    let mut cut = false;
    if valid {
        for c in text.chars() {
            if shown >= PREVIEW {
                cut = true;
                break;
            }
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if crate::safe::is_unsafe(c) => out.push_str(&escape(&c.to_string())),
                c => out.push(c),
            }
            shown += 1;
        }
    } else {
        for &b in bytes {
            if shown >= PREVIEW {
                cut = true;
                break;
            }
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\t' => out.push_str("\\t"),
                0x20..=0x7e => out.push(b as char),
                b => {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            shown += 1;
        }
    }
    out.push('"');
    if cut {
        out.push('…');
    }
    out
}

/// `7B`, `4.0KiB`, `1.5MiB`.
pub fn size(n: u64) -> String {
    match n {
        0..=1023 => format!("{n}B"),
        1024..=1_048_575 => format!("{:.1}KiB", n as f64 / 1024.0),
        _ => format!("{:.1}MiB", n as f64 / 1_048_576.0),
    }
}

/// A digest as short hex (the JSON has it whole).
fn digest(d: &[u8; 32]) -> String {
    hex::encode(&d[..8])
}

/// A string field shown whole, or a preview when long (parameters, JSON results).
fn text_preview(label: &str, s: &str) -> String {
    payload(label, s.as_bytes())
}

/// `rule (file:line)` with the policy file's directory left out; `default deny` when empty.
pub fn short_rule(rule: &str) -> String {
    if rule.is_empty() {
        return "default deny".into();
    }
    if let Some((id, rest)) = rule.split_once(" (") {
        if let Some(loc) = rest.strip_suffix(')') {
            let file = loc.rsplit('/').next().unwrap_or(loc);
            return format!("{id} ({file})");
        }
    }
    rule.to_string()
}

/// What a syscall did, as the policy sees it: `ACTION RESOURCE …`.
fn call_spans(line: &mut Line, call: &Syscall, names: &Names) {
    let what = |line: &mut Line, action: &str| {
        line.push(Tone::What, action.to_string());
    };
    match call {
        Syscall::Read { path, offset, len } => {
            what(line, "file_read");
            line.plain(format!(" {path}"));
            if *offset > 0 {
                line.plain(format!(" offset={offset}"));
            }
            if let Some(l) = len {
                line.plain(format!(" len={l}"));
            }
        }
        Syscall::Write { path, data, mode } => {
            what(line, "file_write");
            line.plain(format!(" {path} {}", payload("data", data)));
            match mode {
                WriteMode::Truncate => {}
                WriteMode::Append => {
                    line.plain(" append");
                }
                WriteMode::CreateNew => {
                    line.plain(" create-new");
                }
            }
        }
        Syscall::Open { path, mode } => {
            let (action, how) = match mode {
                OpenMode::Read => ("file_read", "open"),
                OpenMode::Write(WriteMode::Truncate) => ("file_write", "open"),
                OpenMode::Write(WriteMode::Append) => ("file_write", "open append"),
                OpenMode::Write(WriteMode::CreateNew) => ("file_write", "open create-new"),
            };
            what(line, action);
            line.plain(format!(" {path} ({how})"));
        }
        Syscall::Close { fd } => {
            what(line, "close");
            line.plain(format!(" fd={fd}"));
        }
        Syscall::List { path } => {
            what(line, "file_read");
            line.plain(format!(" {path} (list)"));
        }
        Syscall::Stat { path } => {
            what(line, "file_read");
            line.plain(format!(" {path} (stat)"));
        }
        Syscall::Unlink { path } => {
            what(line, "file_write");
            line.plain(format!(" {path} (unlink)"));
        }
        Syscall::Rename { from, to } => {
            what(line, "file_write");
            line.plain(format!(" {from} to {to} (rename)"));
        }
        Syscall::Exec {
            argv,
            stdin,
            cwd,
            timeout_ms,
        } => {
            what(line, "code_execution");
            // Each argument escaped on its own, quoted when it holds a space.
            let args: Vec<String> = argv
                .iter()
                .map(|a| {
                    if a.is_empty() || a.contains(' ') {
                        format!("{a:?}")
                    } else {
                        a.clone()
                    }
                })
                .collect();
            line.plain(format!(" {}", args.join(" ")));
            if !stdin.is_empty() {
                line.plain(format!(" {}", payload("stdin", stdin)));
            }
            if let Some(c) = cwd {
                line.plain(format!(" cwd={c}"));
            }
            if let Some(t) = timeout_ms {
                line.plain(format!(" timeout={t}ms"));
            }
        }
        Syscall::Call {
            action,
            params_json,
        } => {
            what(line, action);
            line.plain(format!(" {}", text_preview("params", params_json)));
        }
        Syscall::Send { to, payload: p } => {
            what(line, "ipc_send");
            line.plain(format!(" {} {}", names.label(to.0), payload("data", p)));
        }
        Syscall::Recv { timeout_ms } => {
            what(line, "recv");
            if let Some(t) = timeout_ms {
                line.plain(format!(" timeout={t}ms"));
            }
        }
        Syscall::Signal { target, signal } => {
            what(line, "signal");
            line.plain(format!(" {signal} to {}", names.label(target.0)));
        }
        Syscall::CheckPolicy { action, resource } => {
            what(line, "check_policy");
            line.plain(format!(" {action} {resource}"));
        }
        Syscall::Checkpoint => {
            what(line, "checkpoint");
        }
        Syscall::ListTools => {
            what(line, "list_tools");
        }
        Syscall::Exit { code } => {
            what(line, "exit");
            line.plain(format!(" code={code}"));
        }
        Syscall::ReadFd { fd, len } => {
            what(line, "read_fd");
            line.plain(format!(" fd={fd} len={len}"));
        }
        Syscall::WriteFd { fd, data } => {
            what(line, "write_fd");
            line.plain(format!(" fd={fd} {}", payload("data", data)));
        }
    }
}

/// ` → DENY rule (file:line) [violation, permissive]`; nothing for a built-in call let through.
fn decision_spans(line: &mut Line, d: &DecisionRecord) {
    if d.mode == "builtin" && d.allowed {
        return;
    }
    if d.policy_allowed && d.allowed {
        line.plain(" → ").push(Tone::Allow, "ALLOW");
    } else {
        line.plain(" → ").push(Tone::Deny, "DENY");
    }
    line.plain(format!(" {}", short_rule(&d.rule)));
    if !d.allowed && !d.reason.is_empty() && (d.rule.is_empty() || d.mode == "builtin") {
        line.plain(format!(": {}", d.reason));
    }
    let mut flags = Vec::new();
    if d.violation {
        flags.push("violation");
    }
    if d.violation || (d.allowed && !d.policy_allowed) || d.mode == "replay" {
        flags.push(d.mode.as_str());
    }
    if !flags.is_empty() {
        line.plain(" ")
            .push(Tone::Flag, format!("[{}]", flags.join(", ")));
    }
}

fn reply_text(r: &Reply, names: &Names) -> String {
    match r {
        Reply::Done => "ok".into(),
        Reply::Data(d) => format!("{} {}", size(d.len() as u64), preview(d)),
        Reply::Written { bytes } => format!("{} written", size(*bytes)),
        Reply::Opened { fd } => format!("fd {fd}"),
        Reply::Entries(e) => format!("{} entries", e.len()),
        Reply::Tools(t) => format!("{} tools", t.len()),
        Reply::Stat(s) => format!(
            "{} {}{}",
            format!("{:?}", s.kind).to_lowercase(),
            size(s.size),
            if s.read_only { " read-only" } else { "" }
        ),
        Reply::Exec(o) => {
            let mut s = format!(
                "exit {}, {}, {}, {}ms",
                o.status,
                payload("stdout", &o.stdout),
                payload("stderr", &o.stderr),
                o.duration_ms
            );
            if o.timed_out {
                s.push_str(", timed out");
            }
            if o.truncated {
                s.push_str(", output cut");
            }
            s
        }
        Reply::CallResult { result_json } => text_preview("result", result_json),
        Reply::Message(m) => format!(
            "message {} from {} {}",
            m.seq,
            names.label(m.from.0),
            payload("data", &m.payload)
        ),
        Reply::Decision(d) => format!(
            "would {} ({})",
            if d.allowed { "allow" } else { "deny" },
            short_rule(&d.rule)
        ),
        Reply::Checkpoint { number } => format!("checkpoint {number}"),
    }
}

fn errno_text(e: &Errno) -> String {
    match e {
        Errno::PermissionDenied { .. } | Errno::ApprovalDenied | Errno::ApprovalTimeout => {
            e.kind().to_string()
        }
        _ => format!("{} ({e})", e.kind()),
    }
}

const AF: &[(u64, &str)] = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (4, "AF_IPX"),
    (5, "AF_APPLETALK"),
    (10, "AF_INET6"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
    (31, "AF_BLUETOOTH"),
    (38, "AF_ALG"),
    (40, "AF_VSOCK"),
    (44, "AF_XDP"),
];

const SOCK: &[(u64, &str)] = &[
    (1, "SOCK_STREAM"),
    (2, "SOCK_DGRAM"),
    (3, "SOCK_RAW"),
    (4, "SOCK_RDM"),
    (5, "SOCK_SEQPACKET"),
    (6, "SOCK_DCCP"),
    (10, "SOCK_PACKET"),
];

const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;

fn named(table: &[(u64, &str)], v: u64) -> String {
    table
        .iter()
        .find(|(n, _)| *n == v)
        .map_or_else(|| v.to_string(), |(_, s)| (*s).to_string())
}

fn socket_type(t: u64) -> String {
    let mut s = named(SOCK, t & 0xf);
    let rest = t & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC);
    if t & SOCK_NONBLOCK != 0 {
        s.push_str("|SOCK_NONBLOCK");
    }
    if t & SOCK_CLOEXEC != 0 {
        s.push_str("|SOCK_CLOEXEC");
    }
    if rest != 0 {
        let _ = write!(s, "|{rest:#x}");
    }
    s
}

fn protocol(domain: u64, p: u64) -> String {
    match (domain, p) {
        (2 | 10, 1) => "IPPROTO_ICMP".into(),
        (2 | 10, 6) => "IPPROTO_TCP".into(),
        (2 | 10, 17) => "IPPROTO_UDP".into(),
        (10, 58) => "IPPROTO_ICMPV6".into(),
        (_, p) => p.to_string(),
    }
}

/// A syscall the seccomp filter stopped, decoded where we know it (`socket(AF_INET,
/// SOCK_STREAM, 0)`), other arguments in hex with trailing zeros left out.
pub fn sandbox_call(name: &str, args: &[u64; 6]) -> String {
    match name {
        "socket" => format!(
            "socket({}, {}, {})",
            named(AF, args[0]),
            socket_type(args[1]),
            protocol(args[0], args[2])
        ),
        "socketpair" => format!(
            "socketpair({}, {}, {}, {:#x})",
            named(AF, args[0]),
            socket_type(args[1]),
            protocol(args[0], args[2]),
            args[3]
        ),
        "ioctl" if args[1] == 0x5412 => format!("ioctl({}, TIOCSTI, {:#x})", args[0], args[2]),
        _ => {
            let n = args.iter().rposition(|&a| a != 0).map_or(0, |i| i + 1);
            let shown: Vec<String> = args[..n].iter().map(|a| format!("{a:#x}")).collect();
            format!("{name}({})", shown.join(", "))
        }
    }
}

fn layers_text(layers: &[agentos_syscalls::Layer]) -> String {
    let mut active = Vec::new();
    let mut other = Vec::new();
    for l in layers {
        match &l.status {
            LayerStatus::Active { .. } => active.push(l.name.clone()),
            LayerStatus::Partial { detail } => other.push(format!("{} partial ({detail})", l.name)),
            LayerStatus::Missing { detail } => other.push(format!("{} MISSING ({detail})", l.name)),
        }
    }
    let mut s = if active.is_empty() {
        "no layer active".to_string()
    } else {
        active.join(" ")
    };
    if !other.is_empty() {
        let _ = write!(s, "; {}", other.join("; "));
    }
    s
}

fn exit_text(e: &ExitStatus) -> String {
    match e {
        ExitStatus::Code(c) => format!("code {c}"),
        other => other.to_string(),
    }
}

/// The human line of `r`.
pub fn line(r: &Record, names: &Names, clock: &Clock) -> Line {
    let mut l = Line::default();
    l.push(Tone::Time, clock.format(r.wall_ms)).plain(" ");
    match r.agent {
        Some(a) => l.push(Tone::Who, names.label(a.0)),
        None => l.push(Tone::Who, "kernel"),
    };
    l.plain(" ");
    event_spans(&mut l, &r.event, names);
    l
}

fn event_spans(l: &mut Line, e: &RecordEvent, names: &Names) {
    match e {
        RecordEvent::KernelStart {
            pid,
            uid,
            version,
            state_dir,
        } => {
            l.push(Tone::Note, "start");
            l.plain(format!(
                " pid {pid} uid {uid}, agentos {version}, state dir {}",
                state_dir.display()
            ));
        }
        RecordEvent::KernelStop { reason } => {
            l.push(Tone::Note, "stop");
            l.plain(format!(": {reason}"));
        }
        RecordEvent::Spawn {
            name,
            program,
            args,
            policy_path,
            policy_digest,
            launcher_pid,
        } => {
            // The name is in the line's NAME#ID already.
            let _ = name;
            l.push(Tone::Note, "spawn");
            let mut cmd = program.clone();
            for a in args {
                cmd.push(' ');
                cmd.push_str(&if a.is_empty() || a.contains(' ') {
                    format!("{a:?}")
                } else {
                    a.clone()
                });
            }
            l.plain(format!(
                " {cmd}; policy {policy_path} (blake3 {}); launcher pid {launcher_pid}",
                digest(policy_digest)
            ));
        }
        RecordEvent::SpawnRefused { program, reason } => {
            l.push(Tone::Deny, "spawn refused");
            l.plain(format!(" {program}: {reason}"));
        }
        RecordEvent::Sandbox(report) => {
            l.push(Tone::Note, "sandbox");
            l.plain(format!(": {}", layers_text(&report.layers)));
        }
        RecordEvent::Handshake { sdk, abi } => {
            l.push(Tone::Note, "handshake");
            l.plain(format!(" {sdk} abi {abi}"));
        }
        RecordEvent::Syscall {
            id: _,
            call,
            decision,
            result,
            duration_us: _,
        }
        | RecordEvent::SyscallBlobs {
            id: _,
            call,
            decision,
            result,
            duration_us: _,
            blobs: _,
        } => {
            call_spans(l, call, names);
            decision_spans(l, decision);
            l.plain(" = ");
            match result {
                Ok(reply) => l.plain(reply_text(reply, names)),
                Err(e) => l.push(Tone::Error, errno_text(e)),
            };
        }
        RecordEvent::Signal {
            signal,
            source,
            reason,
            delivered,
        } => {
            l.push(Tone::Note, format!("signal {signal}"));
            l.plain(format!(" from {source}"));
            if !reason.is_empty() {
                l.plain(format!(": {reason}"));
            }
            if !delivered {
                l.plain(" ").push(Tone::Flag, "[not delivered]");
            }
        }
        RecordEvent::ProtocolViolation { reason } => {
            l.push(Tone::Deny, "protocol violation");
            l.plain(format!(": {reason}"));
        }
        RecordEvent::Exit { status } => {
            l.push(Tone::Note, "exit");
            l.plain(format!(" {}", exit_text(status)));
        }
        RecordEvent::SandboxDenied {
            syscall,
            nr: _,
            args,
        } => {
            l.push(Tone::Deny, "sandbox denied");
            l.plain(format!(" {} = ", sandbox_call(syscall, args)));
            l.push(Tone::Error, "EPERM");
        }
        RecordEvent::SandboxCapabilities {
            layers,
            allow_degraded,
        } => {
            l.push(Tone::Note, "sandbox capabilities");
            l.plain(format!(": {}", layers_text(layers)));
            if *allow_degraded {
                l.plain(" ").push(Tone::Flag, "[allow-degraded-sandbox]");
            }
        }
        RecordEvent::ApprovalRequested {
            approval,
            request,
            action,
            resource,
            rule,
        } => {
            l.push(Tone::Flag, format!("approval {approval} requested"));
            l.plain(format!(
                ": {action} {resource} by {} (request {request})",
                short_rule(rule)
            ));
        }
        RecordEvent::ApprovalDecided {
            approval,
            request,
            approved,
            outcome,
            by,
            waited_ms,
        } => {
            l.push(
                if *approved { Tone::Allow } else { Tone::Deny },
                format!("approval {approval} {outcome}"),
            );
            l.plain(format!(" by {by} after {waited_ms} ms (request {request})"));
        }
        RecordEvent::PolicyReloaded {
            old_digest,
            new_digest,
            path,
        } => {
            l.push(Tone::Note, "policy reloaded");
            l.plain(format!(
                " {path}: blake3 {} to {}",
                digest(old_digest),
                digest(new_digest)
            ));
        }
        RecordEvent::ReadOnlyGranted { paths } => {
            l.push(Tone::Note, "read-only granted");
            let p: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            l.plain(format!(" {}", p.join(", ")));
        }
        RecordEvent::Recovery {
            segment,
            offset,
            bytes_dropped,
        } => {
            l.push(Tone::Flag, "recovery");
            l.plain(format!(
                ": cut a torn tail of {bytes_dropped} bytes off segment {segment} at byte {offset}"
            ));
        }
        RecordEvent::RecorderBroken {
            segment,
            offset,
            seq,
            what,
        } => {
            l.push(Tone::Deny, "recorder broken");
            l.plain(format!(
                ": segment {segment}, record {seq} at byte {offset}: {what}"
            ));
        }
        RecordEvent::MemoryCheckpoint {
            number,
            files,
            bytes,
            trigger,
        } => {
            l.push(Tone::Note, format!("memory checkpoint {number}"));
            l.plain(format!(": {files} files, {} ({trigger})", size(*bytes)));
        }
        RecordEvent::MemoryRestored {
            from,
            number,
            files,
            bytes,
        } => {
            l.push(Tone::Note, "memory restored");
            l.plain(format!(
                " from {} checkpoint {number}: {files} files, {}",
                names.label(from.0),
                size(*bytes)
            ));
        }
        RecordEvent::SandboxAccess {
            syscall,
            target,
            why,
        } => {
            l.push(Tone::Deny, "sandbox refused");
            l.plain(format!(" {syscall} {target}: {why}"));
        }
        RecordEvent::SandboxFlood {
            syscall,
            suppressed,
            window_start_ms: _,
            window_ms,
        } => {
            l.push(Tone::Deny, "sandbox flood");
            l.plain(format!(
                ": {suppressed} more {syscall} refusals in {window_ms} ms, counted not recorded"
            ));
        }
        RecordEvent::SandboxLimit {
            resource,
            limit,
            used,
            by,
            detail,
        } => {
            l.push(Tone::Flag, format!("limit {resource}"));
            l.plain(format!(" {used}/{limit} by {by}: {detail}"));
        }
        RecordEvent::RecorderResumed {
            failed_at_ms,
            resumed_at_ms,
            refused,
            what,
        } => {
            l.push(Tone::Flag, "recorder resumed");
            l.plain(format!(
                " after {} ms without writing ({what}); {refused} calls refused meanwhile",
                resumed_at_ms.saturating_sub(*failed_at_ms)
            ));
        }
        RecordEvent::HookFailed { event, why } => {
            l.push(Tone::Error, "hook failed");
            l.plain(format!(" on {event}: {why}"));
        }
        RecordEvent::WitnessCosigned { witness, size } => {
            l.push(Tone::Note, "witness cosigned");
            l.plain(format!(" {witness}: checkpoint of {size} records"));
        }
        RecordEvent::WitnessFailed { witness, size, why } => {
            l.push(Tone::Error, "witness failed");
            l.plain(format!(" {witness}: checkpoint of {size} records: {why}"));
        }
        RecordEvent::McpServerExited {
            server,
            why,
            restarts,
            backoff_ms,
        } => {
            l.push(Tone::Error, "MCP server exited");
            l.plain(format!(
                " {server} (after {restarts} restarts; next start in {backoff_ms} ms): {why}"
            ));
        }
        RecordEvent::Egress {
            conn,
            method,
            target,
            address,
            decision,
            result,
        } => {
            l.push(Tone::Note, format!("egress #{conn}"));
            l.plain(format!(" {method} {target}"));
            if !address.is_empty() {
                l.plain(format!(" ({address})"));
            }
            decision_spans(l, decision);
            l.plain(" = ");
            match result {
                Ok(()) => l.plain("connected"),
                Err(e) => l.push(Tone::Error, errno_text(e)),
            };
        }
        RecordEvent::EgressClosed {
            conn,
            sent,
            received,
            duration_ms,
            why,
        } => {
            l.push(Tone::Note, format!("egress #{conn} closed"));
            l.plain(format!(
                ": {sent} bytes sent, {received} received in {duration_ms} ms ({why})"
            ));
        }
        RecordEvent::KeyRotated {
            old_public,
            new_public,
            ..
        } => {
            let id = |k: &[u8; 32]| hex::encode(agentos_recorder::key::key_id_of(k));
            l.push(Tone::Note, "recorder key rotated");
            l.plain(format!(
                ": key id {} → key id {} (new key.pub {}; announced and signed by the old key)",
                id(old_public),
                id(new_public),
                hex::encode(new_public)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use agentos_syscalls::AgentId;

    fn rec(agent: Option<u64>, event: RecordEvent) -> Record {
        Record {
            seq: 7,
            wall_ms: 1_796_586_754_620,
            mono_us: 1,
            agent: agent.map(AgentId),
            event,
        }
    }

    fn names() -> Names {
        let mut n = Names::default();
        n.learn(&rec(
            Some(3),
            RecordEvent::Spawn {
                name: Some("builder".into()),
                program: "/bin/agent".into(),
                args: vec![],
                policy_path: "/p/security.md".into(),
                policy_digest: [0xab; 32],
                launcher_pid: 9,
            },
        ));
        n
    }

    /// UTC, with "today" the day of `rec`'s records: the rendering depends on neither the
    /// machine's zone nor the day the test runs.
    fn utc_on_record_day() -> Clock {
        Clock::fixed(jiff::tz::TimeZone::UTC, jiff::civil::date(2026, 12, 6))
    }

    fn text(r: &Record) -> String {
        let l = line(r, &names(), &utc_on_record_day());
        let s = l.render(false);
        let (time, rest) = s.split_once(' ').unwrap();
        assert_eq!(time, "19:52:34.620");
        rest.to_string()
    }

    #[test]
    fn the_date_is_shown_only_when_it_is_not_today() {
        assert_eq!(
            utc_on_record_day().format(1_796_586_754_620),
            "19:52:34.620"
        );
        let next_day = Clock::fixed(jiff::tz::TimeZone::UTC, jiff::civil::date(2026, 12, 7));
        assert_eq!(
            next_day.format(1_796_586_754_620),
            "2026-12-06 19:52:34.620"
        );
    }

    fn write_record(decision: DecisionRecord) -> Record {
        rec(
            Some(3),
            RecordEvent::Syscall {
                id: 2,
                call: Syscall::Write {
                    path: "/mem/working/secrets/key".into(),
                    data: b"hunter2\n".to_vec(),
                    mode: WriteMode::Truncate,
                },
                decision,
                result: Ok(Reply::Written { bytes: 8 }),
                duration_us: 30,
            },
        )
    }

    #[test]
    fn a_permissive_violation_reads_whole() {
        let r = write_record(DecisionRecord {
            allowed: true,
            policy_allowed: false,
            rule: "no-secrets (/home/op/.agents/security.md:34)".into(),
            reason: "file_write on /mem/working/secrets/key is denied".into(),
            violation: true,
            mode: "permissive".into(),
        });
        assert_eq!(
            text(&r),
            "builder#3 file_write /mem/working/secrets/key data=8B \"hunter2\\n\" → DENY no-secrets (security.md:34) [violation, permissive] = 8B written"
        );
        assert!(violation(&r.event));
        assert!(!denied(&r.event));
    }

    #[test]
    fn a_default_deny_in_strict_mode_says_why() {
        let mut r = write_record(DecisionRecord {
            allowed: false,
            policy_allowed: false,
            rule: String::new(),
            reason: "no rule allows file_write on /x".into(),
            violation: true,
            mode: "strict".into(),
        });
        if let RecordEvent::Syscall { result, .. } = &mut r.event {
            *result = Err(Errno::PermissionDenied {
                rule: String::new(),
                reason: "no rule".into(),
            });
        }
        assert_eq!(
            text(&r),
            "builder#3 file_write /mem/working/secrets/key data=8B \"hunter2\\n\" → DENY default deny: no rule allows file_write on /x [violation, strict] = PermissionDenied"
        );
        assert!(denied(&r.event));
    }

    #[test]
    fn egress_connections_read_whole() {
        let opened = rec(
            Some(3),
            RecordEvent::Egress {
                conn: 2,
                method: "CONNECT".into(),
                target: "api.example.com:443".into(),
                address: "93.184.216.34:443".into(),
                decision: DecisionRecord {
                    allowed: true,
                    policy_allowed: true,
                    rule: "apis (/p/security.md:9)".into(),
                    reason: "network on api.example.com:443 is allowed".into(),
                    violation: false,
                    mode: "strict".into(),
                },
                result: Ok(()),
            },
        );
        assert_eq!(
            text(&opened),
            "builder#3 egress #2 CONNECT api.example.com:443 (93.184.216.34:443) → ALLOW apis (security.md:9) = connected"
        );
        assert!(!denied(&opened.event) && !violation(&opened.event));
        let closed = rec(
            Some(3),
            RecordEvent::EgressClosed {
                conn: 2,
                sent: 900,
                received: 6338,
                duration_ms: 140,
                why: "closed".into(),
            },
        );
        assert_eq!(
            text(&closed),
            "builder#3 egress #2 closed: 900 bytes sent, 6338 received in 140 ms (closed)"
        );
        assert_eq!(kind(&closed.event), "egress_closed");
    }

    #[test]
    fn payload_previews_are_escaped_and_cut() {
        assert_eq!(preview(b"hello\nworld"), "\"hello\\nworld\"");
        assert_eq!(
            preview(b"\x1b[2J\xe2\x80\xaeabcdefghijklmnopqrstuvwxyz"),
            "\"\\x1b[2J\\u{202e}abcdefghijklmnopqrs\"…"
        );
        assert_eq!(preview(&[0xff, b'"', 0]), "\"\\xff\\\"\\x00\"");
        assert_eq!(payload("data", b""), "data=0B");
        assert_eq!(size(4096), "4.0KiB");
    }

    #[test]
    fn sockets_are_decoded() {
        assert_eq!(
            sandbox_call("socket", &[2, 1 | SOCK_CLOEXEC, 0, 0, 0, 0]),
            "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0)"
        );
        assert_eq!(
            sandbox_call("socket", &[10, 2, 17, 0, 0, 0]),
            "socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP)"
        );
        assert_eq!(
            sandbox_call("ptrace", &[16, 42, 0, 0, 0, 0]),
            "ptrace(0x10, 0x2a)"
        );
        assert_eq!(
            sandbox_call("ioctl", &[0, 0x5412, 7, 0, 0, 0]),
            "ioctl(0, TIOCSTI, 0x7)"
        );
    }

    #[test]
    fn agent_strings_cannot_reach_the_terminal_raw_even_in_colour() {
        let r = rec(
            Some(3),
            RecordEvent::SandboxAccess {
                syscall: "openat".into(),
                target: "/etc/\x1b[2J\u{202e}shadow\n".into(),
                why: "hidden".into(),
            },
        );
        let l = line(&r, &names(), &utc_on_record_day());
        let coloured = l.render(true);
        // The only escape sequences are our own SGR codes.
        let stripped = coloured.split('\x1b').skip(1).all(|s| {
            s.starts_with('[')
                && s[1..]
                    .split_once('m')
                    .is_some_and(|(c, _)| c.bytes().all(|b| b.is_ascii_digit() || b == b';'))
        });
        assert!(stripped, "{coloured:?}");
        assert!(
            coloured.contains("/etc/\\x1b[2J\\u{202e}shadow\\n"),
            "{coloured:?}"
        );
        assert!(!l.render(false).contains('\x1b'));
    }

    #[test]
    fn rules_lose_their_directory_only() {
        assert_eq!(short_rule("r (/a/b/security.md:3)"), "r (security.md:3)");
        assert_eq!(short_rule("r (security.md:3)"), "r (security.md:3)");
        assert_eq!(short_rule(""), "default deny");
        assert_eq!(short_rule("builtin-bound"), "builtin-bound");
    }

    #[test]
    fn agent_arguments_are_ids_or_names() {
        assert_eq!(AgentArg::parse("12"), AgentArg::Id(12));
        assert_eq!(AgentArg::parse("builder"), AgentArg::Name("builder".into()));
        assert_eq!(AgentArg::parse("+1"), AgentArg::Name("+1".into()));
        assert_eq!(names().label(3), "builder#3");
        assert_eq!(names().label(4), "agent#4");
    }
}

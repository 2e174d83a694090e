//! How agentctl prints agents and kernels, for people and (`--json`) for programs.
//!
//! Every string a table or a view shows is escaped ([`crate::safe`]): cells with [`escape`]
//! before their width is measured, fields inside a line with [`Safe`], whole lines by
//! `say!`. JSON goes through [`crate::safe::json_pretty`].

use agentos_syscalls::control::{
    AgentInfo, AgentState, ApprovalInfo, ApprovalPage, ApprovalQuery, Denial, DenialKind,
    ExitStatus, KernelStatus, PayloadPreview,
};
use agentos_syscalls::LayerStatus;
use serde_json::{json, Value};

use crate::safe::{escape, Safe};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn exit_json(e: &ExitStatus) -> Value {
    match e {
        ExitStatus::Code(c) => json!({"kind": "code", "code": c}),
        ExitStatus::PosixSignal(s) => {
            json!({"kind": "posix_signal", "signal": s, "code": e.code()})
        }
        ExitStatus::Killed { signal, reason } => {
            json!({"kind": "killed", "signal": signal.name(), "reason": reason, "code": e.code()})
        }
        ExitStatus::SandboxFailed { reason } => {
            json!({"kind": "sandbox_failed", "reason": reason, "code": e.code()})
        }
    }
}

pub fn agent_json(a: &AgentInfo) -> Value {
    json!({
        "id": a.id.0,
        "name": a.name,
        "state": a.state.as_str(),
        "pid": a.pid,
        "program": a.program,
        "args": a.args,
        "started_ms": a.started_ms,
        "first_syscall_us": a.first_syscall_us,
        "syscalls": a.counters.syscalls,
        "allowed": a.counters.allowed,
        "denied": a.counters.denied,
        "signals": a.counters.signals,
        "parked": a.counters.parked,
        "violations": a.counters.violations,
        "sandbox_denied": a.counters.sandbox_denied,
        "awaiting_approval": a.counters.awaiting_approval,
        "denials": {
            "total": a.denials.total,
            "top": a.denials.top.iter().map(|d| json!({
                "kind": d.kind.as_str(),
                "action": d.action,
                "resource": d.resource,
                "rule": d.rule,
                "reason": d.reason,
                "count": d.count,
            })).collect::<Vec<_>>(),
        },
        "exit": a.exit.as_ref().map(exit_json),
        "policy": a.policy_path,
        "policy_digest": hex::encode(a.policy_digest),
        "log": a.log_path,
        "usage": a.usage.map(|u| json!({"memory_bytes": u.memory_bytes, "pids": u.pids})),
        "sandbox": a.jail.as_ref().map(|j| j.layers.iter().map(|l| json!({"layer": l.name, "status": layer_status(&l.status).0, "detail": layer_status(&l.status).1})).collect::<Vec<_>>()),
    })
}

fn layer_status(s: &LayerStatus) -> (&'static str, &str) {
    match s {
        LayerStatus::Active { detail } => ("active", detail),
        LayerStatus::Partial { detail } => ("partial", detail),
        LayerStatus::Missing { detail } => ("missing", detail),
    }
}

pub fn print_json(v: &Value) {
    say!("{}", crate::safe::json_pretty(v));
}

fn state_text(a: &AgentInfo) -> String {
    match (&a.state, &a.exit) {
        (AgentState::Exited, Some(ExitStatus::Code(c))) => format!("exited({c})"),
        (AgentState::Exited, Some(ExitStatus::PosixSignal(s))) => format!("signaled({s})"),
        (AgentState::Exited, Some(ExitStatus::Killed { signal, .. })) => {
            format!("killed({})", Safe(&signal.to_string()))
        }
        (AgentState::Exited, Some(ExitStatus::SandboxFailed { .. })) => "sandbox-failed".into(),
        (s, _) => s.as_str().into(),
    }
}

fn age(ms: u64) -> String {
    let s = now_ms().saturating_sub(ms) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// Memory for the table: `12.3MiB`.
fn mib(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// One row of a denial summary: `file_write /etc/x → no-etc (security.md:12) ×2`, a let-through
/// violation tagged with its mode; every agent string escaped.
fn denial_row(d: &Denial) -> String {
    // A socket row's resource already names its call: `socket(AF_INET, SOCK_DGRAM)`.
    let what = if d.resource.starts_with(&format!("{}(", d.action)) || d.resource.is_empty() {
        escape(if d.resource.is_empty() {
            &d.action
        } else {
            &d.resource
        })
    } else {
        format!("{} {}", escape(&d.action), escape(&d.resource))
    };
    let rule = if d.rule.is_empty() {
        "default deny (no rule allows it)".to_string()
    } else {
        escape(&d.rule)
    };
    let tag = match d.kind {
        DenialKind::Refused => String::new(),
        // The kernel's reason for these starts with the mode that let the call through.
        DenialKind::Allowed => format!(
            " [violation, let through: {} mode]",
            escape(d.reason.split(" mode").next().unwrap_or("permissive"))
        ),
        DenialKind::Sandbox => String::new(),
    };
    format!("{what} → {rule} ×{}{tag}", d.count)
}

/// The denial summary of an agent, first line and rows: what the policy refused, what it let
/// through as a violation (permissive, audit), what the sandbox refused, the most frequent
/// first. Each line is `indent` + text; the lines are escaped.
pub fn denial_lines(a: &AgentInfo, indent: &str) -> Vec<String> {
    let c = &a.counters;
    let total = a.denials.total;
    if total == 0 {
        return vec![format!(
            "{indent}denied:   none (no policy violation, nothing refused by the sandbox)"
        )];
    }
    let let_through = total.saturating_sub(c.denied + c.sandbox_denied);
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if c.denied > 0 {
        parts.push(format!(
            "{} by policy",
            plural(c.denied, "call refused", "calls refused")
        ));
    }
    if let_through > 0 {
        // The kernel's reason of a let-through row starts with its mode.
        let mode = a
            .denials
            .top
            .iter()
            .find(|d| d.kind == DenialKind::Allowed)
            .and_then(|d| d.reason.split(" mode").next())
            .map_or_else(|| "permissive or audit".to_string(), escape);
        parts.push(format!(
            "{} ({mode} mode)",
            plural(
                let_through,
                "policy violation let through",
                "policy violations let through"
            )
        ));
    }
    if c.sandbox_denied > 0 {
        parts.push(format!(
            "{} by the sandbox",
            plural(c.sandbox_denied, "operation refused", "operations refused")
        ));
    }
    let mut out = vec![format!("{indent}denied:   {total} — {}", parts.join(", "))];
    for d in &a.denials.top {
        out.push(format!("{indent}  {}", denial_row(d)));
    }
    let shown: u64 = a.denials.top.iter().map(|d| d.count).sum();
    if total > shown {
        out.push(format!(
            "{indent}  … and {} more (the flight recorder has every one: agentctl recorder show)",
            total - shown
        ));
    }
    out
}

pub fn print_table(agents: &[AgentInfo]) {
    if agents.is_empty() {
        say!("no agents (start one with `agentctl spawn --policy FILE -- PROGRAM`)");
        return;
    }
    let rows: Vec<[String; 10]> = agents
        .iter()
        .map(|a| {
            let cmd = std::iter::once(a.program.as_str())
                .chain(a.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            [
                a.id.to_string(),
                a.name.as_deref().map_or("-".into(), escape),
                state_text(a),
                a.pid.map_or("-".into(), |p| p.to_string()),
                a.counters.syscalls.to_string(),
                a.counters.denied.to_string(),
                a.usage.map_or("-".into(), |u| mib(u.memory_bytes)),
                a.usage.map_or("-".into(), |u| u.pids.to_string()),
                age(a.started_ms),
                escape(&cmd),
            ]
        })
        .collect();
    let header = [
        "ID", "NAME", "STATE", "PID", "SYSCALLS", "DENIED", "MEM", "PIDS", "AGE", "COMMAND",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()).take(9) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i < 9 {
                s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            } else {
                s.push_str(c);
            }
        }
        say!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

pub fn print_agent(a: &AgentInfo) {
    say!(
        "agent {}{}",
        a.id,
        a.name
            .as_ref()
            .map(|n| format!(" ({})", Safe(n)))
            .unwrap_or_default()
    );
    say!("  state:    {}", state_text(a));
    if let Some(e) = &a.exit {
        say!("  ended:    {}", Safe(&e.to_string()));
    }
    say!(
        "  pid:      {}",
        a.pid.map_or("-".into(), |p| p.to_string())
    );
    say!(
        "  command:  {} {}",
        Safe(&a.program),
        Safe(&a.args.join(" "))
    );
    say!(
        "  policy:   {} (blake3 {})",
        Safe(&a.policy_path),
        &hex::encode(a.policy_digest)[..16]
    );
    say!(
        "  syscalls: {} ({} allowed, {} denied, {} parked) · signals: {}",
        a.counters.syscalls,
        a.counters.allowed,
        a.counters.denied,
        a.counters.parked,
        a.counters.signals
    );
    if a.counters.awaiting_approval > 0 {
        let n = a.counters.awaiting_approval;
        say!(
            "  approval: {n} {} for an operator: agentctl approvals --agent {}",
            if n == 1 { "call waits" } else { "calls wait" },
            a.name.as_deref().map_or(a.id.to_string(), escape)
        );
    }
    for line in denial_lines(a, "  ") {
        say!("{line}");
    }
    if let Some(u) = a.usage {
        say!(
            "  usage:    {} memory · {} pids",
            mib(u.memory_bytes),
            u.pids
        );
    }
    say!("  log:      {}", Safe(&a.log_path.display().to_string()));
    match &a.jail {
        Some(j) => {
            say!("  sandbox:");
            for l in &j.layers {
                let (st, detail) = layer_status(&l.status);
                say!("    {:<14} {st:<8} {}", Safe(&l.name), Safe(detail));
            }
        }
        None => say!("  sandbox:  (no report from the launcher yet)"),
    }
}

pub fn status_json(s: &KernelStatus) -> Value {
    json!({
        "pid": s.pid,
        "uid": s.uid,
        "version": s.version,
        "abi": s.abi,
        "state_dir": s.state_dir,
        "recorder_dir": s.recorder_dir,
        "started_ms": s.started_ms,
        "agents_running": s.agents_running,
        "agents_total": s.agents_total,
        "log": s.log_path,
        "healthy": s.health.is_empty(),
        "health": s.health,
        "metrics": s.metrics_url,
        "traces": s.otlp_endpoint,
        "sandbox": s.sandbox.iter().map(|l| json!({"layer": l.name, "status": layer_status(&l.status).0, "detail": layer_status(&l.status).1})).collect::<Vec<_>>(),
    })
}

pub fn print_status(s: &KernelStatus) {
    say!(
        "kernel pid {} (uid {}), agentos {} ABI {}",
        s.pid,
        s.uid,
        s.version,
        s.abi
    );
    say!("  state dir: {}", s.state_dir.display());
    say!("  recorder:  {}", s.recorder_dir.display());
    match &s.log_path {
        Some(p) => say!("  log:       {}", p.display()),
        None => say!("  log:       its stderr (not a file)"),
    }
    say!("  up:        {}", age(s.started_ms));
    match &s.metrics_url {
        Some(url) => say!("  metrics:   {}", Safe(url)),
        None => say!("  metrics:   off (--metrics-addr)"),
    }
    match &s.otlp_endpoint {
        Some(url) => say!("  traces:    OTLP to {}", Safe(url)),
        None => say!("  traces:    off (--otlp-endpoint)"),
    }
    match s.health.as_slice() {
        [] => say!("  health:    ok"),
        problems => {
            say!("  health:    UNHEALTHY");
            for p in problems {
                say!("    {}", Safe(p));
            }
        }
    }
    say!(
        "  agents:    {} running, {} in all",
        s.agents_running,
        s.agents_total
    );
    if s.sandbox.is_empty() {
        say!("  sandbox:   not probed");
    } else {
        say!("  sandbox (what this host offers, probed at kernel start):");
        for l in &s.sandbox {
            let (st, detail) = layer_status(&l.status);
            say!("    {:<14} {st:<8} {}", Safe(&l.name), Safe(detail));
        }
    }
}

pub fn approval_json(a: &ApprovalInfo) -> Value {
    json!({
        "id": a.id,
        "agent": a.agent.0,
        "agent_name": a.agent_name,
        "action": a.action,
        "resource": a.resource,
        "age_ms": a.age_ms,
        "rule": a.rule,
        "payload": a.payload.as_ref().map(|p| json!({
            "bytes": p.bytes,
            "preview": crate::safe::escape_bytes(&p.head),
            "preview_complete": p.head.len() as u64 == p.bytes,
            "blake3": hex::encode(p.blake3),
        })),
    })
}

/// The agent of an approval row: `name (id)`, or the id.
fn approval_agent(a: &ApprovalInfo) -> String {
    match &a.agent_name {
        Some(n) => format!("{} ({})", escape(n), a.agent),
        None => a.agent.to_string(),
    }
}

/// A payload as the operator reads it: `"hello\x1b…" (12 bytes, blake3 3f2a…)`, escaped.
pub fn payload_text(p: &PayloadPreview) -> String {
    let more = if (p.head.len() as u64) < p.bytes {
        "…"
    } else {
        ""
    };
    format!(
        "\"{}\"{more} ({} bytes, blake3 {})",
        crate::safe::escape_bytes(&p.head),
        p.bytes,
        &hex::encode(p.blake3)[..16]
    )
}

fn short_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// Cuts `s` to `max` characters, marking the cut with `…`.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `agentctl approvals`: the rows (every agent string escaped, then clipped for the table),
/// then, when the page does not hold every matching call, each agent's count and how to list
/// the rest.
pub fn print_approvals(page: &ApprovalPage, q: &ApprovalQuery) {
    if page.approvals.is_empty() {
        if q.after.is_some() || q.agent.is_some() {
            say!("no calls matching --after/--agent are waiting for approval");
        } else {
            say!("no calls are waiting for approval");
        }
        print_more(page, q, false);
        return;
    }
    say!("{}", approvals_header());
    for a in &page.approvals {
        for line in approval_lines(a) {
            say!("{line}");
        }
    }
    print_more(page, q, false);
}

/// The header of the approvals table.
pub fn approvals_header() -> String {
    format!(
        "{:<6} {:<20} {:<16} {:<40} {:>8} {:<7} RULE",
        "ID", "AGENT", "ACTION", "RESOURCE", "BYTES", "AGE"
    )
}

/// One parked call: its row, and under it what it would write or send (escaped preview, size,
/// digest); every agent string escaped.
pub fn approval_lines(a: &ApprovalInfo) -> Vec<String> {
    let mut out = vec![format!(
        "{:<6} {:<20} {:<16} {:<40} {:>8} {:<7} {}",
        a.id,
        clip(&approval_agent(a), 20),
        clip(&escape(&a.action), 16),
        clip(&escape(&a.resource), 40),
        a.payload
            .as_ref()
            .map_or("-".into(), |p| p.bytes.to_string()),
        short_age(a.age_ms),
        escape(&a.rule)
    )];
    let resource = escape(&a.resource);
    if resource.chars().count() > 40 {
        out.push(format!("{:<6} resource: {resource}", ""));
    }
    if let Some(p) = &a.payload {
        out.push(format!("{:<6} payload:  {}", "", payload_text(p)));
    }
    out
}

/// Under a page that does not hold every matching call: how many are not shown, per agent,
/// and the command that lists the rest (on stderr for `--json`).
pub fn print_more(page: &ApprovalPage, q: &ApprovalQuery, to_stderr: bool) {
    if page.more == 0 {
        return;
    }
    let say = |s: String| crate::safe::line(format_args!("{s}"), to_stderr);
    say(format!(
        "{} more waiting call(s) not shown (this page: {} row(s), shared between agents):",
        page.more,
        page.approvals.len()
    ));
    for c in page.agents.iter().filter(|c| c.shown < c.matching) {
        let next = c
            .last_shown
            .map(|id| format!(" --after {id}"))
            .unwrap_or_default();
        say(format!(
            "  agent {}: {} shown of {}; the rest: agentctl approvals --agent {}{next} --limit {}",
            c.agent,
            c.shown,
            c.matching,
            c.agent,
            q.limit.max(1)
        ));
    }
}

//! `agentctl recorder verify|show|tail|export` and `agentctl replay what-if`: read `STATE_DIR/recorder` directly (no kernel
//! needed), through `agentos-recorder`'s verifier (what-if re-decides with the kernel's
//! `replay::what_if`).
//!
//! What an agent put in a record reaches the operator escaped ([`crate::safe`]): human lines
//! show the event as safe JSON (`\u001b`, `\u202e`) cut to 160 characters; `--json` and
//! `export` are safe JSON lines. Bounds: `show` prints every record that passes its filters
//! and `tail` the last `--lines`; `--agent ID` filters by the kernel's agent id (never chosen
//! by the agent), so one agent's flood cannot hide another's records from that view.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use agentos_recorder::verify::{read_head, ProblemKind, Verification};
use agentos_recorder::{scan, Record, ScanOptions};
use serde_json::{json, Value};

use crate::cli::{RecorderCommand, ReplayCommand};
use crate::safe::Safe;
use crate::since::Since;
use crate::CliError;

pub fn run(state_dir: &Path, cmd: RecorderCommand) -> Result<u8, CliError> {
    let dir = state_dir.join("recorder");
    if !dir.is_dir() {
        return Err(CliError::new(
            4,
            format!("no flight recorder at {}", dir.display()),
            "pass the kernel's --state-dir (or set AGENTOS_STATE_DIR)",
        ));
    }
    match cmd {
        RecorderCommand::Verify { json } => verify(&dir, json),
        RecorderCommand::Show { agent, since, json } => {
            let since = parse_since(since.as_deref())?;
            let (records, v) = load(&dir)?;
            for r in records
                .iter()
                .filter(|r| keep(r, agent) && since.is_none_or(|s| s.keeps(r)))
            {
                print_record(r, json);
            }
            warn_problem(&v);
            Ok(0)
        }
        RecorderCommand::Tail {
            follow,
            lines,
            agent,
            since,
            json,
        } => {
            let since = parse_since(since.as_deref())?;
            tail(&dir, follow, lines, agent, since, json)
        }
        RecorderCommand::Export { format } => {
            if format != "jsonl" {
                return Err(CliError::usage(
                    format!("unknown export format `{format}`"),
                    "use `--format jsonl`",
                ));
            }
            let (records, v) = load(&dir)?;
            let mut out = std::io::stdout().lock();
            for r in &records {
                let _ = writeln!(out, "{}", crate::safe::json_line(&record_json(r)));
            }
            warn_problem(&v);
            Ok(0)
        }
    }
}

fn parse_since(since: Option<&str>) -> Result<Option<Since>, CliError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    since
        .map(|s| crate::since::parse(s, now))
        .transpose()
        .map_err(|e| CliError::usage(format!("--since: {e}"), "e.g. --since 10m"))
}

fn keep(r: &Record, agent: Option<u64>) -> bool {
    agent.is_none_or(|a| r.agent.is_some_and(|x| x.0 == a))
}

/// Every good record (up to the first problem) and the verification.
fn load(dir: &Path) -> Result<(Vec<Record>, Verification), CliError> {
    let mut records = Vec::new();
    let v = scan(dir, ScanOptions { signatures: false }, |r, _| {
        records.push(r)
    })
    .map_err(|e| {
        CliError::failed(
            format!("cannot read the flight recorder: {e}"),
            "check the state dir's permissions (the recorder is readable by the kernel's owner)",
        )
    })?;
    Ok((records, v))
}

fn warn_problem(v: &Verification) {
    if let Some(p) = &v.problem {
        say_err!(
            "agentctl: warning: the log stops verifying at segment {}, record {} (byte {}): {}; records after it are not shown; run `agentctl recorder verify`",
            p.segment, p.seq, p.offset, p.what
        );
    }
}

/// A record as JSON: its fields, the event tagged by kind.
pub fn record_json(r: &Record) -> Value {
    json!({
        "seq": r.seq,
        "wall_ms": r.wall_ms,
        "mono_us": r.mono_us,
        "agent": r.agent.map(|a| a.0),
        "event": serde_json::to_value(&r.event).unwrap_or(Value::Null),
    })
}

fn print_record(r: &Record, json: bool) {
    if json {
        say!("{}", crate::safe::json_line(&record_json(r)));
        return;
    }
    let agent = r
        .agent
        .map_or("kernel".to_string(), |a| format!("agent {}", a.0));
    // Safe JSON: the agent's strings in it are escaped (`\u001b`, `\u202e`).
    let event = crate::safe::json_line(&r.event);
    let mut event: String = event.chars().take(160).collect();
    if event.len() >= 160 {
        event.push('…');
    }
    say!("{:>8}  {}  {agent:<9}  {event}", r.seq, r.wall_ms);
}

fn tail(
    dir: &Path,
    follow: bool,
    lines: usize,
    agent: Option<u64>,
    since: Option<Since>,
    json: bool,
) -> Result<u8, CliError> {
    let keep = |r: &Record| keep(r, agent) && since.is_none_or(|s| s.keeps(r));
    let (records, v) = load(dir)?;
    let shown: Vec<&Record> = records.iter().filter(|r| keep(r)).collect();
    for r in &shown[shown.len().saturating_sub(lines)..] {
        print_record(r, json);
    }
    let mut next = v.records;
    if !follow {
        warn_problem(&v);
        return Ok(0);
    }
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let (records, v) = load(dir)?;
        for r in records.iter().filter(|r| r.seq >= next && keep(r)) {
            print_record(r, json);
        }
        if v.problem.is_some() {
            warn_problem(&v);
            return Ok(1);
        }
        next = next.max(v.records);
        let _ = std::io::stdout().flush();
    }
}

fn verify(dir: &Path, json: bool) -> Result<u8, CliError> {
    let v = scan(dir, ScanOptions { signatures: true }, |_, _| {}).map_err(|e| {
        CliError::failed(
            format!("cannot read the flight recorder: {e}"),
            "check the state dir's permissions",
        )
    })?;
    let code = v.exit_code();
    let status = match code {
        0 => "ok",
        1 => "tampered",
        2 => "truncated",
        _ => "unsealed_tail",
    };
    if json {
        let mut val = serde_json::to_value(&v).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut val {
            m.insert("status".into(), json!(status));
            m.insert("exit_code".into(), json!(code));
        }
        crate::output::print_json(&val);
        return Ok(code);
    }
    say!(
        "recorder {} (log id {}, key id {})",
        dir.display(),
        v.log_id.as_deref().unwrap_or("-"),
        v.key_id.as_deref().unwrap_or("-")
    );
    for s in &v.segments {
        let range = match (s.first_seq, s.last_seq) {
            (Some(a), Some(b)) => format!("records {a}..={b}"),
            _ => "no records".into(),
        };
        let sigs = s
            .checkpoints
            .iter()
            .filter(|c| c.signature_ok == Some(true))
            .count();
        say!(
            "  segment {:>6}: {range}, {} bytes, {} checkpoint(s) ({sigs} signature(s) ok), chain {}{}",
            s.segment,
            s.bytes,
            s.checkpoints.len(),
            if s.chain_ok { "ok" } else { "BROKEN" },
            s.starts_after_break
                .map(|(seg, off)| format!(", started after the break in segment {seg} at byte {off}"))
                .unwrap_or_default()
        );
    }
    if let Ok(Some(h)) = read_head(dir) {
        say!(
            "  HEAD: seals records below {} (segment {})",
            h.next_seq,
            h.segment
        );
    }
    for n in &v.notes {
        say!("  note: {n}");
    }
    if let Some(t) = &v.torn_tail {
        say!(
            "  note: torn tail of {} bytes at segment {} byte {} ({}): a kernel crashed or is writing; the next kernel start recovers it",
            t.bytes, t.segment, t.offset, t.what
        );
    }
    match &v.problem {
        Some(p) => {
            let label = match p.kind {
                ProblemKind::Tampered => "TAMPERED",
                ProblemKind::Truncated => "TRUNCATED",
            };
            say!(
                "{label}: segment {}, record {} at byte {}: {}",
                p.segment, p.seq, p.offset, p.what
            );
        }
        None if v.unsealed > 0 => say!(
            "ok up to record {}; note: {} record(s) after the last checkpoint are not sealed yet (normal while a kernel runs)",
            v.records.saturating_sub(1),
            v.unsealed
        ),
        None => say!("ok: {} records, all sealed", v.records),
    }
    Ok(code)
}

/// Every record of a log that verifies (chain, segments, signatures, HEAD); a log that does
/// not is refused (an unsealed tail is fine: a running kernel has one).
pub fn verified_records(dir: &Path) -> Result<Vec<Record>, CliError> {
    let mut records = Vec::new();
    let v = scan(dir, ScanOptions { signatures: true }, |r, _| {
        records.push(r)
    })
    .map_err(|e| {
        CliError::failed(
            format!("cannot read the flight recorder: {e}"),
            "pass the kernel's --state-dir",
        )
    })?;
    if let Some(p) = &v.problem {
        return Err(CliError::failed(
            format!(
                "the log does not verify (segment {}, record {} at byte {}: {}); replay refused",
                p.segment, p.seq, p.offset, p.what
            ),
            "see `agentctl recorder verify`",
        ));
    }
    Ok(records)
}

/// `agentctl replay what-if|run`: both refuse a log that does not verify.
pub fn replay(state_dir: &Path, cmd: ReplayCommand) -> Result<u8, CliError> {
    let (policy, agent, samples, json) = match cmd {
        ReplayCommand::WhatIf {
            policy,
            agent,
            samples,
            json,
        } => (policy, agent, samples, json),
        ReplayCommand::Run(args) => return crate::replay::run(state_dir, args),
    };
    let dir = state_dir.join("recorder");
    let policy = agentos_policy::Policy::load(&policy).map_err(|e| {
        CliError::usage(
            format!("the what-if policy does not load:\n{e}"),
            "fix the policy file (`agentctl policy lint` style errors above)",
        )
    })?;
    let records = verified_records(&dir)?;
    let w = agentos_kernel::replay::what_if(&records, &policy, agent);
    if json {
        crate::output::print_json(&serde_json::to_value(&w).unwrap_or(Value::Null));
        return Ok(0);
    }
    say!(
        "{} syscalls, {} judged by a policy rule, {} decisions would change",
        w.syscalls,
        w.judged,
        w.changes.len()
    );
    for (kind, n) in &w.counts {
        say!("  {}: {n}", Safe(kind));
        let (from, to) = kind.split_once(" → ").unwrap_or((kind, ""));
        for c in w
            .changes
            .iter()
            .filter(|c| c.recorded == from && c.now == to)
            .take(samples)
        {
            say!(
                "    record {} agent {}: {} {} {} — was {} ({}), now {} ({}): {}",
                c.seq,
                c.agent.map_or("-".into(), |a| a.to_string()),
                Safe(&c.syscall),
                Safe(&c.action),
                Safe(&c.resource),
                Safe(&c.recorded),
                Safe(if c.recorded_rule.is_empty() {
                    "default deny"
                } else {
                    &c.recorded_rule
                }),
                Safe(&c.now),
                Safe(if c.now_rule.is_empty() {
                    "default deny"
                } else {
                    &c.now_rule
                }),
                Safe(&c.now_reason)
            );
        }
    }
    Ok(0)
}

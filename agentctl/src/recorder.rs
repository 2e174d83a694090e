//! `agentctl recorder verify|show|tail|export` and `agentctl replay what-if`: read `STATE_DIR/recorder` directly (no kernel
//! needed), through `agentos-recorder`'s verifier (what-if re-decides with the kernel's
//! `replay::what_if`).
//!
//! What an agent put in a record reaches the operator escaped: human lines are built by
//! [`crate::view`] (every span escaped, colour added only around escaped text); `--json` and
//! `export` are safe JSON lines ([`crate::safe::json_line`]) in the versioned export schema
//! ([`EXPORT_SCHEMA`], docs/recorder.md). Bounds: `show` prints every record that passes its
//! filters and `tail` the last `--lines` of those; `--agent` filters by the kernel's agent id
//! (a name is resolved to an id from the log's `Spawn` records, names being the operator's,
//! never the agent's), so one agent's flood cannot hide another's records from that view.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use agentos_recorder::verify::{read_head, ProblemKind, Verification};
use agentos_recorder::{scan, Record, RecordEvent, ScanOptions};
use serde_json::{json, Value};

use crate::cli::{RecordFilter, RecorderCommand, ReplayCommand};
use crate::safe::Safe;
use crate::since::Since;
use crate::view::{self, AgentArg, Clock, Names};
use crate::CliError;

/// The version of the JSON export schema (`recorder export`, `show --json`, `tail --json`):
/// raised when a field changes meaning or goes away; new fields and new event variants do
/// not raise it (docs/recorder.md).
pub const EXPORT_SCHEMA: u64 = 1;

/// `recorder verify`'s exit code for an unsealed tail with no kernel running. Not 3 (denied
/// by policy, DESIGN §9) nor 4 (not found).
pub const EXIT_UNSEALED: u8 = 5;

/// The flight recorder's dir under `state_dir`, or a not-found error saying which state dir
/// to pass.
pub fn recorder_dir(state_dir: &Path) -> Result<std::path::PathBuf, CliError> {
    let dir = state_dir.join("recorder");
    if !dir.is_dir() {
        return Err(CliError::new(
            4,
            format!("no flight recorder at {}", dir.display()),
            "pass the recorded kernel's --state-dir (or set AGENTOS_STATE_DIR)",
        ));
    }
    Ok(dir)
}

pub fn run(state_dir: &Path, cmd: RecorderCommand) -> Result<u8, CliError> {
    // The witness commands need no recorder.
    let cmd = match cmd {
        RecorderCommand::WitnessKey { name, out } => return crate::witness::keygen(&name, &out),
        RecorderCommand::Cosign {
            witness,
            proof,
            out,
            checkpoint,
        } => {
            return crate::witness::cosign(&witness, &checkpoint, proof.as_deref(), out.as_deref())
        }
        RecorderCommand::Witness(crate::cli::WitnessCommand::Serve { listen, witness }) => {
            return crate::witness::serve(&witness, &listen)
        }
        other => other,
    };
    let dir = recorder_dir(state_dir)?;
    match cmd {
        RecorderCommand::Verify {
            json,
            checkpoint: None,
            ..
        } => verify(state_dir, &dir, json),
        RecorderCommand::Verify {
            json,
            checkpoint: Some(file),
            witness,
            min_witnesses,
        } => {
            let mut cosigned = Vec::new();
            if !witness.is_empty() {
                let note = std::fs::read(&file).map_err(|e| {
                    CliError::new(
                        4,
                        format!("cannot read checkpoint {}: {e}", file.display()),
                        "",
                    )
                })?;
                let good = crate::witness::check_cosignatures(
                    &note,
                    &witness,
                    min_witnesses.unwrap_or(1),
                )?;
                if !json {
                    let names: Vec<&str> = good.iter().map(|(n, _)| n.as_str()).collect();
                    say!(
                        "witnesses: {} valid cosignature(s) on {} ({})",
                        good.len(),
                        file.display(),
                        names.join(", ")
                    );
                }
                cosigned = good;
            }
            crate::tlog::verify(&dir, &file, &cosigned, json)
        }
        RecorderCommand::WitnessKey { .. }
        | RecorderCommand::Cosign { .. }
        | RecorderCommand::Witness(_) => unreachable!("handled above"),
        RecorderCommand::Checkpoint {
            out,
            verifier_key,
            json,
        } => crate::tlog::checkpoint(&dir, out.as_deref(), verifier_key, json),
        RecorderCommand::Prove {
            seq,
            checkpoint,
            json,
        } => crate::tlog::prove(&dir, seq, checkpoint.as_deref(), json),
        RecorderCommand::Consistency { old, new, json } => {
            crate::tlog::consistency(&dir, &old, &new, json)
        }
        RecorderCommand::Show { filter, json } => {
            let (records, v) = load(&dir)?;
            let mut f = Filter::new(&filter, &records, &dir, false)?;
            let out = Out::new(json, Names::of(&records));
            for r in &records {
                f.learn(r);
                if f.keeps(r) {
                    out.print(r);
                }
            }
            warn_problem(&v);
            Ok(0)
        }
        RecorderCommand::Tail {
            follow,
            lines,
            filter,
            json,
        } => tail(&dir, follow, lines, &filter, json),
        RecorderCommand::Prune { before, json } => prune(state_dir, &dir, &before, json),
        RecorderCommand::RotateKey { json } => rotate_key(state_dir, &dir, json),
        RecorderCommand::Export { format } => {
            if format != "jsonl" {
                return Err(CliError::usage(
                    format!("unknown export format `{format}`"),
                    "use `--format jsonl`",
                ));
            }
            let (records, v) = load(&dir)?;
            let out = Out::new(true, Names::of(&records));
            for r in &records {
                out.print(r);
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

/// The id `--agent` names in `records`: an id as given; a name resolved to the newest agent
/// spawned with it (a note on stderr when there were several). A name the log does not hold
/// is an error (exit 4) naming the names it does hold.
pub fn resolve_agent(records: &[Record], arg: &str, dir: &Path) -> Result<u64, CliError> {
    match AgentArg::parse(arg) {
        AgentArg::Id(id) => Ok(id),
        AgentArg::Name(name) => {
            let ids = view::ids_named(records, &name);
            match ids.as_slice() {
                [] => Err(no_such_name(records, &name, dir)),
                [id] => Ok(*id),
                [.., newest] => {
                    let all: Vec<String> = ids.iter().map(u64::to_string).collect();
                    say_err!(
                        "agentctl: note: {} agents were named `{}` (ids {}); using the newest, {newest}; pass `--agent ID` for another",
                        ids.len(),
                        Safe(&name),
                        all.join(", ")
                    );
                    Ok(*newest)
                }
            }
        }
    }
}

fn no_such_name(records: &[Record], name: &str, dir: &Path) -> CliError {
    let known = view::known_names(records);
    let hint = if known.is_empty() {
        "no agent in this log was spawned with --name; pass an id (see `agentctl recorder show --kind spawn`)".to_string()
    } else {
        format!(
            "names in this log: {}; or pass an id (see `agentctl recorder show --kind spawn`)",
            known
                .iter()
                .map(|n| crate::safe::escape(n))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    CliError::new(
        4,
        format!(
            "no agent named `{}` in the flight recorder at {}",
            Safe(name),
            dir.display()
        ),
        hint,
    )
}

/// The filters of `show` and `tail`, resolved against the log.
struct Filter {
    /// `--agent`: the ids kept (a name: its newest agent; when following, later ones too).
    agents: Option<BTreeSet<u64>>,
    /// `--agent NAME` while following: agents spawned later with this name are kept too.
    follow_name: Option<String>,
    since: Option<Since>,
    denied: bool,
    violations: bool,
    kinds: Vec<&'static str>,
}

impl Filter {
    fn new(
        f: &RecordFilter,
        records: &[Record],
        dir: &Path,
        following: bool,
    ) -> Result<Filter, CliError> {
        let mut kinds = Vec::new();
        for k in &f.kind {
            let k = k.trim();
            match view::KINDS.iter().find(|x| **x == k) {
                Some(x) => kinds.push(*x),
                None => {
                    return Err(CliError::usage(
                        format!("--kind: unknown record kind `{}`", Safe(k)),
                        format!("the kinds are: {}", view::KINDS.join(", ")),
                    ))
                }
            }
        }
        let (agents, follow_name) = match &f.agent {
            None => (None, None),
            Some(a) => match AgentArg::parse(a) {
                AgentArg::Id(id) => (Some(BTreeSet::from([id])), None),
                AgentArg::Name(name) if following && view::ids_named(records, &name).is_empty() => {
                    say_err!(
                        "agentctl: note: no agent named `{}` in the log yet; waiting for one",
                        Safe(&name)
                    );
                    (Some(BTreeSet::new()), Some(name))
                }
                AgentArg::Name(name) => {
                    let id = resolve_agent(records, &name, dir)?;
                    (Some(BTreeSet::from([id])), following.then_some(name))
                }
            },
        };
        Ok(Filter {
            agents,
            follow_name,
            since: parse_since(f.since.as_deref())?,
            denied: f.denied,
            violations: f.violations,
            kinds,
        })
    }

    /// While following `--agent NAME`: a newer agent of that name is followed too.
    fn learn(&mut self, r: &Record) {
        if let (Some(name), Some(agents), Some(a), RecordEvent::Spawn { name: Some(n), .. }) =
            (&self.follow_name, &mut self.agents, r.agent, &r.event)
        {
            if n == name {
                agents.insert(a.0);
            }
        }
    }

    fn keeps(&self, r: &Record) -> bool {
        let agent_ok = self
            .agents
            .as_ref()
            .is_none_or(|ids| r.agent.is_some_and(|a| ids.contains(&a.0)));
        let class_ok = (!self.denied && !self.violations)
            || (self.denied && view::denied(&r.event))
            || (self.violations && view::violation(&r.event));
        let kind_ok = self.kinds.is_empty() || self.kinds.contains(&view::kind(&r.event));
        agent_ok && class_ok && kind_ok && self.since.is_none_or(|s| s.keeps(r))
    }
}

/// Where records are printed: JSON lines or human lines.
struct Out {
    json: bool,
    /// Agent names, learned from `Spawn` records (more arrive while following).
    names: Names,
    clock: Clock,
    color: bool,
}

impl Out {
    fn new(json: bool, names: Names) -> Out {
        Out {
            json,
            names,
            clock: Clock::local(),
            color: !json && view::color_enabled(),
        }
    }

    fn print(&self, r: &Record) {
        let text = if self.json {
            crate::safe::json_line(&record_json(r, &self.names))
        } else {
            // Every span escaped by `render`; the colour codes are its own.
            view::line(r, &self.names, &self.clock).render(self.color)
        };
        let _ = crate::stdout::write_all(format!("{text}\n").as_bytes());
    }
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

/// A record in the export schema ([`EXPORT_SCHEMA`], docs/recorder.md).
pub fn record_json(r: &Record, names: &Names) -> Value {
    let agent = r.agent.map(|a| a.0);
    json!({
        "schema": EXPORT_SCHEMA,
        "seq": r.seq,
        "wall_ms": r.wall_ms,
        "time": view::utc(r.wall_ms),
        "mono_us": r.mono_us,
        "agent": agent,
        "agent_name": agent.and_then(|a| names.name(a)),
        "kind": view::kind(&r.event),
        "denied": view::denied(&r.event),
        "violation": view::violation(&r.event),
        "event": serde_json::to_value(&r.event).unwrap_or(Value::Null),
    })
}

fn tail(
    dir: &Path,
    follow: bool,
    lines: usize,
    filter: &RecordFilter,
    json: bool,
) -> Result<u8, CliError> {
    let (records, v) = load(dir)?;
    let mut f = Filter::new(filter, &records, dir, follow)?;
    let mut out = Out::new(json, Names::of(&records));
    let mut shown: Vec<&Record> = Vec::new();
    for r in &records {
        f.learn(r);
        if f.keeps(r) {
            shown.push(r);
        }
    }
    for r in &shown[shown.len().saturating_sub(lines)..] {
        out.print(r);
    }
    let mut next = v.records;
    if !follow {
        warn_problem(&v);
        return Ok(0);
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        // A quiet log writes nothing: notice a reader that left (`tail -f | head -1`).
        crate::stdout::exit_if_reader_gone();
        let (records, v) = load(dir)?;
        for r in records.iter().filter(|r| r.seq >= next) {
            out.names.learn(r);
            f.learn(r);
            if f.keeps(r) {
                out.print(r);
            }
        }
        if v.problem.is_some() {
            warn_problem(&v);
            return Ok(1);
        }
        next = next.max(v.records);
    }
}

/// Whether a kernel holds `state_dir` (its `kernel.lock`), seen without taking the lock (a
/// lock taken here, however briefly, could make a starting kernel think another one runs):
/// `/proc/locks` lists the flock on the lock file's inode; without `/proc`, the control
/// socket answering a connect says the same.
fn kernel_running(state_dir: &Path) -> bool {
    let lock = state_dir.join("kernel.lock");
    let Ok(st) = rustix::fs::stat(&lock) else {
        return false;
    };
    let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    match std::fs::read_to_string("/proc/locks") {
        Ok(locks) => locks.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // `1: FLOCK  ADVISORY  WRITE 2877 00:2f:123456 0 EOF` (`1: -> FLOCK …` waits).
            f.get(1) == Some(&"FLOCK")
                && f.get(5).is_some_and(|id| {
                    let mut p = id.split(':');
                    let (Some(ma), Some(mi), Some(ino)) = (p.next(), p.next(), p.next()) else {
                        return false;
                    };
                    u32::from_str_radix(ma, 16) == Ok(major)
                        && u32::from_str_radix(mi, 16) == Ok(minor)
                        && ino.parse::<u64>() == Ok(st.st_ino)
                })
        }),
        Err(_) => std::os::unix::net::UnixStream::connect(agentos_syscalls::control::socket_path(
            state_dir,
        ))
        .is_ok(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn refuse_running(state_dir: &Path, what: &str) -> Result<(), CliError> {
    if kernel_running(state_dir) {
        return Err(CliError::new(
            1,
            format!(
                "a kernel runs on {} and writes the flight recorder: not {what} under it",
                state_dir.display()
            ),
            "stop it first (`agentctl kernel stop`), then run this again and start it",
        ));
    }
    Ok(())
}

/// `recorder prune --before SEQ|TIME` (no kernel running).
fn prune(state_dir: &Path, dir: &Path, before: &str, json: bool) -> Result<u8, CliError> {
    refuse_running(state_dir, "pruning")?;
    let now = now_ms();
    let since = crate::since::parse(before, now).map_err(|e| {
        CliError::usage(
            format!("--before: {e}"),
            "e.g. --before 4096 or --before 30d",
        )
    })?;
    let before_seq = match since {
        crate::since::Since::Seq(s) => s,
        crate::since::Since::WallMs(t) => {
            let mut first = None;
            let v = scan(dir, ScanOptions { signatures: false }, |r, _| {
                if first.is_none() && r.wall_ms >= t {
                    first = Some(r.seq);
                }
            })
            .map_err(|e| {
                CliError::failed(
                    format!("cannot read the flight recorder: {e}"),
                    "check the state dir's permissions",
                )
            })?;
            first.unwrap_or(v.records)
        }
    };
    let r = agentos_recorder::prune::prune(dir, before_seq, now).map_err(|e| {
        CliError::failed(
            format!("not pruned: {e}"),
            "`agentctl recorder verify` shows the segments, the latest checkpoint and what is already pruned",
        )
    })?;
    if json {
        crate::output::print_json(&serde_json::to_value(&r).unwrap_or(Value::Null));
        return Ok(0);
    }
    say!(
        "pruned records {}..{} ({} record(s)): segment(s) {:?}, {} entry bundle(s), {} blob(s), {} bytes freed; records 0..{} pruned, tree hashes kept (recorder/pruned.hashes); the log now starts at segment {}",
        r.next_seq - r.records,
        r.next_seq,
        r.records,
        r.segments,
        r.bundles,
        r.blobs,
        r.bytes,
        r.next_seq,
        r.first_segment
    );
    Ok(0)
}

/// `recorder rotate-key` (no kernel running): opens the recorder as the kernel would, rotates
/// its key and seals it.
fn rotate_key(state_dir: &Path, dir: &Path, json: bool) -> Result<u8, CliError> {
    refuse_running(state_dir, "rotating the key")?;
    let failed = |e: agentos_recorder::RecorderError| {
        CliError::failed(
            format!("key not rotated: {e}"),
            "`agentctl recorder verify` shows the state of the log",
        )
    };
    let old = agentos_recorder::key::load_public(dir).map_err(failed)?;
    let opts = agentos_recorder::RecorderOptions {
        min_free_bytes: 0,
        ..Default::default()
    };
    let (rec, report) = agentos_recorder::Recorder::open_with(dir, opts).map_err(failed)?;
    if let Some(p) = report.broken {
        let _ = rec.close();
        return Err(CliError::failed(
            format!(
                "key not rotated: the log fails verification (segment {}, record {}: {})",
                p.segment, p.seq, p.what
            ),
            "`agentctl recorder verify` locates the problem",
        ));
    }
    let id = rec.rotate_key().map_err(failed);
    let closed = rec.close().map_err(failed);
    let id = hex::encode(id?);
    closed?;
    let old_id = old
        .map(|k| hex::encode(agentos_recorder::key::key_id(&k)))
        .unwrap_or_default();
    if json {
        crate::output::print_json(&json!({"old_key_id": old_id, "new_key_id": id}));
        return Ok(0);
    }
    say!(
        "rotated the recorder key: key id {old_id} → key id {id}; the announcement is a `key_rotated` record signed by the old key; checkpoints are signed by the new key (its verifier key: `agentctl recorder checkpoint --verifier-key`)"
    );
    Ok(0)
}

/// `recorder verify`: 0 ok (an unsealed tail while its kernel runs included), 1 tampered,
/// 2 truncated, [`EXIT_UNSEALED`] an unsealed tail with no kernel running.
fn verify(state_dir: &Path, dir: &Path, json: bool) -> Result<u8, CliError> {
    let v = scan(dir, ScanOptions { signatures: true }, |_, _| {}).map_err(|e| {
        CliError::failed(
            format!("cannot read the flight recorder: {e}"),
            "check the state dir's permissions",
        )
    })?;
    let tail = v.problem.is_none() && (v.unsealed > 0 || v.torn_tail.is_some());
    let running = tail && kernel_running(state_dir);
    let (status, code) = match &v.problem {
        Some(p) => match p.kind {
            ProblemKind::Tampered => ("tampered", 1),
            ProblemKind::Truncated => ("truncated", 2),
        },
        None if tail && running => ("ok_kernel_running", 0),
        None if tail => ("unsealed_tail", EXIT_UNSEALED),
        None => ("ok", 0),
    };
    if json {
        let mut val = serde_json::to_value(&v).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut val {
            m.insert("status".into(), json!(status));
            m.insert("exit_code".into(), json!(code));
            m.insert("kernel_running".into(), json!(running));
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
    if let Some(p) = &v.pruned {
        say!(
            "  pruned: records 0..{} pruned at {} (signed manifest recorder/pruned{}), tree hashes kept; the log starts at segment {}",
            p.next_seq,
            crate::view::utc(p.wall_ms).unwrap_or_else(|| format!("{} ms", p.wall_ms)),
            if p.signature_ok == Some(true) { ", signature ok" } else { ", signature not checked" },
            p.first_segment
        );
    }
    for r in &v.rotations {
        say!(
            "  key rotated at record {}: key id {} → key id {} (announcement signed by the old key: ok)",
            r.seq, r.old_key_id, r.new_key_id
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
        None if tail && running => say!(
            "ok: {} records; note: the last {} are not sealed by a signed checkpoint yet: normal, the kernel writing them runs (it seals them every few records and when it stops)",
            v.records,
            v.unsealed
        ),
        None if tail => say!(
            "UNSEALED: {} records; the last {} are after the last signed checkpoint and no kernel is running: a kernel ended without sealing them (crashed or was killed). They chain, but nothing signs them; `agentctl kernel start` recovers and seals the log (exit {EXIT_UNSEALED})",
            v.records,
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
    let agent = agent
        .map(|a| resolve_agent(&records, &a, &dir))
        .transpose()?;
    let w = agentos_kernel::replay::what_if(&records, &policy, agent);
    let names = Names::of(&records);
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
                "    record {} {}: {} {} {} — was {} ({}), now {} ({}): {}",
                c.seq,
                c.agent
                    .map_or("kernel".into(), |a| Safe(&names.label(a)).to_string()),
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

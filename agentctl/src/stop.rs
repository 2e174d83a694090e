//! `agentctl kernel stop`: ask the kernel to shut down and show what happens to each agent.
//!
//! The kernel's shutdown (`Kernel::shutdown`) sends SIGTERM to every live agent (refused, and
//! recorded, when the agent's policy does not list it), waits one grace period
//! (`--term-grace-ms`) and SIGKILLs what is left. Its control socket keeps answering until
//! the very end, so this command needs no protocol of its own; it observes:
//!
//! - before asking: `Status` (the kernel's pid, whose command line gives the grace period)
//!   and `Ps` (the live agents); each agent's policy file, if it still has the digest the
//!   agent runs under, says whether SIGTERM will be delivered or refused;
//! - while the kernel stops: `Ps` every 50 ms (who has ended, and how), the grace period
//!   counting down on a terminal;
//! - once the kernel is gone (its `kernel.lock` free): the flight recorder, sealed by then,
//!   for the agents that ended between two polls and for what the kernel did (the `Signal`
//!   records of SIGTERM delivered or refused, the `Exit` records).
//!
//! On a terminal a countdown line is redrawn in place; to a pipe or file only the event lines
//! are written; `--json` writes one object at the end and nothing else.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use agentos_policy::Policy;
use agentos_recorder::{scan, RecordEvent, ScanOptions};
use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::control::{AgentInfo, AgentState, ControlRequest, ControlResponse};
use agentos_syscalls::Signal;
use serde_json::{json, Value};

use crate::client::{call, unexpected};
use crate::CliError;

/// What the kernel does with an agent's SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// Its policy lists SIGTERM: delivered.
    Sent,
    /// Its policy does not: refused, SIGKILL when the grace period ends.
    Refused,
    /// Its policy file is gone or changed since the spawn: the kernel knows, we do not.
    Unknown,
}

impl Term {
    const fn as_str(self) -> &'static str {
        match self {
            Term::Sent => "sent",
            Term::Refused => "refused",
            Term::Unknown => "unknown",
        }
    }
}

/// One agent that was live when the stop began.
#[derive(Debug, Clone)]
struct Tracked {
    id: u64,
    name: Option<String>,
    state: AgentState,
    policy_path: String,
    term: Term,
    /// How it ended, and when (since the stop began; `None` when only the recorder saw it).
    end: Option<(ExitStatus, Option<Duration>)>,
}

impl Tracked {
    fn new(info: &AgentInfo) -> Tracked {
        Tracked {
            id: info.id.0,
            name: info.name.clone(),
            state: info.state,
            policy_path: info.policy_path.clone(),
            term: term_of(info),
            end: None,
        }
    }

    /// `agent 3 (builder)`.
    fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("agent {} ({n})", self.id),
            None => format!("agent {}", self.id),
        }
    }
}

/// Whether the kernel will deliver SIGTERM to this agent: what its policy says, when the file
/// still holds the text the agent runs under.
fn term_of(info: &AgentInfo) -> Term {
    let Ok(text) = std::fs::read_to_string(&info.policy_path) else {
        return Term::Unknown;
    };
    match Policy::parse(&info.policy_path, &text) {
        Ok(p) if p.digest() == info.policy_digest => {
            if p.signal_allowed(Signal::Term) {
                Term::Sent
            } else {
                Term::Refused
            }
        }
        _ => Term::Unknown,
    }
}

/// The kernel's grace period, from its command line (`agentctl kernel start` always passes
/// `--term-grace-ms`; the daemon's own parser reads it). `None` when it cannot be read.
fn grace_of(pid: u32) -> Option<Duration> {
    use clap::Parser;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let args = agentos_kernel::daemon::DaemonArgs::try_parse_from(argv).ok()?;
    Some(Duration::from_millis(args.options.term_grace_ms))
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Where the progress goes: lines, plus a countdown redrawn in place on a terminal.
struct View {
    json: bool,
    tty: bool,
    /// A countdown line is on screen (to be cleared before the next line).
    drawn: bool,
}

impl View {
    fn line(&mut self, text: &str) {
        if self.json {
            return;
        }
        self.clear();
        say!("{text}");
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\r\x1b[K");
            let _ = out.flush();
            self.drawn = false;
        }
    }

    /// The countdown (terminal only): only numbers and kernel-chosen words, no agent text.
    fn countdown(&mut self, waiting: usize, left: Option<Duration>) {
        if self.json || !self.tty || waiting == 0 {
            return;
        }
        let text = match left {
            Some(l) if !l.is_zero() => format!(
                "  waiting for {waiting} agent(s): {} of the grace period left, then SIGKILL",
                secs(l)
            ),
            Some(_) => format!("  waiting for {waiting} agent(s): grace period over, SIGKILL"),
            None => format!("  waiting for {waiting} agent(s) (grace period unknown)"),
        };
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r{text}\x1b[K");
        let _ = out.flush();
        self.drawn = true;
    }
}

fn plan_line(t: &Tracked, grace: Option<Duration>) -> String {
    let kill = match grace {
        Some(g) => format!(
            "SIGKILL if it has not ended within the {} ms grace period",
            g.as_millis()
        ),
        None => "SIGKILL if it has not ended within the grace period".to_string(),
    };
    let frozen = if t.state == AgentState::Stopped {
        " (it is stopped: frozen, it cannot act on SIGTERM before SIGKILL)"
    } else {
        ""
    };
    match t.term {
        Term::Sent => format!("  {}: SIGTERM sent{frozen}; {kill}", t.label()),
        Term::Refused => format!(
            "  {}: SIGTERM refused by its policy ({} does not list it in `signals:`); SIGKILL when the grace period ends",
            t.label(),
            t.policy_path
        ),
        Term::Unknown => format!(
            "  {}: SIGTERM sent unless its policy refuses it ({} changed since the spawn){frozen}; {kill}",
            t.label(),
            t.policy_path
        ),
    }
}

fn end_line(t: &Tracked) -> String {
    let Some((status, after)) = &t.end else {
        return format!(
            "  {}: end not seen (see `agentctl recorder show`)",
            t.label()
        );
    };
    let after = after
        .map(|a| format!(" after {}", secs(a)))
        .unwrap_or_default();
    match status {
        ExitStatus::Killed { signal, reason } if !reason.is_empty() => {
            format!("  {}: killed by {signal}{after} ({reason})", t.label())
        }
        other => format!("  {}: {other}{after}", t.label()),
    }
}

/// What the sealed flight recorder says about the tracked agents: the kernel's SIGTERM
/// (delivered or refused) and each one's last `Exit`.
fn from_recorder(dir: &Path, tracked: &mut [Tracked]) {
    let ids: BTreeMap<u64, usize> = tracked.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let mut term: BTreeMap<u64, bool> = BTreeMap::new();
    let mut exits: BTreeMap<u64, ExitStatus> = BTreeMap::new();
    let _ = scan(
        &dir.join("recorder"),
        ScanOptions { signatures: false },
        |r, _| {
            let Some(id) = r.agent.map(|a| a.0).filter(|a| ids.contains_key(a)) else {
                return;
            };
            match r.event {
                RecordEvent::Signal {
                    signal: Signal::Term,
                    source,
                    delivered,
                    ..
                } if source == "kernel" => {
                    term.insert(id, delivered);
                }
                RecordEvent::Exit { status } => {
                    exits.insert(id, status);
                }
                _ => {}
            }
        },
    );
    for t in tracked.iter_mut() {
        match term.get(&t.id) {
            Some(true) => t.term = Term::Sent,
            Some(false) => t.term = Term::Refused,
            None => {}
        }
        if t.end.is_none() {
            if let Some(status) = exits.remove(&t.id) {
                t.end = Some((status, None));
            }
        }
    }
}

/// Whether the kernel on `dir` is gone: it holds `kernel.lock` for its whole life.
fn kernel_gone(lock: &Path) -> bool {
    std::fs::File::open(lock).is_ok_and(|f| {
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
    })
}

pub fn kernel_stop(dir: &Path, json: bool) -> Result<u8, CliError> {
    let status = match call(dir, &ControlRequest::Status)? {
        ControlResponse::Status(s) => s,
        other => return Err(unexpected(&other)),
    };
    let mut tracked: Vec<Tracked> = match call(dir, &ControlRequest::Ps)? {
        ControlResponse::Agents(list) => list
            .iter()
            .filter(|a| a.exit.is_none() && a.state != AgentState::Exited)
            .map(Tracked::new)
            .collect(),
        other => return Err(unexpected(&other)),
    };
    let grace = grace_of(status.pid);
    match call(dir, &ControlRequest::Shutdown)? {
        ControlResponse::ShuttingDown => {}
        other => return Err(unexpected(&other)),
    }
    let started = Instant::now();
    let mut view = View {
        json,
        tty: std::io::stdout().is_terminal(),
        drawn: false,
    };
    let grace_text = grace.map_or("grace period unknown".to_string(), |g| {
        format!("grace period {} ms", g.as_millis())
    });
    view.line(&match tracked.len() {
        0 => format!(
            "stopping the kernel on {} (pid {}): no live agents",
            dir.display(),
            status.pid
        ),
        n => format!(
            "stopping the kernel on {} (pid {}): {n} live agent(s), {grace_text}",
            dir.display(),
            status.pid
        ),
    });
    for t in &tracked {
        view.line(&plan_line(t, grace));
    }
    if !tracked.is_empty() && !view.tty {
        view.line(&match grace {
            Some(g) => format!(
                "  waiting up to {} for {} agent(s) to end",
                secs(g),
                tracked.len()
            ),
            None => format!("  waiting for {} agent(s) to end", tracked.len()),
        });
    }
    // The kernel gives each agent the grace period (2 s more after a SIGTERM), then up to 5 s
    // to reap what it killed, then seals the log; on a loaded host that can take a while, so
    // never less than a minute: anything beyond is a kernel that hangs.
    let limit = (grace.unwrap_or(Duration::from_secs(60)) + Duration::from_secs(37))
        .max(Duration::from_secs(60));
    let lock = dir.join("kernel.lock");
    let gone = loop {
        if kernel_gone(&lock) {
            break true;
        }
        if started.elapsed() > limit {
            break false;
        }
        if let Ok(ControlResponse::Agents(list)) = call(dir, &ControlRequest::Ps) {
            for t in tracked.iter_mut().filter(|t| t.end.is_none()) {
                if let Some(exit) = list
                    .iter()
                    .find(|a| a.id.0 == t.id)
                    .and_then(|a| a.exit.clone())
                {
                    t.end = Some((exit, Some(started.elapsed())));
                    let line = end_line(t);
                    view.line(&line);
                }
            }
        }
        let waiting = tracked.iter().filter(|t| t.end.is_none()).count();
        view.countdown(waiting, grace.map(|g| g.saturating_sub(started.elapsed())));
        std::thread::sleep(Duration::from_millis(50));
    };
    view.clear();
    if !gone {
        return Err(CliError::failed(
            format!("the kernel did not stop within {} s", limit.as_secs()),
            "end it with `kill` on the pid in kernel.lock",
        ));
    }
    let unseen: Vec<usize> = (0..tracked.len())
        .filter(|&i| tracked[i].end.is_none())
        .collect();
    from_recorder(dir, &mut tracked);
    for i in unseen {
        let line = end_line(&tracked[i]);
        view.line(&line);
    }
    let elapsed = started.elapsed();
    if json {
        let v = json!({
            "state_dir": dir.display().to_string(),
            "pid": status.pid,
            "grace_ms": grace.map(|g| g.as_millis() as u64),
            "stopped": true,
            "elapsed_ms": elapsed.as_millis() as u64,
            "agents": tracked.iter().map(agent_json).collect::<Vec<_>>(),
        });
        crate::output::print_json(&v);
    } else {
        say!("kernel on {} stopped in {}", dir.display(), secs(elapsed));
    }
    Ok(0)
}

fn agent_json(t: &Tracked) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "state": t.state.as_str(),
        "policy_path": t.policy_path,
        "sigterm": t.term.as_str(),
        "end": t.end.as_ref().map(|(s, _)| s.to_string()),
        "exit_code": t.end.as_ref().map(|(s, _)| s.code()),
        "killed": t.end.as_ref().is_some_and(|(s, _)| matches!(s, ExitStatus::Killed { signal: Signal::Kill, .. })),
        "after_ms": t.end.as_ref().and_then(|(_, a)| a.map(|a| a.as_millis() as u64)),
    })
}

//! Day-to-day operations: `ps` (live, `-a`, filters), `logs` from disk, `rm`/`prune`,
//! `memory ls|cat`, `checkpoints`, `completions`, `man`.
//!
//! What an agent leaves on disk is read through [`agentos_kernel::history`]
//! (`STATE_DIR/agents/<id>/…`, `STATE_DIR/memory.redb`), so `logs`, `ps -a`, `memory` and
//! `checkpoints` work with or without a kernel. Every reader here only reads: no file of the
//! state dir is created, changed or locked (the persistent store is read from a copy in
//! memory). Forgetting (`rm`, `prune`) goes through the running kernel; with none running it
//! is done here, under the kernel's lock so that no kernel starts meanwhile. The flight
//! recorder is never touched.

use std::collections::BTreeSet;
use std::path::Path;

use agentos_kernel::history::{self, AgentRecord, MemoryView};
use agentos_syscalls::control::{AgentInfo, AgentRef, AgentState, ControlRequest, ControlResponse};
use agentos_syscalls::{AgentId, FileKind};
use serde_json::json;

use crate::cli::{MemoryCommand, PsArgs, StateFilter};
use crate::client::{self, call, unexpected};
use crate::{output, CliError};

fn agents_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("agents")
}

/// An agent row made from its record on disk: an agent no kernel runs has ended (a kernel
/// takes its agents with it), with the exit its record holds, if its kernel could write it.
fn row_of(dir: &Path, r: &AgentRecord) -> AgentInfo {
    AgentInfo {
        id: AgentId(r.id),
        name: r.name.clone(),
        state: AgentState::Exited,
        pid: None,
        program: r.program.clone(),
        args: r.args.clone(),
        started_ms: r.started_ms,
        first_syscall_us: None,
        counters: r.counters.unwrap_or_default(),
        exit: r.exit.clone(),
        policy_path: r.policy_path.clone(),
        policy_digest: [0; 32],
        log_path: history::log_path(&agents_dir(dir), AgentId(r.id)),
        jail: None,
        usage: None,
        // What an agent was refused is in the flight recorder (`recorder show --denied`);
        // its record on disk keeps only the counters.
        denials: Default::default(),
    }
}

fn state_of(a: &AgentInfo) -> StateFilter {
    match a.state {
        AgentState::Starting => StateFilter::Starting,
        AgentState::Running => StateFilter::Running,
        AgentState::AwaitingApproval => StateFilter::AwaitingApproval,
        AgentState::Stopped => StateFilter::Stopped,
        AgentState::Exited => StateFilter::Exited,
    }
}

/// `agentctl ps`.
pub fn ps(dir: &Path, args: &PsArgs) -> Result<u8, CliError> {
    let running = client::kernel_answers(dir);
    let history_asked = args.all || args.state.contains(&StateFilter::Exited);
    let mut rows = if running || !history_asked {
        // Live agents exist only under a kernel: without one, this says so and how to start
        // one (and `-a` lists what is on record).
        match call(dir, &ControlRequest::Ps) {
            Ok(ControlResponse::Agents(list)) => list,
            Ok(other) => return Err(unexpected(&other)),
            Err(mut e) => {
                let on_record = history::read_all(&agents_dir(dir)).len();
                if on_record > 0 {
                    e.hint.push_str(&format!(
                        "; `agentctl ps -a` lists the {on_record} agent{} on record there",
                        if on_record == 1 { "" } else { "s" }
                    ));
                }
                return Err(e);
            }
        }
    } else {
        say_err!(
            "agentctl: no kernel is running on {}: agents on record there (all ended)",
            dir.display()
        );
        Vec::new()
    };
    let known: BTreeSet<u64> = rows.iter().map(|a| a.id.0).collect();
    // Earlier kernels' agents: their records are read only when ended agents are asked for;
    // otherwise they are only counted for the hint (one directory read).
    let mut unread_ended = 0;
    if history_asked {
        rows.extend(
            history::read_all(&agents_dir(dir))
                .iter()
                .filter(|r| !known.contains(&r.id))
                .map(|r| row_of(dir, r)),
        );
    } else if args.name.is_none() {
        unread_ended = history::ids(&agents_dir(dir))
            .iter()
            .filter(|id| !known.contains(id))
            .count();
    }
    rows.sort_by_key(|a| a.id);
    let by_name = |a: &AgentInfo| {
        args.name
            .as_deref()
            .is_none_or(|n| a.name.as_deref() == Some(n))
    };
    let shown_states: Vec<StateFilter> = if !args.state.is_empty() {
        args.state.clone()
    } else if args.all {
        vec![
            StateFilter::Starting,
            StateFilter::Running,
            StateFilter::Stopped,
            StateFilter::Exited,
        ]
    } else {
        vec![
            StateFilter::Starting,
            StateFilter::Running,
            StateFilter::Stopped,
        ]
    };
    // `running` takes in the agents waiting for an approval: they run.
    let selected = |a: &AgentInfo| {
        let s = state_of(a);
        shown_states.contains(&s)
            || (s == StateFilter::AwaitingApproval && shown_states.contains(&StateFilter::Running))
    };
    let (shown, hidden): (Vec<AgentInfo>, Vec<AgentInfo>) =
        rows.into_iter().filter(by_name).partition(|a| selected(a));
    if args.json {
        output::print_json(&serde_json::Value::Array(
            shown.iter().map(output::agent_json).collect(),
        ));
    } else if shown.is_empty() && (!args.state.is_empty() || args.name.is_some()) {
        say!("no agents match");
    } else {
        output::print_table(&shown);
    }
    let ended = hidden
        .iter()
        .filter(|a| a.state == AgentState::Exited)
        .count()
        + unread_ended;
    if ended > 0 && args.state.is_empty() && !args.json {
        say_err!(
            "{ended} ended agent{} not shown: `agentctl ps -a` lists {}, `agentctl prune` forgets {}",
            if ended == 1 { "" } else { "s" },
            if ended == 1 { "it" } else { "them" },
            if ended == 1 { "it" } else { "them" },
        );
    }
    Ok(0)
}

/// The record on disk of the agent `agent` names, or a not-found error saying where it
/// looked.
fn on_disk(dir: &Path, agent: &str) -> Result<AgentRecord, CliError> {
    history::find(&agents_dir(dir), &AgentRef::parse(agent)).ok_or_else(|| {
        CliError::new(
            4,
            format!(
                "no agent {agent} on record in {}",
                agents_dir(dir).display()
            ),
            "list agents with `agentctl ps -a` (forgotten agents are gone from disk; the flight recorder still has their records)",
        )
    })
}

/// `agentctl logs` of an agent the running kernel does not know, or with no kernel: its
/// `output.log`, printed whole. `-f` has nothing more to wait for: the agent has ended (no
/// agent outlives its kernel), which is said on stderr.
pub fn logs_from_disk(dir: &Path, agent: &str, follow: bool, raw: bool) -> Result<u8, CliError> {
    let record = on_disk(dir, agent)?;
    let path = history::log_path(&agents_dir(dir), AgentId(record.id));
    let bytes = std::fs::read(&path).map_err(|e| {
        CliError::failed(
            format!(
                "cannot read the log of agent {} ({}): {e}",
                record.id,
                path.display()
            ),
            "check the state dir's permissions",
        )
    })?;
    let mut out = crate::safe::stdout_sink(raw);
    if out.chunk(&bytes).is_ok() {
        let _ = out.finish();
    }
    if follow {
        say_err!(
            "agentctl: agent {} has ended (no kernel runs it): nothing more to follow",
            record.id
        );
    }
    Ok(0)
}

/// Holds the kernel's lock on `dir` while agents are forgotten without a kernel, so that
/// none starts meanwhile; `None` when a kernel holds it (then the kernel must do it).
fn lock_without_kernel(dir: &Path) -> Result<Option<std::fs::File>, CliError> {
    let path = dir.join("kernel.lock");
    let f = match std::fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::new(
                4,
                format!("no kernel ever ran on {}", dir.display()),
                "check --state-dir",
            ))
        }
        Err(e) => {
            return Err(CliError::failed(
                format!("cannot open {}: {e}", path.display()),
                "run agentctl as the kernel's user or as root",
            ))
        }
    };
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(_) => Ok(None),
    }
}

fn print_forgotten(ids: &[AgentId]) {
    if ids.is_empty() {
        say!("nothing to forget");
        return;
    }
    for id in ids {
        say!("forgot agent {id}");
    }
    say_err!(
        "(the flight recorder keeps {} records)",
        if ids.len() == 1 { "its" } else { "their" }
    );
}

fn forget_on_disk(dir: &Path, ids: &[AgentId]) -> Result<Vec<AgentId>, CliError> {
    let mut done = Vec::new();
    for &id in ids {
        history::forget(&agents_dir(dir), id).map_err(|e| {
            CliError::failed(
                format!(
                    "cannot remove {}: {e}",
                    history::agent_dir(&agents_dir(dir), id).display()
                ),
                "check the state dir's permissions",
            )
        })?;
        done.push(id);
    }
    Ok(done)
}

fn via_kernel(dir: &Path, request: ControlRequest) -> Result<u8, CliError> {
    match call(dir, &request)? {
        ControlResponse::Forgotten { agents } => {
            print_forgotten(&agents);
            Ok(0)
        }
        other => Err(unexpected(&other)),
    }
}

/// `agentctl rm AGENT…`.
pub fn rm(dir: &Path, agents: &[String]) -> Result<u8, CliError> {
    let refs: Vec<AgentRef> = agents.iter().map(|a| AgentRef::parse(a)).collect();
    if client::kernel_answers(dir) {
        return via_kernel(dir, ControlRequest::Forget { agents: refs });
    }
    let Some(_lock) = lock_without_kernel(dir)? else {
        return via_kernel(dir, ControlRequest::Forget { agents: refs });
    };
    // No kernel: every agent on disk has ended. Resolve all before removing any.
    let mut ids = Vec::new();
    for a in agents {
        let id = AgentId(on_disk(dir, a)?.id);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids.sort();
    print_forgotten(&forget_on_disk(dir, &ids)?);
    Ok(0)
}

/// `agentctl prune [--older-than DUR]`.
pub fn prune(dir: &Path, older_than: Option<&str>) -> Result<u8, CliError> {
    let older_than_ms = older_than
        .map(|t| {
            crate::since::duration_ms(t).ok_or_else(|| {
                CliError::usage(
                    format!("--older-than `{t}` is not a duration"),
                    "e.g. 90s, 10m, 2h, 1d, 1h30m",
                )
            })
        })
        .transpose()?;
    if client::kernel_answers(dir) {
        return via_kernel(dir, ControlRequest::Prune { older_than_ms });
    }
    let Some(_lock) = lock_without_kernel(dir)? else {
        return via_kernel(dir, ControlRequest::Prune { older_than_ms });
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let cutoff = now.saturating_sub(older_than_ms.unwrap_or(0));
    let ids: Vec<AgentId> = history::read_all(&agents_dir(dir))
        .into_iter()
        .filter(|r| older_than_ms.is_none() || r.ended_ms.unwrap_or(r.started_ms) <= cutoff)
        .map(|r| AgentId(r.id))
        .collect();
    print_forgotten(&forget_on_disk(dir, &ids)?);
    Ok(0)
}

fn memory_view(dir: &Path, agent: &str, checkpoint: Option<u64>) -> Result<MemoryView, CliError> {
    let record = on_disk(dir, agent)?;
    MemoryView::open(dir, &record, checkpoint).map_err(|e| {
        CliError::failed(
            e.to_string(),
            format!(
                "list the agent's checkpoints with `agentctl checkpoints {}`",
                record.id
            ),
        )
    })
}

fn errno(path: &str, e: agentos_syscalls::Errno) -> CliError {
    let code = match e {
        agentos_syscalls::Errno::NotFound { .. } => 4,
        _ => 1,
    };
    CliError::new(
        code,
        format!("{path}: {e}"),
        "list what is kept with `agentctl memory ls AGENT PATH`",
    )
}

/// `agentctl memory ls|cat`.
pub fn memory(dir: &Path, cmd: &MemoryCommand) -> Result<u8, CliError> {
    match cmd {
        MemoryCommand::Ls {
            agent,
            path,
            checkpoint,
            json,
        } => {
            let view = memory_view(dir, agent, *checkpoint)?;
            let entries = view.list(path).map_err(|e| errno(path, e))?;
            if *json {
                output::print_json(&serde_json::Value::Array(
                    entries
                        .iter()
                        .map(|e| {
                            json!({
                                "name": e.name,
                                "kind": if e.kind == FileKind::Directory { "dir" } else { "file" },
                                "size": e.size,
                            })
                        })
                        .collect(),
                ));
                return Ok(0);
            }
            for e in &entries {
                let (kind, size) = match e.kind {
                    FileKind::Directory => ("dir ", "-".to_string()),
                    FileKind::File => ("file", e.size.to_string()),
                };
                say!("{kind}  {size:>10}  {}", crate::safe::Safe(&e.name));
            }
            if entries.is_empty() {
                say_err!("(empty)");
            }
            let norm = normalize(path);
            if norm.starts_with("/mem/working") || norm == "/mem" {
                match view.working_checkpoint() {
                    Some(n) => say_err!("(/mem/working as of checkpoint {n})"),
                    None if norm == "/mem" => {
                        say_err!(
                            "(/mem/working: no checkpoint; the live one is only in the kernel)"
                        )
                    }
                    None => {}
                }
            }
            Ok(0)
        }
        MemoryCommand::Cat {
            agent,
            path,
            checkpoint,
            raw,
        } => {
            let view = memory_view(dir, agent, *checkpoint)?;
            let bytes = view.read(path).map_err(|e| errno(path, e))?;
            let mut out = crate::safe::stdout_sink(*raw);
            if out.chunk(&bytes).is_ok() {
                let _ = out.finish();
            }
            Ok(0)
        }
    }
}

fn normalize(p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `agentctl checkpoints AGENT`.
pub fn checkpoints(dir: &Path, agent: &str, json: bool) -> Result<u8, CliError> {
    let record = on_disk(dir, agent)?;
    let list = history::checkpoints(&agents_dir(dir), AgentId(record.id)).map_err(|e| {
        CliError::failed(
            format!("cannot read the checkpoints of agent {}: {e}", record.id),
            "check the state dir",
        )
    })?;
    if json {
        output::print_json(&serde_json::Value::Array(
            list.iter()
                .map(|c| {
                    json!({
                        "agent": record.id,
                        "number": c.number,
                        "taken_ms": c.taken_ms,
                        "files": c.files,
                        "bytes": c.bytes,
                        "disk_bytes": c.disk_bytes,
                        "path": c.path,
                    })
                })
                .collect(),
        ));
        return Ok(0);
    }
    if list.is_empty() {
        say!(
            "agent {} has no checkpoint (take one with `agentctl signal {} SIGUSR1` while it runs)",
            record.id,
            record.id
        );
        return Ok(0);
    }
    say!(
        "{:<4}  {:<24}  {:>6}  {:>10}  {:>10}",
        "N",
        "TAKEN (UTC)",
        "FILES",
        "BYTES",
        "ON DISK"
    );
    for c in &list {
        say!(
            "{:<4}  {:<24}  {:>6}  {:>10}  {:>10}",
            c.number,
            utc(c.taken_ms),
            c.files,
            c.bytes,
            c.disk_bytes
        );
    }
    say_err!(
        "(restore one into a new agent with `agentctl spawn --restore {}:N`; look inside with `agentctl memory ls {} /state/checkpoints/N`)",
        record.id,
        record.id
    );
    Ok(0)
}

/// `2026-12-06T19:49:10.123Z` for milliseconds since the Unix epoch (civil-from-days, Howard
/// Hinnant's algorithm: no time-zone database needed for UTC).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// `agentctl completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> Result<u8, CliError> {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "agentctl", &mut out);
    write_stdout(&out)
}

/// `agentctl man`: the page of `agentctl` with a section per subcommand.
pub fn man() -> Result<u8, CliError> {
    let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    man_page(&cmd, &mut out).map_err(|e| CliError::failed(format!("cannot render: {e}"), ""))?;
    write_stdout(&out)
}

/// The roff of `cmd`'s page, then of each subcommand (recursively) as its own section, so
/// that one page names every command.
fn man_page(cmd: &clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(out)?;
    fn subs(cmd: &clap::Command, prefix: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let full = format!("{prefix} {}", sub.get_name());
            let mut roff = roff_section(&full, sub);
            out.append(&mut roff);
            subs(sub, &full, out)?;
        }
        Ok(())
    }
    subs(cmd, "agentctl", out)
}

fn roff_section(full: &str, sub: &clap::Command) -> Vec<u8> {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('-', "\\-")
            .lines()
            .map(|l| {
                if l.starts_with('.') || l.starts_with('\'') {
                    format!("\\&{l}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut s = format!(".SH \"{}\"\n", esc(&full.to_uppercase()));
    if let Some(about) = sub.get_long_about().or(sub.get_about()) {
        s.push_str(&format!("{}\n", esc(&about.to_string())));
    }
    let mut usage = sub.clone().bin_name(full.to_string());
    let usage = usage.render_usage().to_string();
    s.push_str(&format!(
        ".PP\n\\fB{}\\fR\n",
        esc(usage.trim_start_matches("Usage: "))
    ));
    for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
        let name = match (arg.get_short(), arg.get_long()) {
            (Some(c), Some(l)) => format!("\\-{c}, \\-\\-{}", esc(l)),
            (None, Some(l)) => format!("\\-\\-{}", esc(l)),
            (Some(c), None) => format!("\\-{c}"),
            (None, None) => {
                let name = arg
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map_or_else(|| arg.get_id().as_str().to_uppercase(), |v| v.to_string());
                format!("<{}>", esc(&name))
            }
        };
        s.push_str(&format!(".TP\n{name}\n"));
        if let Some(help) = arg.get_long_help().or(arg.get_help()) {
            s.push_str(&format!("{}\n", esc(&help.to_string())));
        }
    }
    s.into_bytes()
}

fn write_stdout(bytes: &[u8]) -> Result<u8, CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(format!("cannot write to stdout: {e}"), ""))
        }
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(1_796_240_950_123), "2026-12-02T19:49:10.123Z");
    }

    #[test]
    fn the_man_page_names_every_subcommand() {
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        let mut out = Vec::new();
        man_page(&cmd, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for sub in cmd.get_subcommands() {
            assert!(
                text.contains(&format!(
                    "AGENTCTL {}",
                    sub.get_name().to_uppercase().replace('-', "\\-")
                )) || sub.get_name() == "help",
                "{} missing",
                sub.get_name()
            );
        }
    }
}

//! `agentctl approvals`: the calls parked for an operator's approval, one page at a time or
//! (`-f`) followed as they arrive.
//!
//! Following polls the kernel every `--interval-ms` (a sleep between polls, never a busy
//! loop) and prints each parked call once: the ids printed are remembered while their calls
//! still wait, so a call is neither repeated nor missed, whatever order approval ids are
//! parked in. A poll lists every matching call: when a page does not hold them all, the rest
//! is fetched per agent (`--agent A --after ID`), as the page's counts say.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use agentos_syscalls::control::{
    AgentRef, ApprovalInfo, ApprovalPage, ApprovalQuery, ControlRequest, ControlResponse,
    MAX_APPROVALS_PAGE,
};
use agentos_syscalls::AgentId;

use crate::client::{call, unexpected};
use crate::output;
use crate::CliError;

/// What `agentctl approvals` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    pub limit: u32,
    pub after: Option<u64>,
    pub agent: Option<String>,
    pub json: bool,
    pub follow: bool,
    pub interval_ms: u64,
}

pub fn run(dir: &Path, args: Args) -> Result<u8, CliError> {
    let agent = match &args.agent {
        Some(a) => Some(resolve(dir, a)?),
        None => None,
    };
    let query = ApprovalQuery {
        limit: args.limit,
        after: args.after,
        agent,
    };
    if args.follow {
        return follow(dir, &query, args.json, args.interval_ms);
    }
    let page = page(dir, &query)?;
    if args.json {
        output::print_json(&serde_json::Value::Array(
            page.approvals.iter().map(output::approval_json).collect(),
        ));
        output::print_more(&page, &query, true);
    } else {
        output::print_approvals(&page, &query);
    }
    Ok(0)
}

/// The agent id `--agent` names: a number is an id, anything else a name the kernel looks up
/// (an unknown one exits 4, like every command that names an agent).
fn resolve(dir: &Path, agent: &str) -> Result<AgentId, CliError> {
    match AgentRef::parse(agent) {
        AgentRef::Id(id) => Ok(id),
        name @ AgentRef::Name(_) => match call(dir, &ControlRequest::Inspect { agent: name })? {
            ControlResponse::Agent(info) => Ok(info.id),
            other => Err(unexpected(&other)),
        },
    }
}

fn page(dir: &Path, query: &ApprovalQuery) -> Result<ApprovalPage, CliError> {
    match call(dir, &ControlRequest::ApprovalsPage(query.clone()))? {
        ControlResponse::ApprovalsPage(page) => Ok(page),
        other => Err(unexpected(&other)),
    }
}

/// Every parked call matching `query` (its `limit` aside), oldest first: the first page, then
/// the rest of each agent the page did not show whole.
fn everything(dir: &Path, query: &ApprovalQuery) -> Result<Vec<ApprovalInfo>, CliError> {
    let full = |agent, after| ApprovalQuery {
        limit: MAX_APPROVALS_PAGE,
        after,
        agent,
    };
    let first = page(dir, &full(query.agent, query.after))?;
    let mut rows = first.approvals;
    if first.more > 0 {
        for c in first.agents.iter().filter(|c| c.shown < c.matching) {
            let mut after = c.last_shown.or(query.after);
            loop {
                let next = page(dir, &full(Some(c.agent), after))?;
                after = next.approvals.last().map(|a| a.id);
                let done = next.more == 0 || after.is_none();
                rows.extend(next.approvals);
                if done {
                    break;
                }
            }
        }
    }
    rows.sort_by_key(|a| a.id);
    rows.dedup_by_key(|a| a.id);
    Ok(rows)
}

/// Prints each call that waits for approval once — those waiting now, then each new one as it
/// is parked — until Ctrl-C or the kernel is gone.
fn follow(dir: &Path, query: &ApprovalQuery, json: bool, interval_ms: u64) -> Result<u8, CliError> {
    let interval = Duration::from_millis(interval_ms.max(10));
    let mut printed: BTreeSet<u64> = BTreeSet::new();
    let mut polls = 0u64;
    loop {
        let rows = match everything(dir, query) {
            Ok(rows) => rows,
            // The first poll's error is the command's (no kernel, unknown agent, …).
            Err(e) if polls == 0 => return Err(e),
            Err(e) => {
                return Err(CliError::failed(
                    format!(
                        "stopped following approvals: the kernel on {} is gone ({})",
                        dir.display(),
                        e.message
                    ),
                    "start it again with `agentctl kernel start`; calls it had parked were not performed",
                ))
            }
        };
        if polls == 0 && !json {
            say!("{}", output::approvals_header());
        }
        polls += 1;
        for a in rows.iter().filter(|a| !printed.contains(&a.id)) {
            if json {
                say!("{}", crate::safe::json_line(&output::approval_json(a)));
            } else {
                for line in output::approval_lines(a) {
                    say!("{line}");
                }
            }
        }
        // Only the calls still waiting are remembered: a decided id is never handed out again.
        printed = rows.iter().map(|a| a.id).collect();
        std::thread::sleep(interval);
    }
}

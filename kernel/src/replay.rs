//! Replay, what-if form: re-decide every recorded syscall against another policy and list the
//! decisions that would change (DESIGN §8). The calls are classified exactly as the syscall
//! server classifies them (`server::judge::classify`; a `Rename` on both of its names, as the
//! server judges it). Not re-decided: calls no rule governs
//! (`builtin`), rate limits (they depend on timing), and the kernel's base policy.
//!
//! The re-run form (start the program again and answer its calls from the log) is [`run`].

pub mod run;

use std::collections::BTreeMap;

use agentos_policy::{Access, Decision, Policy, Request};
use serde::Serialize;

use crate::recorder::{DecisionRecord, Record, RecordEvent};

/// One decision that would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub seq: u64,
    pub agent: Option<u64>,
    pub syscall: String,
    pub action: String,
    pub resource: String,
    /// `allow`, `deny`, `approval` or `dry_run`.
    pub recorded: String,
    pub recorded_rule: String,
    pub now: String,
    pub now_rule: String,
    pub now_reason: String,
}

/// The result of a what-if replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WhatIf {
    /// Syscall records considered (after the agent filter).
    pub syscalls: u64,
    /// Of those, re-decided (governed by a policy rule).
    pub judged: u64,
    /// `recorded → now` and how many times.
    pub counts: BTreeMap<String, u64>,
    /// Every change, in log order.
    pub changes: Vec<Change>,
}

/// How a recorded decision came out: `allow`, `deny`, `approval` or `dry_run`.
pub fn recorded_verdict(d: &DecisionRecord) -> &'static str {
    if !d.policy_allowed {
        "deny"
    } else if d.reason.starts_with("requires_approval") || d.reason.starts_with("approval ") {
        "approval"
    } else if d.reason.starts_with("dry_run") {
        "dry_run"
    } else {
        "allow"
    }
}

/// One recorded syscall that a policy rule governs, classified exactly as the syscall server
/// classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgedCall {
    pub seq: u64,
    pub agent: Option<u64>,
    pub wall_ms: u64,
    /// The syscall's name.
    pub syscall: String,
    pub action: String,
    pub resource: String,
    /// A `Rename`'s target, judged too.
    pub also: Option<String>,
    pub access: Access,
    pub bytes: u64,
    /// An `Exec`'s arguments (argv\[1..\]), judged as a list.
    pub args: Option<Vec<String>>,
    /// A `Send`'s target's name (from its `Spawn` record in the same log): the server judges
    /// `ipc_send` on the target's id and on its name.
    pub peer_name: Option<String>,
    /// What the recorded run decided.
    pub decision: DecisionRecord,
}

/// Every syscall record of `records` (only agent `agent`'s, if given), and of those the ones
/// a policy rule governs, classified; with them every judged connection of an egress proxy
/// (`Egress`, action `network` on `HOST:PORT`, syscall name `egress`; not counted as a
/// syscall). Not governed: built-in calls (`builtin` decisions).
pub fn judged_calls(records: &[Record], agent: Option<u64>) -> (u64, Vec<JudgedCall>) {
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut syscalls = 0;
    let mut out = Vec::new();
    for r in records {
        let who = r.agent.map(|a| a.0);
        if let (RecordEvent::Spawn { name: Some(n), .. }, Some(id)) = (&r.event, who) {
            names.insert(id, n.clone());
        }
        if agent.is_some_and(|a| who != Some(a)) {
            continue;
        }
        if let RecordEvent::Egress {
            target, decision, ..
        } = &r.event
        {
            if decision.mode != "builtin" && !target.is_empty() {
                out.push(JudgedCall {
                    seq: r.seq,
                    agent: who,
                    wall_ms: r.wall_ms,
                    syscall: "egress".into(),
                    action: crate::server::egress::ACTION.into(),
                    resource: target.clone(),
                    also: None,
                    access: Access::Write,
                    bytes: 0,
                    args: None,
                    peer_name: None,
                    decision: decision.clone(),
                });
            }
            continue;
        }
        let RecordEvent::Syscall { call, decision, .. } = &r.event else {
            continue;
        };
        syscalls += 1;
        if decision.mode == "builtin" {
            continue;
        }
        let Ok(Some(crate::server::judge::Class {
            action,
            resource,
            access,
            bytes,
            also,
        })) = crate::server::judge::classify(call)
        else {
            continue;
        };
        let (args, peer_name) = match call {
            agentos_syscalls::Syscall::Exec { argv, .. } => {
                (argv.get(1..).map(<[String]>::to_vec), None)
            }
            agentos_syscalls::Syscall::Send { to, .. } => (None, names.get(&to.0).cloned()),
            _ => (None, None),
        };
        out.push(JudgedCall {
            seq: r.seq,
            agent: who,
            wall_ms: r.wall_ms,
            syscall: call.name().into(),
            action,
            resource,
            also,
            access,
            bytes,
            args,
            peer_name,
            decision: decision.clone(),
        });
    }
    (syscalls, out)
}

/// How `policy` decides a recorded call, as the server does: an `Exec`'s arguments as a
/// list, a `Rename` on both names, an `ipc_send` on its target's id and name.
pub fn decide(policy: &Policy, c: &JudgedCall) -> Decision {
    let req = Request {
        action: &c.action,
        resource: &c.resource,
        access: c.access,
        bytes: c.bytes,
        now_ms: c.wall_ms,
    };
    let mut d = policy.decide_args(&req, c.args.as_deref());
    // Either name allows; a deny rule on either denies; a default deny on one side does not
    // veto an allow on the other (`server::judge::either_peer`).
    if let Some(name) = &c.peer_name {
        let by_name = policy.decide(&Request {
            resource: name,
            ..req
        });
        let vetoes = |d: &Decision| !d.allowed && d.rule.is_some();
        d = match (d.allowed, by_name.allowed) {
            (true, false) if vetoes(&by_name) => by_name,
            (false, true) if !vetoes(&d) => by_name,
            _ => d,
        };
    }
    // A `Rename` is judged on its target too, as the server judges it: a refusal there
    // decides; approval or a dry run on either side applies.
    if let Some(also) = &c.also {
        let t = policy.decide(&Request {
            resource: also,
            ..req
        });
        if d.allowed && !t.allowed {
            d = t;
        } else if d.allowed {
            d.requires_approval |= t.requires_approval;
            d.dry_run |= t.dry_run;
        }
    }
    d
}

/// Re-decides every syscall in `records` (only agent `agent`'s, if given) under `policy`.
pub fn what_if(records: &[Record], policy: &Policy, agent: Option<u64>) -> WhatIf {
    let (syscalls, calls) = judged_calls(records, agent);
    let mut out = WhatIf {
        syscalls,
        judged: calls.len() as u64,
        ..WhatIf::default()
    };
    for c in calls {
        let d = decide(policy, &c);
        let now = if !d.allowed {
            "deny"
        } else if d.requires_approval {
            "approval"
        } else if d.dry_run {
            "dry_run"
        } else {
            "allow"
        };
        let recorded = recorded_verdict(&c.decision);
        if recorded == now {
            continue;
        }
        *out.counts.entry(format!("{recorded} → {now}")).or_default() += 1;
        out.changes.push(Change {
            seq: c.seq,
            agent: c.agent,
            syscall: c.syscall,
            action: c.action,
            resource: c.resource,
            recorded: recorded.into(),
            recorded_rule: c.decision.rule.clone(),
            now: now.into(),
            now_rule: d.rule.map(|r| r.to_string()).unwrap_or_default(),
            now_reason: d.reason,
        });
    }
    out
}

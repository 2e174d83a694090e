//! Replay, what-if form: re-decide every recorded syscall against another policy and list the
//! decisions that would change (DESIGN §8). The calls are classified exactly as the syscall
//! server classifies them (`server::judge::classify`; a `Rename` on both of its names, as the
//! server judges it). Not re-decided: calls no rule governs
//! (`builtin`), rate limits (they depend on timing), and the kernel's base policy.
//!
//! The re-run form (start the program again and answer its calls from the log) is [`run`].

pub mod run;

use std::collections::BTreeMap;

use agentos_policy::{Policy, Request};
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

fn recorded_verdict(d: &DecisionRecord) -> &'static str {
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

/// Re-decides every syscall in `records` (only agent `agent`'s, if given) under `policy`.
pub fn what_if(records: &[Record], policy: &Policy, agent: Option<u64>) -> WhatIf {
    let mut out = WhatIf::default();
    for r in records {
        let RecordEvent::Syscall { call, decision, .. } = &r.event else {
            continue;
        };
        let who = r.agent.map(|a| a.0);
        if agent.is_some_and(|a| who != Some(a)) {
            continue;
        }
        out.syscalls += 1;
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
        out.judged += 1;
        // An `Exec`'s arguments as the list the kernel judged (`args`/`deny_args`).
        let args = if let agentos_syscalls::Syscall::Exec { argv, .. } = call {
            argv.get(1..)
        } else {
            None
        };
        let req = Request {
            action: &action,
            resource: &resource,
            access,
            bytes,
            now_ms: r.wall_ms,
        };
        let mut d = policy.decide_args(&req, args);
        // A `Rename` is judged on its target too, as the server judges it: a refusal there
        // decides; approval or a dry run on either side applies.
        if let Some(also) = &also {
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
        let now = if !d.allowed {
            "deny"
        } else if d.requires_approval {
            "approval"
        } else if d.dry_run {
            "dry_run"
        } else {
            "allow"
        };
        let recorded = recorded_verdict(decision);
        if recorded == now {
            continue;
        }
        *out.counts.entry(format!("{recorded} → {now}")).or_default() += 1;
        out.changes.push(Change {
            seq: r.seq,
            agent: who,
            syscall: call.name().into(),
            action,
            resource,
            recorded: recorded.into(),
            recorded_rule: decision.rule.clone(),
            now: now.into(),
            now_rule: d.rule.map(|r| r.to_string()).unwrap_or_default(),
            now_reason: d.reason,
        });
    }
    out
}

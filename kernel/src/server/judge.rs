//! The policy side of a syscall, as pure functions: no I/O, no kernel state.
//!
//! - [`classify`]: the policy action, resource, access and payload size of a call.
//! - [`judge`]: one call against one snapshot of the agent's policy composed with the
//!   kernel's base policy (`crate::policy::compose`), at the time given; then the kernel mode,
//!   `dry_run`, rate limits and `requires_approval`.
//!
//! Whatever kernel state judging needs is looked up by the caller and passed in: the policy
//! snapshot, the name of a `Send`'s target, the clock, and the rate-limit buckets (as a
//! `charge` function), so the same call, policy and time always give the same judgment.

use agentos_policy::{Mode, Policy};
use agentos_syscalls::{Errno, Syscall};

use super::calls;
use crate::policy::{Composed, RateCharge};
use crate::recorder::DecisionRecord;

pub(crate) use super::calls::Class;

/// What the policy (and the kernel mode) made of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Judgment {
    pub record: DecisionRecord,
    /// `Some` when the call must be refused with this error.
    pub refusal: Option<Errno>,
    /// `Some` when the call must wait for an operator's approval before it is performed.
    pub approval: Option<Pending>,
    /// The call's policy action and resource (`a -> b` for a rename); `None` for a call no
    /// rule governs.
    pub class: Option<(String, String)>,
}

/// A call that waits for an operator: what to show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pending {
    pub action: String,
    pub resource: String,
    /// The rule that asks for approval, `id (file:line)`.
    pub rule: String,
}

/// The policy action, resource, access and payload size of a call; `None` for calls no rule
/// governs (closing a descriptor, reading one's own inbox, dry-run checks, exit).
///
/// A call over a bound (`crate::validate`) is an error here too, so every user (the judge, the
/// what-if replay of a recording) sees it bounded before classifying it.
pub(crate) fn classify(call: &Syscall) -> Result<Option<Class>, Errno> {
    crate::validate::call(call)?;
    calls::classify(call)
}

/// The name a decision record gives a kernel mode.
pub(crate) fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Strict => "strict",
        Mode::Permissive => "permissive",
        Mode::Audit => "audit",
    }
}

/// One `ipc_send` decision from the decisions on the target's id and on its name: allowed
/// when either is allowed and no deny rule fired on the other (deny overrides); a default deny
/// (no rule, empty `rule`) on one side does not veto an allow on the other.
pub(super) fn either_peer(by_id: Composed, by_name: Composed) -> Composed {
    let vetoes = |d: &Composed| !d.allowed && !d.rule.is_empty();
    match (by_id.allowed, by_name.allowed) {
        (true, false) if vetoes(&by_name) => by_name,
        (false, true) if !vetoes(&by_id) => by_name,
        _ => by_id,
    }
}

/// One decision for a call judged on two resources (a `Rename`'s source and target): refused
/// when either is (the first refusal decides: its rule and reason are the ones recorded);
/// otherwise allowed under the first's rule, needing approval (then under the rule that asks
/// for it) or a dry run when either side does, and charged both sides' rate limits (a rule
/// matching both resources once).
pub(crate) fn both_resources(first: Composed, second: Composed) -> Composed {
    if !first.allowed {
        return first;
    }
    if !second.allowed {
        return second;
    }
    let mut d = first;
    if second.requires_approval && !d.requires_approval {
        d.requires_approval = true;
        d.rule = second.rule;
        d.reason = second.reason;
    }
    d.dry_run |= second.dry_run;
    for charge in second.rate_limits {
        let charged = |c: &RateCharge| c.source == charge.source && c.index == charge.index;
        if !d.rate_limits.iter().any(charged) {
            d.rate_limits.push(charge);
        }
    }
    d
}

/// Judges `call` against ONE snapshot of the agent's policy (`policy`) composed with the
/// kernel's base policy, at `now` (ms since the epoch), and applies the kernel mode,
/// `dry_run` and rate limits. `peer` is the name of a `Send`'s target, when it has one (the
/// rules may list it by id or by name). `charge` takes one token from a rate limit's bucket,
/// or says after how many ms one is free.
pub(super) fn judge(
    policy: &Policy,
    base: Option<&Policy>,
    call: &Syscall,
    peer: Option<&str>,
    now: u64,
    charge: impl FnMut(&RateCharge) -> Result<(), u64>,
) -> Judgment {
    let builtin = |refusal: Option<Errno>, reason: &str| Judgment {
        record: DecisionRecord {
            allowed: refusal.is_none(),
            policy_allowed: refusal.is_none(),
            rule: String::new(),
            reason: reason.into(),
            violation: false,
            mode: "builtin".into(),
        },
        refusal,
        approval: None,
        class: None,
    };
    let class = match classify(call) {
        Ok(Some(c)) => c,
        Ok(None) => return builtin(None, "not governed by a policy rule"),
        Err(e) => return builtin(Some(e), "malformed request (a path or a Call's params)"),
    };
    let d = decide(policy, base, call, &class, peer, now);
    apply(d, class, charge)
}

/// Judges an action that is not a syscall (a connection through the agent's egress proxy:
/// `network` on `HOST:PORT`) exactly as [`judge`] judges a classified call: the same
/// composition with the base policy, kernel mode, `dry_run`, rate limits and approval.
pub(super) fn judge_class(
    policy: &Policy,
    base: Option<&Policy>,
    class: Class,
    now: u64,
    charge: impl FnMut(&RateCharge) -> Result<(), u64>,
) -> Judgment {
    let d = crate::policy::compose(policy, base, &class.request(now));
    apply(d, class, charge)
}

/// The policies' decision on a classified call, at `now`; for a `Send`, by the target's id and
/// by its name as one decision.
fn decide(
    policy: &Policy,
    base: Option<&Policy>,
    call: &Syscall,
    class: &Class,
    peer: Option<&str>,
    now: u64,
) -> Composed {
    let req = class.request(now);
    // An `Exec`'s arguments reach `args`/`deny_args` as the list they are.
    let args = if let Syscall::Exec { argv, .. } = call {
        argv.get(1..)
    } else {
        None
    };
    let d = crate::policy::compose_args(policy, base, &req, args);
    let d = match peer.filter(|_| matches!(call, Syscall::Send { .. })) {
        // `peers` may list the target by id or by name: judge both, as one decision.
        Some(name) => {
            let by_name = agentos_policy::Request {
                resource: name,
                ..req
            };
            either_peer(d, crate::policy::compose(policy, base, &by_name))
        }
        None => d,
    };
    match &class.also {
        // A call that writes two names (a `Rename`): the second is judged like the first.
        Some(also) => {
            let second = agentos_policy::Request {
                resource: also,
                ..req
            };
            both_resources(d, crate::policy::compose(policy, base, &second))
        }
        None => d,
    }
}

/// Applies the kernel mode, `dry_run`, rate limits (charged with `charge`) and
/// `requires_approval` to a decision.
fn apply(
    d: Composed,
    Class {
        action,
        resource,
        also,
        ..
    }: Class,
    mut charge: impl FnMut(&RateCharge) -> Result<(), u64>,
) -> Judgment {
    let Composed {
        allowed,
        rule,
        reason,
        mode,
        requires_approval,
        rate_limits,
        dry_run,
        ..
    } = d;
    // The operator and the traces see both names of a rename.
    let resource = match also {
        Some(also) => format!("{resource} -> {also}"),
        None => resource,
    };
    // The decision's rule and reason move into the record; only a path that also needs them
    // elsewhere (a refusal's errno, an approval) copies them.
    let mut record = DecisionRecord {
        allowed,
        policy_allowed: allowed,
        rule,
        reason,
        violation: !allowed,
        mode: mode_name(mode).into(),
    };
    let refused = |record: DecisionRecord, refusal: Errno, action, resource| Judgment {
        record,
        refusal: Some(refusal),
        approval: None,
        class: Some((action, resource)),
    };
    if !allowed {
        return match mode {
            Mode::Strict => {
                let refusal = Errno::PermissionDenied {
                    rule: record.rule.clone(),
                    reason: record.reason.clone(),
                };
                refused(record, refusal, action, resource)
            }
            Mode::Permissive | Mode::Audit => {
                record.allowed = true;
                Judgment {
                    record,
                    refusal: None,
                    approval: None,
                    class: Some((action, resource)),
                }
            }
        };
    }
    if dry_run {
        record.allowed = false;
        record.reason = format!("dry_run: {action} recorded, not performed");
        let refusal = Errno::PermissionDenied {
            rule: record.rule.clone(),
            reason: record.reason.clone(),
        };
        return refused(record, refusal, action, resource);
    }
    for limit in &rate_limits {
        if let Err(retry_after_ms) = charge(limit) {
            record.allowed = false;
            record.rule = limit.rule.clone();
            record.reason = format!(
                "rate limit of {} reached; retry after {retry_after_ms} ms",
                limit.rule
            );
            return refused(
                record,
                Errno::RateLimited { retry_after_ms },
                action,
                resource,
            );
        }
    }
    let approval = requires_approval.then(|| {
        let rule = record.rule.clone();
        record.reason = format!("requires_approval ({rule}): {}", record.reason);
        Pending {
            action: action.clone(),
            resource: resource.clone(),
            rule,
        }
    });
    Judgment {
        record,
        refusal: None,
        approval,
        class: Some((action, resource)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use agentos_policy::{Access, RateLimiter};
    use agentos_syscalls::{AgentId, OpenMode, Signal, WriteMode};

    use super::*;
    use crate::policy::Source;

    fn policy(mode: &str, rules: &str) -> Policy {
        let text =
            format!("kernel:\n  version: \"1.0\"\n  mode: {mode}\nsignals: []\npolicies:\n{rules}");
        Policy::parse("p.md", &text).expect("test policy parses")
    }

    const RULES: &str = r#"
  - name: working
    action: file_write
    effect: allow
    constraints:
      paths: ["/mem/working/**"]
  - name: ask
    action: file_read
    effect: allow
    requires_approval: true
    constraints:
      paths: ["/workspace/**"]
  - name: slow
    action: file_read
    effect: allow
    rate_limit: "1/minute"
    constraints:
      paths: ["/mem/semantic/**"]
  - name: rehearse
    action: file_write
    effect: allow
    constraints:
      paths: ["/mem/episodic/**"]
      dry_run: true
  - name: planner
    action: ipc_send
    effect: allow
    constraints:
      peers: ["planner", "4"]
  - name: not-auditor
    action: ipc_send
    effect: deny
    constraints:
      peers: ["auditor"]
"#;

    fn write(path: &str) -> Syscall {
        Syscall::Write {
            path: path.into(),
            data: b"abc".to_vec(),
            mode: WriteMode::Truncate,
        }
    }

    fn read(path: &str) -> Syscall {
        Syscall::Read {
            path: path.into(),
            offset: 0,
            len: None,
        }
    }

    fn send(to: u64) -> Syscall {
        Syscall::Send {
            to: AgentId(to),
            payload: b"hi".to_vec(),
        }
    }

    /// Judges with no rate limit ever reached.
    fn judge_free(p: &Policy, call: &Syscall, peer: Option<&str>) -> Judgment {
        judge(p, None, call, peer, 1_000, |_| Ok(()))
    }

    #[test]
    fn an_allowed_call_is_allowed_and_recorded_with_its_rule() {
        let p = policy("strict", RULES);
        let j = judge_free(&p, &write("/mem/working/../working/x"), None);
        assert_eq!(j.refusal, None);
        assert_eq!(j.approval, None);
        assert!(j.record.allowed && j.record.policy_allowed && !j.record.violation);
        assert!(
            j.record.rule.starts_with("working (p.md:"),
            "{}",
            j.record.rule
        );
        assert_eq!(j.record.mode, "strict");
    }

    #[test]
    fn a_denied_call_is_refused_in_strict_mode_and_only_recorded_otherwise() {
        let call = write("/etc/passwd");
        let strict = judge_free(&policy("strict", RULES), &call, None);
        assert!(!strict.record.allowed && strict.record.violation);
        assert_eq!(strict.record.rule, "");
        assert!(matches!(
            strict.refusal,
            Some(Errno::PermissionDenied { ref rule, .. }) if rule.is_empty()
        ));
        for mode in ["permissive", "audit"] {
            let j = judge_free(&policy(mode, RULES), &call, None);
            assert_eq!(j.refusal, None, "{mode}");
            assert!(j.record.allowed && !j.record.policy_allowed && j.record.violation);
            assert_eq!(j.record.mode, mode);
        }
    }

    #[test]
    fn a_call_that_requires_approval_is_pending_with_its_rule() {
        let p = policy("strict", RULES);
        let j = judge_free(&p, &read("/workspace/notes.md"), None);
        assert_eq!(j.refusal, None);
        let pending = j.approval.expect("waits for an operator");
        assert_eq!(pending.action, "file_read");
        assert_eq!(pending.resource, "/workspace/notes.md");
        assert!(pending.rule.starts_with("ask (p.md:"), "{}", pending.rule);
        assert!(j.record.reason.starts_with("requires_approval (ask (p.md:"));
    }

    #[test]
    fn a_pending_call_names_the_rule_that_asks_for_approval() {
        // A broader allow rule comes first in the file and matches too: the operator is still
        // shown the rule that asks for approval.
        let p = policy(
            "strict",
            r#"
  - name: working
    action: file_write
    effect: allow
    constraints:
      paths: ["/mem/working/**"]
  - name: gated
    action: file_write
    effect: allow
    requires_approval: true
    constraints:
      paths: ["/mem/working/gated/**"]
"#,
        );
        let j = judge_free(&p, &write("/mem/working/gated/report"), None);
        let pending = j.approval.expect("waits for an operator");
        assert!(pending.rule.starts_with("gated (p.md:"), "{}", pending.rule);
        assert!(
            j.record.rule.starts_with("gated (p.md:"),
            "{}",
            j.record.rule
        );
        let free = judge_free(&p, &write("/mem/working/x"), None);
        assert_eq!(free.approval, None);
        assert!(free.record.rule.starts_with("working (p.md:"));
    }

    #[test]
    fn a_dry_run_is_refused_and_not_a_violation() {
        let p = policy("strict", RULES);
        let j = judge_free(&p, &write("/mem/episodic/x"), None);
        assert!(!j.record.allowed && !j.record.violation);
        assert_eq!(
            j.record.reason,
            "dry_run: file_write recorded, not performed"
        );
        assert!(matches!(j.refusal, Some(Errno::PermissionDenied { .. })));
    }

    #[test]
    fn a_rate_limit_refuses_the_call_over_it_and_names_its_rule() {
        let p = policy("strict", RULES);
        let mut buckets = RateLimiter::new();
        let mut at = |now| {
            judge(&p, None, &read("/mem/semantic/k"), None, now, |c| {
                assert_eq!(c.source, Source::Agent);
                buckets.check(c.index, c.rate, now)
            })
        };
        let first = at(1_000);
        assert_eq!(first.refusal, None);
        let second = at(1_000);
        assert!(
            matches!(second.refusal, Some(Errno::RateLimited { retry_after_ms }) if retry_after_ms > 0)
        );
        assert!(!second.record.allowed && !second.record.violation);
        assert!(second.record.rule.starts_with("slow (p.md:"));
        assert!(second
            .record
            .reason
            .starts_with("rate limit of slow (p.md:"));
        // A minute later the bucket has a token again.
        assert_eq!(at(61_000).refusal, None);
    }

    #[test]
    fn a_peer_is_judged_by_id_or_by_name() {
        let p = policy("strict", RULES);
        // By id (the rule lists "4").
        assert_eq!(judge_free(&p, &send(4), None).refusal, None);
        // By name, looked up by the caller.
        assert_eq!(judge_free(&p, &send(9), Some("planner")).refusal, None);
        // Neither: default deny.
        assert!(judge_free(&p, &send(9), Some("stranger")).refusal.is_some());
        assert!(judge_free(&p, &send(9), None).refusal.is_some());
        // A deny rule on the name vetoes an allow on the id.
        let j = judge_free(&p, &send(4), Some("auditor"));
        assert!(
            j.record.rule.starts_with("not-auditor (p.md:"),
            "{}",
            j.record.rule
        );
        assert!(j.refusal.is_some());
        // A name means nothing for a call that is not a Send.
        let signal = Syscall::Signal {
            target: AgentId(9),
            signal: Signal::Term,
        };
        assert!(judge_free(&p, &signal, Some("planner")).refusal.is_some());
    }

    #[test]
    fn the_base_policy_refuses_what_the_agent_allows() {
        let p = policy("permissive", RULES);
        let base = policy(
            "strict",
            "  - name: nothing-written\n    action: file_write\n    effect: deny\n",
        );
        let j = judge(&p, Some(&base), &write("/mem/working/x"), None, 0, |_| {
            Ok(())
        });
        assert!(j.refusal.is_some());
        assert_eq!(j.record.mode, "strict");
    }

    #[test]
    fn calls_no_rule_governs_and_malformed_ones_are_builtin_decisions() {
        let p = policy("strict", RULES);
        let j = judge_free(&p, &Syscall::Checkpoint, None);
        assert_eq!(j.refusal, None);
        assert_eq!(j.record.mode, "builtin");
        assert_eq!(j.record.reason, "not governed by a policy rule");
        let bad = Syscall::Call {
            action: "api_call".into(),
            params_json: "{\"url\": \"ftp://x\"}".into(),
        };
        let j = judge_free(&p, &bad, None);
        assert!(matches!(j.refusal, Some(Errno::InvalidArgument { .. })));
        assert_eq!(j.record.mode, "builtin");
        assert!(!j.record.violation);
    }

    #[test]
    fn every_syscall_is_classified() {
        let c = |call: Syscall| classify(&call).unwrap();
        let class = |a: &str, r: &str, access, bytes| Some(Class::new(a, r.into(), access, bytes));
        let p = "/mem/working/./x".to_string();
        let n = "/mem/working/x";
        assert_eq!(c(read(&p)), class("file_read", n, Access::Read, 0));
        assert_eq!(c(write(&p)), class("file_write", n, Access::Write, 3));
        let open = |mode| Syscall::Open {
            path: p.clone(),
            mode,
        };
        assert_eq!(
            c(open(OpenMode::Read)),
            class("file_read", n, Access::Read, 0)
        );
        assert_eq!(
            c(open(OpenMode::Write(WriteMode::Append))),
            class("file_write", n, Access::Write, 0)
        );
        let path = p.clone();
        assert_eq!(
            c(Syscall::List { path }),
            class("file_read", n, Access::Read, 0)
        );
        let path = p.clone();
        assert_eq!(
            c(Syscall::Stat { path }),
            class("file_read", n, Access::Read, 0)
        );
        let path = p.clone();
        assert_eq!(
            c(Syscall::Unlink { path }),
            class("file_write", n, Access::Write, 0)
        );
        let exec = Syscall::Exec {
            argv: vec!["git".into(), "status".into()],
            stdin: b"in".to_vec(),
            cwd: None,
            timeout_ms: None,
        };
        assert_eq!(
            c(exec),
            class("code_execution", "git status", Access::Read, 2)
        );
        let params_json = "{\"url\": \"https://example.com/a\"}".to_string();
        let len = params_json.len() as u64;
        let call = Syscall::Call {
            action: "api_call".into(),
            params_json,
        };
        assert_eq!(
            c(call),
            class("api_call", "https://example.com/a", Access::Read, len)
        );
        // `SERVER/TOOL`: an MCP tool, its arguments canonical in the resource.
        let tool = Syscall::Call {
            action: "everything/echo".into(),
            params_json: r#"{ "message": "hi" }"#.into(),
        };
        assert_eq!(
            c(tool),
            class(
                "mcp_tool",
                r#"everything/echo {"message":"hi"}"#,
                Access::Read,
                19
            )
        );
        assert!(classify(&Syscall::Call {
            action: "Bad Server/x".into(),
            params_json: "{}".into(),
        })
        .is_err());
        assert_eq!(c(send(7)), class("ipc_send", "7", Access::Write, 2));
        let signal = Syscall::Signal {
            target: AgentId(5),
            signal: Signal::Int,
        };
        assert_eq!(c(signal), class("signal", "5", Access::Write, 0));
        for ungoverned in [
            Syscall::Close { fd: 3 },
            Syscall::ReadFd { fd: 3, len: 10 },
            Syscall::WriteFd {
                fd: 3,
                data: b"x".to_vec(),
            },
            Syscall::Recv { timeout_ms: None },
            Syscall::CheckPolicy {
                action: "file_read".into(),
                resource: "/etc".into(),
            },
            Syscall::Checkpoint,
            Syscall::Exit { code: 0 },
            Syscall::ListTools,
        ] {
            assert_eq!(c(ungoverned), None);
        }
    }

    #[test]
    fn a_path_that_does_not_normalize_is_an_error() {
        assert!(classify(&read("relative/x")).is_err());
    }

    #[test]
    fn a_peer_is_allowed_by_id_or_by_name_and_a_deny_on_either_wins() {
        let decision = |allowed: bool, rule: &str| Composed {
            allowed,
            rule: rule.into(),
            reason: format!("{allowed} {rule}"),
            mode: Mode::Strict,
            requires_approval: false,
            rate_limits: Vec::new(),
            dry_run: false,
            digest: [0; 32],
        };
        let allow = || decision(true, "ipc (p.md:3)");
        let default_deny = || decision(false, "");
        let deny_rule = || decision(false, "no-planner (p.md:9)");
        assert_eq!(either_peer(allow(), default_deny()), allow());
        assert_eq!(either_peer(default_deny(), allow()), allow());
        assert_eq!(either_peer(allow(), deny_rule()), deny_rule());
        assert_eq!(either_peer(deny_rule(), allow()), deny_rule());
        assert_eq!(either_peer(default_deny(), default_deny()), default_deny());
        assert_eq!(either_peer(deny_rule(), default_deny()), deny_rule());
    }

    fn rename(from: &str, to: &str) -> Syscall {
        Syscall::Rename {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn a_rename_is_classified_as_a_write_of_both_names() {
        let class = classify(&rename("/mem/working/a/../b", "/workspace/c"))
            .expect("classifies")
            .expect("governed");
        assert_eq!(class.action, "file_write");
        assert_eq!(class.resource, "/mem/working/b");
        assert_eq!(class.also.as_deref(), Some("/workspace/c"));
        assert_eq!(class.access, Access::Write);
        assert!(classify(&rename("/mem/working/a", "relative")).is_err());
    }

    #[test]
    fn a_rename_is_refused_when_the_policy_denies_either_name() {
        let p = policy("strict", RULES);
        let ok = judge_free(&p, &rename("/mem/working/a", "/mem/working/b"), None);
        assert_eq!(ok.refusal, None);
        for (from, to) in [
            ("/mem/working/a", "/etc/passwd"),
            ("/etc/passwd", "/mem/working/a"),
        ] {
            let j = judge_free(&p, &rename(from, to), None);
            assert!(
                matches!(j.refusal, Some(Errno::PermissionDenied { .. })),
                "{from} -> {to}: {j:?}"
            );
            assert!(j.record.violation);
        }
    }

    #[test]
    fn a_rename_onto_a_dry_run_or_gated_name_takes_that_sides_rule() {
        let gated = r#"
  - name: working
    action: file_write
    effect: allow
    constraints:
      paths: ["/mem/working/**"]
  - name: drafts
    action: file_write
    effect: allow
    requires_approval: true
    constraints:
      paths: ["/workspace/**"]
"#;
        let p = policy("strict", gated);
        let j = judge_free(&p, &rename("/mem/working/a", "/workspace/b"), None);
        let pending = j.approval.expect("the target asks for approval");
        assert_eq!(pending.resource, "/mem/working/a -> /workspace/b");
        assert!(
            pending.rule.starts_with("drafts (p.md:"),
            "{}",
            pending.rule
        );
        let p = policy("strict", RULES);
        let j = judge_free(&p, &rename("/mem/working/a", "/mem/episodic/b"), None);
        assert!(
            matches!(j.refusal, Some(Errno::PermissionDenied { ref reason, .. }) if reason.starts_with("dry_run")),
            "{j:?}"
        );
    }

    #[test]
    fn both_resources_charges_a_shared_rate_limit_once() {
        let rate = agentos_policy::Rate {
            count: 1,
            period: agentos_policy::Period::Minute,
        };
        let charge = |index: usize, rule: &str| RateCharge {
            source: Source::Agent,
            index,
            rate,
            rule: rule.into(),
        };
        let decision = |rule: &str| Composed {
            allowed: true,
            rule: rule.into(),
            reason: String::new(),
            mode: Mode::Strict,
            requires_approval: false,
            rate_limits: Vec::new(),
            dry_run: false,
            digest: [0; 32],
        };
        let mut from = decision("ws (p.md:3)");
        from.rate_limits = vec![charge(0, "ws (p.md:3)")];
        let mut to = decision("drafts (p.md:7)");
        to.rate_limits = vec![charge(0, "ws (p.md:3)"), charge(2, "drafts (p.md:7)")];
        let d = both_resources(from, to);
        assert_eq!(d.rule, "ws (p.md:3)");
        assert_eq!(
            d.rate_limits,
            vec![charge(0, "ws (p.md:3)"), charge(2, "drafts (p.md:7)")]
        );
    }
}

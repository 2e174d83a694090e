//! The policy, enforced on real jailed agents: kernel modes, rate limits, operator approvals,
//! policy reload and the kernel's base policy — each checked on the agent's output, its exit
//! and the flight recorder.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agentos_kernel::recorder::{DecisionRecord, RecordEvent};
use agentos_syscalls::{Errno, Reply, Signal, Syscall};
use agentos_tests::{binary, wait_until, write_policy, TestKernel};
use serde_json::Value;

const DENY_SECRETS: &str = "  - name: no-secrets\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/working/secrets/**\"]\n";
const GATED: &str = "  - name: gated\n    action: file_write\n    effect: allow\n    requires_approval: true\n    constraints:\n      paths: [\"/mem/working/gated/**\"]\n";
const EMAIL: &str =
    "  - name: email\n    action: send_email\n    effect: allow\n    requires_approval: true\n";
const LIMITED: &str = "  - name: limited\n    action: file_write\n    effect: allow\n    rate_limit: \"5/second\"\n    constraints:\n      paths: [\"/mem/working/limited/**\"]\n";

/// A policy with a typo at line 9, column 5.
const BAD_POLICY: &str = "---\nkernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies:\n  - name: typo\n    action: file_write\n    efect: allow\n---\n";

/// The recorded decision and result of the agent's writes to `path`.
fn writes_to(k: &TestKernel, id: u64, path: &str) -> Vec<(DecisionRecord, Result<Reply, Errno>)> {
    k.events(id)
        .into_iter()
        .filter_map(|e| match e {
            RecordEvent::Syscall {
                call: Syscall::Write { path: p, .. },
                decision,
                result,
                ..
            } if p == path => Some((decision, result)),
            _ => None,
        })
        .collect()
}

fn sigpolicy_count(k: &TestKernel, id: u64) -> usize {
    k.events(id)
        .iter()
        .filter(|e| {
            matches!(
                e,
                RecordEvent::Signal {
                    signal: Signal::Policy,
                    ..
                }
            )
        })
        .count()
}

/// `agentctl approvals --json`.
fn approvals(k: &TestKernel) -> Vec<Value> {
    let v: Value = serde_json::from_str(&k.ctl_ok(&["approvals", "--json"])).expect("json");
    v.as_array().expect("a list").clone()
}

/// Waits until agent `id` has a call waiting for approval; returns its row.
fn wait_pending(k: &TestKernel, id: u64) -> Value {
    let mut row = Value::Null;
    wait_until("the call to wait for approval", || {
        match approvals(k).into_iter().find(|a| a["agent"] == id) {
            Some(a) => {
                row = a;
                true
            }
            None => false,
        }
    });
    row
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn permissive_violation_is_let_through_recorded_and_not_killed() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "permissive", "permissive", &[], DENY_SECRETS);
    let id = k.spawn(&policy, &["write", "/mem/working/secrets/key"]);
    assert_eq!(k.wait_for_line(id, "wrote"), "wrote 4");
    assert_eq!(k.info(id)["state"], "running");
    let writes = writes_to(&k, id, "/mem/working/secrets/key");
    assert_eq!(writes.len(), 1, "{writes:?}");
    let (d, result) = &writes[0];
    assert!(d.violation && d.allowed && !d.policy_allowed, "{d:?}");
    assert_eq!(d.mode, "permissive");
    assert!(d.rule.starts_with("no-secrets ("), "{d:?}");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(sigpolicy_count(&k, id), 0);
}

#[test]
fn audit_mode_allows_and_records_without_a_kill() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "audit", "audit", &[], DENY_SECRETS);
    let id = k.spawn(&policy, &["write", "/mem/working/secrets/key"]);
    assert_eq!(k.wait_for_line(id, "wrote"), "wrote 4");
    assert_eq!(k.info(id)["state"], "running");
    let writes = writes_to(&k, id, "/mem/working/secrets/key");
    assert_eq!(writes.len(), 1, "{writes:?}");
    let (d, result) = &writes[0];
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.mode, "audit");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(sigpolicy_count(&k, id), 0);
}

#[test]
fn rate_limit_refuses_the_sixth_call_with_a_hint_and_does_not_kill() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "limited", "strict", &[], LIMITED);
    let id = k.spawn(&policy, &["burst", "6", "/mem/working/limited/x"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "code", "{last}");
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let out = k.logs(id);
    for i in 1..=5 {
        assert!(out.contains(&format!("call {i}: ok\n")), "{out}");
    }
    assert!(
        out.contains("call 6: refused RateLimited retry_after_ms="),
        "{out}"
    );
    assert!(out.contains("after hint: ok"), "{out}");
    let writes = writes_to(&k, id, "/mem/working/limited/x");
    assert_eq!(writes.len(), 7, "{writes:?}");
    let limited: Vec<_> = writes
        .iter()
        .filter_map(|(d, r)| match r {
            Err(Errno::RateLimited { retry_after_ms }) => Some((d, *retry_after_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(limited.len(), 1, "{writes:?}");
    let (d, retry_after_ms) = limited[0];
    assert!(retry_after_ms > 0);
    assert!(!d.allowed && !d.violation, "{d:?}");
    assert!(d.rule.starts_with("limited ("), "{d:?}");
    assert!(
        writes[6].1.is_ok(),
        "the call after the hint: {:?}",
        writes[6]
    );
    assert_eq!(sigpolicy_count(&k, id), 0);
}

#[test]
fn approval_approved_performs_the_call() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "gated", "strict", &[], GATED);
    let id = k.spawn(&policy, &["write", "/mem/working/gated/report"]);
    let row = wait_pending(&k, id);
    assert_eq!(row["action"], "file_write");
    assert_eq!(row["resource"], "/mem/working/gated/report");
    assert!(row["age_ms"].is_u64(), "{row}");
    assert!(row["rule"].as_str().unwrap().contains("gated.md:"), "{row}");
    let approval = row["id"].as_u64().unwrap();
    let table = k.ctl_ok(&["approvals"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "AGENT", "ACTION", "RESOURCE", "BYTES", "AGE", "RULE"]
    );
    assert!(table.contains("/mem/working/gated/report"), "{table}");
    assert!(!k.logs(id).contains("wrote"), "answered before approval");

    let out = k.ctl_ok(&["approve", &approval.to_string()]);
    assert_eq!(out.trim(), format!("approval {approval} approved"));
    assert_eq!(k.wait_for_line(id, "wrote"), "wrote 4");
    // Bound to that one request: it cannot be decided again.
    assert_eq!(code(&k.ctl(&["approve", &approval.to_string()])), Some(4));
    assert_eq!(code(&k.ctl(&["deny", &approval.to_string()])), Some(4));
    assert!(approvals(&k).is_empty());

    let ev = k.events(id);
    let requested = ev
        .iter()
        .position(|e| matches!(e, RecordEvent::ApprovalRequested { approval: a, action, resource, .. } if *a == approval && action == "file_write" && resource == "/mem/working/gated/report"))
        .expect("parking recorded");
    let decided = ev
        .iter()
        .position(|e| matches!(e, RecordEvent::ApprovalDecided { approval: a, approved: true, outcome, by, .. } if *a == approval && outcome == "approved" && by.starts_with("operator (uid ")))
        .expect("approval recorded");
    let performed = ev
        .iter()
        .position(|e| matches!(e, RecordEvent::Syscall { call: Syscall::Write { path, .. }, decision, result: Ok(_), .. } if path == "/mem/working/gated/report" && decision.allowed))
        .expect("the approved write is recorded as performed");
    assert!(requested < decided && decided < performed);
}

#[test]
fn approval_denied_answers_approval_denied_and_does_not_kill() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "gated", "strict", &[], GATED);
    let id = k.spawn(&policy, &["write", "/mem/working/gated/report"]);
    let approval = wait_pending(&k, id)["id"].as_u64().unwrap();
    assert_eq!(code(&k.ctl(&["approve", "999999"])), Some(4));
    let out = k.ctl_ok(&["deny", &approval.to_string()]);
    assert_eq!(out.trim(), format!("approval {approval} denied"));
    let line = k.wait_for_line(id, "refused");
    assert!(line.starts_with("refused: ApprovalDenied"), "{line}");
    assert_eq!(code(&k.ctl(&["deny", &approval.to_string()])), Some(4));
    assert_eq!(k.info(id)["state"], "running");
    let writes = writes_to(&k, id, "/mem/working/gated/report");
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].1, Err(Errno::ApprovalDenied));
    assert!(!writes[0].0.allowed && !writes[0].0.violation);
    assert!(k.events(id).iter().any(|e| matches!(e, RecordEvent::ApprovalDecided { approval: a, approved: false, outcome, .. } if *a == approval && outcome == "denied")));
    assert_eq!(sigpolicy_count(&k, id), 0);
}

#[test]
fn approval_times_out_with_approval_timeout() {
    let k = TestKernel::start_with(false, &["--approval-timeout-ms", "300"]);
    let policy = write_policy(&k.work, "gated", "strict", &[], GATED);
    let id = k.spawn(&policy, &["write", "/mem/working/gated/report"]);
    let line = k.wait_for_line(id, "refused");
    assert!(line.starts_with("refused: ApprovalTimeout"), "{line}");
    assert!(approvals(&k).is_empty());
    let decided = k
        .events(id)
        .into_iter()
        .find_map(|e| match e {
            RecordEvent::ApprovalDecided {
                approved,
                outcome,
                by,
                waited_ms,
                ..
            } => Some((approved, outcome, by, waited_ms)),
            _ => None,
        })
        .expect("the timeout is recorded");
    assert!(!decided.0);
    assert_eq!(decided.1, "timed out");
    assert_eq!(decided.2, "kernel");
    assert!(decided.3 >= 300, "waited {} ms", decided.3);
    let writes = writes_to(&k, id, "/mem/working/gated/report");
    assert_eq!(writes[0].1, Err(Errno::ApprovalTimeout));
    assert_eq!(k.info(id)["state"], "running");
}

#[test]
fn a_parked_call_of_an_agent_that_ends_is_withdrawn() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "gated", "strict", &[], GATED);
    let id = k.spawn(&policy, &["write", "/mem/working/gated/report"]);
    let approval = wait_pending(&k, id)["id"].as_u64().unwrap();
    k.ctl_ok(&["kill", &id.to_string()]);
    k.wait(id);
    wait_until("the approval to be withdrawn", || approvals(&k).is_empty());
    assert_eq!(code(&k.ctl(&["approve", &approval.to_string()])), Some(4));
    wait_until("the withdrawal to be recorded", || {
        k.events(id).iter().any(|e| matches!(e, RecordEvent::ApprovalDecided { approval: a, approved: false, outcome, by, .. } if *a == approval && outcome == "agent ended" && by == "kernel"))
    });
}

#[test]
fn self_approval_attempts_mean_nothing() {
    let k = TestKernel::start();
    let policy = write_policy(
        &k.work,
        "selfapprove",
        "strict",
        &[],
        &format!("{GATED}{EMAIL}"),
    );
    // A `Call` whose params say it is approved, and a path that says so: both still park.
    let call = k.spawn(
        &policy,
        &[
            "call",
            "send_email",
            r#"{"to":"boss@example.com","approved":true}"#,
        ],
    );
    let write = k.spawn(&policy, &["write", "/mem/working/gated/approved=true"]);
    let call_row = wait_pending(&k, call);
    let write_row = wait_pending(&k, write);
    assert_eq!(call_row["action"], "send_email");
    assert!(call_row["resource"]
        .as_str()
        .unwrap()
        .contains("\"approved\":true"));
    assert_eq!(write_row["resource"], "/mem/working/gated/approved=true");
    // Still parked after a while: nothing the agents sent decided anything.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(approvals(&k).len(), 2);
    assert!(!k.logs(call).contains("answer"), "{}", k.logs(call));
    assert!(!k.logs(write).contains("wrote"), "{}", k.logs(write));
    for row in [&call_row, &write_row] {
        k.ctl_ok(&["deny", &row["id"].to_string()]);
    }
    assert!(k
        .wait_for_line(call, "refused")
        .starts_with("refused: ApprovalDenied"));
    assert!(k
        .wait_for_line(write, "refused")
        .starts_with("refused: ApprovalDenied"));
}

#[test]
fn policy_reload_allows_what_was_denied_and_records_both_digests() {
    let k = TestKernel::start();
    let before = write_policy(&k.work, "before", "strict", &[], DENY_SECRETS);
    let after = write_policy(&k.work, "after", "strict", &[], "");
    let id = k.spawn(&before, &["until-allowed", "/mem/working/secrets/key"]);
    k.wait_for_line(id, "denied");
    let old_digest = k.info(id)["policy_digest"].as_str().unwrap().to_string();

    // A file that does not load is refused with its position and changes nothing.
    let bad = k.work.join("bad.md");
    std::fs::write(&bad, BAD_POLICY).unwrap();
    let refused = k.ctl(&["policy", "reload", &id.to_string(), bad.to_str().unwrap()]);
    assert_eq!(code(&refused), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("bad.md:9:5:"), "{stderr}");
    assert_eq!(k.info(id)["policy_digest"], old_digest.as_str());
    assert_eq!(
        code(&k.ctl(&["policy", "reload", "999999", after.to_str().unwrap()])),
        Some(4)
    );

    let out = k.ctl_ok(&["policy", "reload", &id.to_string(), after.to_str().unwrap()]);
    assert!(out.contains(&old_digest), "{out}");
    assert_eq!(k.wait_for_line(id, "wrote"), "wrote 4");
    let info = k.info(id);
    let new_digest = info["policy_digest"].as_str().unwrap();
    assert_ne!(new_digest, old_digest);
    assert!(out.trim().ends_with(new_digest), "{out}");
    assert!(info["policy"].as_str().unwrap().ends_with("after.md"));

    let ev = k.events(id);
    let reloads: Vec<usize> = ev
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, RecordEvent::PolicyReloaded { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        reloads.len(),
        1,
        "only the good file is recorded as a reload"
    );
    match &ev[reloads[0]] {
        RecordEvent::PolicyReloaded {
            old_digest: o,
            new_digest: n,
            path,
        } => {
            assert_eq!(to_hex(o), old_digest);
            assert_eq!(to_hex(n), new_digest);
            assert!(path.ends_with("after.md"), "{path}");
        }
        _ => unreachable!(),
    }
    let denied_check = ev.iter().position(|e| {
        matches!(e, RecordEvent::Syscall { call: Syscall::CheckPolicy { .. }, result: Ok(Reply::Decision(d)), .. } if !d.allowed)
    });
    let write = ev.iter().position(|e| {
        matches!(e, RecordEvent::Syscall { call: Syscall::Write { path, .. }, decision, result: Ok(_), .. } if path == "/mem/working/secrets/key" && decision.allowed && !decision.violation)
    });
    assert!(
        denied_check.unwrap() < reloads[0],
        "denied before the reload"
    );
    assert!(write.unwrap() > reloads[0], "allowed after it");
    assert_eq!(sigpolicy_count(&k, id), 0);
}

fn base_policy(dir: &Path) -> std::path::PathBuf {
    let text = "---\nkernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies:\n  - name: any-working\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/mem/working/**\"]\n  - name: no-forbidden\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/working/forbidden/**\"]\n---\n";
    let path = dir.join("base.md");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn base_policy_refuses_what_the_agent_policy_allows() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_policy(dir.path());
    let k = TestKernel::start_with(false, &["--base-policy", base.to_str().unwrap()]);
    // The agent's own policy is permissive and allows all of /mem/working; the strict base
    // forbids a part of it, so that violation is strict.
    let policy = write_policy(&k.work, "agent", "permissive", &[], "");
    let fine = k.spawn(&policy, &["write", "/mem/working/fine"]);
    assert_eq!(k.wait_for_line(fine, "wrote"), "wrote 4");
    let id = k.spawn(&policy, &["write", "/mem/working/forbidden/x"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}");
    let writes = writes_to(&k, id, "/mem/working/forbidden/x");
    assert_eq!(writes.len(), 1, "{writes:?}");
    let (d, result) = &writes[0];
    assert!(!d.allowed && d.violation, "{d:?}");
    assert!(d.rule.starts_with("no-forbidden ("), "{d:?}");
    assert!(
        d.rule.contains("base.md:"),
        "the refusal names the base file: {d:?}"
    );
    assert!(d.reason.starts_with("base policy "), "{d:?}");
    assert!(
        matches!(result, Err(Errno::PermissionDenied { rule, .. }) if rule.contains("base.md:")),
        "{result:?}"
    );
}

#[test]
fn a_base_policy_that_does_not_load_stops_the_kernel_start() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.md");
    std::fs::write(&bad, BAD_POLICY).unwrap();
    let out = Command::new(binary("agentctl"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["kernel", "start", "--base-policy"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.md:9:5:"), "{stderr}");
    assert!(!dir.path().join("state/kernel.sock").exists());
}

//! The operator's event hook (`--on-event PROGRAM`): told, without polling, when a call waits
//! for approval, a call breaks the policy, an agent is ended by `SIGPOLICY`/`SIGTRUST`, an
//! agent's sandbox refusals reach `--on-event-sandbox-threshold`, or the flight recorder
//! fails or resumes.
//!
//! Each event runs PROGRAM once, with no arguments, the event as one line of JSON on its stdin
//! and its kind in `AGENTOS_EVENT`. The kernel never waits for it: events go into a bounded
//! queue ([`QUEUE`]; when full, the event is dropped) served by one task that runs the hooks
//! one after another, each killed after `--on-event-timeout-ms`. A hook that fails or hangs is
//! recorded (`HookFailed`) and counted (`agentos_hook_failures_total`), so the operator learns
//! of it from the log, not from a stalled agent. Drops are counted, and recorded as one
//! `HookFailed` (kind `dropped`, with the count) when the runner next takes an event: an agent
//! that floods the queue with violations cannot make the kernel write a record per drop
//! outside that agent's own share of the recorder.
//!
//! The JSON (`"v": 1`; fields by kind, every string escaped by JSON):
//! `{"v":1,"event":"approval_pending","time_ms":…,"agent":{"id":3,"name":"builder"},
//! "approval":12,"action":"file_write","resource":"/mem/working/outbox/x","rule":"gated (p.md:14)"}`;
//! `violation` has `syscall`, `action`, `rule`, `mode`, `allowed`; `killed` has `signal`,
//! `reason`; `sandbox_denials` has `count`, `threshold`; `recorder_failed` has `what`;
//! `recorder_resumed` has `refused`, `what`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::{AgentId, Signal};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::recorder::RecordEvent;
use crate::util::lock;

/// Events waiting for the hook; more are dropped (and that is recorded).
pub(crate) const QUEUE: usize = 256;

/// The default `--on-event-timeout-ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// The default `--on-event-sandbox-threshold`.
pub const DEFAULT_SANDBOX_THRESHOLD: u64 = 10;

/// How the hook is run (from the kernel's options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookConfig {
    /// The program run for each event.
    pub program: PathBuf,
    /// How long one run may take before it is killed.
    pub timeout: Duration,
    /// An agent's sandbox refusals that make one `sandbox_denials` event.
    pub sandbox_threshold: u64,
}

/// Told what went wrong with one event's hook: the agent the event was about (the record is
/// charged to it), the event's kind and why (the kernel records it as `HookFailed`).
pub(crate) type OnFailure = Box<dyn Fn(Option<AgentId>, &str, String) + Send + Sync>;

/// One event for the hook.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    /// The agent it is about, if any.
    pub agent: Option<AgentId>,
    /// `approval_pending`, `violation`, …
    pub kind: String,
    /// The line the hook reads.
    pub json: Value,
}

/// The event hook: a queue and the task that drains it.
pub(crate) struct Hooks {
    config: HookConfig,
    tx: mpsc::Sender<Event>,
    /// Events dropped since the runner last reported drops.
    dropped: std::sync::Arc<AtomicU64>,
    /// Sandbox refusals per agent, until the threshold is reached (then `u64::MAX`: told).
    sandbox: Mutex<HashMap<AgentId, u64>>,
    /// Whether a `recorder_failed` event was sent and no record has succeeded since.
    recorder_failing: AtomicBool,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Who an event belongs to (borrowed: most records are no event, and cost nothing here).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Who<'a> {
    pub id: Option<AgentId>,
    pub name: Option<&'a str>,
}

impl Hooks {
    /// Starts the task that runs the hook (inside the kernel's runtime).
    pub(crate) fn start(config: HookConfig, on_failure: OnFailure) -> Hooks {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = std::sync::Arc::new(AtomicU64::new(0));
        tokio::spawn(run(
            config.clone(),
            rx,
            std::sync::Arc::clone(&dropped),
            on_failure,
        ));
        Hooks {
            config,
            tx,
            dropped,
            sandbox: Mutex::new(HashMap::new()),
            recorder_failing: AtomicBool::new(false),
        }
    }

    /// The hook's event for `event` of `who`, if it is one the hook is told of.
    pub(crate) fn event_of(&self, who: &Who<'_>, event: &RecordEvent) -> Option<Event> {
        if let (RecordEvent::Exit { .. }, Some(id)) = (event, who.id) {
            self.forget(id);
        }
        let (kind, fields) = match event {
            RecordEvent::ApprovalRequested {
                approval,
                action,
                resource,
                rule,
                ..
            } => (
                "approval_pending",
                json!({ "approval": approval, "action": action, "resource": resource, "rule": rule }),
            ),
            RecordEvent::Syscall { call, decision, .. }
            | RecordEvent::SyscallBlobs { call, decision, .. }
                if decision.violation =>
            {
                (
                    "violation",
                    json!({
                        "syscall": call.name(),
                        "rule": decision.rule,
                        "mode": decision.mode,
                        "allowed": decision.allowed,
                        "reason": decision.reason,
                    }),
                )
            }
            RecordEvent::Egress {
                target, decision, ..
            } if decision.violation => (
                "violation",
                json!({
                    "action": "network",
                    "target": target,
                    "rule": decision.rule,
                    "mode": decision.mode,
                    "allowed": decision.allowed,
                    "reason": decision.reason,
                }),
            ),
            RecordEvent::Exit {
                status:
                    ExitStatus::Killed {
                        signal: signal @ (Signal::Policy | Signal::Trust),
                        reason,
                    },
            } => (
                "killed",
                json!({ "signal": signal.name(), "reason": reason }),
            ),
            RecordEvent::SandboxDenied { .. }
            | RecordEvent::SandboxAccess { .. }
            | RecordEvent::SandboxFlood { .. } => {
                let id = who.id?;
                let n = match event {
                    RecordEvent::SandboxFlood { suppressed, .. } => *suppressed,
                    _ => 1, // one refusal per SandboxDenied or SandboxAccess record
                };
                let mut counts = lock(&self.sandbox);
                let count = counts.entry(id).or_insert(0);
                if *count == u64::MAX {
                    return None;
                }
                *count = count.saturating_add(n);
                if *count < self.config.sandbox_threshold {
                    return None;
                }
                let reached = *count;
                *count = u64::MAX;
                (
                    "sandbox_denials",
                    json!({ "count": reached, "threshold": self.config.sandbox_threshold }),
                )
            }
            RecordEvent::RecorderResumed { refused, what, .. } => {
                self.recorder_failing.store(false, Ordering::Relaxed);
                (
                    "recorder_resumed",
                    json!({ "refused": refused, "what": what }),
                )
            }
            // Nothing an operator must hear of at once: each is in the log, and the metrics
            // count them. Exhaustive, so a new kind of record is decided here too.
            RecordEvent::Syscall { .. }
            | RecordEvent::SyscallBlobs { .. }
            | RecordEvent::Exit { .. }
            | RecordEvent::KernelStart { .. }
            | RecordEvent::KernelStop { .. }
            | RecordEvent::Spawn { .. }
            | RecordEvent::SpawnRefused { .. }
            | RecordEvent::Sandbox(_)
            | RecordEvent::Handshake { .. }
            | RecordEvent::Signal { .. }
            | RecordEvent::ProtocolViolation { .. }
            | RecordEvent::SandboxCapabilities { .. }
            | RecordEvent::ApprovalDecided { .. }
            | RecordEvent::PolicyReloaded { .. }
            | RecordEvent::ReadOnlyGranted { .. }
            | RecordEvent::Recovery { .. }
            | RecordEvent::RecorderBroken { .. }
            | RecordEvent::MemoryCheckpoint { .. }
            | RecordEvent::MemoryRestored { .. }
            | RecordEvent::SandboxLimit { .. }
            | RecordEvent::HookFailed { .. }
            | RecordEvent::McpServerExited { .. }
            | RecordEvent::Egress { .. }
            | RecordEvent::EgressClosed { .. }
            | RecordEvent::WitnessCosigned { .. }
            | RecordEvent::WitnessFailed { .. }
            | RecordEvent::KeyRotated { .. } => return None,
        };
        let mut v = json!({
            "v": 1,
            "event": kind,
            "time_ms": crate::util::now_ms(),
            "agent": { "id": who.id.map(|a| a.0), "name": who.name },
        });
        if let (Some(v), Value::Object(f)) = (v.as_object_mut(), fields) {
            v.extend(f);
        }
        Some(Event {
            agent: who.id,
            kind: kind.to_string(),
            json: v,
        })
    }

    /// Queues an event for the hook; never waits (a full queue drops it, recorded).
    pub(crate) fn offer(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The recorder could not record an event: tells the hook once per failure.
    pub(crate) fn recorder_failed(&self, what: &str) {
        if !self.recorder_failing.swap(true, Ordering::Relaxed) {
            let v = json!({
                "v": 1,
                "event": "recorder_failed",
                "time_ms": crate::util::now_ms(),
                "agent": { "id": null, "name": null },
                "what": what,
            });
            self.offer(Event {
                agent: None,
                kind: "recorder_failed".into(),
                json: v,
            });
        }
    }

    /// Forgets an ended agent's sandbox count.
    pub(crate) fn forget(&self, agent: AgentId) {
        lock(&self.sandbox).remove(&agent);
    }
}

/// Runs the hook for each queued event, one at a time.
async fn run(
    config: HookConfig,
    mut rx: mpsc::Receiver<Event>,
    dropped: std::sync::Arc<AtomicU64>,
    on_failure: OnFailure,
) {
    while let Some(e) = rx.recv().await {
        if let Some(why) = drops_to_report(&dropped) {
            tracing::warn!(%why, "event hook: events dropped");
            on_failure(None, "dropped", why);
        }
        if let Err(why) = run_one(&config, &e.kind, &e.json).await {
            tracing::warn!(event = %e.kind, %why, "event hook failed");
            on_failure(e.agent, &e.kind, why);
        }
    }
}

/// The drops since the last report, as one sentence (and the count starts again).
fn drops_to_report(dropped: &AtomicU64) -> Option<String> {
    match dropped.swap(0, Ordering::Relaxed) {
        0 => None,
        n => Some(format!(
            "{n} event(s) dropped: {QUEUE} events already waited for the hook"
        )),
    }
}

async fn run_one(config: &HookConfig, kind: &str, v: &Value) -> Result<(), String> {
    let mut child = tokio::process::Command::new(&config.program)
        .env("AGENTOS_EVENT", kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", config.program.display()))?;
    let line = format!("{v}\n");
    let work = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its stdin is not an error.
            let _ = stdin.write_all(line.as_bytes()).await;
        }
        child.wait().await
    };
    match tokio::time::timeout(config.timeout, work).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{} {status}", config.program.display())),
        Ok(Err(e)) => Err(format!("cannot wait for {}: {e}", config.program.display())),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "{} ran over {} ms and was killed",
                config.program.display(),
                config.timeout.as_millis()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::DecisionRecord;
    use agentos_syscalls::{Errno, Syscall};

    fn hooks(threshold: u64) -> Hooks {
        let (tx, _rx) = mpsc::channel(1);
        Hooks {
            config: HookConfig {
                program: "/bin/true".into(),
                timeout: Duration::from_secs(1),
                sandbox_threshold: threshold,
            },
            tx,
            dropped: std::sync::Arc::new(AtomicU64::new(0)),
            sandbox: Mutex::new(HashMap::new()),
            recorder_failing: AtomicBool::new(false),
        }
    }

    fn who() -> Who<'static> {
        Who {
            id: Some(AgentId(3)),
            name: Some("builder"),
        }
    }

    #[test]
    fn an_approval_is_an_event_with_what_waits() {
        let h = hooks(10);
        let Event { kind, json: v, .. } = h
            .event_of(
                &who(),
                &RecordEvent::ApprovalRequested {
                    approval: 12,
                    request: 1,
                    action: "file_write".into(),
                    resource: "/mem/working/outbox/\u{1b}[2J".into(),
                    rule: "gated (p.md:14)".into(),
                },
            )
            .expect("an event");
        assert_eq!(kind, "approval_pending");
        assert_eq!(v["v"], 1);
        assert_eq!(v["agent"]["name"], "builder");
        assert_eq!(v["agent"]["id"], 3);
        assert_eq!(v["approval"], 12);
        assert_eq!(v["resource"], "/mem/working/outbox/\u{1b}[2J");
        assert!(
            v.to_string().contains("\\u001b[2J"),
            "escaped on the wire: {v}"
        );
    }

    #[test]
    fn only_violations_of_all_calls_are_events() {
        let h = hooks(10);
        let call = |violation: bool| RecordEvent::Syscall {
            id: 1,
            call: Syscall::Checkpoint,
            decision: DecisionRecord {
                allowed: true,
                policy_allowed: !violation,
                rule: "r (p.md:1)".into(),
                reason: String::new(),
                violation,
                mode: "permissive".into(),
            },
            result: Err(Errno::Busy { what: "x".into() }),
            duration_us: 1,
        };
        assert!(h.event_of(&who(), &call(false)).is_none());
        let Event { kind, json: v, .. } = h.event_of(&who(), &call(true)).expect("a violation");
        assert_eq!(kind, "violation");
        assert_eq!(v["mode"], "permissive");
    }

    #[test]
    fn sandbox_refusals_make_one_event_at_the_threshold() {
        let h = hooks(3);
        let denied = RecordEvent::SandboxDenied {
            syscall: "socket".into(),
            nr: 41,
            args: [0; 6],
        };
        assert!(h.event_of(&who(), &denied).is_none());
        assert!(h.event_of(&who(), &denied).is_none());
        let Event { kind, json: v, .. } = h.event_of(&who(), &denied).expect("the third");
        assert_eq!(kind, "sandbox_denials");
        assert_eq!(v["count"], 3);
        assert!(h.event_of(&who(), &denied).is_none(), "once per agent");
    }

    #[test]
    fn a_full_queue_drops_and_the_drops_are_told_once() {
        let (tx, _queue) = mpsc::channel(1);
        let mut h = hooks(10);
        h.tx = tx;
        for _ in 0..5 {
            h.offer(Event {
                agent: None,
                kind: "violation".into(),
                json: json!({}),
            });
        }
        assert_eq!(h.dropped.load(Ordering::Relaxed), 4);
        let told = drops_to_report(&h.dropped).expect("drops to report");
        assert!(told.starts_with("4 event(s) dropped"), "{told}");
        assert_eq!(drops_to_report(&h.dropped), None, "told once");
    }
}

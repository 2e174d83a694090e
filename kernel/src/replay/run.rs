//! Replay, re-run form (DESIGN §8): a program is started again in a real sandbox on an
//! ephemeral kernel whose syscall server neither judges nor performs anything. Each call is
//! answered with the recorded result of the recorded call of the same request id — the ids,
//! not the arrival order, pair them, since requests may be in flight concurrently — and the
//! first call that does not match stops the agent and becomes a [`Divergence`].
//!
//! ```text
//! recorded agent's Syscall records ──► Script (request id → recorded call + result)
//!                                         │
//! re-run program ──► replay kernel's server ──► Session::answer ──► recorded result
//!                                                         └──► Divergence: agent killed
//! agent ended ──► Session::finish ──► Outcome (replayed calls, divergence, exit)
//! ```
//!
//! What counts as a divergence:
//! - a call whose request id the recording does not have (or whose recorded call was already
//!   answered), while recorded calls remain: the program made a call the recording lacks;
//! - a call whose id matches but whose syscall or parameters differ;
//! - the program ending while recorded calls remain (it ended early);
//! - a call after the last recorded one when the recorded run exited by itself (it ended
//!   late), or an exit code other than the recorded one.
//!
//! A recorded run that did not end by itself (killed by a signal, or the log ends while it
//! ran) has no recorded end to compare with: once every recorded call is answered, the next
//! call ends the re-run there ([`Outcome::ended_at_recording_end`]), which is not a divergence.
//! Signals are not re-delivered; the recorded `Exit` syscall is a call like any other.
//!
//! Never: perform a call, judge a call, or write to the recorded log (the replay kernel runs
//! on its own state dir, with its own recorder).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::{AgentId, Errno, Reply, Syscall};
use serde::Serialize;
use serde_json::Value;

use crate::recorder::{Record, RecordEvent};

/// One recorded syscall of the agent being replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// The record's sequence number in the log.
    pub seq: u64,
    /// The agent's request id.
    pub id: u64,
    pub call: Syscall,
    pub result: Result<Reply, Errno>,
}

/// How the recorded agent was started (its `Spawn` record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedSpawn {
    pub seq: u64,
    pub program: String,
    pub args: Vec<String>,
    pub policy_path: String,
    #[serde(with = "hex_digest")]
    pub policy_digest: [u8; 32],
}

mod hex_digest {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

/// Everything the log says about one agent's run, in log order.
#[derive(Debug, Clone)]
pub struct Script {
    pub agent: AgentId,
    pub spawn: RecordedSpawn,
    /// Every recorded syscall, in log order.
    pub calls: Vec<RecordedCall>,
    /// How the recorded run ended; `None` when the log has no end for it.
    pub end: Option<ExitStatus>,
}

impl Script {
    /// The recorded run of `agent` in `records` (a verified log); an error when the log holds
    /// no spawn of that agent.
    pub fn from_records(records: &[Record], agent: u64) -> Result<Script, String> {
        let mine = records
            .iter()
            .filter(|r| r.agent.map(|a| a.0) == Some(agent));
        let mut spawn = None;
        let mut calls = Vec::new();
        let mut end = None;
        for r in mine {
            match &r.event {
                RecordEvent::Spawn {
                    program,
                    args,
                    policy_path,
                    policy_digest,
                    ..
                } if spawn.is_none() => {
                    spawn = Some(RecordedSpawn {
                        seq: r.seq,
                        program: program.clone(),
                        args: args.clone(),
                        policy_path: policy_path.clone(),
                        policy_digest: *policy_digest,
                    });
                }
                RecordEvent::Syscall {
                    id, call, result, ..
                } => calls.push(RecordedCall {
                    seq: r.seq,
                    id: *id,
                    call: call.clone(),
                    result: result.clone(),
                }),
                RecordEvent::Exit { status } => end = Some(status.clone()),
                // A later spawn of the same id (none: ids are not reused), the kernel's and
                // the jail's own records, and blobs (resolved into `Syscall` when the log is
                // read): nothing the re-run answers from.
                RecordEvent::Spawn { .. }
                | RecordEvent::KernelStart { .. }
                | RecordEvent::KernelStop { .. }
                | RecordEvent::SpawnRefused { .. }
                | RecordEvent::Sandbox(_)
                | RecordEvent::Handshake { .. }
                | RecordEvent::Signal { .. }
                | RecordEvent::ProtocolViolation { .. }
                | RecordEvent::SandboxDenied { .. }
                | RecordEvent::SandboxCapabilities { .. }
                | RecordEvent::ApprovalRequested { .. }
                | RecordEvent::ApprovalDecided { .. }
                | RecordEvent::PolicyReloaded { .. }
                | RecordEvent::ReadOnlyGranted { .. }
                | RecordEvent::Recovery { .. }
                | RecordEvent::RecorderBroken { .. }
                | RecordEvent::MemoryCheckpoint { .. }
                | RecordEvent::MemoryRestored { .. }
                | RecordEvent::SandboxAccess { .. }
                | RecordEvent::SandboxFlood { .. }
                | RecordEvent::SandboxLimit { .. }
                | RecordEvent::RecorderResumed { .. }
                | RecordEvent::HookFailed { .. }
                | RecordEvent::McpServerExited { .. }
                | RecordEvent::Egress { .. }
                | RecordEvent::EgressClosed { .. }
                | RecordEvent::WitnessCosigned { .. }
                | RecordEvent::WitnessFailed { .. }
                | RecordEvent::KeyRotated { .. }
                | RecordEvent::SyscallBlobs { .. } => {}
            }
        }
        let spawn = spawn.ok_or_else(|| format!("the log holds no spawn of agent {agent}"))?;
        Ok(Script {
            agent: AgentId(agent),
            spawn,
            calls,
            end,
        })
    }
}

/// What kind of divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceKind {
    /// A call whose request id the recording does not hold (or already answered).
    NotRecorded,
    /// The same request id with another syscall or other parameters.
    Differs,
    /// The program ended while recorded calls remained.
    EndedEarly,
    /// A call after the recorded run had made its last call and exited.
    EndedLate,
    /// The program exited with another code than the recorded run.
    ExitDiffers,
}

/// One syscall as shown in a divergence report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallView {
    /// The record's sequence number (expected calls only).
    pub seq: Option<u64>,
    pub id: u64,
    pub syscall: String,
    pub call: Syscall,
}

/// One row of the side-by-side comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    /// `syscall`, or a parameter's name.
    pub field: String,
    /// Rendered for a human (bytes as text when they are UTF-8, else hex; long values cut);
    /// empty when that side has no such field.
    pub expected: String,
    pub actual: String,
    pub differs: bool,
}

/// The first place where the re-run left the recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    pub kind: DivergenceKind,
    pub what: String,
    /// The recorded call expected at that point, if any.
    pub expected: Option<CallView>,
    /// The call the program made, if any.
    pub actual: Option<CallView>,
    /// Field by field, when both calls are known.
    pub fields: Vec<FieldDiff>,
}

/// How the replaying server answers one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The recorded result of record `seq`.
    Recorded {
        seq: u64,
        result: Result<Reply, Errno>,
    },
    /// The call diverges (or comes after a divergence): stop the agent, answer nothing.
    Diverged { reason: String },
    /// Every recorded call is answered and the recorded run did not end by itself: the re-run
    /// ends here too (stop the agent; not a divergence).
    RecordingEnded,
    /// A call from another agent than the one being replayed (the replay kernel runs one).
    Foreign,
}

/// The result of a re-run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The recorded agent.
    pub agent: u64,
    /// Syscalls in the recording.
    pub recorded_calls: usize,
    /// Calls answered from the recording.
    pub replayed: u64,
    pub divergence: Option<Divergence>,
    /// How the recorded run ended (`None`: the log has no end for it).
    pub recorded_end: Option<ExitStatus>,
    /// How the re-run ended.
    pub exit: ExitStatus,
    /// The re-run was stopped because the recording (of a run that did not end by itself)
    /// has no more calls.
    pub ended_at_recording_end: bool,
}

#[derive(Debug)]
struct State {
    /// Request id → its recorded calls not yet answered (more than one only if the recorded
    /// agent reused an id).
    pending: BTreeMap<u64, VecDeque<RecordedCall>>,
    remaining: usize,
    replayed: u64,
    /// The agent being served (the first that calls).
    bound: Option<AgentId>,
    divergence: Option<Divergence>,
    ended_at_recording_end: bool,
}

/// A re-run in progress: the replay kernel's syscall server asks it for every answer.
#[derive(Debug)]
pub struct Session {
    script: Script,
    state: Mutex<State>,
}

impl Session {
    pub fn new(script: Script) -> Session {
        let mut pending: BTreeMap<u64, VecDeque<RecordedCall>> = BTreeMap::new();
        for c in &script.calls {
            pending.entry(c.id).or_default().push_back(c.clone());
        }
        let state = State {
            pending,
            remaining: script.calls.len(),
            replayed: 0,
            bound: None,
            divergence: None,
            ended_at_recording_end: false,
        };
        Session {
            script,
            state: Mutex::new(state),
        }
    }

    pub fn script(&self) -> &Script {
        &self.script
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The recorded exit code, when the recorded run exited by itself.
    fn recorded_code(&self) -> Option<i32> {
        match &self.script.end {
            Some(ExitStatus::Code(c)) => Some(*c),
            Some(
                ExitStatus::PosixSignal(_)
                | ExitStatus::Killed { .. }
                | ExitStatus::SandboxFailed { .. },
            )
            | None => None,
        }
    }

    /// Answers request `id` of `agent` from the recording, or reports why it cannot.
    pub fn answer(&self, agent: AgentId, id: u64, call: &Syscall) -> Answer {
        let mut s = self.lock();
        if *s.bound.get_or_insert(agent) != agent {
            return Answer::Foreign;
        }
        if let Some(d) = &s.divergence {
            return Answer::Diverged {
                reason: format!("after the divergence: {}", d.what),
            };
        }
        if s.ended_at_recording_end {
            return Answer::RecordingEnded;
        }
        let actual = CallView {
            seq: None,
            id,
            syscall: call.name().into(),
            call: call.clone(),
        };
        let queue = s.pending.get_mut(&id);
        let found = queue.and_then(|q| q.pop_front());
        let divergence = match found {
            Some(rec) if rec.call == *call => {
                s.remaining -= 1;
                s.replayed += 1;
                return Answer::Recorded {
                    seq: rec.seq,
                    result: rec.result,
                };
            }
            Some(rec) => Divergence {
                kind: DivergenceKind::Differs,
                what: format!(
                    "request {id}: the program called {} where the recording has {} (record {}) with other parameters",
                    call.name(),
                    rec.call.name(),
                    rec.seq
                ),
                fields: compare(&rec.call, call),
                expected: Some(view(&rec)),
                actual: Some(actual),
            },
            None if s.remaining == 0 => match self.recorded_code() {
                None => {
                    s.ended_at_recording_end = true;
                    return Answer::RecordingEnded;
                }
                Some(code) => Divergence {
                    kind: DivergenceKind::EndedLate,
                    what: format!(
                        "request {id}: the program called {} after the recorded run had made all its {} calls and exited with code {code}",
                        call.name(),
                        self.script.calls.len()
                    ),
                    expected: None,
                    fields: Vec::new(),
                    actual: Some(actual),
                },
            },
            None => {
                let next = next_pending(&s.pending);
                Divergence {
                    kind: DivergenceKind::NotRecorded,
                    what: format!(
                        "request {id}: the program called {} but the recording has no call with request id {id}{}",
                        call.name(),
                        next.as_ref()
                            .map(|n| format!(" (the next recorded call is request {} {}, record {})", n.id, n.call.name(), n.seq))
                            .unwrap_or_default()
                    ),
                    fields: next
                        .as_ref()
                        .map(|n| compare(&n.call, call))
                        .unwrap_or_default(),
                    expected: next.as_ref().map(view),
                    actual: Some(actual),
                }
            }
        };
        let reason = divergence.what.clone();
        s.divergence = Some(divergence);
        Answer::Diverged { reason }
    }

    /// The outcome once the re-run agent has ended with `exit`.
    pub fn finish(&self, exit: &ExitStatus) -> Outcome {
        let mut s = self.lock();
        if s.divergence.is_none() && !s.ended_at_recording_end {
            if s.remaining > 0 {
                let next = next_pending(&s.pending);
                s.divergence = Some(Divergence {
                    kind: DivergenceKind::EndedEarly,
                    what: format!(
                        "the program ended ({exit}) before making {} more recorded call(s){}",
                        s.remaining,
                        next.as_ref()
                            .map(|n| format!(
                                ", the next being request {} {} (record {})",
                                n.id,
                                n.call.name(),
                                n.seq
                            ))
                            .unwrap_or_default()
                    ),
                    expected: next.as_ref().map(view),
                    actual: None,
                    fields: Vec::new(),
                });
            } else if let Some(code) = self.recorded_code() {
                if *exit != ExitStatus::Code(code) {
                    s.divergence = Some(Divergence {
                        kind: DivergenceKind::ExitDiffers,
                        what: format!(
                            "the recorded run exited with code {code}; the re-run {exit}"
                        ),
                        expected: None,
                        actual: None,
                        fields: Vec::new(),
                    });
                }
            }
        }
        Outcome {
            agent: self.script.agent.0,
            recorded_calls: self.script.calls.len(),
            replayed: s.replayed,
            divergence: s.divergence.clone(),
            recorded_end: self.script.end.clone(),
            exit: exit.clone(),
            ended_at_recording_end: s.ended_at_recording_end,
        }
    }
}

/// `(bytes, files)` in the working memory of agent `agent` on `kernel` (kept after it ends):
/// the evidence that a re-run performed no write.
pub fn working_usage(kernel: &crate::Kernel, agent: AgentId) -> Option<(u64, u64)> {
    let a = kernel
        .inner
        .find(&agentos_syscalls::control::AgentRef::Id(agent))
        .ok()?;
    let usage = crate::util::lock(&a.working).usage();
    Some(usage)
}

fn view(c: &RecordedCall) -> CallView {
    CallView {
        seq: Some(c.seq),
        id: c.id,
        syscall: c.call.name().into(),
        call: c.call.clone(),
    }
}

/// The unanswered recorded call that comes first in the log.
fn next_pending(pending: &BTreeMap<u64, VecDeque<RecordedCall>>) -> Option<RecordedCall> {
    pending
        .values()
        .filter_map(|q| q.front())
        .min_by_key(|c| c.seq)
        .cloned()
}

/// A call's parameters by name (serde's externally tagged form: `{"Read": {..}}`).
fn fields(call: &Syscall) -> Vec<(String, Value)> {
    match serde_json::to_value(call) {
        Ok(Value::Object(m)) => m
            .into_iter()
            .flat_map(|(_, body)| match body {
                Value::Object(f) => f.into_iter().collect::<Vec<_>>(),
                Value::Null => Vec::new(),
                other => vec![("value".to_string(), other)],
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The longest rendering of one value in a report.
const SHOWN: usize = 60;

/// A value for a human: byte arrays as text (UTF-8) or hex, long values cut.
pub fn render(v: &Value) -> String {
    let bytes: Option<Vec<u8>> = match v {
        Value::Array(a) if a.iter().all(|x| x.as_u64().is_some_and(|n| n <= 255)) => a
            .iter()
            .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        _ => None,
    };
    let (mut text, total) = match (&bytes, v) {
        (Some(b), _) if !b.is_empty() => match std::str::from_utf8(b) {
            Ok(s) => (format!("{s:?}"), Some(b.len())),
            Err(_) => (format!("0x{}", hex::encode(b)), Some(b.len())),
        },
        (_, Value::Null) => ("-".into(), None),
        (_, other) => (other.to_string(), None),
    };
    if text.chars().count() > SHOWN {
        text = text.chars().take(SHOWN).collect::<String>() + "…";
    }
    match total {
        Some(n) if n > 8 => format!("{text} ({n} bytes)"),
        _ => text,
    }
}

/// The side-by-side rows of two calls: the syscall, then every parameter of either.
pub fn compare(expected: &Syscall, actual: &Syscall) -> Vec<FieldDiff> {
    let mut rows = vec![FieldDiff {
        field: "syscall".into(),
        expected: expected.name().into(),
        actual: actual.name().into(),
        differs: expected.name() != actual.name(),
    }];
    let e = fields(expected);
    let a = fields(actual);
    let mut names: Vec<&String> = e.iter().map(|(n, _)| n).collect();
    for (n, _) in &a {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    for name in names {
        let ev = e.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let av = a.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        rows.push(FieldDiff {
            field: name.clone(),
            expected: ev.map(render).unwrap_or_default(),
            actual: av.map(render).unwrap_or_default(),
            differs: ev != av,
        });
    }
    rows
}

/// Who answers an agent's calls: fixed when the kernel starts, for every agent it serves.
#[derive(Debug, Clone)]
pub enum Performer {
    /// Judge each call against the agent's policy, then perform it (the kernel).
    Live,
    /// Answer each call from a recording (`agentctl replay run`): nothing is judged or
    /// performed; see `server/replay.rs`.
    Replay(std::sync::Arc<Session>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentos_syscalls::WriteMode;

    fn read(path: &str) -> Syscall {
        Syscall::Read {
            path: path.into(),
            offset: 0,
            len: None,
        }
    }

    fn script(calls: &[(u64, Syscall)], end: Option<ExitStatus>) -> Script {
        Script {
            agent: AgentId(7),
            spawn: RecordedSpawn {
                seq: 0,
                program: "/bin/agent".into(),
                args: Vec::new(),
                policy_path: "p.md".into(),
                policy_digest: [0; 32],
            },
            calls: calls
                .iter()
                .enumerate()
                .map(|(i, (id, c))| RecordedCall {
                    seq: 10 + i as u64,
                    id: *id,
                    call: c.clone(),
                    result: Ok(Reply::Data(format!("answer {id}").into_bytes())),
                })
                .collect(),
            end,
        }
    }

    const A: AgentId = AgentId(1);

    #[test]
    fn answers_by_request_id_in_any_order_and_an_identical_run_has_no_divergence() {
        let s = Session::new(script(
            &[
                (1, read("/a")),
                (2, read("/b")),
                (3, Syscall::Exit { code: 0 }),
            ],
            Some(ExitStatus::Code(0)),
        ));
        // Concurrent requests arrive out of order: matched by id.
        assert_eq!(
            s.answer(A, 2, &read("/b")),
            Answer::Recorded {
                seq: 11,
                result: Ok(Reply::Data(b"answer 2".to_vec()))
            }
        );
        assert!(matches!(
            s.answer(A, 1, &read("/a")),
            Answer::Recorded { seq: 10, .. }
        ));
        assert!(matches!(
            s.answer(A, 3, &Syscall::Exit { code: 0 }),
            Answer::Recorded { seq: 12, .. }
        ));
        let o = s.finish(&ExitStatus::Code(0));
        assert_eq!((o.replayed, o.divergence, o.recorded_calls), (3, None, 3));
        // Another agent is not served.
        assert_eq!(s.answer(AgentId(2), 4, &read("/a")), Answer::Foreign);
    }

    #[test]
    fn a_changed_parameter_is_a_divergence_naming_both_calls_and_the_field() {
        let s = Session::new(script(&[(1, read("/a")), (2, read("/b"))], None));
        assert!(matches!(
            s.answer(A, 1, &read("/a")),
            Answer::Recorded { .. }
        ));
        assert!(matches!(
            s.answer(A, 2, &read("/c")),
            Answer::Diverged { .. }
        ));
        // Everything after it is refused too.
        assert!(matches!(
            s.answer(A, 3, &read("/d")),
            Answer::Diverged { .. }
        ));
        let d = s.finish(&ExitStatus::Code(0)).divergence.unwrap();
        assert_eq!(d.kind, DivergenceKind::Differs);
        assert_eq!(
            d.expected.as_ref().map(|c| (c.seq, c.id)),
            Some((Some(11), 2))
        );
        assert_eq!(d.actual.as_ref().map(|c| c.id), Some(2));
        let differing: Vec<(&str, &str, &str)> = d
            .fields
            .iter()
            .filter(|f| f.differs)
            .map(|f| (f.field.as_str(), f.expected.as_str(), f.actual.as_str()))
            .collect();
        assert_eq!(differing, [("path", "\"/b\"", "\"/c\"")]);
    }

    #[test]
    fn a_call_the_recording_lacks_ending_early_late_and_another_exit_code() {
        let two = || [(1, read("/a")), (2, read("/b"))];
        // An id the recording does not hold while calls remain.
        let s = Session::new(script(&two(), Some(ExitStatus::Code(0))));
        assert!(matches!(
            s.answer(A, 9, &read("/a")),
            Answer::Diverged { .. }
        ));
        let d = s.finish(&ExitStatus::Code(0)).divergence.unwrap();
        assert_eq!(d.kind, DivergenceKind::NotRecorded);
        assert_eq!(d.expected.unwrap().id, 1);
        // Ended early.
        let s = Session::new(script(&two(), Some(ExitStatus::Code(0))));
        assert!(matches!(
            s.answer(A, 1, &read("/a")),
            Answer::Recorded { .. }
        ));
        let o = s.finish(&ExitStatus::Code(0));
        let d = o.divergence.unwrap();
        assert_eq!(
            (d.kind, d.expected.unwrap().id, o.replayed),
            (DivergenceKind::EndedEarly, 2, 1)
        );
        // Ended late: a call after the recorded run's last one, when it exited by itself.
        let s = Session::new(script(&two(), Some(ExitStatus::Code(0))));
        s.answer(A, 1, &read("/a"));
        s.answer(A, 2, &read("/b"));
        assert!(matches!(
            s.answer(A, 3, &read("/c")),
            Answer::Diverged { .. }
        ));
        assert_eq!(
            s.finish(&ExitStatus::Code(0)).divergence.unwrap().kind,
            DivergenceKind::EndedLate
        );
        // Another exit code.
        let s = Session::new(script(&two(), Some(ExitStatus::Code(3))));
        s.answer(A, 1, &read("/a"));
        s.answer(A, 2, &read("/b"));
        assert_eq!(
            s.finish(&ExitStatus::Code(0)).divergence.unwrap().kind,
            DivergenceKind::ExitDiffers
        );
    }

    #[test]
    fn a_recording_without_an_end_stops_the_rerun_where_it_stops() {
        let killed = ExitStatus::Killed {
            signal: agentos_syscalls::Signal::Kill,
            reason: String::new(),
        };
        let s = Session::new(script(&[(1, read("/a"))], Some(killed.clone())));
        s.answer(A, 1, &read("/a"));
        assert_eq!(s.answer(A, 2, &read("/b")), Answer::RecordingEnded);
        let o = s.finish(&killed);
        assert!(o.ended_at_recording_end);
        assert_eq!((o.divergence, o.replayed), (None, 1));
    }

    #[test]
    fn bytes_render_as_text_or_hex_and_long_values_are_cut() {
        let w = |data: Vec<u8>| Syscall::Write {
            path: "/p".into(),
            data,
            mode: WriteMode::Truncate,
        };
        let rows = compare(&w(b"hello".to_vec()), &w(vec![0xff, 0x00]));
        let data = rows.iter().find(|r| r.field == "data").unwrap();
        assert_eq!(
            (data.expected.as_str(), data.actual.as_str()),
            ("\"hello\"", "0xff00")
        );
        assert!(data.differs);
        let long = render(&serde_json::to_value(vec![b'x'; 500]).unwrap());
        assert!(long.ends_with("… (500 bytes)"), "{long}");
    }
}

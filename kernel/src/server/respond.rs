//! The last step of every answer: record it, send it, and end the agent when its offence
//! calls for it.
//!
//! - [`record_answer`]: the one place an answered syscall is recorded (and counted, and
//!   charged against the agent's share of the recorder). Nothing is answered that is not in
//!   the recorder: a failed append answers `Internal`.
//! - [`punish`]: the one path for an offence the kernel catches before the policy judges a
//!   call (a protocol violation, a wrong ABI, a call over a kernel limit, a reach into another
//!   agent's tree): record it, answer it, and in strict mode end the agent.
//! - [`deliver`]: send an answer and carry out its [`Sentence`]: when the agent is to be ended
//!   (or the connection closes), the answer is in the agent's hands first.
//!
//! What follows an offence ([`Offence::sentence`], [`policy_sentence`]) is decided by pure
//! functions of the offence and the kernel mode.

use std::sync::Arc;
use std::time::Instant;

use agentos_policy::Mode;
use agentos_syscalls::control::DenialKind;
use agentos_syscalls::{Errno, KernelFrame, Reply, Response, Signal, Syscall};
use tokio::sync::mpsc;

use super::connection;
use crate::agent::{Agent, Outgoing};
use crate::recorder::{DecisionRecord, RecordEvent};
use crate::state::KernelInner;
use crate::traces::CallSpan;

/// A call as the agent asked it, with the time the kernel started on it and its span.
pub(super) struct Asked {
    pub id: u64,
    pub call: Syscall,
    pub started: Instant,
    pub span: Option<CallSpan>,
}

/// Something the agent did that the kernel refuses before any policy rule looks at it.
pub(super) enum Offence {
    /// An oversized frame, an undecodable body, a frame out of place: answered with id 0; the
    /// connection closes.
    Protocol(String),
    /// A Hello with another ABI: refused with both versions named; the connection closes.
    Abi(String),
    /// A call with a size over its bound (`crate::validate`): refused (rule `limits`), not a
    /// violation.
    OverLimit(Asked, Errno),
    /// A call that reaches into another agent's tree: refused (rule `trust`), a violation.
    Trust(Asked, String),
}

/// What follows an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sentence {
    /// Wait until the answer is in the agent's hands before going on.
    pub flush: bool,
    /// End the agent with this signal and reason once it has the answer.
    pub end: Option<(Signal, String)>,
}

impl Sentence {
    /// Answer and go on.
    pub const NONE: Sentence = Sentence {
        flush: false,
        end: None,
    };

    fn end_if(strict: bool, signal: Signal, reason: String) -> Sentence {
        Sentence {
            flush: strict,
            end: strict.then_some((signal, reason)),
        }
    }
}

impl Offence {
    /// What follows this offence under `mode`: protocol and trust violations end the agent
    /// with SIGTRUST in strict mode; a call over a limit never ends it; a broken protocol
    /// closes the connection, so its answer is flushed whatever the mode.
    pub(super) fn sentence(&self, mode: Mode) -> Sentence {
        let strict = mode == Mode::Strict;
        match self {
            Offence::Protocol(reason) => Sentence {
                flush: true,
                ..Sentence::end_if(
                    strict,
                    Signal::Trust,
                    format!("protocol violation: {reason}"),
                )
            },
            Offence::Abi(reason) => Sentence {
                flush: true,
                ..Sentence::end_if(strict, Signal::Trust, reason.clone())
            },
            Offence::OverLimit(..) => Sentence::NONE,
            Offence::Trust(_, reason) => {
                Sentence::end_if(strict, Signal::Trust, format!("trust violation: {reason}"))
            }
        }
    }
}

/// What follows a judged call's answer: a violation the mode refused (strict) ends the agent
/// with SIGPOLICY, naming the reason and the rule (or the default deny).
pub(super) fn policy_sentence(record: &DecisionRecord) -> Sentence {
    let strict_violation = record.violation && !record.allowed;
    let rule = if record.rule.is_empty() {
        "default deny"
    } else {
        &record.rule
    };
    Sentence::end_if(
        strict_violation,
        Signal::Policy,
        format!("{} ({rule})", record.reason),
    )
}

/// Records `offence`, answers it, and carries out its [`Sentence`].
pub(super) async fn punish(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    offence: Offence,
) {
    let sentence = offence.sentence(agent.policy().mode());
    let (answer, span) = match offence {
        Offence::Protocol(reason) => {
            tracing::warn!(agent_id = %agent.id, %reason, "protocol violation");
            let error = protocol_violation(k, agent, reason);
            let answer = KernelFrame::Response(Response {
                id: 0,
                result: Err(error),
            });
            (answer, None)
        }
        Offence::Abi(reason) => (
            KernelFrame::Refused(protocol_violation(k, agent, reason)),
            None,
        ),
        Offence::OverLimit(asked, error) => {
            tracing::debug!(agent_id = %agent.id, request = asked.id, %error, "call over a limit");
            let decision =
                builtin_refusal("limits", format!("over a kernel limit: {error}"), false);
            answer_of(k, agent, asked, decision, Err(error)).await
        }
        Offence::Trust(asked, reason) => {
            tracing::warn!(agent_id = %agent.id, %reason, "trust violation");
            let error = Errno::PermissionDenied {
                rule: "trust".into(),
                reason: format!("trust violation: {reason}; an agent sees only its own tree"),
            };
            let decision = builtin_refusal("trust", format!("trust violation: {reason}"), true);
            answer_of(k, agent, asked, decision, Err(error)).await
        }
    };
    deliver(k, agent, tx, answer, sentence, span).await;
}

/// Sends `answer` and carries out `sentence`; the call's span (its signal a child of it)
/// ends here.
pub(super) async fn deliver(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    answer: KernelFrame,
    sentence: Sentence,
    span: Option<CallSpan>,
) {
    if sentence.flush {
        Box::pin(connection::send_flushed(tx, answer)).await;
    } else {
        connection::send(tx, answer).await;
    }
    if let Some((signal, reason)) = sentence.end {
        if sentence.flush {
            Box::pin(crate::signals::wait_at_rest(
                agent,
                crate::signals::REST_BEFORE_END,
            ))
            .await;
        }
        let parent = span.as_ref().map(CallSpan::context);
        let _ = Box::pin(crate::signals::deliver_in(
            k, agent, signal, "kernel", reason, parent,
        ))
        .await;
    }
    if let Some(s) = span {
        s.end();
    }
}

fn protocol_violation(k: &KernelInner, agent: &Agent, reason: String) -> Errno {
    if let Some(life) = agent.trace() {
        life.violation(&reason);
    }
    k.record(
        Some(agent.id),
        RecordEvent::ProtocolViolation {
            reason: reason.clone(),
        },
    );
    Errno::ProtocolViolation { reason }
}

fn builtin_refusal(rule: &str, reason: String, violation: bool) -> DecisionRecord {
    DecisionRecord {
        allowed: false,
        policy_allowed: false,
        rule: rule.into(),
        reason,
        violation,
        mode: "builtin".into(),
    }
}

async fn answer_of(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    asked: Asked,
    decision: DecisionRecord,
    result: Result<Reply, Errno>,
) -> (KernelFrame, Option<CallSpan>) {
    let duration_us = asked.started.elapsed().as_micros() as u64;
    let id = asked.id;
    if let Some(s) = &asked.span {
        s.decided(&decision, &result);
    }
    let result = record_answer(k, agent, id, asked.call, decision, result, duration_us).await;
    (KernelFrame::Response(Response { id, result }), asked.span)
}

/// Counts one judged action in the agent's counters (allowed, denied, violations) and, when it
/// was refused or a violation the mode let through, in its denial summary under its policy
/// action and resource (`what`, worked out only then).
pub(super) fn count_judged(
    agent: &Agent,
    decision: &DecisionRecord,
    what: impl FnOnce() -> (String, String),
) {
    {
        let mut c = agent.counters();
        if decision.allowed {
            c.allowed += 1;
        } else {
            c.denied += 1;
        }
        if decision.violation {
            c.violations += 1;
        }
    }
    if decision.allowed && !decision.violation {
        return;
    }
    let (action, resource) = what();
    let (kind, reason) = if decision.allowed {
        (
            DenialKind::Allowed,
            format!("{} mode let it through: {}", decision.mode, decision.reason),
        )
    } else {
        (DenialKind::Refused, decision.reason.clone())
    };
    agent.note_refusal(crate::denials::Refusal {
        kind,
        action: &action,
        resource: &resource,
        rule: &decision.rule,
        reason: &reason,
    });
}

/// A call's policy action and resource for the denial summary (the call's name when it does
/// not classify).
fn denial_key(call: &Syscall) -> (String, String) {
    match super::judge::classify(call).ok().flatten() {
        Some(c) => {
            let resource = match &c.also {
                Some(also) => format!("{} -> {also}", c.resource),
                None => c.resource.clone(),
            };
            (c.action, resource)
        }
        None => (call.name().to_string(), String::new()),
    }
}

/// Counts a call, records it with its decision and outcome, ends the agent if that took it
/// over its share of the recorder, and gives the answer the agent may see: nothing is
/// answered that is not in the recorder (a failed append answers `Internal`).
pub(crate) async fn record_answer(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    id: u64,
    call: Syscall,
    decision: DecisionRecord,
    result: Result<Reply, Errno>,
    duration_us: u64,
) -> Result<Reply, Errno> {
    agent.counters().syscalls += 1;
    count_judged(agent, &decision, || denial_key(&call));
    let event = RecordEvent::Syscall {
        id,
        call,
        decision,
        result: result.clone(),
        duration_us,
    };
    let recorded = k.record_async(Some(agent.id), event).await;
    // Every answered call is a record, refused ones too: the agent's share of the recorder
    // holds whichever path answered it.
    crate::signals::enforce_recorder_share(k, agent).await;
    if recorded {
        result
    } else {
        Err(Errno::Internal {
            reason: "the flight recorder cannot write (a full disk under STATE_DIR?); the call's answer is withheld: retry once it writes again (it resumes by itself)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Asked {
        Asked {
            id: 3,
            call: Syscall::Checkpoint,
            started: Instant::now(),
            span: None,
        }
    }

    fn ends(signal: Signal, reason: &str) -> Sentence {
        Sentence {
            flush: true,
            end: Some((signal, reason.into())),
        }
    }

    #[test]
    fn a_broken_protocol_closes_flushed_and_ends_the_agent_only_in_strict_mode() {
        let p = Offence::Protocol("bad frame".into());
        assert_eq!(
            p.sentence(Mode::Strict),
            ends(Signal::Trust, "protocol violation: bad frame")
        );
        for mode in [Mode::Permissive, Mode::Audit] {
            let expected = Sentence {
                flush: true,
                end: None,
            };
            assert_eq!(p.sentence(mode), expected);
        }
        let abi = Offence::Abi("agent speaks ABI 1".into());
        assert_eq!(
            abi.sentence(Mode::Strict),
            ends(Signal::Trust, "agent speaks ABI 1")
        );
        assert_eq!(
            abi.sentence(Mode::Audit),
            Sentence {
                flush: true,
                end: None
            }
        );
    }

    #[test]
    fn a_trust_violation_ends_the_agent_in_strict_mode_and_a_limit_never_does() {
        let t = Offence::Trust(asked(), "path /agent/9/x".into());
        assert_eq!(
            t.sentence(Mode::Strict),
            ends(Signal::Trust, "trust violation: path /agent/9/x")
        );
        assert_eq!(t.sentence(Mode::Permissive), Sentence::NONE);
        assert_eq!(t.sentence(Mode::Audit), Sentence::NONE);
        for mode in [Mode::Strict, Mode::Permissive, Mode::Audit] {
            let over = Offence::OverLimit(asked(), Errno::ApprovalDenied);
            assert_eq!(over.sentence(mode), Sentence::NONE);
        }
    }

    #[test]
    fn only_a_refused_violation_ends_the_agent_with_sigpolicy() {
        let record = |allowed, violation, rule: &str| DecisionRecord {
            allowed,
            policy_allowed: false,
            rule: rule.into(),
            reason: "no rule allows file_write".into(),
            violation,
            mode: "strict".into(),
        };
        assert_eq!(
            policy_sentence(&record(false, true, "")),
            ends(Signal::Policy, "no rule allows file_write (default deny)")
        );
        assert_eq!(
            policy_sentence(&record(false, true, "nope (p.md:4)")),
            ends(Signal::Policy, "no rule allows file_write (nope (p.md:4))")
        );
        // Permissive/audit: a violation recorded, allowed.
        assert_eq!(policy_sentence(&record(true, true, "")), Sentence::NONE);
        // Rate limits, approvals denied, dry runs: refused, not violations.
        assert_eq!(policy_sentence(&record(false, false, "")), Sentence::NONE);
    }
}

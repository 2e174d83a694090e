//! The replay performer ([`super::Performer::Replay`], chosen when `agentctl replay run`
//! starts its kernel with [`crate::Kernel::start_with`]): a call is neither judged nor
//! performed; its answer is the recorded result of the recorded call with the same request
//! id ([`Session::answer`]). The answer is recorded in the replay kernel's own log (decision
//! mode `replay`) before it is sent. A divergent call is recorded, not answered, and the
//! agent is stopped (SIGKILL).

use std::sync::Arc;
use std::time::Instant;

use agentos_syscalls::{Errno, KernelFrame, Response, Signal, Syscall};
use tokio::sync::mpsc;

use crate::agent::{Agent, Outgoing};
use crate::recorder::DecisionRecord;
use crate::replay::run::{Answer, Session};
use crate::state::KernelInner;

fn decision(allowed: bool, reason: String) -> DecisionRecord {
    DecisionRecord {
        allowed,
        policy_allowed: allowed,
        rule: String::new(),
        reason,
        violation: false,
        mode: "replay".into(),
    }
}

pub(super) async fn serve_call(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    id: u64,
    call: Syscall,
    session: &Session,
) {
    let started = Instant::now();
    let (record, result, stop) = match session.answer(agent.id, id, &call) {
        Answer::Recorded { seq, result } => (
            decision(true, format!("replay: answered from record {seq}")),
            result,
            None,
        ),
        Answer::Diverged { reason } => (
            decision(false, format!("replay divergence: {reason}")),
            Err(Errno::Internal {
                reason: "replay: not answered (divergence); the agent is stopped".into(),
            }),
            Some("replay divergence (see agentctl's report)".to_string()),
        ),
        Answer::RecordingEnded => (
            decision(false, "replay: the recording ends here".into()),
            Err(Errno::Internal {
                reason: "replay: not answered (the recording ends here)".into(),
            }),
            Some("replay: the recording ends here".to_string()),
        ),
        Answer::Foreign => (
            decision(false, "replay: this kernel replays another agent".into()),
            Err(Errno::Unsupported {
                what: "this replay kernel answers only the agent it replays".into(),
            }),
            None,
        ),
    };
    let duration_us = started.elapsed().as_micros() as u64;
    let result =
        super::respond::record_answer(k, agent, id, call, record, result, duration_us).await;
    if let Some(reason) = stop {
        tracing::info!(agent_id = %agent.id, request = id, %reason, "replay: stopping the agent");
        let _ = crate::signals::deliver(k, agent, Signal::Kill, "kernel", reason).await;
        return;
    }
    super::connection::send(tx, KernelFrame::Response(Response { id, result })).await;
}

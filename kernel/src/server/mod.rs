//! The per-agent syscall server, in layers (mini-redis's frame → connection → command):
//!
//! ```text
//! socket ─► connection (frames in, budget) ─► handshake (launcher report, Hello → Welcome)
//!        ─► per request: on the connection's task until it would wait, then a task ─► performer:
//!             Live:   validate (sizes) ─► trust (own tree) ─► judge (pure: policy + mode
//!                     + rate limit) ─► approval (requires_approval) ─► calls/<syscall>.rs
//!             Replay: the recorded answer (replay.rs)
//!        ─► respond (record, then answer; punish an offence) ─► connection (writer) ─► socket
//! ```
//!
//! | file | owns |
//! |---|---|
//! | `connection.rs` | frame reading, the writer task, `send` / `send_flushed` |
//! | `budget.rs` | the agent's memory budget for requests read and answers unwritten |
//! | `handshake.rs` | the launcher's report and seccomp listener, `Hello` → `Welcome` |
//! | `judge.rs` | classify and judge, pure functions of the policy, the call and the time |
//! | `approval.rs` | parking a call until an operator decides |
//! | `respond.rs` | `record_answer`, `punish` and what follows an answer (`Sentence`) |
//! | `calls/` | one file per syscall (its classification and its perform), one dispatch table |
//! | `replay.rs` | the replay performer |
//!
//! Requests run concurrently (up to the `max_in_flight` announced in `Welcome`); answers go
//! out in completion order, matched by id. A cheap call (a file or descriptor call, a policy
//! dry run, a message) is first polled on the connection's own task and, when nothing in it
//! waits (an in-memory VFS call in `batch` durability), is judged, performed, recorded and its
//! answer queued before the next request is read: no task switch in its round trip. Whatever
//! would wait continues on a task of its own (`run_inline_first`). The bytes of requests read but not answered and of
//! answers not yet written into the socket are bounded by the agent's memory budget
//! (`budget`): when it is spent the kernel stops reading the agent's socket until the agent
//! reads its answers. While the agent is stopped its requests park
//! before they are judged. Each call is judged by one snapshot of the agent's policy, composed
//! with the kernel's base policy; a call that needs approval parks (recorded) until an operator
//! decides, the approval timeout denies it, or the agent ends. A protocol violation (oversized frame, undecodable body, bad
//! handshake) is answered with id 0 where the stream allows it, recorded, closes the
//! connection, and in strict mode ends the agent with SIGTRUST.

mod approval;
pub(crate) mod budget;
mod calls;
pub(crate) mod connection;
pub(crate) mod egress;
mod handshake;
pub(crate) mod judge;
mod replay;
mod respond;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use agentos_syscalls::control::AgentState;
use agentos_syscalls::{AgentFrame, KernelFrame, Request, Response, TraceContext};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Semaphore};

use crate::agent::{lock, Agent, Outgoing};
use crate::policy::Source;
use crate::state::KernelInner;
use crate::util::now_ms;
use respond::{Asked, Offence};

pub use crate::replay::run::Performer;
pub(crate) use judge::mode_name;

/// A call's policy action (`None` for a call no rule governs), as its own `classify` gives it:
/// what the metrics label calls with ([`crate::metrics::ActionOf`]).
pub(crate) fn action_of(call: &agentos_syscalls::Syscall) -> Option<String> {
    calls::classify(call).ok().flatten().map(|c| c.action)
}

/// Serves one agent's socket until it closes or breaks the protocol, its calls answered by
/// `performer`.
pub(crate) async fn serve(
    k: Arc<KernelInner>,
    agent: Arc<Agent>,
    stream: UnixStream,
    performer: Performer,
) {
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Outgoing>(1024);
    let budget = Arc::new(budget::Budget::new(k.config.agent_memory_bytes));
    agent.attach_outbox(tx.clone());
    tokio::spawn(connection::writer(wr, rx, Arc::clone(&budget)));
    if let Err(reason) = serve_frames(&k, &agent, &mut rd, &tx, &budget, &performer).await {
        respond::punish(&k, &agent, &tx, Offence::Protocol(reason)).await;
    }
    agent.detach_outbox();
}

async fn serve_frames(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    rd: &mut OwnedReadHalf,
    tx: &mpsc::Sender<Outgoing>,
    budget: &budget::Budget,
    performer: &Performer,
) -> Result<(), String> {
    if !handshake::handshake(k, agent, rd.as_ref(), tx).await? {
        return Ok(());
    }
    let max = k.config.max_frame;
    let slots = Arc::new(Semaphore::new(k.config.max_in_flight as usize));
    let mut rd = connection::buffered(rd);
    loop {
        let Some((body, mut reserved)) = connection::read_body(&mut rd, max, budget).await? else {
            return Ok(());
        };
        let (request, trace) = match connection::decode_request(&body)? {
            AgentFrame::Request(r) => (r, None),
            AgentFrame::TracedRequest { request, trace } => (request, Some(trace)),
            AgentFrame::Hello(_) => return Err("a second Hello".into()),
            AgentFrame::JailReport(_) => {
                return Err("a jail report from the agent (only the launcher sends one)".into())
            }
            AgentFrame::SandboxListener | AgentFrame::EgressListener => {
                return Err("a listener from the agent (only the launcher sends one)".into())
            }
            AgentFrame::ToolExit { .. } => {
                return Err(
                    "a tool's exit status from the agent (only a tool's init sends one)".into(),
                )
            }
        };
        drop(body);
        // Room for the answer, before anything is performed (see `budget`).
        let answer = budget::answer_bound(&request.call, max, k.config.inbox.bytes);
        if !budget.grow(&mut reserved, answer).await {
            return Ok(());
        }
        budget.hold(request.id, reserved);
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let inline = answers_inline(&request.call);
        let (k, agent, tx) = (Arc::clone(k), Arc::clone(agent), tx.clone());
        let performer = performer.clone();
        let call = async move {
            handle(&k, &agent, &tx, request, trace, &performer).await;
            drop(permit);
        };
        if inline {
            run_inline_first(call).await;
        } else {
            tokio::spawn(call);
        }
    }
}

/// Whether a call is served first on the connection's own task ([`run_inline_first`]): the
/// calls whose work before their first wait is small and bounded by the frame (a file call,
/// a descriptor, a policy dry run, a message). `Exec`, `Call` and `ListTools` (tools, the
/// network, processes), `Signal` and `Exit` (other agents, the agent's own end) always get a
/// task of their own.
fn answers_inline(call: &agentos_syscalls::Syscall) -> bool {
    use agentos_syscalls::Syscall;
    match call {
        Syscall::Read { .. }
        | Syscall::Write { .. }
        | Syscall::Open { .. }
        | Syscall::Close { .. }
        | Syscall::List { .. }
        | Syscall::Stat { .. }
        | Syscall::Unlink { .. }
        | Syscall::Rename { .. }
        | Syscall::ReadFd { .. }
        | Syscall::WriteFd { .. }
        | Syscall::CheckPolicy { .. }
        | Syscall::Checkpoint
        | Syscall::Send { .. }
        | Syscall::Recv { .. } => true,
        Syscall::Exec { .. }
        | Syscall::Call { .. }
        | Syscall::ListTools
        | Syscall::Signal { .. }
        | Syscall::Exit { .. } => false,
    }
}

/// Runs a request on the connection's own task as far as it goes without waiting, and hands
/// whatever is left to a task of its own.
///
/// A cheap call (an in-memory VFS read, a policy dry run) is judged, performed, recorded (the
/// default `batch` durability appends on the caller's thread) and its answer queued for the
/// writer right here, in one poll: no task is spawned and no other task runs before it, which
/// saves the round trip a task switch and, on a multi-thread runtime, often a wakeup of the
/// other worker. The path is the same `handle` as a spawned call's, so every step keeps its
/// order (judged, recorded, then answered) and every bound holds: the in-flight slot is held
/// until the call is done, the memory budget until its answer is written.
///
/// Nothing here waits: the first time the call would wait — host I/O on the pool, a heavy
/// record off the worker, the recorder's writer thread (`always`), an approval, a stopped
/// agent, a full outbox, the runtime's cooperative budget spent — the poll returns and the
/// call continues on a task of its own, exactly where it stopped, while the connection goes
/// back to reading. So an agent that never reads its answers, or whose calls park, holds at
/// most its in-flight slots, as before.
///
/// The call's future is moved to the heap whole, once per request: the rare and large paths
/// a call may take (`Exec`, `Call`, host I/O, an approval, a punishment, an `always` record)
/// are boxed where they are awaited, so that what every call carries is about 2.5 KiB
/// rather than 7.7 KiB.
async fn run_inline_first(call: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut call = Box::pin(call);
    let done =
        std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx).is_ready())).await;
    if !done {
        // Its wakers are re-registered by the task's first poll: a future keeps only the
        // waker of its latest poll (the connection's task may see one spurious wakeup).
        tokio::spawn(call);
    }
}

/// How a judgment charges the agent's rate limits at `now`: one token from the bucket of the
/// rule (of its own policy or the base policy), or after how many ms one is free.
fn charge(
    agent: &Agent,
    now: u64,
) -> impl FnMut(&crate::policy::RateCharge) -> Result<(), u64> + '_ {
    move |limit| {
        let bucket = match limit.source {
            Source::Agent => &agent.limiter,
            Source::Base => &agent.base_limiter,
        };
        lock(bucket).check(limit.index, limit.rate, now)
    }
}

/// One request, once the agent is not stopped: answered by the performer.
async fn handle(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    request: Request,
    trace: Option<TraceContext>,
    performer: &Performer,
) {
    if agent.current_state() == AgentState::Stopped {
        agent.counters().parked += 1;
        agent.wait_unfrozen().await;
        agent.counters().parked -= 1;
    }
    match performer {
        Performer::Live => live(k, agent, tx, request, trace).await,
        Performer::Replay(session) => {
            let Request { id, call } = request;
            Box::pin(replay::serve_call(k, agent, tx, id, call, session)).await
        }
    }
}

/// A live call: bounds, trust, judge, approval, perform, record, answer; traced when the
/// agent's life is ([`crate::traces`]).
async fn live(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    request: Request,
    trace: Option<TraceContext>,
) {
    let Request { id, mut call } = request;
    let started = Instant::now();
    let span = agent.trace().map(|life| life.call(call.name(), id, trace));
    if let Err(e) = crate::validate::call(&call) {
        let asked = Asked {
            id,
            call,
            started,
            span,
        };
        return Box::pin(respond::punish(k, agent, tx, Offence::OverLimit(asked, e))).await;
    }
    let foreign = calls::paths_of(&call)
        .into_iter()
        .flatten()
        .find_map(|p| crate::tree::foreign_tree(agent, p));
    if let Some(reason) = foreign {
        let asked = Asked {
            id,
            call,
            started,
            span,
        };
        return Box::pin(respond::punish(k, agent, tx, Offence::Trust(asked, reason))).await;
    }
    let peer = calls::peer_name(k, &call);
    let now = now_ms();
    let judging = Instant::now();
    let judged_at = span.as_ref().map(|_| SystemTime::now());
    let mut judgment = judge::judge(
        &agent.policy(),
        k.config.base_policy.as_ref(),
        &call,
        peer.as_deref(),
        now,
        charge(agent, now),
    );
    if let Some(m) = &k.metrics {
        let action = judgment.class.as_ref().map(|(action, _)| action.as_str());
        m.policy_checked(action, judging.elapsed());
    }
    if let (Some(s), Some(at)) = (&span, judged_at) {
        if let Some((action, resource)) = &judgment.class {
            s.classified(action, resource);
        }
        s.policy_check(at, &judgment.record);
    }
    if let Some(ask) = judgment.approval.take() {
        let payload = crate::approvals::preview(&call);
        let asked_at = span.as_ref().map(|_| SystemTime::now());
        Box::pin(approval::await_approval(
            k,
            agent,
            id,
            ask,
            payload,
            &mut judgment,
        ))
        .await;
        if let (Some(s), Some(at)) = (&span, asked_at) {
            let outcome = match &judgment.refusal {
                None => "approved".to_string(),
                Some(e) => e.to_string(),
            };
            s.approval(at, &outcome);
        }
        if judgment.refusal.is_none() && agent.current_state() == AgentState::Stopped {
            agent.wait_unfrozen().await;
        }
    }
    let result = match judgment.refusal {
        Some(e) => Err(e),
        // Low disk or a recorder that cannot write: refused, never performed unrecorded.
        None => match k.admit() {
            Err(e) => Err(e),
            Ok(()) => {
                let performing = span.as_ref().map(|_| SystemTime::now());
                let result = calls::perform(k, agent, &mut call).await;
                if let (Some(s), Some(at)) = (&span, performing) {
                    s.execute(at, &result);
                }
                result
            }
        },
    };
    let duration_us = started.elapsed().as_micros() as u64;
    let sentence = respond::policy_sentence(&judgment.record);
    if let Some(s) = &span {
        s.decided(&judgment.record, &result);
    }
    let result =
        respond::record_answer(k, agent, id, call, judgment.record, result, duration_us).await;
    agent.note_answered();
    let response = KernelFrame::Response(Response { id, result });
    // A strict violation: the agent has its PermissionDenied in hand before it is ended.
    respond::deliver(k, agent, tx, response, sentence, span).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use agentos_syscalls::{AgentId, Syscall};
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn a_call_that_never_waits_is_done_before_the_connection_reads_on() {
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        run_inline_first(async move { d.store(true, Ordering::SeqCst) }).await;
        // No yield in between: it ran on this task, in this poll.
        assert!(done.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_waits_goes_on_in_a_task_of_its_own_where_it_stopped() {
        let (release, held) = oneshot::channel::<u32>();
        let (tell, told) = oneshot::channel::<(bool, u32)>();
        let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = Arc::clone(&steps);
        run_inline_first(async move {
            s.lock().unwrap().push("judged and performed");
            let v = held.await.unwrap();
            s.lock().unwrap().push("answered");
            let _ = tell.send((true, v));
        })
        .await;
        // The connection is free again while the call waits, its first part done once.
        assert_eq!(*steps.lock().unwrap(), ["judged and performed"]);
        release.send(7).unwrap();
        assert_eq!(told.await.unwrap(), (true, 7));
        assert_eq!(*steps.lock().unwrap(), ["judged and performed", "answered"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_call_wakes_its_own_task_not_the_connection() {
        // A timer registered during the inline poll fires for the spawned task.
        let (tell, told) = oneshot::channel::<()>();
        run_inline_first(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let _ = tell.send(());
        })
        .await;
        let started = tokio::time::Instant::now();
        told.await.unwrap();
        assert_eq!(started.elapsed(), std::time::Duration::from_millis(50));
    }

    #[test]
    fn tools_processes_signals_and_exits_always_get_a_task_of_their_own() {
        let read = Syscall::Read {
            path: "/mem/working/x".into(),
            offset: 0,
            len: None,
        };
        assert!(answers_inline(&read));
        assert!(answers_inline(&Syscall::CheckPolicy {
            action: "file_read".into(),
            resource: "/x".into()
        }));
        for call in [
            Syscall::Exec {
                argv: vec!["/bin/true".into()],
                stdin: Vec::new(),
                cwd: None,
                timeout_ms: None,
            },
            Syscall::Call {
                action: "db".into(),
                params_json: "{}".into(),
            },
            Syscall::ListTools,
            Syscall::Signal {
                target: AgentId(1),
                signal: agentos_syscalls::Signal::Term,
            },
            Syscall::Exit { code: 0 },
        ] {
            assert!(!answers_inline(&call), "{call:?}");
        }
    }
}

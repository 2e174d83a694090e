//! The per-agent syscall server.
//!
//! ```text
//! socket ──► reader ──► one task per request ──► validate (sizes within their bounds)
//!                                                 ──► judge (policy + mode + rate limit)
//!                                                 ──► approval queue (requires_approval)
//!                                                 ──► perform (calls/<syscall>.rs)
//!                                                 ──► record ──► outbox ──► writer ──► socket
//! ```
//!
//! Requests run concurrently (up to the `max_in_flight` announced in `Welcome`); answers go
//! out in completion order, matched by id. The bytes of requests read but not answered and of
//! answers not yet written into the socket are bounded by the agent's memory budget
//! (`budget`): when it is spent the kernel stops reading the agent's socket until the agent
//! reads its answers. While the agent is stopped its requests park
//! before they are judged. Each call is judged by one snapshot of the agent's policy, composed
//! with the kernel's base policy; a call that needs approval parks (recorded) until an operator
//! decides, the approval timeout denies it, or the agent ends. A protocol violation (oversized frame, undecodable body, bad
//! handshake) is answered with id 0 where the stream allows it, recorded, closes the
//! connection, and in strict mode ends the agent with SIGTRUST.

pub(crate) mod budget;
mod calls;
mod replay;

/// The second resource a call is judged on, beside [`classify`]'s (a `Rename`'s target).
pub(crate) use calls::rename::target_resource;

use std::sync::Arc;
use std::time::Instant;

use agentos_policy::{Access, Mode};
use agentos_syscalls::control::AgentState;
use agentos_syscalls::frame::{self, FrameError, HEADER_LEN};
use agentos_syscalls::{
    AgentFrame, Errno, Hello, KernelFrame, Limits, OpenMode, Reply, Request, Response, Signal,
    Syscall, Welcome, ABI_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Semaphore};

use crate::agent::{lock, Agent, Outgoing};
use crate::approvals::{Ask, Verdict};
use crate::kernel::{now_ms, KernelInner};
use crate::policy::{Composed, Source};
use crate::recorder::{DecisionRecord, RecordEvent};

/// Serves one agent's socket until it closes or breaks the protocol.
pub(crate) async fn serve(k: Arc<KernelInner>, agent: Arc<Agent>, stream: UnixStream) {
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Outgoing>(1024);
    let budget = Arc::new(budget::Budget::new(k.config.agent_memory_bytes));
    *lock(&agent.outbox) = Some(tx.clone());
    tokio::spawn(writer(wr, rx, Arc::clone(&budget)));
    if let Err(reason) = serve_frames(&k, &agent, &mut rd, &tx, &budget).await {
        violation(&k, &agent, &tx, reason).await;
    }
    *lock(&agent.outbox) = None;
}

/// Records a protocol violation, answers it if the agent can still read, and in strict mode
/// ends the agent with SIGTRUST.
async fn violation(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    reason: String,
) {
    tracing::warn!(agent_id = %agent.id, %reason, "protocol violation");
    k.record(
        Some(agent.id),
        RecordEvent::ProtocolViolation {
            reason: reason.clone(),
        },
    );
    let (done, flushed) = tokio::sync::oneshot::channel();
    let answer = Response {
        id: 0,
        result: Err(Errno::ProtocolViolation {
            reason: reason.clone(),
        }),
    };
    if tx
        .send(Outgoing {
            frame: KernelFrame::Response(answer),
            flushed: Some(done),
        })
        .await
        .is_ok()
    {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), flushed).await;
    }
    if agent.policy().mode() == Mode::Strict {
        let _ = crate::signals::deliver(
            k,
            agent,
            Signal::Trust,
            "kernel",
            format!("protocol violation: {reason}"),
        )
        .await;
    }
}

/// Writes queued frames into the agent's socket, batching what is already queued into one
/// write; frees each answer's reservation of the memory budget once it is written, and closes
/// the budget when the connection ends (so a reader waiting for room ends too).
async fn writer(wr: OwnedWriteHalf, rx: mpsc::Receiver<Outgoing>, budget: Arc<budget::Budget>) {
    write_frames(wr, rx, &budget).await;
    budget.close();
}

/// A batch buffer larger than this is not kept between batches (one large answer must not
/// pin its size for the connection's life).
const KEEP_BUFFER: usize = 1 << 20;

async fn write_frames(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    budget: &budget::Budget,
) {
    let mut buf = Vec::with_capacity(8192);
    let mut notify = Vec::new();
    let mut answered = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        let mut next = Some(first);
        // Batch whatever is already queued into one write.
        while let Some(out) = next.take() {
            if let Err(e) = frame::encode_into(&out.frame, &mut buf) {
                tracing::error!(error = %e, "cannot encode a kernel frame");
            }
            if let KernelFrame::Response(r) = &out.frame {
                answered.push(r.id);
            }
            notify.extend(out.flushed);
            if buf.len() < (1 << 20) {
                next = rx.try_recv().ok();
            }
        }
        if wr.write_all(&buf).await.is_err() {
            return;
        }
        for id in answered.drain(..) {
            budget.release(id);
        }
        if buf.capacity() > KEEP_BUFFER {
            buf = Vec::with_capacity(8192);
        }
        if !notify.is_empty() {
            wait_read_by_peer(&wr).await;
        }
        for n in notify.drain(..) {
            let _ = n.send(());
        }
    }
}

/// Waits (up to 200 ms) until the agent has read everything written so far, so that an answer
/// or event someone is waiting on is in the agent's hands — not just in the socket — before,
/// say, a SIGPOLICY follows it.
async fn wait_read_by_peer(wr: &OwnedWriteHalf) {
    use std::os::fd::AsRawFd;
    let fd = wr.as_ref().as_raw_fd();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
    while matches!(crate::sys::unread_bytes(fd), Ok(n) if n > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Reads one frame body once the memory budget has room for it (the reservation is returned
/// with it); `Ok(None)` on a clean end of stream or once the connection's budget is closed.
async fn read_body(
    rd: &mut OwnedReadHalf,
    max: u32,
    budget: &budget::Budget,
) -> Result<Option<(Vec<u8>, tokio::sync::OwnedSemaphorePermit)>, String> {
    let mut header = [0u8; HEADER_LEN];
    match rd.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(_) => return Ok(None),
    }
    let len = frame::body_len(header, max).map_err(|e| e.to_string())?;
    // Checked against the limit, then reserved, then allocated.
    let Some(permit) = budget.reserve(len as u64).await else {
        return Ok(None);
    };
    let mut body = vec![0u8; len];
    rd.read_exact(&mut body)
        .await
        .map_err(|_| format!("stream ended inside a frame of {len} bytes"))?;
    Ok(Some((body, permit)))
}

/// Like [`read_body`], but with `recvmsg`, keeping descriptors sent along (`SCM_RIGHTS`) in
/// `fds`: used until the Hello, while the launcher may still pass its seccomp listener. (A plain
/// `read` would make the host kernel close them.)
async fn read_body_with_fds(
    rd: &mut OwnedReadHalf,
    max: u32,
    fds: &mut Vec<std::os::fd::OwnedFd>,
) -> Result<Option<Vec<u8>>, String> {
    let stream: &UnixStream = rd.as_ref();
    let mut header = [0u8; HEADER_LEN];
    match crate::sandbox::recv_with_fds(stream, &mut header, fds).await {
        Ok(true) => {}
        Ok(false) | Err(_) => return Ok(None),
    }
    let len = frame::body_len(header, max).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; len];
    if len > 0 {
        match crate::sandbox::recv_with_fds(stream, &mut body, fds).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                return Err(format!("stream ended inside a frame of {len} bytes"))
            }
        }
    }
    Ok(Some(body))
}

fn decode(body: &[u8]) -> Result<AgentFrame, String> {
    frame::decode::<AgentFrame>(body).map_err(|e: FrameError| format!("{e}: {}", error_source(&e)))
}

fn error_source(e: &FrameError) -> String {
    std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Request bodies at least this large are decoded off the runtime worker.
const DECODE_OFF_WORKER: usize = 64 << 10;

async fn serve_frames(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    rd: &mut OwnedReadHalf,
    tx: &mpsc::Sender<Outgoing>,
    budget: &budget::Budget,
) -> Result<(), String> {
    let max = k.config.max_frame;
    // The launcher's jail report (and seccomp listener), then the agent's Hello.
    let mut listener_seen = false;
    let hello: Hello = loop {
        let mut fds = Vec::new();
        let Some(body) = read_body_with_fds(rd, max, &mut fds).await? else {
            return Ok(());
        };
        match decode(&body)? {
            AgentFrame::SandboxListener if lock(&agent.jail).is_some() && !listener_seen => {
                listener_seen = true;
                let Some(listener) = fds.pop() else {
                    return Err("a sandbox listener frame without its descriptor".into());
                };
                if !crate::sandbox::is_listener(&listener) {
                    return Err(
                        "a sandbox listener frame whose descriptor is not a seccomp listener"
                            .into(),
                    );
                }
                let watcher = tokio::spawn(crate::sandbox::watch(
                    Arc::clone(k),
                    Arc::clone(agent),
                    listener,
                    crate::sandbox::agent_writable(k, agent),
                    crate::sandbox_limits::Watched {
                        limits: agent.limits,
                        cgroup: agent.cgroup.clone(),
                        launcher: agent.pid().unwrap_or(0),
                    },
                ));
                lock(&agent.watchers).push(watcher);
            }
            AgentFrame::SandboxListener => return Err(
                "a sandbox listener out of place (only the launcher sends one, after its report)"
                    .into(),
            ),
            AgentFrame::JailReport(report) if lock(&agent.jail).is_none() => {
                k.record(Some(agent.id), RecordEvent::Sandbox(report.clone()));
                *lock(&agent.jail) = Some(report);
                agent.state.send_if_modified(|s| {
                    let starting = *s == AgentState::Starting;
                    if starting {
                        *s = AgentState::Running;
                    }
                    starting
                });
            }
            AgentFrame::JailReport(_) => {
                return Err("a second jail report (only the launcher sends one, first)".into())
            }
            AgentFrame::Hello(h) if h.sdk.len() > agentos_syscalls::limits::SDK_NAME_MAX => {
                return Err(format!(
                    "a Hello whose sdk name is {} bytes (the limit is {})",
                    h.sdk.len(),
                    agentos_syscalls::limits::SDK_NAME_MAX
                ))
            }
            AgentFrame::Hello(h) => break h,
            AgentFrame::Request(r) => {
                return Err(format!("request {} before the Hello handshake", r.id))
            }
        }
    };
    if hello.abi != ABI_VERSION {
        let reason = format!(
            "agent speaks ABI {} ({}), this kernel speaks ABI {ABI_VERSION}; rebuild the agent against a matching SDK",
            hello.abi, hello.sdk
        );
        let (done, flushed) = tokio::sync::oneshot::channel();
        let refused = KernelFrame::Refused(Errno::ProtocolViolation {
            reason: reason.clone(),
        });
        if tx
            .send(Outgoing {
                frame: refused,
                flushed: Some(done),
            })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), flushed).await;
        }
        k.record(
            Some(agent.id),
            RecordEvent::ProtocolViolation {
                reason: reason.clone(),
            },
        );
        if agent.policy().mode() == agentos_policy::Mode::Strict {
            let _ = crate::signals::deliver(k, agent, Signal::Trust, "kernel", reason).await;
        }
        return Ok(());
    }
    k.record(
        Some(agent.id),
        RecordEvent::Handshake {
            sdk: hello.sdk,
            abi: hello.abi,
        },
    );
    let limits = Limits {
        max_frame: max,
        max_in_flight: k.config.max_in_flight,
    };
    let welcome = Welcome {
        abi: ABI_VERSION,
        agent_id: agent.id,
        limits,
        policy_digest: agent.policy().digest(),
    };
    let _ = tx
        .send(Outgoing {
            frame: KernelFrame::Welcome(welcome),
            flushed: None,
        })
        .await;
    agent.state.send_if_modified(|s| {
        let starting = *s == AgentState::Starting;
        if starting {
            *s = AgentState::Running;
        }
        starting
    });

    let slots = Arc::new(Semaphore::new(k.config.max_in_flight as usize));
    loop {
        let Some((body, mut reserved)) = read_body(rd, max, budget).await? else {
            return Ok(());
        };
        // Decoding is linear in the body (up to the frame limit): a large one is decoded off
        // the runtime worker, so the tasks queued on it are not held up behind it.
        let decoded = if body.len() >= DECODE_OFF_WORKER {
            crate::hostio::off_worker(|| decode(&body))
        } else {
            decode(&body)
        };
        let request = match decoded? {
            AgentFrame::Request(r) => r,
            AgentFrame::Hello(_) => return Err("a second Hello".into()),
            AgentFrame::JailReport(_) => {
                return Err("a jail report from the agent (only the launcher sends one)".into())
            }
            AgentFrame::SandboxListener => {
                return Err(
                    "a sandbox listener from the agent (only the launcher sends one)".into(),
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
        let (k, agent, tx) = (Arc::clone(k), Arc::clone(agent), tx.clone());
        tokio::spawn(async move {
            handle(&k, &agent, &tx, request).await;
            drop(permit);
        });
    }
}

/// What the policy (and the kernel mode) made of a call.
struct Judgment {
    record: DecisionRecord,
    /// `Some` when the call must be refused with this error.
    refusal: Option<Errno>,
    /// `Some` when the call must wait for an operator's approval before it is performed.
    approval: Option<(String, String, String)>,
}

/// The policy action, resource, access and payload size of a call; `None` for calls no rule
/// governs (closing a descriptor, reading one's own inbox, dry-run checks, exit).
///
/// A call over a bound (`crate::validate`) is an error here too, so every user (the judge, the
/// what-if replay of a recording) sees it bounded before classifying it.
pub(crate) fn classify(call: &Syscall) -> Result<Option<(String, String, Access, u64)>, Errno> {
    crate::validate::call(call)?;
    let path = |p: &str| agentos_vfs::normalize(p);
    Ok(match call {
        Syscall::Read { path: p, .. } | Syscall::List { path: p } | Syscall::Stat { path: p } => {
            Some(("file_read".into(), path(p)?, Access::Read, 0))
        }
        Syscall::Open {
            path: p,
            mode: OpenMode::Read,
        } => Some(("file_read".into(), path(p)?, Access::Read, 0)),
        Syscall::Open {
            path: p,
            mode: OpenMode::Write(_),
        } => Some(("file_write".into(), path(p)?, Access::Write, 0)),
        Syscall::Write { path: p, data, .. } => Some((
            "file_write".into(),
            path(p)?,
            Access::Write,
            data.len() as u64,
        )),
        Syscall::Unlink { path: p } => Some(("file_write".into(), path(p)?, Access::Write, 0)),
        // The source; the target is judged too (`calls::rename::target_resource`).
        Syscall::Rename { from, .. } => Some(("file_write".into(), path(from)?, Access::Write, 0)),
        Syscall::Exec { argv, stdin, .. } => Some((
            "code_execution".into(),
            argv.join(" "),
            Access::Read,
            stdin.len() as u64,
        )),
        // The resource comes from the params (`params.url` for `api_call`, …): see
        // `calls/call.rs`.
        Syscall::Call {
            action,
            params_json,
        } => Some((
            action.clone(),
            calls::call::call_resource(action, params_json)?,
            Access::Read,
            params_json.len() as u64,
        )),
        Syscall::Send { to, payload } => Some((
            "ipc_send".into(),
            to.to_string(),
            Access::Write,
            payload.len() as u64,
        )),
        Syscall::Signal { target, .. } => {
            Some(("signal".into(), target.to_string(), Access::Write, 0))
        }
        Syscall::Close { .. }
        | Syscall::ReadFd { .. }
        | Syscall::WriteFd { .. }
        | Syscall::Recv { .. }
        | Syscall::CheckPolicy { .. }
        | Syscall::Checkpoint
        | Syscall::Exit { .. } => None,
    })
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Strict => "strict",
        Mode::Permissive => "permissive",
        Mode::Audit => "audit",
    }
}

/// The name of a `Send`'s target, when it has one.
fn send_target_name(k: &KernelInner, call: &Syscall) -> Option<String> {
    let Syscall::Send { to, .. } = call else {
        return None;
    };
    k.find(&agentos_syscalls::control::AgentRef::Id(*to))
        .ok()?
        .name
        .clone()
}

/// One `ipc_send` decision from the decisions on the target's id and on its name: allowed
/// when either is allowed and no deny rule fired on the other (deny overrides); a default deny
/// (no rule, empty `rule`) on one side does not veto an allow on the other.
fn either_peer(by_id: Composed, by_name: Composed) -> Composed {
    let vetoes = |d: &Composed| !d.allowed && !d.rule.is_empty();
    match (by_id.allowed, by_name.allowed) {
        (true, false) if vetoes(&by_name) => by_name,
        (false, true) if !vetoes(&by_id) => by_name,
        _ => by_id,
    }
}

/// One decision for a call judged on two resources (a `Rename`'s source and target): refused
/// when either is (the first refusal decides: its rule and reason are the ones recorded);
/// otherwise allowed under the source's rule, needing approval (then under the rule that asks
/// for it) or a dry run when either side does, and charged both sides' rate limits (a rule
/// matching both paths once).
fn both_paths(first: Composed, second: Composed) -> Composed {
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
        let charged =
            |c: &crate::policy::RateCharge| c.source == charge.source && c.index == charge.index;
        if !d.rate_limits.iter().any(charged) {
            d.rate_limits.push(charge);
        }
    }
    d
}

/// Judges a call against ONE snapshot of the agent's policy (taken here, once) composed with
/// the kernel's base policy, and applies the kernel mode, `dry_run` and rate limits.
fn judge(k: &KernelInner, agent: &Agent, call: &Syscall, now: u64) -> Judgment {
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
    };
    let (action, resource, access, bytes) = match classify(call) {
        Ok(Some(c)) => c,
        Ok(None) => return builtin(None, "not governed by a policy rule"),
        Err(e) => return builtin(Some(e), "malformed request (a path or a Call's params)"),
    };
    let policy = agent.policy();
    let req = agentos_policy::Request {
        action: &action,
        resource: &resource,
        access,
        bytes,
        now_ms: now,
    };
    // An `Exec`'s arguments reach `args`/`deny_args` as the list they are.
    let args = if let Syscall::Exec { argv, .. } = call {
        argv.get(1..)
    } else {
        None
    };
    let mut d = crate::policy::compose_args(&policy, k.config.base_policy.as_ref(), &req, args);
    if let Some(name) = send_target_name(k, call) {
        // `peers` may list the target by id or by name: judge both, as one decision.
        let by_name = agentos_policy::Request {
            resource: &name,
            ..req
        };
        let n = crate::policy::compose(&policy, k.config.base_policy.as_ref(), &by_name);
        d = either_peer(d, n);
    }
    // A `Rename` writes two names: its target is judged like its source.
    let target = match target_resource(call) {
        Ok(t) => t,
        Err(e) => return builtin(Some(e), "malformed request (a path or a Call's params)"),
    };
    if let Some(target) = &target {
        let to = agentos_policy::Request {
            resource: target,
            ..req
        };
        let t = crate::policy::compose(&policy, k.config.base_policy.as_ref(), &to);
        d = both_paths(d, t);
    }
    let rule = d.rule.clone();
    let mut record = DecisionRecord {
        allowed: d.allowed,
        policy_allowed: d.allowed,
        rule: rule.clone(),
        reason: d.reason.clone(),
        violation: !d.allowed,
        mode: mode_name(d.mode).into(),
    };
    let refuse = |record: DecisionRecord, e: Errno| Judgment {
        record,
        refusal: Some(e),
        approval: None,
    };
    if !d.allowed {
        return match d.mode {
            Mode::Strict => refuse(
                record,
                Errno::PermissionDenied {
                    rule,
                    reason: d.reason,
                },
            ),
            Mode::Permissive | Mode::Audit => {
                record.allowed = true;
                Judgment {
                    record,
                    refusal: None,
                    approval: None,
                }
            }
        };
    }
    if d.dry_run {
        record.allowed = false;
        record.reason = format!("dry_run: {action} recorded, not performed");
        let reason = record.reason.clone();
        return refuse(record, Errno::PermissionDenied { rule, reason });
    }
    for charge in &d.rate_limits {
        let limiter = match charge.source {
            Source::Agent => &agent.limiter,
            Source::Base => &agent.base_limiter,
        };
        if let Err(retry_after_ms) = lock(limiter).check(charge.index, charge.rate, now) {
            record.allowed = false;
            record.rule = charge.rule.clone();
            record.reason = format!(
                "rate limit of {} reached; retry after {retry_after_ms} ms",
                charge.rule
            );
            return refuse(record, Errno::RateLimited { retry_after_ms });
        }
    }
    let approval = d.requires_approval.then(|| {
        record.reason = format!("requires_approval ({rule}): {}", d.reason);
        // The operator sees both names of a rename.
        let resource = match target {
            Some(t) => format!("{resource} -> {t}"),
            None => resource,
        };
        (action, resource, rule)
    });
    Judgment {
        record,
        refusal: None,
        approval,
    }
}

/// Parks a call that needs approval until an operator decides, the approval timeout passes or
/// the agent ends, recording both the parking and the outcome; fills in the judgment.
async fn await_approval(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    request: u64,
    (action, resource, rule): (String, String, String),
    j: &mut Judgment,
) {
    // At most `max_approvals_per_agent` waiting calls per agent: the next is refused now.
    let slot = match k
        .approvals
        .reserve(agent.id, k.config.max_approvals_per_agent)
    {
        Ok(slot) => slot,
        Err(held) => {
            j.record.allowed = false;
            j.record.reason = format!("{held} calls already wait for approval ({rule})");
            j.refusal = Some(Errno::Busy {
                what: format!("agent {} already has {held} calls waiting for approval; wait for an answer before asking again (the kernel's --max-approvals-per-agent)", agent.id),
            });
            return;
        }
    };
    let approval = slot.id;
    let parked = Instant::now();
    // Recorded before anyone can see it in `agentctl approvals`, so a decision always
    // follows its request in the log.
    if !k.record(
        Some(agent.id),
        RecordEvent::ApprovalRequested {
            approval,
            request,
            action: action.clone(),
            resource: resource.clone(),
            rule: rule.clone(),
        },
    ) {
        j.record.allowed = false;
        j.refusal = Some(Errno::Internal {
            reason: "the flight recorder failed; the call was not parked for approval".into(),
        });
        return;
    }
    let mut rx = k.approvals.park(
        approval,
        Ask {
            agent: agent.id,
            request,
            action: action.clone(),
            resource,
            rule: rule.clone(),
        },
    );
    tracing::info!(agent_id = %agent.id, request, approval, %action, "call parked for operator approval");
    let waited: Result<Verdict, &'static str> = tokio::select! {
        r = tokio::time::timeout(k.config.approval_timeout, &mut rx) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err("withdrawn"),
            Err(_) => Err("timed out"),
        },
        _ = agent.wait_exit() => Err("agent ended"),
    };
    let outcome = match waited {
        Ok(v) => Ok(v),
        // Decided at the last moment: the verdict is in the channel.
        Err(why) if !k.approvals.withdraw(approval) => rx.try_recv().map_err(|_| why),
        Err(why) => Err(why),
    };
    let waited_ms = parked.elapsed().as_millis() as u64;
    let (approved, label, by) = match &outcome {
        Ok(v) if v.approved => (true, "approved", v.by.clone()),
        Ok(v) => (false, "denied", v.by.clone()),
        Err(why) => (false, *why, "kernel".to_string()),
    };
    k.record(
        Some(agent.id),
        RecordEvent::ApprovalDecided {
            approval,
            request,
            approved,
            outcome: label.into(),
            by: by.clone(),
            waited_ms,
        },
    );
    j.record.reason = format!("approval {approval} {label} by {by} after {waited_ms} ms ({rule})");
    if !approved {
        j.record.allowed = false;
        j.refusal = Some(if label == "timed out" {
            Errno::ApprovalTimeout
        } else {
            Errno::ApprovalDenied
        });
    }
}

async fn handle(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    request: Request,
) {
    let Request { id, mut call } = request;
    if agent.current_state() == AgentState::Stopped {
        agent.counters().parked += 1;
        agent.wait_unfrozen().await;
        agent.counters().parked -= 1;
    }
    if let Some(session) = &k.config.replay {
        return replay::serve_call(k, agent, tx, id, call, session).await;
    }
    let started = Instant::now();
    if let Err(e) = crate::validate::call(&call) {
        return over_limit(k, agent, tx, id, call, e, started).await;
    }
    let foreign = calls::paths_of(&call)
        .into_iter()
        .flatten()
        .find_map(|p| crate::tree::foreign_tree(agent, p));
    if let Some(reason) = foreign {
        trust_violation(k, agent, tx, id, call, reason, started).await;
        return;
    }
    let mut judgment = judge(k, agent, &call, now_ms());
    if let Some(ask) = judgment.approval.take() {
        await_approval(k, agent, id, ask, &mut judgment).await;
        if judgment.refusal.is_none() && agent.current_state() == AgentState::Stopped {
            agent.wait_unfrozen().await;
        }
    }
    let result = match judgment.refusal {
        Some(e) => Err(e),
        // Low disk or a recorder that cannot write: refused, never performed unrecorded.
        None => match k.admit() {
            Err(e) => Err(e),
            Ok(()) => calls::perform(k, agent, &mut call).await,
        },
    };
    let duration_us = started.elapsed().as_micros() as u64;
    let violation = judgment.record.violation;
    let strict_violation = violation && !judgment.record.allowed;
    let result = record_answer(
        k,
        agent,
        id,
        call,
        judgment.record.clone(),
        result,
        duration_us,
    )
    .await;
    let _ = agent
        .first_syscall_us
        .set(agent.spawned_at.elapsed().as_micros() as u64);
    let response = KernelFrame::Response(Response { id, result });
    if strict_violation {
        // The agent has its PermissionDenied in hand before it is ended.
        let (done, flushed) = tokio::sync::oneshot::channel();
        let out = Outgoing {
            frame: response,
            flushed: Some(done),
        };
        if tx.send(out).await.is_ok() {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), flushed).await;
        }
    } else {
        let _ = tx
            .send(Outgoing {
                frame: response,
                flushed: None,
            })
            .await;
    }
    if strict_violation {
        let reason = format!(
            "{} ({})",
            judgment.record.reason,
            if judgment.record.rule.is_empty() {
                "default deny"
            } else {
                &judgment.record.rule
            }
        );
        let _ = crate::signals::deliver(k, agent, Signal::Policy, "kernel", reason).await;
    }
}

/// A call with a size over its bound (`crate::validate`): refused before anything else looks
/// at it, recorded (rule `limits`, not a violation) and answered.
async fn over_limit(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    id: u64,
    call: Syscall,
    error: Errno,
    started: Instant,
) {
    tracing::debug!(agent_id = %agent.id, request = id, %error, "call over a limit");
    let decision = DecisionRecord {
        allowed: false,
        policy_allowed: false,
        rule: "limits".into(),
        reason: format!("over a kernel limit: {error}"),
        violation: false,
        mode: "builtin".into(),
    };
    let duration_us = started.elapsed().as_micros() as u64;
    let result = record_answer(k, agent, id, call, decision, Err(error), duration_us).await;
    let _ = tx
        .send(Outgoing {
            frame: KernelFrame::Response(Response { id, result }),
            flushed: None,
        })
        .await;
}

/// A call that reaches into another agent's tree: refused before the policy sees it,
/// recorded as a violation, and in strict mode the agent is ended with SIGTRUST.
async fn trust_violation(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    tx: &mpsc::Sender<Outgoing>,
    id: u64,
    call: Syscall,
    reason: String,
    started: Instant,
) {
    tracing::warn!(agent_id = %agent.id, %reason, "trust violation");
    let strict = agent.policy().mode() == Mode::Strict;
    let result: Result<Reply, Errno> = Err(Errno::PermissionDenied {
        rule: "trust".into(),
        reason: format!("trust violation: {reason}; an agent sees only its own tree"),
    });
    let decision = DecisionRecord {
        allowed: false,
        policy_allowed: false,
        rule: "trust".into(),
        reason: format!("trust violation: {reason}"),
        violation: true,
        mode: "builtin".into(),
    };
    let duration_us = started.elapsed().as_micros() as u64;
    let result = record_answer(k, agent, id, call, decision, result, duration_us).await;
    let (done, flushed) = tokio::sync::oneshot::channel();
    let out = Outgoing {
        frame: KernelFrame::Response(Response { id, result }),
        flushed: Some(done),
    };
    if tx.send(out).await.is_ok() && strict {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), flushed).await;
    }
    if strict {
        let _ = crate::signals::deliver(
            k,
            agent,
            Signal::Trust,
            "kernel",
            format!("trust violation: {reason}"),
        )
        .await;
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
    {
        let mut c = agent.counters();
        c.syscalls += 1;
        if decision.allowed {
            c.allowed += 1;
        } else {
            c.denied += 1;
        }
    }
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
    k.enforce_recorder_share(agent).await;
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

    fn decision(allowed: bool, rule: &str) -> Composed {
        Composed {
            allowed,
            rule: rule.into(),
            reason: format!("{allowed} {rule}"),
            mode: Mode::Strict,
            requires_approval: false,
            rate_limits: Vec::new(),
            dry_run: false,
            digest: [0; 32],
        }
    }

    #[test]
    fn a_peer_is_allowed_by_id_or_by_name_and_a_deny_on_either_wins() {
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

    #[test]
    fn a_rename_is_refused_when_either_path_is_and_the_refusal_is_named() {
        let allow = || decision(true, "ws (p.md:3)");
        let deny_rule = || decision(false, "no-secrets (p.md:9)");
        let default_deny = || decision(false, "");
        assert_eq!(both_paths(allow(), allow()), allow());
        assert_eq!(both_paths(allow(), deny_rule()), deny_rule());
        assert_eq!(both_paths(deny_rule(), allow()), deny_rule());
        assert_eq!(both_paths(allow(), default_deny()), default_deny());
        assert_eq!(both_paths(default_deny(), deny_rule()), default_deny());
    }

    #[test]
    fn a_rename_needs_what_either_side_needs_and_charges_a_shared_rate_once() {
        let rate = agentos_policy::Rate {
            count: 1,
            period: agentos_policy::Period::Minute,
        };
        let charge = |index: usize, rule: &str| crate::policy::RateCharge {
            source: crate::policy::Source::Agent,
            index,
            rate,
            rule: rule.into(),
        };
        let mut from = decision(true, "ws (p.md:3)");
        from.rate_limits = vec![charge(0, "ws (p.md:3)")];
        let mut to = decision(true, "drafts (p.md:7)");
        to.requires_approval = true;
        to.dry_run = true;
        to.rate_limits = vec![charge(0, "ws (p.md:3)"), charge(2, "drafts (p.md:7)")];
        let d = both_paths(from, to);
        assert_eq!(
            d.rule, "drafts (p.md:7)",
            "the rule asking for approval is named"
        );
        assert!(d.requires_approval && d.dry_run);
        assert_eq!(
            d.rate_limits,
            vec![charge(0, "ws (p.md:3)"), charge(2, "drafts (p.md:7)")]
        );
    }
}

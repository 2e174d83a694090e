//! The control socket: `agentctl`'s door into the kernel.
//!
//! One request per connection (see `agentos_syscalls::control`). The socket is mode 0600 inside
//! a 0700 state dir, and every connection's peer is checked with `SO_PEERCRED`: only root and
//! the kernel's own user may drive it.
//!
//! Every answer fits its frame whatever the agents do: the approvals listing is one bounded,
//! fair page (`crate::approvals`), and the strings an agent can influence in an agent row
//! (its exit reason, which may quote a path or a rule it hit) are cut to
//! [`display_bound`] (the full text is in the flight recorder). The other fields of a row come
//! from the operator (name, program, arguments, policy path) or the kernel; how many rows
//! `ps` has is the operator's doing too: agents cannot spawn agents.

mod admit;

use std::sync::Arc;

use agentos_syscalls::control::{
    display_bound, AgentInfo, AgentState, ControlError, ControlErrorKind, ControlRequest,
    ControlResponse, ExitStatus, MAX_CONTROL_RESPONSE,
};
use agentos_syscalls::frame::{self, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use crate::agent::Agent;
use crate::error::KernelError;
use crate::kernel::{control_error, Kernel, KernelInner};
use admit::{admit, same_pid_namespace, Admission, Peer};

/// Control requests are small except `Spawn`, which carries a policy file.
const MAX_CONTROL_FRAME: u32 = 8 << 20;

/// Largest log chunk sent in one frame.
const LOG_CHUNK: usize = 1 << 20;

pub(crate) fn listen(k: &Arc<KernelInner>) -> Result<(), KernelError> {
    use std::os::unix::fs::PermissionsExt;
    let path = k.config.socket_path();
    let err = |source| KernelError::Listen {
        path: path.clone(),
        source,
    };
    // We hold the state dir's lock, so a socket file left here belongs to a dead kernel.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(&path).map_err(err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    let kernel = Kernel {
        inner: Arc::clone(k),
    };
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(kernel.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::task::yield_now().await;
                }
            }
        }
    });
    Ok(())
}

async fn send(stream: &mut UnixStream, resp: &ControlResponse) -> std::io::Result<()> {
    let mut bytes = frame::encode(resp).map_err(std::io::Error::other)?;
    if bytes.len() - HEADER_LEN > MAX_CONTROL_RESPONSE as usize {
        // Never sent: the client would refuse the frame and show nothing.
        let e = control_error(
            ControlErrorKind::Failed,
            format!(
                "the answer is {} bytes, over the control frame limit of {MAX_CONTROL_RESPONSE}",
                bytes.len() - HEADER_LEN
            ),
            "narrow the request (e.g. `agentctl approvals --limit`, `--agent`)",
        );
        bytes = frame::encode(&ControlResponse::Error(e)).map_err(std::io::Error::other)?;
    }
    stream.write_all(&bytes).await
}

async fn read_request(stream: &mut UnixStream) -> Result<ControlRequest, String> {
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| format!("cannot read request: {e}"))?;
    let len = frame::body_len(header, MAX_CONTROL_FRAME).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("cannot read request: {e}"))?;
    frame::decode(&body).map_err(|e| {
        format!("request does not decode ({e}); is agentctl the same version as the kernel?")
    })
}

async fn connection(kernel: Kernel, mut stream: UnixStream) {
    let (peer, peer_pid) = match stream.peer_cred() {
        Ok(c) => (
            Some(Peer {
                uid: c.uid(),
                namespace: same_pid_namespace(c.pid(), pid_ns_depth),
            }),
            c.pid(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "control connection without credentials refused");
            (None, None)
        }
    };
    let peer = match admit(peer.as_ref(), rustix::process::geteuid().as_raw()) {
        Admission::Admit => match peer {
            Some(p) => p.uid,
            None => return,
        },
        Admission::Drop => return,
        Admission::Refuse {
            error,
            agent_reason,
        } => {
            let _ = send(&mut stream, &ControlResponse::Error(error)).await;
            if let Some(reason) = agent_reason {
                punish_agent_peer(&kernel, peer_pid, reason).await;
            }
            return;
        }
    };
    let request = match read_request(&mut stream).await {
        Ok(r) => r,
        Err(message) => {
            let e = control_error(
                ControlErrorKind::Usage,
                message,
                "upgrade agentctl and the kernel together",
            );
            let _ = send(&mut stream, &ControlResponse::Error(e)).await;
            return;
        }
    };
    let source = format!("operator (uid {peer})");
    let answer =
        |r: Result<ControlResponse, ControlError>| r.unwrap_or_else(ControlResponse::Error);
    let response = match request {
        ControlRequest::Status => ControlResponse::Status(kernel.status()),
        ControlRequest::Spawn(req) => answer(kernel.spawn(req).await.map(ControlResponse::Spawned)),
        ControlRequest::Ps => {
            ControlResponse::Agents(kernel.ps().into_iter().map(bounded_row).collect())
        }
        ControlRequest::Inspect { agent } => answer(
            kernel
                .inspect(&agent)
                .map(|a| ControlResponse::Agent(bounded_row(a))),
        ),
        ControlRequest::Wait { agent } => answer(
            kernel
                .wait(&agent)
                .await
                .map(|a| ControlResponse::Agent(bounded_row(a))),
        ),
        ControlRequest::Signal { agent, signal } => answer(
            kernel
                .signal(&agent, signal, &source)
                .await
                .map(|id| ControlResponse::Signaled { agent: id, signal }),
        ),
        ControlRequest::Logs { agent, follow } => {
            if let Err(e) = stream_logs(&kernel, &mut stream, &agent, follow).await {
                let _ = send(&mut stream, &ControlResponse::Error(e)).await;
            }
            return;
        }
        ControlRequest::Approvals => ControlResponse::Approvals(kernel.approvals()),
        ControlRequest::ApprovalsPage(q) => {
            ControlResponse::ApprovalsPage(kernel.approvals_page(&q))
        }
        ControlRequest::Approve { id } => answer(
            kernel
                .decide(id, true, &source)
                .map(|()| ControlResponse::Decided { id, approved: true }),
        ),
        ControlRequest::Deny { id } => {
            answer(
                kernel
                    .decide(id, false, &source)
                    .map(|()| ControlResponse::Decided {
                        id,
                        approved: false,
                    }),
            )
        }
        ControlRequest::SpawnRestored {
            spawn,
            from,
            checkpoint,
        } => answer(
            kernel
                .spawn_restored(spawn, from, checkpoint)
                .await
                .map(ControlResponse::Spawned),
        ),
        ControlRequest::ReloadPolicy { agent, policy } => {
            answer(kernel.reload_policy(&agent, &policy, &source).map(
                |(agent, old_digest, new_digest)| ControlResponse::Reloaded {
                    agent,
                    old_digest,
                    new_digest,
                },
            ))
        }
        ControlRequest::Shutdown => {
            let _ = send(&mut stream, &ControlResponse::ShuttingDown).await;
            let _ = kernel.inner.shutdown.send(true);
            return;
        }
    };
    let _ = send(&mut stream, &response).await;
}

/// An agent row with the strings the agent can influence cut to [`display_bound`].
fn bounded_row(mut a: AgentInfo) -> AgentInfo {
    match &mut a.exit {
        Some(ExitStatus::Killed { reason, .. }) | Some(ExitStatus::SandboxFailed { reason }) => {
            *reason = display_bound(reason);
        }
        Some(ExitStatus::Code(_)) | Some(ExitStatus::PosixSignal(_)) | None => {}
    }
    a
}

/// How deep in nested pid namespaces a process runs: the number of pids on the `NSpid:` line
/// of its (world-readable) `/proc/<pid>/status`.
fn pid_ns_depth(pid: &str) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    Some(line.split_whitespace().count())
}

/// If `pid` is an agent's process: records a protocol violation and, in strict mode, ends the
/// agent with SIGTRUST.
async fn punish_agent_peer(kernel: &Kernel, pid: Option<i32>, reason: String) {
    let Some(agent) = pid.and_then(|p| kernel.inner.agent_of_process(p as u32)) else {
        return;
    };
    kernel.inner.record(
        Some(agent.id),
        crate::recorder::RecordEvent::ProtocolViolation {
            reason: reason.clone(),
        },
    );
    if agent.policy().mode() == agentos_policy::Mode::Strict {
        let _ = crate::signals::deliver(
            &kernel.inner,
            &agent,
            agentos_syscalls::Signal::Trust,
            "kernel",
            reason,
        )
        .await;
    }
}

async fn stream_logs(
    kernel: &Kernel,
    stream: &mut UnixStream,
    agent: &agentos_syscalls::control::AgentRef,
    follow: bool,
) -> Result<(), ControlError> {
    let mut follower = kernel.follow_log(agent)?;
    let io = |e: std::io::Error| {
        control_error(
            ControlErrorKind::Failed,
            format!("cannot read the agent's log: {e}"),
            "check the state dir",
        )
    };
    let backlog = follower.backlog().map_err(io)?;
    for chunk in backlog.chunks(LOG_CHUNK) {
        if send(stream, &ControlResponse::LogChunk(chunk.to_vec()))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
    if follow {
        while let Some(chunk) = follower.next().await {
            if send(stream, &ControlResponse::LogChunk(chunk))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    }
    let _ = send(stream, &ControlResponse::LogEnd).await;
    Ok(())
}

/// Reads an agent's output: what is on disk, then live chunks until the agent has ended.
#[derive(Debug)]
pub struct LogFollower {
    agent: Arc<Agent>,
    pos: u64,
    start: u64,
    rx: broadcast::Receiver<crate::agent::LogChunk>,
    done: bool,
}

impl LogFollower {
    pub(crate) fn new(agent: &Arc<Agent>) -> Result<LogFollower, ControlError> {
        let (start, rx) = agent.log.follow();
        Ok(LogFollower {
            agent: Arc::clone(agent),
            pos: 0,
            start,
            rx,
            done: false,
        })
    }

    /// The output from `from` to `to` (or its end) as the log keeps it: a cut stretch is one
    /// marker line (see [`crate::agent::LogSink`]).
    fn read_range(&self, from: u64, to: Option<u64>) -> std::io::Result<Vec<u8>> {
        self.agent.log.read(from, to)
    }

    /// Everything written before the follower was created.
    pub fn backlog(&mut self) -> std::io::Result<Vec<u8>> {
        let out = self.read_range(0, Some(self.start))?;
        self.pos = self.start;
        Ok(out)
    }

    /// The next chunk of output; `None` once the agent has ended and all of it was returned.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        let mut exit = self.agent.exit.subscribe();
        loop {
            tokio::select! {
                biased;
                msg = self.rx.recv() => match msg {
                    Ok((offset, bytes)) => {
                        let end = offset + bytes.len() as u64;
                        if end <= self.pos {
                            continue;
                        }
                        let chunk = if offset == self.pos { bytes.to_vec() } else { self.read_range(self.pos, Some(end)).ok()? };
                        self.pos = end;
                        return Some(chunk);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => {
                        let rest = self.read_range(self.pos, None).ok()?;
                        self.pos += rest.len() as u64;
                        if !rest.is_empty() {
                            return Some(rest);
                        }
                    }
                },
                _ = exit.wait_for(Option::is_some) => {
                    self.done = true;
                    let rest = self.read_range(self.pos, None).ok()?;
                    self.pos += rest.len() as u64;
                    return if rest.is_empty() { None } else { Some(rest) };
                }
            }
        }
    }

    /// Whether the agent is still running.
    pub fn live(&self) -> bool {
        self.agent.current_state() != AgentState::Exited
    }
}

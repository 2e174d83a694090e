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
//!
//! A connection is four steps: admit the peer ([`admit()`], a pure decision over what
//! `SO_PEERCRED` and `/proc` say), read its one request, [`dispatch()`] it over [`Operations`]
//! (the kernel operations the socket drives; unit-tested against a fake), send the reply. This
//! module keeps the I/O: the listener, frames, `/proc`, punishing an agent that reached the
//! socket, and log streaming.

mod admit;
mod dispatch;

use std::sync::Arc;

use agentos_syscalls::control::{
    AgentState, ControlError, ControlErrorKind, ControlRequest, ControlResponse,
    MAX_CONTROL_RESPONSE,
};
use agentos_syscalls::frame::{self, HEADER_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use crate::agent::Agent;
use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::state::KernelInner;
use crate::util::control_error;
use admit::{admit, same_pid_namespace, Admission, Peer};
use dispatch::{dispatch, Reply};
pub(crate) use dispatch::{LogFeed, Operations};

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

/// One control connection: admit the peer, read its request, dispatch it, send the reply.
async fn connection(kernel: Kernel, mut stream: UnixStream) {
    let Some(uid) = admission(&kernel, &mut stream).await else {
        return;
    };
    let request = match read_request(&mut stream).await {
        Ok(r) => r,
        Err(e) => {
            let _ = send(&mut stream, &ControlResponse::Error(e)).await;
            return;
        }
    };
    let source = format!("operator (uid {uid})");
    match dispatch(&kernel, request, &source).await {
        Reply::Answer(response) => {
            let _ = send(&mut stream, &response).await;
        }
        Reply::Log { feed, follow } => stream_logs(&mut stream, feed, follow).await,
        Reply::Shutdown => {
            let _ = send(&mut stream, &ControlResponse::ShuttingDown).await;
            kernel.request_shutdown();
        }
    }
}

/// Reads the peer's credentials and decides ([`admit`]); a refused peer is answered (and
/// punished if it is an agent's process). The admitted peer's uid.
async fn admission(kernel: &Kernel, stream: &mut UnixStream) -> Option<u32> {
    let (peer, pid) = match stream.peer_cred() {
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
    match admit(peer.as_ref(), rustix::process::geteuid().as_raw()) {
        Admission::Admit => peer.map(|p| p.uid),
        Admission::Drop => None,
        Admission::Refuse {
            error,
            agent_reason,
        } => {
            let _ = send(stream, &ControlResponse::Error(error)).await;
            if let Some(reason) = agent_reason {
                punish_agent_peer(kernel, pid, reason).await;
            }
            None
        }
    }
}

/// Sends one frame; an answer over [`MAX_CONTROL_RESPONSE`] is replaced by an error saying so.
async fn send<W: AsyncWrite + Unpin>(
    stream: &mut W,
    resp: &ControlResponse,
) -> std::io::Result<()> {
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

/// Reads the one request of a connection (at most [`MAX_CONTROL_FRAME`] bytes).
async fn read_request<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<ControlRequest, ControlError> {
    let usage = |message: String| {
        control_error(
            ControlErrorKind::Usage,
            message,
            "upgrade agentctl and the kernel together",
        )
    };
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| usage(format!("cannot read request: {e}")))?;
    let len = frame::body_len(header, MAX_CONTROL_FRAME).map_err(|e| usage(e.to_string()))?;
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| usage(format!("cannot read request: {e}")))?;
    frame::decode(&body).map_err(|e| {
        usage(format!(
            "request does not decode ({e}); is agentctl the same version as the kernel?"
        ))
    })
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
    let Some(agent) = pid.and_then(|p| crate::signals::agent_of_process(&kernel.inner, p as u32))
    else {
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

/// Streams a log: the backlog, then (with `follow`) live chunks until the agent has ended, in
/// chunks of at most [`LOG_CHUNK`] bytes, then `LogEnd`. Stops quietly when the peer has gone.
async fn stream_logs<W: AsyncWrite + Unpin, L: LogFeed>(stream: &mut W, mut feed: L, follow: bool) {
    let backlog = match feed.backlog() {
        Ok(b) => b,
        Err(e) => {
            let e = control_error(
                ControlErrorKind::Failed,
                format!("cannot read the agent's log: {e}"),
                "check the state dir",
            );
            let _ = send(stream, &ControlResponse::Error(e)).await;
            return;
        }
    };
    for chunk in backlog.chunks(LOG_CHUNK) {
        if send(stream, &ControlResponse::LogChunk(chunk.to_vec()))
            .await
            .is_err()
        {
            return;
        }
    }
    if follow {
        while let Some(chunk) = feed.next().await {
            if send(stream, &ControlResponse::LogChunk(chunk))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let _ = send(stream, &ControlResponse::LogEnd).await;
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
        let mut exit = self.agent.life().subscribe_exit();
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

impl LogFeed for LogFollower {
    fn backlog(&mut self) -> std::io::Result<Vec<u8>> {
        LogFollower::backlog(self)
    }

    async fn next(&mut self) -> Option<Vec<u8>> {
        LogFollower::next(self).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::io::AsyncReadExt;

    use super::*;

    struct Feed {
        backlog: Result<Vec<u8>, &'static str>,
        live: VecDeque<Vec<u8>>,
    }

    impl LogFeed for Feed {
        fn backlog(&mut self) -> std::io::Result<Vec<u8>> {
            self.backlog.clone().map_err(std::io::Error::other)
        }

        async fn next(&mut self) -> Option<Vec<u8>> {
            self.live.pop_front()
        }
    }

    /// The frames `stream_logs` sends for `feed`.
    async fn streamed(feed: Feed, follow: bool) -> Vec<ControlResponse> {
        let (mut tx, mut rx) = tokio::io::duplex(64 << 10);
        let reader = tokio::spawn(async move {
            let mut bytes = Vec::new();
            rx.read_to_end(&mut bytes).await.unwrap();
            bytes
        });
        stream_logs(&mut tx, feed, follow).await;
        drop(tx);
        let bytes = reader.await.unwrap();
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = frame::body_len(rest[..HEADER_LEN].try_into().unwrap(), u32::MAX).unwrap();
            out.push(frame::decode(&rest[HEADER_LEN..HEADER_LEN + len]).unwrap());
            rest = &rest[HEADER_LEN + len..];
        }
        out
    }

    #[tokio::test]
    async fn a_log_streams_its_backlog_in_chunks_then_live_output_then_its_end() {
        let backlog = vec![b'x'; LOG_CHUNK + 10];
        let feed = || Feed {
            backlog: Ok(backlog.clone()),
            live: VecDeque::from([b"live".to_vec()]),
        };
        let head = [
            ControlResponse::LogChunk(vec![b'x'; LOG_CHUNK]),
            ControlResponse::LogChunk(vec![b'x'; 10]),
        ];
        let mut followed = head.to_vec();
        followed.extend([
            ControlResponse::LogChunk(b"live".to_vec()),
            ControlResponse::LogEnd,
        ]);
        assert_eq!(streamed(feed(), true).await, followed);
        let mut once = head.to_vec();
        once.push(ControlResponse::LogEnd);
        assert_eq!(streamed(feed(), false).await, once);
    }

    #[tokio::test]
    async fn an_unreadable_log_is_answered_with_an_error() {
        let feed = Feed {
            backlog: Err("disk gone"),
            live: VecDeque::new(),
        };
        assert_eq!(
            streamed(feed, true).await,
            vec![ControlResponse::Error(control_error(
                ControlErrorKind::Failed,
                "cannot read the agent's log: disk gone",
                "check the state dir",
            ))]
        );
    }

    #[tokio::test]
    async fn a_request_that_does_not_decode_is_a_usage_error() {
        let mut bytes = 3u32.to_le_bytes().to_vec();
        bytes.extend([0xff, 0xff, 0xff]);
        let e = read_request(&mut &bytes[..]).await.unwrap_err();
        assert_eq!(e.kind, ControlErrorKind::Usage);
        assert!(e.message.starts_with("request does not decode"), "{e:?}");

        let over = (MAX_CONTROL_FRAME + 1).to_le_bytes();
        let e = read_request(&mut &over[..]).await.unwrap_err();
        assert_eq!(e.kind, ControlErrorKind::Usage);

        let ok = frame::encode(&ControlRequest::Ps).unwrap();
        assert_eq!(read_request(&mut &ok[..]).await, Ok(ControlRequest::Ps));
    }
}

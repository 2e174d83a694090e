//! The connection layer: frames in, frames out. No policy, no recording.
//!
//! - Reading: [`read_body`] reads one frame body once the agent's memory budget has room for
//!   it (length checked against the frame limit, then reserved, then allocated);
//!   [`read_frame_with_fds`] reads and decodes one frame with `recvmsg`, keeping descriptors
//!   passed along (the launcher's seccomp listener), for the handshake and the tool launcher.
//! - Writing: one [`writer`] task per connection batches queued frames into one write and
//!   frees each answer's reservation of the budget once it is written.
//! - [`send`] queues a frame; [`send_flushed`] queues one and waits (up to [`FLUSH_TIMEOUT`])
//!   until it is in the agent's hands, for an answer that an end of the agent or of the
//!   connection follows.

use std::time::Duration;

use agentos_syscalls::frame::{self, FrameError, HEADER_LEN};
use agentos_syscalls::{AgentFrame, KernelFrame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::budget::Budget;
use crate::agent::Outgoing;

/// How long [`send_flushed`] waits for a frame to reach the agent.
pub(super) const FLUSH_TIMEOUT: Duration = Duration::from_millis(500);

/// Request bodies at least this large are decoded off the runtime worker.
const DECODE_OFF_WORKER: usize = 64 << 10;

/// The read buffer of a connection after its handshake ([`buffered`]): one `read` takes a
/// small request whole (header and body), where reading the header and then the body took two,
/// and its short count tells the runtime the socket is drained, so no third `read` meets
/// `EAGAIN` before the connection waits. Bytes in it are the agent's, read before they are
/// reserved in its budget: at most this many per connection.
const READ_BUFFER: usize = 1 << 10;

/// A batch buffer larger than this is not kept between batches (one large answer must not
/// pin its size for the connection's life).
const KEEP_BUFFER: usize = 1 << 20;

/// Queues `frame` for the writer; `false` once the connection is gone.
pub(super) async fn send(tx: &mpsc::Sender<Outgoing>, frame: KernelFrame) -> bool {
    tx.send(Outgoing {
        frame,
        flushed: None,
    })
    .await
    .is_ok()
}

/// Queues `frame` and waits, up to [`FLUSH_TIMEOUT`], until the writer has put it in the
/// agent's hands (read by the agent, see [`wait_read_by_peer`]); `false` when the connection
/// is gone. Used where something follows the answer that the agent must not see first: a
/// signal that ends it, or the end of the connection.
pub(super) async fn send_flushed(tx: &mpsc::Sender<Outgoing>, frame: KernelFrame) -> bool {
    let (done, flushed) = oneshot::channel();
    let out = Outgoing {
        frame,
        flushed: Some(done),
    };
    if tx.send(out).await.is_err() {
        return false;
    }
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, flushed).await;
    true
}

/// Writes queued frames into the agent's socket, batching what is already queued into one
/// write; frees each answer's reservation of the memory budget once it is written, and closes
/// the budget when the connection ends (so a reader waiting for room ends too).
pub(super) async fn writer(
    wr: OwnedWriteHalf,
    rx: mpsc::Receiver<Outgoing>,
    budget: std::sync::Arc<Budget>,
) {
    write_frames(wr, rx, &budget).await;
    budget.close();
}

async fn write_frames(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Outgoing>, budget: &Budget) {
    // Grown by the first answers: an idle agent's writer holds no buffer.
    let mut buf = Vec::new();
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
            buf = Vec::new();
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
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    while matches!(crate::sys::unread_bytes(fd), Ok(n) if n > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The connection's read half, buffered ([`READ_BUFFER`]); only after the handshake, whose
/// frames may carry descriptors (`recvmsg`, [`read_frame_with_fds`]).
pub(super) fn buffered(rd: &mut OwnedReadHalf) -> BufReader<&mut OwnedReadHalf> {
    BufReader::with_capacity(READ_BUFFER, rd)
}

/// Reads one frame body once the memory budget has room for it (the reservation is returned
/// with it); `Ok(None)` on a clean end of stream or once the connection's budget is closed.
pub(super) async fn read_body(
    rd: &mut (impl AsyncRead + Unpin),
    max: u32,
    budget: &Budget,
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
/// `fds`, and decoded: used until the Hello, while the launcher may still pass its seccomp
/// listener, and for a tool's launcher. (A plain `read` would make the host kernel close
/// them.) `Ok(None)` on a clean end of stream.
pub(crate) async fn read_frame_with_fds(
    stream: &UnixStream,
    max: u32,
    fds: &mut Vec<std::os::fd::OwnedFd>,
) -> Result<Option<AgentFrame>, String> {
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
    decode(&body).map(Some)
}

/// Decodes a request body; a large one off the runtime worker (decoding is linear in the
/// body, up to the frame limit), so the tasks queued on the worker are not held up behind it.
pub(super) fn decode_request(body: &[u8]) -> Result<AgentFrame, String> {
    if body.len() >= DECODE_OFF_WORKER {
        crate::hostio::off_worker(|| decode(body))
    } else {
        decode(body)
    }
}

fn decode(body: &[u8]) -> Result<AgentFrame, String> {
    frame::decode::<AgentFrame>(body).map_err(|e: FrameError| format!("{e}: {}", error_source(&e)))
}

fn error_source(e: &FrameError) -> String {
    std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use agentos_syscalls::{Errno, Response};

    use super::*;

    fn answer() -> KernelFrame {
        KernelFrame::Response(Response {
            id: 7,
            result: Err(Errno::ApprovalDenied),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn send_flushed_waits_for_the_flush_at_most_the_flush_timeout() {
        let (tx, mut rx) = mpsc::channel(4);
        let started = tokio::time::Instant::now();
        let (sent, held) = tokio::join!(send_flushed(&tx, answer()), rx.recv());
        assert!(sent);
        // The writer never confirms (its notice is held, not dropped): the wait ends at the
        // timeout, not before and not never.
        assert_eq!(started.elapsed(), FLUSH_TIMEOUT);
        assert!(held.unwrap().flushed.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn send_flushed_returns_once_the_writer_confirms() {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(4);
        let started = tokio::time::Instant::now();
        let writer = async {
            let out = rx.recv().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            out.flushed.unwrap().send(()).unwrap();
        };
        let (sent, ()) = tokio::join!(send_flushed(&tx, answer()), writer);
        assert!(sent);
        assert_eq!(started.elapsed(), Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn send_flushed_on_a_closed_connection_does_not_wait() {
        let (tx, rx) = mpsc::channel::<Outgoing>(4);
        drop(rx);
        let started = tokio::time::Instant::now();
        assert!(!send_flushed(&tx, answer()).await);
        assert!(!send(&tx, answer()).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}

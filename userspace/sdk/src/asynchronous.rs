//! The async (tokio) client: a reader task routes answers to the waiting futures by request
//! id, so any number of calls can be in flight on one connection.

use std::sync::Arc;

use agentos_syscalls::frame::{self, FrameError};
use agentos_syscalls::{
    AgentFrame, AgentId, Decision, DirEntry, Errno, ExecOutput, FileStat, Hello, KernelFrame,
    Message, OpenMode, Reply, Signal, Syscall, Welcome, WriteMode, ABI_VERSION,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::calls::{self, typed_methods, Call};
use super::handlers::Handlers;
use super::pending::{welcome_of, Pending};
use super::{SdkError, SDK_NAME};

#[derive(Debug)]
struct Inner {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending<oneshot::Sender<Result<Reply, Errno>>>,
    welcome: Welcome,
    handlers: Arc<Handlers>,
}

/// An async connection to the kernel. Cheap to clone; all clones share one connection.
#[derive(Debug, Clone)]
pub struct AsyncClient {
    inner: Arc<Inner>,
}

fn io_err(e: std::io::Error) -> SdkError {
    SdkError::Frame(FrameError::Io(e))
}

async fn read_kernel_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
) -> Result<Option<KernelFrame>, SdkError> {
    let mut header = [0u8; frame::HEADER_LEN];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io_err(e)),
    }
    let len = frame::body_len(header, max)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(io_err)?;
    Ok(Some(frame::decode(&body)?))
}

impl AsyncClient {
    /// Connects over the socket named by `AGENTOS_FD` and does the handshake. Must be called
    /// inside a tokio runtime.
    pub async fn connect() -> Result<AsyncClient, SdkError> {
        let std_stream = super::agent_socket()?;
        std_stream.set_nonblocking(true).map_err(io_err)?;
        AsyncClient::from_stream(UnixStream::from_std(std_stream).map_err(io_err)?).await
    }

    /// Does the handshake over an already connected socket.
    pub async fn from_stream(stream: UnixStream) -> Result<AsyncClient, SdkError> {
        let (mut reader, mut writer) = stream.into_split();
        let hello = frame::encode(&AgentFrame::Hello(Hello {
            abi: ABI_VERSION,
            sdk: SDK_NAME.into(),
        }))?;
        writer.write_all(&hello).await.map_err(io_err)?;
        let welcome = welcome_of(read_kernel_frame(&mut reader, frame::DEFAULT_MAX_FRAME).await?)?;
        let inner = Arc::new(Inner {
            writer: tokio::sync::Mutex::new(writer),
            pending: Pending::new(),
            welcome,
            handlers: Handlers::new(),
        });
        let for_reader = Arc::clone(&inner);
        tokio::spawn(async move {
            let max = for_reader.welcome.limits.max_frame;
            while let Ok(Some(frame)) = read_kernel_frame(&mut reader, max).await {
                for_reader
                    .pending
                    .route(frame, &for_reader.handlers, |tx, result| {
                        let _ = tx.send(result);
                    });
            }
            for_reader.pending.close();
        });
        Ok(AsyncClient { inner })
    }

    /// This agent's id.
    pub fn agent_id(&self) -> AgentId {
        self.inner.welcome.agent_id
    }

    /// The kernel's `Welcome` (limits, policy digest).
    pub fn welcome(&self) -> &Welcome {
        &self.inner.welcome
    }

    /// Runs `handler` on the SDK's signal thread whenever the kernel sends `signal`.
    pub fn on_signal<F>(&self, signal: Signal, handler: F) -> Result<(), SdkError>
    where
        F: Fn(Signal, &str) + Send + Sync + 'static,
    {
        self.inner
            .handlers
            .register(signal, Arc::new(handler))
            .map_err(io_err)
    }

    /// Sends later calls in the W3C trace context `traceparent`
    /// (`00-<trace id>-<span id>-<flags>`, e.g. the current span of the agent's own
    /// OpenTelemetry tracer): with a kernel that exports traces, its span of each call is a
    /// child of that span, so the agent's trace and the kernel's are one. `None` stops it.
    pub fn set_traceparent(&self, traceparent: Option<&str>) -> Result<(), SdkError> {
        self.inner.pending.set_traceparent(traceparent)
    }

    /// Sends any syscall and waits for its answer.
    pub async fn syscall(&self, call: Syscall) -> Result<Reply, SdkError> {
        self.invoke(Call { call, decode: Ok }).await
    }

    async fn invoke<T>(&self, call: Call<T>) -> Result<T, SdkError> {
        let pending = &self.inner.pending;
        let (id, bytes) = pending.encode(call.call, self.inner.welcome.limits.max_frame)?;
        let (tx, rx) = oneshot::channel();
        pending.register(id, tx)?;
        if let Err(e) = self.inner.writer.lock().await.write_all(&bytes).await {
            pending.cancel(id);
            return Err(io_err(e));
        }
        let reply = rx.await.map_err(|_| SdkError::Closed)??;
        (call.decode)(reply)
    }

    typed_methods!(async; .await);
}

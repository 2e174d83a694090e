//! The blocking client: one reader thread per connection routes answers to the waiting
//! callers by request id and signal events to the handlers.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};

use agentos_syscalls::frame::{self, read_frame};
use agentos_syscalls::{
    AgentFrame, AgentId, Decision, DirEntry, Errno, ExecOutput, FileStat, Hello, KernelFrame,
    Message, OpenMode, Reply, Signal, Syscall, Welcome, WriteMode, ABI_VERSION,
};

use super::calls::{self, typed_methods, Call};
use super::handlers::Handlers;
use super::pending::{welcome_of, Pending};
use super::{SdkError, SDK_NAME};

#[derive(Debug)]
struct Inner {
    writer: Mutex<UnixStream>,
    pending: Pending<SyncSender<Result<Reply, Errno>>>,
    welcome: Welcome,
    handlers: Arc<Handlers>,
}

/// A blocking connection to the kernel. Cheap to clone; all clones share one connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects over the socket named by `AGENTOS_FD` and does the handshake.
    pub fn connect() -> Result<Client, SdkError> {
        Client::from_stream(super::agent_socket()?)
    }

    /// Does the handshake over an already connected socket.
    pub fn from_stream(mut stream: UnixStream) -> Result<Client, SdkError> {
        frame::write_frame(
            &mut stream,
            &AgentFrame::Hello(Hello {
                abi: ABI_VERSION,
                sdk: SDK_NAME.into(),
            }),
        )?;
        let welcome = welcome_of(read_kernel_frame(&mut stream, frame::DEFAULT_MAX_FRAME)?)?;
        let reader = stream
            .try_clone()
            .map_err(|e| SdkError::Frame(frame::FrameError::Io(e)))?;
        let inner = Arc::new(Inner {
            writer: Mutex::new(stream),
            pending: Pending::new(),
            welcome,
            handlers: Handlers::new(),
        });
        let for_reader = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("agentos-reader".into())
            .spawn(move || reader_loop(&for_reader, reader))
            .map_err(|e| SdkError::Frame(frame::FrameError::Io(e)))?;
        Ok(Client { inner })
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
            .map_err(|e| SdkError::Frame(frame::FrameError::Io(e)))
    }

    /// Sends later calls in the W3C trace context `traceparent`
    /// (`00-<trace id>-<span id>-<flags>`, e.g. the current span of the agent's own
    /// OpenTelemetry tracer): with a kernel that exports traces, its span of each call is a
    /// child of that span, so the agent's trace and the kernel's are one. `None` stops it.
    pub fn set_traceparent(&self, traceparent: Option<&str>) -> Result<(), SdkError> {
        self.inner.pending.set_traceparent(traceparent)
    }

    /// Sends any syscall and waits for its answer.
    pub fn syscall(&self, call: Syscall) -> Result<Reply, SdkError> {
        self.invoke(Call { call, decode: Ok })
    }

    /// Announces the exit to the kernel, then exits the process with `code`.
    pub fn exit(&self, code: i32) -> ! {
        let _ = self.announce_exit(code);
        std::process::exit(code)
    }

    fn invoke<T>(&self, call: Call<T>) -> Result<T, SdkError> {
        let pending = &self.inner.pending;
        let (id, bytes) = pending.encode(call.call, self.inner.welcome.limits.max_frame)?;
        let (tx, rx) = sync_channel(1);
        pending.register(id, tx)?;
        let written = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&bytes);
        if let Err(e) = written {
            pending.cancel(id);
            return Err(SdkError::Frame(frame::FrameError::Io(e)));
        }
        let reply = rx.recv().map_err(|_| SdkError::Closed)??;
        (call.decode)(reply)
    }

    typed_methods!(; );
}

fn read_kernel_frame(stream: &mut UnixStream, max: u32) -> Result<Option<KernelFrame>, SdkError> {
    match read_frame(stream, max)? {
        Some(body) => Ok(Some(frame::decode(&body)?)),
        None => Ok(None),
    }
}

fn reader_loop(inner: &Inner, mut stream: UnixStream) {
    let max = inner.welcome.limits.max_frame;
    while let Ok(Some(frame)) = read_kernel_frame(&mut stream, max) {
        inner.pending.route(frame, &inner.handlers, |tx, result| {
            let _ = tx.send(result);
        });
    }
    inner.pending.close();
}

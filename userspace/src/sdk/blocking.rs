//! The blocking client: one reader thread per connection routes answers to the waiting
//! callers by request id and signal events to the handlers.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};

use agentos_syscalls::frame::{self, read_frame};
use agentos_syscalls::{
    AgentFrame, AgentId, Decision, DirEntry, Errno, Event, ExecOutput, FileStat, Hello,
    KernelFrame, Message, OpenMode, Reply, Request, Signal, Syscall, Welcome, WriteMode,
    ABI_VERSION,
};

use super::calls::{self, typed_methods, Call};
use super::handlers::Handlers;
use super::{SdkError, SDK_NAME};

type Pending = HashMap<u64, SyncSender<Result<Reply, Errno>>>;

#[derive(Debug)]
struct Inner {
    writer: Mutex<UnixStream>,
    pending: Mutex<Pending>,
    closed: AtomicBool,
    next_id: AtomicU64,
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
        let welcome = match read_kernel_frame(&mut stream, frame::DEFAULT_MAX_FRAME)? {
            Some(KernelFrame::Welcome(w)) => w,
            Some(KernelFrame::Refused(e)) => return Err(SdkError::Refused(e)),
            Some(other) => {
                return Err(SdkError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )))
            }
            None => return Err(SdkError::Closed),
        };
        let reader = stream
            .try_clone()
            .map_err(|e| SdkError::Frame(frame::FrameError::Io(e)))?;
        let inner = Arc::new(Inner {
            writer: Mutex::new(stream),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
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
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode(&AgentFrame::Request(Request {
            id,
            call: call.call,
        }))?;
        let limit = self.inner.welcome.limits.max_frame;
        if bytes.len() - frame::HEADER_LEN > limit as usize {
            return Err(SdkError::TooLarge {
                size: bytes.len() - frame::HEADER_LEN,
                limit,
            });
        }
        let (tx, rx) = sync_channel(1);
        {
            let mut pending = self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(SdkError::Closed);
            }
            pending.insert(id, tx);
        }
        let written = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&bytes);
        if let Err(e) = written {
            self.inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
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
        match frame {
            KernelFrame::Response(r) => {
                let waiter = inner
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&r.id);
                if let Some(tx) = waiter {
                    let _ = tx.send(r.result);
                }
            }
            KernelFrame::Event(Event::Signal { signal, reason }) => {
                inner.handlers.deliver(signal, reason)
            }
            // Nothing else is valid after the handshake; the kernel never sends it.
            KernelFrame::Welcome(_) | KernelFrame::Refused(_) => {}
        }
    }
    let mut pending = inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
    inner.closed.store(true, Ordering::Release);
    pending.clear();
}

//! The blocking client. Whoever waits for an answer reads the socket itself (leader/follower):
//! a lone caller sends its request and reads its own answer, with no thread in between. It
//! waits for the answer in `poll(POLLIN)` and reads it whole into a buffer ([`WaitIn`],
//! [`READ_BUFFER`]): woken once, by the answer, and one `read` for it. With several callers
//! at once, one of them (the leader) reads and routes each frame by request id; the others
//! wait for their answer or for their turn to lead.
//!
//! Signal events are read by whoever reads: a caller, or when no call has been made for
//! [`LINGER`], the connection's own reader thread, which then sits in `read` for the next
//! event. While calls are being made it stays out of the way (so as not to take the answers
//! from their callers with a thread switch of its own); an event that arrives between two calls
//! in that time is read by the next call, or by the reader thread once it looks again. It looks
//! [`LINGER`] after the last call at first, then less and less often while the calls go on (up
//! to [`MAX_PATIENCE`] apart): a busy agent's reader thread wakes a few times a second, not
//! every [`LINGER`] — with 64 busy agents on one CPU those wakeups took about a tenth of it.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agentos_syscalls::frame::{self, read_frame};
use agentos_syscalls::{
    AgentFrame, AgentId, Decision, DirEntry, Errno, ExecOutput, FileStat, Hello, KernelFrame,
    Message, OpenMode, Reply, Signal, Syscall, Welcome, WriteMode, ABI_VERSION,
};

use super::calls::{self, typed_methods, Call};
use super::handlers::Handlers;
use super::pending::{welcome_of, Pending};
use super::{SdkError, SDK_NAME};

/// How long after the last call the reader thread leaves the socket to the callers.
const LINGER: Duration = Duration::from_millis(5);

/// The longest the reader thread sleeps while calls go on before it looks again: an event
/// arriving just after an agent's last call is read at most this late.
const MAX_PATIENCE: Duration = Duration::from_millis(80);

/// The read buffer: one `read` takes a whole small answer (header and body) and any event
/// behind it, instead of one `read` for the header and one for the body.
const READ_BUFFER: usize = 8 << 10;

/// The read half as the leader reads it: it waits for the answer in `poll(POLLIN)`, then
/// `read`s it.
///
/// A thread asleep in `read` on a Unix socket is woken by any change of the socket, also by the
/// kernel taking the request just sent (room to write again): it wakes, finds nothing to read
/// and sleeps again — two context switches per call for nothing, and on one CPU the kernel's
/// worker is preempted for them in the middle of the call. `poll` asks for input only, so the
/// caller sleeps until its answer (or the end of the connection) is there.
#[derive(Debug)]
struct WaitIn(UnixStream);

impl Read for WaitIn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use rustix::event::{poll, PollFd, PollFlags};
        loop {
            let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
            match poll(&mut fds, None) {
                // Readable, or hung up / in error: the `read` tells which.
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.0.read(buf)
    }
}

/// Where a call's answer is put by whoever reads it (under [`Inner::reading`]).
type Slot = Arc<Mutex<Option<Result<Reply, Errno>>>>;

/// Who reads the socket: at most one thread at a time.
#[derive(Debug)]
struct Reading {
    /// A thread is reading (a caller, or the reader thread).
    leader: bool,
    /// The connection is gone (end of stream or a broken frame).
    closed: bool,
    /// When a call last started or ended.
    last_call: Option<Instant>,
    /// Callers asleep on [`Inner::turn`]: the leader wakes them only when there are some (a
    /// condition variable's wake is a `futex` call whether anyone sleeps or not, one per
    /// answer for a lone caller).
    waiting: usize,
}

#[derive(Debug)]
struct Inner {
    writer: Mutex<UnixStream>,
    /// The read half, buffered (a whole answer usually comes in one `read`): locked only by
    /// the leader.
    stream: Mutex<BufReader<WaitIn>>,
    pending: Pending<Slot>,
    reading: Mutex<Reading>,
    /// Callers waiting for their answer or their turn to lead.
    turn: Condvar,
    /// The reader thread, waiting for the callers to fall quiet.
    quiet: Condvar,
    welcome: Welcome,
    handlers: Arc<Handlers>,
}

impl Inner {
    fn reading(&self) -> MutexGuard<'_, Reading> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// As the leader (`r.leader` set, `r` released), reads one frame; then, under the lock
    /// again, routes it (or closes on the end of the stream), gives up the lead and wakes the
    /// callers waiting.
    fn lead_once<'a>(&'a self, r: MutexGuard<'a, Reading>) -> MutexGuard<'a, Reading> {
        drop(r);
        let max = self.welcome.limits.max_frame;
        let frame = {
            let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
            read_kernel_frame(&mut *stream, max)
        };
        let mut r = self.reading();
        r.leader = false;
        match frame {
            Ok(Some(frame)) => self.pending.route(frame, &self.handlers, |slot, result| {
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            }),
            Ok(None) | Err(_) => {
                r.closed = true;
                self.pending.close();
                self.quiet.notify_all();
            }
        }
        if r.waiting > 0 {
            self.turn.notify_all();
        }
        r
    }

    /// Waits for the answer put in `slot`, reading the socket whenever nobody else does.
    fn wait(&self, slot: &Slot) -> Result<Result<Reply, Errno>, SdkError> {
        let mut r = self.reading();
        loop {
            if let Some(answer) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                r.last_call = Some(Instant::now());
                return Ok(answer);
            }
            if r.closed {
                return Err(SdkError::Closed);
            }
            if r.leader {
                r.waiting += 1;
                r = self.turn.wait(r).unwrap_or_else(PoisonError::into_inner);
                r.waiting -= 1;
            } else {
                r.leader = true;
                r = self.lead_once(r);
            }
        }
    }
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
            stream: Mutex::new(BufReader::with_capacity(READ_BUFFER, WaitIn(reader))),
            pending: Pending::new(),
            reading: Mutex::new(Reading {
                leader: false,
                closed: false,
                last_call: None,
                waiting: 0,
            }),
            turn: Condvar::new(),
            quiet: Condvar::new(),
            welcome,
            handlers: Handlers::new(),
        });
        let for_reader = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("agentos-reader".into())
            .spawn(move || reader_loop(&for_reader))
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
        let slot: Slot = Arc::new(Mutex::new(None));
        pending.register(id, Arc::clone(&slot))?;
        self.inner.reading().last_call = Some(Instant::now());
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
        let reply = self.inner.wait(&slot)??;
        (call.decode)(reply)
    }

    typed_methods!(; );
}

fn read_kernel_frame(stream: &mut impl Read, max: u32) -> Result<Option<KernelFrame>, SdkError> {
    match read_frame(stream, max)? {
        Some(body) => Ok(Some(frame::decode(&body)?)),
        None => Ok(None),
    }
}

/// The connection's reader thread: reads (signal events, and answers for callers waiting on
/// it) whenever no call has started or ended for [`LINGER`] and nobody else is reading; ends
/// with the connection.
fn reader_loop(inner: &Inner) {
    let mut r = inner.reading();
    // How long to sleep when calls are still going on: doubled each time they are.
    let mut patience = LINGER;
    loop {
        if r.closed {
            return;
        }
        let busy = match r.last_call.map(|t| t.elapsed()) {
            _ if r.leader => Some(LINGER),
            Some(since) if since < LINGER => Some(LINGER - since),
            _ => None,
        };
        match busy {
            Some(rest) => {
                r = inner
                    .quiet
                    .wait_timeout(r, rest.max(patience))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                patience = (patience * 2).min(MAX_PATIENCE);
            }
            None => {
                patience = LINGER;
                r.leader = true;
                r = inner.lead_once(r);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The voluntary context switches of this process's thread named `name` (a new thread
    /// names itself once it runs: waited for, up to 10 s).
    fn switches_of(name: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if comm.trim() == name {
                    let status = std::fs::read_to_string(task.path().join("status")).unwrap();
                    return status
                        .lines()
                        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap();
                }
            }
            std::thread::yield_now();
        }
        panic!("no thread named {name}");
    }

    /// Shuts the agent's end down when dropped, also by a panic: the kernel thread of a
    /// scope then ends, and the scope with it.
    struct EndOnDrop(UnixStream);

    impl Drop for EndOnDrop {
        fn drop(&mut self) {
            let _ = self.0.shutdown(std::net::Shutdown::Both);
        }
    }

    /// A kernel on the other end of `stream`: welcomes the agent, answers every `Checkpoint`
    /// at once, and after `events_after` calls sends a `Signal` event once (with no answer
    /// pending), then keeps answering until the connection ends.
    fn kernel(mut stream: UnixStream, events_after: u64) {
        use agentos_syscalls::{Event, Limits, Request, Response};
        frame::read_frame(&mut stream, frame::DEFAULT_MAX_FRAME).unwrap();
        let welcome = Welcome {
            abi: ABI_VERSION,
            agent_id: AgentId(1),
            limits: Limits {
                max_frame: frame::DEFAULT_MAX_FRAME,
                max_in_flight: 16,
            },
            policy_digest: [0; 32],
        };
        frame::write_frame(&mut stream, &KernelFrame::Welcome(welcome)).unwrap();
        let mut n = 0u64;
        while let Ok(Some(body)) = frame::read_frame(&mut stream, frame::DEFAULT_MAX_FRAME) {
            let AgentFrame::Request(Request { id, .. }) = frame::decode(&body).unwrap() else {
                continue;
            };
            let answer = Response {
                id,
                result: Ok(Reply::Checkpoint { number: n }),
            };
            frame::write_frame(&mut stream, &KernelFrame::Response(answer)).unwrap();
            n += 1;
            if n == events_after {
                let event = Event::Signal {
                    signal: Signal::Usr1,
                    reason: "after the last call".into(),
                };
                frame::write_frame(&mut stream, &KernelFrame::Event(event)).unwrap();
            }
        }
    }

    #[test]
    fn a_busy_callers_reader_thread_sleeps_and_an_event_after_the_last_call_still_arrives() {
        // Before, the reader thread woke every LINGER (5 ms) for as long as calls went on: with
        // 64 busy agents on one CPU, a tenth of it. Now it backs off to MAX_PATIENCE.
        const BUSY: Duration = Duration::from_millis(600);
        let (agent, kernel_end) = UnixStream::pair().unwrap();
        // The socket is shut down before anything is asserted (and on a panic): the kernel
        // thread ends with it.
        let (calls, woke) = std::thread::scope(|s| {
            s.spawn(move || kernel(kernel_end, u64::MAX));
            let end = EndOnDrop(agent.try_clone().unwrap());
            let client = Client::from_stream(agent).unwrap();
            client.checkpoint().unwrap();
            let before = switches_of("agentos-reader");
            let start = Instant::now();
            let mut calls = 0u64;
            while start.elapsed() < BUSY {
                client.checkpoint().unwrap();
                calls += 1;
            }
            let woke = switches_of("agentos-reader") - before;
            drop(end);
            (calls, woke)
        });
        assert!(calls > 100, "{calls} calls");
        // Every LINGER would be 120 wakeups; backing off from 5 ms to 80 ms is about 12.
        assert!(
            woke <= 30,
            "the reader thread woke {woke} times in {BUSY:?} of calls"
        );
        // The event the kernel sends right after the last call (nobody calling any more) is
        // read by the reader thread and reaches the handler.
        let (agent, kernel_end) = UnixStream::pair().unwrap();
        let got = std::thread::scope(|s| {
            s.spawn(move || kernel(kernel_end, 200));
            let end = EndOnDrop(agent.try_clone().unwrap());
            let client = Client::from_stream(agent).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            client
                .on_signal(Signal::Usr1, move |sig, reason| {
                    let _ = tx.send((sig, reason.to_string()));
                })
                .unwrap();
            for _ in 0..200 {
                client.checkpoint().unwrap();
            }
            let got = rx.recv_timeout(Duration::from_secs(5));
            drop(end);
            got
        });
        assert_eq!(got, Ok((Signal::Usr1, "after the last call".to_string())));
    }

    #[test]
    fn callers_on_many_threads_each_get_their_own_answer_and_none_is_left_asleep() {
        // The leader wakes the callers waiting for their turn only when some are counted: a
        // caller that went to sleep uncounted would never wake, and this would not finish.
        const THREADS: usize = 8;
        const CALLS: usize = 500;
        let (agent, kernel_end) = UnixStream::pair().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let end = EndOnDrop(agent.try_clone().unwrap());
        std::thread::spawn(move || kernel(kernel_end, u64::MAX));
        let client = Client::from_stream(agent).unwrap();
        for _ in 0..THREADS {
            let client = client.clone();
            let done = done_tx.clone();
            std::thread::spawn(move || {
                let numbers: Vec<u64> = (0..CALLS).map(|_| client.checkpoint().unwrap()).collect();
                let _ = done.send(numbers);
            });
        }
        let mut all = Vec::new();
        for _ in 0..THREADS {
            let numbers = done_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a caller is still asleep after 60 s");
            // One caller's calls are answered in its order.
            assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
            all.extend(numbers);
        }
        drop(end);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), THREADS * CALLS, "an answer went to two callers");
    }

    #[test]
    fn a_waiting_reader_gets_what_arrives_then_the_end() {
        let (mut kernel, agent) = UnixStream::pair().unwrap();
        let mut reader = BufReader::with_capacity(READ_BUFFER, WaitIn(agent));
        let writer = std::thread::spawn(move || {
            kernel.write_all(b"answer").unwrap();
            // The end of the connection wakes the wait too: `read` then sees 0.
            drop(kernel);
        });
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, b"answer");
    }
}

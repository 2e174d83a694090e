//! What both clients share: request ids, the table of calls waiting for an answer, and the
//! routing of each frame the connection's reader takes off the socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use agentos_syscalls::frame;
use agentos_syscalls::{
    AgentFrame, Errno, Event, KernelFrame, Reply, Request, Syscall, TraceContext, Welcome,
};

use super::handlers::Handlers;
use super::SdkError;

/// Calls in flight, each with the sender `W` that hands its answer to the waiting caller.
#[derive(Debug)]
pub(crate) struct Pending<W> {
    waiters: Mutex<HashMap<u64, W>>,
    closed: AtomicBool,
    next_id: AtomicU64,
    /// The trace context later calls are sent in (`set_traceparent`).
    trace: Mutex<Option<TraceContext>>,
}

impl<W> Pending<W> {
    pub fn new() -> Self {
        Self {
            waiters: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            trace: Mutex::new(None),
        }
    }

    /// Sends later calls in the W3C trace context `traceparent` (`None`: in none).
    pub fn set_traceparent(&self, traceparent: Option<&str>) -> Result<(), SdkError> {
        let trace = traceparent
            .map(TraceContext::parse)
            .transpose()
            .map_err(SdkError::TraceParent)?;
        *self.trace.lock().unwrap_or_else(PoisonError::into_inner) = trace;
        Ok(())
    }

    /// Gives the call an id and encodes its frame, refusing one over the kernel's limit.
    pub fn encode(&self, call: Syscall, limit: u32) -> Result<(u64, Vec<u8>), SdkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request { id, call };
        let trace = *self.trace.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = frame::encode(&match trace {
            Some(trace) => AgentFrame::TracedRequest { request, trace },
            None => AgentFrame::Request(request),
        })?;
        let size = bytes.len() - frame::HEADER_LEN;
        if size > limit as usize {
            return Err(SdkError::TooLarge { size, limit });
        }
        Ok((id, bytes))
    }

    /// Registers the waiter for `id`; fails once the connection is closed (so nobody waits for
    /// an answer that cannot come).
    pub fn register(&self, id: u64, waiter: W) -> Result<(), SdkError> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(Ordering::Acquire) {
            return Err(SdkError::Closed);
        }
        waiters.insert(id, waiter);
        Ok(())
    }

    /// Forgets a call whose request could not be sent.
    pub fn cancel(&self, id: u64) {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Routes one frame from the kernel: an answer to its waiter (through `send`), a signal
    /// event to the handlers.
    pub fn route(
        &self,
        frame: KernelFrame,
        handlers: &Handlers,
        send: impl FnOnce(W, Result<Reply, Errno>),
    ) {
        match frame {
            KernelFrame::Response(r) => {
                let waiter = self
                    .waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&r.id);
                if let Some(w) = waiter {
                    send(w, r.result);
                }
            }
            KernelFrame::Event(Event::Signal { signal, reason }) => {
                handlers.deliver(signal, reason)
            }
            // Nothing else is valid after the handshake; the kernel never sends it.
            KernelFrame::Welcome(_) | KernelFrame::Refused(_) => {}
        }
    }

    /// The connection is gone: every waiter is dropped (its caller sees `Closed`) and no new
    /// one is taken.
    pub fn close(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, Ordering::Release);
        waiters.clear();
    }
}

/// The kernel's answer to `Hello`: its `Welcome`, or why there is none.
pub(crate) fn welcome_of(answer: Option<KernelFrame>) -> Result<Welcome, SdkError> {
    match answer {
        Some(KernelFrame::Welcome(w)) => Ok(w),
        Some(KernelFrame::Refused(e)) => Err(SdkError::Refused(e)),
        Some(other) => Err(SdkError::Protocol(format!(
            "expected Welcome, got {other:?}"
        ))),
        None => Err(SdkError::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_rides_on_later_requests_until_cleared() {
        let p = Pending::<()>::new();
        let body = |bytes: Vec<u8>| -> AgentFrame {
            frame::decode(&bytes[frame::HEADER_LEN..]).unwrap_or_else(|e| panic!("{e}"))
        };
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let plain = p.encode(Syscall::Checkpoint, 1 << 20).map(|(_, b)| body(b));
        assert!(matches!(plain, Ok(AgentFrame::Request(_))));
        p.set_traceparent(Some(tp))
            .unwrap_or_else(|e| panic!("{e}"));
        match p.encode(Syscall::Checkpoint, 1 << 20).map(|(_, b)| body(b)) {
            Ok(AgentFrame::TracedRequest { request, trace }) => {
                assert_eq!(request.id, 2);
                assert_eq!(trace.traceparent(), tp);
            }
            other => panic!("not a traced request: {other:?}"),
        }
        let bad = p.set_traceparent(Some("00-xyz-00f067aa0ba902b7-01"));
        assert!(matches!(bad, Err(SdkError::TraceParent(m)) if m.contains("trace id")));
        p.set_traceparent(None).unwrap_or_else(|e| panic!("{e}"));
        let plain = p.encode(Syscall::Checkpoint, 1 << 20).map(|(_, b)| body(b));
        assert!(matches!(plain, Ok(AgentFrame::Request(_))));
    }
}

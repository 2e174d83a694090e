//! What the kernel's parts need of the flight recorder, as a capability: [`Audit`].
//!
//! A part that records (the tree's checkpoints, and whoever is handed an `&dyn Audit`) gets
//! this trait instead of the whole kernel, so it can be unit-tested against `RecordingAudit`
//! (in this module's tests), which keeps the events in memory: no recorder, state dir or
//! writer thread. The kernel's implementation is the [`Recorder`] itself.
//!
//! Guarantees of the recorder-backed implementation (unchanged from when they were methods of
//! the kernel's shared state): a policy reload or an approval outcome is sealed at once by a
//! signed checkpoint; `record` waits for the fsync in `always` durability and when sealing,
//! moved off the runtime worker; `record_async` never holds a runtime worker for a heavy
//! record (one carrying at least [`HEAVY_RECORD`] bytes of agent data); a failure is logged
//! loudly and reported as `false`, and the caller decides whether the action may go on.

use std::future::Future;
use std::pin::Pin;

use agentos_syscalls::{AgentId, Errno};

use crate::error::Fault;
use crate::recorder::{Durability, RecordEvent, Recorder, RecorderError};

/// Records carrying at least this many bytes of agent data are written off the runtime
/// worker ([`record_async`]).
pub(crate) const HEAVY_RECORD: usize = 64 << 10;

/// A future returned by [`Audit::record_async`].
pub(crate) type Recording<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// The flight recorder as the kernel's parts use it.
pub(crate) trait Audit: Send + Sync {
    /// Records `event` (of `agent`, or of the kernel when `None`); `false` when it could not
    /// be recorded (already logged).
    fn record(&self, agent: Option<AgentId>, event: RecordEvent) -> bool;

    /// [`Audit::record`] for async callers: the task waits, the worker does not.
    fn record_async(&self, agent: Option<AgentId>, event: RecordEvent) -> Recording<'_>;

    /// Whether new work may start: refused with `QuotaExceeded` (saying what to do) when the
    /// recorder cannot write or the state dir's disk is below its watermark.
    fn admit(&self) -> Result<(), Errno>;
}

impl Audit for Recorder {
    fn record(&self, agent: Option<AgentId>, event: RecordEvent) -> bool {
        record(self, agent, event)
    }

    fn record_async(&self, agent: Option<AgentId>, event: RecordEvent) -> Recording<'_> {
        Box::pin(record_async(self, agent, event))
    }

    fn admit(&self) -> Result<(), Errno> {
        admit(self)
    }
}

/// Records an event; a recorder failure is logged loudly (the caller decides whether the
/// action may go on). A policy reload or an approval outcome is sealed at once by a signed
/// checkpoint. In `always` durability (or when sealing) this waits for an fsync; inside the
/// multi-thread runtime the wait is moved off the worker (`block_in_place`) so other agents
/// are served meanwhile.
fn record(recorder: &Recorder, agent: Option<AgentId>, event: RecordEvent) -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let seal = matches!(
        event,
        RecordEvent::PolicyReloaded { .. } | RecordEvent::ApprovalDecided { .. }
    );
    let append = || {
        let seq = recorder.append(agent, event)?;
        if seal {
            recorder.seal()?;
        }
        Ok::<u64, RecorderError>(seq)
    };
    let in_worker = (seal || recorder.durability() == Durability::Always)
        && Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    let result = if in_worker {
        tokio::task::block_in_place(append)
    } else {
        append()
    };
    logged(result)
}

/// [`record`] for async callers (the syscall path): the task waits, the worker does not.
async fn record_async(recorder: &Recorder, agent: Option<AgentId>, event: RecordEvent) -> bool {
    // Bounding, hashing and storing a record is linear in what the agent sent: a heavy one
    // (up to a frame, 16 MiB) is recorded off the runtime worker, so the other tasks queued on
    // it (other agents' answers, `agentctl`) are not held up behind it.
    let appended = if crate::recorder::bound::weight(&event) >= HEAVY_RECORD {
        crate::hostio::off_worker(|| recorder.append(agent, event))
    } else {
        recorder.append_async(agent, event).await
    };
    logged(appended)
}

/// Whether new work may start (before a call is performed, before a spawn): the flight
/// recorder can write and the state dir's filesystem is above the low-disk watermark
/// (`--min-free-bytes`). Cheap: atomics the recorder's writer thread refreshes. A refusal is
/// `QuotaExceeded` with what to do; the call is not performed (and is recorded when the
/// recorder can still write: the watermark leaves it room).
fn admit(recorder: &Recorder) -> Result<(), Errno> {
    recorder
        .admit()
        .map_err(|r| Fault::Refused(r.to_string()).into())
}

fn logged(result: Result<u64, RecorderError>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "flight recorder append failed");
            false
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::util::lock;

    /// An [`Audit`] that keeps every event in memory, in order; `refuse` makes `admit` fail
    /// (a full disk), `fail` makes every record fail (a broken recorder).
    #[derive(Debug, Default)]
    pub(crate) struct RecordingAudit {
        pub events: Mutex<Vec<(Option<AgentId>, RecordEvent)>>,
        pub refuse: Option<String>,
        pub fail: bool,
    }

    impl RecordingAudit {
        /// The events recorded so far.
        pub fn taken(&self) -> Vec<(Option<AgentId>, RecordEvent)> {
            lock(&self.events).clone()
        }
    }

    impl Audit for RecordingAudit {
        fn record(&self, agent: Option<AgentId>, event: RecordEvent) -> bool {
            if self.fail {
                return false;
            }
            lock(&self.events).push((agent, event));
            true
        }

        fn record_async(&self, agent: Option<AgentId>, event: RecordEvent) -> Recording<'_> {
            let recorded = self.record(agent, event);
            Box::pin(async move { recorded })
        }

        fn admit(&self) -> Result<(), Errno> {
            match &self.refuse {
                Some(what) => Err(Errno::QuotaExceeded { what: what.clone() }),
                None => Ok(()),
            }
        }
    }

    fn event(n: u64) -> RecordEvent {
        RecordEvent::MemoryCheckpoint {
            number: n,
            files: 0,
            bytes: 0,
            trigger: "test".into(),
        }
    }

    #[tokio::test]
    async fn the_double_keeps_events_in_order_and_refuses_when_told() {
        let audit = RecordingAudit::default();
        let dyn_audit: &dyn Audit = &audit;
        assert!(dyn_audit.record(Some(AgentId(1)), event(1)));
        assert!(dyn_audit.record_async(None, event(2)).await);
        assert_eq!(
            audit.taken(),
            vec![(Some(AgentId(1)), event(1)), (None, event(2))]
        );
        assert_eq!(dyn_audit.admit(), Ok(()));
        let full = RecordingAudit {
            refuse: Some("disk full".into()),
            fail: true,
            ..Default::default()
        };
        assert_eq!(
            (&full as &dyn Audit).admit(),
            Err(Errno::QuotaExceeded {
                what: "disk full".into()
            })
        );
        assert!(!full.record(None, event(3)));
        assert!(full.taken().is_empty());
    }

    /// The recorder-backed implementation appends to a real log (in a temp dir) and reports
    /// what it appended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_recorder_is_an_audit() {
        let dir = tempfile::tempdir().unwrap();
        let (recorder, _) = Recorder::open_with(
            &dir.path().join("recorder"),
            crate::recorder::RecorderOptions {
                min_free_bytes: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let audit: &dyn Audit = &recorder;
        assert_eq!(audit.admit(), Ok(()));
        assert!(audit.record(Some(AgentId(4)), event(1)));
        assert!(audit.record_async(Some(AgentId(4)), event(2)).await);
        recorder.close().unwrap();
    }
}

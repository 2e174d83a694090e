//! Host I/O off the async runtime (DESIGN §1.6: no host I/O blocks the async runtime).
//!
//! A file syscall that touches the host — the workspace, the persistent store under
//! `/mem/episodic` and `/mem/semantic` (a redb commit fsyncs), checkpoints on disk — runs on
//! tokio's blocking pool, never on a runtime worker, so a slow disk or a slow host file holds
//! one pool thread and nothing else. Two semaphores bound that work:
//!
//! | budget | default | flag | bounds |
//! |---|---|---|---|
//! | kernel-wide host I/O | [`DEFAULT_IO_THREADS`] (16) | `--io-threads` | host operations running at once, all agents together |
//! | per-agent host I/O | [`DEFAULT_IO_PER_AGENT`] (2) | `--io-per-agent` | host operations of one agent running at once |
//!
//! At a limit the call waits, asynchronously, for a slot (it holds one of its agent's
//! in-flight request permits meanwhile, so an agent that floods waits on itself). The agent's
//! own slot is taken before the kernel-wide one: an agent queueing behind its own cap holds
//! no kernel-wide slot, so one agent occupies at most `io_per_agent` of the `io_threads`.
//!
//! Working memory (`/mem/working`), `/policy`, `/ipc` and descriptor bookkeeping (`Close`) are
//! in memory and run inline on the worker: no thread hop for them.
//!
//! An operation already running when its agent ends runs to its end (a thread in a host call
//! cannot be cancelled); it keeps both slots until then, so the bounds hold.
//!
//! Never: a host `open`/`read`/`write`/`fsync` on a runtime worker on an agent's behalf; a
//! pool operation without both slots.

use std::sync::{Arc, OnceLock};

use agentos_syscalls::Errno;

use crate::error::Fault;
use tokio::sync::Semaphore;

/// The default number of host operations running at once, kernel-wide.
pub const DEFAULT_IO_THREADS: usize = 16;
/// The default number of host operations one agent may have running at once.
pub const DEFAULT_IO_PER_AGENT: usize = 2;

/// The kernel-wide host I/O budget.
#[derive(Debug)]
pub(crate) struct HostIo {
    slots: Arc<Semaphore>,
    per_agent: usize,
}

/// One agent's host I/O slots, sized from the kernel's budget on first use.
#[derive(Debug, Default)]
pub(crate) struct AgentSlots(OnceLock<Arc<Semaphore>>);

impl HostIo {
    /// A budget of `threads` operations at once, `per_agent` of them for one agent (each at
    /// least 1).
    pub fn new(threads: usize, per_agent: usize) -> Self {
        HostIo {
            slots: Arc::new(Semaphore::new(threads.max(1))),
            per_agent: per_agent.max(1),
        }
    }

    /// Runs `f` on the blocking pool once the agent has one of its slots and the kernel one
    /// of its own; waits asynchronously for both.
    pub async fn run<T, F>(&self, agent: &AgentSlots, f: F) -> Result<T, Errno>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let closed = |_| Errno::Interrupted {
            reason: "the kernel is shutting down".into(),
        };
        let mine = Arc::clone(
            agent
                .0
                .get_or_init(|| Arc::new(Semaphore::new(self.per_agent))),
        )
        .acquire_owned()
        .await
        .map_err(closed)?;
        let kernel = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(closed)?;
        tokio::task::spawn_blocking(move || {
            let _slots = (mine, kernel);
            f()
        })
        .await
        .map_err(|e| {
            Fault::Internal {
                what: "a host I/O task failed".into(),
                source: e.into(),
            }
            .into()
        })
    }

    /// How many kernel-wide slots are free (for tests and metrics).
    #[cfg(test)]
    pub fn free(&self) -> usize {
        self.slots.available_permits()
    }
}

/// Runs `f` (a rare, bounded host call the kernel makes itself, e.g. removing an ended
/// agent's persistent memory) off the runtime worker: `block_in_place` on the multi-thread
/// runtime, inline elsewhere.
pub(crate) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// The recorder's fsync wait (`block_in_place`) may run inside a pool task (a checkpoint
    /// records its event there): no panic, on a worker or on the pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn off_worker_runs_on_a_worker_and_inside_a_pool_task() {
        assert_eq!(off_worker(|| 1), 1);
        let io = HostIo::new(1, 1);
        let got = io.run(&AgentSlots::default(), || off_worker(|| 2)).await;
        assert_eq!(got, Ok(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_agent_never_holds_more_than_its_slots() {
        let io = Arc::new(HostIo::new(4, 2));
        let hog = Arc::new(AgentSlots::default());
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (io, hog, running, peak, gate) = (
                Arc::clone(&io),
                Arc::clone(&hog),
                Arc::clone(&running),
                Arc::clone(&peak),
                Arc::clone(&gate),
            );
            tasks.push(tokio::spawn(async move {
                io.run(&hog, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _ = gate.lock().map(|g| g.recv());
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while running.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(running.load(Ordering::SeqCst), 2);
        // While the hog's two run blocked, another agent still gets a slot at once.
        let other = AgentSlots::default();
        let answered = tokio::time::timeout(Duration::from_secs(5), io.run(&other, || 7)).await;
        assert_eq!(answered.ok().and_then(Result::ok), Some(7));
        assert_eq!(io.free(), 2);
        for _ in 0..6 {
            release.send(()).unwrap();
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(io.free(), 4);
    }
}

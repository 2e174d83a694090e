//! The per-agent kernel memory budget (`--agent-memory-bytes`, [`Config::agent_memory_bytes`]):
//! the bytes of an agent's requests the kernel has read but not answered, and of its answers
//! queued for the agent but not yet written into its socket.
//!
//! ```text
//! reader: header ──► reserve(body length) ──► read body ──► decode ──► reserve(answer bound)
//!                                                            ──► hold(request id) ──► handle
//! writer: encode answer ──► write into the socket ──► release(request id)
//! ```
//!
//! Only the reader reserves, one request at a time, so requests never wait on each other
//! while holding part of the budget; everything reserved is released when the request's answer
//! has been written into the socket (or when the connection ends). When the budget is spent the
//! reader waits: the kernel stops reading the agent's socket (backpressure, not buffering),
//! and resumes as the agent reads its answers. An agent that never reads blocks only itself:
//! its writer waits on its socket, its reader on its budget; no other agent, no runtime worker
//! and no kernel lock is held meanwhile. A request whose reservation is larger than the whole
//! budget is capped at the budget: it is served alone.
//!
//! What a request reserves: its frame body's length before the body is allocated, then a
//! bound of its answer's size ([`answer_bound`]) before it is judged or performed — an
//! unbounded `Read` reserves a whole answer chunk (the frame limit), so at the default budget
//! two are in flight at a time. Small calls reserve [`SMALL_ANSWER`].
//!
//! Not counted (bounded elsewhere): kernel-pushed events (signals, a handful per agent), the
//! bytes already in the socket (the host kernel bounds them by the socket buffer), the
//! recorder's copy of a call (the recorder's own bounds) and the frames read before the
//! `Hello` (one at a time).
//!
//! [`Config::agent_memory_bytes`]: crate::Config::agent_memory_bytes

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentos_syscalls::Syscall;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::agent::lock;

/// The smallest budget a kernel accepts (64 KiB): a smaller one is raised to it.
pub const MIN_AGENT_MEMORY_BYTES: u64 = 64 << 10;

/// What an answer without a payload may take (ids, tags and an error message naming a path).
pub(crate) const SMALL_ANSWER: u64 = 16 << 10;

/// One agent connection's budget.
#[derive(Debug)]
pub(crate) struct Budget {
    sem: Arc<Semaphore>,
    total: u32,
    /// Reservations of requests in flight or answered but not yet written, by request id.
    held: Mutex<HashMap<u64, Vec<OwnedSemaphorePermit>>>,
}

impl Budget {
    pub fn new(bytes: u64) -> Budget {
        let total = bytes
            .max(MIN_AGENT_MEMORY_BYTES)
            .min(u64::from(u32::MAX))
            .min(Semaphore::MAX_PERMITS as u64) as u32;
        Budget {
            sem: Arc::new(Semaphore::new(total as usize)),
            total,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until `bytes` (capped at the whole budget) are free and takes them; `None` once
    /// the connection has ended ([`Budget::close`]).
    pub async fn reserve(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        let n = bytes.min(u64::from(self.total)) as u32;
        Arc::clone(&self.sem).acquire_many_owned(n).await.ok()
    }

    /// Adds up to `bytes` to `permit`, never beyond the whole budget; `false` once closed.
    pub async fn grow(&self, permit: &mut OwnedSemaphorePermit, bytes: u64) -> bool {
        let room = u64::from(self.total).saturating_sub(permit.num_permits() as u64);
        if bytes.min(room) == 0 {
            return true;
        }
        match self.reserve(bytes.min(room)).await {
            Some(more) => {
                permit.merge(more);
                true
            }
            None => false,
        }
    }

    /// Keeps `permit` until the answer to request `id` has been written.
    pub fn hold(&self, id: u64, permit: OwnedSemaphorePermit) {
        lock(&self.held).entry(id).or_default().push(permit);
    }

    /// The answer to request `id` has been written into the socket: frees its reservation.
    pub fn release(&self, id: u64) {
        let mut held = lock(&self.held);
        if let Some(q) = held.get_mut(&id) {
            q.pop();
            if q.is_empty() {
                held.remove(&id);
            }
        }
    }

    /// The connection has ended: wakes a reader waiting for room, for good.
    pub fn close(&self) {
        self.sem.close();
    }

    /// Bytes currently reserved (for tests).
    #[cfg(test)]
    pub fn reserved(&self) -> u64 {
        u64::from(self.total) - self.sem.available_permits() as u64
    }
}

/// A bound of the size of `call`'s answer for a frame limit of `max_frame` and an inbox byte
/// limit of `inbox_bytes`: the reservation made before it is performed.
pub(crate) fn answer_bound(call: &Syscall, max_frame: u32, inbox_bytes: u64) -> u64 {
    let chunk = crate::tree::chunk_limit(max_frame);
    let output = 2 * crate::tools::OUTPUT_CAP as u64;
    let bound = match call {
        Syscall::Read { len, .. } => len.map_or(chunk, |l| l.min(chunk)),
        Syscall::ReadFd { len, .. } => u64::from(*len).min(chunk),
        // A listing is one entry per name: as large as the directory is.
        Syscall::List { .. } => chunk,
        Syscall::Exec { .. } | Syscall::Call { .. } => output,
        // At most TOOLS_MAX tools, each bounded.
        Syscall::ListTools => (agentos_syscalls::limits::TOOLS_MAX
            * (agentos_syscalls::limits::TOOL_DESCRIPTION_MAX + 512))
            .min(16 << 20) as u64,
        Syscall::Recv { .. } => inbox_bytes,
        Syscall::Write { .. }
        | Syscall::Open { .. }
        | Syscall::Close { .. }
        | Syscall::Stat { .. }
        | Syscall::Unlink { .. }
        | Syscall::Rename { .. }
        | Syscall::Send { .. }
        | Syscall::Signal { .. }
        | Syscall::CheckPolicy { .. }
        | Syscall::Checkpoint
        | Syscall::Exit { .. }
        | Syscall::WriteFd { .. } => 0,
    };
    bound.saturating_add(SMALL_ANSWER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_and_are_capped_at_the_budget() {
        let b = Arc::new(Budget::new(100 << 10));
        let mut p = b.reserve(60 << 10).await.unwrap();
        assert!(
            b.grow(&mut p, 1 << 30).await,
            "capped: grows to the whole budget"
        );
        assert_eq!(p.num_permits(), 100 << 10);
        b.hold(7, p);
        // The budget is spent: a second reservation waits until the answer is written.
        let b2 = Arc::clone(&b);
        let waiting = tokio::spawn(async move { b2.reserve(1).await.is_some() });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        b.release(7);
        assert!(waiting.await.unwrap());
        assert_eq!(b.reserved(), 0);
        // Closing wakes a waiting reader for good.
        let p = b.reserve(100 << 10).await.unwrap();
        let b3 = Arc::clone(&b);
        let waiting = tokio::spawn(async move { b3.reserve(1).await.is_none() });
        tokio::task::yield_now().await;
        b.close();
        assert!(waiting.await.unwrap());
        drop(p);
    }

    #[test]
    fn small_budgets_are_raised_and_bounds_follow_the_call() {
        assert_eq!(Budget::new(0).total as u64, MIN_AGENT_MEMORY_BYTES);
        let read = |len| Syscall::Read {
            path: "/x".into(),
            offset: 0,
            len,
        };
        let max = 16 << 20;
        assert_eq!(answer_bound(&read(Some(10)), max, 0), 10 + SMALL_ANSWER);
        assert_eq!(
            answer_bound(&read(None), max, 0),
            crate::tree::chunk_limit(max) + SMALL_ANSWER
        );
        assert_eq!(answer_bound(&Syscall::Checkpoint, max, 0), SMALL_ANSWER);
        assert_eq!(
            answer_bound(&Syscall::Recv { timeout_ms: None }, max, 1 << 20),
            (1 << 20) + SMALL_ANSWER
        );
    }
}

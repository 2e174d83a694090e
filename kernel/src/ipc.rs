//! Agent-to-agent IPC: one bounded FIFO inbox per agent, and a read-only view of its pending
//! messages for `/ipc/inbox`. The syscalls are `server/calls/send.rs` and `recv.rs`.
//!
//! Semantics (what an agent can rely on):
//! - **Bounded.** An inbox holds at most [`InboxLimits::messages`] messages and
//!   [`InboxLimits::bytes`] payload bytes. A `Send` that would cross either bound is refused
//!   with `Busy` (the sender may retry once the receiver drains); a payload larger than the whole
//!   byte bound is refused with `TooLarge`. A message is either accepted (then delivered once,
//!   in order) or refused to the sender: nothing is dropped silently.
//! - **FIFO.** Messages are received in the order they were accepted. `seq` numbers the messages
//!   accepted into one inbox, from 1, without gaps.
//! - **`Recv { timeout_ms }`.** Takes the oldest message, waiting for one up to `timeout_ms`
//!   (`Some(0)` polls; `None` waits until a message arrives or the agent ends). A timeout answers
//!   `TimedOut { after_ms }`. While the agent is stopped (SIGSTOP) no message is taken and no
//!   answer is given: the call is parked and continues on SIGCONT (a deadline that passed
//!   meanwhile answers `TimedOut` then). The wait holds no lock. When the agent ends, a
//!   pending `Recv` ends with `Interrupted`.
//! - **Targets.** A `Send` to an agent id this kernel never had, or to an agent that has ended,
//!   is `NotFound` with a hint. An agent may send to itself (its own inbox, like a pipe to
//!   oneself): the policy's `ipc_send` rule still has to allow its own id or name.
//! - **End.** When an agent ends its inbox closes; messages still pending are discarded and
//!   counted in the kernel's log (their `Send`s were answered and recorded).

use std::collections::VecDeque;
use std::sync::Mutex;

use agentos_syscalls::{AgentId, Message};
use tokio::sync::Notify;

use crate::util::lock;

/// How much one inbox may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxLimits {
    /// Pending messages.
    pub messages: usize,
    /// Pending payload bytes.
    pub bytes: u64,
}

impl Default for InboxLimits {
    /// 64 messages and 1 MiB per inbox.
    fn default() -> Self {
        Self {
            messages: 64,
            bytes: 1 << 20,
        }
    }
}

#[derive(Debug)]
struct Pending {
    message: Message,
    arrived_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Pending>,
    bytes: u64,
    /// The `seq` of the last accepted message.
    last_seq: u64,
    closed: bool,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The inbox is at a bound; `messages` and `bytes` are what it holds.
    Full { messages: usize, bytes: u64 },
    /// The payload alone is over the inbox's byte bound.
    TooLarge { size: u64, limit: u64 },
    /// The owner has ended.
    Closed,
}

/// One agent's inbox.
#[derive(Debug)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Woken (all waiters) on every accepted message and on close.
    pub arrived: Notify,
    limits: InboxLimits,
}

impl Inbox {
    pub fn new(limits: InboxLimits) -> Self {
        Self {
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            limits,
        }
    }

    pub fn limits(&self) -> InboxLimits {
        self.limits
    }

    /// Accepts a message; returns its `seq`.
    pub fn push(&self, from: AgentId, payload: Vec<u8>, now_ms: u64) -> Result<u64, PushError> {
        let size = payload.len() as u64;
        let seq = {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(PushError::Closed);
            }
            if size > self.limits.bytes {
                return Err(PushError::TooLarge {
                    size,
                    limit: self.limits.bytes,
                });
            }
            if s.queue.len() >= self.limits.messages || s.bytes + size > self.limits.bytes {
                return Err(PushError::Full {
                    messages: s.queue.len(),
                    bytes: s.bytes,
                });
            }
            s.last_seq += 1;
            let seq = s.last_seq;
            s.bytes += size;
            s.queue.push_back(Pending {
                message: Message { from, seq, payload },
                arrived_ms: now_ms,
            });
            seq
        };
        self.arrived.notify_waiters();
        Ok(seq)
    }

    /// Takes the oldest message, if any.
    pub fn try_pop(&self) -> Option<Message> {
        let mut s = lock(&self.state);
        let p = s.queue.pop_front()?;
        s.bytes -= p.message.payload.len() as u64;
        Some(p.message)
    }

    /// Closes the inbox for good; returns how many pending messages were discarded.
    pub fn close(&self) -> usize {
        let dropped = {
            let mut s = lock(&self.state);
            s.closed = true;
            s.bytes = 0;
            std::mem::take(&mut s.queue).len()
        };
        self.arrived.notify_waiters();
        dropped
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

/// The read-only view of an inbox that the VFS serves as `/ipc/inbox`.
pub(crate) mod view {
    use agentos_syscalls::{DirEntry, Errno, FileKind, FileStat, Message};

    use super::Inbox;
    use crate::util::lock;

    /// The directory the inbox view is served under.
    pub(crate) const INBOX_DIR: &str = "/ipc/inbox";

    /// The name of a pending message under `/ipc/inbox`: its zero-padded `seq` (so names sort in
    /// arrival order) and its sender, e.g. `0000000003-from-7`.
    fn entry_name(m: &Message) -> String {
        format!("{:010}-from-{}", m.seq, m.from)
    }

    /// The pending messages of `agent`'s inbox as the entries of `/ipc/inbox`, oldest first. Each
    /// is a read-only file named like `0000000003-from-7` whose size is its payload's.
    pub(crate) fn inbox_entries(inbox: &Inbox) -> Vec<DirEntry> {
        inbox.entries()
    }

    /// Describes `/ipc/inbox` (`name` empty) or one pending message in it (`name` as listed by
    /// [`inbox_entries`]). Everything there is read-only: messages leave the inbox only by `Recv`.
    pub(crate) fn inbox_stat(inbox: &Inbox, name: &str) -> Result<FileStat, Errno> {
        inbox.stat(name)
    }

    /// The payload of one pending message, without taking it from the inbox.
    pub(crate) fn inbox_read(inbox: &Inbox, name: &str) -> Result<Vec<u8>, Errno> {
        inbox.read(name)
    }

    fn no_message(name: &str) -> Errno {
        Errno::NotFound {
            what: format!("{INBOX_DIR}/{name}: no such pending message (list {INBOX_DIR})"),
        }
    }

    impl Inbox {
        /// `(name, size, arrived_ms)` of every pending message, oldest first.
        pub(super) fn pending(&self) -> Vec<(String, u64, u64)> {
            lock(&self.state)
                .queue
                .iter()
                .map(|p| {
                    (
                        entry_name(&p.message),
                        p.message.payload.len() as u64,
                        p.arrived_ms,
                    )
                })
                .collect()
        }
        pub(super) fn entries(&self) -> Vec<DirEntry> {
            self.pending()
                .into_iter()
                .map(|(name, size, _)| DirEntry {
                    name,
                    kind: FileKind::File,
                    size,
                })
                .collect()
        }

        pub(super) fn stat(&self, name: &str) -> Result<FileStat, Errno> {
            let pending = self.pending();
            if name.is_empty() {
                return Ok(FileStat {
                    kind: FileKind::Directory,
                    size: 0,
                    modified_ms: pending.iter().map(|p| p.2).max().unwrap_or(0),
                    read_only: true,
                });
            }
            pending
                .into_iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, size, arrived_ms)| FileStat {
                    kind: FileKind::File,
                    size,
                    modified_ms: arrived_ms,
                    read_only: true,
                })
                .ok_or_else(|| no_message(name))
        }

        pub(super) fn read(&self, name: &str) -> Result<Vec<u8>, Errno> {
            lock(&self.state)
                .queue
                .iter()
                .find(|p| entry_name(&p.message) == name)
                .map(|p| p.message.payload.clone())
                .ok_or_else(|| no_message(name))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use agentos_syscalls::{DirEntry, Errno, FileKind, FileStat};

    use super::*;

    fn inbox(messages: usize, bytes: u64) -> Inbox {
        Inbox::new(InboxLimits { messages, bytes })
    }

    #[test]
    fn fifo_with_gapless_seq() {
        let ib = inbox(8, 1024);
        for i in 0..5u8 {
            assert_eq!(ib.push(AgentId(7), vec![i], 10).unwrap(), u64::from(i) + 1);
        }
        let got: Vec<Message> = std::iter::from_fn(|| ib.try_pop()).collect();
        let want: Vec<Message> = (0..5u8)
            .map(|i| Message {
                from: AgentId(7),
                seq: u64::from(i) + 1,
                payload: vec![i],
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bounds_refuse_and_drain_frees() {
        let ib = inbox(2, 10);
        ib.push(AgentId(1), vec![0; 4], 0).unwrap();
        ib.push(AgentId(1), vec![0; 4], 0).unwrap();
        assert_eq!(
            ib.push(AgentId(1), vec![0; 1], 0),
            Err(PushError::Full {
                messages: 2,
                bytes: 8
            })
        );
        ib.try_pop().unwrap();
        // One slot free, but 4 + 7 bytes is over the byte bound.
        assert_eq!(
            ib.push(AgentId(1), vec![0; 7], 0),
            Err(PushError::Full {
                messages: 1,
                bytes: 4
            })
        );
        assert_eq!(
            ib.push(AgentId(1), vec![0; 11], 0),
            Err(PushError::TooLarge {
                size: 11,
                limit: 10
            })
        );
        assert_eq!(ib.push(AgentId(1), vec![0; 6], 0), Ok(3));
        assert_eq!(ib.close(), 2);
        assert_eq!(ib.push(AgentId(1), vec![], 0), Err(PushError::Closed));
        assert_eq!(ib.try_pop(), None);
    }

    #[test]
    fn view_lists_and_stats_pending_messages() {
        let ib = inbox(8, 1024);
        ib.push(AgentId(3), b"hello".to_vec(), 1_000).unwrap();
        ib.push(AgentId(12), b"hi".to_vec(), 2_000).unwrap();
        let pending = ib.pending();
        assert_eq!(
            pending,
            vec![
                ("0000000001-from-3".to_string(), 5, 1_000),
                ("0000000002-from-12".to_string(), 2, 2_000),
            ]
        );
        assert_eq!(
            ib.entries(),
            vec![
                DirEntry {
                    name: "0000000001-from-3".into(),
                    kind: FileKind::File,
                    size: 5
                },
                DirEntry {
                    name: "0000000002-from-12".into(),
                    kind: FileKind::File,
                    size: 2
                },
            ]
        );
        assert_eq!(
            ib.stat("0000000002-from-12"),
            Ok(FileStat {
                kind: FileKind::File,
                size: 2,
                modified_ms: 2_000,
                read_only: true
            })
        );
        assert_eq!(
            ib.stat(""),
            Ok(FileStat {
                kind: FileKind::Directory,
                size: 0,
                modified_ms: 2_000,
                read_only: true
            })
        );
        assert_eq!(ib.read("0000000001-from-3"), Ok(b"hello".to_vec()));
        assert!(matches!(ib.stat("nope"), Err(Errno::NotFound { .. })));
        // The view never takes a message: it is still first to be received.
        assert_eq!(ib.try_pop().map(|m| m.seq), Some(1));
        assert_eq!(
            ib.entries().into_iter().map(|e| e.name).collect::<Vec<_>>(),
            vec!["0000000002-from-12".to_string()]
        );
    }
}

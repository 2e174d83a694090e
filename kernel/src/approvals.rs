//! The approval queue: calls whose rule says `requires_approval` park here until an operator
//! approves or denies them (`agentctl approve|deny ID`), the kernel's approval timeout denies
//! them, or their agent ends.
//!
//! Invariants:
//! - An approval id is handed out once and bound to one request (agent, request id, action,
//!   resource). Deciding it twice, or deciding an id that never existed, is `NotFound`.
//! - Only the control socket decides. Nothing an agent puts in its request (an
//!   `"approved": true` param, a path that says "approved") is looked at here.
//! - The decision is sent while the entry is removed under the same lock, so a waiter that
//!   finds its entry gone always finds the decision in its channel.
//! - Bounded per agent: an agent holds at most `max` slots ([`Approvals::reserve`], the
//!   kernel's `--max-approvals-per-agent`, default
//!   [`crate::config::DEFAULT_MAX_APPROVALS_PER_AGENT`]); a
//!   slot is taken before the call is recorded and parked and given back when its waiter is
//!   done (decided, timed out, withdrawn), so the count never exceeds the bound, even for
//!   calls that race.
//! - A listing always fits its frame and is fair ([`Approvals::page`]): at most
//!   [`MAX_APPROVALS_PAGE`] rows, every agent-controlled string cut by [`display_bound`], and
//!   agents share the page round-robin, so one agent's flood cannot push another's request
//!   off it. Cost: linear in the parked calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use agentos_syscalls::control::{
    display_bound, ApprovalCount, ApprovalInfo, ApprovalPage, ApprovalQuery, ControlError,
    ControlErrorKind, PayloadPreview, DEFAULT_APPROVALS_PAGE, MAX_APPROVALS_PAGE,
    MAX_PREVIEW_BYTES,
};
use agentos_syscalls::AgentId;
use tokio::sync::oneshot;

use crate::util::{control_error, lock};

/// An operator's answer to one parked call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub approved: bool,
    /// Who decided, e.g. `operator (uid 0)`.
    pub by: String,
}

/// The request a parked call belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ask {
    pub agent: AgentId,
    /// The agent's name, when it has one.
    pub agent_name: Option<String>,
    /// What the call would write or send.
    pub payload: Option<PayloadPreview>,
    pub request: u64,
    pub action: String,
    pub resource: String,
    pub rule: String,
}

#[derive(Debug)]
struct Pending {
    ask: Ask,
    since: Instant,
    decide: oneshot::Sender<Verdict>,
}

/// The payload a call would write or send (a `Write`'s or `WriteFd`'s data, a `Send`'s
/// message, a `Call`'s params, an `Exec`'s stdin when it has one), as the operator sees it:
/// its size, first bytes and blake3.
pub(crate) fn preview(call: &agentos_syscalls::Syscall) -> Option<PayloadPreview> {
    // An `Exec` with no stdin has nothing to show.
    let payload = call
        .payload()
        .filter(|p| !p.is_empty() || !matches!(call, agentos_syscalls::Syscall::Exec { .. }))?;
    Some(PayloadPreview {
        bytes: payload.len() as u64,
        head: payload[..payload.len().min(MAX_PREVIEW_BYTES)].to_vec(),
        blake3: *blake3::hash(payload).as_bytes(),
    })
}

/// Every parked call of one kernel.
#[derive(Debug, Default)]
pub(crate) struct Approvals {
    next: AtomicU64,
    pending: Mutex<BTreeMap<u64, Pending>>,
    /// Slots held per agent (reserved, parked, or being decided).
    held: Mutex<HashMap<AgentId, usize>>,
}

/// One agent's right to park one call, under approval id `id`; given back on drop.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    pub id: u64,
    agent: AgentId,
    queue: &'a Approvals,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut held = lock(&self.queue.held);
        if let Some(n) = held.get_mut(&self.agent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.agent);
            }
        }
    }
}

impl Approvals {
    /// A slot for one more parked call of `agent`, with a fresh approval id (never reused by
    /// this kernel); `Err(held)` when the agent already holds `max` slots.
    pub fn reserve(&self, agent: AgentId, max: usize) -> Result<Slot<'_>, usize> {
        let mut held = lock(&self.held);
        let n = held.entry(agent).or_insert(0);
        if *n >= max {
            return Err(*n);
        }
        *n += 1;
        drop(held);
        Ok(Slot {
            id: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            agent,
            queue: self,
        })
    }

    /// Parks a call under `id` (from [`Approvals::reserve`]); the receiver gets the verdict.
    pub fn park(&self, id: u64, ask: Ask) -> oneshot::Receiver<Verdict> {
        let (decide, rx) = oneshot::channel();
        lock(&self.pending).insert(
            id,
            Pending {
                ask,
                since: Instant::now(),
                decide,
            },
        );
        rx
    }

    /// One page of the parked calls matching `q`, oldest first. Agents share the page
    /// round-robin: each agent's oldest matching call, then each one's second, and so on,
    /// agents in the order of their oldest call, until the page is full.
    pub fn page(&self, q: &ApprovalQuery) -> ApprovalPage {
        let limit = match q.limit {
            0 => DEFAULT_APPROVALS_PAGE,
            n => n.min(MAX_APPROVALS_PAGE),
        } as usize;
        let pending = lock(&self.pending);
        let after = q
            .after
            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        // Per agent, in the order of its oldest matching call: its matching ids, ascending.
        let mut order: HashMap<AgentId, usize> = HashMap::new();
        let mut queues: Vec<(AgentId, Vec<u64>)> = Vec::new();
        for (id, p) in pending.range((after, std::ops::Bound::Unbounded)) {
            if q.agent.is_some_and(|a| a != p.ask.agent) {
                continue;
            }
            let i = *order.entry(p.ask.agent).or_insert_with(|| {
                queues.push((p.ask.agent, Vec::new()));
                queues.len() - 1
            });
            queues[i].1.push(*id);
        }
        let matching: usize = queues.iter().map(|(_, ids)| ids.len()).sum();
        let mut chosen = Vec::with_capacity(limit.min(matching));
        let mut shown = vec![0usize; queues.len()];
        let mut round = 0;
        'fill: while chosen.len() < limit {
            let mut took = false;
            for (i, (_, ids)) in queues.iter().enumerate() {
                if let Some(id) = ids.get(round) {
                    chosen.push(*id);
                    shown[i] += 1;
                    took = true;
                    if chosen.len() == limit {
                        break 'fill;
                    }
                }
            }
            if !took {
                break;
            }
            round += 1;
        }
        chosen.sort_unstable();
        let approvals = chosen
            .iter()
            .filter_map(|id| pending.get(id).map(|p| (id, p)))
            .map(|(id, p)| ApprovalInfo {
                id: *id,
                agent: p.ask.agent,
                action: display_bound(&p.ask.action),
                resource: display_bound(&p.ask.resource),
                age_ms: p.since.elapsed().as_millis() as u64,
                rule: display_bound(&p.ask.rule),
                agent_name: p.ask.agent_name.as_deref().map(display_bound),
                payload: p.ask.payload.clone(),
            })
            .collect();
        let mut agents: Vec<ApprovalCount> = queues
            .iter()
            .zip(&shown)
            .map(|((agent, ids), n)| ApprovalCount {
                agent: *agent,
                shown: *n as u32,
                matching: ids.len() as u32,
                last_shown: n.checked_sub(1).and_then(|last| ids.get(last).copied()),
            })
            .collect();
        agents.sort_by_key(|c| c.agent);
        ApprovalPage {
            approvals,
            agents,
            more: (matching - chosen.len()) as u32,
        }
    }

    /// How many calls wait for approval now.
    pub fn parked(&self) -> usize {
        lock(&self.pending).len()
    }

    /// The first page of the default query (the answer to the older `Approvals` request).
    pub fn list(&self) -> Vec<ApprovalInfo> {
        self.page(&ApprovalQuery {
            limit: DEFAULT_APPROVALS_PAGE,
            after: None,
            agent: None,
        })
        .approvals
    }

    /// Approves or denies parked call `id`.
    pub fn decide(&self, id: u64, verdict: Verdict) -> Result<(), ControlError> {
        let mut pending = lock(&self.pending);
        let Some(p) = pending.remove(&id) else {
            return Err(control_error(
                ControlErrorKind::NotFound,
                format!("no pending approval {id} (it was never issued, or was already decided, timed out or withdrawn)"),
                "list pending approvals with `agentctl approvals`",
            ));
        };
        // The waiter may have just given up (its agent ended); then nobody needs the answer.
        let _ = p.decide.send(verdict);
        Ok(())
    }

    /// Takes call `id` off the queue (it timed out, or its agent ended). `false` when it was
    /// already decided: the verdict is then waiting in its receiver.
    pub fn withdraw(&self, id: u64) -> bool {
        lock(&self.pending).remove(&id).is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ask(request: u64) -> Ask {
        ask_of(1, request, "/mem/working/x")
    }

    fn ask_of(agent: u64, request: u64, resource: &str) -> Ask {
        Ask {
            agent: AgentId(agent),
            agent_name: None,
            payload: None,
            request,
            action: "file_write".into(),
            resource: resource.into(),
            rule: "gated (p.md:3)".into(),
        }
    }

    fn query(limit: u32, after: Option<u64>, agent: Option<u64>) -> ApprovalQuery {
        ApprovalQuery {
            limit,
            after,
            agent: agent.map(AgentId),
        }
    }

    #[test]
    fn a_payload_is_previewed_by_size_first_bytes_and_digest_and_a_read_has_none() {
        use agentos_syscalls::{Syscall, WriteMode};
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let p = preview(&Syscall::Write {
            path: "/mem/working/x".into(),
            data: data.clone(),
            mode: WriteMode::Truncate,
        })
        .expect("a write has a payload");
        assert_eq!(p.bytes, 1000);
        assert_eq!(p.head, data[..MAX_PREVIEW_BYTES]);
        assert_eq!(p.blake3, *blake3::hash(&data).as_bytes());
        let call = preview(&Syscall::Call {
            action: "send_email".into(),
            params_json: "{}".into(),
        })
        .expect("a call's params");
        assert_eq!((call.bytes, call.head.as_slice()), (2, &b"{}"[..]));
        let read = Syscall::Read {
            path: "/x".into(),
            offset: 0,
            len: None,
        };
        assert_eq!(preview(&read), None);
    }

    #[test]
    fn an_approval_is_decided_once() {
        let q = Approvals::default();
        let slot = q.reserve(AgentId(1), 16).unwrap();
        let id = slot.id;
        let mut rx = q.park(id, ask(7));
        assert_eq!(q.list().len(), 1);
        assert_eq!(q.list()[0].id, id);
        let v = Verdict {
            approved: true,
            by: "operator (uid 0)".into(),
        };
        q.decide(id, v.clone()).unwrap();
        assert_eq!(rx.try_recv().unwrap(), v);
        let again = q.decide(id, v).unwrap_err();
        assert_eq!(again.kind, ControlErrorKind::NotFound);
        assert!(q.list().is_empty());
        assert!(!q.withdraw(id));
    }

    #[test]
    fn ids_are_unique_and_unknown_ids_are_not_found() {
        let q = Approvals::default();
        let (a, b) = (
            q.reserve(AgentId(1), 16).unwrap(),
            q.reserve(AgentId(1), 16).unwrap(),
        );
        assert_ne!(a.id, b.id);
        let a = a.id;
        let err = q
            .decide(
                99,
                Verdict {
                    approved: false,
                    by: "x".into(),
                },
            )
            .unwrap_err();
        assert_eq!(err.kind, ControlErrorKind::NotFound);
        let _rx = q.park(a, ask(1));
        assert!(q.withdraw(a));
        assert!(q.list().is_empty());
    }

    #[test]
    fn an_agent_holds_at_most_max_slots_until_one_is_given_back() {
        let q = Approvals::default();
        let slots: Vec<_> = (0..3).map(|_| q.reserve(AgentId(1), 3).unwrap()).collect();
        assert_eq!(q.reserve(AgentId(1), 3).unwrap_err(), 3);
        // Another agent is not affected.
        let other = q.reserve(AgentId(2), 3).unwrap();
        drop(other);
        drop(slots);
        assert!(q.reserve(AgentId(1), 3).is_ok());
        assert!(lock(&q.held).is_empty());
    }

    #[test]
    fn a_flood_of_one_agent_never_hides_another_agents_call() {
        let q = Approvals::default();
        let big = format!("/workspace/{}", "x".repeat(1 << 20));
        let mut slots = Vec::new();
        for r in 0..200 {
            let s = q.reserve(AgentId(7), 1000).unwrap();
            let _rx = q.park(s.id, ask_of(7, r, &big));
            slots.push(s);
        }
        let honest = q.reserve(AgentId(8), 1000).unwrap();
        let _rx = q.park(honest.id, ask_of(8, 1, "/workspace/report.txt"));
        let page = q.page(&query(10, None, None));
        assert_eq!(page.approvals.len(), 10);
        assert!(page.approvals.iter().any(|a| a.id == honest.id));
        assert_eq!(page.more, 191);
        assert_eq!(
            page.agents,
            vec![
                ApprovalCount {
                    agent: AgentId(7),
                    shown: 9,
                    matching: 200,
                    last_shown: Some(slots[8].id),
                },
                ApprovalCount {
                    agent: AgentId(8),
                    shown: 1,
                    matching: 1,
                    last_shown: Some(honest.id),
                },
            ]
        );
        // Rows are oldest first and every agent string is cut to the display bound.
        assert!(page.approvals.windows(2).all(|w| w[0].id < w[1].id));
        for a in &page.approvals {
            assert!(a.resource.len() <= MAX_DISPLAY + 32, "{}", a.resource.len());
        }
        // The page fits a control frame, even at the largest page size.
        let full = q.page(&query(u32::MAX, None, None));
        assert_eq!(full.approvals.len(), 201);
        let bytes = agentos_syscalls::frame::encode(
            &agentos_syscalls::control::ControlResponse::ApprovalsPage(full),
        )
        .unwrap();
        assert!(bytes.len() < 1 << 20, "{}", bytes.len());
        // One agent's calls, paged with --after.
        let first = q.page(&query(150, None, Some(7)));
        assert_eq!((first.approvals.len(), first.more), (150, 50));
        let next = q.page(&query(150, first.agents[0].last_shown, Some(7)));
        assert_eq!((next.approvals.len(), next.more), (50, 0));
        assert!(next.approvals.iter().all(|a| a.agent == AgentId(7)));
        // 0 means the default page size.
        assert_eq!(
            q.page(&query(0, None, None)).approvals.len(),
            DEFAULT_APPROVALS_PAGE as usize
        );
        assert_eq!(q.list().len(), DEFAULT_APPROVALS_PAGE as usize);
    }

    const MAX_DISPLAY: usize = agentos_syscalls::control::MAX_DISPLAY_BYTES;
}

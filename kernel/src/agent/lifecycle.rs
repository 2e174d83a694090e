//! The agent's lifecycle: its state, its launcher's pid, why the kernel ended it and how it
//! ended, owned by one type whose fields are private.
//!
//! | from \ event | `mark_running` | `stop` | `cont` | `mark_killed` | `finish` |
//! |---|---|---|---|---|---|
//! | `Starting` | `Running` | `Stopped` | refused | (reason kept) | `Exited` |
//! | `Running` | refused | `Stopped` | refused | (reason kept) | `Exited` |
//! | `Stopped` | refused | refused | `Running` | (reason kept) | `Exited` |
//! | `Exited` | refused | refused | refused | refused | refused |
//!
//! Every change goes through one method ([`Lifecycle::mark_running`], [`Lifecycle::stop`],
//! [`Lifecycle::cont`], [`Lifecycle::mark_killed`], [`Lifecycle::finish`]); a transition the
//! table does not allow is refused with a [`Refused`] naming the state and the event, and
//! changes nothing. Each check-and-set happens under the state channel's lock, so two
//! concurrent transitions see each other.
//!
//! Never: a state after `Exited`; an exit status without the state `Exited`, or `Exited`
//! without a status once [`Lifecycle::finish`] has returned; a kill reason written after the
//! agent ended, or a second one over the first; a live pid for an agent that has ended (its
//! launcher's pid may be reused by then).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use agentos_syscalls::control::{AgentState, ExitStatus};
use agentos_syscalls::Signal;
use tokio::sync::watch;

use super::lock;

/// The events that move an agent between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Its jail is built or its handshake done.
    MarkRunning,
    /// SIGSTOP.
    Stop,
    /// SIGCONT.
    Cont,
    /// The kernel decided to end it (SIGKILL, SIGPOLICY, SIGTRUST).
    Kill,
    /// Its launcher was reaped.
    Finish,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::MarkRunning => "mark running",
            Event::Stop => "stop",
            Event::Cont => "continue",
            Event::Kill => "kill",
            Event::Finish => "finish",
        }
    }
}

/// A transition the lifecycle does not allow; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an agent that is {} (nothing changed)", .event.as_str(), .from.as_str())]
pub(crate) struct Refused {
    pub from: AgentState,
    pub event: Event,
}

/// The state an event leads to from `from`, or `None` when the event is refused there. The
/// whole table: every (state, event) pair is listed, so a new state or event is a compile
/// error here.
pub(crate) fn next(from: AgentState, event: Event) -> Option<AgentState> {
    use AgentState::{Exited, Running, Starting, Stopped};
    match (from, event) {
        (Starting, Event::MarkRunning) => Some(Running),
        (Running | Stopped | Exited, Event::MarkRunning) => None,
        (Starting | Running, Event::Stop) => Some(Stopped),
        (Stopped | Exited, Event::Stop) => None,
        (Stopped, Event::Cont) => Some(Running),
        (Starting | Running | Exited, Event::Cont) => None,
        // A kill does not change the state: the agent is still whatever it was until its
        // launcher is reaped.
        (Starting | Running | Stopped, Event::Kill) => Some(from),
        (Exited, Event::Kill) => None,
        (Starting | Running | Stopped, Event::Finish) => Some(Exited),
        (Exited, Event::Finish) => None,
        // A display state only (`Agent::info` derives it from a running agent's parked
        // approvals); the lifecycle itself is never in it, and refuses every event from it.
        (AgentState::AwaitingApproval, _) => None,
    }
}

/// One agent's lifecycle (see the module header).
#[derive(Debug)]
pub(crate) struct Lifecycle {
    state: watch::Sender<AgentState>,
    exit: watch::Sender<Option<ExitStatus>>,
    /// The launcher's pid (0 when the spawner could not tell it).
    pid: u32,
    /// Set once the launcher is reaped: from then on the pid may belong to someone else.
    reaped: AtomicBool,
    /// Set when the kernel ends the tree, so the exit is reported as that signal.
    kill_reason: Mutex<Option<(Signal, String)>>,
}

impl Lifecycle {
    /// A launched agent: `Starting`, its launcher `pid`.
    pub fn new(pid: u32) -> Self {
        Self {
            state: watch::channel(AgentState::Starting).0,
            exit: watch::channel(None).0,
            pid,
            reaped: AtomicBool::new(false),
            kill_reason: Mutex::new(None),
        }
    }

    /// Applies `event` under the state's lock; `Err` (and no change) when the table refuses it.
    fn apply(&self, event: Event) -> Result<AgentState, Refused> {
        let mut result = Err(Refused {
            from: AgentState::Exited,
            event,
        });
        self.state.send_if_modified(|s| match next(*s, event) {
            Some(to) => {
                let changed = to != *s;
                *s = to;
                result = Ok(to);
                changed
            }
            None => {
                result = Err(Refused { from: *s, event });
                false
            }
        });
        result
    }

    /// `Starting` → `Running`: the launcher reported the jail, or the agent said hello.
    pub fn mark_running(&self) -> Result<(), Refused> {
        self.apply(Event::MarkRunning).map(drop)
    }

    /// `Starting`/`Running` → `Stopped` (SIGSTOP): its syscalls park.
    pub fn stop(&self) -> Result<(), Refused> {
        self.apply(Event::Stop).map(drop)
    }

    /// `Stopped` → `Running` (SIGCONT): parked syscalls continue.
    pub fn cont(&self) -> Result<(), Refused> {
        self.apply(Event::Cont).map(drop)
    }

    /// The kernel ends the tree with `signal`: the exit will be reported as it. The first
    /// reason stands; a later kill is refused, and so is one after the end.
    pub fn mark_killed(&self, signal: Signal, reason: String) -> Result<(), Refused> {
        let mut why = lock(&self.kill_reason);
        // The state is read under the reason's lock, which `finish` takes too: a kill either
        // precedes the end (and is reported) or is refused.
        let from = self.state();
        if why.is_some() || next(from, Event::Kill).is_none() {
            return Err(Refused {
                from,
                event: Event::Kill,
            });
        }
        *why = Some((signal, reason));
        Ok(())
    }

    /// Any state but `Exited` → `Exited` with `status`. Wakes every [`Lifecycle::wait_exit`].
    pub fn finish(&self, status: ExitStatus) -> Result<(), Refused> {
        let _kill = lock(&self.kill_reason);
        self.reaped.store(true, Ordering::Release);
        self.apply(Event::Finish)?;
        self.exit.send_replace(Some(status));
        Ok(())
    }

    pub fn state(&self) -> AgentState {
        *self.state.borrow()
    }

    /// The launcher's pid as spawned (kept after the end, for listings).
    pub fn pid(&self) -> Option<u32> {
        (self.pid != 0).then_some(self.pid)
    }

    /// The launcher's pid while it may be signalled: `None` once it was reaped.
    pub fn live_pid(&self) -> Option<u32> {
        if self.reaped.load(Ordering::Acquire) {
            return None;
        }
        self.pid()
    }

    pub fn exit(&self) -> Option<ExitStatus> {
        self.exit.borrow().clone()
    }

    pub fn is_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Why the kernel ended the tree, if it did.
    pub fn kill_reason(&self) -> Option<(Signal, String)> {
        lock(&self.kill_reason).clone()
    }

    /// A receiver of the exit status (`None` until the end), for `select!` loops.
    pub fn subscribe_exit(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exit.subscribe()
    }

    /// Waits until the agent is not stopped (or has ended).
    pub async fn wait_unfrozen(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| *s != AgentState::Stopped).await;
    }

    /// Waits until the agent has left `Starting` (its jail reported, it said hello, it was
    /// stopped, or it ended) and returns the state it is in then.
    pub async fn wait_started(&self) -> AgentState {
        let mut rx = self.state.subscribe();
        let state = match rx.wait_for(|s| *s != AgentState::Starting).await {
            Ok(s) => *s,
            Err(_) => AgentState::Exited,
        };
        state
    }

    /// Waits for the end and returns how the agent ended.
    pub async fn wait_exit(&self) -> ExitStatus {
        let mut rx = self.exit.subscribe();
        let status = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or(ExitStatus::Code(-1)),
            Err(_) => ExitStatus::Code(-1),
        };
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use AgentState::{Exited, Running, Starting, Stopped};

    const STATES: [AgentState; 4] = [Starting, Running, Stopped, Exited];
    const EVENTS: [Event; 5] = [
        Event::MarkRunning,
        Event::Stop,
        Event::Cont,
        Event::Kill,
        Event::Finish,
    ];

    /// A lifecycle brought to `state` through the public transitions.
    fn at(state: AgentState) -> Lifecycle {
        let life = Lifecycle::new(42);
        match state {
            Starting => {}
            Running => life.mark_running().unwrap(),
            Stopped => {
                life.mark_running().unwrap();
                life.stop().unwrap();
            }
            Exited => life.finish(ExitStatus::Code(0)).unwrap(),
            AgentState::AwaitingApproval => unreachable!("a display state, not in STATES"),
        }
        assert_eq!(life.state(), state);
        life
    }

    fn fire(life: &Lifecycle, event: Event) -> Result<(), Refused> {
        match event {
            Event::MarkRunning => life.mark_running(),
            Event::Stop => life.stop(),
            Event::Cont => life.cont(),
            Event::Kill => life.mark_killed(Signal::Kill, "test".into()),
            Event::Finish => life.finish(ExitStatus::Code(7)),
        }
    }

    #[test]
    fn every_state_and_event_pair_does_what_the_table_says() {
        let expected = [
            // (from, event, to or refused)
            (Starting, Event::MarkRunning, Some(Running)),
            (Starting, Event::Stop, Some(Stopped)),
            (Starting, Event::Cont, None),
            (Starting, Event::Kill, Some(Starting)),
            (Starting, Event::Finish, Some(Exited)),
            (Running, Event::MarkRunning, None),
            (Running, Event::Stop, Some(Stopped)),
            (Running, Event::Cont, None),
            (Running, Event::Kill, Some(Running)),
            (Running, Event::Finish, Some(Exited)),
            (Stopped, Event::MarkRunning, None),
            (Stopped, Event::Stop, None),
            (Stopped, Event::Cont, Some(Running)),
            (Stopped, Event::Kill, Some(Stopped)),
            (Stopped, Event::Finish, Some(Exited)),
            (Exited, Event::MarkRunning, None),
            (Exited, Event::Stop, None),
            (Exited, Event::Cont, None),
            (Exited, Event::Kill, None),
            (Exited, Event::Finish, None),
        ];
        assert_eq!(expected.len(), STATES.len() * EVENTS.len());
        for (from, event, to) in expected {
            assert_eq!(next(from, event), to, "{from:?} + {event:?}");
            let life = at(from);
            let exit_before = life.exit();
            let result = fire(&life, event);
            match to {
                Some(to) => {
                    assert_eq!(result, Ok(()), "{from:?} + {event:?}");
                    assert_eq!(life.state(), to, "{from:?} + {event:?}");
                }
                None => {
                    assert_eq!(result, Err(Refused { from, event }), "{from:?} + {event:?}");
                    // A refused event changes nothing.
                    assert_eq!(life.state(), from, "{from:?} + {event:?}");
                    assert_eq!(life.exit(), exit_before, "{from:?} + {event:?}");
                }
            }
        }
    }

    #[test]
    fn finish_records_the_status_once_and_ends_the_live_pid() {
        let life = at(Running);
        assert_eq!((life.pid(), life.live_pid()), (Some(42), Some(42)));
        assert!(!life.is_exited());
        life.finish(ExitStatus::Code(3)).unwrap();
        assert_eq!(life.exit(), Some(ExitStatus::Code(3)));
        assert!(life.is_exited());
        // The launcher's pid stays listed but may no longer be signalled.
        assert_eq!((life.pid(), life.live_pid()), (Some(42), None));
        assert_eq!(
            life.finish(ExitStatus::Code(4)),
            Err(Refused {
                from: Exited,
                event: Event::Finish
            })
        );
        assert_eq!(life.exit(), Some(ExitStatus::Code(3)));
        assert_eq!(Lifecycle::new(0).pid(), None);
    }

    #[test]
    fn the_first_kill_reason_stands_and_none_is_taken_after_the_end() {
        let life = at(Stopped);
        life.mark_killed(Signal::Policy, "rule 3".into()).unwrap();
        assert_eq!(
            life.mark_killed(Signal::Kill, "operator".into()),
            Err(Refused {
                from: Stopped,
                event: Event::Kill
            })
        );
        assert_eq!(life.kill_reason(), Some((Signal::Policy, "rule 3".into())));
        let ended = at(Exited);
        assert!(ended.mark_killed(Signal::Kill, "late".into()).is_err());
        assert_eq!(ended.kill_reason(), None);
    }

    #[test]
    fn a_refusal_says_what_was_refused() {
        let err = at(Running).cont().unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot continue an agent that is running (nothing changed)"
        );
    }

    #[tokio::test]
    async fn finish_wakes_every_exit_waiter() {
        let life = Arc::new(at(Running));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let life = Arc::clone(&life);
                tokio::spawn(async move { life.wait_exit().await })
            })
            .collect();
        let mut rx = life.subscribe_exit();
        tokio::task::yield_now().await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        life.finish(ExitStatus::PosixSignal(9)).unwrap();
        for w in waiters {
            assert_eq!(w.await.unwrap(), ExitStatus::PosixSignal(9));
        }
        assert_eq!(
            rx.wait_for(Option::is_some).await.unwrap().clone(),
            Some(ExitStatus::PosixSignal(9))
        );
        // A waiter that comes after the end returns at once.
        assert_eq!(life.wait_exit().await, ExitStatus::PosixSignal(9));
    }

    #[tokio::test]
    async fn a_start_waiter_wakes_when_the_agent_leaves_starting() {
        for (event, to) in [
            (Event::MarkRunning, Running),
            (Event::Stop, Stopped),
            (Event::Finish, Exited),
        ] {
            let life = Arc::new(at(Starting));
            let waiter = {
                let life = Arc::clone(&life);
                tokio::spawn(async move { life.wait_started().await })
            };
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished());
            // A kill mark keeps the state: the waiter sleeps on.
            life.mark_killed(Signal::Kill, "test".into()).unwrap();
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished());
            fire(&life, event).unwrap();
            assert_eq!(waiter.await.unwrap(), to, "after {event:?}");
            // One that comes later returns at once.
            assert_eq!(life.wait_started().await, to);
        }
    }

    #[tokio::test]
    async fn cont_and_finish_wake_a_parked_call() {
        let life = Arc::new(at(Stopped));
        let parked = {
            let life = Arc::clone(&life);
            tokio::spawn(async move { life.wait_unfrozen().await })
        };
        tokio::task::yield_now().await;
        assert!(!parked.is_finished());
        // A refused event does not wake it.
        assert!(life.stop().is_err());
        tokio::task::yield_now().await;
        assert!(!parked.is_finished());
        life.cont().unwrap();
        parked.await.unwrap();

        let stopped_again = Arc::new(at(Stopped));
        let parked = {
            let life = Arc::clone(&stopped_again);
            tokio::spawn(async move { life.wait_unfrozen().await })
        };
        tokio::task::yield_now().await;
        assert!(!parked.is_finished());
        stopped_again.finish(ExitStatus::Code(0)).unwrap();
        parked.await.unwrap();
        // Not stopped: no wait at all.
        at(Running).wait_unfrozen().await;
    }
}

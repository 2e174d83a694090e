//! `Recv`: takes the oldest message of the agent's own inbox, waiting up to `timeout_ms`
//! without holding a lock, parked while the agent is stopped. Semantics in `crate::ipc`.

use std::time::Duration;

use agentos_syscalls::control::AgentState;
use agentos_syscalls::{Errno, Message};

use super::class::Class;
use crate::agent::Agent;

pub(super) async fn recv(agent: &Agent, timeout_ms: Option<u64>) -> Result<Message, Errno> {
    // A deadline too far to represent is no deadline.
    let deadline = timeout_ms
        .and_then(|ms| tokio::time::Instant::now().checked_add(Duration::from_millis(ms)));
    let ended = || Errno::Interrupted {
        reason: format!("agent {} ended while waiting in recv", agent.id),
    };
    loop {
        // Registered before looking, so a message pushed in between still wakes this wait.
        let arrived = agent.inbox.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        if agent.current_state() == AgentState::Stopped {
            tokio::select! {
                _ = agent.wait_unfrozen() => continue,
                _ = agent.wait_exit() => return Err(ended()),
            }
        }
        if let Some(m) = agent.inbox.try_pop() {
            return Ok(m);
        }
        if agent.inbox.is_closed() || agent.is_exited() {
            return Err(ended());
        }
        if let (Some(d), Some(ms)) = (deadline, timeout_ms) {
            if tokio::time::Instant::now() >= d {
                return Err(Errno::TimedOut { after_ms: ms });
            }
        }
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut arrived => {}
            _ = timer => {}
            _ = agent.wait_exit() => return Err(ended()),
        }
    }
}

/// Reading one's own inbox: no rule governs it (sending to it was judged).
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

//! The signal dispatcher (DESIGN §7).
//!
//! | signal | what happens |
//! |---|---|
//! | SIGKILL, SIGPOLICY, SIGTRUST | the whole tree is killed (init of the agent's pid namespace first), whatever the agent does |
//! | SIGSTOP | every process of the tree is stopped; the agent's syscalls park |
//! | SIGCONT | the tree is resumed; parked syscalls continue |
//! | SIGTERM | SDK event, POSIX SIGTERM to the agent's process group, SIGKILL after the grace period |
//! | SIGINT | SDK event, POSIX SIGINT to the agent's process group |
//! | SIGUSR1 | working memory is checkpointed; SDK event |
//!
//! Maskable signals are delivered only if the agent's policy lists them in `signals:`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use agentos_syscalls::control::{ControlError, ControlErrorKind};
use agentos_syscalls::{Event, KernelFrame, Signal};

use crate::agent::Agent;
use crate::kernel::{control_error, KernelInner};
use crate::recorder::RecordEvent;
use crate::sys;

/// Delivers `signal` to `agent` on behalf of `source`.
pub(crate) async fn deliver(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    signal: Signal,
    source: &str,
    reason: String,
) -> Result<(), ControlError> {
    if let Some(status) = agent.life().exit() {
        return Err(control_error(
            ControlErrorKind::Failed,
            // The exit reason may quote the agent's strings: one bounded, escaped line.
            format!(
                "agent {} has already ended ({})",
                agent.id,
                agentos_syscalls::control::display_bound(&status.to_string()).escape_debug()
            ),
            "list live agents with `agentctl ps`",
        ));
    }
    let policy = agent.policy();
    if signal.maskable() && !policy.signal_allowed(signal) {
        k.record(
            Some(agent.id),
            RecordEvent::Signal {
                signal,
                source: source.into(),
                reason: "not in the policy's signals list".into(),
                delivered: false,
            },
        );
        return Err(control_error(
            ControlErrorKind::Denied,
            format!(
                "{signal} is not in the `signals:` list of {}, so it cannot be sent to agent {}",
                policy.path(),
                agent.id
            ),
            "add it to `signals:` in the policy, or use SIGKILL, which is always deliverable",
        ));
    }
    agent.counters().signals += 1;
    k.record(
        Some(agent.id),
        RecordEvent::Signal {
            signal,
            source: source.into(),
            reason: reason.clone(),
            delivered: true,
        },
    );
    match signal {
        Signal::Kill | Signal::Policy | Signal::Trust => {
            let why = if reason.is_empty() {
                format!("sent by {source}")
            } else {
                reason
            };
            end_tree(agent, signal, why);
        }
        Signal::Stop => {
            // Refused when already stopped: the tree is frozen again all the same, to catch
            // a process that escaped the last pass.
            let _ = agent.life().stop();
            freeze(agent);
        }
        Signal::Cont => {
            thaw(agent);
            // Refused when not stopped: thawing a running tree changes nothing.
            let _ = agent.life().cont();
        }
        Signal::Term => {
            event_then_posix(agent, signal, libc::SIGTERM, &reason).await;
            let grace = k.config.term_grace;
            let agent = Arc::clone(agent);
            let k = Arc::clone(k);
            tokio::spawn(async move {
                if tokio::time::timeout(grace, agent.wait_exit())
                    .await
                    .is_err()
                {
                    let why = format!("did not exit within {} ms of SIGTERM", grace.as_millis());
                    k.record(
                        Some(agent.id),
                        RecordEvent::Signal {
                            signal: Signal::Kill,
                            source: "kernel".into(),
                            reason: why.clone(),
                            delivered: true,
                        },
                    );
                    end_tree(&agent, Signal::Kill, why);
                }
            });
        }
        Signal::Int => event_then_posix(agent, signal, libc::SIGINT, &reason).await,
        Signal::Usr1 => {
            // A checkpoint writes to disk: on the host I/O pool, in the agent's slots.
            let (kc, a) = (Arc::clone(k), Arc::clone(agent));
            let taken = k
                .host_io
                .run(&agent.tree.io_slots, move || {
                    crate::tree::checkpoint(&kc, &a, "SIGUSR1")
                })
                .await
                .and_then(|r| r);
            let _ = agent.push(KernelFrame::Event(Event::Signal { signal, reason }));
            if let Err(e) = taken {
                tracing::error!(agent_id = %agent.id, error = %e, "SIGUSR1 checkpoint failed");
                // The operator asked for the checkpoint: say why there is none.
                return Err(control_error(
                    ControlErrorKind::Failed,
                    format!(
                        "SIGUSR1 delivered to agent {}, but its checkpoint was not taken: {e}",
                        agent.id
                    ),
                    "see the message; a refused checkpoint wrote nothing",
                ));
            }
        }
    }
    Ok(())
}

/// Tells the SDK first (so its handler sees the event before the POSIX signal lands), then
/// signals the agent's process group.
async fn event_then_posix(agent: &Agent, signal: Signal, posix: i32, reason: &str) {
    if let Some(flushed) = agent.push(KernelFrame::Event(Event::Signal {
        signal,
        reason: reason.into(),
    })) {
        let _ = tokio::time::timeout(Duration::from_millis(500), flushed).await;
    }
    if let Some(leader) = agent_process(agent) {
        if let Err(e) = sys::kill(-(leader as i32), posix) {
            tracing::warn!(agent_id = %agent.id, error = %e, "cannot signal the agent's process group");
        }
    }
}

/// The agent program's process (A): the first child of the namespace's init.
fn agent_process(agent: &Agent) -> Option<u32> {
    let init = *sys::children(agent.life().live_pid()?).first()?;
    sys::children(init).first().copied()
}

/// Kills the whole tree and marks why. Killing the namespace's init empties the namespace;
/// the launcher exits once it has reaped init, so the agent counts as ended only when no
/// process of its tree is left. Without an init yet, the launcher itself is killed (its init,
/// if it is just being created, follows by its parent-death signal).
pub(crate) fn end_tree(agent: &Agent, signal: Signal, reason: String) {
    // Refused after an earlier kill (its reason stands) or after the end.
    let _ = agent.life().mark_killed(signal, reason.clone());
    let _ = agent.push(KernelFrame::Event(Event::Signal { signal, reason }));
    let Some(launcher) = agent.life().live_pid() else {
        return;
    };
    let target = sys::children(launcher).first().copied().unwrap_or(launcher);
    if let Err(e) = sys::kill(target as i32, libc::SIGKILL) {
        tracing::error!(agent_id = %agent.id, error = %e, "cannot kill the agent's tree");
        let _ = sys::kill(launcher as i32, libc::SIGKILL);
    }
}

/// Stops every process below the launcher. Repeats until a pass finds no process it has not
/// stopped yet, so a child forked during the walk is caught on the next pass (a stopped
/// process cannot fork again).
fn freeze(agent: &Agent) {
    let Some(launcher) = agent.life().live_pid() else {
        return;
    };
    let mut stopped = HashSet::new();
    for _ in 0..1000 {
        let mut found_new = false;
        for (pid, _) in sys::descendants(launcher) {
            if stopped.insert(pid) {
                found_new = true;
                let _ = sys::kill(pid as i32, libc::SIGSTOP);
            }
        }
        if !found_new {
            return;
        }
    }
    tracing::warn!(agent_id = %agent.id, "tree kept growing while being stopped");
}

fn thaw(agent: &Agent) {
    let Some(launcher) = agent.life().live_pid() else {
        return;
    };
    for (pid, _) in sys::descendants(launcher) {
        let _ = sys::kill(pid as i32, libc::SIGCONT);
    }
}

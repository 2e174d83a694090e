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
//!
//! The host's processes are reached only through [`Procs`] (`kill` and the process table):
//! [`LinuxProcs`] in the kernel, a fake process table in the tests. Every walk starts at the
//! agent's launcher while it is live ([`crate::agent::Lifecycle::live_pid`]): once the launcher
//! is reaped its pid may be someone else's, and nothing is sent.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use agentos_syscalls::control::{ControlError, ControlErrorKind};
use agentos_syscalls::{Event, KernelFrame, Signal};

use crate::agent::Agent;
use crate::recorder::RecordEvent;
use crate::state::KernelInner;
use crate::sys;
use crate::util::control_error;

/// What signal delivery needs of the host's processes.
pub(crate) trait Procs: Send + Sync {
    /// Sends POSIX `signal` to process `pid` (`pid > 0`) or process group `-pid`; a target
    /// that is already gone is not an error.
    fn kill(&self, pid: i32, signal: i32) -> io::Result<()>;
    /// `(pid, ppid)` of every process.
    fn table(&self) -> Vec<(u32, u32)>;
    /// The parent of `pid`, `None` when it is gone (one process read, not a walk of all).
    fn parent(&self, pid: u32) -> Option<u32>;
}

/// The host: `kill(2)` and `/proc`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinuxProcs;

impl Procs for LinuxProcs {
    fn kill(&self, pid: i32, signal: i32) -> io::Result<()> {
        sys::kill(pid, signal)
    }

    fn table(&self) -> Vec<(u32, u32)> {
        sys::process_table()
            .into_iter()
            .map(|(pid, ppid, _)| (pid, ppid))
            .collect()
    }

    fn parent(&self, pid: u32) -> Option<u32> {
        sys::parent_of(pid)
    }
}

/// The direct children of `pid`, lowest pid first.
fn children(procs: &dyn Procs, pid: u32) -> Vec<u32> {
    let mut kids: Vec<u32> = procs
        .table()
        .into_iter()
        .filter(|p| p.1 == pid)
        .map(|p| p.0)
        .collect();
    kids.sort_unstable();
    kids
}

/// Every descendant of `root` (not `root` itself), parents before their children.
fn descendants(procs: &dyn Procs, root: u32) -> Vec<u32> {
    let table = procs.table();
    let mut out = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &table {
            if ppid == parent && seen.insert(pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

/// Why a signal is not delivered at all.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undeliverable {
    /// The agent has ended, this way.
    Ended(agentos_syscalls::control::ExitStatus),
    /// A maskable signal its policy's `signals:` does not list.
    Masked,
}

/// Whether `signal` may reach `agent` at all: it has not ended, and a maskable signal is
/// listed in its policy. Non-maskable signals pass whatever the policy says.
fn admissible(agent: &Agent, signal: Signal) -> Result<(), Undeliverable> {
    if let Some(status) = agent.life().exit() {
        return Err(Undeliverable::Ended(status));
    }
    if signal.maskable() && !agent.policy().signal_allowed(signal) {
        return Err(Undeliverable::Masked);
    }
    Ok(())
}

/// Delivers `signal` to `agent` on behalf of `source`.
pub(crate) async fn deliver(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    signal: Signal,
    source: &str,
    reason: String,
) -> Result<(), ControlError> {
    deliver_in(k, agent, signal, source, reason, None).await
}

/// [`deliver`], traced as a `kernel.signal` span under `parent` (the span of the call that
/// brought the signal), or under the agent's life when `None` ([`crate::traces`]).
pub(crate) async fn deliver_in(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    signal: Signal,
    source: &str,
    reason: String,
    parent: Option<&opentelemetry::Context>,
) -> Result<(), ControlError> {
    let Some(life) = agent.trace() else {
        return deliver_untraced(k, agent, signal, source, reason).await;
    };
    let start = std::time::SystemTime::now();
    let result = deliver_untraced(k, agent, signal, source, reason).await;
    let outcome = result.as_ref().map(|_| ()).map_err(|e| e.message.clone());
    let parent = parent.unwrap_or_else(|| life.context());
    crate::traces::signal(life, parent, start, signal, source, outcome);
    result
}

async fn deliver_untraced(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    signal: Signal,
    source: &str,
    reason: String,
) -> Result<(), ControlError> {
    let procs = &LinuxProcs;
    let policy = agent.policy();
    match admissible(agent, signal) {
        Ok(()) => {}
        Err(Undeliverable::Ended(status)) => {
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
        Err(Undeliverable::Masked) => {
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
            end_tree(procs, agent, signal, why);
        }
        Signal::Stop => stop(procs, agent),
        Signal::Cont => cont(procs, agent),
        Signal::Term => {
            event_then_posix(procs, agent, signal, libc::SIGTERM, &reason).await;
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
                    end_tree(&LinuxProcs, &agent, Signal::Kill, why);
                }
            });
        }
        Signal::Int => event_then_posix(procs, agent, signal, libc::SIGINT, &reason).await,
        Signal::Usr1 => {
            // A checkpoint writes to disk: on the host I/O pool, in the agent's slots.
            let (kc, a) = (Arc::clone(k), Arc::clone(agent));
            let taken = k
                .host_io
                .run(&agent.tree.io_slots, move || {
                    crate::tree::checkpoint(&kc.tree(), &a, "SIGUSR1")
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

/// SIGSTOP: the agent is `Stopped` (its syscalls park) and its tree frozen. Refused by the
/// lifecycle when already stopped: the tree is frozen again all the same, to catch a process
/// that escaped the last pass.
fn stop(procs: &dyn Procs, agent: &Agent) {
    let _ = agent.life().stop();
    freeze(procs, agent);
}

/// SIGCONT: the tree resumes, then the agent is `Running` (its parked syscalls continue).
/// Refused by the lifecycle when not stopped: thawing a running tree changes nothing.
fn cont(procs: &dyn Procs, agent: &Agent) {
    thaw(procs, agent);
    let _ = agent.life().cont();
}

/// Tells the SDK first (so its handler sees the event before the POSIX signal lands), then
/// signals the agent's process group.
async fn event_then_posix(
    procs: &dyn Procs,
    agent: &Agent,
    signal: Signal,
    posix: i32,
    reason: &str,
) {
    if let Some(flushed) = agent.push(KernelFrame::Event(Event::Signal {
        signal,
        reason: reason.into(),
    })) {
        let _ = tokio::time::timeout(Duration::from_millis(500), flushed).await;
    }
    if let Some(leader) = agent_process(procs, agent) {
        if let Err(e) = procs.kill(-(leader as i32), posix) {
            tracing::warn!(agent_id = %agent.id, error = %e, "cannot signal the agent's process group");
        }
    }
}

/// The agent program's process (A): the first child of the namespace's init. Found once by a
/// walk of the process table and remembered; a remembered pair is used only while it still
/// hangs below the live launcher (two reads), so a pid reused after the agent ended is never
/// signalled.
fn agent_process(procs: &dyn Procs, agent: &Agent) -> Option<u32> {
    let root = agent.life().live_pid()?;
    if let Some((init, leader)) = agent.known_processes() {
        let init_live = if agent.pid_is_init() {
            init == root
        } else {
            procs.parent(init) == Some(root)
        };
        if init_live && procs.parent(leader) == Some(init) {
            return Some(leader);
        }
    }
    let init = if agent.pid_is_init() {
        root
    } else {
        *children(procs, root).first()?
    };
    let leader = children(procs, init).first().copied()?;
    agent.remember_processes(init, leader);
    Some(leader)
}

/// Remembers the init and program process of every agent in `agents` from ONE walk of the
/// process table (the kernel's shutdown signals them all: a walk per agent would cost the
/// square of the fleet).
pub(crate) fn learn_processes(procs: &dyn Procs, agents: &[Arc<Agent>]) {
    let table = procs.table();
    let first_child = |parent: u32| table.iter().filter(|p| p.1 == parent).map(|p| p.0).min();
    for agent in agents {
        let Some(root) = agent.life().live_pid() else {
            continue;
        };
        let init = if agent.pid_is_init() {
            Some(root)
        } else {
            first_child(root)
        };
        if let Some(init) = init {
            if let Some(leader) = first_child(init) {
                agent.remember_processes(init, leader);
            }
        }
    }
}

/// Kills the whole tree and marks why. Killing the namespace's init empties the namespace;
/// the launcher exits once it has reaped init, so the agent counts as ended only when no
/// process of its tree is left. Without an init yet, the launcher itself is killed (its init,
/// if it is just being created, follows by its parent-death signal). Every other process the
/// tree held when the kill began is killed too, so a tree without its own pid namespace (a
/// degraded sandbox) ends as well: the walk is taken before the first kill, since a killed
/// parent's children are handed to the host's init and no longer found below the launcher.
pub(crate) fn end_tree(procs: &dyn Procs, agent: &Agent, signal: Signal, reason: String) {
    // Refused after an earlier kill (its reason stands) or after the end.
    let _ = agent.life().mark_killed(signal, reason.clone());
    let _ = agent.push(KernelFrame::Event(Event::Signal { signal, reason }));
    let Some(launcher) = agent.life().live_pid() else {
        return;
    };
    let tree = descendants(procs, launcher);
    // A cloned init is the kernel's own child: it is the target.
    let target = if agent.pid_is_init() {
        launcher
    } else {
        children(procs, launcher)
            .first()
            .copied()
            .unwrap_or(launcher)
    };
    if let Err(e) = procs.kill(target as i32, libc::SIGKILL) {
        tracing::error!(agent_id = %agent.id, error = %e, "cannot kill the agent's tree");
        let _ = procs.kill(launcher as i32, libc::SIGKILL);
    }
    for pid in tree.into_iter().filter(|&p| p != target) {
        let _ = procs.kill(pid as i32, libc::SIGKILL);
    }
}

/// How long the end of an agent for a strict violation waits, once the agent has read the
/// refusal, for the agent to come to rest ([`wait_at_rest`]).
pub(crate) const REST_BEFORE_END: Duration = Duration::from_millis(50);

/// Waits, at most `bound`, until no thread of the agent's tree runs: after a strict
/// violation's refusal is in its hands, the agent gets to take it in (log it, say) before
/// SIGPOLICY ends it mid-sentence. The end follows whatever the agent does; its calls
/// meanwhile are judged as any call (and it already waited as long for the agent to read its
/// socket, see `connection::send_flushed`).
pub(crate) async fn wait_at_rest(agent: &Agent, bound: Duration) {
    let Some(root) = agent.life().live_pid() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + bound;
    let mut tree = descendants(&LinuxProcs, root);
    tree.push(root);
    while !tree.iter().all(|&pid| sys::at_rest(pid)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Stops every process below the launcher. Repeats until a pass finds no process it has not
/// stopped yet, so a child forked during the walk is caught on the next pass (a stopped
/// process cannot fork again).
fn freeze(procs: &dyn Procs, agent: &Agent) {
    let Some(launcher) = agent.life().live_pid() else {
        return;
    };
    let mut stopped = HashSet::new();
    // A cloned init is stopped with its tree, as a launcher's init is (below the launcher).
    let root = agent.pid_is_init().then_some(launcher);
    for _ in 0..1000 {
        let mut found_new = false;
        for pid in root.into_iter().chain(descendants(procs, launcher)) {
            if stopped.insert(pid) {
                found_new = true;
                let _ = procs.kill(pid as i32, libc::SIGSTOP);
            }
        }
        if !found_new {
            return;
        }
    }
    tracing::warn!(agent_id = %agent.id, "tree kept growing while being stopped");
}

fn thaw(procs: &dyn Procs, agent: &Agent) {
    let Some(launcher) = agent.life().live_pid() else {
        return;
    };
    let root = agent.pid_is_init().then_some(launcher);
    for pid in root.into_iter().chain(descendants(procs, launcher)) {
        let _ = procs.kill(pid as i32, libc::SIGCONT);
    }
}

/// Ends `agent` with SIGKILL the first time it is over its share of the flight recorder
/// (`--recorder-share-bytes`: bytes of the records and blobs it caused), after recording a
/// `SandboxLimit { resource: "recorder_bytes", .. }`. Called after each of its answers
/// is recorded, so every call answered before the kill is in the log. The kill is awaited
/// boxed: every answer awaits this check, and the rare kill would otherwise size the future
/// of every call.
pub(crate) async fn enforce_recorder_share(k: &Arc<KernelInner>, agent: &Arc<Agent>) {
    if let Some(over) = k.recorder.over_share(agent.id) {
        Box::pin(end_over_recorder_share(k, agent, over)).await;
    }
}

/// The slow half of [`enforce_recorder_share`], once `over_share` has found the agent over
/// (`(used, limit)`).
async fn end_over_recorder_share(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    (used, limit): (u64, u64),
) {
    let detail = format!(
        "the agent caused {used} bytes of flight-recorder records and blobs, over its share of {limit} (--recorder-share-bytes); it is ended with SIGKILL"
    );
    tracing::warn!(agent_id = %agent.id, used, limit, "an agent exhausted its share of the flight recorder");
    k.record(
        Some(agent.id),
        RecordEvent::SandboxLimit {
            resource: "recorder_bytes".into(),
            limit,
            used,
            by: "syscall".into(),
            detail: detail.clone(),
        },
    );
    let _ = deliver(
        k,
        agent,
        Signal::Kill,
        "kernel",
        format!("recorder share exhausted: {detail}"),
    )
    .await;
}

/// The live agent whose process tree holds `pid`, found by walking up its parents.
/// Linear in the number of processes and agents: one pass builds each map, and the walk
/// looks each ancestor up once (a deep process chain no longer costs depth × table).
pub(crate) fn agent_of_process(k: &KernelInner, pid: u32) -> Option<Arc<Agent>> {
    k.agents.agent_of_process(&LinuxProcs.table(), pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::test_agent;
    use agentos_syscalls::control::{AgentState, ExitStatus};
    use std::sync::Mutex;

    /// A process table in memory. SIGKILL removes a process and hands its children to init
    /// (pid 1), as the host does without a pid namespace; `fork_on_stop` makes a process fork
    /// while the tree is being stopped.
    #[derive(Debug, Default)]
    struct FakeProcs {
        table: Mutex<Vec<(u32, u32)>>,
        sent: Mutex<Vec<(i32, i32)>>,
        /// On the first SIGSTOP of `.0`, child `.1` of it appears.
        fork_on_stop: Mutex<Option<(u32, u32)>>,
    }

    impl Procs for FakeProcs {
        fn kill(&self, pid: i32, signal: i32) -> io::Result<()> {
            self.sent.lock().unwrap().push((pid, signal));
            let mut table = self.table.lock().unwrap();
            if signal == libc::SIGKILL {
                table.retain(|p| p.0 as i32 != pid);
                for p in table.iter_mut().filter(|p| p.1 as i32 == pid) {
                    p.1 = 1;
                }
            }
            if signal == libc::SIGSTOP {
                let mut fork = self.fork_on_stop.lock().unwrap();
                if let Some((parent, child)) = *fork {
                    if parent as i32 == pid {
                        table.push((child, parent));
                        *fork = None;
                    }
                }
            }
            Ok(())
        }

        fn table(&self) -> Vec<(u32, u32)> {
            self.table.lock().unwrap().clone()
        }

        fn parent(&self, pid: u32) -> Option<u32> {
            let table = self.table.lock().unwrap();
            table.iter().find(|p| p.0 == pid).map(|p| p.1)
        }
    }

    /// The kernel (10); the agent's launcher (100), its init (101), the agent (102) with a
    /// child (103) and a grandchild (104), a second child of init (105); another agent's
    /// launcher (150) and its child (151); a stranger (200).
    fn host() -> FakeProcs {
        let procs = FakeProcs::default();
        *procs.table.lock().unwrap() = vec![
            (1, 0),
            (10, 1),
            (100, 10),
            (101, 100),
            (102, 101),
            (103, 102),
            (104, 103),
            (105, 101),
            (150, 10),
            (151, 150),
            (200, 1),
        ];
        procs
    }

    fn sent(procs: &FakeProcs) -> Vec<(i32, i32)> {
        procs.sent.lock().unwrap().clone()
    }

    fn pids(procs: &FakeProcs) -> Vec<u32> {
        let mut p: Vec<u32> = procs.table().iter().map(|p| p.0).collect();
        p.sort_unstable();
        p
    }

    #[test]
    fn sigkill_ends_the_whole_tree_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(dir.path(), 1, None, 100);
        let procs = host();
        end_tree(&procs, &agent, Signal::Kill, "sent by operator".into());
        let sent = sent(&procs);
        // Init of the agent's pid namespace first, then every process the tree held.
        assert_eq!(sent[0], (101, libc::SIGKILL));
        let mut rest = sent[1..].to_vec();
        rest.sort_unstable();
        assert_eq!(
            rest,
            [102, 103, 104, 105].map(|p| (p, libc::SIGKILL)).to_vec()
        );
        // The launcher exits by itself once init is reaped; nobody else was touched.
        assert_eq!(pids(&procs), [1, 10, 100, 150, 151, 200]);
        assert_eq!(
            agent.life().kill_reason(),
            Some((Signal::Kill, "sent by operator".into()))
        );
    }

    #[test]
    fn the_program_is_found_once_and_a_remembered_pid_is_checked_before_each_use() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(dir.path(), 1, None, 100);
        let procs = host();
        // One walk of the table for a whole fleet.
        learn_processes(&procs, std::slice::from_ref(&agent));
        assert_eq!(agent.known_processes(), Some((101, 102)));
        assert_eq!(agent_process(&procs, &agent), Some(102));
        // The program is gone and its pid now belongs to a stranger under the host's init:
        // the remembered pid is refused and the tree walked again (init's other child).
        {
            let mut table = procs.table.lock().unwrap();
            table.retain(|p| p.0 != 102);
            table.push((102, 1));
        }
        assert_eq!(agent_process(&procs, &agent), Some(105));
        assert_eq!(agent.known_processes(), Some((101, 105)));
        // The launcher ended: nothing is signalled, whatever was remembered.
        agent.life().finish(ExitStatus::Code(0)).unwrap();
        assert_eq!(agent_process(&procs, &agent), None);
    }

    #[test]
    fn a_tree_without_an_init_yet_is_ended_by_killing_its_launcher() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(dir.path(), 1, None, 150);
        let procs = FakeProcs::default();
        *procs.table.lock().unwrap() = vec![(10, 1), (150, 10), (200, 1)];
        end_tree(&procs, &agent, Signal::Policy, "rule 2".into());
        assert_eq!(sent(&procs), [(150, libc::SIGKILL)]);
        assert_eq!(pids(&procs), [10, 200]);
    }

    #[test]
    fn an_ended_agent_whose_pid_was_reused_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(dir.path(), 1, None, 100);
        agent.life().finish(ExitStatus::Code(0)).unwrap();
        // Pid 100 and its children now belong to someone else.
        let procs = host();
        end_tree(&procs, &agent, Signal::Kill, "late".into());
        stop(&procs, &agent);
        cont(&procs, &agent);
        assert_eq!(sent(&procs), []);
        assert_eq!(pids(&procs).len(), 11);
        assert_eq!(agent.life().kill_reason(), None);
        assert_eq!(agent.current_state(), AgentState::Exited);
        assert_eq!(
            admissible(&agent, Signal::Kill),
            Err(Undeliverable::Ended(ExitStatus::Code(0)))
        );
    }

    #[test]
    fn sigstop_freezes_the_tree_even_a_child_forked_meanwhile_and_sigcont_thaws_it() {
        let dir = tempfile::tempdir().unwrap();
        let agent = test_agent(dir.path(), 1, None, 100);
        agent.life().mark_running().unwrap();
        let procs = host();
        *procs.fork_on_stop.lock().unwrap() = Some((103, 106));
        stop(&procs, &agent);
        assert_eq!(agent.current_state(), AgentState::Stopped);
        let mut stopped = sent(&procs);
        stopped.sort_unstable();
        assert_eq!(
            stopped,
            [101, 102, 103, 104, 105, 106]
                .map(|p| (p, libc::SIGSTOP))
                .to_vec()
        );
        procs.sent.lock().unwrap().clear();
        cont(&procs, &agent);
        assert_eq!(agent.current_state(), AgentState::Running);
        let mut resumed = sent(&procs);
        resumed.sort_unstable();
        assert_eq!(
            resumed,
            [101, 102, 103, 104, 105, 106]
                .map(|p| (p, libc::SIGCONT))
                .to_vec()
        );
        // Nothing outside the tree, and the launcher itself, ever got a signal.
        assert!(sent(&procs).iter().all(|&(p, _)| (101..=106).contains(&p)));
    }

    #[test]
    fn maskable_signals_need_the_policy_and_an_ended_agent_gets_none() {
        let dir = tempfile::tempdir().unwrap();
        // The test policy lists SIGSTOP and SIGCONT only.
        let agent = test_agent(dir.path(), 1, None, 100);
        assert_eq!(admissible(&agent, Signal::Stop), Ok(()));
        assert_eq!(admissible(&agent, Signal::Int), Err(Undeliverable::Masked));
        assert_eq!(admissible(&agent, Signal::Term), Err(Undeliverable::Masked));
        for always in [Signal::Kill, Signal::Policy, Signal::Trust] {
            assert_eq!(admissible(&agent, always), Ok(()));
        }
        let exit = ExitStatus::Killed {
            signal: Signal::Kill,
            reason: "x".into(),
        };
        agent.life().finish(exit.clone()).unwrap();
        assert_eq!(
            admissible(&agent, Signal::Stop),
            Err(Undeliverable::Ended(exit))
        );
    }
}

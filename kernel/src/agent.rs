//! One agent: its identity, lifecycle state, counters, policy, memory and output log.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use agentos_policy::{Policy, RateLimiter};
use agentos_syscalls::control::{AgentCounters, AgentInfo, AgentState, AgentUsage, ExitStatus};
use agentos_syscalls::{AgentId, JailReport, KernelFrame, Signal};
use agentos_userspace::launch::cgroup::AgentGroup;
use agentos_vfs::MemFs;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::policy::PolicySlot;

/// Locks a mutex, treating a poisoned one as usable: every critical section here leaves the
/// data consistent, and an agent's panic must not wedge the kernel.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A frame on its way to the agent, with an optional notice once it has been written.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub frame: KernelFrame,
    pub flushed: Option<oneshot::Sender<()>>,
}

/// One chunk of output and its offset in the log file.
pub(crate) type LogChunk = (u64, Arc<[u8]>);

/// The agent's output log: a file plus a broadcast of each chunk with its offset, so that a
/// follower can read what is on disk and then continue live without a gap or a repeat.
#[derive(Debug)]
pub(crate) struct LogSink {
    pub path: PathBuf,
    file: Mutex<(std::fs::File, u64)>,
    tx: broadcast::Sender<LogChunk>,
}

impl LogSink {
    pub fn create(path: PathBuf) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let (tx, _) = broadcast::channel(1024);
        Ok(Self {
            path,
            file: Mutex::new((file, 0)),
            tx,
        })
    }

    pub fn append(&self, bytes: &[u8]) {
        use std::io::Write;
        let mut guard = lock(&self.file);
        let (file, len) = &mut *guard;
        if let Err(e) = file.write_all(bytes) {
            tracing::warn!(path = %self.path.display(), error = %e, "agent log write failed");
        }
        let offset = *len;
        *len += bytes.len() as u64;
        let _ = self.tx.send((offset, Arc::from(bytes)));
    }

    /// The log's length so far and a receiver for everything after it.
    pub fn follow(&self) -> (u64, broadcast::Receiver<LogChunk>) {
        let guard = lock(&self.file);
        (guard.1, self.tx.subscribe())
    }
}

/// The kernel's record of one agent.
#[derive(Debug)]
pub(crate) struct Agent {
    pub id: AgentId,
    pub name: Option<String>,
    pub program: String,
    pub args: Vec<String>,
    /// The agent's policy; replaced as a whole by `agentctl policy reload`.
    pub policy: PolicySlot,
    pub started_ms: u64,
    pub spawned_at: Instant,
    pub scratch: PathBuf,
    pub log: LogSink,
    pub state: watch::Sender<AgentState>,
    pub exit: watch::Sender<Option<ExitStatus>>,
    pub pid: AtomicU32,
    pub counters: Mutex<AgentCounters>,
    pub first_syscall_us: OnceLock<u64>,
    /// Set when the kernel ends the tree, so the exit is reported as that signal.
    pub kill_reason: Mutex<Option<(Signal, String)>>,
    pub outbox: Mutex<Option<mpsc::Sender<Outgoing>>>,
    pub working: Mutex<MemFs>,
    /// The rest of the agent's VFS tree: persistent namespace, workspace root, quota,
    /// descriptors, checkpoints.
    pub tree: crate::tree::AgentTree,
    pub jail: Mutex<Option<JailReport>>,
    pub limiter: Mutex<RateLimiter>,
    /// The token buckets of the kernel's base policy's rules, for this agent.
    pub base_limiter: Mutex<RateLimiter>,
    /// The launcher's last `agentos-launch: …` line, for a sandbox failure report.
    pub launcher_error: Mutex<Option<String>>,
    /// The agent's cgroup(s), where the host gave the kernel any; removed once it ends.
    pub cgroup: Option<AgentGroup>,
    /// The limits its jail was given (rlimits, and its cgroup's where it has one).
    pub limits: agentos_userspace::launch::ResourceLimits,
    /// The tasks watching its seccomp listener: the reaper lets them finish (they end when the
    /// agent's last process is gone) before it records the exit, so every sandbox event of the
    /// agent precedes its `Exit` record.
    pub watchers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The host directory given with `--workspace` (canonical), served as `/workspace`.
    pub workspace: Option<PathBuf>,
    /// Messages other agents sent, waiting for `Recv`.
    pub inbox: crate::ipc::Inbox,
    /// Slots for the tools (`Exec`, `Call`) the agent runs at once ([`crate::tools::MAX_TOOLS`]).
    pub tools: Arc<tokio::sync::Semaphore>,
}

impl Agent {
    /// The current policy: one snapshot, to be used for a whole decision.
    pub fn policy(&self) -> Policy {
        self.policy.load()
    }

    pub fn current_state(&self) -> AgentState {
        *self.state.borrow()
    }

    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::Acquire) {
            0 => None,
            p => Some(p),
        }
    }

    pub fn is_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    pub fn counters(&self) -> std::sync::MutexGuard<'_, AgentCounters> {
        lock(&self.counters)
    }

    /// Waits until the agent is not stopped (or has ended). Used to park syscalls.
    pub async fn wait_unfrozen(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| *s != AgentState::Stopped).await;
    }

    /// Waits for the agent's end and returns how it ended.
    pub async fn wait_exit(&self) -> ExitStatus {
        let mut rx = self.exit.subscribe();
        let status = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or(ExitStatus::Code(-1)),
            Err(_) => ExitStatus::Code(-1),
        };
        status
    }

    /// Queues a frame for the agent. Returns a receiver that fires once it is written, or
    /// `None` when the agent has no live connection.
    pub fn push(&self, frame: KernelFrame) -> Option<oneshot::Receiver<()>> {
        let tx = lock(&self.outbox).clone()?;
        let (done, rx) = oneshot::channel();
        tx.try_send(Outgoing {
            frame,
            flushed: Some(done),
        })
        .ok()?;
        Some(rx)
    }

    pub fn info(&self) -> AgentInfo {
        // Each lock is taken and released in its own statement: a struct literal keeps its
        // temporaries (guards) alive to its end, and a second read of `exit` (in `usage`) while
        // the reaper waits to write it would deadlock the write-preferring lock.
        let policy = self.policy();
        let state = self.current_state();
        let counters = *self.counters();
        let exit = self.exit.borrow().clone();
        let jail = lock(&self.jail).clone();
        let usage = self.usage();
        AgentInfo {
            id: self.id,
            name: self.name.clone(),
            state,
            pid: self.pid(),
            program: self.program.clone(),
            args: self.args.clone(),
            started_ms: self.started_ms,
            first_syscall_us: self.first_syscall_us.get().copied(),
            counters,
            exit,
            policy_path: policy.path().to_string(),
            policy_digest: policy.digest(),
            log_path: self.log.path.clone(),
            jail,
            usage,
        }
    }

    /// What the agent's cgroup says it uses, while it runs.
    pub fn usage(&self) -> Option<AgentUsage> {
        let group = self.cgroup.as_ref()?;
        if self.is_exited() {
            return None;
        }
        Some(AgentUsage {
            memory_bytes: group.memory_bytes().unwrap_or(0),
            pids: group.pids().unwrap_or(0),
        })
    }
}

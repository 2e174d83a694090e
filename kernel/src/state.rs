//! The kernel's shared state, [`KernelInner`]: what the kernel's tasks (the syscall server,
//! the spawner's reapers, the signal dispatcher, the control server) share. Its parts are the
//! core's own types — the agent table, the recorder, approvals, the store, the host-I/O pool,
//! the spawner, the performer — so this module sits below every module that is handed it;
//! the operations over it live in those modules, and the narrow views the core takes
//! (`tree()`, the recorder as an `Audit`) are built here.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use agentos_syscalls::control::{AgentRef, ControlError};
use agentos_syscalls::{AgentId, Layer};
use tokio::sync::watch;

use crate::agent::{Agent, AgentTable};
use crate::approvals::Approvals;
use crate::config::Config;
use crate::recorder::{RecordEvent, Recorder};
use crate::spawner::Spawner;

/// Everything the kernel's tasks share.
#[derive(Debug)]
pub(crate) struct KernelInner {
    pub config: Config,
    pub recorder: Recorder,
    pub agents: AgentTable,
    pub next_id: AtomicU64,
    pub spawner: Spawner,
    pub started_ms: u64,
    pub shutdown: watch::Sender<bool>,
    /// The sandbox layers this host offers (`agentos-launch --probe` at start), plus the
    /// `full_sandbox` entry saying whether a missing one refuses spawns.
    pub host_layers: Vec<Layer>,
    /// Calls parked for operator approval.
    pub approvals: Approvals,
    /// The cgroup hierarchies agents get groups in, or why there are none.
    pub cgroups: Result<agentos_userspace::launch::cgroup::Host, String>,
    /// Every agent's persistent memory (`/mem/episodic`, `/mem/semantic`).
    pub memory: agentos_vfs::Store,
    /// The bounded pool host file work runs on (see [`crate::hostio`]).
    pub host_io: crate::hostio::HostIo,
    /// Who answers agents' calls, chosen at start (live, or a replay of a recording).
    pub performer: crate::replay::run::Performer,
    /// Prometheus metrics (`--metrics-addr`), fed every recorded event; `None`: off.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The state dir's lock, held for the kernel's life.
    pub _lock: std::fs::File,
}

impl KernelInner {
    /// Records an event ([`crate::audit::Audit`]: sealed at once for a policy reload or an
    /// approval outcome; `false`, logged, when the recorder fails).
    pub fn record(&self, agent: Option<AgentId>, event: RecordEvent) -> bool {
        let Some(metrics) = &self.metrics else {
            return crate::audit::Audit::record(&self.recorder, agent, event);
        };
        let observed = metrics.observe(&self.metrics_subject(agent), &event);
        let ok = crate::audit::Audit::record(&self.recorder, agent, event);
        if ok {
            metrics.apply(observed);
        }
        ok
    }

    /// [`KernelInner::record`] for async callers (the syscall path): the task waits, the
    /// worker does not ([`crate::audit::Audit`]).
    pub async fn record_async(&self, agent: Option<AgentId>, event: RecordEvent) -> bool {
        let Some(metrics) = &self.metrics else {
            return crate::audit::Audit::record_async(&self.recorder, agent, event).await;
        };
        let observed = metrics.observe(&self.metrics_subject(agent), &event);
        let ok = crate::audit::Audit::record_async(&self.recorder, agent, event).await;
        if ok {
            metrics.apply(observed);
        }
        ok
    }

    /// Whether new work may start ([`crate::audit::Audit`]): `QuotaExceeded` when the
    /// recorder cannot write or the state dir's disk is below its watermark.
    pub fn admit(&self) -> Result<(), agentos_syscalls::Errno> {
        crate::audit::Audit::admit(&self.recorder)
    }

    /// Who `agent`'s recorded events belong to, as the metrics see it: its per-agent label
    /// only when its policy opted in (`observability.metrics: true`).
    fn metrics_subject(&self, agent: Option<AgentId>) -> crate::metrics::Subject {
        let label = agent
            .and_then(|id| self.agents.get(id))
            .filter(|a| a.policy().observability().metrics)
            .map(|a| agent_label(a.name.as_deref(), a.id));
        crate::metrics::Subject { label }
    }

    /// What the per-agent tree needs of the kernel ([`crate::tree::TreeCtx`]).
    pub fn tree(&self) -> crate::tree::TreeCtx<'_> {
        crate::tree::TreeCtx {
            limits: crate::tree::TreeLimits {
                max_frame: self.config.max_frame,
                max_fds: self.config.max_fds,
                checkpoint_bytes: self.config.disk.checkpoint_bytes,
            },
            memory: &self.memory,
            audit: &self.recorder,
        }
    }

    /// The agent `r` names (by id, or the newest with that name).
    pub fn find(&self, r: &AgentRef) -> Result<Arc<Agent>, ControlError> {
        self.agents.find(r)
    }
}

/// An agent's label in per-agent metrics: the name the operator spawned it with, or its id.
pub(crate) fn agent_label(name: Option<&str>, id: AgentId) -> String {
    name.map_or_else(|| id.0.to_string(), str::to_string)
}

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
    /// The policies spawns parsed last: a fleet spawned under one file parses it once.
    pub policies: agentos_policy::PolicyCache,
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
    /// The operator's event hook (`--on-event`), told of recorded events; `None`: off.
    pub hooks: Option<crate::hooks::Hooks>,
    /// The address the metrics are served on, once bound (`--metrics-addr` may name port 0).
    pub metrics_bound: std::sync::OnceLock<std::net::SocketAddr>,
    /// OpenTelemetry spans (`--otlp-endpoint`); `None`: off.
    pub traces: Option<crate::traces::Traces>,
    /// The state dir's lock, held for the kernel's life.
    pub _lock: std::fs::File,
}

impl KernelInner {
    /// Records an event ([`crate::audit::Audit`]: sealed at once for a policy reload or an
    /// approval outcome; `false`, logged, when the recorder fails).
    pub fn record(&self, agent: Option<AgentId>, event: RecordEvent) -> bool {
        if self.metrics.is_none() && self.hooks.is_none() {
            return crate::audit::Audit::record(&self.recorder, agent, event);
        }
        let told = self.before_recording(agent, &event);
        let ok = crate::audit::Audit::record(&self.recorder, agent, event);
        self.after_recording(told, ok);
        ok
    }

    /// [`KernelInner::record`] for async callers (the syscall path): the task waits, the
    /// worker does not ([`crate::audit::Audit`]).
    pub async fn record_async(&self, agent: Option<AgentId>, event: RecordEvent) -> bool {
        if self.metrics.is_none() && self.hooks.is_none() {
            return crate::audit::Audit::record_async(&self.recorder, agent, event).await;
        }
        let told = self.before_recording(agent, &event);
        let ok = crate::audit::Audit::record_async(&self.recorder, agent, event).await;
        self.after_recording(told, ok);
        ok
    }

    /// What the metrics and the event hook will be told of `event`, worked out before it
    /// moves into the recorder (no copy of its payload).
    fn before_recording(&self, agent: Option<AgentId>, event: &RecordEvent) -> Told {
        let found = agent.and_then(|id| self.agents.get(id));
        let metrics = self.metrics.as_ref().map(|m| {
            let label = found
                .as_ref()
                .filter(|a| a.policy().observability().metrics)
                .map(|a| agent_label(a.name.as_deref(), a.id));
            m.observe(&crate::metrics::Subject { label }, event)
        });
        let hook = self.hooks.as_ref().and_then(|h| {
            let who = crate::hooks::Who {
                id: agent,
                name: found.as_ref().and_then(|a| a.name.as_deref()),
            };
            h.event_of(&who, event)
        });
        Told { metrics, hook }
    }

    /// Counts and tells what was recorded (`ok`); a record that failed is counted nowhere,
    /// and the hook hears that the recorder fails.
    fn after_recording(&self, told: Told, ok: bool) {
        if !ok {
            if let Some(h) = &self.hooks {
                h.recorder_failed("an event could not be recorded; new work is refused");
            }
            return;
        }
        if let (Some(m), Some(o)) = (&self.metrics, told.metrics) {
            m.apply(o);
        }
        if let (Some(h), Some(e)) = (&self.hooks, told.hook) {
            h.offer(e);
        }
    }

    /// Whether new work may start ([`crate::audit::Audit`]): `QuotaExceeded` when the
    /// recorder cannot write or the state dir's disk is below its watermark.
    pub fn admit(&self) -> Result<(), agentos_syscalls::Errno> {
        crate::audit::Audit::admit(&self.recorder)
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

/// What a recorded event tells the metrics and the event hook ([`KernelInner::record`]).
struct Told {
    metrics: Option<crate::metrics::Observation>,
    hook: Option<crate::hooks::Event>,
}

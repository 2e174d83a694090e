//! The kernel: start-up, and the operations `agentctl` drives over the agent table
//! (`agent::AgentTable`).

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use agentos_syscalls::control::{
    AgentInfo, AgentRef, AgentState, ApprovalInfo, ControlError, ControlErrorKind, KernelStatus,
    PolicySource, SpawnRequest,
};
use agentos_syscalls::{AgentId, Signal, ABI_VERSION};
use tokio::sync::watch;

use crate::agent::AgentTable;
use crate::approvals::{Approvals, Verdict};
use crate::config::Config;
use crate::error::KernelError;
use crate::recorder::{RecordEvent, Recorder};
use crate::spawner::Spawner;
use crate::state::KernelInner;
use crate::util::{control_error, lock, now_ms};

/// How many policies spawns keep parsed ([`agentos_policy::PolicyCache`]).
const POLICIES_KEPT: usize = 16;

/// A running kernel. Dropping it does not stop the agents; call [`Kernel::shutdown`].
#[derive(Debug, Clone)]
pub struct Kernel {
    pub(crate) inner: Arc<KernelInner>,
}

fn create_private_dir(path: &Path) -> Result<(), KernelError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |source| KernelError::StateDir {
        path: path.into(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)
}

fn take_lock(config: &Config) -> Result<std::fs::File, KernelError> {
    use std::io::{Read, Seek, Write};
    let path = config.lock_path();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| KernelError::Lock {
            path: path.clone(),
            source,
        })?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        return Err(KernelError::AlreadyRunning {
            path: config.state_dir.clone(),
            pid: pid.trim().to_string(),
        });
    }
    let io = |source| KernelError::Lock {
        path: path.clone(),
        source,
    };
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

impl Kernel {
    /// Starts a kernel on `config.state_dir`: takes the state dir's lock, opens the recorder,
    /// starts the spawner thread and listens on the control socket. Must run inside a tokio
    /// runtime.
    pub async fn start(config: Config) -> Result<Kernel, KernelError> {
        Kernel::start_with(config, crate::replay::run::Performer::Live).await
    }

    /// [`Kernel::start`], with agents' calls answered by `performer` (`agentctl replay run`
    /// answers them from a recording).
    pub async fn start_with(
        config: Config,
        performer: crate::replay::run::Performer,
    ) -> Result<Kernel, KernelError> {
        crate::sys::return_large_frees_to_the_host();
        if !config.launcher.is_file() {
            return Err(KernelError::LauncherMissing {
                path: config.launcher.clone(),
            });
        }
        create_private_dir(&config.state_dir)?;
        crate::providers::check_all(&config.providers, &config.state_dir)
            .map_err(KernelError::Provider)?;
        crate::mcp::check_all(&config.mcp, &config.state_dir).map_err(KernelError::Provider)?;
        create_private_dir(&config.agents_dir())?;
        // A fleet's agents make (and, pruned, free) a dir and files each: spread over the
        // filesystem, each agent's inodes are not searched for among the last fleet's.
        agentos_recorder::tlog::spread_subdirs(&config.agents_dir());
        let lock_file = take_lock(&config)?;
        if config.python_sdk.is_none() {
            let dir = config.python_sdk_dir();
            crate::pysdk::install(&dir)
                .map_err(|source| KernelError::PythonSdk { path: dir, source })?;
        }
        let node_dir = config.node_sdk_dir();
        crate::nodesdk::install(&node_dir).map_err(|source| KernelError::NodeSdk {
            path: node_dir,
            source,
        })?;
        let metrics = config
            .metrics_addr
            .map(|_| Arc::new(crate::metrics::Metrics::new(crate::server::action_of)));
        let mut recorder_options = config.recorder.clone();
        if let Some(m) = &metrics {
            let m = Arc::clone(m);
            recorder_options.on_fsync =
                Some(crate::recorder::FsyncObserver(Arc::new(move |took| {
                    m.fsynced(took)
                })));
        }
        // Verifies the existing log, recovers a torn tail and reports tampering itself.
        let (recorder, _report) = Recorder::open_with(&config.recorder_dir(), recorder_options)?;
        let memory = agentos_vfs::Store::open(&config.memory_path())?;
        // Unnamed agents' memory does not outlive them; a killed kernel may have left some.
        if let Err(e) = memory.remove_namespaces_with_prefix("agent:") {
            tracing::warn!(error = %e, "cannot clear unnamed agents' persistent memory");
        }
        let spawner = Spawner::start().map_err(KernelError::Spawner)?;
        let mut host_layers = crate::sandbox::probe_host(&config);
        let cgroups = crate::sandbox::setup_cgroups(&mut host_layers, &config.limits);
        let (shutdown, _) = watch::channel(false);
        let (io_threads, io_per_agent) = (config.io_threads, config.io_per_agent);
        // The hook records its failures into the kernel it belongs to, built just below.
        let kernel_cell: Arc<std::sync::OnceLock<std::sync::Weak<KernelInner>>> =
            Arc::new(std::sync::OnceLock::new());
        let hooks = config.hook.clone().map(|hook| {
            let cell = Arc::clone(&kernel_cell);
            crate::hooks::Hooks::start(
                hook,
                Box::new(move |agent, event: &str, why: String| {
                    if let Some(k) = cell.get().and_then(std::sync::Weak::upgrade) {
                        k.record(
                            agent,
                            RecordEvent::HookFailed {
                                event: event.into(),
                                why,
                            },
                        );
                    }
                }),
            )
        });
        let traces = match &config.traces {
            Some(t) => Some(crate::traces::Traces::start(t).map_err(KernelError::Traces)?),
            None => None,
        };
        let inner = Arc::new(KernelInner {
            next_id: AtomicU64::new(crate::history::first_free_id(&config.agents_dir())),
            config,
            recorder,
            agents: AgentTable::default(),
            spawner,
            started_ms: now_ms(),
            shutdown,
            host_layers,
            approvals: Approvals::default(),
            policies: agentos_policy::PolicyCache::new(POLICIES_KEPT),
            cgroups,
            memory,
            host_io: crate::hostio::HostIo::new(io_threads, io_per_agent),
            performer,
            metrics,
            hooks,
            traces,
            metrics_bound: std::sync::OnceLock::new(),
            _lock: lock_file,
        });
        let _ = kernel_cell.set(Arc::downgrade(&inner));
        inner.record(
            None,
            RecordEvent::KernelStart {
                pid: std::process::id(),
                uid: rustix::process::geteuid().as_raw(),
                version: env!("CARGO_PKG_VERSION").into(),
                state_dir: inner.config.state_dir.clone(),
            },
        );
        inner.record(
            None,
            RecordEvent::SandboxCapabilities {
                layers: inner.host_layers.clone(),
                allow_degraded: !inner.config.require_full_sandbox,
            },
        );
        if !inner.config.require_full_sandbox {
            tracing::warn!("--allow-degraded-sandbox: agents may run with missing sandbox layers");
        }
        {
            let weak = Arc::downgrade(&inner);
            crate::witnesses::start(
                inner.config.recorder_dir(),
                inner.config.witnesses.clone(),
                Box::new(move |event| match weak.upgrade() {
                    Some(k) => {
                        k.record(None, event);
                        true
                    }
                    None => false,
                }),
            );
        }
        crate::control::listen(&inner)?;
        if let Some(addr) = inner.config.metrics_addr {
            let bound = crate::exposition::listen(&inner, addr)
                .map_err(|source| KernelError::Metrics { addr, source })?;
            let _ = inner.metrics_bound.set(bound);
            tracing::info!(%bound, "metrics on http://{bound}/metrics, health on /healthz");
        }
        Ok(Kernel { inner })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Starts an agent.
    pub async fn spawn(&self, req: SpawnRequest) -> Result<AgentInfo, ControlError> {
        crate::spawn::spawn(&self.inner, req)
            .await
            .map(|a| a.info())
    }

    /// Starts an agent whose `/mem/working` is checkpoint `checkpoint` (the latest when
    /// `None`) of agent `from`.
    pub async fn spawn_restored(
        &self,
        req: SpawnRequest,
        from: AgentId,
        checkpoint: Option<u64>,
    ) -> Result<AgentInfo, ControlError> {
        crate::spawn::spawn_from(&self.inner, req, Some((from, checkpoint)))
            .await
            .map(|a| a.info())
    }

    /// Every agent, oldest first.
    pub fn ps(&self) -> Vec<AgentInfo> {
        self.inner.agents.list().iter().map(|a| a.info()).collect()
    }

    pub fn inspect(&self, r: &AgentRef) -> Result<AgentInfo, ControlError> {
        Ok(self.inner.find(r)?.info())
    }

    /// Waits until an agent has started (left `Starting`: its jail reported or it said
    /// hello; or it was stopped, or ended) and returns the state it is in then. Reads nothing
    /// but the agent's lifecycle (a row, [`Kernel::inspect`], reads its cgroup too).
    pub async fn wait_started(&self, r: &AgentRef) -> Result<AgentState, ControlError> {
        let agent = self.inner.find(r)?;
        Ok(agent.life().wait_started().await)
    }

    /// Waits for an agent's end and returns its final row.
    pub async fn wait(&self, r: &AgentRef) -> Result<AgentInfo, ControlError> {
        let agent = self.inner.find(r)?;
        agent.wait_exit().await;
        Ok(agent.info())
    }

    /// Sends a signal on behalf of `source` (an operator, or another agent).
    pub async fn signal(
        &self,
        r: &AgentRef,
        signal: Signal,
        source: &str,
    ) -> Result<AgentId, ControlError> {
        let agent = self.inner.find(r)?;
        crate::signals::deliver(&self.inner, &agent, signal, source, String::new()).await?;
        Ok(agent.id)
    }

    /// The agent's output so far and a live feed of the rest (ends when the agent does).
    pub fn follow_log(&self, r: &AgentRef) -> Result<crate::control::LogFollower, ControlError> {
        crate::control::LogFollower::new(&self.inner.find(r)?)
    }

    /// The first page of the calls parked for operator approval, oldest first.
    pub fn approvals(&self) -> Vec<ApprovalInfo> {
        self.inner.approvals.list()
    }

    /// One page of the calls parked for operator approval, shared fairly between agents.
    pub fn approvals_page(
        &self,
        q: &agentos_syscalls::control::ApprovalQuery,
    ) -> agentos_syscalls::control::ApprovalPage {
        self.inner.approvals.page(q)
    }

    /// Approves or denies parked call `id` on behalf of `by`; `NotFound` for an id that is
    /// unknown or already decided.
    pub fn decide(&self, id: u64, approved: bool, by: &str) -> Result<(), ControlError> {
        self.inner.approvals.decide(
            id,
            Verdict {
                approved,
                by: by.into(),
            },
        )
    }

    /// Replaces an agent's policy. The new file must load; if it does not, nothing changes
    /// and the error names its `file:line:col`. Calls already being judged finish under the
    /// policy they started with; every later call sees the new one. The sandbox (`sandbox:`)
    /// of a running agent cannot change: it was applied at spawn.
    pub fn reload_policy(
        &self,
        r: &AgentRef,
        source: &PolicySource,
        by: &str,
    ) -> Result<(AgentId, [u8; 32], [u8; 32]), ControlError> {
        let agent = self.inner.find(r)?;
        if agent.is_exited() {
            return Err(control_error(
                ControlErrorKind::Failed,
                format!(
                    "agent {} has already ended; its policy cannot change",
                    agent.id
                ),
                "list live agents with `agentctl ps`",
            ));
        }
        let new = agentos_policy::Policy::parse(&source.path, &source.text).map_err(|e| {
            control_error(
                ControlErrorKind::Failed,
                format!("policy does not load, reload refused (the agent keeps its policy):\n{e}"),
                "fix the policy file and reload again",
            )
        })?;
        let new_digest = new.digest();
        let path = new.path().to_string();
        // The limiter's lock serializes reloads of one agent. The reload is recorded before
        // the swap, so every call judged by the new policy is recorded after it.
        let mut limiter = lock(&agent.limiter);
        let old_digest = agent.policy().digest();
        if !self.inner.record(
            Some(agent.id),
            RecordEvent::PolicyReloaded {
                old_digest,
                new_digest,
                path: path.clone(),
            },
        ) {
            return Err(control_error(
                ControlErrorKind::Failed,
                "the flight recorder failed; the policy was not reloaded",
                "see the kernel's log",
            ));
        }
        agent.policy.swap(new);
        // Rule indices name other rules in the new file: its buckets start afresh.
        *limiter = agentos_policy::RateLimiter::new();
        drop(limiter);
        tracing::info!(agent_id = %agent.id, %by, %path, "policy reloaded");
        Ok((agent.id, old_digest, new_digest))
    }

    pub fn status(&self) -> KernelStatus {
        let (running, total) = self.inner.agents.counts();
        KernelStatus {
            pid: std::process::id(),
            uid: rustix::process::geteuid().as_raw(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi: ABI_VERSION,
            state_dir: self.inner.config.state_dir.clone(),
            recorder_dir: self.inner.config.recorder_dir(),
            started_ms: self.inner.started_ms,
            agents_running: running as u32,
            agents_total: total as u32,
            sandbox: self.inner.host_layers.clone(),
            log_path: log_file(),
            health: crate::exposition::health(&self.inner),
            metrics_url: self
                .inner
                .metrics_bound
                .get()
                .map(|a| format!("http://{a}/metrics")),
            otlp_endpoint: self
                .inner
                .config
                .traces
                .as_ref()
                .map(|t| t.endpoint.clone()),
        }
    }

    /// Forgets ended agents (`agentctl rm`): each one's row in the table and its dir under
    /// `STATE_DIR/agents/` (record, output log, checkpoints). Every name is resolved and
    /// checked first: one that is not found or has not ended refuses the whole request, and
    /// nothing is removed. Agents of an earlier kernel on this state dir (on disk only) are
    /// forgotten too. The flight recorder is never touched.
    pub fn forget(&self, refs: &[AgentRef]) -> Result<Vec<AgentId>, ControlError> {
        let agents_dir = self.inner.config.agents_dir();
        let mut ids = Vec::with_capacity(refs.len());
        for r in refs {
            let id = match self.inner.agents.find(r) {
                Ok(agent) if !agent.is_exited() => {
                    return Err(control_error(
                        ControlErrorKind::Failed,
                        format!(
                            "agent {}{} is {}: only ended agents can be forgotten",
                            agent.id,
                            agent.name.as_deref().map_or(String::new(), |n| format!(" ({n})")),
                            agent.current_state().as_str()
                        ),
                        format!(
                            "end it first (`agentctl stop`, `agentctl kill {}`, or wait for it), nothing was removed",
                            agent.id
                        ),
                    ))
                }
                Ok(agent) => agent.id,
                Err(e) => match crate::history::find(&agents_dir, r) {
                    Some(rec) => AgentId(rec.id),
                    None => return Err(e),
                },
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.sort();
        self.forget_ids(&ids)
    }

    /// Forgets every ended agent, or only those that ended more than `older_than_ms` ago
    /// (`agentctl prune`); agents of an earlier kernel count as ended when their record says
    /// so, or when it started before this kernel (it died with its kernel).
    pub fn prune(&self, older_than_ms: Option<u64>) -> Result<Vec<AgentId>, ControlError> {
        let now = now_ms();
        let cutoff = now.saturating_sub(older_than_ms.unwrap_or(0));
        let agents_dir = self.inner.config.agents_dir();
        let mut ids: Vec<AgentId> = Vec::new();
        for rec in crate::history::read_all(&agents_dir) {
            let id = AgentId(rec.id);
            let ended = match self.inner.agents.get(id) {
                Some(agent) if !agent.is_exited() => continue,
                Some(_) => rec.ended_ms.unwrap_or(now),
                None => rec.ended_ms.unwrap_or(rec.started_ms),
            };
            if older_than_ms.is_none() || ended <= cutoff {
                ids.push(id);
            }
        }
        self.forget_ids(&ids)
    }

    fn forget_ids(&self, ids: &[AgentId]) -> Result<Vec<AgentId>, ControlError> {
        let agents_dir = self.inner.config.agents_dir();
        let mut done = Vec::with_capacity(ids.len());
        for &id in ids {
            if !self.inner.agents.remove_ended(id) {
                continue;
            }
            if let Err(e) = crate::hostio::off_worker(|| crate::history::forget(&agents_dir, id)) {
                return Err(control_error(
                    ControlErrorKind::Failed,
                    format!(
                        "cannot remove {} : {e}{}",
                        crate::history::agent_dir(&agents_dir, id).display(),
                        if done.is_empty() {
                            String::new()
                        } else {
                            format!(" (forgot {} before it)", done.len())
                        }
                    ),
                    "check the state dir's permissions",
                ));
            }
            tracing::info!(agent_id = %id, "agent forgotten");
            done.push(id);
        }
        Ok(done)
    }

    /// Resolves once someone asked the kernel to shut down (control `Shutdown`).
    pub async fn shutdown_requested(&self) {
        let mut rx = self.inner.shutdown.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Graceful shutdown: SIGTERM to every live agent, SIGKILL to whatever is left after the
    /// grace period, then the last record and the control socket removed.
    ///
    /// One grace period for all agents, counted from the SIGTERMs: an agent that ignores
    /// SIGTERM costs the grace period once, not once per agent. An agent whose policy does not
    /// list SIGTERM is refused it (recorded) and SIGKILLed when the grace period ends; one
    /// that got SIGTERM is SIGKILLed by its own timer at the grace period
    /// ([`crate::signals::deliver`]), the kernel's SIGKILL here (2 s later) only backs it up.
    /// The control socket keeps answering meanwhile, so `agentctl kernel stop` can show
    /// progress with `Ps`.
    pub async fn shutdown(&self, reason: &str) {
        let _ = self.inner.shutdown.send(true);
        // The init waiting for the next agent will serve none: killed and reaped now.
        self.inner.spawner.release().await;
        let live = self.inner.agents.live();
        let grace = self.inner.config.term_grace;
        let start = tokio::time::Instant::now();
        // One walk of the process table finds every agent's program (for its SIGTERM), not
        // one walk per agent; then every agent is told at once: a SIGTERM waits (briefly)
        // for its event to reach the agent, and those waits overlap instead of adding up.
        let agents = live.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::signals::learn_processes(&crate::signals::LinuxProcs, &agents)
        })
        .await;
        let mut told = tokio::task::JoinSet::new();
        for (i, agent) in live.iter().enumerate() {
            let (k, agent) = (Arc::clone(&self.inner), Arc::clone(agent));
            told.spawn(async move {
                let sent = crate::signals::deliver(
                    &k,
                    &agent,
                    Signal::Term,
                    "kernel",
                    "kernel shutdown".into(),
                )
                .await
                .is_ok();
                (i, sent)
            });
        }
        let mut deadlines = vec![start + grace; live.len()];
        while let Some(done) = told.join_next().await {
            if let Ok((i, true)) = done {
                deadlines[i] = start + grace + Duration::from_secs(2);
            }
        }
        let mut killed = Vec::new();
        for (agent, deadline) in live.iter().zip(deadlines) {
            if tokio::time::timeout_at(deadline, agent.wait_exit())
                .await
                .is_err()
            {
                let _ = crate::signals::deliver(
                    &self.inner,
                    agent,
                    Signal::Kill,
                    "kernel",
                    format!(
                        "kernel shutdown: did not exit within the {} ms grace period",
                        grace.as_millis()
                    ),
                )
                .await;
                killed.push(agent);
            }
        }
        let reaped = tokio::time::Instant::now() + Duration::from_secs(5);
        for agent in killed {
            let _ = tokio::time::timeout_at(reaped, agent.wait_exit()).await;
        }
        if let Ok(host) = &self.inner.cgroups {
            if let Err(e) = host.remove_parents(std::process::id()) {
                tracing::warn!(error = %e, "cannot remove the kernel's cgroups");
            }
        }
        self.inner.record(
            None,
            RecordEvent::KernelStop {
                reason: reason.into(),
            },
        );
        // The shutdown checkpoint: the log is sealed and HEAD names its end.
        let sealed = self.inner.recorder.close();
        if let Err(e) = sealed {
            tracing::error!(error = %e, "flight recorder: the shutdown checkpoint failed");
        }
        let _ = std::fs::remove_file(self.inner.config.socket_path());
        if self.inner.traces.is_some() {
            // The last spans (the agents' lives just ended) go out, or are given up.
            let inner = Arc::clone(&self.inner);
            let flushed = tokio::task::spawn_blocking(move || {
                if let Some(t) = &inner.traces {
                    t.shutdown(Duration::from_secs(2));
                }
            });
            let _ = tokio::time::timeout(Duration::from_secs(3), flushed).await;
        }
    }

    /// The recorder directory.
    pub fn recorder_dir(&self) -> &Path {
        self.inner.recorder.dir()
    }
}

/// What the control socket drives (`crate::control::dispatch`): the operations above.
/// The file this process logs to: its stderr when that is a regular file (`kernel.log` of a
/// kernel started by `agentctl kernel start`), read from `/proc/self/fd/2`.
fn log_file() -> Option<std::path::PathBuf> {
    let path = std::fs::read_link("/proc/self/fd/2").ok()?;
    std::fs::metadata(&path)
        .ok()
        .filter(|m| m.is_file())
        .map(|_| path)
}

impl crate::control::Operations for Kernel {
    type Log = crate::control::LogFollower;

    fn status(&self) -> KernelStatus {
        Kernel::status(self)
    }

    async fn spawn(&self, req: SpawnRequest) -> Result<AgentInfo, ControlError> {
        Kernel::spawn(self, req).await
    }

    async fn spawn_restored(
        &self,
        req: SpawnRequest,
        from: AgentId,
        checkpoint: Option<u64>,
    ) -> Result<AgentInfo, ControlError> {
        Kernel::spawn_restored(self, req, from, checkpoint).await
    }

    fn ps(&self) -> Vec<AgentInfo> {
        Kernel::ps(self)
    }

    fn inspect(&self, r: &AgentRef) -> Result<AgentInfo, ControlError> {
        Kernel::inspect(self, r)
    }

    async fn wait(&self, r: &AgentRef) -> Result<AgentInfo, ControlError> {
        Kernel::wait(self, r).await
    }

    async fn signal(
        &self,
        r: &AgentRef,
        signal: Signal,
        source: &str,
    ) -> Result<AgentId, ControlError> {
        Kernel::signal(self, r, signal, source).await
    }

    fn follow_log(&self, r: &AgentRef) -> Result<Self::Log, ControlError> {
        Kernel::follow_log(self, r)
    }

    fn approvals(&self) -> Vec<ApprovalInfo> {
        Kernel::approvals(self)
    }

    fn approvals_page(
        &self,
        q: &agentos_syscalls::control::ApprovalQuery,
    ) -> agentos_syscalls::control::ApprovalPage {
        Kernel::approvals_page(self, q)
    }

    fn decide(&self, id: u64, approved: bool, by: &str) -> Result<(), ControlError> {
        Kernel::decide(self, id, approved, by)
    }

    fn reload_policy(
        &self,
        r: &AgentRef,
        source: &PolicySource,
        by: &str,
    ) -> Result<(AgentId, [u8; 32], [u8; 32]), ControlError> {
        Kernel::reload_policy(self, r, source, by)
    }

    fn forget(&self, refs: &[AgentRef]) -> Result<Vec<AgentId>, ControlError> {
        Kernel::forget(self, refs)
    }

    fn prune(&self, older_than_ms: Option<u64>) -> Result<Vec<AgentId>, ControlError> {
        Kernel::prune(self, older_than_ms)
    }

    fn request_shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }
}

//! Starting agents.
//!
//! All forking happens on one dedicated thread (the spawner). The launcher's parent-death
//! signal fires when the *thread* that forked it ends, so that thread must live as long as
//! the kernel — a tokio worker or blocking-pool thread would not do.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use agentos_policy::{Policy, RateLimiter};
use agentos_syscalls::control::{
    AgentCounters, AgentState, ControlError, ControlErrorKind, ExitStatus, SpawnRequest,
};
use agentos_syscalls::{AgentId, LayerStatus, AGENT_FD};
use agentos_userspace::launch::{
    CgroupSpec, ResourceLimits, AGENT_FD_ON_STDIN_ENV, EXIT_SANDBOX_FAILED, SPEC_ENV,
};
use agentos_vfs::MemFs;
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::agent::{lock, Agent, LogSink};
use crate::jail_spec::{self, JailBase, Occupant, Role};
use crate::kernel::{control_error, now_ms, KernelInner};
use crate::policy::PolicySlot;
use crate::recorder::RecordEvent;

struct Job {
    launcher: PathBuf,
    spec_json: String,
    agent_fd: OwnedFd,
    /// A tool's stdin is a pipe from the kernel; an agent's is `/dev/null`.
    stdin_piped: bool,
    reply: oneshot::Sender<io::Result<tokio::process::Child>>,
}

/// The handle to the spawner thread.
#[derive(Debug)]
pub(crate) struct Spawner {
    tx: Mutex<std::sync::mpsc::Sender<Job>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("launcher", &self.launcher)
            .finish()
    }
}

impl Spawner {
    /// Starts the spawner thread; it enters the current tokio runtime so the children it
    /// starts are reaped by it.
    pub fn start() -> io::Result<Spawner> {
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("agentos-spawner".into())
            .spawn(move || {
                let _guard = handle.enter();
                for job in rx {
                    let mut cmd = tokio::process::Command::new(&job.launcher);
                    cmd.env_clear()
                        .env(SPEC_ENV, &job.spec_json)
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .kill_on_drop(false);
                    if job.stdin_piped {
                        // A tool: stdin is its pipe, so the socket needs the pre-exec hook
                        // (which makes std fork the whole kernel rather than vfork).
                        cmd.stdin(Stdio::piped());
                        crate::sys::map_fd_at_exec(&mut cmd, job.agent_fd.as_raw_fd(), AGENT_FD);
                        let child = cmd.spawn();
                        drop(job.agent_fd);
                        let _ = job.reply.send(child);
                    } else {
                        // An agent: the socket goes in as stdin and the launcher moves it to
                        // fd 3 first thing; no hook, so std starts the launcher with
                        // posix_spawn (vfork + exec) instead of copying the kernel's memory.
                        cmd.env(AGENT_FD_ON_STDIN_ENV, "1")
                            .stdin(Stdio::from(job.agent_fd));
                        let child = cmd.spawn();
                        drop(cmd);
                        let _ = job.reply.send(child);
                    }
                }
            })?;
        Ok(Spawner { tx: Mutex::new(tx) })
    }

    async fn launch(
        &self,
        launcher: &Path,
        spec_json: String,
        agent_fd: OwnedFd,
    ) -> io::Result<tokio::process::Child> {
        self.launch_with(launcher, spec_json, agent_fd, false).await
    }

    /// Starts the launcher with `agent_fd` at fd 3, stdout and stderr piped, and stdin piped
    /// (`stdin_piped`: a tool) or `/dev/null` (an agent; the socket is handed over as fd 0 and
    /// the launcher puts it at fd 3, see [`AGENT_FD_ON_STDIN_ENV`]).
    pub(crate) async fn launch_with(
        &self,
        launcher: &Path,
        spec_json: String,
        agent_fd: OwnedFd,
        stdin_piped: bool,
    ) -> io::Result<tokio::process::Child> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            launcher: launcher.into(),
            spec_json,
            agent_fd,
            stdin_piped,
            reply,
        };
        lock(&self.tx)
            .send(job)
            .map_err(|_| io::Error::other("spawner thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("spawner thread dropped the job"))?
    }
}

fn failed(message: impl Into<String>, hint: impl Into<String>) -> ControlError {
    control_error(ControlErrorKind::Failed, message, hint)
}

fn usage(message: impl Into<String>, hint: impl Into<String>) -> ControlError {
    control_error(ControlErrorKind::Usage, message, hint)
}

pub(crate) fn private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

fn check_env(env: &[(String, String)]) -> Result<(), ControlError> {
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(usage(
                format!("environment variable `{k}` is malformed"),
                "pass variables as NAME=VALUE",
            ));
        }
        if k.starts_with("AGENTOS_") {
            return Err(usage(
                format!("environment variable `{k}` is reserved for the kernel"),
                "choose another name",
            ));
        }
    }
    Ok(())
}

/// Checks the extra read-only paths of a spawn request: absolute, existing, and not inside
/// the kernel's state dir (which holds other agents' scratch dirs and the recorder). Returns
/// them canonical.
fn check_extra_read_only(
    state_dir: &Path,
    paths: &[PathBuf],
) -> Result<Vec<PathBuf>, ControlError> {
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        if !p.is_absolute() {
            return Err(usage(
                format!("read-only path {} is not absolute", p.display()),
                "give absolute paths",
            ));
        }
        let real = std::fs::canonicalize(p).map_err(|e| {
            usage(
                format!("read-only path {} is not usable: {e}", p.display()),
                "give an existing file or directory",
            )
        })?;
        if real.starts_with(&state) || state.starts_with(&real) {
            return Err(usage(
                format!(
                    "read-only path {} overlaps the kernel's state dir {}",
                    real.display(),
                    state.display()
                ),
                "keep agent files outside the state dir",
            ));
        }
        out.push(real);
    }
    Ok(out)
}

/// The `--workspace` dir: absolute, an existing directory, and apart from the state dir.
fn check_workspace(state_dir: &Path, ws: &Path) -> Result<PathBuf, ControlError> {
    let real = check_extra_read_only(state_dir, std::slice::from_ref(&ws.to_path_buf()))?
        .pop()
        .unwrap_or_else(|| ws.to_path_buf());
    if !real.is_dir() {
        return Err(usage(
            format!("workspace {} is not a directory", real.display()),
            "give the directory the agent should see as /workspace",
        ));
    }
    Ok(real)
}

pub(crate) fn limits(base: ResourceLimits, policy: &Policy) -> ResourceLimits {
    let l = &policy.sandbox().limits;
    ResourceLimits {
        address_space: l.address_space.unwrap_or(base.address_space),
        processes: l.processes.unwrap_or(base.processes),
        open_files: l.open_files.unwrap_or(base.open_files),
        cpu_seconds: l.cpu_seconds.unwrap_or(base.cpu_seconds),
        file_size: l.file_size.unwrap_or(base.file_size),
        memory: l.memory.unwrap_or(base.memory),
        scratch_bytes: l.scratch.unwrap_or(base.scratch_bytes),
    }
}

/// The agent's VFS tree: its persistent namespace (and what it already holds, for the
/// quota), its workspace root descriptor, and its working memory when restored from a
/// checkpoint.
#[allow(clippy::type_complexity)]
fn agent_tree(
    k: &KernelInner,
    id: AgentId,
    name: Option<&str>,
    workspace: Option<&Path>,
    restore: Option<(AgentId, Option<u64>)>,
    dir: &Path,
) -> Result<(Option<MemFs>, crate::tree::AgentTree, Option<RecordEvent>), ControlError> {
    let (ns, ephemeral) = crate::tree::namespace_of(name, id);
    let (mut bytes, mut files) = k.memory.usage(&ns).map_err(|e| {
        failed(
            format!("cannot read the persistent memory of agent {id}: {e}"),
            "check STATE_DIR/memory.redb",
        )
    })?;
    let root = match workspace {
        Some(ws) => Some(crate::sys::open_workspace_root(ws).map_err(|e| {
            usage(
                format!("cannot open the workspace {}: {e}", ws.display()),
                "give an existing directory the kernel can open",
            )
        })?),
        None => None,
    };
    let (max_bytes, max_files) = k.config.working_quota;
    let mut restored = None;
    let working = match restore {
        Some((from, number)) => {
            let cp = crate::tree::find_checkpoint(k, from, number).map_err(|e| {
                control_error(
                    ControlErrorKind::NotFound,
                    format!("cannot restore from agent {from}: {e}"),
                    "list its checkpoints under STATE_DIR/agents/<id>/checkpoints/, or take one with `agentctl signal ID SIGUSR1`",
                )
            })?;
            let number = cp.number;
            let fs = MemFs::restore(cp.files, max_bytes, max_files).map_err(|e| {
                failed(
                    format!(
                        "checkpoint {number} of agent {from} does not fit the agent quota: {e}"
                    ),
                    "start the kernel with a larger --quota-bytes/--quota-files",
                )
            })?;
            let (b, f) = fs.usage();
            bytes += b;
            files += f;
            restored = Some(RecordEvent::MemoryRestored {
                from,
                number,
                files: f,
                bytes: b,
            });
            Some(fs)
        }
        None => None,
    };
    let tree = crate::tree::AgentTree::new(
        ns,
        ephemeral,
        root,
        (bytes, files),
        k.config.working_quota,
        dir.join("checkpoints"),
    );
    Ok((working, tree, restored))
}

/// Starts one agent: policy, dirs, jail spec, launcher, then the tasks that serve it.
pub(crate) async fn spawn(
    k: &Arc<KernelInner>,
    req: SpawnRequest,
) -> Result<Arc<Agent>, ControlError> {
    spawn_from(k, req, None).await
}

/// [`spawn`], with working memory restored from checkpoint `N` (the latest when `None`) of
/// agent `ID` when `restore` is `Some((ID, N))`.
pub(crate) async fn spawn_from(
    k: &Arc<KernelInner>,
    req: SpawnRequest,
    restore: Option<(AgentId, Option<u64>)>,
) -> Result<Arc<Agent>, ControlError> {
    if *k.shutdown.borrow() {
        return Err(failed(
            "the kernel is shutting down",
            "start a new kernel with `agentctl kernel start`",
        ));
    }
    if let Err(e) = k.admit() {
        return Err(failed(
            format!("spawn refused: {e}"),
            "free space on the disk under the state dir (or lower --min-free-bytes), then spawn again",
        ));
    }
    let program_text = req.program.display().to_string();
    let refuse = |reason: String| {
        k.record(
            None,
            RecordEvent::SpawnRefused {
                program: program_text.clone(),
                reason,
            },
        );
    };
    let policy = match Policy::parse(&req.policy.path, &req.policy.text) {
        Ok(p) => p,
        Err(e) => {
            refuse(e.to_string());
            return Err(failed(
                format!("policy does not load, spawn refused:\n{e}"),
                "fix the policy file and spawn again",
            ));
        }
    };
    if k.config.require_full_sandbox {
        if let Some((layer, detail)) = crate::sandbox::missing_required(&k.host_layers) {
            refuse(format!("sandbox layer {layer} is missing: {detail}"));
            return Err(failed(
                format!(
                    "spawn refused: the sandbox layer `{layer}` is missing on this host ({detail})"
                ),
                "fix the host, or start the kernel with --allow-degraded-sandbox (recorded)",
            ));
        }
    }
    if !req.program.is_absolute() {
        return Err(usage(
            format!("program `{program_text}` is not an absolute path"),
            "agentctl resolves programs; pass a full path",
        ));
    }
    if !req.program.is_file() {
        refuse("program not found".into());
        return Err(control_error(
            ControlErrorKind::NotFound,
            format!("program {program_text} does not exist or is not a file"),
            "check the path, or build the agent first",
        ));
    }
    let workspace = match &req.workspace {
        Some(ws) => Some(check_workspace(&k.config.state_dir, ws)?),
        None => None,
    };
    check_env(&req.env)?;
    let extra_read_only = check_extra_read_only(&k.config.state_dir, &req.extra_read_only)?;

    let id = AgentId(k.next_id.fetch_add(1, Ordering::Relaxed));
    let dir = k.config.agents_dir().join(id.to_string());
    let (working, tree, restored) = agent_tree(
        k,
        id,
        req.name.as_deref(),
        workspace.as_deref(),
        restore,
        &dir,
    )?;
    let scratch = dir.join("scratch");
    let io_fail = |what: &str, e: io::Error| {
        failed(
            format!("cannot create {what} for agent {id}: {e}"),
            "check the state dir's disk and permissions",
        )
    };
    private_dir(&dir).map_err(|e| io_fail("its dir", e))?;
    private_dir(&scratch).map_err(|e| io_fail("its scratch dir", e))?;
    let log = LogSink::create(dir.join("output.log"), k.config.disk.log_bytes)
        .map_err(|e| io_fail("its log", e))?;

    let argv0 = req
        .program
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| program_text.clone());
    let limits = limits(k.config.limits, &policy);
    let (group, cgroup) = match &k.cgroups {
        Ok(host) => {
            let cpu_millis = policy.sandbox().limits.cpu_millis.unwrap_or(1000);
            match host.create_agent(
                std::process::id(),
                id.0,
                limits.processes,
                limits.memory,
                cpu_millis,
            ) {
                Ok((group, detail)) => {
                    let spec = CgroupSpec {
                        procs: group.join_files(),
                        detail,
                        required: k.config.require_full_sandbox,
                    };
                    (Some(group), spec)
                }
                Err(e) => {
                    tracing::warn!(agent_id = %id, error = %e, "cannot create the agent's cgroup");
                    let spec = CgroupSpec {
                        procs: Vec::new(),
                        detail: format!("cannot create the agent's cgroup: {e}"),
                        required: false,
                    };
                    (None, spec)
                }
            }
        }
        Err(why) => (
            None,
            CgroupSpec {
                procs: Vec::new(),
                detail: format!("rlimits only: {why}"),
                required: false,
            },
        ),
    };
    let spec = jail_spec::build(
        &JailBase::of(&k.config),
        policy.sandbox(),
        Occupant {
            agent_id: id,
            program: req.program.clone(),
            argv: std::iter::once(argv0)
                .chain(req.args.iter().cloned())
                .collect(),
            scratch: scratch.clone(),
            read_only: extra_read_only.clone(),
            env: req.env.clone(),
            limits,
            cgroup,
            role: Role::Agent,
        },
    );
    let spec_json = serde_json::to_string(&spec)
        .map_err(|e| failed(format!("jail spec does not encode: {e}"), "report this bug"))?;

    let (kernel_end, agent_end) = std::os::unix::net::UnixStream::pair().map_err(|e| {
        failed(
            format!("cannot create the agent socket: {e}"),
            "check the kernel's open-file limit",
        )
    })?;
    let spawned_at = Instant::now();
    let launched = k
        .spawner
        .launch(&k.config.launcher, spec_json, agent_end.into())
        .await;
    if launched.is_err() {
        if let Some(g) = &group {
            crate::sandbox::remove_agent_group(id, g).await;
        }
    }
    let mut child = launched.map_err(|e| {
        refuse(format!("launcher failed to start: {e}"));
        failed(
            format!(
                "cannot start the launcher {}: {e}",
                k.config.launcher.display()
            ),
            "check that agentos-launch is installed beside agentos-kernel",
        )
    })?;
    let pid = child.id().unwrap_or(0);
    let (working_bytes, working_files) = k.config.working_quota;
    let working = working.unwrap_or_else(|| MemFs::new(working_bytes, working_files));
    let agent = Arc::new(Agent {
        id,
        name: req.name.clone(),
        program: program_text.clone(),
        args: req.args.clone(),
        policy: PolicySlot::new(policy.clone()),
        started_ms: now_ms(),
        spawned_at,
        scratch,
        log,
        state: watch::channel(AgentState::Starting).0,
        exit: watch::channel(None).0,
        pid: AtomicU32::new(pid),
        counters: Mutex::new(AgentCounters::default()),
        first_syscall_us: OnceLock::new(),
        kill_reason: Mutex::new(None),
        outbox: Mutex::new(None),
        working: Mutex::new(working),
        tree,
        jail: Mutex::new(None),
        limiter: Mutex::new(RateLimiter::new()),
        base_limiter: Mutex::new(RateLimiter::new()),
        launcher_error: Mutex::new(None),
        cgroup: group,
        limits,
        watchers: Mutex::new(Vec::new()),
        workspace,
        inbox: crate::ipc::Inbox::new(k.config.inbox),
        tools: Arc::new(tokio::sync::Semaphore::new(crate::tools::MAX_TOOLS)),
    });
    lock(&k.agents).insert(id, Arc::clone(&agent));
    k.record(
        Some(id),
        RecordEvent::Spawn {
            name: req.name,
            program: program_text,
            args: req.args,
            policy_path: policy.path().to_string(),
            policy_digest: policy.digest(),
            launcher_pid: pid,
        },
    );
    if let Some(event) = restored {
        k.record(Some(id), event);
    }
    if !extra_read_only.is_empty() {
        k.record(
            Some(id),
            RecordEvent::ReadOnlyGranted {
                paths: extra_read_only,
            },
        );
    }
    tracing::info!(
        agent_id = %id,
        pid,
        workspace = %agent.workspace.as_deref().map_or(String::new(), |w| w.display().to_string()),
        "agent spawned"
    );

    let mut outputs = Vec::new();
    if let Some(out) = child.stdout.take() {
        outputs.push(tokio::spawn(capture(Arc::clone(&agent), out, false)));
    }
    if let Some(err) = child.stderr.take() {
        outputs.push(tokio::spawn(capture(Arc::clone(&agent), err, true)));
    }
    kernel_end
        .set_nonblocking(true)
        .map_err(|e| failed(format!("agent socket: {e}"), "report this bug"))?;
    match tokio::net::UnixStream::from_std(kernel_end) {
        Ok(stream) => {
            tokio::spawn(crate::server::serve(
                Arc::clone(k),
                Arc::clone(&agent),
                stream,
            ));
        }
        Err(e) => {
            tracing::error!(agent_id = %id, error = %e, "cannot serve the agent socket; the agent will see it closed")
        }
    }
    tokio::spawn(reap(Arc::clone(k), Arc::clone(&agent), child, outputs));
    Ok(agent)
}

/// Copies one of the agent's output pipes into its log.
async fn capture(agent: Arc<Agent>, mut pipe: impl tokio::io::AsyncRead + Unpin, stderr: bool) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                if stderr {
                    let text = String::from_utf8_lossy(chunk);
                    if let Some(line) = text
                        .lines()
                        .rev()
                        .find(|l| l.starts_with("agentos-launch:"))
                    {
                        *lock(&agent.launcher_error) = Some(line.to_string());
                    }
                }
                // A file write (page cache, but a host under writeback pressure can stall
                // it): off the runtime worker.
                crate::hostio::off_worker(|| agent.log.append(chunk));
            }
        }
    }
}

/// Waits for the launcher to exit (which happens only once the whole tree is gone), then
/// records how the agent ended.
async fn reap(
    k: Arc<KernelInner>,
    agent: Arc<Agent>,
    mut child: tokio::process::Child,
    outputs: Vec<JoinHandle<()>>,
) {
    let status = child.wait().await;
    for h in outputs {
        let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
    }
    // All output is in: the log is rewritten in order (head, cut marker, tail) once.
    crate::hostio::off_worker(|| agent.log.finish());
    // The watchers end once the listener reports no process left under the filter, which the
    // launcher's exit implies; the timeout only guards against a host that never says so.
    let watchers = std::mem::take(&mut *lock(&agent.watchers));
    for h in watchers {
        let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
    }
    let exit = classify(&agent, status, k.config.require_full_sandbox);
    let mut hits: Vec<_> = crate::sandbox_limits::exit_hit(&exit, &agent.limits)
        .into_iter()
        .collect();
    if let Some(group) = &agent.cgroup {
        hits.extend(crate::sandbox_limits::cgroup_hits(group, &agent.limits));
        crate::sandbox::remove_agent_group(agent.id, group).await;
    }
    for hit in hits {
        tracing::info!(agent_id = %agent.id, resource = hit.resource, detail = %hit.detail, "the agent met a limit");
        k.record(Some(agent.id), hit.event());
    }
    crate::tree::agent_ended(&k, &agent);
    k.record(
        Some(agent.id),
        RecordEvent::Exit {
            status: exit.clone(),
        },
    );
    k.recorder.forget(agent.id);
    tracing::info!(agent_id = %agent.id, status = %exit, "agent ended");
    *lock(&agent.outbox) = None;
    agent.state.send_replace(AgentState::Exited);
    agent.exit.send_replace(Some(exit));
    let undelivered = agent.inbox.close();
    if undelivered > 0 {
        tracing::warn!(agent_id = %agent.id, undelivered, "agent ended with messages still in its inbox");
    }
    // As large a tree as the agent made: removed off the runtime worker.
    if let Err(e) = crate::hostio::off_worker(|| std::fs::remove_dir_all(&agent.scratch)) {
        tracing::warn!(agent_id = %agent.id, error = %e, "cannot remove scratch dir");
    }
}

fn classify(
    agent: &Agent,
    status: io::Result<std::process::ExitStatus>,
    require_full: bool,
) -> ExitStatus {
    if let Some((signal, reason)) = lock(&agent.kill_reason).clone() {
        return ExitStatus::Killed { signal, reason };
    }
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return ExitStatus::SandboxFailed {
                reason: format!("cannot wait for the launcher: {e}"),
            }
        }
    };
    if let Some(code) = status.code() {
        if code == EXIT_SANDBOX_FAILED {
            let report = lock(&agent.jail).clone();
            let missing = report.as_ref().and_then(|r| {
                r.layers.iter().find_map(|l| match &l.status {
                    LayerStatus::Missing { detail } => Some(format!("{}: {detail}", l.name)),
                    _ => None,
                })
            });
            let jail_failed = report.is_none() || (require_full && missing.is_some());
            if jail_failed {
                let reason = lock(&agent.launcher_error)
                    .clone()
                    .or(missing)
                    .unwrap_or_else(|| "the launcher exited before the agent ran".into());
                return ExitStatus::SandboxFailed { reason };
            }
        }
        if (129..=128 + 64).contains(&code) {
            return ExitStatus::PosixSignal(code - 128);
        }
        return ExitStatus::Code(code);
    }
    ExitStatus::PosixSignal(status.signal().unwrap_or(0))
}

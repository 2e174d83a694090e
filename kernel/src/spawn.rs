//! Starting agents.
//!
//! The flow, in [`spawn_from`]: [`prepare`] checks the request and makes a [`SpawnPlan`]
//! (nothing created; unit-tested without a process) → the agent's dirs, VFS tree, log and
//! jail spec ([`jail_spec`]) → [`launch`] (the spawner starts the launcher) → [`register`]
//! (the agent enters the [`AgentTable`] only once the launcher runs and everything that can
//! still fail has succeeded) → [`start`] (the spawn record, the serving tasks and the reaper;
//! cannot fail).
//!
//! Never: an agent in the table without a reaper; a launcher left running or unreaped by a
//! spawn that failed after the launch (it is killed and waited for, and the agent's lifecycle
//! ends `SandboxFailed`); an agent's cgroup left behind by a spawn that failed.
//!
//! All forking happens on one dedicated thread (the spawner). The launcher's parent-death
//! signal fires when the *thread* that forked it ends, so that thread must live as long as
//! the kernel — a tokio worker or blocking-pool thread would not do.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentos_policy::Policy;
use agentos_syscalls::control::{ControlError, ControlErrorKind, ExitStatus, SpawnRequest};
use agentos_syscalls::{AgentId, Layer, LayerStatus};
use agentos_userspace::launch::cgroup::AgentGroup;
use agentos_userspace::launch::{CgroupSpec, JailSpec, EXIT_SANDBOX_FAILED};
use agentos_vfs::MemFs;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use crate::agent::{lock, Agent, AgentTable, LogSink, NewAgent};
use crate::jail_spec::{self, JailBase, Occupant, Role};
use crate::recorder::RecordEvent;
use crate::spawner::AgentProcess;
use crate::state::KernelInner;
use crate::util::control_error;

fn failed(message: impl Into<String>, hint: impl Into<String>) -> ControlError {
    control_error(ControlErrorKind::Failed, message, hint)
}

fn usage(message: impl Into<String>, hint: impl Into<String>) -> ControlError {
    control_error(ControlErrorKind::Usage, message, hint)
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
            let cp = crate::tree::find_checkpoint(&k.config.agents_dir(), from, number).map_err(|e| {
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

/// What [`prepare`] checks a request against: the kernel's configuration and host, not its
/// state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules<'a> {
    pub state_dir: &'a Path,
    pub require_full_sandbox: bool,
    /// The layers this host offers (see [`KernelInner::host_layers`]).
    pub host_layers: &'a [Layer],
    /// Where the request's policy is parsed (or found parsed).
    pub policies: &'a agentos_policy::PolicyCache,
}

/// A spawn request that passed every check of [`prepare`]. Nothing exists for it yet: no id,
/// no directory, no process.
#[derive(Debug)]
pub(crate) struct SpawnPlan {
    pub req: SpawnRequest,
    pub policy: Policy,
    /// `--workspace`, canonical.
    pub workspace: Option<PathBuf>,
    /// The extra read-only paths, canonical.
    pub extra_read_only: Vec<PathBuf>,
}

/// Why [`prepare`] (or the launch) refused a spawn: the operator's error, and the reason the
/// flight recorder keeps (`SpawnRefused`) for the refusals it records.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub error: ControlError,
    pub recorded: Option<String>,
}

impl Refusal {
    fn quiet(error: ControlError) -> Self {
        Self {
            error,
            recorded: None,
        }
    }

    fn recorded(reason: impl Into<String>, error: ControlError) -> Self {
        Self {
            error,
            recorded: Some(reason.into()),
        }
    }
}

/// The machine an ELF program must be built for to run here (`e_machine`).
#[cfg(target_arch = "x86_64")]
const ELF_MACHINE: Option<(u16, &str)> = Some((62, "x86-64"));
#[cfg(target_arch = "aarch64")]
const ELF_MACHINE: Option<(u16, &str)> = Some((183, "aarch64"));
#[cfg(target_arch = "riscv64")]
const ELF_MACHINE: Option<(u16, &str)> = Some((243, "riscv64"));
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
const ELF_MACHINE: Option<(u16, &str)> = None;

/// What the first bytes of a program say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProgramFormat {
    /// An ELF executable for this machine.
    Elf,
    /// A `#!` script (its interpreter is found by the host's `execve`).
    Script,
    /// An ELF for another machine or word size: what it is.
    ForeignElf(String),
    /// Neither: not something `execve` runs.
    Unknown,
}

/// Reads what `head` (a program's first bytes, at least 20 when the file has them) says it is.
pub(crate) fn program_format(head: &[u8]) -> ProgramFormat {
    if head.starts_with(b"#!") {
        return ProgramFormat::Script;
    }
    if !head.starts_with(b"\x7fELF") {
        return ProgramFormat::Unknown;
    }
    let (Some(&class), Some(&data)) = (head.get(4), head.get(5)) else {
        return ProgramFormat::Unknown;
    };
    let bits = match class {
        1 => 32,
        2 => 64,
        _ => return ProgramFormat::ForeignElf(format!("an ELF of class {class}")),
    };
    let machine = match (data, head.get(18..20)) {
        (1, Some(m)) => u16::from_le_bytes([m[0], m[1]]),
        (2, Some(m)) => u16::from_be_bytes([m[0], m[1]]),
        _ => return ProgramFormat::ForeignElf(format!("a {bits}-bit ELF of unknown byte order")),
    };
    let here_bits = usize::BITS;
    match ELF_MACHINE {
        Some((m, _)) if m == machine && bits == here_bits => ProgramFormat::Elf,
        Some((_, name)) => ProgramFormat::ForeignElf(format!(
            "a {bits}-bit ELF for machine {machine}, not {name} ({here_bits}-bit)"
        )),
        // A machine this table does not know: let execve judge.
        None => ProgramFormat::Elf,
    }
}

/// The program of a spawn request is a regular file, executable, and an ELF for this machine
/// or a `#!` script; anything else would be accepted and then die in the jail with `execve`'s
/// error, visible only in the agent's log.
fn check_program(program: &Path) -> Result<(), Refusal> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let shown = program.display().to_string();
    let refuse = |reason: String, kind: ControlErrorKind, hint: &str| {
        Refusal::recorded(
            reason.clone(),
            control_error(kind, format!("spawn refused: {shown} {reason}"), hint),
        )
    };
    let meta = match std::fs::metadata(program) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(refuse(
                "does not exist".into(),
                ControlErrorKind::NotFound,
                "check the path, or build the agent first",
            ))
        }
        Err(e) => {
            return Err(refuse(
                format!("cannot be read ({e})"),
                ControlErrorKind::Failed,
                "check the path and its permissions",
            ))
        }
    };
    if meta.is_dir() {
        return Err(refuse(
            "is a directory".into(),
            ControlErrorKind::Usage,
            "give the program inside it, e.g. `-- ./dir/my-agent`",
        ));
    }
    if !meta.is_file() {
        return Err(refuse(
            "is not a regular file".into(),
            ControlErrorKind::Usage,
            "give an executable file",
        ));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(refuse(
            "is not executable".into(),
            ControlErrorKind::Usage,
            &format!("make it executable (`chmod +x {shown}`), or run it with its interpreter (`-- python3 {shown}`)"),
        ));
    }
    let mut head = Vec::with_capacity(20);
    let read = std::fs::File::open(program).and_then(|f| f.take(20).read_to_end(&mut head));
    if let Err(e) = read {
        return Err(refuse(
            format!("cannot be read ({e})"),
            ControlErrorKind::Failed,
            "check its permissions: the kernel must read it",
        ));
    }
    match program_format(&head) {
        ProgramFormat::Elf | ProgramFormat::Script => Ok(()),
        ProgramFormat::ForeignElf(what) => Err(refuse(
            format!("is {what}: it cannot run on this machine (exec format error)"),
            ControlErrorKind::Usage,
            "build the agent for this machine",
        )),
        ProgramFormat::Unknown => Err(refuse(
            "is neither an ELF executable nor a `#!` script (exec format error)".into(),
            ControlErrorKind::Usage,
            "give a compiled program or a script starting with `#!`, or run a script with its interpreter (`-- python3 agent.py`)",
        )),
    }
}

/// Checks a spawn request against `rules` and turns it into a plan: the policy loads, the
/// sandbox the host offers is enough, the program, workspace, environment and extra
/// read-only paths are usable. Creates nothing; reads the file system only to check the paths
/// it is given.
pub(crate) fn prepare(rules: Rules<'_>, req: SpawnRequest) -> Result<SpawnPlan, Refusal> {
    let program_text = req.program.display().to_string();
    let policy = rules
        .policies
        .parse(&req.policy.path, &req.policy.text)
        .map_err(|e| {
            Refusal::recorded(
                e.to_string(),
                failed(
                    format!("policy does not load, spawn refused:\n{e}"),
                    "fix the policy file and spawn again",
                ),
            )
        })?;
    if rules.require_full_sandbox {
        if let Some((layer, detail)) = crate::sandbox::missing_required(rules.host_layers) {
            return Err(Refusal::recorded(
                format!("sandbox layer {layer} is missing: {detail}"),
                failed(
                    format!(
                        "spawn refused: the sandbox layer `{layer}` is missing on this host ({detail})"
                    ),
                    "fix the host, or start the kernel with --allow-degraded-sandbox (recorded)",
                ),
            ));
        }
    }
    if !req.program.is_absolute() {
        return Err(Refusal::quiet(usage(
            format!("program `{program_text}` is not an absolute path"),
            "agentctl resolves programs; pass a full path",
        )));
    }
    check_program(&req.program)?;
    let workspace = match &req.workspace {
        Some(ws) => Some(check_workspace(rules.state_dir, ws).map_err(Refusal::quiet)?),
        None => None,
    };
    check_env(&req.env).map_err(Refusal::quiet)?;
    let extra_read_only =
        check_extra_read_only(rules.state_dir, &req.extra_read_only).map_err(Refusal::quiet)?;
    Ok(SpawnPlan {
        req,
        policy,
        workspace,
        extra_read_only,
    })
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
///
/// The flow: [`prepare`] (validation, nothing created) → the agent's dirs, VFS tree, log and
/// jail spec → [`launch`] → [`register`] (the table, only once the launcher runs and
/// everything that can fail has succeeded) → [`start`] (the reaper and the serving tasks,
/// infallible). No error leaves an agent in the table without a reaper, or a launched
/// launcher unreaped, or its cgroup behind.
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
    let refused = |r: Refusal| {
        if let Some(reason) = r.recorded {
            k.record(
                None,
                RecordEvent::SpawnRefused {
                    program: program_text.clone(),
                    reason,
                },
            );
        }
        r.error
    };
    let rules = Rules {
        state_dir: &k.config.state_dir,
        require_full_sandbox: k.config.require_full_sandbox,
        host_layers: &k.host_layers,
        policies: &k.policies,
    };
    let plan = prepare(rules, req).map_err(refused)?;

    let id = AgentId(k.next_id.fetch_add(1, Ordering::Relaxed));
    let dir = k.config.agents_dir().join(id.to_string());
    let (working, tree, restored) = agent_tree(
        k,
        id,
        plan.req.name.as_deref(),
        plan.workspace.as_deref(),
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
    crate::util::private_dir(&dir).map_err(|e| io_fail("its dir", e))?;
    crate::util::private_dir(&scratch).map_err(|e| io_fail("its scratch dir", e))?;
    let log = LogSink::create(dir.join("output.log"), k.config.disk.log_bytes)
        .map_err(|e| io_fail("its log", e))?;

    let (group, spec) = jail_spec(k, &plan, id, &scratch);
    let (mut child, kernel_end, spawned_at) = match launch(k, &spec).await {
        Ok(launched) => launched,
        Err(r) => {
            if let Some(g) = &group {
                crate::sandbox::remove_agent_group(id, g).await;
            }
            return Err(refused(r));
        }
    };
    let pid = child.id().unwrap_or(0);
    let cloned = child.is_init();
    let (working_bytes, working_files) = k.config.working_quota;
    let SpawnPlan {
        req,
        policy,
        workspace,
        extra_read_only,
    } = plan;
    let agent = Arc::new(Agent::new(NewAgent {
        id,
        name: req.name,
        program: program_text.clone(),
        args: req.args,
        policy,
        spawned_at,
        scratch,
        log,
        pid,
        cloned,
        working: working.unwrap_or_else(|| MemFs::new(working_bytes, working_files)),
        tree,
        cgroup: group,
        limits: spec.limits,
        workspace,
        egress: spec.egress_port.is_some(),
        inbox: k.config.inbox,
    }));
    let stream = match register(&k.agents, &agent, &mut child, || connect(kernel_end)).await {
        Ok(stream) => stream,
        Err(e) => {
            if let Some(g) = &agent.cgroup {
                crate::sandbox::remove_agent_group(id, g).await;
            }
            return Err(refused(Refusal::recorded(
                format!("cannot serve the agent socket: {e}"),
                failed(
                    format!("cannot serve the socket of agent {id}: {e}; its launcher was killed"),
                    "check the kernel's open-file limit, then spawn again",
                ),
            )));
        }
    };
    start(k, &agent, child, stream, restored, extra_read_only);
    Ok(agent)
}

/// The jail spec of a planned agent, and its cgroup where the host gives the kernel one.
fn jail_spec(
    k: &KernelInner,
    plan: &SpawnPlan,
    id: AgentId,
    scratch: &Path,
) -> (Option<AgentGroup>, JailSpec) {
    let (req, policy, extra_read_only) = (&plan.req, &plan.policy, &plan.extra_read_only);
    let program_text = req.program.display().to_string();
    let scratch = scratch.to_path_buf();
    let argv0 = req
        .program
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| program_text.clone());
    let limits = jail_spec::limits(k.config.limits, policy);
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
            scratch,
            read_only: extra_read_only.clone(),
            env: req.env.clone(),
            limits,
            cgroup,
            // An agent whose policy names the `network` action gets its egress proxy.
            role: Role::Agent {
                egress: policy
                    .names_action(crate::server::egress::ACTION)
                    .then_some(crate::jail_spec::EGRESS_PROXY_PORT),
            },
        },
    );
    (group, spec)
}

/// Starts the launcher with `spec` and one end of a new socket pair; returns it, the kernel's
/// end and when it started. On an error nothing was started.
async fn launch(
    k: &KernelInner,
    spec: &JailSpec,
) -> Result<(AgentProcess, std::os::unix::net::UnixStream, Instant), Refusal> {
    let spec_json = serde_json::to_string(spec).map_err(|e| {
        Refusal::quiet(failed(
            format!("jail spec does not encode: {e}"),
            "report this bug",
        ))
    })?;
    let (kernel_end, agent_end) = std::os::unix::net::UnixStream::pair().map_err(|e| {
        Refusal::quiet(failed(
            format!("cannot create the agent socket: {e}"),
            "check the kernel's open-file limit",
        ))
    })?;
    let spawned_at = Instant::now();
    let child = k
        .spawner
        .launch(
            &k.config.launcher,
            spec_json,
            agent_end.into(),
            spec.network,
        )
        .await
        .map_err(|e| {
            Refusal::recorded(
                format!("launcher failed to start: {e}"),
                failed(
                    format!(
                        "cannot start the launcher {}: {e}",
                        k.config.launcher.display()
                    ),
                    "check that agentos-launch is installed beside agentos-kernel",
                ),
            )
        })?;
    Ok((child, kernel_end, spawned_at))
}

/// The kernel's end of the agent socket, ready for the runtime.
fn connect(end: std::os::unix::net::UnixStream) -> io::Result<tokio::net::UnixStream> {
    end.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(end)
}

/// Puts a launched `agent` in `table` once `connect` (what can still fail after the launch)
/// has succeeded, and returns what it made. The caller starts the reaper ([`start`]) right
/// after an `Ok`, with nothing fallible between.
///
/// On an error (`connect` failed, or the id is taken) the agent is not in the table, its
/// launcher `child` is killed and reaped (its init follows by its parent-death signal), and
/// its lifecycle ends as `SandboxFailed`, so no process of a failed spawn is left behind.
pub(crate) async fn register<S>(
    table: &AgentTable,
    agent: &Arc<Agent>,
    child: &mut AgentProcess,
    connect: impl FnOnce() -> io::Result<S>,
) -> io::Result<S> {
    let made = connect().and_then(|made| {
        if table.insert(Arc::clone(agent)) {
            Ok(made)
        } else {
            Err(io::Error::other(format!("agent id {} is taken", agent.id)))
        }
    });
    if let Err(e) = &made {
        if let Err(kill) = child.start_kill() {
            tracing::error!(agent_id = %agent.id, error = %kill, "cannot kill the launcher of a failed spawn");
        }
        let _ = child.wait().await;
        let _ = agent.life().finish(ExitStatus::SandboxFailed {
            reason: format!("the spawn failed after the launch: {e}"),
        });
    }
    made
}

/// Records the spawn and starts the tasks of a registered agent: its output capture, its
/// syscall server and its reaper. Cannot fail: an agent in the table always has a reaper.
fn start(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    mut child: AgentProcess,
    stream: tokio::net::UnixStream,
    restored: Option<RecordEvent>,
    extra_read_only: Vec<PathBuf>,
) {
    let id = agent.id;
    let policy = agent.policy();
    let pid = agent.pid().unwrap_or(0);
    k.record(
        Some(id),
        RecordEvent::Spawn {
            name: agent.name.clone(),
            program: agent.program.clone(),
            args: agent.args.clone(),
            policy_path: policy.path().to_string(),
            policy_digest: policy.digest(),
            launcher_pid: pid,
        },
    );
    if let Some(traces) = &k.traces {
        if policy.observability().traces {
            let who = crate::traces::LifeOf {
                id,
                name: agent.name.as_deref(),
                program: &agent.program,
                policy: policy.path(),
                mode: crate::server::mode_name(policy.mode()),
            };
            let started = std::time::UNIX_EPOCH + Duration::from_millis(agent.started_ms);
            if let Some(life) = traces.life(who, started) {
                agent.begin_trace(life);
            }
        }
    }
    let record = crate::history::AgentRecord {
        id: id.0,
        name: agent.name.clone(),
        program: agent.program.clone(),
        args: agent.args.clone(),
        policy_path: policy.path().to_string(),
        started_ms: agent.started_ms,
        ended_ms: None,
        exit: None,
        counters: None,
    };
    let agents_dir = k.config.agents_dir();
    if let Err(e) = crate::hostio::off_worker(|| crate::history::write_record(&agents_dir, &record))
    {
        tracing::warn!(agent_id = %id, error = %e, "cannot write the agent's record");
    }
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
    if let Some(out) = child.take_stdout() {
        outputs.push(tokio::spawn(capture(Arc::clone(agent), out, false)));
    }
    if let Some(err) = child.take_stderr() {
        outputs.push(tokio::spawn(capture(Arc::clone(agent), err, true)));
    }
    tokio::spawn(crate::server::serve(
        Arc::clone(k),
        Arc::clone(agent),
        stream,
        k.performer.clone(),
    ));
    tokio::spawn(reap(Arc::clone(k), Arc::clone(agent), child, outputs));
}

/// Copies one of the agent's output pipes into its log. The buffer starts at 1 KiB and
/// doubles while reads fill it, up to 64 KiB: a thousand quiet agents do not each hold two
/// 64 KiB buffers.
async fn capture(agent: Arc<Agent>, mut pipe: impl tokio::io::AsyncRead + Unpin, stderr: bool) {
    let mut buf = vec![0u8; 1 << 10];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let full = n == buf.len();
                let chunk = &buf[..n];
                if stderr {
                    let text = String::from_utf8_lossy(chunk);
                    if let Some(line) = text
                        .lines()
                        .rev()
                        .find(|l| l.starts_with("agentos-launch:"))
                    {
                        agent.note_launcher_error(line.to_string());
                    }
                }
                // A file write (page cache, but a host under writeback pressure can stall
                // it): off the runtime worker.
                crate::hostio::off_worker(|| agent.log.append(chunk));
                if full && buf.len() < 64 << 10 {
                    buf.resize(buf.len() * 2, 0);
                }
            }
        }
    }
}

/// Waits for the launcher to exit (which happens only once the whole tree is gone), then
/// records how the agent ended.
async fn reap(
    k: Arc<KernelInner>,
    agent: Arc<Agent>,
    mut child: AgentProcess,
    outputs: Vec<JoinHandle<()>>,
) {
    let status = child.wait().await;
    agent.mark_tree_gone();
    // Its MCP servers end with its cgroup below: not crashes.
    agent.mcp.end();
    for h in outputs {
        let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
    }
    // All output is in: the log is rewritten in order (head, cut marker, tail) once.
    crate::hostio::off_worker(|| agent.log.finish());
    // The watchers end once the listener reports no process left under the filter, which the
    // launcher's exit implies (the egress proxy once it has recorded how its connections
    // ended); the timeout only guards against a host that never says so.
    let watchers = agent.take_watchers();
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
    crate::tree::agent_ended(&k.tree(), &agent);
    k.record(
        Some(agent.id),
        RecordEvent::Exit {
            status: exit.clone(),
        },
    );
    k.recorder.forget(agent.id);
    if let Some(life) = agent.life_trace() {
        life.end(&exit.to_string(), exit != ExitStatus::Code(0));
    }
    tracing::info!(agent_id = %agent.id, status = %exit, "agent ended");
    let agents_dir = k.config.agents_dir();
    let ended = crate::hostio::off_worker(|| {
        let mut record = crate::history::read_record(&agents_dir, agent.id.0)?;
        record.ended_ms = Some(crate::util::now_ms());
        record.exit = Some(exit.clone());
        record.counters = Some(*agent.counters());
        Some(crate::history::write_record(&agents_dir, &record))
    });
    if let Some(Err(e)) = ended {
        tracing::warn!(agent_id = %agent.id, error = %e, "cannot write the agent's record");
    }
    agent.detach_outbox();
    if let Err(e) = agent.life().finish(exit) {
        tracing::error!(agent_id = %agent.id, error = %e, "agent reaped twice");
    }
    let undelivered = agent.inbox.close();
    if undelivered > 0 {
        tracing::warn!(agent_id = %agent.id, undelivered, "agent ended with messages still in its inbox");
    }
    // As large a tree as the agent made: removed off the runtime worker.
    if let Err(e) = crate::hostio::off_worker(|| std::fs::remove_dir_all(&agent.scratch)) {
        tracing::warn!(agent_id = %agent.id, error = %e, "cannot remove scratch dir");
    }
    crate::tools::remove_slot_dirs(&k, agent.id);
}

fn classify(
    agent: &Agent,
    status: io::Result<std::process::ExitStatus>,
    require_full: bool,
) -> ExitStatus {
    if let Some((signal, reason)) = agent.life().kill_reason() {
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
                let reason = agent
                    .launcher_error()
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

#[cfg(test)]
mod tests {
    use super::*;
    use agentos_syscalls::control::{AgentState, PolicySource};
    use agentos_syscalls::Signal;

    const POLICY: &str = "kernel: {version: \"1.0\", mode: strict}\nsignals: []\npolicies:\n  - action: file_read\n    effect: allow\n";

    fn request() -> SpawnRequest {
        SpawnRequest {
            name: Some("t".into()),
            policy: PolicySource {
                path: "security.md".into(),
                text: POLICY.into(),
            },
            workspace: None,
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "true".into()],
            env: vec![("GREETING".into(), "hi".into())],
            extra_read_only: Vec::new(),
        }
    }

    fn rules<'a>(state_dir: &'a Path, layers: &'a [Layer]) -> Rules<'a> {
        static POLICIES: agentos_policy::PolicyCache = agentos_policy::PolicyCache::new(4);
        Rules {
            state_dir,
            require_full_sandbox: true,
            host_layers: layers,
            policies: &POLICIES,
        }
    }

    /// `prepare`'s refusal of `req`: (kind, message, the reason recorded).
    fn refusal(rules: Rules<'_>, req: SpawnRequest) -> (ControlErrorKind, String, Option<String>) {
        let r = prepare(rules, req).unwrap_err();
        (r.error.kind, r.error.message, r.recorded)
    }

    #[test]
    fn a_good_request_becomes_a_plan_with_canonical_paths() {
        let state = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let mut req = request();
        req.workspace = Some(ws.path().join("."));
        req.extra_read_only = vec!["/usr/../usr/bin".into()];
        let plan = prepare(rules(state.path(), &[]), req).unwrap();
        assert_eq!(
            plan.workspace,
            Some(std::fs::canonicalize(ws.path()).unwrap())
        );
        assert_eq!(plan.extra_read_only, [PathBuf::from("/usr/bin")]);
        assert_eq!(plan.policy.path(), "security.md");
        assert_eq!(plan.req.args, ["-c", "true"]);
    }

    #[test]
    fn a_policy_that_does_not_load_is_refused_and_recorded() {
        let state = tempfile::tempdir().unwrap();
        let mut req = request();
        req.policy.text = "kernel: {version: \"1.0\", mode: strict}\nbogus: 1\n".into();
        let (kind, message, recorded) = refusal(rules(state.path(), &[]), req);
        assert_eq!(kind, ControlErrorKind::Failed);
        assert!(
            message.starts_with("policy does not load, spawn refused:\nsecurity.md:"),
            "{message}"
        );
        assert!(recorded.is_some());
    }

    #[test]
    fn a_missing_required_layer_refuses_unless_degraded_is_allowed() {
        let state = tempfile::tempdir().unwrap();
        let layers = [Layer {
            name: "landlock".into(),
            status: LayerStatus::Missing {
                detail: "not in this kernel".into(),
            },
        }];
        let (kind, message, recorded) = refusal(rules(state.path(), &layers), request());
        assert_eq!(kind, ControlErrorKind::Failed);
        assert_eq!(
            message,
            "spawn refused: the sandbox layer `landlock` is missing on this host (not in this kernel)"
        );
        assert_eq!(
            recorded.as_deref(),
            Some("sandbox layer landlock is missing: not in this kernel")
        );
        let degraded = Rules {
            require_full_sandbox: false,
            ..rules(state.path(), &layers)
        };
        assert!(prepare(degraded, request()).is_ok());
    }

    #[test]
    fn the_program_must_be_an_absolute_path_to_a_file() {
        let state = tempfile::tempdir().unwrap();
        let r = rules(state.path(), &[]);
        let mut relative = request();
        relative.program = "sh".into();
        assert_eq!(
            refusal(r, relative),
            (
                ControlErrorKind::Usage,
                "program `sh` is not an absolute path".into(),
                None
            )
        );
        let mut missing = request();
        missing.program = state.path().join("nope");
        let (kind, message, recorded) = refusal(r, missing.clone());
        assert_eq!(kind, ControlErrorKind::NotFound);
        assert_eq!(
            message,
            format!(
                "spawn refused: {} does not exist",
                missing.program.display()
            )
        );
        assert_eq!(recorded.as_deref(), Some("does not exist"));
    }

    #[test]
    fn a_directory_a_file_without_x_and_a_file_execve_cannot_run_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let state = tempfile::tempdir().unwrap();
        let r = rules(state.path(), &[]);
        let files = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8], mode: u32| {
            let p = files.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let plain = write("plain", b"#!/bin/sh\ntrue\n", 0o644);
        let text = write("hostname", b"myhost\n", 0o755);
        let empty = write("empty", b"", 0o755);
        let script = write("script", b"#!/bin/sh\ntrue\n", 0o755);
        let mut foreign_elf = b"\x7fELF\x02\x01\x01".to_vec();
        foreign_elf.resize(18, 0);
        foreign_elf.extend_from_slice(&1234u16.to_le_bytes());
        let foreign = write("foreign", &foreign_elf, 0o755);
        let cases = [
            (files.path().to_path_buf(), "is a directory"),
            (plain, "is not executable"),
            (
                text,
                "is neither an ELF executable nor a `#!` script (exec format error)",
            ),
            (
                empty,
                "is neither an ELF executable nor a `#!` script (exec format error)",
            ),
        ];
        for (program, why) in cases {
            let mut req = request();
            req.program = program.clone();
            let (kind, message, recorded) = refusal(r, req);
            assert_eq!(kind, ControlErrorKind::Usage, "{why}");
            assert_eq!(
                message,
                format!("spawn refused: {} {why}", program.display())
            );
            assert_eq!(recorded.as_deref(), Some(why));
        }
        let mut req = request();
        req.program = foreign.clone();
        let (kind, message, _) = refusal(r, req);
        assert_eq!(kind, ControlErrorKind::Usage);
        assert!(
            message.contains("for machine 1234") && message.contains("exec format error"),
            "{message}"
        );
        // A script with its x bit and the host's own ELF programs pass.
        for program in [
            script,
            PathBuf::from("/bin/sh"),
            std::env::current_exe().unwrap(),
        ] {
            let mut req = request();
            req.program = program;
            assert!(prepare(r, req).is_ok());
        }
    }

    #[test]
    fn program_formats_are_read_from_the_first_bytes() {
        assert_eq!(
            program_format(b"#!/usr/bin/env python3"),
            ProgramFormat::Script
        );
        assert_eq!(program_format(b"hello"), ProgramFormat::Unknown);
        assert_eq!(program_format(b"\x7fEL"), ProgramFormat::Unknown);
        let mut own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        own.truncate(20);
        assert_eq!(program_format(&own), ProgramFormat::Elf);
        // The same machine with the other word size is foreign.
        own[4] = if own[4] == 2 { 1 } else { 2 };
        assert!(matches!(program_format(&own), ProgramFormat::ForeignElf(_)));
    }

    #[test]
    fn a_bad_environment_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let r = rules(state.path(), &[]);
        for (k, v, why) in [
            (
                "AGENTOS_FD",
                "7",
                "environment variable `AGENTOS_FD` is reserved for the kernel",
            ),
            ("A=B", "1", "environment variable `A=B` is malformed"),
            ("", "1", "environment variable `` is malformed"),
            ("NUL", "a\0b", "environment variable `NUL` is malformed"),
        ] {
            let mut req = request();
            req.env = vec![(k.into(), v.into())];
            assert_eq!(refusal(r, req), (ControlErrorKind::Usage, why.into(), None));
        }
    }

    #[test]
    fn a_bad_workspace_or_read_only_path_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let r = rules(state.path(), &[]);
        let file = state.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        let outside_file = outside.path().join("f");
        std::fs::write(&outside_file, b"x").unwrap();
        let cases: [(Option<PathBuf>, Vec<PathBuf>, &str); 5] = [
            (Some("rel".into()), vec![], "is not absolute"),
            (Some(outside_file.clone()), vec![], "is not a directory"),
            (Some(state.path().join("sub")), vec![], "is not usable"),
            (
                Some(state.path().into()),
                vec![],
                "overlaps the kernel's state dir",
            ),
            (None, vec![file], "overlaps the kernel's state dir"),
        ];
        for (workspace, extra, why) in cases {
            let mut req = request();
            req.workspace = workspace.clone();
            req.extra_read_only = extra;
            let (kind, message, recorded) = refusal(r, req);
            assert_eq!(kind, ControlErrorKind::Usage, "{workspace:?}");
            assert!(message.contains(why), "{workspace:?}: {message}");
            assert_eq!(recorded, None);
        }
    }

    /// A real child standing in for a launcher: it runs until killed.
    fn sleeper() -> AgentProcess {
        AgentProcess::Exec(
            tokio::process::Command::new("/bin/sleep")
                .arg("1000")
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        )
    }

    fn try_wait(child: &mut AgentProcess) -> Option<std::process::ExitStatus> {
        match child {
            AgentProcess::Exec(c) => c.try_wait().unwrap(),
            AgentProcess::Cloned(_) => unreachable!("the tests start no clone"),
        }
    }

    fn exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    fn exited(code: i32) -> io::Result<std::process::ExitStatus> {
        Ok(std::process::ExitStatus::from_raw(code << 8))
    }

    #[test]
    fn the_exit_is_classified_from_the_kill_the_jail_and_the_launcher_status() {
        let dir = tempfile::tempdir().unwrap();
        let agent = crate::agent::test_agent(dir.path(), 1, None, 100);
        assert_eq!(classify(&agent, exited(3), true), ExitStatus::Code(3));
        assert_eq!(
            classify(&agent, exited(137), true),
            ExitStatus::PosixSignal(9)
        );
        assert_eq!(
            classify(&agent, Ok(std::process::ExitStatus::from_raw(15)), true),
            ExitStatus::PosixSignal(15)
        );
        assert_eq!(
            classify(&agent, Err(io::Error::other("gone")), true),
            ExitStatus::SandboxFailed {
                reason: "cannot wait for the launcher: gone".into()
            }
        );
        // No jail report: the jail failed, with the launcher's own line when it left one.
        assert_eq!(
            classify(&agent, exited(EXIT_SANDBOX_FAILED), true),
            ExitStatus::SandboxFailed {
                reason: "the launcher exited before the agent ran".into()
            }
        );
        agent.note_launcher_error("agentos-launch: landlock: denied".into());
        assert_eq!(
            classify(&agent, exited(EXIT_SANDBOX_FAILED), true),
            ExitStatus::SandboxFailed {
                reason: "agentos-launch: landlock: denied".into()
            }
        );
        // A full jail was reported: 125 is the program's own code.
        *lock(&agent.jail) = Some(agentos_syscalls::JailReport { layers: Vec::new() });
        assert_eq!(
            classify(&agent, exited(EXIT_SANDBOX_FAILED), true),
            ExitStatus::Code(EXIT_SANDBOX_FAILED)
        );
        // A kill by the kernel is reported as that signal, whatever the launcher says.
        agent
            .life()
            .mark_killed(Signal::Trust, "bad frame".into())
            .unwrap();
        assert_eq!(
            classify(&agent, exited(137), true),
            ExitStatus::Killed {
                signal: Signal::Trust,
                reason: "bad frame".into()
            }
        );
    }

    #[tokio::test]
    async fn a_failure_after_the_launch_leaves_no_agent_and_no_process() {
        let dir = tempfile::tempdir().unwrap();
        let table = AgentTable::default();
        let mut child = sleeper();
        let pid = child.id().unwrap();
        let agent = crate::agent::test_agent(dir.path(), 1, None, pid);
        let result: io::Result<()> = register(&table, &agent, &mut child, || {
            Err(io::Error::other("injected after the launch"))
        })
        .await;
        assert_eq!(result.unwrap_err().to_string(), "injected after the launch");
        assert!(table.list().is_empty());
        // Killed and reaped: not even a zombie is left.
        assert!(try_wait(&mut child).is_some());
        assert!(!exists(pid));
        assert_eq!(
            agent.life().exit(),
            Some(ExitStatus::SandboxFailed {
                reason: "the spawn failed after the launch: injected after the launch".into()
            })
        );
        assert_eq!(agent.life().live_pid(), None);
    }

    #[tokio::test]
    async fn a_taken_id_after_the_launch_leaves_the_table_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let table = AgentTable::default();
        let first = crate::agent::test_agent(dir.path(), 1, Some("first"), 1);
        assert!(table.insert(Arc::clone(&first)));
        let mut child = sleeper();
        let pid = child.id().unwrap();
        let agent = crate::agent::test_agent(dir.path(), 1, Some("second"), pid);
        let result = register(&table, &agent, &mut child, || Ok(())).await;
        assert_eq!(result.unwrap_err().to_string(), "agent id 1 is taken");
        assert_eq!(table.list().len(), 1);
        assert!(Arc::ptr_eq(&table.get(AgentId(1)).unwrap(), &first));
        assert!(!exists(pid));
    }

    #[tokio::test]
    async fn a_launched_agent_is_registered_and_keeps_running() {
        let dir = tempfile::tempdir().unwrap();
        let table = AgentTable::default();
        let mut child = sleeper();
        let pid = child.id().unwrap();
        let agent = crate::agent::test_agent(dir.path(), 1, None, pid);
        let made = register(&table, &agent, &mut child, || Ok(7))
            .await
            .unwrap();
        assert_eq!(made, 7);
        assert!(Arc::ptr_eq(&table.get(AgentId(1)).unwrap(), &agent));
        assert!(try_wait(&mut child).is_none());
        assert_eq!(agent.current_state(), AgentState::Starting);
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
}

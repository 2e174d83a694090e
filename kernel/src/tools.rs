//! Running tools: the programs behind `Exec` and the tool providers behind `Call`.
//!
//! ```text
//! calls/exec.rs, calls/call.rs ──► run(ToolRun) ──► spawner thread ──► the zygote clones
//!                                    init I (pid 1 of the tool's pid ns, the kernel's child)
//!                                                        └─ the tool A, fd 3 closed
//!   stdin ──► pipe ──► A        A's stdout/stderr ──► pipes ──► capped buffers
//!   fd 3 of I ──► the jail report (checked) and the seccomp listener (watched, recorded
//!                 under the agent like its own denials)
//! ```
//!
//! The tool's init is cloned by the kernel's zygote like an agent's (`CLONE_PARENT`, a pidfd
//! back, no `execve` of the launcher, no launcher process above the init); where the zygote
//! cannot clone, `agentos-launch` is exec'd as before (L → I → A). Either way the jail is the
//! same, built by the same steps from the same spec.
//!
//! A tool gets a jail of its own, built by the same launcher as an agent: user, pid, ipc,
//! uts and mount namespaces, a network namespace with nothing in it (except for a provider
//! the operator declared `network`), the minimal root, landlock, the seccomp allow-list, the
//! agent's rlimits and the agent's cgroup (so the agent and its tools share one `pids.max`
//! and one memory limit), a fresh scratch tmpfs of its own, and no kernel socket. The
//! scratch's mount point is the host directory of the tool's slot (`agents/<id>/tool-<i>`,
//! `i` < [`MAX_TOOLS`], [`SlotScratch`]): the jail mounts the tmpfs on its own copy of that
//! path in the minimal root, so the host directory stays empty and is kept for the slot's next
//! tool (made once per slot, not per call: creating a directory is the dearest step of the
//! kernel's part of an `Exec` on a busy ext4); one found not empty (a jail without its mount
//! namespace wrote there) is removed and made afresh, and all are removed when the agent
//! ends. The agent's workspace, when it has one, is bound at `/workspace` as the tool's view
//! of it ([`crate::tool_view`]: read-only, writable only in the subtrees
//! where every write is allowed, entries the agent may not read hidden). A provider (`Call`)
//! never gets the workspace: only the operator's `ro=`/`rw=` paths.
//!
//! Invariants: a tool's whole process tree is gone before its answer is returned (the
//! timeout kills the tool's init, which empties its pid namespace; the kernel waits for the
//! init's word that the tool and everything else of the namespace are killed and reaped —
//! `AgentFrame::ToolExit` — or for the init itself, or for a launcher that exits only after
//! the init is reaped; an init that sent its word is reaped off the answer's path, and holds
//! the tool's slot until it is gone, so the [`MAX_TOOLS`] bound counts it); stdout and stderr are drained to the end but kept only up
//! to [`OUTPUT_CAP`] each; an agent runs at most [`MAX_TOOLS`] tools at once (more are
//! refused with `Busy`); a tool never outlives its agent.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentos_syscalls::{AgentFrame, AgentId, Errno, ExecOutput, JailReport, LayerStatus};
use agentos_userspace::launch::{
    CgroupSpec, JailSpec, Mount, ViewEntry, ViewKind, EXIT_SANDBOX_FAILED,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::agent::Agent;
use crate::jail_spec::{JailBase, Occupant, Role};
use crate::spawner::AgentProcess;
use crate::state::KernelInner;

/// The most of stdout (and, separately, of stderr) a tool's answer carries.
pub const OUTPUT_CAP: usize = 1 << 20;
/// The timeout of a tool run that names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest timeout a tool run may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
pub use crate::agent::MAX_TOOLS;
pub use crate::jail_spec::JAIL_PATH;
/// Where the agent's workspace appears in a tool's jail.
pub const WORKSPACE: &str = "/workspace";

/// Numbers MCP servers' scratch directories (`mcp-<name>-<n>`), kernel-wide.
pub(crate) static NEXT_TOOL: AtomicU64 = AtomicU64::new(1);

/// One tool to run.
#[derive(Debug, Clone)]
pub(crate) struct ToolRun {
    /// Absolute host path of the program (inside the read-exec runtime).
    pub program: PathBuf,
    /// argv, argv\[0\] included.
    pub argv: Vec<String>,
    pub stdin: Vec<u8>,
    /// The working directory in the jail; `None`: `/workspace` when there is one, else the
    /// tool's scratch.
    pub cwd: Option<PathBuf>,
    pub timeout: Duration,
    /// Share the host's network (a provider declared `network`).
    pub network: bool,
    /// The agent's workspace and whether the tool may write all of it.
    pub workspace: Option<(PathBuf, bool)>,
    /// The tool's view of the workspace: writable subtrees and hidden entries (see
    /// [`crate::tool_view`]).
    pub view: Vec<ViewEntry>,
    /// Extra host paths the tool may read (a provider's `ro=`).
    pub read_only: Vec<PathBuf>,
    /// Extra host directories the tool may read and write at the same path (a provider's
    /// `rw=`).
    pub read_write: Vec<PathBuf>,
}

/// The timeout a call asked for, bounded: `None` → [`DEFAULT_TIMEOUT`]; 0 or more than
/// [`MAX_TIMEOUT`] is refused.
pub(crate) fn timeout_of(ms: Option<u64>) -> Result<Duration, Errno> {
    match ms {
        None => Ok(DEFAULT_TIMEOUT),
        Some(0) => Err(Errno::InvalidArgument {
            reason: "timeout_ms is 0; give a positive timeout or none for the default of 30 s"
                .into(),
        }),
        Some(ms) if Duration::from_millis(ms) > MAX_TIMEOUT => Err(Errno::InvalidArgument {
            reason: format!(
                "timeout_ms {ms} is over the maximum of {} ms",
                MAX_TIMEOUT.as_millis()
            ),
        }),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

fn internal(what: impl Into<String>) -> Errno {
    Errno::Internal {
        reason: what.into(),
    }
}

/// Removes the tool's scratch directory when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove a tool's scratch dir");
        }
    }
}

/// Removes a scratch dir and all in it: a tool can leave a large tree, so off the runtime
/// worker.
fn remove_tree(path: &std::path::Path) -> std::io::Result<()> {
    crate::hostio::off_worker(|| std::fs::remove_dir_all(path))
}

/// Read-only host files a network provider needs to resolve names and check certificates
/// (those that do not exist are skipped by the launcher).
const NETWORK_FILES: [&str; 5] = [
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
];

/// Runs one tool in its own jail and returns what it did. Errors: `Busy` when the agent
/// already runs [`MAX_TOOLS`] tools, `Internal` when the jail could not be built (with the
/// launcher's reason), `Interrupted` when the agent ended meanwhile.
pub(crate) async fn run(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    run: ToolRun,
) -> Result<ExecOutput, Errno> {
    let slot = self::slot(agent)?;
    run_in(k, agent, slot, run).await
}

/// One of the agent's [`MAX_TOOLS`] tool slots, held from before an `Exec`'s view of the
/// workspace is computed until its tool is gone; `Busy` when all are taken.
pub(crate) fn slot(agent: &Arc<Agent>) -> Result<tokio::sync::OwnedSemaphorePermit, Errno> {
    Arc::clone(&agent.tools)
        .try_acquire_owned()
        .map_err(|_| Errno::Busy {
            what: format!(
                "agent {} already runs {MAX_TOOLS} tools; wait for one to finish",
                agent.id
            ),
        })
}

/// The scratch mount point of one of the agent's tool slots, `agents/<id>/tool-<i>`, taken
/// for one tool and given back when dropped (see the module docs). It is an empty directory
/// of the kernel's (mode 0700): the tool's scratch is a tmpfs the jail mounts on its own copy
/// of the path.
pub(crate) struct SlotScratch {
    path: PathBuf,
    index: usize,
    agent: Arc<Agent>,
}

impl SlotScratch {
    /// Takes a free slot directory of `agent`'s (its tool permit is held), making it if it is
    /// not there yet.
    fn take(k: &KernelInner, agent: &Arc<Agent>) -> Result<SlotScratch, Errno> {
        let index = crate::util::lock(&agent.tool_dirs)
            .pop()
            .ok_or_else(|| internal("every tool slot's scratch dir is taken"))?;
        let scratch = SlotScratch {
            path: slot_dir(k, agent.id, index),
            index,
            agent: Arc::clone(agent),
        };
        match crate::util::private_dir(&scratch.path) {
            Ok(()) => Ok(scratch),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Only ever made by this code: a real directory, not a link to elsewhere.
                match std::fs::symlink_metadata(&scratch.path) {
                    Ok(m) if m.is_dir() => Ok(scratch),
                    _ => Err(internal(format!(
                        "the tool's scratch dir {} is not a directory",
                        scratch.path.display()
                    ))),
                }
            }
            Err(e) => Err(internal(format!(
                "cannot create the tool's scratch dir: {e}"
            ))),
        }
    }
}

impl Drop for SlotScratch {
    fn drop(&mut self) {
        // Empty after a jailed tool (its tmpfs was mounted inside the jail, not here): kept.
        // Anything in it (a jail without its mount namespace wrote there) goes with it, off
        // the runtime worker, and the next tool of the slot makes it afresh.
        let empty = std::fs::read_dir(&self.path).map(|mut d| d.next().is_none());
        if matches!(empty, Ok(false)) {
            if let Err(e) = remove_tree(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a tool's scratch dir");
            }
        }
        crate::util::lock(&self.agent.tool_dirs).push(self.index);
    }
}

/// The scratch mount point of tool slot `index` of agent `id`.
fn slot_dir(k: &KernelInner, id: AgentId, index: usize) -> PathBuf {
    k.config
        .agents_dir()
        .join(id.to_string())
        .join(format!("tool-{index}"))
}

/// Removes the agent's tool slot directories (the agent has ended; a tool of it still
/// finishing finds its directory gone, which is no error). An empty one (the usual case) is
/// one `rmdir`; only one with something in it is removed off the runtime worker.
pub(crate) fn remove_slot_dirs(k: &KernelInner, id: AgentId) {
    use std::io::ErrorKind;
    for index in 0..MAX_TOOLS {
        let path = slot_dir(k, id, index);
        let removed = match std::fs::remove_dir(&path) {
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => remove_tree(&path),
            other => other,
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a tool's scratch dir")
            }
        }
    }
}

/// [`run`] in a slot already taken.
pub(crate) async fn run_in(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    slot: tokio::sync::OwnedSemaphorePermit,
    mut run: ToolRun,
) -> Result<ExecOutput, Errno> {
    let scratch = SlotScratch::take(k, agent)?;

    let started = Instant::now();
    let Launched {
        mut child,
        stdin,
        report,
        mut ended,
        require_full,
    } = launch(k, agent, &run, &scratch.path, "a tool").await?;

    let input = std::mem::take(&mut run.stdin);
    let feeder = tokio::spawn(async move {
        if let Some(mut pipe) = stdin {
            // A tool that exits without reading its stdin closes the pipe: not an error.
            let _ = pipe.write_all(&input).await;
            let _ = pipe.shutdown().await;
        }
    });
    let stdout = child.take_stdout().map(|p| tokio::spawn(capped(p)));
    let stderr = child.take_stderr().map(|p| tokio::spawn(capped(p)));

    let mut timed_out = false;
    let mut agent_ended = false;
    let outcome = tokio::select! {
        s = child.wait() => Ended::Reaped(s),
        // The init's word that the tool and all it started are gone; the init itself is
        // still tearing the namespaces down, and is reaped off the answer's path.
        Ok(status) = &mut ended => Ended::Reported(status),
        _ = tokio::time::sleep(run.timeout) => {
            timed_out = true;
            child.kill_tree();
            Ended::Reaped(child.wait().await)
        }
        _ = agent.wait_exit() => {
            agent_ended = true;
            child.kill_tree();
            Ended::Reaped(child.wait().await)
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let status = match outcome {
        Ended::Reaped(s) => s
            .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
            .map_err(|e| internal(format!("cannot wait for the tool's jail: {e}"))),
        Ended::Reported(status) => {
            tokio::spawn(reap_exiting(
                child,
                slot,
                scratch,
                started + run.timeout,
                Arc::clone(agent),
            ));
            Ok(status)
        }
    };
    feeder.abort();
    // The tree is gone, so every pipe is at its end (bounded anyway).
    let join = |h: Option<tokio::task::JoinHandle<(Vec<u8>, bool)>>| async move {
        match h {
            Some(h) => tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => (Vec::new(), false),
        }
    };
    let (stdout, cut_out) = join(stdout).await;
    let (stderr, cut_err) = join(stderr).await;
    let report = tokio::time::timeout(Duration::from_secs(5), report)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();

    let status = status?;
    // The agent's cgroup, shared with its tools, may have ended the tool before the agent's
    // exit was announced: a kill of the agent counts as its end.
    let agent_ended = agent_ended || agent.life().kill_reason().is_some() || agent.is_exited();
    let output = ExecOutput {
        status,
        stdout,
        stderr,
        duration_ms,
        truncated: cut_out || cut_err,
        timed_out,
    };
    answer(agent.id, agent_ended, report.as_ref(), require_full, output)
}

/// How a tool's run ended.
enum Ended {
    /// The kernel's child (the init, or the launcher above it) is reaped.
    Reaped(std::io::Result<std::process::ExitStatus>),
    /// The init sent the tool's status (`AgentFrame::ToolExit`): the tool and every other
    /// process of its pid namespace are reaped; the init is exiting.
    Reported(i32),
}

/// Reaps a tool's init that already sent the tool's status and is exiting (the namespaces'
/// teardown), holding the agent's tool slot and scratch dir until it is gone, so an agent
/// still has at most [`MAX_TOOLS`] tool jails at once. The call's deadline and the agent's
/// end still kill it, should it linger.
async fn reap_exiting(
    mut child: AgentProcess,
    slot: tokio::sync::OwnedSemaphorePermit,
    scratch: SlotScratch,
    deadline: Instant,
    agent: Arc<Agent>,
) {
    tokio::select! {
        _ = child.wait() => {}
        _ = tokio::time::sleep_until(deadline.into()) => {
            child.kill_tree();
            let _ = child.wait().await;
        }
        _ = agent.wait_exit() => {
            child.kill_tree();
            let _ = child.wait().await;
        }
    }
    drop(scratch);
    drop(slot);
}

/// A tool jail, its report watched ([`launch`]).
pub(crate) struct Launched {
    /// The kernel's child: the tool's init cloned by the zygote, or its launcher; its stdin
    /// is not the tool's (see `stdin`). [`AgentProcess::kill_tree`] kills the whole tool.
    pub child: AgentProcess,
    /// The write end of the tool's stdin.
    pub stdin: Option<tokio::net::unix::pipe::Sender>,
    /// The launcher's jail report, once the init reported the tool's end or closed its
    /// report socket.
    pub report: tokio::task::JoinHandle<Option<JailReport>>,
    /// The tool's status, from its init once nothing else of the jail is left
    /// (`AgentFrame::ToolExit`); dropped unsent when the init ends without one.
    pub ended: tokio::sync::oneshot::Receiver<i32>,
    /// Whether a missing jail layer fails the tool.
    pub require_full: bool,
}

/// Starts `run` in a tool jail on the spawner, with `scratch` as its scratch dir, and serves
/// its report and seccomp listener ([`read_report`]). `what` names the tool in errors
/// (`a tool`, `MCP server NAME`).
pub(crate) async fn launch(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    run: &ToolRun,
    scratch: &std::path::Path,
    what: &str,
) -> Result<Launched, Errno> {
    let spec = jail_spec(k, agent, run, scratch);
    let spec_json = serde_json::to_string(&spec)
        .map_err(|e| internal(format!("the jail spec of {what} does not encode: {e}")))?;
    let (kernel_end, tool_end) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| internal(format!("cannot create the report socket of {what}: {e}")))?;
    // The tool's stdin: the read end waits on the report socket for the tool's init (cloned
    // by the zygote) or its launcher (started with posix_spawn where the zygote cannot).
    let stdin = stdin_pipe(&kernel_end)
        .map_err(|e| internal(format!("cannot hand {what} its stdin pipe: {e}")))?;
    let child = k
        .spawner
        .launch_tool(&k.config.launcher, spec_json, tool_end.into(), run.network)
        .await
        .map_err(|e| {
            internal(format!(
                "cannot start the launcher {} for {what}: {e}",
                k.config.launcher.display()
            ))
        })?;
    let launcher_pid = child.id().unwrap_or(0);
    let watched = crate::sandbox_limits::Watched {
        limits: spec.limits,
        cgroup: agent.cgroup.clone(),
        launcher: launcher_pid,
    };
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    let report = tokio::spawn(read_report(
        Arc::clone(k),
        Arc::clone(agent),
        kernel_end,
        tool_writable(k, agent, run, scratch),
        watched,
        ended_tx,
    ));
    Ok(Launched {
        child,
        stdin: Some(stdin),
        report,
        ended,
        require_full: spec.require_full,
    })
}

/// Makes the tool's stdin pipe and queues its read end on the launcher's report socket
/// (`kernel_end`'s peer): one byte with the descriptor attached (`SCM_RIGHTS`), which the
/// launcher takes before anything else ([`agentos_userspace::launch::TOOL_STDIN_ON_SOCKET_ENV`]).
/// Returns the write end. The kernel's copy of the read end is closed on return.
fn stdin_pipe(
    kernel_end: &std::os::unix::net::UnixStream,
) -> std::io::Result<tokio::net::unix::pipe::Sender> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::os::fd::AsFd;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let fds = [read.as_fd()];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other(
            "the descriptor does not fit its control buffer",
        ));
    }
    let sent = sendmsg(
        kernel_end,
        &[std::io::IoSlice::new(&[0])],
        &mut control,
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    )?;
    if sent != 1 {
        return Err(std::io::Error::other("the stdin descriptor was not sent"));
    }
    drop(read);
    tokio::net::unix::pipe::Sender::from_owned_fd(write)
}

/// Where a tool may write, as the seccomp listener sees it: the agent's own writable places,
/// the tool's scratch dir instead of the agent's, the provider's `read_write` paths, and the
/// workspace (or the parts of it the agent's rules let it write), under both of its names.
fn tool_writable(
    k: &KernelInner,
    agent: &Agent,
    run: &ToolRun,
    scratch: &std::path::Path,
) -> crate::sandbox_access::Writable {
    let mut writable = crate::sandbox::agent_writable(k, agent);
    writable.scratch = scratch.to_path_buf();
    writable.extra = run.read_write.clone();
    if let Some((ws, true)) = &run.workspace {
        writable
            .extra
            .extend([ws.clone(), PathBuf::from(WORKSPACE)]);
    }
    if let Some((ws, _)) = &run.workspace {
        for e in run.view.iter().filter(|e| e.kind == ViewKind::Writable) {
            writable
                .extra
                .extend([ws.join(&e.path), PathBuf::from(WORKSPACE).join(&e.path)]);
        }
    }
    writable
}

/// What the agent is told of a tool that is gone: `Interrupted` when its agent ended
/// meanwhile (the tool was killed with it); `Internal`, naming the launcher's reason, when
/// the jail could not be built (so nothing of the tool ran); otherwise what the tool did —
/// even an exit code equal to the launcher's, when the jail report shows the tool ran.
fn answer(
    agent: AgentId,
    agent_ended: bool,
    report: Option<&JailReport>,
    require_full: bool,
    output: ExecOutput,
) -> Result<ExecOutput, Errno> {
    if agent_ended {
        return Err(Errno::Interrupted {
            reason: format!("agent {agent} ended while its tool ran; the tool was killed"),
        });
    }
    if output.status == EXIT_SANDBOX_FAILED && jail_failed(report, require_full) {
        let why = String::from_utf8_lossy(&output.stderr)
            .lines()
            .rev()
            .find(|l| l.starts_with("agentos-launch:"))
            .map(str::to_string)
            .unwrap_or_else(|| "the launcher exited before the tool ran".into());
        return Err(internal(format!(
            "the tool's jail could not be built: {why}"
        )));
    }
    Ok(output)
}

/// The launcher's jail report says the jail was not finished (so nothing of the tool ran).
fn jail_failed(report: Option<&JailReport>, require_full: bool) -> bool {
    let Some(report) = report else { return true };
    report.layers.iter().any(|l| match &l.status {
        LayerStatus::Missing { detail } => require_full || detail.starts_with("not reached"),
        _ => false,
    })
}

/// Reads a pipe to its end, keeping the first [`OUTPUT_CAP`] bytes; `true` if more came.
async fn capped(mut pipe: impl AsyncRead + Unpin) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = OUTPUT_CAP - kept.len();
                if n > room {
                    cut = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Reads the tool's jail report and seccomp listener from the launcher (fd 3), and serves the
/// listener: the tool's denied syscalls are recorded under the agent, answered `EPERM`. The
/// tool's status, when its init sends it, goes to `ended`.
async fn read_report(
    k: Arc<KernelInner>,
    agent: Arc<Agent>,
    sock: std::os::unix::net::UnixStream,
    writable: crate::sandbox_access::Writable,
    watched: crate::sandbox_limits::Watched,
    ended: tokio::sync::oneshot::Sender<i32>,
) -> Option<JailReport> {
    sock.set_nonblocking(true).ok()?;
    let stream = tokio::net::UnixStream::from_std(sock).ok()?;
    let mut report = None;
    loop {
        let mut fds = Vec::new();
        let max = k.config.max_frame;
        // The same frames as an agent's launcher sends (`crate::server::handshake`).
        let Some(frame) = crate::server::connection::read_frame_with_fds(&stream, max, &mut fds)
            .await
            .ok()?
        else {
            return report;
        };
        match frame {
            AgentFrame::JailReport(r) if report.is_none() => report = Some(r),
            AgentFrame::SandboxListener if report.is_some() => {
                let listener = fds.pop()?;
                if crate::sandbox::is_listener(&listener) {
                    tokio::spawn(crate::sandbox::watch(
                        Arc::clone(&k),
                        Arc::clone(&agent),
                        listener,
                        writable.clone(),
                        watched.clone(),
                    ));
                }
            }
            AgentFrame::ToolExit { status } if report.is_some() => {
                // The run may be over already (timed out, its agent gone): then nobody asks.
                let _ = ended.send(status);
                return report;
            }
            // Nothing else comes from a launcher; a tool has no socket to send on.
            _ => return report,
        }
    }
}

/// The jail of one tool ([`crate::jail_spec`]): the agent's limits and cgroup, the workspace
/// as the tool's view, the provider's paths.
fn jail_spec(k: &KernelInner, agent: &Agent, run: &ToolRun, scratch: &std::path::Path) -> JailSpec {
    let policy = agent.policy();
    let mut read_only = run.read_only.clone();
    if run.network {
        read_only.extend(NETWORK_FILES.iter().map(PathBuf::from));
    }
    let mut mounts: Vec<Mount> = run
        .read_write
        .iter()
        .map(|p| Mount {
            source: p.clone(),
            target: p.clone(),
            writable: true,
            view: Vec::new(),
        })
        .collect();
    if let Some((ws, writable)) = &run.workspace {
        mounts.push(Mount {
            source: ws.clone(),
            target: PathBuf::from(WORKSPACE),
            writable: *writable,
            view: run.view.clone(),
        });
    }
    let cwd = run
        .cwd
        .clone()
        .or_else(|| run.workspace.as_ref().map(|_| PathBuf::from(WORKSPACE)));
    let cgroup = match &agent.cgroup {
        Some(g) => CgroupSpec {
            procs: g.join_files(),
            detail: "the agent's cgroup (shared with the agent)".into(),
            required: k.config.require_full_sandbox,
        },
        None => CgroupSpec {
            procs: Vec::new(),
            detail: "rlimits only: the agent has no cgroup".into(),
            required: false,
        },
    };
    crate::jail_spec::build(
        &JailBase::of(&k.config),
        policy.sandbox(),
        Occupant {
            agent_id: agent.id,
            program: run.program.clone(),
            argv: run.argv.clone(),
            scratch: scratch.to_path_buf(),
            read_only,
            env: Vec::new(),
            limits: crate::jail_spec::limits(k.config.limits, &policy),
            cgroup,
            role: Role::Tool {
                mounts,
                cwd,
                network: run.network,
            },
        },
    )
}

/// Resolves a program name as the jail would: a bare name (no `/`) against [`JAIL_PATH`], an
/// absolute path as it is. The result is canonical and must lie inside the read-exec runtime
/// (the only executables a tool's jail holds). Relative paths with a `/` are refused.
pub(crate) fn resolve_program(k: &KernelInner, name: &str) -> Result<PathBuf, Errno> {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if name.contains('/') {
        if !name.starts_with('/') {
            return Err(Errno::InvalidArgument {
                reason: format!(
                    "program `{name}` is a relative path; give a bare name (found on {JAIL_PATH}) or an absolute path"
                ),
            });
        }
        vec![PathBuf::from(name)]
    } else if name.is_empty() {
        return Err(Errno::InvalidArgument {
            reason: "argv[0] is empty; give the program to run".into(),
        });
    } else {
        JAIL_PATH
            .split(':')
            .map(|d| PathBuf::from(d).join(name))
            .collect()
    };
    let roots: Vec<PathBuf> = k
        .config
        .runtime
        .read_exec
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    for c in candidates {
        let Ok(real) = std::fs::canonicalize(&c) else {
            continue;
        };
        let executable = std::fs::metadata(&real)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if !executable {
            continue;
        }
        if !roots.iter().any(|r| real.starts_with(r)) {
            return Err(Errno::PermissionDenied {
                rule: String::new(),
                reason: format!(
                    "{} is outside the tools' runtime ({}); only programs there can run",
                    c.display(),
                    k.config
                        .runtime
                        .read_exec
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        return Ok(real);
    }
    Err(Errno::NotFound {
        what: if name.contains('/') {
            format!("program {name}")
        } else {
            format!("program `{name}` on {JAIL_PATH}")
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use agentos_syscalls::Layer;

    use super::*;

    fn output(status: i32, stderr: &str) -> ExecOutput {
        ExecOutput {
            status,
            stdout: b"out".to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            duration_ms: 3,
            truncated: false,
            timed_out: false,
        }
    }

    fn report(seccomp: LayerStatus) -> JailReport {
        JailReport {
            layers: vec![
                Layer {
                    name: "landlock".into(),
                    status: LayerStatus::Active {
                        detail: "abi 7".into(),
                    },
                },
                Layer {
                    name: "seccomp".into(),
                    status: seccomp,
                },
            ],
        }
    }

    const ID: AgentId = AgentId(4);

    #[test]
    fn a_tool_that_ran_is_answered_with_what_it_did_even_the_launchers_exit_code() {
        let full = report(LayerStatus::Active {
            detail: String::new(),
        });
        let out = output(3, "");
        assert_eq!(answer(ID, false, Some(&full), true, out.clone()), Ok(out));
        // The tool itself exited with the launcher's code: the full report says it ran.
        let same = output(EXIT_SANDBOX_FAILED, "tool: no");
        assert_eq!(answer(ID, false, Some(&full), true, same.clone()), Ok(same));
    }

    #[test]
    fn an_agent_that_ended_meanwhile_gets_interrupted_whatever_the_tool_did() {
        let full = report(LayerStatus::Active {
            detail: String::new(),
        });
        let e = answer(ID, true, Some(&full), true, output(0, "")).unwrap_err();
        assert!(
            matches!(&e, Errno::Interrupted { reason } if reason.contains("agent 4 ended")),
            "{e:?}"
        );
    }

    #[test]
    fn a_jail_that_was_not_built_is_internal_with_the_launchers_reason() {
        let stderr = "noise\nagentos-launch: seccomp: cannot load the filter\n";
        for (report, require_full) in [
            (None, false),
            (
                Some(report(LayerStatus::Missing {
                    detail: "not reached".into(),
                })),
                false,
            ),
            (
                Some(report(LayerStatus::Missing {
                    detail: "host has none".into(),
                })),
                true,
            ),
        ] {
            let e = answer(
                ID,
                false,
                report.as_ref(),
                require_full,
                output(EXIT_SANDBOX_FAILED, stderr),
            )
            .unwrap_err();
            assert!(
                matches!(&e, Errno::Internal { reason } if reason.ends_with("agentos-launch: seccomp: cannot load the filter")),
                "{e:?}"
            );
        }
        // Degraded but allowed (a missing layer the host lacks): the tool ran.
        let degraded = report(LayerStatus::Missing {
            detail: "host has none".into(),
        });
        assert!(answer(
            ID,
            false,
            Some(&degraded),
            false,
            output(EXIT_SANDBOX_FAILED, "")
        )
        .is_ok());
        // No launcher line: a reason all the same.
        let e = answer(ID, false, None, true, output(EXIT_SANDBOX_FAILED, "")).unwrap_err();
        assert!(
            matches!(&e, Errno::Internal { reason } if reason.contains("exited before the tool ran")),
            "{e:?}"
        );
    }
}

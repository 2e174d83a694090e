//! The spawner: the one thread that forks. The launcher's parent-death signal fires when the
//! *thread* that forked it ends, so that thread must live as long as the kernel — a tokio
//! worker or blocking-pool thread would not do. Agents (`spawn.rs`) and tools (`tools.rs`)
//! hand it a jail spec and a socket; it knows nothing else of the kernel.
//!
//! An agent's init — and a tool's — is cloned by the zygote (`agentos-launch --zygote`, see
//! `agentos_userspace::launch::zygote`), which this thread starts on the first agent and
//! keeps: the init is born in its namespaces with this thread as its parent (`CLONE_PARENT`),
//! so the kernel reaps it through a pidfd ([`ClonedInit`]) and its parent-death signal
//! watches this thread, as a launcher's does. No launcher is exec'd and none stays above the
//! init. Where the zygote cannot be started or cannot clone (or a spec is larger than a
//! request may be), the agent's launcher is exec'd as before ([`AgentProcess::Exec`]) and
//! reports whatever failed in its jail report.
//!
//! One init is cloned *ahead* ([`Waiting`]): after each clone the zygote is asked for the
//! next init at once, and this thread collects the answer when the next job comes — an
//! agent's spawn or a tool's `Exec`, whose jails are born in the same namespaces. That init
//! is born in its own new user/pid/net/ipc/uts/mount namespaces, maps its ids and waits for
//! its job's spec and descriptors on a socket only this thread holds; the spawn (or the
//! tool's start) is then one `sendmsg`, and the zygote's `clone3` (the namespaces, the
//! network namespace dearest) runs beside the kernel's work for the next job instead of in
//! front of it. A waiting init holds nothing of any agent (the zygote's request buffer is
//! zeroed, no agent's descriptor was ever open in the zygote when it cloned), serves exactly
//! one job, dies with this thread (parent-death signal) and is killed at `kernel stop`
//! ([`Spawner::release`]). A job sharing the host's network gets a clone of its own. A
//! waiting init found dead, or whose socket refuses the request, is reaped, logged, and the
//! job gets a fresh clone (or, failing that, the exec'd launcher).

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use agentos_userspace::launch::{
    zygote, AGENT_FD_ON_STDIN_ENV, SPEC_ENV, TOOL_STDIN_ON_SOCKET_ENV,
};
use tokio::sync::oneshot;

use crate::util::lock;

struct Job {
    launcher: PathBuf,
    spec_json: String,
    /// The spec shares the host's network (no network namespace).
    network: bool,
    agent_fd: OwnedFd,
    /// A tool's stdin is a pipe from the kernel; an agent's is `/dev/null`.
    stdin_piped: bool,
    reply: oneshot::Sender<io::Result<AgentProcess>>,
}

/// What the spawner thread is asked.
enum Message {
    Job(Job),
    /// Kill the waiting init and stop the zygote (the kernel is stopping).
    Release(oneshot::Sender<()>),
}

/// The handle to the spawner thread.
#[derive(Debug)]
pub(crate) struct Spawner {
    tx: Mutex<std::sync::mpsc::Sender<Message>>,
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
        let (tx, rx) = std::sync::mpsc::channel::<Message>();
        std::thread::Builder::new()
            .name("agentos-spawner".into())
            .spawn(move || {
                let _guard = handle.enter();
                let mut zygote = Zygote {
                    disabled: std::env::var_os(NO_ZYGOTE_ENV).is_some_and(|v| v == "0"),
                    ..Zygote::default()
                };
                for message in rx {
                    let job = match message {
                        Message::Job(job) => job,
                        Message::Release(done) => {
                            zygote.stop();
                            let _ = done.send(());
                            continue;
                        }
                    };
                    match zygote.clone_init(&job) {
                        ZygoteAnswer::Exec => {}
                        ZygoteAnswer::Cloned(init) => {
                            let _ = job.reply.send(Ok(AgentProcess::Cloned(init)));
                            // The next init (an agent's or a tool's), cloned while the kernel
                            // serves this one.
                            zygote.ask_ahead();
                            continue;
                        }
                        ZygoteAnswer::Failed(e) => {
                            let _ = job.reply.send(Err(e));
                            continue;
                        }
                    }
                    let child =
                        exec_launcher(job.launcher, &job.spec_json, job.agent_fd, job.stdin_piped);
                    let _ = job.reply.send(child.map(AgentProcess::Exec));
                }
                zygote.stop();
            })?;
        Ok(Spawner { tx: Mutex::new(tx) })
    }

    /// Kills the init waiting for the next job and stops the zygote (both are started again
    /// by a later spawn). Called by the kernel's shutdown.
    pub(crate) async fn release(&self) {
        let (done, rx) = oneshot::channel();
        if lock(&self.tx).send(Message::Release(done)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Starts an agent's init: cloned by the zygote, or its launcher exec'd.
    pub(crate) async fn launch(
        &self,
        launcher: &Path,
        spec_json: String,
        agent_fd: OwnedFd,
        network: bool,
    ) -> io::Result<AgentProcess> {
        self.job(launcher, spec_json, network, agent_fd, false)
            .await
    }

    /// Starts a tool's init with `agent_fd` (its report socket) at fd 3, stdout and stderr
    /// piped, and as stdin the pipe the caller queued on `agent_fd`: cloned by the zygote
    /// (request flag [`zygote::TOOL`]), or — where the zygote cannot — its launcher exec'd
    /// with the socket as fd 0 ([`AGENT_FD_ON_STDIN_ENV`], [`TOOL_STDIN_ON_SOCKET_ENV`]).
    /// `network`: the tool shares the host's network (a provider declared `network`).
    pub(crate) async fn launch_tool(
        &self,
        launcher: &Path,
        spec_json: String,
        agent_fd: OwnedFd,
        network: bool,
    ) -> io::Result<AgentProcess> {
        self.job(launcher, spec_json, network, agent_fd, true).await
    }

    async fn job(
        &self,
        launcher: &Path,
        spec_json: String,
        network: bool,
        agent_fd: OwnedFd,
        stdin_piped: bool,
    ) -> io::Result<AgentProcess> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            launcher: launcher.into(),
            spec_json,
            network,
            agent_fd,
            stdin_piped,
            reply,
        };
        lock(&self.tx)
            .send(Message::Job(job))
            .map_err(|_| io::Error::other("spawner thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("spawner thread dropped the job"))?
    }
}

/// Execs the launcher (an agent or a tool the zygote did not clone).
fn exec_launcher(
    launcher: PathBuf,
    spec_json: &str,
    agent_fd: OwnedFd,
    stdin_piped: bool,
) -> io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(&launcher);
    cmd.env_clear()
        .env(SPEC_ENV, spec_json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    if stdin_piped {
        // A tool: the same as an agent below, but its stdin pipe waits on the socket (queued
        // by `tools::launch`) and the launcher puts it at fd 0. No pre-exec hook, so no fork
        // of the whole kernel either.
        cmd.env(AGENT_FD_ON_STDIN_ENV, "1")
            .env(TOOL_STDIN_ON_SOCKET_ENV, "1")
            .stdin(Stdio::from(agent_fd));
        cmd.spawn()
    } else {
        // An agent: the socket goes in as stdin and the launcher moves it to
        // fd 3 first thing; no hook, so std starts the launcher with
        // posix_spawn (vfork + exec) instead of copying the kernel's memory.
        cmd.env(AGENT_FD_ON_STDIN_ENV, "1")
            .stdin(Stdio::from(agent_fd));
        cmd.spawn()
    }
}

/// An agent's first process as the kernel holds it: what the reaper waits for, what a failed
/// spawn kills, whose pid the signals start from.
#[derive(Debug)]
pub(crate) enum AgentProcess {
    /// The launcher (the init is its child).
    Exec(tokio::process::Child),
    /// The init itself, cloned by the zygote.
    Cloned(ClonedInit),
}

/// The agent's stdout or stderr, read by the kernel.
pub(crate) type Output = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

impl AgentProcess {
    /// Its pid while it is not reaped.
    pub fn id(&self) -> Option<u32> {
        match self {
            AgentProcess::Exec(c) => c.id(),
            AgentProcess::Cloned(c) => c.status.is_none().then_some(c.pid),
        }
    }

    /// Whether the process is the jail's init (cloned) rather than its launcher.
    pub fn is_init(&self) -> bool {
        matches!(self, AgentProcess::Cloned(_))
    }

    /// Kills the jail's whole tree: the init (pid 1 of its pid namespace, whose death takes
    /// every process of the namespace with it) — for a launcher, its only child, or the
    /// launcher itself while it has none yet (the init's parent-death signal then follows).
    /// A cloned init is signalled through its pidfd, so no recycled pid is ever hit.
    pub fn kill_tree(&mut self) {
        match self {
            AgentProcess::Cloned(c) => {
                if let Err(e) = c.start_kill() {
                    tracing::error!(pid = c.pid, error = %e, "cannot kill a jail's init");
                }
            }
            AgentProcess::Exec(c) => {
                let Some(launcher) = c.id() else { return };
                let target = crate::sys::children(launcher)
                    .first()
                    .copied()
                    .unwrap_or(launcher);
                if let Err(e) = crate::sys::kill(target as i32, libc::SIGKILL) {
                    tracing::error!(pid = target, error = %e, "cannot kill a jail's tree");
                    let _ = c.start_kill();
                }
            }
        }
    }

    /// Sends SIGKILL unless it is already reaped.
    pub fn start_kill(&mut self) -> io::Result<()> {
        match self {
            AgentProcess::Exec(c) => c.start_kill(),
            AgentProcess::Cloned(c) => c.start_kill(),
        }
    }

    /// Waits for it to end and reaps it.
    pub async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        match self {
            AgentProcess::Exec(c) => c.wait().await,
            AgentProcess::Cloned(c) => c.wait().await,
        }
    }

    pub fn take_stdout(&mut self) -> Option<Output> {
        match self {
            AgentProcess::Exec(c) => c.stdout.take().map(|o| Box::new(o) as Output),
            AgentProcess::Cloned(c) => c.stdout.take().map(|o| Box::new(o) as Output),
        }
    }

    pub fn take_stderr(&mut self) -> Option<Output> {
        match self {
            AgentProcess::Exec(c) => c.stderr.take().map(|o| Box::new(o) as Output),
            AgentProcess::Cloned(c) => c.stderr.take().map(|o| Box::new(o) as Output),
        }
    }
}

/// An init the zygote cloned: the kernel's child, waited for through its pidfd.
#[derive(Debug)]
pub(crate) struct ClonedInit {
    pid: u32,
    pidfd: tokio::io::unix::AsyncFd<OwnedFd>,
    /// Set once reaped.
    status: Option<std::process::ExitStatus>,
    stdout: Option<tokio::net::unix::pipe::Receiver>,
    stderr: Option<tokio::net::unix::pipe::Receiver>,
}

impl ClonedInit {
    fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        rustix::process::pidfd_send_signal(self.pidfd.get_ref(), rustix::process::Signal::KILL)
            .map_err(io::Error::from)
    }

    async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        use rustix::process::{waitid, WaitId, WaitIdOptions};
        use std::os::fd::AsFd;
        use std::os::unix::process::ExitStatusExt;
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let mut ready = self.pidfd.readable().await?;
            let id = WaitId::PidFd(self.pidfd.get_ref().as_fd());
            match waitid(id, WaitIdOptions::EXITED | WaitIdOptions::NOHANG)? {
                Some(s) => {
                    // The wait status `waitpid` would have given.
                    let raw = match (s.exit_status(), s.terminating_signal()) {
                        (Some(code), _) if s.exited() => (code & 0xff) << 8,
                        (_, Some(sig)) => sig | if s.dumped() { 0x80 } else { 0 },
                        _ => 0,
                    };
                    self.status = Some(std::process::ExitStatus::from_raw(raw));
                }
                None => ready.clear_ready(),
            }
        }
    }
}

/// The zygote as the spawner thread keeps it: started on the first agent, restarted after an
/// I/O failure, given up on when it cannot even start.
#[derive(Default)]
struct Zygote {
    running: Option<(std::process::Child, std::os::unix::net::UnixDatagram)>,
    disabled: bool,
    /// The init cloned ahead for the next job (an agent or a tool).
    waiting: Option<Waiting>,
    /// An ahead request is sent and its answer not read yet.
    pending: bool,
}

/// An init the zygote cloned ahead of its agent: the kernel's child, in its own namespaces,
/// ids mapped, blocked on `sock` until it is sent one agent's request.
struct Waiting {
    pid: u32,
    pidfd: OwnedFd,
    sock: std::os::unix::net::UnixDatagram,
}

impl Waiting {
    /// Whether it has ended (its pidfd is readable then).
    fn ended(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let now = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
    }

    /// Kills it (if still alive) and reaps it; returns how it ended.
    fn kill(self) -> String {
        use rustix::process::{waitid, WaitId, WaitIdOptions};
        use std::os::fd::AsFd;
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
        drop(self.sock);
        match waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED) {
            Ok(Some(s)) => match (s.exit_status(), s.terminating_signal()) {
                (Some(code), _) if s.exited() => format!("exit code {code}"),
                (_, Some(sig)) => format!("signal {sig}"),
                _ => "ended".into(),
            },
            Ok(None) => "ended".into(),
            Err(e) => format!("not reaped: {e}"),
        }
    }
}

/// `AGENTOS_ZYGOTE=0` in the kernel's environment: every agent's launcher is exec'd (the
/// process model before the zygote; for comparison in the benches).
pub const NO_ZYGOTE_ENV: &str = "AGENTOS_ZYGOTE";

/// How long the spawner waits for the zygote's answer before giving it up.
const ZYGOTE_ANSWER: std::time::Duration = std::time::Duration::from_secs(10);

/// What became of a job given to the zygote.
enum ZygoteAnswer {
    Cloned(ClonedInit),
    /// Not cloned, nothing started: exec the launcher.
    Exec,
    /// The request went out and no answer came back: the job fails (an init may hold the
    /// agent's socket, so no launcher may be started on it too).
    Failed(io::Error),
}

impl Zygote {
    /// Clones the job's agent init, or says why not.
    fn clone_init(&mut self, job: &Job) -> ZygoteAnswer {
        if self.disabled || job.spec_json.len() > zygote::MAX_REQUEST {
            return ZygoteAnswer::Exec;
        }
        if self.running.is_none() {
            match start_zygote(&job.launcher) {
                Ok(z) => self.running = Some(z),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the zygote; agents' launchers are exec'd");
                    self.disabled = true;
                    return ZygoteAnswer::Exec;
                }
            }
        }
        // The init cloned ahead serves an agent or a tool; a spec sharing the host's network
        // gets a clone of its own (the waiting init's network namespace is made).
        if !job.network {
            if let Some(waiting) = self.take_waiting() {
                let pid = waiting.pid;
                match hand_over(waiting, job) {
                    Ok(init) => return ZygoteAnswer::Cloned(init),
                    Err(why) => tracing::warn!(
                        pid,
                        "the init cloned ahead {why}; the job gets a fresh clone"
                    ),
                }
            }
        }
        // The ahead answer, if one is coming, is read first (answers come in order).
        self.collect_ahead();
        let Some((_, sock)) = self.running.as_ref() else {
            return ZygoteAnswer::Exec;
        };
        match request(sock, job) {
            Ok(Ok(init)) => ZygoteAnswer::Cloned(init),
            Ok(Err(errno)) => {
                tracing::debug!(
                    errno,
                    "the zygote cannot clone an init; the launcher is exec'd"
                );
                ZygoteAnswer::Exec
            }
            Err(Unsent(e)) => {
                tracing::warn!(error = %e, "the zygote failed; restarting it on the next agent");
                self.stop();
                ZygoteAnswer::Exec
            }
            Err(Unanswered(e)) => {
                tracing::warn!(error = %e, "the zygote did not answer; restarting it on the next agent");
                self.stop();
                ZygoteAnswer::Failed(e)
            }
        }
    }

    /// Asks the zygote for the next init (an agent's or a tool's), unless one waits or is
    /// coming already. The answer is read when the next job comes ([`Zygote::take_waiting`]).
    fn ask_ahead(&mut self) {
        if self.pending || self.waiting.is_some() {
            return;
        }
        let Some((_, sock)) = self.running.as_ref() else {
            return;
        };
        match sock.send(&[zygote::AHEAD]) {
            Ok(_) => self.pending = true,
            Err(e) => {
                tracing::warn!(error = %e, "the zygote failed; restarting it on the next agent");
                self.stop();
            }
        }
    }

    /// Reads the answer to the ahead request, if one is pending.
    fn collect_ahead(&mut self) {
        if !std::mem::take(&mut self.pending) {
            return;
        }
        let Some((_, sock)) = self.running.as_ref() else {
            return;
        };
        match receive_raw::<2>(sock) {
            Ok((pid, fds)) => match (u32::try_from(pid), fds) {
                (Ok(pid), Some([pidfd, sock])) if pid > 0 => {
                    self.waiting = Some(Waiting {
                        pid,
                        pidfd,
                        sock: sock.into(),
                    })
                }
                (Err(_), None) => tracing::debug!(
                    errno = -pid,
                    "the zygote cannot clone an init ahead; the next job gets a fresh clone"
                ),
                _ => {
                    tracing::warn!("the zygote answered nonsense; restarting it on the next agent");
                    self.stop();
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "the zygote did not answer; restarting it on the next agent");
                self.stop();
            }
        }
    }

    /// The init cloned ahead, if there is one and it is alive; one found dead is reaped and
    /// logged.
    fn take_waiting(&mut self) -> Option<Waiting> {
        self.collect_ahead();
        let waiting = self.waiting.take()?;
        if waiting.ended() {
            let pid = waiting.pid;
            let how = waiting.kill();
            tracing::warn!(
                pid,
                "the init cloned ahead was found dead ({how}); the job gets a fresh clone"
            );
            return None;
        }
        Some(waiting)
    }

    /// Kills and reaps the waiting init (reading a pending answer first), then closes the
    /// zygote's socket (it exits on the end of input), kills it if it lingers, reaps it.
    fn stop(&mut self) {
        if self.pending {
            self.collect_ahead();
        }
        if let Some(waiting) = self.waiting.take() {
            waiting.kill();
        }
        self.pending = false;
        if let Some((mut child, sock)) = self.running.take() {
            drop(sock);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `launcher --zygote <our pid>` on one end of a new `SOCK_SEQPACKET` pair.
fn start_zygote(
    launcher: &Path,
) -> io::Result<(std::process::Child, std::os::unix::net::UnixDatagram)> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let child = std::process::Command::new(launcher)
        .arg(zygote::ZYGOTE_ARG)
        .arg(std::process::id().to_string())
        .env_clear()
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    // A SEQPACKET socket keeps message boundaries like a datagram socket: std's type for
    // it sends and receives whole messages.
    let sock = std::os::unix::net::UnixDatagram::from(ours);
    sock.set_read_timeout(Some(ZYGOTE_ANSWER))?;
    Ok((child, sock))
}

/// Hands `job` to the init cloned ahead: the same request the zygote gets, on the init's own
/// socket. On an error the init is killed and reaped, and the error says what became of it.
fn hand_over(waiting: Waiting, job: &Job) -> Result<ClonedInit, String> {
    let pipes = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).and_then(|out| {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map(|err| (out, err))
    });
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => {
            let pid = waiting.pid;
            return Err(format!(
                "(pid {pid}) was killed ({}): no pipe: {e}",
                waiting.kill()
            ));
        }
    };
    let sent = send_request(&waiting.sock, job, &out_w, &err_w);
    drop((out_w, err_w));
    if let Err(e) = sent {
        let pid = waiting.pid;
        let how = waiting.kill();
        return Err(format!(
            "(pid {pid}) refused its request ({e}) and was killed ({how})"
        ));
    }
    let Waiting { pid, pidfd, sock } = waiting;
    // The init has its request; closing our end tells it no other will come.
    drop(sock);
    let make = || -> io::Result<ClonedInit> {
        Ok(ClonedInit {
            pid,
            pidfd: crate::sys::async_fd_readable(pidfd)?,
            status: None,
            stdout: Some(tokio::net::unix::pipe::Receiver::from_owned_fd(out_r)?),
            stderr: Some(tokio::net::unix::pipe::Receiver::from_owned_fd(err_r)?),
        })
    };
    make().map_err(|e| format!("(pid {pid}) cannot be watched: {e}"))
}

/// Why a request got no answer.
enum RequestError {
    /// Nothing reached the zygote.
    Unsent(io::Error),
    /// The request was sent; the answer is missing or broken.
    Unanswered(io::Error),
}
use RequestError::{Unanswered, Unsent};

/// One request: the spec and three descriptors out, the init's pid and pidfd (or `-errno`)
/// back. The outer error is the zygote's failure, the inner one its refusal to clone.
fn request(
    sock: &std::os::unix::net::UnixDatagram,
    job: &Job,
) -> Result<Result<ClonedInit, i32>, RequestError> {
    let (out_r, out_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| Unsent(e.into()))?;
    let (err_r, err_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| Unsent(e.into()))?;
    send_request(sock, job, &out_w, &err_w).map_err(Unsent)?;
    drop((out_w, err_w));
    receive_answer(sock, out_r, err_r).map_err(Unanswered)
}

fn send_request(
    sock: &std::os::unix::net::UnixDatagram,
    job: &Job,
    out_w: &OwnedFd,
    err_w: &OwnedFd,
) -> io::Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::os::fd::AsFd;
    let fds = [job.agent_fd.as_fd(), out_w.as_fd(), err_w.as_fd()];
    let flags = [if job.network {
        zygote::SHARE_NETWORK
    } else {
        0
    } | if job.stdin_piped { zygote::TOOL } else { 0 }];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let sent = sendmsg(
        sock,
        &[
            io::IoSlice::new(&flags),
            io::IoSlice::new(job.spec_json.as_bytes()),
        ],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != 1 + job.spec_json.len() {
        return Err(io::Error::other("the zygote took part of a request"));
    }
    Ok(())
}

/// One answer of the zygote: its `i32` and exactly `N` descriptors, or none.
fn receive_raw<const N: usize>(
    sock: &std::os::unix::net::UnixDatagram,
) -> io::Result<(i32, Option<[OwnedFd; N]>)> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut answer = [0u8; 4];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(
            sock,
            &mut [io::IoSliceMut::new(&mut answer)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = message {
            fds.extend(got);
        }
    }
    if got.bytes != 4 {
        return Err(io::Error::other("the zygote closed its socket"));
    }
    let fds = match fds.len() {
        0 => None,
        _ => Some(
            fds.try_into()
                .map_err(|_| io::Error::other("the zygote answered with other descriptors"))?,
        ),
    };
    Ok((i32::from_le_bytes(answer), fds))
}

/// The zygote's answer: the init (its pid, its pidfd, and the read ends of its output pipes
/// `out_r` and `err_r`), or the errno of the failed clone.
fn receive_answer(
    sock: &std::os::unix::net::UnixDatagram,
    out_r: OwnedFd,
    err_r: OwnedFd,
) -> io::Result<Result<ClonedInit, i32>> {
    let (pid, fds) = receive_raw::<1>(sock)?;
    let (pid, pidfd) = match (u32::try_from(pid), fds) {
        (Ok(pid), Some([fd])) if pid > 0 => (pid, fd),
        (Err(_), None) => return Ok(Err(-pid)),
        _ => return Err(io::Error::other("the zygote answered nonsense")),
    };
    let pidfd = crate::sys::async_fd_readable(pidfd)?;
    Ok(Ok(ClonedInit {
        pid,
        pidfd,
        status: None,
        stdout: Some(tokio::net::unix::pipe::Receiver::from_owned_fd(out_r)?),
        stderr: Some(tokio::net::unix::pipe::Receiver::from_owned_fd(err_r)?),
    }))
}

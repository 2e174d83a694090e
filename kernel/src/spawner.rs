//! The spawner: the one thread that forks. The launcher's parent-death signal fires when the
//! *thread* that forked it ends, so that thread must live as long as the kernel — a tokio
//! worker or blocking-pool thread would not do. Agents (`spawn.rs`) and tools (`tools.rs`)
//! hand it a jail spec and a socket; it knows nothing else of the kernel.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use agentos_userspace::launch::{AGENT_FD_ON_STDIN_ENV, SPEC_ENV, TOOL_STDIN_ON_SOCKET_ENV};
use tokio::sync::oneshot;

use crate::util::lock;

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
                        // A tool: the same as an agent below, but its stdin pipe waits on the
                        // socket (queued by `tools::launch`) and the launcher puts it at fd 0.
                        // No pre-exec hook, so no fork of the whole kernel either.
                        cmd.env(AGENT_FD_ON_STDIN_ENV, "1")
                            .env(TOOL_STDIN_ON_SOCKET_ENV, "1")
                            .stdin(Stdio::from(job.agent_fd));
                        let child = cmd.spawn();
                        drop(cmd);
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

    pub(crate) async fn launch(
        &self,
        launcher: &Path,
        spec_json: String,
        agent_fd: OwnedFd,
    ) -> io::Result<tokio::process::Child> {
        self.launch_with(launcher, spec_json, agent_fd, false).await
    }

    /// Starts the launcher with `agent_fd` at fd 3 (handed over as fd 0; the launcher puts it
    /// at fd 3, see [`AGENT_FD_ON_STDIN_ENV`]), stdout and stderr piped, and stdin `/dev/null`
    /// (an agent) or, `stdin_piped` (a tool), the pipe the caller queued on `agent_fd` (see
    /// [`TOOL_STDIN_ON_SOCKET_ENV`]).
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

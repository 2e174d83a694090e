//! Running a kernel as a daemon process (`agentos-kernel`, `agentctl kernel start`).
//!
//! The binary is thin (mini-redis style): it parses [`DaemonArgs`], detaches and starts
//! tracing, then hands over to [`main`], which builds the [`Config`] (one builder:
//! [`KernelOptions::config`]), starts a runtime and [`run`]s the kernel until it is told to
//! stop.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::options::{KernelOptions, OptionsError};
use crate::{Config, Kernel, KernelError};

/// The agentos kernel: runs sandboxed agents and answers their syscalls under policy.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
pub struct DaemonArgs {
    /// The kernel's state dir (control socket, recorder, agent logs).
    #[arg(long, env = "AGENTOS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The sandbox launcher (default: `agentos-launch` beside this binary).
    #[arg(long)]
    pub launcher: Option<PathBuf>,
    /// Put this directory (holding an `agentos/` package) on agents' PYTHONPATH instead of
    /// the SDK embedded in the kernel.
    #[arg(long, value_name = "DIR")]
    pub python_sdk: Option<PathBuf>,
    /// The kernel's tuning, shared with `agentctl kernel start` and `agentctl run`.
    #[command(flatten)]
    pub options: KernelOptions,
    /// Write one line to this inherited descriptor once the control socket answers.
    #[arg(long)]
    pub ready_fd: Option<i32>,
    /// Start a new session, detached from the terminal (used by `agentctl kernel start`).
    #[arg(long)]
    pub detach: bool,
}

impl DaemonArgs {
    /// The daemon's configuration: [`KernelOptions::config`] on the state dir (default:
    /// [`crate::config::default_state_dir`]), with the daemon's own launcher and SDK paths.
    pub fn config(&self) -> Result<Config, OptionsError> {
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(crate::config::default_state_dir);
        let mut config = self.options.config(state_dir)?;
        if let Some(l) = &self.launcher {
            config.launcher = l.clone();
        }
        config.python_sdk = self.python_sdk.clone();
        Ok(config)
    }
}

/// The daemon after argument parsing and tracing: builds the config, opens the readiness
/// pipe, runs the kernel on a two-worker runtime until it stops. Exit 2 for options that do
/// not make a config, 1 when the kernel fails; every failure is one line on stderr naming
/// each cause in its chain.
pub fn main(args: DaemonArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("agentos-kernel: {e}");
            return ExitCode::from(2);
        }
    };
    let ready = match args.ready_fd.map(ready_pipe).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentos-kernel: --ready-fd: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentos-kernel: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(config, ready));
    // The log is sealed and the socket gone: a blocking task still running (a host-I/O read,
    // a log follower) must not keep the process — and its state-dir lock — alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("agentos-kernel: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a kernel until SIGTERM, SIGINT or a control `Shutdown`, then shuts it down
/// gracefully. `ready` (a pipe from `agentctl kernel start`) gets one line once the control
/// socket answers.
pub async fn run(config: Config, ready: Option<std::fs::File>) -> Result<(), KernelError> {
    use tokio::signal::unix::{signal, SignalKind};
    let kernel = Kernel::start(config).await?;
    let mut term = signal(SignalKind::terminate()).map_err(KernelError::Spawner)?;
    let mut int = signal(SignalKind::interrupt()).map_err(KernelError::Spawner)?;
    tracing::info!(state_dir = %kernel.config().state_dir.display(), pid = std::process::id(), "kernel ready");
    if let Some(mut ready) = ready {
        let _ = writeln!(ready, "ready {}", std::process::id());
    }
    let reason = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = kernel.shutdown_requested() => "agentctl kernel stop",
    };
    tracing::info!(reason, "kernel shutting down");
    kernel.shutdown(reason).await;
    Ok(())
}

/// Opens the readiness pipe `fd` handed over by `agentctl kernel start`.
pub fn ready_pipe(fd: i32) -> std::io::Result<std::fs::File> {
    crate::sys::file_from_fd(fd)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_daemon_parses_what_agentctl_kernel_start_hands_it() {
        let dir = tempfile::tempdir().unwrap();
        let options = KernelOptions {
            term_grace_ms: 1,
            allow_degraded_sandbox: true,
            providers: vec!["api_call=/bin/true".into()],
            ..KernelOptions::default()
        };
        let mut argv: Vec<String> = vec!["agentos-kernel".into(), "--state-dir".into()];
        argv.push(dir.path().display().to_string());
        argv.extend(options.to_args());
        argv.extend(
            [
                "--ready-fd",
                "9",
                "--detach",
                "--launcher",
                "/l",
                "--python-sdk",
                "/p",
            ]
            .map(String::from),
        );
        let args = DaemonArgs::try_parse_from(argv).unwrap();
        assert_eq!(args.options, options);
        assert_eq!((args.ready_fd, args.detach), (Some(9), true));
        let config = args.config().unwrap();
        assert_eq!(config.state_dir, dir.path());
        assert_eq!(config.launcher, PathBuf::from("/l"));
        assert_eq!(config.python_sdk, Some(PathBuf::from("/p")));
        assert!(!config.require_full_sandbox);
        assert_eq!(config.providers.len(), 1);
    }
}

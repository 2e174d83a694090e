//! `agentos-kernel`: the agentos kernel daemon. Usually started by `agentctl kernel start`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// The agentos kernel: runs sandboxed agents and answers their syscalls under policy.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The kernel's state dir (control socket, recorder, agent logs).
    #[arg(long, env = "AGENTOS_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The sandbox launcher (default: `agentos-launch` beside this binary).
    #[arg(long)]
    launcher: Option<PathBuf>,
    /// Put this directory (holding an `agentos/` package) on agents' PYTHONPATH instead of
    /// the SDK embedded in the kernel.
    #[arg(long, value_name = "DIR")]
    python_sdk: Option<PathBuf>,
    /// The kernel's tuning, shared with `agentctl kernel start` and `agentctl run`.
    #[command(flatten)]
    options: agentos_kernel::options::KernelOptions,
    /// Write one line to this inherited descriptor once the control socket answers.
    #[arg(long)]
    ready_fd: Option<i32>,
    /// Start a new session, detached from the terminal (used by `agentctl kernel start`).
    #[arg(long)]
    detach: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.detach {
        // Fails only if we already lead a process group, which a detached start never does.
        let _ = rustix::process::setsid();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENTOS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let state_dir = args
        .state_dir
        .unwrap_or_else(agentos_kernel::config::default_state_dir);
    let mut config = match args.options.config(state_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("agentos-kernel: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(l) = args.launcher {
        config.launcher = l;
    }
    config.python_sdk = args.python_sdk;
    let ready = match args
        .ready_fd
        .map(agentos_kernel::daemon::ready_pipe)
        .transpose()
    {
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
    match runtime.block_on(agentos_kernel::daemon::run(config, ready)) {
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

//! `agentos-kernel`: the agentos kernel daemon. Usually started by `agentctl kernel start`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Run agents even when a sandbox layer is missing on this host (recorded per agent).
    #[arg(long)]
    allow_degraded_sandbox: bool,
    /// Milliseconds between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5000)]
    term_grace_ms: u64,
    /// Milliseconds a call that needs operator approval waits before it is denied with
    /// ApprovalTimeout.
    #[arg(long, default_value_t = 300_000)]
    approval_timeout_ms: u64,
    /// A base policy every agent's own policy composes with: a call is allowed only if both
    /// allow it.
    #[arg(long, value_name = "FILE")]
    base_policy: Option<PathBuf>,
    /// Put this directory (holding an `agentos/` package) on agents' PYTHONPATH instead of
    /// the SDK embedded in the kernel.
    #[arg(long, value_name = "DIR")]
    python_sdk: Option<PathBuf>,
    /// Flight recorder durability: `always` answers a syscall only after its record is
    /// fsynced (group commit); `batch` answers once it is written and fsyncs within 50 ms.
    #[arg(long, default_value_t = agentos_kernel::recorder::Durability::default())]
    durability: agentos_kernel::recorder::Durability,
    /// Bytes each agent may keep across its writable tree (working memory, persistent
    /// memory, growth of workspace files).
    #[arg(long, default_value_t = 64 << 20)]
    quota_bytes: u64,
    /// Files each agent may keep across its writable tree.
    #[arg(long, default_value_t = 4096)]
    quota_files: u64,
    /// The low-disk watermark: while the filesystem of the state dir has fewer free bytes,
    /// calls are refused (QuotaExceeded, not performed) and spawns are refused (0: none).
    #[arg(long, default_value_t = agentos_kernel::recorder::DEFAULT_MIN_FREE_BYTES)]
    min_free_bytes: u64,
    /// Bytes of flight-recorder records and blobs each agent may cause; an agent over it is
    /// ended with SIGKILL (recorded as a SandboxLimit `recorder_bytes`) (0: no limit).
    #[arg(long, default_value_t = agentos_kernel::recorder::DEFAULT_SHARE_BYTES)]
    recorder_share_bytes: u64,
    /// The per-agent kernel memory budget, in bytes: requests read but not yet answered plus
    /// answers not yet written into the agent's socket. When it is spent the kernel stops
    /// reading that agent's socket until the agent reads its answers (min 64 KiB).
    #[arg(long, default_value_t = agentos_kernel::config::DEFAULT_AGENT_MEMORY_BYTES)]
    agent_memory_bytes: u64,
    /// Descriptors (`Open`) each agent may hold at once.
    #[arg(long, default_value_t = 64)]
    max_fds: u32,
    /// Host file operations (workspace, persistent memory, checkpoints) running at once,
    /// all agents together; a call past it waits for a slot.
    #[arg(long, default_value_t = agentos_kernel::hostio::DEFAULT_IO_THREADS)]
    io_threads: usize,
    /// Host file operations one agent may have running at once; its further calls wait.
    #[arg(long, default_value_t = agentos_kernel::hostio::DEFAULT_IO_PER_AGENT)]
    io_per_agent: usize,
    /// Bytes each agent's (and each tool's) scratch directory may hold: a tmpfs of this size.
    #[arg(long, default_value_t = agentos_userspace::launch::spec::DEFAULT_SCRATCH_BYTES)]
    scratch_bytes: u64,
    /// Bytes of each agent's output.log kept on disk: its first half and a rolling last half.
    #[arg(long, default_value_t = agentos_kernel::config::DEFAULT_LOG_BYTES)]
    log_bytes: u64,
    /// Bytes of checkpoint files each agent may hold.
    #[arg(long, default_value_t = agentos_kernel::config::DEFAULT_CHECKPOINT_BYTES)]
    checkpoint_bytes: u64,
    /// Calls each agent may have waiting for operator approval at once; the next one is
    /// refused with Busy (recorded).
    #[arg(long, default_value_t = agentos_kernel::config::DEFAULT_MAX_APPROVALS_PER_AGENT)]
    max_approvals_per_agent: usize,
    /// A tool provider for a `Call` action (repeatable):
    /// ACTION=PROGRAM[,network][,ro=PATH][,rw=DIR][,arg=VALUE].
    #[arg(long = "provider", value_name = "ACTION=PROGRAM[,OPTIONS]")]
    providers: Vec<String>,
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
    let mut config = agentos_kernel::Config::new(
        args.state_dir
            .unwrap_or_else(agentos_kernel::config::default_state_dir),
    );
    if let Some(l) = args.launcher {
        config.launcher = l;
    }
    config.require_full_sandbox = !args.allow_degraded_sandbox;
    config.python_sdk = args.python_sdk;
    config.term_grace = Duration::from_millis(args.term_grace_ms);
    config.approval_timeout = Duration::from_millis(args.approval_timeout_ms);
    config.recorder.durability = args.durability;
    config.recorder.min_free_bytes = args.min_free_bytes;
    config.recorder.share_bytes = args.recorder_share_bytes;
    config.working_quota = (args.quota_bytes, args.quota_files);
    config.max_fds = args.max_fds;
    config.io_threads = args.io_threads.max(1);
    config.io_per_agent = args.io_per_agent.max(1);
    config.agent_memory_bytes = args.agent_memory_bytes;
    config.limits.scratch_bytes = args.scratch_bytes;
    config.disk = agentos_kernel::config::DiskBudget {
        log_bytes: args.log_bytes,
        checkpoint_bytes: args.checkpoint_bytes,
    };
    config.max_approvals_per_agent = args.max_approvals_per_agent;
    if let Some(path) = &args.base_policy {
        if let Err(e) = config.load_base_policy(path) {
            eprintln!("agentos-kernel: --base-policy does not load, kernel not started:\n{e}");
            return ExitCode::from(2);
        }
    }
    for text in &args.providers {
        match agentos_kernel::providers::Provider::parse(text) {
            Ok(p) => config.providers.push(p),
            Err(e) => {
                eprintln!("agentos-kernel: --provider: {e}; kernel not started");
                return ExitCode::from(2);
            }
        }
    }
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

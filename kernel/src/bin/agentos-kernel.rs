//! `agentos-kernel`: the agentos kernel daemon. Usually started by `agentctl kernel start`.
//!
//! Thin by design: parse the arguments, detach, start tracing, then hand over to
//! [`agentos_kernel::daemon::main`] (config, runtime, [`agentos_kernel::daemon::run`]).

use std::process::ExitCode;

use agentos_kernel::daemon::DaemonArgs;
use clap::Parser;

fn main() -> ExitCode {
    let args = DaemonArgs::parse();
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
    agentos_kernel::daemon::main(args)
}

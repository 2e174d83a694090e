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
    // Colour only on a terminal (and never under NO_COLOR): a detached kernel's stderr is
    // `STATE_DIR/kernel.log`, which must read as plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENTOS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    agentos_kernel::daemon::main(args)
}

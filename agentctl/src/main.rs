//! `agentctl`: the operator's command line for agentos.
//!
//! Thin by design: parse the command line, then talk to a kernel over its control socket
//! (`client`), or — for `agentctl run` — start an ephemeral kernel in this process (`run`).
//! Only six commands use the kernel crate: `run` and `replay run` (a kernel in this
//! process), `replay what-if` and `policy suggest` (the kernel's classification of recorded
//! calls), `kernel start` (the kernel's flags, [`agentos_kernel::options::KernelOptions`], and
//! their `--provider` check) and `kernel stop` (the daemon's parser, to read the grace period
//! from its command line). Every other command speaks the control protocol (`agentos_syscalls`) or reads the
//! flight recorder (`agentos_recorder`) and needs no kernel code.
//! Exit codes (DESIGN §9): 0 done, 1 failed, 2 usage, 3 denied by policy, 4 not found; `run`
//! and `wait` exit with the agent's own code; `recorder verify` has its own (1 tampered,
//! 2 truncated, 5 an unsealed tail with no kernel running). A closed stdout (`| head -1`)
//! ends any command quietly with 0, or, while a kernel runs in this process, drops the output
//! ([`stdout`], where SIGPIPE is left ignored and why).
#![forbid(unsafe_code)]

#[macro_use]
mod safe;

mod approvals;
mod cli;
mod client;
mod commands;
mod output;
mod policy;
mod recorder;
mod replay;
mod run;
mod since;
mod stdout;
mod stop;
mod suggest;
mod view;

use std::process::ExitCode;

use clap::Parser;

/// An error for the operator: what went wrong, what to do, and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
    pub hint: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn failed(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(1, message, hint)
    }

    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(2, message, hint)
    }
}

impl From<agentos_syscalls::control::ControlError> for CliError {
    fn from(e: agentos_syscalls::control::ControlError) -> Self {
        CliError::new(e.kind.exit_code() as u8, e.message, e.hint)
    }
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::dispatch(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The kernel's messages may quote agent strings: escaped, line breaks kept.
            say_err!("agentctl: error: {}", e.message);
            if !e.hint.is_empty() {
                say_err!("  hint: {}", e.hint);
            }
            ExitCode::from(e.code)
        }
    }
}

//! `agentctl`: the operator's command line for agentos.
//!
//! Thin by design: parse the command line, then talk to a kernel over its control socket
//! (`client`), or — for `agentctl run` — start an ephemeral kernel in this process (`run`).
//! Only these commands use the kernel crate: `run` and `replay run` (a kernel in this
//! process), `replay what-if` and `policy suggest` (the kernel's classification of recorded
//! calls), `kernel start` (the kernel's flags, [`agentos_kernel::options::KernelOptions`], and
//! their `--provider` check), `kernel stop` (the daemon's parser, to read the grace period
//! from its command line), and the views of the state dir in `ops` (`logs` and `ps -a`
//! without a kernel, `memory`, `checkpoints`, `rm`/`prune` without a kernel), through
//! [`agentos_kernel::history`]. Every other command speaks the control protocol (`agentos_syscalls`) or reads the
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
mod ops;
mod output;
mod policy;
mod recorder;
mod replay;
mod run;
mod since;
mod stdout;
mod stop;
mod suggest;
mod tlog;
mod view;
mod witness;

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

/// The commands whose program comes after `--`.
const PROGRAM_COMMANDS: [&str; 3] = ["run", "spawn", "replay"];

/// For a command line clap refused: when it is `run`/`spawn`/`replay run` without `--` and
/// an argument was unexpected (the program, or one of its flags), the same line with `--`
/// put before that argument.
fn missing_separator_hint(argv: &[String], e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument || argv.iter().any(|a| a == "--") {
        return None;
    }
    let sub = argv
        .iter()
        .skip(1)
        .position(|a| PROGRAM_COMMANDS.contains(&a.as_str()))?
        + 1;
    let Some(ContextValue::String(bad)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let at = argv.iter().skip(sub + 1).position(|a| a == bad)? + sub + 1;
    let mut fixed: Vec<String> = argv.to_vec();
    fixed[0] = "agentctl".into();
    fixed.insert(at, "--".into());
    let quoted: Vec<String> = fixed
        .iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect();
    Some(format!(
        "put `--` before the program and its arguments: {}",
        quoted.join(" ")
    ))
}

fn main() -> ExitCode {
    let argv_os: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = match cli::Cli::try_parse_from(&argv_os) {
        Ok(args) => args,
        Err(e) => {
            let argv: Vec<String> = argv_os
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let hint = missing_separator_hint(&argv, &e);
            let _ = e.print();
            if let Some(hint) = hint {
                say_err!("  hint: {}", hint);
            }
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
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

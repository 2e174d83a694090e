//! Test-agent modes of the operator suite (`tests/tests/suite/operator.rs`): agents that try to
//! spoof or hide what the operator reads.
//!
//! - `op-approval-flood N`: sends N gated writes at once (each waits for approval), their
//!   paths full of terminal tricks ([`hostile_path`]) and longer than the display bound; prints
//!   `call I: refused KIND` for each refused one (the kernel's per-agent bound answers the
//!   extra ones `Busy` at once) and `call I: KIND` for the others once answered.
//! - `op-print`: prints `begin`, a tab, [`TRICKS`] and `end` on stdout (no syscalls), then
//!   exits 0.

use agentos_sdk::{AsyncClient, SdkError};
use agentos_syscalls::Errno;

/// What a hostile agent puts in a path to rewrite the operator's screen: erase the line and
/// print a fake row, a bidi override, isolates, a zero-width space, C1 controls.
pub const TRICKS: &str = "\x1b[2K\rID 1 agent 1 file_write /mem/working/gated/fine\u{202e}fdp.exe\u{2066}\u{2069}\u{200b}\u{9b}31m\x07\n";

/// The `i`th hostile resource: under `/mem/working/gated/`, with [`TRICKS`] in every
/// component, about 2 KiB long (over the 512-byte display bound, within PATH_MAX and NAME_MAX).
pub fn hostile_path(i: usize) -> String {
    let component = format!("{i}{TRICKS}{}", "x".repeat(150));
    let mut p = String::from("/mem/working/gated");
    for _ in 0..12 {
        p.push('/');
        p.push_str(&component);
    }
    p
}

fn line(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// Runs mode `mode` (`op-…`) with its arguments.
pub fn main(mode: &str, rest: &[String]) -> Result<u8, SdkError> {
    match mode {
        "op-print" => {
            line(&format!("begin\t{TRICKS}end"));
            Ok(0)
        }
        "op-approval-flood" => {
            let n: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(17);
            flood(n)
        }
        other => {
            line(&format!("unknown operator mode {other}"));
            Ok(2)
        }
    }
}

fn flood(n: usize) -> Result<u8, SdkError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SdkError::Frame(agentos_syscalls::frame::FrameError::Io(e)))?;
    rt.block_on(async move {
        let c = AsyncClient::connect().await?;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let c = c.clone();
            set.spawn(async move { (i, c.write(&hostile_path(i), b"data").await) });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((i, got)) = joined else { continue };
            match got {
                Ok(_) => line(&format!("call {i}: written")),
                Err(SdkError::Errno(e @ Errno::Busy { .. })) => {
                    line(&format!("call {i}: refused {} {e}", e.kind()))
                }
                Err(SdkError::Errno(e)) => line(&format!("call {i}: {}", e.kind())),
                Err(e) => return Err(e),
            }
        }
        Ok(0)
    })
}

//! Test-agent modes of the operator suite (`tests/tests/suite/operator.rs`): agents that try to
//! spoof or hide what the operator reads.
//!
//! - `op-approval-flood N`: sends N gated writes at once (each waits for approval), their
//!   paths full of terminal tricks ([`hostile_path`]) and longer than the display bound; prints
//!   `call I: refused KIND` for each refused one (the kernel's per-agent bound answers the
//!   extra ones `Busy` at once) and `call I: KIND` for the others once answered.
//! - `op-print`: prints `begin`, a tab, [`TRICKS`] and `end` on stdout (no syscalls), then
//!   exits 0.
//! - `op-denials`: under a permissive policy, one policy violation the kernel lets through
//!   (a write to `/mem/semantic/x`, which no rule allows) and sandbox refusals of an
//!   unmodified program: `/etc/shadow`, a write to `/tmp`, a UDP socket twice and a TCP socket;
//!   prints each outcome, then `done`, and exits 0.
//! - `op-socket-kinds`: asks for a socket of every type (0–15) in each network domain
//!   (IPv4, IPv6, packet): 48 kinds the sandbox refuses; prints how many were refused, then
//!   `done`.
//! - `op-gated PATH`: writes [`GATED_PAYLOAD`] (control characters, a byte that is not UTF-8)
//!   to PATH (a rule gates it with `requires_approval`), prints `answer: …` once answered,
//!   then `ready` and waits to be ended.

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

/// What `op-gated` asks to write: text with an escape sequence, a newline, a NUL and a byte
/// that is not UTF-8.
pub const GATED_PAYLOAD: &[u8] = b"hello\x1b[31mred\n\x00\xff";

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
        "op-denials" => denials(),
        "op-socket-kinds" => {
            use rustix::net::{socket, AddressFamily, SocketType};
            let mut refused = 0;
            for family in [
                AddressFamily::INET,
                AddressFamily::INET6,
                AddressFamily::PACKET,
            ] {
                for ty in 0..16 {
                    if socket(family, SocketType::from_raw(ty), None).is_err() {
                        refused += 1;
                    }
                }
            }
            line(&format!("refused {refused} of 48"));
            line("done");
            Ok(0)
        }
        "op-gated" => {
            let client = agentos_sdk::Client::connect()?;
            let path = rest
                .first()
                .map(String::as_str)
                .unwrap_or("/mem/working/gated/x");
            match client.write(path, GATED_PAYLOAD) {
                Ok(n) => line(&format!("answer: wrote {n}")),
                Err(SdkError::Errno(e)) => line(&format!("answer: refused {} {e}", e.kind())),
                Err(e) => return Err(e),
            }
            line("ready");
            loop {
                std::thread::park();
            }
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

fn denials() -> Result<u8, SdkError> {
    let client = agentos_sdk::Client::connect()?;
    match client.write("/mem/semantic/x", b"kept") {
        Ok(n) => line(&format!("violation: wrote {n}")),
        Err(SdkError::Errno(e)) => line(&format!("violation: refused {e}")),
        Err(e) => return Err(e),
    }
    let shown = |what: &str, r: std::io::Result<()>| match r {
        Ok(()) => line(&format!("{what}: ESCAPED")),
        Err(e) => line(&format!("{what}: {e}")),
    };
    shown("shadow", std::fs::read("/etc/shadow").map(drop));
    shown("tmp", std::fs::write("/tmp/agentos-denial-probe", b"x"));
    for _ in 0..2 {
        shown("udp", std::net::UdpSocket::bind("0.0.0.0:0").map(drop));
    }
    shown(
        "tcp",
        std::net::TcpStream::connect(("127.0.0.1", 9)).map(drop),
    );
    line("done");
    Ok(0)
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

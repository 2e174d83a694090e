//! Test-agent modes that push the flight recorder (`agentos-test-agent MODE ARGS…`):
//!
//! - `rec-big`: one `Exec` whose argument fills the frame limit, then one `CheckPolicy` with
//!   MiB-long action and resource strings; each answer printed (`exec: …`, `check: …`), then
//!   `big done`; exit 0
//! - `rec-flood LEN`: `CheckPolicy` with a resource of about LEN bytes (200-byte names) as fast as possible until the
//!   kernel ends the agent (or a call fails: `flood failed after N: …`, exit 1); prints
//!   `flood N` after each 16 calls
//! - `rec-poll`: a small `CheckPolicy` every 20 ms forever; prints `answer N ok` or
//!   `answer N err KIND: MESSAGE` each time the kind of answer changes (N counts the changes)

use crate::say;
use agentos_sdk::{Client, SdkError};
use agentos_syscalls::{Errno, Reply, Syscall};

fn answer(r: &Result<Reply, SdkError>) -> String {
    match r {
        Ok(Reply::Exec(e)) => format!("ok status={}", e.status),
        Ok(Reply::Decision(d)) => format!("ok allowed={}", d.allowed),
        Ok(other) => format!("ok {other:?}"),
        Err(SdkError::Errno(e)) => format!("err {} {}", e.kind(), e.to_string().len()),
        Err(e) => format!("failed {e}"),
    }
}

/// Runs `mode` if it is one of this module's; `None` otherwise.
pub fn run(client: &Client, mode: &str, rest: &[String]) -> Option<Result<u8, SdkError>> {
    match mode {
        "rec-big" => Some(big(client)),
        "rec-flood" => Some(flood(
            client,
            rest.first().and_then(|s| s.parse().ok()).unwrap_or(1 << 20),
        )),
        "rec-poll" => Some(poll(client)),
        _ => None,
    }
}

fn poll(client: &Client) -> Result<u8, SdkError> {
    let mut last = String::new();
    let mut changes = 0u64;
    loop {
        let r = client.syscall(Syscall::CheckPolicy {
            action: "file_read".into(),
            resource: "/mem/working/x".into(),
        });
        let (kind, line) = match &r {
            Ok(_) => ("ok".to_string(), "ok".to_string()),
            Err(SdkError::Errno(e)) => (e.kind().to_string(), format!("err {}: {e}", e.kind())),
            Err(e) => {
                say(&format!("poll failed: {e}"));
                return Ok(1);
            }
        };
        if kind != last {
            changes += 1;
            say(&format!("answer {changes} {line}"));
            last = kind;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn big(client: &Client) -> Result<u8, SdkError> {
    let max = client.welcome().limits.max_frame as usize;
    // The frame's own bytes: request id, tags, lengths — well under 1 KiB.
    let arg = "A".repeat(max - 1024);
    let exec = client.syscall(Syscall::Exec {
        argv: vec!["/bin/true".into(), arg],
        stdin: Vec::new(),
        cwd: None,
        timeout_ms: Some(5000),
    });
    say(&format!("exec: {}", answer(&exec)));
    let check = client.syscall(Syscall::CheckPolicy {
        action: format!("file_read{}", "\u{1b}[2J".repeat(1 << 18)),
        resource: format!("/mem/working/{}", "r".repeat(max / 2)),
    });
    say(&format!("check: {}", answer(&check)));
    say("big done");
    Ok(0)
}

fn flood(client: &Client, len: usize) -> Result<u8, SdkError> {
    // Components of 200 bytes: the resource is a path (NAME_MAX bounds each name).
    let resource = format!(
        "/mem/working{}",
        format!("/{}", "f".repeat(199)).repeat(len / 200)
    );
    let mut n: u64 = 0;
    loop {
        let r = client.syscall(Syscall::CheckPolicy {
            action: "file_read".into(),
            resource: resource.clone(),
        });
        match r {
            Ok(_) => {}
            Err(SdkError::Errno(Errno::RateLimited { retry_after_ms })) => {
                std::thread::sleep(std::time::Duration::from_millis(retry_after_ms));
            }
            Err(e) => {
                say(&format!("flood failed after {n}: {e}"));
                return Ok(1);
            }
        }
        n += 1;
        if n % 16 == 0 {
            say(&format!("flood {n}"));
        }
    }
}

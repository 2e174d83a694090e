//! Test-agent modes for the `Rename` syscall (`tests/suite/rename.rs`), run inside a real
//! jailed agent as `agentos-test-agent MODE ARGS…`:
//!
//! - `rename-ops OP…`: runs each OP in order with the blocking SDK and prints one line per OP,
//!   `OP: ok VALUE` or `OP: err KIND message` (OP as given), then
//!   `rename ops done`. OPs: `write=PATH=TEXT`, `read=PATH`, `stat=PATH`,
//!   `mv=FROM=TO` (a `Rename`), `park` (say `parked`, then wait up to 30 s for the kernel
//!   to end the agent, e.g. for a strict violation; after that, say `parked for 30 s` and
//!   go on).
//! - `rename-names N`: writes N empty working-memory files with 5-byte paths (`/0000`, …),
//!   then renames them one by one to 753-byte paths (three 250-byte components) until one is
//!   refused; prints `renamed: COUNT KIND` (KIND the refusal's, `none` if all fit), then
//!   whether the refused source is intact (`intact: true|false`), then renames the first
//!   file back to its short name and retries the refused rename: `after-free: ok|err KIND`.

use agentos_sdk::{Client, SdkError};

use crate::say;

/// Runs a rename mode, or `None` when `mode` is not one.
pub fn run(c: &Client, mode: &str, rest: &[String]) -> Option<Result<u8, SdkError>> {
    match mode {
        "rename-ops" => Some(ops(c, rest)),
        "rename-names" => Some(names(
            c,
            rest.first().and_then(|n| n.parse().ok()).unwrap_or(100),
        )),
        _ => None,
    }
}

fn kind(r: &Result<(), SdkError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(SdkError::Errno(e)) => format!("err {}", e.kind()),
        Err(e) => format!("failed {e}"),
    }
}

fn ops(c: &Client, ops: &[String]) -> Result<u8, SdkError> {
    for op in ops {
        if op == "park" {
            say("parked");
            std::thread::sleep(std::time::Duration::from_secs(30));
            say("parked for 30 s");
            continue;
        }
        let mut parts = op.splitn(3, '=');
        let verb = parts.next().unwrap_or("");
        let a = parts.next().unwrap_or("");
        let b = parts.next().unwrap_or("");
        let r = match verb {
            "write" => c.write(a, b.as_bytes()).map(|n| n.to_string()),
            "read" => c.read(a).map(|d| String::from_utf8_lossy(&d).into_owned()),
            "stat" => c
                .stat(a)
                .map(|s| format!("{:?} {} ro={}", s.kind, s.size, s.read_only)),
            "mv" => c.rename(a, b).map(|()| String::new()),
            other => {
                say(&format!("unknown rename op `{other}`"));
                return Ok(64);
            }
        };
        match r {
            Ok(v) => say(&format!("{op}: ok {v}")),
            Err(SdkError::Errno(e)) => say(&format!("{op}: err {} {e}", e.kind())),
            Err(e) => return Err(e),
        }
    }
    say("rename ops done");
    Ok(0)
}

fn names(c: &Client, n: usize) -> Result<u8, SdkError> {
    let short = |i: usize| format!("/mem/working/{i:04}");
    let long = |i: usize| {
        format!(
            "/mem/working/{}/{}/{i:04}{}",
            "a".repeat(250),
            "b".repeat(250),
            "c".repeat(246)
        )
    };
    for i in 0..n {
        c.write(&short(i), b"")?;
    }
    let mut renamed = 0;
    let mut refused = None;
    for i in 0..n {
        let r = c.rename(&short(i), &long(i));
        if r.is_err() {
            refused = Some((i, kind(&r)));
            break;
        }
        renamed += 1;
    }
    let Some((i, why)) = refused else {
        say(&format!("renamed: {renamed} none"));
        return Ok(0);
    };
    say(&format!(
        "renamed: {renamed} {}",
        why.trim_start_matches("err ")
    ));
    let intact = c.stat(&short(i)).is_ok() && c.stat(&long(i)).is_err();
    say(&format!("intact: {intact}"));
    c.rename(&long(0), &short(0))?;
    let again = c.rename(&short(i), &long(i));
    say(&format!("after-free: {}", kind(&again)));
    Ok(0)
}

//! Test-agent modes for the bounds suite (`tests/suite/bounds.rs`): calls with
//! agent-controlled sizes over the kernel's limits, made from inside a real jailed agent.
//!
//! - `bounds-calls`: one over-limit call of each kind through the SDK, each printed as
//!   `bound NAME: KIND MS` (the answer's errno kind and how long it took), then a normal write
//!   (`bound ok: …`) and `bounds done`
//! - `bounds-raw-argv N`: speaks the ABI by hand and sends one `Exec` frame of N empty
//!   arguments (a million fit in 2 MiB); prints `raw-argv: KIND MS`, then `bounds done`
//! - `bounds-flood LEN N`: writes a file of LEN bytes, then pipelines N `Read`s of it (each
//!   `len = LEN`) on a raw connection and never reads an answer; prints `flooding`, then
//!   `sent I` every 8 requests from a second thread, and waits forever
//! - `bounds-names LEN`: creates empty files in working memory, each under a path of three
//!   LEN-byte components, until the kernel refuses; prints `names: COUNT KIND`

use crate::say;
use std::io::Write;
use std::time::Instant;

use agentos_sdk::{kernel_socket, Client, SdkError};
use agentos_syscalls::frame;
use agentos_syscalls::{AgentFrame, Hello, KernelFrame, Request, Syscall, ABI_VERSION};

fn kind<T>(r: &Result<T, SdkError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(SdkError::Errno(e)) => e.kind().into(),
        Err(e) => format!("sdk-error({e})"),
    }
}

/// Runs a bounds mode; the exit code.
pub fn main(mode: &str, args: &[String]) -> u8 {
    let arg = |i: usize| args.get(i).and_then(|s| s.parse::<usize>().ok());
    let r = match mode {
        "bounds-calls" => calls(),
        "bounds-raw-argv" => raw_argv(arg(0).unwrap_or(1_000_000)),
        "bounds-flood" => flood(arg(0).unwrap_or(1 << 20), arg(1).unwrap_or(300)),
        "bounds-names" => names(arg(0).unwrap_or(250)),
        other => {
            say(&format!("unknown mode `{other}`"));
            return 64;
        }
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            say(&format!("error: {e}"));
            70
        }
    }
}

fn timed(c: &Client, name: &str, call: Syscall) {
    let t = Instant::now();
    let r = c.syscall(call);
    say(&format!(
        "bound {name}: {} {}",
        kind(&r),
        t.elapsed().as_millis()
    ));
}

fn calls() -> Result<(), SdkError> {
    let c = Client::connect()?;
    let write = |path: String| Syscall::Write {
        path,
        data: b"x".to_vec(),
        mode: agentos_syscalls::WriteMode::Truncate,
    };
    let exec = |argv: Vec<String>| Syscall::Exec {
        argv,
        stdin: Vec::new(),
        cwd: None,
        timeout_ms: None,
    };
    timed(
        &c,
        "path-5000",
        write(format!("/mem/working/{}", "a/".repeat(2500))),
    );
    timed(
        &c,
        "name-300",
        write(format!("/mem/working/{}", "n".repeat(300))),
    );
    // One MiB of `a/`: the shape whose per-component checks were quadratic.
    timed(
        &c,
        "path-1mib",
        write(format!("/mem/working/{}x", "a/".repeat(1 << 19))),
    );
    timed(&c, "argv-count", exec(vec!["true".into(); 4097]));
    timed(&c, "argv-bytes", exec(vec!["y".repeat(128 << 10); 17]));
    timed(
        &c,
        "arg-strlen",
        exec(vec!["true".into(), "z".repeat((128 << 10) + 1)]),
    );
    timed(
        &c,
        "check-action",
        Syscall::CheckPolicy {
            action: "a".repeat(1 << 20),
            resource: "/mem/working/x".into(),
        },
    );
    timed(
        &c,
        "check-resource",
        Syscall::CheckPolicy {
            action: "api_call".into(),
            resource: "r".repeat(1 << 20),
        },
    );
    timed(
        &c,
        "call-action",
        Syscall::Call {
            action: "b".repeat(1 << 20),
            params_json: "{}".into(),
        },
    );
    timed(
        &c,
        "call-params",
        Syscall::Call {
            action: "api_call".into(),
            params_json: format!("{{\"url\":\"{}\"}}", "p".repeat(2 << 20)),
        },
    );
    timed(&c, "ok", write("/mem/working/fine".into()));
    say("bounds done");
    Ok(())
}

/// A raw connection past the handshake.
fn raw_connection() -> Result<std::os::unix::net::UnixStream, SdkError> {
    let mut sock = kernel_socket()?;
    let hello = AgentFrame::Hello(Hello {
        abi: ABI_VERSION,
        sdk: "bounds-test".into(),
    });
    frame::write_frame(&mut sock, &hello)?;
    frame::read_frame(&mut sock, frame::DEFAULT_MAX_FRAME)?;
    Ok(sock)
}

fn io(e: std::io::Error) -> SdkError {
    SdkError::Frame(frame::FrameError::Io(e))
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn raw_argv(n: usize) -> Result<(), SdkError> {
    let mut sock = raw_connection()?;
    // AgentFrame::Request(1) { id: 7, call: Syscall::Exec(7) { argv: n × "", stdin: [],
    // cwd: None, timeout_ms: None } }, by hand: the agent does not build a million Strings.
    let mut body = vec![1u8];
    varint(&mut body, 7);
    body.push(7);
    varint(&mut body, n as u64);
    body.resize(body.len() + n, 0);
    body.extend_from_slice(&[0, 0, 0]);
    let mut bytes = (body.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&body);
    let t = Instant::now();
    sock.write_all(&bytes).map_err(io)?;
    loop {
        let Some(body) = frame::read_frame(&mut sock, frame::DEFAULT_MAX_FRAME)? else {
            say("raw-argv: closed");
            break;
        };
        if let Ok(KernelFrame::Response(r)) = frame::decode::<KernelFrame>(&body) {
            let k = match &r.result {
                Ok(_) => "ok".to_string(),
                Err(e) => e.kind().to_string(),
            };
            say(&format!("raw-argv: {k} {}", t.elapsed().as_millis()));
            if let Err(e) = r.result {
                say(&format!("raw-argv error: {e}"));
            }
            break;
        }
    }
    say("bounds done");
    Ok(())
}

fn flood(len: usize, n: usize) -> Result<(), SdkError> {
    let mut sock = raw_connection()?;
    let write = AgentFrame::Request(Request {
        id: 1,
        call: Syscall::Write {
            path: "/mem/working/big".into(),
            data: vec![b'b'; len],
            mode: agentos_syscalls::WriteMode::Truncate,
        },
    });
    frame::write_frame(&mut sock, &write)?;
    loop {
        let Some(body) = frame::read_frame(&mut sock, frame::DEFAULT_MAX_FRAME)? else {
            return Err(SdkError::Closed);
        };
        if let Ok(KernelFrame::Response(r)) = frame::decode::<KernelFrame>(&body) {
            r.result?;
            break;
        }
    }
    say("flooding");
    std::thread::spawn(move || {
        for i in 0..n {
            let req = AgentFrame::Request(Request {
                id: 1_000 + i as u64,
                call: Syscall::Read {
                    path: "/mem/working/big".into(),
                    offset: 0,
                    len: Some(len as u64),
                },
            });
            if frame::write_frame(&mut sock, &req).is_err() {
                say("send failed");
                return;
            }
            if i % 8 == 7 {
                say(&format!("sent {}", i + 1));
            }
        }
        say(&format!("sent all {n}"));
        // The socket stays open (dropping it would end the connection): the answers wait in
        // the kernel for a reader that never comes.
        loop {
            std::thread::park();
        }
    });
    loop {
        std::thread::park();
    }
}

fn names(len: usize) -> Result<(), SdkError> {
    let c = Client::connect()?;
    let comp = "n".repeat(len);
    let mut count = 0u64;
    loop {
        let path = format!("/mem/working/{comp}/{comp}/{count:0>width$}", width = len);
        match c.write(&path, b"") {
            Ok(_) => count += 1,
            Err(e) => {
                let r: Result<(), SdkError> = Err(e);
                say(&format!("names: {count} {}", kind(&r)));
                if let Err(SdkError::Errno(e)) = r {
                    say(&format!("names refusal: {e}"));
                }
                return Ok(());
            }
        }
    }
}

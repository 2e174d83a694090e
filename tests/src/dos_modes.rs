//! The DoS suite's agents (`tests/tests/dos.rs`, `benches/benches/isolation.rs`):
//!
//! - `agentos-test-agent victim N`: the honest neighbour. Connects, warms up, then times `N`
//!   round trips (`Stat /mem/working`, in working memory: nothing on the path but the kernel)
//!   and prints `victim n=N total_ns=… p50_us=… p99_us=… max_us=…`; exits 0.
//! - `agentos-test-agent dos ATTACK [ARG]`: one hostile agent that keeps attacking until it is
//!   killed. It prints `attacking` once the attack is under way (the suite then starts the
//!   victim), and `attack over: …` if the kernel ends the attack by itself (a closed
//!   connection), then parks. Attacks:
//!   - `fifo PATH`: 8 threads `Read` and `Write` a FIFO in the workspace, without end;
//!   - `long-path`: `Write`s under `/mem/working` with 1 MiB paths (one name, and 256 Ki
//!     components): three of each, timed (`first answers after N ms`), then 4 threads of them;
//!   - `big-exec`: `Exec` of `/bin/true` with a 15 MiB argument, without end;
//!   - `million-args`: one raw `Exec` frame of 15 million empty arguments (then more while the
//!     connection stays open);
//!   - `pipeline`: a 4 MiB file in working memory, then raw `Read` requests for it that are
//!     never read back (the kernel must stop reading, not buffer the answers);
//!   - `small-pipeline`: raw `Stat` requests without end, never read back (the small calls
//!     the kernel answers on the connection's own task: the same must hold);
//!   - `long-names`: files with 255-byte names in working memory until the quota refuses;
//!   - `scratch-fill`: 1 MiB files in `$TMPDIR` until the host refuses, then keeps trying;
//!   - `stdout-flood`: 1 MiB writes to stdout, without end;
//!   - `checkpolicy-flood`: 4 threads of `CheckPolicy` with 1 MiB action and resource;
//!   - `checkpoint-flood`: `Checkpoint` without end.
//!
//! Every attack here needs nothing but what its policy grants; most need nothing at all.

use crate::say;
use std::io::Write;
use std::time::Instant;

use agentos_sdk::{kernel_socket, Client, SdkError};
use agentos_syscalls::frame::{self, DEFAULT_MAX_FRAME};
use agentos_syscalls::{AgentFrame, Hello, Request, Syscall, WriteMode, ABI_VERSION};

fn park() -> ! {
    loop {
        std::thread::park();
    }
}

/// The `q` quantile of sorted `v`.
fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// `victim N`: see the module docs.
pub fn victim(n: usize) -> u8 {
    let client = match Client::connect() {
        Ok(c) => c,
        Err(e) => {
            say(&format!("victim error: {e}"));
            return 70;
        }
    };
    for _ in 0..20 {
        if let Err(e) = client.stat("/mem/working") {
            say(&format!("victim error: {e}"));
            return 70;
        }
    }
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        if let Err(e) = client.stat("/mem/working") {
            say(&format!("victim error: {e}"));
            return 70;
        }
        lat.push(t.elapsed().as_micros() as u64);
    }
    let total = start.elapsed();
    lat.sort_unstable();
    say(&format!(
        "victim n={n} total_ns={} p50_us={} p99_us={} max_us={}",
        total.as_nanos(),
        quantile(&lat, 0.5),
        quantile(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    ));
    0
}

/// A connection past the handshake, for frames the SDK would not send.
fn raw_connect() -> Result<std::os::unix::net::UnixStream, SdkError> {
    let mut sock = kernel_socket()?;
    frame::write_frame(
        &mut sock,
        &AgentFrame::Hello(Hello {
            abi: ABI_VERSION,
            sdk: "dos-test".into(),
        }),
    )?;
    frame::read_frame(&mut sock, DEFAULT_MAX_FRAME)?;
    Ok(sock)
}

fn request(id: u64, call: Syscall) -> AgentFrame {
    AgentFrame::Request(Request { id, call })
}

/// `dos ATTACK [ARG]`: see the module docs.
pub fn attack(name: &str, arg: Option<&str>) -> u8 {
    let r = match name {
        "fifo" => fifo(arg.unwrap_or("/workspace/fifo")),
        "long-path" => long_path(),
        "big-exec" => big_exec(),
        "million-args" => million_args(),
        "pipeline" => pipeline(),
        "small-pipeline" => small_pipeline(),
        "long-names" => long_names(),
        "scratch-fill" => scratch_fill(),
        "stdout-flood" => stdout_flood(),
        "checkpolicy-flood" => checkpolicy_flood(),
        "checkpoint-flood" => checkpoint_flood(),
        other => {
            say(&format!("unknown dos attack `{other}`"));
            return 64;
        }
    };
    match r {
        Ok(()) => park(),
        Err(e) => {
            say(&format!("attack over: {e}"));
            park()
        }
    }
}

/// Runs `body` on `threads` threads, each with its own clone of the client, forever.
fn threads(
    client: &Client,
    threads: usize,
    body: impl Fn(&Client) + Send + Sync + Clone + 'static,
) {
    for _ in 0..threads {
        let c = client.clone();
        let b = body.clone();
        std::thread::spawn(move || loop {
            b(&c)
        });
    }
}

fn fifo(path: &str) -> Result<(), SdkError> {
    let client = Client::connect()?;
    let p = path.to_string();
    threads(&client, 8, move |c| {
        let _ = c.read(&p);
        let _ = c.write(&p, b"x");
    });
    say("attacking");
    Ok(())
}

fn long_path() -> Result<(), SdkError> {
    let client = Client::connect()?;
    let one_name = format!("/mem/working/{}", "n".repeat(1 << 20));
    let deep = format!("/mem/working/{}", "d/".repeat(1 << 18));
    let t = Instant::now();
    for _ in 0..3 {
        let _ = client.write(&one_name, b"x");
        let _ = client.write(&deep, b"x");
    }
    say(&format!(
        "first answers after {} ms",
        t.elapsed().as_millis()
    ));
    threads(&client, 4, move |c| {
        let _ = c.write(&one_name, b"x");
        let _ = c.write(&deep, b"x");
    });
    say("attacking");
    Ok(())
}

fn big_exec() -> Result<(), SdkError> {
    let client = Client::connect()?;
    let arg = "A".repeat(15 << 20);
    say("attacking");
    loop {
        let _ = client.exec(&["/bin/true", &arg], b"", None, None);
    }
}

fn million_args() -> Result<(), SdkError> {
    let mut sock = raw_connect()?;
    let argv = vec![String::new(); 15_000_000];
    let body = frame::encode(&request(
        1,
        Syscall::Exec {
            argv,
            stdin: Vec::new(),
            cwd: None,
            timeout_ms: None,
        },
    ))?;
    say(&format!("attacking with a frame of {} bytes", body.len()));
    for _ in 0..8 {
        sock.write_all(&body)
            .map_err(|e| SdkError::Frame(frame::FrameError::Io(e)))?;
        match frame::read_frame(&mut sock, DEFAULT_MAX_FRAME)? {
            Some(_) => {}
            None => {
                return Err(SdkError::Protocol(
                    "the kernel closed the connection".into(),
                ))
            }
        }
    }
    say("attack over: 8 frames answered");
    Ok(())
}

fn pipeline() -> Result<(), SdkError> {
    let mut sock = raw_connect()?;
    let big = vec![0x5au8; 4 << 20];
    frame::write_frame(
        &mut sock,
        &request(
            1,
            Syscall::Write {
                path: "/mem/working/big".into(),
                data: big,
                mode: WriteMode::Truncate,
            },
        ),
    )?;
    frame::read_frame(&mut sock, DEFAULT_MAX_FRAME)?;
    let read = |id| {
        request(
            id,
            Syscall::Read {
                path: "/mem/working/big".into(),
                offset: 0,
                len: None,
            },
        )
    };
    for id in 2..34 {
        frame::write_frame(&mut sock, &read(id))?;
    }
    say("attacking");
    // Never reads an answer: the kernel must stop reading this socket, not buffer.
    for id in 34.. {
        frame::write_frame(&mut sock, &read(id))?;
    }
    Ok(())
}

/// Thousands of small calls (the kind the kernel answers on the connection's own task)
/// pipelined without ever reading an answer: the kernel must stop reading this socket once
/// its answers back up, not queue them without bound.
fn small_pipeline() -> Result<(), SdkError> {
    let mut sock = raw_connect()?;
    let stat = |id| {
        request(
            id,
            Syscall::Stat {
                path: "/mem/working".into(),
            },
        )
    };
    for id in 1..1000 {
        frame::write_frame(&mut sock, &stat(id))?;
    }
    say("attacking");
    for id in 1000.. {
        frame::write_frame(&mut sock, &stat(id))?;
    }
    Ok(())
}

fn long_names() -> Result<(), SdkError> {
    let client = Client::connect()?;
    say("attacking");
    let mut refused = false;
    for i in 0u64.. {
        let name = format!("{i:020}{}", "n".repeat(235));
        match client.write(&format!("/mem/working/{name}"), b"") {
            Ok(_) => {}
            Err(SdkError::Errno(e)) => {
                if !refused {
                    say(&format!("refused after {i} names: {}", e.kind()));
                    refused = true;
                }
                let _ = client.stat("/mem/working");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn scratch_fill() -> Result<(), SdkError> {
    let _client = Client::connect()?;
    let dir = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
    let chunk = vec![0x42u8; 1 << 20];
    say("attacking");
    let mut told = false;
    for i in 0u64.. {
        let path = format!("{dir}/fill-{}", i % 100_000);
        let r = std::fs::File::create(&path).and_then(|mut f| {
            for _ in 0..16 {
                f.write_all(&chunk)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            if !told {
                say(&format!("scratch refused after {i} files: {e}"));
                told = true;
            }
        }
    }
    Ok(())
}

fn stdout_flood() -> Result<(), SdkError> {
    let _client = Client::connect()?;
    say("attacking");
    let chunk = vec![b'o'; 1 << 20];
    let mut out = std::io::stdout().lock();
    loop {
        if out.write_all(&chunk).is_err() {
            return Ok(());
        }
    }
}

fn checkpolicy_flood() -> Result<(), SdkError> {
    let client = Client::connect()?;
    let long = "r".repeat(1 << 20);
    threads(&client, 4, move |c| {
        let _ = c.check_policy(&long, &long);
    });
    say("attacking");
    Ok(())
}

fn checkpoint_flood() -> Result<(), SdkError> {
    let client = Client::connect()?;
    say("attacking");
    loop {
        // Refused once its budget is spent; it keeps asking.
        let _ = client.checkpoint();
    }
}

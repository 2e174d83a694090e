//! Test-agent modes for "no blocking host I/O on the async runtime" (`tests/suite/blocking.rs`),
//! run inside a real jailed agent as `agentos-test-agent io MODE ARGS…`:
//!
//! - `hostile PATH…`: says `firing`, then puts at once, for each PATH, a `Read` and an `Open`
//!   for reading (then a `ReadFd` if it was granted), plus four more `Read`s of the first PATH,
//!   in flight (more calls than the kernel has workers, and nothing writing: on a FIFO each
//!   would wait for a writer); once all are answered, the same with a `Write` (truncate), a
//!   `Write` (append), a `Write` (create-new), an `Open` for writing, a `Stat` and a `List` of
//!   each PATH. Each answer is printed as `PATH OP: ok …`, `PATH OP: err KIND message` or
//!   `PATH OP: timeout` (none within 10 s); then `hostile done in MS ms`, exit 0.
//! - `flood N SIZE`: forever, rounds of N workspace writes of SIZE bytes (`/workspace/flood-I`,
//!   each followed by a read of it) and N one-byte persistent-memory writes
//!   (`/mem/episodic/flood-I`, each a redb commit) in flight at once; says `flooding ANSWERS`
//!   after the first round.
//! - `ping N`: N working-memory writes one after the other; prints
//!   `ping answered=A max_ms=M` (A answered calls, M the slowest round trip), exit 0.

use crate::say;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use agentos_sdk::{AsyncClient, SdkError};
use agentos_syscalls::{OpenMode, Reply, Syscall, WriteMode};

type Op = Pin<Box<dyn Future<Output = String>>>;

/// Runs `agentos-test-agent io ARGS…`; returns the exit code.
pub fn main(args: &[String]) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("error: no runtime: {e}"));
            return 70;
        }
    };
    let mode = args.first().map(String::as_str).unwrap_or("");
    let num =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let result = rt.block_on(async {
        let c = AsyncClient::connect().await?;
        match mode {
            "hostile" => hostile(&c, &args[1.min(args.len())..]).await,
            "flood" => flood(&c, num(1, 8), num(2, 1 << 20)).await,
            "ping" => ping(&c, num(1, 200)).await,
            other => {
                say(&format!("unknown io mode `{other}`"));
                Ok(64)
            }
        }
    });
    result.unwrap_or_else(|e| {
        say(&format!("error: {e}"));
        70
    })
}

fn shown(r: Result<Reply, SdkError>) -> String {
    match r {
        Ok(reply) => format!("ok {reply:?}"),
        Err(SdkError::Errno(e)) => format!("err {} {e}", e.kind()),
        Err(e) => format!("failed {e}"),
    }
}

/// One call, answered within 10 s or reported as `timeout`.
async fn timed(c: &AsyncClient, call: Syscall) -> String {
    match tokio::time::timeout(Duration::from_secs(10), c.syscall(call)).await {
        Ok(r) => shown(r),
        Err(_) => "timeout".into(),
    }
}

async fn hostile(c: &AsyncClient, paths: &[String]) -> Result<u8, SdkError> {
    say("firing");
    let started = Instant::now();
    let one = |path: &str, name: &str, call: Syscall| -> Op {
        let (c, label) = (c.clone(), format!("{path} {name}"));
        Box::pin(async move { format!("{label}: {}", timed(&c, call).await) })
    };
    // First only the reading side: with nobody writing, each of these would hold a thread in
    // `open` for as long as the FIFO has no writer.
    let mut reads: Vec<Op> = Vec::new();
    for path in paths {
        reads.push(one(
            path,
            "read",
            Syscall::Read {
                path: path.clone(),
                offset: 0,
                len: None,
            },
        ));
        let (c, path) = (c.clone(), path.clone());
        reads.push(Box::pin(async move {
            let opened = timed(
                &c,
                Syscall::Open {
                    path: path.clone(),
                    mode: OpenMode::Read,
                },
            )
            .await;
            let mut line = format!("{path} open-read: {opened}");
            if let Some(fd) = opened
                .strip_prefix("ok Opened { fd: ")
                .and_then(|s| s.strip_suffix(" }"))
                .and_then(|s| s.parse().ok())
            {
                let got = timed(&c, Syscall::ReadFd { fd, len: 16 }).await;
                line.push_str(&format!("\n{path} read-fd: {got}"));
            }
            line
        }));
    }
    if let Some(first) = paths.first() {
        for i in 0..4 {
            reads.push(one(
                first,
                &format!("read{i}"),
                Syscall::Read {
                    path: first.clone(),
                    offset: 0,
                    len: Some(16),
                },
            ));
        }
    }
    for line in futures_join(reads).await {
        say(&line);
    }
    // Then the writing side, and the calls that only look.
    let mut rest: Vec<Op> = Vec::new();
    for path in paths {
        for (name, mode) in [
            ("write", WriteMode::Truncate),
            ("append", WriteMode::Append),
            ("create", WriteMode::CreateNew),
        ] {
            rest.push(one(
                path,
                name,
                Syscall::Write {
                    path: path.clone(),
                    data: b"x".to_vec(),
                    mode,
                },
            ));
        }
        rest.push(one(
            path,
            "open-write",
            Syscall::Open {
                path: path.clone(),
                mode: OpenMode::Write(WriteMode::Truncate),
            },
        ));
        rest.push(one(path, "stat", Syscall::Stat { path: path.clone() }));
        rest.push(one(path, "list", Syscall::List { path: path.clone() }));
    }
    for line in futures_join(rest).await {
        say(&line);
    }
    say(&format!(
        "hostile done in {} ms",
        started.elapsed().as_millis()
    ));
    Ok(0)
}

/// Polls every op at once (the calls are all in flight together), in order of the answers.
async fn futures_join(ops: Vec<Op>) -> Vec<String> {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let handles: Vec<_> = ops.into_iter().map(tokio::task::spawn_local).collect();
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap_or_else(|e| format!("task failed: {e}")));
            }
            out
        })
        .await
}

async fn flood(c: &AsyncClient, n: usize, size: usize) -> Result<u8, SdkError> {
    let data = vec![b'f'; size];
    let mut first = true;
    loop {
        let mut ops: Vec<Op> = Vec::new();
        for i in 0..n {
            let (cw, data) = (c.clone(), data.clone());
            ops.push(Box::pin(async move {
                let path = format!("/workspace/flood-{i}");
                let w = shown(
                    cw.syscall(Syscall::Write {
                        path: path.clone(),
                        data,
                        mode: WriteMode::Truncate,
                    })
                    .await,
                );
                let r = cw
                    .syscall(Syscall::Read {
                        path,
                        offset: 0,
                        len: None,
                    })
                    .await;
                format!("{w} {}", matches!(r, Ok(Reply::Data(_))))
            }));
            let c = c.clone();
            ops.push(Box::pin(async move {
                shown(
                    c.syscall(Syscall::Write {
                        path: format!("/mem/episodic/flood-{i}"),
                        data: b"e".to_vec(),
                        mode: WriteMode::Truncate,
                    })
                    .await,
                )
            }));
        }
        let answers = futures_join(ops).await;
        if first {
            say(&format!("flooding {}", answers.join(" | ")));
            first = false;
        }
    }
}

async fn ping(c: &AsyncClient, n: usize) -> Result<u8, SdkError> {
    let (mut answered, mut max) = (0, Duration::ZERO);
    for i in 0..n {
        let t = Instant::now();
        let r = c
            .syscall(Syscall::Write {
                path: "/mem/working/ping".into(),
                data: i.to_string().into_bytes(),
                mode: WriteMode::Truncate,
            })
            .await;
        max = max.max(t.elapsed());
        if r.is_ok() {
            answered += 1;
        }
    }
    say(&format!(
        "ping answered={answered} max_ms={}",
        max.as_millis()
    ));
    Ok(0)
}

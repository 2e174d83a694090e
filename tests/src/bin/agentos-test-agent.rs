//! The agent the integration tests run inside real sandboxes. `agentos-test-agent MODE ARGS…`:
//!
//! - `spin [print]`: write a counter to working memory forever (one syscall per iteration);
//!   with `print`, print `n <counter>` after each answered write
//! - `term-handler [ignore]`: register a SIGTERM handler, say `ready`, wait; the handler exits
//!   cleanly (or, with `ignore`, does nothing, so the kernel must SIGKILL after the grace period)
//! - `no-handler`: connect, say `ready`, wait (POSIX SIGTERM ends it)
//! - `fork-tree N`: start N `sleep` children and a shell with two grandchildren, say `ready`, wait
//! - `crash`: one syscall, then abort
//! - `echo`: write and read back a file, exit 0
//! - `exit N`: exit with code N after one syscall
//! - `write PATH`: try to write PATH, print the answer, wait
//! - `raw malformed|oversized|bad-abi|second-hello`: break the protocol on purpose and print the
//!   kernel's answer
//! - `park`: connect, say `ready`, wait forever
//! - `pipeline-order N`: on a raw connection, one `Recv` with a 300 ms timeout, then N pairs of
//!   `Write` (of the pair's number) and `Read` of one working-memory file, all sent before any
//!   answer is read; then reads every answer and prints `pipeline answers=<distinct ids>
//!   dups=<ids answered twice> strays=<ids never asked> ok=<successful writes and reads>
//!   recv_last=<whether the Recv was answered after every other call>`; exit 0
//! - `tour [TARGET]`: every served syscall once, printing each answer (SIGUSR1 to TARGET)
//! - `async-burst N`: N reads in flight at once through the async client
//! - `exec-burst N`: N `Exec`s of `/bin/sleep 5` in flight at once; prints
//!   `exec-burst ok=<done> busy=<refused Busy> other=<anything else>`
//! - `attack NAME [ARG]`: one escape attempt (see `agentos_tests::attack`), one verdict line
//! - `victim N`, `dos ATTACK [ARG]`: the DoS suite's honest neighbour and its attackers (see
//!   `agentos_tests::dos_modes`)
//! - `io MODE …`: the blocking-host-I/O modes (see `agentos_tests::io_modes`)
//! - `bounds-…`: calls over the kernel's size limits (see `agentos_tests::bounds_modes`)
//! - `connect PATH`: try to drive the kernel through its control socket (an attack)
//! - `burst N PATH`: N writes to PATH as fast as possible, each answer printed; after a
//!   `RateLimited`, sleep for its `retry_after_ms` hint and write once more; exit 0
//! - `call ACTION PARAMS_JSON`: one `Call` syscall, print the answer, wait
//! - `exec TIMEOUT_MS CWD ARGV…` (`-` for none): one `Exec`, print the answer as one line
//!   (`exec: status=… timed_out=… truncated=… stdout_len=… stdout="…" stderr="…"` or
//!   `refused: KIND message`), exit 0; `exec-wait …`: the same, then wait
//! - `script STEP…`: one syscall per step, in order, each answer printed as
//!   `step N STEP: ok ANSWER` or `step N STEP: err KIND`; a `$` in a step stands for the
//!   previous step's answer, so later calls depend on what earlier ones returned. Steps:
//!   `write:PATH=TEXT`, `big:PATH=N` (N bytes `abc…z` repeated), `read:PATH` (answer: the
//!   text, or `N bytes, sum S` past 64 bytes), `stat:PATH`, `list:PATH`, `check:ACTION:RESOURCE` (answer
//!   `allowed` or `denied`), `signal:AGENT:SIGNAL`, `call:ACTION:PARAMS_JSON` (answer: the
//!   result JSON), `tools` (the MCP tools ListTools shows, `server/name,…`),
//!   `tool:SERVER/TOOL:ARGS_JSON` (an MCP tool call; answer: the result JSON), `sh:COMMAND`
//!   (an `Exec` of `/bin/sh -c COMMAND`, no stdin; answer: `status=S stdout=OUT` with OUT's
//!   lines joined by `|`), `shin:COMMAND` (the same with `stdin-bytes` on its stdin),
//!   `exit:CODE` (announce the exit, then exit with CODE); exit 0 after the last
//! - `until-allowed PATH`: ask `CheckPolicy` about writing PATH until the answer is yes (printing
//!   the first no), then write it, print the answer, wait
//! - `ipc-ping PEER N`: N rounds of sending `ping I` to PEER and receiving its answer, each
//!   received message printed as `got PAYLOAD from ID seq S`; exit 0
//! - `ipc-pong N`: N rounds of receiving a message and answering its sender with `ping`
//!   replaced by `pong`, each printed as above; exit 0
//! - `ipc-send PEER PAYLOAD`: one `Send`, print the answer, wait
//! - `ipc-fill PEER`: send `m0`, `m1`, … to PEER until the kernel answers `Busy` (print
//!   `accepted N` and the refusal), then retry that message until accepted; exit 0
//! - `ipc-drain N`: say `ready`, receive N messages (each printed as above), then one more poll
//!   (`Recv` with timeout 0), printed as `then: …`; exit 0
//! - `ipc-timeout MS`: one `Recv` with timeout MS, printed with the time it took; exit 0
//! - `ipc-wait`: one `Recv` without timeout, then (on the same connection, after it) one
//!   `Write`; once the write is answered the kernel holds the `Recv`: say `waiting`, wait
//! - `ops OP…`: VFS calls in order, one line each (`OP` is `read=PATH`, `write=PATH=DATA`,
//!   `append=PATH=DATA`, `fill=PATH=N` (N bytes of `x`), `list=PATH`, `stat=PATH`,
//!   `unlink=PATH`, `checkpoint`, `send=ID|self=DATA`, `recv=` (poll), `park`); prints `ops done` and exits 0
//! - `race-read PATH N`: read PATH N times; print how many reads succeeded, failed, and
//!   returned a host secret (`SECRET` in the data)
//! - `fd-read PATH`: Open PATH and ReadFd it to the end in chunks; print its size and hash
//! - `fd-write PATH N`: Open PATH for writing and WriteFd N bytes of a pattern in 256 KiB
//!   chunks; print the bytes written
//! - `fd-exhaust PATH`: Open PATH until the kernel refuses; print how many, the refusal,
//!   then Close one and Open again

use agentos_tests::say;
use std::io::Write;
use std::process::ExitCode;

use agentos_sdk::{kernel_socket, Client, SdkError};
use agentos_syscalls::frame::{self, HEADER_LEN};
use agentos_syscalls::{AgentFrame, AgentId, Errno, Hello, KernelFrame, Signal, ABI_VERSION};

fn wait_forever() -> ! {
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let result = match mode {
        "raw" => raw(args.get(1).map(String::as_str).unwrap_or("")),
        "pipeline-order" => pipeline_order(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200)),
        "async-burst" => async_burst(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32)),
        "ipc-wait" => ipc_wait(),
        "exec-burst" => exec_burst(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(6)),
        "exec-pair" => exec_pair(&args[1..]),
        "attack" => Ok(agentos_tests::attack::main(
            args.get(1).map(String::as_str).unwrap_or(""),
            args.get(2).map(String::as_str),
        )),
        "victim" => Ok(agentos_tests::dos_modes::victim(
            args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000),
        )),
        "dos" => Ok(agentos_tests::dos_modes::attack(
            args.get(1).map(String::as_str).unwrap_or(""),
            args.get(2).map(String::as_str),
        )),
        "io" => Ok(agentos_tests::io_modes::main(&args[1..])),
        m if m.starts_with("bounds-") => Ok(agentos_tests::bounds_modes::main(m, &args[1..])),
        "spew" => Ok(agentos_tests::disk_modes::spew(
            args.get(1).and_then(|n| n.parse().ok()).unwrap_or(0),
        )),
        "connect" => Ok(connect_attack(
            args.get(1).map(String::as_str).unwrap_or(""),
        )),
        // An HTTP GET to ADDR (e.g. the kernel's metrics endpoint on the host's loopback):
        // prints what came back, or why nothing did.
        "tcp-get" => {
            use std::io::{Read, Write};
            let addr = args.get(1).map(String::as_str).unwrap_or("127.0.0.1:9");
            match std::net::TcpStream::connect(addr) {
                Ok(mut s) => {
                    let _ = s.write_all(
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    let mut answer = String::new();
                    let _ = s.read_to_string(&mut answer);
                    say(&format!(
                        "ESCAPED: connected to {addr}: {} bytes",
                        answer.len()
                    ));
                }
                Err(e) => say(&format!("refused: {e}")),
            }
            Ok(0)
        }
        m if m.starts_with("op-") => agentos_tests::operator_modes::main(m, &args[1..]),
        _ => with_client(mode, &args[1.min(args.len())..]),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::from(70)
        }
    }
}

fn with_client(mode: &str, rest: &[String]) -> Result<u8, SdkError> {
    let client = Client::connect()?;
    if let Some(r) = agentos_tests::rec_modes::run(&client, mode, rest) {
        return r;
    }
    if let Some(r) = agentos_tests::rename_modes::run(&client, mode, rest) {
        return r;
    }
    match mode {
        "spin" => {
            say("ready");
            let print = rest.first().is_some_and(|a| a == "print");
            let mut i: u64 = 0;
            loop {
                client.write("/mem/working/counter", &i.to_le_bytes())?;
                if print {
                    say(&format!("n {i}"));
                }
                i += 1;
            }
        }
        "term-handler" => {
            let ignore = rest.first().is_some_and(|a| a == "ignore");
            let c = client.clone();
            client.on_signal(Signal::Term, move |sig, reason| {
                say(&format!("handler ran for {sig} ({reason})"));
                if !ignore {
                    let _ = c.write("/mem/working/goodbye", b"clean");
                    say("clean shutdown");
                    c.exit(0);
                }
            })?;
            client.write("/mem/working/ready", b"1")?;
            say("ready");
            wait_forever()
        }
        "no-handler" | "park" => {
            client.write("/mem/working/ready", b"1")?;
            say("ready");
            wait_forever()
        }
        "fork-tree" => {
            let n: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(3);
            let mut kids = Vec::new();
            for _ in 0..n {
                kids.push(
                    std::process::Command::new("/bin/sleep")
                        .arg("1000")
                        .spawn()
                        .map_err(io)?,
                );
            }
            kids.push(
                std::process::Command::new("/bin/sh")
                    .args(["-c", "/bin/sleep 1000 & /bin/sleep 1000 & wait"])
                    .spawn()
                    .map_err(io)?,
            );
            client.write("/mem/working/ready", b"1")?;
            say(&format!("ready {}", kids.len()));
            wait_forever()
        }
        "crash" => {
            client.write("/mem/working/before-crash", b"1")?;
            say("crashing");
            std::process::abort()
        }
        "echo" => {
            client.write("/mem/working/echo", b"ping")?;
            let back = client.read("/mem/working/echo")?;
            say(&format!("echo {}", String::from_utf8_lossy(&back)));
            Ok(0)
        }
        "tour" => tour(&client, rest.first().and_then(|s| s.parse().ok())),
        "exit" => {
            let code: u8 = rest.first().and_then(|s| s.parse().ok()).unwrap_or(0);
            client.announce_exit(i32::from(code))?;
            Ok(code)
        }
        "write" => {
            let path = rest.first().map(String::as_str).unwrap_or("/mem/working/x");
            match client.write(path, b"data") {
                Ok(n) => say(&format!("wrote {n}")),
                Err(SdkError::Errno(e)) => say(&format!("refused: {} {e}", e.kind())),
                Err(e) => return Err(e),
            }
            // A strict kernel ends us now; otherwise the test ends us.
            wait_forever()
        }
        "burst" => {
            let n: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(6);
            let path = rest.get(1).map(String::as_str).unwrap_or("/mem/working/x");
            let mut hint = None;
            for i in 1..=n {
                match client.write(path, b"data") {
                    Ok(_) => say(&format!("call {i}: ok")),
                    Err(SdkError::Errno(Errno::RateLimited { retry_after_ms })) => {
                        say(&format!(
                            "call {i}: refused RateLimited retry_after_ms={retry_after_ms}"
                        ));
                        hint = Some(retry_after_ms);
                    }
                    Err(SdkError::Errno(e)) => say(&format!("call {i}: refused {}", e.kind())),
                    Err(e) => return Err(e),
                }
            }
            if let Some(ms) = hint {
                // The agent's own choice: wait as long as the kernel said, then try again.
                std::thread::sleep(std::time::Duration::from_millis(ms));
                match client.write(path, b"data") {
                    Ok(_) => say("after hint: ok"),
                    Err(SdkError::Errno(e)) => say(&format!("after hint: refused {}", e.kind())),
                    Err(e) => return Err(e),
                }
            }
            say("burst done");
            Ok(0)
        }
        "call" => {
            let action = rest.first().map(String::as_str).unwrap_or("api_call");
            let params = rest.get(1).map(String::as_str).unwrap_or("{}");
            let answer = client.syscall(agentos_syscalls::Syscall::Call {
                action: action.into(),
                params_json: params.into(),
            });
            match answer {
                Ok(r) => say(&format!("answer: {r:?}")),
                Err(SdkError::Errno(e)) => say(&format!("refused: {} {e}", e.kind())),
                Err(e) => return Err(e),
            }
            wait_forever()
        }
        "exec" | "exec-wait" => {
            let opt = |i: usize| {
                rest.get(i)
                    .map(String::as_str)
                    .filter(|s| *s != "-")
                    .map(str::to_string)
            };
            let timeout = opt(0).and_then(|t| t.parse().ok());
            let cwd = opt(1);
            let argv: Vec<&str> = rest.iter().skip(2).map(String::as_str).collect();
            match client.exec(&argv, b"stdin-bytes", cwd.as_deref(), timeout) {
                Ok(o) => {
                    let text =
                        |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
                    say(&format!(
                        "exec: status={} timed_out={} truncated={} stdout_len={} stdout={:?} stderr={:?}",
                        o.status,
                        o.timed_out,
                        o.truncated,
                        o.stdout.len(),
                        text(&o.stdout),
                        text(&o.stderr)
                    ))
                }
                Err(SdkError::Errno(e)) => say(&format!("refused: {} {e}", e.kind())),
                Err(e) => return Err(e),
            }
            if mode == "exec-wait" {
                wait_forever()
            }
            Ok(0)
        }
        "script" => script(&client, rest),
        "until-allowed" => {
            let path = rest.first().map(String::as_str).unwrap_or("/mem/working/x");
            let mut told = false;
            loop {
                let d = client.check_policy("file_write", path)?;
                if d.allowed {
                    break;
                }
                if !told {
                    say(&format!("denied: {}", d.reason));
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            match client.write(path, b"data") {
                Ok(n) => say(&format!("wrote {n}")),
                Err(SdkError::Errno(e)) => say(&format!("refused: {} {e}", e.kind())),
                Err(e) => return Err(e),
            }
            wait_forever()
        }
        "ops" => ops(&client, rest),
        "race-read" => {
            let path = rest.first().map(String::as_str).unwrap_or("/workspace/f");
            let n: usize = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
            let (mut ok, mut err, mut leaked) = (0, 0, 0);
            say("racing");
            for _ in 0..n {
                match client.read(path) {
                    Ok(d) if d.windows(6).any(|w| w == b"SECRET") => leaked += 1,
                    Ok(_) => ok += 1,
                    Err(SdkError::Errno(_)) => err += 1,
                    Err(e) => return Err(e),
                }
            }
            say(&format!("race done ok={ok} err={err} leaked={leaked}"));
            Ok(0)
        }
        "fd-read" => {
            let path = rest.first().map(String::as_str).unwrap_or("/workspace/big");
            let fd = client.open(path, agentos_syscalls::OpenMode::Read)?;
            let (mut total, mut chunks, mut hash) = (0u64, 0u64, FNV_OFFSET);
            loop {
                let chunk = client.read_fd(fd, u32::MAX)?;
                if chunk.is_empty() {
                    break;
                }
                chunks += 1;
                total += chunk.len() as u64;
                hash = fnv(hash, &chunk);
            }
            client.close(fd)?;
            say(&format!(
                "fd-read {total} bytes in {chunks} chunks hash {hash:016x}"
            ));
            let whole = client.read(path);
            say(&format!(
                "one-shot: {}",
                match whole {
                    Ok(d) => format!("ok {}", d.len()),
                    Err(SdkError::Errno(e)) => format!("err {} {e}", e.kind()),
                    Err(e) => return Err(e),
                }
            ));
            let all = client.read_to_end(path)?;
            say(&format!(
                "read_to_end {} hash {:016x}",
                all.len(),
                fnv(FNV_OFFSET, &all)
            ));
            Ok(0)
        }
        "fd-write" => {
            let path = rest.first().map(String::as_str).unwrap_or("/workspace/out");
            let n: usize = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
            let data = pattern(n);
            let fd = client.open(
                path,
                agentos_syscalls::OpenMode::Write(agentos_syscalls::WriteMode::Truncate),
            )?;
            let mut written = 0;
            for chunk in data.chunks(256 << 10) {
                match client.write_fd(fd, chunk) {
                    Ok(w) => written += w,
                    Err(SdkError::Errno(e)) => {
                        say(&format!("write_fd err {} {e}", e.kind()));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            client.close(fd)?;
            say(&format!(
                "fd-write {written} hash {:016x}",
                fnv(FNV_OFFSET, &data)
            ));
            Ok(0)
        }
        "fd-exhaust" => {
            let path = rest.first().map(String::as_str).unwrap_or("/mem/working/f");
            client.write(path, b"x")?;
            let mut fds = Vec::new();
            loop {
                match client.open(path, agentos_syscalls::OpenMode::Read) {
                    Ok(fd) => fds.push(fd),
                    Err(SdkError::Errno(e)) => {
                        say(&format!("opened {} then err {} {e}", fds.len(), e.kind()));
                        break;
                    }
                    Err(e) => return Err(e),
                }
                if fds.len() > 10_000 {
                    say("never refused");
                    return Ok(1);
                }
            }
            if let Some(fd) = fds.pop() {
                client.close(fd)?;
                let again = client.open(path, agentos_syscalls::OpenMode::Read);
                say(&format!(
                    "after close: {}",
                    if again.is_ok() { "ok" } else { "err" }
                ));
            }
            Ok(0)
        }
        "ipc-ping" | "ipc-pong" => {
            let ping = mode == "ipc-ping";
            let peer = rest.first().and_then(|s| s.parse().ok()).map(AgentId);
            let rounds: usize = rest
                .get(usize::from(ping))
                .and_then(|s| s.parse().ok())
                .unwrap_or(3);
            say("ready");
            for i in 0..rounds {
                if let (true, Some(p)) = (ping, peer) {
                    client.send(p, format!("ping {i}").as_bytes())?;
                }
                let m = client.recv(None)?;
                let text = String::from_utf8_lossy(&m.payload).into_owned();
                say(&format!("got {text} from {} seq {}", m.from, m.seq));
                if !ping {
                    client.send(m.from, text.replace("ping", "pong").as_bytes())?;
                }
            }
            say(if ping { "ping done" } else { "pong done" });
            Ok(0)
        }
        "ipc-send" => {
            let peer = AgentId(rest.first().and_then(|s| s.parse().ok()).unwrap_or(0));
            let payload = rest.get(1).map(String::as_str).unwrap_or("hello");
            match client.send(peer, payload.as_bytes()) {
                Ok(()) => say("sent"),
                Err(SdkError::Errno(e)) => say(&format!("refused: {} {e}", e.kind())),
                Err(e) => return Err(e),
            }
            wait_forever()
        }
        "ipc-fill" => {
            let peer = AgentId(rest.first().and_then(|s| s.parse().ok()).unwrap_or(0));
            let mut i: u64 = 0;
            loop {
                match client.send(peer, format!("m{i}").as_bytes()) {
                    Ok(()) => i += 1,
                    Err(SdkError::Errno(e @ Errno::Busy { .. })) => {
                        say(&format!("accepted {i}"));
                        say(&format!("refused: {} {e}", e.kind()));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            // The agent's own back-off: the same message again until the receiver drains.
            let mut attempts = 1;
            loop {
                match client.send(peer, format!("m{i}").as_bytes()) {
                    Ok(()) => break,
                    Err(SdkError::Errno(Errno::Busy { .. })) => {
                        attempts += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(e) => return Err(e),
                }
            }
            say(&format!("retried m{i} ok after {attempts} attempts"));
            Ok(0)
        }
        "ipc-drain" => {
            let n: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(1);
            say("ready");
            for _ in 0..n {
                let m = client.recv(None)?;
                say(&format!(
                    "got {} from {} seq {}",
                    String::from_utf8_lossy(&m.payload),
                    m.from,
                    m.seq
                ));
            }
            match client.recv(Some(0)) {
                Ok(m) => say(&format!("then: ok {m:?}")),
                Err(SdkError::Errno(e)) => say(&format!("then: err {}", e.kind())),
                Err(e) => return Err(e),
            }
            Ok(0)
        }
        "ipc-timeout" => {
            let ms: u64 = rest.first().and_then(|s| s.parse().ok()).unwrap_or(100);
            let started = std::time::Instant::now();
            let got = client.recv(Some(ms));
            let took = started.elapsed().as_millis();
            match got {
                Ok(m) => say(&format!("timeout: ok {m:?} after {took} ms")),
                Err(SdkError::Errno(e)) => {
                    say(&format!("timeout: err {} ({e}) after {took} ms", e.kind()))
                }
                Err(e) => return Err(e),
            }
            Ok(0)
        }
        other => {
            say(&format!("unknown mode `{other}`"));
            Ok(64)
        }
    }
}

fn io(e: std::io::Error) -> SdkError {
    SdkError::Frame(frame::FrameError::Io(e))
}

/// `script STEP…`: see the module doc.
fn script(c: &Client, steps: &[String]) -> Result<u8, SdkError> {
    use agentos_syscalls::{AgentId, Reply, Syscall};
    let mut last = String::new();
    for (n, raw) in steps.iter().enumerate() {
        let step = raw.replace('$', &last);
        let (kind, arg) = step.split_once(':').unwrap_or((step.as_str(), ""));
        let answer: Result<String, SdkError> = match kind {
            "write" => {
                let (path, text) = arg.split_once('=').unwrap_or((arg, ""));
                c.write(path, text.as_bytes()).map(|n| n.to_string())
            }
            "big" => {
                let (path, n) = arg.split_once('=').unwrap_or((arg, "0"));
                let n: usize = n.parse().unwrap_or(0);
                let data: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                c.write(path, &data).map(|n| n.to_string())
            }
            "read" => c.read(arg).map(|d| {
                if d.len() > 64 {
                    let sum: u64 = d.iter().map(|&b| u64::from(b)).sum();
                    format!("{} bytes, sum {sum}", d.len())
                } else {
                    String::from_utf8_lossy(&d).into_owned()
                }
            }),
            "stat" => c.stat(arg).map(|s| format!("{:?} {}", s.kind, s.size)),
            "list" => c.list(arg).map(|e| {
                e.iter()
                    .map(|e| e.name.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            "check" => {
                let (action, resource) = arg.split_once(':').unwrap_or((arg, ""));
                c.check_policy(action, resource)
                    .map(|d| if d.allowed { "allowed" } else { "denied" }.to_string())
            }
            "signal" => {
                let (target, sig) = arg.split_once(':').unwrap_or((arg, "SIGUSR1"));
                let target = AgentId(target.parse().unwrap_or(0));
                match sig.parse::<Signal>() {
                    Ok(sig) => c.signal(target, sig).map(|()| "sent".to_string()),
                    Err(e) => Err(SdkError::Frame(frame::FrameError::Io(
                        std::io::Error::other(e.to_string()),
                    ))),
                }
            }
            "call" => {
                let (action, params) = arg.split_once(':').unwrap_or((arg, "{}"));
                c.syscall(Syscall::Call {
                    action: action.into(),
                    params_json: params.into(),
                })
                .map(|r| match r {
                    Reply::CallResult { result_json } => result_json,
                    other => format!("{other:?}"),
                })
            }
            // The MCP tools the policy lets the agent see: `server/name` joined by `,`.
            "tools" => c.list_tools().map(|t| {
                t.iter()
                    .map(|t| format!("{}/{}", t.server, t.name))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            // `tool:SERVER/TOOL:ARGS`: an MCP tool call (answer: the result JSON).
            "tool" => {
                let (action, args) = arg.split_once(':').unwrap_or((arg, "{}"));
                let (server, tool) = action.split_once('/').unwrap_or((action, ""));
                c.call_tool(server, tool, args)
            }
            "sh" | "shin" => {
                let stdin: &[u8] = if kind == "shin" { b"stdin-bytes" } else { b"" };
                c.exec(&["/bin/sh", "-c", arg], stdin, None, None).map(|o| {
                    let out = String::from_utf8_lossy(&o.stdout);
                    format!(
                        "status={} stdout={}",
                        o.status,
                        out.trim_end().lines().collect::<Vec<_>>().join("|")
                    )
                })
            }
            // Waits to be ended (a strict violation's SIGPOLICY, an operator's kill).
            "park" => {
                say(&format!("step {n} park"));
                wait_forever()
            }
            // The W3C trace context later calls are sent in; empty: none.
            "traceparent" => c
                .set_traceparent(Some(arg).filter(|a| !a.is_empty()))
                .map(|()| "set".to_string()),
            "exit" => {
                let code: u8 = arg.parse().unwrap_or(0);
                c.announce_exit(i32::from(code))?;
                say(&format!("step {n} {step}: exiting {code}"));
                return Ok(code);
            }
            other => {
                say(&format!("unknown step `{other}`"));
                return Ok(64);
            }
        };
        match answer {
            Ok(a) => {
                say(&format!("step {n} {step}: ok {a}"));
                last = a;
            }
            Err(SdkError::Errno(e)) => {
                say(&format!("step {n} {step}: err {}", e.kind()));
                last = "error".into();
            }
            Err(e) => return Err(e),
        }
    }
    say("script done");
    Ok(0)
}

/// Speaks the ABI by hand to break it on purpose.
/// Many calls in flight on one raw connection, the first of them waiting: every call is
/// answered once, by id, and the waiting one holds up none of the others.
fn pipeline_order(n: u64) -> Result<u8, SdkError> {
    use agentos_syscalls::{Reply, Request, Syscall, WriteMode};
    let mut sock = kernel_socket()?;
    frame::write_frame(
        &mut sock,
        &AgentFrame::Hello(Hello {
            abi: ABI_VERSION,
            sdk: "pipeline-test".into(),
        }),
    )?;
    frame::read_frame(&mut sock, frame::DEFAULT_MAX_FRAME)?;
    let send = |sock: &mut std::os::unix::net::UnixStream, id, call| {
        frame::write_frame(sock, &AgentFrame::Request(Request { id, call }))
    };
    send(
        &mut sock,
        1,
        Syscall::Recv {
            timeout_ms: Some(300),
        },
    )?;
    let path = "/mem/working/pipelined";
    for i in 0..n {
        let data = i.to_le_bytes().to_vec();
        let mode = WriteMode::Truncate;
        send(
            &mut sock,
            2 + 2 * i,
            Syscall::Write {
                path: path.into(),
                data,
                mode,
            },
        )?;
        let read = Syscall::Read {
            path: path.into(),
            offset: 0,
            len: None,
        };
        send(&mut sock, 3 + 2 * i, read)?;
    }
    let total = 1 + 2 * n;
    let mut seen = std::collections::BTreeSet::new();
    let (mut dups, mut strays, mut ok, mut answered_before_recv) = (0, 0, 0, 0);
    while (seen.len() as u64) < total {
        let Some(body) = frame::read_frame(&mut sock, frame::DEFAULT_MAX_FRAME)? else {
            break;
        };
        let KernelFrame::Response(r) = frame::decode::<KernelFrame>(&body)? else {
            continue;
        };
        if r.id == 0 || r.id > total {
            strays += 1;
        } else if !seen.insert(r.id) {
            dups += 1;
        }
        if r.id == 1 {
            answered_before_recv = seen.len() - 1;
        }
        if matches!(r.result, Ok(Reply::Written { .. }) | Ok(Reply::Data(_))) {
            ok += 1;
        }
    }
    say(&format!(
        "pipeline answers={} dups={dups} strays={strays} ok={ok} recv_last={}",
        seen.len(),
        answered_before_recv as u64 == total - 1
    ));
    Ok(0)
}

fn raw(how: &str) -> Result<u8, SdkError> {
    let mut sock = kernel_socket()?;
    let hello = |abi| {
        AgentFrame::Hello(Hello {
            abi,
            sdk: "raw-test".into(),
        })
    };
    if how == "bad-abi" {
        frame::write_frame(&mut sock, &hello(999))?;
    } else if how == "tool-exit-first" {
        // What only a tool's init sends, in place of the Hello.
        frame::write_frame(&mut sock, &AgentFrame::ToolExit { status: 0 })?;
    } else {
        frame::write_frame(&mut sock, &hello(ABI_VERSION))?;
        let welcome = frame::read_frame(&mut sock, frame::DEFAULT_MAX_FRAME)?;
        say(&format!(
            "handshake {}",
            if welcome.is_some() { "done" } else { "closed" }
        ));
        match how {
            "malformed" => {
                let garbage = [0xffu8, 0xff, 0xff, 0xff, 0x0f, 0x01];
                sock.write_all(&(garbage.len() as u32).to_le_bytes())
                    .map_err(io)?;
                sock.write_all(&garbage).map_err(io)?;
            }
            "oversized" => {
                sock.write_all(&0xffff_fff0u32.to_le_bytes()).map_err(io)?;
                sock.write_all(&[0u8; 64]).map_err(io)?;
            }
            "second-hello" => frame::write_frame(&mut sock, &hello(ABI_VERSION))?,
            "tool-exit" => frame::write_frame(&mut sock, &AgentFrame::ToolExit { status: 0 })?,
            other => {
                say(&format!("unknown raw mode `{other}`"));
                return Ok(64);
            }
        }
    }
    loop {
        match frame::read_frame(&mut sock, frame::DEFAULT_MAX_FRAME) {
            Ok(Some(body)) => match frame::decode::<KernelFrame>(&body) {
                Ok(KernelFrame::Response(r)) => say(&format!(
                    "answer id {} {:?}",
                    r.id,
                    r.result.map_err(|e| e.kind())
                )),
                Ok(KernelFrame::Refused(e)) => say(&format!("refused {} {e}", e.kind())),
                Ok(other) => say(&format!("frame {other:?}")),
                Err(e) => say(&format!("undecodable {e}")),
            },
            Ok(None) => {
                say("closed");
                return Ok(0);
            }
            Err(e) => {
                say(&format!("read error {e} {}", HEADER_LEN));
                return Ok(0);
            }
        }
    }
}

/// `connect PATH`: try to drive the kernel through a Unix socket path (the control socket).
fn connect_attack(path: &str) -> u8 {
    use agentos_syscalls::control::{ControlRequest, ControlResponse};
    let mut s = match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("connect failed: {e}"));
            return 0;
        }
    };
    if let Err(e) = frame::write_frame(&mut s, &ControlRequest::Ps) {
        say(&format!("send failed: {e}"));
        return 0;
    }
    match frame::read_frame(&mut s, frame::DEFAULT_MAX_FRAME) {
        Ok(Some(body)) => match frame::decode::<ControlResponse>(&body) {
            Ok(ControlResponse::Error(e)) => say(&format!("kernel refused: {}", e.message)),
            Ok(other) => say(&format!("ESCAPED: kernel answered {other:?}")),
            Err(e) => say(&format!("undecodable {e}")),
        },
        Ok(None) => say("closed"),
        Err(e) => say(&format!("read failed: {e}")),
    }
    0
}

/// Every syscall this kernel serves, once, each answer printed as `name: answer`.
fn tour(c: &Client, target: Option<u64>) -> Result<u8, SdkError> {
    use agentos_syscalls::Syscall;
    let show = |name: &str, r: Result<String, SdkError>| match r {
        Ok(v) => say(&format!("{name}: ok {v}")),
        Err(SdkError::Errno(e)) => say(&format!("{name}: err {}", e.kind())),
        Err(e) => say(&format!("{name}: failed {e}")),
    };
    show(
        "write",
        c.write("/mem/working/a/b.txt", b"hello")
            .map(|n| n.to_string()),
    );
    show(
        "append",
        c.append("/mem/working/a/b.txt", b"!")
            .map(|n| n.to_string()),
    );
    show(
        "read",
        c.read("/mem/working/a/b.txt")
            .map(|d| String::from_utf8_lossy(&d).into_owned()),
    );
    show(
        "read_at",
        c.read_at("/mem/working/a/b.txt", 1, 3)
            .map(|d| String::from_utf8_lossy(&d).into_owned()),
    );
    show(
        "stat",
        c.stat("/mem/working/a/b.txt")
            .map(|s| format!("{:?} {}", s.kind, s.size)),
    );
    show(
        "list",
        c.list("/mem/working/a").map(|e| {
            e.iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>()
                .join(",")
        }),
    );
    show(
        "create_new",
        c.create_new("/mem/working/a/b.txt", b"x")
            .map(|n| n.to_string()),
    );
    show(
        "check_allowed",
        c.check_policy("file_write", "/mem/working/z")
            .map(|d| format!("{} {}", d.allowed, d.rule)),
    );
    show(
        "check_denied",
        c.check_policy("file_write", "/etc/passwd")
            .map(|d| format!("{} {}", d.allowed, d.reason)),
    );
    show(
        "unlink",
        c.unlink("/mem/working/a/b.txt").map(|()| String::new()),
    );
    show(
        "stat_gone",
        c.stat("/mem/working/a/b.txt").map(|s| format!("{s:?}")),
    );
    show("recv", c.recv(Some(1)).map(|m| format!("{m:?}")));
    show("checkpoint", c.checkpoint().map(|n| n.to_string()));
    show("close", c.close(9).map(|()| String::new()));
    show(
        "raw_exit",
        c.syscall(Syscall::Exit { code: 0 })
            .map(|r| format!("{r:?}")),
    );
    if let Some(t) = target {
        show(
            "signal",
            c.signal(AgentId(t), Signal::Usr1).map(|()| String::new()),
        );
        show(
            "signal_missing",
            c.signal(AgentId(999_999), Signal::Usr1)
                .map(|()| String::new()),
        );
    }
    say("tour done");
    Ok(0)
}

/// Runs `f` with an async client on a current-thread runtime.
fn with_async_client<T, F, Fut>(f: F) -> Result<T, SdkError>
where
    F: FnOnce(agentos_sdk::AsyncClient) -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    rt.block_on(async move {
        let c = agentos_sdk::AsyncClient::connect().await?;
        f(c).await
    })
}

/// `ipc-wait`: a `Recv` the kernel is known to hold (a later request on the same connection
/// has been answered), then wait for the end.
fn ipc_wait() -> Result<u8, SdkError> {
    with_async_client(|c| async move {
        // `join!` polls the `Recv` first: its frame is written before the `Write`'s.
        let (got, _) = tokio::join!(c.recv(None), async {
            match c.write("/mem/working/waiting", b"1").await {
                Ok(_) => say("waiting"),
                Err(e) => say(&format!("write failed: {e}")),
            }
        });
        say(&format!("wait: {got:?}"));
        Ok::<(), SdkError>(())
    })?;
    wait_forever()
}

/// Many calls in flight on one connection through the async client.
fn async_burst(n: usize) -> Result<u8, SdkError> {
    with_async_client(|c| async move {
        for i in 0..n {
            c.write(
                &format!("/mem/working/f{i}"),
                format!("value {i}").as_bytes(),
            )
            .await?;
        }
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let c = c.clone();
            set.spawn(async move { (i, c.read(&format!("/mem/working/f{i}")).await) });
        }
        let mut good = 0;
        while let Some(joined) = set.join_next().await {
            let (i, got) = joined.map_err(|e| io(std::io::Error::other(e)))?;
            if got? == format!("value {i}").into_bytes() {
                good += 1;
            }
        }
        say(&format!("async ok {good}/{n}"));
        Ok(0)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `h`.
fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `n` bytes of a deterministic pattern (the tests build the same).
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// `ops OP…`: see the module doc.
fn ops(c: &Client, ops: &[String]) -> Result<u8, SdkError> {
    let show = |op: &str, r: Result<String, SdkError>| -> Result<(), SdkError> {
        match r {
            Ok(v) => say(&format!("{op}: ok {v}")),
            Err(SdkError::Errno(e)) => say(&format!("{op}: err {} {e}", e.kind())),
            Err(e) => return Err(e),
        }
        Ok(())
    };
    for op in ops {
        let mut parts = op.splitn(3, '=');
        let verb = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let arg = parts.next().unwrap_or("");
        let r = match verb {
            "read" => c
                .read(path)
                .map(|d| String::from_utf8_lossy(&d).into_owned()),
            "write" => c.write(path, arg.as_bytes()).map(|n| n.to_string()),
            "append" => c.append(path, arg.as_bytes()).map(|n| n.to_string()),
            "fill" => c
                .write(path, &vec![b'x'; arg.parse().unwrap_or(0)])
                .map(|n| n.to_string()),
            "list" => c.list(path).map(|e| {
                e.iter()
                    .map(|e| e.name.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            "stat" => c
                .stat(path)
                .map(|s| format!("{:?} {} ro={}", s.kind, s.size, s.read_only)),
            "unlink" => c.unlink(path).map(|()| String::new()),
            "checkpoint" => c.checkpoint().map(|n| n.to_string()),
            "send" => {
                let to = match path {
                    "self" => c.agent_id(),
                    id => AgentId(id.parse().unwrap_or(0)),
                };
                c.send(to, arg.as_bytes()).map(|()| String::new())
            }
            "recv" => c
                .recv(Some(0))
                .map(|m| format!("{} from {}", String::from_utf8_lossy(&m.payload), m.from)),
            "park" => {
                say("ready");
                wait_forever()
            }
            other => {
                say(&format!("unknown op `{other}`"));
                return Ok(64);
            }
        };
        show(
            op.split('=').take(2).collect::<Vec<_>>().join("=").as_str(),
            r,
        )?;
    }
    say("ops done");
    Ok(0)
}

/// Two `Exec`s at once: `ARGV_A… -- ARGV_B…`; prints `pair a: status=N stdout=…` and the
/// same for b (or the error), in that order.
fn exec_pair(args: &[String]) -> Result<u8, SdkError> {
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let a: Vec<String> = args[..split].to_vec();
    let b: Vec<String> = args.get(split + 1..).unwrap_or_default().to_vec();
    with_async_client(|c| async move {
        let run = |c: agentos_sdk::AsyncClient, argv: Vec<String>| async move {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            c.exec(&argv, b"", None, Some(20_000)).await
        };
        let (ra, rb) = tokio::join!(run(c.clone(), a), run(c.clone(), b));
        for (name, r) in [("a", ra), ("b", rb)] {
            match r {
                Ok(out) => say(&format!(
                    "pair {name}: status={} stdout={}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout)
                        .trim()
                        .replace('\n', "|")
                )),
                Err(e) => say(&format!("pair {name}: error {e}")),
            }
        }
        Ok(0)
    })
}

fn exec_burst(n: usize) -> Result<u8, SdkError> {
    with_async_client(|c| async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let c = c.clone();
            set.spawn(async move { c.exec(&["/bin/sleep", "5"], b"", None, None).await });
        }
        let (mut ok, mut busy, mut other) = (0, 0, 0);
        while let Some(joined) = set.join_next().await {
            match joined.map_err(|e| io(std::io::Error::other(e)))? {
                Ok(out) if out.status == 0 => ok += 1,
                Err(SdkError::Errno(Errno::Busy { .. })) => busy += 1,
                _ => other += 1,
            }
        }
        say(&format!("exec-burst ok={ok} busy={busy} other={other}"));
        Ok(0)
    })
}

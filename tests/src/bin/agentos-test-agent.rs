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
//! - `tour [TARGET]`: every served syscall once, printing each answer (SIGUSR1 to TARGET)
//! - `async-burst N`: N reads in flight at once through the async client
//! - `attack NAME [ARG]`: one escape attempt (see `agentos_tests::attack`), one verdict line
//! - `connect PATH`: try to drive the kernel through its control socket (an attack)
//! - `burst N PATH`: N writes to PATH as fast as possible, each answer printed; after a
//!   `RateLimited`, sleep for its `retry_after_ms` hint and write once more; exit 0
//! - `call ACTION PARAMS_JSON`: one `Call` syscall, print the answer, wait
//! - `script STEP…`: one syscall per step, in order, each answer printed as
//!   `step N STEP: ok ANSWER` or `step N STEP: err KIND`; a `$` in a step stands for the
//!   previous step's answer, so later calls depend on what earlier ones returned. Steps:
//!   `write:PATH=TEXT`, `big:PATH=N` (N bytes `abc…z` repeated), `read:PATH` (answer: the
//!   text, or `N bytes, sum S` past 64 bytes), `stat:PATH`, `list:PATH`, `check:ACTION:RESOURCE` (answer
//!   `allowed` or `denied`), `signal:AGENT:SIGNAL`, `call:ACTION:PARAMS_JSON` (answer: the
//!   result JSON), `exit:CODE` (announce the exit, then exit with CODE); exit 0 after the last
//! - `until-allowed PATH`: ask `CheckPolicy` about writing PATH until the answer is yes (printing
//!   the first no), then write it, print the answer, wait

use std::io::Write;
use std::process::ExitCode;

use agentos_syscalls::frame::{self, HEADER_LEN};
use agentos_syscalls::{AgentFrame, Errno, Hello, KernelFrame, Signal, ABI_VERSION};
use agentos_userspace::sdk::{kernel_socket, Client, SdkError};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

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
        "async-burst" => async_burst(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32)),
        "attack" => Ok(agentos_tests::attack::main(
            args.get(1).map(String::as_str).unwrap_or(""),
            args.get(2).map(String::as_str),
        )),
        "connect" => Ok(connect_attack(
            args.get(1).map(String::as_str).unwrap_or(""),
        )),
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
    use agentos_syscalls::{AgentId, Syscall};
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

/// Many calls in flight on one connection through the async client.
fn async_burst(n: usize) -> Result<u8, SdkError> {
    use agentos_userspace::sdk::AsyncClient;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    rt.block_on(async move {
        let c = AsyncClient::connect().await?;
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

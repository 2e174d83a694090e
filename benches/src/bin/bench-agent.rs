//! The agent the benches spawn inside a real jail.
//!
//! - `bench-agent rtt N`: connects, writes a 64-byte `/mem/working/x` once, then times `N`
//!   `read("/mem/working/x")` round trips and prints `elapsed_ns <total>` on stdout.
//! - `bench-agent first`: connects, does one `write`, exits (for spawn → first syscall).
//! - `bench-agent load START_UNIX_NS WINDOW_MS`: connects, writes `/mem/working/x` once,
//!   sleeps until the wall-clock instant `START_UNIX_NS`, then counts `read`s of it until
//!   `WINDOW_MS` later and prints `reads <count>` and `late_ns <how late it started>` (the
//!   throughput bench runs many at once over the same window).
//! - `bench-agent vfs read|write PATH SIZE N`: times `N` one-shot `Read`s of PATH (checking
//!   SIZE bytes come back) or `N` one-shot `Write`s of SIZE bytes to PATH; prints
//!   `elapsed_ns <total>`.
//! - `bench-agent victim N`, `bench-agent dos ATTACK [ARG]`: the DoS suite's neighbour and
//!   attackers (`agentos_tests::dos_modes`), for the isolation bench.
//! - `bench-agent exec N`: times `N` `Exec`s of `/bin/true` (each checked to exit 0) and prints
//!   `elapsed_ns <total>`.
//! - `bench-agent download ADDR SIZE N` / `bench-agent setup ADDR N`: through the agent's
//!   egress proxy (`HTTP_PROXY`), times `N` downloads of SIZE bytes from the HTTP source at
//!   ADDR, or `N` connection setups (`CONNECT` and its `200`); prints `elapsed_ns <total>`.
//!   They use no kernel syscall: the proxy is the only way out.

// A bench helper: any failure should abort loudly, so unwrap/expect are the right tool here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use agentos_sdk::Client;

const PATH: &str = "/mem/working/x";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The isolation bench's neighbour and attackers are the DoS suite's own.
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(0) {
        Some("victim") => std::process::exit(i32::from(agentos_tests::dos_modes::victim(
            arg(1).and_then(|s| s.parse().ok()).unwrap_or(1000),
        ))),
        Some("dos") => std::process::exit(i32::from(agentos_tests::dos_modes::attack(
            arg(1).unwrap_or(""),
            arg(2),
        ))),
        Some(mode @ ("download" | "setup")) => {
            use agentos_benches::http;
            let proxy = Some(http::proxy_from_env());
            let server = arg(1).and_then(|a| a.parse().ok()).expect("ADDR");
            let number = |i: usize| {
                arg(i)
                    .and_then(|n| n.parse::<u64>().ok())
                    .expect("a number")
            };
            let start = Instant::now();
            if mode == "download" {
                let (size, n) = (number(2) as usize, number(3));
                for _ in 0..n {
                    assert_eq!(http::download(proxy, server), size);
                }
            } else {
                for _ in 0..number(2) {
                    http::setup(proxy, server);
                }
            }
            println!("elapsed_ns {}", start.elapsed().as_nanos());
            return;
        }
        _ => {}
    }
    let client = Client::connect().expect("connect to the kernel");
    match args.first().map(String::as_str) {
        Some("rtt") => {
            let n: u64 = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .expect("usage: bench-agent rtt N [WARMUP]");
            // Untimed reads first (the SDK round-trip bench gives every SDK the same number).
            let warmup: u64 = args
                .get(2)
                .map_or(0, |s| s.parse().expect("usage: bench-agent rtt N [WARMUP]"));
            client
                .write(PATH, &[0x5a; 64])
                .expect("write /mem/working/x");
            for _ in 0..warmup {
                client.read(PATH).expect("read /mem/working/x");
            }
            let start = Instant::now();
            for _ in 0..n {
                let data = client.read(PATH).expect("read /mem/working/x");
                assert_eq!(data.len(), 64);
            }
            let elapsed = start.elapsed();
            println!("elapsed_ns {}", elapsed.as_nanos());
        }
        Some("exec") => {
            let n: u64 = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .expect("usage: bench-agent exec N");
            let start = Instant::now();
            for _ in 0..n {
                let out = client
                    .exec(&["/bin/true"], b"", None, None)
                    .expect("exec /bin/true");
                assert_eq!(out.status, 0, "{out:?}");
            }
            println!("elapsed_ns {}", start.elapsed().as_nanos());
        }
        // Connected, then idle until the kernel ends it (SIGTERM, when the policy lists it,
        // ends the process: no handler is installed).
        Some("idle") => loop {
            std::thread::park();
        },
        Some("mcp") => {
            let n: u64 = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .expect("usage: bench-agent mcp N");
            // The first call starts the agent's copy of the server: not timed.
            client
                .call_tool("everything", "echo", r#"{"message":"warm"}"#)
                .expect("the first MCP call");
            let start = Instant::now();
            for _ in 0..n {
                let out = client
                    .call_tool("everything", "echo", r#"{"message":"hi"}"#)
                    .expect("call everything/echo");
                assert!(out.contains("Echo: hi"), "{out}");
            }
            println!("elapsed_ns {}", start.elapsed().as_nanos());
        }
        Some("load") => {
            let number = |i: usize| {
                args.get(i)
                    .and_then(|s| s.parse::<u64>().ok())
                    .expect("usage: bench-agent load START_UNIX_NS WINDOW_MS")
            };
            let (start_ns, window_ms) = (number(1), number(2));
            client
                .write(PATH, &[0x5a; 64])
                .expect("write /mem/working/x");
            let start = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(start_ns);
            let late = match start.duration_since(std::time::SystemTime::now()) {
                Ok(wait) => {
                    std::thread::sleep(wait);
                    0
                }
                Err(e) => e.duration().as_nanos(),
            };
            let end = start + std::time::Duration::from_millis(window_ms);
            let mut reads = 0u64;
            while std::time::SystemTime::now() < end {
                let data = client.read(PATH).expect("read /mem/working/x");
                assert_eq!(data.len(), 64);
                reads += 1;
            }
            println!("reads {reads}");
            println!("late_ns {late}");
        }
        Some("first") => {
            client
                .write(PATH, &[0x5a; 64])
                .expect("write /mem/working/x");
        }
        Some("vfs") => {
            let op = args.get(1).map(String::as_str).unwrap_or("read");
            let path = args
                .get(2)
                .expect("usage: bench-agent vfs read|write PATH SIZE N");
            let size: usize = args.get(3).and_then(|s| s.parse().ok()).expect("SIZE");
            let n: u64 = args.get(4).and_then(|s| s.parse().ok()).expect("N");
            let data = vec![0xa5u8; size];
            let start = Instant::now();
            for _ in 0..n {
                if op == "write" {
                    let w = client.write(path, &data).expect("write");
                    assert_eq!(w as usize, size);
                } else {
                    let got = client.read(path).expect("read");
                    assert_eq!(got.len(), size);
                }
            }
            println!("elapsed_ns {}", start.elapsed().as_nanos());
        }
        _ => {
            eprintln!("usage: bench-agent rtt N | bench-agent first | bench-agent vfs … | bench-agent exec N");
            std::process::exit(2);
        }
    }
}

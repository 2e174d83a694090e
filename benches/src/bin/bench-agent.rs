//! The agent the benches spawn inside a real jail.
//!
//! - `bench-agent rtt N`: connects, writes a 64-byte `/mem/working/x` once, then times `N`
//!   `read("/mem/working/x")` round trips and prints `elapsed_ns <total>` on stdout.
//! - `bench-agent first`: connects, does one `write`, exits (for spawn → first syscall).
//! - `bench-agent exec N`: times `N` `Exec`s of `/bin/true` (each checked to exit 0) and prints
//!   `elapsed_ns <total>`.

// A bench helper: any failure should abort loudly, so unwrap/expect are the right tool here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use agentos_userspace::sdk::Client;

const PATH: &str = "/mem/working/x";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let client = Client::connect().expect("connect to the kernel");
    match args.first().map(String::as_str) {
        Some("rtt") => {
            let n: u64 = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .expect("usage: bench-agent rtt N");
            client
                .write(PATH, &[0x5a; 64])
                .expect("write /mem/working/x");
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
        Some("first") => {
            client
                .write(PATH, &[0x5a; 64])
                .expect("write /mem/working/x");
        }
        _ => {
            eprintln!("usage: bench-agent rtt N | bench-agent first | bench-agent exec N");
            std::process::exit(2);
        }
    }
}

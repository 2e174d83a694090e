//! The far side of the Unix-socket ping-pong floor: echoes 64-byte messages on the
//! descriptor named in argv until EOF.
//!
//! The bench hands the socket over as the child's descriptor 0 (std's `Stdio` does the
//! `dup2`, which also clears `FD_CLOEXEC`), so `pingpong-echo 0` needs no `unsafe` to adopt a
//! raw descriptor number; any other number is refused.

// A bench helper: any failure should abort loudly, so unwrap/expect are the right tool here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::AsFd;

const MSG: usize = 64;

fn main() {
    let fd: i32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("usage: pingpong-echo FD");
    assert_eq!(fd, 0, "pingpong-echo expects the socket at descriptor 0");
    let stdin = std::io::stdin();
    let sock = stdin.as_fd();
    let mut buf = [0u8; MSG];
    loop {
        // Read one whole message (a stream socket may split it).
        let mut got = 0;
        while got < MSG {
            match rustix::io::read(sock, &mut buf[got..]).expect("read") {
                0 => return,
                n => got += n,
            }
        }
        let mut sent = 0;
        while sent < MSG {
            sent += rustix::io::write(sock, &buf[sent..]).expect("write");
        }
    }
}

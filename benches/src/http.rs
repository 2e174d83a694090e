//! The egress bench's loopback HTTP source and its client, used both by the bench process
//! (the direct floor) and by `bench-agent` inside a jail (through its egress proxy).
//!
//! The source answers every request with a fixed body from memory (`Connection: close`),
//! so both rows pay the same server cost and what differs is the path between.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

/// Starts the source on `127.0.0.1`, a free port, answering every request with `body` bytes;
/// returns its address (its threads live as long as the process).
pub fn serve(body: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the bench's HTTP source");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        let chunk = vec![0x5au8; 1 << 20];
        let chunk: &'static [u8] = Box::leak(chunk.into_boxed_slice());
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream, body, chunk));
        }
    });
    addr
}

/// Starts a listener on `127.0.0.1` that accepts every connection and closes it at once, on
/// one thread (the setup rows dial it: a server that keeps up with any connect rate, so
/// neither row waits on a full accept queue); returns its address.
pub fn sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the bench's sink");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || for _ in listener.incoming() {});
    addr
}

fn answer(mut stream: TcpStream, body: usize, chunk: &[u8]) {
    if read_head(&mut stream).is_none() {
        return; // a connection setup only: closed without a request
    }
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {body}\r\nConnection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut left = body;
    while left > 0 {
        let n = left.min(chunk.len());
        if stream.write_all(&chunk[..n]).is_err() {
            return;
        }
        left -= n;
    }
}

/// Reads up to the end of a head; `None` when the peer closed first.
fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut byte).ok().filter(|n| *n > 0)?;
        head.extend_from_slice(&byte[..n]);
    }
    Some(head)
}

/// Downloads `/` from `server`, directly or through the HTTP proxy `proxy`; returns the body's
/// length (everything after the head, read to the end).
pub fn download(proxy: Option<SocketAddr>, server: SocketAddr) -> usize {
    let (dial, target) = match proxy {
        Some(p) => (p, format!("http://{server}/")),
        None => (server, "/".to_string()),
    };
    let mut s = TcpStream::connect(dial).expect("connect");
    let _ = s.set_nodelay(true);
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0usize;
    let mut head_end = None;
    let mut head = Vec::new();
    loop {
        let n = s.read(&mut buf).expect("read the answer");
        if n == 0 {
            break;
        }
        if head_end.is_none() {
            head.extend_from_slice(&buf[..n.min(4096)]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                assert!(
                    head.starts_with(b"HTTP/1.1 200"),
                    "{}",
                    String::from_utf8_lossy(&head)
                );
                head_end = Some(i + 4);
            }
        }
        total += n;
    }
    total - head_end.expect("an HTTP answer")
}

/// Opens a connection to `server` and closes it: directly (TCP connect), or through the
/// proxy (connect to it, `CONNECT`, its `200`).
pub fn setup(proxy: Option<SocketAddr>, server: SocketAddr) {
    let Some(p) = proxy else {
        drop(TcpStream::connect(server).expect("connect"));
        return;
    };
    let mut s = TcpStream::connect(p).expect("connect to the proxy");
    let _ = s.set_nodelay(true);
    write!(s, "CONNECT {server} HTTP/1.1\r\nHost: {server}\r\n\r\n").expect("CONNECT");
    let head = read_head(&mut s).expect("the proxy's answer");
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// The proxy an agent was given (`HTTP_PROXY=http://ADDR`).
pub fn proxy_from_env() -> SocketAddr {
    let url = std::env::var("HTTP_PROXY").expect("HTTP_PROXY: the agent has no egress proxy");
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("HTTP_PROXY is http://ADDR:PORT")
}

//! The egress proxy: the only way to the network for an agent whose policy has a `network`
//! rule, held to that policy connection by connection.
//!
//! ```text
//! agent's netns: client ─► 127.0.0.1:3128 (the listener the launcher made, handed over)
//! kernel: read the request head (≤ 16 KiB, 30 s) ─► CONNECT HOST:PORT or an absolute
//!   http:// URI ─► judge `network` on HOST:PORT (policy + base policy, mode, rate limit,
//!   approval: as a syscall) ─► resolve the name (the kernel's resolver) ─► refuse a loopback,
//!   private, link-local, multicast or host address no rule names literally ─► connect
//!   ─► record `Egress` ─► answer (`200` to a CONNECT; a plain request forwarded with
//!   `Connection: close`) ─► copy both ways (the agent's bandwidth budget)
//!   ─► record `EgressClosed` (bytes each way, duration)
//! ```
//!
//! - **Honest answers.** A refusal is an HTTP answer naming the rule and the reason (`403`;
//!   `429` with `Retry-After` for a rate limit; `503` over the connection budget; `400` or
//!   `431` for what is not a proxy request; `502`/`504` when the server cannot be reached),
//!   never a DNS failure. A strict-mode violation then ends the agent with SIGPOLICY, as a
//!   refused syscall does; permissive and audit modes let it through, recorded.
//! - **No pivot.** The name is resolved here, and every address it resolves to is checked
//!   (one restricted address refuses the connection: no DNS rebinding between a check and a
//!   connect, no mixing a private address among public ones).
//! - **What it cannot see.** A CONNECT is a tunnel: the proxy learns the host name and port,
//!   never the bytes inside TLS. Plain HTTP is forwarded as it is (one request per connection).
//! - **Bounded.** At most `--egress-max-connections` connections of one agent at once (the
//!   next is answered `503` without being read), its bytes per second together
//!   (`--egress-bytes-per-sec`, each direction), the request head's size and time, the name
//!   lookup's and the connect's time; every task ends with the agent.
//! - A replayed run (`agentctl replay run`) makes no connection: each is answered `403`.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentos_policy::Access;
use agentos_syscalls::Errno;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::calls::Class;
use super::judge::{self, Judgment};
use crate::agent::{lock, Agent};
use crate::recorder::{DecisionRecord, RecordEvent};
use crate::state::KernelInner;
use crate::util::now_ms;

/// The policy action of a connection.
pub(crate) const ACTION: &str = "network";
/// The largest request head (request line and headers) the proxy reads.
const HEAD_MAX: usize = 16 << 10;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a name lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused client has to read its answer and close before the proxy closes (and,
/// for a strict violation, before SIGPOLICY).
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// How long a connection may take to finish by itself once the agent's tree is gone.
const END_GRACE: Duration = Duration::from_millis(500);
/// The largest copy buffer, each direction (grown from 16 KiB while reads fill it; at most
/// `--egress-max-connections` × 2 of them per agent).
const CHUNK: usize = 256 << 10;

/// Serves the egress listener the launcher handed over for `agent` until the agent ends.
/// Refuses a descriptor that is not a listening TCP socket.
pub(crate) fn serve(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    listener: Option<OwnedFd>,
) -> Result<(), String> {
    let Some(fd) = listener else {
        return Err("an egress listener frame without its descriptor".into());
    };
    let listening = rustix::net::sockopt::socket_acceptconn(fd.as_fd()).unwrap_or(false);
    let tcp = rustix::net::sockopt::socket_type(fd.as_fd())
        .is_ok_and(|t| t == rustix::net::SocketType::STREAM)
        && rustix::net::getsockname(fd.as_fd())
            .ok()
            .and_then(|a| SocketAddr::try_from(a).ok())
            .is_some();
    if !(listening && tcp) {
        return Err(
            "an egress listener frame whose descriptor is not a listening TCP socket".into(),
        );
    }
    let std_listener = std::net::TcpListener::from(fd);
    std_listener
        .set_nonblocking(true)
        .map_err(|e| format!("egress listener: {e}"))?;
    let listener =
        TcpListener::from_std(std_listener).map_err(|e| format!("egress listener: {e}"))?;
    let limits = k.config.egress;
    let proxy = Arc::new(Proxy {
        connections: Arc::new(Semaphore::new(limits.connections as usize)),
        next: AtomicU64::new(0),
        up: Bucket::new(limits.bytes_per_sec),
        down: Bucket::new(limits.bytes_per_sec),
    });
    let task = tokio::spawn(accept(Arc::clone(k), Arc::clone(agent), listener, proxy));
    // The reaper waits for it: every connection's end is recorded before the agent's exit.
    agent.add_watcher(task);
    Ok(())
}

/// One agent's proxy: its connection budget, its connection numbers, its bandwidth.
struct Proxy {
    connections: Arc<Semaphore>,
    next: AtomicU64,
    /// Agent → server.
    up: Bucket,
    /// Server → agent.
    down: Bucket,
}

/// Accepts the agent's connections until its tree is gone, then waits for each connection
/// to record its end.
async fn accept(k: Arc<KernelInner>, agent: Arc<Agent>, listener: TcpListener, proxy: Arc<Proxy>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = agent.wait_tree_gone() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory: give the kernel a moment rather than spin.
                    tracing::warn!(agent_id = %agent.id, error = %e, "egress proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn = proxy.next.fetch_add(1, Ordering::Relaxed) + 1;
        let permit = Arc::clone(&proxy.connections).try_acquire_owned().ok();
        let (k, agent, proxy) = (Arc::clone(&k), Arc::clone(&agent), Arc::clone(&proxy));
        connections
            .spawn(async move { connection(&k, &agent, &proxy, conn, stream, permit).await });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What the agent asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ask {
    /// `CONNECT`, or the plain-HTTP method.
    method: String,
    /// Lower case, without brackets for IPv6, without a trailing dot.
    host: String,
    port: u16,
    /// A plain request as it goes to the server (origin-form, `Connection: close`); `None`
    /// for a CONNECT.
    forward: Option<Vec<u8>>,
}

impl Ask {
    /// `HOST:PORT` (`[V6]:PORT`), the resource the policy judges.
    fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An answer the proxy gives instead of a connection.
struct Refusal {
    errno: Errno,
    decision: DecisionRecord,
}

/// One connection: judged, made and recorded ([`open`]), then tunnelled until either side
/// ends or the agent's tree is gone, its end recorded.
async fn connection(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    proxy: &Proxy,
    conn: u64,
    mut client: TcpStream,
    permit: Option<OwnedSemaphorePermit>,
) {
    let opened = tokio::select! {
        // Nothing was connected yet: nothing to record.
        _ = agent.wait_tree_gone() => return,
        opened = open(k, agent, conn, &mut client, permit.is_some()) => opened,
    };
    let Some((server, ask, rest)) = opened else {
        return;
    };
    let started = Instant::now();
    let sent = AtomicU64::new(0);
    let received = AtomicU64::new(0);
    let tunnel = tunnel(&mut client, server, &ask, rest, proxy, &sent, &received);
    tokio::pin!(tunnel);
    let why = tokio::select! {
        why = &mut tunnel => why,
        // The agent's ends of its connections closed with it: a tunnel whose server closes
        // in turn ends by itself; one whose server does not is cut.
        _ = agent.wait_tree_gone() => match tokio::time::timeout(END_GRACE, &mut tunnel).await {
            Ok(why) => why,
            Err(_) => "agent ended".to_string(),
        },
    };
    drop(permit);
    k.record(
        Some(agent.id),
        RecordEvent::EgressClosed {
            conn,
            sent: sent.load(Ordering::Relaxed),
            received: received.load(Ordering::Relaxed),
            duration_ms: started.elapsed().as_millis() as u64,
            why,
        },
    );
}

/// Reads, judges, resolves, connects and records one connection; answers the client a
/// refusal itself. `Some`: connected and recorded, the server, what was asked and the bytes
/// the client sent after its request head.
async fn open(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    conn: u64,
    client: &mut TcpStream,
    within_budget: bool,
) -> Option<(TcpStream, Ask, Vec<u8>)> {
    if !within_budget {
        let errno = Errno::Busy {
            what: format!(
                "agent {} already holds {} egress connections (the kernel's --egress-max-connections); close one first",
                agent.id, k.config.egress.connections
            ),
        };
        let decision = builtin("limits", errno.to_string());
        let refusal = Refusal { errno, decision };
        refuse(k, agent, client, conn, ("", "", ""), refusal).await;
        return None;
    }
    let Ok(Ok(Some((head, rest)))) = tokio::time::timeout(HEAD_TIMEOUT, read_head(client)).await
    else {
        return None; // closed, timed out or unreadable before it asked for anything
    };
    // A head over its bound, or one that is not a proxy request: answered, recorded.
    let ask = match head.and_then(|head| parse(&head)) {
        Ok(ask) => ask,
        Err(errno) => {
            let decision = builtin("limits", errno.to_string());
            let refusal = Refusal { errno, decision };
            refuse(k, agent, client, conn, ("", "", ""), refusal).await;
            return None;
        }
    };
    let target = ask.target();
    if matches!(k.performer, super::Performer::Replay(_)) {
        let reason = "a replayed run makes no connections".to_string();
        let errno = Errno::PermissionDenied {
            rule: "replay".into(),
            reason: reason.clone(),
        };
        let refusal = Refusal {
            errno,
            decision: builtin("replay", reason),
        };
        refuse(k, agent, client, conn, (&ask.method, &target, ""), refusal).await;
        return None;
    }
    let mut j = judge_connection(k, agent, conn, &target).await;
    if let Some(errno) = j.refusal.take() {
        let sentence = super::respond::policy_sentence(&j.record);
        let refusal = Refusal {
            errno,
            decision: j.record,
        };
        refuse(k, agent, client, conn, (&ask.method, &target, ""), refusal).await;
        if let Some((signal, reason)) = sentence.end {
            let _ = crate::signals::deliver(k, agent, signal, "kernel", reason).await;
        }
        return None;
    }
    let reached = match resolve(&ask.host, ask.port, &agent.policy()).await {
        Ok(addrs) => connect(&addrs).await,
        Err(refused) => Err(refused),
    };
    let (server, address) = match reached {
        Ok(s) => s,
        Err((errno, address)) => {
            // A restricted address is the proxy's own refusal; the rest is the network's.
            let rule = match &errno {
                Errno::PermissionDenied { .. } => "egress",
                _ => "network",
            };
            let refusal = Refusal {
                decision: refused_after(j.record, rule, errno.to_string()),
                errno,
            };
            let asked = (ask.method.as_str(), target.as_str(), address.as_str());
            refuse(k, agent, client, conn, asked, refusal).await;
            return None;
        }
    };
    if let Err(errno) = k.admit() {
        let refusal = Refusal {
            decision: refused_after(j.record, "recorder", errno.to_string()),
            errno,
        };
        refuse(k, agent, client, conn, (&ask.method, &target, ""), refusal).await;
        return None;
    }
    super::respond::count_judged(agent, &j.record, || (ACTION.into(), target.clone()));
    let recorded = k
        .record_async(
            Some(agent.id),
            RecordEvent::Egress {
                conn,
                method: ask.method.clone(),
                target: target.clone(),
                address: address.to_string(),
                decision: j.record,
                result: Ok(()),
            },
        )
        .await;
    crate::signals::enforce_recorder_share(k, agent).await;
    if !recorded {
        let _ = client
            .write_all(&http_answer(&recorder_failed(), None))
            .await;
        return None;
    }
    Some((server, ask, rest))
}

/// The policy's judgment of a connection to `target`, with its approval awaited.
async fn judge_connection(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    conn: u64,
    target: &str,
) -> Judgment {
    let now = now_ms();
    let class = Class::new(ACTION, target.to_string(), Access::Write, 0);
    let mut j = judge::judge_class(
        &agent.policy(),
        k.config.base_policy.as_ref(),
        class,
        now,
        super::charge(agent, now),
    );
    if let Some(ask) = j.approval.take() {
        super::approval::await_approval(k, agent, conn, ask, None, &mut j).await;
    }
    j
}

/// Records a refused connection, counts it, and answers the client with it.
/// `asked` is the method, `HOST:PORT` and resolved address, as far as they are known.
async fn refuse(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    client: &mut TcpStream,
    conn: u64,
    (method, target, address): (&str, &str, &str),
    Refusal { errno, decision }: Refusal,
) {
    super::respond::count_judged(agent, &decision, || (ACTION.into(), target.into()));
    let recorded = k
        .record_async(
            Some(agent.id),
            RecordEvent::Egress {
                conn,
                method: method.to_string(),
                target: target.to_string(),
                address: address.to_string(),
                decision: decision.clone(),
                result: Err(errno.clone()),
            },
        )
        .await;
    crate::signals::enforce_recorder_share(k, agent).await;
    let over_budget = matches!(errno, Errno::Busy { .. });
    let errno = if recorded { errno } else { recorder_failed() };
    let rule = (!decision.rule.is_empty()).then_some(decision.rule.as_str());
    let _ = client.write_all(&http_answer(&errno, rule)).await;
    let _ = client.shutdown().await;
    if over_budget {
        return; // its descriptor goes back at once: the budget bounds what the kernel holds
    }
    // Closing with unread bytes would reset the connection, and a reset can cost the client
    // the answer: read what it still sends (a little, briefly) before closing. A strict
    // violation's SIGPOLICY follows this, so a client that reads its answer and closes has
    // it in hand first; one that holds on is ended after the grace all the same.
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = 64usize << 10;
        while left > 0 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
}

fn builtin(rule: &str, reason: String) -> DecisionRecord {
    DecisionRecord {
        allowed: false,
        policy_allowed: false,
        rule: rule.into(),
        reason,
        violation: false,
        mode: "builtin".into(),
    }
}

/// A connection the policy (or its mode) let through that the proxy could not make: the
/// policy's verdict, its mode and whether it was a violation stay; the refusal is the
/// proxy's own (`rule`).
fn refused_after(policy: DecisionRecord, rule: &str, reason: String) -> DecisionRecord {
    DecisionRecord {
        allowed: false,
        rule: rule.into(),
        reason,
        ..policy
    }
}

fn recorder_failed() -> Errno {
    Errno::Internal {
        reason: "the flight recorder cannot write; no connection is made unrecorded: retry once it writes again".into(),
    }
}

/// Reads the request head (up to the blank line) and whatever followed it in the same reads.
/// `Ok(None)`: the client closed first. The outer `Err` is an I/O error.
async fn read_head(
    client: &mut TcpStream,
) -> std::io::Result<Option<(Result<Vec<u8>, Errno>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + i + 4;
            let rest = buf.split_off(end);
            if end > HEAD_MAX {
                return Ok(Some((Err(too_large(end)), Vec::new())));
            }
            return Ok(Some((Ok(buf), rest)));
        }
        if buf.len() > HEAD_MAX {
            return Ok(Some((Err(too_large(buf.len())), Vec::new())));
        }
    }
}

fn too_large(size: usize) -> Errno {
    Errno::TooLarge {
        size: size as u64,
        limit: HEAD_MAX as u64,
    }
}

fn bad(reason: impl Into<String>) -> Errno {
    Errno::InvalidArgument {
        reason: reason.into(),
    }
}

/// Headers that belong to one hop and are not forwarded (RFC 9110 §7.6.1), and the proxy's
/// own credentials.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

/// What a request head asks for: `CONNECT HOST:PORT`, or a plain request with an absolute
/// `http://` URI (forwarded in origin-form with `Connection: close`).
fn parse(head: &[u8]) -> Result<Ask, Errno> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("an incomplete HTTP request head")),
        Err(e) => return Err(bad(format!("not an HTTP request: {e}"))),
    }
    let method = req.method.unwrap_or_default().to_string();
    let uri = req.path.unwrap_or_default();
    if method == "CONNECT" {
        let (host, port) = authority(uri, None)?;
        return Ok(Ask {
            method,
            host,
            port,
            forward: None,
        });
    }
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(bad(
            "an https:// URI sent in the clear: send HTTPS through CONNECT (HTTPS_PROXY)",
        ));
    }
    let Some(rest) = uri.get(7..).filter(|_| lower.starts_with("http://")) else {
        return Err(bad(format!(
            "`{}` is not a proxy request: this is the agent's egress proxy; send an absolute http:// URI or CONNECT HOST:PORT",
            cut(uri)
        )));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, port) = authority(&rest[..end], Some(80))?;
    // The fragment never leaves the client; a bare query gets its `/`.
    let path = rest[end..].split('#').next().unwrap_or("");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let forward = forward(&method, &path, &req);
    Ok(Ask {
        method,
        host,
        port,
        forward: Some(forward),
    })
}

/// The request as the server gets it: origin-form, the same headers but the hop-by-hop
/// ones, and `Connection: close` (one request per proxied connection).
fn forward(method: &str, path: &str, req: &httparse::Request<'_, '_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\n").as_bytes());
    for h in req.headers.iter() {
        if HOP_BY_HOP.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// `HOST:PORT` or `[V6]:PORT` (the port may be left out only where `default` is given).
fn authority(text: &str, default: Option<u16>) -> Result<(String, u16), Errno> {
    if text.contains('@') {
        return Err(bad(
            "credentials in the URI: send them in a header (they would be logged)",
        ));
    }
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad(format!("`{}`: an IPv6 address without its `]`", cut(text))))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(bad(format!("`{}` is not HOST:PORT", cut(text)))),
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(format!("`{}` is not an IPv6 address", cut(h))));
        }
        (h.to_string(), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    let port = match (port, default) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(format!("`{}`: the port must be 1 to 65535", cut(text))))?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad(format!("`{}`: CONNECT needs HOST:PORT", cut(text)))),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    if !name_ok {
        return Err(bad(format!("`{}` is not a host name", cut(&host))));
    }
    Ok((host, port))
}

/// At most 256 bytes of an agent's string, for a message.
fn cut(s: &str) -> &str {
    let mut end = s.len().min(256);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Why `ip` may not be reached unless a rule names it literally, if it may not.
fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_unspecified() || a == 0 {
                Some("an address of this network")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("a broadcast or multicast address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (carrier-grade NAT) address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else {
                None
            }
        }
    }
}

/// Whether `ip` is an address of this host (it can be bound here).
fn is_own(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Every address `host` resolves to, each one checked: one that is restricted (or the
/// host's own) and that no rule of `policy` names literally refuses the connection. The
/// error carries the address it is about, if any.
async fn resolve(
    host: &str,
    port: u16,
    policy: &agentos_policy::Policy,
) -> Result<Vec<SocketAddr>, (Errno, String)> {
    let name = host.to_string();
    let lookup = tokio::task::spawn_blocking(move || {
        use std::net::ToSocketAddrs;
        let addrs: Vec<SocketAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (name.as_str(), port).to_socket_addrs()?.collect(),
        };
        let own: Vec<bool> = addrs.iter().map(|a| is_own(a.ip())).collect();
        Ok::<_, std::io::Error>((addrs, own))
    });
    let (addrs, own) = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(Ok(found))) => found,
        Ok(Ok(Err(e))) => {
            return Err((
                Errno::NotFound {
                    what: format!("host {host}: no address ({e})"),
                },
                String::new(),
            ))
        }
        Ok(Err(e)) => {
            return Err((
                Errno::Internal {
                    reason: format!("name lookup failed: {e}"),
                },
                String::new(),
            ))
        }
        Err(_) => {
            return Err((
                Errno::TimedOut {
                    after_ms: RESOLVE_TIMEOUT.as_millis() as u64,
                },
                String::new(),
            ))
        }
    };
    if addrs.is_empty() {
        return Err((
            Errno::NotFound {
                what: format!("host {host}: no address"),
            },
            String::new(),
        ));
    }
    for (addr, own) in addrs.iter().zip(own) {
        let ip = addr.ip();
        let why = restricted(ip).or(own.then_some("an address of this host"));
        if let Some(why) = why.filter(|_| !policy.names_address(ip.to_canonical())) {
            let shown = if host == ip.to_string() {
                format!("{ip} is {why}")
            } else {
                format!("{host} resolves to {ip}, {why}")
            };
            return Err((
                Errno::PermissionDenied {
                    rule: "egress".into(),
                    reason: format!(
                        "{shown}; a network rule must list {ip} literally in `hosts` to reach it"
                    ),
                },
                ip.to_string(),
            ));
        }
    }
    Ok(addrs)
}

/// Connects to the first of `addrs` that answers.
async fn connect(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), (Errno, String)> {
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *addr));
            }
            Ok(Err(e)) => {
                last = Some((
                    Errno::NotFound {
                        what: format!("connect to {addr}: {e}"),
                    },
                    addr.to_string(),
                ))
            }
            Err(_) => {
                last = Some((
                    Errno::TimedOut {
                        after_ms: CONNECT_TIMEOUT.as_millis() as u64,
                    },
                    addr.to_string(),
                ))
            }
        }
    }
    Err(last.unwrap_or((
        Errno::NotFound {
            what: "no address to connect to".into(),
        },
        String::new(),
    )))
}

/// Answers the client (`200` to a CONNECT, the forwarded request to the server otherwise),
/// then copies both ways until both are done; says why it ended.
async fn tunnel(
    client: &mut TcpStream,
    mut server: TcpStream,
    ask: &Ask,
    rest: Vec<u8>,
    proxy: &Proxy,
    sent: &AtomicU64,
    received: &AtomicU64,
) -> String {
    let _ = client.set_nodelay(true);
    let opening = match &ask.forward {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
        }
        Some(request) => server.write_all(request).await.map(|()| {
            sent.fetch_add(request.len() as u64, Ordering::Relaxed);
        }),
    };
    if let Err(e) = opening {
        return format!("opening: {e}");
    }
    if !rest.is_empty() {
        proxy.up.take(rest.len()).await;
        if let Err(e) = server.write_all(&rest).await {
            return format!("agent to server: {e}");
        }
        sent.fetch_add(rest.len() as u64, Ordering::Relaxed);
    }
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    let (up, down) = tokio::join!(
        pump(cr, sw, &proxy.up, sent),
        pump(sr, cw, &proxy.down, received)
    );
    match (up, down) {
        (Ok(()), Ok(())) => "closed".into(),
        (Err(e), _) => format!("agent to server: {e}"),
        (_, Err(e)) => format!("server to agent: {e}"),
    }
}

/// Copies `from` into `to` until `from` ends (then shuts `to`'s write side), paced by
/// `bucket`, counting into `count`. The buffer starts small and doubles while reads fill it,
/// up to [`CHUNK`]: an idle or chatty connection costs little, a bulk one moves a lot per
/// wakeup. (A `splice(2)` through a pipe was measured slower here: 63% of direct against
/// 74%.)
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    bucket: &Bucket,
    count: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        bucket.take(n).await;
        to.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        if n == buf.len() && buf.len() < CHUNK {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// A token bucket of bytes per second (one second of burst); a rate of 0 never waits.
struct Bucket {
    rate: u64,
    /// Tokens (may go negative: a debt the next taker waits out) and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        Bucket {
            rate,
            state: Mutex::new((rate as f64, Instant::now())),
        }
    }

    /// How long a taker of `n` bytes must wait now.
    fn charge(&self, n: usize, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let rate = self.rate as f64;
        let mut s = lock(&self.state);
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * rate).min(rate) - n as f64;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / rate)
        }
    }

    async fn take(&self, n: usize) {
        let wait = self.charge(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The HTTP answer for a refusal: the status for `errno`, the error as the body (one line),
/// the deciding rule in `X-Agentos-Rule`, `Retry-After` for a rate limit.
fn http_answer(errno: &Errno, rule: Option<&str>) -> Vec<u8> {
    let (status, phrase) = match errno {
        Errno::PermissionDenied { .. } | Errno::ApprovalDenied | Errno::ApprovalTimeout => {
            (403, "Forbidden")
        }
        Errno::RateLimited { .. } => (429, "Too Many Requests"),
        Errno::TooLarge { .. } => (431, "Request Header Fields Too Large"),
        Errno::InvalidArgument { .. } => (400, "Bad Request"),
        Errno::NotFound { .. } => (502, "Bad Gateway"),
        Errno::TimedOut { .. } => (504, "Gateway Timeout"),
        _ => (503, "Service Unavailable"),
    };
    let body = format!("agentos egress proxy: {errno}\n");
    let mut head = format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(rule) = rule {
        // The rule's id comes from the policy file: only printable ASCII goes into a header.
        let clean: String = rule
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(256)
            .collect();
        head.push_str(&format!("X-Agentos-Rule: {clean}\r\n"));
    }
    if let Errno::RateLimited { retry_after_ms } = errno {
        head.push_str(&format!(
            "Retry-After: {}\r\n",
            retry_after_ms.div_ceil(1000).max(1)
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ask(head: &str) -> Result<Ask, Errno> {
        parse(head.as_bytes())
    }

    #[test]
    fn connect_and_absolute_uris_are_proxy_requests() {
        let a = ask("CONNECT API.Example.com.:443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (a.method.as_str(), a.target().as_str()),
            ("CONNECT", "api.example.com:443")
        );
        assert!(a.forward.is_none());
        let a = ask("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(a.target(), "[::1]:8443");
        let a = ask(
            "GET http://127.0.0.2:8080/a/b?c=1 HTTP/1.1\r\nHost: 127.0.0.2:8080\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.target(), "127.0.0.2:8080");
        assert_eq!(
            String::from_utf8(a.forward.unwrap()).unwrap(),
            "GET /a/b?c=1 HTTP/1.1\r\nHost: 127.0.0.2:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let a = ask("GET http://example.com HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(a.target(), "example.com:80");
        assert!(String::from_utf8(a.forward.unwrap())
            .unwrap()
            .starts_with("GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn what_is_not_a_proxy_request_is_refused_with_a_reason() {
        for (head, says) in [
            ("GET /index.html HTTP/1.1\r\n\r\n", "not a proxy request"),
            ("GET https://x.example/ HTTP/1.1\r\n\r\n", "through CONNECT"),
            (
                "CONNECT example.com HTTP/1.1\r\n\r\n",
                "CONNECT needs HOST:PORT",
            ),
            ("CONNECT example.com:0 HTTP/1.1\r\n\r\n", "1 to 65535"),
            ("CONNECT example.com:99999 HTTP/1.1\r\n\r\n", "1 to 65535"),
            (
                "GET http://u:p@example.com/ HTTP/1.1\r\n\r\n",
                "credentials",
            ),
            ("CONNECT ex\u{7f}ample.com:443 HTTP/1.1\r\n\r\n", "not"),
            ("CONNECT [zz]:443 HTTP/1.1\r\n\r\n", "not an IPv6 address"),
            ("\u{1}\u{2}\r\n\r\n", "not an HTTP request"),
        ] {
            let e = ask(head).unwrap_err();
            assert!(e.to_string().contains(says), "{head:?}: {e}");
        }
    }

    #[test]
    fn restricted_addresses_are_named() {
        let r = |s: &str| restricted(s.parse().unwrap());
        assert_eq!(r("127.0.0.2"), Some("a loopback address"));
        assert_eq!(r("10.1.2.3"), Some("a private address"));
        assert_eq!(r("192.168.0.1"), Some("a private address"));
        assert_eq!(r("169.254.169.254"), Some("a link-local address"));
        assert_eq!(r("0.0.0.0"), Some("an address of this network"));
        assert_eq!(
            r("100.64.0.1"),
            Some("a shared (carrier-grade NAT) address")
        );
        assert_eq!(r("::1"), Some("a loopback address"));
        assert_eq!(r("::ffff:127.0.0.1"), Some("a loopback address"));
        assert_eq!(r("fd00::1"), Some("a private (unique local) address"));
        assert_eq!(r("fe80::1"), Some("a link-local address"));
        assert_eq!(r("93.184.216.34"), None);
        assert_eq!(r("2606:2800:220:1::1"), None);
        assert!(is_own("127.0.0.1".parse().unwrap()));
        assert!(!is_own("93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn refusals_are_http_answers_that_name_the_rule() {
        let a = String::from_utf8(http_answer(
            &Errno::PermissionDenied {
                rule: "apis (security.md:9)\r\nX: y".into(),
                reason: "no rule allows network on evil.example:443".into(),
            },
            Some("apis (security.md:9)\r\nX: y"),
        ))
        .unwrap();
        assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{a}");
        assert!(
            a.contains("X-Agentos-Rule: apis (security.md:9)??X: y\r\n"),
            "{a}"
        );
        assert!(a.ends_with("\r\n\r\nagentos egress proxy: denied by policy: apis (security.md:9)\r\nX: y: no rule allows network on evil.example:443\n"), "{a}");
        let r = String::from_utf8(http_answer(
            &Errno::RateLimited {
                retry_after_ms: 1500,
            },
            None,
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 429 "), "{r}");
        assert!(r.contains("Retry-After: 2\r\n"), "{r}");
    }

    #[test]
    fn the_bucket_paces_to_its_rate() {
        let b = Bucket::new(1000);
        let t0 = Instant::now();
        assert_eq!(b.charge(1000, t0), Duration::ZERO);
        // The burst is spent: 500 more bytes wait half a second.
        assert_eq!(b.charge(500, t0), Duration::from_millis(500));
        // A second later the debt is paid and half the burst is back.
        assert_eq!(b.charge(500, t0 + Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(Bucket::new(0).charge(usize::MAX, t0), Duration::ZERO);
    }
}

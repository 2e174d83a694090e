//! The kernel's metrics as others see them (`--metrics-addr`): the per-agent label of a
//! recorded event, the gauges read from the kernel's state at each scrape, the health check,
//! and the HTTP endpoint serving them. The counting itself is [`crate::metrics`], which needs
//! nothing of the kernel's state.
//!
//! The endpoint — `GET /metrics` (Prometheus text exposition) and `GET /healthz` (200 `ok`, or
//! 503 naming what is wrong), HTTP/1.1 over `hyper` — is bounded like every other door of the
//! kernel: at most [`MAX_CONNECTIONS`] at once (more are closed at accept), a request's
//! headers must arrive within [`HEADER_TIMEOUT`], a connection lives at most
//! [`CONNECTION_TIMEOUT`], and no request body is read. It holds the kernel's state weakly and
//! stops when the kernel shuts down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use agentos_syscalls::control::AgentState;
use agentos_syscalls::LayerStatus;
use agentos_userspace::launch::layer::LayerName;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::state::KernelInner;

/// Scrapers served at once; more connections are closed at once.
pub(crate) const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send a request's headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one connection lives.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The kernel's resident memory, bytes (`/proc/self/statm`), 0 when unknown.
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * rustix::param::page_size() as u64
}

/// The metrics in Prometheus' text format, with the gauges read from `k` now.
pub(crate) fn render(k: &KernelInner, m: &Metrics) -> String {
    let g = m.gauges();
    let mut by_state = [
        (AgentState::Starting, 0),
        (AgentState::Running, 0),
        (AgentState::Stopped, 0),
        (AgentState::Exited, 0),
    ];
    g.clear_agent_usage();
    for a in k.agents.list() {
        let state = a.current_state();
        if let Some(slot) = by_state.iter_mut().find(|(s, _)| *s == state) {
            slot.1 += 1;
        }
        if state != AgentState::Exited && a.policy().observability().metrics {
            if let Some(u) = a.usage() {
                g.agent_usage(
                    &crate::state::agent_label(a.name.as_deref(), a.id),
                    u.memory_bytes,
                    u.pids,
                );
            }
        }
    }
    g.agents(&by_state);
    g.approvals_parked(k.approvals.parked());
    let now = crate::util::now_ms();
    g.recorder(k.recorder.stats(), now);
    if let Some(t) = &k.traces {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        g.traces(load(&t.counts.exported), load(&t.counts.failed));
    }
    g.kernel(
        resident_bytes(),
        Duration::from_millis(now.saturating_sub(k.started_ms)),
    );
    m.encode()
}

/// What keeps the kernel from doing its work, one sentence each (empty: healthy): the
/// recorder cannot write or the disk is below its watermark (new work is refused), or a sandbox
/// layer is missing while the kernel requires all of them (every spawn is refused). `/healthz`
/// and `agentctl kernel status` both say this.
pub(crate) fn health(k: &KernelInner) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = k.admit() {
        problems.push(format!("flight recorder: {e}"));
    }
    if k.config.require_full_sandbox {
        // A layer spawns can do without (the cgroup: the rlimits stay) is not a problem, nor
        // the kernel's own `full_sandbox` entry; an unknown name (the probe itself) is.
        let required = |name: &str| LayerName::parse(name).is_none_or(LayerName::required);
        for layer in k
            .host_layers
            .iter()
            .filter(|l| l.name != crate::sandbox::FULL_SANDBOX)
        {
            if let LayerStatus::Missing { detail } = &layer.status {
                if required(&layer.name) {
                    problems.push(format!("sandbox layer {} missing: {detail}", layer.name));
                }
            }
        }
    }
    problems
}

/// Binds `addr` now (so a taken port stops the kernel's start) and serves it on the runtime;
/// returns the bound address.
pub(crate) fn listen(k: &Arc<KernelInner>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let weak = Arc::downgrade(k);
    let mut shutdown = k.shutdown.subscribe();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, most likely: wait instead of spinning.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                continue; // Dropping the stream closes it.
            };
            let weak = weak.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let answer = answer(&weak, &req);
                    async move { Ok::<_, Infallible>(answer) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
                drop(slot);
            });
        }
    });
    Ok(local)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn answer(k: &Weak<KernelInner>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let Some(k) = k.upgrade() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "kernel stopped\n".into(),
        );
    };
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "GET only\n".into());
    }
    match (req.uri().path(), &k.metrics) {
        ("/metrics", Some(m)) => text(StatusCode::OK, OPENMETRICS, render(&k, m)),
        ("/healthz", _) => match health(&k).as_slice() {
            [] => text(StatusCode::OK, PLAIN, "ok\n".into()),
            problems => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("unhealthy: {}\n", problems.join("; ")),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: GET /metrics or /healthz\n".into(),
        ),
    }
}

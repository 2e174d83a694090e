//! An OTLP/HTTP traces receiver on loopback, built on the official `opentelemetry-proto`
//! types: it decodes every `POST /v1/traces` body as an `ExportTraceServiceRequest` and keeps
//! the spans, or (`Answer::Never`) takes the request and never answers, as a collector that
//! hangs would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
pub use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// How the receiver answers an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Decodes it, keeps its spans, answers 200.
    Ok,
    /// Counts it and never answers.
    Never,
    /// Decodes it, counts its spans without keeping them, answers 200 (for a bench).
    Discard,
}

/// One span as received, with its resource's `service.name`.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

#[derive(Debug, Default)]
struct Shared {
    spans: Mutex<Vec<Received>>,
    requests: AtomicU64,
    undecodable: AtomicU64,
    counted: AtomicU64,
}

/// The receiver; it stops when dropped (its runtime thread ends with the process's tests).
#[derive(Debug)]
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// Listens on 127.0.0.1, an ephemeral port.
    pub fn start(answer: Answer) -> OtlpReceiver {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let for_thread = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(serve(std_listener, for_thread, answer, stopped));
            })
            .expect("receiver thread");
        OtlpReceiver {
            addr,
            shared,
            stop: Some(stop),
        }
    }

    /// The base URL to give `--otlp-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.shared
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Export requests received so far (answered or not).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Spans received so far, kept or not.
    pub fn span_count(&self) -> u64 {
        self.shared.counted.load(Ordering::SeqCst)
    }

    /// Bodies that did not decode as an `ExportTraceServiceRequest`.
    pub fn undecodable(&self) -> u64 {
        self.shared.undecodable.load(Ordering::SeqCst)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    answer: Answer,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(export(req, &shared, answer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn export(
    req: Request<hyper::body::Incoming>,
    shared: &Shared,
    answer: Answer,
) -> Response<Full<Bytes>> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if answer == Answer::Never {
        std::future::pending::<()>().await;
    }
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/x-protobuf"),
        );
        r
    };
    if req.uri().path() != "/v1/traces" {
        return reply(StatusCode::NOT_FOUND, Vec::new());
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        shared.undecodable.fetch_add(1, Ordering::SeqCst);
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    let n: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    shared.counted.fetch_add(n as u64, Ordering::SeqCst);
    if answer == Answer::Discard {
        return reply(
            StatusCode::OK,
            ExportTraceServiceResponse::default().encode_to_vec(),
        );
    }
    let mut kept = shared.spans.lock().unwrap_or_else(PoisonError::into_inner);
    for rs in request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| string_attribute(&r.attributes, "service.name"))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                kept.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    reply(
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// The value of attribute `key`.
fn value_of<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

/// The string value of attribute `key`.
pub fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match value_of(attributes, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// The integer value of attribute `key`.
pub fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match value_of(attributes, key)? {
        any_value::Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

//! OpenTelemetry traces (`--otlp-endpoint`): what the kernel did for an agent, as spans
//! exported over OTLP/HTTP (protobuf) to a collector.
//!
//! ```text
//! kernel.agent                       one per agent life (spawn → exit), the trace's root
//! ├── kernel.syscall                 one per answered call (attributes: syscall, action,
//! │   │                              resource, decision, rule, errno)
//! │   ├── kernel.policy_check        the judge: policy + mode + rate limits
//! │   ├── kernel.approval            waiting for an operator (calls that need approval)
//! │   ├── kernel.execute             performing the call (calls the policy let through)
//! │   ├── kernel.violation           the call broke the policy (or the trust boundary)
//! │   └── kernel.signal              the signal the violation brought (strict mode)
//! ├── kernel.violation               a protocol violation (no call to hang it on)
//! └── kernel.signal                  a signal from an operator, another agent or the kernel
//! ```
//!
//! Which agents are traced: those whose policy says `observability: {traces: true}` when
//! they are spawned, one in `--otlp-sample-ratio` of them (the decision is the root span's,
//! by its trace id; every span of a traced life is kept). A reload that turns `traces` off
//! stops the spans of later calls; one that turns it on does not start a trace for a running
//! agent (its life had no root).
//!
//! An agent may send a call with its own W3C trace context (`AgentFrame::TracedRequest`,
//! the SDKs' `traceparent`): that call's `kernel.syscall` span is then a child of the agent's
//! span, in the agent's trace, and links to the agent's life span. The agent chooses where
//! the kernel's span hangs, never what it says: the attributes (agent id and name included)
//! are the kernel's, and a traced call of an agent whose life is not traced is not traced.
//!
//! Never waits: spans go to a bounded queue ([`MAX_QUEUE`]) that a thread of the SDK exports
//! in batches; when the collector is slow or gone the queue fills and new spans are dropped,
//! the agents' calls are not slowed. Attribute values an agent chooses (paths, reasons) are
//! cut to [`display_bound`]'s 512 bytes.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentos_syscalls::control::display_bound;
use agentos_syscalls::{AgentId, Errno, Signal, TraceContext};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter,
};

use crate::recorder::DecisionRecord;

/// `--otlp-sample-ratio`'s default: every traced agent's life.
pub const DEFAULT_SAMPLE_RATIO: f64 = 1.0;
/// Spans held for export at most; more are dropped (the kernel never waits for a collector).
pub const MAX_QUEUE: usize = 8192;
/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the spans go.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// The collector's OTLP/HTTP traces URL (`…/v1/traces`).
    pub endpoint: String,
    /// The share of traced agent lives that are kept, 0.0–1.0.
    pub sample_ratio: f64,
}

/// `--otlp-endpoint`: an `http://` URL; a bare `host:port` base (`http://127.0.0.1:4318` or
/// with a trailing `/`) gets OTLP's `/v1/traces` path, as `OTEL_EXPORTER_OTLP_ENDPOINT` does.
pub fn traces_url(endpoint: &str) -> Result<String, String> {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(format!(
            "`{endpoint}` is not an http:// URL (the kernel speaks OTLP over HTTP, protobuf; \
             e.g. http://127.0.0.1:4318 for a collector on this host)"
        ));
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(format!("`{endpoint}` names no host"));
    }
    Ok(if path.is_empty() {
        format!("http://{authority}/v1/traces")
    } else {
        endpoint.to_string()
    })
}

/// The exporter, counting what it sent and what failed.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    counts: Arc<ExportCounts>,
}

/// Spans exported and spans whose export failed, since the kernel started, and the failed
/// exports (batches).
#[derive(Debug, Default)]
pub struct ExportCounts {
    pub exported: AtomicU64,
    pub failed: AtomicU64,
    pub failed_exports: AtomicU64,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.counts.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.counts.failed.fetch_add(n, Ordering::Relaxed);
                // The first failure, then one in a hundred: a collector that is down must not
                // fill the kernel's log.
                if self.counts.failed_exports.fetch_add(1, Ordering::Relaxed) % 100 == 0 {
                    tracing::warn!(error = %e, spans = n, "cannot export spans to the OTLP endpoint");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The kernel's tracer: `None` in [`crate::state::KernelInner`] when `--otlp-endpoint` is not
/// given.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    pub counts: Arc<ExportCounts>,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Traces {
    /// The exporter and its batch thread. Fails only on a bad configuration (the collector
    /// need not be up: spans wait in the queue, then are dropped).
    pub fn start(config: &TraceConfig) -> Result<Traces, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(config.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("--otlp-endpoint {}: {e}", config.endpoint))?;
        let counts = Arc::new(ExportCounts::default());
        let exporter = Counted {
            inner: exporter,
            counts: Arc::clone(&counts),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUE)
            .with_max_export_batch_size(512)
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let processor = BatchSpanProcessor::new(exporter, batch);
        let builder = SdkTracerProvider::builder().with_span_processor(processor);
        Ok(Traces::assemble(builder, config.sample_ratio, counts))
    }

    /// The tracer over `builder`'s span processor, sampling one life in `sample_ratio`.
    fn assemble(
        builder: opentelemetry_sdk::trace::TracerProviderBuilder,
        sample_ratio: f64,
        counts: Arc<ExportCounts>,
    ) -> Traces {
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name("agentos-kernel")
            .with_attributes([KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))])
            .build();
        let provider = builder
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("agentos-kernel");
        Traces {
            provider,
            tracer,
            counts,
        }
    }

    /// The root span of an agent's life, started at `started`; `None` when the sampler
    /// leaves this life out.
    pub fn life(&self, who: LifeOf<'_>, started: SystemTime) -> Option<Life> {
        let mut attributes = vec![
            KeyValue::new("agentos.agent.id", who.id.0 as i64),
            KeyValue::new("agentos.agent.program", display_bound(who.program)),
            KeyValue::new("agentos.policy", display_bound(who.policy)),
            KeyValue::new("agentos.mode", who.mode),
        ];
        if let Some(name) = who.name {
            attributes.push(KeyValue::new("agentos.agent.name", display_bound(name)));
        }
        let span = self
            .tracer
            .span_builder("kernel.agent")
            .with_kind(SpanKind::Internal)
            .with_start_time(started)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &Context::new());
        if !span.span_context().is_sampled() {
            return None;
        }
        Some(Life {
            tracer: self.tracer.clone(),
            cx: Context::new().with_span(span),
            agent: who.id,
            ended: AtomicBool::new(false),
        })
    }

    /// Exports what is queued and stops the batch thread, waiting at most `timeout`.
    /// Blocking: call it off the runtime's workers.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %e, "the trace exporter did not shut down cleanly");
        }
    }
}

/// What the root span of a life says of the agent.
#[derive(Debug, Clone, Copy)]
pub struct LifeOf<'a> {
    pub id: AgentId,
    pub name: Option<&'a str>,
    pub program: &'a str,
    /// The policy file.
    pub policy: &'a str,
    pub mode: &'static str,
}

/// One traced agent life: its root span, open until [`Life::end`].
pub struct Life {
    tracer: SdkTracer,
    cx: Context,
    agent: AgentId,
    ended: AtomicBool,
}

impl std::fmt::Debug for Life {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Life")
            .field("agent", &self.agent)
            .field("trace_id", &self.cx.span().span_context().trace_id())
            .finish_non_exhaustive()
    }
}

impl Life {
    /// Starts the span of one call (`syscall` is its name in the ABI), a child of the
    /// agent's own span `parent` when it sent one, else of the life.
    pub fn call(&self, syscall: &'static str, id: u64, parent: Option<TraceContext>) -> CallSpan {
        let root = self.cx.span().span_context().clone();
        let mut builder = self
            .tracer
            .span_builder("kernel.syscall")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("agentos.agent.id", self.agent.0 as i64),
                KeyValue::new("agentos.syscall", syscall),
                KeyValue::new("agentos.request.id", id as i64),
            ]);
        let parent_cx = match parent.filter(TraceContext::is_valid) {
            Some(t) => {
                builder = builder.with_links(vec![Link::with_context(root)]);
                // Sampled by the kernel's decision for this life, whatever the agent's flag.
                Context::new().with_remote_span_context(SpanContext::new(
                    TraceId::from_bytes(t.trace_id),
                    SpanId::from_bytes(t.span_id),
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::default(),
                ))
            }
            None => self.cx.clone(),
        };
        let span = builder.start_with_context(&self.tracer, &parent_cx);
        CallSpan {
            tracer: self.tracer.clone(),
            cx: parent_cx.with_span(span),
        }
    }

    /// A `kernel.violation` span with no call to hang it on (a broken protocol).
    pub fn violation(&self, reason: &str) {
        let t = SystemTime::now();
        child(
            &self.tracer,
            &self.cx,
            "kernel.violation",
            t,
            t,
            vec![
                KeyValue::new("agentos.rule", "protocol"),
                KeyValue::new("agentos.reason", display_bound(reason)),
            ],
            Some(Status::error("protocol violation")),
        );
    }

    /// The context a signal span not caused by a call hangs on.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Ends the life's span with how the agent ended. Once; later calls do nothing.
    pub fn end(&self, exit: &str, failed: bool) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("agentos.exit", display_bound(exit)));
        if failed {
            span.set_status(Status::error(Cow::Owned(display_bound(exit))));
        }
        span.end();
    }
}

/// The span of one call, open until [`CallSpan::end`].
pub struct CallSpan {
    tracer: SdkTracer,
    cx: Context,
}

impl std::fmt::Debug for CallSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSpan")
            .field("span_id", &self.cx.span().span_context().span_id())
            .finish_non_exhaustive()
    }
}

/// The name a trace gives a decision.
fn decision_name(d: &DecisionRecord) -> &'static str {
    match (d.allowed, d.violation) {
        (true, false) => "allow",
        (true, true) => "allow_violation",
        (false, _) => "deny",
    }
}

fn decision_attributes(d: &DecisionRecord) -> Vec<KeyValue> {
    vec![
        KeyValue::new("agentos.decision", decision_name(d)),
        KeyValue::new("agentos.rule", display_bound(&d.rule)),
        KeyValue::new("agentos.reason", display_bound(&d.reason)),
        KeyValue::new("agentos.mode", display_bound(&d.mode)),
    ]
}

/// The errno's name, as the ABI spells it (`PermissionDenied`, …).
fn errno_name(e: &Errno) -> String {
    let debug = format!("{e:?}");
    let end = debug.find([' ', '{', '(']).unwrap_or(debug.len());
    debug[..end].to_string()
}

impl CallSpan {
    /// The call's policy action and resource, once classified.
    pub fn classified(&self, action: &str, resource: &str) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("agentos.action", display_bound(action)));
        span.set_attribute(KeyValue::new("agentos.resource", display_bound(resource)));
    }

    /// `kernel.policy_check`, from `start` to now, with the decision.
    pub fn policy_check(&self, start: SystemTime, decision: &DecisionRecord) {
        let status = (!decision.allowed).then(|| Status::error("denied"));
        let end = SystemTime::now();
        child(
            &self.tracer,
            &self.cx,
            "kernel.policy_check",
            start,
            end,
            decision_attributes(decision),
            status,
        );
    }

    /// `kernel.approval`, the wait for an operator, from `start` to now.
    pub fn approval(&self, start: SystemTime, outcome: &str) {
        let end = SystemTime::now();
        let attributes = vec![KeyValue::new("agentos.approval", outcome.to_string())];
        child(
            &self.tracer,
            &self.cx,
            "kernel.approval",
            start,
            end,
            attributes,
            None,
        );
    }

    /// `kernel.execute`, performing the call, from `start` to now.
    pub fn execute<T>(&self, start: SystemTime, result: &Result<T, Errno>) {
        let end = SystemTime::now();
        let (attributes, status) = match result {
            Ok(_) => (Vec::new(), None),
            Err(e) => (
                vec![KeyValue::new("agentos.errno", errno_name(e))],
                Some(Status::error(Cow::Owned(display_bound(&e.to_string())))),
            ),
        };
        child(
            &self.tracer,
            &self.cx,
            "kernel.execute",
            start,
            end,
            attributes,
            status,
        );
    }

    /// The call's decision and answer; a `kernel.violation` child when the call broke the
    /// policy (`decision.violation`) or the trust boundary.
    pub fn decided<T>(&self, decision: &DecisionRecord, result: &Result<T, Errno>) {
        let span = self.cx.span();
        span.set_attributes(decision_attributes(decision));
        if let Err(e) = result {
            span.set_attribute(KeyValue::new("agentos.errno", errno_name(e)));
            span.set_status(Status::error(Cow::Owned(display_bound(&e.to_string()))));
        }
        if decision.violation {
            let t = SystemTime::now();
            child(
                &self.tracer,
                &self.cx,
                "kernel.violation",
                t,
                t,
                decision_attributes(decision),
                Some(Status::error("policy violation")),
            );
        }
    }

    /// The context a signal the call brought hangs on.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Ends the call's span.
    pub fn end(self) {
        self.cx.span().end();
    }
}

/// `kernel.signal` under `parent`, from `start` to now.
pub fn signal(
    tracer_of: &Life,
    parent: &Context,
    start: SystemTime,
    signal: Signal,
    source: &str,
    outcome: Result<(), String>,
) {
    let mut attributes = vec![
        KeyValue::new("agentos.signal", signal.to_string()),
        KeyValue::new("agentos.signal.source", display_bound(source)),
    ];
    let status = match outcome {
        Ok(()) => None,
        Err(why) => {
            attributes.push(KeyValue::new(
                "agentos.signal.undelivered",
                display_bound(&why),
            ));
            Some(Status::error("not delivered"))
        }
    };
    child(
        &tracer_of.tracer,
        parent,
        "kernel.signal",
        start,
        SystemTime::now(),
        attributes,
        status,
    );
}

fn child(
    tracer: &SdkTracer,
    parent: &Context,
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    status: Option<Status>,
) {
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    if let Some(status) = status {
        span.set_status(status);
    }
    span.end_with_timestamp(end.max(start));
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    /// Traces kept in memory, exported as each span ends.
    fn in_memory(sample_ratio: f64) -> (Traces, InMemorySpanExporter) {
        let exporter = InMemorySpanExporter::default();
        let builder = SdkTracerProvider::builder().with_simple_exporter(exporter.clone());
        let t = Traces::assemble(builder, sample_ratio, Arc::default());
        (t, exporter)
    }

    fn who() -> LifeOf<'static> {
        LifeOf {
            id: AgentId(7),
            name: Some("a"),
            program: "/bin/agent",
            policy: "p.md",
            mode: "strict",
        }
    }

    fn allowed() -> DecisionRecord {
        DecisionRecord {
            allowed: true,
            policy_allowed: true,
            rule: "r (p.md:3)".into(),
            reason: "allowed".into(),
            violation: false,
            mode: "strict".into(),
        }
    }

    #[test]
    fn an_agent_chooses_where_its_call_span_hangs_never_whether_it_is_kept() {
        let (t, spans) = in_memory(1.0);
        let life = t.life(who(), SystemTime::now()).expect("sampled");
        let root = life.context().span().span_context().clone();
        // A valid context the agent marked not sampled: kept, under the agent's span.
        let theirs = TraceContext {
            trace_id: [0xab; 16],
            span_id: [0xcd; 8],
            flags: 0,
        };
        let call = life.call("read", 1, Some(theirs));
        call.decided::<()>(&allowed(), &Ok(()));
        call.end();
        // An all-zero context (the SDKs refuse it; a raw agent may send it): the life's.
        let zero = TraceContext {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 1,
        };
        life.call("read", 2, Some(zero)).end();
        let done = spans.get_finished_spans().expect("spans");
        assert_eq!(done.len(), 2, "{done:?}");
        let first = &done[0];
        assert_eq!(
            first.span_context.trace_id(),
            TraceId::from_bytes([0xab; 16])
        );
        assert_eq!(first.parent_span_id, SpanId::from_bytes([0xcd; 8]));
        assert!(first.span_context.is_sampled());
        assert!(first.links.iter().any(|l| l.span_context == root));
        let id = first
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "agentos.agent.id")
            .map(|kv| kv.value.clone());
        assert_eq!(id, Some(opentelemetry::Value::I64(7)));
        let second = &done[1];
        assert_eq!(second.span_context.trace_id(), root.trace_id());
        assert_eq!(second.parent_span_id, root.span_id());
        life.end("exited with code 0", false);
        life.end("ended twice", true);
        let done = spans.get_finished_spans().expect("spans");
        assert_eq!(done.len(), 3, "the life ends once");
    }

    #[test]
    fn what_an_agent_chooses_is_cut_to_the_display_bound_in_every_span() {
        let (t, spans) = in_memory(1.0);
        let life = t.life(who(), SystemTime::now()).expect("sampled");
        let call = life.call("write", 1, None);
        let long = format!("/mem/working/{}", "x".repeat(4096));
        call.classified("file_write", &long);
        let refused = DecisionRecord {
            allowed: false,
            violation: true,
            reason: format!("no rule allows file_write on {long}"),
            ..allowed()
        };
        call.decided::<()>(
            &refused,
            &Err(Errno::PermissionDenied {
                rule: String::new(),
                reason: refused.reason.clone(),
            }),
        );
        call.end();
        let done = spans.get_finished_spans().expect("spans");
        assert_eq!(done.len(), 2, "the call and its violation");
        for span in &done {
            for kv in &span.attributes {
                let len = kv.value.as_str().len();
                assert!(len <= 512 + 32, "{} is {len} bytes", kv.key);
            }
            if let opentelemetry::trace::Status::Error { description } = &span.status {
                assert!(description.len() <= 512 + 32, "{}", description.len());
            }
        }
    }

    #[test]
    fn a_life_the_sampler_leaves_out_makes_no_span() {
        let (t, spans) = in_memory(0.0);
        assert!(t.life(who(), SystemTime::now()).is_none());
        assert!(spans.get_finished_spans().expect("spans").is_empty());
    }

    #[test]
    fn an_endpoint_base_gets_the_traces_path_and_a_full_url_is_kept() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/custom/v1/traces").unwrap(),
            "http://collector:4318/custom/v1/traces"
        );
        for bad in [
            "127.0.0.1:4318",
            "https://c:4318",
            "http://",
            "grpc://c:4317",
        ] {
            assert!(traces_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errno_names_are_the_abi_variant_names() {
        assert_eq!(
            errno_name(&Errno::PermissionDenied {
                rule: "r".into(),
                reason: "x y".into()
            }),
            "PermissionDenied"
        );
        assert_eq!(errno_name(&Errno::ApprovalDenied), "ApprovalDenied");
        assert_eq!(
            errno_name(&Errno::RateLimited { retry_after_ms: 3 }),
            "RateLimited"
        );
    }

    #[test]
    fn decisions_are_named_for_what_happened() {
        let d = |allowed: bool, violation: bool| DecisionRecord {
            allowed,
            policy_allowed: allowed && !violation,
            rule: String::new(),
            reason: String::new(),
            violation,
            mode: "strict".into(),
        };
        assert_eq!(decision_name(&d(true, false)), "allow");
        assert_eq!(decision_name(&d(true, true)), "allow_violation");
        assert_eq!(decision_name(&d(false, true)), "deny");
        assert_eq!(decision_name(&d(false, false)), "deny");
    }
}

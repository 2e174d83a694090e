//! OpenTelemetry traces (`--otlp-endpoint`) received by an OTLP receiver on loopback built on
//! the official `opentelemetry-proto` types: the span tree of one agent life, the agent's own
//! trace context joining it, `observability.traces: false` leaving an agent out, and a
//! collector that hangs delaying no agent.

use std::collections::HashMap;

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::otlp::{int_attribute, string_attribute, Answer, OtlpReceiver, Received, Span};
use agentos_tests::{wait_until, write_policy, TestKernel};

const TRACED: &str = "observability:\n  traces: true\n";
/// The agent's own span the traced call is made in.
const AGENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const AGENT_SPAN: &str = "00f067aa0ba902b7";

fn attr(s: &Span, key: &str) -> String {
    string_attribute(&s.attributes, key).unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The spans of agent `id`'s life: its `kernel.agent` root and every span of its trace, plus
/// the spans of calls it sent in its own trace (the syscall span carries the agent's id).
fn life_of(spans: &[Received], id: u64) -> Vec<Span> {
    let root = spans
        .iter()
        .find(|r| {
            r.span.name == "kernel.agent"
                && int_attribute(&r.span.attributes, "agentos.agent.id") == Some(id as i64)
        })
        .map(|r| r.span.clone());
    let Some(root) = root else {
        return Vec::new();
    };
    let syscalls_of_agent: Vec<Vec<u8>> = spans
        .iter()
        .filter(|r| {
            r.span.name == "kernel.syscall"
                && int_attribute(&r.span.attributes, "agentos.agent.id") == Some(id as i64)
        })
        .map(|r| r.span.span_id.clone())
        .collect();
    spans
        .iter()
        .filter(|r| {
            r.span.trace_id == root.trace_id
                || syscalls_of_agent.contains(&r.span.span_id)
                || syscalls_of_agent.contains(&r.span.parent_span_id)
        })
        .map(|r| r.span.clone())
        .collect()
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

fn names(spans: &[&Span]) -> Vec<String> {
    let mut v: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
    v.sort();
    v
}

#[test]
fn one_agent_life_is_one_span_tree_and_a_violation_is_its_own_span() {
    let receiver = OtlpReceiver::start(Answer::Ok);
    let k = TestKernel::start_with(
        false,
        &[
            "--otlp-endpoint",
            &receiver.endpoint(),
            "--metrics-addr",
            "0",
        ],
    );
    let policy = write_policy(&k.work, "traced", "strict", &[], TRACED);
    let traceparent = format!("traceparent:00-{AGENT_TRACE}-{AGENT_SPAN}-00");
    let id = k.spawn_with(
        &policy,
        &["--name", "traced-one"],
        &[
            "script",
            "write:/mem/working/a=1",
            &traceparent,
            "read:/mem/working/a",
            "traceparent:",
            "read:/mem/working/missing",
            // Strict: refused, a violation, and the agent ends with SIGPOLICY.
            "write:/mem/episodic/x=2",
            "park",
        ],
    );
    let end = k.wait(id);
    assert_eq!(end["exit"]["signal"], "SIGPOLICY", "{end}");
    wait_until("the agent's life span to be exported", || {
        !life_of(&receiver.spans(), id).is_empty()
    });
    let received = receiver.spans();
    assert_eq!(receiver.undecodable(), 0);
    assert!(received.iter().all(|r| r.service == "agentos-kernel"));
    let spans = life_of(&received, id);

    // The root: no parent, the agent's id and name.
    let root = spans
        .iter()
        .find(|s| s.name == "kernel.agent")
        .expect("root");
    assert!(root.parent_span_id.is_empty(), "{root:?}");
    assert_eq!(attr(root, "agentos.agent.name"), "traced-one");
    assert!(attr(root, "agentos.exit").contains("SIGPOLICY"), "{root:?}");

    // One kernel.syscall span per answered call, as many as the recorder holds.
    let recorded: Vec<_> = k
        .records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            RecordEvent::Syscall { id, call, .. } => Some((id, call.name().to_string())),
            _ => None,
        })
        .collect();
    let syscalls: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "kernel.syscall")
        .collect();
    let mut by_request: HashMap<i64, &Span> = HashMap::new();
    for s in &syscalls {
        let request = int_attribute(&s.attributes, "agentos.request.id").expect("request id");
        assert!(
            by_request.insert(request, s).is_none(),
            "two spans for one call"
        );
    }
    assert_eq!(syscalls.len(), recorded.len(), "{recorded:?}");
    for (request, name) in &recorded {
        let s = by_request[&(*request as i64)];
        assert_eq!(&attr(s, "agentos.syscall"), name);
    }

    // The allowed write: a child of the life, with its policy check and its execution.
    let write = syscalls
        .iter()
        .find(|s| attr(s, "agentos.resource") == "/mem/working/a")
        .expect("the allowed write");
    assert_eq!(write.parent_span_id, root.span_id);
    assert_eq!(write.trace_id, root.trace_id);
    assert_eq!(attr(write, "agentos.action"), "file_write");
    assert_eq!(attr(write, "agentos.decision"), "allow");
    assert!(
        attr(write, "agentos.rule").starts_with("working-rw"),
        "{write:?}"
    );
    assert_eq!(
        names(&children(&spans, write)),
        ["kernel.execute", "kernel.policy_check"]
    );
    let check = children(&spans, write)
        .into_iter()
        .find(|s| s.name == "kernel.policy_check")
        .expect("policy check");
    assert_eq!(attr(check, "agentos.decision"), "allow");
    assert!(check.start_time_unix_nano <= check.end_time_unix_nano);
    assert!(write.start_time_unix_nano <= check.start_time_unix_nano);
    assert!(check.end_time_unix_nano <= write.end_time_unix_nano);

    // The call made in the agent's own span: in the agent's trace, under its span, linked
    // to the life, sampled although the agent's flags said not sampled.
    let traced = syscalls
        .iter()
        .find(|s| hex(&s.trace_id) == AGENT_TRACE)
        .expect("the call in the agent's trace");
    assert_eq!(hex(&traced.parent_span_id), AGENT_SPAN);
    assert_eq!(attr(traced, "agentos.syscall"), "read");
    assert_eq!(
        int_attribute(&traced.attributes, "agentos.agent.id"),
        Some(id as i64)
    );
    assert!(
        traced
            .links
            .iter()
            .any(|l| l.trace_id == root.trace_id && l.span_id == root.span_id),
        "{traced:?}"
    );
    assert_eq!(
        names(&children(&spans, traced)),
        ["kernel.execute", "kernel.policy_check"]
    );

    // A call that failed: its errno on the call and on its execution.
    let missing = syscalls
        .iter()
        .find(|s| attr(s, "agentos.resource") == "/mem/working/missing")
        .expect("the failed read");
    assert_eq!(missing.trace_id, root.trace_id, "the context was cleared");
    assert_eq!(attr(missing, "agentos.errno"), "NotFound");
    let exec = children(&spans, missing)
        .into_iter()
        .find(|s| s.name == "kernel.execute")
        .expect("execute");
    assert_eq!(attr(exec, "agentos.errno"), "NotFound");

    // The violation: refused, never executed; its violation and its SIGPOLICY are children.
    let bad = syscalls
        .iter()
        .find(|s| attr(s, "agentos.resource") == "/mem/episodic/x")
        .expect("the violation");
    assert_eq!(attr(bad, "agentos.decision"), "deny");
    assert_eq!(attr(bad, "agentos.errno"), "PermissionDenied");
    assert_eq!(
        names(&children(&spans, bad)),
        ["kernel.policy_check", "kernel.signal", "kernel.violation"]
    );
    let kids = children(&spans, bad);
    let violation = kids
        .iter()
        .find(|s| s.name == "kernel.violation")
        .expect("violation");
    assert!(
        attr(violation, "agentos.reason").contains("file_write"),
        "{violation:?}"
    );
    assert_eq!(attr(violation, "agentos.mode"), "strict");
    let signal = kids
        .iter()
        .find(|s| s.name == "kernel.signal")
        .expect("signal");
    assert_eq!(attr(signal, "agentos.signal"), "SIGPOLICY");
    assert_eq!(attr(signal, "agentos.signal.source"), "kernel");

    // The exporter's own counter agrees with what the receiver took.
    let status = k.ctl_ok(&["kernel", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let url = status["metrics"].as_str().expect("metrics url").to_string();
    assert!(!url.contains(":0/"), "the bound port, not 0: {url}");
    let exported = || -> Option<u64> {
        let text = ureq::get(&url)
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("agentos_trace_spans_total{outcome=\"exported\"}"))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    };
    wait_until(
        "the exported-spans counter to count what was received",
        || exported() == Some(receiver.spans().len() as u64),
    );
}

/// An agent whose policy leaves `traces` off gets no span, even when it sends a trace
/// context of its own; an operator's signal to a traced agent is a span of its life.
#[test]
fn traces_off_in_the_policy_means_no_span_and_an_operator_signal_is_one() {
    let receiver = OtlpReceiver::start(Answer::Ok);
    let k = TestKernel::start_with(false, &["--otlp-endpoint", &receiver.endpoint()]);
    let quiet = write_policy(&k.work, "quiet", "strict", &[], "");
    let traced = write_policy(&k.work, "traced", "strict", &["SIGUSR1"], TRACED);
    let traceparent = format!("traceparent:00-{AGENT_TRACE}-{AGENT_SPAN}-01");
    let silent = k.spawn(
        &quiet,
        &[
            "script",
            &traceparent,
            "write:/mem/working/a=1",
            "read:/mem/working/a",
        ],
    );
    k.wait(silent);
    let seen = k.spawn(&traced, &["park"]);
    k.wait_for_line(seen, "ready");
    k.ctl_ok(&["signal", &seen.to_string(), "SIGUSR1"]);
    k.ctl_ok(&["kill", &seen.to_string()]);
    k.wait(seen);
    wait_until("the traced agent's life to be exported", || {
        !life_of(&receiver.spans(), seen).is_empty()
    });
    let spans = receiver.spans();
    assert!(life_of(&spans, silent).is_empty());
    assert!(
        spans.iter().all(|r| hex(&r.span.trace_id) != AGENT_TRACE
            && int_attribute(&r.span.attributes, "agentos.agent.id") != Some(silent as i64)),
        "the untraced agent has spans"
    );
    let life = life_of(&spans, seen);
    let root = life
        .iter()
        .find(|s| s.name == "kernel.agent")
        .expect("root");
    let signals: Vec<String> = children(&life, root)
        .into_iter()
        .filter(|s| s.name == "kernel.signal")
        .map(|s| {
            format!(
                "{} {}",
                attr(s, "agentos.signal"),
                attr(s, "agentos.signal.source")
            )
        })
        .collect();
    assert!(
        signals.iter().any(|s| s.starts_with("SIGUSR1 ")),
        "{signals:?}"
    );
    assert!(
        signals.iter().any(|s| s.starts_with("SIGKILL ")),
        "{signals:?}"
    );
}

/// A collector that takes the export and never answers: the kernel's exporter is stuck on
/// it, and an agent making thousands of traced calls meanwhile is served all the same (spans
/// beyond the bounded queue are dropped, not waited for).
#[test]
fn a_collector_that_hangs_delays_no_agent() {
    let receiver = OtlpReceiver::start(Answer::Never);
    let k = TestKernel::start_with(false, &["--otlp-endpoint", &receiver.endpoint()]);
    let policy = write_policy(&k.work, "traced", "permissive", &[], TRACED);
    let first = k.spawn(&policy, &["script", "write:/mem/working/a=1"]);
    k.wait(first);
    wait_until("an export to reach the hanging collector", || {
        receiver.requests() >= 1
    });
    let mut steps = vec!["script".to_string()];
    steps.extend((0..3000).map(|i| format!("write:/mem/working/x{}=1", i % 50)));
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let busy = k.spawn(&policy, &steps);
    let end = k.wait(busy);
    assert_eq!(end["exit"]["code"], 0, "{end}");
    assert_eq!(end["syscalls"], 3000, "{end}");
    let status = k.ctl_ok(&["kernel", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(status["healthy"], true, "{status}");
}

/// `policy lint` checks `observability:` against the running kernel's flags, and
/// `kernel status` says where metrics and traces go.
#[test]
fn lint_names_the_observability_keys_the_running_kernel_ignores() {
    let receiver = OtlpReceiver::start(Answer::Ok);
    let k = TestKernel::start_with(false, &["--otlp-endpoint", &receiver.endpoint()]);
    let policy = write_policy(
        &k.work,
        "both",
        "strict",
        &["SIGTERM"],
        "observability:\n  metrics: true\n  traces: true\n",
    );
    let lint = k.ctl_ok(&["policy", "lint", policy.to_str().expect("utf-8")]);
    assert!(
        lint.contains("warning: observability: `metrics: true` has no effect: the kernel serves no metrics; start it with --metrics-addr"),
        "{lint}"
    );
    assert!(!lint.contains("`traces: true` has no effect"), "{lint}");
    let json = k.ctl_ok(&["policy", "lint", policy.to_str().expect("utf-8"), "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("lint json");
    assert_eq!(json["kernel"]["traces"], true, "{json}");
    assert_eq!(json["kernel"]["metrics"], false, "{json}");
    let status = k.ctl_ok(&["kernel", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(
        status["traces"],
        format!("{}/v1/traces", receiver.endpoint()),
        "{status}"
    );
    assert_eq!(status["metrics"], serde_json::Value::Null, "{status}");
    // No kernel: the keys cannot be checked, and lint says so.
    let lone = tempfile::tempdir().expect("tempdir");
    let kept = lone.path().join("both.md");
    std::fs::copy(&policy, &kept).expect("copy the policy");
    let policy = kept;
    drop(k);
    let out = std::process::Command::new(agentos_tests::binary("agentctl"))
        .args([
            "--state-dir",
            lone.path().to_str().expect("utf-8"),
            "policy",
            "lint",
        ])
        .arg(&policy)
        .output()
        .expect("agentctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("note: no kernel answers on the state dir"),
        "{text}"
    );
    assert!(!text.contains("has no effect"), "{text}");
}

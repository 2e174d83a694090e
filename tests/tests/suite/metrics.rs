//! Metrics as an operator's Prometheus sees them: a real Prometheus server (Debian's
//! `prometheus`, started here on loopback with its own config and storage) scrapes a kernel
//! while real sandboxed agents run, and what its HTTP API answers equals what the flight
//! recorder holds for the same run — requests by decision, violations, signals — with the
//! per-agent series only for the agent whose policy opted in. Plus `/healthz`, and the
//! endpoint's bounds against a client that never sends its request.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{repo_root, shell_script, wait_until, write_policy, TestKernel};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A deny rule: under a strict policy, writing beneath it ends the agent with SIGPOLICY.
const NO_FORBIDDEN: &str = "  - name: no-forbidden\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/working/forbidden/**\"]\n";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn get(url: &str) -> (u16, String) {
    match ureq::get(url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(ureq::Error::StatusCode(code)) => (code, String::new()),
        Err(e) => (0, e.to_string()),
    }
}

/// A Prometheus server on loopback scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &Path, target: u16) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).is_file(),
            "{PROMETHEUS} is missing: this test needs a real Prometheus server \
             (apt-get install prometheus; .ci/run installs it)"
        );
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: agentos\n    static_configs:\n      - targets: [\"127.0.0.1:{target}\"]\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until("Prometheus to be ready", || {
            get(&format!("{}/-/ready", p.url)).0 == 200
        });
        p
    }

    /// The instant vector `query` evaluates to, as `{label value: number}` keyed by `by`.
    fn query(&self, query: &str, by: &str) -> BTreeMap<String, f64> {
        let v: Value = match ureq::get(&format!("{}/api/v1/query", self.url))
            .query("query", query)
            .call()
        {
            Ok(mut r) => r
                .body_mut()
                .read_to_string()
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let key = s["metric"][by].as_str().unwrap_or("").to_string();
                let n = s["value"][1].as_str()?.parse().ok()?;
                Some((key, n))
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the flight recorder holds: syscalls by decision, violations, signals by name.
fn recorded(k: &TestKernel) -> [BTreeMap<String, f64>; 3] {
    let (mut decisions, mut violations, mut signals) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for r in k.records() {
        match r.event {
            RecordEvent::Syscall { decision, .. } => {
                let d = if decision.allowed { "allow" } else { "deny" };
                *decisions.entry(d.to_string()).or_insert(0.0) += 1.0;
                if decision.violation {
                    *violations.entry(String::new()).or_insert(0.0) += 1.0;
                }
            }
            RecordEvent::Signal { signal, .. } => {
                *signals.entry(signal.name().to_string()).or_insert(0.0) += 1.0;
            }
            _ => {}
        }
    }
    [decisions, violations, signals]
}

#[test]
fn prometheus_scrapes_what_the_flight_recorder_holds() {
    let metrics_port = free_port();
    let k = TestKernel::start_with(
        false,
        &["--metrics-addr", &format!("127.0.0.1:{metrics_port}")],
    );
    let prometheus = Prometheus::start(&k.work, metrics_port);
    let metered = write_policy(
        &k.work,
        "metered",
        "permissive",
        &["SIGSTOP", "SIGCONT", "SIGTERM"],
        "observability:\n  metrics: true\n",
    );
    let strict = write_policy(&k.work, "strict", "strict", &[], NO_FORBIDDEN);
    // Allowed calls, a permissive violation, an agent-chosen action nobody declared.
    let a = k.spawn_with(
        &metered,
        &["--name", "metered"],
        &[
            "script",
            "write:/mem/working/a=1",
            "read:/mem/working/a",
            "write:/mem/episodic/x=2",
            "call:made_up_action:{}",
        ],
    );
    k.wait(a);
    // A strict violation: refused, and the agent ended with SIGPOLICY.
    let b = k.spawn(&strict, &["write", "/mem/working/forbidden/x"]);
    let end = k.wait(b);
    assert_eq!(end["exit"]["signal"], "SIGPOLICY", "{end}");
    // Operator signals to a running agent.
    let c = k.spawn_with(&metered, &["--name", "parked"], &["park"]);
    k.wait_for_line(c, "ready");
    k.ctl_ok(&["stop", "parked"]);
    k.ctl_ok(&["cont", "parked"]);
    k.ctl_ok(&["kill", "parked"]);
    k.wait(c);

    let [decisions, violations, signals] = recorded(&k);
    assert!(
        decisions.get("deny").is_some_and(|n| *n >= 1.0),
        "{decisions:?}"
    );
    assert!(
        violations.get("").is_some_and(|n| *n >= 3.0),
        "{violations:?}"
    );
    assert!(
        signals.contains_key("SIGPOLICY") && signals.contains_key("SIGSTOP"),
        "{signals:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let scraped = loop {
        let now = [
            prometheus.query("sum by (decision) (agent_os_requests_total)", "decision"),
            prometheus.query("sum(agent_os_violations_total)", ""),
            prometheus.query("sum by (signal) (agent_os_signals_total)", "signal"),
        ];
        if now == [decisions.clone(), violations.clone(), signals.clone()] {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never agreed with the flight recorder:\n  recorded {:?}\n  scraped  {now:?}",
            [&decisions, &violations, &signals]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(scraped[0], decisions);

    // The per-agent series: only the agents whose policy set `observability.metrics: true`.
    let per_agent = prometheus.query("sum by (agent) (agentos_agent_requests_total)", "agent");
    assert!(per_agent.contains_key("metered"), "{per_agent:?}");
    assert_eq!(
        per_agent.len(),
        2,
        "only metered and parked opted in: {per_agent:?}"
    );
    // An agent-chosen action is never a label.
    let actions = prometheus.query("sum by (action) (agent_os_requests_total)", "action");
    assert!(actions.contains_key("other"), "{actions:?}");
    assert!(
        !actions.keys().any(|a| a.contains("made_up")),
        "{actions:?}"
    );
    let kills = prometheus.query(
        "sum by (signal) (agentos_exits_total{outcome=\"killed\"})",
        "signal",
    );
    assert_eq!(kills.get("SIGPOLICY"), Some(&1.0), "{kills:?}");
    let up = prometheus.query("up", "job");
    assert_eq!(up.get("agentos"), Some(&1.0), "{up:?}");
}

#[test]
fn healthz_answers_and_a_silent_client_holds_nothing() {
    let port = free_port();
    let k = TestKernel::start_with(false, &["--metrics-addr", &port.to_string()]);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&format!("{base}/healthz")), (200, "ok\n".into()));
    assert_eq!(get(&format!("{base}/nothing")).0, 404);
    // Clients that connect and never send a request take all the connection slots…
    let silent: Vec<TcpStream> = (0..40)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(!silent.is_empty());
    // …and agents are served meanwhile: the metrics endpoint is not on their path.
    let policy = write_policy(&k.work, "p", "strict", &[], "");
    let a = k.spawn(&policy, &["script", "write:/mem/working/a=1"]);
    let end = k.wait(a);
    assert_eq!(end["exit"]["code"], 0, "{end}");
    // Once the silent ones are closed by the header timeout, scrapes are answered again.
    drop(silent);
    wait_until("a scrape to be answered again", || {
        let (status, body) = get(&format!("{base}/metrics"));
        status == 200 && body.contains("agent_os_requests_total")
    });
    // A raw request line: the answer is HTTP with the OpenMetrics type.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("application/openmetrics-text"), "{answer}");
    assert!(answer.contains("agentos_build_info{"), "{answer}");
}

/// The alert rules pass `promtool` (syntax, and unit tests that each alert fires when it
/// should and not on an idle kernel), and every metric the rules and the dashboard name is
/// one a real kernel serves.
#[test]
fn deploy_files_pass_promtool_and_name_only_served_metrics() {
    let promtool = Path::new("/usr/bin/promtool");
    assert!(
        promtool.is_file(),
        "{} is missing: apt-get install prometheus (.ci/run installs it)",
        promtool.display()
    );
    let dir = repo_root().join("deploy/prometheus");
    for args in [
        ["check", "rules", "agentos-alerts.yml"],
        ["test", "rules", "agentos-alerts.test.yml"],
    ] {
        let out = Command::new(promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A kernel whose agents exercise every family: violations, a SIGPOLICY kill, a sandbox
    // refusal, an approval, a failing hook, and a running agent that opted in (its usage).
    let (_hook_dir, hook) = shell_script("exit 1");
    let port = free_port();
    let k = TestKernel::start_with(
        false,
        &[
            "--metrics-addr",
            &port.to_string(),
            "--on-event",
            hook.to_str().expect("utf-8"),
        ],
    );
    let opted_in = write_policy(
        &k.work,
        "metered",
        "permissive",
        &["SIGSTOP", "SIGCONT", "SIGTERM"],
        "  - name: gated\n    action: file_write\n    effect: allow\n    requires_approval: true\n    constraints:\n      paths: [\"/mem/gated/**\"]\nobservability:\n  metrics: true\n",
    );
    let strict = write_policy(&k.work, "strict", "strict", &[], NO_FORBIDDEN);
    let a = k.spawn(&opted_in, &["write", "/mem/episodic/x"]);
    k.wait_for_line(a, "wrote");
    let b = k.spawn(&strict, &["write", "/mem/working/forbidden/x"]);
    k.wait(b);
    let socket = k.state_dir.join("kernel.sock");
    let c = k.spawn(&opted_in, &["connect", socket.to_str().expect("utf-8")]);
    k.wait(c);
    let d = k.spawn_with(&opted_in, &["--name", "parked"], &["park"]);
    k.wait_for_line(d, "ready");
    let e = k.spawn(&opted_in, &["write", "/mem/gated/x"]);
    wait_until("a parked approval", || {
        k.ctl_ok(&["approvals", "--json"]).contains("/mem/gated/x")
    });
    wait_until("the hook's failure to be recorded", || {
        k.records()
            .iter()
            .any(|r| matches!(r.event, RecordEvent::HookFailed { .. }))
    });
    let (status, served) = get(&format!("http://127.0.0.1:{port}/metrics"));
    k.ctl_ok(&["kill", &e.to_string()]);
    assert_eq!(status, 200, "{served}");
    let families: Vec<&str> = served
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
        .collect();
    let is_served = |name: &str| {
        families.contains(&name)
            || ["_total", "_bucket", "_sum", "_count", "_info"]
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|f| families.contains(&f)))
    };
    let mut named = 0;
    for file in [
        "deploy/prometheus/agentos-alerts.yml",
        "deploy/grafana/agentos-dashboard.json",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).expect(file);
        if file.ends_with(".json") {
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        for name in text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("agent_os_") || t.starts_with("agentos_"))
        {
            named += 1;
            assert!(
                is_served(name),
                "{file} names {name}, which the kernel does not serve:\n{served}"
            );
        }
    }
    assert!(named >= 15, "only {named} metric names found");
    drop(k);
}

/// The metrics endpoint is the operator's: an agent on the same host cannot reach it (it has
/// no network; the attempt is refused by the sandbox and counted), and its metrics do not
/// grow with what the agent tries.
#[test]
fn a_sandboxed_agent_cannot_reach_the_metrics_endpoint() {
    let port = free_port();
    let k = TestKernel::start_with(false, &["--metrics-addr", &port.to_string()]);
    let policy = write_policy(&k.work, "loose", "permissive", &[], "");
    let id = k.spawn(&policy, &["tcp-get", &format!("127.0.0.1:{port}")]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(
        log.lines().any(|l| l.starts_with("refused: ")) && !log.contains("ESCAPED"),
        "{log}"
    );
    assert!(
        log.contains("agentos: network denied by policy: socket(AF_INET, SOCK_STREAM)"),
        "{log}"
    );
    // The host's own client still gets its answer, with the refusal counted.
    let (status, body) = get(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.lines().any(|l| l
            .starts_with("agentos_sandbox_events_total{kind=\"seccomp_denied\"}")
            && !l.ends_with(" 0")),
        "{body}"
    );
}

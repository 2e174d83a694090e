//! Network under policy (`kernel/src/server/egress.rs`): real clients (`curl`, Python's
//! `urllib`) inside real jailed agents reach real servers on the host's loopback (Python's
//! `http.server`, and the same behind TLS with a certificate `openssl` makes) only through
//! the agent's egress proxy, only where the policy says, every connection recorded.
//!
//! The servers listen on `127.0.0.x` addresses the test policies name literally: loopback
//! addresses are refused to any rule that reaches them through a name or a glob.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::Errno;
use agentos_tests::{disk_bytes, repo_root, wait_until, TestKernel};
use serde_json::Value;

/// A server the test started; killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A world-readable directory with `hello.txt` saying `hello from ADDR`.
fn site(addr: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.path().join("hello.txt"), format!("hello from {addr}\n")).expect("write");
    dir
}

/// Starts `cmd` and reads the port from its first line's word after `word`.
fn start(mut cmd: Command, word: &str, dir: tempfile::TempDir) -> Server {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the test server");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read the server's first line");
    let port = line
        .split_whitespace()
        .skip_while(|w| *w != word)
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the server's first line {line:?}"));
    Server {
        child,
        port,
        _dir: dir,
    }
}

/// Python's `http.server` on `addr`, a free port.
fn http_server(addr: &str) -> Server {
    let dir = site(addr);
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args([
        "-u",
        "-m",
        "http.server",
        "0",
        "--bind",
        addr,
        "--directory",
    ])
    .arg(dir.path());
    start(cmd, "port", dir)
}

/// A certificate for `ip` (and `localhost`) made by `openssl`, in a world-readable directory.
fn certificate(ip: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=agentos egress test"])
        .args(["-addext", &format!("subjectAltName=IP:{ip},DNS:localhost")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (installed by .ci/run)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [&cert, &key] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    (dir, cert, key)
}

/// Python's `http.server` behind TLS on `addr`.
fn https_server(addr: &str, cert: &Path, key: &Path) -> Server {
    let dir = site(addr);
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg("-u")
        .arg(repo_root().join("tests/python/https_server.py"))
        .arg(addr)
        .arg(dir.path())
        .arg(cert)
        .arg(key);
    start(cmd, "port", dir)
}

/// A policy with `rules` (YAML list items) under `mode`, letting the agent read `read_only`.
fn policy(k: &TestKernel, name: &str, mode: &str, rules: &str, read_only: &[&Path]) -> PathBuf {
    let ro: Vec<String> = read_only
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    let sandbox = if ro.is_empty() {
        String::new()
    } else {
        format!("sandbox:\n  read_only: [{}]\n", ro.join(", "))
    };
    let rules = if rules.is_empty() {
        "  - {name: nothing, action: file_read, effect: deny}\n"
    } else {
        rules
    };
    let text = format!(
        "---\nkernel:\n  version: \"1.0\"\n  mode: {mode}\nsignals: []\npolicies:\n{rules}{sandbox}---\n\n# egress test policy `{name}`\n"
    );
    let path = k.work.join(format!("{name}.md"));
    std::fs::write(&path, text).expect("write policy");
    path
}

fn netagent() -> String {
    repo_root()
        .join("tests/python/netagent.py")
        .display()
        .to_string()
}

/// Runs `python3 netagent.py ARGS` to its end; returns its output.
fn run_py(k: &TestKernel, policy: &Path, args: &[&str]) -> (Value, String) {
    let id = k.spawn_script(policy, "python3", &netagent(), args);
    let last = k.wait(id);
    (last, k.logs(id))
}

/// Runs `curl ARGS` as the agent itself; returns its exit and output.
fn run_curl(k: &TestKernel, policy: &Path, args: &[&str]) -> (Value, String, u64) {
    let mut argv = vec![
        "spawn",
        "--policy",
        policy.to_str().expect("utf-8"),
        "--",
        "/usr/bin/curl",
    ];
    argv.extend_from_slice(&["-sS", "--max-time", "20"]);
    argv.extend_from_slice(args);
    let id: u64 = k.ctl_ok(&argv).trim().parse().expect("agent id");
    let last = k.wait(id);
    (last, k.logs(id), id)
}

/// The agent's `Egress` records, in order.
fn egress(k: &TestKernel, id: u64) -> Vec<RecordEvent> {
    k.events(id)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                RecordEvent::Egress { .. } | RecordEvent::EgressClosed { .. }
            )
        })
        .collect()
}

const ALLOW_2_3: &str = "  - name: test-servers\n    action: network\n    effect: allow\n    constraints:\n      hosts: [\"127.0.0.2\", \"127.0.0.3\"]\n";

#[test]
fn curl_and_urllib_reach_allowed_servers_over_http_and_tls_and_every_connection_is_recorded() {
    let k = TestKernel::start();
    let (certs, cert, key) = certificate("127.0.0.3");
    let plain = http_server("127.0.0.2");
    let tls = https_server("127.0.0.3", &cert, &key);
    let p = policy(&k, "servers", "strict", ALLOW_2_3, &[certs.path()]);
    let http_url = format!("http://127.0.0.2:{}/hello.txt", plain.port);
    let https_url = format!("https://127.0.0.3:{}/hello.txt", tls.port);
    let cafile = cert.display().to_string();

    // curl: plain HTTP through HTTP_PROXY, TLS through CONNECT (HTTPS_PROXY).
    let (last, out, curl_http) = run_curl(&k, &p, &[&http_url]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), "hello from 127.0.0.2");
    let (last, out, curl_tls) = run_curl(&k, &p, &["--cacert", &cafile, &https_url]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), "hello from 127.0.0.3");

    // Python's urllib, the same two ways.
    let (last, out) = run_py(&k, &p, &["fetch", &http_url]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), "status 200 hello from 127.0.0.2");
    let (last, out) = run_py(&k, &p, &["fetch", &https_url, &cafile]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), "status 200 hello from 127.0.0.3");

    // Each connection: judged, connected to the address it named, and closed with its bytes.
    for (id, method, target) in [
        (curl_http, "GET", format!("127.0.0.2:{}", plain.port)),
        (curl_tls, "CONNECT", format!("127.0.0.3:{}", tls.port)),
    ] {
        let recs = egress(&k, id);
        assert_eq!(recs.len(), 2, "{recs:?}");
        match &recs[0] {
            RecordEvent::Egress {
                conn,
                method: m,
                target: t,
                address,
                decision,
                result,
            } => {
                assert_eq!((*conn, m.as_str(), t), (1, method, &target));
                assert_eq!(address, &target);
                assert!(decision.allowed && !decision.violation, "{decision:?}");
                assert!(decision.rule.starts_with("test-servers ("), "{decision:?}");
                assert_eq!(result, &Ok(()));
            }
            other => panic!("not an Egress record: {other:?}"),
        }
        match &recs[1] {
            RecordEvent::EgressClosed {
                conn,
                sent,
                received,
                why,
                ..
            } => {
                assert_eq!(*conn, 1);
                assert!(*sent > 0 && *received > "hello from 127.0.0.2".len() as u64);
                assert_eq!(why, "closed");
            }
            other => panic!("not an EgressClosed record: {other:?}"),
        }
    }
    // The operator's view of the log shows them.
    let view = k.ctl_ok(&["recorder", "show", "--agent", &curl_tls.to_string()]);
    assert!(
        view.contains(&format!(
            "egress #1 CONNECT 127.0.0.3:{0} (127.0.0.3:{0})",
            tls.port
        )),
        "{view}"
    );
    assert!(view.contains("egress #1 closed: "), "{view}");
    let (code, _) = k.verify();
    assert_eq!(code, 0);
    // `policy suggest` learns the hosts a run connected to.
    let suggested = k.ctl_ok(&["policy", "suggest", "--agent", &curl_http.to_string()]);
    assert!(suggested.contains("action: \"network\""), "{suggested}");
    assert!(suggested.contains("hosts: [\"127.0.0.2\"]"), "{suggested}");
}

#[test]
fn a_denied_host_gets_403_naming_the_rule_and_strict_mode_ends_the_agent_with_sigpolicy() {
    let k = TestKernel::start();
    let allowed = http_server("127.0.0.2");
    let denied = http_server("127.0.0.3");
    let rules = "  - name: two-only\n    action: network\n    effect: allow\n    constraints:\n      hosts: [\"127.0.0.2\", \"127.0.0.3\"]\n  - name: not-three\n    action: network\n    effect: deny\n    constraints:\n      hosts: [\"127.0.0.3\"]\n";
    let p = policy(&k, "strict-net", "strict", rules, &[]);

    // curl over plain HTTP: refused with the rule, then ended. The 403 is in its socket
    // before SIGPOLICY, but what it had printed into its stdout buffer dies with it, so the
    // answer is checked on a client that survives it (below) and in the record here.
    let url = format!("http://127.0.0.3:{}/hello.txt", denied.port);
    let (last, out, id) = run_curl(&k, &p, &[&url]);
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}\n{out}");
    let recs = egress(&k, id);
    assert!(
        matches!(&recs[0], RecordEvent::Egress { decision, result: Err(Errno::PermissionDenied { rule, .. }), .. }
            if decision.violation && !decision.allowed && rule.starts_with("not-three (")),
        "{recs:?}"
    );

    // A client that reads its answer before it closes has the 403, the rule and the reason in
    // hand before SIGPOLICY ends it.
    let (last, out) = run_py(&k, &p, &["answer", &url]);
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}\n{out}");
    assert!(
        out.starts_with("HTTP/1.1 403 Forbidden | rule=not-three ("),
        "{out}"
    );
    assert!(
        out.contains("| agentos egress proxy: denied by policy: not-three ("),
        "{out}"
    );
    assert!(out.contains("network on 127.0.0.3:"), "{out}");

    // The kill names the rule; so does the agent's denial summary.
    assert!(
        last["exit"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("network on 127.0.0.3:") && r.contains("(not-three (")),
        "{last}"
    );
    assert!(
        last["denials"]["top"].as_array().is_some_and(|rows| rows
            .iter()
            .any(|r| r["action"] == "network" && r["kind"] == "refused")),
        "{last}"
    );

    // Through CONNECT (Python's urllib, HTTPS_PROXY) the same: refused, recorded, ended.
    let tls_url = format!("https://127.0.0.3:{}/", denied.port);
    let id = k.spawn_script(&p, "python3", &netagent(), &["fetch", &tls_url, "--linger"]);
    assert_eq!(k.wait(id)["exit"]["signal"], "SIGPOLICY");
    assert!(
        matches!(&egress(&k, id)[0], RecordEvent::Egress { method, result: Err(Errno::PermissionDenied { .. }), .. } if method == "CONNECT"),
        "{:?}",
        egress(&k, id)
    );
    // Permissive, the same client tells the 403 from a name it cannot resolve.
    let p_perm = policy(&k, "permissive-tls", "permissive", rules, &[]);
    let (_, out, _) = run_curl(&k, &p_perm, &["https://no-such-host.invalid/"]);
    assert!(out.contains("CONNECT tunnel failed, response 502"), "{out}");
    // The allowed one still works from the same policy.
    let (last, out, _) = run_curl(
        &k,
        &p,
        &[&format!("http://127.0.0.2:{}/hello.txt", allowed.port)],
    );
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
}

#[test]
fn permissive_mode_lets_a_violation_through_recorded() {
    let k = TestKernel::start();
    let server = http_server("127.0.0.3");
    let rules = "  - name: only-two\n    action: network\n    effect: allow\n    constraints:\n      hosts: [\"127.0.0.2\", \"127.0.0.3\"]\n      ports: [1]\n";
    let p = policy(&k, "permissive-net", "permissive", rules, &[]);
    let url = format!("http://127.0.0.3:{}/hello.txt", server.port);
    let (last, out, id) = run_curl(&k, &p, &[&url]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), "hello from 127.0.0.3");
    let recs = egress(&k, id);
    assert!(
        matches!(&recs[0], RecordEvent::Egress { decision, result: Ok(()), .. }
            if decision.violation && decision.allowed && !decision.policy_allowed && decision.mode == "permissive"),
        "{recs:?}"
    );
    let shown = k.ctl_ok(&["recorder", "show", "--violations"]);
    assert!(
        shown.contains(&format!("egress #1 GET 127.0.0.3:{}", server.port)),
        "{shown}"
    );
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_unless_its_address_is_listed_literally() {
    let k = TestKernel::start();
    let server = http_server("127.0.0.1");
    let url = format!("http://localhost:{}/hello.txt", server.port);
    // The name is allowed, and so is every host: neither names the loopback address.
    for (name, hosts) in [("by-name", "[\"localhost\"]"), ("star", "[\"*\"]")] {
        let rules = format!("  - name: {name}\n    action: network\n    effect: allow\n    constraints:\n      hosts: {hosts}\n");
        let p = policy(&k, name, "strict", &rules, &[]);
        let (_, out, id) = run_curl(&k, &p, &["-w", "\\n%{http_code}\\n", &url]);
        assert!(
            out.contains("denied by policy: egress: localhost resolves to "),
            "{out}"
        );
        assert!(
            out.contains("a loopback address; a network rule must list "),
            "{out}"
        );
        assert!(out.trim_end().ends_with("403"), "{out}");
        let recs = egress(&k, id);
        assert!(
            matches!(&recs[0], RecordEvent::Egress { decision, address, result: Err(Errno::PermissionDenied { rule, .. }), .. }
                if rule == "egress" && !decision.violation && !address.is_empty()),
            "{recs:?}"
        );
        // The address itself: not in `hosts` for the name (a strict violation: the agent is
        // ended), and `*` does not name it (the proxy's own refusal).
        let direct = format!("http://127.0.0.1:{}/hello.txt", server.port);
        let (_, _, id) = run_curl(&k, &p, &[&direct]);
        let recs = egress(&k, id);
        let refused = match &recs[0] {
            RecordEvent::Egress {
                result: Err(Errno::PermissionDenied { rule, reason }),
                decision,
                ..
            } => (rule.clone(), reason.clone(), decision.violation),
            other => panic!("{name}: not a refused connection: {other:?}"),
        };
        if name == "star" {
            assert_eq!(refused.0, "egress");
            assert!(
                refused.1.starts_with("127.0.0.1 is a loopback address"),
                "{refused:?}"
            );
            assert!(!refused.2);
        } else {
            assert_eq!(refused.0, "", "a default deny: {refused:?}");
            assert!(refused.2);
        }
    }
    // Listed literally (both of the name's addresses), it is reached.
    let rules = "  - name: local\n    action: network\n    effect: allow\n    constraints:\n      hosts: [\"localhost\", \"127.0.0.1\", \"::1\"]\n";
    let p = policy(&k, "literal", "strict", rules, &[]);
    let (last, out, _) = run_curl(&k, &p, &[&url]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), "hello from 127.0.0.1");
}

#[test]
fn rate_limits_and_approvals_hold_for_connections() {
    let k = TestKernel::start();
    let server = http_server("127.0.0.2");
    let url = format!("http://127.0.0.2:{}/hello.txt", server.port);
    let rules = "  - name: once\n    action: network\n    effect: allow\n    rate_limit: 1/minute\n    constraints:\n      hosts: [\"127.0.0.2\"]\n";
    let p = policy(&k, "rated", "strict", rules, &[]);
    // One agent, two connections: the second is over the rate.
    let script = format!(
        "import urllib.request, urllib.error\nfor _ in range(2):\n    try:\n        print(urllib.request.urlopen('{url}', timeout=20).status, flush=True)\n    except urllib.error.HTTPError as e:\n        print(e.code, e.headers.get('Retry-After'), e.read().decode().strip(), flush=True)\n"
    );
    let script_path = k.work.join("twice.py");
    std::fs::write(&script_path, script).expect("write script");
    let id = k.spawn_script(&p, "python3", script_path.to_str().expect("utf-8"), &[]);
    let last = k.wait(id);
    let out = k.logs(id);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"200"), "{last}\n{out}");
    assert!(
        lines.get(1).is_some_and(
            |l| l.starts_with("429 ") && l.contains("agentos egress proxy: rate limited")
        ),
        "{out}"
    );

    // requires_approval: the connection waits for the operator, then goes through.
    let rules = "  - name: ask\n    action: network\n    effect: allow\n    requires_approval: true\n    constraints:\n      hosts: [\"127.0.0.2\"]\n";
    let p = policy(&k, "asked", "strict", rules, &[]);
    let id = k.spawn_script(&p, "python3", &netagent(), &["fetch", &url]);
    let mut approval = String::new();
    wait_until("the connection waits for approval", || {
        let out = k.ctl(&["approvals", "--json"]);
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        match rows.as_array().and_then(|r| r.first()) {
            Some(r) if r["agent"] == id => {
                assert_eq!(r["action"], "network");
                assert_eq!(r["resource"], format!("127.0.0.2:{}", server.port));
                approval = r["id"].to_string();
                true
            }
            _ => false,
        }
    });
    k.ctl_ok(&["approve", &approval]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), "status 200 hello from 127.0.0.2");
}

#[test]
fn an_agent_holds_at_most_its_connection_budget_at_once() {
    let k = TestKernel::start_with(false, &["--egress-max-connections", "2"]);
    let server = http_server("127.0.0.2");
    let p = policy(&k, "budget", "strict", ALLOW_2_3, &[]);
    let target = format!("127.0.0.2:{}", server.port);
    let id = k.spawn_script(&p, "python3", &netagent(), &["hold", "3", &target]);
    let held = k.wait_for_line(id, "held");
    assert_eq!(held, "held");
    let out = k.logs(id);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..3],
        &[
            "HTTP/1.1 200 Connection established",
            "HTTP/1.1 200 Connection established",
            "HTTP/1.1 503 Service Unavailable",
        ],
        "{out}"
    );
    k.ctl_ok(&["kill", &id.to_string()]);
    k.wait(id);
    // Every connection ended with the agent, recorded.
    let closed = egress(&k, id)
        .iter()
        .filter(|e| matches!(e, RecordEvent::EgressClosed { .. }))
        .count();
    assert_eq!(closed, 2);
}

#[test]
fn an_agent_with_a_network_rule_reaches_nothing_but_its_proxy() {
    let k = TestKernel::start();
    let server = http_server("127.0.0.2");
    let p = policy(&k, "contained", "strict", ALLOW_2_3, &[]);
    let port = server.port.to_string();
    // The server the policy allows, dialled directly: the jail's own loopback has nothing
    // there, and landlock lets TCP connect only to the proxy's port anyway.
    let (_, out) = run_py(&k, &p, &["direct", "127.0.0.2", &port]);
    assert!(out.starts_with("refused "), "{out}");
    let (_, out) = run_py(&k, &p, &["direct", "93.184.216.34", "80"]);
    assert!(out.starts_with("refused "), "{out}");
    // No listening of its own, no datagrams out.
    let (_, out) = run_py(&k, &p, &["bind"]);
    assert!(out.starts_with("refused "), "{out}");
    let (_, out) = run_py(&k, &p, &["udp", "8.8.8.8", "53"]);
    assert!(out.starts_with("refused "), "{out}");
    // A request head over the proxy's bound is refused, not buffered.
    let (_, out) = run_py(&k, &p, &["bloat", &format!("127.0.0.2:{port}")]);
    assert_eq!(out.trim(), "HTTP/1.1 431 Request Header Fields Too Large");
    // It was told where its proxy is.
    let (_, out) = run_py(&k, &p, &["env"]);
    assert!(out.contains("HTTP_PROXY=http://127.0.0.1:3128"), "{out}");
    assert!(out.contains("https_proxy=http://127.0.0.1:3128"), "{out}");
    assert!(out.contains("NO_PROXY=\n"), "{out}");
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

#[test]
fn an_agent_without_a_network_rule_has_no_proxy_and_no_inet_sockets() {
    let k = TestKernel::start();
    let p = policy(&k, "offline", "strict", "", &[]);
    let (_, out) = run_py(&k, &p, &["env"]);
    assert!(out.contains("HTTP_PROXY=None"), "{out}");
    // No proxy to reach: seccomp refuses the socket itself, and the kernel says how to get one.
    assert!(
        out.trim_end().ends_with("refused PermissionError errno=1"),
        "{out}"
    );
    assert!(out.contains("give its policy a `network` rule"), "{out}");
    let (_, out) = run_py(&k, &p, &["udp", "8.8.8.8", "53"]);
    assert!(out.contains("refused PermissionError errno=1"), "{out}");
}

#[test]
fn an_unprivileged_kernel_proxies_counts_and_explains_connections() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let k = TestKernel::start_with(true, &["--metrics-addr", &metrics_port.to_string()]);
    let server = http_server("127.0.0.2");
    let p = policy(&k, "unprivileged", "permissive", ALLOW_2_3, &[]);
    let url = format!("http://127.0.0.2:{}/hello.txt", server.port);
    let (last, out, _) = run_curl(&k, &p, &[&url]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), "hello from 127.0.0.2");
    // A host outside the rule: a permissive violation, let through to a refusal of the
    // proxy's own (nothing listens on that address's port 9).
    let (_, out, _) = run_curl(&k, &p, &["-w", "\\n%{http_code}\\n", "http://127.0.0.4:9/"]);
    assert!(out.trim_end().ends_with("403"), "{out}");

    // The metrics count both, and the bytes that came back.
    let body = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).expect("metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("scrape");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read metrics");
        text
    };
    assert!(
        body.contains("agentos_egress_connections_total{decision=\"allow\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("agentos_egress_connections_total{decision=\"deny\"} 1"),
        "{body}"
    );
    let received = body
        .lines()
        .find_map(|l| l.strip_prefix("agentos_egress_bytes_total{direction=\"received\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("received bytes counted");
    assert!(received > "hello from 127.0.0.2".len() as f64, "{body}");
    assert!(
        body.contains(
            "agent_os_violations_total{action=\"network\",rule=\"egress\",mode=\"permissive\"} 1"
        ),
        "{body}"
    );

    // `policy lint` and `policy explain` know the action.
    let lint_path = k.work.join("every-host.md");
    std::fs::write(
        &lint_path,
        "---\nkernel: {version: \"1.0\", mode: strict}\nsignals: []\npolicies:\n  - {name: anywhere, action: network, effect: allow}\n---\n",
    )
    .expect("write policy");
    let lint = k.ctl(&["policy", "lint", lint_path.to_str().expect("utf-8")]);
    let text =
        String::from_utf8_lossy(&lint.stdout).into_owned() + &String::from_utf8_lossy(&lint.stderr);
    assert!(
        text.contains("rule `anywhere`: no `hosts` (or `*`)"),
        "{text}"
    );
    let explain = |resource: &str| {
        k.ctl(&[
            "policy",
            "explain",
            p.to_str().expect("utf-8"),
            "--action",
            "network",
            "--resource",
            resource,
        ])
    };
    assert_eq!(
        explain(&format!("127.0.0.2:{}", server.port)).status.code(),
        Some(0)
    );
    let denied = explain("example.com:443");
    assert_eq!(denied.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&denied.stdout)
            .contains("host `example.com` not in 127.0.0.2, 127.0.0.3"),
        "{}",
        String::from_utf8_lossy(&denied.stdout)
    );
}

#[test]
fn an_agents_bandwidth_is_paced_to_its_budget() {
    // 1 MiB/s with one second of burst: 3 MiB cannot arrive in less than two seconds.
    let k = TestKernel::start_with(false, &["--egress-bytes-per-sec", "1048576"]);
    let server = http_server("127.0.0.2");
    std::fs::write(server._dir.path().join("big.bin"), vec![b'x'; 3 << 20]).expect("write");
    let p = policy(&k, "paced", "strict", ALLOW_2_3, &[]);
    let url = format!("http://127.0.0.2:{}/big.bin", server.port);
    let started = std::time::Instant::now();
    let (last, out, id) = run_curl(&k, &p, &["-o", "/dev/null", "-w", "%{size_download}", &url]);
    let took = started.elapsed();
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(out.trim(), (3 << 20).to_string());
    assert!(
        took >= std::time::Duration::from_millis(1900),
        "3 MiB at 1 MiB/s took {took:?}"
    );
    assert!(
        egress(&k, id).iter().any(
            |e| matches!(e, RecordEvent::EgressClosed { received, .. } if *received > 3 << 20)
        ),
        "{:?}",
        egress(&k, id)
    );
}

#[test]
fn a_flood_of_connections_is_held_to_the_agents_recorder_share() {
    // Every connection is a record: an agent dialling without end is ended by its share of
    // the recorder, like a flood of syscalls, and the disk the kernel keeps stays near it.
    const SHARE: u64 = 256 << 10;
    let k = TestKernel::start_with(false, &[&format!("--recorder-share-bytes={SHARE}")]);
    // Allowed literally, and nothing listens there: each connection is refused by the
    // network (502), recorded, never a violation.
    let rules = "  - name: nowhere\n    action: network\n    effect: allow\n    constraints:\n      hosts: [\"127.0.0.9\"]\n";
    let p = policy(&k, "flood", "strict", rules, &[]);
    let before = disk_bytes(&k.recorder_dir());
    let id = k.spawn_script(&p, "python3", &netagent(), &["flood", "127.0.0.9:9"]);
    let end = k.wait(id);
    assert_eq!(end["exit"]["signal"], "SIGKILL", "{end:#}");
    k.limit_event_before_exit(id, "recorder_bytes", &["syscall"]);
    let refused = egress(&k, id).len();
    assert!(refused > 100, "only {refused} connections recorded");
    let grown = disk_bytes(&k.recorder_dir()).saturating_sub(before);
    assert!(
        grown <= SHARE + (512 << 10),
        "the recorder grew by {grown} bytes for a share of {SHARE}"
    );
}

#[test]
fn what_an_agent_sends_its_proxy_reaches_an_operators_terminal_escaped() {
    let k = TestKernel::start();
    let p = policy(&k, "hostile-names", "strict", ALLOW_2_3, &[]);
    let (last, out) = run_py(&k, &p, &["hostile"]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["HTTP/1.1 400 Bad Request", "HTTP/1.1 400 Bad Request"]
    );
    // The first refusal names the host it refused, the agent's bytes kept as they were in
    // the record; the second never got past the HTTP parser (a control byte). The
    // operator's view shows them escaped.
    let shown = k.ctl_ok(&["recorder", "show", "--kind", "egress"]);
    assert!(
        shown.contains("egress #1") && shown.contains("egress #2"),
        "{shown}"
    );
    assert!(
        shown.contains("ex\\u{202e}ample.com` is not a host name"),
        "{shown}"
    );
    assert!(shown.contains("not an HTTP request"), "{shown}");
    assert!(
        !shown.contains('\u{202e}') && !shown.contains('\x1b'),
        "{shown:?}"
    );
    // The denial summary in `inspect` as well.
    let id = last["id"].as_u64().expect("id").to_string();
    let inspect = k.ctl_ok(&["inspect", &id]);
    assert!(
        !inspect.contains('\u{202e}') && !inspect.contains('\x1b'),
        "{inspect:?}"
    );
}

#[test]
fn tunnels_stuffed_by_the_agent_hold_the_kernel_to_a_bounded_memory() {
    // The agent fills every tunnel it may hold toward a server that never reads: what the
    // kernel holds for it is its copy buffers (at most 2 × 256 KiB a connection) and a
    // request head, whatever it sends; the rest waits in the agent's own socket.
    let k = TestKernel::start_with(false, &["--egress-max-connections", "16"]);
    let sink = std::net::TcpListener::bind("127.0.0.2:0").expect("a server that never reads");
    let port = sink.local_addr().expect("addr").port();
    let p = policy(&k, "stuffed", "strict", ALLOW_2_3, &[]);
    let rss = || -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", k.kernel_pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .expect("the kernel's VmRSS")
            * 1024
    };
    let before = rss();
    let id = k.spawn_script(
        &p,
        "python3",
        &netagent(),
        &["stuff", "16", &format!("127.0.0.2:{port}")],
    );
    assert_eq!(k.wait_for_line(id, "stuffed"), "stuffed");
    let grown = rss().saturating_sub(before);
    // 16 connections × (2 × 256 KiB + 16 KiB), and 8 MiB for everything else the kernel
    // allocates meanwhile (its tasks, the records).
    let bound = 16 * (2 * (256 << 10) + (16 << 10)) + (8 << 20);
    assert!(
        grown <= bound,
        "the kernel grew by {grown} bytes (bound {bound})"
    );
    k.ctl_ok(&["kill", &id.to_string()]);
    k.wait(id);
    drop(sink);
}

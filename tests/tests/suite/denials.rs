//! Denial-first summaries and approvals an operator can act on, with real kernels and real
//! sandboxed agents: `run` and `inspect` name a permissive violation and the sandbox's
//! refusals with what refused them; an unmodified program's network attempt is told in its
//! output as policy, once per kind; an agent parked on an approval shows `awaiting-approval`
//! and counts as parked; `approvals` names the agent and shows the payload escaped, with its
//! size and digest; `approvals -f` prints each new call once and says when the kernel is gone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use agentos_tests::operator_modes::GATED_PAYLOAD;
use agentos_tests::{binary, test_agent, wait_until, write_policy, TestKernel};
use serde_json::Value;

const NO_SEMANTIC: &str = "  - name: no-semantic\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/semantic/**\"]\n";
const GATED: &str = "  - name: gated\n    action: file_write\n    effect: allow\n    requires_approval: true\n    constraints:\n      paths: [\"/mem/working/gated/**\"]\n";

/// The notice the kernel writes into an agent's output for a refused network socket.
const NOTICE: &str = "agentos: network denied by policy: ";

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(what: &str, out: std::process::Output) -> String {
    assert!(out.status.success(), "{what}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The summary row of `kind` (`allowed`, `refused`, `sandbox`) for `resource`.
fn row<'a>(info: &'a Value, kind: &str, resource: &str) -> &'a Value {
    info["denials"]["top"]
        .as_array()
        .expect("denials.top")
        .iter()
        .find(|d| d["kind"] == kind && d["resource"] == resource)
        .unwrap_or_else(|| panic!("no {kind} row for {resource}: {:#}", info["denials"]))
}

#[test]
fn run_names_a_permissive_violation_and_the_sandboxs_refusals_with_their_rules() {
    let work = tempfile::tempdir().unwrap();
    let policy = write_policy(work.path(), "perm", "permissive", &[], NO_SEMANTIC);
    let out = Command::new(binary("agentctl"))
        .arg("--state-dir")
        .arg(work.path().join("state"))
        .args(["run", "--policy", policy.to_str().unwrap(), "--"])
        .arg(test_agent())
        .arg("op-denials")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    // The agent's own view: the violation went through, the sandbox refused the rest.
    assert!(stdout.contains("violation: wrote 4"), "{stdout}");
    assert!(stdout.contains("udp: Operation not permitted"), "{stdout}");
    // "0 denied" no longer hides anything: the summary counts and names each refusal.
    assert!(err.contains("syscalls: 1 (1 allowed, 0 denied)"), "{err}");
    assert!(
        err.contains("1 policy violation let through (permissive mode)"),
        "{err}"
    );
    assert!(err.contains("operations refused by the sandbox"), "{err}");
    assert!(
        err.contains(&format!(
            "file_write /mem/semantic/x → no-semantic ({}:",
            policy.display()
        )),
        "the violation is named with its rule and policy line: {err}"
    );
    assert!(
        err.contains("[violation, let through: permissive mode]"),
        "{err}"
    );
    assert!(
        err.contains("socket(AF_INET, SOCK_DGRAM) → sandbox: no network ×2"),
        "{err}"
    );
    assert!(
        err.contains("socket(AF_INET, SOCK_STREAM) → sandbox: no network ×1"),
        "{err}"
    );
    assert!(
        err.contains("openat /etc/shadow → sandbox: /etc/shadow is not in the agent's root"),
        "{err}"
    );
    assert!(
        err.contains("openat /tmp/agentos-denial-probe → sandbox: "),
        "{err}"
    );
    // Each kind of refused network socket is told once in the output, before the program's
    // own error.
    for kind in [
        "socket(AF_INET, SOCK_DGRAM)",
        "socket(AF_INET, SOCK_STREAM)",
    ] {
        let line = format!("{NOTICE}{kind} refused with EPERM");
        assert_eq!(stdout.matches(&line).count(), 1, "{kind}: {stdout}");
    }
    let notice = stdout.find(&format!("{NOTICE}socket(AF_INET, SOCK_DGRAM)"));
    let error = stdout.find("udp: Operation not permitted");
    assert!(notice < error, "{stdout}");
}

#[test]
fn a_strict_runs_summary_has_nothing_to_report() {
    let work = tempfile::tempdir().unwrap();
    let policy = write_policy(work.path(), "strict", "strict", &[], "");
    let out = Command::new(binary("agentctl"))
        .args(["run", "--policy", policy.to_str().unwrap(), "--"])
        .arg(test_agent())
        .arg("echo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("denied:   none (no policy violation, nothing refused by the sandbox)"),
        "{err}"
    );
}

#[test]
fn inspect_counts_violations_and_sandbox_refusals_and_names_their_rules() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "perm", "permissive", &[], NO_SEMANTIC);
    let id = k.spawn(&policy, &["op-denials"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let info = k.info(id);
    assert_eq!(info["violations"], 1, "{info:#}");
    assert_eq!(info["denied"], 0, "permissive: nothing refused by policy");
    let sandbox = info["sandbox_denied"].as_u64().unwrap();
    // Two UDP sockets, one TCP socket, /etc/shadow and /tmp at least.
    assert!(sandbox >= 5, "{info:#}");
    assert_eq!(info["denials"]["total"].as_u64(), Some(1 + sandbox));
    let violation = row(&info, "allowed", "/mem/semantic/x");
    assert_eq!(violation["action"], "file_write");
    assert!(
        violation["rule"]
            .as_str()
            .unwrap()
            .starts_with("no-semantic ("),
        "{violation}"
    );
    let reason = violation["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("permissive mode let it through: "),
        "{violation}"
    );
    let udp = row(&info, "sandbox", "socket(AF_INET, SOCK_DGRAM)");
    assert_eq!(udp["count"], 2);
    assert_eq!(udp["rule"], "sandbox: no network");
    row(&info, "sandbox", "/etc/shadow");
    let shown = ok("inspect", k.ctl(&["inspect", &id.to_string()]));
    assert!(
        shown.contains("policy violation let through (permissive mode)"),
        "{shown}"
    );
    assert!(
        shown.contains("socket(AF_INET, SOCK_DGRAM) → sandbox: no network ×2"),
        "{shown}"
    );
    assert!(shown.contains("file_write /mem/semantic/x → no-semantic ("));
}

/// The agent's `ps` row, by id.
fn ps_row(k: &TestKernel, id: u64) -> Value {
    let all: Value = serde_json::from_str(&ok("ps --json", k.ctl(&["ps", "--json"]))).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .expect("the agent is listed")
}

/// The rows of `agentctl approvals --json ARGS`.
fn approvals(k: &TestKernel, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["approvals", "--json"];
    a.extend_from_slice(args);
    let v: Value = serde_json::from_str(&ok("approvals --json", k.ctl(&a))).expect("json");
    v.as_array().expect("array").clone()
}

#[test]
fn a_parked_approval_shows_in_ps_and_inspect_with_its_payload_escaped_and_ends_once_approved() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "gated", "strict", &[], GATED);
    let id = k.spawn_with(
        &policy,
        &["--name", "builder"],
        &["op-gated", "/mem/working/gated/report"],
    );
    wait_until("the agent awaits approval", || {
        ps_row(&k, id)["state"] == "awaiting-approval"
    });
    let info = k.info(id);
    assert_eq!(info["state"], "awaiting-approval");
    assert_eq!(info["awaiting_approval"], 1);
    assert!(info["parked"].as_u64().unwrap() >= 1, "{info:#}");
    let table = ok("ps", k.ctl(&["ps"]));
    assert!(table.contains("awaiting-approval"), "{table}");
    let shown = ok("inspect", k.ctl(&["inspect", "builder"]));
    assert!(shown.contains("1 parked"), "{shown}");
    assert!(
        shown.contains("1 call waits for an operator: agentctl approvals --agent builder"),
        "{shown}"
    );

    // The row: the agent's name, and what would be written — size, escaped preview, digest.
    let rows = approvals(&k, &["--agent", "builder"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["agent"], id);
    assert_eq!(r["agent_name"], "builder");
    assert_eq!(r["resource"], "/mem/working/gated/report");
    // The rule that asks for approval, though the broader `working-rw` matches too.
    assert!(r["rule"].as_str().unwrap().starts_with("gated ("), "{r}");
    assert_eq!(r["payload"]["bytes"], GATED_PAYLOAD.len());
    assert_eq!(r["payload"]["preview"], "hello\\x1b[31mred\\n\\x00\\xff");
    assert_eq!(r["payload"]["preview_complete"], true);
    assert_eq!(
        r["payload"]["blake3"],
        blake3::hash(GATED_PAYLOAD).to_hex().as_str()
    );
    let out = k.ctl(&["approvals"]);
    let listing = ok("approvals", out);
    assert!(listing.contains(&format!("builder ({id})")), "{listing}");
    assert!(
        listing.contains(&format!(
            "payload:  \"hello\\x1b[31mred\\n\\x00\\xff\" ({} bytes, blake3 {}",
            GATED_PAYLOAD.len(),
            &blake3::hash(GATED_PAYLOAD).to_hex()[..16]
        )),
        "{listing}"
    );
    assert!(
        !listing.contains('\x1b') && !listing.contains('\0'),
        "the payload's control characters reach the terminal only escaped: {listing:?}"
    );
    // The id and the name select the same calls; an unknown name is "not found".
    let ids = |rows: &[Value]| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&approvals(&k, &["--agent", &id.to_string()])),
        ids(&rows)
    );
    let unknown = k.ctl(&["approvals", "--agent", "nobody"]);
    assert_eq!(unknown.status.code(), Some(4), "{}", text(&unknown));

    let approval = r["id"].as_u64().unwrap().to_string();
    ok("approve", k.ctl(&["approve", &approval]));
    let answer = k.wait_for_line(id, "answer:");
    assert_eq!(answer, format!("answer: wrote {}", GATED_PAYLOAD.len()));
    k.wait_for_line(id, "ready");
    let info = k.info(id);
    assert_eq!(info["state"], "running", "{info:#}");
    assert_eq!(info["parked"], 0);
    assert_eq!(info["awaiting_approval"], 0);
    assert_eq!(ps_row(&k, id)["state"], "running");
}

/// `agentctl approvals -f` with its output collected line by line.
struct Follower {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    fn start(k: &TestKernel) -> Follower {
        let mut child = Command::new(&k.agentctl)
            .arg("--state-dir")
            .arg(&k.state_dir)
            .args(["approvals", "-f", "--interval-ms", "50"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("agentctl approvals -f");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Follower {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Lines printed so far that contain `s`.
    fn count(&self, s: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(s))
            .count()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

#[test]
fn approvals_follow_prints_each_new_call_once_and_says_when_the_kernel_is_gone() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "gated", "strict", &[], GATED);
    let mut f = Follower::start(&k);
    wait_until("the follower's header", || f.count("RESOURCE") == 1);
    // Arrives after the follower started.
    let first = k.spawn_with(
        &policy,
        &["--name", "first"],
        &["op-gated", "/mem/working/gated/first"],
    );
    wait_until("the first call in the follower", || {
        f.count("/mem/working/gated/first") == 1
    });
    // A second call, seen polls later: by then the first has been listed again and again by
    // the kernel, and printed only once.
    let second = k.spawn_with(
        &policy,
        &["--name", "second"],
        &["op-gated", "/mem/working/gated/second"],
    );
    wait_until("the second call in the follower", || {
        f.count("/mem/working/gated/second") == 1
    });
    assert_eq!(f.count("/mem/working/gated/first"), 1);
    assert_eq!(f.count(&format!("first ({first})")), 1);
    assert_eq!(f.count(&format!("second ({second})")), 1);
    assert_eq!(f.count("payload:  \"hello\\x1b[31mred"), 2);

    // The kernel dies: the follower stops with a message saying so.
    k.kill_kernel();
    let mut stderr = f.child.stderr.take().expect("stderr");
    let status = f.child.wait().expect("follower ends");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("stopped following approvals: the kernel on"),
        "{err}"
    );
    assert!(err.contains("is gone"), "{err}");
}

#[test]
fn a_real_network_attempt_from_python_is_told_as_policy_in_the_agents_output() {
    if !std::path::Path::new("/usr/bin/python3").is_file() {
        eprintln!("skipped: /usr/bin/python3 is missing");
        return;
    }
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "net", "strict", &[], "");
    let code = "import urllib.request\nfor _ in range(2):\n    try:\n        urllib.request.urlopen('http://example.com/', timeout=5)\n        print('fetch: ESCAPED', flush=True)\n    except OSError as e:\n        print('fetch:', e, flush=True)\n";
    let id: u64 = ok(
        "spawn python3",
        k.ctl(&[
            "spawn",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "/usr/bin/python3",
            "-I",
            "-c",
            code,
        ]),
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let log = ok("logs", k.ctl(&["logs", &id.to_string()]));
    assert!(!log.contains("ESCAPED"), "{log}");
    let notices: Vec<&str> = log.lines().filter(|l| l.starts_with(NOTICE)).collect();
    assert!(
        notices
            .iter()
            .any(|l| l.starts_with(&format!("{NOTICE}socket(AF_INET, SOCK_"))),
        "{log}"
    );
    // Once per kind, though the program tried twice.
    let mut kinds = notices.clone();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), notices.len(), "{log}");
    // The notice comes before the program's own (misleading) error.
    let first_notice = log.find(NOTICE).unwrap();
    let first_error = log.find("fetch:").expect("python's error");
    assert!(first_notice < first_error, "{log}");
    let info = k.info(id);
    assert!(info["sandbox_denied"].as_u64().unwrap() >= 2, "{info:#}");
    assert_eq!(
        info["denials"]["top"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["rule"] == "sandbox: no network")
            .count(),
        kinds.len(),
        "{info:#}"
    );
}

/// What the kernel writes into an agent's output for it is bounded by the kernel, not by the
/// agent: asking for 48 kinds of network socket gets at most 16 notices (one per kind), and
/// the summary still counts every refusal.
#[test]
fn network_notices_in_an_agents_output_are_bounded() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "loose", "permissive", &[], "");
    let id = k.spawn(&policy, &["op-socket-kinds"]);
    assert_eq!(k.wait_for_line(id, "refused "), "refused 48 of 48");
    k.wait(id);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    let notices = log
        .lines()
        .filter(|l| l.starts_with("agentos: network denied by policy: "))
        .count();
    assert_eq!(notices, 16, "{log}");
    let info = k.info(id);
    assert!(
        info["denials"]["total"].as_u64().is_some_and(|n| n >= 48),
        "{info:#}"
    );
}

//! Policies that do not trap the operator, shown with real kernels and real jailed agents:
//! every `policy init` template lets `agentctl stop`/`cont` freeze and resume an agent and
//! lets `kernel stop` end it with SIGTERM (the agent's own TERM trap runs), while the spec's
//! verbatim list (SIGSTOP alone) leaves a stopped agent frozen — and `policy lint` says so;
//! `kernel stop` shows its progress; `policy explain` and `policy lint` agree on action
//! names; `policy suggest` turns a recorded permissive run into a strict policy that lints
//! clean, that `replay what-if` finds no changed decision under, and that runs the agent again.

use std::path::{Path, PathBuf};
use std::process::Output;

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::Signal;
use agentos_tests::{wait_until, TestKernel};
use serde_json::Value;

/// A shell agent that traps SIGTERM: prints `got TERM` and exits 42.
const TRAPS_TERM: &str =
    "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done";

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `agentctl spawn --name NAME --policy POLICY -- /bin/sh -c SCRIPT`: the agent's id.
fn spawn_sh(k: &TestKernel, name: &str, policy: &Path, script: &str) -> u64 {
    k.ctl_ok(&[
        "spawn",
        "--name",
        name,
        "--policy",
        policy.to_str().expect("utf-8"),
        "--",
        "/bin/sh",
        "-c",
        script,
    ])
    .trim()
    .parse()
    .expect("agent id")
}

fn state(k: &TestKernel, id: u64) -> String {
    k.info(id)["state"].as_str().unwrap_or("").to_string()
}

/// The agent's log file (it stays on disk after the kernel stops).
fn log_path(k: &TestKernel, id: u64) -> PathBuf {
    PathBuf::from(k.info(id)["log"].as_str().expect("log"))
}

fn wait_log(path: &Path, needle: &str) {
    wait_until(&format!("`{needle}` in {}", path.display()), || {
        std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
    });
}

/// The spec's verbatim template, kept as a policy fixture.
fn spec_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/fixtures/good")
        .join(format!("spec-template-{name}.md"))
}

fn agent_events(k: &TestKernel, id: u64) -> Vec<RecordEvent> {
    k.records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .map(|r| r.event)
        .collect()
}

#[test]
fn every_template_lets_the_operator_stop_cont_and_terminate() {
    let k = TestKernel::start();
    let mut agents = Vec::new();
    for t in ["strict", "permissive", "audit"] {
        let policy = k.work.join(format!("{t}.md"));
        k.ctl_ok(&[
            "policy",
            "init",
            "--template",
            t,
            "--output",
            policy.to_str().expect("utf-8"),
        ]);
        // The template lints clean, but for what this kernel does not export: it runs with
        // neither --metrics-addr nor --otlp-endpoint.
        let lint = k.ctl_ok(&["policy", "lint", policy.to_str().expect("utf-8")]);
        let warnings: Vec<&str> = lint.lines().filter(|l| l.contains(": warning: ")).collect();
        assert!(
            warnings.iter().all(
                |w| w.contains("observability: `metrics: true` has no effect")
                    || w.contains("observability: `traces: true` has no effect")
            ),
            "{t}: {lint}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("--metrics-addr")),
            "{t}: {lint}"
        );
        let id = spawn_sh(&k, t, &policy, TRAPS_TERM);
        let log = log_path(&k, id);
        wait_log(&log, "ready");
        // stop freezes the agent's tree; cont resumes it (not refused).
        k.ctl_ok(&["stop", t]);
        assert_eq!(state(&k, id), "stopped", "{t}");
        let pid = k.launcher_pid(id);
        // SIGSTOP is sent by then; each process stops when it is next scheduled.
        wait_until(&format!("{t}: every process of its tree stopped"), || {
            agentos_tests::descendants(pid)
                .iter()
                .all(|p| agentos_tests::proc_state(*p).is_none_or(|s| s == 'T'))
        });
        let cont = k.ctl(&["cont", t]);
        assert!(
            cont.status.success(),
            "{t}: cont refused: {:?}",
            text(&cont)
        );
        assert_eq!(state(&k, id), "running", "{t}");
        wait_until(&format!("{t}: its tree running again"), || {
            agentos_tests::descendants(pid)
                .iter()
                .all(|p| agentos_tests::proc_state(*p).is_none_or(|s| s != 'T'))
        });
        agents.push((t, id, log));
    }
    // The spec's verbatim list (SIGSTOP without SIGCONT) is the trap the templates avoid:
    // lint warns, stop works, cont is refused (exit 3) and the agent stays frozen.
    let spec = spec_fixture("audit");
    let lint = k.ctl_ok(&["policy", "lint", spec.to_str().expect("utf-8")]);
    assert!(lint.contains("warning: signals: SIGSTOP is listed but SIGCONT is not: `agentctl stop` will work but `cont` will be refused: the agent stays frozen until killed"), "{lint}");
    assert!(
        lint.contains("warning: signals: SIGTERM is not listed"),
        "{lint}"
    );
    let trapped = spawn_sh(&k, "spec-audit", &spec, TRAPS_TERM);
    wait_log(&log_path(&k, trapped), "ready");
    k.ctl_ok(&["stop", "spec-audit"]);
    let cont = k.ctl(&["cont", "spec-audit"]);
    assert_eq!(cont.status.code(), Some(3), "{:?}", text(&cont));
    assert!(
        text(&cont)
            .1
            .contains("SIGCONT is not in the `signals:` list"),
        "{:?}",
        text(&cont)
    );
    assert_eq!(state(&k, trapped), "stopped");
    k.ctl_ok(&["kill", "spec-audit"]);
    k.wait(trapped);

    // kernel stop: each template's agent gets SIGTERM, runs its trap and exits 42 — no SIGKILL.
    let out = k.ctl(&["kernel", "stop"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for (t, id, log) in &agents {
        assert!(
            stdout.contains(&format!("  agent {id} ({t}): SIGTERM sent")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("  agent {id} ({t}): exited with code 42")),
            "{stdout}"
        );
        let said = std::fs::read_to_string(log).expect("log");
        assert!(said.contains("got TERM"), "{t}: {said}");
        let events = agent_events(&k, *id);
        let term = events.iter().position(|e| {
            matches!(e, RecordEvent::Signal { signal: Signal::Term, delivered: true, source, .. } if source == "kernel")
        });
        let exit = events.iter().position(|e| {
            matches!(
                e,
                RecordEvent::Exit {
                    status: ExitStatus::Code(42)
                }
            )
        });
        assert!(term.is_some() && exit > term, "{t}: {events:#?}");
        assert!(
            !events.iter().any(|e| matches!(
                e,
                RecordEvent::Signal {
                    signal: Signal::Kill,
                    ..
                }
            )),
            "{t}: SIGKILLed: {events:#?}"
        );
    }
}

#[test]
fn kernel_stop_shows_sigterm_refusals_the_grace_period_and_how_each_agent_ended() {
    let k = TestKernel::start_with(false, &["--term-grace-ms", "1500"]);
    let with_term = k.work.join("with-term.md");
    std::fs::write(
        &with_term,
        "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGSTOP, SIGCONT, SIGTERM]\npolicies: []\n",
    )
    .expect("write");
    let no_term = k.work.join("no-term.md");
    std::fs::write(
        &no_term,
        "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGSTOP, SIGCONT]\npolicies: []\n",
    )
    .expect("write");
    // Lint says what kernel stop will do to the second one.
    let lint = k.ctl_ok(&["policy", "lint", no_term.to_str().expect("utf-8")]);
    assert!(lint.contains("SIGTERM is not listed: `agentctl kernel stop` (and `agentctl signal ID SIGTERM`) cannot ask the agent to end, so `kernel stop` waits the grace period (`--term-grace-ms`, 5000 ms by default) and then SIGKILLs the agent's whole process tree"), "{lint}");
    let a = spawn_sh(&k, "polite", &with_term, TRAPS_TERM);
    let b = spawn_sh(&k, "deaf", &no_term, TRAPS_TERM);
    let log_b = log_path(&k, b);
    wait_log(&log_path(&k, a), "ready");
    wait_log(&log_b, "ready");
    let dir = k.state_dir.display().to_string();
    let out = k.ctl(&["kernel", "stop"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    // Not a terminal: event lines only, no countdown redrawn in place.
    assert!(
        !stdout.contains('\r') && !stdout.contains('\u{1b}'),
        "{stdout:?}"
    );
    assert!(
        lines[0].starts_with(&format!("stopping the kernel on {dir} (pid ")),
        "{stdout}"
    );
    assert!(
        lines[0].ends_with("): 2 live agent(s), grace period 1500 ms"),
        "{stdout}"
    );
    let want = [
        format!("  agent {a} (polite): SIGTERM sent; SIGKILL if it has not ended within the 1500 ms grace period"),
        format!(
            "  agent {b} (deaf): SIGTERM refused by its policy ({} does not list it in `signals:`); SIGKILL when the grace period ends",
            no_term.display()
        ),
        "  waiting up to 1.5 s for 2 agent(s) to end".to_string(),
    ];
    assert_eq!(&lines[1..4], &want, "{stdout}");
    let end_a = lines
        .iter()
        .find(|l| l.starts_with(&format!("  agent {a} (polite): ")) && l.contains("exited"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(end_a.contains("exited with code 42"), "{stdout}");
    let end_b = lines
        .iter()
        .find(|l| l.starts_with(&format!("  agent {b} (deaf): killed")))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        end_b.contains("killed by SIGKILL")
            && end_b.ends_with("(kernel shutdown: did not exit within the 1500 ms grace period)"),
        "{stdout}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with(&format!("kernel on {dir} stopped in "))),
        "{stdout}"
    );
    // The deaf agent never saw SIGTERM: its trap did not run; the recorder has the refusal.
    assert!(!std::fs::read_to_string(&log_b)
        .expect("log")
        .contains("got TERM"));
    let events = agent_events(&k, b);
    assert!(
        events.iter().any(|e| matches!(
            e,
            RecordEvent::Signal {
                signal: Signal::Term,
                delivered: false,
                ..
            }
        )),
        "{events:#?}"
    );

    // --json: one object, nothing else.
    let k = TestKernel::start_with(false, &["--term-grace-ms", "1500"]);
    let id = spawn_sh(&k, "polite", &with_term, TRAPS_TERM);
    wait_log(&log_path(&k, id), "ready");
    let out = k.ctl(&["kernel", "stop", "--json"]);
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", text(&out)));
    assert_eq!(v["grace_ms"], 1500);
    assert_eq!(v["stopped"], true);
    assert_eq!(v["agents"][0]["id"], id);
    assert_eq!(v["agents"][0]["name"], "polite");
    assert_eq!(v["agents"][0]["sigterm"], "sent");
    assert_eq!(v["agents"][0]["exit_code"], 42);
    assert_eq!(v["agents"][0]["killed"], false);
}

#[test]
fn explain_and_lint_agree_on_action_names() {
    let k = TestKernel::start();
    let policy = k.work.join("p.md");
    std::fs::write(
        &policy,
        "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGTERM]\npolicies:\n  - {name: any, action: \"*\", effect: allow}\n",
    )
    .expect("write");
    let p = policy.to_str().expect("utf-8");
    let list = "file_read, file_write, code_execution, api_call, ipc_send, signal, database_query, database_write, send_email, mcp_tool, network";
    // explain refuses `shell` (usage, exit 2) with the list.
    let out = k.ctl(&[
        "policy",
        "explain",
        p,
        "--action",
        "shell",
        "--resource",
        "ls",
    ]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(
        text(&out).1.contains(&format!(
            "action `shell` is not one the kernel emits ({list})"
        )),
        "{:?}",
        text(&out)
    );
    // lint warns about the same name in a rule, with the same words.
    let custom = k.work.join("custom.md");
    std::fs::write(
        &custom,
        "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGTERM]\npolicies:\n  - {name: sh, action: shell, effect: allow}\n",
    )
    .expect("write");
    let lint = k.ctl_ok(&["policy", "lint", custom.to_str().expect("utf-8"), "--json"]);
    let v: Value = serde_json::from_str(&lint).expect("json");
    assert_eq!(v["warnings"][0]["kind"], "unknown-action");
    assert!(
        v["warnings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!(
                "action `shell` is not one the kernel emits ({list})"
            ))),
        "{v}"
    );
    // Every action in the list is explained (allowed by the `*` rule: exit 0).
    for action in list.split(", ") {
        let out = k.ctl(&[
            "policy",
            "explain",
            p,
            "--action",
            action,
            "--resource",
            "/x",
        ]);
        assert_eq!(out.status.code(), Some(0), "{action}: {:?}", text(&out));
    }
}

/// A script for the test agent: many notes (generalised), one secret (denied by the
/// permissive policy's deny rule), two workspace files read and the workspace listed.
const STEPS: &[&str] = &[
    "write:/mem/working/notes/1=a",
    "write:/mem/working/notes/2=b",
    "write:/mem/working/notes/3=c",
    "write:/mem/working/notes/4=d",
    "write:/mem/working/todo=x",
    "read:/mem/working/notes/2",
    "read:/workspace/README",
    "read:/workspace/src/main.rs",
    "list:/workspace",
];

#[test]
fn policy_suggest_from_a_permissive_run_lints_clean_and_what_if_changes_nothing() {
    let k = TestKernel::start();
    let ws = k.work.join("ws");
    std::fs::create_dir_all(ws.join("src")).expect("mkdir");
    std::fs::write(ws.join("README"), "hello").expect("write");
    std::fs::write(ws.join("src/main.rs"), "fn main() {}").expect("write");
    std::fs::write(ws.join("secret.txt"), "k").expect("write");
    let recorded = k.work.join("recorded.md");
    std::fs::write(
        &recorded,
        "---\nkernel: {version: \"1.0\", mode: permissive}\nsignals: [SIGSTOP, SIGCONT, SIGTERM, SIGUSR1]\npolicies:\n  - {name: all, action: \"*\", effect: allow}\n  - {name: no-secrets, action: file_write, effect: deny, constraints: {paths: [\"/mem/working/secret*\"]}}\nsandbox:\n  limits: {open_files: 200}\n---\n",
    )
    .expect("write");
    let ws_arg = ws.to_str().expect("utf-8");
    let mut steps: Vec<&str> = STEPS.to_vec();
    steps.push("write:/mem/working/secret=k");
    let args: Vec<&str> = [&["script"][..], &steps].concat();
    let id = k.spawn_with(
        &recorded,
        &["--name", "builder", "--workspace", ws_arg],
        &args,
    );
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let violations = agent_events(&k, id)
        .iter()
        .filter(|e| matches!(e, RecordEvent::Syscall { decision, .. } if decision.violation))
        .count();
    assert_eq!(violations, 1, "the secret write is the run's one violation");

    // A run recorded under permissive refuses --from-mode audit.
    let out = k.ctl(&[
        "policy",
        "suggest",
        "--agent",
        "builder",
        "--from-mode",
        "audit",
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(
        text(&out).1.contains("was not recorded under audit mode"),
        "{:?}",
        text(&out)
    );

    let suggested = k.work.join("suggested.md");
    let s = suggested.to_str().expect("utf-8");
    let out = k.ctl(&[
        "policy",
        "suggest",
        "--agent",
        "builder",
        "--from-mode",
        "permissive",
        "-o",
        s,
    ]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "what-if under it: 0 of {} decisions change",
            steps.len()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("note: lint:"), "{stderr}");
    let page = std::fs::read_to_string(&suggested).expect("suggested");
    // Generalised where a directory held many files, exact elsewhere, never above a mount.
    assert!(
        page.contains("paths: [\"/mem/working/notes/**\", \"/mem/working/todo\"]"),
        "{page}"
    );
    assert!(
        page.contains("paths: [\"/workspace\", \"/workspace/README\", \"/workspace/src/main.rs\"]"),
        "{page}"
    );
    assert!(page.contains("paths: [\"/mem/working/notes/2\"]"), "{page}");
    assert!(
        !page.contains("\"/**\"") && !page.contains("\"/mem/**\""),
        "{page}"
    );
    assert!(page.contains("mode: strict"), "{page}");
    // The signals the operator needs, and the sandbox the run had.
    assert!(
        page.contains("signals:\n  - SIGTERM\n  - SIGCONT\n  - SIGSTOP\n"),
        "{page}"
    );
    assert!(
        page.contains("sandbox:\n  limits:\n    open_files: 200\n"),
        "{page}"
    );

    // It lints clean (warnings are errors here).
    let lint = k.ctl(&["policy", "lint", s, "--deny-warnings"]);
    assert!(lint.status.success(), "{:?}", text(&lint));
    assert!(text(&lint).0.ends_with(": ok, no warnings\n"));
    // what-if under it: no decision changes; the secret write stays denied.
    let out = k.ctl(&[
        "replay",
        "what-if",
        "--policy",
        s,
        "--agent",
        &id.to_string(),
        "--json",
    ]);
    let w: Value = serde_json::from_slice(&out.stdout).expect("what-if --json");
    assert_eq!(w["judged"], steps.len(), "{w}");
    assert_eq!(w["changes"], Value::Array(Vec::new()), "{w}");
    let explain = |action: &str, resource: &str, write: bool| {
        let mut args = vec![
            "policy",
            "explain",
            s,
            "--action",
            action,
            "--resource",
            resource,
        ];
        if write {
            args.push("--write");
        }
        k.ctl(&args).status.code()
    };
    assert_eq!(explain("file_write", "/mem/working/secret", true), Some(3));
    // Strict: nothing the run did not do.
    assert_eq!(
        explain("file_read", "/workspace/secret.txt", false),
        Some(3)
    );
    assert_eq!(explain("file_write", "/workspace/README", true), Some(3));
    assert_eq!(explain("code_execution", "/bin/sh -c id", false), Some(3));
    assert_eq!(explain("file_write", "/mem/working/notes/5", true), Some(0));

    // The agent runs again under the suggestion, in strict mode, without a violation.
    let args: Vec<&str> = [&["script"][..], STEPS].concat();
    let again = k.spawn_with(&suggested, &["--workspace", ws_arg], &args);
    let last = k.wait(again);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    assert_eq!(last["denied"], 0, "{last}");
}

#[test]
fn policy_suggest_from_a_python_agents_permissive_run() {
    if !Path::new("/usr/bin/python3").is_file() {
        eprintln!("skipped: /usr/bin/python3 is missing");
        return;
    }
    // The permissive template asks for metrics: this kernel serves them, so the suggestion,
    // which keeps the run's `observability:`, lints clean.
    let k = TestKernel::start_with(false, &["--metrics-addr", "0"]);
    let policy = k.work.join("permissive.md");
    let p = policy.to_str().expect("utf-8");
    k.ctl_ok(&["policy", "init", "--template", "permissive", "--output", p]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python/pyagent.py")
        .display()
        .to_string();
    let spawn = |name: &str, args: &[&str]| -> u64 {
        let mut argv = vec![
            "spawn", "--name", name, "--policy", p, "--", "python3", &script,
        ];
        argv.extend_from_slice(args);
        k.ctl_ok(&argv).trim().parse().expect("agent id")
    };
    let peer = spawn("peer", &["park"]);
    k.wait_for_line(peer, "ready");
    // The tour: files, an exec of /bin/echo, an api_call, a send to `peer`, signals.
    let id = spawn("tourist", &["tour", &peer.to_string()]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let suggested = k.work.join("tourist.md");
    let s = suggested.to_str().expect("utf-8");
    let out = k.ctl(&["policy", "suggest", "--agent", "tourist", "-o", s]);
    assert!(out.status.success(), "{:?}", text(&out));
    let page = std::fs::read_to_string(&suggested).expect("page");
    assert!(
        page.contains("commands: [\"/bin/echo\"]\n      args: [\"hi\"]"),
        "{page}"
    );
    assert!(page.contains("hosts: [\"127.0.0.1\"]"), "{page}");
    assert!(page.contains("peers: [\"peer\"]"), "{page}");
    assert!(
        !page.contains("\"/**\"") && !page.contains("\"/mem/**\""),
        "{page}"
    );
    let lint = k.ctl(&["policy", "lint", s, "--deny-warnings"]);
    assert!(lint.status.success(), "{:?}", text(&lint));
    let out = k.ctl(&[
        "replay",
        "what-if",
        "--policy",
        s,
        "--agent",
        &id.to_string(),
    ]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains(" decisions would change") && stdout.contains(", 0 decisions would change"),
        "{stdout}"
    );
}

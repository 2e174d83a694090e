//! The flight recorder for people (`agentctl recorder show|tail`), its filters, agent names
//! wherever `recorder` and `replay` take `--agent`, the versioned export schema, a closed
//! stdout (`| head -1`), and `recorder verify`'s exit codes — on logs written by real agents
//! through a real kernel.

use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use agentos_tests::{wait_until, write_policy, TestKernel};
use serde_json::Value;

const NO_SECRETS: &str = "  - name: no-secrets\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/working/secrets/**\"]\n";

/// The builder's script: an allowed write, a write the policy denies (let through in
/// permissive mode, a violation), a read.
const SCRIPT: [&str; 4] = [
    "script",
    "write:/mem/working/notes=hello\nworld",
    "write:/mem/working/secrets/key=hunter2",
    "read:/mem/working/notes",
];

/// A recorded run: two agents named `builder` (permissive), `checker` (strict, refused and
/// ended by SIGPOLICY), `net` (a TCP socket the sandbox refuses).
struct Run {
    k: TestKernel,
    old_builder: u64,
    builder: u64,
    checker: u64,
    net: u64,
}

fn a_run() -> Run {
    let k = TestKernel::start();
    let permissive = write_policy(&k.work, "perm", "permissive", &[], NO_SECRETS);
    let strict = write_policy(&k.work, "strict", "strict", &[], "");
    let old_builder = k.spawn_with(&permissive, &["--name", "builder"], &SCRIPT);
    assert_eq!(k.wait(old_builder)["exit"]["code"], 0);
    let builder = k.spawn_with(&permissive, &["--name", "builder"], &SCRIPT);
    assert_eq!(k.wait(builder)["exit"]["code"], 0);
    let checker = k.spawn_with(
        &strict,
        &["--name", "checker"],
        // Waits after the write: only the kernel's SIGPOLICY ends it.
        &["write", "/mem/other/x"],
    );
    assert_eq!(k.wait(checker)["exit"]["signal"], "SIGPOLICY");
    let net = k.spawn_with(&strict, &["--name", "net"], &["attack", "tcp"]);
    k.wait(net);
    wait_until("the sandbox refusal of net's socket in the log", || {
        k.records().iter().any(|r| {
            r.agent.map(|a| a.0) == Some(net)
                && matches!(&r.event, agentos_kernel::recorder::RecordEvent::SandboxDenied { syscall, .. } if syscall == "socket")
        })
    });
    Run {
        k,
        old_builder,
        builder,
        checker,
        net,
    }
}

/// `agentctl --state-dir … ARGS` with extra environment.
fn ctl_env(k: &TestKernel, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(&k.agentctl);
    c.arg("--state-dir").arg(&k.state_dir).args(args);
    for (n, v) in env {
        c.env(n, v);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// No character that acts on a terminal: ESC and other controls but `\n`, bidi and format
/// controls.
fn assert_inert(what: &str, s: &str) {
    if let Some(c) = s.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }) {
        panic!(
            "{what}: a raw U+{:04X} reaches the terminal:\n{}",
            c as u32,
            s.escape_debug()
        );
    }
}

/// `show --json` lines with the given filters.
fn json_lines(k: &TestKernel, args: &[&str]) -> Vec<Value> {
    let out = k.ctl_ok(&[&["recorder"][..], args, &["--json"]].concat());
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn recorder_show_reads_like_strace_with_local_time_names_and_whole_decisions() {
    let run = a_run();
    let k = &run.k;
    let show = ctl_env(k, &[("TZ", "UTC")], &["recorder", "show"]);
    assert!(show.status.success(), "{}", stderr(&show));
    let text = stdout(&show);
    assert_inert("recorder show", &text);
    // Not a TTY: no colour.
    assert!(!text.contains('\x1b'), "{text:?}");
    println!("{text}");
    let has = |needle: &str| {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    };
    // The violation: action, resource, payload preview, rule with file:line, flags, outcome.
    has(&format!(
        "builder#{} file_write /mem/working/secrets/key data=7B \"hunter2\" → DENY no-secrets (perm.md:",
        run.builder
    ));
    has(") [violation, permissive] = 7B written");
    has(&format!(
        "builder#{} file_write /mem/working/notes data=11B \"hello\\nworld\" → ALLOW working-rw (perm.md:",
        run.builder
    ));
    has(&format!(
        "builder#{} file_read /mem/working/notes → ALLOW working-ro (perm.md:",
        run.builder
    ));
    has("= 11B \"hello\\nworld\"");
    has(&format!(
        "checker#{} file_write /mem/other/x data=4B \"data\" → DENY default deny",
        run.checker
    ));
    has("[violation, strict] = PermissionDenied");
    has(&format!("checker#{} signal SIGPOLICY", run.checker));
    // The sandbox refusal, its socket decoded.
    has(&format!(
        "net#{} sandbox denied socket(AF_INET, SOCK_STREAM",
        run.net
    ));
    has(&format!("builder#{} exit code 0", run.builder));
    // Digests in hex, no byte arrays anywhere.
    has("(blake3 ");
    assert!(!text.contains("[104,"), "{text}");
    // Local time: with TZ=UTC each line starts with the UTC time of its record; in a zone
    // two hours east, two hours later.
    let export: Vec<Value> = k
        .ctl_ok(&["recorder", "export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let utc_time = |i: usize| export[i]["time"].as_str().unwrap()[11..23].to_string();
    for (i, line) in text.lines().enumerate() {
        assert!(
            line.starts_with(&format!("{} ", utc_time(i))),
            "line {i} `{line}` does not start with {}",
            utc_time(i)
        );
    }
    let east = ctl_env(k, &[("TZ", "XST-2")], &["recorder", "show"]);
    let first = stdout(&east).lines().next().unwrap().to_string();
    let ms = export[0]["wall_ms"].as_u64().unwrap();
    let s = (ms / 1000 + 7200) % 86400;
    let shifted = format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        (s % 3600) / 60,
        s % 60,
        ms % 1000
    );
    assert!(
        first.contains(&format!("{shifted} kernel")),
        "`{first}` should show {shifted}"
    );
}

#[test]
fn recorder_filters_denied_violations_kind_since_and_agent_names() {
    let run = a_run();
    let k = &run.k;
    let all = json_lines(k, &["show"]);
    // --denied: the strict refusal and the sandbox's, never the permissive violation.
    let denied = json_lines(k, &["show", "--denied"]);
    assert!(!denied.is_empty());
    assert!(denied.iter().all(|v| v["denied"] == true), "{denied:?}");
    assert!(denied
        .iter()
        .any(|v| v["agent"] == run.checker && v["kind"] == "syscall"));
    assert!(denied
        .iter()
        .any(|v| v["agent"] == run.net && v["kind"] == "sandbox_denied"));
    assert!(!denied.iter().any(|v| v["agent"] == run.builder));
    assert_eq!(
        denied.len(),
        all.iter().filter(|v| v["denied"] == true).count()
    );
    // --violations: both builders' secret writes and the checker's write.
    let violations = json_lines(k, &["show", "--violations"]);
    let agents: Vec<u64> = violations
        .iter()
        .map(|v| v["agent"].as_u64().unwrap())
        .collect();
    assert_eq!(agents, [run.old_builder, run.builder, run.checker]);
    assert!(violations.iter().all(|v| v["violation"] == true));
    // Both: either.
    let either = json_lines(k, &["show", "--denied", "--violations"]);
    assert_eq!(
        either.len(),
        all.iter()
            .filter(|v| v["denied"] == true || v["violation"] == true)
            .count()
    );
    // --kind, repeatable or comma-separated.
    let spawns = json_lines(k, &["show", "--kind", "spawn"]);
    assert_eq!(spawns.len(), 4);
    assert!(spawns.iter().all(|v| v["kind"] == "spawn"));
    let two = json_lines(k, &["show", "--kind", "spawn,exit"]);
    let two_b = json_lines(k, &["show", "--kind", "spawn", "--kind", "exit"]);
    assert_eq!(two, two_b);
    assert_eq!(two.len(), 8, "{two:?}");
    let bad = k.ctl(&["recorder", "show", "--kind", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("unknown record kind `nope`"));
    assert!(stderr(&bad).contains("sandbox_denied"), "{}", stderr(&bad));
    // --since with the others: every filter holds.
    let from = all.iter().find(|v| v["agent"] == run.builder).unwrap()["seq"]
        .as_u64()
        .unwrap();
    let since = json_lines(
        k,
        &["show", "--since", &from.to_string(), "--kind", "spawn"],
    );
    let ids: Vec<u64> = since.iter().map(|v| v["agent"].as_u64().unwrap()).collect();
    assert_eq!(ids, [run.builder, run.checker, run.net]);
    assert!(json_lines(k, &["show", "--since", "2999-01-01", "--denied"]).is_empty());

    // --agent NAME: the newest agent of that name, the ambiguity said on stderr.
    let by_name = k.ctl(&["recorder", "show", "--agent", "builder", "--json"]);
    assert!(by_name.status.success());
    let lines: Vec<Value> = stdout(&by_name)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 6);
    assert!(lines
        .iter()
        .all(|v| v["agent"] == run.builder && v["agent_name"] == "builder"));
    let note = stderr(&by_name);
    assert!(
        note.contains(&format!(
            "2 agents were named `builder` (ids {}, {}); using the newest, {}",
            run.old_builder, run.builder, run.builder
        )),
        "{note}"
    );
    assert_eq!(
        json_lines(k, &["show", "--agent", "checker"]),
        json_lines(k, &["show", "--agent", &run.checker.to_string()])
    );
    // tail too, and its last N count only that agent's records.
    let tail = json_lines(k, &["tail", "-n", "1", "--agent", "builder"]);
    assert_eq!(tail.len(), 1);
    assert_eq!(
        (tail[0]["agent"].as_u64(), tail[0]["kind"].as_str()),
        (Some(run.builder), Some("exit"))
    );
    // An unknown name: exit 4 and the names the log holds.
    let none = k.ctl(&["recorder", "show", "--agent", "nobody"]);
    assert_eq!(none.status.code(), Some(4));
    let err = stderr(&none);
    assert!(err.contains("no agent named `nobody`"), "{err}");
    assert!(err.contains("builder, checker, net"), "{err}");

    // replay what-if and replay run take names too.
    let strict = k.work.join("strict.md");
    let what_if = |agent: &str| {
        k.ctl_ok(&[
            "replay",
            "what-if",
            "--policy",
            strict.to_str().unwrap(),
            "--agent",
            agent,
            "--json",
        ])
    };
    let named = what_if("builder");
    assert_eq!(named, what_if(&run.builder.to_string()));
    let v: Value = serde_json::from_str(&named).unwrap();
    assert!(v["syscalls"].as_u64().unwrap() >= 3, "{v}");
    let mut args = vec![
        "replay".to_string(),
        "run".into(),
        "--agent".into(),
        "builder".into(),
        "--".into(),
        k.agent_bin.display().to_string(),
    ];
    args.extend(SCRIPT.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rerun = k.ctl(&args);
    assert!(
        rerun.status.success(),
        "replay run --agent builder: {}",
        stderr(&rerun)
    );
    assert!(
        stderr(&rerun).contains(&format!(
            "agent {}: 3 calls replayed, 0 divergences",
            run.builder
        )),
        "{}",
        stderr(&rerun)
    );
    let none = k.ctl(&["replay", "run", "--agent", "nobody", "--", "/bin/true"]);
    assert_eq!(none.status.code(), Some(4), "{}", stderr(&none));
    let none = k.ctl(&[
        "replay",
        "what-if",
        "--policy",
        strict.to_str().unwrap(),
        "--agent",
        "nobody",
    ]);
    assert_eq!(none.status.code(), Some(4), "{}", stderr(&none));
}

#[test]
fn recorder_follow_by_name_picks_up_a_newer_agent_of_that_name() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "p", "strict", &[], "");
    let mut tail = Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(&k.state_dir)
        .args([
            "recorder", "tail", "-f", "--agent", "later", "--kind", "exit",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let first = k.spawn_with(&policy, &["--name", "later"], &["echo"]);
    k.wait(first);
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        line.contains(&format!("later#{first} exit code 0")),
        "{line}"
    );
    let second = k.spawn_with(&policy, &["--name", "later"], &["echo"]);
    k.wait(second);
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        line.contains(&format!("later#{second} exit code 0")),
        "{line}"
    );
    let _ = tail.kill();
    let _ = tail.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut tail.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("no agent named `later` in the log yet"),
        "{err}"
    );
}

#[test]
fn recorder_show_escapes_what_an_agent_put_in_its_records() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "p", "permissive", &[], "");
    let hostile = "/mem/working/a\x1b[2Jb\u{202e}c\u{2066}d";
    let step = format!("write:{hostile}=\x1b]0;pwned\x07\u{202e}");
    let id = k.spawn_with(&policy, &["--name", "evil"], &["script", &step]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    for args in [
        &["recorder", "show"][..],
        &["recorder", "tail", "-n", "100"],
        &["recorder", "show", "--json"],
        &["recorder", "export"],
    ] {
        let out = k.ctl(args);
        assert!(out.status.success(), "{args:?}");
        assert_inert(&format!("{args:?}"), &stdout(&out));
        assert_inert(&format!("{args:?} stderr"), &stderr(&out));
    }
    let show = k.ctl_ok(&["recorder", "show", "--agent", "evil"]);
    assert!(
        show.contains(&format!(
            "evil#{id} file_write /mem/working/a\\x1b[2Jb\\u{{202e}}c\\u{{2066}}d data=13B \"\\x1b]0;pwned\\x07\\u{{202e}}\""
        )),
        "{show}"
    );
    // The JSON keeps the value, escaped the JSON way.
    let v = json_lines(&k, &["show", "--agent", "evil", "--kind", "syscall"]);
    assert_eq!(v[0]["event"]["Syscall"]["call"]["Write"]["path"], hostile);
}

/// Runs `script -qec CMD /dev/null` (a pseudo-terminal for agentctl's stdout); its output.
fn on_a_tty(k: &TestKernel, env: &[(&str, &str)], args: &str) -> String {
    let cmd = format!(
        "{} --state-dir {} {args}",
        k.agentctl.display(),
        k.state_dir.display()
    );
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
    for (n, v) in env {
        c.env(n, v);
    }
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn recorder_colours_only_a_terminal_and_honours_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "p", "strict", &[], "");
    let id = k.spawn_with(
        &policy,
        &["--name", "c\x1b[31mx"],
        &["script", "write:/x=1"],
    );
    k.wait(id);
    // A terminal: SGR colour codes, and only those (the agent's name is escaped).
    let tty = on_a_tty(&k, &[], "recorder show --agent 'c\x1b[31mx'");
    assert!(tty.contains("\x1b[1;31mDENY\x1b[0m"), "{tty:?}");
    assert!(tty.contains("c\\x1b[31mx#"), "{tty:?}");
    for seq in tty.split('\x1b').skip(1) {
        let code = seq.strip_prefix('[').and_then(|s| s.split_once('m'));
        assert!(
            code.is_some_and(|(c, _)| c.bytes().all(|b| b.is_ascii_digit() || b == b';')),
            "not an SGR code: {seq:?}"
        );
    }
    // NO_COLOR (non-empty): none, even on a terminal; an empty NO_COLOR does not count.
    let plain = on_a_tty(&k, &[("NO_COLOR", "1")], "recorder show");
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(plain.contains("DENY"));
    let empty = on_a_tty(&k, &[("NO_COLOR", "")], "recorder show");
    assert!(empty.contains("\x1b["), "{empty:?}");
    // Not a terminal: none, whatever NO_COLOR says.
    let piped = k.ctl_ok(&["recorder", "show"]);
    assert!(!piped.contains('\x1b'));
}

/// A pipe whose reading end is already closed: any write to it fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let (r, w) = rustix::pipe::pipe().unwrap();
    drop(r);
    w
}

/// Runs agentctl with stdout on a closed pipe; waits at most 20 s for it to end.
fn into_closed_pipe(k: &TestKernel, args: &[&str]) -> Output {
    let child = Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(&k.state_dir)
        .args(args)
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("agentctl {args:?} kept running with its reader gone");
        }
    }
}

#[test]
fn a_closed_stdout_ends_every_listing_quietly_with_exit_0() {
    let run = a_run();
    let k = &run.k;
    let id = run.builder.to_string();
    let policy = k.work.join("perm.md");
    for args in [
        &["recorder", "show"][..],
        &["recorder", "show", "--json"],
        &["recorder", "tail"],
        &["recorder", "export"],
        &["recorder", "verify"],
        &["recorder", "verify", "--json"],
        &["inspect", &id],
        &["inspect", &id, "--json"],
        &["ps"],
        &["ps", "--json"],
        &["logs", &id],
        &["kernel", "status"],
        &["policy", "lint", policy.to_str().unwrap()],
        // A follower notices its reader left though the log is quiet.
        &["recorder", "tail", "-f"],
    ] {
        let start = Instant::now();
        let out = into_closed_pipe(k, args);
        assert_eq!(
            (out.status.code(), stderr(&out).as_str()),
            (Some(0), ""),
            "agentctl {args:?} | (closed)"
        );
        println!("{args:?}: exit 0 in {:?}", start.elapsed());
    }
    // A real shell pipeline, `head -1` leaving after the first line.
    let perm = policy.clone();
    let quiet = k.spawn(&perm, &["park"]);
    k.wait_for_line(quiet, "ready");
    let sh = |cmd: &str| {
        Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {cmd}")])
            .env("AGENTCTL", &k.agentctl)
            .env("AGENTOS_STATE_DIR", &k.state_dir)
            .output()
            .unwrap()
    };
    for cmd in [
        "\"$AGENTCTL\" recorder show | head -1".to_string(),
        "\"$AGENTCTL\" inspect 1 | head -1".to_string(),
        "timeout 20 \"$AGENTCTL\" recorder tail -f -n 5 | head -1".to_string(),
        // A follower of a quiet agent: after its one line, nothing more would fail to write.
        format!("timeout 20 \"$AGENTCTL\" logs -f {quiet} | head -1"),
    ] {
        let out = sh(&cmd);
        assert_eq!(
            (
                out.status.code(),
                stdout(&out).lines().count(),
                stderr(&out)
            ),
            (Some(0), 1, String::new()),
            "{cmd}"
        );
    }
}

#[test]
fn recorder_export_schema_1_is_pinned() {
    let run = a_run();
    let k = &run.k;
    let export: Vec<Value> = k
        .ctl_ok(&["recorder", "export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every line: exactly these fields, of these types (docs/recorder.md, schema 1).
    let fields = [
        "agent",
        "agent_name",
        "denied",
        "event",
        "kind",
        "mono_us",
        "schema",
        "seq",
        "time",
        "violation",
        "wall_ms",
    ];
    for (i, v) in export.iter().enumerate() {
        let o = v.as_object().unwrap();
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, fields, "line {i}: {v}");
        assert_eq!(v["schema"], 1);
        assert_eq!(v["seq"], i as u64);
        assert!(v["wall_ms"].is_u64() && v["mono_us"].is_u64());
        let t = v["time"].as_str().unwrap();
        assert!(
            t.len() == 24 && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
        assert!(v["agent"].is_u64() || v["agent"].is_null());
        assert!(v["agent_name"].is_string() || v["agent_name"].is_null());
        assert!(v["denied"].is_boolean() && v["violation"].is_boolean());
        // The event: one key, the variant, whose name matches the kind.
        let ev = v["event"].as_object().unwrap();
        assert_eq!(ev.len(), 1, "{v}");
        let variant = ev.keys().next().unwrap();
        let snake: String = variant
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let lower = c.to_ascii_lowercase();
                if c.is_ascii_uppercase() && i > 0 {
                    vec!['_', lower]
                } else {
                    vec![lower]
                }
            })
            .collect();
        assert_eq!(v["kind"], snake, "{v}");
    }
    // One whole record, pinned: the permissive violation.
    let secret = export
        .iter()
        .find(|v| {
            v["agent"] == run.builder
                && v["event"]["Syscall"]["call"]["Write"]["path"] == "/mem/working/secrets/key"
        })
        .unwrap();
    let policy = k.work.join("perm.md");
    let mut pinned = secret.clone();
    for volatile in ["seq", "wall_ms", "time", "mono_us"] {
        pinned.as_object_mut().unwrap().remove(volatile);
    }
    pinned["event"]["Syscall"]
        .as_object_mut()
        .unwrap()
        .remove("duration_us");
    assert_eq!(
        pinned,
        serde_json::json!({
            "schema": 1,
            "agent": run.builder,
            "agent_name": "builder",
            "kind": "syscall",
            "denied": false,
            "violation": true,
            "event": {"Syscall": {
                "id": 2,
                "call": {"Write": {"path": "/mem/working/secrets/key", "data": b"hunter2".to_vec(), "mode": "Truncate"}},
                "decision": {
                    "allowed": true,
                    "policy_allowed": false,
                    "rule": format!("no-secrets ({}:18)", policy.display()),
                    "reason": "file_write on /mem/working/secrets/key is denied",
                    "violation": true,
                    "mode": "permissive",
                },
                "result": {"Ok": {"Written": {"bytes": 7}}},
            }},
        })
    );
    // show --json and tail --json speak the same schema.
    let show = json_lines(k, &["show"]);
    assert_eq!(show, export);
    let tail = json_lines(k, &["tail", "-n", "2"]);
    assert_eq!(tail, export[export.len() - 2..]);
}

/// Spawns an agent and returns verify's (code, report) right after, retrying until the log
/// has records after its last checkpoint (the kernel seals within a second of activity).
fn verify_with_unsealed_tail(k: &TestKernel, policy: &std::path::Path) -> (i32, Value) {
    for _ in 0..20 {
        let id = k.spawn(policy, &["echo"]);
        k.wait(id);
        let (code, v) = k.verify();
        if v["unsealed"].as_u64().unwrap_or(0) > 0 {
            return (code, v);
        }
        assert_eq!((code, &v["status"]), (0, &Value::from("ok")), "{v:#}");
    }
    panic!("never caught an unsealed tail");
}

#[test]
fn recorder_verify_exit_codes_do_not_collide_with_denied() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "p", "strict", &[], "");
    // Records after the last checkpoint while their kernel runs: normal, exit 0, said so.
    let (code, v) = verify_with_unsealed_tail(&k, &policy);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "ok_kernel_running", "{v:#}");
    assert_eq!(v["kernel_running"], true);
    // The same log after a kernel died before sealing it: exit 5, its own code (not 3,
    // denied; not 4, not found), and what to do.
    let mut caught = None;
    for _ in 0..20 {
        let id = k.spawn(&policy, &["echo"]);
        k.wait(id);
        k.kill_kernel();
        let (code, v) = k.verify();
        if v["unsealed"].as_u64().unwrap_or(0) > 0 || !v["torn_tail"].is_null() {
            caught = Some((code, v));
            break;
        }
        k.restart(&[]);
    }
    let (code, v) = caught.expect("never killed the kernel before it sealed");
    assert_eq!(code, 5, "{v:#}");
    assert_eq!(
        (v["status"].as_str(), v["kernel_running"].as_bool()),
        (Some("unsealed_tail"), Some(false))
    );
    let human = k.ctl(&["recorder", "verify"]);
    assert_eq!(human.status.code(), Some(5));
    assert!(
        stdout(&human).contains("no kernel is running")
            && stdout(&human).contains("`agentctl kernel start` recovers and seals"),
        "{}",
        stdout(&human)
    );
    // A kernel start recovers and seals it.
    k.restart(&[]);
    k.ctl_ok(&["kernel", "stop"]);
    let (code, v) = k.verify();
    assert_eq!((code, v["status"].as_str()), (0, Some("ok")), "{v:#}");
    // The help says it.
    let help = k.ctl_ok(&["recorder", "verify", "--help"]);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("5 unsealed tail with no kernel running"),
        "{help}"
    );
}

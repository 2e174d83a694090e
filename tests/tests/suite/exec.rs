//! `Exec` and `Call` from real jailed agents: each tool runs in a jail of its own, with the
//! workspace mounted per policy, no network, a timeout that kills its whole tree, capped
//! output; `Call` is routed to jailed tool providers that honour the deciding rule's
//! constraints.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::{Reply, Syscall};
use agentos_tests::{make_db, providers_dir, wait_until, write_policy, TestKernel};

/// An allow rule for `code_execution` of `commands`.
fn exec_rule(commands: &[&str]) -> String {
    let list: Vec<String> = commands.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "  - name: tools\n    action: code_execution\n    effect: allow\n    constraints:\n      commands: [{}]\n",
        list.join(", ")
    )
}

/// An allow rule for `file_read` of the whole workspace (a tool sees only what the agent may
/// read).
const READ_WS: &str = "  - name: ws-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n";

/// A workspace dir (world-readable, so an unprivileged kernel can use it) holding `f`.
fn workspace(k: &TestKernel, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let ws = k.work.join(name);
    std::fs::create_dir_all(&ws).expect("mkdir workspace");
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::write(ws.join("f"), "hello workspace\n").expect("write f");
    ws
}

/// Spawns the test agent with `--workspace ws` (if any) and returns its id.
fn spawn(k: &TestKernel, policy: &Path, ws: Option<&Path>, args: &[&str]) -> u64 {
    let mut a = vec!["spawn", "--policy", policy.to_str().expect("utf-8")];
    if let Some(ws) = ws {
        a.extend(["--workspace", ws.to_str().expect("utf-8")]);
    }
    a.push("--");
    a.push(k.agent_bin.to_str().expect("utf-8"));
    a.extend_from_slice(args);
    k.ctl_ok(&a).trim().parse().expect("agent id")
}

/// Runs one `exec` agent to its end and returns its answer line.
fn exec_line(k: &TestKernel, policy: &Path, ws: Option<&Path>, args: &[&str]) -> String {
    let mut a = vec!["exec"];
    a.extend_from_slice(args);
    let id = spawn(k, policy, ws, &a);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    log.lines()
        .find(|l| l.starts_with("exec: ") || l.starts_with("refused: "))
        .unwrap_or_else(|| panic!("no answer in the log:\n{log}"))
        .to_string()
}

#[test]
fn exec_reads_a_read_only_workspace_but_cannot_write_it() {
    let k = TestKernel::start();
    let ws = workspace(&k, "ws-ro");
    let policy = write_policy(
        &k.work,
        "exec-ro",
        "strict",
        &[],
        &format!("{READ_WS}{}", exec_rule(&["/bin/cat", "/bin/sh", "cat"])),
    );
    let read = exec_line(
        &k,
        &policy,
        Some(&ws),
        &["-", "-", "/bin/cat", "/workspace/f"],
    );
    assert!(
        read.starts_with("exec: status=0 timed_out=false truncated=false")
            && read.contains("stdout=\"hello workspace\\n\""),
        "{read}"
    );
    // A bare name resolves on the jail's PATH; the cwd defaults to /workspace; stdin is fed.
    let bare = exec_line(&k, &policy, Some(&ws), &["-", "-", "cat", "f", "-"]);
    assert!(
        bare.contains("status=0") && bare.contains("stdout=\"hello workspace\\nstdin-bytes\""),
        "{bare}"
    );
    let write = exec_line(
        &k,
        &policy,
        Some(&ws),
        &["-", "-", "/bin/sh", "-c", "echo x > /workspace/f"],
    );
    assert!(!write.contains("status=0 "), "{write}");
    assert!(write.contains("Read-only file system"), "{write}");
    assert_eq!(
        std::fs::read_to_string(ws.join("f")).expect("read f"),
        "hello workspace\n"
    );
    // A cwd outside /workspace is refused; one inside it is used.
    let outside = exec_line(
        &k,
        &policy,
        Some(&ws),
        &["-", "/workspace/../etc", "/bin/cat", "f"],
    );
    assert!(outside.starts_with("refused: InvalidArgument"), "{outside}");
    std::fs::create_dir_all(ws.join("sub")).expect("mkdir sub");
    std::fs::write(ws.join("sub/g"), "in sub\n").expect("write g");
    let inside = exec_line(
        &k,
        &policy,
        Some(&ws),
        &["-", "/workspace/sub", "/bin/cat", "g"],
    );
    assert!(inside.contains("stdout=\"in sub\\n\""), "{inside}");
    // No new file either.
    let create = exec_line(
        &k,
        &policy,
        Some(&ws),
        &["-", "-", "/bin/sh", "-c", "echo x > /workspace/new"],
    );
    assert!(!create.contains("status=0 "), "{create}");
    assert!(!ws.join("new").exists());
}

#[test]
fn exec_writes_the_workspace_when_the_policy_allows_file_write_there() {
    let k = TestKernel::start();
    let ws = workspace(&k, "ws-rw");
    let rules = format!(
        "{READ_WS}{}  - name: ws-write\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n",
        exec_rule(&["/bin/sh"])
    );
    let policy = write_policy(&k.work, "exec-rw", "strict", &[], &rules);
    // Besides the write: a directory made, a file in it touched, its mode changed, both
    // removed (the path writes the kernel looks at).
    let script = "set -e; mkdir /workspace/d; touch /workspace/d/x; chmod 600 /workspace/d/x; \
        truncate -s 1 /workspace/d/x; rm /workspace/d/x; rmdir /workspace/d; \
        echo changed > /workspace/f";
    let line = exec_line(&k, &policy, Some(&ws), &["-", "-", "/bin/sh", "-c", script]);
    assert!(line.starts_with("exec: status=0 "), "{line}");
    assert!(!ws.join("d").exists());
    assert_eq!(
        std::fs::read_to_string(ws.join("f")).expect("read f"),
        "changed\n"
    );
    // Writing a workspace the jail binds writable is not an attempt on the sandbox.
    let accesses: Vec<_> = k
        .records()
        .into_iter()
        .filter(|r| matches!(r.event, RecordEvent::SandboxAccess { .. }))
        .collect();
    assert!(accesses.is_empty(), "{accesses:?}");
}

#[test]
fn a_denied_command_is_refused_and_kills_in_strict_mode() {
    let k = TestKernel::start();
    let policy = write_policy(
        &k.work,
        "exec-deny",
        "strict",
        &[],
        &exec_rule(&["/bin/cat"]),
    );
    let id = spawn(&k, &policy, None, &["exec-wait", "-", "-", "/bin/ls", "/"]);
    // SIGPOLICY follows the answer at once: the agent may die before it prints the refusal,
    // so the recorder, not its log, is the witness (a printed refusal must be the right one).
    let last = k.wait(id);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    if let Some(line) = log.lines().find(|l| l.starts_with("refused: ")) {
        assert!(line.starts_with("refused: PermissionDenied"), "{line}");
    }
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}");
    // The refusal is recorded with the command line as the resource.
    let recorded = k.records().into_iter().any(|r| {
        r.agent.map(|a| a.0) == Some(id)
            && matches!(&r.event, RecordEvent::Syscall { call: Syscall::Exec { argv, .. }, decision, .. }
                if argv[0] == "/bin/ls" && !decision.allowed)
    });
    assert!(recorded);

    // A bare name is matched as written: `cat` is not `/bin/cat`.
    let bare = spawn(
        &k,
        &policy,
        None,
        &["exec-wait", "-", "-", "cat", "/etc/hostname"],
    );
    assert_eq!(k.wait(bare)["exit"]["signal"], "SIGPOLICY");
    let refused = k.records().into_iter().any(|r| {
        r.agent.map(|a| a.0) == Some(bare)
            && matches!(&r.event, RecordEvent::Syscall { call: Syscall::Exec { argv, .. }, decision, .. }
                if argv[0] == "cat" && !decision.allowed)
    });
    assert!(refused, "the bare `cat` was not recorded as refused");
}

#[test]
fn an_agent_runs_at_most_four_tools_at_once() {
    let k = TestKernel::start();
    let policy = write_policy(
        &k.work,
        "exec-burst",
        "strict",
        &[],
        &exec_rule(&["/bin/sleep"]),
    );
    let id = k.spawn(&policy, &["exec-burst", "6"]);
    // While its four tools run, an agent fanning out holds four scratch mount points on the
    // host, all empty (each tool's scratch is a tmpfs inside its jail), and the kernel keeps
    // one init cloned ahead, not one per call.
    wait_until("four tools to run", || {
        pids_running(&["/bin/sleep", "5"]).len() == 4
    });
    let dir = k.state_dir.join("agents").join(id.to_string());
    let tool_dirs = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("tool-"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    assert_eq!(tool_dirs(), ["tool-0", "tool-1", "tool-2", "tool-3"]);
    for name in tool_dirs() {
        let entries = std::fs::read_dir(dir.join(&name)).unwrap().count();
        assert_eq!(entries, 0, "{name} holds something on the host");
    }
    let agent_init = k.launcher_pid(id);
    assert_eq!(
        agentos_tests::waiting_inits(k.kernel_pid(), &[agent_init]).len(),
        1,
        "inits waiting beside four tools"
    );
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(log.contains("exec-burst ok=4 busy=2 other=0"), "{log}");
    wait_until("the tool slots' dirs to go with the agent", || {
        tool_dirs().is_empty()
    });
}

/// Host pids of processes whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// Starts an agent whose `Exec` (`mode`, with `timeout_ms`) runs a tool of two sleeps (one in
/// the background), and waits until both run. Returns the agent and the sleeps' duration,
/// one no other process on the host uses (so a /proc scan finds only this tree).
fn sleeping_tool(k: &TestKernel, mode: &str, timeout_ms: &str, base: u32) -> (u64, String) {
    let policy = write_policy(&k.work, mode, "strict", &[], &exec_rule(&["/bin/sh"]));
    let marker = format!("{base}.{}", std::process::id());
    let script = format!("sleep {marker} & sleep {marker}");
    let id = spawn(
        k,
        &policy,
        None,
        &[mode, timeout_ms, "-", "/bin/sh", "-c", &script],
    );
    wait_until("both sleeps of the tool to run", || {
        pids_running(&["sleep", &marker]).len() == 2
    });
    (id, marker)
}

#[test]
fn an_exec_past_its_timeout_is_killed_with_its_whole_tree() {
    let k = TestKernel::start();
    let (id, marker) = sleeping_tool(&k, "exec", "1500", 100);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(
        log.contains("exec: status=137 timed_out=true truncated=false"),
        "{log}"
    );
    // The answer came only after the tool's pid namespace was empty: nothing is left.
    assert_eq!(pids_running(&["sleep", &marker]), Vec::<u32>::new());
    // The duration is recorded with the syscall.
    let ms = k.records().into_iter().find_map(|r| match r.event {
        RecordEvent::Syscall {
            call: Syscall::Exec { .. },
            result: Ok(Reply::Exec(o)),
            ..
        } if r.agent.map(|a| a.0) == Some(id) => Some(o.duration_ms),
        _ => None,
    });
    assert!(ms.is_some_and(|ms| (1500..10_000).contains(&ms)), "{ms:?}");
}

#[test]
fn a_tool_does_not_outlive_its_agent() {
    let k = TestKernel::start();
    let (id, marker) = sleeping_tool(&k, "exec-wait", "60000", 200);
    k.ctl_ok(&["kill", &id.to_string()]);
    assert_eq!(k.wait(id)["exit"]["signal"], "SIGKILL");
    wait_until("the tool's tree to be gone", || {
        pids_running(&["sleep", &marker]).is_empty()
    });
    // The Exec is answered (Interrupted) and recorded even though its agent is gone.
    wait_until("the interrupted Exec to be recorded", || {
        k.records().into_iter().any(|r| {
            r.agent.map(|a| a.0) == Some(id)
                && matches!(&r.event, RecordEvent::Syscall { call: Syscall::Exec { .. }, result: Err(e), .. }
                    if e.kind() == "Interrupted")
        })
    });
}

#[test]
fn exec_output_is_capped_at_one_mib() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "exec-cap", "strict", &[], &exec_rule(&["/bin/sh"]));
    let line = exec_line(
        &k,
        &policy,
        None,
        &[
            "-",
            "-",
            "/bin/sh",
            "-c",
            "head -c 3000000 /dev/zero; echo done >&2",
        ],
    );
    assert!(
        line.starts_with("exec: status=0 timed_out=false truncated=true stdout_len=1048576 "),
        "{line}"
    );
    assert!(line.ends_with("stderr=\"done\\n\""), "{line}");
}

#[test]
fn an_exec_tool_has_no_network() {
    let k = TestKernel::start();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let policy = write_policy(
        &k.work,
        "exec-net",
        "strict",
        &[],
        &exec_rule(&["/usr/bin/python3"]),
    );
    let code = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n    print('connected')\nexcept OSError as e:\n    print('refused', e.errno)\n"
    );
    let line = exec_line(
        &k,
        &policy,
        None,
        &["-", "-", "/usr/bin/python3", "-I", "-c", &code],
    );
    assert!(line.starts_with("exec: status=0 "), "{line}");
    assert!(line.contains("stdout=\"refused 1\\n\""), "{line}");
    // Nothing reached the host's listener.
    assert!(listener.accept().is_err());
    // The tool's denied socket() is recorded under its agent, like the agent's own denials.
    let denied = k.records().into_iter().any(|r| {
        matches!(&r.event, RecordEvent::SandboxDenied { syscall, args, .. }
            if syscall == "socket" && args[0] == libc::AF_INET as u64)
    });
    assert!(denied, "no recorded socket(AF_INET) denial");
}

/// Serves HTTP on 127.0.0.1 from a thread: every request is answered `hello from <path>`.
fn http_server() -> u16 {
    http_server_logged().0
}

/// [`http_server`], with the paths requested so far; `/redirect` answers a 302 to
/// `http://localhost:<port>/elsewhere`.
fn http_server_logged() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            log.lock().expect("log").push(path.clone());
            let _ = if path == "/redirect" {
                write!(
                    conn,
                    "HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            } else {
                let body = format!("hello from {path}");
                write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
        }
    });
    (port, seen)
}

/// Runs a `call` agent and returns its one answer line (`answer: …` or `refused: …`).
fn call_line(k: &TestKernel, policy: &Path, action: &str, params: &str) -> (u64, String) {
    let id = k.spawn(policy, &["call", action, params]);
    let line = k.wait_for_line(id, "");
    (id, line)
}

#[test]
fn api_call_reaches_an_allowed_loopback_host_and_not_another() {
    let port = http_server();
    let fetch = format!(
        "api_call={}/http_fetch.py,network",
        providers_dir().display()
    );
    let k = TestKernel::start_with(false, &["--provider", &fetch]);
    let rules = "  - name: api\n    action: api_call\n    effect: allow\n    constraints:\n      hosts: [\"127.0.0.1\"]\n  - name: mail\n    action: send_email\n    effect: allow\n";
    let policy = write_policy(&k.work, "api", "strict", &[], rules);
    let url = format!("http://127.0.0.1:{port}/data");
    let (_, line) = call_line(&k, &policy, "api_call", &format!(r#"{{"url":"{url}"}}"#));
    assert!(line.starts_with("answer: CallResult"), "{line}");
    assert!(line.contains(r#"\"body\":\"hello from /data\""#), "{line}");
    assert!(line.contains(r#"\"status\":200"#), "{line}");

    // Another host (the same server, named differently) is refused by the policy, in strict
    // mode with SIGPOLICY, and the provider never runs.
    let other = format!(r#"{{"url":"http://localhost:{port}/data"}}"#);
    let (id, line) = call_line(&k, &policy, "api_call", &other);
    assert!(line.starts_with("refused: PermissionDenied"), "{line}");
    assert!(line.contains("localhost"), "{line}");
    assert_eq!(k.wait(id)["exit"]["signal"], "SIGPOLICY");

    // An allowed action without a provider names the flag to fix it.
    let (_, line) = call_line(&k, &policy, "send_email", r#"{"to":"a@example.com"}"#);
    assert!(line.starts_with("refused: Unsupported"), "{line}");
    assert!(line.contains("--provider send_email=PROGRAM"), "{line}");
}

#[test]
fn the_http_provider_refuses_a_redirect_to_another_host() {
    let (port, seen) = http_server_logged();
    let fetch = format!(
        "api_call={}/http_fetch.py,network",
        providers_dir().display()
    );
    let k = TestKernel::start_with(false, &["--provider", &fetch]);
    let rules = "  - name: api\n    action: api_call\n    effect: allow\n    constraints:\n      hosts: [\"127.0.0.1\"]\n";
    let policy = write_policy(&k.work, "api-redirect", "strict", &[], rules);
    // The kernel allows the first URL; its answer redirects to `localhost`, outside `hosts`.
    let url = format!(r#"{{"url":"http://127.0.0.1:{port}/redirect"}}"#);
    let (_, line) = call_line(&k, &policy, "api_call", &url);
    assert!(line.starts_with("refused: PermissionDenied"), "{line}");
    assert!(
        line.contains("refused by the tool provider for api_call"),
        "{line}"
    );
    assert!(line.contains("localhost"), "{line}");
    assert_eq!(*seen.lock().expect("log"), vec!["/redirect".to_string()]);
}

/// A dir holding `app.db` (table `t` with `one`) and a kernel whose `database_query` provider
/// is the shipped SQLite tool on it (`rw=` the dir, for its journal).
fn kernel_with_a_database() -> (tempfile::TempDir, PathBuf, TestKernel) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = std::fs::canonicalize(dir.path()).expect("canonical");
    let db = make_db(&dir_path);
    let provider = format!(
        "database_query={}/sqlite_query.py,rw={},arg={}",
        providers_dir().display(),
        dir_path.display(),
        db.display()
    );
    let k = TestKernel::start_with(false, &["--provider", &provider]);
    (dir, db, k)
}

#[test]
fn database_query_under_read_only_reads_but_never_writes() {
    let (dir, db, k) = kernel_with_a_database();
    let dir_path = dir.path();
    let before = std::fs::read(&db).expect("read db");
    let rules =
        "  - name: db-read\n    action: database_query\n    effect: allow\n    mode: read_only\n";
    let policy = write_policy(&k.work, "db", "strict", &[], rules);
    let (_, line) = call_line(
        &k,
        &policy,
        "database_query",
        r#"{"query":"SELECT x FROM t"}"#,
    );
    assert!(line.starts_with("answer: CallResult"), "{line}");
    assert!(line.contains(r#"\"rows\":[[\"one\"]]"#), "{line}");

    for write in [
        "INSERT INTO t VALUES ('two')",
        "DROP TABLE t",
        "CREATE TABLE u(y)",
    ] {
        let params = format!(r#"{{"query":"{write}"}}"#);
        let (_, line) = call_line(&k, &policy, "database_query", &params);
        assert!(
            line.starts_with("refused: PermissionDenied"),
            "{write}: {line}"
        );
        assert!(line.contains("read_only"), "{line}");
    }
    // Byte for byte the same database, and no journal left beside it.
    assert_eq!(std::fs::read(&db).expect("read db"), before);
    let names: Vec<_> = std::fs::read_dir(dir_path)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("app.db")]);
}

#[test]
fn database_query_under_read_write_writes() {
    let (_dir, _db, k) = kernel_with_a_database();
    let rules =
        "  - name: db\n    action: database_query\n    effect: allow\n    mode: read_write\n    constraints:\n      deny_patterns: [\"(?i)drop\"]\n";
    let policy = write_policy(&k.work, "db-rw", "strict", &[], rules);
    let (_, line) = call_line(
        &k,
        &policy,
        "database_query",
        r#"{"query":"INSERT INTO t VALUES ('two')"}"#,
    );
    assert!(line.starts_with("answer: CallResult"), "{line}");
    let (_, line) = call_line(
        &k,
        &policy,
        "database_query",
        r#"{"query":"SELECT count(*) FROM t"}"#,
    );
    assert!(line.contains(r#"\"rows\":[[2]]"#), "{line}");
    // deny_patterns see the query itself.
    let (_, line) = call_line(&k, &policy, "database_query", r#"{"query":"DROP TABLE t"}"#);
    assert!(line.starts_with("refused: PermissionDenied"), "{line}");
}

#[test]
fn a_bad_provider_flag_refuses_the_kernel_start() {
    let k = TestKernel::start();
    let state = k.work.join("other-state");
    let out = std::process::Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(&state)
        .args([
            "kernel",
            "start",
            "--provider",
            "api_call=/nonexistent/fetch.py",
        ])
        .output()
        .expect("agentctl");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--provider") && err.contains("/nonexistent/fetch.py"),
        "{err}"
    );
    assert!(!state.join("kernel.sock").exists());
}

/// The answers of a `script` agent's steps (`step N STEP: ok ANSWER` → `ANSWER`), in order;
/// the agent must have finished its script.
fn script_answers(k: &TestKernel, policy: &Path, steps: &[&str]) -> Vec<String> {
    let mut args = vec!["script"];
    args.extend_from_slice(steps);
    let id = spawn(k, policy, None, &args);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.logs(id);
    assert!(log.contains("script done"), "{log}");
    log.lines()
        .filter(|l| l.starts_with("step "))
        .map(|l| match l.split_once(": ok ") {
            Some((_, answer)) => answer.to_string(),
            None => panic!("a step failed: {l}\n{log}"),
        })
        .collect()
}

#[test]
fn a_tool_leaves_nothing_for_the_next_and_cannot_touch_its_jailer() {
    let k = TestKernel::start();
    let policy = write_policy(
        &k.work,
        "exec-next",
        "strict",
        &[],
        &exec_rule(&["/bin/sh"]),
    );
    let marker = format!("300.{}", std::process::id());
    let leave =
        format!("sh:echo secret > left-behind; sleep {marker} </dev/null >/dev/null 2>&1 & pwd");
    let answers = script_answers(
        &k,
        &policy,
        &[
            // A file in its scratch and a daemon, left behind.
            &leave,
            // The next tool: an empty scratch of its own, no trace of the last one's.
            "sh:ls -A; echo next; ls -A ..; pwd; ls /proc | grep -c '^[0-9]'",
            // Its descriptors: the three pipes, no socket to the kernel (its stdin is the
            // pipe the launcher took from its report socket, not the socket).
            "sh:cd /proc/self/fd && ls && readlink 0 1 2",
            // Its jailer (pid 1 of its namespace) shrugs off its signals; nothing else of
            // the host is there to signal.
            "sh:kill -KILL 1; kill -STOP 1; kill -KILL -1; echo alive",
            "sh:echo still works",
        ],
    );
    assert_eq!(answers.len(), 5, "{answers:#?}");
    let first = answers[0]
        .strip_prefix("status=0 stdout=")
        .unwrap_or_else(|| panic!("{answers:#?}"));
    assert!(first.contains("/tool-"), "{answers:#?}");
    // The daemon went with its tool, before the answer.
    assert_eq!(pids_running(&["sleep", &marker]), Vec::<u32>::new());
    let next: Vec<&str> = answers[1]
        .strip_prefix("status=0 stdout=")
        .unwrap_or_else(|| panic!("{answers:#?}"))
        .split('|')
        .collect();
    // No file in its scratch (a fresh tmpfs on its slot's mount point, the one the last tool
    // had: the slot is free again); beside its scratch, only its own.
    assert_eq!(next.len(), 4, "{answers:#?}");
    let own = next[2].rsplit('/').next().unwrap_or_default();
    assert_eq!(next[..3], ["next", own, next[2]], "{answers:#?}");
    assert!(own.starts_with("tool-"), "{answers:#?}");
    // The processes it sees: its init, its shell and the pipeline (ls, grep); no sleep.
    let seen: u32 = next[3].parse().expect("a count");
    assert!(seen <= 4, "{answers:#?}");
    let fds = answers[2]
        .strip_prefix("status=0 stdout=0|1|2|pipe:[")
        .unwrap_or_else(|| panic!("{answers:#?}"));
    assert_eq!(fds.matches("pipe:[").count(), 2, "{answers:#?}");
    assert!(!answers[2].contains("socket"), "{answers:#?}");
    assert_eq!(answers[3], "status=0 stdout=alive", "{answers:#?}");
    assert_eq!(answers[4], "status=0 stdout=still works", "{answers:#?}");
    // On the host the slot's directory was only a mount point: the file the first tool left
    // is not in it, and it is gone with the agent.
    let first_dir = PathBuf::from(first);
    assert!(
        !first_dir.join("left-behind").exists(),
        "{}",
        first_dir.display()
    );
    wait_until("the tool slots' dirs to be removed with the agent", || {
        !first_dir.exists()
    });
}

#[test]
fn a_tool_launcher_without_its_stdin_on_the_socket_fails_closed() {
    use std::os::unix::net::UnixStream;
    use std::process::{Command, Stdio};
    // The kernel queues the tool's stdin pipe on the report socket before it starts the
    // launcher; a launcher that finds nothing there refuses to build the jail.
    let (kernel_end, launcher_end) = UnixStream::pair().expect("socketpair");
    let out = Command::new(agentos_tests::binary("agentos-launch"))
        .env_clear()
        .env("AGENTOS_LAUNCH_AGENT_FD_ON_STDIN", "1")
        .env("AGENTOS_LAUNCH_TOOL_STDIN_ON_SOCKET", "1")
        .env("AGENTOS_LAUNCH_SPEC", "{}")
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(launcher_end)))
        .output()
        .expect("run agentos-launch");
    drop(kernel_end);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("agentos-launch: take the tool's stdin from the report socket: "),
        "{stderr}"
    );
}

/// The answer lines (`pair a: …`, `pair b: …`) of an agent running two `Exec`s at once.
fn exec_pair(k: &TestKernel, policy: &Path, a: &[&str], b: &[&str]) -> (String, String) {
    let mut args = vec!["exec-pair"];
    args.extend_from_slice(a);
    args.push("--");
    args.extend_from_slice(b);
    let id = spawn(k, policy, None, &args);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.logs(id);
    let line = |p: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(p))
            .unwrap_or_else(|| panic!("no `{p}` in the log:\n{log}"))
            .to_string()
    };
    (line("pair a: "), line("pair b: "))
}

/// Tool a of [`two_tools_of_one_agent_running_at_once_cannot_talk`]: tries IP sockets (TCP,
/// UDP, v4 and v6), then listens on abstract unix socket NAME for 6 s.
const LISTENER: &str = r#"
import socket, sys
r = []
for fam, typ in [(socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM),
                 (socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_INET6, socket.SOCK_DGRAM)]:
    try:
        socket.socket(fam, typ)
        r.append('ip-open')
    except OSError as e:
        r.append('ip-refused-%d' % e.errno)
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind('\0' + sys.argv[1])
u.listen(1)
u.settimeout(6)
try:
    u.accept()
    r.append('accepted')
except OSError:
    r.append('nobody')
print(' '.join(r))
"#;

/// Tool b: connects to abstract unix socket NAME, again and again for 4 s (or, with a second
/// argument, listens on it itself first: the positive control).
const CONNECTOR: &str = r#"
import socket, sys, time
if len(sys.argv) > 2:
    own = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    own.bind('\0' + sys.argv[1])
    own.listen(1)
end = time.monotonic() + 4
got = 'never'
while time.monotonic() < end:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect('\0' + sys.argv[1])
        got = 'connected'
        break
    except OSError as e:
        got = 'refused-%d' % e.errno
    finally:
        c.close()
    time.sleep(0.05)
print(got)
"#;

#[test]
fn two_tools_of_one_agent_running_at_once_cannot_talk() {
    let k = TestKernel::start();
    let policy = write_policy(
        &k.work,
        "exec-pair",
        "strict",
        &[],
        &exec_rule(&["/usr/bin/python3"]),
    );
    let name = format!("agentos-pair-{}", std::process::id());
    // The control: within one tool the abstract socket works, so a refusal below is the
    // jail's, not a broken script's.
    let alone = exec_line(
        &k,
        &policy,
        None,
        &[
            "-",
            "-",
            "/usr/bin/python3",
            "-I",
            "-c",
            CONNECTOR,
            &name,
            "own",
        ],
    );
    assert!(alone.contains("stdout=\"connected\\n\""), "{alone}");
    // Two tools of one agent at once: a listens, b keeps trying to reach it (b's 4 s lie
    // inside a's 6 s, and both were asked for together). Each has its own network
    // namespace, so no abstract name of a's exists for b; no IP socket can even be opened.
    let (a, b) = exec_pair(
        &k,
        &policy,
        &["/usr/bin/python3", "-I", "-c", LISTENER, &name],
        &["/usr/bin/python3", "-I", "-c", CONNECTOR, &name],
    );
    let refused = format!("ip-refused-{}", libc::EPERM);
    assert_eq!(
        a,
        format!("status=0 stdout={refused} {refused} {refused} {refused} nobody"),
        "{a} / {b}"
    );
    assert_eq!(
        b,
        format!("status=0 stdout=refused-{}", libc::ECONNREFUSED),
        "{a} / {b}"
    );
    // They did run at once: each Exec took its whole wait.
    let durations: Vec<u64> = k
        .records()
        .into_iter()
        .filter_map(|r| match r.event {
            RecordEvent::Syscall {
                call: Syscall::Exec { argv, .. },
                result: Ok(Reply::Exec(o)),
                ..
            } if argv.iter().any(|a| a == &name) && argv.len() == 5 => Some(o.duration_ms),
            _ => None,
        })
        .collect();
    assert_eq!(durations.len(), 2, "{durations:?}");
    assert!(durations.iter().all(|&ms| ms >= 3_900), "{durations:?}");
}

/// The kernel's zygote of `k`.
fn zygote_of(k: &TestKernel) -> Option<u32> {
    agentos_tests::zygote_of(k.kernel_pid())
}

/// The host pid of the init of the tool running `sleep MARKER` in its shell (the sleep's
/// parent is the tool's `/bin/sh`, whose parent is the tool's init).
fn tool_init(marker: &str) -> u32 {
    let sleep = pids_running(&["sleep", marker])[0];
    let parent = |pid: u32| {
        agentos_tests::process_table()
            .into_iter()
            .find(|&(p, _, _)| p == pid)
            .map(|(_, ppid, _)| ppid)
    };
    parent(sleep).and_then(parent).expect("the tool's init")
}

/// A tool's jail is an init the zygote cloned ahead: the init waiting beside a running tool
/// (cloned after that tool's start, before anything of the next call existed) becomes the
/// next tool's init — its stdin handed over on its report socket, its namespaces its own, not
/// its agent's nor the last tool's — and another is cloned to wait.
#[test]
fn the_next_tool_runs_in_the_init_cloned_ahead_in_namespaces_of_its_own() {
    let k = TestKernel::start();
    let policy = write_policy(
        &k.work,
        "exec-ahead",
        "strict",
        &[],
        &exec_rule(&["/bin/sh"]),
    );
    // Each tool sleeps (marked) until the test has looked and killed its sleep from the host.
    let first = format!("20.{}", std::process::id());
    let second = format!("21.{}", std::process::id());
    let id = spawn(
        &k,
        &policy,
        None,
        &[
            "script",
            &format!("sh:sleep {first} || echo one"),
            &format!("shin:cat; echo; sleep {second} || echo two"),
        ],
    );
    let kill = |marker: &str| {
        let pid = pids_running(&["sleep", marker])[0];
        assert!(std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    let ns = |p: u32, ns: &str| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).expect("ns link");
    let kernel = k.kernel_pid();
    let agent_init = k.launcher_pid(id);
    wait_until("the first tool's sleep to run", || {
        pids_running(&["sleep", &first]).len() == 1
    });
    let first_init = tool_init(&first);
    let waiting = agentos_tests::waiting_init(kernel, &[agent_init, first_init]);
    let first_ns: Vec<_> = ["user", "net", "pid", "mnt"]
        .iter()
        .map(|n| ns(first_init, n))
        .collect();
    kill(&first);
    wait_until("the second tool's sleep to run", || {
        pids_running(&["sleep", &second]).len() == 1
    });
    let second_init = tool_init(&second);
    assert_eq!(
        second_init, waiting,
        "the next tool's init is the one that waited"
    );
    for (i, n) in ["user", "net", "pid", "mnt"].iter().enumerate() {
        assert_ne!(ns(second_init, n), ns(agent_init, n), "{n}: its agent's");
        assert_ne!(ns(second_init, n), first_ns[i], "{n}: the last tool's");
        assert_ne!(ns(second_init, n), ns(kernel, n), "{n}: the kernel's");
    }
    let next = agentos_tests::waiting_init(kernel, &[agent_init, second_init]);
    assert_ne!(next, waiting);
    kill(&second);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.logs(id);
    let answers: Vec<&str> = log.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(answers.len(), 2, "{log}");
    assert!(answers[0].ends_with(": ok status=0 stdout=one"), "{log}");
    assert!(
        answers[1].ends_with(": ok status=0 stdout=stdin-bytes|two"),
        "{log}"
    );
}

#[test]
fn a_tool_is_the_kernels_child_cloned_by_the_zygote_which_it_cannot_reach() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "exec-zyg", "strict", &[], &exec_rule(&["/bin/sh"]));
    // A sleep of a duration no other process uses (a few seconds), so a /proc scan finds it.
    let marker = format!("4.{}", std::process::id());
    // The tool: pid 1 is its init, whose parent (outside its namespace) reads as 0; it tries
    // to kill everything it could name and to ptrace its init, then sleeps (the marked
    // sleep) while the test looks at its tree on the host.
    let script = format!(
        "grep PPid /proc/1/status; kill -KILL -1; \
         for p in $(seq 1 64); do [ $p -ne $$ ] && kill -KILL $p 2>/dev/null; done; \
         python3 -I -c 'import ctypes; print(\"ptrace\", ctypes.CDLL(None, use_errno=True).ptrace(16, 1, 0, 0))' 2>&1; \
         sleep {marker}; echo done"
    );
    let zygote_before = {
        // Any agent makes the kernel start its zygote.
        let line = exec_line(&k, &policy, None, &["-", "-", "/bin/sh", "-c", "true"]);
        assert!(line.starts_with("exec: status=0 "), "{line}");
        zygote_of(&k).expect("the kernel's zygote")
    };
    let id = spawn(
        &k,
        &policy,
        None,
        &["exec", "20000", "-", "/bin/sh", "-c", &script],
    );
    wait_until("the tool's sleep to run", || {
        pids_running(&["sleep", &marker]).len() == 1
    });
    // On the host: the tool's init is the kernel's own child (cloned with CLONE_PARENT), pid
    // 1 of its own pid namespace, in network and user namespaces of its own (not the
    // agent's, not the zygote's).
    let init = tool_init(&marker);
    assert!(agentos_tests::is_namespace_init(init), "{init}");
    let ppid = agentos_tests::process_table()
        .into_iter()
        .find(|&(p, _, _)| p == init)
        .map(|(_, ppid, _)| ppid);
    assert_eq!(
        ppid,
        Some(k.kernel_pid()),
        "the tool's init is the kernel's child"
    );
    let agent_init = k.launcher_pid(id);
    for ns in ["user", "net", "pid", "mnt"] {
        let of = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).expect("ns link");
        assert_ne!(
            of(init),
            of(agent_init),
            "{ns}: the tool shares its agent's"
        );
        assert_ne!(
            of(init),
            of(zygote_before),
            "{ns}: the tool shares the zygote's"
        );
    }
    // The zygote's user namespace is the kernel's: the tool's is a child of it, a sibling of
    // the agent's, so nothing the agent runs holds a capability over the tool's.
    let userns = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/user")).expect("ns link");
    assert_eq!(userns(zygote_before), userns(k.kernel_pid()));
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.logs(id);
    let line = log
        .lines()
        .find(|l| l.starts_with("exec: "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.starts_with("exec: status=0 "), "{line}");
    assert!(
        line.contains("stdout=\"PPid:\\t0\\nptrace -1\\ndone\\n\""),
        "{line}"
    );
    // Nothing the tool did reached the zygote, and its tree is gone.
    assert_eq!(zygote_of(&k), Some(zygote_before));
    assert_eq!(pids_running(&["sleep", &marker]), Vec::<u32>::new());
}

#[test]
fn a_killed_zygote_is_replaced_the_next_exec_works_and_stop_leaves_no_process() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "exec-rez", "strict", &[], &exec_rule(&["/bin/sh"]));
    let line = exec_line(&k, &policy, None, &["-", "-", "/bin/sh", "-c", "echo one"]);
    assert!(line.contains("stdout=\"one\\n\""), "{line}");
    let first = zygote_of(&k).expect("the kernel's zygote");
    // The zygote dies (as if killed by anything on the host): the next agent is started by
    // an exec'd launcher, the next tool by a new zygote, and both work.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    assert!(agentos_tests::wait_pid_gone(
        first,
        std::time::Duration::from_secs(10)
    ));
    let line = exec_line(&k, &policy, None, &["-", "-", "/bin/sh", "-c", "echo two"]);
    assert!(line.contains("stdout=\"two\\n\""), "{line}");
    let second = zygote_of(&k).expect("a new zygote");
    assert_ne!(second, first);
    // Every Exec was judged and recorded as usual.
    let execs = k
        .records()
        .into_iter()
        .filter(|r| {
            matches!(&r.event, RecordEvent::Syscall { call: Syscall::Exec { .. }, result: Ok(Reply::Exec(o)), .. }
                if o.status == 0)
        })
        .count();
    assert_eq!(execs, 2);
    // `kernel stop`: the zygote goes with the kernel, nothing of it is left.
    let kernel = k.kernel_pid();
    k.ctl_ok(&["kernel", "stop"]);
    assert!(agentos_tests::wait_pid_gone(
        second,
        std::time::Duration::from_secs(10)
    ));
    assert!(agentos_tests::wait_pid_gone(
        kernel,
        std::time::Duration::from_secs(10)
    ));
}

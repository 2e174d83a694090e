//! No blocking host I/O on the async runtime (DESIGN §1.6), from real jailed agents: FIFOs,
//! sockets and devices in an agent's workspace are refused at once with `Unsupported` (and the
//! refusal is recorded) while another agent and `agentctl ps` keep being answered; an agent
//! saturating slow host I/O does not stop another agent's working-memory calls. Each test runs
//! with the kernel as root and as an unprivileged user.

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::{AgentId, Errno, Syscall};
use agentos_tests::{is_root, write_policy, TestKernel};

const WORKSPACE_RW: &str = "  - name: ws-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace\", \"/workspace/**\"]\n  - name: ws-write\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n";

const EPISODIC_RW: &str = "  - name: ep-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/mem/episodic/**\"]\n  - name: ep-write\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/mem/episodic/**\"]\n";

/// How long `agentctl ps` may take here (the DoS suite holds the 200 ms budget).
const PS_BOUND: Duration = Duration::from_secs(2);

/// Runs `agentctl ps`; asserts it answers within [`PS_BOUND`] (killing it if it hangs).
fn ps_answers(k: &TestKernel) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(&k.state_dir)
        .arg("ps")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agentctl ps");
    let give_up = started + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "agentctl ps did not answer ({took:?}): the kernel is frozen"
    );
    assert!(took < PS_BOUND, "agentctl ps took {took:?}");
    took
}

/// A workspace with a regular file, a FIFO, a Unix socket file, a symlink to the FIFO and
/// (as root) a character device (`/dev/null`'s numbers); the names of the non-regular ones
/// with the type the refusal must name.
fn hostile_workspace(k: &TestKernel) -> (PathBuf, Vec<(&'static str, &'static str)>) {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let ws = k.work.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("ok.txt"), "fine").unwrap();
    let rw = Mode::from_bits_truncate(0o666);
    nix::unistd::mkfifo(&ws.join("fifo"), rw).unwrap();
    drop(std::os::unix::net::UnixListener::bind(ws.join("sock")).unwrap());
    symlink("fifo", ws.join("link")).unwrap();
    let mut names = vec![("fifo", "a FIFO"), ("sock", "a socket"), ("link", "a FIFO")];
    if is_root() {
        mknod(&ws.join("null"), SFlag::S_IFCHR, rw, makedev(1, 3)).unwrap();
        names.push(("null", "a character device"));
    }
    if k.unprivileged && is_root() {
        for e in std::fs::read_dir(&ws).unwrap().flatten() {
            std::os::unix::fs::lchown(e.path(), Some(65534), Some(65534)).unwrap();
        }
        std::os::unix::fs::chown(&ws, Some(65534), Some(65534)).unwrap();
    }
    (ws, names)
}

fn refused_without_freezing(k: TestKernel) {
    let (ws, names) = hostile_workspace(&k);
    let policy = write_policy(&k.work, "hostile", "strict", &[], WORKSPACE_RW);
    let paths: Vec<String> = names
        .iter()
        .map(|(n, _)| format!("/workspace/{n}"))
        .collect();
    let mut args = vec!["io", "hostile"];
    args.extend(paths.iter().map(String::as_str));
    let hostile = k.spawn_with(&policy, &["--workspace", ws.to_str().unwrap()], &args);
    k.wait_for_line(hostile, "firing");

    // Meanwhile the kernel answers the operator and another agent.
    ps_answers(&k);
    let victim = k.spawn_with(&policy, &[], &["io", "ping", "50"]);
    let line = k.wait_for_line(victim, "ping ");
    assert!(line.starts_with("ping answered=50 "), "{line}");
    ps_answers(&k);

    let last = k.wait(hostile);
    let log = k.ctl_ok(&["logs", &hostile.to_string()]);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{log}");
    // Every call was answered promptly (a blocked one would take its 10 s timeout).
    let took: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("hostile done in "))
        .and_then(|l| l.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `hostile done in MS ms` in:\n{log}"));
    assert!(took < 5000, "the refusals took {took} ms");
    let mut ops: Vec<String> = Vec::new();
    for (name, _) in &names {
        for op in [
            "read",
            "write",
            "append",
            "create",
            "open-write",
            "stat",
            "list",
            "open-read",
        ] {
            ops.push(format!("/workspace/{name} {op}"));
        }
    }
    for i in 0..4 {
        ops.push(format!("/workspace/{} read{i}", names[0].0));
    }
    for op in &ops {
        let name = op
            .split(' ')
            .next()
            .unwrap()
            .trim_start_matches("/workspace/");
        let kind = names.iter().find(|(n, _)| *n == name).unwrap().1;
        let want = format!(
            "{op}: err Unsupported unsupported: /workspace/{name} is {kind}; the kernel serves only regular files and directories from the workspace"
        );
        assert!(
            log.lines().any(|l| l == want),
            "no `{want}` in the agent's log:\n{log}"
        );
    }
    assert!(!log.contains("read-fd"), "a descriptor was granted:\n{log}");

    // Every refusal is in the flight recorder as the call's result.
    let refused = k
        .records()
        .into_iter()
        .filter(|r| r.agent == Some(AgentId(hostile)))
        .filter(|r| {
            matches!(&r.event, RecordEvent::Syscall {
                call: Syscall::Read { path, .. } | Syscall::Write { path, .. } | Syscall::Open { path, .. } | Syscall::Stat { path } | Syscall::List { path },
                result: Err(Errno::Unsupported { what }),
                ..
            } if what.contains("the kernel serves only regular files and directories") && paths.contains(path))
        })
        .count();
    assert_eq!(refused, ops.len(), "recorded refusals");

    // A listing of the workspace leaves them out (the symlink is listed as itself).
    let lister = k.spawn_with(
        &policy,
        &["--workspace", ws.to_str().unwrap()],
        &["ops", "list=/workspace"],
    );
    k.wait(lister);
    let out = k.ctl_ok(&["logs", &lister.to_string()]);
    assert!(
        out.lines().any(|l| l == "list=/workspace: ok link,ok.txt"),
        "{out}"
    );
}

#[test]
fn fifos_sockets_and_devices_in_the_workspace_are_refused_without_freezing_the_kernel() {
    refused_without_freezing(TestKernel::start());
}

#[test]
fn fifos_sockets_and_devices_are_refused_by_an_unprivileged_kernel_too() {
    refused_without_freezing(TestKernel::start_unprivileged());
}

fn flood_does_not_stop_another_agent(k: TestKernel) {
    let ws = k.work.join("flood");
    std::fs::create_dir_all(&ws).unwrap();
    if k.unprivileged && is_root() {
        std::os::unix::fs::chown(&ws, Some(65534), Some(65534)).unwrap();
    }
    let rules = format!("{WORKSPACE_RW}{EPISODIC_RW}");
    let policy = write_policy(&k.work, "flood", "strict", &[], &rules);
    // 32 calls in flight at a time: 16 workspace writes of 64 KiB, then reads of them, and 16
    // persistent-memory writes (each a redb commit, which fsyncs).
    let hog = k.spawn_with(
        &policy,
        &["--workspace", ws.to_str().unwrap(), "--name", "hog"],
        &["io", "flood", "16", "65536"],
    );
    let line = k.wait_for_line(hog, "flooding ");
    assert!(
        !line.contains("err") && !line.contains("false"),
        "the flood's own calls failed: {line}"
    );

    let victim = k.spawn_with(&policy, &[], &["io", "ping", "200"]);
    let line = k.wait_for_line(victim, "ping ");
    let max_ms: u64 = line
        .strip_prefix("ping answered=200 max_ms=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the victim's calls were not all answered: {line}"));
    assert!(max_ms < 2000, "a working-memory write took {max_ms} ms");
    ps_answers(&k);
    // The flood was still going while the victim was served.
    assert_eq!(k.info(hog)["state"], "running", "{}", k.info(hog));
}

#[test]
fn an_agent_saturating_host_io_does_not_stop_another_agents_working_memory() {
    flood_does_not_stop_another_agent(TestKernel::start());
}

#[test]
fn an_agent_saturating_host_io_does_not_stop_another_agent_unprivileged() {
    flood_does_not_stop_another_agent(TestKernel::start_unprivileged());
}

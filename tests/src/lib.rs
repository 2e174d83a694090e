//! The integration-test harness: real kernels on private state dirs, driven through the real
//! `agentctl`, running real sandboxed agents.
//!
//! [`TestKernel::start`] starts `agentos-kernel` through `agentctl kernel start` on a fresh
//! temporary state dir and stops it on drop (SIGKILL if a graceful stop fails), so no test
//! touches `/var/lib` or `/run` and no agent outlives its test.
//! [`TestKernel::start_unprivileged`] does the same with the kernel running as uid/gid 65534
//! (when the tests run as root), from binaries copied into a world-readable dir.
//!
//! Waiting is always for a condition (a log line, a state, a process's exit via pidfd), with a
//! deadline; never a bare sleep.

#![deny(unsafe_code)]
#![allow(clippy::expect_used, clippy::unwrap_used)] // test harness: a failed expectation is a failed test

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod attack;
pub mod bounds_modes;
pub mod disk_modes;
pub mod dos_modes;
pub mod io_modes;
pub mod operator_modes;
pub mod otlp;
pub mod rec_modes;
pub mod rename_modes;
#[allow(unsafe_code)]
pub mod sys;

/// The longest any single condition is waited for.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Where cargo put the workspace's binaries (`target/<profile>`), found from the test binary's
/// own path (`target/<profile>/deps/all-…`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    let dir = if deps.ends_with("deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// A workspace binary, with a clear message when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds every binary)",
        p.display()
    );
    p
}

/// The test agent binary.
pub fn test_agent() -> PathBuf {
    binary("agentos-test-agent")
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Prints one line on stdout and flushes it at once (a test agent's report, read by the test
/// through `agentctl logs`).
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Polls `cond` every 5 ms until it holds or [`DEADLINE`] passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out waiting for {what}");
}

/// Waits for a process (not necessarily our child) to exit, through a pidfd.
pub fn wait_pid_gone(pid: u32, within: Duration) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return true;
    };
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => return true, // already gone
    };
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: within.as_secs() as i64,
        tv_nsec: within.subsec_nanos() as i64,
    };
    matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}

/// `(pid, ppid, state)` of every process, read from `/proc/PID/stat` (a process gone while
/// it is read is left out).
pub fn process_table() -> Vec<(u32, u32, char)> {
    let mut table = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if let (Some(state), Some(ppid)) = (f.first(), f.get(1).and_then(|p| p.parse::<u32>().ok()))
        {
            table.push((pid, ppid, state.chars().next().unwrap_or('?')));
        }
    }
    table
}

/// Every descendant of `root`, read from `/proc`.
pub fn descendants(root: u32) -> Vec<u32> {
    let table = process_table();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid, _) in &table {
            if ppid == p {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}

/// Whether `pid` is pid 1 of a pid namespace below the caller's (its last `NSpid` entry).
pub fn is_namespace_init(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let nspid: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    nspid.len() > 1 && nspid.last() == Some(&"1")
}

/// The kernel's zygote, if it runs: the child of `kernel` running `--zygote` that is no pid
/// namespace's init (its clones — agents' and tools' inits, the init cloned ahead — show the
/// same command line, never having exec'd, but each is pid 1 of its own pid namespace).
pub fn zygote_of(kernel: u32) -> Option<u32> {
    let parent = kernel.to_string();
    descendants(kernel).into_iter().find(|&p| {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let child = stat
            .rfind(')')
            .is_some_and(|c| stat[c + 1..].split_whitespace().nth(1) == Some(parent.as_str()));
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        child && cmdline.windows(8).any(|w| w == b"--zygote") && !is_namespace_init(p)
    })
}

/// The init the kernel's zygote cloned ahead for the next agent, once there is one (waits up
/// to 20 s): see [`waiting_inits`].
pub fn waiting_init(kernel: u32, agents: &[u32]) -> u32 {
    let mut found = None;
    wait_until("the zygote's init cloned ahead", || {
        found = waiting_inits(kernel, agents).first().copied();
        found.is_some()
    });
    found.unwrap_or_default()
}

/// The inits the kernel's zygote cloned ahead, as they are now: children of `kernel` running
/// `--zygote`, pid 1 of their own pid namespace, that have not started a session of their own
/// yet (an agent's or a tool's init makes its session first thing once its spec arrives), none
/// of `agents` (agents' init pids).
pub fn waiting_inits(kernel: u32, agents: &[u32]) -> Vec<u32> {
    process_table()
        .into_iter()
        .filter(|&(pid, ppid, state)| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After the command: state, ppid, pgrp, session.
            let session = stat
                .rfind(')')
                .and_then(|c| stat[c + 1..].split_whitespace().nth(3)?.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == kernel
                && state != 'Z'
                && !agents.contains(&pid)
                && session != Some(pid)
                && cmdline.windows(8).any(|w| w == b"--zygote")
                && is_namespace_init(pid)
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

/// The processes of the jail whose first process (the pid `agentctl ps` shows) is `root`: its
/// init and everything below. The root is the init itself when the zygote cloned it; a
/// launcher above the init (exec'd where the zygote could not clone) is not counted.
pub fn jail_processes(root: u32) -> Vec<u32> {
    let below = descendants(root);
    if is_namespace_init(root) {
        std::iter::once(root).chain(below).collect()
    } else {
        below
    }
}

/// The state letter of a process (`R`, `S`, `T`, `Z`, …), `None` once it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// The workspace's root (the checkout the suite runs from).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The tool providers shipped in `examples/providers`.
pub fn providers_dir() -> PathBuf {
    std::fs::canonicalize(repo_root().join("examples/providers")).expect("examples/providers")
}

/// A world-readable temp dir holding one executable `#!/bin/sh` script (`hook`) running
/// `body`: an event hook or a tool the test hands the kernel.
pub fn shell_script(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let path = dir.path().join("hook");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, path)
}

/// Creates `dir/app.db` with one table `t` holding `one` (with the host's python3).
pub fn make_db(dir: &Path) -> PathBuf {
    let db = dir.join("app.db");
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); d.execute('create table t(x)'); d.execute(\"insert into t values ('one')\"); d.commit()",
        ])
        .arg(&db)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    db
}

/// Bytes the files under `dir` hold on disk (allocated blocks; sparse files count what they
/// use).
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// A policy file in `dir`.
pub fn write_policy(
    dir: &Path,
    name: &str,
    mode: &str,
    signals: &[&str],
    extra_rules: &str,
) -> PathBuf {
    let signals = if signals.is_empty() {
        "[]".to_string()
    } else {
        format!("[{}]", signals.join(", "))
    };
    let text = format!(
        "---\nkernel:\n  version: \"1.0\"\n  mode: {mode}\nsignals: {signals}\npolicies:\n  - name: working-rw\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/mem/working/**\"]\n  - name: working-ro\n    action: file_read\n    effect: allow\n    mode: read_only\n    constraints:\n      paths: [\"/mem/working\", \"/mem/working/**\"]\n{extra_rules}---\n\n# test policy `{name}`\n"
    );
    let path = dir.join(format!("{name}.md"));
    std::fs::write(&path, text).expect("write policy");
    path
}

/// A kernel on a private state dir, stopped on drop.
#[derive(Debug)]
pub struct TestKernel {
    /// Holds the temp dirs alive.
    _root: tempfile::TempDir,
    pub state_dir: PathBuf,
    /// Scratch dir for policies and such (readable by the kernel's user).
    pub work: PathBuf,
    pub agentctl: PathBuf,
    pub agent_bin: PathBuf,
    pub unprivileged: bool,
}

fn world_dir(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn copy_exe(from: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(from.file_name().expect("file name"));
    std::fs::copy(from, &to).expect("copy binary");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    to
}

impl TestKernel {
    /// A kernel running as the test's own user.
    pub fn start() -> TestKernel {
        Self::start_with(false, &[])
    }

    /// A kernel running as uid/gid 65534 when the tests run as root (as the test's own,
    /// already unprivileged user otherwise).
    pub fn start_unprivileged() -> TestKernel {
        Self::start_with(true, &[])
    }

    /// `extra` goes to `agentctl kernel start` (e.g. `--term-grace-ms 300`).
    pub fn start_with(unprivileged: bool, extra: &[&str]) -> TestKernel {
        Self::start_as(unprivileged, &[], extra)
    }

    /// [`TestKernel::start_with`] with more `setpriv` options for the kernel's process (when
    /// `unprivileged` and the tests run as root), e.g. `--no-new-privs`, `--bounding-set=-all`:
    /// the restrictions a service manager puts on it.
    pub fn start_as(unprivileged: bool, setpriv: &[&str], extra: &[&str]) -> TestKernel {
        let root = tempfile::Builder::new()
            .prefix("agentos-test-")
            .tempdir()
            .expect("tempdir");
        world_dir(root.path());
        let bins = root.path().join("bin");
        world_dir(&bins);
        // Copies, so that an unprivileged kernel can execute them even when the checkout sits
        // under a private home directory.
        let agentctl = copy_exe(&binary("agentctl"), &bins);
        copy_exe(&binary("agentos-kernel"), &bins);
        copy_exe(&binary("agentos-launch"), &bins);
        let agent_bin = copy_exe(&test_agent(), &bins);
        let work = root.path().join("work");
        world_dir(&work);
        let state_dir = root.path().join("state");
        let drop_privileges = unprivileged && is_root();
        if drop_privileges {
            world_dir(&state_dir);
            std::os::unix::fs::chown(&state_dir, Some(65534), Some(65534))
                .expect("chown state dir");
        }
        let mut cmd = if drop_privileges {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .args(setpriv)
                .arg(&agentctl);
            c
        } else {
            Command::new(&agentctl)
        };
        cmd.arg("--state-dir")
            .arg(&state_dir)
            .args(["kernel", "start"])
            .args(extra);
        let out = cmd.output().expect("run agentctl kernel start");
        assert!(
            out.status.success(),
            "kernel start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        TestKernel {
            _root: root,
            state_dir,
            work,
            agentctl,
            agent_bin,
            unprivileged: drop_privileges || !is_root(),
        }
    }

    /// Runs `agentctl --state-dir … ARGS` and returns its output.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&self.agentctl)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .output()
            .expect("run agentctl")
    }

    /// Runs `agentctl` and asserts success; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "agentctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Spawns the test agent in `mode` under `policy`; returns its id.
    pub fn spawn(&self, policy: &Path, agent_args: &[&str]) -> u64 {
        self.spawn_with(policy, &[], agent_args)
    }

    /// [`TestKernel::spawn`] with extra `agentctl spawn` options (`--workspace`, `--name`, …).
    pub fn spawn_with(&self, policy: &Path, opts: &[&str], agent_args: &[&str]) -> u64 {
        let mut args = vec!["spawn", "--policy", policy.to_str().expect("utf-8")];
        args.extend_from_slice(opts);
        args.push("--");
        args.push(self.agent_bin.to_str().expect("utf-8"));
        args.extend_from_slice(agent_args);
        self.ctl_ok(&args).trim().parse().expect("agent id")
    }

    /// The agent's row (`agentctl inspect --json`).
    pub fn info(&self, id: u64) -> Value {
        serde_json::from_str(&self.ctl_ok(&["inspect", &id.to_string(), "--json"])).expect("json")
    }

    /// Waits for the agent's end (`agentctl wait --json`) and returns its final row.
    pub fn wait(&self, id: u64) -> Value {
        let out = self.ctl(&["wait", &id.to_string(), "--json"]);
        serde_json::from_slice(&out.stdout).expect("wait --json")
    }

    /// Follows the agent's log until a line starting with `prefix` appears; returns the line.
    pub fn wait_for_line(&self, id: u64, prefix: &str) -> String {
        let mut child = Command::new(&self.agentctl)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["logs", "-f", &id.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("agentctl logs -f");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let want = prefix.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(&want) {
                    let _ = tx.send(line);
                    return;
                }
            }
        });
        let got = rx.recv_timeout(DEADLINE);
        let _ = child.kill();
        let _ = child.wait();
        got.unwrap_or_else(|_| {
            let log = self.ctl(&["logs", &id.to_string()]);
            panic!(
                "agent {id} never printed `{prefix}`; its log:\n{}",
                String::from_utf8_lossy(&log.stdout)
            )
        })
    }

    /// The launcher pid of an agent (the root of its process tree).
    pub fn launcher_pid(&self, id: u64) -> u32 {
        self.info(id)["pid"].as_u64().expect("pid") as u32
    }

    /// The kernel's pid, from `agentctl kernel status --json`.
    pub fn kernel_pid(&self) -> u32 {
        let v: Value =
            serde_json::from_str(&self.ctl_ok(&["kernel", "status", "--json"])).expect("json");
        v["pid"].as_u64().expect("pid") as u32
    }

    /// Starts a kernel again on this state dir (after [`TestKernel::kill_kernel`]); `extra`
    /// goes to `agentctl kernel start`.
    pub fn restart(&self, extra: &[&str]) {
        let out = self.ctl(&[&["kernel", "start"], extra].concat());
        assert!(
            out.status.success(),
            "kernel restart failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILLs the kernel and waits until it is gone.
    pub fn kill_kernel(&self) {
        let pid = self.kernel_pid();
        assert!(Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill")
            .success());
        assert!(
            wait_pid_gone(pid, DEADLINE),
            "kernel {pid} survived SIGKILL"
        );
    }

    /// The recorder dir.
    pub fn recorder_dir(&self) -> PathBuf {
        self.state_dir.join("recorder")
    }

    /// `agentctl recorder verify --json`: its exit code and report.
    pub fn verify(&self) -> (i32, Value) {
        let out = self.ctl(&["recorder", "verify", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "recorder verify --json printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    /// Every record of the flight recorder, verified.
    /// Spawns `INTERPRETER SCRIPT ARGS` through `agentctl spawn` (which resolves `python3` or
    /// `node` into the jail's runtime and grants the script's directory read-only).
    pub fn spawn_script(
        &self,
        policy: &Path,
        interpreter: &str,
        script: &str,
        args: &[&str],
    ) -> u64 {
        let mut argv = vec![
            "spawn",
            "--policy",
            policy.to_str().expect("utf-8"),
            "--",
            interpreter,
            script,
        ];
        argv.extend_from_slice(args);
        self.ctl_ok(&argv).trim().parse().expect("agent id")
    }

    /// The agent's output as kept (`agentctl logs ID`, asserted to succeed).
    pub fn logs(&self, id: u64) -> String {
        self.ctl_ok(&["logs", &id.to_string()])
    }

    /// What the flight recorder holds of agent `id`, in order.
    pub fn events(&self, id: u64) -> Vec<agentos_kernel::recorder::RecordEvent> {
        self.records()
            .into_iter()
            .filter(|r| r.agent.map(|a| a.0) == Some(id))
            .map(|r| r.event)
            .collect()
    }

    pub fn records(&self) -> Vec<agentos_kernel::recorder::Record> {
        agentos_kernel::recorder::read_log(&self.state_dir.join("recorder"))
            .expect("recorder verifies")
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    }

    /// Waits for agent `id`'s `Exit` record; asserts that a `SandboxLimit` record of
    /// `resource`, met `by` one of `by` (a syscall, `write`, `exit`, `cgroup`), precedes it,
    /// and returns that event.
    pub fn limit_event_before_exit(
        &self,
        id: u64,
        resource: &str,
        by: &[&str],
    ) -> agentos_kernel::recorder::RecordEvent {
        use agentos_kernel::recorder::RecordEvent;
        let mut records = Vec::new();
        wait_until(&format!("the exit record of agent {id}"), || {
            records = self
                .records()
                .into_iter()
                .filter(|r| r.agent.map(|a| a.0) == Some(id))
                .map(|r| r.event)
                .collect();
            records
                .iter()
                .any(|e| matches!(e, RecordEvent::Exit { .. }))
        });
        let exit = records
            .iter()
            .position(|e| matches!(e, RecordEvent::Exit { .. }));
        let limit = records.iter().position(|e| {
            matches!(e, RecordEvent::SandboxLimit { resource: r, by: b, .. }
                if r == resource && by.contains(&b.as_str()))
        });
        match (limit, exit) {
            (Some(l), Some(x)) if l < x => records[l].clone(),
            _ => panic!(
                "no {resource} limit event (by {by:?}) before agent {id}'s exit: {records:#?}"
            ),
        }
    }
}

impl Drop for TestKernel {
    fn drop(&mut self) {
        let pid = self.ctl(&["kernel", "status", "--json"]);
        let pid: Option<u32> = serde_json::from_slice::<Value>(&pid.stdout)
            .ok()
            .and_then(|v| v["pid"].as_u64())
            .map(|p| p as u32);
        let stopped = Command::new(&self.agentctl)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["kernel", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if let (false, Some(pid)) = (stopped, pid) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// `events` (one agent's) hold its write to `path` refused as a violation, then SIGPOLICY.
pub fn assert_write_refused_then_sigpolicy(
    events: &[agentos_kernel::recorder::RecordEvent],
    path: &str,
) {
    use agentos_kernel::recorder::RecordEvent;
    use agentos_syscalls::{Errno, Signal, Syscall};
    let refused = events.iter().position(|e| {
        matches!(e, RecordEvent::Syscall { call: Syscall::Write { path: p, .. }, decision, result: Err(Errno::PermissionDenied { .. }), .. }
            if p == path && decision.violation)
    });
    let killed = events.iter().position(|e| {
        matches!(
            e,
            RecordEvent::Signal {
                signal: Signal::Policy,
                ..
            }
        )
    });
    assert!(
        matches!((refused, killed), (Some(r), Some(k)) if r < k),
        "no refused write to {path} followed by SIGPOLICY: {events:?}"
    );
}

//! Integration tests of `agentos-launch`: the real binary, a real jail, a real agent program.
//!
//! Each test builds a [`JailSpec`] with the DESIGN §4 runtime set, gives the launcher one end
//! of a socketpair at fd 3 (as the kernel does), reads the jail report from the other end and
//! checks what the agent could and could not do. The core tests run twice: as the test's own
//! user, and — when the tests run as root — unprivileged, through `setpriv` as uid 65534 with a
//! copy of the launcher in a world-readable directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use agentos_syscalls::{frame, AgentFrame, JailReport, LayerStatus};
use agentos_userspace::launch::{
    CgroupSpec, JailSpec, LayerName, ResourceLimits, AGENT_FD_ON_STDIN_ENV, EXIT_SANDBOX_FAILED,
    LAYERS, SPEC_ENV,
};

const NOBODY: u32 = 65534;

/// Who runs the launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum As {
    /// The test's own user (root in CI containers).
    Me,
    /// uid/gid 65534 (via `setpriv` when the test is root; directly otherwise).
    Nobody,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct Sandbox {
    _dir: tempfile::TempDir,
    scratch: PathBuf,
    launcher: PathBuf,
    who: As,
    /// Hand the socket over as fd 0 with [`AGENT_FD_ON_STDIN_ENV`] (as the kernel does for an
    /// agent) instead of at fd 3 (as it does for a tool).
    socket_on_stdin: bool,
}

impl Sandbox {
    fn new(who: As) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("agentos-launch-test")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        let mut launcher = PathBuf::from(env!("CARGO_BIN_EXE_agentos-launch"));
        if who == As::Nobody && is_root() {
            // The build tree may sit under a private home: copy the binary somewhere uid
            // 65534 can execute it, and give it the scratch directory.
            let copy = dir.path().join("agentos-launch");
            std::fs::copy(&launcher, &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
            launcher = copy;
            std::os::unix::fs::chown(&scratch, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        Self {
            _dir: dir,
            scratch,
            launcher,
            who,
            socket_on_stdin: false,
        }
    }

    fn spec(&self, program: &str, args: &[&str]) -> JailSpec {
        let existing = |paths: &[&str]| -> Vec<PathBuf> {
            paths
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .collect()
        };
        let mut argv = vec![Path::new(program)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        JailSpec {
            agent_id: 42,
            kernel_pid: std::process::id(),
            program: program.into(),
            argv,
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("AGENTOS_FD".into(), "3".into()),
            ],
            scratch: self.scratch.clone(),
            read_exec: existing(&["/usr", "/lib", "/lib64", "/bin"]),
            read_only: existing(&["/etc/ld.so.cache", "/etc/localtime"]),
            devices: existing(&["/dev/null", "/dev/zero", "/dev/urandom"]),
            limits: ResourceLimits::default(),
            cgroup: Default::default(),
            require_full: true,
            mounts: vec![],
            cwd: None,
            tool: false,
            network: false,
            egress_port: None,
        }
    }

    fn run(&self, spec: &JailSpec) -> Outcome {
        self.run_json(Some(serde_json::to_string(spec).unwrap()))
    }

    /// Runs the launcher with `json` (or nothing) in [`SPEC_ENV`].
    fn run_json(&self, json: Option<String>) -> Outcome {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let theirs_fd = theirs.as_raw_fd();
        let socket_on_stdin = self.socket_on_stdin;
        let mut cmd = if self.who == As::Nobody && is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
            ])
            .arg(&self.launcher);
            c
        } else {
            Command::new(&self.launcher)
        };
        cmd.env_clear();
        if let Some(json) = json {
            cmd.env(SPEC_ENV, json);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.socket_on_stdin {
            cmd.env(AGENT_FD_ON_STDIN_ENV, "1")
                .stdin(Stdio::from(std::os::fd::OwnedFd::from(
                    theirs.try_clone().unwrap(),
                )));
        } else {
            cmd.stdin(Stdio::null());
        }
        // SAFETY: runs in the forked child before exec; dup2 and fcntl are async-signal-safe
        // and only touch descriptors. dup2 gives the launcher its agent socket at fd 3 without
        // FD_CLOEXEC; if the socket already is fd 3, its close-on-exec flag is cleared instead.
        unsafe {
            cmd.pre_exec(move || {
                if socket_on_stdin {
                    return Ok(());
                }
                if theirs_fd == 3 {
                    if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(theirs_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        // The command keeps its stdin (a copy of the socket) until dropped: drop it, or the
        // socket never reaches EOF once the launcher is gone.
        drop(cmd);
        drop(theirs);
        ours.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut reader = &ours;
        let report = frame::read_frame(&mut reader, frame::DEFAULT_MAX_FRAME)
            .unwrap()
            .map(|body| match frame::decode::<AgentFrame>(&body).unwrap() {
                AgentFrame::JailReport(r) => r,
                other => panic!("first frame is not a jail report: {other:?}"),
            });
        // The init's seccomp listener follows the report: answer its denials EPERM, as the
        // kernel does (a listener left unread would block every denied call).
        let listener = report.as_ref().and_then(|_| take_listener(&ours));
        let served = listener.map(|fd| std::thread::spawn(move || serve_denials(fd)));
        let out = child.wait_with_output().unwrap();
        if let Some(t) = served {
            t.join().unwrap();
        }
        // Nothing but the report and the listener may come from the launcher itself.
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            report,
            extra: rest,
        }
    }
}

#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    report: Option<JailReport>,
    extra: Vec<u8>,
}

impl Outcome {
    fn report(&self) -> &JailReport {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no jail report: {self:?}"))
    }

    fn status(&self, layer: LayerName) -> &LayerStatus {
        &self
            .report()
            .layers
            .iter()
            .find(|l| l.name == layer.as_str())
            .unwrap_or_else(|| panic!("no layer {layer}"))
            .status
    }

    fn assert_all_active(&self) {
        let names: Vec<&str> = self
            .report()
            .layers
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, LAYERS.map(LayerName::as_str).to_vec());
        for layer in &self.report().layers {
            // These specs carry no cgroup (the kernel makes groups, not this harness):
            // `joins_the_cgroup_the_spec_names` covers the layer.
            if layer.name == LayerName::Cgroup.as_str() {
                continue;
            }
            assert!(
                matches!(layer.status, LayerStatus::Active { .. }),
                "{} not active: {:?}\n{self:?}",
                layer.name,
                layer.status
            );
        }
        assert!(self.extra.is_empty(), "more than one frame: {self:?}");
    }

    fn assert_code(&self, code: i32) {
        assert_eq!(self.code, code, "{self:?}");
    }
}

/// Reads the `SandboxListener` frame with its descriptor, if the init sent one.
fn take_listener(sock: &UnixStream) -> Option<std::os::fd::OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; frame::HEADER_LEN + 1];
    let (bytes, fd) = {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        let mut fd = None;
        for c in msg.cmsgs().ok()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: the descriptor was just received with SCM_RIGHTS; we own it.
                    fd = Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        (msg.bytes, fd)
    };
    if bytes < frame::HEADER_LEN {
        return None; // the launcher failed and sent no listener
    }
    let body = &buf[frame::HEADER_LEN..bytes];
    assert!(
        matches!(
            frame::decode::<AgentFrame>(body),
            Ok(AgentFrame::SandboxListener)
        ),
        "second frame is not the sandbox listener"
    );
    fd
}

/// Answers every notification of the listener until no process uses the filter (denials
/// EPERM, the calls the kernel looks at — paths, signals, new processes, large mappings —
/// CONTINUE); returns how many there were.
fn serve_denials(fd: std::os::fd::OwnedFd) -> usize {
    let raw = fd.as_raw_fd();
    let mut served = 0;
    loop {
        let mut p = libc::pollfd {
            fd: raw,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes exactly the one pollfd `p`.
        if unsafe { libc::poll(&mut p, 1, 30_000) } <= 0 {
            return served;
        }
        if p.revents & libc::POLLIN == 0 {
            return served; // hung up: the agent and its init are gone
        }
        // SAFETY: plain integers; all-zero is valid (and required by the kernel).
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes one seccomp_notif into `n`.
        if unsafe { libc::ioctl(raw, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) } < 0 {
            continue;
        }
        // The path and signal calls the kernel only looks at are let through, as it does.
        let notified =
            agentos_userspace::launch::seccomp::lets_through(i64::from(n.data.nr), &n.data.args);
        let mut resp = libc::seccomp_notif_resp {
            id: n.id,
            val: 0,
            error: if notified { 0 } else { -libc::EPERM },
            flags: if notified {
                libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
            } else {
                0
            },
        };
        // SAFETY: the ioctl reads one seccomp_notif_resp from `resp`.
        unsafe { libc::ioctl(raw, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        served += 1;
    }
}

fn sh(sb: &Sandbox, script: &str) -> Outcome {
    sb.run(&sb.spec("/bin/sh", &["-c", script]))
}

fn py(sb: &Sandbox, code: &str) -> Outcome {
    sb.run(&sb.spec("/usr/bin/python3", &["-I", "-c", code]))
}

/// The core promises, for one user: full report, scratch writable, secrets and the rest of the
/// filesystem not, no inet sockets.
fn core(who: As) {
    let sb = Sandbox::new(who);
    let out = sh(&sb, "echo hi > out.txt && cat out.txt && pwd");
    out.assert_code(0);
    out.assert_all_active();
    assert_eq!(out.stdout, format!("hi\n{}\n", sb.scratch.display()));
    // The scratch is a tmpfs of the jail's own: nothing of it is left on the host.
    assert_host_scratch_empty(&sb);

    // Not in the minimal root at all (and landlock would deny it if it were).
    let out = sh(&sb, "cat /etc/shadow");
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("No such file or directory")
            || out.stderr.contains("Permission denied"),
        "{out:?}"
    );

    let out = sh(&sb, "echo x > /tmp/agentos-launch-escape");
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!Path::new("/tmp/agentos-launch-escape").exists());

    let out = py(
        &sb,
        "import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n print('inet allowed')\nexcept PermissionError as e:\n print('inet', e.errno)\n",
    );
    out.assert_code(0);
    assert_eq!(out.stdout, "inet 1\n");
}

#[test]
fn core_as_me() {
    core(As::Me);
}

#[test]
fn core_unprivileged() {
    core(As::Nobody);
}

#[test]
fn report_details() {
    let sb = Sandbox::new(As::Me);
    let out = sb.run(&sb.spec("/bin/true", &[]));
    out.assert_code(0);
    out.assert_all_active();
    let LayerStatus::Active { detail } = out.status(LayerName::Landlock) else {
        unreachable!()
    };
    assert!(detail.starts_with("abi "), "{detail}");
    let LayerStatus::Active { detail } = out.status(LayerName::Seccomp) else {
        unreachable!()
    };
    assert!(detail.contains("syscalls allowed"), "{detail}");
}

/// The launcher joins the group the spec names before anything forks, so the agent's whole
/// tree is inside; a failed join is `Missing` with the path, fatal only when required.
#[test]
fn joins_the_cgroup_the_spec_names() {
    let sb = Sandbox::new(As::Me);
    let mut spec = sb.spec("/bin/sh", &["-c", "cat /proc/self/cgroup"]);
    spec.cgroup = CgroupSpec {
        procs: vec!["/nonexistent/agentos/cgroup.procs".into()],
        detail: "v1 pids: pids.max 16".into(),
        required: false,
    };
    let out = sb.run(&spec);
    out.assert_code(0);
    let LayerStatus::Missing { detail } = out.status(LayerName::Cgroup) else {
        panic!("{out:?}")
    };
    assert!(
        detail.contains("join cgroup /nonexistent/agentos/cgroup.procs"),
        "{detail}"
    );
    spec.cgroup.required = true;
    let out = sb.run(&spec);
    out.assert_code(EXIT_SANDBOX_FAILED);
    assert!(out.stderr.contains("join cgroup /nonexistent"), "{out:?}");

    let pids = Path::new("/sys/fs/cgroup/pids");
    if !is_root() || !pids.is_dir() {
        println!("joins_the_cgroup_the_spec_names: the real join needs root and cgroup v1 pids");
        return;
    }
    let name = format!("agentos-launcher-test-{}", std::process::id());
    let group = pids.join(&name);
    std::fs::create_dir(&group).unwrap();
    std::fs::write(group.join("pids.max"), "16").unwrap();
    // Through `cgroup.procs` (the whole process) and through v1 `tasks` (the writing thread:
    // what the kernel hands the launcher in v1, see `AgentGroup::join_files`). Either way the
    // agent and a process it forks (`cat … &`) are inside.
    spec.argv = vec![
        "sh".into(),
        "-c".into(),
        "cat /proc/self/cgroup & wait; cat /proc/self/cgroup".into(),
    ];
    let mut outs = Vec::new();
    for file in ["cgroup.procs", "tasks"] {
        spec.cgroup.procs = vec![group.join(file)];
        outs.push((file, sb.run(&spec)));
    }
    let _ = std::fs::remove_dir(&group);
    for (file, out) in outs {
        out.assert_code(0);
        assert_eq!(
            out.status(LayerName::Cgroup),
            &LayerStatus::Active {
                detail: "v1 pids: pids.max 16".into()
            },
            "{file}"
        );
        let inside = out
            .stdout
            .lines()
            .filter(|l| l.ends_with(&format!(":pids:/{name}")))
            .count();
        assert_eq!(inside, 2, "joined through {file}: {out:?}");
    }
}

/// An agent's launcher gets its socket as fd 0 (so the kernel can start it with posix_spawn):
/// it moves the socket to fd 3 before any jail step, so the jail, the single report on the
/// socket and the agent's view (stdin `/dev/null`, the socket at fd 3) are as with fd 3.
#[test]
fn takes_the_agent_socket_from_stdin() {
    let mut sb = Sandbox::new(As::Me);
    sb.socket_on_stdin = true;
    let spec = sb.spec(
        "/bin/sh",
        &[
            "-c",
            "readlink /proc/self/fd/0; test -S /proc/self/fd/3 && echo socket at 3; cat; echo stdin empty",
        ],
    );
    let out = sb.run(&spec);
    out.assert_code(0);
    out.assert_all_active();
    assert_eq!(
        out.stdout, "/dev/null\nsocket at 3\nstdin empty\n",
        "{out:?}"
    );
}

#[test]
fn exit_codes_propagate() {
    let sb = Sandbox::new(As::Me);
    sh(&sb, "exit 7").assert_code(7);
    sh(&sb, "kill -9 $$").assert_code(128 + 9);
    sh(&sb, "kill -SEGV $$").assert_code(128 + 11);
}

#[test]
fn sh_pipes_and_subprocesses() {
    let sb = Sandbox::new(As::Me);
    let out = sh(
        &sb,
        "echo a b c | tr ' ' '\\n' | wc -l; (sleep 0; echo sub) & wait; x=$(echo inner); echo $x",
    );
    out.assert_code(0);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["3", "sub", "inner"]
    );
    let out = sb.run(&sb.spec(
        "/bin/bash",
        &[
            "-c",
            "for i in 1 2; do echo $i | cat; done; echo $(hostname)",
        ],
    ));
    out.assert_code(0);
    assert_eq!(out.stdout, "1\n2\nagent-42\n");
}

#[test]
fn python_threads_subprocess_unix_sockets() {
    let sb = Sandbox::new(As::Me);
    let out = py(
        &sb,
        r#"
import json, os, socket, subprocess, threading
box = []
t = threading.Thread(target=lambda: box.append(1)); t.start(); t.join()
r = subprocess.run(["/bin/true"])
a, b = socket.socketpair(socket.AF_UNIX)
a.sendall(b"ping"); got = b.recv(4)
with open("data.json", "w") as f: json.dump({"ok": True}, f)
print(json.dumps([box, r.returncode, got.decode(), os.getpid()]))
"#,
    );
    out.assert_code(0);
    // The agent is pid 2 of its namespace (the init is pid 1).
    assert_eq!(out.stdout, "[[1], 0, \"ping\", 2]\n", "{out:?}");
}

#[test]
fn python_cannot_unshare_or_see_other_fds() {
    let sb = Sandbox::new(As::Me);
    let out = py(
        &sb,
        r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
for flag in (CLONE_NEWUSER, CLONE_NEWNS):
    rc = libc.unshare(flag)
    print("unshare", rc, ctypes.get_errno())
rc = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
print("mount", rc, ctypes.get_errno())
rc = libc.syscall(435, None, 0)  # clone3: ENOSYS, so libc falls back to clone
print("clone3", rc, ctypes.get_errno())
rc = libc.syscall(452, -100, b"/tmp", 0o755, 0x100)  # fchmodat2: ENOSYS, libc falls back
print("fchmodat2", rc, ctypes.get_errno())
rc = libc.ioctl(0, 0x5412, ctypes.c_char_p(b"x"))  # TIOCSTI
print("tiocsti", rc, ctypes.get_errno())
try:
    os.fstat(4); print("fd 4 open")
except OSError as e:
    print("fd4", e.errno)
os.fstat(3); print("fd3 ok")
"#,
    );
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "unshare -1 1\nunshare -1 1\nmount -1 1\nclone3 -1 38\nfchmodat2 -1 38\ntiocsti -1 1\nfd4 9\nfd3 ok\n",
        "{out:?}"
    );
}

#[test]
fn environment_is_exactly_the_spec() {
    let sb = Sandbox::new(As::Me);
    let mut spec = sb.spec("/usr/bin/env", &[]);
    spec.env = vec![("A".into(), "1".into()), ("B".into(), "two words".into())];
    let out = sb.run(&spec);
    out.assert_code(0);
    assert_eq!(out.stdout, "A=1\nB=two words\n");
}

#[test]
fn missing_program_exits_127() {
    let sb = Sandbox::new(As::Me);
    let out = sb.run(&sb.spec("/usr/bin/agentos-no-such-program", &[]));
    out.assert_code(127);
    out.assert_all_active();
    assert_eq!(
        out.stderr,
        "agentos-launch: exec /usr/bin/agentos-no-such-program: No such file or directory (os error 2)\n"
    );
}

#[test]
fn missing_scratch_fails_125_with_report() {
    let sb = Sandbox::new(As::Me);
    let mut spec = sb.spec("/bin/true", &[]);
    spec.scratch = sb.scratch.join("does-not-exist");
    let out = sb.run(&spec);
    out.assert_code(EXIT_SANDBOX_FAILED);
    assert_eq!(
        out.stderr,
        format!(
            "agentos-launch: scratch directory {}: No such file or directory (os error 2)\n",
            spec.scratch.display()
        )
    );
    assert_eq!(out.report().layers.len(), LAYERS.len());
    assert!(out
        .report()
        .layers
        .iter()
        .all(|l| matches!(l.status, LayerStatus::Missing { .. })));
}

#[test]
fn wrong_kernel_pid_fails_125() {
    let sb = Sandbox::new(As::Me);
    let mut spec = sb.spec("/bin/true", &[]);
    spec.kernel_pid = 1;
    let out = sb.run(&spec);
    out.assert_code(EXIT_SANDBOX_FAILED);
    assert!(
        out.stderr.starts_with("agentos-launch: parent check"),
        "{out:?}"
    );
    assert!(out.report.is_some());
}

#[test]
fn no_spec_fails_125() {
    let sb = Sandbox::new(As::Me);
    let out = sb.run_json(None);
    out.assert_code(EXIT_SANDBOX_FAILED);
    assert_eq!(
        out.stderr,
        format!("agentos-launch: read spec from {SPEC_ENV}: environment variable not found\n")
    );
    assert!(out
        .report()
        .layers
        .iter()
        .all(|l| matches!(l.status, LayerStatus::Missing { .. })));
    let out = sb.run_json(Some("{\"agent_id\": 1}".into()));
    out.assert_code(EXIT_SANDBOX_FAILED);
    assert!(
        out.stderr
            .starts_with("agentos-launch: parse spec: missing field"),
        "{out:?}"
    );
}

const RUST_AGENT_ENV: &str = "AGENTOS_TEST_RUST_AGENT";

/// Not a test on its own: the body of the Rust agent `rust_std_agent` runs in the jail (this
/// very test binary, re-executed with `--exact rust_agent_helper`).
#[test]
fn rust_agent_helper() {
    if std::env::var_os(RUST_AGENT_ENV).is_none() {
        return;
    }
    use std::io::Write;
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        buf
    });
    a.write_all(b"pong").unwrap();
    assert_eq!(&t.join().unwrap(), b"pong");
    let inet = std::net::TcpListener::bind("127.0.0.1:0").unwrap_err();
    assert_eq!(inet.raw_os_error(), Some(libc::EPERM));
    let workers: Vec<_> = (0..4).map(|i| std::thread::spawn(move || i * 2)).collect();
    let sum: i32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    std::fs::write("rust-agent.txt", format!("threads {sum}")).unwrap();
    println!("{}", std::fs::read_to_string("rust-agent.txt").unwrap());
}

/// The host directory under the jail's scratch tmpfs holds nothing after the run.
fn assert_host_scratch_empty(sb: &Sandbox) {
    let left: Vec<_> = std::fs::read_dir(&sb.scratch)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left on the host: {left:?}");
}

/// The scratch is a tmpfs of the spec's size, mode 0700, owned by the agent; writes past it
/// fail; every mount of the jail is nosuid, and nodev unless it is a device; nothing is left.
fn scratch_and_mount_flags(who: As) {
    let sb = Sandbox::new(who);
    let mut spec = sb.spec(
        "/bin/sh",
        &[
            "-c",
            "stat -f -c '%T %b %S' .; stat -c '%a %u' .; id -u; \
             head -c 2000000 /dev/zero > big; echo rc=$?; \
             grep -vc nosuid /proc/self/mountinfo; \
             grep -v nodev /proc/self/mountinfo | grep -vc ' /dev/[a-z]* '",
        ],
    );
    spec.limits.scratch_bytes = 1 << 20;
    let out = sb.run(&spec);
    out.assert_all_active();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "tmpfs 256 4096", "{out:?}");
    let uid = lines[2];
    assert_eq!(lines[1], format!("700 {uid}"), "{out:?}");
    assert_eq!(lines[3..], ["rc=1", "0", "0"], "{out:?}");
    assert_host_scratch_empty(&sb);
}

#[test]
fn scratch_is_a_bounded_tmpfs_and_every_mount_is_nosuid_as_me() {
    scratch_and_mount_flags(As::Me);
}

#[test]
fn scratch_is_a_bounded_tmpfs_and_every_mount_is_nosuid_unprivileged() {
    scratch_and_mount_flags(As::Nobody);
}

#[test]
fn rust_std_agent() {
    let sb = Sandbox::new(As::Me);
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let mut spec = sb.spec(
        exe,
        &[
            "--exact",
            "rust_agent_helper",
            "--nocapture",
            "--test-threads=1",
        ],
    );
    spec.env.push((RUST_AGENT_ENV.into(), "1".into()));
    let out = sb.run(&spec);
    out.assert_code(0);
    out.assert_all_active();
    assert!(out.stdout.contains("threads 12\n"), "{out:?}");
    assert_host_scratch_empty(&sb);
}

#[test]
fn background_children_die_with_the_agent() {
    // If the sleeper survived the agent, it would hold stdout open and the launcher's output
    // would not end for 60 s; the init kills the namespace as soon as the agent exits.
    let sb = Sandbox::new(As::Me);
    let start = std::time::Instant::now();
    sh(&sb, "sleep 60 & sleep 60 & exit 3").assert_code(3);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
}

/// Landlock below ABI 9 does not mediate `connect()` to pathname unix sockets; the minimal
/// root does: a host socket outside the allowed paths does not exist for the agent.
fn pathname_unix_socket_unreachable(who: As) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("host.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sb = Sandbox::new(who);
    let code = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n s.connect({:?}); print('connected')\nexcept OSError as e:\n print('refused', e.errno)\n",
        path.to_str().unwrap()
    );
    let out = py(&sb, &code);
    out.assert_code(0);
    assert_eq!(out.stdout, format!("refused {}\n", libc::ENOENT), "{out:?}");
    assert!(listener.accept().is_err(), "something connected");
}

#[test]
fn pathname_unix_socket_outside_the_jail_is_unreachable() {
    pathname_unix_socket_unreachable(As::Me);
}

#[test]
fn pathname_unix_socket_outside_the_jail_is_unreachable_unprivileged() {
    pathname_unix_socket_unreachable(As::Nobody);
}

/// The first component of every path of the spec that exists, plus `proc`: what `ls /` shows.
fn expected_top_level(spec: &JailSpec) -> Vec<String> {
    let mut paths: Vec<&PathBuf> = spec.read_exec.iter().collect();
    paths.extend(&spec.read_only);
    paths.extend(&spec.devices);
    paths.push(&spec.scratch);
    paths.push(&spec.program);
    let mut top: Vec<String> = paths
        .iter()
        .filter(|p| p.exists())
        .filter_map(|p| p.components().nth(1))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .chain(["proc".to_string()])
        .collect();
    top.sort();
    top.dedup();
    top
}

/// The agent sees only the allowed tree, read-only where it should be, and its own `/proc`.
fn minimal_root(who: As) {
    let sb = Sandbox::new(who);
    let spec = sb.spec(
        "/usr/bin/python3",
        &[
            "-I",
            "-c",
            r#"
import errno, os
print(sorted(os.listdir("/")))
for p in ("/etc/shadow", "/etc/passwd", "/home", "/root", "/var"):
    try:
        os.stat(p); print(p, "exists")
    except OSError as e:
        print(p, errno.errorcode[e.errno])
print(sorted(os.listdir("/proc/self/fd"), key=int))
print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), os.getpid())
for p in ("/usr/agentos-x", "/agentos-x", "/etc/agentos-x"):
    try:
        open(p, "w"); print(p, "written")
    except OSError as e:
        print(p, errno.errorcode[e.errno])
with open("ok.txt", "w") as f: f.write("ok")
print(open("/proc/1/comm").read().strip() if os.path.exists("/proc/1/comm") else "no comm")
"#,
        ],
    );
    let out = sb.run(&spec);
    out.assert_code(0);
    out.assert_all_active();
    let LayerStatus::Active { detail } = out.status(LayerName::Rootfs) else {
        unreachable!()
    };
    assert!(detail.contains("proc mounted"), "{detail}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let top = expected_top_level(&spec);
    assert_eq!(lines[0], format!("{top:?}").replace('"', "'"), "{out:?}");
    assert_eq!(
        lines[1..6],
        [
            "/etc/shadow ENOENT",
            "/etc/passwd ENOENT",
            "/home ENOENT",
            "/root ENOENT",
            "/var ENOENT"
        ],
        "{out:?}"
    );
    // 0-3 and the descriptor listing the directory.
    assert_eq!(lines[6], "['0', '1', '2', '3', '4']", "{out:?}");
    // Only the agent's pid namespace: the init (1) and the agent (2).
    assert_eq!(lines[7], "[1, 2] 2", "{out:?}");
    // Read-only mounts refuse before landlock is asked (EROFS, not EACCES).
    assert_eq!(
        lines[8..11],
        [
            "/usr/agentos-x EROFS",
            "/agentos-x EROFS",
            "/etc/agentos-x EROFS"
        ],
        "{out:?}"
    );
    assert_eq!(lines[11], "agentos-launch", "{out:?}");
    assert_host_scratch_empty(&sb);
}

#[test]
fn minimal_root_as_me() {
    minimal_root(As::Me);
}

#[test]
fn minimal_root_unprivileged() {
    minimal_root(As::Nobody);
}

#[test]
fn rootfs_failure_is_reported_and_fatal_when_required() {
    // With `/` itself allowed, every staging directory lies inside a bind source: the minimal
    // root cannot be built.
    let sb = Sandbox::new(As::Me);
    let mut spec = sb.spec("/bin/true", &[]);
    spec.read_only.push("/".into());
    let out = sb.run(&spec);
    out.assert_code(EXIT_SANDBOX_FAILED);
    assert!(
        out.stderr
            .starts_with("agentos-launch: minimal root: no staging directory"),
        "{out:?}"
    );
    assert!(
        matches!(out.status(LayerName::Rootfs), LayerStatus::Missing { detail } if detail.contains("no staging directory")),
        "{out:?}"
    );

    spec.require_full = false;
    let out = sb.run(&spec);
    out.assert_code(0);
    assert!(
        matches!(out.status(LayerName::Rootfs), LayerStatus::Missing { .. }),
        "{out:?}"
    );
    assert!(
        matches!(out.status(LayerName::Landlock), LayerStatus::Active { .. }),
        "{out:?}"
    );
}

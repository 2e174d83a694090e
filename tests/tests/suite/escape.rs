//! Attacks on the kernel from inside a real sandboxed agent. (The full escape suite belongs to
//! the ring-3 hardening work; these are the ones the lifecycle depends on.)

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{write_policy, TestKernel};

#[test]
fn an_agent_cannot_drive_its_kernel_through_the_control_socket() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "attack", "strict", &["SIGTERM"], "");
    let sock = k.state_dir.join("kernel.sock");
    let id = k.spawn(&policy, &["connect", sock.to_str().unwrap()]);
    let last = k.wait(id);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(!log.contains("ESCAPED"), "{log}");
    // Either the socket is not even reachable from the jail, or the kernel refuses the peer and
    // ends the agent (strict mode) with SIGTRUST.
    if log.contains("kernel refused") {
        assert!(log.contains("another pid namespace"), "{log}");
        assert_eq!(last["exit"]["signal"], "SIGTRUST", "{last}");
        let recorded = k.records().into_iter().any(|r| {
            r.agent.map(|a| a.0) == Some(id)
                && matches!(&r.event, RecordEvent::ProtocolViolation { reason } if reason.contains("control socket"))
        });
        assert!(recorded, "the attempt must be in the flight recorder");
    } else {
        assert!(log.contains("connect failed"), "{log}");
    }
    // The kernel still answers promptly.
    assert!(k.ctl_ok(&["ps", "-a"]).contains(&id.to_string()));
}

// ---------------------------------------------------------------------------------------------
// The escape suite: one test per attempt, each from inside a real jailed agent
// (`agentos-test-agent attack NAME [ARG]`, see `agentos_tests::attack`).

use std::time::{Duration, Instant};

use agentos_tests::wait_until;

/// Runs attack `name` in a fresh agent; returns the agent id and its verdict line.
fn attack(k: &TestKernel, name: &str, arg: Option<&str>) -> (u64, String) {
    let policy = write_policy(&k.work, "attack", "strict", &[], "");
    let mut args = vec!["attack", name];
    args.extend(arg);
    let id = k.spawn(&policy, &args);
    let line = k.wait_for_line(id, &format!("attack {name}:"));
    println!("{line}");
    (id, line)
}

/// The verdict says blocked, with one of `errnos`.
fn assert_blocked(line: &str, errnos: &[&str]) {
    assert!(!line.contains("ESCAPED"), "{line}");
    let errno = line.rsplit(' ').next().unwrap_or("");
    assert!(
        line.contains(": blocked ") && errnos.contains(&errno),
        "expected blocked with one of {errnos:?}: {line}"
    );
}

/// `agentctl ps` answers within 2 s.
fn assert_kernel_answers(k: &TestKernel) {
    let start = Instant::now();
    k.ctl_ok(&["ps"]);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "agentctl ps took {took:?}");
}

/// A `SandboxDenied` record of `syscall` with the agent's id is in the flight recorder.
fn assert_sandbox_event(k: &TestKernel, id: u64, syscall: &str) {
    wait_until(
        &format!("a sandbox event for {syscall} of agent {id}"),
        || {
            k.records().iter().any(|r| {
            r.agent.map(|a| a.0) == Some(id)
                && matches!(&r.event, RecordEvent::SandboxDenied { syscall: s, .. } if s == syscall)
        })
        },
    );
}

/// A `SandboxAccess` record of `syscall` (or a variant of it: `readlink`/`readlinkat`) with the
/// agent's id, whose target contains `target`, is in the flight recorder: an attempt the jail refused, seen through the seccomp listener.
fn assert_access_event(k: &TestKernel, id: u64, syscall: &str, target: &str) {
    wait_until(
        &format!("a sandbox access event for {syscall} {target} of agent {id}"),
        || {
            k.records().iter().any(|r| {
                r.agent.map(|a| a.0) == Some(id)
                    && matches!(&r.event, RecordEvent::SandboxAccess { syscall: s, target: t, .. }
                        if s.starts_with(syscall) && t.contains(target))
            })
        },
    );
}

/// The agent's `SandboxAccess` records (once it has ended, so all of them).
fn access_events(k: &TestKernel, id: u64) -> Vec<RecordEvent> {
    k.records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .map(|r| r.event)
        .filter(|e| matches!(e, RecordEvent::SandboxAccess { .. }))
        .collect()
}

/// A syscall-level attack: denied EPERM by seccomp, recorded as a sandbox event.
fn syscall_attack(name: &str, arg: Option<&str>, syscall: &str) {
    syscall_attack_on(&TestKernel::start(), name, arg, syscall);
}

fn syscall_attack_on(k: &TestKernel, name: &str, arg: Option<&str>, syscall: &str) {
    let (id, line) = attack(k, name, arg);
    assert_blocked(&line, &["EPERM"]);
    assert_kernel_answers(k);
    assert_sandbox_event(k, id, syscall);
}

/// A file-level attack: refused by the minimal root or landlock, recorded as a sandbox
/// access event of `syscall` on `target`.
/// The file-level attacks: (attack, errnos the jail may answer, accessing syscall, target).
const FILE_ATTACKS: &[(&str, &[&str], &str, &str)] = &[
    ("shadow", &["ENOENT", "EACCES"], "openat", "/etc/shadow"),
    (
        "write-outside",
        &["ENOENT", "EACCES", "EROFS", "EPERM"],
        "openat",
        "/etc/agentos-escape",
    ),
    ("symlink", &["ENOENT", "EACCES"], "openat", "shadow-link"),
    (
        "hardlink",
        &["EXDEV", "EACCES", "EPERM", "ENOENT"],
        "linkat",
        "/usr/bin/env",
    ),
    (
        "proc-root",
        &["ENOENT", "EACCES"],
        "openat",
        "/proc/self/root/../../etc/shadow",
    ),
    ("dev-fd", &["ENOENT", "EACCES"], "readlink", "/dev/fd/3"),
    // The path writes: the read-only bind of /usr answers EROFS before landlock looks
    // (truncate checks the inode's write permission first: EACCES for a kernel's uid 65534).
    (
        "mkdir-outside",
        &["EROFS"],
        "mkdirat",
        "/usr/agentos-escape-dir",
    ),
    ("unlink-runtime", &["EROFS"], "unlinkat", "/usr/bin/env"),
    ("rmdir-runtime", &["EROFS"], "unlinkat", "/usr/share"),
    ("chmod-runtime", &["EROFS"], "fchmodat", "/usr/bin/env"),
    ("chown-runtime", &["EROFS"], "fchownat", "/usr/bin/env"),
    (
        "truncate-runtime",
        &["EROFS", "EACCES"],
        "truncate",
        "/usr/bin/env",
    ),
    ("utimensat-runtime", &["EROFS"], "utimensat", "/usr/bin/env"),
    // A device is bound read-only (its data stays writable): the agent of a root kernel is
    // uid 0, the owner of the host's /dev/null, and could chmod it otherwise.
    ("chmod-device", &["EROFS"], "fchmodat", "/dev/null"),
    // The runtime file again, named by the magic link of a descriptor the agent opened.
    ("chmod-proc-fd", &["EROFS"], "fchmodat", "/proc/self/fd/"),
];

/// Runs the file-level attack `name` of [`FILE_ATTACKS`] on a kernel of its own.
fn file_attack(name: &str) {
    let (name, errnos, syscall, target) = FILE_ATTACKS
        .iter()
        .find(|a| a.0 == name)
        .copied()
        .unwrap_or_else(|| panic!("no file attack `{name}`"));
    file_attack_on(&TestKernel::start(), name, errnos, syscall, target);
}

fn file_attack_on(k: &TestKernel, name: &str, errnos: &[&str], syscall: &str, target: &str) {
    let (id, line) = attack(k, name, None);
    assert_blocked(&line, errnos);
    assert_kernel_answers(k);
    assert_access_event(k, id, syscall, target);
}

macro_rules! syscall_attacks {
    ($($test:ident: $name:literal => $syscall:literal;)*) => {
        $(
            #[test]
            fn $test() {
                syscall_attack($name, None, $syscall);
            }
        )*
        /// Every attack above as (attack, denied syscall), for the unprivileged run.
        const SYSCALL_ATTACKS: &[(&str, &str)] = &[$(($name, $syscall)),*];
    };
}

syscall_attacks! {
    escape_mount: "mount" => "mount";
    escape_umount2: "umount2" => "umount2";
    escape_pivot_root: "pivot_root" => "pivot_root";
    escape_chroot: "chroot" => "chroot";
    escape_unshare_user: "unshare-user" => "unshare";
    escape_setns: "setns" => "setns";
    escape_setuid: "setuid" => "setuid";
    escape_capset: "capset" => "capset";
    escape_personality: "personality" => "personality";
    escape_tiocsti: "tiocsti" => "ioctl";
    escape_tcp_socket: "tcp" => "socket";
    escape_udp_dns_socket: "udp-dns" => "socket";
    escape_ipv6_socket: "ipv6" => "socket";
    escape_raw_socket: "raw" => "socket";
    escape_netlink_socket: "netlink" => "socket";
    escape_packet_socket: "packet" => "socket";
    escape_io_uring_setup: "io_uring_setup" => "io_uring_setup";
    escape_memfd_create: "memfd_create" => "memfd_create";
    escape_execveat: "execveat" => "execveat";
    escape_bpf: "bpf" => "bpf";
    escape_userfaultfd: "userfaultfd" => "userfaultfd";
    escape_perf_event_open: "perf_event_open" => "perf_event_open";
    escape_keyctl: "keyctl" => "keyctl";
    escape_modify_ldt: "modify_ldt" => "modify_ldt";
    escape_init_module: "init_module" => "init_module";
    escape_kexec_load: "kexec_load" => "kexec_load";
    escape_reboot: "reboot" => "reboot";
    escape_syslog: "syslog" => "syslog";
    escape_mknod: "mknod" => "mknodat";
    escape_setxattr_runtime_file: "setxattr" => "setxattr";
}

#[test]
fn escape_ptrace_kernel() {
    escape_ptrace_kernel_on(&TestKernel::start());
}

fn escape_ptrace_kernel_on(k: &TestKernel) {
    let pid = k.kernel_pid().to_string();
    let (id, line) = attack(k, "ptrace", Some(&pid));
    assert_blocked(&line, &["EPERM"]);
    assert_kernel_answers(k);
    assert_sandbox_event(k, id, "ptrace");
}

#[test]
fn escape_process_vm_writev_kernel() {
    escape_process_vm_writev_kernel_on(&TestKernel::start());
}

fn escape_process_vm_writev_kernel_on(k: &TestKernel) {
    let pid = k.kernel_pid().to_string();
    let (id, line) = attack(k, "process_vm_writev", Some(&pid));
    assert_blocked(&line, &["EPERM"]);
    assert_kernel_answers(k);
    assert_sandbox_event(k, id, "process_vm_writev");
}

#[test]
fn escape_read_etc_shadow() {
    file_attack("shadow");
}

#[test]
fn escape_write_outside_scratch() {
    file_attack("write-outside");
}

/// The Python and TypeScript SDKs the kernel writes for every agent are shared by all of
/// them: an agent can neither add a file beside them nor change, truncate, unlink or chmod
/// one, and the kernel's copies stay as embedded.
#[test]
fn escape_poison_the_shared_sdks() {
    let k = TestKernel::start();
    let (_, line) = attack(&k, "poison-sdk", None);
    assert_blocked(&line, &["EACCES", "EROFS", "EPERM"]);
    assert_kernel_answers(&k);
    let embedded =
        std::fs::read(agentos_tests::repo_root().join("userspace/typescript/src/index.js"))
            .expect("the TypeScript SDK source");
    let python = k.state_dir.join("sdk/python/agentos/__init__.py");
    assert_eq!(
        std::fs::read(&python).expect("the kernel's Python SDK"),
        std::fs::read(agentos_tests::repo_root().join("userspace/python/agentos/__init__.py"))
            .expect("the Python SDK source")
    );
    let installed = walk_files(&k.state_dir.join("sdk/node"))
        .into_iter()
        .find(|p| p.ends_with("src/index.js") || p.ends_with("agentos/index.js"))
        .expect("index.js in the kernel's Node SDK");
    assert_eq!(std::fs::read(installed).expect("read"), embedded);
}

/// Every file below `dir`.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn escape_symlink_out_of_scratch() {
    file_attack("symlink");
}

#[test]
fn escape_hardlink_out_of_scratch() {
    file_attack("hardlink");
}

#[test]
fn escape_proc_self_root() {
    file_attack("proc-root");
}

#[test]
fn escape_mkdir_outside_scratch() {
    file_attack("mkdir-outside");
}

#[test]
fn escape_unlink_runtime_file() {
    file_attack("unlink-runtime");
}

#[test]
fn escape_rmdir_runtime_dir() {
    file_attack("rmdir-runtime");
}

#[test]
fn escape_chmod_runtime_binary() {
    file_attack("chmod-runtime");
}

#[test]
fn escape_chown_runtime_binary() {
    file_attack("chown-runtime");
}

#[test]
fn escape_truncate_runtime_file() {
    file_attack("truncate-runtime");
}

#[test]
fn escape_utimensat_runtime_file() {
    file_attack("utimensat-runtime");
}

#[test]
fn escape_chmod_device() {
    file_attack("chmod-device");
}

#[test]
fn escape_chmod_through_proc_self_fd() {
    file_attack("chmod-proc-fd");
}

#[test]
fn escape_proc_pid_mem() {
    escape_proc_pid_mem_on(&TestKernel::start());
}

fn escape_proc_pid_mem_on(k: &TestKernel) {
    let pid = k.kernel_pid().to_string();
    let (id, line) = attack(k, "proc-mem", Some(&pid));
    assert_blocked(&line, &["ENOENT", "EACCES", "EPERM"]);
    assert_kernel_answers(k);
    // Its own init's memory for writing (read-only for the agent), then the kernel's (not in
    // its root): both recorded.
    assert_access_event(k, id, "openat", "/proc/1/mem");
    assert_access_event(k, id, "openat", &format!("/proc/{pid}/mem"));
}

#[test]
fn escape_dev_fd_of_inherited_fd() {
    file_attack("dev-fd");
}

#[test]
fn escape_proc_self_fd_shows_only_0_to_3() {
    escape_proc_self_fd_shows_only_0_to_3_on(&TestKernel::start());
}

fn escape_proc_self_fd_shows_only_0_to_3_on(k: &TestKernel) {
    // "blocked EBADF" is the agent's way of saying: nothing but 0–3 (and the listing) is open.
    let (id, line) = attack(k, "proc-fd", None);
    assert_blocked(&line, &["EBADF"]);
    assert_kernel_answers(k);
    // Listing its own descriptors is no attempt to get out: nothing to record.
    k.wait(id);
    assert_eq!(
        access_events(k, id),
        [],
        "no sandbox access event for a legitimate listing"
    );
}

#[test]
fn escape_connect_control_socket() {
    escape_connect_control_socket_on(&TestKernel::start());
}

fn escape_connect_control_socket_on(k: &TestKernel) {
    let sock = k.state_dir.join("kernel.sock");
    let (id, line) = attack(k, "connect", sock.to_str());
    assert_blocked(&line, &["ENOENT", "EACCES", "ECONNREFUSED"]);
    assert_kernel_answers(k);
    assert_access_event(k, id, "connect", sock.to_str().unwrap());
}

#[test]
fn escape_abstract_unix_socket() {
    escape_abstract_unix_socket_on(&TestKernel::start());
}

fn escape_abstract_unix_socket_on(k: &TestKernel) {
    // A listener on the host's abstract namespace: another network namespace and the landlock
    // scope keep the agent from it.
    use std::os::linux::net::SocketAddrExt;
    let name = format!("agentos-escape-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let (id, line) = attack(k, "abstract", Some(&name));
    assert_blocked(&line, &["ECONNREFUSED", "EPERM", "ENOENT"]);
    assert_kernel_answers(k);
    assert_access_event(k, id, "connect", &format!("@{name}"));
}

/// The init the zygote cloned ahead for the next agent waits beside the running agents: none
/// of them can reach it. An agent spawned before it learns its host pid (written where the
/// agent can read it once the init exists) and tries to SIGKILL and to ptrace it: the pid
/// names nothing in the agent's pid namespace, ptrace is refused outright, and the waiting
/// init — in namespaces of its own, none shared with the attacker or the kernel — goes on to
/// serve the next agent.
#[test]
fn escape_an_agent_cannot_reach_the_init_waiting_for_the_next() {
    let k = TestKernel::start();
    let kernel = k.kernel_pid();
    let policy = write_policy(&k.work, "attack", "strict", &[], "");
    let mut agents = Vec::new();
    // The pid goes through the one host dir the jail shows read-only to every agent (the
    // Python SDK's, bind-mounted live); its scratch dir is a tmpfs of its own.
    let file = k.state_dir.join("sdk/python/waiting-init-pid");
    let arg = format!("@{}", file.display());
    for name in ["kill-pid", "ptrace"] {
        let _ = std::fs::remove_file(&file);
        let id = k.spawn(&policy, &["attack", name, &arg]);
        let attacker = k.launcher_pid(id);
        agents.push(attacker);
        let waiting = agentos_tests::waiting_init(kernel, &agents);
        for ns in ["user", "pid", "net", "mnt", "ipc", "uts"] {
            let of = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).unwrap();
            assert_ne!(of(waiting), of(attacker), "{ns} shared with the attacker");
            assert_ne!(of(waiting), of(kernel), "{ns} shared with the kernel");
        }
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, waiting.to_string()).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let line = k.wait_for_line(id, &format!("attack {name}:"));
        println!("{line} (waiting init {waiting})");
        assert_blocked(&line, &["ESRCH", "EPERM"]);
        assert!(
            agentos_tests::proc_state(waiting).is_some_and(|s| s != 'Z'),
            "the waiting init {waiting} did not survive `{name}`"
        );
        // It serves the next agent, whole.
        let next = k.spawn(&policy, &["echo"]);
        assert_eq!(k.info(next)["pid"].as_u64(), Some(u64::from(waiting)));
        assert_eq!(k.wait(next)["exit"]["code"], 0);
        assert!(k.logs(next).contains("echo ping"), "{}", k.logs(next));
        agents.push(waiting);
    }
    assert_kernel_answers(&k);
}

#[test]
fn escape_kill_kernel_and_sibling() {
    escape_kill_kernel_and_sibling_on(&TestKernel::start());
}

fn escape_kill_kernel_and_sibling_on(k: &TestKernel) {
    let policy = write_policy(&k.work, "sibling", "strict", &[], "");
    let sibling = k.spawn(&policy, &["park"]);
    k.wait_for_line(sibling, "ready");
    let sibling_pid = k.launcher_pid(sibling).to_string();
    let kernel_pid = k.kernel_pid().to_string();
    let (id, line) = attack(k, "kill-pid", Some(&kernel_pid));
    assert_blocked(&line, &["ESRCH", "EPERM"]);
    assert_access_event(k, id, "kill", &format!("pid {kernel_pid}"));
    let (id, line) = attack(k, "kill-pid", Some(&sibling_pid));
    assert_blocked(&line, &["ESRCH", "EPERM"]);
    assert_access_event(k, id, "kill", &format!("pid {sibling_pid}"));
    let (id, line) = attack(k, "kill-all", None);
    // kill(-1) reaches nothing outside the agent's own pid namespace.
    assert!(
        !line.contains("ESCAPED") || line.contains("ESCAPED ()"),
        "{line}"
    );
    assert_access_event(k, id, "kill", "pid -1");
    // The sibling's own end (its init's final kill(-1) sweep) is no attack.
    assert_eq!(
        access_events(k, sibling),
        [],
        "{:?}",
        access_events(k, sibling)
    );
    assert_kernel_answers(k);
    assert_eq!(k.info(sibling)["state"], "running", "{}", k.info(sibling));
}

/// 100,000 denied syscalls in a loop: the kernel keeps answering, the recorder grows by a
/// bounded number of records (a burst per window plus one summary), and the counts are exact.
#[test]
fn a_flood_of_denied_syscalls_is_recorded_bounded_and_exact() {
    const N: u64 = 100_000;
    // kernel/src/sandbox.rs: FLOOD_BURST records of their own per syscall per 1 s window.
    const BURST: u64 = 16;
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "flood", "strict", &[], "");
    let started = Instant::now();
    let id = k.spawn(&policy, &["attack", "flood", &N.to_string()]);
    k.wait_for_line(id, "flooding");
    assert_kernel_answers(&k);
    let line = k.wait_for_line(id, "attack flood:");
    assert_blocked(&line, &["EPERM"]);
    assert_kernel_answers(&k);
    k.wait(id);
    let took = started.elapsed();
    let events: Vec<RecordEvent> = k
        .records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .map(|r| r.event)
        .collect();
    let own = events
        .iter()
        .filter(|e| matches!(e, RecordEvent::SandboxDenied { syscall, .. } if syscall == "syslog"))
        .count() as u64;
    let summaries: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            RecordEvent::SandboxFlood {
                syscall,
                suppressed,
                ..
            } if syscall == "syslog" => Some(*suppressed),
            _ => None,
        })
        .collect();
    let windows = took.as_secs() + 2;
    println!(
        "{N} denied syscalls in {took:?}: {own} records of their own, {} summaries",
        summaries.len()
    );
    assert_eq!(
        own + summaries.iter().sum::<u64>(),
        N,
        "every denial counted once"
    );
    assert!(
        own <= BURST * windows && summaries.len() as u64 <= windows,
        "{own} records and {} summaries for {windows} windows",
        summaries.len()
    );
    assert!(
        events.len() < 1_000,
        "{} records for the agent",
        events.len()
    );
}

/// Ordinary work (files in scratch, a symlink and a rename there, reading the runtime, a
/// signal to itself; directories made and removed, modes, owners, times and lengths changed in
/// scratch, `mkdir -p` over existing directories) by a shell and a Python agent records no
/// sandbox access event.
#[test]
fn ordinary_agents_record_no_sandbox_access() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "plain", "strict", &[], "");
    let sh = "echo hi > f; ln -s f g; ln f h; mv h i; cat g; cat /etc/localtime > /dev/null; kill -0 $$; echo done";
    let sh_dirs = "set -e; mkdir d; mkdir -p d/e/f \"$PWD/d/e\"; touch d/t; touch -d @0 d/t; \
        chmod 600 d/t; chmod -R u+rwX d; chown \"+$(stat -c %u d/t):+$(stat -c %g d/t)\" d/t; truncate -s 10 d/t; \
        ln -s t d/l; rm d/t d/l; rmdir d/e/f; rm -r d; echo done";
    let py = "import os, subprocess; open('x', 'w').write('1'); os.rename('x', 'y'); os.symlink('y', 'z'); print(open('z').read()); os.readlink('z'); os.kill(os.getpid(), 0); subprocess.run(['/bin/true']); print('done')";
    let py_dirs = "import os, shutil, tempfile
os.makedirs('a/b/c', exist_ok=True); os.makedirs(os.path.abspath('a/b'), exist_ok=True)
open('a/f', 'w').write('x'); os.chmod('a/f', 0o600); os.utime('a/f'); os.utime('a/f', (0, 0))
os.truncate('a/f', 0); os.chown('a/f', os.getuid(), os.getgid())
with open('a/f') as f: os.utime(f.fileno())
os.chmod('a/f', 0o644, follow_symlinks=False)
d = tempfile.mkdtemp(); os.rmdir(d)
os.unlink('a/f'); shutil.rmtree('a'); print('done')";
    for args in [
        &["/bin/sh", "-c", sh][..],
        &["/bin/sh", "-c", sh_dirs][..],
        &["/usr/bin/python3", "-I", "-c", py][..],
        &["/usr/bin/python3", "-I", "-c", py_dirs][..],
    ] {
        let mut cmd = vec!["spawn", "--policy", policy.to_str().unwrap(), "--"];
        cmd.extend(args);
        let id: u64 = k.ctl_ok(&cmd).trim().parse().unwrap();
        k.wait_for_line(id, "done");
        let last = k.wait(id);
        assert_eq!(last["exit"]["code"], 0, "{last}");
        assert_eq!(access_events(&k, id), [], "{args:?}");
    }
}

/// Python importing modules from read-only dirs tries to write their bytecode cache (a
/// `__pycache__` dir, a `.pyc` in one that exists) and goes on without it: ordinary work, no
/// sandbox access event.
#[test]
fn python_imports_from_a_read_only_dir_record_no_sandbox_access() {
    use std::os::unix::fs::PermissionsExt;
    let k = TestKernel::start();
    let lib = k.work.join("pylib");
    // One dir without a cache (mkdir __pycache__), one with an empty cache (open of a .pyc).
    for (dir, module) in [("plain", "plain_mod"), ("cached", "cached_mod")] {
        let d = lib.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("{module}.py")), "X = 1\n").unwrap();
    }
    std::fs::create_dir(lib.join("cached/__pycache__")).unwrap();
    for d in [
        &lib,
        &lib.join("plain"),
        &lib.join("cached"),
        &lib.join("cached/__pycache__"),
    ] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let code = format!(
        "import sys; sys.path[:0] = ['{0}/plain', '{0}/cached']; import plain_mod, cached_mod; print('done', plain_mod.X + cached_mod.X)",
        lib.display()
    );
    let id = spawn_python(&k, &lib, "", &["-c", &code]);
    k.wait_for_line(id, "done 2");
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    assert_eq!(access_events(&k, id), []);
    // The cache was not written: the jail refused, quietly.
    assert!(!lib.join("plain/__pycache__").exists());
    assert_eq!(
        std::fs::read_dir(lib.join("cached/__pycache__"))
            .unwrap()
            .count(),
        0
    );
}

// Resource attacks: the rlimits (or the agent's cgroup) stop them, the kernel stays
// responsive, and the kernel records each as a `SandboxLimit` event before the agent's exit.

fn assert_limit_event(k: &TestKernel, id: u64, resource: &str, by: &[&str]) -> RecordEvent {
    k.limit_event_before_exit(id, resource, by)
}

fn limited_policy(k: &TestKernel, limits: &str) -> std::path::PathBuf {
    write_policy(
        &k.work,
        "limited",
        "strict",
        &[],
        &format!("sandbox:\n  limits: {{{limits}}}\n"),
    )
}

fn resource_attack(k: &TestKernel, name: &str, limits: &str) -> (u64, String) {
    let policy = limited_policy(k, limits);
    let id = k.spawn(&policy, &["attack", name]);
    let line = k.wait_for_line(id, &format!("attack {name}:"));
    println!("{line}");
    (id, line)
}

/// Under an unprivileged kernel: RLIMIT_NPROC does not bind uid 0 of the initial user
/// namespace (the kernel exempts INIT_USER), so a root kernel's agents are stopped by their
/// pids cgroup instead (`resources::cgroup_fork_bomb_under_a_root_kernel_is_stopped_by_pids_max`).
#[test]
fn resource_fork_bomb() {
    let k = TestKernel::start_unprivileged();
    let (id, line) = resource_attack(&k, "fork-bomb", "processes: 32");
    assert_blocked(&line, &["EAGAIN"]);
    assert_kernel_answers(&k);
    // The bomb holds its processes: the kernel's sample sees the agent at its RLIMIT_NPROC.
    wait_until("the process-limit event", || {
        k.records().iter().any(|r| {
            r.agent.map(|a| a.0) == Some(id)
                && matches!(&r.event, RecordEvent::SandboxLimit { resource, .. } if resource == "processes")
        })
    });
    // Killing the agent empties its pid namespace: the bomb's processes go with it.
    let launcher = k.launcher_pid(id);
    k.ctl_ok(&["kill", &id.to_string()]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "killed", "{last}");
    assert!(agentos_tests::wait_pid_gone(
        launcher,
        agentos_tests::DEADLINE
    ));
    assert_kernel_answers(&k);
    let event = assert_limit_event(&k, id, "processes", &["sample"]);
    assert!(
        matches!(
            event,
            RecordEvent::SandboxLimit {
                limit: 32,
                used: 32,
                ..
            }
        ),
        "{event:?}"
    );
}

#[test]
fn resource_memory_bomb() {
    resource_memory_bomb_on(&TestKernel::start());
}

fn resource_memory_bomb_on(k: &TestKernel) {
    let (id, line) = resource_attack(k, "memory-bomb", "address_space: 256MiB");
    assert_blocked(&line, &["ENOMEM"]);
    assert_kernel_answers(k);
    let event = assert_limit_event(k, id, "address_space", &["mmap", "mremap"]);
    assert!(
        matches!(event, RecordEvent::SandboxLimit { limit, .. } if limit == 256 << 20),
        "{event:?}"
    );
}

#[test]
fn resource_disk_fill() {
    resource_disk_fill_on(&TestKernel::start());
}

fn resource_disk_fill_on(k: &TestKernel) {
    let (id, line) = resource_attack(k, "disk-fill", "file_size: 4MiB");
    assert_blocked(&line, &["EFBIG"]);
    assert_kernel_answers(k);
    let event = assert_limit_event(k, id, "file_size", &["write"]);
    assert!(
        matches!(&event, RecordEvent::SandboxLimit { used, detail, .. }
            if *used == 4 << 20 && detail.contains("/scratch/fill reached")),
        "{event:?}"
    );
}

#[test]
fn resource_cpu_spin() {
    resource_cpu_spin_on(&TestKernel::start());
}

fn resource_cpu_spin_on(k: &TestKernel) {
    let policy = limited_policy(k, "cpu_seconds: 1");
    let id = k.spawn(&policy, &["attack", "cpu-spin"]);
    k.wait_for_line(id, "spinning");
    assert_kernel_answers(k);
    let last = k.wait(id);
    // SIGXCPU (24) at the limit: the hard limit (SIGKILL) is a second above it.
    assert_eq!(last["exit"]["code"], 128 + 24, "{last}");
    assert_kernel_answers(k);
    assert_limit_event(k, id, "cpu_seconds", &["exit"]);
}

#[test]
fn resource_fd_exhaustion() {
    resource_fd_exhaustion_on(&TestKernel::start());
}

fn resource_fd_exhaustion_on(k: &TestKernel) {
    let (id, line) = resource_attack(k, "fd-exhaustion", "open_files: 64");
    assert_blocked(&line, &["EMFILE"]);
    assert_kernel_answers(k);
    let event = assert_limit_event(k, id, "open_files", &["openat", "open"]);
    assert!(
        matches!(
            event,
            RecordEvent::SandboxLimit {
                limit: 64,
                used: 64,
                ..
            }
        ),
        "{event:?}"
    );
}

/// The whole escape suite again, with the kernel running unprivileged (uid 65534 under root):
/// every attack above, from the Rust and the Python attack agents, on one kernel; each still
/// fails with its errno and leaves its sandbox event with the agent's id, and the kernel
/// still answers `agentctl ps` after each. (The fork bombs run unprivileged in their own
/// tests; the setuid test is unprivileged by nature.)
#[test]
fn escape_suite_with_an_unprivileged_kernel() {
    let k = TestKernel::start_unprivileged();
    for (name, syscall) in SYSCALL_ATTACKS {
        syscall_attack_on(&k, name, None, syscall);
    }
    for (name, errnos, syscall, target) in FILE_ATTACKS {
        file_attack_on(&k, name, errnos, syscall, target);
    }
    escape_ptrace_kernel_on(&k);
    escape_process_vm_writev_kernel_on(&k);
    escape_proc_pid_mem_on(&k);
    escape_proc_self_fd_shows_only_0_to_3_on(&k);
    escape_connect_control_socket_on(&k);
    escape_abstract_unix_socket_on(&k);
    escape_kill_kernel_and_sibling_on(&k);
    resource_memory_bomb_on(&k);
    resource_disk_fill_on(&k);
    resource_cpu_spin_on(&k);
    resource_fd_exhaustion_on(&k);
    python_escape_files_on(&k);
    python_escape_path_writes_on(&k);
    python_escape_kill_kernel_and_control_socket_on(&k);
    python_escape_sockets_on(&k);
    python_escape_ptrace_mount_unshare_on(&k);
}

#[test]
fn escape_setuid_binary_gives_no_privilege() {
    use std::os::unix::fs::PermissionsExt;
    // A setuid-root copy of the attack agent, run by an unprivileged kernel: no_new_privs (and
    // root being unmapped in the agent's user namespace) keep its euid.
    let k = TestKernel::start_unprivileged();
    let dir = k.work.join("suid");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let suid = dir.join("suid-agent");
    std::fs::copy(&k.agent_bin, &suid).unwrap();
    if agentos_tests::is_root() {
        std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    }
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let policy = write_policy(&k.work, "suid", "strict", &[], "");
    let out = k.ctl_ok(&[
        "spawn",
        "--policy",
        policy.to_str().unwrap(),
        "--",
        suid.to_str().unwrap(),
        "attack",
        "setuid-binary",
    ]);
    let id: u64 = out.trim().parse().unwrap();
    let line = k.wait_for_line(id, "attack setuid-binary:");
    println!("{line}");
    assert_blocked(&line, &["EPERM"]);
    assert_kernel_answers(&k);
}

// The Python attack agent: `/usr/bin/python3 -I tests/attacks/attack.py NAME [ARG]`.

/// Spawns `/usr/bin/python3 -I ARGS…` under a strict policy that adds `read_only` to the
/// agent's root and sets `limits` (`key: value, …`, or empty); returns its id.
fn spawn_python(k: &TestKernel, read_only: &std::path::Path, limits: &str, args: &[&str]) -> u64 {
    let limits = if limits.is_empty() {
        String::new()
    } else {
        format!("  limits: {{{limits}}}\n")
    };
    let policy = write_policy(
        &k.work,
        "python",
        "strict",
        &[],
        &format!("sandbox:\n  read_only: [{}]\n{limits}", read_only.display()),
    );
    let mut spawn = vec![
        "spawn",
        "--policy",
        policy.to_str().unwrap(),
        "--",
        "/usr/bin/python3",
        "-I",
    ];
    spawn.extend(args);
    k.ctl_ok(&spawn).trim().parse().unwrap()
}

/// Runs the Python attack `name`; the script is copied into the kernel's work dir and named
/// in the policy's `sandbox.read_only`.
fn py_attack(k: &TestKernel, name: &str, arg: Option<&str>, limits: &str) -> (u64, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = k.work.join("attacks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join("attack.py");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("attacks/attack.py"),
        &script,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut args = vec![script.to_str().unwrap(), name];
    args.extend(arg);
    let id = spawn_python(k, &dir, limits, &args);
    let line = k.wait_for_line(id, &format!("attack {name}:"));
    println!("python {line}");
    (id, line)
}

#[test]
fn python_escape_files() {
    python_escape_files_on(&TestKernel::start());
}

fn python_escape_files_on(k: &TestKernel) {
    let (id, line) = py_attack(k, "shadow", None, "");
    assert_blocked(&line, &["ENOENT", "EACCES"]);
    assert_access_event(k, id, "openat", "/etc/shadow");
    let (id, line) = py_attack(k, "write-outside", None, "");
    assert_blocked(&line, &["ENOENT", "EACCES", "EROFS", "EPERM"]);
    assert_kernel_answers(k);
    assert_access_event(k, id, "openat", "/usr/agentos-escape");
}

#[test]
fn python_escape_path_writes() {
    python_escape_path_writes_on(&TestKernel::start());
}

/// `mkdir`, `rmdir` and `chown` (the legacy entry points) from Python: refused by the
/// read-only runtime or the root, each recorded with its target.
fn python_escape_path_writes_on(k: &TestKernel) {
    for (name, errnos, syscall, target) in [
        (
            "mkdir-outside",
            &["EROFS"][..],
            "mkdir",
            "/usr/agentos-escape-dir",
        ),
        ("rmdir-runtime", &["EROFS"][..], "rmdir", "/usr/share"),
        ("chown-hidden", &["ENOENT"][..], "chown", "/etc/shadow"),
    ] {
        let (id, line) = py_attack(k, name, None, "");
        assert_blocked(&line, errnos);
        assert_kernel_answers(k);
        assert_access_event(k, id, syscall, target);
    }
}

#[test]
fn python_escape_kill_kernel_and_control_socket() {
    python_escape_kill_kernel_and_control_socket_on(&TestKernel::start());
}

fn python_escape_kill_kernel_and_control_socket_on(k: &TestKernel) {
    let pid = k.kernel_pid().to_string();
    let (id, line) = py_attack(k, "kill", Some(&pid), "");
    assert_blocked(&line, &["ESRCH", "EPERM"]);
    assert_kernel_answers(k);
    assert_access_event(k, id, "kill", &format!("pid {pid}"));
    let sock = k.state_dir.join("kernel.sock");
    let (id, line) = py_attack(k, "connect", sock.to_str(), "");
    assert_blocked(&line, &["ENOENT", "EACCES", "ECONNREFUSED"]);
    assert_kernel_answers(k);
    assert_access_event(k, id, "connect", sock.to_str().unwrap());
}

#[test]
fn python_escape_sockets() {
    python_escape_sockets_on(&TestKernel::start());
}

fn python_escape_sockets_on(k: &TestKernel) {
    for name in ["tcp", "udp-dns"] {
        let (id, line) = py_attack(k, name, None, "");
        assert_blocked(&line, &["EPERM"]);
        assert_kernel_answers(k);
        assert_sandbox_event(k, id, "socket");
    }
}

#[test]
fn python_escape_ptrace_mount_unshare() {
    python_escape_ptrace_mount_unshare_on(&TestKernel::start());
}

fn python_escape_ptrace_mount_unshare_on(k: &TestKernel) {
    let pid = k.kernel_pid().to_string();
    for (name, arg, syscall) in [
        ("ptrace", Some(pid.as_str()), "ptrace"),
        ("mount", None, "mount"),
        ("unshare-user", None, "unshare"),
    ] {
        let (id, line) = py_attack(k, name, arg, "");
        assert_blocked(&line, &["EPERM"]);
        assert_kernel_answers(k);
        assert_sandbox_event(k, id, syscall);
    }
}

#[test]
fn python_fork_bomb_unprivileged() {
    let k = TestKernel::start_unprivileged();
    let (id, line) = py_attack(&k, "fork-bomb", None, "processes: 32");
    assert_blocked(&line, &["EAGAIN"]);
    assert_kernel_answers(&k);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    assert_kernel_answers(&k);
}

// The capability report.

#[test]
fn kernel_status_lists_each_sandbox_layer() {
    let k = TestKernel::start();
    let status: serde_json::Value =
        serde_json::from_str(&k.ctl_ok(&["kernel", "status", "--json"])).unwrap();
    let layers = status["sandbox"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().filter_map(|l| l["layer"].as_str()).collect();
    assert_eq!(
        names,
        [
            "userns",
            "pidns",
            "netns",
            "ipcns",
            "utsns",
            "mountns",
            "landlock",
            "seccomp",
            "cgroup",
            "full_sandbox"
        ],
        "{status}"
    );
    for l in layers {
        let st = l["status"].as_str().unwrap();
        assert!(["active", "partial", "missing"].contains(&st), "{l}");
    }
    assert_eq!(layers[9]["status"], "active", "{status}");
    let text = k.ctl_ok(&["kernel", "status"]);
    assert!(
        text.contains("landlock") && text.contains("seccomp"),
        "{text}"
    );
    assert!(k.records().iter().any(|r| matches!(
        &r.event,
        RecordEvent::SandboxCapabilities { allow_degraded: false, layers } if layers.len() == 10
    )));
}

#[test]
fn allow_degraded_sandbox_is_recorded_and_shown() {
    let k = TestKernel::start_with(false, &["--allow-degraded-sandbox"]);
    let status: serde_json::Value =
        serde_json::from_str(&k.ctl_ok(&["kernel", "status", "--json"])).unwrap();
    let full = status["sandbox"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "full_sandbox")
        .cloned()
        .unwrap();
    assert_eq!(full["status"], "missing", "{status}");
    assert!(full["detail"]
        .as_str()
        .unwrap()
        .contains("--allow-degraded-sandbox"));
    assert!(k.records().iter().any(|r| matches!(
        &r.event,
        RecordEvent::SandboxCapabilities {
            allow_degraded: true,
            ..
        }
    )));
}

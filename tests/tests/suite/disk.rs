//! The per-agent disk budget outside the recorder, and the launcher's mount flags and mode
//! checks, from real jailed agents and tools: the scratch is a bounded tmpfs that leaves
//! nothing on the host, every mount is nosuid and nodev (devices excepted), no agent or tool
//! makes a setuid/setgid file or a device node, `output.log` keeps its head and tail within
//! `--log-bytes`, and checkpoints stay within `--checkpoint-bytes`.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{write_policy, TestKernel};

/// Runs attack `name` in a fresh agent under `extra` policy text; returns its id and verdict.
fn attack(k: &TestKernel, name: &str, extra: &str) -> (u64, String) {
    let policy = write_policy(&k.work, "disk-attack", "strict", &[], extra);
    let id = k.spawn(&policy, &["attack", name]);
    let line = k.wait_for_line(id, &format!("attack {name}:"));
    println!("{line}");
    (id, line)
}

fn assert_blocked(line: &str, errno: &str) {
    assert!(!line.contains("ESCAPED"), "{line}");
    assert!(line.ends_with(&format!(": blocked {errno}")), "{line}");
}

/// A `SandboxDenied` record of `syscall` for agent `id` is in the flight recorder.
fn assert_denied(k: &TestKernel, id: u64, syscall: &str) {
    assert_denied_any(k, id, &[syscall]);
}

/// A `SandboxDenied` record of one of `syscalls` (the entry points a libc may use) for agent
/// `id` is in the flight recorder.
fn assert_denied_any(k: &TestKernel, id: u64, syscalls: &[&str]) {
    let denied = |r: &agentos_kernel::recorder::Record| {
        r.agent.map(|a| a.0) == Some(id)
            && matches!(&r.event, RecordEvent::SandboxDenied { syscall, .. }
                if syscalls.contains(&syscall.as_str()))
    };
    let mut last = Vec::new();
    let found = poll(|| {
        last = k.records();
        last.iter().any(denied)
    });
    let mine: Vec<_> = last
        .iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .map(|r| &r.event)
        .collect();
    assert!(
        found,
        "no sandbox event for {syscalls:?} of agent {id}: {mine:#?}"
    );
}

/// Polls `cond` every 5 ms until it holds (`true`) or the harness's deadline passes.
fn poll(mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + agentos_tests::DEADLINE;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn assert_kernel_answers(k: &TestKernel) {
    let start = std::time::Instant::now();
    k.ctl_ok(&["ps"]);
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

/// Every file under `dir` (recursively), with its metadata, not following symlinks.
fn walk(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if m.is_dir() {
            out.extend(walk(&e.path()));
        }
        out.push((e.path(), m));
    }
    out
}

/// No setuid/setgid file and no device node under `dir`.
fn assert_no_setid_or_device(dir: &Path) {
    let bad: Vec<_> = walk(dir)
        .into_iter()
        .filter(|(_, m)| {
            m.permissions().mode() & 0o6000 != 0
                || m.file_type().is_char_device()
                || m.file_type().is_block_device()
        })
        .map(|(p, m)| format!("{} {:o}", p.display(), m.permissions().mode()))
        .collect();
    assert!(bad.is_empty(), "setid files or devices left: {bad:?}");
}

// --- The scratch: a bounded tmpfs -------------------------------------------------------------

/// The byte count a `scratch-fill` agent says it wrote.
fn wrote(k: &TestKernel, id: u64) -> u64 {
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    log.lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .and_then(|l| l.strip_suffix(" bytes"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in:\n{log}"))
}

fn scratch_fill_on(k: &TestKernel) {
    let (id, line) = attack(k, "scratch-fill", "sandbox:\n  limits: {scratch: 8MiB}\n");
    // The tmpfs answers ENOSPC long before any file reaches the file-size limit (256 MiB).
    assert_blocked(&line, "ENOSPC");
    assert_kernel_answers(k);
    let wrote = wrote(k, id);
    assert!(
        wrote <= 8 << 20 && wrote > 6 << 20,
        "wrote {wrote} bytes into an 8 MiB scratch"
    );
    let event = k.limit_event_before_exit(id, "scratch_bytes", &["write"]);
    assert!(
        matches!(&event, RecordEvent::SandboxLimit { limit, detail, .. }
            if *limit == 8 << 20 && detail.contains("ENOSPC")),
        "{event:?}"
    );
    // Nothing of it is on the host's disk: the host dir was only the mount point.
    let host = k.state_dir.join(format!("agents/{id}/scratch"));
    let left: Vec<_> = walk(&host).into_iter().map(|(p, _)| p).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_scratch_is_a_bounded_tmpfs_that_leaves_nothing_on_the_host() {
    scratch_fill_on(&TestKernel::start());
}

#[test]
fn the_scratch_is_bounded_under_an_unprivileged_kernel() {
    scratch_fill_on(&TestKernel::start_unprivileged());
}

#[test]
fn the_kernel_flag_sets_the_scratch_size() {
    let k = TestKernel::start_with(false, &["--scratch-bytes", "4194304"]);
    let (id, line) = attack(&k, "scratch-fill", "");
    assert_blocked(&line, "ENOSPC");
    let wrote = wrote(&k, id);
    assert!(wrote <= 4 << 20 && wrote > 3 << 20, "{wrote}");
}

// --- Mount flags ------------------------------------------------------------------------------

fn mount_flags_on(k: &TestKernel) {
    // The agent reads its own /proc/self/mountinfo: blocked EPERM = no mount honours setuid,
    // and only device nodes are on mounts without nodev.
    let (_, line) = attack(k, "mount-flags", "");
    assert_blocked(&line, "EPERM");
}

#[test]
fn every_mount_of_an_agent_is_nosuid_and_nodev_but_its_devices() {
    mount_flags_on(&TestKernel::start());
}

// --- No setuid/setgid file, no device node -----------------------------------------------------

/// (attack, the syscall the filter denies).
const MODE_ATTACKS: &[(&str, &str)] = &[
    ("chmod-setuid", "fchmodat"),
    ("fchmod-setgid", "fchmod"),
    ("open-setuid", "openat"),
    ("mknod-char", "mknodat"),
    ("copy-setuid", "openat"),
];

fn mode_attacks_on(k: &TestKernel) {
    for (name, syscall) in MODE_ATTACKS {
        let (id, line) = attack(k, name, "");
        assert_blocked(&line, "EPERM");
        assert_kernel_answers(k);
        assert_denied(k, id, syscall);
    }
}

#[test]
fn an_agent_cannot_make_a_setuid_or_setgid_file_or_a_device_node() {
    mode_attacks_on(&TestKernel::start());
}

#[test]
fn the_disk_and_mode_attacks_fail_under_an_unprivileged_kernel() {
    let k = TestKernel::start_unprivileged();
    mode_attacks_on(&k);
    mount_flags_on(&k);
}

/// The Python attack agent (`tests/attacks/attack.py`) for `name`: its verdict line.
fn py_attack(k: &TestKernel, name: &str) -> (u64, String) {
    let dir = k.work.join("disk-attacks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join("attack.py");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("attacks/attack.py"),
        &script,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let policy = write_policy(
        &k.work,
        "disk-python",
        "strict",
        &[],
        &format!("sandbox:\n  read_only: [{}]\n", dir.display()),
    );
    let id: u64 = k
        .ctl_ok(&[
            "spawn",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "/usr/bin/python3",
            "-I",
            script.to_str().unwrap(),
            name,
        ])
        .trim()
        .parse()
        .unwrap();
    let line = k.wait_for_line(id, &format!("attack {name}:"));
    println!("{line}");
    (id, line)
}

#[test]
fn a_python_agent_cannot_make_a_setuid_file_or_a_device_node() {
    let k = TestKernel::start();
    for (name, syscalls) in [
        ("chmod-setuid", &["fchmodat", "chmod"][..]),
        ("chmod-setgid", &["fchmodat", "chmod"]),
        ("open-setuid", &["openat", "open"]),
        ("mknod-char", &["mknodat", "mknod"]),
    ] {
        let (id, line) = py_attack(&k, name);
        assert_blocked(&line, "EPERM");
        assert_kernel_answers(&k);
        assert_denied_any(&k, id, syscalls);
    }
}

/// A writable workspace, world-writable so an unprivileged kernel's tool can write it.
fn workspace(k: &TestKernel, name: &str) -> PathBuf {
    let ws = k.work.join(name);
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(ws.join("f"), "plain\n").unwrap();
    std::fs::set_permissions(ws.join("f"), std::fs::Permissions::from_mode(0o666)).unwrap();
    ws
}

/// Runs `script` with `/bin/sh -c` as an `Exec` tool of an agent with a writable workspace
/// `ws` (and `extra` policy text); returns the agent's id and its answer line.
fn exec_sh(k: &TestKernel, ws: &Path, extra: &str, script: &str) -> (u64, String) {
    let rules = format!(
        "  - name: tools\n    action: code_execution\n    effect: allow\n    constraints:\n      commands: [\"/bin/sh\"]\n  - name: ws-write\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n{extra}"
    );
    let policy = write_policy(&k.work, "disk-exec", "strict", &[], &rules);
    let id: u64 = k
        .ctl_ok(&[
            "spawn",
            "--policy",
            policy.to_str().unwrap(),
            "--workspace",
            ws.to_str().unwrap(),
            "--",
            k.agent_bin.to_str().unwrap(),
            "exec",
            "-",
            "-",
            "/bin/sh",
            "-c",
            script,
        ])
        .trim()
        .parse()
        .unwrap();
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    let line = log
        .lines()
        .find(|l| l.starts_with("exec: ") || l.starts_with("refused: "))
        .unwrap_or_else(|| panic!("no answer in:\n{log}"))
        .to_string();
    println!("{line}");
    (id, line)
}

fn tool_mode_attacks_on(k: &TestKernel) {
    let ws = workspace(k, "ws-setid");
    // Every way a shell has to leave a setuid/setgid file or a device in the workspace.
    let script = "cd /workspace; \
        cp /usr/bin/su su; chmod u+s su; chmod 4755 su; chmod g+s f; \
        cp -p /usr/bin/su su-p; install -m 4755 /usr/bin/su su-i; \
        mknod tty c 5 0; mknod null c 1 3; \
        for f in *; do [ -u \"$f\" ] || [ -g \"$f\" ] || [ -c \"$f\" ] && echo SETID $f; done; \
        echo done";
    let (id, line) = exec_sh(k, &ws, "", script);
    assert!(line.starts_with("exec: status=0 "), "{line}");
    assert!(line.contains("done") && !line.contains("SETID"), "{line}");
    assert_no_setid_or_device(&ws);
    // The plain copy is there (the tool could write), only not setuid.
    assert!(ws.join("su").exists());
    assert_denied(k, id, "fchmodat");
    assert_denied(k, id, "mknodat");
    // The tool's mounts are nosuid and nodev (its devices excepted) too.
    let script = "grep -vc nosuid /proc/self/mountinfo; \
        grep -v nodev /proc/self/mountinfo | grep -vc ' /dev/[a-z]* '; echo done";
    let (_, line) = exec_sh(k, &ws, "", script);
    assert!(line.contains("stdout=\"0\\n0\\ndone\\n\""), "{line}");
}

#[test]
fn a_tool_cannot_leave_a_setuid_file_or_a_device_in_the_workspace() {
    tool_mode_attacks_on(&TestKernel::start());
}

#[test]
fn a_tool_of_an_unprivileged_kernel_cannot_leave_a_setuid_file_either() {
    tool_mode_attacks_on(&TestKernel::start_unprivileged());
}

#[test]
fn a_tools_scratch_is_a_bounded_tmpfs_too() {
    let k = TestKernel::start();
    let ws = workspace(&k, "ws-scratch");
    // 8 MB into the tool's 4 MiB scratch ($TMPDIR): cut short, ENOSPC.
    let script =
        "head -c 8000000 /dev/zero > \"$TMPDIR/big\"; echo rc=$?; wc -c < \"$TMPDIR/big\"; \
        stat -f -c %T \"$TMPDIR\"";
    let (id, line) = exec_sh(&k, &ws, "sandbox:\n  limits: {scratch: 4MiB}\n", script);
    assert!(line.contains("rc=1"), "{line}");
    assert!(line.contains("4194304\\ntmpfs\\n"), "{line}");
    // The kernel saw the tool's scratch fill up, through the tool's own root.
    let full = poll(|| {
        k.records().iter().any(|r| {
            r.agent.map(|a| a.0) == Some(id)
                && matches!(&r.event, RecordEvent::SandboxLimit { resource, limit, .. }
                    if resource == "scratch_bytes" && *limit == 4 << 20)
        })
    });
    assert!(full, "no scratch_bytes event for the tool of agent {id}");
}

// --- output.log -------------------------------------------------------------------------------

#[test]
fn output_log_keeps_its_head_and_tail_within_the_cap() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "spew", "strict", &[], "");
    let total: u64 = 50 << 20;
    let lines = total / 14;
    let id = k.spawn(&policy, &["spew", &total.to_string()]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let cap: u64 = 8 << 20;
    let path = k.state_dir.join(format!("agents/{id}/output.log"));
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert!(on_disk <= cap + 64, "output.log is {on_disk} bytes");
    let out = k.ctl(&["logs", &id.to_string()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // What logs shows is what the file holds, in order.
    assert_eq!(text.as_bytes(), std::fs::read(&path).unwrap());
    let (head, rest) = text.split_once("\n[agentos: ").expect("a cut marker");
    let (cut, tail) = rest
        .split_once(" bytes of output cut]\n")
        .expect("a cut marker");
    let cut: u64 = cut.parse().unwrap();
    assert_eq!(head.len() as u64 + cut + tail.len() as u64, lines * 14);
    assert!(head.starts_with("line 00000000\nline 00000001\n"));
    assert!(tail.ends_with(&format!("line {:08}\n", lines - 1)));
    assert_eq!(head.len() as u64, cap / 2);
    assert_eq!(tail.len() as u64, cap / 2);
}

#[test]
fn logs_follow_shows_head_marker_and_tail_in_order() {
    let k = TestKernel::start_with(false, &["--log-bytes", "65536"]);
    let policy = write_policy(&k.work, "spew", "strict", &[], "");
    let total: u64 = 4 << 20;
    let lines = total / 14;
    let id = k.spawn(&policy, &["spew", &total.to_string()]);
    let out = k.ctl(&["logs", "-f", &id.to_string()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("line 00000000\n"), "{}", &text[..64]);
    assert!(text.ends_with(&format!("line {:08}\n", lines - 1)));
    // Whatever a follower missed is named by markers; everything else is in order.
    let mut shown = 0u64;
    let mut cut = 0u64;
    let mut rest = text.as_str();
    while let Some((before, after)) = rest.split_once("\n[agentos: ") {
        shown += before.len() as u64;
        let (n, after) = after.split_once(" bytes of output cut]\n").unwrap();
        cut += n.parse::<u64>().unwrap();
        rest = after;
    }
    shown += rest.len() as u64;
    assert_eq!(shown + cut, lines * 14);
    let on_disk = std::fs::metadata(k.state_dir.join(format!("agents/{id}/output.log")))
        .unwrap()
        .len();
    assert!(on_disk <= 65536 + 64, "{on_disk}");
}

// --- Checkpoints ------------------------------------------------------------------------------

#[test]
fn checkpoints_past_the_budget_are_refused_before_writing() {
    let k = TestKernel::start_with(false, &["--checkpoint-bytes", "1500000"]);
    let policy = write_policy(&k.work, "ckpt", "strict", &["SIGUSR1"], "");
    let id = k.spawn(
        &policy,
        &[
            "ops",
            "fill=/mem/working/a=600000",
            "checkpoint",
            "checkpoint",
            "checkpoint",
            "park",
        ],
    );
    k.wait_for_line(id, "ready");
    // The operator's SIGUSR1 checkpoint is refused the same way, and says so.
    let out = k.ctl(&["signal", &id.to_string(), "SIGUSR1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--checkpoint-bytes"), "{err}");
    k.ctl_ok(&["kill", &id.to_string()]);
    k.wait(id);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    let answers: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("checkpoint: "))
        .collect();
    assert_eq!(answers.len(), 3, "{log}");
    assert_eq!(answers[..2], ["ok 1", "ok 2"]);
    assert!(
        answers[2].starts_with("err QuotaExceeded") && answers[2].contains("--checkpoint-bytes"),
        "{}",
        answers[2]
    );
    let dir = k.state_dir.join(format!("agents/{id}/checkpoints"));
    let held: u64 = walk(&dir).iter().map(|(_, m)| m.len()).sum();
    assert!(held <= 1_500_000, "{held}");
    assert!(!dir.join("3").exists());
}

/// Where the filesystem takes `FS_TOPDIR_FL` (ext4: a dir beside the state dir accepts it),
/// the kernel's `agents/` carries it, so each agent's dir and files go to a block group of
/// their own instead of being searched for, one by one, among the inodes the last fleet (or
/// anything else on the host) freed near the state dir.
#[test]
fn the_agents_dir_asks_the_filesystem_to_spread_the_agents() {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    let k = TestKernel::start();
    let probe = k.work.join("topdir-probe");
    std::fs::create_dir(&probe).unwrap();
    let probe = std::fs::File::open(&probe).unwrap();
    let takes_it = ioctl_getflags(&probe)
        .and_then(|f| ioctl_setflags(&probe, f | IFlags::TOPDIR))
        .and_then(|()| ioctl_getflags(&probe))
        .is_ok_and(|f| f.contains(IFlags::TOPDIR));
    let agents = std::fs::File::open(k.state_dir.join("agents")).unwrap();
    let flags = ioctl_getflags(&agents);
    if takes_it {
        assert!(flags.unwrap().contains(IFlags::TOPDIR));
    } else {
        eprintln!("this filesystem does not take FS_TOPDIR_FL: agents/ is left as it is");
    }
}

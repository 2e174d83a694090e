//! The per-agent VFS tree (DESIGN §6) from real jailed agents: workspace escapes that fail,
//! the read-only `/policy` and `/state`, persistent memory across a kernel restart, quotas,
//! streaming through descriptors, checkpoints restored into a new agent, and another agent's
//! tree out of reach.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{is_root, write_policy, TestKernel};

const SECRET: &str = "SECRET host data the agent must never see\n";

/// Runs `ops` to the end and returns its log (asserting a clean exit).
fn run_ops(k: &TestKernel, policy: &Path, opts: &[&str], ops: &[&str]) -> String {
    run_ops_id(k, policy, opts, ops).1
}

/// [`run_ops`], with the agent's id.
fn run_ops_id(k: &TestKernel, policy: &Path, opts: &[&str], ops: &[&str]) -> (u64, String) {
    let mut args = vec!["ops"];
    args.extend_from_slice(ops);
    let id = k.spawn_with(policy, opts, &args);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(out.contains("ops done"), "{out}");
    (id, out)
}

/// The answer line of one op (`OP: ok …` / `OP: err Kind …`).
fn answer<'a>(out: &'a str, op: &str) -> &'a str {
    let prefix = format!("{op}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no answer for `{op}` in:\n{out}"))
}

const WORKSPACE_RW: &str = "  - name: ws-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace\", \"/workspace/**\"]\n  - name: ws-write\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n";

/// A workspace with a regular file, an inside symlink, and a host secret beside it.
fn workspace(k: &TestKernel) -> (PathBuf, PathBuf) {
    let ws = k.work.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("ok.txt"), "fine").unwrap();
    symlink("ok.txt", ws.join("inner")).unwrap();
    let secret = k.work.join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    (ws, secret)
}

/// Unmounts a bind mount when dropped.
struct BindMount(PathBuf);

impl BindMount {
    fn new(from: &Path, to: &Path) -> Option<BindMount> {
        std::fs::create_dir_all(to).unwrap();
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(to)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| BindMount(to.to_path_buf()))
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn workspace_escapes_fail_even_when_the_policy_lets_everything_through() {
    let k = TestKernel::start();
    let (ws, secret) = workspace(&k);
    symlink(&secret, ws.join("abs")).unwrap();
    symlink("../secret.txt", ws.join("rel")).unwrap();
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    symlink("../../secret.txt", ws.join("sub/deep")).unwrap();
    symlink("/proc/self/root", ws.join("root")).unwrap();
    symlink("/proc/self/fd", ws.join("fds")).unwrap();
    let outside = k.work.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret2.txt"), SECRET).unwrap();
    // As root the test can mount: a bind mount inside the workspace pointing outside it.
    let bind = if is_root() {
        BindMount::new(&outside, &ws.join("mnt"))
    } else {
        None
    };
    // Permissive: the policy refuses nothing, so only the VFS stands between the agent and
    // the host.
    let policy = write_policy(&k.work, "escape", "permissive", &[], WORKSPACE_RW);
    let ws_opt = ws.to_str().unwrap();
    let secret_rel = secret
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let dotdot = format!("read=/workspace/sub/../../{secret_rel}");
    let many_dotdots = format!("read=/workspace/../../../../../../{secret_rel}");
    let ops = [
        "read=/workspace/ok.txt",
        "read=/workspace/inner",
        "read=/workspace/abs",
        "read=/workspace/rel",
        "read=/workspace/sub/deep",
        "read=/workspace/root/etc/hostname",
        "read=/workspace/fds/0",
        "read=/workspace/mnt/secret2.txt",
        "list=/workspace/mnt",
        "stat=/workspace/abs",
        dotdot.as_str(),
        many_dotdots.as_str(),
        "write=/workspace/rel=pwned",
        "write=/workspace/abs=pwned",
        "write=/workspace/sub/deep=pwned",
        "unlink=/workspace/mnt/secret2.txt",
        "list=/workspace",
    ];
    let out = run_ops(&k, &policy, &["--workspace", ws_opt], &ops);
    assert!(!out.contains("SECRET"), "a host secret leaked:\n{out}");
    assert_eq!(answer(&out, "read=/workspace/ok.txt"), "ok fine");
    assert_eq!(
        answer(&out, "read=/workspace/inner"),
        "ok fine",
        "a symlink inside the workspace is fine"
    );
    for op in [
        "read=/workspace/abs",
        "read=/workspace/rel",
        "read=/workspace/sub/deep",
        "read=/workspace/root/etc/hostname",
        "read=/workspace/fds/0",
        "stat=/workspace/abs",
        "write=/workspace/rel",
        "write=/workspace/abs",
        "write=/workspace/sub/deep",
    ] {
        assert!(
            answer(&out, op).starts_with("err PermissionDenied"),
            "{op}: {}\n{out}",
            answer(&out, op)
        );
    }
    if bind.is_some() {
        for op in [
            "read=/workspace/mnt/secret2.txt",
            "list=/workspace/mnt",
            "unlink=/workspace/mnt/secret2.txt",
        ] {
            assert!(
                answer(&out, op).starts_with("err PermissionDenied"),
                "{op} crossed a bind mount: {}\n{out}",
                answer(&out, op)
            );
        }
        assert!(outside.join("secret2.txt").exists());
    } else {
        eprintln!("not root: the bind-mount case was not run");
    }
    // `..` is resolved on the VFS path first: it leaves /workspace and names nothing.
    assert!(answer(&out, &dotdot).starts_with("err NotFound"), "{out}");
    assert!(answer(&out, &many_dotdots).starts_with("err NotFound"));
    assert!(answer(&out, "list=/workspace").starts_with("ok "), "{out}");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        SECRET,
        "the host file was not written"
    );
    drop(bind);
}

#[test]
fn a_symlink_swapped_in_during_reads_never_leaks_the_target() {
    let k = TestKernel::start();
    let (ws, secret) = workspace(&k);
    let f = ws.join("f");
    std::fs::write(&f, "benign").unwrap();
    let policy = write_policy(&k.work, "race", "strict", &[], WORKSPACE_RW);
    let stop = Arc::new(AtomicBool::new(false));
    let flips = {
        let (stop, ws, f, secret) = (Arc::clone(&stop), ws.clone(), f.clone(), secret.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Atomic swaps: a prepared symlink (absolute, then relative) or file renamed over f.
                let tmp = ws.join(".swap");
                let _ = std::fs::remove_file(&tmp);
                match n % 3 {
                    0 => symlink(&secret, &tmp).unwrap(),
                    1 => symlink("../secret.txt", &tmp).unwrap(),
                    _ => std::fs::write(&tmp, "benign").unwrap(),
                }
                std::fs::rename(&tmp, &f).unwrap();
                n += 1;
            }
            n
        })
    };
    let id = k.spawn_with(
        &policy,
        &["--workspace", ws.to_str().unwrap()],
        &["race-read", "/workspace/f", "3000"],
    );
    let last = k.wait(id);
    stop.store(true, Ordering::Relaxed);
    let flipped = flips.join().unwrap();
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("race done"))
        .expect(&out);
    assert!(line.ends_with("leaked=0"), "{line}");
    assert!(
        !line.contains(" ok=0 "),
        "some reads saw the benign file: {line}"
    );
    assert!(flipped > 10, "the symlink was flipped {flipped} times");
    eprintln!("{line} ({flipped} flips)");
    assert!(
        !line.contains(" err=0 "),
        "some reads met the swapped-in symlink: {line}"
    );
}

#[test]
fn policy_and_state_are_readable_and_read_only() {
    let k = TestKernel::start();
    // The policy allows writing anywhere: the kernel itself must refuse.
    let rules = "  - name: read-all\n    action: file_read\n    effect: allow\n  - name: write-all\n    action: file_write\n    effect: allow\n";
    let policy = write_policy(&k.work, "ro", "strict", &[], rules);
    let (id, out) = run_ops_id(
        &k,
        &policy,
        &[],
        &[
            "list=/",
            "list=/policy",
            "read=/policy/digest",
            "stat=/policy/security.md",
            "write=/policy/security.md=mode: audit",
            "unlink=/policy/digest",
            "write=/policy/new=x",
            "write=/state/checkpoints/1=x",
            "write=/mem/working/keep=1",
            "read=/policyfoo",
            "read=/workspace/x",
            "read=/ipc/inbox",
            "read=/policy/security.md",
        ],
    );
    assert_eq!(answer(&out, "list=/"), "ok ipc,mem,policy,state,workspace");
    assert_eq!(answer(&out, "list=/policy"), "ok digest,security.md");
    let digest = k.info(id)["policy_digest"].clone();
    let want: String = digest
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| format!("{:02x}", b.as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_else(|| digest.as_str().unwrap_or("").to_string());
    assert_eq!(answer(&out, "read=/policy/digest"), format!("ok {want}"));
    assert!(answer(&out, "stat=/policy/security.md").ends_with("ro=true"));
    for op in [
        "write=/policy/security.md",
        "unlink=/policy/digest",
        "write=/policy/new",
        "write=/state/checkpoints/1",
    ] {
        let a = answer(&out, op);
        assert!(
            a.starts_with("err PermissionDenied") && a.contains("read-only"),
            "{op}: {a}"
        );
    }
    assert_eq!(answer(&out, "write=/mem/working/keep"), "ok 1");
    assert!(answer(&out, "read=/policyfoo").starts_with("err NotFound"));
    let ws = answer(&out, "read=/workspace/x");
    assert!(
        ws.starts_with("err NotFound") && ws.contains("--workspace"),
        "{ws}"
    );
    assert!(answer(&out, "read=/ipc/inbox").starts_with("err IsDirectory"));
    // The whole policy text, as the kernel holds it.
    let text = std::fs::read_to_string(&policy).unwrap();
    assert!(
        out.contains(&format!("read=/policy/security.md: ok {text}")),
        "{out}"
    );
}

#[test]
fn reaching_into_another_agents_tree_is_a_trust_violation() {
    let k = TestKernel::start();
    let rules = "  - name: read-all\n    action: file_read\n    effect: allow\n";
    let strict = write_policy(&k.work, "strict", "strict", &[], rules);
    let victim = k.spawn(&strict, &["park"]);
    k.wait_for_line(victim, "ready");
    let path = format!("read=/agent/{victim}/mem/working/ready");
    // The attacker parks after the attempt: only the kernel can end it.
    let attacker = k.spawn_with(&strict, &[], &["ops", &path, "park"]);
    let last = k.wait(attacker);
    assert_eq!(last["exit"]["signal"], "SIGTRUST", "{last}");
    let out = k.logs(attacker);
    let a = answer(&out, &path);
    assert!(
        a.starts_with("err PermissionDenied") && a.contains("trust violation"),
        "{a}"
    );
    // Recorded as a violation, and the victim is untouched.
    let recorded = k.records().into_iter().any(|r| {
        r.agent.map(|a| a.0) == Some(attacker)
            && matches!(&r.event, RecordEvent::Syscall { decision, .. } if decision.violation && decision.rule == "trust")
    });
    assert!(recorded);
    assert_eq!(k.info(victim)["state"], "running");
    // Permissive: refused all the same, but the agent lives on.
    let permissive = write_policy(&k.work, "perm", "permissive", &[], rules);
    let out = run_ops(&k, &permissive, &[], &[&path]);
    assert!(answer(&out, &path).starts_with("err PermissionDenied"));
    k.ctl_ok(&["kill", &victim.to_string()]);
}

const MEMORY_RW: &str = "  - name: mem-rw\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/mem/**\"]\n  - name: mem-ro\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/mem/**\", \"/state/**\", \"/state\"]\n";

#[test]
fn episodic_memory_survives_a_kernel_restart_and_unnamed_memory_does_not_outlive_its_agent() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "mem", "strict", &[], MEMORY_RW);
    let out = run_ops(
        &k,
        &policy,
        &["--name", "scribe"],
        &[
            "write=/mem/episodic/day1/notes=met the operator",
            "write=/mem/semantic/facts=water is wet",
        ],
    );
    assert_eq!(answer(&out, "write=/mem/episodic/day1/notes"), "ok 16");
    let out = run_ops(&k, &policy, &[], &["write=/mem/episodic/mine=unnamed"]);
    assert_eq!(answer(&out, "write=/mem/episodic/mine"), "ok 7");
    k.kill_kernel();
    k.restart(&[]);
    let out = run_ops(
        &k,
        &policy,
        &["--name", "scribe"],
        &[
            "read=/mem/episodic/day1/notes",
            "read=/mem/semantic/facts",
            "list=/mem/episodic",
        ],
    );
    assert_eq!(
        answer(&out, "read=/mem/episodic/day1/notes"),
        "ok met the operator"
    );
    assert_eq!(answer(&out, "read=/mem/semantic/facts"), "ok water is wet");
    assert_eq!(answer(&out, "list=/mem/episodic"), "ok day1");
    // Another name sees nothing of scribe's; an unnamed agent sees nothing of the earlier one.
    let out = run_ops(
        &k,
        &policy,
        &["--name", "other"],
        &["read=/mem/episodic/day1/notes"],
    );
    assert!(answer(&out, "read=/mem/episodic/day1/notes").starts_with("err NotFound"));
    let out = run_ops(
        &k,
        &policy,
        &[],
        &["read=/mem/episodic/mine", "list=/mem/episodic"],
    );
    assert!(answer(&out, "read=/mem/episodic/mine").starts_with("err NotFound"));
    assert_eq!(answer(&out, "list=/mem/episodic"), "ok ");
}

#[test]
fn quotas_refuse_with_quota_exceeded_and_lose_nothing_already_written() {
    // 4096 bytes of data, plus what two one-letter working-memory files cost beyond their
    // data (their path and 64 bytes each: `MemFs::entry_cost`).
    let k = TestKernel::start_with(false, &["--quota-bytes", "4228", "--quota-files", "4"]);
    let (ws, _) = workspace(&k);
    let policy = write_policy(
        &k.work,
        "quota",
        "strict",
        &[],
        &format!("{WORKSPACE_RW}{MEMORY_RW}"),
    );
    let out = run_ops(
        &k,
        &policy,
        &["--workspace", ws.to_str().unwrap()],
        &[
            "fill=/mem/working/a=2000",
            "fill=/mem/episodic/b=1500",
            "fill=/workspace/c=1000",
            "fill=/workspace/c=500",
            "fill=/mem/working/a=2200",
            "append=/mem/episodic/b=this append would pass the byte quota; it must change nothing at all, not even a byte of the file it targets......................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................",
            "write=/mem/working/d=1",
            "write=/mem/working/e=1",
            "unlink=/mem/working/d",
            "write=/mem/working/e=1",
            "stat=/mem/working/a",
            "stat=/mem/episodic/b",
            "stat=/workspace/c",
        ],
    );
    let ok = |op: &str, want: &str| assert_eq!(answer(&out, op), want, "{op}\n{out}");
    let quota = |op: &str| {
        let a = answer(&out, op);
        assert!(a.starts_with("err QuotaExceeded"), "{op}: {a}\n{out}");
    };
    ok("fill=/mem/working/a", "ok 2000");
    ok("fill=/mem/episodic/b", "ok 1500");
    // The workspace's growth counts: 3566 + 1000 is over 4228, 3566 + 500 is not (working
    // memory's `a` costs 2000 + 66).
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("fill=/workspace/c: "))
        .collect();
    assert!(lines[0].contains("err QuotaExceeded"), "{out}");
    assert_eq!(lines[1], "fill=/workspace/c: ok 500");
    let a_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("fill=/mem/working/a: "))
        .collect();
    assert!(a_lines[1].contains("err QuotaExceeded"), "{out}");
    quota("append=/mem/episodic/b");
    ok("write=/mem/working/d", "ok 1");
    let e_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("write=/mem/working/e: "))
        .collect();
    assert!(
        e_lines[0].contains("err QuotaExceeded") && e_lines[0].contains("files"),
        "{out}"
    );
    assert_eq!(
        e_lines[1], "write=/mem/working/e: ok 1",
        "freeing a file makes room"
    );
    // Nothing already written was lost or changed by the refused writes.
    ok("stat=/mem/working/a", "ok File 2000 ro=false");
    ok("stat=/mem/episodic/b", "ok File 1500 ro=false");
    ok("stat=/workspace/c", "ok File 500 ro=false");
    assert_eq!(std::fs::read(ws.join("c")).unwrap(), vec![b'x'; 500]);
    // Streaming writes count too; the file keeps what was written before the refusal.
    let id = k.spawn_with(&policy, &[], &["fd-write", "/mem/working/big", "5000"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(out.contains("write_fd err QuotaExceeded"), "{out}");
    assert!(out.contains("fd-write 0 "), "{out}");
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a and the pattern of the test agent's `fd-*` modes.
fn fnv(data: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn files_larger_than_a_frame_stream_through_descriptors_in_chunks() {
    let k = TestKernel::start();
    let (ws, _) = workspace(&k);
    // Larger than the 16 MiB frame limit.
    let size = (16 << 20) + 12_345;
    let big = pattern(size);
    std::fs::write(ws.join("big"), &big).unwrap();
    let policy = write_policy(&k.work, "stream", "strict", &[], WORKSPACE_RW);
    let wsopt = ["--workspace", ws.to_str().unwrap()];
    let id = k.spawn_with(&policy, &wsopt, &["fd-read", "/workspace/big"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    let hash = format!("{:016x}", fnv(&big));
    assert!(
        out.contains(&format!("fd-read {size} bytes in 2 chunks hash {hash}")),
        "{out}"
    );
    // A one-shot Read of the whole file would be one unbounded frame: refused.
    assert!(out.contains("one-shot: err TooLarge"), "{out}");
    assert!(
        out.contains(&format!("read_to_end {size} hash {hash}")),
        "{out}"
    );
    // Writing through a descriptor, in chunks.
    let n = 3 << 20;
    let id = k.spawn_with(
        &policy,
        &wsopt,
        &["fd-write", "/workspace/out/copy", &n.to_string()],
    );
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(out.contains(&format!("fd-write {n} hash")), "{out}");
    assert_eq!(std::fs::read(ws.join("out/copy")).unwrap(), pattern(n));
}

#[test]
fn descriptors_are_bounded_per_agent_and_closed_when_it_ends() {
    let k = TestKernel::start_with(false, &["--max-fds", "16"]);
    let (ws, _) = workspace(&k);
    let policy = write_policy(&k.work, "fds", "strict", &[], WORKSPACE_RW);
    let id = k.spawn_with(
        &policy,
        &["--workspace", ws.to_str().unwrap()],
        &["fd-exhaust", "/workspace/ok.txt"],
    );
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(out.contains("opened 16 then err Busy"), "{out}");
    assert!(out.contains("Close some first"), "{out}");
    assert!(out.contains("after close: ok"), "{out}");
    // The kernel holds none of them once the agent has ended.
    let kernel = k.kernel_pid();
    let target = ws.join("ok.txt").canonicalize().unwrap();
    let held = std::fs::read_dir(format!("/proc/{kernel}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == target))
        .count();
    assert_eq!(held, 0, "the kernel still holds the agent's descriptors");
}

#[test]
fn a_checkpoint_syscall_restores_into_a_new_agent_with_the_same_working_memory() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "cp", "strict", &[], MEMORY_RW);
    let (first, out) = run_ops_id(
        &k,
        &policy,
        &[],
        &[
            "write=/mem/working/notes/a=alpha",
            "write=/mem/working/b=beta",
            "checkpoint",
            "write=/mem/working/b=changed after the checkpoint",
            "write=/mem/working/later=not in checkpoint 1",
            "checkpoint",
            "list=/state/checkpoints",
            "read=/state/checkpoints/1/notes/a",
            "read=/state/checkpoints/1/b",
            "stat=/state/checkpoints/1/b",
        ],
    );
    let cps: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("checkpoint: "))
        .collect();
    assert_eq!(cps, ["checkpoint: ok 1", "checkpoint: ok 2"], "{out}");
    assert_eq!(answer(&out, "list=/state/checkpoints"), "ok 1,2");
    assert_eq!(
        answer(&out, "read=/state/checkpoints/1/notes/a"),
        "ok alpha"
    );
    assert_eq!(answer(&out, "read=/state/checkpoints/1/b"), "ok beta");
    assert_eq!(
        answer(&out, "stat=/state/checkpoints/1/b"),
        "ok File 4 ro=true"
    );
    // On disk under the first agent's state dir, after it has ended.
    let on_disk = k.state_dir.join(format!("agents/{first}/checkpoints/1"));
    assert!(on_disk.is_file(), "{}", on_disk.display());
    let ops = [
        "ops",
        "read=/mem/working/notes/a",
        "read=/mem/working/b",
        "read=/mem/working/later",
        "list=/mem/working",
    ];
    let restore_one = format!("{first}:1");
    let id = k.spawn_with(&policy, &["--restore", &restore_one], &ops);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let out = k.logs(id);
    assert_eq!(answer(&out, "read=/mem/working/notes/a"), "ok alpha");
    assert_eq!(answer(&out, "read=/mem/working/b"), "ok beta");
    assert!(answer(&out, "read=/mem/working/later").starts_with("err NotFound"));
    assert_eq!(answer(&out, "list=/mem/working"), "ok b,notes");
    // Without `:N`, the latest.
    let latest = k.spawn_with(&policy, &["--restore", &first.to_string()], &ops);
    assert_eq!(k.wait(latest)["exit"]["code"], 0);
    let out = k.logs(latest);
    assert_eq!(
        answer(&out, "read=/mem/working/b"),
        "ok changed after the checkpoint"
    );
    assert_eq!(
        answer(&out, "read=/mem/working/later"),
        "ok not in checkpoint 1"
    );
    // A checkpoint that does not exist refuses the spawn, naming it.
    let missing = format!("{first}:9");
    let bad = k.ctl(&[
        "spawn",
        "--policy",
        policy.to_str().unwrap(),
        "--restore",
        &missing,
        "--",
        k.agent_bin.to_str().unwrap(),
        "park",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("checkpoint 9"),
        "{bad:?}"
    );
    let records = k.records();
    assert!(records.iter().any(|r| r.agent.map(|a| a.0) == Some(first)
        && matches!(&r.event, RecordEvent::MemoryCheckpoint { number: 1, files: 2, trigger, .. } if trigger == "Checkpoint syscall")));
    assert!(records.iter().any(|r| r.agent.map(|a| a.0) == Some(id)
        && matches!(&r.event, RecordEvent::MemoryRestored { from, number: 1, files: 2, .. } if from.0 == first)));
}

#[test]
fn sigusr1_checkpoints_working_memory_which_outlives_agent_and_kernel() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "usr1", "strict", &["SIGUSR1"], MEMORY_RW);
    let id = k.spawn_with(
        &policy,
        &[],
        &["ops", "write=/mem/working/plan=step 3 of 7", "park"],
    );
    k.wait_for_line(id, "ready");
    k.ctl_ok(&["signal", &id.to_string(), "SIGUSR1"]);
    k.ctl_ok(&["kill", &id.to_string()]);
    k.wait(id);
    k.kill_kernel();
    k.restart(&[]);
    let out = {
        let new = k.spawn_with(
            &policy,
            &["--restore", &id.to_string()],
            &["ops", "read=/mem/working/plan", "read=/mem/working/ready"],
        );
        assert_eq!(k.wait(new)["exit"]["code"], 0);
        k.logs(new)
    };
    assert_eq!(answer(&out, "read=/mem/working/plan"), "ok step 3 of 7");
    assert!(k.records().iter().any(|r| r.agent.map(|a| a.0) == Some(id)
        && matches!(&r.event, RecordEvent::MemoryCheckpoint { number: 1, trigger, .. } if trigger == "SIGUSR1")));
    // `agentctl run --restore` on the same state dir (its own ephemeral kernel).
    k.ctl_ok(&["kernel", "stop"]);
    let restore = format!("{id}:1");
    let run = k.ctl(&[
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--restore",
        &restore,
        "--",
        k.agent_bin.to_str().unwrap(),
        "ops",
        "read=/mem/working/plan",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(answer(&stdout, "read=/mem/working/plan"), "ok step 3 of 7");
}

/// A path is judged and performed as the path it names, however it is spelled: the kernel
/// normalizes what a real jailed agent sends before the policy sees it (a path normal already
/// is taken as it is; any other goes through the full resolution). Spellings of a path under
/// `/mem/working` are allowed and reach the same file; a path that climbs out of it with `..`
/// is judged by where it lands (`/policy`: no rule allows a write there) and changes nothing.
#[test]
fn a_path_is_judged_by_where_it_leads_however_the_agent_spells_it() {
    let k = TestKernel::start();
    // Permissive, so the agent lives through the violation and every op is answered: what
    // stands between the write and `/policy` is then the policy's record and the VFS alone.
    let policy = write_policy(&k.work, "spellings", "permissive", &[], "");
    let climb = "write=/mem/working/../../policy/pwned=pwned";
    // The ops agent labels a write's answer with its path alone.
    let climb_answer = "write=/mem/working/../../policy/pwned";
    let spellings = [
        "read=//mem//working/a",
        "read=/mem/./working/./a",
        "read=/mem/working/b/../a",
        "read=/mem/working/a/",
    ];
    let mut ops = vec!["write=/mem/working/a=one"];
    ops.extend(spellings);
    ops.extend([climb, "list=/policy"]);
    let (id, out) = run_ops_id(&k, &policy, &[], &ops);
    for op in spellings {
        assert_eq!(answer(&out, op), "ok one", "{op}\n{out}");
    }
    assert!(
        answer(&out, climb_answer).starts_with("err PermissionDenied"),
        "a write that climbs to /policy was performed:\n{out}"
    );
    let listed = answer(&out, "list=/policy");
    assert!(
        listed.starts_with("ok ") && !listed.contains("pwned"),
        "{out}"
    );
    // The spellings were allowed by the working-memory rule (not let through as violations);
    // the climb was recorded as a violation.
    let decisions: Vec<(String, bool)> = k
        .events(id)
        .into_iter()
        .filter_map(|e| match e {
            RecordEvent::Syscall {
                call:
                    agentos_syscalls::Syscall::Read { path, .. }
                    | agentos_syscalls::Syscall::Write { path, .. },
                decision,
                ..
            } => Some((path, decision.violation)),
            _ => None,
        })
        .collect();
    for op in spellings {
        let path = op.strip_prefix("read=").unwrap();
        assert!(
            decisions.contains(&(path.to_string(), false)),
            "{path} was not an allowed read: {decisions:?}"
        );
    }
    assert!(
        decisions.contains(&("/mem/working/../../policy/pwned".to_string(), true)),
        "the climb to /policy was not recorded as a violation: {decisions:?}"
    );
}

//! The `Rename` syscall from real jailed agents (`agentos_tests::rename_modes`, and the
//! Python SDK's `tests/python/pyagent.py rename`): a rename inside the workspace, working
//! memory and episodic memory works and is recorded; the policy judges both paths (a deny on
//! either side refuses it, and the file stays; an approval on either side parks it, showing
//! the operator both names; what-if replay re-judges both); hostile renames (`..`, host
//! paths, symlinks out of the workspace, a bind mount, read-only mounts, across mounts) fail
//! and change nothing on the host, and a target in another agent's tree is a trust violation
//! (SIGTRUST); the quota charges the new name's length.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::{Errno, Syscall};
use agentos_tests::{write_policy, TestKernel};

const WORKSPACE_RW: &str = "  - name: ws-read\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace\", \"/workspace/**\"]\n  - name: ws-write\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n";
const EVERYWHERE_RW: &str = "  - name: any-write\n    action: file_write\n    effect: allow\n  - name: any-read\n    action: file_read\n    effect: allow\n";
const LOCKED: &str = "  - name: no-locked\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/workspace/locked/**\"]\n";

/// Runs `rename-ops OPS` to its end; returns the agent's id, its final row and its log.
fn run_ops(
    k: &TestKernel,
    policy: &Path,
    opts: &[&str],
    ops: &[&str],
) -> (u64, serde_json::Value, String) {
    let mut args = vec!["rename-ops"];
    args.extend_from_slice(ops);
    let id = k.spawn_with(policy, opts, &args);
    let last = k.wait(id);
    (id, last.clone(), k.logs(id))
}

/// The answer line of one op (`OP: ok …` / `OP: err Kind …`).
fn answer<'a>(out: &'a str, op: &str) -> &'a str {
    let prefix = format!("{op}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no answer for `{op}` in:\n{out}"))
}

/// One recorded `Rename`: (from, to, decision allowed, rule, result).
type Renamed = (String, String, bool, String, Result<(), Errno>);

/// Every recorded `Rename` of agent `id`.
fn renames(k: &TestKernel, id: u64) -> Vec<Renamed> {
    k.records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            RecordEvent::Syscall {
                call: Syscall::Rename { from, to },
                decision,
                result,
                ..
            } => Some((
                from,
                to,
                decision.allowed,
                decision.rule,
                result.map(|_| ()),
            )),
            _ => None,
        })
        .collect()
}

fn workspace(k: &TestKernel) -> PathBuf {
    let ws = k.work.join("ws");
    std::fs::create_dir_all(ws.join("locked")).unwrap();
    std::fs::write(ws.join("a.txt"), "alpha").unwrap();
    std::fs::write(ws.join("locked/l.txt"), "locked").unwrap();
    ws
}

#[test]
fn a_rename_in_the_workspace_and_in_working_memory_works_and_is_recorded() {
    let k = TestKernel::start();
    let ws = workspace(&k);
    let episodic = "  - name: episodic-rw\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/mem/episodic/**\", \"/mem/semantic/**\"]\n  - name: episodic-ro\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/mem/episodic/**\"]\n";
    let policy = write_policy(
        &k.work,
        "mv",
        "strict",
        &[],
        &format!("{WORKSPACE_RW}{episodic}"),
    );
    let (id, last, out) = run_ops(
        &k,
        &policy,
        &["--workspace", ws.to_str().unwrap()],
        &[
            "mv=/workspace/a.txt=/workspace/new/dir/b.txt",
            "read=/workspace/new/dir/b.txt",
            "stat=/workspace/a.txt",
            "write=/mem/working/m=memo",
            "mv=/mem/working/m=/mem/working/n/m2",
            "read=/mem/working/n/m2",
            "stat=/mem/working/m",
            "mv=/workspace/gone=/workspace/c.txt",
            "write=/mem/episodic/e=episode",
            "mv=/mem/episodic/e=/mem/episodic/f/e2",
            "read=/mem/episodic/f/e2",
            "stat=/mem/episodic/e",
            "mv=/mem/episodic/f/e2=/mem/semantic/e3",
        ],
    );
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(
        answer(&out, "mv=/workspace/a.txt=/workspace/new/dir/b.txt"),
        "ok ",
        "{out}"
    );
    assert_eq!(answer(&out, "read=/workspace/new/dir/b.txt"), "ok alpha");
    assert!(answer(&out, "stat=/workspace/a.txt").starts_with("err NotFound"));
    assert_eq!(answer(&out, "mv=/mem/working/m=/mem/working/n/m2"), "ok ");
    assert_eq!(answer(&out, "read=/mem/working/n/m2"), "ok memo");
    assert!(answer(&out, "stat=/mem/working/m").starts_with("err NotFound"));
    assert!(answer(&out, "mv=/workspace/gone=/workspace/c.txt").starts_with("err NotFound"));
    assert_eq!(answer(&out, "mv=/mem/episodic/e=/mem/episodic/f/e2"), "ok ");
    assert_eq!(answer(&out, "read=/mem/episodic/f/e2"), "ok episode");
    assert!(answer(&out, "stat=/mem/episodic/e").starts_with("err NotFound"));
    // Episodic and semantic memory are two mounts.
    assert!(
        answer(&out, "mv=/mem/episodic/f/e2=/mem/semantic/e3").starts_with("err Unsupported"),
        "{out}"
    );
    // On the host: moved, not copied.
    assert!(!ws.join("a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(ws.join("new/dir/b.txt")).unwrap(),
        "alpha"
    );
    // Recorded like any write: both names, the deciding rule, the outcome.
    let recs = renames(&k, id);
    assert_eq!(recs.len(), 5, "{recs:?}");
    let (from, to, allowed, rule, result) = &recs[0];
    assert_eq!(
        (from.as_str(), to.as_str(), *allowed, result),
        (
            "/workspace/a.txt",
            "/workspace/new/dir/b.txt",
            true,
            &Ok(())
        )
    );
    assert!(rule.starts_with("ws-write ("), "{rule}");
    assert!(
        recs[1].4.is_ok() && recs[1].3.starts_with("working-rw ("),
        "{recs:?}"
    );
    assert!(matches!(recs[2].4, Err(Errno::NotFound { .. })), "{recs:?}");
    // The chain holds (sealed once the kernel stops).
    k.ctl_ok(&["kernel", "stop"]);
    let (code, report) = k.verify();
    assert_eq!(code, 0, "{report}");
    // What-if judges a recorded rename on both paths, as the kernel does: a policy denying
    // only the target's directory flips it (and nothing else of this run).
    let no_new = "  - name: no-new\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/workspace/new/**\"]\n";
    let stricter = write_policy(
        &k.work,
        "mv-stricter",
        "strict",
        &[],
        &format!("{WORKSPACE_RW}{episodic}{no_new}"),
    );
    let out = k.ctl_ok(&[
        "replay",
        "what-if",
        "--policy",
        stricter.to_str().unwrap(),
        "--agent",
        &id.to_string(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v:#}");
    assert_eq!(changes[0]["syscall"], "rename", "{v:#}");
    assert_eq!(changes[0]["now"], "deny", "{v:#}");
    assert!(
        changes[0]["now_rule"]
            .as_str()
            .unwrap()
            .starts_with("no-new ("),
        "{v:#}"
    );
}

/// One rename under a strict policy that denies `denied_side` of it: refused, SIGPOLICY,
/// the file where it was, the deny rule recorded.
fn denied(from: &str, to: &str) {
    let k = TestKernel::start();
    let ws = workspace(&k);
    let policy = write_policy(
        &k.work,
        "locked",
        "strict",
        &[],
        &format!("{WORKSPACE_RW}{LOCKED}"),
    );
    let op = format!("mv={from}={to}");
    // `park`: the agent stays until the kernel ends it for the violation.
    let (id, last, out) = run_ops(
        &k,
        &policy,
        &["--workspace", ws.to_str().unwrap()],
        &[&op, "park"],
    );
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}\n{out}");
    assert!(
        !out.contains("parked for 30 s"),
        "ended by the kernel, not by itself: {out}"
    );
    let recs = renames(&k, id);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (_, _, allowed, rule, result) = &recs[0];
    assert!(!allowed, "{recs:?}");
    assert!(
        rule.starts_with("no-locked ("),
        "the deny rule is named: {rule}"
    );
    assert!(
        matches!(result, Err(Errno::PermissionDenied { rule, .. }) if rule.starts_with("no-locked (")),
        "{result:?}"
    );
    // Nothing moved.
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), "alpha");
    assert_eq!(
        std::fs::read_to_string(ws.join("locked/l.txt")).unwrap(),
        "locked"
    );
    assert!(!ws.join("locked/a.txt").exists() && !ws.join("free.txt").exists());
}

#[test]
fn a_rename_onto_a_denied_path_is_refused_and_the_file_stays() {
    denied("/workspace/a.txt", "/workspace/locked/a.txt");
}

#[test]
fn a_rename_from_a_denied_path_is_refused_and_the_file_stays() {
    denied("/workspace/locked/l.txt", "/workspace/free.txt");
}

/// What `dir` holds, recursively, as (relative path, symlink target or file content).
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                ));
            } else if meta.is_dir() {
                out.push((rel, "dir".into()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// Unmounts a bind mount when dropped.
struct BindMount(PathBuf);

impl BindMount {
    fn new(from: &Path, to: &Path) -> Option<BindMount> {
        std::fs::create_dir_all(to).unwrap();
        let ok = std::process::Command::new("mount")
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
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn hostile_renames_fail_and_change_nothing_on_the_host() {
    let k = TestKernel::start();
    let ws = workspace(&k);
    // A host dir beside the workspace, reachable only through symlinks planted in it.
    let outside = k.work.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "SECRET").unwrap();
    symlink(&outside, ws.join("abs-out")).unwrap();
    symlink("../outside", ws.join("rel-out")).unwrap();
    symlink(outside.join("secret.txt"), ws.join("secret-link")).unwrap();
    let host_file = k.work.join("host.txt");
    std::fs::write(&host_file, "host").unwrap();
    let host = host_file.to_str().unwrap().to_string();
    // As root the test can mount: a bind mount inside the workspace pointing outside it.
    let bind = if agentos_tests::is_root() {
        BindMount::new(&outside, &ws.join("mnt"))
    } else {
        None
    };
    // Permissive with every write allowed: only the VFS stands between the agent and the host.
    let policy = write_policy(&k.work, "hostile", "permissive", &[], EVERYWHERE_RW);
    let outside_before = snapshot(&outside);
    let work_before: Vec<_> = snapshot(&k.work)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("ws"))
        .collect();
    let ops = [
        "write=/mem/working/w=working".to_string(),
        "mv=/workspace/../a.txt=/workspace/x".to_string(),
        "mv=/workspace/a.txt=/workspace/../../escaped.txt".to_string(),
        format!("mv=/workspace/a.txt={host}.moved"),
        format!("mv={host}=/workspace/stolen.txt"),
        "mv=/workspace/a.txt=/workspace/abs-out/planted.txt".to_string(),
        "mv=/workspace/a.txt=/workspace/rel-out/planted.txt".to_string(),
        "mv=/workspace/abs-out/secret.txt=/workspace/stolen.txt".to_string(),
        "mv=/workspace/rel-out/secret.txt=/workspace/stolen.txt".to_string(),
        "mv=/workspace/a.txt=/policy/security.md".to_string(),
        "mv=/policy/security.md=/workspace/policy.md".to_string(),
        "mv=/workspace/a.txt=/ipc/inbox/x".to_string(),
        "mv=/workspace/a.txt=/state/checkpoints/1".to_string(),
        "mv=/mem/working/w=/workspace/from-memory.txt".to_string(),
        "mv=/workspace/a.txt=/mem/working/from-workspace".to_string(),
        "mv=/workspace/a.txt=/workspace".to_string(),
        "mv=/workspace=/workspace/a.txt".to_string(),
        // Moving a symlink moves the link, never its target; reading it still fails.
        "mv=/workspace/secret-link=/workspace/moved-link".to_string(),
        "read=/workspace/moved-link".to_string(),
        "mv=/workspace/a.txt=/workspace/mnt/planted.txt".to_string(),
        "mv=/workspace/mnt/secret.txt=/workspace/stolen.txt".to_string(),
        "mv=/workspace/mnt=/workspace/moved-mnt".to_string(),
    ];
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let (_, last, out) = run_ops(&k, &policy, &["--workspace", ws.to_str().unwrap()], &ops);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(out.contains("rename ops done"), "{out}");
    let refused = |op: &str, kinds: &[&str]| {
        let a = answer(&out, op);
        assert!(
            kinds.iter().any(|k| a.starts_with(&format!("err {k}"))),
            "{op}: expected one of {kinds:?}, got `{a}`\n{out}"
        );
    };
    refused("mv=/workspace/../a.txt=/workspace/x", &["NotFound"]);
    refused(
        "mv=/workspace/a.txt=/workspace/../../escaped.txt",
        &["NotFound"],
    );
    refused(&format!("mv=/workspace/a.txt={host}.moved"), &["NotFound"]);
    refused(&format!("mv={host}=/workspace/stolen.txt"), &["NotFound"]);
    refused(
        "mv=/workspace/a.txt=/workspace/abs-out/planted.txt",
        &["PermissionDenied"],
    );
    refused(
        "mv=/workspace/a.txt=/workspace/rel-out/planted.txt",
        &["PermissionDenied"],
    );
    refused(
        "mv=/workspace/abs-out/secret.txt=/workspace/stolen.txt",
        &["PermissionDenied"],
    );
    refused(
        "mv=/workspace/rel-out/secret.txt=/workspace/stolen.txt",
        &["PermissionDenied"],
    );
    refused(
        "mv=/workspace/a.txt=/policy/security.md",
        &["PermissionDenied"],
    );
    refused(
        "mv=/policy/security.md=/workspace/policy.md",
        &["PermissionDenied"],
    );
    refused("mv=/workspace/a.txt=/ipc/inbox/x", &["PermissionDenied"]);
    refused(
        "mv=/workspace/a.txt=/state/checkpoints/1",
        &["PermissionDenied"],
    );
    refused(
        "mv=/mem/working/w=/workspace/from-memory.txt",
        &["Unsupported"],
    );
    refused(
        "mv=/workspace/a.txt=/mem/working/from-workspace",
        &["Unsupported"],
    );
    refused("mv=/workspace/a.txt=/workspace", &["InvalidArgument"]);
    refused("mv=/workspace=/workspace/a.txt", &["InvalidArgument"]);
    assert_eq!(
        answer(&out, "mv=/workspace/secret-link=/workspace/moved-link"),
        "ok "
    );
    refused("read=/workspace/moved-link", &["PermissionDenied"]);
    if bind.is_some() {
        refused(
            "mv=/workspace/a.txt=/workspace/mnt/planted.txt",
            &["PermissionDenied"],
        );
        refused(
            "mv=/workspace/mnt/secret.txt=/workspace/stolen.txt",
            &["PermissionDenied"],
        );
        refused(
            "mv=/workspace/mnt=/workspace/moved-mnt",
            &["PermissionDenied", "Busy"],
        );
    }
    // The across-mounts refusal says what to do instead.
    assert!(
        answer(&out, "mv=/mem/working/w=/workspace/from-memory.txt")
            .contains("across mounts (/mem/working to /workspace)"),
        "{out}"
    );
    // Nothing outside the workspace changed, and inside it only the link moved.
    assert_eq!(snapshot(&outside), outside_before);
    let work_after: Vec<_> = snapshot(&k.work)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("ws"))
        .collect();
    assert_eq!(work_after, work_before);
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), "alpha");
    assert!(!ws.join("from-memory.txt").exists() && !ws.join("stolen.txt").exists());
    assert!(!k.work.join("escaped.txt").exists());
    assert_eq!(
        std::fs::read_link(ws.join("moved-link")).unwrap(),
        outside.join("secret.txt")
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "SECRET"
    );
}

#[test]
fn the_quota_charges_the_new_names_length() {
    // 100 files of 5-byte paths cost 100 × 69 bytes; each rename to a 753-byte path costs 748
    // more: (65536 - 6900) / 748 = 78 renames fit, the 79th is refused.
    let k = TestKernel::start_with(false, &["--quota-bytes", "65536"]);
    let policy = write_policy(&k.work, "names", "strict", &[], "");
    let id = k.spawn(&policy, &["rename-names", "100"]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert!(out.contains("renamed: 78 QuotaExceeded"), "{out}");
    assert!(
        out.contains("intact: true"),
        "the refused rename changed nothing: {out}"
    );
    assert!(
        out.contains("after-free: ok"),
        "renaming back to a short name frees quota: {out}"
    );
}

#[test]
fn python_agents_rename_too() {
    if !Path::new("/usr/bin/python3").is_file() {
        eprintln!("skipped: /usr/bin/python3 is missing");
        return;
    }
    let k = TestKernel::start();
    let episodic = "  - name: episodic-rw\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/mem/episodic/**\"]\n";
    let policy = write_policy(&k.work, "pyrename", "strict", &[], episodic);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python/pyagent.py")
        .display()
        .to_string();
    let id: u64 = k
        .ctl_ok(&[
            "spawn",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "python3",
            &script,
            "rename",
        ])
        .trim()
        .parse()
        .unwrap();
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    let expected = [
        "write: ok 15",
        "rename: ok None",
        "read: ok moved by python",
        "stat_old: err NotFound errno=2",
        "across: err Unsupported errno=38",
        "missing: err NotFound errno=2",
        "rename done",
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, expected, "{out}");
    let recs = renames(&k, id);
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(
        (recs[0].0.as_str(), recs[0].1.as_str(), &recs[0].4),
        ("/mem/working/py-a", "/mem/working/sub/py-b", &Ok(()))
    );
    // `agentctl recorder show` shows both names.
    let shown = k.ctl_ok(&["recorder", "show", "--json", "--agent", &id.to_string()]);
    assert!(
        shown.contains(r#""Rename":{"from":"/mem/working/py-a","to":"/mem/working/sub/py-b"}"#),
        "{shown}"
    );
}

#[test]
fn a_rename_onto_a_gated_path_waits_for_approval_showing_both_names() {
    let k = TestKernel::start();
    let gated = "  - name: gated\n    action: file_write\n    effect: allow\n    requires_approval: true\n    constraints:\n      paths: [\"/mem/working/gated/**\"]\n";
    let policy = write_policy(&k.work, "gated", "strict", &[], gated);
    let id = k.spawn(
        &policy,
        &[
            "rename-ops",
            "write=/mem/working/draft=text",
            "mv=/mem/working/draft=/mem/working/gated/final",
            "read=/mem/working/gated/final",
        ],
    );
    // The source needs no approval, the target does: the call waits, naming both.
    let mut row = serde_json::Value::Null;
    agentos_tests::wait_until("the rename to wait for approval", || {
        let v: serde_json::Value =
            serde_json::from_str(&k.ctl_ok(&["approvals", "--json"])).unwrap();
        match v.as_array().unwrap().iter().find(|a| a["agent"] == id) {
            Some(a) => {
                row = a.clone();
                true
            }
            None => false,
        }
    });
    assert_eq!(row["action"], "file_write", "{row}");
    assert_eq!(
        row["resource"], "/mem/working/draft -> /mem/working/gated/final",
        "{row}"
    );
    // The rule the engine names for the target, as for a plain write there.
    assert!(row["rule"].as_str().unwrap().contains("gated.md:"), "{row}");
    assert!(!k.logs(id).contains("mv="), "answered before approval");
    k.ctl_ok(&["approve", &row["id"].as_u64().unwrap().to_string()]);
    let last = k.wait(id);
    let out = k.logs(id);
    assert_eq!(last["exit"]["code"], 0, "{last}\n{out}");
    assert_eq!(
        answer(&out, "mv=/mem/working/draft=/mem/working/gated/final"),
        "ok "
    );
    assert_eq!(answer(&out, "read=/mem/working/gated/final"), "ok text");
}

#[test]
fn a_rename_into_another_agents_tree_is_a_trust_violation() {
    let k = TestKernel::start();
    let rules = "  - name: write-all\n    action: file_write\n    effect: allow\n  - name: read-all\n    action: file_read\n    effect: allow\n";
    let policy = write_policy(&k.work, "strict", "strict", &[], rules);
    let victim = k.spawn(&policy, &["park"]);
    k.wait_for_line(victim, "ready");
    // The target names the victim's tree (the source is the attacker's own file).
    let op = format!("mv=/mem/working/mine=/agent/{victim}/mem/working/planted");
    let attacker = k.spawn(
        &policy,
        &["rename-ops", "write=/mem/working/mine=x", &op, "park"],
    );
    let last = k.wait(attacker);
    let out = k.logs(attacker);
    assert_eq!(last["exit"]["signal"], "SIGTRUST", "{last}\n{out}");
    let recorded = renames(&k, attacker);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(!recorded[0].2 && recorded[0].3 == "trust", "{recorded:?}");
    // Refused, never performed; the victim still runs.
    assert!(
        matches!(&recorded[0].4, Err(Errno::PermissionDenied { rule, .. }) if rule == "trust"),
        "{recorded:?}"
    );
    assert_eq!(k.info(victim)["state"], "running");
    k.ctl_ok(&["kill", &victim.to_string()]);
}

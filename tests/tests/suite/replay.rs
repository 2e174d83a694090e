//! `agentctl replay run`: a recorded agent re-run in a real sandbox on a replay kernel that
//! answers every call from the log and performs nothing; a changed program stops at the first
//! divergence with both calls side by side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agentos_kernel::recorder::{read_log, RecordEvent};
use agentos_tests::{make_db, providers_dir, write_policy, TestKernel};
use serde_json::Value;

/// A program whose calls depend on what earlier calls answered: the path it writes comes from
/// a value it wrote (from its args) and read back, the file it marks from a CheckPolicy answer,
/// it signals another agent (which the replay kernel does not even have), and it stores what a
/// `Call` of `database_query` answered (the replay kernel has no provider at all).
fn script(target: u64, read_path: &str) -> Vec<String> {
    [
        "write:/mem/working/next=/mem/working/chosen-by-arg",
        &format!("read:{read_path}"),
        "write:$=payload",
        "check:file_write:/mem/working/branch",
        "write:/mem/working/$=1",
        "read:/mem/working/chosen-by-arg",
        "stat:/mem/working/allowed",
        &format!("signal:{target}:SIGUSR1"),
        r#"call:database_query:{"query":"SELECT x FROM t"}"#,
        "write:/mem/working/from-db=$",
        "exit:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Records one run of the script agent on a kernel that is then stopped (the log sealed);
/// returns the kernel, the agent id, the steps and the agent's output.
fn recorded_run() -> (TestKernel, u64, Vec<String>, String, tempfile::TempDir) {
    let db_dir = tempfile::tempdir().unwrap();
    let db = make_db(&std::fs::canonicalize(db_dir.path()).unwrap());
    let provider = format!(
        "database_query={}/sqlite_query.py,ro={},arg={}",
        providers_dir().display(),
        db.display(),
        db.display()
    );
    let k = TestKernel::start_with(false, &["--provider", &provider]);
    let rules = "  - name: signal-peers\n    action: signal\n    effect: allow\n  - name: db\n    action: database_query\n    effect: allow\n    mode: read_only\n";
    let policy = write_policy(&k.work, "replay", "strict", &["SIGUSR1"], rules);
    let target = k.spawn(&policy, &["park"]);
    k.wait_for_line(target, "ready");
    let steps = script(target, "/mem/working/next");
    let mut args = vec!["script"];
    args.extend(steps.iter().map(String::as_str));
    let id = k.spawn(&policy, &args);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let output = k.ctl_ok(&["logs", &id.to_string()]);
    // The calls really depended on the answers: the write went where the read said, the mark
    // where CheckPolicy said, and the signal reached the other agent.
    assert!(
        output.contains("step 2 write:/mem/working/chosen-by-arg=payload: ok 7"),
        "{output}"
    );
    assert!(
        output.contains("step 4 write:/mem/working/allowed=1: ok 1"),
        "{output}"
    );
    assert!(output.contains("step 7 signal:"), "{output}");
    assert!(output.contains(": ok sent"), "{output}");
    // The Call's answer (the row `one`) went into the next write.
    assert!(
        output.contains(r#"step 9 write:/mem/working/from-db={"columns""#)
            && output.contains(r#""rows":[["one"]]"#),
        "{output}"
    );
    assert_eq!(k.info(target)["signals"], 1);
    k.ctl_ok(&["kernel", "stop"]);
    // The database changes after the run: a re-run that performed the Call would see it.
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); d.execute(\"update t set x='changed'\"); d.commit()",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (k, id, steps, output, db_dir)
}

/// Every file under a dir (the recorder's `tile/` included), by relative path.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `agentctl --state-dir STATE replay run --agent ID EXTRA… --json -- test-agent script STEPS…`.
fn replay(k: &TestKernel, state: &Path, id: u64, extra: &[&str], steps: &[String]) -> Output {
    Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(state)
        .args(["replay", "run", "--agent", &id.to_string()])
        .args(extra)
        .arg("--")
        .arg(&k.agent_bin)
        .arg("script")
        .args(steps)
        .output()
        .unwrap()
}

/// The `--json` report: the last line of stderr.
fn report(out: &Output) -> Value {
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no JSON report ({e}):\n{err}"))
}

/// `recorder verify --json` of the log in `state` exits 1 (tampered) naming record `seq` and a
/// problem that says `what`.
fn assert_tampered_at(k: &TestKernel, state: &Path, seq: u64, what: &str) {
    let out = Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(state)
        .args(["recorder", "verify", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(v["problem"]["seq"].as_u64(), Some(seq), "{v:#}");
    assert!(
        v["problem"]["what"].as_str().unwrap().contains(what),
        "{v:#}"
    );
}

/// A policy that allows nothing at all: if the replay judged calls, every one would be refused.
fn deny_all(dir: &Path) -> PathBuf {
    let path = dir.join("deny-all.md");
    std::fs::write(
        &path,
        "---\nkernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies:\n  - name: nothing\n    action: file_read\n    effect: deny\n---\n",
    )
    .unwrap();
    path
}

#[test]
fn replay_run_re_runs_an_agent_identically_from_the_log_performing_nothing() {
    let (k, id, steps, output, _db) = recorded_run();
    let recorded = k.records();
    let recorded_calls = recorded
        .iter()
        .filter(|r| {
            r.agent.map(|a| a.0) == Some(id) && matches!(r.event, RecordEvent::Syscall { .. })
        })
        .count();
    assert_eq!(recorded_calls, steps.len());
    let before = snapshot(&k.recorder_dir());
    let replay_state = k.work.join("replay-state");
    let deny = deny_all(&k.work);
    let out = replay(
        &k,
        &k.state_dir,
        id,
        &[
            "--policy",
            deny.to_str().unwrap(),
            "--replay-state-dir",
            replay_state.to_str().unwrap(),
            "--json",
        ],
        &steps,
    );
    let v = report(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    // The program saw exactly the answers it saw the first time: the branch taken on the
    // CheckPolicy answer although this policy denies everything (nothing judged), the signal
    // `sent` although the replay kernel has no agent to send it to (nothing performed).
    assert_eq!(String::from_utf8_lossy(&out.stdout), output);
    assert_eq!(v["status"], "identical", "{v:#}");
    assert_eq!(v["replayed"].as_u64(), Some(steps.len() as u64), "{v:#}");
    assert_eq!(v["recorded_calls"].as_u64(), Some(steps.len() as u64));
    assert!(v["divergence"].is_null(), "{v:#}");
    assert_eq!(v["exit"]["Code"], 0, "{v:#}");
    // No write happened: the re-run's working memory is empty.
    assert_eq!(v["working_memory"]["files"], 0, "{v:#}");
    assert_eq!(v["working_memory"]["bytes"], 0, "{v:#}");
    // The replay kernel logged every call as replayed, in its own state dir…
    let own: Vec<_> = read_log(&replay_state.join("recorder"))
        .unwrap()
        .into_iter()
        .filter_map(|(r, _)| match r.event {
            RecordEvent::Syscall { decision, .. } => Some(decision),
            _ => None,
        })
        .collect();
    assert_eq!(own.len(), steps.len());
    assert!(
        own.iter()
            .all(|d| d.mode == "replay" && d.reason.starts_with("replay: answered from record")),
        "{own:#?}"
    );
    // …and the recorded log was not touched.
    assert_eq!(snapshot(&k.recorder_dir()), before);
    // The recorded state dir is refused as the replay kernel's.
    let out = replay(
        &k,
        &k.state_dir,
        id,
        &["--replay-state-dir", k.state_dir.to_str().unwrap()],
        &steps,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(snapshot(&k.recorder_dir()), before);
}

#[test]
fn replay_run_stops_a_changed_program_at_the_first_divergence() {
    let (k, id, steps, _, _db) = recorded_run();
    let before = snapshot(&k.recorder_dir());

    // Other args make the program read another path at its second call.
    let changed = script(
        steps[7].split(':').nth(1).unwrap().parse().unwrap(),
        "/mem/working/elsewhere",
    );
    let out = replay(&k, &k.state_dir, id, &[], &changed);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("step 0 "), "{stdout}");
    assert!(
        !stdout.contains("step 1 "),
        "stopped before answering: {stdout}"
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("DIVERGED after 1 of 11 recorded calls"),
        "{text}"
    );
    assert!(
        text.contains("request 2: the program called read"),
        "{text}"
    );
    let path_row = text
        .lines()
        .find(|l| l.trim_start().starts_with("≠ path"))
        .unwrap_or_else(|| panic!("no differing path row:\n{text}"));
    assert!(
        path_row.contains("\"/mem/working/next\"")
            && path_row.contains("\"/mem/working/elsewhere\""),
        "{text}"
    );
    assert!(text.contains("expected (record "), "{text}");
    assert!(text.contains("actual (request 2)"), "{text}");

    // The same as JSON.
    let out = replay(&k, &k.state_dir, id, &["--json"], &changed);
    let v = report(&out);
    let d = &v["divergence"];
    assert_eq!(d["kind"], "differs", "{v:#}");
    assert_eq!(d["expected"]["id"], 2);
    assert_eq!(d["actual"]["id"], 2);
    assert_eq!(d["expected"]["syscall"], "read");
    let differing: Vec<&str> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["differs"] == true)
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(differing, ["path"]);
    assert_eq!(v["exit"]["Killed"]["signal"], "Kill", "{v:#}");

    // A program that ends early.
    let out = replay(&k, &k.state_dir, id, &["--json"], &steps[..5]);
    let v = report(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["divergence"]["kind"], "ended_early", "{v:#}");
    assert_eq!(v["divergence"]["expected"]["id"], 6, "{v:#}");
    assert_eq!(v["replayed"], 5);

    // A program that goes on after the recorded run had exited.
    let mut longer = steps[..8].to_vec();
    longer.push("read:/mem/working/next".into());
    longer.push("exit:0".into());
    let v = report(&replay(&k, &k.state_dir, id, &["--json"], &longer));
    assert_eq!(v["divergence"]["kind"], "differs", "{v:#}");
    assert_eq!(v["divergence"]["expected"]["syscall"], "call", "{v:#}");
    assert_eq!(snapshot(&k.recorder_dir()), before);

    // A log that does not verify is refused.
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path().join("recorder");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &before {
        let to = dir.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let seg = dir.join(agentos_kernel::recorder::format::segment_name(1));
    let mut b = std::fs::read(&seg).unwrap();
    let at = agentos_kernel::recorder::format::HEADER_LEN + 20;
    b[at] ^= 1;
    std::fs::write(&seg, b).unwrap();
    let out = replay(&k, copy.path(), id, &[], &steps);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not verify"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn large_payloads_are_blobs_that_verify_replay_and_detect_tampering() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "big", "strict", &[], "");
    let steps: Vec<String> = [
        "big:/mem/working/large=100000",
        "read:/mem/working/large",
        "write:/mem/working/small=x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut args = vec!["script"];
    args.extend(steps.iter().map(String::as_str));
    let id = k.spawn(&policy, &args);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let output = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(output.contains("ok 100000 bytes, sum "), "{output}");
    k.ctl_ok(&["kernel", "stop"]);
    assert_eq!(k.verify().0, 0);
    // The 100 kB went to one blob (the write's data and the read's reply are the same bytes);
    // no segment holds them.
    let blobs: Vec<PathBuf> = std::fs::read_dir(k.recorder_dir().join("blobs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(std::fs::metadata(&blobs[0]).unwrap().len(), 100_000);
    let segments: u64 = std::fs::read_dir(k.recorder_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("segment-"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(segments < 100_000, "segments hold {segments} bytes");
    // Readers get the whole payload back.
    let write_seq = k
        .records()
        .into_iter()
        .find_map(|r| match r.event {
            RecordEvent::Syscall {
                call: agentos_syscalls::Syscall::Write { data, .. },
                ..
            } if data.len() == 100_000 => Some(r.seq),
            _ => None,
        })
        .expect("the large write, whole");
    let export = k.ctl_ok(&["recorder", "export", "--format", "jsonl"]);
    let line: Value = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["seq"] == write_seq)
        .unwrap();
    assert_eq!(
        line["event"]["Syscall"]["call"]["Write"]["data"]
            .as_array()
            .unwrap()
            .len(),
        100_000
    );
    // The re-run is answered from the blobs.
    let out = replay(&k, &k.state_dir, id, &["--json"], &steps);
    let v = report(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), output);
    assert_eq!(v["replayed"], 3);

    // A changed blob fails verification at the record that names it, and replay refuses.
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path().join("recorder");
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    for e in std::fs::read_dir(k.recorder_dir()).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let name = blobs[0].file_name().unwrap();
    let mut b = std::fs::read(&blobs[0]).unwrap();
    b[50_000] ^= 0x01;
    std::fs::write(dir.join("blobs").join(name), b).unwrap();
    assert_tampered_at(&k, copy.path(), write_seq, "was changed");
    let out = replay(&k, copy.path(), id, &[], &steps);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
    // A missing one too.
    std::fs::remove_file(dir.join("blobs").join(name)).unwrap();
    assert_tampered_at(&k, copy.path(), write_seq, "is missing");
}

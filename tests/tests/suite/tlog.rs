//! The flight recorder as a transparency log, on a log written by real agents through a real
//! kernel: a verifier not written here (Go's golang.org/x/mod/sumdb/tlog and note, from
//! Debian's golang-go and golang-golang-x-mod-dev, driven by tests/go/tlogverify) accepts the
//! checkpoint, an inclusion proof and a consistency proof `agentctl` produces, and rejects
//! them once a record (or the proof) is changed; and `agentctl recorder verify --checkpoint`
//! and `consistency` catch a changed tile, a forked checkpoint and a rollback, saying where.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use agentos_kernel::recorder::tlog;
use agentos_tests::{repo_root, target_dir, write_policy, TestKernel};
use base64::Engine as _;
use serde_json::Value;

/// Builds tests/go/tlogverify with Debian's Go in GOPATH mode (no network: the x/mod source
/// comes from golang-golang-x-mod-dev under /usr/share/gocode). A missing toolchain fails
/// the test, naming the install.
pub(crate) fn go_verifier() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let install = "install Go and its x/mod source: `apt-get install golang-go golang-golang-x-mod-dev` (.ci/run does)";
        let go = Path::new("/usr/bin/go");
        assert!(go.exists(), "no /usr/bin/go: {install}");
        let gopath = Path::new("/usr/share/gocode");
        assert!(
            gopath.join("src/golang.org/x/mod/sumdb/tlog/tlog.go").exists(),
            "no golang.org/x/mod source under {}: {install}",
            gopath.display()
        );
        let out_dir = target_dir().join("go");
        std::fs::create_dir_all(&out_dir).expect("mkdir target/go");
        let bin = out_dir.join("tlogverify");
        let out = Command::new(go)
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(repo_root().join("tests/go/tlogverify/main.go"))
            .env("GOPATH", gopath)
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOPROXY", "off")
            .env("GOCACHE", out_dir.join("cache"))
            .output()
            .expect("run go build");
        assert!(
            out.status.success(),
            "go build tests/go/tlogverify failed ({install}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
    .clone()
}

/// Runs the Go verifier: Ok(stdout) when it accepts, Err(stderr) when it rejects.
pub(super) fn go(mode: &str, vkey: &str, file: &Path) -> Result<String, String> {
    let out = Command::new(go_verifier())
        .args([mode, vkey])
        .arg(file)
        .output()
        .expect("run tlogverify");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

fn ctl_at(k: &TestKernel, state: &Path, args: &[&str]) -> Output {
    Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run agentctl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A kernel whose agents made calls, with a checkpoint saved mid-way (`old.note`, before a
/// restart and more agents) and the final one (`new.note`, after `kernel stop`).
fn log_with_two_checkpoints() -> (TestKernel, PathBuf, PathBuf) {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "tlog", "strict", &[], "");
    for _ in 0..2 {
        let id = k.spawn(&policy, &["echo"]);
        assert_eq!(k.wait(id)["exit"]["code"], 0);
    }
    let old = k.work.join("old.note");
    k.ctl_ok(&["kernel", "stop"]);
    k.ctl_ok(&["recorder", "checkpoint", "--out", old.to_str().unwrap()]);
    k.restart(&[]);
    for _ in 0..2 {
        let id = k.spawn(&policy, &["echo"]);
        assert_eq!(k.wait(id)["exit"]["code"], 0);
    }
    k.ctl_ok(&["kernel", "stop"]);
    let new = k.work.join("new.note");
    k.ctl_ok(&["recorder", "checkpoint", "--out", new.to_str().unwrap()]);
    (k, old, new)
}

fn size_of(note: &Path) -> u64 {
    let text = std::fs::read_to_string(note).unwrap();
    text.lines().nth(1).unwrap().parse().unwrap()
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
}

/// Copies the kernel's recorder (with its tiles) under a fresh state dir.
pub(super) fn copy_state(k: &TestKernel) -> (tempfile::TempDir, PathBuf) {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                copy_dir(&p, &to.join(e.file_name()));
            } else {
                std::fs::copy(&p, to.join(e.file_name())).unwrap();
            }
        }
    }
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    copy_dir(&k.recorder_dir(), &state.join("recorder"));
    (root, state)
}

#[test]
fn a_go_verifier_accepts_agentctl_proofs_and_rejects_changed_ones() {
    let (k, old, new) = log_with_two_checkpoints();
    let vkey = k.ctl_ok(&["recorder", "checkpoint", "--verifier-key"]);
    let vkey = vkey.trim();
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert!(
        vkey.starts_with(&format!("agentos/{host}/recorder+")),
        "{vkey}"
    );
    let (o, n) = (size_of(&old), size_of(&new));
    assert!(o > 0 && n > o, "old {o}, new {n}");

    // The signature, by Go's note package.
    let ok = go("note", vkey, &new).unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.contains(&format!(" {n} ")), "{ok}");
    assert!(go("note", vkey, &old).is_ok());

    // An inclusion proof for the first, a middle and the last record, by Go's tlog.
    for seq in [0, o / 2, n - 1] {
        let out = k.ctl_ok(&["recorder", "prove", &seq.to_string(), "--json"]);
        let p: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(p["index"], seq);
        assert_eq!(p["tree_size"], n);
        assert_eq!(p["record"]["seq"], seq, "{p:#}");
        let file = k.work.join(format!("prove-{seq}.json"));
        std::fs::write(&file, &out).unwrap();
        let ok = go("inclusion", vkey, &file).unwrap_or_else(|e| panic!("record {seq}: {e}"));
        assert!(
            ok.starts_with(&format!("ok record {seq} in tree {n}")),
            "{ok}"
        );

        // The record changed (one byte of its leaf): Go refuses the proof.
        let mut leaf = base64::engine::general_purpose::STANDARD
            .decode(p["leaf"].as_str().unwrap())
            .unwrap();
        let last = leaf.len() - 1;
        leaf[last] ^= 1;
        let mut changed = p.clone();
        changed["leaf"] = base64::engine::general_purpose::STANDARD
            .encode(&leaf)
            .into();
        let bad = k.work.join(format!("prove-{seq}-changed.json"));
        write_json(&bad, &changed);
        let e = go("inclusion", vkey, &bad).expect_err("a changed record verified");
        assert!(
            e.contains(&format!("record {seq} is not in the tree")),
            "{e}"
        );
    }
    // Against an older checkpoint too.
    let out = k.ctl_ok(&[
        "recorder",
        "prove",
        "1",
        "--checkpoint",
        old.to_str().unwrap(),
        "--json",
    ]);
    let file = k.work.join("prove-old.json");
    std::fs::write(&file, &out).unwrap();
    assert!(go("inclusion", vkey, &file).is_ok());

    // The checkpoint's size changed: its signature fails in Go.
    let p: Value = serde_json::from_str(&out).unwrap();
    let mut forged = p.clone();
    let note = p["checkpoint"].as_str().unwrap();
    forged["checkpoint"] = note
        .replacen(&format!("\n{o}\n"), &format!("\n{}\n", o + 1), 1)
        .into();
    let bad = k.work.join("prove-forged.json");
    write_json(&bad, &forged);
    let e = go("inclusion", vkey, &bad).expect_err("a changed checkpoint verified");
    assert!(e.contains("signature"), "{e}");

    // A consistency proof across the restart, by Go's tlog; a changed hash in it is refused.
    let out = k.ctl_ok(&[
        "recorder",
        "consistency",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--json",
    ]);
    let file = k.work.join("consistency.json");
    std::fs::write(&file, &out).unwrap();
    let ok = go("consistency", vkey, &file).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ok.contains(&format!("tree {o} is a prefix of tree {n}")),
        "{ok}"
    );
    let mut c: Value = serde_json::from_str(&out).unwrap();
    let first = c["proof"][0].as_str().unwrap().to_string();
    let mut h = base64::engine::general_purpose::STANDARD
        .decode(first)
        .unwrap();
    h[0] ^= 1;
    c["proof"][0] = base64::engine::general_purpose::STANDARD.encode(&h).into();
    let bad = k.work.join("consistency-changed.json");
    write_json(&bad, &c);
    let e = go("consistency", vkey, &bad).expect_err("a changed consistency proof verified");
    assert!(
        e.contains(&format!("tree {o} is not a prefix of tree {n}")),
        "{e}"
    );

    // A record changed in the log itself: agentctl refuses to prove against the checkpoint,
    // naming the fork.
    let (_root, state) = copy_state(&k);
    let seg = state.join("recorder/segment-000001.log");
    let mut b = std::fs::read(&seg).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x20;
    std::fs::write(&seg, b).unwrap();
    let out = ctl_at(
        &k,
        &state,
        &[
            "recorder",
            "prove",
            "0",
            "--checkpoint",
            new.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("FORK"), "{}", stderr(&out));
}

#[test]
fn changed_tiles_forked_checkpoints_and_rollbacks_are_located() {
    let (k, old, new) = log_with_two_checkpoints();
    let (o, n) = (size_of(&old), size_of(&new));
    let newp = new.to_str().unwrap();

    // The untouched log verifies against both checkpoints.
    for cp in [&old, &new] {
        let out = k.ctl(&["recorder", "verify", "--checkpoint", cp.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("ok: the log holds"));
    }

    // A changed hash tile, then a changed entry bundle: named with the hash or entry.
    let (_r1, state) = copy_state(&k);
    let rec = state.join("recorder");
    let tile = rec.join(tlog::tile_path("0", 0, n % 256));
    assert!(tile.exists(), "{} missing", tile.display());
    let mut b = std::fs::read(&tile).unwrap();
    b[32 * 3] ^= 1;
    std::fs::write(&tile, b).unwrap();
    let out = ctl_at(
        &k,
        &state,
        &["recorder", "verify", "--checkpoint", newp, "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].to_string();
    assert!(
        problems.contains(&format!(
            "tile/0/000.p/{}: hash 3 (the subtree of records 3..4)",
            n % 256
        )),
        "{v:#}"
    );
    let bundle = rec.join(tlog::tile_path("entries", 0, n % 256));
    let mut b = std::fs::read(&bundle).unwrap();
    b[2 + 10] ^= 1; // inside entry 0
    std::fs::write(&bundle, b).unwrap();
    let out = ctl_at(
        &k,
        &state,
        &["recorder", "verify", "--checkpoint", newp, "--json"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["problems"].to_string().contains("entry 0 (record 0)"),
        "{v:#}"
    );

    // A forked checkpoint signed by another key: refused as not this recorder's.
    let origin = std::fs::read_to_string(k.recorder_dir().join("origin")).unwrap();
    let origin = origin.trim();
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let fake_root = tlog::Hash([7; 32]);
    let forged = k.work.join("forged-other-key.note");
    std::fs::write(
        &forged,
        tlog::sign_checkpoint(origin, n, &fake_root, &other).unwrap(),
    )
    .unwrap();
    let out = k.ctl(&[
        "recorder",
        "verify",
        "--checkpoint",
        forged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no signature by this recorder's key"),
        "{}",
        stderr(&out)
    );

    // A fork signed with the recorder's own key (stolen, or a node showing two histories):
    // same size, another root. The signature holds; the root does not.
    let key = std::fs::read(k.recorder_dir().join("key")).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&key.try_into().unwrap());
    let fork = k.work.join("fork.note");
    std::fs::write(
        &fork,
        tlog::sign_checkpoint(origin, n, &fake_root, &key).unwrap(),
    )
    .unwrap();
    for args in [
        vec!["recorder", "verify", "--checkpoint", fork.to_str().unwrap()],
        vec![
            "recorder",
            "consistency",
            old.to_str().unwrap(),
            fork.to_str().unwrap(),
        ],
    ] {
        let out = k.ctl(&args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains(&format!(
                "FORK: checkpoint {} says the tree of the first {n} records has root",
                fork.display()
            )),
            "{args:?}: {text}"
        );
    }

    // Rollback: NEW smaller than OLD, and a checkpoint beyond what the log holds (the log
    // was cut back after the checkpoint was seen).
    let out = k.ctl(&["recorder", "consistency", newp, old.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "ROLLBACK: NEW ({}) has {o} records, fewer than OLD ({newp}) with {n}",
            old.display()
        )),
        "{}",
        stderr(&out)
    );
    let ahead = k.work.join("ahead.note");
    std::fs::write(
        &ahead,
        tlog::sign_checkpoint(origin, n + 5, &fake_root, &key).unwrap(),
    )
    .unwrap();
    let out = k.ctl(&[
        "recorder",
        "verify",
        "--checkpoint",
        ahead.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "ROLLBACK: checkpoint {} commits to {} records, the log has only {n}",
            ahead.display(),
            n + 5
        )),
        "{text}"
    );

    // Bad input: a file that is not a note, a size beyond the log.
    let junk = k.work.join("junk.note");
    std::fs::write(&junk, "hello\n").unwrap();
    let out = k.ctl(&["recorder", "verify", "--checkpoint", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("checkpoint {}: not a signed note", junk.display())),
        "{}",
        stderr(&out)
    );
    let out = k.ctl(&["recorder", "consistency", "1", &(n + 1).to_string()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("NEW size"), "{}", stderr(&out));
    let out = k.ctl(&["recorder", "prove", &n.to_string()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains(&format!("record {n} is not under checkpoint")),
        "{}",
        stderr(&out)
    );
}

/// What is under `dir` (recursively): `(path, is_dir)` relative to `dir`.
fn tree_of(dir: &Path) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if is_dir {
                todo.push(e.path());
            }
            out.push((rel, is_dir));
        }
    }
    out
}

/// The tree size the published checkpoint note names.
fn published_size(k: &TestKernel) -> u64 {
    std::fs::read_to_string(k.state_dir.join("recorder/checkpoint"))
        .ok()
        .and_then(|t| t.lines().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_agent_flooding_the_log_leaves_one_partial_per_tile_level_and_a_log_that_verifies() {
    // A jailed agent writes as fast as it can: every call is a record, the publisher writes
    // partial tiles with each published checkpoint, renaming the last partial into the next
    // (no file freed). What a flood must not do: leave a partial (or an emptied `.p` dir) per
    // checkpoint on the host's disk, or tiles that do not match the log.
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "tlog-flood", "strict", &[], "");
    let id = k.spawn(&policy, &["spin"]);
    let tiles = k.state_dir.join("recorder/tile");
    // Several published checkpoints, the tree past a few full tiles.
    let mut seen = Vec::new();
    agentos_tests::wait_until("four published checkpoints past 1,000 records", || {
        let size = published_size(&k);
        if seen.last() != Some(&size) {
            seen.push(size);
        }
        seen.len() >= 5 && size > 1_000
    });
    // While it floods: in each `.p` dir at most one partial, and at most one `.p` dir with a
    // partial per tile level (`0`, `1`, … and `entries`); emptied ones waiting for the next
    // partial are as few.
    let now = tree_of(&tiles);
    let p_dirs: Vec<&String> = now
        .iter()
        .filter(|(p, d)| *d && p.ends_with(".p"))
        .map(|(p, _)| p)
        .collect();
    let levels = now.iter().filter(|(p, d)| *d && !p.contains('/')).count();
    let partials: Vec<&String> = now
        .iter()
        .filter(|(p, d)| !d && p.contains(".p/"))
        .map(|(p, _)| p)
        .collect();
    for dir in &p_dirs {
        let inside = partials
            .iter()
            .filter(|p| p.starts_with(&format!("{dir}/")))
            .count();
        assert!(inside <= 1, "{dir} holds {inside} partials: {partials:?}");
    }
    assert!(partials.len() <= levels, "{partials:?} for {levels} levels");
    assert!(p_dirs.len() <= 2 * levels, "{p_dirs:?} for {levels} levels");
    k.ctl_ok(&["kill", &id.to_string()]);
    k.wait(id);
    k.ctl_ok(&["kernel", "stop"]);
    // Stopped: no emptied `.p` dir is left, the temp files are the two swapped ones, and every
    // tile matches the log.
    let after = tree_of(&tiles);
    for (p, d) in &after {
        if *d && p.ends_with(".p") {
            assert!(
                after.iter().any(|(q, _)| q.starts_with(&format!("{p}/"))),
                "an empty {p} left after the stop"
            );
        }
    }
    let tmp: Vec<String> = std::fs::read_dir(k.state_dir.join("recorder"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        tmp.iter().all(|n| n == "HEAD.tmp" || n == "checkpoint.tmp"),
        "{tmp:?}"
    );
    let note = k.state_dir.join("recorder/checkpoint");
    let out = k.ctl(&[
        "recorder",
        "verify",
        "--checkpoint",
        note.to_str().unwrap(),
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{v}");
    assert!(v["tiles_checked"].as_u64().unwrap() >= 6, "{v}");
}

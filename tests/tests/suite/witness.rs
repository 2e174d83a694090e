//! Witnesses of the flight recorder's transparency log (C2SP tlog-witness and
//! tlog-cosignature): a real kernel pushes its checkpoints to two `agentctl recorder witness
//! serve` processes on loopback and keeps their cosignatures; `verify --min-witnesses` counts
//! them; Go's ed25519 over the spec's message (tests/go/tlogverify `cosigned`) accepts them;
//! and a witness refuses a fork (same size, another root, signed with the log's own key) and
//! a rollback, over HTTP with the spec's status codes and through `recorder cosign`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agentos_kernel::recorder::tlog;
use agentos_tests::{write_policy, TestKernel};
use serde_json::Value;

use super::tlog::go_verifier;

const DEADLINE: Duration = Duration::from_secs(60);

/// A `recorder witness serve` child, killed on drop.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A witness key named `name` in the test's work dir; its verifier key.
fn witness_key(k: &TestKernel, name: &str) -> (PathBuf, String) {
    let file = k.work.join(format!("{}.key", name.replace('/', "_")));
    let out = k.ctl(&[
        "recorder",
        "witness-key",
        "--name",
        name,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "witness-key: {}", err(&out));
    let vkey = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(vkey.starts_with(&format!("{name}+")), "{vkey}");
    (file, vkey)
}

fn serve(k: &TestKernel, key: &Path, state: &Path, log_key: &str) -> Served {
    let mut child = Command::new(&k.agentctl)
        .args(["recorder", "witness", "serve", "--listen", "127.0.0.1:0"])
        .arg("--key")
        .arg(key)
        .arg("--state")
        .arg(state)
        .args(["--log-key", log_key])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start witness serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("witness's first line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in `{line}`"))
        .to_string();
    Served { child, url }
}

fn size_of(note: &[u8]) -> u64 {
    String::from_utf8_lossy(note)
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

fn verify(k: &TestKernel, file: &Path, witnesses: &[&str], min: usize) -> Output {
    let mut args = vec![
        "recorder".to_string(),
        "verify".into(),
        "--checkpoint".into(),
        file.display().to_string(),
    ];
    for w in witnesses {
        args.push("--witness".into());
        args.push(w.to_string());
    }
    args.push("--min-witnesses".into());
    args.push(min.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    k.ctl(&args)
}

/// Polls until `f` is true or the deadline passes.
fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_kernel_gets_its_checkpoints_cosigned_by_two_witnesses() {
    let k = TestKernel::start();
    let log_key = k.ctl_ok(&["recorder", "checkpoint", "--verifier-key"]);
    let log_key = log_key.trim().to_string();
    k.ctl_ok(&["kernel", "stop"]);
    let (k1, v1) = witness_key(&k, "witness.test/w1");
    let (k2, v2) = witness_key(&k, "witness.test/w2");
    let (_k3, v3) = witness_key(&k, "witness.test/w3");
    let w1 = serve(&k, &k1, &k.work.join("w1-state"), &log_key);
    let w2 = serve(&k, &k2, &k.work.join("w2-state"), &log_key);
    let a1 = format!("{}={v1}", w1.url);
    let a2 = format!("{}={v2}", w2.url);
    // A third witness that is down: its failures are recorded, the others are not held up.
    let a3 = format!("http://127.0.0.1:1={v3}");
    k.restart(&["--witness", &a1, "--witness", &a2, "--witness", &a3]);
    let witnessed = k.recorder_dir().join("checkpoint.witnessed");
    let both = |k: &TestKernel| verify(k, &witnessed, &[&v1, &v2], 2).status.success();
    poll("a checkpoint cosigned by both witnesses", || {
        witnessed.exists() && both(&k)
    });
    let first = size_of(&std::fs::read(&witnessed).unwrap());
    // The log grows: the next checkpoint goes with a consistency proof from the witnesses'
    // size, and is cosigned again.
    let policy = write_policy(&k.work, "witnessed", "strict", &[], "");
    let id = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    poll("a larger checkpoint cosigned by both", || {
        size_of(&std::fs::read(&witnessed).unwrap()) > first && both(&k)
    });
    k.ctl_ok(&["kernel", "stop"]);

    let ok = verify(&k, &witnessed, &[&v1, &v2], 2);
    assert!(ok.status.success(), "{}", err(&ok));
    // `--json` names the witnesses it counted, with their cosignatures' times.
    let j = k.ctl_ok(&[
        "recorder",
        "verify",
        "--checkpoint",
        witnessed.to_str().unwrap(),
        "--witness",
        &v1,
        "--witness",
        &v2,
        "--min-witnesses",
        "2",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&j).unwrap();
    let mut names: Vec<&str> = j["witnesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["witness.test/w1", "witness.test/w2"], "{j}");
    assert!(
        j["witnesses"][0]["timestamp"].as_u64().unwrap() > 1_700_000_000,
        "{j}"
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("witnesses: 2 valid cosignature(s)"),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // Three required, two cosigned: refused, naming the count.
    let three = verify(&k, &witnessed, &[&v1, &v2, &v3], 3);
    assert_eq!(three.status.code(), Some(1), "{}", err(&three));
    assert!(
        err(&three).contains("2 valid cosignature(s)"),
        "{}",
        err(&three)
    );
    // A changed cosignature line does not count (it is an error: the note is malformed).
    let text = std::fs::read_to_string(&witnessed).unwrap();
    let forged: String = text
        .lines()
        .map(|l| {
            if l.starts_with("— witness.test/w2 ") {
                let mut b = l.as_bytes().to_vec();
                let i = b.len() - 6;
                b[i] = if b[i] == b'A' { b'B' } else { b'A' };
                String::from_utf8(b).unwrap()
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    let forged_file = k.work.join("forged.note");
    std::fs::write(&forged_file, forged).unwrap();
    assert!(!verify(&k, &forged_file, &[&v1, &v2], 2).status.success());
    assert!(verify(&k, &forged_file, &[&v1], 1).status.success());

    // Go's ed25519 over the spec's message accepts both cosignatures.
    let go = Command::new(go_verifier())
        .args(["cosigned", &log_key])
        .arg(&witnessed)
        .args([&v1, &v2])
        .output()
        .unwrap();
    assert!(go.status.success(), "go: {}", err(&go));
    assert_eq!(
        String::from_utf8_lossy(&go.stdout)
            .matches("ok cosigned by")
            .count(),
        2
    );
    let go_forged = Command::new(go_verifier())
        .args(["cosigned", &log_key])
        .arg(&forged_file)
        .arg(&v2)
        .output()
        .unwrap();
    assert!(!go_forged.status.success());

    // Each outcome is a record.
    let export = k.ctl_ok(&["recorder", "export"]);
    let cosigned: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "witness_cosigned")
        .collect();
    assert!(cosigned.len() >= 4, "{cosigned:?}");
    let failed: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "witness_failed")
        .collect();
    assert!(!failed.is_empty(), "no witness_failed record");
    assert!(
        failed
            .iter()
            .all(|v| v.to_string().contains("witness.test/w3")),
        "{failed:?}"
    );
    drop((w1, w2));
}

fn post(url: &str, body: &[u8]) -> (u16, String, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut r = agent
        .post(&format!("{url}/add-checkpoint"))
        .send(body)
        .expect("POST add-checkpoint");
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), ctype, text)
}

fn body(old: u64, proof: &[String], note: &[u8]) -> Vec<u8> {
    let mut b = format!("old {old}\n").into_bytes();
    for h in proof {
        b.extend_from_slice(format!("{h}\n").as_bytes());
    }
    b.push(b'\n');
    b.extend_from_slice(note);
    b
}

#[test]
fn a_witness_refuses_a_fork_and_a_rollback() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "fork", "strict", &[], "");
    let id = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    k.ctl_ok(&["kernel", "stop"]);
    let log_key = k
        .ctl_ok(&["recorder", "checkpoint", "--verifier-key"])
        .trim()
        .to_string();
    let cp = k.work.join("cp.note");
    k.ctl_ok(&["recorder", "checkpoint", "--out", cp.to_str().unwrap()]);
    let note = std::fs::read(&cp).unwrap();
    let n = size_of(&note);
    let origin = String::from_utf8_lossy(&note)
        .lines()
        .next()
        .unwrap()
        .to_string();
    // The recorder's own key signs the bad checkpoints: a node showing two histories.
    let key = std::fs::read(k.recorder_dir().join("key")).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&key.try_into().unwrap());
    let older: Value = serde_json::from_str(&k.ctl_ok(&[
        "recorder",
        "consistency",
        &(n - 1).to_string(),
        &n.to_string(),
        "--json",
    ]))
    .unwrap();
    let old_root = tlog::parse_hash(older["old_root"].as_str().unwrap()).unwrap();
    let fork = tlog::sign_checkpoint(&origin, n, &old_root, &key).unwrap();
    let rollback = tlog::sign_checkpoint(&origin, n - 1, &old_root, &key).unwrap();
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let foreign = tlog::sign_checkpoint(&origin, n, &old_root, &other).unwrap();
    let unknown = tlog::sign_checkpoint("example.test/log", n, &old_root, &key).unwrap();

    // Over HTTP, with the statuses of C2SP tlog-witness.
    let (wk, wv) = witness_key(&k, "witness.test/h");
    let w = serve(&k, &wk, &k.work.join("h-state"), &log_key);
    let (s, _, t) = post(&w.url, &body(0, &[], &note));
    assert_eq!(s, 200, "{t}");
    assert!(
        t.starts_with("— witness.test/h ") && t.ends_with('\n'),
        "{t}"
    );
    let mut cosigned = note.clone();
    cosigned.extend_from_slice(t.as_bytes());
    let cfile = k.work.join("cosigned.note");
    std::fs::write(&cfile, &cosigned).unwrap();
    assert!(verify(&k, &cfile, &[&wv], 1).status.success());
    let (s, ctype, t) = post(&w.url, &body(0, &[], &note));
    assert_eq!(
        (s, ctype.as_str(), t.as_str()),
        (409, "text/x.tlog.size", &*format!("{n}\n"))
    );
    let (s, _, t) = post(&w.url, &body(n, &[], &fork));
    assert_eq!(s, 422, "a fork at the same size: {t}");
    let (s, _, t) = post(&w.url, &body(n, &[], &rollback));
    assert_eq!(s, 400, "old above the checkpoint's size: {t}");
    let (s, _, t) = post(&w.url, &body(n - 1, &[], &rollback));
    assert_eq!((s, t.as_str()), (409, &*format!("{n}\n")), "a rollback");
    let (s, _, _) = post(&w.url, &body(n, &[], &foreign));
    assert_eq!(s, 403, "signed by another key");
    let (s, _, _) = post(&w.url, &body(0, &[], &unknown));
    assert_eq!(s, 404, "an unknown origin");
    let (s, _, _) = post(&w.url, b"old 01\n\nx");
    assert_eq!(s, 400);
    // Monitoring: GET /<sha256(origin) hex>/checkpoint is the latest cosigned note, with the
    // log's signature and the witness's cosignature; another origin is 404.
    let get = |path: &str| -> (u16, String) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let mut r = agent.get(&format!("{}{path}", w.url)).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(origin.as_bytes()))
    };
    let (s, t) = get(&format!("/{hash}/checkpoint"));
    assert_eq!((s, t.as_bytes()), (200, &cosigned[..]));
    let (s, _) = get(&format!("/{}/checkpoint", "0".repeat(64)));
    assert_eq!(s, 404);
    drop(w);

    // Through `recorder cosign`, with the same checks and a state of its own.
    let (ck, cv) = witness_key(&k, "witness.test/c");
    let state = k.work.join("c-state");
    let cosign = |file: &Path, proof: Option<&Path>| -> Output {
        let mut c = Command::new(&k.agentctl);
        c.args(["recorder", "cosign", "--key"])
            .arg(&ck)
            .arg("--state")
            .arg(&state)
            .args(["--log-key", &log_key]);
        if let Some(p) = proof {
            c.arg("--proof").arg(p);
        }
        c.arg(file).output().unwrap()
    };
    let out = cosign(&cp, None);
    assert!(out.status.success(), "{}", err(&out));
    let signed = k.work.join("c.note");
    std::fs::write(&signed, &out.stdout).unwrap();
    assert!(verify(&k, &signed, &[&cv], 1).status.success());
    let fork_file = k.work.join("fork.note");
    std::fs::write(&fork_file, &fork).unwrap();
    let out = cosign(&fork_file, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("FORK"), "{}", err(&out));
    let rb_file = k.work.join("rollback.note");
    std::fs::write(&rb_file, &rollback).unwrap();
    let out = cosign(&rb_file, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("ROLLBACK"), "{}", err(&out));
    // The log grows: cosigned with a consistency proof from the last cosigned size, refused
    // without one, and refused with a proof from another size.
    k.restart(&[]);
    let id = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    k.ctl_ok(&["kernel", "stop"]);
    let new = k.work.join("new.note");
    k.ctl_ok(&["recorder", "checkpoint", "--out", new.to_str().unwrap()]);
    assert!(!cosign(&new, None).status.success());
    let bad_proof = k.work.join("bad.proof");
    std::fs::write(
        &bad_proof,
        k.ctl_ok(&[
            "recorder",
            "consistency",
            &(n - 1).to_string(),
            new.to_str().unwrap(),
        ]),
    )
    .unwrap();
    let out = cosign(&new, Some(&bad_proof));
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("409"), "{}", err(&out));
    let proof = k.work.join("good.proof");
    std::fs::write(
        &proof,
        k.ctl_ok(&[
            "recorder",
            "consistency",
            cp.to_str().unwrap(),
            new.to_str().unwrap(),
        ]),
    )
    .unwrap();
    let out = cosign(&new, Some(&proof));
    assert!(out.status.success(), "{}", err(&out));
    // And the fork is refused still, now as inconsistent with the newer size.
    let out = cosign(&fork_file, None);
    assert!(!out.status.success());
}

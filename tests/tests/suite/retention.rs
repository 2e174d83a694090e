//! Retention that keeps proofs, segment rotation and key rotation, on a log written by real
//! agents through a real kernel: after `agentctl recorder prune` a kept record's inclusion
//! proof is accepted by Go's sumdb tlog (tests/go/tlogverify), `verify` reports the pruned
//! range and exits 0, while a segment deleted by hand (no signed manifest) is still
//! tampering; after `rotate-key` the log verifies through the announcement, and a swapped
//! key file is refused.

use std::path::Path;
use std::process::Output;

use agentos_tests::{write_policy, TestKernel};
use serde_json::Value;

use super::tlog::{copy_state, go};

fn segments(dir: &Path) -> Vec<u32> {
    agentos_kernel::recorder::segments(dir).unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A kernel rotating its segments every 4 KiB, whose agents filled several of them.
fn rotated() -> (TestKernel, std::path::PathBuf) {
    let k = TestKernel::start_with(false, &["--recorder-segment-bytes", "4096"]);
    let policy = write_policy(&k.work, "retention", "strict", &[], "");
    let mut runs = 0;
    while segments(&k.recorder_dir()).len() < 5 {
        runs += 1;
        assert!(runs < 60, "no size rotation after {runs} agents");
        let id = k.spawn(&policy, &["echo"]);
        assert_eq!(k.wait(id)["exit"]["code"], 0);
    }
    (k, policy)
}

#[test]
fn prune_keeps_proofs_that_a_go_verifier_accepts_and_verify_reports_the_range() {
    let (k, policy) = rotated();
    // Not while the kernel writes.
    let o = k.ctl(&["recorder", "prune", "--before", "1"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("a kernel runs"), "{}", text(&o));
    k.ctl_ok(&["kernel", "stop"]);
    let old = k.work.join("old.note");
    k.ctl_ok(&["recorder", "checkpoint", "--out", old.to_str().unwrap()]);
    let segs = segments(&k.recorder_dir());
    let records = k.verify().1["records"].as_u64().unwrap();
    // Prune about half of the records (whole segments only).
    let before = records / 2;
    let out = k.ctl_ok(&[
        "recorder",
        "prune",
        "--before",
        &before.to_string(),
        "--json",
    ]);
    let r: Value = serde_json::from_str(&out).unwrap();
    let cut = r["next_seq"].as_u64().unwrap();
    assert!(cut > 0 && cut <= before, "{r:#}");
    assert!(!r["segments"].as_array().unwrap().is_empty());
    assert!(segments(&k.recorder_dir()).len() < segs.len());

    // verify: exit 0, the range reported as pruned.
    let (code, v) = k.verify();
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["pruned"]["next_seq"], cut);
    assert_eq!(v["records"], records);
    let human = k.ctl(&["recorder", "verify"]);
    assert_eq!(human.status.code(), Some(0), "{}", text(&human));
    assert!(
        text(&human).contains(&format!("pruned: records 0..{cut} pruned at")),
        "{}",
        text(&human)
    );
    assert!(text(&human).contains("tree hashes kept"));

    // A kept record's proof, by Go's tlog; a pruned one is refused, saying so.
    let vkey = k.ctl_ok(&["recorder", "checkpoint", "--verifier-key"]);
    let vkey = vkey.trim();
    for seq in [cut, records - 1] {
        let out = k.ctl_ok(&["recorder", "prove", &seq.to_string(), "--json"]);
        let p: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(p["record"]["seq"], seq, "{p:#}");
        let file = k.work.join(format!("prove-{seq}.json"));
        std::fs::write(&file, &out).unwrap();
        let ok = go("inclusion", vkey, &file).unwrap_or_else(|e| panic!("record {seq}: {e}"));
        assert!(ok.starts_with(&format!("ok record {seq} in tree")), "{ok}");
    }
    let o = k.ctl(&["recorder", "prove", "0"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("was pruned"), "{}", text(&o));
    // The checkpoint taken before the prune is consistent with the log after it.
    let new = k.work.join("new.note");
    k.ctl_ok(&["recorder", "checkpoint", "--out", new.to_str().unwrap()]);
    k.ctl_ok(&[
        "recorder",
        "consistency",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    k.ctl_ok(&["recorder", "verify", "--checkpoint", old.to_str().unwrap()]);
    // A time in the future prunes as far as allowed; then nothing is left to prune.
    k.ctl_ok(&["recorder", "prune", "--before", "2999-01-01T00:00:00Z"]);
    let o = k.ctl(&["recorder", "prune", "--before", "2999-01-01T00:00:00Z"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("nothing to prune"), "{}", text(&o));
    assert!(k
        .recorder_dir()
        .join(agentos_kernel::recorder::format::segment_name(
            *segs.last().unwrap()
        ))
        .exists());
    assert_eq!(k.verify().0, 0);

    // The kernel continues a pruned log.
    k.restart(&["--recorder-segment-bytes", "4096"]);
    let id = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    k.ctl_ok(&["kernel", "stop"]);
    let (code, v) = k.verify();
    assert_eq!(code, 0, "{v:#}");
    assert!(v["records"].as_u64().unwrap() > records);
    // The checkpoint before the prune against one after more records, by Go's tlog: the
    // proof's subtree hashes over the pruned records come from the kept hashes.
    let later = k.work.join("later.note");
    k.ctl_ok(&["recorder", "checkpoint", "--out", later.to_str().unwrap()]);
    let out = k.ctl_ok(&[
        "recorder",
        "consistency",
        old.to_str().unwrap(),
        later.to_str().unwrap(),
        "--json",
    ]);
    let file = k.work.join("consistency.json");
    std::fs::write(&file, &out).unwrap();
    go("consistency", vkey, &file).unwrap_or_else(|e| panic!("{e}"));

    // One more segment deleted by hand after the prune: tampering.
    let o = verify_without_first_segment(&k);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("TAMPERED"), "{}", text(&o));
}

/// `recorder verify` of a copy of the kernel's state dir whose first segment is deleted by
/// hand.
fn verify_without_first_segment(k: &TestKernel) -> Output {
    let (_root, state) = copy_state(k);
    let first = segments(&state.join("recorder"))[0];
    std::fs::remove_file(
        state
            .join("recorder")
            .join(agentos_kernel::recorder::format::segment_name(first)),
    )
    .unwrap();
    k.ctl_at_state(&state, &["recorder", "verify"])
}

trait AtState {
    fn ctl_at_state(&self, state: &Path, args: &[&str]) -> Output;
}

impl AtState for TestKernel {
    fn ctl_at_state(&self, state: &Path, args: &[&str]) -> Output {
        std::process::Command::new(&self.agentctl)
            .arg("--state-dir")
            .arg(state)
            .args(args)
            .output()
            .expect("run agentctl")
    }
}

#[test]
fn deleting_an_old_segment_without_a_prune_is_still_tampering() {
    let (k, _) = rotated();
    k.ctl_ok(&["kernel", "stop"]);
    assert_eq!(k.verify().0, 0);
    let o = verify_without_first_segment(&k);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("a segment was deleted"), "{}", text(&o));
}

#[test]
fn key_rotation_verifies_and_a_swapped_key_file_is_refused() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "rotation", "strict", &[], "");
    let id = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let o = k.ctl(&["recorder", "rotate-key"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("a kernel runs"), "{}", text(&o));
    k.ctl_ok(&["kernel", "stop"]);
    let old_note = k.work.join("old.note");
    k.ctl_ok(&[
        "recorder",
        "checkpoint",
        "--out",
        old_note.to_str().unwrap(),
    ]);
    let old_vkey = k.ctl_ok(&["recorder", "checkpoint", "--verifier-key"]);
    let old_pub = std::fs::read(k.recorder_dir().join("key.pub")).unwrap();

    let r: Value = serde_json::from_str(&k.ctl_ok(&["recorder", "rotate-key", "--json"])).unwrap();
    assert_ne!(r["old_key_id"], r["new_key_id"]);
    k.restart(&[]);
    let id = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    k.ctl_ok(&["kernel", "stop"]);

    let human = k.ctl(&["recorder", "verify"]);
    assert_eq!(human.status.code(), Some(0), "{}", text(&human));
    assert!(
        text(&human).contains(&format!(
            "key id {} → key id {}",
            r["old_key_id"].as_str().unwrap(),
            r["new_key_id"].as_str().unwrap()
        )),
        "{}",
        text(&human)
    );
    // The announcement is in the log, and the checkpoint note is the new key's.
    let shown = k.ctl_ok(&["recorder", "show", "--kind", "key_rotated"]);
    assert!(shown.contains("recorder key rotated"), "{shown}");
    let new_vkey = k.ctl_ok(&["recorder", "checkpoint", "--verifier-key"]);
    assert_ne!(new_vkey.trim(), old_vkey.trim());
    let new_note = k.work.join("new.note");
    k.ctl_ok(&[
        "recorder",
        "checkpoint",
        "--out",
        new_note.to_str().unwrap(),
    ]);
    go("note", new_vkey.trim(), &new_note).unwrap_or_else(|e| panic!("{e}"));
    assert!(go("note", old_vkey.trim(), &new_note).is_err());
    // A note signed by the old key still checks against the log (the rotation is followed).
    k.ctl_ok(&[
        "recorder",
        "consistency",
        old_note.to_str().unwrap(),
        new_note.to_str().unwrap(),
    ]);

    // key.pub swapped back to the old key: refused.
    let (_root, state) = copy_state(&k);
    std::fs::write(state.join("recorder/key.pub"), &old_pub).unwrap();
    let o = k.ctl_at_state(&state, &["recorder", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // key.pub replaced by another key altogether: refused.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    std::fs::write(
        state.join("recorder/key.pub"),
        other.verifying_key().as_bytes(),
    )
    .unwrap();
    let o = k.ctl_at_state(&state, &["recorder", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

//! Retention that keeps proofs: whole old segments removed, the tree's hashes and the
//! checkpoints kept, the cut anchored by a signed manifest.
//!
//! ```text
//! STATE_DIR/recorder/
//!   pruned         the prune manifest (JSON, signed by the recorder's key)
//!   pruned.hashes  every stored hash of the Merkle tree over the pruned records 0..next_seq
//!                  (Go sumdb's stored-hash layout, 32 bytes each, about 2 a record)
//! ```
//!
//! The manifest names the cut: records `0..next_seq` are gone, the first remaining segment is
//! `first_segment`, whose header must continue from `next_seq` and chain head `chain`; the
//! tree over the pruned records has root `tree_root`, and `pruned.hashes` hashes (blake3) to
//! `hashes_blake3`. It is signed (ed25519, the recorder's key) over [`message`]. The verifier
//! ([`super::verify::scan`]) starts from it instead of the genesis: a log whose first
//! segments were deleted without a manifest (or with a manifest the key does not verify, or
//! one for a cut the remaining segments do not continue) still fails as tampered.
//!
//! Ordering (crash-safe): `pruned.hashes`, then `pruned` (each written to a temp file, fsynced,
//! renamed, the dir fsynced), then the segments, the entry bundles below the cut and the blobs
//! no remaining record names are deleted. A crash in between leaves segments below
//! `first_segment`: the verifier ignores them (a note) and the next prune deletes them.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::format::{segment_name, SegmentHeader};
use crate::tlog::{self, Hash};
use crate::verify::{read_head, segments};
use crate::{blob, key, scan, RecorderError, ScanOptions};

/// The prune manifest's file name.
pub const PRUNED_FILE: &str = "pruned";
/// The kept tree hashes of the pruned records.
pub const HASHES_FILE: &str = "pruned.hashes";

/// The signed record of a prune (`recorder/pruned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Hex log id (the segments' header).
    pub log_id: String,
    /// Hex key id of the key that signed it.
    pub key_id: String,
    /// Records `0..next_seq` are pruned.
    pub next_seq: u64,
    /// The first segment kept.
    pub first_segment: u32,
    /// Hex chain head after record `next_seq - 1` (the first kept segment's `prev chain`).
    pub chain: String,
    /// Base64 root of the tree over records `0..next_seq`.
    pub tree_root: String,
    /// Hex blake3 of `pruned.hashes`.
    pub hashes_blake3: String,
    /// When it was pruned (ms since the Unix epoch).
    pub wall_ms: u64,
    /// Hex ed25519 signature over [`message`].
    pub signature: String,
}

/// What the signature covers.
pub fn message(m: &Manifest) -> Vec<u8> {
    let mut out = b"agentos recorder prune v1\n".to_vec();
    for s in [
        &m.log_id,
        &m.key_id,
        &m.chain,
        &m.tree_root,
        &m.hashes_blake3,
    ] {
        out.extend_from_slice(s.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(&m.next_seq.to_le_bytes());
    out.extend_from_slice(&m.first_segment.to_le_bytes());
    out.extend_from_slice(&m.wall_ms.to_le_bytes());
    out
}

/// Reads `dir/pruned`, if present.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, RecorderError> {
    crate::verify::read_json(dir, PRUNED_FILE, "the prune manifest")
}

/// Checks the manifest: its signature (when a key is given), its fields, and that
/// `pruned.hashes` is the one it names. Returns the chain head and the kept hashes.
pub fn check(
    dir: &Path,
    m: &Manifest,
    public: Option<&VerifyingKey>,
) -> Result<([u8; 32], Vec<Hash>), String> {
    let sig: [u8; 64] = hex::decode(&m.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the prune manifest's signature is malformed")?;
    if let Some(p) = public {
        p.verify(&message(m), &Signature::from_bytes(&sig))
            .map_err(|_| {
                "the prune manifest (recorder/pruned) has a signature that recorder/key.pub does not verify: the pruned range cannot be told from deleted records".to_string()
            })?;
    }
    let chain: [u8; 32] = hex::decode(&m.chain)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the prune manifest's chain head is malformed")?;
    let bytes = std::fs::read(dir.join(HASHES_FILE))
        .map_err(|e| format!("cannot read recorder/{HASHES_FILE}: {e}"))?;
    if hex::encode(blake3::hash(&bytes).as_bytes()) != m.hashes_blake3 {
        return Err(format!(
            "recorder/{HASHES_FILE} is not the one the signed prune manifest names (changed or replaced)"
        ));
    }
    if bytes.len() as u64 != tlog_tiles::stored_hash_count(m.next_seq) * 32 {
        return Err(format!(
            "recorder/{HASHES_FILE} holds {} bytes, not the tree hashes of {} records",
            bytes.len(),
            m.next_seq
        ));
    }
    let hashes = bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            Hash(h)
        })
        .collect();
    Ok((chain, hashes))
}

/// What [`prune`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Records `0..next_seq` are now pruned.
    pub next_seq: u64,
    /// Records pruned by this call.
    pub records: u64,
    pub segments: Vec<u32>,
    pub bundles: usize,
    pub blobs: usize,
    pub bytes: u64,
    pub first_segment: u32,
}

fn refuse(what: String) -> RecorderError {
    RecorderError::Writer { what }
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Prunes the whole segments of the log in `dir` whose records are all below `before`; the
/// caller makes sure no kernel writes the log. Refuses (an error saying why) a log that does
/// not verify, a cut that would remove the last segment, the segment holding the latest
/// checkpoint (`HEAD`), or records the latest checkpoint does not seal, and a cut that
/// removes nothing.
pub fn prune(dir: &Path, before: u64, now_ms: u64) -> Result<PruneReport, RecorderError> {
    let public = key::load_public(dir)?;
    let secret = key::load(dir)?.ok_or_else(|| {
        refuse(format!(
            "no recorder key at {}: a prune is signed by the recorder's key",
            dir.join(key::KEY_FILE).display()
        ))
    })?;
    if public.as_ref() != Some(&secret.verifying_key()) {
        return Err(refuse(
            "recorder/key and recorder/key.pub do not match: not pruning".into(),
        ));
    }
    let v = scan(dir, ScanOptions { signatures: true }, |_, _| {})?;
    if let Some(p) = &v.problem {
        return Err(refuse(format!(
            "the log does not verify (segment {}, record {}: {}); not pruning a log that fails `agentctl recorder verify`",
            p.segment, p.seq, p.what
        )));
    }
    let head = read_head(dir)?.ok_or_else(|| {
        refuse("the log has no signed checkpoint (recorder/HEAD) yet: nothing can be pruned".into())
    })?;
    let old = read_manifest(dir)?;
    let old_next = old.as_ref().map_or(0, |m| m.next_seq);
    let last = v.segments.last().map_or(0, |s| s.segment);
    // The first segment to keep: the last one starting at or below every bound.
    let mut keep = None;
    for s in &v.segments {
        let bytes = std::fs::read(&s.path).map_err(|source| RecorderError::Open {
            path: s.path.clone(),
            source,
        })?;
        let h = SegmentHeader::decode(&bytes).map_err(|what| RecorderError::Corrupt {
            path: s.path.clone(),
            seq: 0,
            offset: 0,
            what,
        })?;
        if h.start_seq <= before
            && h.start_seq <= head.next_seq
            && s.segment <= head.segment
            && s.segment <= last
        {
            keep = Some((s.segment, h.start_seq, h.prev_chain));
        }
    }
    let first = v.segments.first().map_or(0, |s| s.segment);
    let Some((keep, next_seq, chain)) = keep.filter(|(n, _, _)| *n > first) else {
        return Err(refuse(format!(
            "nothing to prune before record {before}: only whole segments are pruned, never the last one (segment {last}) nor the one holding the latest checkpoint (segment {}, sealing records below {}); the first segment ({first}) holds records at or after the cut",
            head.segment, head.next_seq
        )));
    };
    // The tree over everything, cut to the pruned records: their stored hashes are kept.
    let (tree, _) = tlog::read_tree(dir, None)?;
    let hashes = tree.stored(next_seq);
    let mut hash_bytes = Vec::with_capacity(hashes.len() * 32);
    for h in hashes {
        hash_bytes.extend_from_slice(&h.0);
    }
    let root = tree
        .root_at(next_seq)
        .map_err(|e| refuse(format!("tree root at {next_seq}: {e}")))?;
    let mut m = Manifest {
        log_id: v.log_id.clone().unwrap_or_default(),
        key_id: hex::encode(key::key_id(&secret.verifying_key())),
        next_seq,
        first_segment: keep,
        chain: hex::encode(chain),
        tree_root: tlog::b64(&root),
        hashes_blake3: hex::encode(blake3::hash(&hash_bytes).as_bytes()),
        wall_ms: now_ms,
        signature: String::new(),
    };
    m.signature = hex::encode(sign(&secret, &m).to_bytes());
    let io = |source| RecorderError::Write {
        path: dir.into(),
        source,
    };
    write_atomic(dir, HASHES_FILE, &hash_bytes).map_err(io)?;
    let json = serde_json::to_vec_pretty(&m).map_err(|e| refuse(e.to_string()))?;
    write_atomic(dir, PRUNED_FILE, &json).map_err(io)?;
    finish(dir, &m, old_next)
}

fn sign(key: &SigningKey, m: &Manifest) -> Signature {
    key.sign(&message(m))
}

/// Deletes what the manifest `m` prunes: segments below its first, entry bundles holding a
/// pruned record, blobs no kept record names.
fn finish(dir: &Path, m: &Manifest, old_next: u64) -> Result<PruneReport, RecorderError> {
    let io = |source| RecorderError::Write {
        path: dir.into(),
        source,
    };
    let mut report = PruneReport {
        next_seq: m.next_seq,
        records: m.next_seq.saturating_sub(old_next),
        segments: Vec::new(),
        bundles: 0,
        blobs: 0,
        bytes: 0,
        first_segment: m.first_segment,
    };
    for n in segments(dir)? {
        if n < m.first_segment {
            let path = dir.join(segment_name(n));
            report.bytes += std::fs::metadata(&path).map(|md| md.len()).unwrap_or(0);
            std::fs::remove_file(&path).map_err(io)?;
            report.segments.push(n);
        }
    }
    // Entry bundles with a pruned record (the one straddling the cut too: its kept records'
    // bytes stay in their segment).
    let entries = dir.join(tlog::TILE_DIR).join("entries");
    let mut files = Vec::new();
    if entries.is_dir() {
        crate::tlog::walk(&entries, &entries, &mut files).map_err(io)?;
    }
    for f in files {
        if let Some((_, n, _)) = tlog::parse_tile_path(&format!("entries/{f}")) {
            if n * 256 < m.next_seq {
                let p = entries.join(&f);
                report.bytes += std::fs::metadata(&p).map(|md| md.len()).unwrap_or(0);
                std::fs::remove_file(&p).map_err(io)?;
                report.bundles += 1;
            }
        }
    }
    // Blobs no kept record names.
    let v = scan(dir, ScanOptions { signatures: false }, |_, _| {})?;
    let named: std::collections::HashSet<String> = v.blobs.iter().map(hex::encode).collect();
    if let Ok(rd) = std::fs::read_dir(dir.join(blob::BLOBS_DIR)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && !named.contains(&name) {
                report.bytes += e.metadata().map(|md| md.len()).unwrap_or(0);
                std::fs::remove_file(e.path()).map_err(io)?;
                report.blobs += 1;
            }
        }
    }
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::format::RecordEvent;
    use crate::verify::ProblemKind;
    use crate::{Recorder, RecorderOptions};

    fn stop(r: &str) -> RecordEvent {
        RecordEvent::KernelStop { reason: r.into() }
    }

    /// A closed log rotated every ~2 KiB: several segments.
    fn rotated_log(dir: &Path, records: usize) {
        let opts = RecorderOptions {
            max_segment_bytes: 2048,
            min_free_bytes: 0,
            checkpoint_every: 16,
            ..RecorderOptions::default()
        };
        let (rec, _) = Recorder::open_with(dir, opts).unwrap();
        for i in 0..records {
            rec.append(None, stop(&format!("record {i} {}", "x".repeat(40))))
                .unwrap();
            if i % 8 == 7 {
                rec.seal().unwrap();
            }
        }
        rec.close().unwrap();
    }

    fn full(dir: &Path) -> crate::Verification {
        scan(dir, ScanOptions { signatures: true }, |_, _| {}).unwrap()
    }

    #[test]
    fn rotation_by_size_makes_segments_that_verify() {
        let dir = tempfile::tempdir().unwrap();
        rotated_log(dir.path(), 200);
        let segs = segments(dir.path()).unwrap();
        assert!(segs.len() > 4, "{segs:?}");
        for n in &segs[..segs.len() - 1] {
            let len = std::fs::metadata(dir.path().join(segment_name(*n)))
                .unwrap()
                .len();
            // Rotation happens after a group: a segment passes the limit by at most a group.
            assert!(len < 2048 + 4096, "segment {n}: {len} bytes");
        }
        let v = full(dir.path());
        assert!(v.problem.is_none(), "{:?}", v.problem);
        assert_eq!(v.exit_code(), 0);
    }

    #[test]
    fn rotation_by_age_starts_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RecorderOptions {
            max_segment_bytes: 0,
            max_segment_age: Duration::from_millis(1),
            min_free_bytes: 0,
            ..RecorderOptions::default()
        };
        let (rec, _) = Recorder::open_with(dir.path(), opts).unwrap();
        rec.append(None, stop("a")).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while segments(dir.path()).unwrap().len() < 3 {
            assert!(std::time::Instant::now() < deadline, "no age rotation");
            rec.append(None, stop("b")).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        rec.close().unwrap();
        assert!(full(dir.path()).problem.is_none());
    }

    #[test]
    fn prune_keeps_proofs_and_verify_reports_the_range() {
        let dir = tempfile::tempdir().unwrap();
        rotated_log(dir.path(), 300);
        let (tree_before, _) = tlog::read_tree(dir.path(), None).unwrap();
        let head = read_head(dir.path()).unwrap().unwrap();
        let r = prune(dir.path(), 150, 1_700_000_000_000).unwrap();
        assert!(r.next_seq > 0 && r.next_seq <= 150, "{r:?}");
        assert!(!r.segments.is_empty());
        let v = full(dir.path());
        assert!(v.problem.is_none(), "{:?}", v.problem);
        let p = v.pruned.clone().unwrap();
        assert_eq!(p.next_seq, r.next_seq);
        assert_eq!(p.signature_ok, Some(true));
        assert_eq!(v.records, tree_before.size());
        // The tree over the kept hashes and the remaining records is the same tree.
        let (tree, leaf) = tlog::read_tree(dir.path(), Some(r.next_seq)).unwrap();
        assert_eq!(tree.root(), tree_before.root());
        let proof = tree.prove(tree.size(), r.next_seq).unwrap();
        assert!(tlog::check_inclusion(
            &proof,
            tree.size(),
            tree.root(),
            r.next_seq,
            &leaf.unwrap()
        ));
        let old = tree.root_at(r.next_seq - 1).unwrap();
        let c = tree.prove_consistency(tree.size(), r.next_seq - 1).unwrap();
        assert!(tlog::check_consistency(
            &c,
            tree.size(),
            tree.root(),
            r.next_seq - 1,
            old
        ));
        let (_, problems) = tlog::check_tiles(dir.path()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        // Never past the latest checkpoint, never the last segment: pruning everything keeps
        // them, and then refuses.
        let last = *segments(dir.path()).unwrap().last().unwrap();
        let all = prune(dir.path(), u64::MAX, 2).unwrap();
        assert!(all.next_seq <= head.next_seq, "{all:?} {head:?}");
        assert!(all.first_segment <= head.segment.min(last));
        assert!(dir.path().join(segment_name(last)).exists());
        assert!(dir.path().join(segment_name(head.segment)).exists());
        let e = prune(dir.path(), u64::MAX, 3).unwrap_err().to_string();
        assert!(e.contains("nothing to prune"), "{e}");
        assert!(full(dir.path()).problem.is_none());
        let (tree, _) = tlog::read_tree(dir.path(), None).unwrap();
        assert_eq!(tree.root(), tree_before.root());
        // The kernel opens and continues a pruned log.
        let (rec, report) = Recorder::open(dir.path()).unwrap();
        assert!(report.is_none(), "{report:?}");
        rec.append(None, stop("after prune")).unwrap();
        rec.close().unwrap();
        let v = full(dir.path());
        assert!(v.problem.is_none(), "{:?}", v.problem);
        assert_eq!(v.exit_code(), 0);
        let (_, problems) = tlog::check_tiles(dir.path()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn prune_deletes_the_blobs_of_pruned_records_only() {
        use agentos_syscalls::{Reply, Syscall, WriteMode};
        let dir = tempfile::tempdir().unwrap();
        let opts = RecorderOptions {
            max_segment_bytes: 2048,
            min_free_bytes: 0,
            ..RecorderOptions::default()
        };
        let write = |byte: u8| RecordEvent::Syscall {
            id: 1,
            call: Syscall::Write {
                path: "/mem/working/x".into(),
                data: vec![byte; 8192],
                mode: WriteMode::Truncate,
            },
            decision: crate::DecisionRecord {
                allowed: true,
                policy_allowed: true,
                rule: String::new(),
                reason: String::new(),
                violation: false,
                mode: "strict".into(),
            },
            result: Ok(Reply::Done),
            duration_us: 0,
        };
        let (rec, _) = Recorder::open_with(dir.path(), opts).unwrap();
        let early = rec.append(None, write(1)).unwrap();
        for i in 0..80 {
            rec.append(None, stop(&format!("filler {i} {}", "y".repeat(40))))
                .unwrap();
        }
        rec.append(None, write(2)).unwrap();
        rec.close().unwrap();
        let blobs = |d: &Path| std::fs::read_dir(d.join(blob::BLOBS_DIR)).unwrap().count();
        assert_eq!(blobs(dir.path()), 2);
        let r = prune(dir.path(), early + 40, 1).unwrap();
        assert!(r.next_seq > early, "{r:?}");
        assert_eq!(r.blobs, 1);
        assert_eq!(blobs(dir.path()), 1);
        // The kept record's payload is still restored from its blob.
        let v = full(dir.path());
        assert!(v.problem.is_none(), "{:?}", v.problem);
        assert_eq!(v.blobs.len(), 1);
    }

    #[test]
    fn deleting_segments_without_the_manifest_or_past_it_is_tampering() {
        let dir = tempfile::tempdir().unwrap();
        rotated_log(dir.path(), 200);
        let segs = segments(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(segment_name(segs[0]))).unwrap();
        let v = full(dir.path());
        assert_eq!(v.problem.unwrap().kind, ProblemKind::Tampered);

        let dir = tempfile::tempdir().unwrap();
        rotated_log(dir.path(), 200);
        let r = prune(dir.path(), 60, 1).unwrap();
        // One more segment deleted by hand after the prune.
        std::fs::remove_file(dir.path().join(segment_name(r.first_segment))).unwrap();
        let v = full(dir.path());
        assert_eq!(v.problem.unwrap().kind, ProblemKind::Tampered);

        // A manifest moved to a later cut (its signature no longer matches).
        let dir = tempfile::tempdir().unwrap();
        rotated_log(dir.path(), 200);
        prune(dir.path(), 60, 1).unwrap();
        let mut m = read_manifest(dir.path()).unwrap().unwrap();
        m.next_seq += 1;
        std::fs::write(
            dir.path().join(PRUNED_FILE),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        let v = full(dir.path());
        assert_eq!(v.problem.unwrap().kind, ProblemKind::Tampered);
    }

    #[test]
    fn key_rotation_verifies_and_forgeries_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = Recorder::open(dir.path()).unwrap();
        rec.append(None, stop("before")).unwrap();
        rec.seal().unwrap();
        let old_head = std::fs::read(dir.path().join(crate::verify::HEAD_FILE)).unwrap();
        rec.append(None, stop("between")).unwrap();
        let old = key::load_public(dir.path()).unwrap().unwrap();
        let new_id = rec.rotate_key().unwrap();
        rec.append(None, stop("after")).unwrap();
        rec.close().unwrap();
        let new = key::load_public(dir.path()).unwrap().unwrap();
        assert_ne!(old, new);
        assert_eq!(key::key_id(&new), new_id);
        let v = full(dir.path());
        assert!(v.problem.is_none(), "{:?}", v.problem);
        assert_eq!(v.rotations.len(), 1);
        // Checkpoint notes are signed by the new key.
        let note = std::fs::read(dir.path().join(tlog::CHECKPOINT_FILE)).unwrap();
        assert!(tlog::open_checkpoint(&note, &new).is_ok());
        assert!(tlog::open_checkpoint(&note, &old).is_err());
        // An older HEAD (as a crash right after the announcement leaves it), signed by the
        // old key where it seals, still verifies.
        let head = std::fs::read(dir.path().join(crate::verify::HEAD_FILE)).unwrap();
        std::fs::write(dir.path().join(crate::verify::HEAD_FILE), &old_head).unwrap();
        let v = full(dir.path());
        assert!(v.problem.is_none(), "{:?}", v.problem);
        std::fs::write(dir.path().join(crate::verify::HEAD_FILE), &head).unwrap();
        // A later open continues with the new key.
        let (rec, report) = Recorder::open(dir.path()).unwrap();
        assert!(report.is_none(), "{report:?}");
        rec.close().unwrap();
        assert!(full(dir.path()).problem.is_none());

        // key.pub swapped back to the old key: refused.
        let saved = std::fs::read(dir.path().join(key::PUB_FILE)).unwrap();
        std::fs::write(dir.path().join(key::PUB_FILE), old.as_bytes()).unwrap();
        let v = full(dir.path());
        assert_eq!(v.problem.unwrap().kind, ProblemKind::Tampered);
        std::fs::write(dir.path().join(key::PUB_FILE), saved).unwrap();

        // key.pub replaced by a third key (with the old one in the history): refused.
        let other = SigningKey::from_bytes(&[7u8; 32]);
        std::fs::write(
            dir.path().join(key::PUB_FILE),
            other.verifying_key().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            full(dir.path()).problem.unwrap().kind,
            ProblemKind::Tampered
        );
    }

    #[test]
    fn a_rotation_cut_short_after_its_announcement_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (rec, _) = Recorder::open(d).unwrap();
        rec.append(None, stop("before")).unwrap();
        let old_secret = std::fs::read(d.join(key::KEY_FILE)).unwrap();
        let old_pub = std::fs::read(d.join(key::PUB_FILE)).unwrap();
        rec.rotate_key().unwrap();
        rec.close().unwrap();
        // As a crash between the announcement and the rename leaves it: key.new announced,
        // key and key.pub still the old ones.
        std::fs::rename(d.join(key::KEY_FILE), d.join(key::NEW_KEY_FILE)).unwrap();
        std::fs::write(d.join(key::KEY_FILE), old_secret).unwrap();
        std::fs::write(d.join(key::PUB_FILE), &old_pub).unwrap();
        std::fs::remove_file(d.join(key::HISTORY_FILE)).unwrap();
        assert!(full(d).problem.is_some());
        let (rec, report) = Recorder::open(d).unwrap();
        assert!(report.is_none(), "{report:?}");
        rec.append(None, stop("after")).unwrap();
        rec.close().unwrap();
        assert!(!d.join(key::NEW_KEY_FILE).exists());
        assert_ne!(std::fs::read(d.join(key::PUB_FILE)).unwrap(), old_pub);
        let v = full(d);
        assert!(v.problem.is_none(), "{:?}", v.problem);
        // An unannounced key.new is dropped.
        key::create_next(d).unwrap();
        let (rec, _) = Recorder::open(d).unwrap();
        rec.close().unwrap();
        assert!(!d.join(key::NEW_KEY_FILE).exists());
        assert!(full(d).problem.is_none());
    }

    #[test]
    fn a_rotation_announced_by_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = Recorder::open(dir.path()).unwrap();
        let old = key::load_public(dir.path()).unwrap().unwrap();
        let v = full(dir.path());
        let log_id: [u8; 16] = hex::decode(v.log_id.unwrap()).unwrap().try_into().unwrap();
        let attacker = SigningKey::from_bytes(&[9u8; 32]);
        let seq = v.records;
        let msg = crate::format::key_rotation_message(
            &log_id,
            seq,
            old.as_bytes(),
            attacker.verifying_key().as_bytes(),
        );
        // Announced as if by the old key, signed by the attacker's.
        rec.append(
            None,
            RecordEvent::KeyRotated {
                old_public: old.to_bytes(),
                new_public: attacker.verifying_key().to_bytes(),
                signature: attacker.sign(&msg).to_bytes(),
            },
        )
        .unwrap();
        rec.close().unwrap();
        let v = full(dir.path());
        let p = v.problem.unwrap();
        assert_eq!(p.kind, ProblemKind::Tampered);
        assert!(p.what.contains("forged"), "{}", p.what);
    }
}

//! Reading and verifying a recorder dir without a kernel: chain, sequence, segment headers,
//! checkpoint signatures and the signed `HEAD`. Used by the kernel's recovery at start,
//! [`super::read_log`] and `agentctl recorder verify|show|tail|export`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Serialize;

use super::format::{
    chain_next, checkpoint_message, decode_record, intact_frame_after, parse_frame_within,
    segment_name, Checkpoint, Head, Record, RecordEvent, SegmentHeader, GENESIS, HEADER_LEN,
    TYPE_CHECKPOINT, TYPE_RECORD, VERSION_1,
};
use super::{blob, key, prune, RecorderError};

/// The recorder's head file name.
pub const HEAD_FILE: &str = "HEAD";

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A changed, dropped, reordered or inserted frame or segment, or a replaced key.
    Tampered,
    /// The log ends before the signed `HEAD` says it does.
    Truncated,
}

/// The first bad place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub segment: u32,
    /// The sequence number of the record expected at that place.
    pub seq: u64,
    /// Byte offset in the segment.
    pub offset: u64,
    pub what: String,
}

/// One checkpoint found in a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointInfo {
    /// Records `0..next_seq` are sealed.
    pub next_seq: u64,
    pub offset: u64,
    pub wall_ms: u64,
    /// `None` when there is no public key to check it with.
    pub signature_ok: Option<bool>,
}

/// Short or bad-CRC bytes at the very end of the last segment (a crash mid-write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTail {
    pub segment: u32,
    pub offset: u64,
    pub bytes: u64,
    pub what: String,
}

/// What one segment holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentReport {
    pub segment: u32,
    pub path: PathBuf,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub records: u64,
    pub bytes: u64,
    /// The chain (and every frame) verified up to the segment's end.
    pub chain_ok: bool,
    pub checkpoints: Vec<CheckpointInfo>,
    /// Set when this segment was started after a broken one: `(segment, offset)` of the break.
    pub starts_after_break: Option<(u32, u64)>,
}

/// The result of verifying a recorder dir.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub dir: PathBuf,
    pub log_id: Option<String>,
    pub key_id: Option<String>,
    pub segments: Vec<SegmentReport>,
    /// Records read (the next sequence number).
    pub records: u64,
    /// The last checkpoint's `next_seq` (records below it are sealed).
    pub sealed: Option<u64>,
    /// Records after the last checkpoint (normal for a running kernel).
    pub unsealed: u64,
    pub torn_tail: Option<TornTail>,
    pub head: Option<Head>,
    pub problem: Option<Problem>,
    pub notes: Vec<String>,
    /// Records `0..next_seq` pruned (a signed prune manifest, `recorder/pruned`): where the
    /// log starts.
    pub pruned: Option<PrunedRange>,
    /// Key rotations the log announces (each checked against the key before it).
    pub rotations: Vec<KeyRotation>,
    /// The blobs the records read name (their blake3 digests).
    #[serde(skip)]
    pub blobs: Vec<[u8; 32]>,
    /// The chain head after the last good frame.
    #[serde(skip)]
    pub chain: [u8; 32],
    /// The `HEAD` that names the log's last checkpoint (whether or not `recorder/HEAD` does):
    /// what an open writes when a killed kernel left its first checkpoint unpublished.
    #[serde(skip)]
    pub last_checkpoint: Option<Head>,
    #[serde(skip)]
    pub raw_log_id: Option<[u8; 16]>,
}

impl Verification {
    /// The log's state as a number: 0 whole and sealed, 1 tampered, 2 truncated, 3 an
    /// unsealed or torn tail. Not an exit code as is: `agentctl recorder verify` exits 0 for
    /// such a tail while the kernel writing it runs, and 5 when none does (3 is "denied by
    /// policy" among agentctl's codes).
    pub fn exit_code(&self) -> u8 {
        match &self.problem {
            Some(p) => match p.kind {
                ProblemKind::Tampered => 1,
                ProblemKind::Truncated => 2,
            },
            None if self.unsealed > 0 || self.torn_tail.is_some() => 3,
            None => 0,
        }
    }
}

/// One key rotation ([`RecordEvent::KeyRotated`]) as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRotation {
    /// The announcing record.
    pub seq: u64,
    pub old_key_id: String,
    pub new_key_id: String,
}

/// The records a signed prune removed ([`prune`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedRange {
    /// Records `0..next_seq` are pruned.
    pub next_seq: u64,
    /// The first segment kept.
    pub first_segment: u32,
    /// When (ms since the Unix epoch).
    pub wall_ms: u64,
    /// The signature was checked with `recorder/key.pub`.
    pub signature_ok: Option<bool>,
}

/// What to check.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Check checkpoint signatures and `HEAD` (needs `key.pub`).
    pub signatures: bool,
}

/// Segment numbers present in `dir`, ascending.
pub fn segments(dir: &Path) -> Result<Vec<u32>, RecorderError> {
    let rd = std::fs::read_dir(dir).map_err(|source| RecorderError::Dir {
        path: dir.into(),
        source,
    })?;
    let mut out: Vec<u32> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("segment-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Reads `recorder/HEAD`, if present.
pub fn read_head(dir: &Path) -> Result<Option<Head>, RecorderError> {
    read_json(dir, HEAD_FILE, "HEAD")
}

/// Reads the JSON file `dir/file` (`what` in the error), if present.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    file: &str,
    what: &str,
) -> Result<Option<T>, RecorderError> {
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| RecorderError::Corrupt {
                path,
                seq: 0,
                offset: 0,
                what: format!("{what} does not parse: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RecorderError::Open { path, source }),
    }
}

fn hex16(b: &[u8]) -> String {
    hex::encode(b)
}

/// Verifies the whole log in `dir`, handing each good record (with the chain head after it)
/// to `sink` in order. Stops at the first problem. I/O errors (an unreadable dir or file) are
/// errors; everything wrong with the contents is in the report.
pub fn scan(
    dir: &Path,
    opts: ScanOptions,
    mut sink: impl FnMut(Record, &[u8; 32]),
) -> Result<Verification, RecorderError> {
    let public: Option<VerifyingKey> = if opts.signatures {
        key::load_public(dir)?
    } else {
        None
    };
    let mut v = Verification {
        dir: dir.into(),
        chain: GENESIS,
        key_id: public.as_ref().map(|p| hex16(&key::key_id(p))),
        ..Verification::default()
    };
    if opts.signatures && public.is_none() {
        v.notes
            .push("no recorder/key.pub: checkpoint signatures not checked".into());
    }
    let mut seg_numbers = segments(dir)?;
    let mut cur = Cursor::new(dir, seg_numbers.last().copied());
    // The keys the log may have been signed with: key.pub and the older keys kept in
    // `key.history` (candidates only: a key counts once the log's announcements lead from it
    // to key.pub, checked as the scan goes).
    let candidates: Vec<VerifyingKey> = match &public {
        Some(p) => {
            let mut c = key::load_history(dir)?;
            c.push(*p);
            c
        }
        None => Vec::new(),
    };
    cur.candidates = candidates.clone();
    // A signed prune: the log starts at its cut (the first kept segment must continue it).
    if let Some(m) = prune::read_manifest(dir)? {
        let signer = candidates
            .iter()
            .find(|k| hex16(&key::key_id(k)) == m.key_id)
            .copied();
        let checked = match (&public, signer) {
            (Some(_), None) => Err(format!(
                "the prune manifest (recorder/pruned) is signed by key id {}, which is neither recorder/key.pub nor an older key of this log",
                m.key_id
            )),
            (_, s) => prune::check(dir, &m, s.as_ref()),
        };
        cur.manifest_key = signer.map(|k| key::key_id(&k));
        match checked {
            Ok((chain, _)) => {
                let log_id: Option<[u8; 16]> =
                    hex::decode(&m.log_id).ok().and_then(|b| b.try_into().ok());
                v.raw_log_id = log_id;
                v.log_id = log_id.map(|id| hex16(&id));
                v.chain = chain;
                cur.expect_seq = m.next_seq;
                cur.prev_number = Some(m.first_segment.saturating_sub(1));
                let stale = seg_numbers.iter().filter(|&&n| n < m.first_segment).count();
                if stale > 0 {
                    v.notes.push(format!(
                        "{stale} segment(s) below segment {} are left from an interrupted prune (ignored; `agentctl recorder prune` deletes them)",
                        m.first_segment
                    ));
                    seg_numbers.retain(|&n| n >= m.first_segment);
                }
                v.pruned = Some(PrunedRange {
                    next_seq: m.next_seq,
                    first_segment: m.first_segment,
                    wall_ms: m.wall_ms,
                    signature_ok: signer.map(|_| true),
                });
            }
            Err(what) => {
                v.problem = Some(Problem {
                    kind: ProblemKind::Tampered,
                    segment: m.first_segment,
                    seq: m.next_seq,
                    offset: 0,
                    what,
                });
                return Ok(v);
            }
        }
    }
    for n in seg_numbers {
        let path = dir.join(segment_name(n));
        let bytes = std::fs::read(&path).map_err(|source| RecorderError::Open {
            path: path.clone(),
            source,
        })?;
        let mut report = SegmentReport {
            segment: n,
            path: path.clone(),
            first_seq: None,
            last_seq: None,
            records: 0,
            bytes: bytes.len() as u64,
            chain_ok: false,
            checkpoints: Vec::new(),
            starts_after_break: None,
        };
        let outcome = scan_segment(
            n,
            &bytes,
            &mut report,
            &mut v,
            &mut cur,
            public.as_ref(),
            &mut sink,
        );
        v.segments.push(report);
        if let Err(p) = outcome {
            v.problem = Some(p);
            break;
        }
    }
    v.records = cur.expect_seq;
    v.unsealed = cur.expect_seq - v.sealed.unwrap_or(0).min(cur.expect_seq);
    v.rotations = cur.rotations;
    if let (Some(p), None, Some(k)) = (&public, &v.problem, &cur.key) {
        let last = v.segments.last().map_or(0, |s| s.segment);
        if k != p {
            v.problem = Some(Problem {
                kind: ProblemKind::Tampered,
                segment: last,
                seq: cur.expect_seq,
                offset: 0,
                what: format!(
                    "recorder/key.pub (key id {}) is not the key the log's key rotations lead to (key id {}): the key file was replaced",
                    hex16(&key::key_id(p)),
                    hex16(&key::key_id(k))
                ),
            });
        } else if let Some(mk) = cur.manifest_key {
            if !cur.keys_seen.contains(&mk) {
                v.problem = Some(Problem {
                    kind: ProblemKind::Tampered,
                    segment: v.pruned.as_ref().map_or(0, |p| p.first_segment),
                    seq: v.pruned.as_ref().map_or(0, |p| p.next_seq),
                    offset: 0,
                    what: format!(
                        "the prune manifest is signed by key id {}, which no key rotation of this log announces",
                        hex16(&mk)
                    ),
                });
            }
        }
    }
    if opts.signatures && v.problem.is_none() {
        // HEAD is signed by the key in force where it seals (a crash right after a key
        // rotation's announcement leaves the HEAD of the old key).
        let at = read_head(dir)
            .ok()
            .flatten()
            .map_or(u64::MAX, |h| h.next_seq);
        let key = cur
            .key_from
            .iter()
            .rev()
            .find(|(from, _)| from.is_none_or(|s| s < at))
            .map(|(_, k)| *k)
            .or(public);
        check_head(dir, &mut v, key.as_ref(), &cur.checkpoints)?;
    }
    Ok(v)
}

/// Verifies `bytes` as segment 1, the only segment of a log (no key, no `HEAD`; blobs are
/// looked up under `dir`), handing each good record to `sink`: the whole verifier on bytes
/// from anywhere (the fuzz target feeds it arbitrary ones). Never panics.
pub fn scan_segment_bytes(
    dir: &Path,
    bytes: &[u8],
    mut sink: impl FnMut(Record, &[u8; 32]),
) -> Verification {
    let mut v = Verification {
        dir: dir.into(),
        chain: GENESIS,
        ..Verification::default()
    };
    let mut cur = Cursor::new(dir, Some(1));
    let mut report = SegmentReport {
        segment: 1,
        path: dir.join(segment_name(1)),
        first_seq: None,
        last_seq: None,
        records: 0,
        bytes: bytes.len() as u64,
        chain_ok: false,
        checkpoints: Vec::new(),
        starts_after_break: None,
    };
    let outcome = scan_segment(1, bytes, &mut report, &mut v, &mut cur, None, &mut sink);
    v.segments.push(report);
    v.problem = outcome.err();
    v.records = cur.expect_seq;
    v.unsealed = cur.expect_seq - v.sealed.unwrap_or(0).min(cur.expect_seq);
    v
}

/// Where a scan stands between segments.
struct Cursor {
    /// The recorder dir (for blobs).
    dir: PathBuf,
    /// The sequence number the next record must carry.
    expect_seq: u64,
    /// Every checkpoint seen: sealed sequence → chain head.
    checkpoints: BTreeMap<u64, [u8; 32]>,
    prev_number: Option<u32>,
    last_number: Option<u32>,
    /// Keys the log may be signed with (key.pub and `key.history`).
    candidates: Vec<VerifyingKey>,
    /// The key that signs now (set from the first segment's header, changed by each
    /// verified announcement).
    key: Option<VerifyingKey>,
    /// Ids of `key` and every key announced since.
    keys_seen: Vec<[u8; 8]>,
    /// Each key and the sequence number of the record announcing it (the first key: 0,
    /// announced by none): a checkpoint sealing records below `n` is signed by the last key
    /// announced below `n`.
    key_from: Vec<(Option<u64>, VerifyingKey)>,
    /// The prune manifest's signing key.
    manifest_key: Option<[u8; 8]>,
    rotations: Vec<KeyRotation>,
}

impl Cursor {
    /// Before the first segment of the log in `dir`, whose last segment is `last_number`.
    fn new(dir: &Path, last_number: Option<u32>) -> Cursor {
        Cursor {
            dir: dir.to_path_buf(),
            expect_seq: 0,
            checkpoints: BTreeMap::new(),
            prev_number: None,
            last_number,
            candidates: Vec::new(),
            key: None,
            keys_seen: Vec::new(),
            key_from: Vec::new(),
            manifest_key: None,
            rotations: Vec::new(),
        }
    }
}

/// Verifies segment `n` (its header, then every frame), updating the scan's state; the first
/// problem ends the scan. A torn tail at the end of the last segment is not a problem.
fn scan_segment(
    n: u32,
    bytes: &[u8],
    report: &mut SegmentReport,
    v: &mut Verification,
    cur: &mut Cursor,
    public: Option<&VerifyingKey>,
    sink: &mut impl FnMut(Record, &[u8; 32]),
) -> Result<(), Problem> {
    let problem = |seq: u64, offset: usize, what: String| Problem {
        kind: ProblemKind::Tampered,
        segment: n,
        seq,
        offset: offset as u64,
        what,
    };
    if let Some(p) = cur.prev_number {
        if n != p + 1 {
            return Err(problem(
                cur.expect_seq,
                0,
                format!(
                    "segment {} is missing (segment {p} is followed by {n})",
                    p + 1
                ),
            ));
        }
    }
    cur.prev_number = Some(n);
    let header = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(what) => {
            return Err(problem(cur.expect_seq, 0, what));
        }
    };
    if header.break_segment != 0 {
        report.starts_after_break = Some((header.break_segment, header.break_offset));
    }
    match v.raw_log_id {
        None => {
            v.raw_log_id = Some(header.log_id);
            v.log_id = Some(hex16(&header.log_id));
        }
        Some(id) if id != header.log_id => {
            return Err(problem(
                cur.expect_seq,
                0,
                format!(
                    "segment belongs to another log (log id {}, expected {})",
                    hex16(&header.log_id),
                    hex16(&id)
                ),
            ));
        }
        Some(_) => {}
    }
    if public.is_some() && cur.key.is_none() {
        // The first segment read: its key is the candidate with its key id.
        cur.key = cur
            .candidates
            .iter()
            .find(|k| key::key_id(k) == header.key_id)
            .copied();
        if let Some(k) = &cur.key {
            cur.keys_seen.push(key::key_id(k));
            cur.key_from.push((None, *k));
        }
    }
    let public: Option<VerifyingKey> = cur.key.or(public.copied());
    if let Some(p) = &public {
        if header.key_id != key::key_id(p) {
            return Err(problem(
                header.start_seq,
                0,
                format!(
                    "segment is signed by key id {} but the log's key at this point (recorder/key.pub, or the last announced rotation) has key id {} (the key was replaced)",
                    hex16(&header.key_id),
                    hex16(&key::key_id(p))
                ),
            ));
        }
    }
    if header.start_seq != cur.expect_seq || header.prev_chain != v.chain {
        return Err(problem(
            cur.expect_seq,
            0,
            format!(
                "segment header continues from seq {} and another chain head than the log before it ends with (seq {expected}): a segment was deleted, replaced or reordered",
                header.start_seq, expected = cur.expect_seq
            ),
        ));
    }
    let mut off = HEADER_LEN;
    while off < bytes.len() {
        let frame = match parse_frame_within(&bytes[off..], header.version, header.max_body()) {
            Ok(f) => f,
            Err(e) => {
                if let Some(next) = intact_frame_after(bytes, off + 1, header.version) {
                    return Err(problem(
                        cur.expect_seq,
                        off,
                        format!("{e}, and an intact frame follows at byte {next}: the frame was changed, not torn"),
                    ));
                }
                let torn = TornTail {
                    segment: n,
                    offset: off as u64,
                    bytes: (bytes.len() - off) as u64,
                    what: e.to_string(),
                };
                if Some(n) != cur.last_number {
                    return Err(problem(
                        cur.expect_seq,
                        off,
                        format!("{e} at the end of segment {n}, which is not the last segment"),
                    ));
                }
                v.torn_tail = Some(torn);
                break;
            }
        };
        let next = chain_next(&v.chain, frame.covered);
        if next != frame.chain {
            return Err(problem(
                cur.expect_seq,
                off,
                "chain hash does not match (a record was changed, dropped, inserted or reordered)"
                    .into(),
            ));
        }
        match frame.ty {
            TYPE_RECORD => {
                let record: Record = match decode_record(header.version, &frame) {
                    Ok(r) => r,
                    Err(e) => {
                        return Err(problem(
                            cur.expect_seq,
                            off,
                            format!("record does not decode: {e}"),
                        ));
                    }
                };
                if record.seq != cur.expect_seq {
                    return Err(problem(
                        cur.expect_seq,
                        off,
                        format!(
                            "sequence number {} where {expected} was expected",
                            record.seq,
                            expected = cur.expect_seq
                        ),
                    ));
                }
                // Large payloads: each named blob must be there and hash to its name; the
                // reader gets the record with its payloads put back.
                if let RecordEvent::KeyRotated {
                    old_public,
                    new_public,
                    signature,
                } = &record.event
                {
                    if let Err(what) = rotate(
                        cur,
                        &header.log_id,
                        record.seq,
                        old_public,
                        new_public,
                        signature,
                    ) {
                        return Err(problem(cur.expect_seq, off, what));
                    }
                }
                if let RecordEvent::SyscallBlobs { blobs, .. } = &record.event {
                    v.blobs.extend(blobs.iter().map(|b| b.digest));
                }
                let record = if matches!(record.event, RecordEvent::SyscallBlobs { .. }) {
                    match blob::restore(&cur.dir, record.event) {
                        Ok(event) => Record { event, ..record },
                        Err(what) => return Err(problem(cur.expect_seq, off, what)),
                    }
                } else {
                    record
                };
                report.first_seq.get_or_insert(record.seq);
                report.last_seq = Some(record.seq);
                report.records += 1;
                cur.expect_seq += 1;
                sink(record, &next);
            }
            TYPE_CHECKPOINT => {
                let cp: Checkpoint = match postcard::from_bytes(frame.body) {
                    Ok(c) => c,
                    Err(e) => {
                        return Err(problem(
                            cur.expect_seq,
                            off,
                            format!("checkpoint does not decode: {e}"),
                        ));
                    }
                };
                let header_disagrees = header.version != VERSION_1 && frame.meta.seq != cp.next_seq;
                if cp.next_seq != cur.expect_seq || cp.chain != v.chain || header_disagrees {
                    return Err(problem(
                        cur.expect_seq,
                        off,
                        format!(
                            "checkpoint seals seq {} but stands after seq {expected}",
                            cp.next_seq,
                            expected = cur.expect_seq
                        ),
                    ));
                }
                let public: Option<VerifyingKey> = cur.key.or(public);
                let signature_ok = public.as_ref().map(|p| {
                    p.verify(
                        &checkpoint_message(&header.log_id, cp.next_seq, &cp.chain),
                        &Signature::from_bytes(&cp.signature),
                    )
                    .is_ok()
                });
                report.checkpoints.push(CheckpointInfo {
                    next_seq: cp.next_seq,
                    offset: off as u64,
                    wall_ms: cp.wall_ms,
                    signature_ok,
                });
                if signature_ok == Some(false) {
                    return Err(problem(
                        cp.next_seq.saturating_sub(1),
                        off,
                        format!(
                            "checkpoint sealing records below {} has a signature that recorder/key.pub does not verify",
                            cp.next_seq
                        ),
                    ));
                }
                cur.checkpoints.insert(cp.next_seq, cp.chain);
                v.sealed = Some(cp.next_seq);
                v.last_checkpoint = public.as_ref().map(|p| Head {
                    log_id: hex::encode(header.log_id),
                    key_id: hex::encode(key::key_id(p)),
                    segment: n,
                    next_seq: cp.next_seq,
                    chain: hex::encode(cp.chain),
                    signature: hex::encode(cp.signature),
                    wall_ms: cp.wall_ms,
                });
            }
            other => {
                return Err(problem(
                    cur.expect_seq,
                    off,
                    format!("unknown frame type {other}"),
                ));
            }
        }
        v.chain = next;
        off += frame.len;
    }
    report.chain_ok = true;
    Ok(())
}

/// Follows a key rotation announced in record `seq`: with signatures checked, the old key
/// must be the current one and its signature over the announcement must verify.
fn rotate(
    cur: &mut Cursor,
    log_id: &[u8; 16],
    seq: u64,
    old_public: &[u8; 32],
    new_public: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), String> {
    let new = VerifyingKey::from_bytes(new_public)
        .map_err(|_| "a key rotation announces a malformed public key".to_string())?;
    if let Some(k) = &cur.key {
        if k.as_bytes() != old_public {
            return Err(format!(
                "a key rotation from key id {} where the log's key is key id {}",
                hex16(&blake3::hash(old_public).as_bytes()[..8]),
                hex16(&key::key_id(k))
            ));
        }
        let msg = super::format::key_rotation_message(log_id, seq, old_public, new_public);
        if k.verify(&msg, &Signature::from_bytes(signature)).is_err() {
            return Err(format!(
                "the key rotation to key id {} is not signed by the log's key (key id {}): a forged announcement",
                hex16(&key::key_id(&new)),
                hex16(&key::key_id(k))
            ));
        }
        cur.key = Some(new);
        cur.key_from.push((Some(seq), new));
    }
    cur.keys_seen.push(key::key_id(&new));
    cur.rotations.push(KeyRotation {
        seq,
        old_key_id: hex16(&blake3::hash(old_public).as_bytes()[..8]),
        new_key_id: hex16(&key::key_id(&new)),
    });
    Ok(())
}

fn check_head(
    dir: &Path,
    v: &mut Verification,
    public: Option<&VerifyingKey>,
    checkpoints: &BTreeMap<u64, [u8; 32]>,
) -> Result<(), RecorderError> {
    let last_segment = v.segments.last().map_or(0, |s| s.segment);
    let end = v.segments.last().map_or(0, |s| s.bytes);
    let Some(head) = read_head(dir)? else {
        // The kernel writes HEAD once the first checkpoint is fsynced; a log with more
        // than one checkpoint and no HEAD lost it.
        if checkpoints.len() > 1 {
            v.problem = Some(Problem {
                kind: ProblemKind::Truncated,
                segment: last_segment,
                seq: v.records,
                offset: end,
                what: "recorder/HEAD is missing though the log holds checkpoints".into(),
            });
        }
        return Ok(());
    };
    let tampered = |what: String| Problem {
        kind: ProblemKind::Tampered,
        segment: head.segment,
        seq: head.next_seq.saturating_sub(1),
        offset: 0,
        what,
    };
    let decode = |s: &str| hex::decode(s).unwrap_or_default();
    let log_id: Option<[u8; 16]> = decode(&head.log_id).try_into().ok();
    let chain: Option<[u8; 32]> = decode(&head.chain).try_into().ok();
    let sig: Option<[u8; 64]> = decode(&head.signature).try_into().ok();
    let (Some(log_id), Some(chain), Some(sig)) = (log_id, chain, sig) else {
        v.problem = Some(tampered("recorder/HEAD has malformed fields".into()));
        return Ok(());
    };
    if v.raw_log_id.is_some_and(|id| id != log_id) {
        v.problem = Some(tampered("recorder/HEAD belongs to another log".into()));
        return Ok(());
    }
    if let Some(p) = public {
        let ok = p
            .verify(
                &checkpoint_message(&log_id, head.next_seq, &chain),
                &Signature::from_bytes(&sig),
            )
            .is_ok();
        if !ok {
            v.problem = Some(tampered(
                "recorder/HEAD's signature does not verify with recorder/key.pub".into(),
            ));
            return Ok(());
        }
    }
    if head.next_seq > v.records {
        v.problem = Some(Problem {
            kind: ProblemKind::Truncated,
            segment: last_segment,
            seq: v.records,
            offset: v.torn_tail.as_ref().map_or(end, |t| t.offset),
            what: format!(
                "the log ends before seq {} but the signed HEAD seals records up to seq {} (records or segments were cut off the end)",
                v.records,
                head.next_seq - 1
            ),
        });
    } else if checkpoints.get(&head.next_seq) != Some(&chain) {
        v.problem = Some(tampered(format!(
            "no checkpoint in the log matches the signed HEAD (records below {})",
            head.next_seq
        )));
    }
    v.head = Some(head);
    Ok(())
}

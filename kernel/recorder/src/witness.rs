//! Witnesses of the transparency log: C2SP tlog-cosignature (Ed25519, `cosignature/v1`) and
//! the checks of C2SP tlog-witness `add-checkpoint`, shared by `agentctl recorder cosign`,
//! `agentctl recorder witness serve` and the kernel's pusher.
//!
//! A witness has a name (a key name, e.g. `witness.example/w1`) and an ed25519 key. Its
//! cosignature on a checkpoint is a signed-note signature line
//! `— <name> base64(key id ‖ timestamp ‖ signature)` where key id =
//! SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4], timestamp is a big-endian u64 (POSIX seconds)
//! and the signature is over `cosignature/v1\ntime <timestamp>\n` ‖ the checkpoint body
//! (tlog-cosignature §"Format", §"Ed25519 signed message"). Its verifier key is the vkey
//! `name+<key id hex>+base64(0x04 ‖ public key)`.
//!
//! The witness's state dir holds, per log origin, the latest checkpoint it cosigned (the
//! note with the log's signature and its cosignature) in `log-<sha256(origin) hex>` (the
//! tlog-witness origin hash), and
//! `logs`, the log verifier keys it trusts (one vkey a line).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use signed_note::{Note, StandardVerifier, Verifier, VerifierList};

use crate::tlog::{self, Hash};

/// The vkey/key-id algorithm byte of an Ed25519 cosignature/v1 key.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The most consistency proof lines a client may send (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The key id of a cosigner key.
pub fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut k = vec![ALG_COSIGNATURE_V1];
    k.extend_from_slice(public.as_bytes());
    signed_note::key_id(name, &k)
}

/// The cosigner's verifier key: `name+<id hex>+base64(0x04 ‖ public)`.
pub fn verifier_key(name: &str, public: &VerifyingKey) -> String {
    let mut k = vec![ALG_COSIGNATURE_V1];
    k.extend_from_slice(public.as_bytes());
    format!("{name}+{:08x}+{}", key_id(name, public), b64().encode(k))
}

/// The message a cosignature/v1 signs.
pub fn signed_message(time: u64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(body);
    m
}

/// A witness key: its name and ed25519 key.
#[allow(missing_debug_implementations)]
pub struct WitnessKey {
    pub name: String,
    pub key: SigningKey,
}

impl WitnessKey {
    /// The private key file text: `PRIVATE+KEY+name+<id hex>+base64(0x04 ‖ seed)`.
    pub fn to_text(&self) -> String {
        let mut k = vec![ALG_COSIGNATURE_V1];
        k.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}\n",
            self.name,
            key_id(&self.name, &self.key.verifying_key()),
            b64().encode(k)
        )
    }

    pub fn parse(text: &str) -> Result<WitnessKey, String> {
        let t = text.trim();
        let rest = t
            .strip_prefix("PRIVATE+KEY+")
            .ok_or("not a witness key (it starts with PRIVATE+KEY+)")?;
        // Names hold no `+`; base64 may.
        let mut parts = rest.splitn(3, '+');
        let (name, id, k) = (parts.next(), parts.next(), parts.next());
        let (Some(k), Some(id), Some(name)) = (k, id, name) else {
            return Err("not a witness key (PRIVATE+KEY+name+id+key)".into());
        };
        let raw = b64()
            .decode(k)
            .map_err(|e| format!("witness key: bad base64: {e}"))?;
        if raw.len() != 33 || raw[0] != ALG_COSIGNATURE_V1 {
            return Err("witness key: not an Ed25519 cosignature/v1 key (0x04 ‖ 32 bytes)".into());
        }
        let seed: [u8; 32] = raw[1..]
            .try_into()
            .map_err(|_| "witness key: not 32 bytes".to_string())?;
        let key = SigningKey::from_bytes(&seed);
        if format!("{:08x}", key_id(name, &key.verifying_key())) != id {
            return Err("witness key: the key id does not match the name and key".into());
        }
        Ok(WitnessKey {
            name: name.to_string(),
            key,
        })
    }

    pub fn verifier_key(&self) -> String {
        verifier_key(&self.name, &self.key.verifying_key())
    }

    /// The cosignature line (with its newline) on the checkpoint `body` at `time`.
    pub fn cosign(&self, body: &[u8], time: u64) -> String {
        let sig = self.key.sign(&signed_message(time, body));
        let mut raw = key_id(&self.name, &self.key.verifying_key())
            .to_be_bytes()
            .to_vec();
        raw.extend_from_slice(&time.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        format!("— {} {}\n", self.name, b64().encode(raw))
    }
}

/// Verifies cosignature/v1 signatures of one cosigner (a signed-note [`Verifier`]).
#[derive(Debug, Clone)]
pub struct CosignatureVerifier {
    pub name: String,
    pub id: u32,
    pub key: VerifyingKey,
}

impl CosignatureVerifier {
    /// From a verifier key `name+<id hex>+base64(0x04 ‖ public)`.
    pub fn parse(vkey: &str) -> Result<CosignatureVerifier, String> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (name, id, k) = (parts.next(), parts.next(), parts.next());
        let (Some(k), Some(id), Some(name)) = (k, id, name) else {
            return Err(format!("`{vkey}` is not a verifier key (name+id+key)"));
        };
        let raw = b64()
            .decode(k)
            .map_err(|e| format!("`{vkey}`: bad base64: {e}"))?;
        if raw.len() != 33 || raw[0] != ALG_COSIGNATURE_V1 {
            return Err(format!(
                "`{vkey}` is not an Ed25519 cosignature/v1 witness key (type 0x04)"
            ));
        }
        let public: [u8; 32] = raw[1..]
            .try_into()
            .map_err(|_| format!("`{vkey}`: not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|e| format!("`{vkey}`: not an ed25519 key: {e}"))?;
        let want = key_id(name, &key);
        if format!("{want:08x}") != id {
            return Err(format!(
                "`{vkey}`: the key id does not match the name and key"
            ));
        }
        Ok(CosignatureVerifier {
            name: name.to_string(),
            id: want,
            key,
        })
    }

    /// The timestamp of a valid cosignature `sig` (timestamp ‖ signature) on `body`.
    pub fn check(&self, body: &[u8], sig: &[u8]) -> Option<u64> {
        if sig.len() != 72 {
            return None;
        }
        let time = u64::from_be_bytes(sig[..8].try_into().ok()?);
        if time > i64::MAX as u64 {
            return None;
        }
        let s = ed25519_dalek::Signature::from_slice(&sig[8..]).ok()?;
        self.key
            .verify(&signed_message(time, body), &s)
            .ok()
            .map(|_| time)
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.check(msg, sig).is_some()
    }
}

/// The witnesses among `witnesses` with a valid cosignature on `note`, with its timestamp.
/// A line with a witness's name and key id but a bad signature is an error (a malformed note,
/// signed-note).
pub fn cosigned_by(
    note: &[u8],
    witnesses: &[CosignatureVerifier],
) -> Result<Vec<(String, u64)>, String> {
    let n = Note::from_bytes(note).map_err(|e| format!("not a signed note: {e}"))?;
    let mut out = Vec::new();
    let text = String::from_utf8_lossy(note);
    let sigs = text.rsplit_once("\n\n").map(|(_, s)| s).unwrap_or("");
    for line in sigs.lines() {
        let Ok(sig) = signed_note::Signature::from_bytes(line.as_bytes()) else {
            continue;
        };
        for w in witnesses {
            if w.name == sig.name() && w.id == sig.id() {
                if out.iter().any(|(n, _)| n == &w.name) {
                    continue;
                }
                match w.check(n.text(), sig.signature()) {
                    Some(t) => out.push((w.name.clone(), t)),
                    None => {
                        return Err(format!(
                            "the cosignature of `{}` does not verify: the note was changed after it was cosigned, or the line is forged",
                            w.name
                        ))
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Why a witness refuses a checkpoint, with the tlog-witness HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 400: malformed request, or old size above the checkpoint's.
    BadRequest(String),
    /// 403: no valid signature by a trusted key of the origin.
    Forbidden(String),
    /// 404: the origin is not one of the witness's logs.
    UnknownOrigin(String),
    /// 409: the old size is not the witness's latest cosigned size (carried).
    Conflict(u64),
    /// 422: the proof does not verify, or a different root at the same size.
    Unprocessable(String),
    /// 500: the witness cannot keep its state.
    Internal(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::Conflict(_) => 409,
            Refusal::Unprocessable(_) => 422,
            Refusal::Internal(_) => 500,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BadRequest(s)
            | Refusal::Forbidden(s)
            | Refusal::UnknownOrigin(s)
            | Refusal::Unprocessable(s)
            | Refusal::Internal(s) => f.write_str(s),
            Refusal::Conflict(n) => write!(
                f,
                "the witness's latest cosigned checkpoint has size {n}, not the request's old size"
            ),
        }
    }
}

/// The body of an `add-checkpoint` request (tlog-witness §add-checkpoint).
pub fn add_body(old: u64, proof: &[Hash], note: &[u8]) -> Vec<u8> {
    let mut b = format!("old {old}\n").into_bytes();
    for h in proof {
        b.extend_from_slice(format!("{h}\n").as_bytes());
    }
    b.push(b'\n');
    b.extend_from_slice(note);
    b
}

/// Parses an `add-checkpoint` body: old size, proof, checkpoint note.
pub fn parse_add_body(body: &[u8]) -> Result<(u64, Vec<Hash>, Vec<u8>), Refusal> {
    let bad = |s: &str| Refusal::BadRequest(s.to_string());
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let (head, note) = text
        .split_once("\n\n")
        .ok_or_else(|| bad("no empty line between the old size and proof and the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .ok_or_else(|| bad("the first line must be `old <size>`"))?;
    if old.is_empty() || (old.len() > 1 && old.starts_with('0')) {
        return Err(bad("the old size is not a decimal without leading zeroes"));
    }
    let old: u64 = old
        .parse()
        .map_err(|_| bad("the old size is not a number"))?;
    let mut proof = Vec::new();
    for l in lines {
        proof.push(tlog::parse_hash(l).map_err(Refusal::BadRequest)?);
    }
    if proof.len() > MAX_PROOF_LINES {
        return Err(bad("more than 63 consistency proof lines"));
    }
    Ok((old, proof, note.as_bytes().to_vec()))
}

fn empty_root() -> Hash {
    tlog::Tree::default().root()
}

/// A witness: its key, the logs it trusts and its state dir.
#[allow(missing_debug_implementations)]
pub struct Witness {
    pub key: WitnessKey,
    pub state: PathBuf,
    /// The trusted log verifier keys (signed-note ed25519 vkeys, name = origin).
    pub logs: Vec<String>,
    lock: std::sync::Mutex<()>,
}

/// The file in the state dir with the trusted log keys.
pub const LOGS_FILE: &str = "logs";

impl Witness {
    /// Opens the state dir (created), adding `log_keys` to the trusted ones kept there.
    pub fn open(key: WitnessKey, state: &Path, log_keys: &[String]) -> Result<Witness, String> {
        std::fs::create_dir_all(state).map_err(|e| {
            format!(
                "cannot create the witness state dir {}: {e}",
                state.display()
            )
        })?;
        let path = state.join(LOGS_FILE);
        let mut logs: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let mut changed = false;
        for k in log_keys {
            StandardVerifier::new(k.trim())
                .map_err(|e| format!("--log-key `{k}` is not an ed25519 note verifier key: {e}"))?;
            if !logs.iter().any(|l| l == k.trim()) {
                logs.push(k.trim().to_string());
                changed = true;
            }
        }
        if changed {
            let text: String = logs.iter().map(|l| format!("{l}\n")).collect();
            write_atomic(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(Witness {
            key,
            state: state.to_path_buf(),
            logs,
            lock: std::sync::Mutex::new(()),
        })
    }

    fn state_file(&self, origin: &str) -> PathBuf {
        self.state.join(format!("log-{}", origin_hash(origin)))
    }

    /// The latest cosigned checkpoint of the log whose origin hash is `hash` (tlog-witness
    /// monitoring: `GET <prefix>/<origin hash>/checkpoint`).
    pub fn latest_by_hash(&self, hash: &str) -> Option<Vec<u8>> {
        if hash.len() != 64
            || !hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        std::fs::read(self.state.join(format!("log-{hash}"))).ok()
    }

    /// The latest checkpoint this witness cosigned for `origin` (the note with its
    /// cosignature), if any.
    pub fn latest(&self, origin: &str) -> Option<Vec<u8>> {
        std::fs::read(self.state_file(origin)).ok()
    }

    /// tlog-witness `add-checkpoint`: verifies the checkpoint's signature by a trusted key of
    /// its origin, the old size against the latest cosigned one, the consistency proof from
    /// it; then records the checkpoint and returns the cosignature line.
    pub fn add_checkpoint(&self, old: u64, proof: &[Hash], note: &[u8]) -> Result<String, Refusal> {
        let n = Note::from_bytes(note).map_err(|e| {
            Refusal::BadRequest(format!("the checkpoint is not a signed note: {e}"))
        })?;
        let cp = tlog_tiles::Checkpoint::from_bytes(n.text())
            .map_err(|e| Refusal::BadRequest(format!("the note is not a C2SP checkpoint: {e}")))?;
        let origin = cp.origin().to_string();
        let verifiers: Vec<Box<dyn Verifier>> = self
            .logs
            .iter()
            .filter_map(|k| StandardVerifier::new(k).ok())
            .filter(|v| v.name() == origin)
            .map(|v| Box::new(v) as Box<dyn Verifier>)
            .collect();
        if verifiers.is_empty() {
            return Err(Refusal::UnknownOrigin(format!(
                "the witness does not know the log `{origin}` (give its verifier key with --log-key)"
            )));
        }
        n.verify(&VerifierList::new(verifiers)).map_err(|e| {
            Refusal::Forbidden(format!(
                "the checkpoint of `{origin}` is not signed by its trusted key: {e}"
            ))
        })?;
        let (size, root) = (cp.size(), *cp.hash());
        if old > size {
            return Err(Refusal::BadRequest(format!(
                "the old size {old} is above the checkpoint's size {size}"
            )));
        }
        if size == 0 && root != empty_root() {
            return Err(Refusal::Unprocessable(
                "a checkpoint of size 0 must have the empty tree's root".into(),
            ));
        }
        // Check and store as one step (tlog-witness: else two requests can roll the witness
        // back): the mutex for this process's threads, a file lock for other processes
        // (`recorder cosign` beside `witness serve` on the same state dir).
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.state.join("lock"))
            .map_err(|e| Refusal::Internal(format!("cannot open the witness's lock: {e}")))?;
        rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Refusal::Internal(format!("cannot lock the witness's state: {e}")))?;
        let (have_size, have_root) = match self.latest(&origin) {
            Some(b) => {
                let t = Note::from_bytes(&b)
                    .ok()
                    .and_then(|n| tlog_tiles::Checkpoint::from_bytes(n.text()).ok())
                    .ok_or_else(|| {
                        Refusal::Internal(format!(
                            "the witness's state {} is corrupt",
                            self.state_file(&origin).display()
                        ))
                    })?;
                (t.size(), *t.hash())
            }
            None => (0, empty_root()),
        };
        if old != have_size {
            return Err(Refusal::Conflict(have_size));
        }
        if old == 0 {
            if !proof.is_empty() {
                return Err(Refusal::Unprocessable(
                    "the old size is 0: the consistency proof must be empty".into(),
                ));
            }
        } else if old == size {
            if root != have_root {
                return Err(Refusal::Unprocessable(format!(
                    "FORK: the checkpoint has root {root} at size {size}, the witness cosigned root {have_root} at that size"
                )));
            }
        } else if !tlog::check_consistency(proof, size, root, old, have_root) {
            return Err(Refusal::Unprocessable(format!(
                "the consistency proof from the witness's size {old} (root {have_root}) to {size} (root {root}) does not verify: not an append-only extension (a fork)"
            )));
        }
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
            .max(1);
        let line = self.key.cosign(n.text(), time);
        let mut kept = n.to_bytes();
        kept.extend_from_slice(line.as_bytes());
        write_atomic(&self.state_file(&origin), &kept)
            .map_err(|e| Refusal::Internal(format!("cannot persist the witness's state: {e}")))?;
        Ok(line)
    }
}

/// The origin hash of tlog-witness: SHA-256 of the origin line, lowercase hex.
pub fn origin_hash(origin: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(origin.as_bytes()))
}

/// Adds signature `lines` to a note, dropping lines already in it.
pub fn with_lines(note: &[u8], lines: &str) -> Vec<u8> {
    let mut out = note.to_vec();
    let have = String::from_utf8_lossy(note).into_owned();
    for l in lines.lines().filter(|l| l.starts_with('—')) {
        if !have.lines().any(|h| h == l) {
            out.extend_from_slice(format!("{l}\n").as_bytes());
        }
    }
    out
}

/// Writes `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosignature_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let log = SigningKey::from_bytes(&[7; 32]);
        let origin = "agentos/test/recorder";
        let vkey = tlog::verifier_key(origin, &log.verifying_key());
        let wk = WitnessKey {
            name: "w.example/1".into(),
            key: SigningKey::from_bytes(&[9; 32]),
        };
        assert_eq!(
            WitnessKey::parse(&wk.to_text()).unwrap().name,
            "w.example/1"
        );
        // Keys whose base64 holds `+` and `/` parse too.
        for seed in 0..64u8 {
            let k = WitnessKey {
                name: "w.example/x".into(),
                key: SigningKey::from_bytes(&[seed; 32]),
            };
            let back = WitnessKey::parse(&k.to_text()).unwrap();
            assert_eq!(back.key.to_bytes(), k.key.to_bytes());
            CosignatureVerifier::parse(&k.verifier_key()).unwrap();
        }
        let wv = CosignatureVerifier::parse(&wk.verifier_key()).unwrap();
        let w = Witness::open(wk, dir.path(), std::slice::from_ref(&vkey)).unwrap();
        let mut t = tlog::Tree::default();
        for i in 0..5u8 {
            t.push(&[i]);
        }
        let n5 = tlog::sign_checkpoint(origin, 5, &t.root(), &log).unwrap();
        let line = w.add_checkpoint(0, &[], &n5).unwrap();
        let cosigned = with_lines(&n5, &line);
        assert_eq!(cosigned_by(&cosigned, &[wv]).unwrap().len(), 1);
        // Rollback and stale old size: 409 with the current size.
        let r3 = t.root_at(3).unwrap();
        let n3 = tlog::sign_checkpoint(origin, 3, &r3, &log).unwrap();
        assert_eq!(w.add_checkpoint(0, &[], &n3), Err(Refusal::Conflict(5)));
        assert_eq!(w.add_checkpoint(5, &[], &n3).unwrap_err().status(), 400);
        // Fork at the same size: 422.
        let fork = tlog::sign_checkpoint(origin, 5, &r3, &log).unwrap();
        assert_eq!(w.add_checkpoint(5, &[], &fork).unwrap_err().status(), 422);
        // Growth with a proof: ok; with a wrong proof: 422.
        for i in 5..9u8 {
            t.push(&[i]);
        }
        let n9 = tlog::sign_checkpoint(origin, 9, &t.root(), &log).unwrap();
        let p = t.prove_consistency(9, 5).unwrap();
        assert_eq!(w.add_checkpoint(5, &p[1..], &n9).unwrap_err().status(), 422);
        w.add_checkpoint(5, &p, &n9).unwrap();
        // Another key: 403.
        let other = SigningKey::from_bytes(&[8; 32]);
        let n10 = tlog::sign_checkpoint(origin, 9, &t.root(), &other).unwrap();
        assert_eq!(w.add_checkpoint(9, &[], &n10).unwrap_err().status(), 403);
        let kept = w.latest_by_hash(&origin_hash(origin)).unwrap();
        assert!(kept.starts_with(&n9) && kept.len() > n9.len());
        assert_eq!(w.latest_by_hash("../logs"), None);
        assert_eq!(
            origin_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let body = add_body(5, &p, &n9);
        assert_eq!(parse_add_body(&body).unwrap(), (5, p, n9));
    }
}

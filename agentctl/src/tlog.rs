//! `agentctl recorder checkpoint|prove|consistency` and `verify --checkpoint`: the flight
//! recorder as a transparency log (`agentos_recorder::tlog`), read from STATE_DIR/recorder
//! without a kernel. Proofs are RFC 6962, checkpoints C2SP tlog-checkpoint signed notes, so
//! a third party checks them with any standard implementation (the test suite uses Go's
//! golang.org/x/mod/sumdb/tlog and note).

use std::path::Path;

use agentos_recorder::key::load_public;
use agentos_recorder::tlog::{self, Hash, SignedCheckpoint, Tree};
use agentos_recorder::verify::ProblemKind;
use agentos_recorder::{scan, ScanOptions};
use ed25519_dalek::VerifyingKey;
use serde_json::{json, Value};

use crate::view::Names;
use crate::CliError;

fn read_err(what: String) -> CliError {
    CliError::failed(
        what,
        "check the state dir's permissions (the recorder is readable by the kernel's owner)",
    )
}

fn public(dir: &Path) -> Result<VerifyingKey, CliError> {
    load_public(dir)
        .map_err(|e| read_err(format!("cannot read the recorder's public key: {e}")))?
        .ok_or_else(|| {
            CliError::new(
                4,
                format!("no public key at {}", dir.join("key.pub").display()),
                "checkpoints are signed by the recorder's key; restore recorder/key.pub from a backup",
            )
        })
}

fn origin(dir: &Path) -> Result<String, CliError> {
    let path = dir.join(tlog::ORIGIN_FILE);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            CliError::new(
                4,
                format!("no transparency log in {} (no {})", dir.display(), path.display()),
                "a kernel of this version builds it from the log when it starts: run `agentctl kernel start` once",
            )
        })
}

/// A note signed by an older key of this log: one the log's verified key rotations
/// announce a successor of (`agentctl recorder verify` lists them).
fn older_key_note(dir: &Path, bytes: &[u8]) -> Option<SignedCheckpoint> {
    let history = agentos_recorder::key::load_history(dir).ok()?;
    if history.is_empty() {
        return None;
    }
    let v = scan(dir, ScanOptions { signatures: true }, |_, _| {}).ok()?;
    if v.problem.is_some() {
        return None;
    }
    history
        .iter()
        .filter(|k| {
            let id = hex::encode(agentos_recorder::key::key_id(k));
            v.rotations.iter().any(|r| r.old_key_id == id)
        })
        .find_map(|k| tlog::open_checkpoint(bytes, k).ok())
}

/// A checkpoint note from `file`, its signature verified with the recorder's key and its
/// origin this log's.
fn read_note(dir: &Path, file: &Path, key: &VerifyingKey) -> Result<SignedCheckpoint, CliError> {
    let bytes = std::fs::read(file).map_err(|e| {
        CliError::new(
            4,
            format!("cannot read checkpoint {}: {e}", file.display()),
            "pass a checkpoint note saved with `agentctl recorder checkpoint --out FILE`",
        )
    })?;
    let cp = tlog::open_checkpoint(&bytes, key)
        .or_else(|what| older_key_note(dir, &bytes).ok_or(what))
        .map_err(|what| {
        CliError::failed(
            format!("checkpoint {}: {what}", file.display()),
            "only a checkpoint this recorder signed verifies (its verifier key: `agentctl recorder checkpoint --verifier-key`); a note signed by another key is a forged or foreign checkpoint",
        )
    })?;
    let ours = origin(dir)?;
    if cp.origin != ours {
        return Err(CliError::failed(
            format!(
                "checkpoint {} is for the log `{}`, this log is `{ours}`",
                file.display(),
                cp.origin
            ),
            "pass a checkpoint of this log",
        ));
    }
    Ok(cp)
}

fn latest(dir: &Path, key: &VerifyingKey) -> Result<SignedCheckpoint, CliError> {
    let file = dir.join(tlog::CHECKPOINT_FILE);
    if !file.exists() {
        origin(dir)?;
        return Err(CliError::new(
            4,
            format!("no checkpoint at {}", file.display()),
            "the kernel writes one when it starts and with every checkpoint; start it once",
        ));
    }
    read_note(dir, &file, key)
}

fn tree(dir: &Path, want: Option<u64>) -> Result<(Tree, Option<Vec<u8>>), CliError> {
    tlog::read_tree(dir, want)
        .map_err(|e| read_err(format!("cannot read the flight recorder: {e}")))
}

/// The log's tree against a checkpoint: it must hold at least the checkpoint's records
/// (else exit 2: cut or rolled back) with the same root at its size (else exit 1: a fork).
fn against(tree: &Tree, cp: &SignedCheckpoint, name: &str) -> Result<(), CliError> {
    if cp.size > tree.size() {
        return Err(CliError::new(
            2,
            format!(
                "ROLLBACK: checkpoint {name} commits to {} records, the log has only {}: records {}..{} were cut off or the log was rolled back",
                cp.size,
                tree.size(),
                tree.size(),
                cp.size
            ),
            "restore the segments from a backup; `agentctl recorder verify` locates the cut",
        ));
    }
    let root = tree
        .root_at(cp.size)
        .map_err(|e| read_err(format!("tree at {}: {e}", cp.size)))?;
    if root != cp.root {
        return Err(CliError::failed(
            format!(
                "FORK: checkpoint {name} says the tree of the first {} records has root {}, the log's is {}: a record below {} was changed, or the checkpoint is of another history",
                cp.size, cp.root, root, cp.size
            ),
            "`agentctl recorder verify` locates a changed record by its chain; compare with the checkpoints others hold",
        ));
    }
    Ok(())
}

/// `recorder checkpoint`.
pub fn checkpoint(
    dir: &Path,
    out: Option<&Path>,
    verifier_key: bool,
    json: bool,
) -> Result<u8, CliError> {
    let key = public(dir)?;
    let cp = latest(dir, &key)?;
    let vkey = tlog::verifier_key(&cp.origin, &key);
    let text = if verifier_key {
        format!("{vkey}\n")
    } else if json {
        format!(
            "{}\n",
            json!({
                "origin": cp.origin,
                "tree_size": cp.size,
                "root_hash": tlog::b64(&cp.root),
                "verifier_key": vkey,
                "note": cp.note,
            })
        )
    } else {
        cp.note.clone()
    };
    match out {
        Some(f) => std::fs::write(f, text).map_err(|e| {
            CliError::failed(
                format!("cannot write {}: {e}", f.display()),
                "pass a writable --out path",
            )
        })?,
        None => {
            let _ = crate::stdout::write_all(text.as_bytes());
        }
    }
    Ok(0)
}

fn hashes(p: &[Hash]) -> Vec<String> {
    p.iter().map(tlog::b64).collect()
}

/// `recorder prove SEQ`.
pub fn prove(dir: &Path, seq: u64, file: Option<&Path>, json: bool) -> Result<u8, CliError> {
    let key = public(dir)?;
    let (cp, name) = match file {
        Some(f) => (read_note(dir, f, &key)?, f.display().to_string()),
        None => (latest(dir, &key)?, "recorder/checkpoint".into()),
    };
    if seq >= cp.size {
        return Err(CliError::new(
            4,
            format!(
                "record {seq} is not under checkpoint {name}: it covers records 0..{}",
                cp.size
            ),
            "prove an older record, or take a newer checkpoint (`agentctl recorder checkpoint`, written at each of the kernel's checkpoints)",
        ));
    }
    if let Ok(Some(m)) = agentos_recorder::prune::read_manifest(dir) {
        if seq < m.next_seq {
            return Err(CliError::new(
                4,
                format!(
                    "record {seq} was pruned (records 0..{} pruned at {} ms since the Unix epoch): its bytes are gone, its hash stays in the tree",
                    m.next_seq, m.wall_ms
                ),
                "prove a record at or after the cut; consistency proofs still cover the pruned records",
            ));
        }
    }
    let (tree, leaf) = tree(dir, Some(seq))?;
    against(&tree, &cp, &name)?;
    let leaf = leaf.unwrap_or_default();
    let proof = tree
        .prove(cp.size, seq)
        .map_err(|e| read_err(format!("record {seq}: {e}")))?;
    let mut records = Vec::new();
    let _ = scan(dir, ScanOptions { signatures: false }, |r, _| {
        records.push(r)
    });
    let names = Names::of(&records);
    let record = records
        .iter()
        .find(|r| r.seq == seq)
        .map(|r| crate::recorder::record_json(r, &names))
        .unwrap_or(Value::Null);
    let leaf_hash = tlog_tiles::record_hash(&leaf);
    let vkey = tlog::verifier_key(&cp.origin, &key);
    let b64leaf = base64_encode(&leaf);
    if json {
        crate::output::print_json(&json!({
            "index": seq,
            "tree_size": cp.size,
            "root_hash": tlog::b64(&cp.root),
            "leaf": b64leaf,
            "leaf_hash": tlog::b64(&leaf_hash),
            "proof": hashes(&proof),
            "checkpoint": cp.note,
            "verifier_key": vkey,
            "record": record,
        }));
        return Ok(0);
    }
    let mut s = String::new();
    s.push_str("agentos inclusion proof (RFC 6962)\n");
    s.push_str(&format!(
        "index {seq}\ntree-size {}\nroot-hash {}\n",
        cp.size, cp.root
    ));
    s.push_str(&format!("leaf-hash {leaf_hash}\nleaf {b64leaf}\n"));
    for h in &proof {
        s.push_str(&format!("proof {h}\n"));
    }
    s.push_str(&format!("verifier-key {vkey}\n"));
    s.push_str(&format!("record {}\n", crate::safe::json_line(&record)));
    s.push_str("checkpoint\n");
    s.push_str(&cp.note);
    let _ = crate::stdout::write_all(s.as_bytes());
    Ok(0)
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// One side of `consistency`: a checkpoint file (verified, checked against the log) or a
/// size (the log's own root at it).
fn side(
    dir: &Path,
    arg: &str,
    key: &VerifyingKey,
    tree: &Tree,
    which: &str,
) -> Result<(u64, Hash, Option<String>), CliError> {
    if let Ok(n) = arg.parse::<u64>() {
        let root = tree.root_at(n).map_err(|e| {
            CliError::new(
                4,
                format!("{which} size {n}: {e}"),
                "pass a size up to the log's record count, or a checkpoint file",
            )
        })?;
        return Ok((n, root, None));
    }
    let cp = read_note(dir, Path::new(arg), key)?;
    against(tree, &cp, arg)?;
    Ok((cp.size, cp.root, Some(cp.note)))
}

/// `recorder consistency OLD NEW`.
pub fn consistency(dir: &Path, old: &str, new: &str, json: bool) -> Result<u8, CliError> {
    let key = public(dir)?;
    let (tree, _) = tree(dir, None)?;
    // A rollback is named before either side is held to the log.
    let size_of = |arg: &str| -> Option<u64> {
        arg.parse::<u64>().ok().or_else(|| {
            let b = std::fs::read(arg).ok()?;
            tlog::open_checkpoint(&b, &key).ok().map(|c| c.size)
        })
    };
    if let (Some(o), Some(n)) = (size_of(old), size_of(new)) {
        if n < o {
            return Err(CliError::failed(
                format!(
                    "ROLLBACK: NEW ({new}) has {n} records, fewer than OLD ({old}) with {o}: a log never shrinks"
                ),
                "pass the older checkpoint first; a newer checkpoint smaller than one seen means the log was rolled back",
            ));
        }
    }
    let (o, or, onote) = side(dir, old, &key, &tree, "OLD")?;
    let (n, nr, nnote) = side(dir, new, &key, &tree, "NEW")?;
    let proof = tree.prove_consistency(n, o).map_err(read_err)?;
    if !tlog::check_consistency(&proof, n, nr, o, or) {
        return Err(read_err(format!(
            "the consistency proof from {o} to {n} does not check: the log changed while read; retry"
        )));
    }
    let vkey = tlog::verifier_key(&origin(dir)?, &key);
    if json {
        crate::output::print_json(&json!({
            "old_size": o,
            "old_root": tlog::b64(&or),
            "new_size": n,
            "new_root": tlog::b64(&nr),
            "proof": hashes(&proof),
            "old_checkpoint": onote,
            "new_checkpoint": nnote,
            "verifier_key": vkey,
        }));
        return Ok(0);
    }
    let mut s = String::from("agentos consistency proof (RFC 6962)\n");
    s.push_str(&format!(
        "old-size {o}\nold-root {or}\nnew-size {n}\nnew-root {nr}\n"
    ));
    for h in &proof {
        s.push_str(&format!("proof {h}\n"));
    }
    s.push_str(&format!("verifier-key {vkey}\n"));
    let _ = crate::stdout::write_all(s.as_bytes());
    Ok(0)
}

/// `recorder verify --checkpoint FILE`: the chain verification, then the transparency log
/// against the checkpoint and the tiles against the log. `cosigned` are the witnesses whose
/// cosignatures `--witness` checked (name, timestamp), listed in `--json`.
pub fn verify(
    dir: &Path,
    file: &Path,
    cosigned: &[(String, u64)],
    json: bool,
) -> Result<u8, CliError> {
    let key = public(dir)?;
    let cp = read_note(dir, file, &key)?;
    let v = scan(dir, ScanOptions { signatures: true }, |_, _| {})
        .map_err(|e| read_err(format!("cannot read the flight recorder: {e}")))?;
    let mut problems: Vec<String> = Vec::new();
    let mut code = 0u8;
    if let Some(p) = &v.problem {
        problems.push(format!(
            "{}: segment {}, record {} at byte {}: {}",
            match p.kind {
                ProblemKind::Tampered => "TAMPERED",
                ProblemKind::Truncated => "TRUNCATED",
            },
            p.segment,
            p.seq,
            p.offset,
            p.what
        ));
        code = match p.kind {
            ProblemKind::Tampered => 1,
            ProblemKind::Truncated => 2,
        };
    }
    let (tree, _) = tree(dir, None)?;
    let name = file.display().to_string();
    if let Err(e) = against(&tree, &cp, &name) {
        problems.push(e.message.clone());
        if code == 0 {
            code = e.code;
        }
    }
    let (checked, tile_problems) =
        tlog::check_tiles(dir).map_err(|e| read_err(format!("cannot read the tiles: {e}")))?;
    if !tile_problems.is_empty() && code == 0 {
        code = 1;
    }
    let tile_problems: Vec<String> = tile_problems
        .into_iter()
        .map(|p| format!("TILE: recorder/{p}"))
        .collect();
    problems.extend(tile_problems);
    if json {
        crate::output::print_json(&json!({
            "status": if code == 0 { "ok" } else { "failed" },
            "exit_code": code,
            "records": tree.size(),
            "root_hash": tlog::b64(&tree.root()),
            "checkpoint": {
                "file": name,
                "origin": cp.origin,
                "tree_size": cp.size,
                "root_hash": tlog::b64(&cp.root),
            },
            "tiles_checked": checked,
            "witnesses": cosigned
                .iter()
                .map(|(name, timestamp)| json!({ "name": name, "timestamp": timestamp }))
                .collect::<Vec<_>>(),
            "problems": problems,
        }));
        return Ok(code);
    }
    say!(
        "recorder {}: {} records, tree root {}",
        dir.display(),
        tree.size(),
        tree.root()
    );
    say!(
        "  checkpoint {name}: `{}` size {} root {} (signature ok)",
        cp.origin,
        cp.size,
        cp.root
    );
    say!("  tiles: {checked} file(s) checked against the log");
    for p in &problems {
        say!("{p}");
    }
    if code == 0 {
        say!(
            "ok: the log holds the checkpoint's {} records unchanged and grew to {}",
            cp.size,
            tree.size()
        );
    }
    Ok(code)
}

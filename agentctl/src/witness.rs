//! Witnesses of the flight recorder's transparency log (`agentos_recorder::witness`):
//! `recorder witness-key`, `recorder cosign`, `recorder witness serve` (C2SP tlog-witness
//! `POST /add-checkpoint` over HTTP/1.1) and the cosignature check of
//! `recorder verify --checkpoint FILE --witness VKEY --min-witnesses N`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::WitnessArgs;
use agentos_recorder::tlog::{self, Hash};
use agentos_recorder::witness::{self, CosignatureVerifier, Refusal, Witness, WitnessKey};
use ed25519_dalek::SigningKey;

use crate::CliError;

/// The largest request body the witness reads.
const MAX_BODY: usize = 1 << 20;

fn load_key(file: &Path) -> Result<WitnessKey, CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::new(
            4,
            format!("cannot read the witness key {}: {e}", file.display()),
            "create one with `agentctl recorder witness-key --name NAME --out FILE`",
        )
    })?;
    WitnessKey::parse(&text).map_err(|e| {
        CliError::failed(
            format!("{}: {e}", file.display()),
            "pass a key written by `agentctl recorder witness-key`",
        )
    })
}

fn open(args: &WitnessArgs) -> Result<Witness, CliError> {
    let WitnessArgs {
        key,
        state,
        log_key,
    } = args;
    let w = Witness::open(load_key(key)?, state, log_key).map_err(|e| {
        CliError::failed(
            e,
            "pass the log's verifier key as printed by `agentctl recorder checkpoint --verifier-key`",
        )
    })?;
    if w.logs.is_empty() {
        return Err(CliError::usage(
            format!("the witness in {} trusts no log yet", state.display()),
            "give the log's verifier key once with --log-key (`agentctl recorder checkpoint --verifier-key` prints it); it is kept in the state dir",
        ));
    }
    Ok(w)
}

/// `recorder witness-key --name NAME --out FILE`.
pub fn keygen(name: &str, out: &Path) -> Result<u8, CliError> {
    if !signed_note_name_ok(name) {
        return Err(CliError::usage(
            format!("`{name}` is not a valid key name (no spaces or `+`)"),
            "use a schema-less URL naming the witness, e.g. `witness.example/w1`",
        ));
    }
    let seed = agentos_recorder::key::random_bytes::<32>()
        .map_err(|e| CliError::failed(format!("{e}"), "check /dev/urandom"))?;
    let k = WitnessKey {
        name: name.to_string(),
        key: SigningKey::from_bytes(&seed),
    };
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            CliError::failed(
                format!("cannot create {}: {e}", out.display()),
                "pass a new file (an existing key is never overwritten)",
            )
        })?;
    f.write_all(k.to_text().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", out.display()), ""))?;
    say!("{}", k.verifier_key());
    Ok(0)
}

fn signed_note_name_ok(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A consistency proof file: the text of `recorder consistency` (`old-size N`, `proof H`
/// lines) or its `--json`.
fn read_proof(file: &Path) -> Result<(u64, Vec<Hash>), CliError> {
    let bad = |what: String| {
        CliError::failed(
            format!("proof {}: {what}", file.display()),
            "pass the output of `agentctl recorder consistency OLD NEW` (text or --json)",
        )
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(format!("cannot read: {e}")))?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        let old = v["old_size"]
            .as_u64()
            .ok_or_else(|| bad("no old_size".into()))?;
        let proof = v["proof"]
            .as_array()
            .ok_or_else(|| bad("no proof".into()))?
            .iter()
            .map(|h| tlog::parse_hash(h.as_str().unwrap_or("")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        return Ok((old, proof));
    }
    let mut old = None;
    let mut proof = Vec::new();
    for l in text.lines() {
        if let Some(n) = l.strip_prefix("old-size ") {
            old = Some(
                n.trim()
                    .parse()
                    .map_err(|_| bad(format!("bad line `{l}`")))?,
            );
        } else if let Some(h) = l.strip_prefix("proof ") {
            proof.push(tlog::parse_hash(h.trim()).map_err(bad)?);
        }
    }
    Ok((old.ok_or_else(|| bad("no `old-size` line".into()))?, proof))
}

fn refusal_error(r: Refusal, have: Option<u64>) -> CliError {
    let hint = match &r {
        Refusal::Conflict(n) => format!(
            "the witness last cosigned size {n}: pass --proof with a consistency proof from it (`agentctl recorder consistency {n} CHECKPOINT`); a checkpoint smaller than {n} is a rollback and is never cosigned"
        ),
        Refusal::Unprocessable(_) => "the log is not append-only from what the witness saw: keep both checkpoints as evidence of a fork".into(),
        Refusal::Forbidden(_) | Refusal::UnknownOrigin(_) => "only checkpoints signed by the log's key given with --log-key are cosigned".into(),
        _ => String::new(),
    };
    let _ = have;
    CliError::failed(format!("REFUSED ({}): {r}", r.status()), hint)
}

/// `recorder cosign CHECKPOINT`.
pub fn cosign(
    witness: &WitnessArgs,
    checkpoint: &Path,
    proof: Option<&Path>,
    out: Option<&Path>,
) -> Result<u8, CliError> {
    let w = open(witness)?;
    let note = std::fs::read(checkpoint).map_err(|e| {
        CliError::new(
            4,
            format!("cannot read checkpoint {}: {e}", checkpoint.display()),
            "pass a checkpoint note (`agentctl recorder checkpoint --out FILE`)",
        )
    })?;
    let (old, proof) = match proof {
        Some(p) => read_proof(p)?,
        None => {
            // Without a proof: a first checkpoint (old 0), or the same size again.
            let given = note_checkpoint(&note);
            let origin = given.as_ref().map(|c| c.origin().to_string());
            let have = w
                .latest(origin.as_deref().unwrap_or_default())
                .and_then(|b| note_checkpoint(&b))
                .map_or(0, |c| c.size());
            let size = given.map_or(0, |c| c.size());
            if size < have {
                return Err(CliError::failed(
                    format!(
                        "REFUSED: ROLLBACK: checkpoint {} has size {size}, smaller than the {have} records this witness last cosigned for its log",
                        checkpoint.display()
                    ),
                    "a log never shrinks: keep both checkpoints as evidence; a witness never cosigns a smaller tree",
                ));
            }
            if have != 0 && size > have {
                return Err(CliError::usage(
                    format!(
                        "the witness last cosigned size {have}; checkpoint {} has size {size}: a consistency proof from {have} is needed",
                        checkpoint.display()
                    ),
                    format!("`agentctl recorder consistency {have} {} > PROOF` on the log's host, then --proof PROOF", checkpoint.display()),
                ));
            }
            (have, Vec::new())
        }
    };
    let line = w
        .add_checkpoint(old, &proof, &note)
        .map_err(|r| refusal_error(r, None))?;
    let cosigned = witness::with_lines(&note, &line);
    match out {
        Some(f) => std::fs::write(f, &cosigned)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", f.display()), ""))?,
        None => {
            let _ = crate::stdout::write_all(&cosigned);
        }
    }
    Ok(0)
}

/// The checkpoint a note's text holds, if it is one.
fn note_checkpoint(note: &[u8]) -> Option<tlog_tiles::Checkpoint> {
    let n = signed_note::Note::from_bytes(note).ok()?;
    tlog_tiles::Checkpoint::from_bytes(n.text()).ok()
}

/// `recorder witness serve --listen ADDR`: C2SP tlog-witness over HTTP/1.1.
pub fn serve(witness: &WitnessArgs, listen: &str) -> Result<u8, CliError> {
    let w = Arc::new(open(witness)?);
    let l = TcpListener::bind(listen).map_err(|e| {
        CliError::failed(
            format!("cannot listen on {listen}: {e}"),
            "pass a free ADDR:PORT (port 0 picks one)",
        )
    })?;
    let addr = l
        .local_addr()
        .map_err(|e| CliError::failed(format!("{e}"), ""))?;
    say!(
        "witness {} listening on http://{addr} (POST /add-checkpoint); verifier key {}",
        w.key.name,
        w.key.verifier_key()
    );
    let _ = std::io::stdout().flush();
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        let w = w.clone();
        std::thread::spawn(move || {
            let _ = handle(&w, conn);
        });
    }
    Ok(0)
}

fn respond(mut s: &TcpStream, status: u16, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()
}

fn handle(w: &Witness, s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut r = BufReader::new(&s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    // Monitoring (tlog-witness): GET /<origin hash>/checkpoint, the latest cosigned one.
    if let Some(hash) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/checkpoint"))
    {
        if method != "GET" {
            return respond(&s, 405, "text/plain", b"GET /<origin hash>/checkpoint\n");
        }
        return match w.latest_by_hash(hash) {
            Some(note) => respond(&s, 200, "text/plain; charset=utf-8", &note),
            None => respond(
                &s,
                404,
                "text/plain",
                b"this witness has cosigned no checkpoint of that log\n",
            ),
        };
    }
    if path != "/add-checkpoint" {
        return respond(
            &s,
            404,
            "text/plain",
            b"not found: POST /add-checkpoint, GET /<origin hash>/checkpoint\n",
        );
    }
    if method != "POST" {
        return respond(&s, 405, "text/plain", b"add-checkpoint is a POST\n");
    }
    if len > MAX_BODY {
        return respond(&s, 413, "text/plain", b"request body too large\n");
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let res = witness::parse_add_body(&body)
        .and_then(|(old, proof, note)| w.add_checkpoint(old, &proof, &note));
    match res {
        Ok(line) => respond(&s, 200, "text/plain; charset=utf-8", line.as_bytes()),
        Err(Refusal::Conflict(n)) => {
            respond(&s, 409, "text/x.tlog.size", format!("{n}\n").as_bytes())
        }
        Err(r) => {
            say_err!("witness: refused ({}): {r}", r.status());
            respond(
                &s,
                r.status(),
                "text/plain; charset=utf-8",
                format!("{r}\n").as_bytes(),
            )
        }
    }
}

/// Checks `--witness` cosignatures on a checkpoint note for `verify`: the witnesses with a
/// valid cosignature, or an error when fewer than `min`.
pub fn check_cosignatures(
    note: &[u8],
    vkeys: &[String],
    min: usize,
) -> Result<Vec<(String, u64)>, CliError> {
    let ws = vkeys
        .iter()
        .map(|k| CosignatureVerifier::parse(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            CliError::usage(
                e,
                "pass a witness verifier key as printed by `agentctl recorder witness-key`",
            )
        })?;
    let good = witness::cosigned_by(note, &ws).map_err(|e| {
        CliError::failed(
            format!("WITNESS: {e}"),
            "the note is not the one the witnesses cosigned",
        )
    })?;
    if good.len() < min {
        let names: Vec<&str> = good.iter().map(|(n, _)| n.as_str()).collect();
        return Err(CliError::failed(
            format!(
                "WITNESS: {} valid cosignature(s) from the given witnesses ({}), --min-witnesses {min} required",
                good.len(),
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ),
            "use a checkpoint the witnesses cosigned (recorder/checkpoint.witnessed), or pass the keys of the witnesses that did",
        ));
    }
    Ok(good)
}

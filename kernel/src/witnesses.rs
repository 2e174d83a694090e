//! Pushing the transparency log's checkpoints to witnesses (`--witness URL=VKEY`), per C2SP
//! tlog-witness: `POST URL/add-checkpoint` with `old N`, the RFC 6962 consistency proof from
//! the witness's size and the checkpoint note; the answer's cosignature lines are checked
//! with the witness's verifier key and kept.
//!
//! It runs on its own thread, off the recorder's writer: it watches recorder/checkpoint (the
//! writer publishes it with each checkpoint), so appends never wait for a witness. Each
//! witness gets each new checkpoint once, with a timeout and up to [`ATTEMPTS`] tries; a
//! `409` teaches the witness's size and is retried at once with a proof from it. Each
//! outcome is a record (`WitnessCosigned`, `WitnessFailed`). The latest checkpoint with the
//! cosignatures obtained on it is written to recorder/[`WITNESSED_FILE`] (the note as the
//! writer signed it, the cosignature lines appended), which `agentctl recorder verify
//! --checkpoint recorder/checkpoint.witnessed --witness VKEY --min-witnesses N` checks.
//!
//! A checkpoint whose only new records are this pusher's own outcome records is not pushed
//! (else an idle kernel would cosign its own cosignature records forever).

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentos_recorder::format::RecordEvent;
use agentos_recorder::tlog::{self, Hash};
use agentos_recorder::witness::{self, CosignatureVerifier};

/// The checkpoint note with the witnesses' cosignatures, beside recorder/checkpoint.
pub const WITNESSED_FILE: &str = "checkpoint.witnessed";
/// Tries per witness and checkpoint.
pub const ATTEMPTS: u32 = 3;
/// Timeout of one request.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How often recorder/checkpoint is looked at.
const POLL: Duration = Duration::from_millis(200);

/// One `--witness URL=VKEY`.
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    /// The submission prefix (`/add-checkpoint` is appended).
    pub url: String,
    pub verifier: CosignatureVerifier,
}

impl WitnessTarget {
    pub fn parse(s: &str) -> Result<WitnessTarget, String> {
        let (url, vkey) = s.split_once('=').ok_or_else(|| {
            format!("`{s}` is not URL=VKEY (the witness's submission URL and its verifier key from `agentctl recorder witness-key`)")
        })?;
        if !url.starts_with("http://") {
            return Err(format!(
                "`{url}`: only http:// witness URLs are supported (put a TLS-terminating proxy on the witness's host for https)"
            ));
        }
        Ok(WitnessTarget {
            url: url.trim_end_matches('/').to_string(),
            verifier: CosignatureVerifier::parse(vkey)?,
        })
    }
}

/// What the pusher needs of the kernel: to append a record (false: the kernel is gone).
pub type Record = Box<dyn Fn(RecordEvent) -> bool + Send>;

/// Starts the pusher thread for recorder dir `dir`.
pub fn start(dir: PathBuf, targets: Vec<WitnessTarget>, record: Record) {
    if targets.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("witnesses".into())
        .spawn(move || run(&dir, targets, record));
}

struct State {
    target: WitnessTarget,
    /// The size the witness last cosigned, as far as we know (None: ask with `old 0`).
    size: Option<u64>,
}

fn run(dir: &Path, targets: Vec<WitnessTarget>, record: Record) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build(),
    );
    let mut ws: Vec<State> = targets
        .into_iter()
        .map(|target| State { target, size: None })
        .collect();
    let mut last: u64 = 0;
    let mut own: u64 = 0;
    let mut last_note = Vec::new();
    loop {
        std::thread::sleep(POLL);
        let Ok(note) = std::fs::read(dir.join(tlog::CHECKPOINT_FILE)) else {
            continue;
        };
        if note == last_note {
            continue;
        }
        last_note = note.clone();
        let Some((size, root)) = parse(&note) else {
            continue;
        };
        if size <= last || (last > 0 && size == last + own) {
            if size > last {
                last = size;
                own = 0;
            }
            continue;
        }
        last = size;
        own = 0;
        let mut lines = String::new();
        for w in &mut ws {
            let outcome = push(&agent, dir, w, &note, (size, root));
            let event = match outcome {
                Ok(l) => {
                    lines.push_str(&l);
                    RecordEvent::WitnessCosigned {
                        witness: w.target.verifier.name.clone(),
                        size,
                    }
                }
                Err(why) => {
                    tracing::warn!(witness = %w.target.verifier.name, size, %why, "witness did not cosign the checkpoint");
                    RecordEvent::WitnessFailed {
                        witness: w.target.verifier.name.clone(),
                        size,
                        why,
                    }
                }
            };
            if !record(event) {
                return;
            }
            own += 1;
        }
        if !lines.is_empty() {
            let cosigned = witness::with_lines(&note, &lines);
            if let Err(e) = witness::write_atomic(&dir.join(WITNESSED_FILE), &cosigned) {
                tracing::warn!(error = %e, "cannot write recorder/{WITNESSED_FILE}");
            }
        }
    }
}

fn parse(note: &[u8]) -> Option<(u64, Hash)> {
    let n = signed_note::Note::from_bytes(note).ok()?;
    let c = tlog_tiles::Checkpoint::from_bytes(n.text()).ok()?;
    Some((c.size(), *c.hash()))
}

/// Submits the checkpoint to one witness: its verified cosignature lines, or why not.
fn push(
    agent: &ureq::Agent,
    dir: &Path,
    w: &mut State,
    note: &[u8],
    (size, root): (u64, Hash),
) -> Result<String, String> {
    let url = format!("{}/add-checkpoint", w.target.url);
    let mut why = String::new();
    let mut tries = 0;
    let mut conflicts = 0;
    while tries < ATTEMPTS {
        tries += 1;
        let old = w.size.unwrap_or(0).min(size);
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            // From the tiles the note covers (a few files, checked against its root), not
            // the whole log.
            tlog::prove_consistency_from_tiles(dir, size, root, old)
                .map_err(|e| format!("no consistency proof from {old} to {size}: {e}"))?
        };
        let body = witness::add_body(old, &proof, note);
        let res = agent
            .post(&url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .send(&body[..]);
        let mut resp = match res {
            Ok(r) => r,
            Err(e) => {
                why = format!("{url}: {e}");
                std::thread::sleep(Duration::from_millis(200 << tries));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        match status {
            200 => {
                let cosigned = witness::with_lines(note, &text);
                let ok = witness::cosigned_by(&cosigned, std::slice::from_ref(&w.target.verifier))
                    .map_err(|e| format!("{url}: answered a bad cosignature: {e}"))?;
                if ok.is_empty() {
                    return Err(format!(
                        "{url}: answered no cosignature by `{}`",
                        w.target.verifier.name
                    ));
                }
                w.size = Some(size);
                let name = format!("— {} ", w.target.verifier.name);
                return Ok(text
                    .lines()
                    .filter(|l| l.starts_with(&name))
                    .map(|l| format!("{l}\n"))
                    .collect());
            }
            409 => {
                let have: Option<u64> = text.trim().parse().ok();
                match have {
                    Some(n) if n > size => {
                        return Err(format!(
                            "409: the witness already cosigned {n} records, more than this checkpoint's {size}: this log was rolled back, or another log has its origin"
                        ))
                    }
                    Some(n) if Some(n) != w.size && conflicts < 2 => {
                        w.size = Some(n);
                        conflicts += 1;
                        tries -= 1;
                        continue;
                    }
                    _ => return Err(format!("409 with `{}`", text.trim())),
                }
            }
            s if (400..500).contains(&s) => {
                return Err(format!("{s}: {}", text.trim()));
            }
            s => {
                why = format!("{s}: {}", text.trim());
                std::thread::sleep(Duration::from_millis(200 << tries));
            }
        }
    }
    Err(format!("after {ATTEMPTS} tries: {why}"))
}

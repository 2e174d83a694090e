//! The flight recorder: an append-only, blake3 hash-chained log of everything the kernel
//! decides (layout in [`format`]).
//!
//! Each [`Recorder::append`] writes one whole frame with a single `write` before it returns,
//! so a record is in the file (page cache) before the syscall it describes is answered and
//! survives the kernel being killed. Signed checkpoints, fsync modes and crash recovery of a
//! torn tail build on this format.

pub mod format;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use agentos_syscalls::AgentId;

use format::{segment_name, CHAIN_LEN, GENESIS, MAX_RECORD};
pub use format::{DecisionRecord, Record, RecordEvent};

/// A recorder step that failed.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot open recorder dir {path}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open segment {path}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write segment {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("record does not encode")]
    Encode(#[source] postcard::Error),
    #[error("{path}: record {seq} at byte {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        seq: u64,
        offset: u64,
        what: String,
    },
}

struct Writer {
    file: File,
    path: PathBuf,
    seq: u64,
    chain: [u8; 32],
    buf: Vec<u8>,
}

/// The kernel's recorder. Appends are serialized; each is one `write(2)`.
pub struct Recorder {
    dir: PathBuf,
    boot: Instant,
    writer: Mutex<Writer>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("dir", &self.dir).finish()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Segment numbers present in `dir`, ascending.
fn segments(dir: &Path) -> Result<Vec<u32>, RecorderError> {
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

impl Recorder {
    /// Opens the recorder in `dir`, continuing the chain of the existing log in a new segment.
    /// A log that does not verify is left untouched and the new segment restarts the chain;
    /// the error is returned beside the recorder so the kernel can report it.
    pub fn open(dir: &Path) -> Result<(Recorder, Option<RecorderError>), RecorderError> {
        std::fs::create_dir_all(dir).map_err(|source| RecorderError::Dir {
            path: dir.into(),
            source,
        })?;
        let existing = segments(dir)?;
        let (seq, chain, problem) = match read_log(dir) {
            Ok(records) => match records.last() {
                Some((rec, chain)) => (rec.seq + 1, *chain, None),
                None => (0, GENESIS, None),
            },
            Err(e) => (0, GENESIS, Some(e)),
        };
        let n = existing.last().map_or(1, |n| n + 1);
        let path = dir.join(segment_name(n));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|source| RecorderError::Open {
                path: path.clone(),
                source,
            })?;
        let writer = Writer {
            file,
            path,
            seq,
            chain,
            buf: Vec::with_capacity(4096),
        };
        Ok((
            Recorder {
                dir: dir.into(),
                boot: Instant::now(),
                writer: Mutex::new(writer),
            },
            problem,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record and returns its sequence number. The frame is in the file when this
    /// returns.
    pub fn append(&self, agent: Option<AgentId>, event: RecordEvent) -> Result<u64, RecorderError> {
        let mono_us = self.boot.elapsed().as_micros() as u64;
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let record = Record {
            seq: w.seq,
            wall_ms: now_ms(),
            mono_us,
            agent,
            event,
        };
        let Writer {
            buf,
            chain,
            file,
            path,
            seq,
        } = &mut *w;
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        let mut body_and_header =
            postcard::to_extend(&record, std::mem::take(buf)).map_err(RecorderError::Encode)?;
        let body_len = body_and_header.len() - 4;
        body_and_header[..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        let next = chain_next(chain, &body_and_header[4..]);
        body_and_header.extend_from_slice(&next);
        file.write_all(&body_and_header)
            .map_err(|source| RecorderError::Write {
                path: path.clone(),
                source,
            })?;
        *chain = next;
        *buf = body_and_header;
        let this = *seq;
        *seq += 1;
        Ok(this)
    }
}

fn chain_next(prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(body);
    *h.finalize().as_bytes()
}

/// Reads and verifies the whole log in `dir`: every record with the chain value after it.
/// The first frame that is cut short, does not decode, breaks the chain or the sequence is
/// reported with its segment, sequence number and byte offset.
pub fn read_log(dir: &Path) -> Result<Vec<(Record, [u8; 32])>, RecorderError> {
    let mut out = Vec::new();
    let mut chain = GENESIS;
    let mut expect_seq = 0u64;
    for n in segments(dir)? {
        let path = dir.join(segment_name(n));
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|source| RecorderError::Open {
                path: path.clone(),
                source,
            })?;
        let mut off = 0usize;
        while off < bytes.len() {
            let corrupt = |what: String| RecorderError::Corrupt {
                path: path.clone(),
                seq: expect_seq,
                offset: off as u64,
                what,
            };
            if bytes.len() - off < 4 {
                return Err(corrupt("frame header cut short".into()));
            }
            let mut len4 = [0u8; 4];
            len4.copy_from_slice(&bytes[off..off + 4]);
            let len = u32::from_le_bytes(len4);
            if len > MAX_RECORD {
                return Err(corrupt(format!("frame length {len} is over the limit")));
            }
            let body_end = off + 4 + len as usize;
            if body_end + CHAIN_LEN > bytes.len() {
                return Err(corrupt("frame cut short".into()));
            }
            let body = &bytes[off + 4..body_end];
            let next = chain_next(&chain, body);
            if next[..] != bytes[body_end..body_end + CHAIN_LEN] {
                return Err(corrupt(
                    "chain hash does not match (record changed, dropped or reordered)".into(),
                ));
            }
            let record: Record = postcard::from_bytes(body)
                .map_err(|e| corrupt(format!("record does not decode: {e}")))?;
            if record.seq != expect_seq {
                return Err(corrupt(format!(
                    "sequence number {} where {expect_seq} was expected",
                    record.seq
                )));
            }
            chain = next;
            expect_seq += 1;
            off = body_end + CHAIN_LEN;
            out.push((record, chain));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(r: &str) -> RecordEvent {
        RecordEvent::KernelStop { reason: r.into() }
    }

    #[test]
    fn append_read_and_continue_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, problem) = Recorder::open(dir.path()).unwrap();
        assert!(problem.is_none());
        assert_eq!(rec.append(None, stop("a")).unwrap(), 0);
        assert_eq!(rec.append(Some(AgentId(1)), stop("b")).unwrap(), 1);
        drop(rec);
        let (rec, _) = Recorder::open(dir.path()).unwrap();
        assert_eq!(rec.append(None, stop("c")).unwrap(), 2);
        let log = read_log(dir.path()).unwrap();
        let reasons: Vec<_> = log
            .iter()
            .map(|(r, _)| match &r.event {
                RecordEvent::KernelStop { reason } => reason.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(reasons, ["a", "b", "c"]);
        assert_eq!(segments(dir.path()).unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_flipped_byte_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = Recorder::open(dir.path()).unwrap();
        for r in ["one", "two", "three"] {
            rec.append(None, stop(r)).unwrap();
        }
        drop(rec);
        let path = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        let first_len = 4 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize + CHAIN_LEN;
        let target = first_len + 6;
        bytes[target] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        match read_log(dir.path()) {
            Err(RecorderError::Corrupt { seq, offset, .. }) => {
                assert_eq!(seq, 1);
                assert_eq!(offset, first_len as u64);
            }
            other => panic!("{other:?}"),
        }
    }
}

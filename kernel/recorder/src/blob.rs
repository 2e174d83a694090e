//! Large syscall payloads as content-addressed blobs.
//!
//! A [`RecordEvent::Syscall`] whose call or result carries a byte payload over
//! [`BLOB_THRESHOLD`] (a `Write`'s data, a `Read`'s `Data` reply, `Exec` stdin/stdout/stderr,
//! a `Send` or `Recv` payload, a `Call`'s params or result JSON) is written as
//! [`RecordEvent::SyscallBlobs`]: the same fields with those payloads emptied, plus one
//! [`BlobRef`] each (which field, blake3 digest, length). The bytes go to
//! `recorder/blobs/<hex digest>` before the record is written (fsynced before the segment's
//! fsync, in both durability modes), so a record never names a blob that is not on disk.
//!
//! The chain covers the digest; [`super::verify::scan`] checks that each referenced blob
//! exists and hashes to its digest (a missing or changed blob fails verification at that
//! record) and hands every reader the record with its payloads put back, as a plain
//! [`RecordEvent::Syscall`]. Identical payloads share one blob.

use std::io::Write;
use std::path::{Path, PathBuf};

use agentos_syscalls::{Errno, Reply, Syscall};
use serde::{Deserialize, Serialize};

use super::format::RecordEvent;

/// Payloads larger than this many bytes are stored as blobs.
pub const BLOB_THRESHOLD: usize = 4096;

/// The blobs dir under the recorder dir.
pub const BLOBS_DIR: &str = "blobs";

/// Which payload of a syscall record a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobSlot {
    /// `Write`/`WriteFd` data.
    CallData,
    /// `Exec` stdin.
    CallStdin,
    /// `Send` payload.
    CallPayload,
    /// `Call` params JSON.
    CallParams,
    /// A `Data` reply (`Read`, `ReadFd`).
    ReplyData,
    /// `Exec` stdout.
    ReplyStdout,
    /// `Exec` stderr.
    ReplyStderr,
    /// A `Recv`'s message payload.
    ReplyPayload,
    /// A `Call`'s result JSON.
    ReplyResult,
}

impl BlobSlot {
    /// A name for reports.
    pub fn describe(self) -> &'static str {
        match self {
            BlobSlot::CallData => "the call's data",
            BlobSlot::CallStdin => "the call's stdin",
            BlobSlot::CallPayload => "the call's payload",
            BlobSlot::CallParams => "the call's params",
            BlobSlot::ReplyData => "the reply's data",
            BlobSlot::ReplyStdout => "the reply's stdout",
            BlobSlot::ReplyStderr => "the reply's stderr",
            BlobSlot::ReplyPayload => "the reply's payload",
            BlobSlot::ReplyResult => "the reply's result",
        }
    }
}

/// One payload moved out of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub slot: BlobSlot,
    pub digest: [u8; 32],
    pub len: u64,
}

/// The path of the blob with `digest`.
pub fn blob_path(dir: &Path, digest: &[u8; 32]) -> PathBuf {
    dir.join(BLOBS_DIR).join(hex::encode(digest))
}

enum Slot<'a> {
    Bytes(&'a mut Vec<u8>),
    Text(&'a mut String),
}

impl Slot<'_> {
    fn len(&self) -> usize {
        match self {
            Slot::Bytes(b) => b.len(),
            Slot::Text(t) => t.len(),
        }
    }
}

/// Every payload slot of a call and its result.
fn slots<'a>(
    call: &'a mut Syscall,
    result: &'a mut Result<Reply, Errno>,
) -> Vec<(BlobSlot, Slot<'a>)> {
    let mut out = Vec::new();
    match call {
        Syscall::Write { data, .. } | Syscall::WriteFd { data, .. } => {
            out.push((BlobSlot::CallData, Slot::Bytes(data)));
        }
        Syscall::Exec { stdin, .. } => out.push((BlobSlot::CallStdin, Slot::Bytes(stdin))),
        Syscall::Send { payload, .. } => out.push((BlobSlot::CallPayload, Slot::Bytes(payload))),
        Syscall::Call { params_json, .. } => {
            out.push((BlobSlot::CallParams, Slot::Text(params_json)));
        }
        Syscall::Read { .. }
        | Syscall::Open { .. }
        | Syscall::Close { .. }
        | Syscall::List { .. }
        | Syscall::Stat { .. }
        | Syscall::Unlink { .. }
        | Syscall::Recv { .. }
        | Syscall::Signal { .. }
        | Syscall::CheckPolicy { .. }
        | Syscall::Checkpoint
        | Syscall::Exit { .. }
        | Syscall::ReadFd { .. }
        | Syscall::Rename { .. }
        | Syscall::ListTools => {}
    }
    match result {
        Ok(Reply::Data(d)) => out.push((BlobSlot::ReplyData, Slot::Bytes(d))),
        Ok(Reply::Exec(e)) => {
            out.push((BlobSlot::ReplyStdout, Slot::Bytes(&mut e.stdout)));
            out.push((BlobSlot::ReplyStderr, Slot::Bytes(&mut e.stderr)));
        }
        Ok(Reply::Message(m)) => out.push((BlobSlot::ReplyPayload, Slot::Bytes(&mut m.payload))),
        Ok(Reply::CallResult { result_json }) => {
            out.push((BlobSlot::ReplyResult, Slot::Text(result_json)));
        }
        Ok(
            Reply::Done
            | Reply::Written { .. }
            | Reply::Opened { .. }
            | Reply::Entries(_)
            | Reply::Stat(_)
            | Reply::Decision(_)
            | Reply::Checkpoint { .. }
            | Reply::Tools(_),
        )
        | Err(_) => {}
    }
    out
}

/// Calls `f` with the length of every payload slot of a call and its result: the same slots
/// as [`slots`], read without borrowing them mutably (cheap: no allocation): the call's
/// through [`Syscall::payload`], the reply's here. Both exhaustive, like `slots`, so a new
/// call or reply with a payload must be placed in each.
fn payload_lens(call: &Syscall, result: &Result<Reply, Errno>, mut f: impl FnMut(usize)) {
    if let Some(p) = call.payload() {
        f(p.len());
    }
    match result {
        Ok(Reply::Data(d)) => f(d.len()),
        Ok(Reply::Exec(e)) => {
            f(e.stdout.len());
            f(e.stderr.len());
        }
        Ok(Reply::Message(m)) => f(m.payload.len()),
        Ok(Reply::CallResult { result_json }) => f(result_json.len()),
        Ok(
            Reply::Done
            | Reply::Written { .. }
            | Reply::Opened { .. }
            | Reply::Entries(_)
            | Reply::Stat(_)
            | Reply::Decision(_)
            | Reply::Checkpoint { .. }
            | Reply::Tools(_),
        )
        | Err(_) => {}
    }
}

/// Whether `event` has a payload to move out (cheap: no allocation).
pub fn has_large(event: &RecordEvent) -> bool {
    large_bytes(event) > 0
}

/// Bytes of the payloads over the threshold in a `Syscall` event (what [`extract`] would
/// move to blobs).
pub fn large_bytes(event: &RecordEvent) -> u64 {
    let RecordEvent::Syscall { call, result, .. } = event else {
        return 0;
    };
    let mut bytes = 0;
    payload_lens(call, result, |n| {
        if n > BLOB_THRESHOLD {
            bytes += n as u64;
        }
    });
    bytes
}

/// The text a payload not kept is replaced by.
fn payload_summary(data: &[u8]) -> String {
    format!(
        "…[{} bytes, blake3 {}; not kept: over the agent's recorder share]",
        data.len(),
        blake3::hash(data).to_hex()
    )
}

/// For an agent over its recorder share: each payload over the threshold of a `Syscall`
/// event is replaced, in place, by its length and blake3 digest (as text), instead of being
/// stored as a blob. Any other event is returned as is.
pub fn summarize_payloads(event: RecordEvent) -> RecordEvent {
    let RecordEvent::Syscall {
        id,
        mut call,
        decision,
        mut result,
        duration_us,
    } = event
    else {
        return event;
    };
    for (_, payload) in slots(&mut call, &mut result) {
        if payload.len() <= BLOB_THRESHOLD {
            continue;
        }
        match payload {
            Slot::Bytes(b) => *b = payload_summary(b).into_bytes(),
            Slot::Text(t) => *t = payload_summary(t.as_bytes()),
        }
    }
    RecordEvent::Syscall {
        id,
        call,
        decision,
        result,
        duration_us,
    }
}

/// Moves every payload over the threshold out of a `Syscall` event: the event becomes
/// `SyscallBlobs`; returns it with the bytes of each blob, in the order of its refs. An event
/// without large payloads is returned as is, with no blobs.
pub fn extract(event: RecordEvent) -> (RecordEvent, Vec<Vec<u8>>) {
    if !has_large(&event) {
        return (event, Vec::new());
    }
    let RecordEvent::Syscall {
        id,
        mut call,
        decision,
        mut result,
        duration_us,
    } = event
    else {
        return (event, Vec::new());
    };
    let mut blobs = Vec::new();
    let mut bytes = Vec::new();
    for (slot, payload) in slots(&mut call, &mut result) {
        if payload.len() <= BLOB_THRESHOLD {
            continue;
        }
        let data = match payload {
            Slot::Bytes(b) => std::mem::take(b),
            Slot::Text(t) => std::mem::take(t).into_bytes(),
        };
        blobs.push(BlobRef {
            slot,
            digest: *blake3::hash(&data).as_bytes(),
            len: data.len() as u64,
        });
        bytes.push(data);
    }
    (
        RecordEvent::SyscallBlobs {
            id,
            call,
            decision,
            result,
            duration_us,
            blobs,
        },
        bytes,
    )
}

/// Writes one blob (unless a file of that name is there already) to a temp file renamed into
/// place; returns its path, to be fsynced before the record that names it, and whether it
/// was created now. A failed write leaves nothing behind (the temp file is removed).
pub fn store(dir: &Path, digest: &[u8; 32], data: &[u8]) -> std::io::Result<(PathBuf, bool)> {
    let path = blob_path(dir, digest);
    if path.exists() {
        return Ok((path, false));
    }
    let blobs = dir.join(BLOBS_DIR);
    std::fs::create_dir_all(&blobs)?;
    let tmp = blobs.join(format!(
        ".{}.tmp-{}",
        hex::encode(digest),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok((path, true))
}

/// Fsyncs written blobs and the blobs dir.
pub fn sync(dir: &Path, paths: &[PathBuf]) -> std::io::Result<()> {
    for p in paths {
        std::fs::File::open(p)?.sync_all()?;
    }
    if !paths.is_empty() {
        std::fs::File::open(dir.join(BLOBS_DIR))?.sync_all()?;
    }
    Ok(())
}

/// Loads the blobs a `SyscallBlobs` event names and returns the plain `Syscall` event with
/// its payloads put back; any other event is returned as is. The error says which blob is
/// missing or changed.
pub fn restore(dir: &Path, event: RecordEvent) -> Result<RecordEvent, String> {
    let RecordEvent::SyscallBlobs {
        id,
        mut call,
        decision,
        mut result,
        duration_us,
        blobs,
    } = event
    else {
        return Ok(event);
    };
    let mut loaded = Vec::with_capacity(blobs.len());
    for b in &blobs {
        let path = blob_path(dir, &b.digest);
        let what = |how: String| {
            format!(
                "blob {} ({}, {} bytes) {how}",
                hex::encode(b.digest),
                b.slot.describe(),
                b.len
            )
        };
        let data = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                what("is missing from recorder/blobs".into())
            } else {
                what(format!("cannot be read: {e}"))
            }
        })?;
        if data.len() as u64 != b.len || *blake3::hash(&data).as_bytes() != b.digest {
            return Err(what(format!(
                "was changed: it holds {} bytes that do not hash to its name",
                data.len()
            )));
        }
        loaded.push((b.slot, data));
    }
    for (slot, payload) in slots(&mut call, &mut result) {
        let Some(i) = loaded.iter().position(|(s, _)| *s == slot) else {
            continue;
        };
        let (_, data) = loaded.swap_remove(i);
        match payload {
            Slot::Bytes(b) => *b = data,
            Slot::Text(t) => {
                *t = String::from_utf8(data)
                    .map_err(|_| format!("blob for {} is not UTF-8 text", slot.describe()))?;
            }
        }
    }
    if let Some((slot, _)) = loaded.first() {
        return Err(format!(
            "the record names a blob for {}, which its syscall does not have",
            slot.describe()
        ));
    }
    Ok(RecordEvent::Syscall {
        id,
        call,
        decision,
        result,
        duration_us,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use agentos_syscalls::{Errno, Reply, Syscall, WriteMode};

    use super::*;
    use crate::format::DecisionRecord;

    fn syscall(call: Syscall, result: Result<Reply, Errno>) -> RecordEvent {
        RecordEvent::Syscall {
            id: 1,
            call,
            decision: DecisionRecord {
                allowed: true,
                policy_allowed: true,
                rule: String::new(),
                reason: String::new(),
                violation: false,
                mode: "strict".into(),
            },
            result,
            duration_us: 0,
        }
    }

    fn write(n: usize) -> Syscall {
        Syscall::Write {
            path: "/mem/working/x".into(),
            data: vec![7; n],
            mode: WriteMode::Truncate,
        }
    }

    /// `has_large` and `large_bytes` see the same slots `slots` moves out: only the payloads
    /// over the threshold count, in the call and in the reply.
    #[test]
    fn large_payloads_are_counted_in_calls_and_replies() {
        let over = BLOB_THRESHOLD + 1;
        let cases = [
            (syscall(write(BLOB_THRESHOLD), Ok(Reply::Done)), 0),
            (syscall(write(over), Ok(Reply::Written { bytes: 1 })), over),
            (
                syscall(
                    Syscall::Read {
                        path: "/p".into(),
                        offset: 0,
                        len: None,
                    },
                    Ok(Reply::Data(vec![0; over])),
                ),
                over,
            ),
            (
                syscall(write(over), Ok(Reply::Data(vec![0; 2 * over]))),
                3 * over,
            ),
            (
                syscall(write(over), Err(Errno::NotFound { what: "x".into() })),
                over,
            ),
            (
                RecordEvent::KernelStop {
                    reason: "x".repeat(over),
                },
                0,
            ),
        ];
        for (event, bytes) in cases {
            assert_eq!(large_bytes(&event), bytes as u64, "{event:?}");
            assert_eq!(has_large(&event), bytes > 0, "{event:?}");
        }
    }
}

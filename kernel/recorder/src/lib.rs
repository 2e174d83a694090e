//! agentos-recorder: the flight recorder — an append-only, blake3 hash-chained, ed25519-signed
//! log of everything the kernel decides (layout in [`format`](mod@format)).
//!
//! Its own crate so that the writer, the on-disk format and the verifier can be read and
//! tested without the kernel: it knows the ABI types it records (`agentos-syscalls`) and no
//! kernel type. The kernel re-exports it as `agentos_kernel::recorder`; `agentctl`'s
//! `recorder` commands read logs through it directly.
//!
//! Modules:
//! - this file: [`Recorder`] — open (verify, recover a torn tail, start a segment), the writer
//!   thread (group commit, checkpoints, `HEAD`, rollback and retry after a write error, the
//!   low-disk watermark), per-agent usage and shares; [`RecorderError`]; [`read_log`].
//! - [`format`](mod@format): the segment and frame layout (the byte diagram), the chain,
//!   [`Record`] and [`RecordEvent`], signed checkpoints and `HEAD`.
//! - [`blob`]: payloads over 4 KiB as content-addressed blobs, taken out of the record and put
//!   back for readers.
//! - [`bound`]: the one function that bounds an event so its body fits [`format::MAX_RECORD`].
//! - [`key`]: the ed25519 signing key (created `0600` on first open) and its key id.
//! - [`verify`]: [`scan`] — chain, CRCs, checkpoint signatures, blobs and `HEAD` checked, the
//!   first problem located (segment, record, byte offset) and classed ([`ProblemKind`]).
//! - [`tlog`]: the transparency log — an RFC 6962 Merkle tree over the records (leaf i = the
//!   bytes the chain covers for record i's frame), C2SP tlog-tiles hash tiles and entry bundles
//!   under `tile/`, and C2SP tlog-checkpoint signed notes (`checkpoint`, ed25519 with the
//!   recorder's key, origin `agentos/<hostname>/recorder`); proofs for `agentctl`.
//! - [`prune`]: retention that keeps proofs — whole old segments removed, the tree's hashes
//!   (`pruned.hashes`) and a manifest signed by the key (`pruned`) kept, so proofs for what
//!   remains verify and [`verify::scan`] starts the chain at the cut.
//!
//! Segments rotate by size and age ([`RecorderOptions::max_segment_bytes`],
//! [`RecorderOptions::max_segment_age`]): after a write the writer (or an inline appender)
//! fsyncs the segment and starts the next, its header continuing the chain. The signing key
//! rotates with [`Recorder::rotate_key`]: a [`RecordEvent::KeyRotated`] record signed by the
//! old key announces the new one, which signs everything after it; the verifier follows the
//! announcements from the first segment's key to `key.pub`.
//!
//! One writer thread owns the segment file. Appenders hand it records through a bounded
//! channel (a full queue blocks the appender: backpressure, never unbounded memory); it
//! drains whatever is queued, encodes the group, writes it with one `write` and — in
//! [`Durability::Always`] — one `fdatasync`, and only then tells each appender its sequence
//! number. In [`Durability::Batch`] the appender is told once the group is written (page
//! cache: it survives the kernel being killed) and the file is fsynced within
//! [`RecorderOptions::batch_interval`]. Every [`RecorderOptions::checkpoint_every`] records or
//! [`RecorderOptions::checkpoint_interval`], and when the recorder closes, it appends a signed
//! checkpoint and, once that is durable, replaces `HEAD` with it. A log's second checkpoint
//! is never written before `HEAD` exists (the first is fsynced and published first; an open
//! publishes the one checkpoint a killed kernel left without `HEAD`), so verification can read
//! checkpoints without `HEAD` as a deleted `HEAD`.
//!
//! The writer also keeps each record's Merkle leaf as it encodes it (a rollback cuts them back
//! with the records); where it publishes `HEAD` it hands the leaves up to that checkpoint to
//! the transparency log's publisher thread, which adds them to the tree and writes the new
//! tiles and entry bundles, then the signed C2SP checkpoint note (a seal returns once they
//! are written). [`Recorder::open`] rebuilds the tree from the segments (after a torn tail is
//! cut) and rewrites `tile/` and the note from it, so the published tree never covers bytes
//! the log no longer holds.
//!
//! On open, [`Recorder::open`] verifies the existing log ([`verify::scan`]): a torn tail of the
//! last segment (a crash mid-write) is copied aside, cut off and recorded as
//! [`RecordEvent::Recovery`]; a log that fails verification is never repaired: the new
//! segment's header names the break and [`RecordEvent::RecorderBroken`] records it.
//!
//! A syscall payload over 4 KiB goes to a content-addressed blob ([`blob`]) written before the
//! record naming it: fsynced at once in `always` mode, and before the segment's next fsync in
//! `batch` mode (a power cut within the batch interval may then lose a blob whose record the
//! page cache happened to write back first; a kernel kill loses neither).
//!
//! Every event is bounded before it is encoded ([`bound`]): agent-controlled strings over
//! 4 KiB are summarized by head, length and blake3, lists are capped, so every body fits
//! [`format::MAX_RECORD`] (1 MiB), the one limit the writer and the verifier share; the
//! writer refuses (error, nothing written) a body over it.
//!
//! A write or fsync error is not the end: the writer cuts the segment back to its last good
//! length (no partial frame is ever left), rolls the sequence and chain back to the last kept
//! record, deletes the blobs made since, and fails those appenders. It then retries every
//! [`RETRY_INTERVAL`] (on its own timer and on the next append); the first write that
//! succeeds is a [`RecordEvent::RecorderResumed`] record naming the gap and the records
//! refused in it, and the chain runs on unbroken. Meanwhile [`Recorder::admit`] refuses new
//! work, so the kernel performs nothing it cannot record.
//!
//! [`Recorder::admit`] also enforces the low-disk watermark
//! ([`RecorderOptions::min_free_bytes`]): the writer thread reads the free space of the
//! recorder dir's filesystem (`statvfs`) every [`RETRY_INTERVAL`]; below the watermark new
//! work is refused while the records of the refusals still fit.
//!
//! Each agent's records and blobs are counted ([`Recorder::usage`]); past its share
//! ([`RecorderOptions::share_bytes`]) [`Recorder::over_share`] reports it once (the kernel
//! ends it), and payloads that would take it past its share are summarized by length and
//! blake3 instead of stored as blobs, so an agent makes the recorder keep at most its share
//! plus one bounded record.
//!
//! Never: answer an appender before its record is written (and, in `always`, fsynced); write
//! `HEAD` ahead of what is durable; rewrite anything but a torn tail or a failed write's own
//! partial frame; answer an appender whose record was rolled back.
#![forbid(unsafe_code)]

pub mod blob;
pub mod bound;
pub mod format;
pub mod key;
pub mod prune;
mod publish;
pub mod tlog;
pub mod verify;
pub mod witness;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agentos_syscalls::AgentId;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use ed25519_dalek::{Signer, SigningKey};

use format::{
    checkpoint_message, push_frame, segment_name, Checkpoint, FrameMeta, Head, RecordBodyRef,
    SegmentHeader, TYPE_CHECKPOINT, TYPE_RECORD, VERSION,
};
pub use format::{DecisionRecord, Record, RecordEvent};
pub use verify::{scan, segments, ProblemKind, ScanOptions, Verification};

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
    #[error("cannot read or create the recorder key {path}")]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recorder key {path} is not 32 bytes; restore it from a backup (or move it away to start a new key, which old checkpoints will not verify against)")]
    KeyFormat { path: PathBuf },
    #[error("cannot recover the torn tail of {path}")]
    Recover {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the recorder's writer thread")]
    Thread(#[source] std::io::Error),
    #[error("the recorder cannot write: {what}; nothing is performed unrecorded meanwhile (free space on the disk under the state dir: the recorder retries every 100 ms and resumes by itself)")]
    Writer { what: String },
    #[error("the recorder is closed")]
    Closed,
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

/// When an appended record is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The appender returns once its record's group is fsynced (group commit): nothing an
    /// agent saw answered is lost even to a power cut, at the cost of an fsync in every
    /// lone syscall's round trip.
    Always,
    /// The appender returns once its record is written (it survives the kernel being killed);
    /// fsync follows within [`RecorderOptions::batch_interval`]. The default, so that a
    /// syscall's round trip stays within its budget (DESIGN §10); choose `always` where a
    /// power cut must not lose the last interval.
    #[default]
    Batch,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Durability::Always),
            "batch" => Ok(Durability::Batch),
            other => Err(format!(
                "unknown durability `{other}`; use `always` or `batch`"
            )),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Always => "always",
            Durability::Batch => "batch",
        })
    }
}

/// How the recorder writes.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    pub durability: Durability,
    /// The longest a written record waits for its fsync in `batch` mode.
    pub batch_interval: Duration,
    /// A signed checkpoint after this many records…
    pub checkpoint_every: u64,
    /// …or this long after the last one, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Records the appenders may queue ahead of the writer.
    pub queue: usize,
    /// The low-disk watermark: [`Recorder::admit`] refuses new work while the filesystem of
    /// the recorder dir has fewer free bytes (0: no watermark). `--min-free-bytes`.
    pub min_free_bytes: u64,
    /// Each agent's share of the recorder: bytes of the records (and blobs) it causes, after
    /// which [`Recorder::over_share`] reports it once (the kernel ends it). 0: no share.
    /// `--recorder-share-bytes`.
    pub share_bytes: u64,
    /// Segment rotation: a new segment starts once the current one holds more bytes than
    /// this (0: no size limit). `--recorder-segment-bytes`.
    pub max_segment_bytes: u64,
    /// …or is older than this (zero: no age limit). `--recorder-segment-age`.
    pub max_segment_age: Duration,
    /// Told how long each fsync of the log took (the kernel's metrics); called on the
    /// writer's thread, so it must be quick and never block.
    pub on_fsync: Option<FsyncObserver>,
    /// Whether the writer keeps the records' leaves and publishes the transparency log's
    /// tiles and notes as it goes ([`tlog`]). Always on in the kernel (no flag turns it off);
    /// off only in the bench that measures what it costs beside the recorder without it. The
    /// open still rewrites `tile/` and the note from the segments.
    pub transparency_log: bool,
}

/// A callback told each fsync's duration ([`RecorderOptions::on_fsync`]).
#[derive(Clone)]
pub struct FsyncObserver(pub Arc<dyn Fn(Duration) + Send + Sync>);

impl std::fmt::Debug for FsyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsyncObserver")
    }
}

/// What the recorder has written since it opened ([`Recorder::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecorderStats {
    /// Records appended (checkpoints not counted).
    pub records: u64,
    /// Bytes written to the log's segments (records and checkpoints).
    pub bytes: u64,
    /// When the last signed checkpoint was written, ms since the Unix epoch (0: none yet).
    pub last_checkpoint_ms: u64,
    /// Whether the writer is failing now (it cannot write; new work is refused).
    pub failing: bool,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            batch_interval: Duration::from_millis(50),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_millis(1000),
            queue: 4096,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            share_bytes: DEFAULT_SHARE_BYTES,
            max_segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_segment_age: Duration::ZERO,
            on_fsync: None,
            transparency_log: true,
        }
    }
}

/// The default low-disk watermark (`--min-free-bytes`): 256 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 << 20;

/// The default largest segment (`--recorder-segment-bytes`): 64 MiB. Retention
/// (`agentctl recorder prune`) removes whole segments, so this is its granularity.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// The default per-agent recorder share (`--recorder-share-bytes`): 256 MiB.
pub const DEFAULT_SHARE_BYTES: u64 = 256 << 20;

/// After a write error, how often the writer tries to write again; also how often it reads
/// the free space of the recorder's filesystem (the watermark).
pub const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// Why [`Recorder::admit`] refuses new work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The recorder's filesystem has `free` bytes, below the watermark `min`.
    LowDisk { free: u64, min: u64 },
    /// The recorder cannot write since `since_ms`.
    Failed { what: String, since_ms: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::LowDisk { free, min } => write!(
                f,
                "the host disk under STATE_DIR has {free} bytes free, below the kernel's low-disk watermark of {min}; the call was not performed: free space on that disk (or start the kernel with a lower --min-free-bytes) and retry"
            ),
            Refusal::Failed { what, since_ms } => write!(
                f,
                "the flight recorder cannot write ({what}; since {since_ms}, ms since the Unix epoch); the call was not performed: free space on the disk under STATE_DIR and retry (the recorder resumes by itself)"
            ),
        }
    }
}

/// What appenders and [`Recorder::admit`] read without the writer's lock.
#[derive(Debug, Default)]
struct Health {
    /// False while the writer cannot write.
    failed: AtomicBool,
    /// The failure's first error and time, while `failed`.
    failure: Mutex<Option<(String, u64)>>,
    /// Free bytes of the recorder dir's filesystem at the last look (`u64::MAX`: unknown).
    free: AtomicU64,
    min_free: u64,
    share: u64,
    /// Bytes of records and blobs each agent caused, and whether it was reported over its
    /// share.
    usage: Mutex<HashMap<AgentId, (u64, bool)>>,
    /// [`RecorderStats`]: records appended, bytes written, the last checkpoint's time.
    records: AtomicU64,
    bytes: AtomicU64,
    last_checkpoint_ms: AtomicU64,
}

impl Health {
    fn refresh_free(&self, dir: &Path) {
        if self.min_free == 0 {
            return;
        }
        match rustix::fs::statvfs(dir) {
            Ok(st) => {
                let free = st.f_bavail.saturating_mul(st.f_frsize);
                self.free.store(free, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "flight recorder: cannot read the free space of the state dir's filesystem");
            }
        }
    }

    /// Whether `bytes` more of blobs would take `agent` over its share (its payloads are then
    /// summarized instead).
    fn would_exceed(&self, agent: Option<AgentId>, bytes: u64) -> bool {
        let (Some(a), true) = (agent, self.share > 0) else {
            return false;
        };
        let u = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        u.get(&a).map_or(0, |e| e.0).saturating_add(bytes) > self.share
    }

    fn charge(&self, agent: Option<AgentId>, bytes: u64) {
        if let (Some(a), true) = (agent, self.share > 0) {
            let mut u = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
            let e = u.entry(a).or_insert((0, false));
            e.0 = e.0.saturating_add(bytes);
        }
    }
}

/// The most records written in one group.
const MAX_GROUP: usize = 1024;

/// Under load, how long the writer waits for the next record before writing a `batch` group.
const GATHER_BATCH: Duration = Duration::from_micros(5);

/// Under load, the longest the writer gathers an `always` group before its fsync: half the
/// last fsync's duration, within these bounds (gathering pays while it is cheaper than the
/// fsync it saves).
const GATHER_ALWAYS: (Duration, Duration) = (Duration::from_micros(50), Duration::from_millis(2));

type Outcome = Result<u64, String>;

enum Done {
    Sync(Sender<Outcome>),
    Async(tokio::sync::oneshot::Sender<Outcome>),
}

impl Done {
    fn send(self, o: Outcome) {
        match self {
            Done::Sync(tx) => {
                let _ = tx.send(o);
            }
            Done::Async(tx) => {
                let _ = tx.send(o);
            }
        }
    }
}

// Appends are the common message; boxing them would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Append {
        agent: Option<AgentId>,
        event: RecordEvent,
        done: Done,
    },
    /// Write, checkpoint and fsync everything so far; `stop` ends the writer.
    Seal { done: Done, stop: bool },
}

/// A record on its way to the log; [`Ticket::wait`] returns its sequence number once it is as
/// durable as the recorder's mode promises.
#[derive(Debug)]
pub struct Ticket(Receiver<Outcome>);

impl Ticket {
    pub fn wait(self) -> Result<u64, RecorderError> {
        match self.0.recv() {
            Ok(o) => o.map_err(|what| RecorderError::Writer { what }),
            Err(_) => Err(RecorderError::Closed),
        }
    }
}

/// The kernel's recorder.
pub struct Recorder {
    dir: PathBuf,
    durability: Durability,
    /// The writer's state. In `batch` mode appenders write through it inline (one `write(2)`
    /// each, no thread hand-off); the thread fsyncs, checkpoints and publishes `HEAD`.
    shared: Arc<Mutex<Writer>>,
    health: Arc<Health>,
    tx: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What [`Recorder::open`] found in the existing log.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// A torn tail that was cut off (and recorded).
    pub recovered: Option<verify::TornTail>,
    /// The log failed verification (recorded; never repaired).
    pub broken: Option<verify::Problem>,
}

impl Recorder {
    /// Opens the recorder in `dir` with default options (see [`Recorder::open_with`]).
    pub fn open(dir: &Path) -> Result<(Recorder, Option<RecorderError>), RecorderError> {
        let (rec, report) = Self::open_with(dir, RecorderOptions::default())?;
        let problem = report.broken.map(|p| RecorderError::Corrupt {
            path: dir.join(segment_name(p.segment)),
            seq: p.seq,
            offset: p.offset,
            what: p.what,
        });
        Ok((rec, problem))
    }

    /// Opens the recorder in `dir`: loads (or creates) the key, verifies the existing log,
    /// recovers a torn tail, and starts a new segment continuing the chain.
    pub fn open_with(
        dir: &Path,
        opts: RecorderOptions,
    ) -> Result<(Recorder, OpenReport), RecorderError> {
        std::fs::create_dir_all(dir).map_err(|source| RecorderError::Dir {
            path: dir.into(),
            source,
        })?;
        finish_rotation(dir)?;
        let key = key::load_or_create(dir)?;
        let key_id = key::key_id(&key.verifying_key());
        let existing = segments(dir)?;
        let v = scan(dir, ScanOptions { signatures: true }, |_, _| {})?;
        let mut report = OpenReport::default();
        let mut pending: Vec<(Option<AgentId>, RecordEvent)> = Vec::new();
        let (mut break_segment, mut break_offset) = (0, 0);
        if let Some(p) = &v.problem {
            tracing::error!(
                segment = p.segment, seq = p.seq, offset = p.offset, what = %p.what,
                "the flight recorder log fails verification; it is kept as is (never repaired) and a new segment starts after the break; inspect it with `agentctl recorder verify`"
            );
            break_segment = p.segment;
            break_offset = p.offset;
            pending.push((
                None,
                RecordEvent::RecorderBroken {
                    segment: p.segment,
                    offset: p.offset,
                    seq: p.seq,
                    what: p.what.clone(),
                },
            ));
            report.broken = Some(p.clone());
        } else if let Some(t) = &v.torn_tail {
            recover_torn(dir, t)?;
            tracing::warn!(
                segment = t.segment,
                offset = t.offset,
                bytes = t.bytes,
                "flight recorder: cut a torn tail off the last segment (a crash mid-write); the bytes are kept beside it"
            );
            pending.push((
                None,
                RecordEvent::Recovery {
                    segment: t.segment,
                    offset: t.offset,
                    bytes_dropped: t.bytes,
                },
            ));
            report.recovered = Some(t.clone());
        }
        // A kernel killed after the log's first checkpoint was written but before `HEAD` was
        // left a checkpoint no `HEAD` names: `HEAD` is written for it now (its segment fsynced
        // first), before this life can add a second checkpoint — a log with two checkpoints
        // and no `HEAD` is one whose `HEAD` was deleted.
        let mut head_on_disk = v.head.is_some();
        if let (None, None, Some(head)) = (&v.problem, &v.head, &v.last_checkpoint) {
            let segment = dir.join(segment_name(head.segment));
            match std::fs::File::open(&segment)
                .and_then(|f| f.sync_all())
                .and_then(|()| write_head(dir, head))
            {
                Ok(()) => head_on_disk = true,
                Err(e) => {
                    tracing::warn!(error = %e, "flight recorder: cannot write recorder/HEAD for the checkpoint the last run left; retried at this run's first checkpoint")
                }
            }
        }
        // The transparency log: the tree rebuilt from what the log holds now (after a torn
        // tail is cut), `tile/` rewritten from it, and a checkpoint for it signed.
        let origin = tlog::origin(dir)?;
        let (tree, bundle_base, bundle) = tlog::rebuild(dir)?;
        if let Ok(note) = tlog::sign_checkpoint(&origin, tree.size(), &tree.root(), &key) {
            if let Err(e) = tlog::write_checkpoint(dir, &note) {
                tracing::warn!(error = %e, "flight recorder: cannot write recorder/checkpoint");
            }
        }
        let leaves_from = tree.size();
        let publisher = publish::Publisher::start(dir.into(), origin, tree, bundle_base, bundle)
            .map_err(RecorderError::Thread)?;
        let log_id = match v.raw_log_id {
            Some(id) => id,
            None => key::random_bytes::<16>()?,
        };
        let n = existing.last().map_or(1, |n| n + 1);
        let path = dir.join(segment_name(n));
        let header = SegmentHeader {
            version: VERSION,
            flags: format::FLAG_BOUNDED,
            log_id,
            key_id,
            prev_chain: v.chain,
            start_seq: v.records,
            break_segment,
            break_offset,
        };
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|source| RecorderError::Open {
                path: path.clone(),
                source,
            })?;
        let werr = |source| RecorderError::Write {
            path: path.clone(),
            source,
        };
        file.write_all(&header.encode()).map_err(werr)?;
        file.sync_all().map_err(werr)?;
        sync_dir(dir);
        let health = Arc::new(Health {
            free: AtomicU64::new(u64::MAX),
            min_free: opts.min_free_bytes,
            share: opts.share_bytes,
            ..Health::default()
        });
        health.refresh_free(dir);
        let writer = Writer {
            len: format::HEADER_LEN as u64,
            good: Mark {
                len: format::HEADER_LEN as u64,
                seq: v.records,
                chain: v.chain,
                since_checkpoint: 0,
            },
            new_blobs: Vec::new(),
            rollbacks: 0,
            health: Arc::clone(&health),
            last_statvfs: Instant::now(),
            dir: dir.into(),
            file,
            path,
            segment: n,
            segment_started: Instant::now(),
            seq: v.records,
            chain: v.chain,
            buf: Vec::with_capacity(64 << 10),
            body: Vec::with_capacity(1024),
            key,
            log_id,
            key_id,
            durability: opts.durability,
            boot: Instant::now(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            dirty_since: None,
            pending_head: if head_on_disk || v.problem.is_some() {
                None
            } else {
                v.last_checkpoint.clone()
            },
            head_on_disk,
            failed: None,
            last_fsync: Duration::ZERO,
            last_head: None,
            opts: opts.clone(),
            closed: false,
            unsynced_blobs: Vec::new(),
            leaves: tlog::Leaves::default(),
            leaves_from,
            publisher,
            pending_note: None,
            to_publish: Vec::new(),
        };
        let shared = Arc::new(Mutex::new(writer));
        let (tx, rx) = crossbeam_channel::bounded(opts.queue.max(1));
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || Writer::run(&for_thread, rx))
            .map_err(RecorderError::Thread)?;
        let rec = Recorder {
            dir: dir.into(),
            durability: opts.durability,
            shared,
            health,
            tx,
            thread: Mutex::new(Some(thread)),
        };
        for (agent, event) in pending {
            rec.append(agent, event)?;
        }
        Ok((rec, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Whether new work may start: the recorder can write and its filesystem is above the
    /// low-disk watermark. Cheap (atomics; the writer thread refreshes the free space every
    /// [`RETRY_INTERVAL`]).
    pub fn admit(&self) -> Result<(), Refusal> {
        if self.health.failed.load(Ordering::Acquire) {
            let f = self
                .health
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some((what, since_ms)) = f {
                return Err(Refusal::Failed { what, since_ms });
            }
        }
        let free = self.health.free.load(Ordering::Relaxed);
        if free < self.health.min_free {
            return Err(Refusal::LowDisk {
                free,
                min: self.health.min_free,
            });
        }
        Ok(())
    }

    /// What the recorder has written since it opened, and whether it is failing now.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            records: self.health.records.load(Ordering::Relaxed),
            bytes: self.health.bytes.load(Ordering::Relaxed),
            last_checkpoint_ms: self.health.last_checkpoint_ms.load(Ordering::Relaxed),
            failing: self.health.failed.load(Ordering::Acquire),
        }
    }

    /// Bytes of records and blobs `agent` caused so far.
    pub fn usage(&self, agent: AgentId) -> u64 {
        let u = self
            .health
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        u.get(&agent).map_or(0, |e| e.0)
    }

    /// `Some((used, share))` the first time `agent` is found over its share of the recorder
    /// ([`RecorderOptions::share_bytes`]); `None` before, and after that first time.
    pub fn over_share(&self, agent: AgentId) -> Option<(u64, u64)> {
        let share = self.health.share;
        if share == 0 {
            return None;
        }
        let mut u = self
            .health
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let e = u.get_mut(&agent)?;
        if e.0 > share && !e.1 {
            e.1 = true;
            return Some((e.0, share));
        }
        None
    }

    /// Forgets an ended agent's usage (after its last record).
    pub fn forget(&self, agent: AgentId) {
        let mut u = self
            .health
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        u.remove(&agent);
    }

    /// Queues one record (blocking while the queue is full).
    pub fn submit(
        &self,
        agent: Option<AgentId>,
        event: RecordEvent,
    ) -> Result<Ticket, RecorderError> {
        let mut event = event;
        bound::bound(&mut event);
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Msg::Append {
                agent,
                event,
                done: Done::Sync(tx),
            })
            .map_err(|_| RecorderError::Closed)?;
        Ok(Ticket(rx))
    }

    /// Appends one record and returns its sequence number once it is written (and, in
    /// `always` mode, fsynced).
    pub fn append(&self, agent: Option<AgentId>, event: RecordEvent) -> Result<u64, RecorderError> {
        match self.durability {
            Durability::Batch => self.append_inline(agent, event),
            Durability::Always => self.submit(agent, event)?.wait(),
        }
    }

    /// `batch` mode: encode, chain and write the record on the caller's thread, under the
    /// writer's lock (the sequence stays one total order). The record is in the file — it
    /// survives the kernel being killed — when this returns; the writer thread fsyncs it
    /// within the batch interval.
    fn append_inline(
        &self,
        agent: Option<AgentId>,
        event: RecordEvent,
    ) -> Result<u64, RecorderError> {
        let mut event = event;
        bound::bound(&mut event);
        let mut w = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if w.closed {
            return Err(RecorderError::Closed);
        }
        let epoch = w.rollbacks;
        let outcome = w.encode(agent, event);
        if w.since_checkpoint >= w.opts.checkpoint_every {
            w.checkpoint();
        }
        w.flush();
        // Past the segment's size or age: rotate now (one fsync on this append) rather than
        // at the writer's next tick, so a segment passes its limit by at most a record.
        let answer = w.outcome(epoch, outcome);
        if w.rotation_due() {
            w.rotate();
        }
        answer.map_err(|what| RecorderError::Writer { what })
    }

    /// [`Recorder::append`] for async callers: waits without blocking the runtime (the queue
    /// being full still blocks briefly: backpressure).
    pub async fn append_async(
        &self,
        agent: Option<AgentId>,
        event: RecordEvent,
    ) -> Result<u64, RecorderError> {
        if self.durability == Durability::Batch {
            return self.append_inline(agent, event);
        }
        // Boxed: the wait for the writer thread is `always`'s alone, and would otherwise
        // size the future of every call in `batch` too.
        Box::pin(self.append_queued(agent, event)).await
    }

    /// `always` mode's half of [`Recorder::append_async`]: queued for the writer thread,
    /// answered once fsynced.
    async fn append_queued(
        &self,
        agent: Option<AgentId>,
        event: RecordEvent,
    ) -> Result<u64, RecorderError> {
        let mut event = event;
        bound::bound(&mut event);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let msg = Msg::Append {
            agent,
            event,
            done: Done::Async(tx),
        };
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                let sent = tokio::task::spawn_blocking(move || tx.send(msg).is_ok())
                    .await
                    .unwrap_or(false);
                if !sent {
                    return Err(RecorderError::Closed);
                }
            }
            Err(TrySendError::Disconnected(_)) => return Err(RecorderError::Closed),
        }
        match rx.await {
            Ok(o) => o.map_err(|what| RecorderError::Writer { what }),
            Err(_) => Err(RecorderError::Closed),
        }
    }

    /// Writes a signed checkpoint and fsyncs everything so far (and `HEAD`).
    pub fn seal(&self) -> Result<(), RecorderError> {
        self.seal_inner(false)
    }

    fn seal_inner(&self, stop: bool) -> Result<(), RecorderError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Msg::Seal {
                done: Done::Sync(tx),
                stop,
            })
            .map_err(|_| RecorderError::Closed)?;
        Ticket(rx).wait().map(|_| ())
    }

    /// Rotates the signing key: a new key (`key.new`, 0600) is announced in a
    /// [`RecordEvent::KeyRotated`] record signed by the old key, fsynced; then it becomes
    /// `key` (the old public key appended to `key.history`, `key.pub` replaced) and a
    /// checkpoint, `HEAD` and the checkpoint note are signed with it. Returns the new key id.
    /// A crash between the announcement and the rename is finished by the next open.
    pub fn rotate_key(&self) -> Result<[u8; 8], RecorderError> {
        self.seal()?;
        let next = key::create_next(&self.dir)?;
        let mut w = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if w.closed {
            return Err(RecorderError::Closed);
        }
        let old = w.key.verifying_key();
        let new_public = next.verifying_key().to_bytes();
        let msg = format::key_rotation_message(&w.log_id, w.seq, old.as_bytes(), &new_public);
        let signature = w.key.sign(&msg).to_bytes();
        let epoch = w.rollbacks;
        let o = w.encode(
            None,
            RecordEvent::KeyRotated {
                old_public: old.to_bytes(),
                new_public,
                signature,
            },
        );
        w.flush();
        w.dirty_since.get_or_insert_with(Instant::now);
        w.sync(false);
        if let Err(what) = w.outcome(epoch, o) {
            drop(w);
            let _ = std::fs::remove_file(self.dir.join(key::NEW_KEY_FILE));
            return Err(RecorderError::Writer { what });
        }
        let next = key::commit_next(&self.dir, &old)?;
        w.key_id = key::key_id(&next.verifying_key());
        w.key = next;
        w.checkpoint();
        w.flush();
        w.sync(true);
        let jobs = std::mem::take(&mut w.to_publish);
        let id = w.key_id;
        let publisher = w.publisher.clone();
        drop(w);
        publisher.send(jobs, true);
        Ok(id)
    }

    /// Seals the log and stops the writer; later appends fail with [`RecorderError::Closed`].
    pub fn close(&self) -> Result<(), RecorderError> {
        let r = self.seal_inner(true);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        match r {
            Err(RecorderError::Closed) => Ok(()),
            other => other,
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "flight recorder: closing failed");
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Copies a torn tail aside (`segment-N.log.torn-<ms>`) and cuts it off the segment.
fn recover_torn(dir: &Path, t: &verify::TornTail) -> Result<(), RecorderError> {
    use std::io::{Read, Seek, SeekFrom};
    let path = dir.join(segment_name(t.segment));
    let err = |source| RecorderError::Recover {
        path: path.clone(),
        source,
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(err)?;
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(t.offset)).map_err(err)?;
    f.read_to_end(&mut tail).map_err(err)?;
    let aside = dir.join(format!("{}.torn-{}", segment_name(t.segment), now_ms()));
    let mut a = File::create(&aside).map_err(err)?;
    a.write_all(&tail).map_err(err)?;
    a.sync_all().map_err(err)?;
    f.set_len(t.offset).map_err(err)?;
    f.sync_all().map_err(err)?;
    sync_dir(dir);
    Ok(())
}

/// Where the log stood after the last write that is kept: in `batch` mode the last
/// successful `write`, in `always` mode the last successful fsync.
#[derive(Debug, Clone, Copy)]
struct Mark {
    len: u64,
    seq: u64,
    chain: [u8; 32],
    since_checkpoint: u64,
}

/// The writer cannot write.
#[derive(Debug)]
struct Failure {
    what: String,
    at_ms: u64,
    /// Records refused (or rolled back) since.
    refused: u64,
    last_try: Instant,
    /// The segment could not be cut back to the last good length: do that before writing.
    cut_pending: bool,
}

struct Writer {
    /// Bytes of the segment file as this writer wrote it.
    len: u64,
    /// What a failed write or fsync rolls back to.
    good: Mark,
    /// Blobs created since `good` (deleted when rolled back).
    new_blobs: Vec<PathBuf>,
    /// Rollbacks so far: an appender whose record was encoded before a rollback fails.
    rollbacks: u64,
    health: Arc<Health>,
    last_statvfs: Instant,
    dir: PathBuf,
    file: File,
    path: PathBuf,
    segment: u32,
    seq: u64,
    chain: [u8; 32],
    buf: Vec<u8>,
    body: Vec<u8>,
    key: SigningKey,
    log_id: [u8; 16],
    key_id: [u8; 8],
    /// When the current segment started (its age for rotation).
    segment_started: Instant,
    durability: Durability,
    boot: Instant,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// The oldest write not yet fsynced.
    dirty_since: Option<Instant>,
    /// A checkpoint to publish in `HEAD` once it is fsynced.
    pending_head: Option<Head>,
    /// Whether `recorder/HEAD` exists: until it does, a checkpoint is published before the
    /// next one is written.
    head_on_disk: bool,
    /// Set after an I/O error: appends fail until a retry writes again.
    failed: Option<Failure>,
    /// When `HEAD` was last written (`None`: not yet by this writer).
    last_head: Option<Instant>,
    /// How long the last `fdatasync` took.
    last_fsync: Duration,
    opts: RecorderOptions,
    /// Set when the writer thread has sealed the log for good; inline appends then fail.
    closed: bool,
    /// Blobs written in `batch` mode, fsynced before the segment's next fsync.
    unsynced_blobs: Vec<PathBuf>,
    /// The leaves ([`tlog`]) of the records from `leaves_from` on (up to `seq`), not yet
    /// handed to the publisher.
    leaves: tlog::Leaves,
    leaves_from: u64,
    /// The transparency log's publisher thread (the tree's frontier, tiles, bundles, notes);
    /// it ends when the writer is dropped.
    publisher: publish::Publisher,
    /// A checkpoint note to publish with `HEAD`: its tree size and the key to sign it with.
    pending_note: Option<(u64, SigningKey)>,
    /// Leaves and notes to hand to the publisher once the lock is released.
    to_publish: Vec<publish::Job>,
}

impl Writer {
    fn next_deadline(&self) -> Option<Instant> {
        let fsync = match self.durability {
            Durability::Batch => self.dirty_since.map(|t| t + self.opts.batch_interval),
            Durability::Always => None,
        };
        let checkpoint = (self.since_checkpoint > 0)
            .then(|| self.last_checkpoint + self.opts.checkpoint_interval);
        // Retry after a failure; look at the free space for the watermark.
        let retry = match &self.failed {
            Some(f) => Some(f.last_try + RETRY_INTERVAL),
            None => (self.health.min_free > 0).then(|| self.last_statvfs + RETRY_INTERVAL),
        };
        [fsync, checkpoint, retry].into_iter().flatten().min()
    }

    fn run(shared: &Mutex<Writer>, rx: Receiver<Msg>) {
        let lock = || shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mut group: Vec<Msg> = Vec::with_capacity(MAX_GROUP);
        let mut waiters: Vec<(Done, Outcome)> = Vec::with_capacity(MAX_GROUP);
        let mut last_group = 0usize;
        loop {
            let deadline = {
                let w = lock();
                // Inline `batch` appends dirty the file without a message: wake up at least
                // once per batch interval to fsync them.
                let tick = (w.durability == Durability::Batch)
                    .then(|| Instant::now() + w.opts.batch_interval);
                match (w.next_deadline(), tick) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            let first = match deadline {
                Some(d) => match rx.recv_deadline(d) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                },
            };
            group.extend(first);
            let mut w = lock();
            if w.last_statvfs.elapsed() >= RETRY_INTERVAL {
                w.last_statvfs = Instant::now();
                w.health.refresh_free(&w.dir);
            }
            if w.failed.is_some() {
                w.try_resume();
            }
            w.gather(&rx, &mut group, last_group);
            last_group = group.len();
            let mut seal = false;
            let mut stop = false;
            let epoch = w.rollbacks;
            for msg in group.drain(..) {
                match msg {
                    Msg::Append { agent, event, done } => {
                        let o = w.encode(agent, event);
                        waiters.push((done, o));
                    }
                    Msg::Seal { done, stop: s } => {
                        seal = true;
                        stop |= s;
                        waiters.push((done, Ok(w.seq)));
                    }
                }
            }
            let due = w.since_checkpoint >= w.opts.checkpoint_every
                || (w.since_checkpoint > 0
                    && w.last_checkpoint.elapsed() >= w.opts.checkpoint_interval);
            if seal || due {
                w.checkpoint();
            }
            w.flush();
            let fsync = seal
                || w.durability == Durability::Always
                || w.dirty_since
                    .is_some_and(|t| t.elapsed() >= w.opts.batch_interval);
            if fsync {
                w.sync(seal);
            }
            if !stop && w.rotation_due() {
                w.rotate();
            }
            if stop {
                w.closed = true;
            }
            let jobs = std::mem::take(&mut w.to_publish);
            // A seal waits for the publisher even with nothing new: leaves handed over
            // earlier may still be in its queue.
            if jobs.is_empty() && !seal {
                for (done, o) in waiters.drain(..) {
                    done.send(w.outcome(epoch, o));
                }
            } else {
                // The leaves go to the publisher without the lock (appenders go on); a seal
                // is answered once they are published.
                let answers: Vec<(Done, Outcome)> = waiters
                    .drain(..)
                    .map(|(done, o)| (done, w.outcome(epoch, o)))
                    .collect();
                let publisher = w.publisher.clone();
                drop(w);
                publisher.send(jobs, seal);
                for (done, o) in answers {
                    done.send(o);
                }
            }
            if stop {
                return;
            }
        }
        let mut w = lock();
        w.checkpoint();
        w.flush();
        w.sync(true);
        w.closed = true;
        let jobs = std::mem::take(&mut w.to_publish);
        let publisher = w.publisher.clone();
        drop(w);
        publisher.send(jobs, true);
    }

    /// Drains what is queued into `group`. Under load (the last group had several records)
    /// it waits a little for more: a few µs in `batch` (fewer, larger writes), up to
    /// half an fsync in `always` (fewer fsyncs, each far longer than the wait). A lone
    /// appender (groups of one) never waits.
    fn gather(&self, rx: &Receiver<Msg>, group: &mut Vec<Msg>, last_group: usize) {
        let drain = |group: &mut Vec<Msg>| {
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(m) => group.push(m),
                    Err(_) => break,
                }
            }
        };
        drain(group);
        if group.is_empty() || last_group < 2 {
            return;
        }
        let (quiet, longest) = match self.durability {
            Durability::Batch => (GATHER_BATCH, GATHER_BATCH * 4),
            Durability::Always => {
                let longest = (self.last_fsync / 2).clamp(GATHER_ALWAYS.0, GATHER_ALWAYS.1);
                (longest / 4, longest)
            }
        };
        let start = Instant::now();
        let mut last_arrival = start;
        while group.len() < MAX_GROUP && start.elapsed() < longest {
            let before = group.len();
            drain(group);
            if group.len() > before {
                last_arrival = Instant::now();
            } else if last_arrival.elapsed() >= quiet {
                break;
            } else {
                std::hint::spin_loop();
                std::thread::yield_now();
            }
        }
    }

    /// An appender's outcome: its own error, or the failure if its record was rolled back
    /// (a rollback since `epoch`) or the writer is failed now.
    fn outcome(&self, epoch: u64, o: Outcome) -> Outcome {
        match &self.failed {
            Some(f) => Err(f.what.clone()),
            None if self.rollbacks != epoch => {
                Err("the record was rolled back after a write error".into())
            }
            None => o,
        }
    }

    fn encode(&mut self, agent: Option<AgentId>, event: RecordEvent) -> Outcome {
        if self.failed.is_some() && !self.try_resume() {
            if let Some(f) = &mut self.failed {
                f.refused += 1;
                return Err(f.what.clone());
            }
        }
        let (event, blob_bytes) = if blob::has_large(&event) {
            if self.health.would_exceed(agent, blob::large_bytes(&event)) {
                (blob::summarize_payloads(event), 0)
            } else {
                match self.store_blobs(event) {
                    Ok(x) => x,
                    Err(what) => {
                        if let Some(f) = &mut self.failed {
                            f.refused += 1;
                        }
                        return Err(what);
                    }
                }
            }
        } else {
            (event, 0)
        };
        let meta = FrameMeta {
            seq: self.seq,
            wall_ms: now_ms(),
            mono_us: self.boot.elapsed().as_micros() as u64,
        };
        self.body.clear();
        let record = RecordBodyRef {
            agent: &agent,
            event: &event,
        };
        let body = postcard::to_extend(&record, std::mem::take(&mut self.body))
            .map_err(|e| format!("record {} does not encode: {e}", meta.seq))?;
        if body.len() > format::MAX_RECORD as usize {
            // Never reached for a bounded event; refused rather than written unverifiable.
            let what = format!(
                "record {} encodes to {} bytes, over the recorder's limit of {}; it was not written",
                meta.seq,
                body.len(),
                format::MAX_RECORD
            );
            tracing::error!(%what, "flight recorder: refused an oversized record");
            self.body = body;
            return Err(what);
        }
        let start = self.buf.len();
        self.chain = push_frame(&mut self.buf, &self.chain, TYPE_RECORD, meta, &body);
        // The leaf: the frame's header and body, as the chain covers them.
        let leaf = &self.buf[start..self.buf.len() - format::CHAIN_LEN - 4];
        // What the transparency log keeps of it too: the leaf in its entry bundle (with its
        // length) and its hashes in the tiles (about one per record).
        let published = match self.opts.transparency_log {
            true => {
                self.leaves.push(leaf);
                (leaf.len() + 2 + 2 * 32) as u64
            }
            false => 0,
        };
        self.health.records.fetch_add(1, Ordering::Relaxed);
        self.health.charge(
            agent,
            (body.len() + format::FRAME_OVERHEAD) as u64 + blob_bytes + published,
        );
        self.body = body;
        self.seq += 1;
        self.since_checkpoint += 1;
        Ok(meta.seq)
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.len,
            seq: self.seq,
            chain: self.chain,
            since_checkpoint: self.since_checkpoint,
        }
    }

    /// What is written (and, in `always`, fsynced) is kept: the new rollback point.
    fn keep(&mut self) {
        self.good = self.mark();
        self.new_blobs.clear();
    }

    /// After a write or fsync error: cuts the segment back to the last good length (never a
    /// partial frame left), rolls the sequence and chain back to the last kept record,
    /// deletes the blobs created since, and fails until a retry writes again.
    fn fail(&mut self, what: String) {
        let now = now_ms();
        let rolled = self.seq.saturating_sub(self.good.seq);
        let cut = self.file.set_len(self.good.len);
        if let Err(e) = &cut {
            tracing::error!(error = %e, path = %self.path.display(), "flight recorder: cannot cut the segment back after a write error; retrying before the next write");
        }
        self.len = self.good.len;
        self.seq = self.good.seq;
        self.chain = self.good.chain;
        self.since_checkpoint = self.good.since_checkpoint;
        self.leaves
            .truncate(self.good.seq.saturating_sub(self.leaves_from) as usize);
        self.buf.clear();
        self.pending_head = None;
        self.pending_note = None;
        self.rollbacks += 1;
        for b in self.new_blobs.drain(..) {
            let _ = std::fs::remove_file(&b);
            self.unsynced_blobs.retain(|u| *u != b);
        }
        match &mut self.failed {
            Some(f) => {
                f.refused += rolled;
                f.cut_pending |= cut.is_err();
                f.last_try = Instant::now();
            }
            None => {
                tracing::error!(%what, "flight recorder cannot write; calls are refused until it can (it retries every 100 ms)");
                *self
                    .health
                    .failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some((what.clone(), now));
                self.health.failed.store(true, Ordering::Release);
                self.failed = Some(Failure {
                    what,
                    at_ms: now,
                    refused: rolled,
                    last_try: Instant::now(),
                    cut_pending: cut.is_err(),
                });
            }
        }
    }

    /// After a failure, at most every [`RETRY_INTERVAL`]: writes (and fsyncs) a
    /// [`RecordEvent::RecorderResumed`] record; true when it did and the writer is healthy.
    fn try_resume(&mut self) -> bool {
        let Some(f) = &mut self.failed else {
            return true;
        };
        if f.last_try.elapsed() < RETRY_INTERVAL || !self.buf.is_empty() {
            return false;
        }
        f.last_try = Instant::now();
        if f.cut_pending {
            if self.file.set_len(self.good.len).is_err() {
                return false;
            }
            f.cut_pending = false;
        }
        let Some(f) = self.failed.take() else {
            return true;
        };
        let resumed = RecordEvent::RecorderResumed {
            failed_at_ms: f.at_ms,
            resumed_at_ms: now_ms(),
            refused: f.refused,
            what: f.what.clone(),
        };
        let written = self.encode(None, resumed);
        if written.is_ok() && self.failed.is_none() {
            self.flush();
        }
        if self.failed.is_none() {
            self.dirty_since.get_or_insert_with(Instant::now);
            self.sync(false);
        }
        match self.failed.take() {
            None if written.is_ok() => {
                tracing::warn!(
                    refused = f.refused,
                    "flight recorder writes again; the gap is recorded"
                );
                *self
                    .health
                    .failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                self.health.failed.store(false, Ordering::Release);
                true
            }
            _ => {
                self.failed = Some(Failure {
                    last_try: Instant::now(),
                    ..f
                });
                false
            }
        }
    }

    /// Moves the event's large payloads to blobs, written before the record that names them:
    /// fsynced at once in `always` mode; in `batch` mode with the next fsync of the segment
    /// (before it).
    fn store_blobs(&mut self, event: RecordEvent) -> Result<(RecordEvent, u64), String> {
        let (event, bytes) = blob::extract(event);
        let RecordEvent::SyscallBlobs { blobs, .. } = &event else {
            return Ok((event, 0));
        };
        let total = bytes.iter().map(|b| b.len() as u64).sum();
        let mut written = Vec::with_capacity(blobs.len());
        for (r, data) in blobs.iter().zip(&bytes) {
            match blob::store(&self.dir, &r.digest, data) {
                Ok((p, created)) => {
                    if created {
                        self.new_blobs.push(p.clone());
                    }
                    written.push(p);
                }
                Err(e) => {
                    let what = format!(
                        "cannot write blob {} under {}: {e}",
                        hex::encode(r.digest),
                        self.dir.display()
                    );
                    self.fail(what.clone());
                    return Err(what);
                }
            }
        }
        if self.durability == Durability::Always {
            if let Err(e) = blob::sync(&self.dir, &written) {
                let what = format!("cannot fsync blobs under {}: {e}", self.dir.display());
                self.fail(what.clone());
                return Err(what);
            }
        } else {
            self.unsynced_blobs.extend(written);
        }
        Ok((event, total))
    }

    fn checkpoint(&mut self) {
        if self.failed.is_some() {
            return;
        }
        // The log's first checkpoint is in `HEAD` before a second one is written (a log with
        // two checkpoints and no `HEAD` reads as one whose `HEAD` was deleted): once per log.
        if !self.head_on_disk && self.pending_head.is_some() {
            self.flush();
            self.dirty_since.get_or_insert_with(Instant::now);
            self.sync(true);
        }
        let signature = self
            .key
            .sign(&checkpoint_message(&self.log_id, self.seq, &self.chain))
            .to_bytes();
        let cp = Checkpoint {
            next_seq: self.seq,
            chain: self.chain,
            wall_ms: now_ms(),
            signature,
        };
        let body = match postcard::to_stdvec(&cp) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "flight recorder: a checkpoint does not encode");
                return;
            }
        };
        if self.opts.transparency_log {
            self.pending_note = Some((self.seq, self.key.clone()));
        }
        self.pending_head = Some(Head {
            log_id: hex::encode(self.log_id),
            key_id: hex::encode(self.key_id),
            segment: self.segment,
            next_seq: cp.next_seq,
            chain: hex::encode(cp.chain),
            signature: hex::encode(cp.signature),
            wall_ms: cp.wall_ms,
        });
        let meta = FrameMeta {
            seq: cp.next_seq,
            wall_ms: cp.wall_ms,
            mono_us: self.boot.elapsed().as_micros() as u64,
        };
        self.chain = push_frame(&mut self.buf, &self.chain, TYPE_CHECKPOINT, meta, &body);
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        self.health
            .last_checkpoint_ms
            .store(cp.wall_ms, Ordering::Relaxed);
    }

    fn flush(&mut self) {
        if self.buf.is_empty() || self.failed.is_some() {
            self.buf.clear();
            return;
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            self.fail(format!("cannot write {}: {e}", self.path.display()));
            return;
        }
        self.len += self.buf.len() as u64;
        self.health
            .bytes
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        self.dirty_since.get_or_insert_with(Instant::now);
        if self.durability == Durability::Batch {
            self.keep();
        }
    }

    /// Fsyncs what was written; then publishes the latest checkpoint in `HEAD` — at most once
    /// per checkpoint interval (each `HEAD` costs an fsync of its own), always when `seal`.
    fn sync(&mut self, seal: bool) {
        if self.failed.is_some() {
            return;
        }
        if !self.unsynced_blobs.is_empty() {
            let blobs = std::mem::take(&mut self.unsynced_blobs);
            if let Err(e) = blob::sync(&self.dir, &blobs) {
                self.fail(format!(
                    "cannot fsync blobs under {}: {e}",
                    self.dir.display()
                ));
                return;
            }
        }
        if self.dirty_since.is_some() {
            let start = Instant::now();
            let synced = self.file.sync_data();
            self.last_fsync = start.elapsed();
            if let Some(observer) = &self.opts.on_fsync {
                (observer.0)(self.last_fsync);
            }
            if let Err(e) = synced {
                self.fail(format!("cannot fsync {}: {e}", self.path.display()));
                return;
            }
            self.dirty_since = None;
        }
        if self.durability == Durability::Always {
            self.keep();
        }
        let head_due = seal
            || self
                .last_head
                .is_none_or(|t| t.elapsed() >= self.opts.checkpoint_interval);
        if let Some(head) = self.pending_head.take_if(|_| head_due) {
            self.last_head = Some(Instant::now());
            // HEAD is not a record: an older HEAD stays valid, so a failure here is retried
            // with the next checkpoint rather than failing the log.
            let written = write_head(&self.dir, &head);
            self.head_on_disk |= written.is_ok();
            if let Err(e) = written {
                let _ = std::fs::remove_file(self.dir.join("HEAD.tmp"));
                tracing::warn!(error = %e, "flight recorder: cannot write recorder/HEAD; the previous one stays until the next checkpoint");
            }
            self.publish();
        }
    }

    /// Queues the leaves up to the pending checkpoint note's tree size, with the note to sign,
    /// for [`Writer::run`] to hand to the publisher once the lock is released. Like `HEAD`, a
    /// failure to write the tiles is retried with the next checkpoint, and the next open
    /// rebuilds `tile/` whole.
    fn publish(&mut self) {
        let Some((size, key)) = self.pending_note.take() else {
            return;
        };
        if size < self.leaves_from || size > self.seq {
            return;
        }
        let leaves = self.leaves.split_front((size - self.leaves_from) as usize);
        self.leaves_from = size;
        self.to_publish.push(publish::Job { leaves, size, key });
    }

    /// Whether the segment is past [`RecorderOptions::max_segment_bytes`] or
    /// [`RecorderOptions::max_segment_age`] (and holds a record).
    fn rotation_due(&self) -> bool {
        let o = &self.opts;
        self.failed.is_none()
            && self.buf.is_empty()
            && self.len > format::HEADER_LEN as u64
            && ((o.max_segment_bytes > 0 && self.len >= o.max_segment_bytes)
                || (!o.max_segment_age.is_zero()
                    && self.segment_started.elapsed() >= o.max_segment_age))
    }

    /// Starts the next segment: the current one fsynced, then a new one whose header
    /// continues the chain (`start seq`, `prev chain`) created, fsynced and the dir fsynced.
    /// A failure leaves the writer on the current segment (retried at the next group).
    fn rotate(&mut self) {
        if self.dirty_since.is_some() {
            self.sync(false);
            if self.failed.is_some() {
                return;
            }
        }
        let n = self.segment + 1;
        let path = self.dir.join(segment_name(n));
        let header = SegmentHeader {
            version: VERSION,
            flags: format::FLAG_BOUNDED,
            log_id: self.log_id,
            key_id: self.key_id,
            prev_chain: self.chain,
            start_seq: self.seq,
            break_segment: 0,
            break_offset: 0,
        };
        let made = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                let written = f.write_all(&header.encode()).and_then(|()| f.sync_all());
                if written.is_err() {
                    // Ours (created just now): never a segment with a partial header.
                    let _ = std::fs::remove_file(&path);
                }
                written.map(|()| f)
            });
        match made {
            Ok(file) => {
                sync_dir(&self.dir);
                self.file = file;
                self.path = path;
                self.segment = n;
                self.segment_started = Instant::now();
                self.len = format::HEADER_LEN as u64;
                self.keep();
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "flight recorder: cannot start the next segment; the current one grows until it can");
                self.segment_started = Instant::now();
            }
        }
    }
}

/// A key rotation cut short (`key.new` left): finished when the log announces that key,
/// else the unannounced key is deleted.
fn finish_rotation(dir: &Path) -> Result<(), RecorderError> {
    let Some(next) = std::fs::read(dir.join(key::NEW_KEY_FILE))
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|b| SigningKey::from_bytes(&b))
    else {
        let _ = std::fs::remove_file(dir.join(key::NEW_KEY_FILE));
        return Ok(());
    };
    let v = scan(dir, ScanOptions { signatures: false }, |_, _| {})?;
    let id = hex::encode(key::key_id(&next.verifying_key()));
    let announced = v.rotations.last().is_some_and(|r| r.new_key_id == id);
    match key::load_public(dir)? {
        Some(old) if announced => {
            key::commit_next(dir, &old)?;
            tracing::warn!(key_id = %id, "flight recorder: finished a key rotation cut short (the log announces the new key)");
        }
        _ => {
            let _ = std::fs::remove_file(dir.join(key::NEW_KEY_FILE));
        }
    }
    Ok(())
}

/// Replaces `dir/HEAD` atomically (temp file, fsync, swapped in: [`tlog::replace_file`]). The
/// dir is not fsynced: after a power loss the swap may be lost, leaving the previous (older,
/// still valid) `HEAD`.
fn write_head(dir: &Path, head: &Head) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(head).map_err(std::io::Error::other)?;
    tlog::replace_file(dir, verify::HEAD_FILE, &bytes)
}

/// Reads and verifies the whole log in `dir` (chain, sequence, segment headers; not the
/// signatures — see [`verify::scan`]): every record with the chain value after it. The first
/// frame that is changed, dropped or reordered is reported with its segment, sequence number
/// and byte offset. A torn tail at the end of the last segment (a record being written right
/// now, or a crash) ends the log without an error.
pub fn read_log(dir: &Path) -> Result<Vec<(Record, [u8; 32])>, RecorderError> {
    let mut out = Vec::new();
    let v = scan(dir, ScanOptions { signatures: false }, |r, c| {
        out.push((r, *c))
    })?;
    match v.problem {
        Some(p) => Err(RecorderError::Corrupt {
            path: dir.join(segment_name(p.segment)),
            seq: p.seq,
            offset: p.offset,
            what: p.what,
        }),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::format::{parse_frame, HEADER_LEN, VERSION};
    use super::*;

    fn stop(r: &str) -> RecordEvent {
        RecordEvent::KernelStop { reason: r.into() }
    }

    /// A closed log in `dir` holding one record per reason; the path of its first segment.
    fn log_of(dir: &Path, reasons: &[&str]) -> PathBuf {
        let (rec, _) = Recorder::open(dir).unwrap();
        for r in reasons {
            rec.append(None, stop(r)).unwrap();
        }
        drop(rec);
        dir.join(segment_name(1))
    }

    fn full(dir: &Path) -> Verification {
        scan(dir, ScanOptions { signatures: true }, |_, _| {}).unwrap()
    }

    /// Byte offsets of every frame in a segment.
    fn frames(path: &Path) -> Vec<(usize, u8)> {
        let b = std::fs::read(path).unwrap();
        let mut off = HEADER_LEN;
        let mut out = Vec::new();
        while off < b.len() {
            let f = parse_frame(&b[off..], VERSION).unwrap();
            out.push((off, f.ty));
            off += f.len;
        }
        out
    }

    fn reasons(dir: &Path) -> Vec<String> {
        read_log(dir)
            .unwrap()
            .iter()
            .map(|(r, _)| match &r.event {
                RecordEvent::KernelStop { reason } => reason.clone(),
                other => format!("{other:?}"),
            })
            .collect()
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
        drop(rec);
        assert_eq!(reasons(dir.path()), ["a", "b", "c"]);
        assert_eq!(segments(dir.path()).unwrap(), vec![1, 2]);
        let v = full(dir.path());
        assert_eq!((v.problem.clone(), v.exit_code(), v.records), (None, 0, 3));
        assert_eq!(v.head.unwrap().next_seq, 3);
    }

    /// The checkpoint note in `dir`, opened with the recorder's public key.
    fn note(dir: &Path) -> tlog::SignedCheckpoint {
        let public = key::load_public(dir).unwrap().unwrap();
        let bytes = std::fs::read(dir.join(tlog::CHECKPOINT_FILE)).unwrap();
        tlog::open_checkpoint(&bytes, &public).unwrap()
    }

    /// Every inode under `dir` (files and directories) with its birth time (an inode number
    /// freed and given to a new file is another one), by path relative to it.
    fn inodes(dir: &Path) -> BTreeMap<(u64, Option<std::time::SystemTime>), String> {
        use std::os::unix::fs::MetadataExt;
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let m = e.metadata().unwrap();
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.insert((m.ino(), m.created().ok()), rel);
                if m.is_dir() {
                    todo.push(e.path());
                }
            }
        }
        out
    }

    /// A recorder on `dir` that checkpoints every 7 records and publishes each checkpoint.
    fn publishing_every_7(dir: &Path) -> Recorder {
        let opts = RecorderOptions {
            checkpoint_every: 7,
            checkpoint_interval: Duration::ZERO,
            ..RecorderOptions::default()
        };
        Recorder::open_with(dir, opts).unwrap().0
    }

    #[test]
    fn a_growing_log_frees_no_inode_its_tiles_and_notes_are_replaced_in_place() {
        // On ext4 without a journal each inode freed in the last minutes is skipped by every
        // later creation in its group, so the recorder frees none while it grows: a partial
        // tile becomes the wider one or the full tile by rename, an emptied `.p` directory
        // the next one, and HEAD and the note are swapped with their `.tmp`.
        let dir = tempfile::tempdir().unwrap();
        let rec = publishing_every_7(dir.path());
        for i in 0..100 {
            rec.append(None, stop(&format!("r{i}"))).unwrap();
        }
        rec.seal().unwrap();
        let before = inodes(dir.path());
        for name in [
            "tile/0/000.p/100",
            "tile/entries/000.p/100",
            "HEAD",
            "checkpoint",
        ] {
            assert!(before.values().any(|p| p == name), "{name} in {before:?}");
        }
        // Across two tile boundaries, a checkpoint every 7 records, each published.
        for i in 100..600 {
            rec.append(None, stop(&format!("r{i}"))).unwrap();
        }
        rec.seal().unwrap();
        let after = inodes(dir.path());
        let gone: Vec<_> = before
            .iter()
            .filter(|(ino, _)| !after.contains_key(ino))
            .collect();
        assert!(gone.is_empty(), "inodes freed: {gone:?}");
        let at = |ino| after.get(&ino).cloned();
        let ino_of =
            |m: &BTreeMap<_, String>, name: &str| *m.iter().find(|(_, p)| *p == name).unwrap().0;
        // The first partial is now the first full tile, its directory the newest partial's.
        assert_eq!(
            at(ino_of(&before, "tile/0/000.p/100")).as_deref(),
            Some("tile/0/000")
        );
        assert_eq!(
            at(ino_of(&before, "tile/entries/000.p/100")).as_deref(),
            Some("tile/entries/000")
        );
        assert!(at(ino_of(&before, "tile/0/000.p")).is_some_and(|p| p.ends_with(".p")));
        assert!(!after.values().any(|p| p.starts_with("tile/0/000.p")));
        // What was written in place is what the log holds, and the note is the newest.
        let (tree, _) = tlog::read_tree(dir.path(), None).unwrap();
        let cp = note(dir.path());
        assert_eq!((cp.size, cp.root), (tree.size(), tree.root()));
        let (checked, problems) = tlog::check_tiles(dir.path()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(checked >= 6, "{checked} tiles");
        assert!(full(dir.path()).problem.is_none());
    }

    #[test]
    fn the_tile_dir_asks_the_filesystem_to_spread_its_subdirs() {
        // Where the filesystem takes `FS_TOPDIR_FL` (ext4: a dir of the same filesystem
        // accepts it), the open's `tile/` carries it, so the tile levels' dirs go to block
        // groups of their own, away from the inodes the rest of the host frees.
        use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::create_dir(&probe).unwrap();
        let probe = File::open(&probe).unwrap();
        let takes_it = ioctl_getflags(&probe)
            .and_then(|f| ioctl_setflags(&probe, f | IFlags::TOPDIR))
            .and_then(|()| ioctl_getflags(&probe))
            .is_ok_and(|f| f.contains(IFlags::TOPDIR));
        let (rec, _) = Recorder::open(dir.path()).unwrap();
        rec.append(None, stop("a")).unwrap();
        rec.seal().unwrap();
        let tiles = File::open(dir.path().join("tile")).unwrap();
        let flags = ioctl_getflags(&tiles);
        if takes_it {
            assert!(flags.unwrap().contains(IFlags::TOPDIR));
        } else {
            eprintln!("this filesystem does not take FS_TOPDIR_FL: tile/ is left as it is");
        }
        assert!(dir.path().join("tile/0/000.p/1").is_file());
    }

    #[test]
    fn the_publisher_keeps_up_across_many_checkpoints_and_the_bench_switch_turns_it_off() {
        // Many checkpoints and seals while appends go on: every leaf reaches the publisher
        // once, in order (its tree equals the one rebuilt from the segments).
        let dir = tempfile::tempdir().unwrap();
        let rec = publishing_every_7(dir.path());
        let mut notes = Vec::new();
        for i in 0..1000 {
            rec.append(None, stop(&format!("r{i}"))).unwrap();
            if i % 97 == 0 {
                rec.seal().unwrap();
                let cp = note(dir.path());
                notes.push((cp.size, cp.root));
            }
        }
        rec.seal().unwrap();
        let (tree, _) = tlog::read_tree(dir.path(), None).unwrap();
        let cp = note(dir.path());
        assert_eq!((cp.size, cp.root), (tree.size(), tree.root()));
        assert!(dir.path().join("tile/0/002").is_file());
        let (_, problems) = tlog::check_tiles(dir.path()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        // Consistency proofs made from the tiles alone (the witness pusher's) equal the whole
        // tree's, for the latest checkpoint and for older ones whose partial tiles a wider
        // tile has since replaced; a wrong root is refused.
        notes.push((cp.size, cp.root));
        for (k, &(size, root)) in notes.iter().enumerate() {
            assert_eq!(tree.root_at(size).unwrap(), root);
            for &(old, _) in &notes[..k] {
                if old == 0 || old == size {
                    continue;
                }
                assert_eq!(
                    tlog::prove_consistency_from_tiles(dir.path(), size, root, old).unwrap(),
                    tree.prove_consistency(size, old).unwrap(),
                    "{old} → {size}"
                );
            }
        }
        assert!(tlog::prove_consistency_from_tiles(dir.path(), cp.size, notes[1].1, 5).is_err());
        drop(rec);
        // With the transparency log off (the bench's floor) nothing is published past the
        // note the open wrote.
        let off = tempfile::tempdir().unwrap();
        let opts = RecorderOptions {
            transparency_log: false,
            ..RecorderOptions::default()
        };
        let (rec, _) = Recorder::open_with(off.path(), opts).unwrap();
        for i in 0..300 {
            rec.append(None, stop(&format!("r{i}"))).unwrap();
        }
        rec.seal().unwrap();
        assert_eq!(note(off.path()).size, 0);
        assert!(!off.path().join("tile/0/000").exists());
    }

    #[test]
    fn the_tree_grows_with_the_log_survives_restarts_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = Recorder::open(dir.path()).unwrap();
        for i in 0..300 {
            rec.append(None, stop(&format!("r{i}"))).unwrap();
            if i == 99 {
                rec.seal().unwrap();
                assert!(dir.path().join("tile/0/000.p/100").is_file());
                assert!(dir.path().join("tile/entries/000.p/100").is_file());
                assert_eq!(note(dir.path()).size, 100);
            }
        }
        drop(rec);
        // The writer's incremental tree is the one rebuilt from the segments; its tiles and
        // bundles (one full, one partial) match the log.
        let (tree, leaf) = tlog::read_tree(dir.path(), Some(299)).unwrap();
        let cp = note(dir.path());
        assert_eq!((cp.size, cp.root), (300, tree.root()));
        let (files, problems) = tlog::check_tiles(dir.path()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(files >= 4, "{files}");
        for t in [
            "tile/0/000",
            "tile/0/001.p/44",
            "tile/1/000.p/1",
            "tile/entries/000",
        ] {
            assert!(dir.path().join(t).is_file(), "{t}");
        }
        // A partial tile goes once a wider one or the full tile is published: the disk the
        // log keeps stays proportional to its records, whatever the rate of checkpoints (an
        // agent's flood of calls is held to its recorder share, tests/tests/dos.rs). C2SP
        // clients never rely on a partial tile once the full one exists.
        assert!(!dir.path().join("tile/0/000.p/100").exists());
        assert!(!dir.path().join("tile/0/000.p").exists());
        // Leaf 299 is its frame's header and body as written: its seq is in it.
        let leaf = leaf.unwrap();
        assert_eq!(leaf[4], TYPE_RECORD);
        assert_eq!(u64::from_le_bytes(leaf[5..13].try_into().unwrap()), 299);
        let proof = tree.prove(300, 299).unwrap();
        assert!(tlog::check_inclusion(&proof, 300, cp.root, 299, &leaf));

        // A crash: a torn frame in the segment, and tiles published beyond what the log kept.
        let seg = dir.path().join(segment_name(1));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 7, 7]).unwrap();
        drop(f);
        std::fs::create_dir_all(dir.path().join("tile/0/001.p")).unwrap();
        std::fs::write(dir.path().join("tile/0/001.p/200"), [1u8; 32 * 200]).unwrap();
        let (rec, report) = Recorder::open_with(dir.path(), RecorderOptions::default()).unwrap();
        assert!(report.recovered.is_some());
        drop(rec);
        let (files, problems) = tlog::check_tiles(dir.path()).unwrap();
        assert!(problems.is_empty(), "{problems:?} in {files} files");
        assert!(!dir.path().join("tile/0/001.p/200").exists());
        // 300 records and the Recovery record: the old tree is a prefix of the new one.
        let (tree, _) = tlog::read_tree(dir.path(), None).unwrap();
        let new = note(dir.path());
        assert_eq!((new.size, new.root), (301, tree.root()));
        let p = tree.prove_consistency(301, 300).unwrap();
        assert!(tlog::check_consistency(&p, 301, new.root, 300, cp.root));
    }

    #[test]
    fn the_key_is_private_and_named_in_headers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        drop(Recorder::open(dir.path()).unwrap());
        let mode = std::fs::metadata(dir.path().join("key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let public = key::load_public(dir.path()).unwrap().unwrap();
        let seg = std::fs::read(dir.path().join(segment_name(1))).unwrap();
        let h = SegmentHeader::decode(&seg).unwrap();
        assert_eq!(h.key_id, key::key_id(&public));
    }

    /// The recorder dir as a SIGKILLed kernel leaves it: every byte written so far, nothing
    /// the writer would still do (a copy taken while it runs on).
    fn killed_copy(from: &Path) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        let mut stack = vec![from.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let rel = e.path().strip_prefix(from).unwrap().to_path_buf();
                if e.file_type().unwrap().is_dir() {
                    std::fs::create_dir_all(to.path().join(&rel)).unwrap();
                    stack.push(e.path());
                } else {
                    std::fs::copy(e.path(), to.path().join(&rel)).unwrap();
                }
            }
        }
        to
    }

    /// Batch durability with neither an fsync tick nor a `HEAD` due for as long as the
    /// test runs: checkpoints come from the record count alone.
    fn lazy_batch() -> RecorderOptions {
        RecorderOptions {
            durability: Durability::Batch,
            checkpoint_every: 5,
            batch_interval: Duration::from_secs(3600),
            checkpoint_interval: Duration::from_secs(3600),
            ..RecorderOptions::default()
        }
    }

    #[test]
    fn a_second_checkpoint_is_never_written_before_head_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = Recorder::open_with(dir.path(), lazy_batch()).unwrap();
        for _ in 0..6 {
            rec.append(None, stop("x")).unwrap();
        }
        // One checkpoint, not yet fsynced: no HEAD yet, and none is needed.
        let killed = killed_copy(dir.path());
        let v = full(killed.path());
        assert_eq!(
            (v.sealed, v.head.is_none(), v.problem.is_none()),
            (Some(5), true, true)
        );
        for _ in 0..5 {
            rec.append(None, stop("x")).unwrap();
        }
        // The second checkpoint was written only after HEAD named the first.
        let killed = killed_copy(dir.path());
        let v = full(killed.path());
        assert!(v.problem.is_none(), "{:?}", v.problem);
        assert_eq!((v.sealed, v.head.map(|h| h.next_seq)), (Some(10), Some(5)));
        drop(rec);
    }

    #[test]
    fn an_open_publishes_the_checkpoint_a_killed_kernel_left_without_head() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = Recorder::open_with(dir.path(), lazy_batch()).unwrap();
        for _ in 0..6 {
            rec.append(None, stop("x")).unwrap();
        }
        let life1 = killed_copy(dir.path());
        drop(rec);
        assert!(verify::read_head(life1.path()).unwrap().is_none());
        // Life after life killed before its own HEAD: never read as a deleted HEAD. The
        // first reopen publishes the checkpoint the first life left.
        let mut state = life1;
        for life in 2..5u64 {
            let (rec, report) = Recorder::open_with(state.path(), lazy_batch()).unwrap();
            assert!(report.broken.is_none(), "life {life}: {:?}", report.broken);
            let head = verify::read_head(state.path())
                .unwrap()
                .expect("HEAD written at open");
            assert_eq!(head.next_seq, 5, "life {life}");
            for _ in 0..6 {
                rec.append(None, stop("x")).unwrap();
            }
            let next = killed_copy(state.path());
            drop(rec);
            state = next;
        }
        let v = full(state.path());
        assert!(v.problem.is_none(), "{:?}", v.problem);
    }

    #[test]
    fn checkpoints_every_n_records_and_always_mode() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RecorderOptions {
            durability: Durability::Always,
            checkpoint_every: 10,
            ..RecorderOptions::default()
        };
        let (rec, _) = Recorder::open_with(dir.path(), opts).unwrap();
        for i in 0..25 {
            assert_eq!(rec.append(None, stop("x")).unwrap(), i);
        }
        let v = full(dir.path());
        // 10 and 20 sealed so far; HEAD names the first (fsynced) one: it is replaced at
        // most once per checkpoint interval.
        let cps: Vec<u64> = v.segments[0]
            .checkpoints
            .iter()
            .map(|c| c.next_seq)
            .collect();
        assert_eq!(cps, [10, 20]);
        assert_eq!((v.unsealed, v.exit_code()), (5, 3));
        assert_eq!(v.head.as_ref().unwrap().next_seq, 10);
        drop(rec);
        let v = full(dir.path());
        assert_eq!((v.unsealed, v.exit_code()), (0, 0));
    }

    #[test]
    fn many_appenders_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RecorderOptions {
            durability: Durability::Always,
            ..RecorderOptions::default()
        };
        let (rec, _) = Recorder::open_with(dir.path(), opts).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        rec.append(None, stop("x")).unwrap();
                    }
                });
            }
        });
        drop(rec);
        assert_eq!(read_log(dir.path()).unwrap().len(), 800);
        assert_eq!(full(dir.path()).exit_code(), 0);
    }

    #[test]
    fn a_flipped_byte_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_of(dir.path(), &["one", "two", "three"]);
        let second = frames(&path)[1].0;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second + 6] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        match read_log(dir.path()) {
            Err(RecorderError::Corrupt { seq, offset, .. }) => {
                assert_eq!(seq, 1);
                assert_eq!(offset, second as u64);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(full(dir.path()).exit_code(), 1);
    }

    #[test]
    fn a_torn_tail_is_cut_kept_aside_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_of(dir.path(), &["one", "two"]);
        let len = std::fs::metadata(&path).unwrap().len();
        // A crash mid-write: half a frame at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 7, 7]).unwrap();
        drop(f);
        assert_eq!(full(dir.path()).torn_tail.unwrap().offset, len);
        let (rec, report) = Recorder::open_with(dir.path(), RecorderOptions::default()).unwrap();
        let torn = report.recovered.unwrap();
        assert_eq!((torn.segment, torn.offset, torn.bytes), (1, len, 7));
        assert!(report.broken.is_none());
        drop(rec);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".torn-"))
            .collect();
        assert_eq!(aside.len(), 1);
        let log = read_log(dir.path()).unwrap();
        assert_eq!(
            log[2].0.event,
            RecordEvent::Recovery {
                segment: 1,
                offset: len,
                bytes_dropped: 7
            }
        );
        assert_eq!(full(dir.path()).exit_code(), 0);
    }

    #[test]
    fn a_bad_frame_followed_by_good_ones_is_tampering_and_never_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_of(dir.path(), &["one", "two", "three"]);
        let first = frames(&path)[0].0;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[first + 8] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (rec, report) = Recorder::open_with(dir.path(), RecorderOptions::default()).unwrap();
        let broken = report.broken.unwrap();
        assert_eq!(
            (broken.segment, broken.seq, broken.offset),
            (1, 0, first as u64)
        );
        assert!(report.recovered.is_none());
        drop(rec);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "never repaired");
        let seg2 = std::fs::read(dir.path().join(segment_name(2))).unwrap();
        let h = SegmentHeader::decode(&seg2).unwrap();
        assert_eq!((h.break_segment, h.break_offset), (1, first as u64));
        let v = full(dir.path());
        assert_eq!((v.exit_code(), v.problem.unwrap().seq), (1, 0));
    }

    #[test]
    fn cutting_sealed_records_is_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_of(dir.path(), &["one", "two", "three", "four"]);
        // Cut the last two records and the shutdown checkpoint at a frame boundary.
        let third = frames(&path)[2].0;
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(third as u64).unwrap();
        let v = full(dir.path());
        let p = v.problem.clone().unwrap();
        assert_eq!(
            (v.exit_code(), p.kind, p.seq),
            (2, ProblemKind::Truncated, 2)
        );
    }

    fn large_write(id: u64, data: Vec<u8>, read_back: Vec<u8>) -> RecordEvent {
        use agentos_syscalls::{Reply, Syscall, WriteMode};
        RecordEvent::Syscall {
            id,
            call: Syscall::Write {
                path: "/mem/working/big".into(),
                data,
                mode: WriteMode::Truncate,
            },
            decision: DecisionRecord {
                allowed: true,
                policy_allowed: true,
                rule: "rw".into(),
                reason: "allowed".into(),
                violation: false,
                mode: "strict".into(),
            },
            result: Ok(Reply::Data(read_back)),
            duration_us: 3,
        }
    }

    #[test]
    fn large_payloads_go_to_blobs_and_come_back_whole() {
        for durability in [Durability::Batch, Durability::Always] {
            let dir = tempfile::tempdir().unwrap();
            let opts = RecorderOptions {
                durability,
                ..RecorderOptions::default()
            };
            let (rec, _) = Recorder::open_with(dir.path(), opts).unwrap();
            let big = vec![7u8; 100 << 10];
            let other: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
            let small = large_write(2, b"tiny".to_vec(), b"tiny".to_vec());
            rec.append(None, large_write(1, big.clone(), other.clone()))
                .unwrap();
            rec.append(None, small.clone()).unwrap();
            // The same payload again shares its blob.
            rec.append(None, large_write(3, big.clone(), b"x".to_vec()))
                .unwrap();
            drop(rec);
            let seg = std::fs::metadata(dir.path().join(segment_name(1))).unwrap();
            assert!(seg.len() < 4096, "{durability}: payloads left the segment");
            let blobs = std::fs::read_dir(dir.path().join(blob::BLOBS_DIR))
                .unwrap()
                .count();
            assert_eq!(blobs, 2, "{durability}");
            let log = read_log(dir.path()).unwrap();
            assert_eq!(log[0].0.event, large_write(1, big.clone(), other.clone()));
            assert_eq!(log[1].0.event, small);
            assert_eq!(log[2].0.event, large_write(3, big.clone(), b"x".to_vec()));
            assert_eq!(full(dir.path()).exit_code(), 0);
        }
    }

    #[test]
    fn a_changed_or_missing_blob_fails_verification_at_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = Recorder::open(dir.path()).unwrap();
        rec.append(None, stop("before")).unwrap();
        let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        let seq = rec
            .append(None, large_write(1, data.clone(), Vec::new()))
            .unwrap();
        rec.append(None, stop("after")).unwrap();
        drop(rec);
        let path = blob::blob_path(dir.path(), blake3::hash(&data).as_bytes());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[4000] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let p = full(dir.path()).problem.unwrap();
        assert_eq!((p.kind, p.seq), (ProblemKind::Tampered, seq));
        assert!(p.what.contains("was changed"), "{}", p.what);
        std::fs::remove_file(&path).unwrap();
        let p = full(dir.path()).problem.unwrap();
        assert_eq!((p.kind, p.seq), (ProblemKind::Tampered, seq));
        assert!(p.what.contains("is missing"), "{}", p.what);
        assert!(matches!(
            read_log(dir.path()),
            Err(RecorderError::Corrupt { seq: s, .. }) if s == seq
        ));
    }

    #[test]
    fn version_1_segments_are_still_read_and_continued() {
        use super::format::{chain_next, GENESIS, VERSION_1};
        let dir = tempfile::tempdir().unwrap();
        let key = key::load_or_create(dir.path()).unwrap();
        let header = SegmentHeader {
            version: VERSION_1,
            flags: 0,
            log_id: [5; 16],
            key_id: key::key_id(&key.verifying_key()),
            prev_chain: GENESIS,
            start_seq: 0,
            break_segment: 0,
            break_offset: 0,
        };
        let mut seg = header.encode().to_vec();
        let mut chain = GENESIS;
        for i in 0..2 {
            // A version 1 frame: len | type | postcard(Record) | chain(prev ‖ type ‖ body) | crc.
            let body = postcard::to_stdvec(&Record {
                seq: i,
                wall_ms: 1_700_000_000_000 + i,
                mono_us: i,
                agent: Some(AgentId(9)),
                event: stop("old"),
            })
            .unwrap();
            let start = seg.len();
            seg.extend_from_slice(&(body.len() as u32).to_le_bytes());
            seg.push(TYPE_RECORD);
            seg.extend_from_slice(&body);
            chain = chain_next(&chain, &seg[start + 4..]);
            seg.extend_from_slice(&chain);
            let crc = crc32fast::hash(&seg[start..]);
            seg.extend_from_slice(&crc.to_le_bytes());
        }
        std::fs::write(dir.path().join(segment_name(1)), &seg).unwrap();
        let (rec, problem) = Recorder::open(dir.path()).unwrap();
        assert!(problem.is_none(), "{problem:?}");
        assert_eq!(rec.append(None, stop("new")).unwrap(), 2);
        drop(rec);
        assert_eq!(reasons(dir.path()), ["old", "old", "new"]);
        let log = read_log(dir.path()).unwrap();
        assert_eq!(
            (log[1].0.wall_ms, log[1].0.agent),
            (1_700_000_000_001, Some(AgentId(9)))
        );
        let seg2 = std::fs::read(dir.path().join(segment_name(2))).unwrap();
        assert_eq!(SegmentHeader::decode(&seg2).unwrap().version, VERSION);
        assert_eq!(full(dir.path()).exit_code(), 0);
    }

    #[test]
    fn sequence_and_times_are_frame_header_fields_under_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_of(dir.path(), &["one", "two"]);
        let b = std::fs::read(&path).unwrap();
        let (second, _) = frames(&path)[1];
        let f = parse_frame(&b[second..], VERSION).unwrap();
        assert_eq!(f.meta.seq, 1);
        let r = &read_log(dir.path()).unwrap()[1].0;
        assert_eq!(
            (r.seq, r.wall_ms, r.mono_us),
            (1, f.meta.wall_ms, f.meta.mono_us)
        );
        assert!(f.meta.wall_ms > 1_700_000_000_000);
        // A changed time (CRC fixed up) breaks the chain at that record.
        let mut bad = b.clone();
        bad[second + 13] ^= 0x01;
        let crc_at = second + f.len - 4;
        let crc = crc32fast::hash(&bad[second..crc_at]);
        bad[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        let p = full(dir.path()).problem.unwrap();
        assert_eq!((p.seq, p.offset), (1, second as u64));
        assert!(p.what.contains("chain"), "{}", p.what);
    }

    /// A sealed two-segment log with a blob, built once: file name → bytes (segments, blobs
    /// under `blobs/`, key.pub and HEAD).
    fn sample_log() -> &'static BTreeMap<String, Vec<u8>> {
        static LOG: std::sync::OnceLock<BTreeMap<String, Vec<u8>>> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let opts = RecorderOptions {
                checkpoint_every: 3,
                ..RecorderOptions::default()
            };
            for round in 0..2u8 {
                let (rec, _) = Recorder::open_with(dir.path(), opts.clone()).unwrap();
                for i in 0..4u8 {
                    rec.append(
                        Some(AgentId(u64::from(round))),
                        stop(&format!("r{round}-{i}")),
                    )
                    .unwrap();
                }
                let big = vec![round; 5000];
                rec.append(None, large_write(1, big, Vec::new())).unwrap();
                drop(rec);
            }
            let mut files = BTreeMap::new();
            for sub in ["", blob::BLOBS_DIR] {
                for e in std::fs::read_dir(dir.path().join(sub)).unwrap().flatten() {
                    if e.path().is_file() && e.file_name() != "key" {
                        let name = Path::new(sub).join(e.file_name());
                        files.insert(
                            name.to_string_lossy().into_owned(),
                            std::fs::read(e.path()).unwrap(),
                        );
                    }
                }
            }
            files
        })
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip { at: usize, bit: u8 },
        Truncate { to: usize },
        Insert { at: usize, bytes: Vec<u8> },
    }

    fn mutation() -> impl proptest::strategy::Strategy<Value = (usize, Mutation)> {
        use proptest::prelude::*;
        let m = prop_oneof![
            (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
            any::<usize>().prop_map(|to| Mutation::Truncate { to }),
            (
                any::<usize>(),
                proptest::collection::vec(any::<u8>(), 1..40)
            )
                .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        ];
        (any::<usize>(), m)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Random byte flips, truncations and insertions in any segment or blob of a real log:
        /// verification never panics and never says the changed log is OK.
        #[test]
        fn a_mutated_log_never_verifies_ok((file, m) in mutation()) {
            let log = sample_log();
            let targets: Vec<&String> = log
                .keys()
                .filter(|n| n.starts_with("segment-") || n.starts_with(blob::BLOBS_DIR))
                .collect();
            let target = targets[file % targets.len()];
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join(blob::BLOBS_DIR)).unwrap();
            for (name, bytes) in log {
                let mut bytes = bytes.clone();
                if name == target {
                    match &m {
                        Mutation::Flip { at, bit } => {
                            let at = at % bytes.len();
                            bytes[at] ^= 1 << bit;
                        }
                        Mutation::Truncate { to } => bytes.truncate(to % bytes.len()),
                        Mutation::Insert { at, bytes: extra } => {
                            let at = at % (bytes.len() + 1);
                            bytes.splice(at..at, extra.iter().copied());
                        }
                    }
                }
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            let v = full(dir.path());
            proptest::prop_assert_ne!(v.exit_code(), 0, "{} {:?}: {:?}", target, m, v.problem);
            // The bytes alone, without key or HEAD, are never a crash either.
            if target.starts_with("segment-") {
                let bytes = std::fs::read(dir.path().join(target)).unwrap();
                let _ = verify::scan_segment_bytes(dir.path(), &bytes, |_, _| {});
            }
        }
    }

    #[test]
    fn the_sample_log_verifies_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(blob::BLOBS_DIR)).unwrap();
        for (name, bytes) in sample_log() {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let v = full(dir.path());
        assert_eq!((v.exit_code(), v.records), (0, 10), "{:?}", v.problem);
        assert!(v.segments.iter().all(|s| s.checkpoints.len() >= 2));
    }

    /// Every variant of [`RecordEvent`] with its agent-controlled fields at the frame limit
    /// (16 MiB strings, a million arguments): the writer bounds each and the log verifies.
    #[test]
    fn every_record_type_at_its_maximum_sizes_verifies() {
        use agentos_syscalls::control::ExitStatus;
        use agentos_syscalls::{
            DirEntry, Errno, FileKind, JailReport, Layer, LayerStatus, Reply, Signal, Syscall,
        };
        const MAX: usize = agentos_syscalls::frame::DEFAULT_MAX_FRAME as usize;
        let big = || "\u{1b}x".repeat(MAX / 2);
        let decision = || DecisionRecord {
            allowed: false,
            policy_allowed: false,
            rule: big(),
            reason: big(),
            violation: true,
            mode: big(),
        };
        let syscall = |call: Syscall, result: Result<Reply, Errno>| RecordEvent::Syscall {
            id: u64::MAX,
            call,
            decision: decision(),
            result,
            duration_us: u64::MAX,
        };
        let layers = || {
            vec![
                Layer {
                    name: big(),
                    status: LayerStatus::Partial { detail: big() },
                };
                3
            ]
        };
        let events: Vec<Box<dyn Fn() -> RecordEvent>> = vec![
            Box::new(|| RecordEvent::KernelStart {
                pid: 1,
                uid: 0,
                version: big(),
                state_dir: big().into(),
            }),
            Box::new(|| RecordEvent::KernelStop { reason: big() }),
            Box::new(|| RecordEvent::Spawn {
                name: Some(big()),
                program: big(),
                args: vec![big(), big()],
                policy_path: big(),
                policy_digest: [1; 32],
                launcher_pid: 1,
            }),
            Box::new(|| RecordEvent::Spawn {
                name: None,
                program: String::new(),
                args: vec![String::new(); 1 << 20],
                policy_path: String::new(),
                policy_digest: [1; 32],
                launcher_pid: 1,
            }),
            Box::new(|| RecordEvent::SpawnRefused {
                program: big(),
                reason: big(),
            }),
            Box::new(|| RecordEvent::Sandbox(JailReport { layers: layers() })),
            Box::new(|| RecordEvent::Handshake { sdk: big(), abi: 1 }),
            Box::new(|| {
                syscall(
                    Syscall::Exec {
                        argv: vec![big()],
                        stdin: vec![0; MAX],
                        cwd: Some(big()),
                        timeout_ms: None,
                    },
                    Err(Errno::PermissionDenied {
                        rule: big(),
                        reason: big(),
                    }),
                )
            }),
            Box::new(|| {
                syscall(
                    Syscall::Exec {
                        argv: vec![String::new(); 1 << 20],
                        stdin: Vec::new(),
                        cwd: None,
                        timeout_ms: None,
                    },
                    Err(Errno::InvalidArgument { reason: big() }),
                )
            }),
            Box::new(|| {
                syscall(
                    Syscall::CheckPolicy {
                        action: big(),
                        resource: big(),
                    },
                    Ok(Reply::Decision(agentos_syscalls::Decision {
                        allowed: false,
                        rule: big(),
                        reason: big(),
                    })),
                )
            }),
            Box::new(|| {
                syscall(
                    Syscall::Call {
                        action: big(),
                        params_json: big(),
                    },
                    Ok(Reply::CallResult { result_json: big() }),
                )
            }),
            Box::new(|| {
                syscall(
                    Syscall::Write {
                        path: big(),
                        data: vec![1; MAX],
                        mode: agentos_syscalls::WriteMode::Append,
                    },
                    Err(Errno::AlreadyExists { path: big() }),
                )
            }),
            Box::new(|| {
                syscall(
                    Syscall::List { path: big() },
                    Ok(Reply::Entries(vec![
                        DirEntry {
                            name: "n".repeat(255),
                            kind: FileKind::File,
                            size: 1,
                        };
                        MAX / 256
                    ])),
                )
            }),
            Box::new(|| {
                syscall(
                    Syscall::Read {
                        path: big(),
                        offset: 0,
                        len: None,
                    },
                    Ok(Reply::Data(vec![2; MAX])),
                )
            }),
            Box::new(|| RecordEvent::Signal {
                signal: Signal::Kill,
                source: big(),
                reason: big(),
                delivered: true,
            }),
            Box::new(|| RecordEvent::ProtocolViolation { reason: big() }),
            Box::new(|| RecordEvent::Exit {
                status: ExitStatus::Killed {
                    signal: Signal::Policy,
                    reason: big(),
                },
            }),
            Box::new(|| RecordEvent::SandboxDenied {
                syscall: big(),
                nr: 1,
                args: [u64::MAX; 6],
            }),
            Box::new(|| RecordEvent::SandboxCapabilities {
                layers: layers(),
                allow_degraded: true,
            }),
            Box::new(|| RecordEvent::ApprovalRequested {
                approval: 1,
                request: 1,
                action: big(),
                resource: big(),
                rule: big(),
            }),
            Box::new(|| RecordEvent::ApprovalDecided {
                approval: 1,
                request: 1,
                approved: false,
                outcome: big(),
                by: big(),
                waited_ms: 1,
            }),
            Box::new(|| RecordEvent::PolicyReloaded {
                old_digest: [0; 32],
                new_digest: [1; 32],
                path: big(),
            }),
            Box::new(|| RecordEvent::ReadOnlyGranted {
                paths: vec![big().into(), PathBuf::new(), big().into()],
            }),
            Box::new(|| RecordEvent::Recovery {
                segment: u32::MAX,
                offset: u64::MAX,
                bytes_dropped: u64::MAX,
            }),
            Box::new(|| RecordEvent::RecorderBroken {
                segment: 1,
                offset: 1,
                seq: 1,
                what: big(),
            }),
            Box::new(|| RecordEvent::MemoryCheckpoint {
                number: 1,
                files: 1,
                bytes: 1,
                trigger: big(),
            }),
            Box::new(|| RecordEvent::MemoryRestored {
                from: AgentId(1),
                number: 1,
                files: 1,
                bytes: 1,
            }),
            Box::new(|| RecordEvent::SandboxAccess {
                syscall: big(),
                target: big(),
                why: big(),
            }),
            Box::new(|| RecordEvent::SandboxFlood {
                syscall: big(),
                suppressed: 1,
                window_start_ms: 1,
                window_ms: 1,
            }),
            Box::new(|| RecordEvent::SandboxLimit {
                resource: big(),
                limit: 1,
                used: 1,
                by: big(),
                detail: big(),
            }),
            Box::new(|| RecordEvent::RecorderResumed {
                failed_at_ms: 1,
                resumed_at_ms: 2,
                refused: 3,
                what: big(),
            }),
            Box::new(|| RecordEvent::HookFailed {
                event: big(),
                why: big(),
            }),
            Box::new(|| RecordEvent::McpServerExited {
                server: big(),
                why: big(),
                restarts: 1,
                backoff_ms: 2,
            }),
            Box::new(|| RecordEvent::Egress {
                conn: 1,
                method: big(),
                target: big(),
                address: big(),
                decision: DecisionRecord {
                    allowed: false,
                    policy_allowed: false,
                    rule: big(),
                    reason: big(),
                    violation: true,
                    mode: big(),
                },
                result: Err(Errno::PermissionDenied {
                    rule: big(),
                    reason: big(),
                }),
            }),
            Box::new(|| RecordEvent::EgressClosed {
                conn: 1,
                sent: 2,
                received: 3,
                duration_ms: 4,
                why: big(),
            }),
            Box::new(|| RecordEvent::WitnessCosigned {
                witness: big(),
                size: 5,
            }),
            Box::new(|| RecordEvent::WitnessFailed {
                witness: big(),
                size: 6,
                why: big(),
            }),
        ];
        // Every variant is here (`SyscallBlobs` is what the writer makes of a `Syscall` with
        // payloads): adding one to `RecordEvent` breaks this match.
        let variant = |e: &RecordEvent| -> usize {
            match e {
                RecordEvent::KernelStart { .. } => 0,
                RecordEvent::KernelStop { .. } => 1,
                RecordEvent::Spawn { .. } => 2,
                RecordEvent::SpawnRefused { .. } => 3,
                RecordEvent::Sandbox(_) => 4,
                RecordEvent::Handshake { .. } => 5,
                RecordEvent::Syscall { .. } | RecordEvent::SyscallBlobs { .. } => 6,
                RecordEvent::Signal { .. } => 7,
                RecordEvent::ProtocolViolation { .. } => 8,
                RecordEvent::Exit { .. } => 9,
                RecordEvent::SandboxDenied { .. } => 10,
                RecordEvent::SandboxCapabilities { .. } => 11,
                RecordEvent::ApprovalRequested { .. } => 12,
                RecordEvent::ApprovalDecided { .. } => 13,
                RecordEvent::PolicyReloaded { .. } => 14,
                RecordEvent::ReadOnlyGranted { .. } => 15,
                RecordEvent::Recovery { .. } => 16,
                RecordEvent::RecorderBroken { .. } => 17,
                RecordEvent::MemoryCheckpoint { .. } => 18,
                RecordEvent::MemoryRestored { .. } => 19,
                RecordEvent::SandboxAccess { .. } => 20,
                RecordEvent::SandboxFlood { .. } => 21,
                RecordEvent::SandboxLimit { .. } => 22,
                RecordEvent::RecorderResumed { .. } => 23,
                RecordEvent::HookFailed { .. } => 24,
                RecordEvent::McpServerExited { .. } => 25,
                RecordEvent::Egress { .. } => 26,
                RecordEvent::EgressClosed { .. } => 27,
                RecordEvent::WitnessCosigned { .. } => 28,
                RecordEvent::WitnessFailed { .. } => 29,
                // Written only by `Recorder::rotate_key` (its signature covers its own
                // sequence number), of fixed size; `prune::tests` write and verify it.
                RecordEvent::KeyRotated { .. } => 30,
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for durability in [Durability::Batch, Durability::Always] {
            let opts = RecorderOptions {
                durability,
                ..RecorderOptions::default()
            };
            let (rec, _) = Recorder::open_with(dir.path(), opts).unwrap();
            for make in &events {
                let e = make();
                seen.insert(variant(&e));
                rec.append(Some(AgentId(7)), e).unwrap();
            }
            rec.append(Some(AgentId(8)), stop("after")).unwrap();
            drop(rec);
        }
        assert_eq!(seen.len(), 30);
        let mut largest = 0;
        for n in segments(dir.path()).unwrap() {
            let b = std::fs::read(dir.path().join(segment_name(n))).unwrap();
            let mut off = HEADER_LEN;
            while off < b.len() {
                let f = parse_frame(&b[off..], VERSION).unwrap();
                largest = largest.max(f.body.len());
                off += f.len;
            }
        }
        assert!(largest <= format::MAX_RECORD as usize, "{largest}");
        let v = full(dir.path());
        assert_eq!(
            (v.exit_code(), v.records),
            (0, 2 * (events.len() as u64 + 1)),
            "{:?}",
            v.problem
        );
        let log = read_log(dir.path()).unwrap();
        assert_eq!(log.last().unwrap().0.event, stop("after"));
    }

    /// A small tmpfs mounted for one test, unmounted on drop. Needs root (CI runs as root):
    /// asserted, never skipped.
    struct Tmpfs(tempfile::TempDir);

    impl Tmpfs {
        fn new(bytes: u64) -> Tmpfs {
            assert_eq!(
                rustix::process::geteuid().as_raw(),
                0,
                "this test mounts a tmpfs: run it as root"
            );
            let dir = tempfile::tempdir().unwrap();
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "mount tmpfs");
            Tmpfs(dir)
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        /// Fills the filesystem with one file; returns its path.
        fn fill(&self) -> PathBuf {
            let path = self.path().join("filler");
            let mut f = File::create(&path).unwrap();
            let chunk = vec![0u8; 64 << 10];
            loop {
                if f.write_all(&chunk).is_err() {
                    break;
                }
            }
            // Byte by byte to the last one.
            while f.write_all(&[0]).is_ok() {}
            path
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn after_a_full_disk_the_recorder_resumes_by_itself_and_records_the_gap() {
        for durability in [Durability::Batch, Durability::Always] {
            let fs = Tmpfs::new(4 << 20);
            let dir = fs.path().join("recorder");
            let opts = RecorderOptions {
                durability,
                min_free_bytes: 1 << 20,
                ..RecorderOptions::default()
            };
            let (rec, _) = Recorder::open_with(&dir, opts).unwrap();
            assert_eq!(rec.admit(), Ok(()));
            rec.append(Some(AgentId(1)), stop("before")).unwrap();
            let filler = fs.fill();
            // Low disk first: new work is refused by the watermark.
            wait_until(
                "the watermark",
                || matches!(rec.admit(), Err(Refusal::LowDisk { min, .. }) if min == 1 << 20),
            );
            // Records do not fit: each append fails (a big one with a blob, small ones too),
            // none is half-written.
            let mut refused = 0;
            let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
            if rec
                .append(Some(AgentId(1)), large_write(1, big.clone(), Vec::new()))
                .is_err()
            {
                refused += 1;
            }
            for i in 0..2000 {
                if rec
                    .append(
                        Some(AgentId(1)),
                        stop(&format!("full {i} {}", "p".repeat(3000))),
                    )
                    .is_err()
                {
                    refused += 1;
                }
            }
            assert!(refused > 0, "{durability}: the disk never filled");
            assert!(
                matches!(rec.admit(), Err(Refusal::Failed { .. })),
                "{durability}"
            );
            let leftovers: Vec<_> = std::fs::read_dir(dir.join(blob::BLOBS_DIR))
                .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(
                leftovers
                    .iter()
                    .all(|n| !n.to_string_lossy().contains("tmp")),
                "{durability}: {leftovers:?}"
            );
            // The log so far verifies: no partial frame left.
            let v = scan(&dir, ScanOptions { signatures: true }, |_, _| {}).unwrap();
            assert!(
                v.problem.is_none() && v.torn_tail.is_none(),
                "{durability}: {v:?}"
            );
            std::fs::remove_file(&filler).unwrap();
            // No call needed: the writer retries on its own; then admit clears too.
            wait_until("resumption", || rec.admit().is_ok());
            rec.append(Some(AgentId(2)), stop("after")).unwrap();
            rec.append(Some(AgentId(2)), large_write(2, big.clone(), Vec::new()))
                .unwrap();
            drop(rec);
            let v = full(&dir);
            assert_eq!(v.exit_code(), 0, "{durability}: {:?}", v.problem);
            let log = read_log(&dir).unwrap();
            // A record rolled back can free room for a gap record before the disk fills
            // again: there may be several gaps; together they count every refusal.
            let gaps: Vec<_> = log
                .iter()
                .filter_map(|(r, _)| match &r.event {
                    RecordEvent::RecorderResumed {
                        refused: n,
                        failed_at_ms,
                        resumed_at_ms,
                        what,
                    } => Some((*n, *failed_at_ms <= *resumed_at_ms, what.clone())),
                    _ => None,
                })
                .collect();
            assert!(!gaps.is_empty(), "{durability}: no gap record");
            let total: u64 = gaps.iter().map(|g| g.0).sum();
            assert!(total >= refused, "{durability}: {total} < {refused}");
            assert!(
                gaps.iter().all(|g| g.1 && g.2.contains("No space left")),
                "{durability}: {gaps:?}"
            );
            let reasons: Vec<_> = log
                .iter()
                .filter_map(|(r, _)| match &r.event {
                    RecordEvent::KernelStop { reason } if !reason.starts_with("full") => {
                        Some(reason.clone())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(reasons, ["before", "after"], "{durability}");
            assert_eq!(
                log.last().unwrap().0.event,
                large_write(2, big.clone(), Vec::new())
            );
        }
    }

    #[test]
    fn an_agent_over_its_share_gets_summaries_not_blobs_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RecorderOptions {
            share_bytes: 64 << 10,
            ..RecorderOptions::default()
        };
        let (rec, _) = Recorder::open_with(dir.path(), opts).unwrap();
        let data = |i: u32| -> Vec<u8> { (0..20_000u32).map(|j| (i * 7 + j) as u8).collect() };
        let mut reported = Vec::new();
        for i in 0..10 {
            rec.append(
                Some(AgentId(1)),
                large_write(u64::from(i), data(i), Vec::new()),
            )
            .unwrap();
            reported.extend(rec.over_share(AgentId(1)));
            // Other agents and kernel records keep their own (or no) share.
            rec.append(Some(AgentId(2)), stop("other")).unwrap();
            assert_eq!(rec.over_share(AgentId(2)), None);
        }
        // Summarized payloads keep the agent within its share so far; its records still
        // count, and the first one over is reported (once).
        assert!(reported.is_empty(), "{reported:?}");
        assert!(rec.usage(AgentId(1)) <= 64 << 10);
        for _ in 0..2000 {
            rec.append(Some(AgentId(1)), stop("small")).unwrap();
            reported.extend(rec.over_share(AgentId(1)));
        }
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert!(reported[0].0 > 64 << 10 && reported[0].1 == 64 << 10);
        drop(rec);
        let blobs: u64 = std::fs::read_dir(dir.path().join(blob::BLOBS_DIR))
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(blobs <= 64 << 10, "{blobs}");
        let log = read_log(dir.path()).unwrap();
        let last = log
            .iter()
            .rev()
            .find(|(r, _)| {
                r.agent == Some(AgentId(1)) && matches!(r.event, RecordEvent::Syscall { .. })
            })
            .unwrap();
        let RecordEvent::Syscall {
            call: agentos_syscalls::Syscall::Write { data: kept, .. },
            ..
        } = &last.0.event
        else {
            panic!("{:?}", last.0.event);
        };
        let text = String::from_utf8(kept.clone()).unwrap();
        let whole = data(9);
        assert_eq!(
            text,
            format!(
                "…[20000 bytes, blake3 {}; not kept: over the agent's recorder share]",
                blake3::hash(&whole).to_hex()
            )
        );
        assert_eq!(full(dir.path()).exit_code(), 0);
    }

    /// A segment whose header says its writer bounded records holds its frames to
    /// `MAX_RECORD`; an older segment (no flag) is still read up to `MAX_RECORD_READ`.
    #[test]
    fn the_record_limit_is_the_segments_and_old_logs_still_read() {
        use super::format::{GENESIS, MAX_RECORD};
        for flags in [0, format::FLAG_BOUNDED] {
            let dir = tempfile::tempdir().unwrap();
            let header = SegmentHeader {
                version: VERSION,
                flags,
                log_id: [3; 16],
                key_id: [0; 8],
                prev_chain: GENESIS,
                start_seq: 0,
                break_segment: 0,
                break_offset: 0,
            };
            let mut seg = header.encode().to_vec();
            let mut chain = GENESIS;
            for (seq, reason) in [(0, "r".repeat(MAX_RECORD as usize + 10)), (1, "ok".into())] {
                let body = postcard::to_stdvec(&RecordBodyRef {
                    agent: &None,
                    event: &stop(&reason),
                })
                .unwrap();
                let meta = FrameMeta {
                    seq,
                    wall_ms: 1,
                    mono_us: 1,
                };
                chain = push_frame(&mut seg, &chain, TYPE_RECORD, meta, &body);
            }
            std::fs::write(dir.path().join(segment_name(1)), &seg).unwrap();
            let v = scan(dir.path(), ScanOptions { signatures: false }, |_, _| {}).unwrap();
            if flags == 0 {
                assert_eq!((v.problem, v.records), (None, 2));
            } else {
                let p = v.problem.unwrap();
                assert_eq!((p.kind, p.seq, p.offset), (ProblemKind::Tampered, 0, 96));
                assert!(p.what.contains("over the limit"), "{}", p.what);
            }
        }
    }

    #[test]
    fn a_replaced_key_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = Recorder::open(dir.path()).unwrap();
        rec.append(None, stop("one")).unwrap();
        drop(rec);
        std::fs::remove_file(dir.path().join("key")).unwrap();
        std::fs::remove_file(dir.path().join("key.pub")).unwrap();
        key::load_or_create(dir.path()).unwrap();
        let v = full(dir.path());
        let p = v.problem.unwrap();
        assert_eq!((p.kind, p.seq, p.segment), (ProblemKind::Tampered, 0, 1));
        assert!(p.what.contains("key"), "{}", p.what);
    }
}

//! The on-disk format of the flight recorder.
//!
//! ```text
//! STATE_DIR/recorder/
//!   segment-000001.log          one segment per kernel start (or after a break)
//!   segment-000001.log.torn-T   bytes of a torn tail cut off by recovery at time T (kept aside)
//!   key        (0600)           the kernel's ed25519 signing key (32 secret bytes)
//!   key.pub                     its public key (32 bytes); key id = blake3(key.pub)[..8]
//!   HEAD                        the latest signed checkpoint (JSON, replaced atomically)
//!   origin, checkpoint, tile/   the transparency log over the records (see [`super::tlog`]):
//!                               nothing in the segments changes for it, old logs get it on open
//!   blobs/<blake3 hex>          a syscall payload over 4 KiB, named by its digest in a
//!                               `SyscallBlobs` record (see [`super::blob`])
//!
//! segment := header frame*
//!
//! header (96 bytes, little endian):
//!   0 +----------+---------+-------+--------+--------+------------+-----------+---------+
//!     | magic    | version | flags | log id | key id | prev chain | start seq | ...     |
//!     | AGOSREC1 | u16 = 2 | u16   | [16]   | [8]    | [32]       | u64       |         |
//!   0 +----------+---------+-------+--------+--------+------------+-----------+---------+
//!     8          10        12      28       36       68           76
//!  76 +---------------+--------------+----------+--------------------+
//!     | break segment | break offset | reserved | crc32(bytes 0..92) |
//!     | u32 (0: none) | u64          | u32 = 0  | u32                |
//!  76 +---------------+--------------+----------+--------------------+
//!     76              80             88         92                   96
//!
//! flags: bit 0 (FLAG_BOUNDED) — this segment's writer bounds every body to MAX_RECORD, and
//!        the verifier holds its frames to that; segments without it (written before the
//!        bound) are read up to MAX_RECORD_READ.
//!
//! frame (version 2; every integer little endian):
//!   0 +----------+----------+----------+-------------+-------------+
//!     | len: u32 | type: u8 | seq: u64 | wall_ms: u64| mono_us: u64|
//!   0 +----------+----------+----------+-------------+-------------+
//!     0          4          5          13            21            29
//!  29 +------------------+-------------+-----------+
//!     | body: len bytes  | chain: [32] | crc: u32  |
//!  29 +------------------+-------------+-----------+
//!     29                 29+len        61+len      65+len
//!
//!   type 1: a record; seq is its sequence number, wall_ms (ms since the Unix epoch) and
//!           mono_us (µs since the kernel started) when it was written; body =
//!           postcard({ agent, event }), the rest of the [`Record`].
//!   type 2: a checkpoint; seq = the checkpoint's next_seq; body = postcard(Checkpoint).
//!
//! chain := blake3(previous chain ‖ bytes 0..29+len)   header and body: the first frame of the
//!          log chains from 32 zero bytes; a segment's header repeats the chain head and the
//!          next sequence number it continues from, so a deleted or reordered segment is
//!          detected.
//! crc   := crc32(bytes 0..61+len)   tells a torn tail (a short frame, or a bad CRC with
//!          nothing valid after it: a crash mid-write) from tampering (a frame with a good CRC
//!          whose chain does not match, or a bad frame followed by good ones).
//!
//! Version 1 segments (still read, never written) had no seq or times in the frame header:
//! `len | type | body | chain | crc`, body = postcard(whole Record), chain = blake3(previous
//! chain ‖ type ‖ body). A log may hold version 1 segments followed by version 2 ones.
//!
//! checkpoint := { next_seq, chain, wall_ms, signature }
//!          signature = ed25519(key, "agentos-checkpoint-v1" ‖ log id ‖ next_seq ‖ chain):
//!          records 0..next_seq are sealed by the chain head `chain`. The latest one is also in
//!          HEAD, so cutting the log's tail below it is detected as truncation.
//! ```
//!
//! Every syscall, decision, signal, spawn and exit is one [`Record`]. Changing, dropping or
//! reordering a frame breaks every chain value after it; [`super::verify`] reports the first
//! bad one with its sequence number and byte offset.

use std::path::PathBuf;

use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::{AgentId, Errno, JailReport, Reply, Signal, Syscall};
use serde::{Deserialize, Serialize};

/// The genesis chain value.
pub const GENESIS: [u8; 32] = [0; 32];

/// Bytes of the chain value in each frame.
pub const CHAIN_LEN: usize = 32;

/// The largest record body, shared by the writer and the verifier: the writer bounds every
/// event ([`super::bound::bound`]) so that its body fits, and refuses (an error, nothing
/// written) a body over it; the verifier reads every body up to it. 1 MiB: a bounded event is
/// far smaller (its strings are summarized, its payloads are blobs).
pub const MAX_RECORD: u32 = 1 << 20;

/// The largest body the verifier still reads in segments written before [`MAX_RECORD`]
/// bounded the writer (their header lacks [`FLAG_BOUNDED`]). A length over it is a corrupt
/// length.
pub const MAX_RECORD_READ: u32 = 64 << 20;

/// Segment header flag: the writer bounded every record body to [`MAX_RECORD`]; the verifier
/// holds the segment's frames to it.
pub const FLAG_BOUNDED: u16 = 1;

/// The segment file magic.
pub const MAGIC: [u8; 8] = *b"AGOSREC1";

/// The format version this build writes in segment headers.
pub const VERSION: u16 = 2;

/// The first format version (frames without seq and times in their header); still read.
pub const VERSION_1: u16 = 1;

/// Bytes of a segment header.
pub const HEADER_LEN: usize = 96;

/// Bytes of a version 2 frame's header: length, type, seq, wall and monotonic time.
pub const FRAME_HEADER: usize = 4 + 1 + 8 + 8 + 8;

/// Bytes of a frame around its body: header, chain, CRC.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER + CHAIN_LEN + 4;

/// [`FRAME_OVERHEAD`] of version 1 frames (length, type, chain, CRC).
const FRAME_OVERHEAD_V1: usize = 4 + 1 + CHAIN_LEN + 4;

/// Frame type of a [`Record`].
pub const TYPE_RECORD: u8 = 1;
/// Frame type of a [`Checkpoint`].
pub const TYPE_CHECKPOINT: u8 = 2;

/// The domain separator of checkpoint signatures.
pub const SIGNING_CONTEXT: &[u8] = b"agentos-checkpoint-v1";

/// A segment's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u16,
    /// [`FLAG_BOUNDED`] or 0.
    pub flags: u16,
    /// Chosen at random when the log was created; the same in every segment.
    pub log_id: [u8; 16],
    /// `blake3(public key)[..8]` of the key that signs this segment's checkpoints.
    pub key_id: [u8; 8],
    /// The chain head this segment continues from.
    pub prev_chain: [u8; 32],
    /// The sequence number of this segment's first record.
    pub start_seq: u64,
    /// Nonzero when this segment starts after a segment that failed verification (tampering):
    /// that segment's number and the byte offset of its first bad frame.
    pub break_segment: u32,
    pub break_offset: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..28].copy_from_slice(&self.log_id);
        b[28..36].copy_from_slice(&self.key_id);
        b[36..68].copy_from_slice(&self.prev_chain);
        b[68..76].copy_from_slice(&self.start_seq.to_le_bytes());
        b[76..80].copy_from_slice(&self.break_segment.to_le_bytes());
        b[80..88].copy_from_slice(&self.break_offset.to_le_bytes());
        let crc = crc32fast::hash(&b[..92]);
        b[92..96].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The largest frame body this segment may hold: [`MAX_RECORD`] when its writer bounded
    /// records ([`FLAG_BOUNDED`]), [`MAX_RECORD_READ`] for older segments.
    pub fn max_body(&self) -> u32 {
        if self.flags & FLAG_BOUNDED != 0 {
            MAX_RECORD
        } else {
            MAX_RECORD_READ
        }
    }

    /// Decodes a header; the error says what is wrong with it.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, String> {
        if b.len() < HEADER_LEN {
            return Err(format!(
                "segment header cut short ({} of {HEADER_LEN} bytes)",
                b.len()
            ));
        }
        if b[0..8] != MAGIC {
            return Err("not a recorder segment (bad magic)".into());
        }
        if crc32fast::hash(&b[..92]).to_le_bytes() != b[92..96] {
            return Err("segment header CRC does not match".into());
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION && version != VERSION_1 {
            return Err(format!(
                "segment format version {version}, this build reads {VERSION_1} and {VERSION}"
            ));
        }
        let mut h = SegmentHeader {
            version,
            flags: u16::from_le_bytes([b[10], b[11]]),
            log_id: [0; 16],
            key_id: [0; 8],
            prev_chain: [0; 32],
            start_seq: 0,
            break_segment: 0,
            break_offset: 0,
        };
        h.log_id.copy_from_slice(&b[12..28]);
        h.key_id.copy_from_slice(&b[28..36]);
        h.prev_chain.copy_from_slice(&b[36..68]);
        h.start_seq = u64_at(b, 68);
        h.break_segment = u32::from_le_bytes([b[76], b[77], b[78], b[79]]);
        h.break_offset = u64_at(b, 80);
        Ok(h)
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// `blake3(prev ‖ covered)`: `covered` is a frame's header and body (version 2) or its
/// type and body (version 1).
pub fn chain_next(prev: &[u8; 32], covered: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(covered);
    *h.finalize().as_bytes()
}

/// The header fields of a frame besides its length and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameMeta {
    pub seq: u64,
    pub wall_ms: u64,
    pub mono_us: u64,
}

/// Appends one version 2 frame (`body` already encoded) to `out`; returns the new chain head.
pub fn push_frame(
    out: &mut Vec<u8>,
    prev: &[u8; 32],
    ty: u8,
    meta: FrameMeta,
    body: &[u8],
) -> [u8; 32] {
    let start = out.len();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.push(ty);
    out.extend_from_slice(&meta.seq.to_le_bytes());
    out.extend_from_slice(&meta.wall_ms.to_le_bytes());
    out.extend_from_slice(&meta.mono_us.to_le_bytes());
    out.extend_from_slice(body);
    let chain = chain_next(prev, &out[start..]);
    out.extend_from_slice(&chain);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    chain
}

/// One frame as found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    pub ty: u8,
    /// Header fields (all zero in version 1 frames, whose records carry them in the body).
    pub meta: FrameMeta,
    pub body: &'a [u8],
    /// The bytes the chain value covers (after the previous chain value).
    pub covered: &'a [u8],
    pub chain: [u8; 32],
    /// Bytes of the whole frame.
    pub len: usize,
}

/// Why the bytes at an offset are not a whole, intact frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes left than the frame needs.
    Short,
    /// A length over the segment's limit ([`SegmentHeader::max_body`]).
    Length(u32),
    /// The CRC does not match.
    Crc,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Short => write!(f, "frame cut short"),
            FrameError::Length(n) => write!(f, "frame length {n} is over the limit"),
            FrameError::Crc => write!(f, "frame CRC does not match"),
        }
    }
}

/// Parses the frame of segment format `version` at the start of `b` (CRC checked, chain not),
/// with a body of up to [`MAX_RECORD_READ`] bytes.
pub fn parse_frame(b: &[u8], version: u16) -> Result<RawFrame<'_>, FrameError> {
    parse_frame_within(b, version, MAX_RECORD_READ)
}

/// [`parse_frame`] with a body of up to `max` bytes (a segment's
/// [`SegmentHeader::max_body`]).
pub fn parse_frame_within(b: &[u8], version: u16, max: u32) -> Result<RawFrame<'_>, FrameError> {
    let (header, overhead) = if version == VERSION_1 {
        (5, FRAME_OVERHEAD_V1)
    } else {
        (FRAME_HEADER, FRAME_OVERHEAD)
    };
    if b.len() < overhead {
        return Err(FrameError::Short);
    }
    let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if len > max {
        return Err(FrameError::Length(len));
    }
    let total = overhead + len as usize;
    if b.len() < total {
        return Err(FrameError::Short);
    }
    let body_end = header + len as usize;
    let crc_at = body_end + CHAIN_LEN;
    if crc32fast::hash(&b[..crc_at]).to_le_bytes() != b[crc_at..crc_at + 4] {
        return Err(FrameError::Crc);
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&b[body_end..crc_at]);
    let (meta, covered) = if version == VERSION_1 {
        (FrameMeta::default(), &b[4..body_end])
    } else {
        (
            FrameMeta {
                seq: u64_at(b, 5),
                wall_ms: u64_at(b, 13),
                mono_us: u64_at(b, 21),
            },
            &b[..body_end],
        )
    };
    Ok(RawFrame {
        ty: b[4],
        meta,
        body: &b[header..body_end],
        covered,
        chain,
        len: total,
    })
}

/// Whether any intact frame starts after `from` in `b` (a bad frame followed by good ones is
/// tampering, not a torn tail).
pub fn intact_frame_after(b: &[u8], from: usize, version: u16) -> Option<usize> {
    (from..b.len().saturating_sub(FRAME_OVERHEAD_V1 - 1))
        .find(|&at| parse_frame(&b[at..], version).is_ok())
}

/// The body of a version 2 record frame: the [`Record`] without what the header holds.
#[derive(Debug, Serialize)]
pub struct RecordBodyRef<'a> {
    pub agent: &'a Option<AgentId>,
    pub event: &'a RecordEvent,
}

#[derive(Deserialize)]
struct RecordBody {
    agent: Option<AgentId>,
    event: RecordEvent,
}

/// The [`Record`] of a record frame of segment format `version`.
pub fn decode_record(version: u16, frame: &RawFrame<'_>) -> Result<Record, postcard::Error> {
    if version == VERSION_1 {
        return postcard::from_bytes(frame.body);
    }
    let b: RecordBody = postcard::from_bytes(frame.body)?;
    Ok(Record {
        seq: frame.meta.seq,
        wall_ms: frame.meta.wall_ms,
        mono_us: frame.meta.mono_us,
        agent: b.agent,
        event: b.event,
    })
}

/// A signed statement: records `0..next_seq` end with chain head `chain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub next_seq: u64,
    pub chain: [u8; 32],
    pub wall_ms: u64,
    #[serde(with = "sig_bytes")]
    pub signature: [u8; 64],
}

/// The bytes a checkpoint signs.
pub fn checkpoint_message(log_id: &[u8; 16], next_seq: u64, chain: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + 16 + 8 + 32);
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(log_id);
    m.extend_from_slice(&next_seq.to_le_bytes());
    m.extend_from_slice(chain);
    m
}

mod sig_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = Vec::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

/// The latest checkpoint, kept in `recorder/HEAD` (JSON, hex strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub log_id: String,
    pub key_id: String,
    /// The segment holding the checkpoint frame.
    pub segment: u32,
    pub next_seq: u64,
    pub chain: String,
    pub signature: String,
    pub wall_ms: u64,
}

/// How the policy decided a syscall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Whether the call was let through (after the kernel mode was applied).
    pub allowed: bool,
    /// The policy's own verdict, before the mode.
    pub policy_allowed: bool,
    /// The deciding rule, `id (file:line)`; empty for a default deny or a built-in call.
    pub rule: String,
    pub reason: String,
    /// The call broke the policy (in permissive mode it is still let through).
    pub violation: bool,
    /// `strict`, `permissive`, `audit`, or `builtin` for calls no rule governs.
    pub mode: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordEvent {
    KernelStart {
        pid: u32,
        uid: u32,
        version: String,
        state_dir: PathBuf,
    },
    KernelStop {
        reason: String,
    },
    Spawn {
        name: Option<String>,
        program: String,
        args: Vec<String>,
        policy_path: String,
        policy_digest: [u8; 32],
        launcher_pid: u32,
    },
    SpawnRefused {
        program: String,
        reason: String,
    },
    Sandbox(JailReport),
    Handshake {
        sdk: String,
        abi: u16,
    },
    Syscall {
        id: u64,
        call: Syscall,
        decision: DecisionRecord,
        result: Result<Reply, Errno>,
        duration_us: u64,
    },
    Signal {
        signal: Signal,
        source: String,
        reason: String,
        delivered: bool,
    },
    ProtocolViolation {
        reason: String,
    },
    Exit {
        status: ExitStatus,
    },
    /// The agent's seccomp filter stopped a syscall (reported through the user-notification
    /// listener); it was answered EPERM.
    SandboxDenied {
        /// The syscall's name (`syscall_<nr>` when unknown).
        syscall: String,
        nr: i64,
        args: [u64; 6],
    },
    /// At kernel start: the sandbox layers the host offers, and whether the kernel runs with
    /// `--allow-degraded-sandbox` (spawns then proceed with missing layers).
    SandboxCapabilities {
        layers: Vec<agentos_syscalls::Layer>,
        allow_degraded: bool,
    },
    /// A call parked for operator approval (`requires_approval`), before anyone can see it in
    /// `agentctl approvals`.
    ApprovalRequested {
        /// The approval id, bound to this one request.
        approval: u64,
        /// The agent's request id.
        request: u64,
        action: String,
        resource: String,
        /// The rule that asked for approval, `id (file:line)`.
        rule: String,
    },
    /// How a parked call's approval ended.
    ApprovalDecided {
        approval: u64,
        request: u64,
        approved: bool,
        /// `approved`, `denied`, `timed out` or `agent ended`.
        outcome: String,
        /// Who decided: `operator (uid N)`, or `kernel` for a timeout.
        by: String,
        /// Milliseconds the call waited.
        waited_ms: u64,
    },
    /// An operator replaced the agent's policy.
    PolicyReloaded {
        old_digest: [u8; 32],
        new_digest: [u8; 32],
        path: String,
    },
    /// Right after `Spawn`: host paths the jail lets the agent read beyond its runtime and
    /// its policy's `sandbox: read_only` (a script's directory, the kernel's Python SDK).
    /// Appended (not a field of `Spawn`) so that older segments still decode.
    ReadOnlyGranted {
        paths: Vec<PathBuf>,
    },
    /// Recovery at start cut a torn tail (a crash mid-write) off the end of a segment; the
    /// bytes are kept beside it as `segment-N.log.torn-<ms>`.
    Recovery {
        segment: u32,
        offset: u64,
        bytes_dropped: u64,
    },
    /// At start the existing log failed verification (tampering); it is kept as is and this
    /// segment's header names the break.
    RecorderBroken {
        segment: u32,
        offset: u64,
        seq: u64,
        what: String,
    },
    /// The agent's working memory was snapshotted to `/state/checkpoints/<number>` (on disk
    /// at `STATE_DIR/agents/<id>/checkpoints/<number>`), by the `Checkpoint` syscall or
    /// SIGUSR1 (`trigger`). Not a recorder checkpoint ([`Checkpoint`]).
    MemoryCheckpoint {
        number: u64,
        files: u64,
        bytes: u64,
        trigger: String,
    },
    /// Right after `Spawn`: the agent's working memory was restored from another agent's
    /// memory checkpoint (`agentctl spawn --restore ID[:N]`).
    MemoryRestored {
        from: AgentId,
        number: u64,
        files: u64,
        bytes: u64,
    },
    /// An attempt the jail refuses without seccomp (a path the agent's root hides or that is
    /// read-only for it, a signal aimed outside its pid namespace), seen through the seccomp
    /// listener and let through for the jail to answer (`kernel/src/sandbox_access.rs`).
    SandboxAccess {
        /// The syscall's name.
        syscall: String,
        /// What it aimed at, as the agent named it (`/etc/shadow`, `pid 4242`, `@name`).
        target: String,
        /// Why the jail refuses it.
        why: String,
    },
    /// A flood of sandbox events: after the first few of one syscall in a window, the rest of
    /// the window is counted, not recorded one by one; this record carries the exact count.
    SandboxFlood {
        syscall: String,
        /// Events of `syscall` in the window that have no record of their own.
        suppressed: u64,
        /// The window's start, milliseconds since the Unix epoch, and its length.
        window_start_ms: u64,
        window_ms: u64,
    },
    /// A [`RecordEvent::Syscall`] with payloads over [`super::blob::BLOB_THRESHOLD`] moved to
    /// content-addressed blobs (`recorder/blobs/<hex>`): those fields are empty here and each
    /// is named by a [`super::blob::BlobRef`]. Readers never see it: verification loads the
    /// blobs and hands out the plain `Syscall` event.
    SyscallBlobs {
        id: u64,
        call: Syscall,
        decision: DecisionRecord,
        result: Result<Reply, Errno>,
        duration_us: u64,
        blobs: Vec<super::blob::BlobRef>,
    },
    /// The agent met one of its resource limits (`sandbox.limits`: an rlimit or its cgroup),
    /// seen by the kernel (`kernel/src/sandbox_limits.rs`): a call the limit refuses, a file
    /// at its size limit, an exit by `SIGXCPU`/`SIGXFSZ`, or what its cgroup counted.
    SandboxLimit {
        /// `processes`, `open_files`, `address_space`, `file_size`, `cpu_seconds`, `memory` or
        /// `scratch_bytes` (its scratch tmpfs full).
        resource: String,
        /// The limit in force (a count, bytes or seconds).
        limit: u64,
        /// What the agent had in use (same unit; for a cgroup counter, the count), 0 unknown.
        used: u64,
        /// What met it: a syscall name, `write`, `exit` or `cgroup`.
        by: String,
        /// The same, as a sentence for the operator.
        detail: String,
    },
    /// The recorder could not write (a full disk, an I/O error) from `failed_at_ms` and wrote
    /// again at `resumed_at_ms`: the gap in the log. No record was lost in it: `refused`
    /// records were refused (their calls answered with an error, never performed), and
    /// everything written before the failure still chains to this record.
    RecorderResumed {
        failed_at_ms: u64,
        resumed_at_ms: u64,
        /// Records refused while it could not write.
        refused: u64,
        /// The first error, as the writer saw it.
        what: String,
    },
    /// The operator's event hook (`--on-event`) failed for one event: it exited non-zero,
    /// could not be started, outlived its timeout (and was killed), or the queue to it was
    /// full (the event was dropped). The kernel never waits for a hook; this is the trace.
    HookFailed {
        /// The event's kind (`approval_pending`, `violation`, …).
        event: String,
        /// What went wrong, for the operator.
        why: String,
    },
    /// One agent's copy of an MCP server (`--mcp`) ended without the agent ending: it
    /// exited, crashed, or was killed after a call timed out. The next call restarts it after
    /// `backoff_ms`.
    McpServerExited {
        /// The server's declared name.
        server: String,
        /// What ended it, with the end of its stderr.
        why: String,
        /// Failed runs in a row before this one (0: its first run, or the first after a copy
        /// that answered calls).
        restarts: u32,
        /// The wait before the next start.
        backoff_ms: u64,
    },
    /// A connection the agent asked its egress proxy for, judged (action `network`, resource
    /// `target`) and, when allowed, made: recorded before the agent's client hears the answer.
    Egress {
        /// The connection's number in the agent's life (1, 2, …): its `EgressClosed` names it.
        conn: u64,
        /// `CONNECT` (a tunnel: TLS the proxy never sees inside) or the plain-HTTP method.
        method: String,
        /// `HOST:PORT` as the agent asked for it.
        target: String,
        /// The address the proxy resolved and connected to (or refused: a loopback, private
        /// or host address no rule names literally); empty when it did not get that far.
        address: String,
        decision: DecisionRecord,
        /// `Ok`: connected; `Err`: what the agent's client was answered (a `403` carries the
        /// rule and the reason).
        result: Result<(), Errno>,
    },
    /// A connection of [`RecordEvent::Egress`] ended: bytes each way and how long it lasted.
    EgressClosed {
        conn: u64,
        /// Bytes from the agent to the server (the request line and headers of a plain-HTTP
        /// request included).
        sent: u64,
        /// Bytes from the server to the agent.
        received: u64,
        duration_ms: u64,
        /// `closed`, `agent ended`, or the error that ended it.
        why: String,
    },
    /// A witness (`--witness URL=VKEY`) cosigned the transparency log's checkpoint of `size`
    /// records (C2SP tlog-witness); the cosignature is in recorder/checkpoint.witnessed.
    WitnessCosigned {
        /// The witness's name (its key name).
        witness: String,
        size: u64,
    },
    /// A witness did not cosign the checkpoint of `size` records after the retries: it
    /// refused it (the HTTP status and its answer) or could not be reached.
    WitnessFailed {
        witness: String,
        size: u64,
        why: String,
    },
    /// The recorder's signing key was rotated (`agentctl recorder rotate-key`): from the
    /// record after this one, checkpoints, `HEAD`, checkpoint notes and new segments are
    /// signed by `new_public`. `signature` is the old key's (ed25519) over
    /// [`key_rotation_message`] (the log id, this record's sequence number and both keys): a
    /// verifier that trusts the old key follows it to the new one.
    KeyRotated {
        old_public: [u8; 32],
        new_public: [u8; 32],
        #[serde(with = "sig_bytes")]
        signature: [u8; 64],
    },
}

/// What the old key signs to announce the new one ([`RecordEvent::KeyRotated`]).
pub fn key_rotation_message(
    log_id: &[u8; 16],
    seq: u64,
    old_public: &[u8; 32],
    new_public: &[u8; 32],
) -> Vec<u8> {
    let mut m = b"agentos recorder key rotation v1\n".to_vec();
    m.extend_from_slice(log_id);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(old_public);
    m.extend_from_slice(new_public);
    m
}

/// One entry of the log. In version 2 segments `seq`, `wall_ms` and `mono_us` are frame
/// header fields and the body holds the rest ([`RecordBodyRef`]); version 1 bodies hold it
/// whole (this struct's postcard encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Microseconds since the kernel started (monotonic).
    pub mono_us: u64,
    pub agent: Option<AgentId>,
    pub event: RecordEvent,
}

/// The file name of segment `n`.
pub fn segment_name(n: u32) -> String {
    format!("segment-{n:06}.log")
}

//! The per-agent tree (DESIGN §6): the mount table's backends, the agent's quota and its
//! descriptor table. Every file syscall lands here after the policy has allowed it.
//!
//! | mount | backend | writable |
//! |---|---|---|
//! | `/mem/working` | [`MemFs`] in the agent record | yes |
//! | `/mem/episodic`, `/mem/semantic` | [`agentos_vfs::Store`] (`STATE_DIR/memory.redb`) | yes |
//! | `/workspace` | the host dir, every access `openat2`'d beneath an `O_PATH` root fd | yes (policy decides) |
//! | `/policy` | `security.md` (the active policy text), `digest` (its blake3, hex) | no |
//! | `/state/checkpoints` | `<n>/<path>`: the files of working-memory checkpoint `n` | no |
//! | `/ipc/inbox` | [`crate::ipc::view`]: pending messages, read-only | — |
//!
//! **Persistent memory** is keyed by the agent's `--name` (namespace `name:<name>`), so a
//! later agent with the same name — on this kernel or after a restart — finds it. An agent
//! without a name gets the namespace `agent:<id>`, removed when it ends (and any left over by
//! a killed kernel is removed at the next start): unnamed agents have no memory that
//! outlives them.
//!
//! **Quota**: one budget of bytes and files per agent (`Config::working_quota`) across its
//! writable tree — working memory, its persistent namespace (counted from what is already
//! there), and the growth of workspace files it writes. A write that would exceed it fails
//! with `QuotaExceeded` before anything is changed. A working-memory file is charged its data,
//! its path's length and `agentos_vfs::FILE_OVERHEAD` (64) bytes, since the kernel keeps all
//! three in memory: long names cannot cost uncharged kernel memory. A `Rename` there is
//! charged the change of its path's length (and frees a file it replaces), checked before
//! anything moves.
//!
//! **Descriptors**: `Open` hands out up to `Config::max_fds` descriptors per agent; they die
//! with the agent (the table is in its record). No payload is larger than one frame: reads
//! are capped at [`chunk_limit`], and a one-shot `Read` of a larger file is refused.
//!
//! **Host I/O**: every function here is synchronous. The server runs those that touch the
//! host (the workspace, the persistent store, checkpoints) on the bounded pool of
//! [`crate::hostio`], never on a runtime worker; working memory, `/policy` and `/ipc` run
//! inline. So no lock that an inline call takes (`usage`, the descriptor table, working
//! memory) is ever held across a host call: a host write reserves its quota growth under
//! `usage`, lets go, writes, and settles or refunds ([`Charge`]); host writes of one agent
//! are serialized by their own lock (`host_writes`, taken only on the pool) so the size each
//! one measures is the size it changes.
//!
//! **Only regular files and directories are served from the workspace.** Every open beneath
//! the workspace root is `O_NONBLOCK | O_NOCTTY` (so the open itself never waits), a path is
//! first looked at through an `O_PATH` descriptor (a FIFO, socket or device is refused without
//! being opened), and what was opened is checked again with `fstat` on the opened descriptor
//! (one swapped in between is refused too). The refusal is `Unsupported` naming the path and
//! its type; `List` leaves such entries out; `Unlink` removes them (it opens nothing).
//!
//! **Checkpoints** are written to `STATE_DIR/agents/<id>/checkpoints/<n>` (postcard of
//! [`CheckpointFile`], written to a temp file, fsynced and renamed), so they outlive the agent
//! and the kernel; together they stay within the agent's `--checkpoint-bytes` (a checkpoint past
//! it is refused with `QuotaExceeded` before anything is written).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use agentos_syscalls::{AgentId, DirEntry, Errno, FileKind, FileStat, OpenMode, WriteMode};
use agentos_vfs::{resolve, MemFs, Mount, Store, MOUNTS};
use rustix::fs::OFlags;
use serde::{Deserialize, Serialize};

use crate::agent::{lock, Agent};
use crate::ipc::view;
use crate::kernel::{now_ms, KernelInner};

const EPISODIC: &str = "episodic";
const SEMANTIC: &str = "semantic";
/// What a response frame may need beyond its payload (ids, tags, length prefixes).
const FRAME_OVERHEAD: u32 = 4096;

/// The largest payload one answer carries for a frame limit of `max_frame`.
pub(crate) fn chunk_limit(max_frame: u32) -> u64 {
    u64::from(max_frame.saturating_sub(FRAME_OVERHEAD).max(1))
}

/// A working-memory checkpoint on disk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CheckpointFile {
    /// Format version (1).
    pub version: u32,
    pub agent: u64,
    pub number: u64,
    pub taken_ms: u64,
    /// `(path, modified_ms, data)`, as [`MemFs::snapshot`] gives them.
    pub files: Vec<(String, u64, Vec<u8>)>,
}

/// What the agent holds open.
#[derive(Debug)]
enum Handle {
    /// A file of a kernel-served mount, re-read or appended through the mount on each call.
    Virtual { path: String, write: bool },
    /// A workspace file (a regular file), opened beneath the workspace root. Shared so a
    /// read or write runs on the pool without holding the descriptor table.
    Host(Arc<HostFile>),
}

/// An open workspace file; its offset is locked only by host calls on the pool.
#[derive(Debug)]
struct HostFile {
    file: std::fs::File,
    write: bool,
    append: bool,
    offset: Mutex<u64>,
}

impl Handle {
    fn host(file: std::fs::File, write: bool, append: bool) -> Self {
        Handle::Host(Arc::new(HostFile {
            file,
            write,
            append,
            offset: Mutex::new(0),
        }))
    }
}

#[derive(Debug)]
struct OpenFile {
    handle: Handle,
    /// The offset of a `Virtual` handle (a `Host` one keeps its own).
    offset: u64,
}

/// The agent's descriptor table.
#[derive(Debug, Default)]
pub(crate) struct FdTable {
    next: u32,
    open: BTreeMap<u32, OpenFile>,
}

/// The per-agent state of the tree that is not working memory itself.
#[derive(Debug)]
pub(crate) struct AgentTree {
    /// The persistent-memory namespace (`name:<name>` or `agent:<id>`).
    pub namespace: String,
    /// Whether the namespace is removed when the agent ends (unnamed agents).
    pub ephemeral: bool,
    /// The workspace root, `O_PATH`, opened at spawn.
    pub workspace_root: Option<OwnedFd>,
    /// (bytes, files) in use across the writable tree, and the quota.
    usage: Mutex<(u64, u64)>,
    quota: (u64, u64),
    fds: Mutex<FdTable>,
    /// The number of the last checkpoint taken (0: none yet) and the bytes the agent's
    /// checkpoint files hold on disk (its checkpoint dir is its own, new with the agent).
    last_checkpoint: Mutex<(u64, u64)>,
    checkpoint_dir: PathBuf,
    /// Serializes the agent's host writes (workspace, persistent store); taken only on the
    /// host I/O pool, never on a runtime worker.
    host_writes: Mutex<()>,
    /// The agent's share of the host I/O pool.
    pub io_slots: crate::hostio::AgentSlots,
}

impl AgentTree {
    pub fn new(
        namespace: String,
        ephemeral: bool,
        workspace_root: Option<OwnedFd>,
        usage: (u64, u64),
        quota: (u64, u64),
        checkpoint_dir: PathBuf,
    ) -> Self {
        AgentTree {
            namespace,
            ephemeral,
            workspace_root,
            usage: Mutex::new(usage),
            quota,
            fds: Mutex::new(FdTable::default()),
            last_checkpoint: Mutex::new((0, 0)),
            checkpoint_dir,
            host_writes: Mutex::new(()),
            io_slots: crate::hostio::AgentSlots::default(),
        }
    }

    /// Closes every descriptor (the agent has ended).
    pub fn close_all(&self) {
        lock(&self.fds).open.clear();
    }
}

/// The persistent namespace of an agent.
pub(crate) fn namespace_of(name: Option<&str>, id: AgentId) -> (String, bool) {
    match name {
        Some(n) => (format!("name:{n}"), false),
        None => (format!("agent:{id}"), true),
    }
}

fn read_only(path: &str) -> Errno {
    Errno::PermissionDenied {
        rule: "read-only mount".into(),
        reason: format!("{path} is read-only: /policy and /state are views the kernel keeps"),
    }
}

fn io_errno(path: &str, e: &std::io::Error) -> Errno {
    let full = format!("/workspace{path}");
    match e.raw_os_error() {
        Some(libc::EXDEV) => Errno::PermissionDenied {
            rule: "workspace".into(),
            reason: format!(
                "{full} resolves outside the workspace (a `..`, an absolute symlink, a symlink climbing out or a mount crossing); refused"
            ),
        },
        Some(libc::ELOOP) => Errno::PermissionDenied {
            rule: "workspace".into(),
            reason: format!("{full} goes through a magic link or a symlink loop; refused"),
        },
        Some(libc::ENOENT) => Errno::NotFound { what: full },
        Some(libc::ENOTDIR) => Errno::NotDirectory { path: full },
        Some(libc::EISDIR) => Errno::IsDirectory { path: full },
        Some(libc::EEXIST) => Errno::AlreadyExists { path: full },
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => Errno::PermissionDenied {
            rule: "host".into(),
            reason: format!("the host refused {full}: {e}"),
        },
        // O_NONBLOCK: a file under a lease (or lock) another host process holds answers at once
        // instead of waiting for the lease to be broken.
        Some(libc::EAGAIN) => Errno::Busy {
            what: format!("{full} is leased or locked by another process on the host; try again"),
        },
        // A FIFO without a reader, or a socket, opened for writing with O_NONBLOCK (one swapped
        // in after the O_PATH look).
        Some(libc::ENXIO) => Errno::Unsupported {
            what: format!(
                "{full} is a FIFO, a socket or a device; the kernel serves only regular files and directories from the workspace"
            ),
        },
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Errno::QuotaExceeded {
            what: format!("the host filesystem is full writing {full}"),
        },
        _ => Errno::Internal {
            reason: format!("{full}: {e}"),
        },
    }
}

fn too_large(size: u64, limit: u64) -> Errno {
    Errno::TooLarge { size, limit }
}

/// The path relative to the workspace root (`.` for the root).
fn rel(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        r => r,
    }
}

impl AgentTree {
    fn workspace(&self) -> Result<std::os::fd::BorrowedFd<'_>, Errno> {
        self.workspace_root
            .as_ref()
            .map(AsFd::as_fd)
            .ok_or_else(|| Errno::NotFound {
                what: "/workspace: this agent has no workspace; spawn it with `agentctl spawn --workspace DIR`".into(),
            })
    }

    /// Charges a growth of `bytes` (negative: shrink) and `files` to the quota, or refuses
    /// it; the caller holds `usage` across the check and the write.
    fn charge(
        &self,
        usage: &mut (u64, u64),
        bytes: i128,
        files: i64,
        path: &str,
    ) -> Result<(), Errno> {
        let new_bytes = (i128::from(usage.0) + bytes).max(0) as u64;
        let new_files = (i64::try_from(usage.1).unwrap_or(i64::MAX) + files).max(0) as u64;
        if bytes > 0 && new_bytes > self.quota.0 {
            return Err(Errno::QuotaExceeded {
                what: format!(
                    "writing {path} would make the agent's files {new_bytes} bytes, over its quota of {} bytes; free space (Unlink) or ask the operator for a larger --quota-bytes",
                    self.quota.0
                ),
            });
        }
        if files > 0 && new_files > self.quota.1 {
            return Err(Errno::QuotaExceeded {
                what: format!(
                    "creating {path} would make {new_files} files, over the agent's quota of {}; remove some or ask for a larger --quota-files",
                    self.quota.1
                ),
            });
        }
        Ok(())
    }

    fn apply(usage: &mut (u64, u64), bytes: i128, files: i64) {
        usage.0 = (i128::from(usage.0) + bytes).max(0) as u64;
        usage.1 = (i64::try_from(usage.1).unwrap_or(i64::MAX) + files).max(0) as u64;
    }

    /// Checks a change of `bytes` and `files` against the quota and reserves its growth now,
    /// without holding `usage` across the host call that follows: [`Charge::settle`] after
    /// the call succeeds (a shrink is applied then), dropped unsettled it refunds the growth.
    fn reserve(&self, bytes: i128, files: i64, path: &str) -> Result<Charge<'_>, Errno> {
        let mut usage = lock(&self.usage);
        self.charge(&mut usage, bytes, files, path)?;
        Self::apply(&mut usage, bytes.max(0), files.max(0));
        Ok(Charge {
            tree: self,
            bytes,
            files,
            settled: false,
        })
    }
}

/// A quota change reserved before a host call (see [`AgentTree::reserve`]).
struct Charge<'a> {
    tree: &'a AgentTree,
    bytes: i128,
    files: i64,
    settled: bool,
}

impl Charge<'_> {
    /// The host call succeeded: the growth stays, a shrink is applied.
    fn settle(mut self) {
        self.settled = true;
        AgentTree::apply(
            &mut lock(&self.tree.usage),
            self.bytes.min(0),
            self.files.min(0),
        );
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        if !self.settled {
            AgentTree::apply(
                &mut lock(&self.tree.usage),
                -self.bytes.max(0),
                -self.files.max(0),
            );
        }
    }
}

/// What a workspace open found: a regular file (its size) or a directory.
#[derive(Debug, Clone, Copy)]
enum Served {
    File(u64),
    Dir,
}

/// Checks what `file` (opened beneath the workspace as `/workspace{p}`) is: only a regular
/// file or a directory is served; a FIFO, a socket or a device is refused with `Unsupported`.
fn served(file: &std::fs::File, p: &str) -> Result<(Served, std::fs::Metadata), Errno> {
    use std::os::unix::fs::FileTypeExt;
    let meta = file.metadata().map_err(|e| io_errno(p, &e))?;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok((Served::File(meta.len()), meta));
    } else if t.is_dir() {
        return Ok((Served::Dir, meta));
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "neither a regular file nor a directory"
    };
    Err(Errno::Unsupported {
        what: format!(
            "/workspace{p} is {what}; the kernel serves only regular files and directories from the workspace"
        ),
    })
}

/// Opens `/workspace{p}` with `flags` (see [`crate::sys::open_beneath`]: `O_NONBLOCK`, beneath
/// the root) and checks what was opened with `fstat` on the opened descriptor. With `look`
/// (and without `O_PATH` in `flags`) the path is first looked at through an `O_PATH`
/// descriptor, so a FIFO, socket or device is refused without being opened at all (a path
/// that does not exist yet passes the look when `flags` create it).
fn open_ws(
    root: std::os::fd::BorrowedFd<'_>,
    p: &str,
    flags: OFlags,
    mode: u32,
    look: bool,
) -> Result<(std::fs::File, Served), Errno> {
    if look && !flags.contains(OFlags::PATH) {
        match crate::sys::open_beneath(root, rel(p), OFlags::PATH, 0) {
            Ok(fd) => {
                served(&std::fs::File::from(fd), p)?;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && flags.contains(OFlags::CREATE) => {}
            Err(e) => return Err(io_errno(p, &e)),
        }
    }
    let fd = crate::sys::open_beneath(root, rel(p), flags, mode).map_err(|e| {
        // ENXIO: a socket, or a FIFO without a reader opened for writing; name which.
        let named = (e.raw_os_error() == Some(libc::ENXIO))
            .then(|| crate::sys::open_beneath(root, rel(p), OFlags::PATH, 0).ok())
            .flatten()
            .and_then(|fd| served(&std::fs::File::from(fd), p).err());
        named.unwrap_or_else(|| io_errno(p, &e))
    })?;
    let file = std::fs::File::from(fd);
    let (kind, _) = served(&file, p)?;
    Ok((file, kind))
}

/// The size after a write of `len` bytes in `mode` over a file of `old` bytes.
fn grown(old: Option<u64>, len: u64, mode: WriteMode) -> Result<u64, ()> {
    match (mode, old) {
        (WriteMode::CreateNew, Some(_)) => Err(()),
        (WriteMode::Append, Some(o)) => Ok(o + len),
        _ => Ok(len),
    }
}

/// Resolves a path of `agent`'s own tree. `/agent/<own id>/…` is the same as `…`; another
/// agent's tree never resolves here (the server refuses it as a trust violation first).
pub(crate) fn resolve_own(agent: &Agent, path: &str) -> Result<Mount, Errno> {
    match resolve(path)? {
        Mount::AgentTree { id, rest } if id == agent.id.0 => match resolve(&rest)? {
            Mount::AgentTree { .. } => Err(Errno::NotFound { what: rest }),
            m => Ok(m),
        },
        Mount::AgentTree { id, .. } => Err(Errno::PermissionDenied {
            rule: "trust".into(),
            reason: format!("agent {} may not reach the tree of agent {id}", agent.id),
        }),
        m => Ok(m),
    }
}

/// When `path` names another agent's tree: why that is a trust violation.
pub(crate) fn foreign_tree(agent: &Agent, path: &str) -> Option<String> {
    match resolve(path) {
        Ok(Mount::AgentTree { id, .. }) if id != agent.id.0 => Some(format!(
            "agent {} reached for the tree of agent {id} ({path})",
            agent.id
        )),
        _ => None,
    }
}

fn store(k: &KernelInner) -> &Store {
    &k.memory
}

fn policy_file(agent: &Agent, rest: &str) -> Result<Vec<u8>, Errno> {
    let p = agent.policy();
    match rest {
        "/security.md" => Ok(p.text().as_bytes().to_vec()),
        "/digest" => Ok(format!("{}\n", hex::encode(p.digest())).into_bytes()),
        "/" => Err(Errno::IsDirectory {
            path: "/policy".into(),
        }),
        other => Err(Errno::NotFound {
            what: format!("/policy{other} (the policy dir holds security.md and digest)"),
        }),
    }
}

fn slice(data: &[u8], offset: u64, len: Option<u64>) -> Vec<u8> {
    let size = data.len() as u64;
    let start = offset.min(size);
    let end = len.map_or(size, |l| start.saturating_add(l).min(size));
    data.get(start as usize..end as usize)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// Splits `/state/checkpoints/<n>/<path>` (given as `/<n>/<path>`) and loads checkpoint n.
fn checkpoint_view(tree: &AgentTree, rest: &str) -> Result<Option<(MemFs, String)>, Errno> {
    let mut parts = rest.trim_start_matches('/').splitn(2, '/');
    let Some(first) = parts.next().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let n: u64 = first.parse().map_err(|_| Errno::NotFound {
        what: format!("/state/checkpoints/{first} (checkpoints are numbered 1, 2, …)"),
    })?;
    let file = load_checkpoint_file(&tree.checkpoint_dir, n)?;
    let fs = MemFs::restore(file.files, u64::MAX, u64::MAX)?;
    Ok(Some((fs, format!("/{}", parts.next().unwrap_or("")))))
}

fn checkpoint_numbers(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

pub(crate) fn load_checkpoint_file(dir: &Path, n: u64) -> Result<CheckpointFile, Errno> {
    let path = dir.join(n.to_string());
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Errno::NotFound {
            what: format!("checkpoint {n} ({})", path.display()),
        },
        _ => Errno::Internal {
            reason: format!("cannot read checkpoint {}: {e}", path.display()),
        },
    })?;
    postcard::from_bytes(&bytes).map_err(|e| Errno::Internal {
        reason: format!("checkpoint {} does not decode: {e}", path.display()),
    })
}

/// The checkpoint of agent `from` to restore: `number`, or its latest.
pub(crate) fn find_checkpoint(
    k: &KernelInner,
    from: AgentId,
    number: Option<u64>,
) -> Result<CheckpointFile, Errno> {
    let dir = k
        .config
        .agents_dir()
        .join(from.to_string())
        .join("checkpoints");
    let n = match number {
        Some(n) => n,
        None => checkpoint_numbers(&dir)
            .last()
            .copied()
            .ok_or_else(|| Errno::NotFound {
                what: format!("agent {from} has no checkpoint ({})", dir.display()),
            })?,
    };
    load_checkpoint_file(&dir, n)
}

/// `Read`: `len` bytes (to the end when `None`) at `offset`.
pub(crate) fn read(
    k: &KernelInner,
    agent: &Agent,
    path: &str,
    offset: u64,
    len: Option<u64>,
) -> Result<Vec<u8>, Errno> {
    let limit = chunk_limit(k.config.max_frame);
    if let Some(l) = len {
        if l > limit {
            return Err(too_large(l, limit));
        }
    }
    let size_check = |size: u64| -> Result<(), Errno> {
        if len.is_none() && size.saturating_sub(offset) > limit {
            return Err(too_large(size.saturating_sub(offset), limit));
        }
        Ok(())
    };
    let tree = &agent.tree;
    match resolve_own(agent, path)? {
        Mount::Working(p) => {
            let fs = lock(&agent.working);
            size_check(fs.stat(&p).map(|s| s.size).unwrap_or(0))?;
            fs.read(&p, offset, len)
        }
        Mount::Episodic(p) => {
            size_check(store(k).size(&tree.namespace, EPISODIC, &p)?.unwrap_or(0))?;
            store(k).read(&tree.namespace, EPISODIC, &p, offset, len)
        }
        Mount::Semantic(p) => {
            size_check(store(k).size(&tree.namespace, SEMANTIC, &p)?.unwrap_or(0))?;
            store(k).read(&tree.namespace, SEMANTIC, &p, offset, len)
        }
        Mount::Policy(p) => {
            let data = policy_file(agent, &p)?;
            size_check(data.len() as u64)?;
            Ok(slice(&data, offset, len))
        }
        Mount::Checkpoints(p) => match checkpoint_view(tree, &p)? {
            Some((fs, inner)) => {
                size_check(fs.stat(&inner).map(|s| s.size).unwrap_or(0))?;
                fs.read(&inner, offset, len)
            }
            None => Err(Errno::IsDirectory {
                path: "/state/checkpoints".into(),
            }),
        },
        Mount::Workspace(p) => {
            let root = tree.workspace()?;
            let (file, kind) = open_ws(root, &p, OFlags::RDONLY, 0, true)?;
            let Served::File(size) = kind else {
                return Err(Errno::IsDirectory {
                    path: format!("/workspace{p}"),
                });
            };
            size_check(size)?;
            let want = len.unwrap_or(size.saturating_sub(offset)).min(limit);
            read_at(&file, offset, want).map_err(|e| io_errno(&p, &e))
        }
        Mount::Ipc(p) => match inbox_name(&p)? {
            Some(name) if !name.is_empty() => {
                Ok(slice(&view::inbox_read(agent, name)?, offset, len))
            }
            _ => Err(Errno::IsDirectory {
                path: format!("/ipc{p}"),
            }),
        },
        Mount::Inner(p) => Err(Errno::IsDirectory { path: p.into() }),
        Mount::AgentTree { rest, .. } | Mount::Nowhere(rest) => Err(Errno::NotFound { what: rest }),
    }
}

fn read_at(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Creates the missing parent directories of `rel` beneath the workspace root.
///
/// O(path length × log depth) host path walks, not one walk per component (which is
/// quadratic in the depth: ~0.5 s for a PATH_MAX-deep path): the whole parent path is tried
/// first (the common case: it exists); otherwise the deepest existing ancestor is found by
/// bisection (existence is monotone along a path), and each missing directory is created and
/// opened relative to its parent's descriptor (a directory just made, beneath the root).
fn make_parents(root: std::os::fd::BorrowedFd<'_>, path: &str) -> Result<(), Errno> {
    let r = rel(path);
    let Some((parents, _)) = r.rsplit_once('/') else {
        return Ok(());
    };
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
    match crate::sys::open_beneath(root, parents, dir_flags, 0) {
        Ok(_) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(io_errno(path, &e)),
    }
    let comps: Vec<&str> = parents.split('/').collect();
    // The parent path of the first `n` components, `.` for none.
    let prefix = |n: usize| -> &str {
        match n {
            0 => ".",
            n => {
                let end = comps[..n].iter().map(|c| c.len() + 1).sum::<usize>() - 1;
                &parents[..end]
            }
        }
    };
    // `lo` components exist, `hi` do not.
    let (mut lo, mut hi) = (0, comps.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match crate::sys::open_beneath(root, prefix(mid), dir_flags, 0) {
            Ok(_) => lo = mid,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => hi = mid,
            Err(e) => return Err(io_errno(path, &e)),
        }
    }
    let mut dir =
        crate::sys::open_beneath(root, prefix(lo), dir_flags, 0).map_err(|e| io_errno(path, &e))?;
    for comp in &comps[lo..] {
        match crate::sys::mkdir_in(dir.as_fd(), comp, 0o755) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(io_errno(path, &e)),
        }
        dir = crate::sys::open_beneath(dir.as_fd(), comp, dir_flags, 0)
            .map_err(|e| io_errno(path, &e))?;
    }
    Ok(())
}

/// The size of a workspace file, `None` when it does not exist; a directory, FIFO, socket
/// or device is refused (looked at through `O_PATH`: nothing is opened for I/O).
fn workspace_size(root: std::os::fd::BorrowedFd<'_>, p: &str) -> Result<Option<u64>, Errno> {
    match crate::sys::open_beneath(root, rel(p), OFlags::PATH, 0) {
        Ok(fd) => match served(&std::fs::File::from(fd), p)?.0 {
            Served::File(size) => Ok(Some(size)),
            Served::Dir => Err(Errno::IsDirectory {
                path: format!("/workspace{p}"),
            }),
        },
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(io_errno(p, &e)),
    }
}

fn write_flags(mode: WriteMode) -> OFlags {
    OFlags::WRONLY
        | OFlags::CREATE
        | match mode {
            WriteMode::Truncate => OFlags::TRUNC,
            WriteMode::Append => OFlags::APPEND,
            WriteMode::CreateNew => OFlags::EXCL,
        }
}

/// `Write`: one-shot write, quota-checked before anything changes.
pub(crate) fn write(
    k: &KernelInner,
    agent: &Agent,
    path: &str,
    data: &[u8],
    mode: WriteMode,
) -> Result<u64, Errno> {
    let tree = &agent.tree;
    let len = data.len() as u64;
    let mount = resolve_own(agent, path)?;
    match mount {
        Mount::Working(p) => {
            let mut usage = lock(&tree.usage);
            let mut fs = lock(&agent.working);
            let old = fs
                .stat(&p)
                .ok()
                .filter(|s| s.kind == FileKind::File)
                .map(|s| s.size);
            if let Ok(new) = grown(old, len, mode) {
                // A new file's path and bookkeeping cost quota too (`MemFs::entry_cost`).
                let meta = if old.is_none() {
                    MemFs::entry_cost(&p)
                } else {
                    0
                };
                let delta = i128::from(new) - i128::from(old.unwrap_or(0)) + i128::from(meta);
                let files = i64::from(old.is_none());
                tree.charge(&mut usage, delta, files, path)?;
                fs.set_now(now_ms());
                let n = fs.write(&p, data, mode)?;
                AgentTree::apply(&mut usage, delta, files);
                Ok(n)
            } else {
                fs.write(&p, data, mode)
            }
        }
        Mount::Episodic(ref p) | Mount::Semantic(ref p) => {
            let area = if matches!(mount, Mount::Episodic(_)) {
                EPISODIC
            } else {
                SEMANTIC
            };
            let s = store(k);
            let _serial = lock(&tree.host_writes);
            let old = s.size(&tree.namespace, area, p)?;
            let new = grown(old, len, mode).map_err(|()| Errno::AlreadyExists {
                path: format!("/mem/{area}{p}"),
            })?;
            let delta = i128::from(new) - i128::from(old.unwrap_or(0));
            let files = i64::from(old.is_none());
            let charge = tree.reserve(delta, files, path)?;
            let n = s.write(&tree.namespace, area, p, data, mode, now_ms())?;
            charge.settle();
            Ok(n)
        }
        Mount::Workspace(p) => {
            let root = tree.workspace()?;
            let _serial = lock(&tree.host_writes);
            let old = workspace_size(root, &p)?;
            let new = grown(old, len, mode).map_err(|()| Errno::AlreadyExists {
                path: format!("/workspace{p}"),
            })?;
            let delta = i128::from(new) - i128::from(old.unwrap_or(0));
            let files = i64::from(old.is_none());
            let charge = tree.reserve(delta, files, path)?;
            make_parents(root, &p)?;
            let (mut file, _) = open_ws(root, &p, write_flags(mode), 0o644, false)?;
            file.write_all(data).map_err(|e| io_errno(&p, &e))?;
            charge.settle();
            Ok(len)
        }
        Mount::Policy(_) | Mount::Checkpoints(_) | Mount::Inner(_) => {
            Err(read_only(&agentos_vfs::normalize(path)?))
        }
        Mount::Ipc(p) => Err(inbox_read_only(&p)),
        Mount::AgentTree { rest, .. } | Mount::Nowhere(rest) => Err(Errno::NotFound {
            what: format!("{rest}: nothing is mounted there (see DESIGN §6 for the agent's tree)"),
        }),
    }
}

fn inner_entries(root: &str) -> Vec<DirEntry> {
    MOUNTS
        .iter()
        .find(|(r, _)| *r == root)
        .map(|(_, names)| {
            names
                .iter()
                .map(|n| DirEntry {
                    name: (*n).into(),
                    kind: FileKind::Directory,
                    size: 0,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where a path under `/ipc` (`p` is the rest, e.g. `/inbox/0000000003-from-7`) lands: `None`
/// for `/ipc` itself, `Some("")` for the inbox, `Some(name)` for one pending message.
fn inbox_name(p: &str) -> Result<Option<&str>, Errno> {
    match p.strip_prefix("/inbox") {
        _ if p.is_empty() || p == "/" => Ok(None),
        Some("") => Ok(Some("")),
        Some(rest) if rest.starts_with('/') && !rest[1..].contains('/') => Ok(Some(&rest[1..])),
        _ => Err(Errno::NotFound {
            what: format!("/ipc{p}: only {} is under /ipc", view::INBOX_DIR),
        }),
    }
}

/// Messages leave the inbox only by `Recv`, and arrive only by another agent's `Send`.
fn inbox_read_only(p: &str) -> Errno {
    Errno::PermissionDenied {
        rule: "read-only mount".into(),
        reason: format!(
            "/ipc{p} is read-only: messages arrive by another agent's Send and leave by Recv"
        ),
    }
}

/// `List`.
pub(crate) fn list(k: &KernelInner, agent: &Agent, path: &str) -> Result<Vec<DirEntry>, Errno> {
    let tree = &agent.tree;
    match resolve_own(agent, path)? {
        Mount::Working(p) => lock(&agent.working).list(&p),
        Mount::Episodic(p) => store(k).list(&tree.namespace, EPISODIC, &p),
        Mount::Semantic(p) => store(k).list(&tree.namespace, SEMANTIC, &p),
        Mount::Policy(p) if p == "/" => Ok(["digest", "security.md"]
            .iter()
            .map(|n| DirEntry {
                name: (*n).into(),
                kind: FileKind::File,
                size: policy_file(agent, &format!("/{n}")).map_or(0, |d| d.len() as u64),
            })
            .collect()),
        Mount::Policy(p) => Err(Errno::NotDirectory {
            path: format!("/policy{p}"),
        }),
        Mount::Checkpoints(p) => match checkpoint_view(tree, &p)? {
            Some((fs, inner)) => fs.list(&inner),
            None => Ok(checkpoint_numbers(&tree.checkpoint_dir)
                .into_iter()
                .map(|n| DirEntry {
                    name: n.to_string(),
                    kind: FileKind::Directory,
                    size: 0,
                })
                .collect()),
        },
        Mount::Workspace(p) => {
            let root = tree.workspace()?;
            let (dir, _) = open_ws(root, &p, OFlags::RDONLY | OFlags::DIRECTORY, 0, true)?;
            let mut entries: Vec<DirEntry> = crate::sys::list_dir(OwnedFd::from(dir))
                .map_err(|e| io_errno(&p, &e))?
                .into_iter()
                .map(|(name, is_dir, size)| DirEntry {
                    name,
                    kind: if is_dir {
                        FileKind::Directory
                    } else {
                        FileKind::File
                    },
                    size,
                })
                .collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        }
        Mount::Inner(root) => Ok(inner_entries(root)),
        Mount::Ipc(p) => match inbox_name(&p)? {
            None => Ok(vec![DirEntry {
                name: "inbox".into(),
                kind: FileKind::Directory,
                size: 0,
            }]),
            Some("") => Ok(view::inbox_entries(agent)),
            Some(name) => Err(Errno::NotDirectory {
                path: format!("{}/{name}", view::INBOX_DIR),
            }),
        },
        Mount::AgentTree { rest, .. } | Mount::Nowhere(rest) => Err(Errno::NotFound { what: rest }),
    }
}

fn dir_stat(read_only: bool) -> FileStat {
    FileStat {
        kind: FileKind::Directory,
        size: 0,
        modified_ms: 0,
        read_only,
    }
}

/// Whether `/workspace{rest}` is a directory, looked at beneath the workspace root through an
/// `O_PATH` descriptor (nothing is opened for I/O, nothing outside the workspace is reached).
pub(crate) fn workspace_dir(agent: &Agent, rest: &str) -> bool {
    agent.tree.workspace().is_ok_and(|root| {
        crate::sys::open_beneath(root, rel(rest), OFlags::PATH | OFlags::DIRECTORY, 0).is_ok()
    })
}

/// `Stat`.
pub(crate) fn stat(k: &KernelInner, agent: &Agent, path: &str) -> Result<FileStat, Errno> {
    let tree = &agent.tree;
    match resolve_own(agent, path)? {
        Mount::Working(p) => lock(&agent.working).stat(&p),
        Mount::Episodic(p) => store(k).stat(&tree.namespace, EPISODIC, &p),
        Mount::Semantic(p) => store(k).stat(&tree.namespace, SEMANTIC, &p),
        Mount::Policy(p) if p == "/" => Ok(dir_stat(true)),
        Mount::Policy(p) => Ok(FileStat {
            kind: FileKind::File,
            size: policy_file(agent, &p)?.len() as u64,
            modified_ms: agent.started_ms,
            read_only: true,
        }),
        Mount::Checkpoints(p) => match checkpoint_view(tree, &p)? {
            Some((fs, inner)) => fs.stat(&inner).map(|s| FileStat {
                read_only: true,
                ..s
            }),
            None => Ok(dir_stat(true)),
        },
        Mount::Workspace(p) => {
            let root = tree.workspace()?;
            let (file, _) = open_ws(root, &p, OFlags::PATH, 0, false)?;
            let meta = file.metadata().map_err(|e| io_errno(&p, &e))?;
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            Ok(FileStat {
                kind: if meta.is_dir() {
                    FileKind::Directory
                } else {
                    FileKind::File
                },
                size: if meta.is_dir() { 0 } else { meta.len() },
                modified_ms,
                read_only: false,
            })
        }
        Mount::Inner(_) => Ok(dir_stat(true)),
        Mount::Ipc(p) => match inbox_name(&p)? {
            None => Ok(dir_stat(true)),
            Some(name) => view::inbox_stat(agent, name),
        },
        Mount::AgentTree { rest, .. } | Mount::Nowhere(rest) => Err(Errno::NotFound { what: rest }),
    }
}

/// `Unlink`.
pub(crate) fn unlink(k: &KernelInner, agent: &Agent, path: &str) -> Result<(), Errno> {
    let tree = &agent.tree;
    let mount = resolve_own(agent, path)?;
    match mount {
        Mount::Working(p) => {
            let mut usage = lock(&tree.usage);
            let mut fs = lock(&agent.working);
            let size = fs.stat(&p).map(|s| s.size).unwrap_or(0);
            fs.unlink(&p)?;
            let freed = size + MemFs::entry_cost(&p);
            AgentTree::apply(&mut usage, -i128::from(freed), -1);
            Ok(())
        }
        Mount::Episodic(ref p) | Mount::Semantic(ref p) => {
            let area = if matches!(mount, Mount::Episodic(_)) {
                EPISODIC
            } else {
                SEMANTIC
            };
            let size = store(k).unlink(&tree.namespace, area, p)?;
            AgentTree::apply(&mut lock(&tree.usage), -i128::from(size), -1);
            Ok(())
        }
        Mount::Workspace(p) => {
            let root = tree.workspace()?;
            let r = rel(&p);
            if r == "." {
                return Err(Errno::IsDirectory {
                    path: "/workspace".into(),
                });
            }
            let (parent, name) = r.rsplit_once('/').unwrap_or((".", r));
            let dir = crate::sys::open_beneath(root, parent, OFlags::PATH | OFlags::DIRECTORY, 0)
                .map_err(|e| io_errno(&p, &e))?;
            crate::sys::unlink_in(dir.as_fd(), name).map_err(|e| io_errno(&p, &e))
        }
        Mount::Policy(_) | Mount::Checkpoints(_) | Mount::Inner(_) => {
            Err(read_only(&agentos_vfs::normalize(path)?))
        }
        Mount::Ipc(p) => Err(inbox_read_only(&p)),
        Mount::AgentTree { rest, .. } | Mount::Nowhere(rest) => Err(Errno::NotFound { what: rest }),
    }
}

/// Where one path of a `Rename` lands: a writable backend, by kind.
#[derive(Debug)]
enum RenameSide {
    Working(String),
    Store(&'static str, String),
    Workspace(String),
}

impl RenameSide {
    /// The writable side `mount` is, or why a rename may not touch it (a read-only mount,
    /// nothing mounted).
    fn of(mount: Mount, path: &str) -> Result<Self, Errno> {
        match mount {
            Mount::Working(p) => Ok(RenameSide::Working(p)),
            Mount::Episodic(p) => Ok(RenameSide::Store(EPISODIC, p)),
            Mount::Semantic(p) => Ok(RenameSide::Store(SEMANTIC, p)),
            Mount::Workspace(p) => Ok(RenameSide::Workspace(p)),
            Mount::Policy(_) | Mount::Checkpoints(_) | Mount::Inner(_) => {
                Err(read_only(&agentos_vfs::normalize(path)?))
            }
            Mount::Ipc(p) => Err(inbox_read_only(&p)),
            Mount::AgentTree { rest, .. } | Mount::Nowhere(rest) => Err(Errno::NotFound {
                what: format!(
                    "{rest}: nothing is mounted there (see DESIGN §6 for the agent's tree)"
                ),
            }),
        }
    }

    fn mount(&self) -> String {
        match self {
            RenameSide::Working(_) => "/mem/working".into(),
            RenameSide::Store(area, _) => format!("/mem/{area}"),
            RenameSide::Workspace(_) => "/workspace".into(),
        }
    }
}

/// What a failed `renameat` of `/workspace{a}` to `/workspace{b}` means for the agent.
fn rename_errno(a: &str, b: &str, e: &std::io::Error) -> Errno {
    match e.raw_os_error() {
        Some(libc::EINVAL) => Errno::InvalidArgument {
            reason: format!("/workspace{a} cannot be moved into itself (/workspace{b})"),
        },
        Some(libc::ENOTEMPTY) => Errno::AlreadyExists {
            path: format!("/workspace{b} (a directory that is not empty)"),
        },
        Some(libc::EISDIR) => Errno::IsDirectory {
            path: format!("/workspace{b}"),
        },
        Some(libc::ENOTDIR) => Errno::NotDirectory {
            path: format!("/workspace{b}"),
        },
        Some(libc::EBUSY) => Errno::Busy {
            what: format!("/workspace{a} or /workspace{b} is a mount point or in use on the host"),
        },
        _ => io_errno(a, e),
    }
}

/// `Rename`: moves a file within one mount of the agent's writable tree, replacing a file at
/// `to` as POSIX `rename` does. Both paths resolve in the agent's own tree; a read-only mount
/// (`/policy`, `/state`, `/ipc`, the inner directories) on either side is refused like a
/// write to it, before anything changes.
///
/// - `/mem/working`: [`MemFs::rename`] (files only; directories are implicit). The quota
///   sees the new name's length (`MemFs::entry_cost`) and the replaced file freed; a longer
///   name past the quota is refused `QuotaExceeded` with nothing changed.
/// - `/workspace`: `renameat` between the two parent directories, each opened beneath the
///   workspace root like every workspace access (`..`, symlinks and mounts climbing out are
///   refused); the last components are not followed (a symlink is moved, never its target).
///   `to`'s missing parents are created, as `Write` does. Quota-neutral: workspace names cost
///   no kernel memory, and a replaced file is not refunded (as `Unlink` does not).
/// - `/mem/episodic`, `/mem/semantic`: [`Store::rename`], one transaction within the area
///   (serialized with the agent's other host writes); the replaced file is freed from the
///   quota (the store charges data, not names).
/// - Across mounts: `Unsupported`, naming both mounts and what to do instead.
pub(crate) fn rename(k: &KernelInner, agent: &Agent, from: &str, to: &str) -> Result<(), Errno> {
    let tree = &agent.tree;
    let src = RenameSide::of(resolve_own(agent, from)?, from)?;
    let dst = RenameSide::of(resolve_own(agent, to)?, to)?;
    match (src, dst) {
        (RenameSide::Working(a), RenameSide::Working(b)) => {
            let mut usage = lock(&tree.usage);
            let mut fs = lock(&agent.working);
            if a == b || fs.stat(&a)?.kind == FileKind::Directory {
                // Nothing moves: `MemFs::rename` answers (a no-op, or the directory refusal).
                return fs.rename(&a, &b);
            }
            let replaced = fs
                .stat(&b)
                .ok()
                .filter(|s| s.kind == FileKind::File)
                .map(|s| s.size + MemFs::entry_cost(&b));
            let delta = i128::from(MemFs::entry_cost(&b))
                - i128::from(MemFs::entry_cost(&a))
                - i128::from(replaced.unwrap_or(0));
            let files = -i64::from(replaced.is_some());
            tree.charge(&mut usage, delta, files, to)?;
            fs.rename(&a, &b)?;
            AgentTree::apply(&mut usage, delta, files);
            Ok(())
        }
        (RenameSide::Workspace(a), RenameSide::Workspace(b)) => {
            let root = tree.workspace()?;
            let (ra, rb) = (rel(&a), rel(&b));
            if ra == "." || rb == "." {
                return Err(Errno::InvalidArgument {
                    reason: "/workspace itself is neither renamed nor replaced; name a file or directory inside it".into(),
                });
            }
            let _serial = lock(&tree.host_writes);
            // The source exists beneath the root (looked at, not followed, not opened).
            crate::sys::open_beneath(root, ra, OFlags::PATH | OFlags::NOFOLLOW, 0)
                .map_err(|e| io_errno(&a, &e))?;
            make_parents(root, &b)?;
            let parent = |r: &'_ str, p: &str| {
                let (dir, name) = r.rsplit_once('/').unwrap_or((".", r));
                crate::sys::open_beneath(root, dir, OFlags::PATH | OFlags::DIRECTORY, 0)
                    .map(|fd| (fd, name.to_string()))
                    .map_err(|e| io_errno(p, &e))
            };
            let (from_dir, from_name) = parent(ra, &a)?;
            let (to_dir, to_name) = parent(rb, &b)?;
            crate::sys::rename_in(from_dir.as_fd(), &from_name, to_dir.as_fd(), &to_name)
                .map_err(|e| rename_errno(&a, &b, &e))
        }
        (RenameSide::Store(x, a), RenameSide::Store(y, b)) if x == y => {
            let _serial = lock(&tree.host_writes);
            if let Some(size) = store(k).rename(&tree.namespace, x, &a, &b)? {
                AgentTree::apply(&mut lock(&tree.usage), -i128::from(size), -1);
            }
            Ok(())
        }
        (src, dst) => Err(Errno::Unsupported {
            what: format!(
                "rename across mounts ({} to {}): a rename moves a file within one mount; Read the file, Write it to the new path, then Unlink the old one",
                src.mount(),
                dst.mount()
            ),
        }),
    }
}

/// `Open`: a descriptor for streaming with `ReadFd`/`WriteFd`.
pub(crate) fn open(
    k: &KernelInner,
    agent: &Agent,
    path: &str,
    mode: OpenMode,
) -> Result<u32, Errno> {
    let tree = &agent.tree;
    {
        let table = lock(&tree.fds);
        if table.open.len() >= k.config.max_fds as usize {
            return Err(Errno::Busy {
                what: format!(
                    "agent {} already holds {} open descriptors (the limit); Close some first",
                    agent.id, k.config.max_fds
                ),
            });
        }
    }
    let normalized = agentos_vfs::normalize(path)?;
    let handle = match (resolve_own(agent, path)?, mode) {
        (Mount::Workspace(p), mode) => {
            let root = tree.workspace()?;
            match mode {
                OpenMode::Read => match open_ws(root, &p, OFlags::RDONLY, 0, true)? {
                    (_, Served::Dir) => return Err(Errno::IsDirectory { path: normalized }),
                    (file, Served::File(_)) => Handle::host(file, false, false),
                },
                OpenMode::Write(m) => {
                    // Truncating frees what the file held; creating counts a file.
                    let _serial = lock(&tree.host_writes);
                    let old = workspace_size(root, &p)?;
                    let files = i64::from(old.is_none());
                    let delta = if m == WriteMode::Truncate {
                        -i128::from(old.unwrap_or(0))
                    } else {
                        0
                    };
                    let charge = tree.reserve(delta, files, &normalized)?;
                    make_parents(root, &p)?;
                    let (file, _) = open_ws(root, &p, write_flags(m), 0o644, false)?;
                    charge.settle();
                    Handle::host(file, true, m == WriteMode::Append)
                }
            }
        }
        (_, OpenMode::Read) => {
            let st = stat(k, agent, &normalized)?;
            if st.kind == FileKind::Directory {
                return Err(Errno::IsDirectory { path: normalized });
            }
            Handle::Virtual {
                path: normalized,
                write: false,
            }
        }
        (_, OpenMode::Write(m)) => {
            // Creates (or truncates) the file now; WriteFd appends.
            write(k, agent, &normalized, &[], m)?;
            Handle::Virtual {
                path: normalized,
                write: true,
            }
        }
    };
    insert(tree, handle)
}

fn insert(tree: &AgentTree, handle: Handle) -> Result<u32, Errno> {
    let mut table = lock(&tree.fds);
    // Descriptors start at 3, like a process's first free one; never reused while open.
    let mut fd = table.next.max(3);
    while table.open.contains_key(&fd) {
        fd = fd.wrapping_add(1).max(3);
    }
    table.next = fd.wrapping_add(1);
    table.open.insert(fd, OpenFile { handle, offset: 0 });
    Ok(fd)
}

/// `ReadFd`: up to `len` bytes (at most one chunk) from the descriptor's offset.
pub(crate) fn read_fd(k: &KernelInner, agent: &Agent, fd: u32, len: u32) -> Result<Vec<u8>, Errno> {
    let want = u64::from(len).min(chunk_limit(k.config.max_frame));
    let (path, offset) = match target(agent, fd)? {
        Target::Host(h) => {
            if h.write {
                return Err(Errno::BadDescriptor { fd });
            }
            let mut offset = lock(&h.offset);
            let data = read_at(&h.file, *offset, want).map_err(|e| Errno::Internal {
                reason: format!("reading descriptor {fd}: {e}"),
            })?;
            *offset += data.len() as u64;
            return Ok(data);
        }
        Target::Virtual { write: true, .. } => return Err(Errno::BadDescriptor { fd }),
        Target::Virtual {
            path,
            write: false,
            offset,
        } => (path, offset),
    };
    let data = read(k, agent, &path, offset, Some(want))?;
    if let Some(of) = lock(&agent.tree.fds).open.get_mut(&fd) {
        of.offset += data.len() as u64;
    }
    Ok(data)
}

/// What a descriptor names, taken out of the table so the table is not held across I/O.
enum Target {
    Host(Arc<HostFile>),
    Virtual {
        path: String,
        write: bool,
        offset: u64,
    },
}

fn target(agent: &Agent, fd: u32) -> Result<Target, Errno> {
    let table = lock(&agent.tree.fds);
    let of = table.open.get(&fd).ok_or(Errno::BadDescriptor { fd })?;
    Ok(match &of.handle {
        Handle::Host(h) => Target::Host(Arc::clone(h)),
        Handle::Virtual { path, write } => Target::Virtual {
            path: path.clone(),
            write: *write,
            offset: of.offset,
        },
    })
}

/// Whether serving descriptor `fd` touches the host (a workspace file, or a virtual file of
/// a host-backed mount): the server then runs the call on the host I/O pool.
pub(crate) fn fd_on_host(agent: &Agent, fd: u32) -> bool {
    match target(agent, fd) {
        Ok(Target::Host(_)) => true,
        Ok(Target::Virtual { path, .. }) => path_on_host(agent, &path),
        Err(_) => false,
    }
}

/// Whether a call on `path` touches the host: the workspace, the persistent store or the
/// checkpoints on disk (anything else is served from memory).
pub(crate) fn path_on_host(agent: &Agent, path: &str) -> bool {
    match resolve_own(agent, path) {
        Ok(
            Mount::Workspace(_) | Mount::Episodic(_) | Mount::Semantic(_) | Mount::Checkpoints(_),
        ) => true,
        Ok(
            Mount::Working(_)
            | Mount::Policy(_)
            | Mount::Inner(_)
            | Mount::Ipc(_)
            | Mount::AgentTree { .. }
            | Mount::Nowhere(_),
        )
        | Err(_) => false,
    }
}

/// `WriteFd`: writes at the descriptor's offset (at the end for append), quota-checked.
pub(crate) fn write_fd(k: &KernelInner, agent: &Agent, fd: u32, data: &[u8]) -> Result<u64, Errno> {
    let tree = &agent.tree;
    let path = match target(agent, fd)? {
        Target::Host(h) => {
            if !h.write {
                return Err(Errno::BadDescriptor { fd });
            }
            let _serial = lock(&tree.host_writes);
            let mut offset = lock(&h.offset);
            let size = h
                .file
                .metadata()
                .map_err(|e| Errno::Internal {
                    reason: format!("descriptor {fd}: {e}"),
                })?
                .len();
            let at = if h.append { size } else { *offset };
            let end = at + data.len() as u64;
            let delta = i128::from(end.saturating_sub(size));
            let charge = tree.reserve(delta, 0, &format!("descriptor {fd}"))?;
            let res = if h.append {
                (&h.file).write_all(data)
            } else {
                h.file.write_all_at(data, at)
            };
            res.map_err(|e| Errno::Internal {
                reason: format!("writing descriptor {fd}: {e}"),
            })?;
            charge.settle();
            *offset = end;
            return Ok(data.len() as u64);
        }
        Target::Virtual { write: false, .. } => return Err(Errno::BadDescriptor { fd }),
        Target::Virtual {
            path, write: true, ..
        } => path,
    };
    let n = write(k, agent, &path, data, WriteMode::Append)?;
    if let Some(of) = lock(&tree.fds).open.get_mut(&fd) {
        of.offset += n;
    }
    Ok(n)
}

/// `Close`.
pub(crate) fn close(agent: &Agent, fd: u32) -> Result<(), Errno> {
    lock(&agent.tree.fds)
        .open
        .remove(&fd)
        .map(|_| ())
        .ok_or(Errno::BadDescriptor { fd })
}

/// What one checkpoint file costs against the budget: its bytes rounded up to whole 4 KiB
/// blocks, as the host's disk keeps them (a small file still takes a block).
fn on_disk(len: u64) -> u64 {
    len.div_ceil(4096).max(1) * 4096
}

/// Snapshots working memory to `/state/checkpoints/<n>` on disk; returns `n`. Refused with
/// `QuotaExceeded`, before anything is written, when the agent's checkpoint files would go
/// past its budget (`--checkpoint-bytes`).
pub(crate) fn checkpoint(k: &KernelInner, agent: &Agent, trigger: &str) -> Result<u64, Errno> {
    let tree = &agent.tree;
    let mut last = lock(&tree.last_checkpoint);
    let (number, held) = (last.0 + 1, last.1);
    let files = lock(&agent.working).snapshot();
    let (count, bytes) = (
        files.len() as u64,
        files.iter().map(|f| f.2.len() as u64).sum::<u64>(),
    );
    let file = CheckpointFile {
        version: 1,
        agent: agent.id.0,
        number,
        taken_ms: now_ms(),
        files,
    };
    let encoded = postcard::to_stdvec(&file).map_err(|e| Errno::Internal {
        reason: format!("checkpoint {number} does not encode: {e}"),
    })?;
    // The disk budget (`--checkpoint-bytes`): refused before anything is written.
    let budget = k.config.disk.checkpoint_bytes;
    let cost = on_disk(encoded.len() as u64);
    let after = held.saturating_add(cost);
    if after > budget {
        return Err(Errno::QuotaExceeded {
            what: format!(
                "checkpoint {number} ({} bytes, {cost} on disk) would make the agent's checkpoints {after} bytes, over its budget of {budget} bytes; shrink working memory or ask the operator for a larger --checkpoint-bytes",
                encoded.len()
            ),
        });
    }
    let fail = |what: &str, e: std::io::Error| Errno::Internal {
        reason: format!(
            "cannot {what} checkpoint {number} in {}: {e}; check the state dir's disk",
            tree.checkpoint_dir.display()
        ),
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tree.checkpoint_dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail("create the dir of", e)),
        }
    }
    let tmp = tree.checkpoint_dir.join(format!(".{number}.tmp"));
    let dst = tree.checkpoint_dir.join(number.to_string());
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail("create", e))?;
    f.write_all(&encoded).map_err(|e| fail("write", e))?;
    f.sync_all().map_err(|e| fail("sync", e))?;
    drop(f);
    std::fs::rename(&tmp, &dst).map_err(|e| fail("rename", e))?;
    *last = (number, after);
    k.record(
        Some(agent.id),
        crate::recorder::RecordEvent::MemoryCheckpoint {
            number,
            files: count,
            bytes,
            trigger: trigger.into(),
        },
    );
    Ok(number)
}

/// Frees what the tree holds once the agent has ended: descriptors, and the persistent
/// memory of an unnamed agent.
pub(crate) fn agent_ended(k: &KernelInner, agent: &Agent) {
    agent.tree.close_all();
    if agent.tree.ephemeral {
        // A redb commit (fsync): moved off the runtime worker.
        let removed =
            crate::hostio::off_worker(|| store(k).remove_namespace(&agent.tree.namespace));
        if let Err(e) = removed {
            tracing::warn!(agent_id = %agent.id, error = %e, "cannot remove the unnamed agent's persistent memory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_after_writes_and_chunks() {
        assert_eq!(grown(None, 5, WriteMode::Truncate), Ok(5));
        assert_eq!(grown(Some(9), 5, WriteMode::Truncate), Ok(5));
        assert_eq!(grown(Some(9), 5, WriteMode::Append), Ok(14));
        assert_eq!(grown(None, 5, WriteMode::CreateNew), Ok(5));
        assert_eq!(grown(Some(1), 5, WriteMode::CreateNew), Err(()));
        assert_eq!(chunk_limit(16 << 20), (16 << 20) - 4096);
        assert_eq!(chunk_limit(10), 1);
        assert_eq!(rel("/"), ".");
        assert_eq!(rel("/a/b"), "a/b");
    }

    /// What a workspace open makes of each kind of entry, at once (a blocking open would
    /// hang the test): only regular files and directories are served.
    #[test]
    fn the_workspace_serves_only_regular_files_and_directories() {
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        std::fs::write(ws.join("f"), "data").unwrap();
        std::fs::create_dir(ws.join("d")).unwrap();
        mknodat(
            CWD,
            ws.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        drop(std::os::unix::net::UnixListener::bind(ws.join("sock")).unwrap());
        std::os::unix::fs::symlink("fifo", ws.join("link")).unwrap();
        let root = crate::sys::open_workspace_root(ws).unwrap();
        let root = root.as_fd();
        let refused = |p: &str, what: &str| {
            Errno::Unsupported {
            what: format!("/workspace{p} is {what}; the kernel serves only regular files and directories from the workspace"),
        }
        };
        let kind = |p: &str, flags: OFlags, look: bool| {
            // openat2 refuses a mode without O_CREAT.
            let mode = if flags.contains(OFlags::CREATE) {
                0o644
            } else {
                0
            };
            open_ws(root, p, flags, mode, look).map(|(_, k)| match k {
                Served::File(n) => format!("file {n}"),
                Served::Dir => "dir".to_string(),
            })
        };
        let write = write_flags(WriteMode::Truncate);
        assert_eq!(kind("/f", OFlags::RDONLY, true), Ok("file 4".into()));
        assert_eq!(kind("/d", OFlags::RDONLY, true), Ok("dir".into()));
        assert_eq!(kind("/new", write, true), Ok("file 0".into()));
        for (p, what) in [
            ("/fifo", "a FIFO"),
            ("/link", "a FIFO"),
            ("/sock", "a socket"),
        ] {
            for (flags, look) in [
                (OFlags::RDONLY, true),
                (OFlags::RDONLY, false),
                (OFlags::PATH, false),
                (OFlags::RDONLY | OFlags::DIRECTORY, true),
                (write, true),
            ] {
                assert_eq!(kind(p, flags, look), Err(refused(p, what)), "{p} {flags:?}");
            }
            assert_eq!(workspace_size(root, p), Err(refused(p, what)));
        }
        // Opened for writing without the look: O_NONBLOCK makes a FIFO without a reader (and
        // a socket) fail at once with ENXIO, refused the same way.
        for (p, what) in [("/fifo", "a FIFO"), ("/sock", "a socket")] {
            assert_eq!(kind(p, write, false), Err(refused(p, what)));
        }
        assert_eq!(workspace_size(root, "/f"), Ok(Some(4)));
        assert_eq!(workspace_size(root, "/nope"), Ok(None));
        let listed: Vec<String> = crate::sys::list_dir(
            crate::sys::open_beneath(root, ".", OFlags::RDONLY | OFlags::DIRECTORY, 0).unwrap(),
        )
        .unwrap()
        .into_iter()
        .map(|(n, _, _)| n)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
        assert_eq!(listed, ["d", "f", "link", "new"]);
    }

    #[test]
    fn named_memory_is_shared_by_name_unnamed_is_per_agent() {
        assert_eq!(
            namespace_of(Some("scribe"), AgentId(3)),
            ("name:scribe".into(), false)
        );
        assert_eq!(namespace_of(None, AgentId(3)), ("agent:3".into(), true));
    }

    #[test]
    fn make_parents_creates_what_is_missing_beneath_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root: OwnedFd = std::fs::File::open(dir.path()).unwrap().into();
        let root = root.as_fd();
        make_parents(root, "/a/b/c/x").unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        make_parents(root, "/a/b/d/e/x").unwrap();
        assert!(dir.path().join("a/b/d/e").is_dir());
        make_parents(root, "/top").unwrap();
        // A symlink inside the workspace is followed beneath the root, as before.
        std::os::unix::fs::symlink("a/b", dir.path().join("link")).unwrap();
        make_parents(root, "/link/n/m/x").unwrap();
        assert!(dir.path().join("a/b/n/m").is_dir());
        // One escaping it is refused.
        std::os::unix::fs::symlink("/tmp", dir.path().join("out")).unwrap();
        assert!(matches!(
            make_parents(root, "/out/z/x"),
            Err(Errno::PermissionDenied { .. })
        ));
        // A file in the way.
        std::fs::write(dir.path().join("a/f"), b"1").unwrap();
        assert!(matches!(
            make_parents(root, "/a/f/g/h/x"),
            Err(Errno::NotDirectory { .. })
        ));
        // Deep: every level made, relative to its parent.
        let deep = format!("/{}x", "d/".repeat(1500));
        make_parents(root, &deep).unwrap();
        assert!(dir.path().join(&deep[1..deep.len() - 2]).is_dir());
    }
}

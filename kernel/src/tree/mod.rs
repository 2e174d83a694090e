//! The per-agent tree (DESIGN §6): the mount table's backends, the agent's quota and its
//! descriptor table. Every file syscall lands here after the policy has allowed it.
//!
//! **What it is given**: a [`TreeCtx`] (the kernel's limits it reads, the persistent store,
//! an [`Audit`] to record checkpoints) and an [`Owner`] (the agent's id, tree state, working
//! memory, policy and inbox) — never the whole kernel, so every operation here is unit-tested
//! on temp dirs and a recording audit (`tree/ops_tests.rs`).
//!
//! **One mount, one owner**: a call resolves its path once ([`mount`]) to a [`Backend`] and the
//! path inside it; each mount's operations live together — `mem.rs` (`/mem/working`,
//! `/mem/episodic`, `/mem/semantic`), `workspace.rs` (`/workspace` and its host
//! descriptors), `checkpoints.rs` (`/state/checkpoints`, taking and finding checkpoints),
//! `views.rs` (`/policy`, `/ipc`, the inner dirs, where nothing is mounted). This file keeps
//! what every mount shares: the quota, the descriptor table, path resolution.
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
//! [`checkpoints::CheckpointFile`], written to a temp file, fsynced and renamed), so they
//! outlive the agent and the kernel; together they stay within the agent's
//! `--checkpoint-bytes` (a checkpoint past it is refused with `QuotaExceeded` before anything
//! is written).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use agentos_policy::Policy;
use agentos_syscalls::{AgentId, DirEntry, Errno, FileKind, FileStat, OpenMode, WriteMode};
use agentos_vfs::{resolve, MemFs, Mount, Store};

use crate::audit::Audit;
use crate::ipc::Inbox;
use crate::policy::PolicySlot;
use crate::util::lock;

mod checkpoints;
mod mem;
mod views;
mod workspace;

pub(crate) use checkpoints::{
    checkpoint, checkpoint_numbers, find_checkpoint, load_checkpoint_file, open_checkpoint_path,
};
pub(crate) use workspace::workspace_dir;

/// What a response frame may need beyond its payload (ids, tags, length prefixes).
const FRAME_OVERHEAD: u32 = 4096;

/// The largest payload one answer carries for a frame limit of `max_frame`.
pub(crate) fn chunk_limit(max_frame: u32) -> u64 {
    u64::from(max_frame.saturating_sub(FRAME_OVERHEAD).max(1))
}

/// What the tree needs of the kernel: its limits, the agents' persistent memory and the
/// flight recorder. Built per call by the kernel (its `tree()`), or by a test from a temp
/// store and a recording [`Audit`]; the tree names nothing else of the kernel.
#[derive(Clone, Copy)]
pub(crate) struct TreeCtx<'a> {
    pub limits: TreeLimits,
    /// Every agent's persistent memory (`/mem/episodic`, `/mem/semantic`).
    pub memory: &'a Store,
    /// Where checkpoints are recorded.
    pub audit: &'a dyn Audit,
}

/// The kernel's configuration as far as the tree reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeLimits {
    /// The frame limit (`--max-frame`): a payload is at most [`chunk_limit`] of it.
    pub max_frame: u32,
    /// Descriptors an agent may hold open (`Config::max_fds`).
    pub max_fds: u32,
    /// The bytes an agent's checkpoint files may take on disk (`--checkpoint-bytes`).
    pub checkpoint_bytes: u64,
}

/// What the tree needs of one agent: its id, its tree state, working memory, policy (for
/// `/policy`) and inbox (for `/ipc/inbox`). Taken from an agent (`From<&Agent>`, in `agent.rs`), or built by a test.
#[derive(Clone, Copy)]
pub(crate) struct Owner<'a> {
    pub id: AgentId,
    /// When the agent started (the `modified_ms` of `/policy` files).
    pub started_ms: u64,
    pub tree: &'a AgentTree,
    pub working: &'a Mutex<MemFs>,
    pub policy: &'a PolicySlot,
    pub inbox: &'a Inbox,
}

impl Owner<'_> {
    /// The agent's current policy, one snapshot.
    fn policy(&self) -> Policy {
        self.policy.load()
    }
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

fn too_large(size: u64, limit: u64) -> Errno {
    Errno::TooLarge { size, limit }
}

impl AgentTree {
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
pub(crate) fn resolve_own<'a>(agent: impl Into<Owner<'a>>, path: &str) -> Result<Mount, Errno> {
    let agent: Owner<'a> = agent.into();
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
pub(crate) fn foreign_tree<'a>(agent: impl Into<Owner<'a>>, path: &str) -> Option<String> {
    let agent: Owner<'a> = agent.into();
    match resolve(path) {
        Ok(Mount::AgentTree { id, .. }) if id != agent.id.0 => Some(format!(
            "agent {} reached for the tree of agent {id} ({path})",
            agent.id
        )),
        _ => None,
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

/// One call's context, handed to the mount that serves it: the kernel's part, the agent,
/// and the path as the agent gave it (named in quota refusals and read-only errors).
#[derive(Clone, Copy)]
struct Call<'a> {
    pub ctx: &'a TreeCtx<'a>,
    pub agent: Owner<'a>,
    pub path: &'a str,
}

/// What a `Read` asks for: `len` bytes (to the end when `None`) at `offset`, one answer's
/// payload at most (`limit`).
#[derive(Debug, Clone, Copy)]
struct Span {
    pub offset: u64,
    pub len: Option<u64>,
    pub limit: u64,
}

impl Span {
    /// Refuses a read to the end of a file of `size` bytes that does not fit one answer.
    pub fn fits(&self, size: u64) -> Result<(), Errno> {
        let rest = size.saturating_sub(self.offset);
        if self.len.is_none() && rest > self.limit {
            return Err(too_large(rest, self.limit));
        }
        Ok(())
    }
}

/// One mount's operations; `p` is the path inside the mount (as [`resolve`] gives it). A
/// call resolves its mount once ([`mount`]) and the mount does the rest.
trait Backend: Sync {
    /// Whether its calls touch the host (the server then runs them on the host I/O pool).
    fn on_host(&self) -> bool;
    fn read(&self, c: Call<'_>, p: &str, span: Span) -> Result<Vec<u8>, Errno>;
    fn write(&self, c: Call<'_>, p: &str, data: &[u8], mode: WriteMode) -> Result<u64, Errno>;
    fn list(&self, c: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno>;
    fn stat(&self, c: Call<'_>, p: &str) -> Result<FileStat, Errno>;
    fn unlink(&self, c: Call<'_>, p: &str) -> Result<(), Errno>;
    /// `Rename` of `from` to `to`, both inside this mount (`c.path`: the target as the agent
    /// gave it). A read-only mount refuses it with the error a write to `from` gets.
    fn rename(&self, c: Call<'_>, from: &str, to: &str) -> Result<(), Errno>;
    /// Where a writable mount sits (`/mem/working`, …): a rename stays within one. `None` for
    /// a read-only view (or where nothing is mounted).
    fn mount_point(&self) -> Option<&'static str>;

    /// A descriptor on `p` (`normalized`: the whole path, normalized). By default a virtual
    /// one, re-read or appended through the mount on each call: opening for reading checks
    /// that `p` is a file, opening for writing creates (or truncates) it now.
    fn open(
        &self,
        c: Call<'_>,
        p: &str,
        mode: OpenMode,
        normalized: String,
    ) -> Result<Handle, Errno> {
        match mode {
            OpenMode::Read => {
                if self.stat(c, p)?.kind == FileKind::Directory {
                    return Err(Errno::IsDirectory { path: normalized });
                }
                Ok(Handle::Virtual {
                    path: normalized,
                    write: false,
                })
            }
            OpenMode::Write(m) => {
                self.write(c, p, &[], m)?;
                Ok(Handle::Virtual {
                    path: normalized,
                    write: true,
                })
            }
        }
    }
}

/// The mount `path` lands on in `agent`'s tree, and the path inside it.
fn mount(agent: Owner<'_>, path: &str) -> Result<(&'static dyn Backend, String), Errno> {
    Ok(match resolve_own(agent, path)? {
        Mount::Working(p) => (&mem::Working, p),
        Mount::Episodic(p) => (&mem::EPISODIC, p),
        Mount::Semantic(p) => (&mem::SEMANTIC, p),
        Mount::Workspace(p) => (&workspace::Workspace, p),
        Mount::Checkpoints(p) => (&checkpoints::Checkpoints, p),
        Mount::Policy(p) => (&views::PolicyView, p),
        Mount::Ipc(p) => (&views::Ipc, p),
        Mount::Inner(root) => (&views::Inner, root.to_string()),
        Mount::AgentTree { rest, .. } | Mount::Nowhere(rest) => (&views::Nowhere, rest),
    })
}

/// `Read`: `len` bytes (to the end when `None`) at `offset`.
pub(crate) fn read<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    path: &str,
    offset: u64,
    len: Option<u64>,
) -> Result<Vec<u8>, Errno> {
    let agent: Owner<'a> = agent.into();
    let limit = chunk_limit(ctx.limits.max_frame);
    if let Some(l) = len {
        if l > limit {
            return Err(too_large(l, limit));
        }
    }
    let (m, p) = mount(agent, path)?;
    m.read(Call { ctx, agent, path }, &p, Span { offset, len, limit })
}

/// `Write`: one-shot write, quota-checked before anything changes.
pub(crate) fn write<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    path: &str,
    data: &[u8],
    mode: WriteMode,
) -> Result<u64, Errno> {
    let agent: Owner<'a> = agent.into();
    let (m, p) = mount(agent, path)?;
    m.write(Call { ctx, agent, path }, &p, data, mode)
}

/// `List`.
pub(crate) fn list<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    path: &str,
) -> Result<Vec<DirEntry>, Errno> {
    let agent: Owner<'a> = agent.into();
    let (m, p) = mount(agent, path)?;
    m.list(Call { ctx, agent, path }, &p)
}

/// `Stat`.
pub(crate) fn stat<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    path: &str,
) -> Result<FileStat, Errno> {
    let agent: Owner<'a> = agent.into();
    let (m, p) = mount(agent, path)?;
    m.stat(Call { ctx, agent, path }, &p)
}

/// `Unlink`.
pub(crate) fn unlink<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    path: &str,
) -> Result<(), Errno> {
    let agent: Owner<'a> = agent.into();
    let (m, p) = mount(agent, path)?;
    m.unlink(Call { ctx, agent, path }, &p)
}

/// `Rename`: moves a file within one mount of the agent's writable tree, replacing a file at
/// `to` as POSIX `rename` does. Both paths resolve in the agent's own tree; a read-only mount
/// (`/policy`, `/state`, `/ipc`, the inner directories) on either side refuses it like a
/// write there, and two writable mounts refuse it `Unsupported`, before anything changes.
/// Each mount moves its own files (`mem.rs`, `workspace.rs`): the quota sees a working-memory
/// name's new length and a replaced file freed, checked before anything moves.
pub(crate) fn rename<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    from: &str,
    to: &str,
) -> Result<(), Errno> {
    let agent: Owner<'a> = agent.into();
    let (src, a) = mount(agent, from)?;
    let (dst, b) = mount(agent, to)?;
    match (src.mount_point(), dst.mount_point()) {
        (Some(x), Some(y)) if x == y => src.rename(Call { ctx, agent, path: to }, &a, &b),
        (Some(x), Some(y)) => Err(Errno::Unsupported {
            what: format!(
                "rename across mounts ({x} to {y}): a rename moves a file within one mount; Read the file, Write it to the new path, then Unlink the old one"
            ),
        }),
        (None, _) => src.rename(Call { ctx, agent, path: from }, &a, &a),
        (Some(_), None) => dst.rename(Call { ctx, agent, path: to }, &b, &b),
    }
}

/// `Open`: a descriptor for streaming with `ReadFd`/`WriteFd`.
pub(crate) fn open<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    path: &str,
    mode: OpenMode,
) -> Result<u32, Errno> {
    let agent: Owner<'a> = agent.into();
    let tree = agent.tree;
    {
        let table = lock(&tree.fds);
        if table.open.len() >= ctx.limits.max_fds as usize {
            return Err(Errno::Busy {
                what: format!(
                    "agent {} already holds {} open descriptors (the limit); Close some first",
                    agent.id, ctx.limits.max_fds
                ),
            });
        }
    }
    let normalized = agentos_vfs::normalize(path)?;
    let (m, p) = mount(agent, path)?;
    let handle = m.open(Call { ctx, agent, path }, &p, mode, normalized)?;
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
pub(crate) fn read_fd<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    fd: u32,
    len: u32,
) -> Result<Vec<u8>, Errno> {
    let agent: Owner<'a> = agent.into();
    let want = u64::from(len).min(chunk_limit(ctx.limits.max_frame));
    let (path, offset) = match target(agent, fd)? {
        Target::Host(h) => return h.read_fd(fd, want),
        Target::Virtual { write: true, .. } => return Err(Errno::BadDescriptor { fd }),
        Target::Virtual {
            path,
            write: false,
            offset,
        } => (path, offset),
    };
    let data = read(ctx, agent, &path, offset, Some(want))?;
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

fn target(agent: Owner<'_>, fd: u32) -> Result<Target, Errno> {
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
pub(crate) fn fd_on_host<'a>(agent: impl Into<Owner<'a>>, fd: u32) -> bool {
    let agent: Owner<'a> = agent.into();
    match target(agent, fd) {
        Ok(Target::Host(_)) => true,
        Ok(Target::Virtual { path, .. }) => path_on_host(agent, &path),
        Err(_) => false,
    }
}

/// Whether a call on `path` touches the host: the workspace, the persistent store or the
/// checkpoints on disk (anything else is served from memory).
pub(crate) fn path_on_host<'a>(agent: impl Into<Owner<'a>>, path: &str) -> bool {
    let agent: Owner<'a> = agent.into();
    mount(agent, path).is_ok_and(|(m, _)| m.on_host())
}

/// `WriteFd`: writes at the descriptor's offset (at the end for append), quota-checked.
pub(crate) fn write_fd<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    fd: u32,
    data: &[u8],
) -> Result<u64, Errno> {
    let agent: Owner<'a> = agent.into();
    let tree = agent.tree;
    let path = match target(agent, fd)? {
        Target::Host(h) => return h.write_fd(tree, fd, data),
        Target::Virtual { write: false, .. } => return Err(Errno::BadDescriptor { fd }),
        Target::Virtual {
            path, write: true, ..
        } => path,
    };
    let n = write(ctx, agent, &path, data, WriteMode::Append)?;
    if let Some(of) = lock(&tree.fds).open.get_mut(&fd) {
        of.offset += n;
    }
    Ok(n)
}

/// `Close`.
pub(crate) fn close<'a>(agent: impl Into<Owner<'a>>, fd: u32) -> Result<(), Errno> {
    let agent: Owner<'a> = agent.into();
    lock(&agent.tree.fds)
        .open
        .remove(&fd)
        .map(|_| ())
        .ok_or(Errno::BadDescriptor { fd })
}

/// Frees what the tree holds once the agent has ended: descriptors, and the persistent
/// memory of an unnamed agent.
pub(crate) fn agent_ended<'a>(ctx: &TreeCtx<'_>, agent: impl Into<Owner<'a>>) {
    let agent: Owner<'a> = agent.into();
    agent.tree.close_all();
    if agent.tree.ephemeral {
        // A redb commit (fsync): moved off the runtime worker.
        let removed =
            crate::hostio::off_worker(|| ctx.memory.remove_namespace(&agent.tree.namespace));
        if let Err(e) = removed {
            tracing::warn!(agent_id = %agent.id, error = %e, "cannot remove the unnamed agent's persistent memory");
        }
    }
}

#[cfg(test)]
mod ops_tests;

#[cfg(test)]
mod tests {
    use super::workspace::rel;
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

    #[test]
    fn named_memory_is_shared_by_name_unnamed_is_per_agent() {
        assert_eq!(
            namespace_of(Some("scribe"), AgentId(3)),
            ("name:scribe".into(), false)
        );
        assert_eq!(namespace_of(None, AgentId(3)), ("agent:3".into(), true));
    }
}

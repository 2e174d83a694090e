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
//! three in memory: long names cannot cost uncharged kernel memory.
//!
//! **Descriptors**: `Open` hands out up to `Config::max_fds` descriptors per agent; they die
//! with the agent (the table is in its record). No payload is larger than one frame: reads
//! are capped at [`chunk_limit`], and a one-shot `Read` of a larger file is refused.
//!
//! **Checkpoints** are written to `STATE_DIR/agents/<id>/checkpoints/<n>` (postcard of
//! [`CheckpointFile`], written to a temp file, fsynced and renamed), so they outlive the agent
//! and the kernel.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    /// A workspace file, opened beneath the workspace root.
    Host {
        file: std::fs::File,
        write: bool,
        append: bool,
    },
}

#[derive(Debug)]
struct OpenFile {
    handle: Handle,
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
    /// The number of the last checkpoint taken (0: none yet).
    last_checkpoint: Mutex<u64>,
    checkpoint_dir: PathBuf,
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
            last_checkpoint: Mutex::new(0),
            checkpoint_dir,
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
            let fd = crate::sys::open_beneath(root, rel(&p), OFlags::RDONLY, 0)
                .map_err(|e| io_errno(&p, &e))?;
            let file = std::fs::File::from(fd);
            let meta = file.metadata().map_err(|e| io_errno(&p, &e))?;
            if meta.is_dir() {
                return Err(Errno::IsDirectory {
                    path: format!("/workspace{p}"),
                });
            }
            size_check(meta.len())?;
            let want = len.unwrap_or(meta.len().saturating_sub(offset)).min(limit);
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

/// The size of a workspace file, `None` when it does not exist.
fn workspace_size(root: std::os::fd::BorrowedFd<'_>, p: &str) -> Result<Option<u64>, Errno> {
    match crate::sys::open_beneath(root, rel(p), OFlags::PATH, 0) {
        Ok(fd) => {
            let meta = std::fs::File::from(fd)
                .metadata()
                .map_err(|e| io_errno(p, &e))?;
            if meta.is_dir() {
                return Err(Errno::IsDirectory {
                    path: format!("/workspace{p}"),
                });
            }
            Ok(Some(meta.len()))
        }
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
    let mut usage = lock(&tree.usage);
    match mount {
        Mount::Working(p) => {
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
            let old = s.size(&tree.namespace, area, p)?;
            let new = grown(old, len, mode).map_err(|()| Errno::AlreadyExists {
                path: format!("/mem/{area}{p}"),
            })?;
            let delta = i128::from(new) - i128::from(old.unwrap_or(0));
            let files = i64::from(old.is_none());
            tree.charge(&mut usage, delta, files, path)?;
            let n = s.write(&tree.namespace, area, p, data, mode, now_ms())?;
            AgentTree::apply(&mut usage, delta, files);
            Ok(n)
        }
        Mount::Workspace(p) => {
            let root = tree.workspace()?;
            let old = workspace_size(root, &p)?;
            let new = grown(old, len, mode).map_err(|()| Errno::AlreadyExists {
                path: format!("/workspace{p}"),
            })?;
            let delta = i128::from(new) - i128::from(old.unwrap_or(0));
            let files = i64::from(old.is_none());
            tree.charge(&mut usage, delta, files, path)?;
            make_parents(root, &p)?;
            let fd = crate::sys::open_beneath(root, rel(&p), write_flags(mode), 0o644)
                .map_err(|e| io_errno(&p, &e))?;
            let mut file = std::fs::File::from(fd);
            file.write_all(data).map_err(|e| io_errno(&p, &e))?;
            AgentTree::apply(&mut usage, delta, files);
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
            let fd = crate::sys::open_beneath(root, rel(&p), OFlags::RDONLY | OFlags::DIRECTORY, 0)
                .map_err(|e| io_errno(&p, &e))?;
            let mut entries: Vec<DirEntry> = crate::sys::list_dir(fd)
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
            let fd = crate::sys::open_beneath(root, rel(&p), OFlags::PATH, 0)
                .map_err(|e| io_errno(&p, &e))?;
            let meta = std::fs::File::from(fd)
                .metadata()
                .map_err(|e| io_errno(&p, &e))?;
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
    let mut usage = lock(&tree.usage);
    match mount {
        Mount::Working(p) => {
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
            AgentTree::apply(&mut usage, -i128::from(size), -1);
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
            let (flags, write, append) = match mode {
                OpenMode::Read => (OFlags::RDONLY, false, false),
                OpenMode::Write(m) => {
                    // Truncating frees what the file held; creating counts a file.
                    let old = workspace_size(root, &p)?;
                    let mut usage = lock(&tree.usage);
                    let files = i64::from(old.is_none());
                    tree.charge(&mut usage, 0, files, &normalized)?;
                    make_parents(root, &p)?;
                    let delta = if m == WriteMode::Truncate {
                        -i128::from(old.unwrap_or(0))
                    } else {
                        0
                    };
                    let fd = crate::sys::open_beneath(root, rel(&p), write_flags(m), 0o644)
                        .map_err(|e| io_errno(&p, &e))?;
                    AgentTree::apply(&mut usage, delta, files);
                    drop(usage);
                    let file = std::fs::File::from(fd);
                    return insert(
                        tree,
                        Handle::Host {
                            file,
                            write: true,
                            append: m == WriteMode::Append,
                        },
                    );
                }
            };
            let fd =
                crate::sys::open_beneath(root, rel(&p), flags, 0).map_err(|e| io_errno(&p, &e))?;
            let file = std::fs::File::from(fd);
            if file.metadata().map_err(|e| io_errno(&p, &e))?.is_dir() {
                return Err(Errno::IsDirectory { path: normalized });
            }
            Handle::Host {
                file,
                write,
                append,
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
    let (path, offset) = {
        let mut table = lock(&agent.tree.fds);
        let of = table.open.get_mut(&fd).ok_or(Errno::BadDescriptor { fd })?;
        match &of.handle {
            Handle::Host { file, write, .. } => {
                if *write {
                    return Err(Errno::BadDescriptor { fd });
                }
                let data = read_at(file, of.offset, want).map_err(|e| Errno::Internal {
                    reason: format!("reading descriptor {fd}: {e}"),
                })?;
                of.offset += data.len() as u64;
                return Ok(data);
            }
            Handle::Virtual { write: true, .. } => return Err(Errno::BadDescriptor { fd }),
            Handle::Virtual { path, write: false } => (path.clone(), of.offset),
        }
    };
    let data = read(k, agent, &path, offset, Some(want))?;
    if let Some(of) = lock(&agent.tree.fds).open.get_mut(&fd) {
        of.offset += data.len() as u64;
    }
    Ok(data)
}

/// `WriteFd`: writes at the descriptor's offset (at the end for append), quota-checked.
pub(crate) fn write_fd(k: &KernelInner, agent: &Agent, fd: u32, data: &[u8]) -> Result<u64, Errno> {
    let tree = &agent.tree;
    let path = {
        let mut table = lock(&tree.fds);
        let of = table.open.get_mut(&fd).ok_or(Errno::BadDescriptor { fd })?;
        match &mut of.handle {
            Handle::Host {
                file,
                write,
                append,
            } => {
                if !*write {
                    return Err(Errno::BadDescriptor { fd });
                }
                let size = file
                    .metadata()
                    .map_err(|e| Errno::Internal {
                        reason: format!("descriptor {fd}: {e}"),
                    })?
                    .len();
                let at = if *append { size } else { of.offset };
                let end = at + data.len() as u64;
                let delta = i128::from(end.saturating_sub(size));
                let mut usage = lock(&tree.usage);
                tree.charge(&mut usage, delta, 0, &format!("descriptor {fd}"))?;
                let res = if *append {
                    file.write_all(data)
                } else {
                    file.write_all_at(data, at)
                };
                res.map_err(|e| Errno::Internal {
                    reason: format!("writing descriptor {fd}: {e}"),
                })?;
                AgentTree::apply(&mut usage, delta, 0);
                of.offset = end;
                return Ok(data.len() as u64);
            }
            Handle::Virtual { write: false, .. } => return Err(Errno::BadDescriptor { fd }),
            Handle::Virtual { path, write: true } => path.clone(),
        }
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

/// Snapshots working memory to `/state/checkpoints/<n>` on disk; returns `n`.
pub(crate) fn checkpoint(k: &KernelInner, agent: &Agent, trigger: &str) -> Result<u64, Errno> {
    let tree = &agent.tree;
    let mut last = lock(&tree.last_checkpoint);
    let number = *last + 1;
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
    *last = number;
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
        if let Err(e) = store(k).remove_namespace(&agent.tree.namespace) {
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

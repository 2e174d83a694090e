//! `/state/checkpoints`: working-memory checkpoints on disk (`STATE_DIR/agents/<id>/
//! checkpoints/<n>`, a postcard [`CheckpointFile`] each, written to a temp file, fsynced and
//! renamed), taken within the agent's `--checkpoint-bytes`, served read-only as
//! `/state/checkpoints/<n>/<path>`, and found again to restore a later agent.

use std::io::Write as _;
use std::path::Path;

use agentos_syscalls::{AgentId, DirEntry, Errno, FileKind, FileStat, WriteMode};
use agentos_vfs::MemFs;
use serde::{Deserialize, Serialize};

use super::{dir_stat, read_only, AgentTree, Backend, Call, Owner, Span, TreeCtx};
use crate::error::Fault;
use crate::util::{lock, now_ms};

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

/// Splits `/state/checkpoints/<n>/<path>` (given as `/<n>/<path>`) and loads checkpoint n.
fn checkpoint_view(tree: &AgentTree, rest: &str) -> Result<Option<(MemFs, String)>, Errno> {
    open_checkpoint_path(&tree.checkpoint_dir, rest)
}

/// `/<n>/<path>` under `/state/checkpoints`, from the agent's checkpoint dir `dir`: checkpoint
/// n's files (read-only) and the path inside it; `None` for the listing itself (`/`).
pub(crate) fn open_checkpoint_path(
    dir: &Path,
    rest: &str,
) -> Result<Option<(MemFs, String)>, Errno> {
    let mut parts = rest.trim_start_matches('/').splitn(2, '/');
    let Some(first) = parts.next().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let n: u64 = first.parse().map_err(|_| Errno::NotFound {
        what: format!("/state/checkpoints/{first} (checkpoints are numbered 1, 2, …)"),
    })?;
    let file = load_checkpoint_file(dir, n)?;
    let fs = MemFs::restore(file.files, u64::MAX, u64::MAX)?;
    Ok(Some((fs, format!("/{}", parts.next().unwrap_or("")))))
}

pub(crate) fn checkpoint_numbers(dir: &Path) -> Vec<u64> {
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
    let bytes = std::fs::read(&path).map_err(|e| Fault::Kept {
        what: format!("checkpoint {n} ({})", path.display()),
        source: e,
    })?;
    postcard::from_bytes(&bytes).map_err(|e| {
        Fault::Internal {
            what: format!("checkpoint {} does not decode", path.display()),
            source: e.into(),
        }
        .into()
    })
}

/// The checkpoint of agent `from` to restore: `number`, or its latest.
pub(crate) fn find_checkpoint(
    agents_dir: &Path,
    from: AgentId,
    number: Option<u64>,
) -> Result<CheckpointFile, Errno> {
    let dir = agents_dir.join(from.to_string()).join("checkpoints");
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

/// What one checkpoint file costs against the budget: its bytes rounded up to whole 4 KiB
/// blocks, as the host's disk keeps them (a small file still takes a block).
fn on_disk(len: u64) -> u64 {
    len.div_ceil(4096).max(1) * 4096
}

/// Snapshots working memory to `/state/checkpoints/<n>` on disk; returns `n`. Refused with
/// `QuotaExceeded`, before anything is written, when the agent's checkpoint files would go
/// past its budget (`--checkpoint-bytes`).
pub(crate) fn checkpoint<'a>(
    ctx: &TreeCtx<'_>,
    agent: impl Into<Owner<'a>>,
    trigger: &str,
) -> Result<u64, Errno> {
    let agent: Owner<'a> = agent.into();
    let tree = agent.tree;
    let mut last = lock(&tree.last_checkpoint);
    let (number, held) = (last.0 + 1, last.1);
    let files = lock(agent.working).snapshot();
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
    let encoded = postcard::to_stdvec(&file).map_err(|e| Fault::Internal {
        what: format!("checkpoint {number} does not encode"),
        source: e.into(),
    })?;
    // The disk budget (`--checkpoint-bytes`): refused before anything is written.
    let budget = ctx.limits.checkpoint_bytes;
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
    store(&tree.checkpoint_dir, number, &encoded)?;
    *last = (number, after);
    ctx.audit.record(
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

/// Writes checkpoint `number` (`encoded`) into `dir` (made, 0700, if missing): to a temp
/// file, fsynced, then renamed, so a crash leaves the whole file or none.
fn store(dir: &Path, number: u64, encoded: &[u8]) -> Result<(), Errno> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |what: &str, e: std::io::Error| -> Errno {
        Fault::Internal {
            what: format!(
                "cannot {what} checkpoint {number} in {} (check the state dir's disk)",
                dir.display()
            ),
            source: e.into(),
        }
        .into()
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail("create the dir of", e)),
    }
    let tmp = dir.join(format!(".{number}.tmp"));
    let dst = dir.join(number.to_string());
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail("create", e))?;
    f.write_all(encoded).map_err(|e| fail("write", e))?;
    f.sync_all().map_err(|e| fail("sync", e))?;
    drop(f);
    std::fs::rename(&tmp, &dst).map_err(|e| fail("rename", e))
}

/// The `/state/checkpoints` mount (read-only).
pub(super) struct Checkpoints;

impl Backend for Checkpoints {
    fn on_host(&self) -> bool {
        true
    }

    fn read(&self, c: Call<'_>, p: &str, span: Span) -> Result<Vec<u8>, Errno> {
        match checkpoint_view(c.agent.tree, p)? {
            Some((fs, inner)) => {
                span.fits(fs.stat(&inner).map(|s| s.size).unwrap_or(0))?;
                fs.read(&inner, span.offset, span.len)
            }
            None => Err(Errno::IsDirectory {
                path: "/state/checkpoints".into(),
            }),
        }
    }

    fn write(&self, c: Call<'_>, _: &str, _: &[u8], _: WriteMode) -> Result<u64, Errno> {
        Err(read_only(&agentos_vfs::normalize(c.path)?))
    }

    fn list(&self, c: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno> {
        match checkpoint_view(c.agent.tree, p)? {
            Some((fs, inner)) => fs.list(&inner),
            None => Ok(checkpoint_numbers(&c.agent.tree.checkpoint_dir)
                .into_iter()
                .map(|n| DirEntry {
                    name: n.to_string(),
                    kind: FileKind::Directory,
                    size: 0,
                })
                .collect()),
        }
    }

    fn stat(&self, c: Call<'_>, p: &str) -> Result<FileStat, Errno> {
        match checkpoint_view(c.agent.tree, p)? {
            Some((fs, inner)) => fs.stat(&inner).map(|s| FileStat {
                read_only: true,
                ..s
            }),
            None => Ok(dir_stat(true)),
        }
    }

    fn unlink(&self, c: Call<'_>, _: &str) -> Result<(), Errno> {
        Err(read_only(&agentos_vfs::normalize(c.path)?))
    }

    /// Read-only: refused as a write to `c.path` is.
    fn rename(&self, c: Call<'_>, _: &str, _: &str) -> Result<(), Errno> {
        Err(read_only(&agentos_vfs::normalize(c.path)?))
    }

    fn mount_point(&self) -> Option<&'static str> {
        None
    }
}

//! The kernel's read-only views: `/policy` (the active policy's text and digest),
//! `/ipc/inbox` (pending messages, [`crate::ipc::view`]), the inner directories `/`, `/mem`
//! and `/state` that only hold mounts, and everywhere nothing is mounted.

use agentos_syscalls::{DirEntry, Errno, FileKind, FileStat, WriteMode};
use agentos_vfs::MOUNTS;

use super::{dir_stat, read_only, Backend, Call, Owner, Span};
use crate::ipc::view;

pub(super) fn policy_file(agent: Owner<'_>, rest: &str) -> Result<Vec<u8>, Errno> {
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

pub(super) fn slice(data: &[u8], offset: u64, len: Option<u64>) -> Vec<u8> {
    let size = data.len() as u64;
    let start = offset.min(size);
    let end = len.map_or(size, |l| start.saturating_add(l).min(size));
    data.get(start as usize..end as usize)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

pub(super) fn inner_entries(root: &str) -> Vec<DirEntry> {
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
pub(super) fn inbox_name(p: &str) -> Result<Option<&str>, Errno> {
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
pub(super) fn inbox_read_only(p: &str) -> Errno {
    Errno::PermissionDenied {
        rule: "read-only mount".into(),
        reason: format!(
            "/ipc{p} is read-only: messages arrive by another agent's Send and leave by Recv"
        ),
    }
}

/// `/policy`: `security.md` and `digest`.
pub(super) struct PolicyView;

/// `/ipc` and its `inbox`.
pub(super) struct Ipc;

/// `/`, `/mem`, `/state`: `p` is the directory itself.
pub(super) struct Inner;

/// Where nothing is mounted: `p` is the whole path.
pub(super) struct Nowhere;

impl Backend for PolicyView {
    fn on_host(&self) -> bool {
        false
    }

    fn read(&self, c: Call<'_>, p: &str, span: Span) -> Result<Vec<u8>, Errno> {
        let data = policy_file(c.agent, p)?;
        span.fits(data.len() as u64)?;
        Ok(slice(&data, span.offset, span.len))
    }

    fn write(&self, c: Call<'_>, _: &str, _: &[u8], _: WriteMode) -> Result<u64, Errno> {
        Err(read_only(&agentos_vfs::normalize(c.path)?))
    }

    fn list(&self, c: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno> {
        if p != "/" {
            return Err(Errno::NotDirectory {
                path: format!("/policy{p}"),
            });
        }
        Ok(["digest", "security.md"]
            .iter()
            .map(|n| DirEntry {
                name: (*n).into(),
                kind: FileKind::File,
                size: policy_file(c.agent, &format!("/{n}")).map_or(0, |d| d.len() as u64),
            })
            .collect())
    }

    fn stat(&self, c: Call<'_>, p: &str) -> Result<FileStat, Errno> {
        if p == "/" {
            return Ok(dir_stat(true));
        }
        Ok(FileStat {
            kind: FileKind::File,
            size: policy_file(c.agent, p)?.len() as u64,
            modified_ms: c.agent.started_ms,
            read_only: true,
        })
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

impl Backend for Ipc {
    fn on_host(&self) -> bool {
        false
    }

    fn read(&self, c: Call<'_>, p: &str, span: Span) -> Result<Vec<u8>, Errno> {
        match inbox_name(p)? {
            Some(name) if !name.is_empty() => Ok(slice(
                &view::inbox_read(c.agent.inbox, name)?,
                span.offset,
                span.len,
            )),
            _ => Err(Errno::IsDirectory {
                path: format!("/ipc{p}"),
            }),
        }
    }

    fn write(&self, _: Call<'_>, p: &str, _: &[u8], _: WriteMode) -> Result<u64, Errno> {
        Err(inbox_read_only(p))
    }

    fn list(&self, c: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno> {
        match inbox_name(p)? {
            None => Ok(vec![DirEntry {
                name: "inbox".into(),
                kind: FileKind::Directory,
                size: 0,
            }]),
            Some("") => Ok(view::inbox_entries(c.agent.inbox)),
            Some(name) => Err(Errno::NotDirectory {
                path: format!("{}/{name}", view::INBOX_DIR),
            }),
        }
    }

    fn stat(&self, c: Call<'_>, p: &str) -> Result<FileStat, Errno> {
        match inbox_name(p)? {
            None => Ok(dir_stat(true)),
            Some(name) => view::inbox_stat(c.agent.inbox, name),
        }
    }

    fn unlink(&self, _: Call<'_>, p: &str) -> Result<(), Errno> {
        Err(inbox_read_only(p))
    }

    /// Read-only: refused as a write to `p` is.
    fn rename(&self, _: Call<'_>, p: &str, _: &str) -> Result<(), Errno> {
        Err(inbox_read_only(p))
    }

    fn mount_point(&self) -> Option<&'static str> {
        None
    }
}

impl Backend for Inner {
    fn on_host(&self) -> bool {
        false
    }

    fn read(&self, _: Call<'_>, p: &str, _: Span) -> Result<Vec<u8>, Errno> {
        Err(Errno::IsDirectory { path: p.into() })
    }

    fn write(&self, c: Call<'_>, _: &str, _: &[u8], _: WriteMode) -> Result<u64, Errno> {
        Err(read_only(&agentos_vfs::normalize(c.path)?))
    }

    fn list(&self, _: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno> {
        Ok(inner_entries(p))
    }

    fn stat(&self, _: Call<'_>, _: &str) -> Result<FileStat, Errno> {
        Ok(dir_stat(true))
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

impl Backend for Nowhere {
    fn on_host(&self) -> bool {
        false
    }

    fn read(&self, _: Call<'_>, p: &str, _: Span) -> Result<Vec<u8>, Errno> {
        Err(Errno::NotFound { what: p.into() })
    }

    fn write(&self, _: Call<'_>, p: &str, _: &[u8], _: WriteMode) -> Result<u64, Errno> {
        Err(Errno::NotFound {
            what: format!("{p}: nothing is mounted there (see DESIGN §6 for the agent's tree)"),
        })
    }

    fn list(&self, _: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno> {
        Err(Errno::NotFound { what: p.into() })
    }

    fn stat(&self, _: Call<'_>, p: &str) -> Result<FileStat, Errno> {
        Err(Errno::NotFound { what: p.into() })
    }

    fn unlink(&self, _: Call<'_>, p: &str) -> Result<(), Errno> {
        Err(Errno::NotFound { what: p.into() })
    }

    /// Read-only: refused as a write to `p` is.
    fn rename(&self, _: Call<'_>, p: &str, _: &str) -> Result<(), Errno> {
        Err(Errno::NotFound {
            what: format!("{p}: nothing is mounted there (see DESIGN §6 for the agent's tree)"),
        })
    }

    fn mount_point(&self) -> Option<&'static str> {
        None
    }
}

//! `/workspace`: the host dir given at spawn, every access `openat2`'d beneath an `O_PATH`
//! root fd (`RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), only regular files and directories
//! served (see the tree's header), writes charged to the agent's quota for their growth.

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

use agentos_syscalls::{DirEntry, Errno, FileKind, FileStat, OpenMode, WriteMode};
use rustix::fs::OFlags;

use super::{AgentTree, Backend, Call, Handle, HostFile, Owner, Span};
use crate::error::Fault;
use crate::util::lock;

/// What the agent is told when host I/O on `/workspace{path}` fails ([`Fault::Workspace`]).
pub(super) fn io_errno(path: &str, e: &std::io::Error) -> Errno {
    Fault::Workspace { path, source: e }.into()
}

/// The path relative to the workspace root (`.` for the root).
pub(super) fn rel(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        r => r,
    }
}

/// What a workspace open found: a regular file (its size) or a directory.
#[derive(Debug, Clone, Copy)]
pub(super) enum Served {
    File(u64),
    Dir,
}

/// Checks what `file` (opened beneath the workspace as `/workspace{p}`) is: only a regular
/// file or a directory is served; a FIFO, a socket or a device is refused with `Unsupported`.
pub(super) fn served(file: &std::fs::File, p: &str) -> Result<(Served, std::fs::Metadata), Errno> {
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
pub(super) fn open_ws(
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

pub(super) fn read_at(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
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
pub(super) fn make_parents(root: std::os::fd::BorrowedFd<'_>, path: &str) -> Result<(), Errno> {
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
pub(super) fn workspace_size(
    root: std::os::fd::BorrowedFd<'_>,
    p: &str,
) -> Result<Option<u64>, Errno> {
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

pub(super) fn write_flags(mode: WriteMode) -> OFlags {
    OFlags::WRONLY
        | OFlags::CREATE
        | match mode {
            WriteMode::Truncate => OFlags::TRUNC,
            WriteMode::Append => OFlags::APPEND,
            WriteMode::CreateNew => OFlags::EXCL,
        }
}

/// Whether `/workspace{rest}` is a directory, looked at beneath the workspace root through an
/// `O_PATH` descriptor (nothing is opened for I/O, nothing outside the workspace is reached).
pub(crate) fn workspace_dir<'a>(agent: impl Into<Owner<'a>>, rest: &str) -> bool {
    let agent: Owner<'a> = agent.into();
    agent.tree.workspace().is_ok_and(|root| {
        crate::sys::open_beneath(root, rel(rest), OFlags::PATH | OFlags::DIRECTORY, 0).is_ok()
    })
}

impl AgentTree {
    pub(super) fn workspace(&self) -> Result<std::os::fd::BorrowedFd<'_>, Errno> {
        self.workspace_root
            .as_ref()
            .map(AsFd::as_fd)
            .ok_or_else(|| Errno::NotFound {
                what: "/workspace: this agent has no workspace; spawn it with `agentctl spawn --workspace DIR`".into(),
            })
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

/// The `/workspace` mount.
pub(super) struct Workspace;

impl Backend for Workspace {
    fn on_host(&self) -> bool {
        true
    }

    fn read(&self, c: Call<'_>, p: &str, span: Span) -> Result<Vec<u8>, Errno> {
        let root = c.agent.tree.workspace()?;
        let (file, kind) = open_ws(root, p, OFlags::RDONLY, 0, true)?;
        let Served::File(size) = kind else {
            return Err(Errno::IsDirectory {
                path: format!("/workspace{p}"),
            });
        };
        span.fits(size)?;
        let want = span
            .len
            .unwrap_or(size.saturating_sub(span.offset))
            .min(span.limit);
        read_at(&file, span.offset, want).map_err(|e| io_errno(p, &e))
    }

    fn write(&self, c: Call<'_>, p: &str, data: &[u8], mode: WriteMode) -> Result<u64, Errno> {
        let tree = c.agent.tree;
        let len = data.len() as u64;
        let root = tree.workspace()?;
        let _serial = lock(&tree.host_writes);
        let old = workspace_size(root, p)?;
        let new = super::grown(old, len, mode).map_err(|()| Errno::AlreadyExists {
            path: format!("/workspace{p}"),
        })?;
        let delta = i128::from(new) - i128::from(old.unwrap_or(0));
        let files = i64::from(old.is_none());
        let charge = tree.reserve(delta, files, c.path)?;
        make_parents(root, p)?;
        let (mut file, _) = open_ws(root, p, write_flags(mode), 0o644, false)?;
        file.write_all(data).map_err(|e| io_errno(p, &e))?;
        charge.settle();
        Ok(len)
    }

    fn list(&self, c: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno> {
        let root = c.agent.tree.workspace()?;
        let (dir, _) = open_ws(root, p, OFlags::RDONLY | OFlags::DIRECTORY, 0, true)?;
        let mut entries: Vec<DirEntry> = crate::sys::list_dir(OwnedFd::from(dir))
            .map_err(|e| io_errno(p, &e))?
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

    fn stat(&self, c: Call<'_>, p: &str) -> Result<FileStat, Errno> {
        let root = c.agent.tree.workspace()?;
        let (file, _) = open_ws(root, p, OFlags::PATH, 0, false)?;
        let meta = file.metadata().map_err(|e| io_errno(p, &e))?;
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

    fn unlink(&self, c: Call<'_>, p: &str) -> Result<(), Errno> {
        let root = c.agent.tree.workspace()?;
        let r = rel(p);
        if r == "." {
            return Err(Errno::IsDirectory {
                path: "/workspace".into(),
            });
        }
        let (parent, name) = r.rsplit_once('/').unwrap_or((".", r));
        let dir = crate::sys::open_beneath(root, parent, OFlags::PATH | OFlags::DIRECTORY, 0)
            .map_err(|e| io_errno(p, &e))?;
        crate::sys::unlink_in(dir.as_fd(), name).map_err(|e| io_errno(p, &e))
    }

    /// `renameat` between the two parent directories, each opened beneath the workspace root
    /// like every workspace access (`..`, symlinks and mounts climbing out are refused); the
    /// last components are not followed (a symlink is moved, never its target). `b`'s missing
    /// parents are created, as `Write` does. Quota-neutral: workspace names cost no kernel
    /// memory, and a replaced file is not refunded (as `Unlink` does not).
    fn rename(&self, c: Call<'_>, a: &str, b: &str) -> Result<(), Errno> {
        let tree = c.agent.tree;
        let root = tree.workspace()?;
        let (ra, rb) = (rel(a), rel(b));
        if ra == "." || rb == "." {
            return Err(Errno::InvalidArgument {
                reason: "/workspace itself is neither renamed nor replaced; name a file or directory inside it".into(),
            });
        }
        let _serial = lock(&tree.host_writes);
        // The source exists beneath the root (looked at, not followed, not opened).
        crate::sys::open_beneath(root, ra, OFlags::PATH | OFlags::NOFOLLOW, 0)
            .map_err(|e| io_errno(a, &e))?;
        make_parents(root, b)?;
        let parent = |r: &str, p: &str| {
            let (dir, name) = r.rsplit_once('/').unwrap_or((".", r));
            crate::sys::open_beneath(root, dir, OFlags::PATH | OFlags::DIRECTORY, 0)
                .map(|fd| (fd, name.to_string()))
                .map_err(|e| io_errno(p, &e))
        };
        let (from_dir, from_name) = parent(ra, a)?;
        let (to_dir, to_name) = parent(rb, b)?;
        crate::sys::rename_in(from_dir.as_fd(), &from_name, to_dir.as_fd(), &to_name)
            .map_err(|e| rename_errno(a, b, &e))
    }

    fn mount_point(&self) -> Option<&'static str> {
        Some("/workspace")
    }

    /// A host descriptor (the file itself, opened beneath the root), not a virtual one.
    fn open(
        &self,
        c: Call<'_>,
        p: &str,
        mode: OpenMode,
        normalized: String,
    ) -> Result<Handle, Errno> {
        let tree = c.agent.tree;
        let root = tree.workspace()?;
        match mode {
            OpenMode::Read => match open_ws(root, p, OFlags::RDONLY, 0, true)? {
                (_, Served::Dir) => Err(Errno::IsDirectory { path: normalized }),
                (file, Served::File(_)) => Ok(Handle::host(file, false, false)),
            },
            OpenMode::Write(m) => {
                // Truncating frees what the file held; creating counts a file.
                let _serial = lock(&tree.host_writes);
                let old = workspace_size(root, p)?;
                let files = i64::from(old.is_none());
                let delta = if m == WriteMode::Truncate {
                    -i128::from(old.unwrap_or(0))
                } else {
                    0
                };
                let charge = tree.reserve(delta, files, &normalized)?;
                make_parents(root, p)?;
                let (file, _) = open_ws(root, p, write_flags(m), 0o644, false)?;
                charge.settle();
                Ok(Handle::host(file, true, m == WriteMode::Append))
            }
        }
    }
}

impl HostFile {
    /// `ReadFd` on a workspace file: up to `want` bytes from its offset.
    pub(super) fn read_fd(&self, fd: u32, want: u64) -> Result<Vec<u8>, Errno> {
        if self.write {
            return Err(Errno::BadDescriptor { fd });
        }
        let mut offset = lock(&self.offset);
        let data = read_at(&self.file, *offset, want).map_err(|e| Fault::Internal {
            what: format!("reading descriptor {fd}"),
            source: e.into(),
        })?;
        *offset += data.len() as u64;
        Ok(data)
    }

    /// `WriteFd` on a workspace file: at its offset (at the end for append), its growth
    /// charged to `tree`'s quota first.
    pub(super) fn write_fd(&self, tree: &AgentTree, fd: u32, data: &[u8]) -> Result<u64, Errno> {
        if !self.write {
            return Err(Errno::BadDescriptor { fd });
        }
        let _serial = lock(&tree.host_writes);
        let mut offset = lock(&self.offset);
        let size = self
            .file
            .metadata()
            .map_err(|e| Fault::Internal {
                what: format!("descriptor {fd}"),
                source: e.into(),
            })?
            .len();
        let at = if self.append { size } else { *offset };
        let end = at + data.len() as u64;
        let delta = i128::from(end.saturating_sub(size));
        let charge = tree.reserve(delta, 0, &format!("descriptor {fd}"))?;
        let res = if self.append {
            (&self.file).write_all(data)
        } else {
            self.file.write_all_at(data, at)
        };
        res.map_err(|e| Fault::Internal {
            what: format!("writing descriptor {fd}"),
            source: e.into(),
        })?;
        charge.settle();
        *offset = end;
        Ok(data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

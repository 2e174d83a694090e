//! A tool's view of its workspace: the [`ViewEntry`]s of a [`Mount`], applied by the rootfs
//! layer right after the mount is bound (inside the tool's private mount namespace, before
//! the pivot, so before landlock).
//!
//! - [`ViewKind::Writable`]: the directory of the mount's *source* is bound read-write over the
//!   same path of the (read-only) mount, then remounted `nosuid,nodev`;
//! - [`ViewKind::HiddenDir`] / [`ViewKind::HiddenFile`]: the entry is covered by an empty
//!   directory / empty file of a private tmpfs made read-only (`nosuid,nodev,noexec`) before
//!   any bind of it, so every cover is read-only from its first instant; the tmpfs's staging
//!   mount point is detached and removed afterwards.
//!
//! Invariants: every path is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS)` from the mount (source or target), and mounted through
//! `/proc/self/fd/N`, so a symlink swapped in after the kernel computed the view can never
//! move a mount out of the workspace or onto another entry; the entry's type must be the
//! one expected (a directory for `Writable`/`HiddenDir`, neither a directory nor a symlink
//! for `HiddenFile`), else the jail is refused ("the workspace changed"). Nothing is created
//! inside a bind.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::spec::{Mount, ViewKind};

/// Where the covers' tmpfs is staged inside the new root (removed before the pivot).
pub const COVERS: &str = ".agentos-covers";

fn err(what: String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens `rel` beneath `dir` without following any symlink (`O_PATH`).
fn open_beneath(dir: &OwnedFd, rel: &Path) -> io::Result<OwnedFd> {
    rustix::fs::openat2(
        dir,
        rel,
        OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
}

fn file_type(fd: &OwnedFd) -> io::Result<FileType> {
    Ok(FileType::from_raw_mode(
        rustix::fs::fstat(fd).map_err(io::Error::from)?.st_mode,
    ))
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn bind(source: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    mount(
        Some(fd_path(source).as_str()),
        fd_path(target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Remounts the bind whose root `fd` names `nosuid,nodev`, keeping it writable (unless its
/// source is read-only) and the other flags the source mount has (locked ones cannot be
/// dropped in a user namespace): [`super::rootfs::remount`] through the descriptor's path.
fn remount_nosuid(fd: &OwnedFd) -> io::Result<()> {
    super::rootfs::remount(Path::new(&fd_path(fd)), false, true)
}

/// The empty directory and file every hidden entry is covered with, on a read-only tmpfs.
struct Covers {
    at: std::path::PathBuf,
    dir: OwnedFd,
    file: OwnedFd,
}

impl Covers {
    fn make(root: &Path) -> io::Result<Covers> {
        let at = root.join(COVERS);
        std::fs::create_dir(&at).map_err(err(format!("mkdir {}", at.display())))?;
        let fs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            fs_flags,
            Some("size=4k,nr_inodes=8,mode=0555"),
        )
        .map_err(|e| err(format!("mount the covers' tmpfs on {}", at.display()))(e.into()))?;
        let made = (|| {
            std::fs::create_dir(at.join("dir"))?;
            std::fs::write(at.join("file"), b"")?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(at.join("dir"), std::fs::Permissions::from_mode(0o555))?;
            std::fs::set_permissions(at.join("file"), std::fs::Permissions::from_mode(0o444))?;
            mount(
                None::<&str>,
                &at,
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | fs_flags,
                None::<&str>,
            )?;
            let open = |name: &str| {
                rustix::fs::open(
                    at.join(name),
                    OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
                .map_err(io::Error::from)
            };
            Ok::<_, io::Error>((open("dir")?, open("file")?))
        })();
        match made {
            Ok((dir, file)) => Ok(Covers { at, dir, file }),
            Err(e) => {
                let _ = umount2(&at, MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir(&at);
                Err(err("make the covers".into())(e))
            }
        }
    }

    /// Detaches the covers' staging mount (the covers stay) and removes its mount point.
    fn finish(self) -> io::Result<()> {
        umount2(&self.at, MntFlags::MNT_DETACH)
            .map_err(|e| err(format!("detach {}", self.at.display()))(e.into()))?;
        std::fs::remove_dir(&self.at).map_err(err(format!("rmdir {}", self.at.display())))
    }
}

/// Applies `m.view` over the mount bound at `dest` (in the new root); `source` is the
/// mount's source, opened before the root was built. Returns the number of mounts made.
pub fn apply(root: &Path, m: &Mount, source: &OwnedFd, dest: &Path) -> io::Result<usize> {
    if m.view.is_empty() {
        return Ok(0);
    }
    let target_root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::CLOEXEC | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| err(format!("open {}", m.target.display()))(e.into()))?;
    let mut covers = None;
    for e in &m.view {
        let shown = m.target.join(&e.path);
        let changed = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "view of {}: {what}; the workspace changed while the tool's view was built, run the tool again",
                    shown.display()
                ),
            )
        };
        let target = open_beneath(&target_root, &e.path)
            .map_err(err(format!("open {}", shown.display())))?;
        let ty = file_type(&target)?;
        match e.kind {
            ViewKind::Writable => {
                if ty != FileType::Directory {
                    return Err(changed("not a directory"));
                }
                let src = open_beneath(source, &e.path)
                    .map_err(err(format!("open {}", m.source.join(&e.path).display())))?;
                if file_type(&src)? != FileType::Directory {
                    return Err(changed("the source is not a directory"));
                }
                bind(&src, &target).map_err(err(format!("bind {}", shown.display())))?;
                // Reopened through the new mount: its root.
                let top = open_beneath(&target_root, &e.path)
                    .map_err(err(format!("open {}", shown.display())))?;
                remount_nosuid(&top).map_err(err(format!("remount {}", shown.display())))?;
            }
            ViewKind::HiddenDir | ViewKind::HiddenFile => {
                let want_dir = e.kind == ViewKind::HiddenDir;
                let ok = if want_dir {
                    ty == FileType::Directory
                } else {
                    ty != FileType::Directory && ty != FileType::Symlink
                };
                if !ok {
                    return Err(changed(if want_dir {
                        "not a directory"
                    } else {
                        "a directory or a symlink"
                    }));
                }
                if covers.is_none() {
                    covers = Some(Covers::make(root)?);
                }
                let Some(c) = covers.as_ref() else {
                    continue;
                };
                let cover = if want_dir { &c.dir } else { &c.file };
                bind(cover, &target).map_err(err(format!("hide {}", shown.display())))?;
            }
        }
    }
    if let Some(c) = covers {
        c.finish()?;
    }
    Ok(m.view.len())
}

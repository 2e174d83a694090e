//! The rootfs layer: the agent's minimal root, built by the init inside its private mount
//! namespace before capabilities are dropped.
//!
//! Landlock below ABI 9 does not mediate `connect()` to pathname Unix sockets, and no landlock
//! ABI restricts path *lookup*: a jailed agent could reach any host socket it can name. So the
//! agent gets a root that holds nothing but the spec's paths:
//!
//! 1. a fresh `tmpfs` (nosuid, nodev, mode 0755) is mounted on a staging directory (in the
//!    init's private mount namespace only);
//! 2. every allowed path (`read_exec`, `read_only`, `devices`, `program`) is
//!    bind-mounted (`MS_BIND|MS_REC`) at its canonical absolute path, and the `scratch` gets a
//!    fresh tmpfs there instead ([`scratch_options`]: `limits.scratch_bytes` large, its inodes
//!    bounded too, nosuid, nodev, mode 0700, owned by the agent's uid and gid): what the agent
//!    writes there lives in memory, is bounded as a whole (`ENOSPC` past it), and is gone with
//!    the jail's mount namespace; the host directory is only its (empty) mount point. `read_exec`, `read_only`
//!    and `program` are then remounted read-only (keeping the flags the source mount has
//!    locked), and so are the `devices`, without `nodev`: a device's data stays writable
//!    through a read-only mount, its inode (mode, owner, times) does not, so an agent that is
//!    uid 0 (a root kernel's) cannot `chmod` the host's `/dev/null`. A path already inside a
//!    bind of the same access is not bound again; a symlink on the way to an allowed path
//!    (`/bin` → `usr/bin`, `/etc/localtime` → `/usr/share/…`) is recreated as the same symlink. Paths that do not exist are skipped and named;
//!    Then the spec's extra `mounts` (a tool's `/workspace`) are bound at their targets
//!    (read-only unless writable, nosuid and nodev either way), each followed by its tool
//!    view (writable subtrees and hidden entries, see [`super::view`]); a target must lie
//!    apart from every other bound path;
//!    Last, every mount made since the root's tmpfs (submounts a recursive bind brought
//!    along included) that lacks `nosuid`, or `nodev` while not a device bind, is remounted
//!    with it ([`unhardened`] reads `/proc/self/mountinfo`): no mount of the agent honours a
//!    setuid bit or a file capability, and only the device binds (single files) open devices;
//! 3. a new `proc` for the agent's pid namespace is mounted at `/proc` (nosuid, nodev,
//!    noexec); if the kernel refuses, the root has no `/proc` and the detail says so;
//! 4. `pivot_root` into the tmpfs, `chdir("/")`, detach and remove the old root, remount the
//!    tmpfs read-only.
//!
//! Invariants: every bind source is opened (`O_PATH`) before anything is mounted, and bound
//! through `/proc/self/fd/N`, so the staging mount hides no source; nothing is ever created
//! inside a bind mount (mount points and symlinks are made only in the tmpfs, at canonical
//! paths, which contain no symlink); no `unsafe` here (see `crate::sys`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::FsFlags;

use super::spec::JailSpec;

/// The old root's mount point inside the new root, between `pivot_root` and its detach.
pub const PUT_OLD: &str = ".agentos-old-root";
/// Where the new root's tmpfs may be mounted before the pivot (first fit).
pub const STAGING: [&str; 4] = ["/tmp", "/mnt", "/run", "/dev"];
/// The new root's tmpfs: mount points, symlinks and empty files only.
pub const TMPFS_OPTIONS: &str = "size=1m,nr_inodes=4096,mode=0755";
/// How many symlinks deep a chain is followed when mirroring it.
const MAX_LINK_DEPTH: usize = 8;

/// How the agent may use a bound path (landlock narrows it further).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
    /// The agent's scratch: not a bind but a fresh size-limited tmpfs (nosuid, nodev, mode
    /// 0700, owned by the agent) mounted at the path; nothing of it reaches the host's disk.
    Scratch,
    /// A device node: read-only bind (its inode is the host's), device access kept (its data
    /// is the agent's to read and write).
    Device,
}

/// One bind mount of the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The canonical host path: the source, and the same path in the new root.
    pub path: PathBuf,
    pub is_dir: bool,
    pub access: Access,
    /// The mount point lies inside an earlier bind of another access (it exists already).
    pub nested: bool,
}

/// What the new root will hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In mount order (ancestors first).
    pub binds: Vec<Bind>,
    /// `(where, target as read by readlink)`, at canonical locations outside every bind.
    pub symlinks: Vec<(PathBuf, PathBuf)>,
    /// Paths of the spec that do not exist (with the reason).
    pub skipped: Vec<String>,
}

/// What was built (before the pivot).
#[derive(Debug)]
pub struct Built {
    /// The tmpfs mount point that becomes `/`.
    pub root: PathBuf,
    pub plan: Plan,
    /// `Ok` if `/proc` is mounted in the new root.
    pub proc: io::Result<()>,
    /// The size of the scratch tmpfs, bytes.
    pub scratch_bytes: u64,
}

impl Built {
    /// The layer detail.
    pub fn detail(&self) -> String {
        let mut d = format!(
            "minimal root: {} bind mounts, {} symlinks, scratch tmpfs of {} bytes, all nosuid and nodev but the devices, ",
            self.plan.binds.len(),
            self.plan.symlinks.len(),
            self.scratch_bytes
        );
        match &self.proc {
            Ok(()) => d.push_str("proc mounted"),
            Err(e) => d.push_str(&format!("proc not mounted ({e})")),
        }
        if !self.plan.skipped.is_empty() {
            d.push_str(&format!("; skipped {}", self.plan.skipped.join(", ")));
        }
        d
    }
}

/// The spec's paths with their access, in spec order.
pub fn entries(spec: &JailSpec) -> Vec<(PathBuf, Access)> {
    let mut out = Vec::new();
    out.extend(spec.read_exec.iter().map(|p| (p.clone(), Access::ReadOnly)));
    out.extend(spec.read_only.iter().map(|p| (p.clone(), Access::ReadOnly)));
    out.extend(spec.devices.iter().map(|p| (p.clone(), Access::Device)));
    out.push((spec.scratch.clone(), Access::Scratch));
    out.push((spec.program.clone(), Access::ReadOnly));
    out
}

/// Works out the binds and symlinks from the host filesystem as it is now.
pub fn plan(spec: &JailSpec) -> Plan {
    let mut plan = Plan::default();
    let mut candidates: Vec<Bind> = Vec::new();
    let mut found: Vec<PathBuf> = Vec::new();
    for (path, access) in entries(spec) {
        let canonical = match std::fs::canonicalize(&path).and_then(|c| {
            let meta = std::fs::metadata(&c)?;
            Ok((c, meta.is_dir()))
        }) {
            Ok(c) => c,
            Err(e) => {
                plan.skipped.push(format!("{} ({e})", path.display()));
                continue;
            }
        };
        found.push(path);
        let (path, is_dir) = canonical;
        // The first entry naming a path decides its access.
        if candidates.iter().all(|b| b.path != path) {
            candidates.push(Bind {
                path,
                is_dir,
                access,
                nested: false,
            });
        }
    }
    // Component-wise order: every ancestor before its descendants.
    candidates.sort_by(|a, b| a.path.cmp(&b.path));
    for mut c in candidates {
        let enclosing = plan
            .binds
            .iter()
            .rfind(|b| b.is_dir && c.path.starts_with(&b.path));
        match enclosing {
            Some(e) if e.access == c.access => continue,
            // The scratch tmpfs is empty: the mount point is made in it.
            Some(e) if e.access == Access::Scratch => {}
            Some(_) => c.nested = true,
            None => {}
        }
        plan.binds.push(c);
    }
    for path in found {
        mirror_symlinks(&path, &plan.binds, &mut plan.symlinks, 0);
    }
    plan
}

fn under_a_bind(path: &Path, binds: &[Bind]) -> bool {
    binds.iter().any(|b| path.starts_with(&b.path))
}

/// Records every symlink met on the way to `path` that lies outside the binds (those inside
/// exist in the new root already), and follows each link's target the same way.
///
/// Walks `path` once, keeping the canonical form of the part walked: each component costs one
/// `lstat`, and only a symlink a resolution of its own (not a `realpath` of every prefix,
/// which reads each component again).
fn mirror_symlinks(path: &Path, binds: &[Bind], out: &mut Vec<(PathBuf, PathBuf)>, depth: usize) {
    if depth > MAX_LINK_DEPTH {
        return;
    }
    // The canonical form of the components walked so far.
    let mut parent = PathBuf::from("/");
    for component in path.components() {
        let name = match component {
            Component::RootDir => continue,
            Component::Normal(name) => name,
            _ => return,
        };
        let at = parent.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&at) else {
            return;
        };
        if !meta.file_type().is_symlink() {
            parent = at;
            continue;
        }
        if !under_a_bind(&at, binds) {
            let Ok(target) = std::fs::read_link(&at) else {
                return;
            };
            if out.iter().all(|(a, _)| *a != at) {
                out.push((at.clone(), target.clone()));
                mirror_symlinks(&parent.join(&target), binds, out, depth + 1);
            }
        }
        let Ok(resolved) = std::fs::canonicalize(&at) else {
            return;
        };
        parent = resolved;
    }
}

/// `path` (absolute) inside `root`.
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Wraps an error with the step and the path it concerns, keeping its kind.
fn ctx<'a, E: Into<io::Error>>(
    step: &'static str,
    path: &'a Path,
) -> impl FnOnce(E) -> io::Error + 'a {
    move |e| {
        let e: io::Error = e.into();
        io::Error::new(e.kind(), format!("{step} {}: {e}", path.display()))
    }
}

fn open_path(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(io::Error::from)
}

/// The first staging directory that exists and is not inside (or equal to) a bind source: a
/// recursive bind of an ancestor of the staging mount would copy the new root into itself.
fn staging_dir(plan: &Plan) -> io::Result<PathBuf> {
    for dir in STAGING {
        let Ok(dir) = std::fs::canonicalize(dir) else {
            continue;
        };
        if dir.is_dir() && !plan.binds.iter().any(|b| dir.starts_with(&b.path)) {
            return Ok(dir);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no staging directory for the new root (tried {})",
            STAGING.join(", ")
        ),
    ))
}

/// Creates the mount point of `bind` (and its parents) in the tmpfs.
fn mount_point(root: &Path, bind: &Bind) -> io::Result<()> {
    let dest = inside(root, &bind.path);
    if bind.is_dir {
        std::fs::create_dir_all(&dest).map_err(ctx("mkdir", &bind.path))
    } else {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(ctx("mkdir", &bind.path))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&dest)
            .map(drop)
            .map_err(ctx("create mount point", &bind.path))
    }
}

/// Remounts the bind at `dest` read-only and nosuid (and `nodev`, unless it is a device the
/// agent uses), carrying over the flags the source mount has (in a user namespace they are
/// locked: dropping one fails with `EPERM`).
fn remount_read_only(dest: &Path, nodev: bool) -> io::Result<()> {
    remount(dest, true, nodev)
}

/// Remounts the mount at `dest` nosuid (and `nodev` unless `nodev` is false, and read-only
/// if `read_only` or it is read-only already), keeping the other flags it has.
pub(super) fn remount(dest: &Path, read_only: bool, nodev: bool) -> io::Result<()> {
    let have = nix::sys::statvfs::statvfs(dest)?.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID;
    if read_only || have.contains(FsFlags::ST_RDONLY) {
        flags |= MsFlags::MS_RDONLY;
    }
    if nodev || have.contains(FsFlags::ST_NODEV) {
        flags |= MsFlags::MS_NODEV;
    }
    if have.contains(FsFlags::ST_NOEXEC) {
        flags |= MsFlags::MS_NOEXEC;
    }
    if have.contains(FsFlags::ST_NODIRATIME) {
        flags |= MsFlags::MS_NODIRATIME;
    }
    flags |= if have.contains(FsFlags::ST_NOATIME) {
        MsFlags::MS_NOATIME
    } else if have.contains(FsFlags::ST_RELATIME) {
        MsFlags::MS_RELATIME
    } else {
        MsFlags::MS_STRICTATIME
    };
    mount(None::<&str>, dest, None::<&str>, flags, None::<&str>).map_err(io::Error::from)
}

/// Steps 1–3: the tmpfs, its binds and symlinks, `/proc`. On failure the staging mount is
/// detached again, so the init's view is as before.
pub fn build(spec: &JailSpec) -> io::Result<Built> {
    let plan = plan(spec);
    // Open every source before anything is mounted: the staging tmpfs may hide some of them.
    // The scratch is no source: a fresh tmpfs is mounted there.
    let sources = plan
        .binds
        .iter()
        .map(|b| match b.access {
            Access::Scratch => Ok(None),
            Access::ReadOnly | Access::ReadWrite | Access::Device => {
                open_path(&b.path).map(Some).map_err(ctx("open", &b.path))
            }
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mounts = spec
        .mounts
        .iter()
        .map(|m| {
            check_mount_target(&m.target, &plan)?;
            let fd = open_path(&m.source).map_err(ctx("open", &m.source))?;
            Ok((m, fd))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let root = staging_dir(&plan)?;
    mount(
        Some("tmpfs"),
        &root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(TMPFS_OPTIONS),
    )
    .map_err(ctx("mount tmpfs on", &root))?;
    match populate(&root, &plan, &sources, spec.limits.scratch_bytes).and_then(|proc| {
        bind_mounts(&root, &mounts)?;
        harden_all(&root, &plan)?;
        Ok(proc)
    }) {
        Ok(proc) => Ok(Built {
            root,
            plan,
            proc,
            scratch_bytes: spec.limits.scratch_bytes,
        }),
        Err(e) => {
            // Best effort: the error is the one worth reporting.
            let _ = umount2(&root, MntFlags::MNT_DETACH);
            Err(e)
        }
    }
}

/// A mount's target must lie apart from every bind and mirrored symlink (it is created in the
/// tmpfs, never inside a bind), and must not be `/proc`.
fn check_mount_target(target: &Path, plan: &Plan) -> io::Result<()> {
    let clash = plan
        .binds
        .iter()
        .map(|b| b.path.as_path())
        .chain(plan.symlinks.iter().map(|(at, _)| at.as_path()))
        .chain(std::iter::once(Path::new("/proc")))
        .find(|p| target.starts_with(p) || p.starts_with(target));
    match clash {
        Some(p) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "mount target {} overlaps {} of the minimal root",
                target.display(),
                p.display()
            ),
        )),
        None => Ok(()),
    }
}

/// Binds what `fd` (opened before the root was built) names at `dest`, recursively.
fn bind_fd(fd: &OwnedFd, dest: &Path) -> nix::Result<()> {
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        dest,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
}

/// Binds the spec's extra mounts (directories) at their targets; read-only unless writable.
fn bind_mounts(root: &Path, mounts: &[(&super::spec::Mount, OwnedFd)]) -> io::Result<()> {
    for (m, fd) in mounts {
        let dest = inside(root, &m.target);
        std::fs::create_dir_all(&dest).map_err(ctx("mkdir", &m.target))?;
        bind_fd(fd, &dest).map_err(ctx("bind", &m.target))?;
        remount(&dest, !m.writable, true).map_err(ctx("remount nosuid,nodev", &m.target))?;
        super::view::apply(root, m, fd, &dest)?;
    }
    Ok(())
}

fn populate(
    root: &Path,
    plan: &Plan,
    sources: &[Option<OwnedFd>],
    scratch_bytes: u64,
) -> io::Result<io::Result<()>> {
    for (bind, fd) in plan.binds.iter().zip(sources) {
        if !bind.nested {
            mount_point(root, bind)?;
        }
        let dest = inside(root, &bind.path);
        let fd = match (bind.access, fd) {
            (Access::Scratch, _) => {
                mount_scratch(&dest, scratch_bytes)
                    .map_err(ctx("mount scratch tmpfs on", &bind.path))?;
                continue;
            }
            (Access::ReadOnly | Access::ReadWrite | Access::Device, Some(fd)) => fd,
            (Access::ReadOnly | Access::ReadWrite | Access::Device, None) => {
                return Err(io::Error::other(format!(
                    "bind {}: its source was not opened",
                    bind.path.display()
                )))
            }
        };
        bind_fd(fd, &dest).map_err(ctx("bind", &bind.path))?;
        match bind.access {
            Access::ReadOnly => remount_read_only(&dest, true),
            Access::Device => remount_read_only(&dest, false),
            Access::ReadWrite | Access::Scratch => remount(&dest, false, true),
        }
        .map_err(ctx("remount", &bind.path))?;
    }
    for (at, target) in &plan.symlinks {
        let dest = inside(root, at);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(ctx("mkdir", at))?;
        }
        std::os::unix::fs::symlink(target, &dest).map_err(ctx("symlink", at))?;
    }
    let proc_dir = root.join("proc");
    let proc = std::fs::create_dir_all(&proc_dir)
        .and_then(|()| {
            mount(
                Some("proc"),
                &proc_dir,
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(io::Error::from)
        })
        .map_err(ctx("mount proc on", Path::new("/proc")));
    if proc.is_err() {
        let _ = std::fs::remove_dir(&proc_dir);
    }
    Ok(proc)
}

/// The scratch tmpfs's mount options for a size of `bytes`, owned by `uid`:`gid`, mode 0700.
/// Inodes are bounded too (one per 4 KiB of size, at least 1024): an empty file costs no
/// block, but it costs kernel memory.
pub fn scratch_options(bytes: u64, uid: u32, gid: u32) -> String {
    let inodes = (bytes / 4096).max(1024);
    format!("size={bytes},nr_inodes={inodes},mode=0700,uid={uid},gid={gid}")
}

/// The flags every scratch tmpfs is mounted with.
pub const SCRATCH_FLAGS: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);

/// Mounts the agent's scratch: a fresh tmpfs of `bytes`, owned by this process's (the init's,
/// which is the agent's) uid and gid.
fn mount_scratch(dest: &Path, bytes: u64) -> io::Result<()> {
    let options = scratch_options(
        bytes,
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    mount(
        Some("tmpfs"),
        dest,
        Some("tmpfs"),
        SCRATCH_FLAGS,
        Some(options.as_str()),
    )
    .map_err(io::Error::from)
}

/// The last step before the pivot: every mount of the new root (submounts a recursive bind
/// brought along included) that lacks `nosuid`, or `nodev` without being a device bind, is
/// remounted with it. So no mount of the agent honours a setuid bit or a file capability, and
/// only the device binds (single files) open devices.
fn harden_all(root: &Path, plan: &Plan) -> io::Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(ctx("read", Path::new("/proc/self/mountinfo")))?;
    let devices: Vec<PathBuf> = plan
        .binds
        .iter()
        .filter(|b| b.access == Access::Device)
        .map(|b| inside(root, &b.path))
        .collect();
    for (dest, nodev) in unhardened(&info, root, &devices) {
        remount(&dest, false, nodev).map_err(ctx("remount nosuid,nodev", &dest))?;
    }
    Ok(())
}

/// The mounts of `mountinfo` made on or under `root` since its tmpfs (the last mount *at*
/// `root`; the host's mounts it hides are listed before it) that lack `nosuid`, or lack
/// `nodev` while not a device bind: `(mount point, whether to add nodev)`.
pub fn unhardened(mountinfo: &str, root: &Path, devices: &[PathBuf]) -> Vec<(PathBuf, bool)> {
    let points: Vec<(PathBuf, &str)> = mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ').skip(4);
            let point = fields.next()?;
            let options = fields.next()?;
            Some((PathBuf::from(unescape(point)), options))
        })
        .collect();
    let Some(start) = points.iter().rposition(|(p, _)| p == root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (point, options) in points.into_iter().skip(start) {
        if !point.starts_with(root) {
            continue;
        }
        let has = |o: &str| options.split(',').any(|x| x == o);
        let device = devices.contains(&point);
        let nodev = !device && !has("nodev");
        if !has("nosuid") || nodev {
            out.push((point, !device));
        }
    }
    out
}

/// A mountinfo path field with its octal escapes (`\040` for a space) decoded.
fn unescape(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::ffi::OsString::from_vec(out)
}

/// Step 4: `pivot_root` into `root`, detach and remove the old root, make `/` read-only. On a
/// failure before the pivot the staging mount is detached again.
pub fn pivot(root: &Path) -> io::Result<()> {
    let put_old = root.join(PUT_OLD);
    let pivoted = std::fs::create_dir(&put_old)
        .map_err(ctx("mkdir", &put_old))
        .and_then(|()| {
            nix::unistd::pivot_root(root, &put_old).map_err(ctx("pivot_root into", root))
        });
    if let Err(e) = pivoted {
        let _ = umount2(root, MntFlags::MNT_DETACH);
        return Err(e);
    }
    let old = Path::new("/").join(PUT_OLD);
    nix::unistd::chdir("/").map_err(ctx("chdir", Path::new("/")))?;
    umount2(&old, MntFlags::MNT_DETACH).map_err(ctx("detach old root", &old))?;
    std::fs::remove_dir(&old).map_err(ctx("rmdir", &old))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(ctx("remount read-only", Path::new("/")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> JailSpec {
        JailSpec {
            agent_id: 1,
            kernel_pid: 1,
            program: dir.join("bin/prog"),
            argv: vec!["prog".into()],
            env: vec![],
            scratch: dir.join("scratch"),
            read_exec: vec![dir.join("usr"), dir.join("bin"), dir.join("missing")],
            read_only: vec![dir.join("etc/zone"), dir.join("usr/lib")],
            devices: vec![],
            limits: Default::default(),
            cgroup: Default::default(),
            require_full: true,
            mounts: vec![],
            cwd: None,
            tool: false,
            network: false,
            egress_port: None,
        }
    }

    #[test]
    fn plan_binds_once_mirrors_symlinks_and_skips_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(tmp.path()).unwrap();
        for sub in ["usr/bin", "usr/lib", "usr/share", "etc", "scratch"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("usr/bin/prog"), "").unwrap();
        std::fs::write(d.join("usr/share/UTC"), "").unwrap();
        std::os::unix::fs::symlink("usr/bin", d.join("bin")).unwrap();
        std::os::unix::fs::symlink(d.join("usr/share/UTC"), d.join("etc/zone")).unwrap();
        let plan = plan(&spec(&d));
        // /usr covers /usr/bin (the /bin link), /usr/lib, the zone file and the program.
        let binds: Vec<_> = plan.binds.iter().map(|b| b.path.clone()).collect();
        assert_eq!(binds, vec![d.join("scratch"), d.join("usr")]);
        assert!(plan.binds.iter().all(|b| b.is_dir && !b.nested));
        assert_eq!(plan.binds[0].access, Access::Scratch);
        assert_eq!(plan.binds[1].access, Access::ReadOnly);
        assert_eq!(
            plan.symlinks,
            vec![
                (d.join("bin"), PathBuf::from("usr/bin")),
                (d.join("etc/zone"), d.join("usr/share/UTC")),
            ]
        );
        assert_eq!(plan.skipped.len(), 1);
        assert!(plan.skipped[0].starts_with(&d.join("missing").display().to_string()));
    }

    /// A link reached through another link, and one whose target is a link again: each is
    /// mirrored once, in the order met, and the walk goes on from where the link leads.
    #[test]
    fn chained_links_outside_the_binds_are_all_mirrored() {
        let tmp = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(tmp.path()).unwrap();
        for sub in ["usr/bin", "usr/share", "etc", "scratch"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("usr/bin/prog"), "").unwrap();
        std::fs::write(d.join("usr/share/UTC"), "").unwrap();
        std::os::unix::fs::symlink(d.join("usr/share/UTC"), d.join("etc/zone")).unwrap();
        std::os::unix::fs::symlink("zone", d.join("etc/tz")).unwrap();
        std::os::unix::fs::symlink("etc", d.join("alt")).unwrap();
        let mut s = spec(&d);
        s.program = d.join("usr/bin/prog");
        s.read_exec = vec![d.join("usr")];
        s.read_only = vec![d.join("alt/tz")];
        let plan = plan(&s);
        assert_eq!(
            plan.symlinks,
            vec![
                (d.join("alt"), PathBuf::from("etc")),
                (d.join("etc/tz"), PathBuf::from("zone")),
                (d.join("etc/zone"), d.join("usr/share/UTC")),
            ]
        );
        assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
    }

    #[test]
    fn devices_are_bound_as_devices() {
        let tmp = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(tmp.path()).unwrap();
        for sub in ["usr/bin", "dev", "scratch"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("usr/bin/prog"), "").unwrap();
        std::fs::write(d.join("dev/null"), "").unwrap();
        let mut s = spec(&d);
        s.devices = vec![d.join("dev/null")];
        let plan = plan(&s);
        let null = plan.binds.iter().find(|b| b.path == d.join("dev/null"));
        assert_eq!(
            null.map(|b| (b.access, b.is_dir)),
            Some((Access::Device, false))
        );
    }

    #[test]
    fn a_path_of_another_access_inside_a_bind_is_bound_nested() {
        let tmp = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        std::fs::write(d.join("usr/bin/prog"), "").unwrap();
        let mut s = spec(&d);
        s.read_exec = vec![d.join("usr")];
        s.read_only = vec![];
        s.scratch = d.join("usr/bin");
        s.program = d.join("usr/bin/prog");
        let plan = plan(&s);
        let binds: Vec<_> = plan
            .binds
            .iter()
            .map(|b| (b.path.clone(), b.access, b.nested))
            .collect();
        assert_eq!(
            binds,
            vec![
                (d.join("usr"), Access::ReadOnly, false),
                (d.join("usr/bin"), Access::Scratch, true),
                // Inside the scratch tmpfs: its mount point is made there.
                (d.join("usr/bin/prog"), Access::ReadOnly, false),
            ]
        );
        assert!(plan.symlinks.is_empty());
    }

    #[test]
    fn scratch_is_a_bounded_private_tmpfs() {
        assert_eq!(
            scratch_options(64 << 20, 1000, 1001),
            "size=67108864,nr_inodes=16384,mode=0700,uid=1000,gid=1001"
        );
        assert_eq!(
            scratch_options(1 << 20, 0, 0),
            "size=1048576,nr_inodes=1024,mode=0700,uid=0,gid=0"
        );
        assert!(SCRATCH_FLAGS.contains(MsFlags::MS_NOSUID | MsFlags::MS_NODEV));
    }

    /// The mount list of a built root as `/proc/self/mountinfo` shows it: every mount made
    /// since the root's tmpfs that lacks nosuid (or nodev, a device bind excepted) is named;
    /// the host's mounts hidden under the staging directory and mounts elsewhere are not.
    #[test]
    fn every_mount_of_the_new_root_is_made_nosuid_and_nodev_but_devices() {
        let info = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda rw
30 22 0:30 / /tmp/hidden rw,relatime shared:2 - tmpfs tmpfs rw
40 22 0:40 / /tmp rw,nosuid,nodev shared:3 - tmpfs tmpfs rw,size=1024k
41 40 0:21 /usr /tmp/usr ro,nosuid,nodev,relatime - ext4 /dev/sda rw
42 41 0:50 / /tmp/usr/local rw,relatime - ext4 /dev/sdb rw
43 40 0:21 /srv/ws /tmp/work\\040space rw,relatime - ext4 /dev/sda rw
44 40 0:5 /null /tmp/dev/null ro,nosuid,relatime - devtmpfs udev rw
45 40 0:5 /zero /tmp/dev/zero ro,relatime - devtmpfs udev rw
46 40 0:60 / /tmp/scratch rw,nosuid,nodev - tmpfs tmpfs rw,size=65536k
47 40 0:61 / /tmp/proc rw,nosuid,nodev,noexec - proc proc rw
48 22 0:62 / /mnt rw - tmpfs tmpfs rw
";
        let root = Path::new("/tmp");
        let devices = [root.join("dev/null"), root.join("dev/zero")];
        assert_eq!(
            unhardened(info, root, &devices),
            vec![
                (root.join("usr/local"), true),
                (root.join("work space"), true),
                (root.join("dev/zero"), false),
            ]
        );
        // Nothing at all when the root's tmpfs is not listed.
        assert!(unhardened(info, Path::new("/run"), &[]).is_empty());
    }
}

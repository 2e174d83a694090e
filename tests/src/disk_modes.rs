//! The disk-budget and mount-flag attacks of the Rust attack agent (`agentos-test-agent
//! attack NAME`, dispatched from [`crate::attack::run`]): setuid/setgid modes and device
//! nodes in the agent's own scratch, a setuid binary copied there, the flags of every mount the
//! agent sees, and a scratch filled to its size.
//!
//! Each reports like every attack: `Err(errno)` = blocked, `Ok(detail)` = it worked.

use crate::say;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use nix::errno::Errno;

use crate::attack::Outcome;
use crate::sys::raw_syscall;

/// The attacks of this module, by name.
pub const ATTACKS: &[&str] = &[
    "chmod-setuid",
    "fchmod-setgid",
    "open-setuid",
    "mknod-char",
    "copy-setuid",
    "mount-flags",
    "scratch-fill",
];

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// A plain file `name` in the working directory (the scratch), mode 0755.
fn plain_file(name: &str) -> Result<std::ffi::CString, Errno> {
    std::fs::write(name, b"#!/bin/sh\nid\n").map_err(|e| errno_of(&e))?;
    std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)
}

/// What a call that succeeded left: an escape if `name` now has a setuid/setgid bit.
fn setid_left(name: &str, call: &str) -> Outcome {
    let mode = std::fs::metadata(name)
        .map_err(|e| errno_of(&e))?
        .permissions()
        .mode();
    Ok(format!("{call} succeeded: {name} has mode {mode:o}"))
}

/// Runs attack `name` (one of [`ATTACKS`]).
pub fn run(name: &str, _arg: Option<&str>) -> Outcome {
    let at_fdcwd = libc::AT_FDCWD as i64 as u64;
    match name {
        // chmod u+s, through fchmodat (what chmod(1) and libc's chmod use).
        "chmod-setuid" => {
            let path = plain_file("suid")?;
            raw_syscall(
                libc::SYS_fchmodat,
                [at_fdcwd, path.as_ptr() as u64, 0o4755, 0, 0, 0],
            )
            .map_err(Errno::from_raw)?;
            setid_left("suid", "fchmodat 04755")
        }
        // chmod g+s on an open descriptor.
        "fchmod-setgid" => {
            plain_file("sgid")?;
            let f = std::fs::File::open("sgid").map_err(|e| errno_of(&e))?;
            use std::os::fd::AsRawFd;
            raw_syscall(libc::SYS_fchmod, [f.as_raw_fd() as u64, 0o2755, 0, 0, 0, 0])
                .map_err(Errno::from_raw)?;
            setid_left("sgid", "fchmod 02755")
        }
        // A new file created setuid in one call.
        "open-setuid" => {
            let path = std::ffi::CString::new("suid-new").map_err(|_| Errno::EINVAL)?;
            let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC) as u64;
            let fd = raw_syscall(
                libc::SYS_openat,
                [at_fdcwd, path.as_ptr() as u64, flags, 0o4755, 0, 0],
            )
            .map_err(Errno::from_raw)?;
            let _ = raw_syscall(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
            setid_left("suid-new", "openat O_CREAT 04755")
        }
        // A character device node (/dev/mem's numbers) in scratch.
        "mknod-char" => {
            let path = std::ffi::CString::new("mem").map_err(|_| Errno::EINVAL)?;
            let dev = libc::makedev(1, 1);
            raw_syscall(
                libc::SYS_mknodat,
                [
                    at_fdcwd,
                    path.as_ptr() as u64,
                    u64::from(libc::S_IFCHR | 0o666),
                    dev,
                    0,
                    0,
                ],
            )
            .map_err(Errno::from_raw)?;
            Ok("mknodat made a character device in scratch".into())
        }
        // A setuid binary of the runtime copied into scratch, its mode kept (std::fs::copy
        // creates the copy with the source's mode, as `cp -p` would).
        "copy-setuid" => {
            let source = [
                "/usr/bin/su",
                "/usr/bin/passwd",
                "/usr/bin/mount",
                "/bin/su",
            ]
            .into_iter()
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o4000 != 0))
            .ok_or(Errno::ENOENT)?;
            say(&format!("copying {source}"));
            match std::fs::copy(source, "copy") {
                Ok(_) => setid_left("copy", &format!("copy of {source}")).and_then(|d| {
                    let mode = std::fs::metadata("copy")
                        .map_err(|e| errno_of(&e))?
                        .permissions()
                        .mode();
                    if mode & 0o6000 == 0 {
                        // Copied, but not setuid: nothing gained.
                        Err(Errno::EPERM)
                    } else {
                        Ok(d)
                    }
                }),
                Err(e) => {
                    let left = std::fs::metadata("copy")
                        .map(|m| m.permissions().mode() & 0o6000 != 0)
                        .unwrap_or(false);
                    if left {
                        setid_left("copy", "a failed copy")
                    } else {
                        Err(errno_of(&e))
                    }
                }
            }
        }
        // Every mount the agent sees must be nosuid, and nodev unless it is a device node.
        "mount-flags" => {
            let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| errno_of(&e))?;
            let mut bad = Vec::new();
            let mut seen = 0;
            for line in info.lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
                    continue;
                };
                seen += 1;
                let has = |o: &str| options.split(',').any(|x| x == o);
                let device = std::fs::metadata(point).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_char_device() || m.file_type().is_block_device()
                });
                if !has("nosuid") || (!has("nodev") && !device) {
                    bad.push(format!("{point} {options}"));
                }
            }
            say(&format!("mounts seen: {seen}"));
            if bad.is_empty() && seen > 0 {
                Err(Errno::EPERM)
            } else {
                Ok(format!("mounts without nosuid/nodev: {}", bad.join("; ")))
            }
        }
        // Files of 1 MiB (each under any file-size limit) until the scratch is full.
        "scratch-fill" => {
            crate::sys::ignore_sigxfsz();
            let block = vec![7u8; 1 << 20];
            let mut total: u64 = 0;
            for i in 0.. {
                let mut f = std::fs::File::create(format!("fill-{i}")).map_err(|e| {
                    say(&format!("wrote {total} bytes"));
                    errno_of(&e)
                })?;
                let mut left = block.len();
                while left > 0 {
                    match f.write(&block[..left]) {
                        Ok(0) => return Err(Errno::ENOSPC),
                        Ok(n) => {
                            total += n as u64;
                            left -= n;
                        }
                        Err(e) => {
                            say(&format!("wrote {total} bytes"));
                            return Err(errno_of(&e));
                        }
                    }
                }
                if total > 16 << 30 {
                    break;
                }
            }
            Ok(format!("wrote {total} bytes"))
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `spew BYTES`: writes about `BYTES` of numbered lines (`line 00000000\n`, 14 bytes each) to
/// stdout, then exits 0. No kernel connection: the output is all there is.
pub fn spew(bytes: u64) -> u8 {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let lines = bytes / 14;
    for i in 0..lines {
        if writeln!(out, "line {i:08}").is_err() {
            return 1;
        }
    }
    if out.flush().is_err() {
        return 1;
    }
    0
}

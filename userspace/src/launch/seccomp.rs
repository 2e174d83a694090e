//! The seccomp layer: compiles [`super::seccomp_table`] into two BPF programs and installs
//! them on the calling process (after `no_new_privs`, after landlock).
//!
//! 1. The allow-list: table entries → allow (with argument checks for the filtered ones),
//!    anything else → `EPERM`, a foreign architecture → kill the process.
//! 2. Installed second: `clone3` → `ENOSYS`, anything else → allow. Among `ERRNO` actions of
//!    equal precedence the most recently installed filter wins, so `clone3` fails with
//!    `ENOSYS` and glibc falls back to `clone`, whose flags filter 1 checks.

use std::collections::BTreeMap;
use std::io;

use agentos_syscalls::LayerStatus;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

use super::error::other;
use super::seccomp_table::{all_allowed, name, ALLOWED, ALLOWED_LEGACY, ENOSYS, FILTERED};

/// Namespace flags `clone` may not carry.
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64;

/// The terminal ioctls that inject input or poke the console.
pub const DENIED_IOCTLS: [u64; 2] = [libc::TIOCSTI, libc::TIOCLINUX];

fn cond(arg: u8, len: Len, op: Op, value: u64) -> io::Result<Cond> {
    Cond::new(arg, len, op, value).map_err(other)
}

fn rules_for(nr: i64) -> io::Result<Vec<SeccompRule>> {
    let rule = |conds: Vec<Cond>| SeccompRule::new(conds).map_err(other);
    Ok(match nr {
        libc::SYS_socket | libc::SYS_socketpair => {
            // The domain is an int: compare the low 32 bits.
            vec![rule(vec![cond(
                0,
                Len::Dword,
                Op::Eq,
                libc::AF_UNIX as u64,
            )?])?]
        }
        libc::SYS_ioctl => {
            // The request is an unsigned int; the kernel ignores the high 32 bits, so must we.
            let mut conds = Vec::new();
            for req in DENIED_IOCTLS {
                conds.push(cond(1, Len::Dword, Op::Ne, req)?);
            }
            vec![rule(conds)?]
        }
        libc::SYS_clone => {
            // x86_64 and aarch64 both pass the flags first.
            vec![rule(vec![cond(
                0,
                Len::Qword,
                Op::MaskedEq(CLONE_NAMESPACE_FLAGS),
                0,
            )?])?]
        }
        _ => Vec::new(),
    })
}

fn arch() -> io::Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(other)
}

/// The allow-list program.
pub fn allow_list() -> io::Result<BpfProgram> {
    let mut rules = BTreeMap::new();
    for entry in ALLOWED.iter().chain(ALLOWED_LEGACY).chain(FILTERED) {
        rules.insert(entry.1, rules_for(entry.1)?);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch()?,
    )
    .map_err(other)?;
    filter.try_into().map_err(other)
}

/// The `ENOSYS` program installed after the allow-list.
pub fn enosys() -> io::Result<BpfProgram> {
    let rules = ENOSYS.iter().map(|e| (e.1, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(other)?;
    filter.try_into().map_err(other)
}

/// Compiles and installs both programs on the calling thread (the launcher has one).
pub fn install() -> io::Result<LayerStatus> {
    let allow = allow_list()?;
    let nosys = enosys()?;
    seccompiler::apply_filter(&allow).map_err(other)?;
    seccompiler::apply_filter(&nosys).map_err(other)?;
    let plain = ALLOWED.len() + ALLOWED_LEGACY.len();
    let enosys: Vec<&str> = ENOSYS.iter().map(name).collect();
    Ok(LayerStatus::Active {
        detail: format!(
            "{} syscalls allowed ({plain} unconditionally, {} with argument checks), {} answered ENOSYS, default EPERM",
            all_allowed().count() - ENOSYS.len(),
            FILTERED.len(),
            enosys.join(",")
        ),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn programs_compile() {
        assert!(allow_list().unwrap().len() > 100);
        assert!(!enosys().unwrap().is_empty());
    }
}

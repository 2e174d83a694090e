//! The seccomp layer: compiles [`super::seccomp_table`] into two BPF programs and installs
//! them on the calling process (after `no_new_privs`, after landlock).
//!
//! 1. The allow-list: table entries → allow (with argument checks for the filtered ones),
//!    anything else → `SECCOMP_RET_USER_NOTIF`, a foreign architecture → kill the process.
//!    It is installed with `SECCOMP_FILTER_FLAG_NEW_LISTENER`; the init sends the listener to
//!    the kernel, which records each denial as a sandbox event and answers it `EPERM`. A host
//!    without user notification gets the same program with `EPERM` as the default action
//!    (reported in the layer detail). Only one listener may exist in a filter chain, so the
//!    agent cannot install its own. The mode-setting calls (`fchmod`; and where there is no
//!    listener, the notified `chmod` family and creating opens) are allowed only with a mode
//!    free of `S_ISUID|S_ISGID` ([`mode_rules`]); with a listener the kernel shown a notified
//!    one denies a setuid mode by the same test ([`lets_through`]).
//! 2. Installed second: `clone3`, `openat2` (and `fchmodat2`) → `ENOSYS`, anything else → allow. Among `ERRNO` actions of
//!    equal precedence the most recently installed filter wins, so `clone3` fails with
//!    `ENOSYS` and glibc falls back to `clone`, whose flags filter 1 checks.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;

use agentos_syscalls::LayerStatus;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

use super::error::other;
use super::seccomp_table::{
    all_allowed, is_notified, mode_refused, name, ALLOWED, ALLOWED_LEGACY, CREATE_FLAGS, ENOSYS,
    FILTERED, LIMITED, MODE_CHECKED, NOTIFIED, NOTIFIED_LEGACY, SETID_BITS,
};

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

/// The socket domains an allow-list admits: `AF_UNIX`, and with `network` (a tool provider
/// the operator declared `network`, or an agent with an egress proxy, whose namespace has
/// nothing but its loopback) `AF_INET` and `AF_INET6` as well.
pub fn socket_domains(network: bool) -> &'static [i32] {
    if network {
        &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6]
    } else {
        &[libc::AF_UNIX]
    }
}

/// What the filter lets through unseen; the rest of a [`FILTERED`] or [`LIMITED`] call goes to
/// the default action (with a listener: to the kernel, which tells denials from looks with
/// [`is_looked_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unseen {
    /// `AF_INET`/`AF_INET6` sockets too (a network tool provider).
    network: bool,
    /// `mmap`/`mremap` below this many bytes pass unseen (`None`: every size).
    large_mmap: Option<u64>,
}

fn rules_for(nr: i64, unseen: Unseen) -> io::Result<Vec<SeccompRule>> {
    let network = unseen.network;
    let rule = |conds: Vec<Cond>| SeccompRule::new(conds).map_err(other);
    Ok(match nr {
        libc::SYS_socket => {
            // The domain is an int: compare the low 32 bits. Rules are alternatives.
            socket_domains(network)
                .iter()
                .map(|d| rule(vec![cond(0, Len::Dword, Op::Eq, *d as u64)?]))
                .collect::<io::Result<_>>()?
        }
        libc::SYS_socketpair => {
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
        // The length is mmap's second argument, the new length mremap's third.
        libc::SYS_mmap | libc::SYS_mremap => match unseen.large_mmap {
            Some(large) => {
                let arg = if nr == libc::SYS_mmap { 1 } else { 2 };
                vec![rule(vec![cond(arg, Len::Qword, Op::Lt, large)?])?]
            }
            None => Vec::new(),
        },
        _ => mode_rules(nr)?,
    })
}

/// The rules that let a [`MODE_CHECKED`] call through: a mode without [`SETID_BITS`] or, for
/// an open, no [`CREATE_FLAGS`] (rules are alternatives). Empty (no condition) for any other
/// call. Modes and flags are 32-bit: the low half is compared.
fn mode_rules(nr: i64) -> io::Result<Vec<SeccompRule>> {
    let Some(check) = MODE_CHECKED.iter().find(|c| c.entry.1 == nr) else {
        return Ok(Vec::new());
    };
    let rule = |conds: Vec<Cond>| SeccompRule::new(conds).map_err(other);
    let mut rules = vec![rule(vec![cond(
        check.mode_arg,
        Len::Dword,
        Op::MaskedEq(SETID_BITS),
        0,
    )?])?];
    if let Some(flags) = check.flags_arg {
        rules.push(rule(vec![cond(
            flags,
            Len::Dword,
            Op::MaskedEq(CREATE_FLAGS),
            0,
        )?])?);
    }
    Ok(rules)
}

fn arch() -> io::Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(other)
}

/// What the allow-list answers a syscall it does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// `SECCOMP_RET_USER_NOTIF`: the kernel decides (and records) through the listener.
    Notify,
    /// `SECCOMP_RET_ERRNO | EPERM`: the fallback without user notification.
    Eperm,
}

/// seccompiler has no user-notification action: the program is compiled with this
/// (otherwise unused) `SECCOMP_RET_TRACE` value as the default action, then every return of it
/// is rewritten to `SECCOMP_RET_USER_NOTIF`.
const NOTIFY_PLACEHOLDER: u32 = 0x7ff0_0a6e;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;

/// The allow-list program with `EPERM` as its default action.
pub fn allow_list() -> io::Result<BpfProgram> {
    allow_list_with(Deny::Eperm)
}

/// The allow-list program with `deny` as its default action.
pub fn allow_list_with(deny: Deny) -> io::Result<BpfProgram> {
    allow_list_for(deny, false, None)
}

/// The allow-list program with `deny` as its default action; `network` admits `AF_INET` and
/// `AF_INET6` sockets (see [`socket_domains`]); `large_mmap` (from [`large_mmap`] of the
/// jail's address-space limit) is the smallest `mmap`/`mremap` shown to the kernel.
pub fn allow_list_for(
    deny: Deny,
    network: bool,
    large_mmap: Option<u64>,
) -> io::Result<BpfProgram> {
    // With a listener, the notified calls fall to the default action (the kernel looks, then
    // lets them through); without one they are simply allowed.
    compile(deny, deny == Deny::Eperm, network, large_mmap)
}

/// Whether the kernel, handed a notification of `nr`, looks at the call and lets it through
/// (a [`NOTIFIED`] call, a large `mmap`) rather than denying it.
pub fn is_looked_at(nr: i64) -> bool {
    is_notified(nr) || LIMITED.iter().any(|e| e.1 == nr)
}

/// What the listener does with a notification of `nr` with `args`: `true` — look, then let
/// it through ([`is_looked_at`]); `false` — deny it (`EPERM`, recorded). A notified call
/// that would set a setuid or setgid mode ([`mode_refused`]) is denied, as the filter itself
/// denies it where there is no listener.
pub fn lets_through(nr: i64, args: &[u64; 6]) -> bool {
    is_looked_at(nr) && !mode_refused(nr, args)
}

/// The smallest `mmap`/`mremap` length the kernel is shown under an address-space limit of
/// `address_space` bytes: 1/64 of it, at least 1 MiB. A start-up's and an allocator's
/// ordinary mappings pass unseen; a request that meets the limit from further below it than
/// that is seen. `None` (nothing shown) when there is no real limit.
pub fn large_mmap(address_space: u64) -> Option<u64> {
    (address_space < 1 << 56).then(|| (address_space / 64).max(1 << 20))
}

fn compile(
    deny: Deny,
    allow_notified: bool,
    network: bool,
    large_mmap: Option<u64>,
) -> io::Result<BpfProgram> {
    // Without a listener nothing is shown to the kernel: new processes and large mappings
    // are simply allowed, as the notified calls are.
    let unseen = Unseen {
        network,
        large_mmap: if allow_notified { None } else { large_mmap },
    };
    let mut rules = BTreeMap::new();
    for entry in ALLOWED
        .iter()
        .chain(ALLOWED_LEGACY)
        .chain(FILTERED)
        .chain(LIMITED)
    {
        rules.insert(entry.1, rules_for(entry.1, unseen)?);
    }
    if allow_notified {
        for entry in NOTIFIED.iter().chain(NOTIFIED_LEGACY) {
            rules.insert(entry.1, mode_rules(entry.1)?);
        }
    }
    let default = match deny {
        Deny::Eperm => SeccompAction::Errno(libc::EPERM as u32),
        Deny::Notify => SeccompAction::Trace(NOTIFY_PLACEHOLDER & 0xffff),
    };
    let filter =
        SeccompFilter::new(rules, default, SeccompAction::Allow, arch()?).map_err(other)?;
    let mut prog: BpfProgram = filter.try_into().map_err(other)?;
    if deny == Deny::Notify {
        for insn in prog.iter_mut() {
            if insn.code == BPF_RET_K && insn.k == NOTIFY_PLACEHOLDER {
                insn.k = libc::SECCOMP_RET_USER_NOTIF;
            }
        }
    }
    Ok(prog)
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

/// Compiles and installs both programs on the calling thread (the launcher has one); returns
/// the layer status and, when the host offers user notification, the listener to hand to the
/// kernel (without it, denials are answered `EPERM` directly and not reported).
pub fn install(
    network: bool,
    large_mmap: Option<u64>,
) -> io::Result<(LayerStatus, Option<OwnedFd>)> {
    let notify = allow_list_for(Deny::Notify, network, large_mmap)?;
    let nosys = enosys()?;
    let (listener, default) = match crate::sys::seccomp_with_listener(&notify) {
        Ok(fd) => (
            Some(fd),
            format!(
                "default: user notification to the kernel (recorded, answered EPERM); {} path and signal calls{} shown to the kernel, then let through",
                NOTIFIED.len() + NOTIFIED_LEGACY.len(),
                large_mmap.map_or(String::new(), |n| format!(" and mmap/mremap of {n} bytes or more"))
            ),
        ),
        Err(e) => {
            let allow = allow_list_for(Deny::Eperm, network, large_mmap)?;
            seccompiler::apply_filter(&allow).map_err(other)?;
            (
                None,
                format!("default EPERM, not reported (no seccomp user notification: {e})"),
            )
        }
    };
    seccompiler::apply_filter(&nosys).map_err(other)?;
    let plain = ALLOWED.len()
        + ALLOWED_LEGACY.len()
        + NOTIFIED.len()
        + NOTIFIED_LEGACY.len()
        + LIMITED.len();
    let enosys: Vec<&str> = ENOSYS.iter().map(name).collect();
    let sockets = if network {
        ", sockets AF_UNIX/AF_INET/AF_INET6"
    } else {
        ""
    };
    Ok((
        LayerStatus::Active {
            detail: format!(
                "{} syscalls allowed ({plain} unconditionally, {} with argument checks), {} answered ENOSYS, {default}",
                all_allowed().count() - ENOSYS.len(),
                FILTERED.len(),
                enosys.join(",")
            ) + sockets,
        },
        listener,
    ))
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

    #[test]
    fn large_mappings_are_shown_to_the_kernel_only_with_a_listener() {
        assert_eq!(large_mmap(256 << 20), Some(4 << 20));
        assert_eq!(large_mmap(16 << 20), Some(1 << 20));
        assert_eq!(large_mmap(u64::MAX), None);
        assert!(is_looked_at(libc::SYS_mmap) && is_looked_at(libc::SYS_openat));
        assert!(!is_looked_at(libc::SYS_clone) && !is_looked_at(libc::SYS_ptrace));
        // With a listener: a length check on mmap and mremap; without one, none.
        let plain = allow_list_for(Deny::Notify, false, None).unwrap();
        let sized = allow_list_for(Deny::Notify, false, Some(4 << 20)).unwrap();
        assert!(sized.len() > plain.len());
        assert!(sized.iter().any(|i| i.k == 4 << 20));
        let eperm = allow_list_for(Deny::Eperm, false, Some(4 << 20)).unwrap();
        assert_eq!(eperm, allow_list_for(Deny::Eperm, false, None).unwrap());
    }

    #[test]
    fn only_a_network_program_admits_inet_sockets() {
        assert_eq!(socket_domains(false), &[libc::AF_UNIX]);
        assert_eq!(
            socket_domains(true),
            &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6]
        );
        let plain = allow_list_for(Deny::Eperm, false, None).unwrap();
        let network = allow_list_for(Deny::Eperm, true, None).unwrap();
        assert_eq!(plain, allow_list().unwrap());
        // Two more alternatives for `socket`'s domain, nothing else.
        assert!(network.len() > plain.len());
    }

    #[test]
    fn notify_program_differs_only_in_the_default_action() {
        let eperm = compile(Deny::Eperm, false, false, None).unwrap();
        let notify = compile(Deny::Notify, false, false, None).unwrap();
        assert_eq!(notify, allow_list_with(Deny::Notify).unwrap());
        assert_eq!(eperm.len(), notify.len());
        let errno = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let mut rewritten = 0;
        for (a, b) in eperm.iter().zip(&notify) {
            if a == b {
                continue;
            }
            assert_eq!((a.code, a.k), (BPF_RET_K, errno));
            assert_eq!((b.code, b.k), (BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
            rewritten += 1;
        }
        assert!(rewritten > 0);
        assert!(!notify.iter().any(|i| i.k == NOTIFY_PLACEHOLDER));
        // Without a listener the notified calls are allowed: a longer program.
        assert!(allow_list_with(Deny::Eperm).unwrap().len() > eperm.len());
    }
}

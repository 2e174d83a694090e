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
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
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

/// The rules of the allow-list: every syscall it lets through (an empty list: with any
/// arguments; otherwise alternatives, one of which must hold), everything else to the default.
fn allow_rules(
    allow_notified: bool,
    network: bool,
    large_mmap: Option<u64>,
) -> io::Result<BTreeMap<i64, Vec<SeccompRule>>> {
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
    Ok(rules)
}

fn default_action(deny: Deny) -> SeccompAction {
    match deny {
        Deny::Eperm => SeccompAction::Errno(libc::EPERM as u32),
        Deny::Notify => SeccompAction::Trace(NOTIFY_PLACEHOLDER & 0xffff),
    }
}

fn finish(deny: Deny, mut prog: BpfProgram) -> BpfProgram {
    if deny == Deny::Notify {
        for insn in prog.iter_mut() {
            if insn.code == BPF_RET_K && insn.k == NOTIFY_PLACEHOLDER {
                insn.k = libc::SECCOMP_RET_USER_NOTIF;
            }
        }
    }
    prog
}

fn compile(
    deny: Deny,
    allow_notified: bool,
    network: bool,
    large_mmap: Option<u64>,
) -> io::Result<BpfProgram> {
    let rules = allow_rules(allow_notified, network, large_mmap)?;
    let default = default_action(deny);
    Ok(finish(deny, search_tree(rules, default)?))
}

/// `BPF_LD | BPF_W | BPF_ABS`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JA`.
const BPF_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const BPF_JGE_K: u16 = 0x35;
/// Where `seccomp_data` holds the syscall number.
const NR_OFFSET: u32 = 0;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// What a run of syscall numbers gets.
enum Leaf {
    /// Allowed with any arguments.
    Allow,
    /// The default action.
    Default,
    /// Allowed when one of the rules holds (one syscall), else the default action.
    Rules(Vec<SeccompRule>),
}

/// Compiles `rules` into a binary search over syscall numbers: the same decisions as
/// seccompiler's linear program (one `JEQ` per syscall, ~5 instructions each, up to ~250
/// compares per call), in a fraction of its instructions (which the host's kernel checks and
/// translates when the filter is attached) and ~8 compares per call. The number line is cut
/// into runs that get the same answer (consecutive allowed syscalls are one run; a syscall
/// with argument checks is a run of its own); a node is one `JGE` on the first number of its
/// right half. The architecture check in front is seccompiler's own.
fn search_tree(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    default: SeccompAction,
) -> io::Result<BpfProgram> {
    // seccompiler's program for no rules: the architecture check, then the default action.
    let empty: BpfProgram = SeccompFilter::new(
        BTreeMap::new(),
        default.clone(),
        SeccompAction::Allow,
        arch()?,
    )
    .map_err(other)?
    .try_into()
    .map_err(other)?;
    let mut prog: BpfProgram = empty[..empty.len() - 1].to_vec();
    prog.push(insn(BPF_LD_W_ABS, 0, 0, NR_OFFSET));

    // Runs of numbers, each from its start to the next one's; the first starts at 0.
    let mut runs: Vec<(u32, Leaf)> = Vec::new();
    let mut next = Some(0u32);
    for (nr, alternatives) in rules {
        let nr = u32::try_from(nr).map_err(other)?;
        if let Some(from) = next.filter(|&from| from < nr) {
            push_run(&mut runs, from, Leaf::Default);
        }
        if alternatives.is_empty() {
            push_run(&mut runs, nr, Leaf::Allow);
        } else {
            runs.push((nr, Leaf::Rules(alternatives)));
        }
        next = nr.checked_add(1);
    }
    if let Some(from) = next {
        push_run(&mut runs, from, Leaf::Default);
    }
    let allow = u32::from(SeccompAction::Allow);
    let default = u32::from(default);
    prog.extend(subtree(&mut runs, allow, default)?);
    Ok(prog)
}

/// Appends a run of a plain answer starting at `start`, or extends the last run when it
/// gives the same answer (runs are pushed in order, each starting where the last one ends).
fn push_run(runs: &mut Vec<(u32, Leaf)>, start: u32, leaf: Leaf) {
    let same = matches!(
        (runs.last(), &leaf),
        (Some((_, Leaf::Allow)), Leaf::Allow) | (Some((_, Leaf::Default)), Leaf::Default)
    );
    if !same {
        runs.push((start, leaf));
    }
}

/// The code for `runs` (at least one), with the syscall number in the accumulator.
fn subtree(runs: &mut [(u32, Leaf)], allow: u32, default: u32) -> io::Result<BpfProgram> {
    if let [(_, leaf)] = runs {
        return Ok(match leaf {
            Leaf::Allow => vec![insn(BPF_RET_K, 0, 0, allow)],
            Leaf::Default => vec![insn(BPF_RET_K, 0, 0, default)],
            Leaf::Rules(alternatives) => {
                // seccompiler's code for each rule: its conditions jump past its end (to the
                // next rule) when one fails; the last one falls to the default action.
                let mut code = Vec::new();
                for rule in std::mem::take(alternatives) {
                    let rule: BpfProgram = rule.into();
                    code.extend(rule);
                    code.push(insn(BPF_RET_K, 0, 0, allow));
                }
                code.push(insn(BPF_RET_K, 0, 0, default));
                code
            }
        });
    }
    let mid = runs.len() / 2;
    let split = runs[mid].0;
    let (low, high) = runs.split_at_mut(mid);
    let left = subtree(low, allow, default)?;
    let right = subtree(high, allow, default)?;
    let mut code = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        // number >= split: over the left half.
        Ok(skip) => code.push(insn(BPF_JGE_K, skip, 0, split)),
        Err(_) => {
            let skip = u32::try_from(left.len()).map_err(other)?;
            code.push(insn(BPF_JGE_K, 0, 1, split));
            code.push(insn(BPF_JA, 0, 0, skip));
        }
    }
    code.extend(left);
    code.extend(right);
    Ok(code)
}

/// seccompiler's linear program for the same rules: the reference the search tree is
/// checked against.
#[cfg(test)]
fn compile_linear(
    deny: Deny,
    allow_notified: bool,
    network: bool,
    large_mmap: Option<u64>,
) -> io::Result<BpfProgram> {
    let rules = allow_rules(allow_notified, network, large_mmap)?;
    let filter = SeccompFilter::new(rules, default_action(deny), SeccompAction::Allow, arch()?)
        .map_err(other)?;
    Ok(finish(deny, filter.try_into().map_err(other)?))
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
        // Without a listener the notified calls are allowed: another program.
        assert_ne!(allow_list_with(Deny::Eperm).unwrap(), eperm);
    }

    /// A classic BPF interpreter for what the programs use: loads from `seccomp_data`, `AND`,
    /// jumps, returns. Anything else fails the test.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        let word = |offset: u32| -> u32 {
            match offset {
                0 => nr,
                4 => arch,
                16..=63 => {
                    let arg = args[(offset as usize - 16) / 8];
                    if offset % 8 == 0 {
                        arg as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
                _ => panic!("load at {offset}"),
            }
        };
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = &prog[pc];
            pc += 1;
            let jump = |taken: bool| if taken { i.jt } else { i.jf } as usize;
            match i.code {
                0x20 => a = word(i.k),
                0x54 => a &= i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += jump(a == i.k),
                0x25 => pc += jump(a > i.k),
                0x35 => pc += jump(a >= i.k),
                0x06 => return i.k,
                code => panic!("instruction {code:#x} at {}", pc - 1),
            }
        }
    }

    /// Argument values near every constant the rules compare with.
    fn arg_values() -> Vec<u64> {
        let mut base = vec![
            0,
            1,
            2,
            libc::AF_UNIX as u64,
            libc::AF_INET as u64,
            libc::AF_INET6 as u64,
            libc::AF_NETLINK as u64,
            libc::AF_PACKET as u64,
            libc::SIGCHLD as u64,
            0o755,
            0o4755,
            0o2755,
            libc::O_RDONLY as u64,
            libc::O_WRONLY as u64 | libc::O_CREAT as u64,
            libc::O_TMPFILE as u64,
            libc::O_DIRECTORY as u64,
            1 << 20,
            4 << 20,
            u32::MAX as u64,
            u64::MAX,
            1 << 32,
            1 << 63,
        ];
        base.extend(DENIED_IOCTLS);
        base.extend([CLONE_NAMESPACE_FLAGS, SETID_BITS, CREATE_FLAGS]);
        for flag in 0..64 {
            if CLONE_NAMESPACE_FLAGS & (1 << flag) != 0 {
                base.push(1 << flag | libc::SIGCHLD as u64);
            }
        }
        let mut values = base.clone();
        for v in base {
            values.extend([
                v.wrapping_add(1),
                v.wrapping_sub(1),
                v | 1 << 32,
                v | 1 << 40,
            ]);
        }
        values.sort_unstable();
        values.dedup();
        values
    }

    /// Every syscall number (and the x32 and out-of-range ones), with arguments near every
    /// constant in the rules on every argument position, for each program variant: the
    /// search tree answers exactly as seccompiler's linear program.
    #[test]
    fn the_search_tree_decides_every_call_as_the_linear_program() {
        let arch_value = {
            let empty = search_tree(BTreeMap::new(), SeccompAction::Errno(1)).unwrap();
            empty[1].k
        };
        let values = arg_values();
        let mut numbers: Vec<u32> = (0..1100).collect();
        numbers.extend((0x4000_0000..0x4000_0000 + 600).chain([
            0x7fff_ffff,
            u32::MAX - 1,
            u32::MAX,
        ]));
        let mut checked = 0u64;
        for deny in [Deny::Notify, Deny::Eperm] {
            for allow_notified in [false, true] {
                for network in [false, true] {
                    for large in [None, Some(4 << 20)] {
                        let tree = compile(deny, allow_notified, network, large).unwrap();
                        let linear = compile_linear(deny, allow_notified, network, large).unwrap();
                        assert!(
                            tree.len() * 3 < linear.len(),
                            "tree {} vs linear {} instructions",
                            tree.len(),
                            linear.len()
                        );
                        let has_rules: Vec<u32> = allow_rules(allow_notified, network, large)
                            .unwrap()
                            .iter()
                            .filter(|(_, r)| !r.is_empty())
                            .map(|(nr, _)| *nr as u32)
                            .collect();
                        for &nr in &numbers {
                            let mut cases = vec![[0u64; 6], [u64::MAX; 6]];
                            if has_rules.contains(&nr) {
                                for pos in 0..6 {
                                    for &v in &values {
                                        let mut args = [0u64; 6];
                                        args[pos] = v;
                                        cases.push(args);
                                        let mut args = [libc::AF_UNIX as u64; 6];
                                        args[pos] = v;
                                        cases.push(args);
                                    }
                                }
                                // Pairs on the first three positions.
                                for &x in values.iter().step_by(3) {
                                    for &y in values.iter().step_by(3) {
                                        cases.push([x, y, y, 0, 0, 0]);
                                        cases.push([x, x, y, 0, 0, 0]);
                                    }
                                }
                            }
                            for args in cases {
                                for arch in [arch_value, arch_value ^ 1] {
                                    assert_eq!(
                                        run(&tree, arch, nr, &args),
                                        run(&linear, arch, nr, &args),
                                        "{deny:?} notified {allow_notified} network {network} \
                                         large {large:?}: nr {nr} args {args:x?}"
                                    );
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1_000_000, "{checked}");
    }

    /// The tree keeps the table's verdicts: allowed calls pass, denied ones get the default,
    /// a filtered one is decided by its arguments.
    #[test]
    fn the_search_tree_allows_the_table_and_nothing_else() {
        let prog = allow_list_with(Deny::Notify).unwrap();
        let arch = prog[1].k;
        let allow = u32::from(SeccompAction::Allow);
        let zero = [0u64; 6];
        for entry in ALLOWED.iter().chain(ALLOWED_LEGACY) {
            assert_eq!(
                run(&prog, arch, entry.1 as u32, &zero),
                allow,
                "{}",
                name(entry)
            );
        }
        for entry in super::super::seccomp_table::DENIED_NUMBERS
            .iter()
            .chain(super::super::seccomp_table::DENIED_NUMBERS_LEGACY)
            .chain(NOTIFIED)
        {
            assert_eq!(
                run(&prog, arch, entry.1 as u32, &zero),
                libc::SECCOMP_RET_USER_NOTIF,
                "{}",
                name(entry)
            );
        }
        let mut unix = zero;
        unix[0] = libc::AF_UNIX as u64;
        let mut inet = zero;
        inet[0] = libc::AF_INET as u64;
        let socket = libc::SYS_socket as u32;
        assert_eq!(run(&prog, arch, socket, &unix), allow);
        assert_eq!(
            run(&prog, arch, socket, &inet),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            run(&prog, arch ^ 1, socket, &unix),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }
}

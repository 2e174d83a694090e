//! `agentos-launch --probe`: which sandbox layers this host offers, for the kernel's
//! capability report (`agentctl kernel status`) and its refusal to spawn without a required
//! layer. Prints one line per layer, `name<TAB>active|missing<TAB>detail`.
//!
//! Each namespace is tried in a short-lived child (`unshare(CLONE_NEWUSER | flag)`, as the
//! launcher does), landlock by its ABI version, seccomp by the actions the host lists,
//! cgroups by what is mounted and writable.
//!
//! Invariants: the probe changes nothing on the host and holds nothing after it returns.

use std::io;

use agentos_syscalls::{Layer, LayerStatus};

use super::landlock_rules::BASELINE_ABI;
use super::layer::LayerName;
use crate::sys;

/// The layers the capability report lists, in order: those a host may lack. The others
/// (`rootfs`, `rlimits`, `capabilities`, `no_new_privs`) are built from what every Linux host
/// the launcher runs on has (a mount namespace, `setrlimit`, `capset`, `prctl`), and are not
/// probed. Which layers a spawn requires: [`LayerName::required`].
pub const PROBED: [LayerName; 9] = [
    LayerName::Userns,
    LayerName::Pidns,
    LayerName::Netns,
    LayerName::Ipcns,
    LayerName::Utsns,
    LayerName::Mountns,
    LayerName::Landlock,
    LayerName::Seccomp,
    LayerName::Cgroup,
];

fn unshare_in_child(flags: nix::sched::CloneFlags) -> io::Result<()> {
    match sys::fork()? {
        sys::Forked::Child => {
            let code = match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER | flags) {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            sys::exit_now(code)
        }
        sys::Forked::Parent { child } => {
            match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None)? {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                nix::sys::wait::WaitStatus::Exited(_, errno) => {
                    Err(io::Error::from_raw_os_error(errno))
                }
                other => Err(io::Error::other(format!("probe child ended: {other:?}"))),
            }
        }
    }
}

fn namespace(flags: nix::sched::CloneFlags) -> LayerStatus {
    match unshare_in_child(flags) {
        Ok(()) => LayerStatus::Active {
            detail: "unshare works".into(),
        },
        Err(e) => LayerStatus::Missing {
            detail: format!("unshare fails: {e}"),
        },
    }
}

fn landlock() -> LayerStatus {
    let baseline = BASELINE_ABI as i64;
    match sys::landlock_abi() {
        Ok(abi) if abi >= baseline => LayerStatus::Active {
            detail: format!("abi {abi}"),
        },
        Ok(abi) => LayerStatus::Partial {
            detail: format!("abi {abi}, below the baseline {baseline}"),
        },
        Err(e) => LayerStatus::Missing {
            detail: format!("landlock_create_ruleset: {e}"),
        },
    }
}

fn seccomp() -> LayerStatus {
    match std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail") {
        Ok(actions) if actions.split_whitespace().any(|a| a == "user_notif") => {
            LayerStatus::Active {
                detail: "filters with user notification (denials recorded)".into(),
            }
        }
        Ok(actions) if actions.split_whitespace().any(|a| a == "errno") => LayerStatus::Active {
            detail: "filters without user notification (denials answered EPERM, not recorded)"
                .into(),
        },
        Ok(actions) => LayerStatus::Missing {
            detail: format!("actions available: {}", actions.trim()),
        },
        Err(e) => LayerStatus::Missing {
            detail: format!("/proc/sys/kernel/seccomp/actions_avail: {e}"),
        },
    }
}

fn cgroup() -> LayerStatus {
    match super::cgroup::detect() {
        Ok(host) => LayerStatus::Active {
            detail: format!(
                "{} writable: each agent gets its own group",
                host.describe()
            ),
        },
        Err(why) => LayerStatus::Missing {
            detail: format!("rlimits only: {why}"),
        },
    }
}

/// Probes every layer of [`PROBED`].
pub fn probe() -> Vec<Layer> {
    use nix::sched::CloneFlags as F;
    PROBED
        .iter()
        .filter_map(|name| {
            let status = match name {
                LayerName::Userns => namespace(F::empty()),
                LayerName::Pidns => namespace(F::CLONE_NEWPID),
                LayerName::Netns => namespace(F::CLONE_NEWNET),
                LayerName::Ipcns => namespace(F::CLONE_NEWIPC),
                LayerName::Utsns => namespace(F::CLONE_NEWUTS),
                LayerName::Mountns => namespace(F::CLONE_NEWNS),
                LayerName::Landlock => landlock(),
                LayerName::Seccomp => seccomp(),
                LayerName::Cgroup => cgroup(),
                // Not in PROBED: every host has them (see there).
                LayerName::Rootfs
                | LayerName::Rlimits
                | LayerName::Capabilities
                | LayerName::NoNewPrivs => return None,
            };
            Some(Layer {
                name: name.as_str().to_string(),
                status,
            })
        })
        .collect()
}

/// One line per layer, `name<TAB>active|partial|missing<TAB>detail`.
pub fn format(layers: &[Layer]) -> String {
    let mut out = String::new();
    for l in layers {
        let (word, detail) = match &l.status {
            LayerStatus::Active { detail } => ("active", detail),
            LayerStatus::Partial { detail } => ("partial", detail),
            LayerStatus::Missing { detail } => ("missing", detail),
        };
        out.push_str(&format!(
            "{}\t{word}\t{}\n",
            l.name,
            detail.replace(['\t', '\n'], " ")
        ));
    }
    out
}

/// Parses [`format`]'s output.
pub fn parse(text: &str) -> Vec<Layer> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let (name, word, detail) = (parts.next()?, parts.next()?, parts.next()?);
            let detail = detail.to_string();
            let status = match word {
                "active" => LayerStatus::Active { detail },
                "partial" => LayerStatus::Partial { detail },
                _ => LayerStatus::Missing { detail },
            };
            Some(Layer {
                name: name.to_string(),
                status,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn format_parse_round_trip() {
        let layers = vec![
            Layer {
                name: "landlock".into(),
                status: LayerStatus::Active {
                    detail: "abi 7".into(),
                },
            },
            Layer {
                name: "cgroup".into(),
                status: LayerStatus::Missing {
                    detail: "a\tb".into(),
                },
            },
        ];
        let back = parse(&format(&layers));
        assert_eq!(back[0], layers[0]);
        assert_eq!(
            back[1].status,
            LayerStatus::Missing {
                detail: "a b".into()
            }
        );
    }

    /// The probe lists the jail's layers a host may lack, in the jail's order except the
    /// cgroup (last: the kernel completes its entry): the jail's layers minus those every host
    /// has.
    #[test]
    fn probed_layers_are_the_jails_minus_those_every_host_has() {
        let mut jail_order: Vec<LayerName> = PROBED.to_vec();
        jail_order.sort();
        let always = [
            LayerName::Rootfs,
            LayerName::Rlimits,
            LayerName::Capabilities,
            LayerName::NoNewPrivs,
        ];
        let expected: Vec<LayerName> = crate::launch::LAYERS
            .into_iter()
            .filter(|l| !always.contains(l))
            .collect();
        assert_eq!(jail_order, expected);
        assert_eq!(PROBED.last(), Some(&LayerName::Cgroup));
    }
}

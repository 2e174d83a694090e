//! The landlock layer: which paths the agent may touch, and how.
//!
//! Rules (data, reviewed with DESIGN §4): `read_exec` → read + list + execute; `read_only` →
//! read + list; `devices` → read + write + truncate + device ioctls; `scratch` → everything;
//! `program` → execute + read. Only inside the minimal root (rootfs layer, root pivoted):
//! `/` → list directories (the root holds nothing but the paths above and their mount-point
//! directories), and `/proc` → read + list when it is the agent's own proc. Every filesystem access right the ABI knows is *handled*, so
//! anything not granted here is denied; TCP bind/connect are handled with no rule (denied);
//! abstract unix sockets and signals are scoped to the agent's own domain.
//!
//! Invariants: a rule on a non-directory carries only file rights (directory-only rights on a
//! file would be refused or silently dropped); a path that does not exist is skipped and named
//! in the layer detail, never fatal (except the scratch directory, checked earlier).

use std::io;
use std::path::{Path, PathBuf};

use agentos_syscalls::LayerStatus;
use landlock::{
    make_bitflags, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus,
    NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    ABI,
};

use super::error::other;
use super::spec::JailSpec;

/// The newest landlock ABI this launcher knows (requested best-effort).
pub const LANDLOCK_ABI: ABI = ABI::V10;

/// The ABI whose features the jail is designed around: the read/write/execute split (1),
/// refer (2), truncate (3), TCP (4), device ioctls (5), abstract-socket and signal scoping (6).
/// A host at or above it gets `Active`; below it `Partial`.
pub const BASELINE_ABI: ABI = ABI::V6;

/// What the rootfs layer made of `/`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootView {
    /// `/` is the minimal root (never the host's).
    pub minimal: bool,
    /// `/proc` is a proc of the agent's own pid namespace (implies `minimal`).
    pub own_proc: bool,
}

/// One kind of grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    ReadExec,
    ReadOnly,
    /// Directory listing only.
    ListDir,
    Device,
    Scratch,
    Program,
    /// A writable [`crate::launch::Mount`] (a tool's read-write `/workspace`) or a writable
    /// subtree of a tool's view: everything but execute.
    ReadWrite,
}

impl Grant {
    /// The rights of this grant for a directory (before masking to the host ABI).
    pub fn rights(self, abi: ABI) -> BitFlags<AccessFs> {
        match self {
            Grant::ReadExec => make_bitflags!(AccessFs::{ReadFile | ReadDir | Execute}),
            Grant::ReadOnly => make_bitflags!(AccessFs::{ReadFile | ReadDir}),
            Grant::ListDir => make_bitflags!(AccessFs::{ReadDir}),
            Grant::Device => {
                make_bitflags!(AccessFs::{ReadFile | WriteFile | Truncate | IoctlDev})
                    & AccessFs::from_all(abi)
            }
            Grant::Scratch => AccessFs::from_all(abi),
            Grant::Program => make_bitflags!(AccessFs::{Execute | ReadFile}),
            Grant::ReadWrite => AccessFs::from_all(abi) & !AccessFs::Execute,
        }
    }
}

/// The rights for `grant` on a path that is (`is_dir`) or is not a directory.
pub fn rights_for(grant: Grant, abi: ABI, is_dir: bool) -> BitFlags<AccessFs> {
    let rights = grant.rights(abi);
    if is_dir {
        rights
    } else {
        rights & AccessFs::from_file(abi)
    }
}

fn rules(spec: &JailSpec, root: RootView) -> Vec<(PathBuf, Grant)> {
    let mut out = Vec::new();
    out.extend(spec.read_exec.iter().map(|p| (p.clone(), Grant::ReadExec)));
    out.extend(spec.read_only.iter().map(|p| (p.clone(), Grant::ReadOnly)));
    out.extend(spec.devices.iter().map(|p| (p.clone(), Grant::Device)));
    out.push((spec.scratch.clone(), Grant::Scratch));
    out.push((spec.program.clone(), Grant::Program));
    for m in &spec.mounts {
        // The target exists only in the minimal root; without it the rule is skipped.
        if root.minimal {
            let grant = if m.writable {
                Grant::ReadWrite
            } else {
                Grant::ReadOnly
            };
            out.push((m.target.clone(), grant));
            // A tool view's writable subtrees: read-write, like the mount they lie in would be.
            out.extend(
                m.view
                    .iter()
                    .filter(|e| e.kind == super::spec::ViewKind::Writable)
                    .map(|e| (m.target.join(&e.path), Grant::ReadWrite)),
            );
        }
    }
    if root.minimal {
        out.push(("/".into(), Grant::ListDir));
        if root.own_proc {
            out.push(("/proc".into(), Grant::ReadOnly));
        }
    }
    out
}

fn skip_reason(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(_) => None,
        Err(e) => Some(format!("{} ({e})", path.display())),
    }
}

/// Builds and enforces the ruleset on the calling process; `root` says what `/` is.
pub fn apply(spec: &JailSpec, root: RootView) -> io::Result<LayerStatus> {
    let abi = LANDLOCK_ABI;
    let mut skipped = Vec::new();
    let mut handled = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .map_err(other)?;
    // A network provider's TCP is not handled (allowed); everyone else's is denied, but for
    // an agent with an egress proxy: connects to the proxy's port (no bind, no other port).
    if !spec.network {
        handled = handled
            .handle_access(AccessNet::from_all(abi))
            .map_err(other)?;
    }
    let mut ruleset = handled
        .scope(Scope::from_all(abi))
        .map_err(other)?
        .create()
        .map_err(other)?;
    if let Some(port) = spec.egress_port.filter(|_| !spec.network) {
        ruleset = ruleset
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(other)?;
    }
    let mut granted = 0usize;
    for (path, grant) in rules(spec, root) {
        if let Some(why) = skip_reason(&path) {
            skipped.push(why);
            continue;
        }
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let fd = match PathFd::new(&path) {
            Ok(fd) => fd,
            Err(e) => {
                skipped.push(format!("{} ({e})", path.display()));
                continue;
            }
        };
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, rights_for(grant, abi, is_dir)))
            .map_err(other)?;
        granted += 1;
    }
    let status = ruleset.restrict_self().map_err(other)?;
    let host = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => Some(effective_abi),
        LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => None,
    };
    let mut detail = match host {
        Some(h) => format!("abi {}", h as i32),
        None => "landlock not available on this kernel".to_string(),
    };
    let status = match status.ruleset {
        RulesetStatus::FullyEnforced => {
            detail.push_str(", fully enforced");
            Status::Active
        }
        RulesetStatus::PartiallyEnforced if host.is_some_and(|h| h >= BASELINE_ABI) => {
            detail.push_str(&format!(
                ", baseline abi {} fully enforced (features of abi {} and later not available)",
                BASELINE_ABI as i32,
                host.map_or(0, |h| h as i32 + 1)
            ));
            Status::Active
        }
        RulesetStatus::PartiallyEnforced => {
            detail.push_str(&format!(
                ", partially enforced (below baseline abi {})",
                BASELINE_ABI as i32
            ));
            Status::Partial
        }
        RulesetStatus::NotEnforced => {
            detail.push_str(", not enforced");
            Status::Missing
        }
    };
    if host.is_some_and(|h| h < ABI::V9) {
        detail.push_str("; connect() to pathname unix sockets not mediated (needs abi 9)");
        if root.minimal {
            detail.push_str(", only sockets inside the allowed paths exist in the minimal root");
        }
    }
    detail.push_str(&format!("; {granted} path rules"));
    if !skipped.is_empty() {
        detail.push_str(&format!("; skipped {}", skipped.join(", ")));
    }
    Ok(match status {
        Status::Active => LayerStatus::Active { detail },
        Status::Partial => LayerStatus::Partial { detail },
        Status::Missing => LayerStatus::Missing { detail },
    })
}

enum Status {
    Active,
    Partial,
    Missing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_rules_carry_only_file_rights() {
        for grant in [
            Grant::ReadExec,
            Grant::ReadOnly,
            Grant::ListDir,
            Grant::Device,
            Grant::Scratch,
            Grant::Program,
            Grant::ReadWrite,
        ] {
            let r = rights_for(grant, LANDLOCK_ABI, false);
            assert_eq!(
                r & !AccessFs::from_file(LANDLOCK_ABI),
                BitFlags::EMPTY,
                "{grant:?}"
            );
            assert!(!r.contains(AccessFs::ReadDir));
        }
        assert!(rights_for(Grant::ReadOnly, LANDLOCK_ABI, true).contains(AccessFs::ReadDir));
        assert!(!rights_for(Grant::ReadOnly, LANDLOCK_ABI, true).contains(AccessFs::Execute));
        assert!(!rights_for(Grant::ReadExec, LANDLOCK_ABI, true).contains(AccessFs::WriteFile));
        assert_eq!(
            rights_for(Grant::Program, LANDLOCK_ABI, false),
            make_bitflags!(AccessFs::{Execute | ReadFile})
        );
    }
}

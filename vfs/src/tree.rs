//! The per-agent tree (DESIGN §6): which mount a normalized path falls in.
//!
//! ```text
//! /                    the agent's root (read-only, lists the mounts)
//! ├── mem/
//! │   ├── working/     MemFs: memory, gone when the agent ends
//! │   ├── episodic/    Store: persistent, keyed by the agent's name
//! │   └── semantic/    Store: persistent, keyed by the agent's name
//! ├── state/
//! │   └── checkpoints/ read-only: <n>/<path> of each working-memory checkpoint
//! ├── policy/          read-only: security.md (the active policy text), digest
//! ├── ipc/             the inbox (served elsewhere)
//! └── workspace/       the host dir from `--workspace`, resolved beneath its root
//! ```
//!
//! The kernel maps an agent's tree to `/agent/<id>/…`; an agent naming that prefix itself is
//! reaching for a tree ([`Mount::AgentTree`]) — another agent's one is a trust violation.

use agentos_syscalls::Errno;

use crate::path::normalize;

/// Where a path lives. The `String` is the path inside the mount (`/` for its root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// `/`, `/mem` or `/state`: directories that only hold mounts.
    Inner(&'static str),
    Working(String),
    Episodic(String),
    Semantic(String),
    Checkpoints(String),
    Policy(String),
    Ipc(String),
    Workspace(String),
    /// `/agent/<id>/<rest>`: the kernel's own name for an agent's tree.
    AgentTree {
        id: u64,
        rest: String,
    },
    /// Nothing is mounted there.
    Nowhere(String),
}

/// The mount points, for listing `/`, `/mem` and `/state`.
pub const MOUNTS: [(&str, &[&str]); 3] = [
    ("/", &["ipc", "mem", "policy", "state", "workspace"]),
    ("/mem", &["episodic", "semantic", "working"]),
    ("/state", &["checkpoints"]),
];

/// Builds a [`Mount`] from the path inside it.
type MountOf = fn(String) -> Mount;

fn under<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(root)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// Normalizes `path` (on component boundaries: `/policyfoo` is not `/policy`) and finds its
/// mount.
pub fn resolve(path: &str) -> Result<Mount, Errno> {
    let p = normalize(path)?;
    for (root, _) in MOUNTS {
        if p == root {
            return Ok(Mount::Inner(root));
        }
    }
    let table: [(&str, MountOf); 7] = [
        ("/mem/working", Mount::Working),
        ("/mem/episodic", Mount::Episodic),
        ("/mem/semantic", Mount::Semantic),
        ("/state/checkpoints", Mount::Checkpoints),
        ("/policy", Mount::Policy),
        ("/ipc", Mount::Ipc),
        ("/workspace", Mount::Workspace),
    ];
    for (root, make) in table {
        if let Some(rest) = under(&p, root) {
            return Ok(make(rest.to_string()));
        }
    }
    if let Some(rest) = under(&p, "/agent") {
        let mut parts = rest.splitn(3, '/').skip(1);
        if let Some(id) = parts.next().and_then(|s| s.parse::<u64>().ok()) {
            let rest = parts.next().map_or("/".to_string(), |r| format!("/{r}"));
            return Ok(Mount::AgentTree { id, rest });
        }
    }
    Ok(Mount::Nowhere(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_on_component_boundaries() {
        let r = |p: &str| resolve(p).unwrap();
        assert_eq!(r("/"), Mount::Inner("/"));
        assert_eq!(r("/mem/"), Mount::Inner("/mem"));
        assert_eq!(r("/mem/working"), Mount::Working("/".into()));
        assert_eq!(r("/mem/working/a/../b"), Mount::Working("/b".into()));
        assert_eq!(
            r("/mem/workingfoo"),
            Mount::Nowhere("/mem/workingfoo".into())
        );
        assert_eq!(r("/policyfoo"), Mount::Nowhere("/policyfoo".into()));
        assert_eq!(r("/mem/working/../../policy/x"), Mount::Policy("/x".into()));
        assert_eq!(
            r("/workspace/../workspace/a"),
            Mount::Workspace("/a".into())
        );
        assert_eq!(
            r("/state/checkpoints/3/a"),
            Mount::Checkpoints("/3/a".into())
        );
        assert_eq!(
            r("/agent/7/mem/working/x"),
            Mount::AgentTree {
                id: 7,
                rest: "/mem/working/x".into()
            }
        );
        assert_eq!(
            r("/agent/7"),
            Mount::AgentTree {
                id: 7,
                rest: "/".into()
            }
        );
        assert_eq!(r("/agent/x"), Mount::Nowhere("/agent/x".into()));
        assert!(resolve("relative").is_err());
    }
}

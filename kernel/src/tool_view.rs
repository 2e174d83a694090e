//! A tool's view of the agent's workspace, computed at `Exec` time from the agent's policy
//! (and the base policy) so that a tool can read and write no more of the workspace than the
//! agent could through its own `Read` and `Write` calls.
//!
//! The kernel walks the workspace on the host (on a blocking thread) and produces the
//! [`ViewEntry`]s the launcher applies over the tool's `/workspace` mount:
//!
//! - **Reads.** An entry is *readable* when `file_read` of its VFS path `/workspace/<p>` is
//!   allowed by both policies without `requires_approval` or `dry_run` (a tool's reads cannot
//!   be parked or skipped one by one); deny rules and `deny_patterns` are part of that
//!   decision. A file (or FIFO, socket, device) that is not readable is covered by an empty
//!   read-only file. A directory is shown when it is readable or something beneath it is
//!   shown; otherwise it is covered, whole, by an empty read-only directory (the highest such
//!   directory: nothing beneath it is walked or listed). Inside a shown directory the *names*
//!   of covered entries stay visible; their content never is. A subtree no allow rule can
//!   reach ([`Policy::may_allow_beneath`]) is not walked: its entries are covered one level
//!   down (or it is covered whole). Symlinks are never covered: the tool reads through one
//!   only what its target's path shows in the view (targets outside the workspace do not
//!   exist in the jail). An entry whose name is not UTF-8 cannot be named by the agent: its
//!   directory is covered whole (at the top: the `Exec` is refused).
//! - **Writes.** `/workspace` is bound read-only. A directory `D` is bound read-write over it
//!   only when **every** write beneath it is certainly allowed by both policies
//!   ([`Policy::allows_all_beneath`]: an allow rule covers `D/**` with no limit, no deny rule
//!   or `deny_patterns` may match anything beneath `D`, no rule that may apply asks for
//!   approval, a dry run or a rate limit), checked top-down, so the highest such directories
//!   are chosen (the whole workspace when `/workspace` itself qualifies). So a deny on
//!   `/workspace/.git/hooks/**` leaves `.git/hooks` and its ancestors read-only whatever
//!   exists at `Exec` time, and a tool can never create a file a deny rule forbids. Covered
//!   entries stay read-only inside writable subtrees.
//!
//! `kernel.mode` is not applied: a permissive or audit agent's tools see only what its rules
//! allow (a tool's accesses cannot be recorded one by one).
//!
//! The walk opens every directory beneath the workspace with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` and never follows a symlink; a directory that cannot be listed is
//! covered whole (the workspace itself: the `Exec` is refused). It holds two descriptors at
//! most.
//!
//! Bounds (checked before any mount is made; beyond them the `Exec` is refused with
//! `QuotaExceeded`, the message saying which bound): at most [`MAX_WALK`] workspace entries
//! walked, at most [`MAX_DEPTH`] directory levels, at most [`MAX_VIEW_ENTRIES`] view entries
//! (each one mount).

use std::os::fd::OwnedFd;
use std::path::Path;

use agentos_policy::{Access, Policy, Request};
use agentos_syscalls::Errno;
pub(crate) use agentos_userspace::launch::MAX_VIEW_ENTRIES;
use agentos_userspace::launch::{ViewEntry, ViewKind};

use crate::error::Fault;

/// The most workspace entries one `Exec` walks.
pub(crate) const MAX_WALK: usize = 100_000;
/// The deepest directory level walked below `/workspace`.
pub(crate) const MAX_DEPTH: usize = 256;

/// Where the workspace appears to the policy (and in a tool's jail).
const ROOT: &str = "/workspace";

/// A tool's view: whether the whole workspace is writable, and the entries over it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct View {
    pub writable_root: bool,
    /// Writable subtrees first (ancestors first), then hidden entries.
    pub entries: Vec<ViewEntry>,
}

/// The agent's policy and the base policy, asked together (both must agree).
struct Judge<'a> {
    policy: &'a Policy,
    base: Option<&'a Policy>,
    now_ms: u64,
}

impl Judge<'_> {
    fn readable(&self, path: &str) -> bool {
        let req = Request {
            action: "file_read",
            resource: path,
            access: Access::Read,
            bytes: 0,
            now_ms: self.now_ms,
        };
        let d = crate::policy::compose(self.policy, self.base, &req);
        d.allowed && !d.requires_approval && !d.dry_run
    }

    fn may_read_beneath(&self, dir: &str) -> bool {
        let may = |p: &Policy| p.may_allow_beneath("file_read", dir, Access::Read);
        may(self.policy) && self.base.is_none_or(may)
    }

    fn writes_all_beneath(&self, dir: &str) -> bool {
        let all = |p: &Policy| p.allows_all_beneath("file_write", dir, Access::Write);
        all(self.policy) && self.base.is_none_or(all)
    }
}

fn quota(what: String) -> Errno {
    Errno::QuotaExceeded { what }
}

/// What one directory's walk found.
struct Found {
    /// Something beneath is shown.
    visible: bool,
    /// The directory must be covered whole (a name the agent cannot name, or unreadable on
    /// the host).
    must_hide: bool,
}

struct Walk<'a> {
    judge: Judge<'a>,
    /// The workspace, opened once; every directory is opened beneath it.
    root: OwnedFd,
    seen: usize,
    writable: Vec<String>,
    hidden: Vec<(String, bool)>,
}

/// The kind of one directory entry, as far as the view cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    /// A regular file, FIFO, socket or device.
    Other,
}

const HIDE: Found = Found {
    visible: false,
    must_hide: true,
};

impl Walk<'_> {
    fn count(&mut self) -> Result<(), Errno> {
        self.seen += 1;
        if self.seen > MAX_WALK {
            return Err(quota(format!(
                "the workspace has more than {MAX_WALK} entries: a tool's view of it (what the policy lets it read and write) cannot be computed; run tools on a smaller workspace"
            )));
        }
        Ok(())
    }

    /// The entries of the directory `rel` (`""`: the root), opened beneath the root without
    /// following any symlink (one swapped in meanwhile makes the open fail); `None` when it
    /// cannot be listed or holds a name that is not UTF-8.
    fn list(&mut self, rel: &str) -> Result<Option<Vec<(String, Kind)>>, Errno> {
        use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
        let opened = rustix::fs::openat2(
            &self.root,
            if rel.is_empty() { "." } else { rel },
            OFlags::RDONLY
                | OFlags::DIRECTORY
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC
                | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        );
        let Ok(fd) = opened else { return Ok(None) };
        let Ok(dir) = rustix::fs::Dir::read_from(&fd) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for entry in dir {
            let Ok(entry) = entry else { return Ok(None) };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            self.count()?;
            let Ok(name) = std::str::from_utf8(name) else {
                return Ok(None);
            };
            let mut ty = entry.file_type();
            if ty == FileType::Unknown {
                match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => ty = FileType::from_raw_mode(st.st_mode),
                    Err(_) => return Ok(None),
                }
            }
            let kind = match ty {
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Symlink,
                _ => Kind::Other,
            };
            out.push((name.to_string(), kind));
        }
        Ok(Some(out))
    }

    /// Walks the directory `rel` (`""` for the root).
    fn dir(&mut self, rel: &str, depth: usize, in_writable: bool) -> Result<Found, Errno> {
        if depth > MAX_DEPTH {
            return Err(quota(format!(
                "the workspace is more than {MAX_DEPTH} directories deep at /workspace/{rel}: a tool's view of it cannot be computed"
            )));
        }
        let vfs = if rel.is_empty() {
            ROOT.to_string()
        } else {
            format!("{ROOT}/{rel}")
        };
        let writable = in_writable || self.judge.writes_all_beneath(&vfs);
        if writable && !in_writable && !rel.is_empty() {
            self.writable.push(rel.to_string());
        }
        let walk_beneath = self.judge.may_read_beneath(&vfs);
        let Some(entries) = self.list(rel)? else {
            return Ok(HIDE);
        };
        let mut visible = false;
        for (name, kind) in entries {
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let readable = walk_beneath && self.judge.readable(&format!("{ROOT}/{child_rel}"));
            match kind {
                Kind::Dir => {
                    let marks = (self.writable.len(), self.hidden.len());
                    let found = if walk_beneath {
                        self.dir(&child_rel, depth + 1, writable)?
                    } else {
                        Found {
                            visible: false,
                            must_hide: false,
                        }
                    };
                    if found.must_hide || !(readable || found.visible) {
                        self.writable.truncate(marks.0);
                        self.hidden.truncate(marks.1);
                        self.hidden.push((child_rel, true));
                    } else {
                        visible = true;
                    }
                }
                Kind::Symlink => visible |= readable,
                Kind::Other if readable => visible = true,
                Kind::Other => self.hidden.push((child_rel, false)),
            }
        }
        Ok(Found {
            visible,
            must_hide: false,
        })
    }
}

/// Computes the view of the workspace at `ws` (a host directory) for an agent with `policy`
/// under the kernel's `base` policy (see the module docs). Blocking: call it on a blocking
/// thread.
pub(crate) fn compute(
    ws: &Path,
    policy: &Policy,
    base: Option<&Policy>,
    now_ms: u64,
) -> Result<View, Errno> {
    let judge = Judge {
        policy,
        base,
        now_ms,
    };
    let writable_root = judge.writes_all_beneath(ROOT);
    let root = rustix::fs::open(
        ws,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Fault::Internal {
        what: format!("cannot open the workspace {}", ws.display()),
        source: e.into(),
    })?;
    let mut walk = Walk {
        judge,
        root,
        seen: 0,
        writable: Vec::new(),
        hidden: Vec::new(),
    };
    let found = walk.dir("", 0, writable_root)?;
    if found.must_hide {
        return Err(Errno::InvalidArgument {
            reason: format!(
                "the workspace {} cannot be shown to a tool: an entry at its top has a name that is not UTF-8, or the kernel cannot list it",
                ws.display()
            ),
        });
    }
    let total = walk.writable.len() + walk.hidden.len();
    if total > MAX_VIEW_ENTRIES {
        return Err(quota(format!(
            "a tool's view of the workspace needs {total} mounts ({} writable subtrees, {} hidden entries), more than {MAX_VIEW_ENTRIES}: narrow the policy's deny rules or move the hidden files into fewer directories",
            walk.writable.len(),
            walk.hidden.len()
        )));
    }
    let entries = walk
        .writable
        .into_iter()
        .map(|p| ViewEntry {
            path: p.into(),
            kind: ViewKind::Writable,
        })
        .chain(walk.hidden.into_iter().map(|(p, dir)| ViewEntry {
            path: p.into(),
            kind: if dir {
                ViewKind::HiddenDir
            } else {
                ViewKind::HiddenFile
            },
        }))
        .collect();
    Ok(View {
        writable_root,
        entries,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(rules: &str) -> Policy {
        let text =
            format!("kernel: {{version: \"1.0\", mode: strict}}\nsignals: []\npolicies:\n{rules}");
        Policy::parse("t.md", &text).unwrap()
    }

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for f in files {
            let p = t.path().join(f);
            if let Some(d) = f.strip_suffix('/') {
                std::fs::create_dir_all(t.path().join(d)).unwrap();
            } else {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, "x").unwrap();
            }
        }
        t
    }

    fn shown(v: &View) -> Vec<String> {
        v.entries
            .iter()
            .map(|e| format!("{:?} {}", e.kind, e.path.display()))
            .collect()
    }

    const READ_ALL: &str =
        "  - {action: file_read, effect: allow, constraints: {paths: [\"/workspace/**\"]}}\n";
    const WRITE_ALL: &str =
        "  - {action: file_write, effect: allow, constraints: {paths: [\"/workspace/**\"]}}\n";

    #[test]
    fn a_write_deny_leaves_its_ancestors_read_only() {
        let t = tree(&[
            "src/a.rs",
            ".git/config",
            ".git/hooks/",
            ".git/objects/x",
            "doc/r.md",
        ]);
        let p = policy(&format!(
            "{READ_ALL}{WRITE_ALL}  - {{action: file_write, effect: deny, constraints: {{paths: [\"/workspace/.git/hooks/**\"]}}}}\n"
        ));
        let v = compute(t.path(), &p, None, 0).unwrap();
        assert!(!v.writable_root);
        let mut got = shown(&v);
        got.sort();
        assert_eq!(
            got,
            vec!["Writable .git/objects", "Writable doc", "Writable src"]
        );
    }

    #[test]
    fn unreadable_entries_are_hidden_at_the_highest_directory() {
        let t = tree(&[
            "src/a.rs",
            "secret/k/key",
            "secret/b",
            "a.env",
            "src/b.env",
            "ok",
        ]);
        let p = policy(
            "  - {action: file_read, effect: allow, constraints: {paths: [\"/workspace/**\"], deny_patterns: ['\\.env$']}}\n  - {action: file_read, effect: deny, constraints: {paths: [\"/workspace/secret/**\", \"/workspace/secret\"]}}\n",
        );
        let v = compute(t.path(), &p, None, 0).unwrap();
        let mut got = shown(&v);
        got.sort();
        assert_eq!(
            got,
            vec![
                "HiddenDir secret",
                "HiddenFile a.env",
                "HiddenFile src/b.env"
            ]
        );
        assert!(!v.writable_root);
    }

    #[test]
    fn a_base_policy_narrows_and_the_whole_workspace_can_be_writable() {
        let t = tree(&["src/a.rs", "x/y"]);
        let p = policy(&format!("{READ_ALL}{WRITE_ALL}"));
        let v = compute(t.path(), &p, None, 0).unwrap();
        assert_eq!(
            v,
            View {
                writable_root: true,
                entries: vec![]
            }
        );
        let base = policy(
            "  - {action: \"*\", effect: allow}\n  - {action: \"*\", effect: deny, constraints: {paths: [\"/workspace/x/**\"]}}\n",
        );
        let v = compute(t.path(), &p, Some(&base), 0).unwrap();
        assert!(!v.writable_root);
        let mut got = shown(&v);
        got.sort();
        assert_eq!(got, vec!["HiddenFile x/y", "Writable src"]);
    }

    #[test]
    fn narrow_read_rules_hide_unreachable_subtrees_without_walking_them() {
        let t = tree(&["src/a.rs", "node_modules/m/index.js", "top"]);
        let p = policy(
            "  - {action: file_read, effect: allow, constraints: {paths: [\"/workspace/src/**\"]}}\n",
        );
        let v = compute(t.path(), &p, None, 0).unwrap();
        let mut got = shown(&v);
        got.sort();
        // src is not itself readable but something beneath it is.
        assert_eq!(got, vec!["HiddenDir node_modules", "HiddenFile top"]);
    }

    #[test]
    fn symlinks_are_neither_covered_nor_followed() {
        let t = tree(&["a.env", "ok"]);
        let outside = tree(&["x.env", "y.env"]);
        std::os::unix::fs::symlink(outside.path(), t.path().join("out")).unwrap();
        std::os::unix::fs::symlink("a.env", t.path().join("link.env")).unwrap();
        let p = policy(
            "  - {action: file_read, effect: allow, constraints: {paths: [\"/workspace/**\"], deny_patterns: ['\\.env$']}}\n",
        );
        let v = compute(t.path(), &p, None, 0).unwrap();
        // The link's target is covered where it lies; nothing of `outside` is walked.
        assert_eq!(shown(&v), vec!["HiddenFile a.env"]);
    }

    #[test]
    fn bounds_refuse_with_quota_exceeded() {
        let names: Vec<String> = (0..MAX_VIEW_ENTRIES + 1)
            .map(|i| format!("f{i}.env"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let t = tree(&refs);
        let p = policy(
            "  - {action: file_read, effect: allow, constraints: {paths: [\"/workspace/**\"], deny_patterns: ['\\.env$']}}\n",
        );
        let e = compute(t.path(), &p, None, 0).unwrap_err();
        assert!(
            matches!(&e, Errno::QuotaExceeded { what } if what.contains("mounts")),
            "{e:?}"
        );
    }
}

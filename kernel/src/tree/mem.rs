//! The memory mounts: `/mem/working` (the agent's [`MemFs`], gone with it) and
//! `/mem/episodic`, `/mem/semantic` (its namespace of the persistent [`agentos_vfs::Store`]).
//! Every write is charged to the agent's quota before anything changes.

use agentos_syscalls::{DirEntry, Errno, FileKind, FileStat, WriteMode};
use agentos_vfs::MemFs;

use super::{grown, AgentTree, Backend, Call, Span};
use crate::util::{lock, now_ms};

/// The `/mem/working` mount.
pub(super) struct Working;

/// A persistent mount: the agent's namespace of the store, in one area.
pub(super) struct Persistent {
    area: &'static str,
    point: &'static str,
}

/// `/mem/episodic`.
pub(super) const EPISODIC: Persistent = Persistent {
    area: "episodic",
    point: "/mem/episodic",
};
/// `/mem/semantic`.
pub(super) const SEMANTIC: Persistent = Persistent {
    area: "semantic",
    point: "/mem/semantic",
};

impl Backend for Working {
    fn on_host(&self) -> bool {
        false
    }

    fn read(&self, c: Call<'_>, p: &str, span: Span) -> Result<Vec<u8>, Errno> {
        let fs = lock(c.agent.working);
        span.fits(fs.stat(p).map(|s| s.size).unwrap_or(0))?;
        fs.read(p, span.offset, span.len)
    }

    fn write(&self, c: Call<'_>, p: &str, data: &[u8], mode: WriteMode) -> Result<u64, Errno> {
        let tree = c.agent.tree;
        let mut usage = lock(&tree.usage);
        let mut fs = lock(c.agent.working);
        let old = fs
            .stat(p)
            .ok()
            .filter(|s| s.kind == FileKind::File)
            .map(|s| s.size);
        if let Ok(new) = grown(old, data.len() as u64, mode) {
            // A new file's path and bookkeeping cost quota too (`MemFs::entry_cost`).
            let meta = if old.is_none() {
                MemFs::entry_cost(p)
            } else {
                0
            };
            let delta = i128::from(new) - i128::from(old.unwrap_or(0)) + i128::from(meta);
            let files = i64::from(old.is_none());
            tree.charge(&mut usage, delta, files, c.path)?;
            fs.set_now(now_ms());
            let n = fs.write(p, data, mode)?;
            AgentTree::apply(&mut usage, delta, files);
            Ok(n)
        } else {
            fs.write(p, data, mode)
        }
    }

    fn list(&self, c: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno> {
        lock(c.agent.working).list(p)
    }

    fn stat(&self, c: Call<'_>, p: &str) -> Result<FileStat, Errno> {
        lock(c.agent.working).stat(p)
    }

    fn unlink(&self, c: Call<'_>, p: &str) -> Result<(), Errno> {
        let tree = c.agent.tree;
        let mut usage = lock(&tree.usage);
        let mut fs = lock(c.agent.working);
        let size = fs.stat(p).map(|s| s.size).unwrap_or(0);
        fs.unlink(p)?;
        let freed = size + MemFs::entry_cost(p);
        AgentTree::apply(&mut usage, -i128::from(freed), -1);
        Ok(())
    }

    /// [`MemFs::rename`] (files only; directories are implicit). The quota sees the new name's
    /// length (`MemFs::entry_cost`) and the replaced file freed; a longer name past the quota
    /// is refused `QuotaExceeded` with nothing changed.
    fn rename(&self, c: Call<'_>, a: &str, b: &str) -> Result<(), Errno> {
        let tree = c.agent.tree;
        let mut usage = lock(&tree.usage);
        let mut fs = lock(c.agent.working);
        if a == b || fs.stat(a)?.kind == FileKind::Directory {
            // Nothing moves: `MemFs::rename` answers (a no-op, or the directory refusal).
            return fs.rename(a, b);
        }
        let replaced = fs
            .stat(b)
            .ok()
            .filter(|s| s.kind == FileKind::File)
            .map(|s| s.size + MemFs::entry_cost(b));
        let delta = i128::from(MemFs::entry_cost(b))
            - i128::from(MemFs::entry_cost(a))
            - i128::from(replaced.unwrap_or(0));
        let files = -i64::from(replaced.is_some());
        tree.charge(&mut usage, delta, files, c.path)?;
        fs.rename(a, b)?;
        AgentTree::apply(&mut usage, delta, files);
        Ok(())
    }

    fn mount_point(&self) -> Option<&'static str> {
        Some("/mem/working")
    }
}

impl Backend for Persistent {
    fn on_host(&self) -> bool {
        true
    }

    fn read(&self, c: Call<'_>, p: &str, span: Span) -> Result<Vec<u8>, Errno> {
        let (store, ns) = (c.ctx.memory, &c.agent.tree.namespace);
        span.fits(store.size(ns, self.area, p)?.unwrap_or(0))?;
        store.read(ns, self.area, p, span.offset, span.len)
    }

    fn write(&self, c: Call<'_>, p: &str, data: &[u8], mode: WriteMode) -> Result<u64, Errno> {
        let (store, tree) = (c.ctx.memory, c.agent.tree);
        let _serial = lock(&tree.host_writes);
        let old = store.size(&tree.namespace, self.area, p)?;
        let new = grown(old, data.len() as u64, mode).map_err(|()| Errno::AlreadyExists {
            path: format!("/mem/{}{p}", self.area),
        })?;
        let delta = i128::from(new) - i128::from(old.unwrap_or(0));
        let files = i64::from(old.is_none());
        let charge = tree.reserve(delta, files, c.path)?;
        let n = store.write(&tree.namespace, self.area, p, data, mode, now_ms())?;
        charge.settle();
        Ok(n)
    }

    fn list(&self, c: Call<'_>, p: &str) -> Result<Vec<DirEntry>, Errno> {
        c.ctx.memory.list(&c.agent.tree.namespace, self.area, p)
    }

    fn stat(&self, c: Call<'_>, p: &str) -> Result<FileStat, Errno> {
        c.ctx.memory.stat(&c.agent.tree.namespace, self.area, p)
    }

    fn unlink(&self, c: Call<'_>, p: &str) -> Result<(), Errno> {
        let tree = c.agent.tree;
        let size = c.ctx.memory.unlink(&tree.namespace, self.area, p)?;
        AgentTree::apply(&mut lock(&tree.usage), -i128::from(size), -1);
        Ok(())
    }

    /// [`agentos_vfs::Store::rename`], one transaction within the area (serialized with the
    /// agent's other host writes); the replaced file is freed from the quota (the store
    /// charges data, not names).
    fn rename(&self, c: Call<'_>, a: &str, b: &str) -> Result<(), Errno> {
        let tree = c.agent.tree;
        let _serial = lock(&tree.host_writes);
        if let Some(size) = c.ctx.memory.rename(&tree.namespace, self.area, a, b)? {
            AgentTree::apply(&mut lock(&tree.usage), -i128::from(size), -1);
        }
        Ok(())
    }

    fn mount_point(&self) -> Option<&'static str> {
        Some(self.point)
    }
}

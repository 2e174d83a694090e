//! [`Store`]: the persistent backend behind `/mem/episodic` and `/mem/semantic`.
//!
//! One embedded database file (`STATE_DIR/memory.redb`) holds every agent's persistent
//! memory. We use **redb**: a maintained, pure-Rust, single-file embedded key-value store with
//! ACID transactions (copy-on-write B-trees, a commit is durable once it returns and a crash
//! never leaves a half-written file behind), no C toolchain and no background threads. That
//! is the whole job here — sled is unmaintained beta, RocksDB/LMDB drag in C code, SQLite
//! would be a schema and a C library for a key-value map. redb 2.x is chosen because 3.x/4.x
//! need a newer Rust than the workspace's `rust-version`.
//!
//! Layout: one table, key `(namespace, area, path)`, value `modified_ms (u64 LE) ‖ data`.
//! `namespace` says whose memory it is (the kernel keys it by the agent's `--name`, see
//! `agentos_kernel`), `area` is `episodic` or `semantic`, `path` is normalized and absolute
//! inside the area. Directories are implicit, as in [`crate::MemFs`].

use std::ops::Bound;
use std::path::Path;

use agentos_syscalls::{DirEntry, Errno, FileKind, FileStat, WriteMode};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::path::normalize;

type Key<'a> = (&'a str, &'a str, &'a str);
const FILES: TableDefinition<Key<'static>, &[u8]> = TableDefinition::new("files");

/// A failure opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the persistent memory store {path}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("cannot initialise the persistent memory store {path}: {reason}")]
    Init { path: String, reason: String },
}

/// The persistent memory of every agent of one kernel.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn internal(what: &str, e: impl std::fmt::Display) -> Errno {
    Errno::Internal {
        reason: format!("persistent memory store: {what}: {e}"),
    }
}

fn key(path: &str) -> Result<String, Errno> {
    if path.starts_with('/') {
        normalize(path)
    } else {
        normalize(&format!("/{path}"))
    }
}

fn split(value: &[u8]) -> (u64, &[u8]) {
    let (head, data) = value.split_at(value.len().min(8));
    let mut ms = [0u8; 8];
    ms[..head.len()].copy_from_slice(head);
    (u64::from_le_bytes(ms), data)
}

fn dir_prefix(dir: &str) -> String {
    if dir == "/" {
        "/".into()
    } else {
        format!("{dir}/")
    }
}

impl Store {
    /// Opens (creating if missing) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: shown.clone(),
            source,
        })?;
        let init = || -> Result<(), String> {
            let tx = db.begin_write().map_err(|e| e.to_string())?;
            tx.open_table(FILES).map_err(|e| e.to_string())?;
            tx.commit().map_err(|e| e.to_string())
        };
        init().map_err(|reason| StoreError::Init {
            path: shown,
            reason,
        })?;
        Ok(Store { db })
    }

    /// A store over `bytes`, a copy of a store file, held in memory: for reading a state dir
    /// without changing it, even while a kernel holds the file (redb locks it). A copy taken
    /// while a kernel writes shows its last commit (redb repairs the copy, never the file).
    pub fn open_snapshot(bytes: Vec<u8>) -> Result<Store, StoreError> {
        use redb::StorageBackend;
        let shown = "memory.redb (copy)".to_string();
        let backend = redb::backends::InMemoryBackend::new();
        let init = |e: std::io::Error| StoreError::Init {
            path: shown.clone(),
            reason: e.to_string(),
        };
        backend.set_len(bytes.len() as u64).map_err(init)?;
        backend.write(0, &bytes).map_err(init)?;
        let db = redb::Builder::new()
            .create_with_backend(backend)
            .map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?;
        Ok(Store { db })
    }

    /// Runs `f` over the entries strictly under `dir` of one area, in key order.
    fn scan(
        &self,
        ns: &str,
        area: &str,
        dir: &str,
        mut f: impl FnMut(&str, u64, &[u8]) -> bool,
    ) -> Result<(), Errno> {
        let tx = self.db.begin_read().map_err(|e| internal("read", e))?;
        let t = tx.open_table(FILES).map_err(|e| internal("read", e))?;
        let prefix = dir_prefix(dir);
        let from: Key<'_> = (ns, area, prefix.as_str());
        let range = t
            .range::<Key<'_>>((Bound::Included(from), Bound::Unbounded))
            .map_err(|e| internal("scan", e))?;
        for item in range {
            let (k, v) = item.map_err(|e| internal("scan", e))?;
            let (kns, karea, kpath) = k.value();
            if kns != ns || karea != area || !kpath.starts_with(&prefix) {
                break;
            }
            let (ms, data) = split(v.value());
            if !f(kpath, ms, data) {
                break;
            }
        }
        Ok(())
    }

    fn has_children(&self, ns: &str, area: &str, dir: &str) -> Result<bool, Errno> {
        let mut any = false;
        self.scan(ns, area, dir, |_, _, _| {
            any = true;
            false
        })?;
        Ok(any)
    }

    /// The size of the file at `path`, `None` when there is none.
    pub fn size(&self, ns: &str, area: &str, path: &str) -> Result<Option<u64>, Errno> {
        let k = key(path)?;
        let tx = self.db.begin_read().map_err(|e| internal("read", e))?;
        let t = tx.open_table(FILES).map_err(|e| internal("read", e))?;
        let got = t
            .get((ns, area, k.as_str()))
            .map_err(|e| internal("read", e))?;
        Ok(got.map(|v| split(v.value()).1.len() as u64))
    }

    /// Reads `len` bytes (to the end when `None`) from `offset`.
    pub fn read(
        &self,
        ns: &str,
        area: &str,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Vec<u8>, Errno> {
        let k = key(path)?;
        let tx = self.db.begin_read().map_err(|e| internal("read", e))?;
        let t = tx.open_table(FILES).map_err(|e| internal("read", e))?;
        let Some(v) = t
            .get((ns, area, k.as_str()))
            .map_err(|e| internal("read", e))?
        else {
            drop(t);
            if k == "/" || self.has_children(ns, area, &k)? {
                return Err(Errno::IsDirectory { path: k });
            }
            return Err(Errno::NotFound { what: k });
        };
        let (_, data) = split(v.value());
        let size = data.len() as u64;
        let start = offset.min(size);
        let end = len.map_or(size, |l| start.saturating_add(l).min(size));
        let (start, end) = (
            usize::try_from(start).unwrap_or(usize::MAX),
            usize::try_from(end).unwrap_or(usize::MAX),
        );
        Ok(data.get(start..end).map(<[u8]>::to_vec).unwrap_or_default())
    }

    /// Checks that `path` can be a file: not the root, not a directory, no file ancestor.
    pub fn check_file_path(&self, ns: &str, area: &str, path: &str) -> Result<String, Errno> {
        let k = key(path)?;
        if k == "/" || self.has_children(ns, area, &k)? {
            return Err(Errno::IsDirectory { path: k });
        }
        let tx = self.db.begin_read().map_err(|e| internal("read", e))?;
        let t = tx.open_table(FILES).map_err(|e| internal("read", e))?;
        let mut cut = k.len();
        while let Some(i) = k[..cut].rfind('/') {
            if i == 0 {
                break;
            }
            if t.get((ns, area, &k[..i]))
                .map_err(|e| internal("read", e))?
                .is_some()
            {
                return Err(Errno::NotDirectory {
                    path: k[..i].to_string(),
                });
            }
            cut = i;
        }
        Ok(k)
    }

    /// Writes `data` to `path` (creating it and its implicit parents) in one transaction;
    /// returns the bytes written. Quotas are the caller's (it knows the agent's whole tree).
    pub fn write(
        &self,
        ns: &str,
        area: &str,
        path: &str,
        data: &[u8],
        mode: WriteMode,
        now_ms: u64,
    ) -> Result<u64, Errno> {
        let k = self.check_file_path(ns, area, path)?;
        let tx = self.db.begin_write().map_err(|e| internal("write", e))?;
        {
            let mut t = tx.open_table(FILES).map_err(|e| internal("write", e))?;
            let old: Option<Vec<u8>> = t
                .get((ns, area, k.as_str()))
                .map_err(|e| internal("write", e))?
                .map(|v| split(v.value()).1.to_vec());
            let mut value = Vec::with_capacity(8 + data.len());
            value.extend_from_slice(&now_ms.to_le_bytes());
            match (mode, old) {
                (WriteMode::CreateNew, Some(_)) => return Err(Errno::AlreadyExists { path: k }),
                (WriteMode::Append, Some(o)) => value.extend_from_slice(&o),
                _ => {}
            }
            value.extend_from_slice(data);
            t.insert((ns, area, k.as_str()), value.as_slice())
                .map_err(|e| internal("write", e))?;
        }
        tx.commit().map_err(|e| internal("commit", e))?;
        Ok(data.len() as u64)
    }

    /// The entries directly under `path`, sorted by name.
    pub fn list(&self, ns: &str, area: &str, path: &str) -> Result<Vec<DirEntry>, Errno> {
        let k = key(path)?;
        if self.size(ns, area, &k)?.is_some() {
            return Err(Errno::NotDirectory { path: k });
        }
        let skip = dir_prefix(&k).len();
        let mut entries: std::collections::BTreeMap<String, DirEntry> = Default::default();
        self.scan(ns, area, &k, |p, _, data| {
            let rest = &p[skip..];
            match rest.split_once('/') {
                Some((dir, _)) => {
                    entries.entry(dir.to_string()).or_insert_with(|| DirEntry {
                        name: dir.to_string(),
                        kind: FileKind::Directory,
                        size: 0,
                    });
                }
                None => {
                    entries.insert(
                        rest.to_string(),
                        DirEntry {
                            name: rest.to_string(),
                            kind: FileKind::File,
                            size: data.len() as u64,
                        },
                    );
                }
            }
            true
        })?;
        if entries.is_empty() && k != "/" {
            return Err(Errno::NotFound { what: k });
        }
        Ok(entries.into_values().collect())
    }

    /// Describes a file or directory.
    pub fn stat(&self, ns: &str, area: &str, path: &str) -> Result<FileStat, Errno> {
        let k = key(path)?;
        {
            let tx = self.db.begin_read().map_err(|e| internal("read", e))?;
            let t = tx.open_table(FILES).map_err(|e| internal("read", e))?;
            if let Some(v) = t
                .get((ns, area, k.as_str()))
                .map_err(|e| internal("read", e))?
            {
                let (ms, data) = split(v.value());
                return Ok(FileStat {
                    kind: FileKind::File,
                    size: data.len() as u64,
                    modified_ms: ms,
                    read_only: false,
                });
            }
        }
        let mut newest = None;
        self.scan(ns, area, &k, |_, ms, _| {
            newest = Some(newest.map_or(ms, |n: u64| n.max(ms)));
            true
        })?;
        match newest {
            Some(ms) => Ok(FileStat {
                kind: FileKind::Directory,
                size: 0,
                modified_ms: ms,
                read_only: false,
            }),
            None if k == "/" => Ok(FileStat {
                kind: FileKind::Directory,
                size: 0,
                modified_ms: 0,
                read_only: false,
            }),
            None => Err(Errno::NotFound { what: k }),
        }
    }

    /// Removes a file; returns its size.
    pub fn unlink(&self, ns: &str, area: &str, path: &str) -> Result<u64, Errno> {
        let k = key(path)?;
        let tx = self.db.begin_write().map_err(|e| internal("unlink", e))?;
        let removed = {
            let mut t = tx.open_table(FILES).map_err(|e| internal("unlink", e))?;
            let got = t
                .remove((ns, area, k.as_str()))
                .map_err(|e| internal("unlink", e))?;
            got.map(|v| split(v.value()).1.len() as u64)
        };
        match removed {
            Some(size) => {
                tx.commit().map_err(|e| internal("commit", e))?;
                Ok(size)
            }
            None => {
                drop(tx);
                if k == "/" || self.has_children(ns, area, &k)? {
                    Err(Errno::IsDirectory { path: k })
                } else {
                    Err(Errno::NotFound { what: k })
                }
            }
        }
    }

    /// Moves the file at `from` to `to` in one transaction, replacing a file at `to` as POSIX
    /// `rename` does; its data and modification time move with it. Returns the size of the
    /// file it replaced, if any (quotas are the caller's). Fails without changing anything
    /// when `from` is not a file (`IsDirectory` for a directory: directories are implicit),
    /// or `to` is a directory or lies under a file (`from` included). Renaming a file onto
    /// itself does nothing. The value is copied once (redb does not move one in place):
    /// linear in the file's size, like writing it.
    pub fn rename(&self, ns: &str, area: &str, from: &str, to: &str) -> Result<Option<u64>, Errno> {
        let kf = key(from)?;
        let missing = |k: String| -> Result<Option<u64>, Errno> {
            if k == "/" || self.has_children(ns, area, &k)? {
                Err(Errno::IsDirectory { path: k })
            } else {
                Err(Errno::NotFound { what: k })
            }
        };
        if self.size(ns, area, &kf)?.is_none() {
            return missing(kf);
        }
        let kt = self.check_file_path(ns, area, to)?;
        if kf == kt {
            return Ok(None);
        }
        let tx = self.db.begin_write().map_err(|e| internal("rename", e))?;
        let replaced = {
            let mut t = tx.open_table(FILES).map_err(|e| internal("rename", e))?;
            let value = t
                .remove((ns, area, kf.as_str()))
                .map_err(|e| internal("rename", e))?
                .map(|v| v.value().to_vec());
            // Gone since the check above (another writer of the namespace): nothing changes.
            let Some(value) = value else {
                drop(t);
                drop(tx);
                return missing(kf);
            };
            let old = t
                .insert((ns, area, kt.as_str()), value.as_slice())
                .map_err(|e| internal("rename", e))?;
            old.map(|v| split(v.value()).1.len() as u64)
        };
        tx.commit().map_err(|e| internal("commit", e))?;
        Ok(replaced)
    }

    /// (bytes, files) a namespace holds across all its areas.
    pub fn usage(&self, ns: &str) -> Result<(u64, u64), Errno> {
        let tx = self.db.begin_read().map_err(|e| internal("read", e))?;
        let t = tx.open_table(FILES).map_err(|e| internal("read", e))?;
        let from: Key<'_> = (ns, "", "");
        let mut bytes = 0u64;
        let mut files = 0u64;
        for item in t
            .range::<Key<'_>>((Bound::Included(from), Bound::Unbounded))
            .map_err(|e| internal("scan", e))?
        {
            let (k, v) = item.map_err(|e| internal("scan", e))?;
            if k.value().0 != ns {
                break;
            }
            bytes += split(v.value()).1.len() as u64;
            files += 1;
        }
        Ok((bytes, files))
    }

    /// Deletes everything a namespace holds (an unnamed agent's memory when it ends).
    pub fn remove_namespace(&self, ns: &str) -> Result<(), Errno> {
        self.remove_where(ns, |k| k == ns)
    }

    /// Deletes every namespace whose name starts with `prefix`.
    pub fn remove_namespaces_with_prefix(&self, prefix: &str) -> Result<(), Errno> {
        self.remove_where(prefix, |k| k.starts_with(prefix))
    }

    fn remove_where(&self, from_ns: &str, keep_going: impl Fn(&str) -> bool) -> Result<(), Errno> {
        let tx = self.db.begin_write().map_err(|e| internal("remove", e))?;
        {
            let mut t = tx.open_table(FILES).map_err(|e| internal("remove", e))?;
            let keys: Vec<(String, String, String)> = {
                let from: Key<'_> = (from_ns, "", "");
                let mut keys = Vec::new();
                for item in t
                    .range::<Key<'_>>((Bound::Included(from), Bound::Unbounded))
                    .map_err(|e| internal("scan", e))?
                {
                    let (k, _) = item.map_err(|e| internal("scan", e))?;
                    let (kns, area, path) = k.value();
                    if !keep_going(kns) {
                        break;
                    }
                    keys.push((kns.to_string(), area.to_string(), path.to_string()));
                }
                keys
            };
            if keys.is_empty() {
                // Nothing to remove (most agents never write persistent memory): no commit,
                // so no fsync on every unnamed agent's end.
                drop(t);
                return tx.abort().map_err(|e| internal("abort", e));
            }
            for (ns, area, path) in &keys {
                t.remove((ns.as_str(), area.as_str(), path.as_str()))
                    .map_err(|e| internal("remove", e))?;
            }
        }
        tx.commit().map_err(|e| internal("commit", e))
    }

    /// How many files the whole store holds (for tests and status).
    pub fn len(&self) -> Result<u64, Errno> {
        let tx = self.db.begin_read().map_err(|e| internal("read", e))?;
        let t = tx.open_table(FILES).map_err(|e| internal("read", e))?;
        t.len().map_err(|e| internal("read", e))
    }

    /// Whether the store holds no file at all.
    pub fn is_empty(&self) -> Result<bool, Errno> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_a_copy_while_the_file_is_open_and_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.redb");
        let s = Store::open(&path).unwrap();
        s.write(
            "name:a",
            "episodic",
            "/notes/x",
            b"kept",
            WriteMode::Truncate,
            7,
        )
        .unwrap();
        let before = std::fs::read(&path).unwrap();
        // The file is locked by `s`; a copy of its bytes opens beside it.
        let copy = Store::open_snapshot(before.clone()).unwrap();
        assert_eq!(
            copy.read("name:a", "episodic", "/notes/x", 0, None)
                .unwrap(),
            b"kept"
        );
        assert_eq!(copy.list("name:a", "episodic", "/").unwrap().len(), 1);
        copy.write("name:a", "episodic", "/y", b"z", WriteMode::Truncate, 8)
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(s.size("name:a", "episodic", "/y"), Ok(None));
    }

    #[test]
    fn rename_moves_within_an_area_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("memory.redb")).unwrap();
        let w = |p: &str, d: &[u8]| {
            s.write("n", "episodic", p, d, WriteMode::Truncate, 3)
                .unwrap();
        };
        w("/a", b"alpha");
        w("/b", b"xy");
        assert_eq!(s.rename("n", "episodic", "/a", "/b"), Ok(Some(2)));
        assert_eq!(s.read("n", "episodic", "/b", 0, None).unwrap(), b"alpha");
        assert_eq!(s.size("n", "episodic", "/a"), Ok(None));
        assert_eq!(s.stat("n", "episodic", "/b").unwrap().modified_ms, 3);
        assert_eq!(s.rename("n", "episodic", "/b", "/d/c"), Ok(None));
        assert_eq!(s.rename("n", "episodic", "/d/c", "/d/c"), Ok(None));
        // Refusals change nothing.
        assert_eq!(
            s.rename("n", "episodic", "/gone", "/x"),
            Err(Errno::NotFound {
                what: "/gone".into()
            })
        );
        assert_eq!(
            s.rename("n", "episodic", "/d", "/x"),
            Err(Errno::IsDirectory { path: "/d".into() })
        );
        assert_eq!(
            s.rename("n", "episodic", "/d/c", "/d/c/under"),
            Err(Errno::NotDirectory {
                path: "/d/c".into()
            })
        );
        w("/e/f", b"");
        assert_eq!(
            s.rename("n", "episodic", "/d/c", "/e"),
            Err(Errno::IsDirectory { path: "/e".into() })
        );
        // Other areas and namespaces are not reached.
        assert!(s.rename("n", "semantic", "/d/c", "/z").is_err());
        assert!(s.rename("m", "episodic", "/d/c", "/z").is_err());
        assert_eq!(s.read("n", "episodic", "/d/c", 0, None).unwrap(), b"alpha");
        assert_eq!(s.usage("n"), Ok((5, 2)));
    }

    #[test]
    fn files_persist_across_reopen_and_namespaces_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.redb");
        {
            let s = Store::open(&path).unwrap();
            s.write(
                "name:a",
                "episodic",
                "/log/1",
                b"one",
                WriteMode::Truncate,
                7,
            )
            .unwrap();
            s.write("name:a", "episodic", "/log/1", b"+", WriteMode::Append, 8)
                .unwrap();
            s.write(
                "name:b",
                "episodic",
                "/log/1",
                b"other",
                WriteMode::Truncate,
                9,
            )
            .unwrap();
            assert!(matches!(
                s.write(
                    "name:a",
                    "episodic",
                    "/log/1",
                    b"x",
                    WriteMode::CreateNew,
                    9
                ),
                Err(Errno::AlreadyExists { .. })
            ));
            assert!(matches!(
                s.write("name:a", "episodic", "/log", b"x", WriteMode::Truncate, 9),
                Err(Errno::IsDirectory { .. })
            ));
            assert!(matches!(
                s.write(
                    "name:a",
                    "episodic",
                    "/log/1/x",
                    b"x",
                    WriteMode::Truncate,
                    9
                ),
                Err(Errno::NotDirectory { .. })
            ));
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.read("name:a", "episodic", "/log/1", 0, None).unwrap(),
            b"one+"
        );
        assert_eq!(
            s.read("name:a", "episodic", "/log/1", 1, Some(2)).unwrap(),
            b"ne"
        );
        assert!(matches!(
            s.read("name:a", "semantic", "/log/1", 0, None),
            Err(Errno::NotFound { .. })
        ));
        let st = s.stat("name:a", "episodic", "/log/1").unwrap();
        assert_eq!((st.kind, st.size, st.modified_ms), (FileKind::File, 4, 8));
        assert_eq!(
            s.list("name:a", "episodic", "/").unwrap(),
            vec![DirEntry {
                name: "log".into(),
                kind: FileKind::Directory,
                size: 0
            }]
        );
        assert_eq!(s.usage("name:a").unwrap(), (4, 1));
        assert_eq!(s.unlink("name:a", "episodic", "/log/1").unwrap(), 4);
        assert_eq!(s.usage("name:a").unwrap(), (0, 0));
        s.write("agent:1", "semantic", "/x", b"1", WriteMode::Truncate, 1)
            .unwrap();
        s.write("agent:12", "semantic", "/x", b"1", WriteMode::Truncate, 1)
            .unwrap();
        s.remove_namespaces_with_prefix("agent:").unwrap();
        assert_eq!(s.len().unwrap(), 1);
        s.remove_namespace("name:b").unwrap();
        assert!(s.is_empty().unwrap());
    }
}

//! [`MemFs`]: the in-memory backend behind `/mem/working`.

use std::collections::BTreeMap;
use std::ops::Bound;

use agentos_syscalls::{DirEntry, Errno, FileKind, FileStat, WriteMode};

use crate::path::normalize;

/// What one file costs the quota beyond its data and its path: the kernel's per-file
/// bookkeeping (the map entry, its key and value headers), rounded up. A file is charged
/// `data + path length + FILE_OVERHEAD` bytes ([`MemFs::entry_cost`]); directories are implicit
/// (nothing is stored for them), so they cost nothing beyond the paths of the files under them.
pub const FILE_OVERHEAD: u64 = 64;

#[derive(Debug, Clone)]
struct File {
    data: Vec<u8>,
    modified_ms: u64,
}

/// A file's key: its normalized path with every `/` replaced by NUL (which no path holds).
///
/// With the separator the smallest byte, the files whose key lies between a file `a` and a
/// path `a/rest` under it can only be `a` followed by a byte below the separator (there is
/// none) or by the separator (a descendant of `a`): so the greatest key below a path is its
/// file ancestor when it has one. Checking that no ancestor of a path is a file is then one
/// lookup, not one per component (which costs time quadratic in the path's length).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(String);

const SEP: char = '\0';

impl Key {
    fn of(normalized: &str) -> Key {
        Key(normalized.replace('/', "\0"))
    }

    /// The path it stands for.
    fn path(&self) -> String {
        self.0.replace(SEP, "/")
    }

    fn is_root(&self) -> bool {
        self.0 == "\0"
    }

    /// The prefix every key strictly under this directory starts with.
    fn dir_prefix(&self) -> Key {
        if self.is_root() {
            self.clone()
        } else {
            Key(format!("{}{SEP}", self.0))
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        #[cfg(test)]
        work::add(self.0.len().min(other.0.len()));
        self.0.as_bytes().cmp(other.0.as_bytes())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Test-only count of the bytes key comparisons may touch: a deterministic measure of work.
#[cfg(test)]
pub(crate) mod work {
    use std::cell::Cell;
    thread_local!(static BYTES: Cell<u64> = const { Cell::new(0) });
    pub(crate) fn add(n: usize) {
        BYTES.with(|b| b.set(b.get() + n as u64));
    }
    pub(crate) fn take() -> u64 {
        BYTES.with(|b| b.replace(0))
    }
}

/// An in-memory file tree with quotas.
///
/// - **Paths** are relative to the tree's root and may be written with or without a leading
///   `/` (`notes/a.txt` and `/notes/a.txt` are the same file); they are normalized with
///   [`normalize`], so `..` cannot leave the root, and bounded by its PATH_MAX and NAME_MAX.
/// - **Directories are implicit**: a directory exists while some file lives under it; the
///   root always exists. Writing a file creates its parents; unlinking the last file of a
///   directory makes it disappear. There are no empty directories.
/// - **Quotas**: `max_bytes` bounds the sum of what files cost ([`MemFs::entry_cost`]: data,
///   path and [`FILE_OVERHEAD`]), so long names cost quota like data does; `max_files` bounds
///   the number of files (directories are free, being bounded by the files under them). A
///   write that would exceed either fails with `QuotaExceeded` and leaves the tree unchanged.
/// - **Linear**: every operation on a path is linear in its length (times the log of the
///   number of files); see [`Key`].
/// - **Time**: no clock is read. `modified_ms` is the value last given to
///   [`MemFs::set_now`] (0 until then).
#[derive(Debug, Clone)]
pub struct MemFs {
    files: BTreeMap<Key, File>,
    /// What the files cost: data + paths + overhead.
    bytes: u64,
    max_bytes: u64,
    max_files: u64,
    now_ms: u64,
}

fn not_found(path: &str) -> Errno {
    Errno::NotFound {
        what: path.to_string(),
    }
}

impl MemFs {
    /// An empty tree holding at most `max_bytes` (data and metadata, see
    /// [`MemFs::entry_cost`]) in at most `max_files` files.
    pub fn new(max_bytes: u64, max_files: u64) -> Self {
        MemFs {
            files: BTreeMap::new(),
            bytes: 0,
            max_bytes,
            max_files,
            now_ms: 0,
        }
    }

    /// What a file at the normalized `path` costs the quota beyond its data: its path's
    /// length and [`FILE_OVERHEAD`].
    pub fn entry_cost(path: &str) -> u64 {
        path.len() as u64 + FILE_OVERHEAD
    }

    /// Sets the time stamped on later writes (ms since the Unix epoch).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// The normalized path and its key.
    fn key(path: &str) -> Result<(String, Key), Errno> {
        let norm = if path.starts_with('/') {
            normalize(path)?
        } else {
            normalize(&format!("/{path}"))?
        };
        let key = Key::of(&norm);
        Ok((norm, key))
    }

    /// Whether some file lives strictly under `dir`.
    fn has_children(&self, dir: &Key) -> bool {
        self.children(dir).next().is_some()
    }

    /// Every file strictly under `dir`, in key order.
    fn children<'a>(&'a self, dir: &Key) -> impl Iterator<Item = (&'a Key, &'a File)> + 'a {
        let prefix = dir.dir_prefix();
        self.files
            .range((Bound::Included(prefix.clone()), Bound::Unbounded))
            .take_while(move |(k, _)| k.0.starts_with(&prefix.0))
    }

    /// The file that is a strict ancestor of `key`, if any (see [`Key`]): one lookup.
    fn file_ancestor(&self, key: &Key) -> Option<&Key> {
        let (pred, _) = self
            .files
            .range((Bound::Unbounded, Bound::Excluded(key.clone())))
            .next_back()?;
        let under = key
            .0
            .strip_prefix(pred.0.as_str())
            .is_some_and(|rest| rest.starts_with(SEP));
        under.then_some(pred)
    }

    /// Reads `len` bytes (to the end when `None`) from `offset`. Past the end reads nothing.
    pub fn read(&self, path: &str, offset: u64, len: Option<u64>) -> Result<Vec<u8>, Errno> {
        let (norm, key) = Self::key(path)?;
        let Some(file) = self.files.get(&key) else {
            if key.is_root() || self.has_children(&key) {
                return Err(Errno::IsDirectory { path: norm });
            }
            return Err(not_found(&norm));
        };
        let size = file.data.len() as u64;
        let start = offset.min(size);
        let end = len.map_or(size, |l| start.saturating_add(l).min(size));
        let (start, end) = (
            usize::try_from(start).unwrap_or(usize::MAX),
            usize::try_from(end).unwrap_or(usize::MAX),
        );
        Ok(file
            .data
            .get(start..end)
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    }

    /// Writes `data` to the file at `path`, creating it and its parent directories. Returns
    /// the number of bytes written. Fails without changing anything on a quota, a directory
    /// in the way, or (for `CreateNew`) an existing file.
    pub fn write(&mut self, path: &str, data: &[u8], mode: WriteMode) -> Result<u64, Errno> {
        let (norm, key) = Self::key(path)?;
        if key.is_root() || self.has_children(&key) {
            return Err(Errno::IsDirectory { path: norm });
        }
        // No ancestor may be a file.
        if let Some(file) = self.file_ancestor(&key) {
            return Err(Errno::NotDirectory { path: file.path() });
        }
        let added = data.len() as u64;
        let old = self.files.get(&key).map(|f| f.data.len() as u64);
        let new_size = match (mode, old) {
            (WriteMode::CreateNew, Some(_)) => return Err(Errno::AlreadyExists { path: norm }),
            (WriteMode::Append, Some(o)) => o.saturating_add(added),
            _ => added,
        };
        let meta = Self::entry_cost(&norm);
        let old_cost = old.map_or(0, |o| o + meta);
        let new_total = (self.bytes - old_cost)
            .saturating_add(new_size)
            .saturating_add(meta);
        if new_total > self.max_bytes {
            return Err(Errno::QuotaExceeded {
                what: format!(
                    "{new_total} bytes (data, paths and {FILE_OVERHEAD} bytes per file) over the memory quota of {}",
                    self.max_bytes
                ),
            });
        }
        if old.is_none() && self.files.len() as u64 >= self.max_files {
            return Err(Errno::QuotaExceeded {
                what: format!("more than {} files", self.max_files),
            });
        }
        let now = self.now_ms;
        let file = self.files.entry(key).or_insert(File {
            data: Vec::new(),
            modified_ms: now,
        });
        if mode != WriteMode::Append {
            file.data.clear();
        }
        file.data.extend_from_slice(data);
        file.modified_ms = now;
        self.bytes = new_total;
        Ok(added)
    }

    /// The entries directly under `path`, sorted by name.
    pub fn list(&self, path: &str) -> Result<Vec<DirEntry>, Errno> {
        let (norm, key) = Self::key(path)?;
        if self.files.contains_key(&key) {
            return Err(Errno::NotDirectory { path: norm });
        }
        let skip = key.dir_prefix().0.len();
        let mut entries: BTreeMap<&str, DirEntry> = BTreeMap::new();
        for (k, f) in self.children(&key) {
            let rest = &k.0[skip..];
            match rest.split_once(SEP) {
                Some((dir, _)) => {
                    entries.entry(dir).or_insert_with(|| DirEntry {
                        name: dir.to_string(),
                        kind: FileKind::Directory,
                        size: 0,
                    });
                }
                None => {
                    entries.insert(
                        rest,
                        DirEntry {
                            name: rest.to_string(),
                            kind: FileKind::File,
                            size: f.data.len() as u64,
                        },
                    );
                }
            }
        }
        if entries.is_empty() && !key.is_root() {
            return Err(not_found(&norm));
        }
        Ok(entries.into_values().collect())
    }

    /// Describes a file or directory.
    pub fn stat(&self, path: &str) -> Result<FileStat, Errno> {
        let (norm, key) = Self::key(path)?;
        if let Some(f) = self.files.get(&key) {
            return Ok(FileStat {
                kind: FileKind::File,
                size: f.data.len() as u64,
                modified_ms: f.modified_ms,
                read_only: false,
            });
        }
        if key.is_root() || self.has_children(&key) {
            let modified_ms = self
                .children(&key)
                .map(|(_, f)| f.modified_ms)
                .max()
                .unwrap_or(0);
            return Ok(FileStat {
                kind: FileKind::Directory,
                size: 0,
                modified_ms,
                read_only: false,
            });
        }
        Err(not_found(&norm))
    }

    /// Removes a file. Directories cannot be unlinked (they vanish with their last file).
    pub fn unlink(&mut self, path: &str) -> Result<(), Errno> {
        let (norm, key) = Self::key(path)?;
        match self.files.remove(&key) {
            Some(f) => {
                self.bytes -= f.data.len() as u64 + Self::entry_cost(&norm);
                Ok(())
            }
            None if key.is_root() || self.has_children(&key) => {
                Err(Errno::IsDirectory { path: norm })
            }
            None => Err(not_found(&norm)),
        }
    }

    /// Moves the file at `from` to `to` (creating `to`'s parents), replacing a file at `to`
    /// as POSIX `rename` does; keeps its data and modification time. The quota sees the new
    /// path's length and the replaced file freed. Fails without changing anything when `from`
    /// is not a file (a directory: `IsDirectory`; directories are implicit and move with
    /// their files, one by one), `to` is a directory or lies under a file (`from` included),
    /// or the longer name would exceed the byte quota. Renaming a file onto itself does
    /// nothing. Linear in the paths' lengths (times the log of the number of files).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        let (from_norm, from_key) = Self::key(from)?;
        let (to_norm, to_key) = Self::key(to)?;
        if !self.files.contains_key(&from_key) {
            if from_key.is_root() || self.has_children(&from_key) {
                return Err(Errno::IsDirectory { path: from_norm });
            }
            return Err(not_found(&from_norm));
        }
        if from_key == to_key {
            return Ok(());
        }
        if to_key.is_root() || self.has_children(&to_key) {
            return Err(Errno::IsDirectory { path: to_norm });
        }
        if let Some(file) = self.file_ancestor(&to_key) {
            return Err(Errno::NotDirectory { path: file.path() });
        }
        let replaced = self
            .files
            .get(&to_key)
            .map_or(0, |f| f.data.len() as u64 + Self::entry_cost(&to_norm));
        let new_total = (self.bytes - replaced - Self::entry_cost(&from_norm))
            .saturating_add(Self::entry_cost(&to_norm));
        if new_total > self.max_bytes && new_total > self.bytes {
            return Err(Errno::QuotaExceeded {
                what: format!(
                    "{new_total} bytes (data, paths and {FILE_OVERHEAD} bytes per file) over the memory quota of {} (renaming {from_norm} to the longer {to_norm})",
                    self.max_bytes
                ),
            });
        }
        let Some(file) = self.files.remove(&from_key) else {
            return Err(not_found(&from_norm));
        };
        self.files.insert(to_key, file);
        self.bytes = new_total;
        Ok(())
    }

    /// (bytes charged — data, paths and [`FILE_OVERHEAD`] per file —, number of files) in use.
    pub fn usage(&self) -> (u64, u64) {
        (self.bytes, self.files.len() as u64)
    }

    /// Every file as `(path, modified_ms, data)`, in path order (a checkpoint's content).
    pub fn snapshot(&self) -> Vec<(String, u64, Vec<u8>)> {
        let mut files: Vec<(String, u64, Vec<u8>)> = self
            .files
            .iter()
            .map(|(k, f)| (k.path(), f.modified_ms, f.data.clone()))
            .collect();
        files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        files
    }

    /// A tree holding `files` (from [`MemFs::snapshot`]) under the given quotas. Fails with
    /// `QuotaExceeded` when they do not fit, or on a malformed path.
    pub fn restore(
        files: Vec<(String, u64, Vec<u8>)>,
        max_bytes: u64,
        max_files: u64,
    ) -> Result<MemFs, Errno> {
        let mut fs = MemFs::new(max_bytes, max_files);
        for (path, ms, data) in files {
            fs.set_now(ms);
            fs.write(&path, &data, WriteMode::Truncate)?;
        }
        fs.set_now(0);
        Ok(fs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> MemFs {
        MemFs::new(1000, 4)
    }

    #[test]
    fn write_read_roundtrip_with_and_without_slash() {
        let mut m = fs();
        assert_eq!(m.write("notes/a.txt", b"hello", WriteMode::Truncate), Ok(5));
        assert_eq!(m.read("/notes/a.txt", 0, None).unwrap(), b"hello");
        assert_eq!(m.read("notes/./x/../a.txt", 1, Some(3)).unwrap(), b"ell");
        assert_eq!(m.read("notes/a.txt", 10, None).unwrap(), b"");
        assert_eq!(m.read("notes/a.txt", 3, Some(u64::MAX)).unwrap(), b"lo");
        assert_eq!(m.usage(), (5 + MemFs::entry_cost("/notes/a.txt"), 1));
    }

    #[test]
    fn write_modes() {
        let mut m = fs();
        m.write("a", b"12", WriteMode::Append).unwrap();
        m.write("a", b"34", WriteMode::Append).unwrap();
        assert_eq!(m.read("a", 0, None).unwrap(), b"1234");
        m.write("a", b"x", WriteMode::Truncate).unwrap();
        assert_eq!(m.read("a", 0, None).unwrap(), b"x");
        assert_eq!(
            m.write("a", b"y", WriteMode::CreateNew),
            Err(Errno::AlreadyExists { path: "/a".into() })
        );
        assert_eq!(m.usage(), (1 + M, 1));
    }

    /// What a one-letter file (`/a`) costs beyond its data.
    const M: u64 = 2 + FILE_OVERHEAD;

    #[test]
    fn quota_exceeded_leaves_old_content() {
        let mut m = MemFs::new(100 + 2 * M, 4);
        m.write("a", &[1; 60], WriteMode::Truncate).unwrap();
        m.write("b", &[2; 30], WriteMode::Truncate).unwrap();
        let e = m.write("a", &[3; 71], WriteMode::Truncate).unwrap_err();
        assert!(matches!(e, Errno::QuotaExceeded { .. }), "{e:?}");
        assert_eq!(m.read("a", 0, None).unwrap(), vec![1; 60]);
        assert!(m.write("b", &[4; 11], WriteMode::Append).is_err());
        assert_eq!(m.read("b", 0, None).unwrap(), vec![2; 30]);
        // replacing within quota is fine
        m.write("a", &[3; 70], WriteMode::Truncate).unwrap();
        assert_eq!(m.usage(), (100 + 2 * M, 2));
        // a name costs quota: a third file, even empty, does not fit
        assert!(matches!(
            m.write("c", b"", WriteMode::Truncate),
            Err(Errno::QuotaExceeded { .. })
        ));
        m.unlink("b").unwrap();
        assert_eq!(m.usage(), (70 + M, 1));
    }

    #[test]
    fn rename_moves_replaces_and_charges_the_new_name() {
        let mut m = MemFs::new(1000, 4);
        m.set_now(5);
        m.write("a", b"12", WriteMode::Truncate).unwrap();
        m.write("b", b"xyz", WriteMode::Truncate).unwrap();
        m.set_now(9);
        // Onto an existing file: it is replaced and its cost freed.
        m.rename("a", "b").unwrap();
        assert_eq!(m.read("b", 0, None).unwrap(), b"12");
        assert_eq!(
            m.stat("b").unwrap().modified_ms,
            5,
            "a rename keeps the mtime"
        );
        assert_eq!(m.read("a", 0, None), Err(not_found("/a")));
        assert_eq!(m.usage(), (2 + M, 1));
        // To a longer name, in a new directory: the path's length is charged.
        m.rename("/b", "/d/longer").unwrap();
        assert_eq!(m.usage(), (2 + MemFs::entry_cost("/d/longer"), 1));
        assert_eq!(m.list("/d").unwrap().len(), 1);
        // Onto itself: nothing changes.
        m.rename("/d/longer", "d/./longer").unwrap();
        assert_eq!(m.usage(), (2 + MemFs::entry_cost("/d/longer"), 1));
    }

    #[test]
    fn rename_refusals_change_nothing() {
        let mut m = MemFs::new(2 + M + 10, 4);
        m.write("a", b"12", WriteMode::Truncate).unwrap();
        let before = m.snapshot();
        let refused = [
            (
                "missing",
                "x",
                Errno::NotFound {
                    what: "/missing".into(),
                },
            ),
            ("a", "a/under", Errno::NotDirectory { path: "/a".into() }),
            ("/", "x", Errno::IsDirectory { path: "/".into() }),
            ("a", "/", Errno::IsDirectory { path: "/".into() }),
        ];
        for (from, to, e) in refused {
            assert_eq!(m.rename(from, to), Err(e), "{from} -> {to}");
        }
        m.write("d/f", b"", WriteMode::Truncate).unwrap_err(); // over the byte quota
                                                               // A name 11 bytes longer does not fit the quota; 10 more does.
        let e = m.rename("a", &"n".repeat(12)).unwrap_err();
        assert!(matches!(e, Errno::QuotaExceeded { .. }), "{e:?}");
        assert_eq!(m.snapshot(), before);
        m.rename("a", &"n".repeat(11)).unwrap();
        assert_eq!(m.usage(), (2 + M + 10, 1));
    }

    #[test]
    fn file_count_quota() {
        let mut m = MemFs::new(1000, 2);
        m.write("c", b"", WriteMode::Truncate).unwrap();
        m.write("d", b"", WriteMode::Truncate).unwrap();
        assert!(matches!(
            m.write("e", b"", WriteMode::Truncate),
            Err(Errno::QuotaExceeded { .. })
        ));
        m.write("d", b"x", WriteMode::Truncate).unwrap();
        assert_eq!(m.usage(), (1 + 2 * M, 2));
    }

    #[test]
    fn long_names_cost_quota() {
        let name = "n".repeat(200);
        let path = format!("/{name}/{name}/{name}");
        let cost = MemFs::entry_cost(&path);
        assert_eq!(cost, 603 + FILE_OVERHEAD);
        let mut m = MemFs::new(cost + 9, 100);
        m.write(&path, b"123456789", WriteMode::Truncate).unwrap();
        assert_eq!(m.usage(), (cost + 9, 1));
        let e = m.write(&format!("/{name}/x"), b"", WriteMode::Truncate);
        assert!(matches!(e, Err(Errno::QuotaExceeded { .. })), "{e:?}");
    }

    #[test]
    fn a_file_ancestor_is_found_however_names_sort() {
        let mut m = MemFs::new(1 << 20, 100);
        // `.`, `!` and ` ` sort below `/`: these lie between `/a` and `/a/b` in path order.
        for p in ["/a", "/a.txt", "/a!", "/a b", "/a.d/x", "/b/c"] {
            m.write(p, b"1", WriteMode::Truncate).unwrap();
        }
        assert_eq!(
            m.write("/a/b", b"", WriteMode::Truncate),
            Err(Errno::NotDirectory { path: "/a".into() })
        );
        assert_eq!(
            m.write("/b/c/d/e", b"", WriteMode::Truncate),
            Err(Errno::NotDirectory {
                path: "/b/c".into()
            })
        );
        m.write("/a.d/y/z", b"2", WriteMode::Truncate).unwrap();
        m.write("/b/cc/d", b"2", WriteMode::Truncate).unwrap();
        let paths: Vec<String> = m.snapshot().into_iter().map(|(p, _, _)| p).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted, "a snapshot is in path order");
        let back = MemFs::restore(m.snapshot(), 1 << 20, 100).unwrap();
        assert_eq!(back.snapshot(), m.snapshot());
        assert_eq!(back.usage(), m.usage());
    }

    /// The bytes that key comparisons may touch while writing a path of `depth` one-letter
    /// components next to an existing file sharing all but its last component (the shape that
    /// made the per-component ancestor check quadratic).
    fn write_work(depth: usize) -> u64 {
        let dir = "a/".repeat(depth);
        let mut m = MemFs::new(u64::MAX, 100);
        m.write(&format!("/{dir}x"), b"", WriteMode::Truncate)
            .unwrap();
        work::take();
        m.write(&format!("/{dir}y"), b"", WriteMode::Truncate)
            .unwrap();
        m.stat(&format!("/{dir}z")).unwrap_err();
        work::take()
    }

    #[test]
    fn work_is_linear_in_the_path_length() {
        // 8x the path (up to PATH_MAX) costs about 8x the work; the per-component ancestor
        // check cost 64x.
        let (small, large) = (write_work(250), write_work(2000));
        assert!(small > 0);
        assert!(
            large <= small * 12,
            "8x the path cost {}x the comparison work ({small} -> {large})",
            large / small
        );
    }
    #[test]
    fn directories_are_implicit() {
        let mut m = MemFs::new(1000, 100);
        m.set_now(42);
        m.write("d/x", b"1", WriteMode::Truncate).unwrap();
        m.write("d/sub/y", b"22", WriteMode::Truncate).unwrap();
        m.write("d.txt", b"333", WriteMode::Truncate).unwrap();
        let names: Vec<(String, FileKind, u64)> = m
            .list("/d")
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.kind, e.size))
            .collect();
        assert_eq!(
            names,
            vec![
                ("sub".into(), FileKind::Directory, 0),
                ("x".into(), FileKind::File, 1)
            ]
        );
        let root: Vec<String> = m.list("/").unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(root, vec!["d", "d.txt"]);
        assert_eq!(m.stat("d").unwrap().kind, FileKind::Directory);
        assert_eq!(
            m.stat("d/x").unwrap(),
            FileStat {
                kind: FileKind::File,
                size: 1,
                modified_ms: 42,
                read_only: false
            }
        );
        assert_eq!(
            m.read("d", 0, None),
            Err(Errno::IsDirectory { path: "/d".into() })
        );
        assert_eq!(
            m.write("d", b"", WriteMode::Truncate),
            Err(Errno::IsDirectory { path: "/d".into() })
        );
        assert_eq!(
            m.write("d/x/z", b"", WriteMode::Truncate),
            Err(Errno::NotDirectory {
                path: "/d/x".into()
            })
        );
        assert_eq!(
            m.list("d/x"),
            Err(Errno::NotDirectory {
                path: "/d/x".into()
            })
        );
        assert_eq!(m.unlink("d"), Err(Errno::IsDirectory { path: "/d".into() }));
        m.unlink("d/sub/y").unwrap();
        assert_eq!(
            m.stat("d/sub"),
            Err(Errno::NotFound {
                what: "/d/sub".into()
            })
        );
        assert_eq!(
            m.list("nope"),
            Err(Errno::NotFound {
                what: "/nope".into()
            })
        );
        assert_eq!(
            m.unlink("nope"),
            Err(Errno::NotFound {
                what: "/nope".into()
            })
        );
        assert_eq!(
            m.usage(),
            (
                4 + MemFs::entry_cost("/d/x") + MemFs::entry_cost("/d.txt"),
                2
            )
        );
    }

    #[test]
    fn empty_root_lists_and_dotdot_stays_inside() {
        let mut m = fs();
        assert_eq!(m.list("/").unwrap(), vec![]);
        assert_eq!(m.stat("").unwrap().kind, FileKind::Directory);
        m.write("../../etc/passwd", b"x", WriteMode::Truncate)
            .unwrap();
        assert_eq!(m.list("/").unwrap()[0].name, "etc");
        assert!(matches!(
            m.read("a\0b", 0, None),
            Err(Errno::InvalidArgument { .. })
        ));
    }
}

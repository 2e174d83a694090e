//! [`MemFs`]: the in-memory backend behind `/mem/working`.

use std::collections::BTreeMap;
use std::ops::Bound;

use agentos_syscalls::{DirEntry, Errno, FileKind, FileStat, WriteMode};

use crate::path::normalize;

#[derive(Debug, Clone)]
struct File {
    data: Vec<u8>,
    modified_ms: u64,
}

/// An in-memory file tree with quotas.
///
/// - **Paths** are relative to the tree's root and may be written with or without a leading
///   `/` (`notes/a.txt` and `/notes/a.txt` are the same file); they are normalized with
///   [`normalize`], so `..` cannot leave the root.
/// - **Directories are implicit**: a directory exists while some file lives under it; the
///   root always exists. Writing a file creates its parents; unlinking the last file of a
///   directory makes it disappear. There are no empty directories.
/// - **Quotas**: `max_bytes` bounds the sum of file sizes, `max_files` the number of files
///   (directories are free, being bounded by the files under them). A write that would
///   exceed either fails with `QuotaExceeded` and leaves the tree unchanged.
/// - **Time**: no clock is read. `modified_ms` is the value last given to
///   [`MemFs::set_now`] (0 until then).
#[derive(Debug, Clone)]
pub struct MemFs {
    files: BTreeMap<String, File>,
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
    /// An empty tree holding at most `max_bytes` of data in at most `max_files` files.
    pub fn new(max_bytes: u64, max_files: u64) -> Self {
        MemFs {
            files: BTreeMap::new(),
            bytes: 0,
            max_bytes,
            max_files,
            now_ms: 0,
        }
    }

    /// Sets the time stamped on later writes (ms since the Unix epoch).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    fn key(path: &str) -> Result<String, Errno> {
        if path.starts_with('/') {
            normalize(path)
        } else {
            normalize(&format!("/{path}"))
        }
    }

    /// Whether some file lives strictly under `dir` (a normalized path).
    fn has_children(&self, dir: &str) -> bool {
        self.children(dir).next().is_some()
    }

    /// Every file strictly under `dir`, in key order.
    fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a File)> + 'a {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        let p2 = prefix.clone();
        self.files
            .range::<String, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(&p2))
    }

    /// Reads `len` bytes (to the end when `None`) from `offset`. Past the end reads nothing.
    pub fn read(&self, path: &str, offset: u64, len: Option<u64>) -> Result<Vec<u8>, Errno> {
        let key = Self::key(path)?;
        let Some(file) = self.files.get(&key) else {
            if key == "/" || self.has_children(&key) {
                return Err(Errno::IsDirectory { path: key });
            }
            return Err(not_found(&key));
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
        let key = Self::key(path)?;
        if key == "/" || self.has_children(&key) {
            return Err(Errno::IsDirectory { path: key });
        }
        // No ancestor may be a file.
        let mut cut = key.len();
        while let Some(i) = key[..cut].rfind('/') {
            if i == 0 {
                break;
            }
            if self.files.contains_key(&key[..i]) {
                return Err(Errno::NotDirectory {
                    path: key[..i].to_string(),
                });
            }
            cut = i;
        }
        let added = data.len() as u64;
        let old = self.files.get(&key).map(|f| f.data.len() as u64);
        let new_size = match (mode, old) {
            (WriteMode::CreateNew, Some(_)) => return Err(Errno::AlreadyExists { path: key }),
            (WriteMode::Append, Some(o)) => o.saturating_add(added),
            _ => added,
        };
        let new_total = (self.bytes - old.unwrap_or(0)).saturating_add(new_size);
        if new_total > self.max_bytes {
            return Err(Errno::QuotaExceeded {
                what: format!(
                    "{new_total} bytes over the memory quota of {}",
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
        let key = Self::key(path)?;
        if self.files.contains_key(&key) {
            return Err(Errno::NotDirectory { path: key });
        }
        let skip = if key == "/" { 1 } else { key.len() + 1 };
        let mut entries: BTreeMap<&str, DirEntry> = BTreeMap::new();
        for (k, f) in self.children(&key) {
            let rest = &k[skip..];
            match rest.split_once('/') {
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
        if entries.is_empty() && key != "/" {
            return Err(not_found(&key));
        }
        Ok(entries.into_values().collect())
    }

    /// Describes a file or directory.
    pub fn stat(&self, path: &str) -> Result<FileStat, Errno> {
        let key = Self::key(path)?;
        if let Some(f) = self.files.get(&key) {
            return Ok(FileStat {
                kind: FileKind::File,
                size: f.data.len() as u64,
                modified_ms: f.modified_ms,
                read_only: false,
            });
        }
        if key == "/" || self.has_children(&key) {
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
        Err(not_found(&key))
    }

    /// Removes a file. Directories cannot be unlinked (they vanish with their last file).
    pub fn unlink(&mut self, path: &str) -> Result<(), Errno> {
        let key = Self::key(path)?;
        match self.files.remove(&key) {
            Some(f) => {
                self.bytes -= f.data.len() as u64;
                Ok(())
            }
            None if key == "/" || self.has_children(&key) => Err(Errno::IsDirectory { path: key }),
            None => Err(not_found(&key)),
        }
    }

    /// (bytes of file data, number of files) in use.
    pub fn usage(&self) -> (u64, u64) {
        (self.bytes, self.files.len() as u64)
    }

    /// Every file as `(path, modified_ms, data)`, in path order (a checkpoint's content).
    pub fn snapshot(&self) -> Vec<(String, u64, Vec<u8>)> {
        self.files
            .iter()
            .map(|(k, f)| (k.clone(), f.modified_ms, f.data.clone()))
            .collect()
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
        MemFs::new(100, 4)
    }

    #[test]
    fn write_read_roundtrip_with_and_without_slash() {
        let mut m = fs();
        assert_eq!(m.write("notes/a.txt", b"hello", WriteMode::Truncate), Ok(5));
        assert_eq!(m.read("/notes/a.txt", 0, None).unwrap(), b"hello");
        assert_eq!(m.read("notes/./x/../a.txt", 1, Some(3)).unwrap(), b"ell");
        assert_eq!(m.read("notes/a.txt", 10, None).unwrap(), b"");
        assert_eq!(m.read("notes/a.txt", 3, Some(u64::MAX)).unwrap(), b"lo");
        assert_eq!(m.usage(), (5, 1));
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
        assert_eq!(m.usage(), (1, 1));
    }

    #[test]
    fn quota_exceeded_leaves_old_content() {
        let mut m = fs();
        m.write("a", &[1; 60], WriteMode::Truncate).unwrap();
        m.write("b", &[2; 30], WriteMode::Truncate).unwrap();
        let e = m.write("a", &[3; 71], WriteMode::Truncate).unwrap_err();
        assert!(matches!(e, Errno::QuotaExceeded { .. }), "{e:?}");
        assert_eq!(m.read("a", 0, None).unwrap(), vec![1; 60]);
        assert!(m.write("b", &[4; 11], WriteMode::Append).is_err());
        assert_eq!(m.read("b", 0, None).unwrap(), vec![2; 30]);
        // replacing within quota is fine
        m.write("a", &[3; 70], WriteMode::Truncate).unwrap();
        assert_eq!(m.usage(), (100, 2));
        m.write("c", b"", WriteMode::Truncate).unwrap();
        m.write("d", b"", WriteMode::Truncate).unwrap();
        assert!(matches!(
            m.write("e", b"", WriteMode::Truncate),
            Err(Errno::QuotaExceeded { .. })
        ));
        assert_eq!(m.usage(), (100, 4));
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
        assert_eq!(m.usage(), (4, 2));
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

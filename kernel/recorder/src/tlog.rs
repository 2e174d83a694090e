//! The recorder as a transparency log: an RFC 6962 Merkle tree over the records, published
//! in the C2SP formats so that anyone can check one record, or that the log only grew, with
//! standard tools and without trusting the node.
//!
//! ```text
//! STATE_DIR/recorder/
//!   origin                      the log's name, `agentos/<hostname>/recorder` (chosen on the
//!                               first open and kept: the checkpoints' origin line and key name)
//!   checkpoint                  the latest C2SP tlog-checkpoint, a C2SP signed note
//!                               (replaced atomically)
//!   tile/<L>/<N>[.p/<W>]        C2SP tlog-tiles hash tiles (height 8, SHA-256)
//!   tile/entries/<N>[.p/<W>]    C2SP tlog-tiles entry bundles: the leaves, each prefixed by
//!                               its length (big-endian u16)
//! ```
//!
//! **Leaf i** is the record with sequence number i, and its bytes are exactly the bytes the
//! chain covers for that record's frame: in a version 2 segment the frame's header and body
//! as written (`len ‖ type ‖ seq ‖ wall_ms ‖ mono_us ‖ body`, bytes `0..29+len` of the frame,
//! see [`super::format`]); in a version 1 segment `type ‖ body`. A blob-backed record's leaf is
//! its frame as written (the body names the blob by its blake3 digest). Leaf hash =
//! SHA-256(0x00 ‖ leaf), node hash = SHA-256(0x01 ‖ left ‖ right) (RFC 6962 §2.1); checkpoint
//! frames are not leaves, so the tree size is the number of records (a checkpoint's
//! `next_seq`). A leaf over 65535 bytes cannot be put in an entry bundle: its bundle is not
//! written (a warning says so); its hash is in the tiles and its bytes in the segment.
//!
//! The checkpoint note is `origin \n size \n base64(root) \n`, signed (C2SP signed-note,
//! ed25519) by the recorder's key under the name `origin`; its verifier key is
//! `origin+<key id>+base64(0x01 ‖ key.pub)` ([`verifier_key`]).
//!
//! The writer keeps each record's leaf as it encodes it ([`Leaves`]: bytes end to end, no
//! allocation per record); a rollback after a write error cuts them back with the records.
//! With `HEAD` (after the records are fsynced) it hands the leaves up to that checkpoint to
//! the publisher thread ([`crate::publish`]), which keeps the tree's [`Frontier`] (its right
//! edge and the hashes of the tiles not yet full: memory bounded by what is not yet
//! published, not by the log's size), hashes the new leaves and writes the tiles, bundles and
//! the signed note — beside the appenders, not in their path. On open the tree is rebuilt from the
//! segments (after a torn tail is cut) and `tile/` rewritten from it, so the tiles never cover
//! bytes the log lost. A partial tile (`.p/<W>`) is removed when a wider one or the full tile
//! is published.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, Signer, StandardVerifier, VerifierList};
pub use tlog_tiles::Hash;
use tlog_tiles::{
    check_record, check_tree, node_hash, prove_record, prove_tree, record_hash, stored_hash_count,
    stored_hash_index, tree_hash, HashReader, HASH_SIZE,
};

use crate::format::{
    segment_name, SegmentHeader, CHAIN_LEN, FRAME_HEADER, FRAME_OVERHEAD, HEADER_LEN, TYPE_RECORD,
    VERSION_1,
};
use crate::verify::segments;
use crate::RecorderError;

/// Tile height (C2SP tlog-tiles: 8, 256 hashes or entries a full tile).
pub const TILE_HEIGHT: u8 = 8;
const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// The checkpoint note, beside the segments.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// The log's origin (name).
pub const ORIGIN_FILE: &str = "origin";
/// The tiles' directory.
pub const TILE_DIR: &str = "tile";

/// Every stored hash of the tree over the first `size` leaves (Go sumdb's layout:
/// [`tlog_tiles::stored_hash_index`]).
#[derive(Debug, Default, Clone)]
pub struct Tree {
    hashes: Vec<Hash>,
    size: u64,
}

impl HashReader for Tree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.hashes
                    .get(i as usize)
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl Tree {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds leaf `size` with these bytes: its hash, then the hash of each subtree it completes
    /// (Go sumdb's `StoredHashesForRecordHash`, without its allocations: this runs for every
    /// record the writer appends).
    pub fn push(&mut self, leaf: &[u8]) {
        let n = self.size;
        let mut h = record_hash(leaf);
        self.hashes.push(h);
        for level in 0..n.trailing_ones() {
            let left = stored_hash_index(level as u8, (n >> level) - 1);
            // Stored before this leaf: a complete subtree to its left.
            let left = self.hashes.get(left as usize).copied().unwrap_or(h);
            h = node_hash(left, h);
            self.hashes.push(h);
        }
        self.size += 1;
    }

    /// The tree whose stored hashes are `hashes` (those of its first `size` leaves, as
    /// [`Tree::stored`] gives them): a pruned log's kept prefix.
    pub fn from_stored(hashes: Vec<Hash>, size: u64) -> Tree {
        Tree { hashes, size }
    }

    /// The stored hashes of the tree over its first `n` leaves (`n ≤ size`).
    pub fn stored(&self, n: u64) -> &[Hash] {
        let end = (stored_hash_count(n.min(self.size)) as usize).min(self.hashes.len());
        &self.hashes[..end]
    }

    /// Cuts the tree back to its first `size` leaves.
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            self.hashes.truncate(stored_hash_count(size) as usize);
            self.size = size;
        }
    }

    /// The root of the tree over the first `n` leaves (`n ≤ size`).
    pub fn root_at(&self, n: u64) -> Result<Hash, String> {
        if n > self.size {
            return Err(format!("the log has {} records, fewer than {n}", self.size));
        }
        tree_hash(n, self).map_err(|e| format!("tree hash at {n}: {e}"))
    }

    pub fn root(&self) -> Hash {
        self.root_at(self.size).unwrap_or(tlog_tiles::EMPTY_HASH)
    }

    /// The inclusion proof of leaf `index` in the tree of size `n`.
    pub fn prove(&self, n: u64, index: u64) -> Result<Vec<Hash>, String> {
        if index >= n || n > self.size {
            return Err(format!(
                "record {index} is not in a tree of size {n} (the log has {} records)",
                self.size
            ));
        }
        prove_record(n, index, self).map_err(|e| format!("inclusion proof: {e}"))
    }

    /// The consistency proof from the tree of size `old` to the tree of size `new`.
    pub fn prove_consistency(&self, new: u64, old: u64) -> Result<Vec<Hash>, String> {
        if old > new || new > self.size {
            return Err(format!(
                "no consistency proof from size {old} to size {new} (the log has {} records)",
                self.size
            ));
        }
        prove_tree(new, old, self).map_err(|e| format!("consistency proof: {e}"))
    }

    /// The hashes of tile (level `l`, number `n`, width `w`): C2SP tlog-tiles contents.
    pub fn tile(&self, l: u8, n: u64, w: u64) -> Vec<u8> {
        let level = l * TILE_HEIGHT;
        let mut out = Vec::with_capacity(w as usize * HASH_SIZE);
        for i in 0..w {
            let idx = tlog_tiles::stored_hash_index(level, n * TILE_WIDTH + i);
            if let Some(h) = self.hashes.get(idx as usize) {
                out.extend_from_slice(&h.0);
            }
        }
        out
    }
}

/// The tree as the publisher needs it, in memory bounded by the records not yet published
/// (not by the log's size): the roots of the complete subtrees along its right edge (at most
/// one per level: they give the next hashes and the root) and, for each tile level, the
/// hashes of its tiles from the first one not yet published in full. Its tiles and roots are
/// [`Tree`]'s (tested against it); proofs of old records are made from the tile files
/// (`agentctl`), never from here.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// (level, hash) of the complete subtrees the first `size` leaves split into, largest
    /// (leftmost) first.
    edge: Vec<(u8, Hash)>,
    /// For tile level `l`: the hashes at tree level `8·l` from index `row_start[l]` (a
    /// multiple of 256) on.
    rows: [Vec<Hash>; TILE_LEVELS],
    row_start: [u64; TILE_LEVELS],
}

/// The tile levels a log of 2^64 records can have (height 8).
const TILE_LEVELS: usize = 8;

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier of `tree` (its right edge and the hashes of its last tile at each level).
    pub fn from_tree(tree: &Tree) -> Frontier {
        let size = tree.size();
        let mut edge = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size >> level & 1 == 1 {
                let i = stored_hash_index(level, start >> level) as usize;
                edge.push((level, tree.hashes.get(i).copied().unwrap_or_default()));
                start += 1 << level;
            }
        }
        let mut f = Frontier {
            size,
            edge,
            ..Frontier::default()
        };
        for l in 0..TILE_LEVELS {
            let shift = l as u32 * u32::from(TILE_HEIGHT);
            let count = if shift < 64 { size >> shift } else { 0 };
            f.row_start[l] = count / TILE_WIDTH * TILE_WIDTH;
            f.rows[l] = (f.row_start[l]..count)
                .map(|i| {
                    let idx = stored_hash_index((l as u32 * u32::from(TILE_HEIGHT)) as u8, i);
                    tree.hashes.get(idx as usize).copied().unwrap_or_default()
                })
                .collect();
        }
        f
    }

    /// Adds leaf `size` with these bytes.
    pub fn push(&mut self, leaf: &[u8]) {
        let mut h = record_hash(leaf);
        let mut level = 0u8;
        self.keep(level, h);
        while let Some(&(l, left)) = self.edge.last() {
            if l != level {
                break;
            }
            self.edge.pop();
            h = node_hash(left, h);
            level += 1;
            self.keep(level, h);
        }
        self.edge.push((level, h));
        self.size += 1;
    }

    fn keep(&mut self, level: u8, h: Hash) {
        if level % TILE_HEIGHT == 0 {
            if let Some(row) = self.rows.get_mut(usize::from(level / TILE_HEIGHT)) {
                row.push(h);
            }
        }
    }

    /// The root of the tree over all `size` leaves (RFC 6962: the complete subtrees folded
    /// from the right).
    pub fn root(&self) -> Hash {
        let mut it = self.edge.iter().rev();
        let Some(&(_, mut root)) = it.next() else {
            return tlog_tiles::EMPTY_HASH;
        };
        for &(_, left) in it {
            root = node_hash(left, root);
        }
        root
    }

    /// The hashes of tile (level `l`, number `n`, width `w`), as [`Tree::tile`] gives them;
    /// empty when they are no longer (or not yet) held.
    pub fn tile(&self, l: u8, n: u64, w: u64) -> Vec<u8> {
        let (Some(row), Some(&start)) = (
            self.rows.get(usize::from(l)),
            self.row_start.get(usize::from(l)),
        ) else {
            return Vec::new();
        };
        let from = (n * TILE_WIDTH).checked_sub(start).map(|f| f as usize);
        match from.and_then(|f| row.get(f..f + w as usize)) {
            Some(hashes) => hashes.iter().flat_map(|h| h.0).collect(),
            None => Vec::new(),
        }
    }

    /// Forgets the hashes of the tiles that are full at size `published` (written: the next
    /// publication starts after them).
    pub fn published(&mut self, published: u64) {
        for l in 0..TILE_LEVELS {
            let shift = l as u32 * u32::from(TILE_HEIGHT);
            let keep_from = (published >> shift) / TILE_WIDTH * TILE_WIDTH;
            let drop = keep_from.saturating_sub(self.row_start[l]) as usize;
            let row = &mut self.rows[l];
            row.drain(..drop.min(row.len()));
            self.row_start[l] = self.row_start[l].max(keep_from);
        }
    }
}

/// Leaves held in memory until their entry bundle is full: their bytes end to end and where
/// each ends — one buffer for many records, not an allocation each (the writer adds one per
/// record it appends).
#[derive(Debug, Default, Clone)]
pub struct Leaves {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Leaves {
    pub fn push(&mut self, leaf: &[u8]) {
        self.bytes.extend_from_slice(leaf);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Where leaf `i` starts in `bytes`.
    fn start(&self, i: usize) -> usize {
        match i {
            0 => 0,
            _ => self.ends[i - 1],
        }
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        Some(&self.bytes[self.start(i)..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Adds every leaf of `other`, in order.
    pub fn extend(&mut self, other: &Leaves) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|e| e + at));
    }

    /// Keeps the first `n` leaves.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.bytes.truncate(self.start(n));
            self.ends.truncate(n);
        }
    }

    /// Removes the first `n` leaves and returns them; what stays starts in a buffer of the
    /// same capacity (the next as many records need no reallocation).
    pub fn split_front(&mut self, n: usize) -> Leaves {
        let n = n.min(self.len());
        let cut = self.start(n);
        let mut rest = Vec::with_capacity(self.bytes.capacity().max(self.bytes.len() - cut));
        rest.extend_from_slice(&self.bytes[cut..]);
        let mut front = std::mem::replace(&mut self.bytes, rest);
        front.truncate(cut);
        let rest_ends = self.ends[n..].iter().map(|e| e - cut).collect();
        let mut front_ends = std::mem::replace(&mut self.ends, rest_ends);
        front_ends.truncate(n);
        Leaves {
            bytes: front,
            ends: front_ends,
        }
    }

    /// Drops the first `n` leaves.
    pub fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len());
        let cut = self.start(n);
        self.bytes.drain(..cut);
        self.ends.drain(..n);
        for e in &mut self.ends {
            *e -= cut;
        }
    }

    /// Entry bundle of the `w` leaves from `from`: each prefixed by its big-endian u16
    /// length; `None` when one is over 65535 bytes or the range is not held.
    pub fn bundle(&self, from: usize, w: usize) -> Option<Vec<u8>> {
        if from + w > self.len() {
            return None;
        }
        let mut out = Vec::with_capacity(self.start(from + w) - self.start(from) + 2 * w);
        for i in from..from + w {
            let l = self.get(i)?;
            out.extend_from_slice(&u16::try_from(l.len()).ok()?.to_be_bytes());
            out.extend_from_slice(l);
        }
        Some(out)
    }
}

/// The consistency proof from size `old` to the checkpoint (`size`, `root`) made from the
/// hash tiles under `dir/tile` alone — a few tiles read, not the log (the kernel's witness
/// pusher makes one per checkpoint). Every tile read is checked against `root` before a hash
/// of it is used (tlog_tiles' `TileHashReader`). A partial tile the publisher has since
/// replaced is read from the wider one that superseded it (a tile only grows).
pub fn prove_consistency_from_tiles(
    dir: &Path,
    size: u64,
    root: Hash,
    old: u64,
) -> Result<Vec<Hash>, String> {
    let files = DirTiles(dir);
    let reader = tlog_tiles::TileHashReader::new(size, root, &files);
    prove_tree(size, old, &reader).map_err(|e| format!("consistency proof from the tiles: {e}"))
}

/// The hash tiles of a recorder dir, for tlog_tiles' readers.
struct DirTiles<'a>(&'a Path);

impl DirTiles<'_> {
    /// Tile (`l`, `n`) with at least `w` hashes: the exact file, else the full tile or the
    /// narrowest wider partial.
    fn read(&self, l: u8, n: u64, w: u64) -> Option<Vec<u8>> {
        let want = w as usize * HASH_SIZE;
        let exact = self.0.join(tile_path(&l.to_string(), n, w));
        let full = self.0.join(tile_path(&l.to_string(), n, TILE_WIDTH));
        let mut wider: Vec<u64> = std::fs::read_dir(format!("{}.p", full.display()))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&x| x > w)
            .collect();
        wider.sort_unstable();
        let candidates = [exact, full].into_iter().chain(
            wider
                .into_iter()
                .map(|x| self.0.join(tile_path(&l.to_string(), n, x))),
        );
        for path in candidates {
            if let Ok(mut b) = std::fs::read(&path) {
                if b.len() >= want {
                    b.truncate(want);
                    return Some(b);
                }
            }
        }
        None
    }
}

impl tlog_tiles::TileReader for DirTiles<'_> {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }

    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                self.read(t.level(), t.level_index(), u64::from(t.width()))
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }

    fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
}

/// Checks an inclusion proof (RFC 6962 §2.1.1).
pub fn check_inclusion(proof: &[Hash], size: u64, root: Hash, index: u64, leaf: &[u8]) -> bool {
    check_record(&proof.to_vec(), size, root, index, record_hash(leaf)).is_ok()
}

/// Checks a consistency proof (RFC 6962 §2.1.2).
pub fn check_consistency(
    proof: &[Hash],
    new: u64,
    new_root: Hash,
    old: u64,
    old_root: Hash,
) -> bool {
    check_tree(&proof.to_vec(), new, new_root, old, old_root).is_ok()
}

/// C2SP tlog-tiles path of a tile: `tile/<L>/<N>[.p/<W>]`, `L` = `entries` for a bundle.
pub fn tile_path(level: &str, n: u64, w: u64) -> String {
    let mut s = format!("{:03}", n % 1000);
    let mut m = n / 1000;
    while m > 0 {
        s = format!("x{:03}/{s}", m % 1000);
        m /= 1000;
    }
    let partial = if w == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{w}")
    };
    format!("{TILE_DIR}/{level}/{s}{partial}")
}

/// The tiles (level, number, width) that publishing size `new` after size `old` writes.
pub fn new_tiles(old: u64, new: u64) -> Vec<(u8, u64, u64)> {
    let mut out = Vec::new();
    let mut l = 0u8;
    while l < 8 && new >> (u32::from(l) * u32::from(TILE_HEIGHT)) > 0 {
        let shift = u32::from(l) * u32::from(TILE_HEIGHT);
        let (o, n) = (old >> shift, new >> shift);
        if o != n {
            for t in (o / TILE_WIDTH)..(n / TILE_WIDTH) {
                out.push((l, t, TILE_WIDTH));
            }
            if n % TILE_WIDTH > 0 {
                out.push((l, n / TILE_WIDTH, n % TILE_WIDTH));
            }
        }
        l += 1;
    }
    out
}

fn write_file(dir: &Path, rel: &str, data: &[u8]) -> std::io::Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, data)
}

/// Asks the filesystem to place the directories made under `parent` away from it and from
/// each other: ext4's `FS_TOPDIR_FL` (`chattr +T`) makes its allocator put each in a block
/// group of its own, with few directories and many free inodes. Without a journal, ext4
/// makes every new file skip, one by one, the inodes freed in its group in the last minutes;
/// in the state dir's group those are many (the agents' files come and go there, and whatever
/// else the host deletes). Used on `tile/` (one dir per tile level and the entry bundles',
/// where the publisher creates a few tile files a second per thousand records a second) and
/// by the kernel on `agents/` (a dir per agent, with its files). Best effort: another
/// filesystem, or one that refuses the flag, is left as it is.
pub fn spread_subdirs(parent: &Path) {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    let Ok(dir) = File::open(parent) else {
        return;
    };
    if let Ok(flags) = ioctl_getflags(&dir) {
        let _ = ioctl_setflags(&dir, flags | IFlags::TOPDIR);
    }
}

/// Tiles and a checkpoint note to write: made and written by the publisher thread
/// ([`crate::publish`]).
#[derive(Debug, Default)]
pub struct Publication {
    /// (path under the recorder dir, contents), tiles before bundles of the same range.
    pub files: Vec<(String, Vec<u8>)>,
    /// The checkpoint note, written last (replacing `checkpoint`).
    pub note: Option<Vec<u8>>,
}

/// What the publisher has written under `tile/` since the open rewrote it: the directories
/// (made once, not looked up for every file), the partial tiles and bundles still there, and
/// the emptied `.p` directories kept for the next partials.
#[derive(Debug, Default)]
pub struct TileFiles {
    dirs: std::collections::HashSet<PathBuf>,
    /// The partial tiles written (`<L>/<N>.p/<W>` under the recorder dir), by `<L>/<N>`.
    partials: std::collections::HashMap<String, String>,
    /// `.p` directories emptied by their full tile, renamed into place for the next partial
    /// rather than removed and made again ([`TileFiles::drop_spares`] removes them).
    spares: Vec<PathBuf>,
}

impl TileFiles {
    /// Writes the files, then the note. A partial tile (or bundle) superseded by the one just
    /// written — a wider partial or the full tile — is gone after it: the disk the log keeps
    /// stays proportional to its records (an agent's flood cannot make the host keep a copy per
    /// checkpoint); a client holding an older checkpoint fetches the newer partial or the full
    /// tile instead (c2sp.org/tlog-tiles lets logs delete partials). A leftover is removed by
    /// the next open's rewrite of `tile/`.
    ///
    /// Nothing is deleted to do so: the superseded partial's file is renamed to the new path
    /// and written over in place (a tile only grows: its old bytes are the new one's first, so
    /// a reader that opened it before sees them or more, never other bytes), and an emptied
    /// `.p` directory is renamed to the next one needed. On ext4 without a journal every inode
    /// freed in the last minutes is skipped, one by one, by every later file creation in its
    /// block group ([`replace_file`]): deleting partials made each new tile file cost up to a
    /// millisecond under load.
    pub fn publish(&mut self, dir: &Path, p: &Publication) -> std::io::Result<()> {
        for (rel, data) in &p.files {
            let path = dir.join(rel);
            let (tile, partial) = match rel.rsplit_once(".p/") {
                Some((tile, _)) => (tile, true),
                None => (rel.as_str(), false),
            };
            let old = self.partials.get(tile).filter(|old| *old != rel).cloned();
            let reused = match &old {
                Some(old) => std::fs::rename(dir.join(old), &path).is_ok(),
                None => false,
            };
            if reused {
                let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
                f.write_all(data)?;
                f.set_len(data.len() as u64)?;
            } else {
                if let Some(parent) = path.parent() {
                    self.make_dir(parent)?;
                }
                std::fs::write(&path, data)?;
            }
            match partial {
                true => self.partials.insert(tile.to_string(), rel.clone()),
                false => self.partials.remove(tile),
            };
            if let Some(old) = old.as_ref().filter(|_| !reused) {
                let _ = std::fs::remove_file(dir.join(old));
            }
            if !partial && old.is_some() {
                let emptied = dir.join(format!("{tile}.p"));
                self.dirs.remove(&emptied);
                self.spares.push(emptied);
            }
        }
        if let Some(note) = &p.note {
            write_checkpoint(dir, note)?;
        }
        Ok(())
    }

    /// Makes `path` (and its parents) unless made already; a `.p` directory is a spare one
    /// renamed, when there is one.
    fn make_dir(&mut self, path: &Path) -> std::io::Result<()> {
        if self.dirs.contains(path) {
            return Ok(());
        }
        let spare = match path.parent() {
            Some(parent) if path.extension().is_some_and(|e| e == "p") => {
                std::fs::create_dir_all(parent)?;
                self.spares.pop()
            }
            _ => None,
        };
        // Only an empty one: a partial the open wrote (not in `partials`) stays where it is.
        let empty = |s: &PathBuf| std::fs::read_dir(s).is_ok_and(|mut d| d.next().is_none());
        if !spare.is_some_and(|s| empty(&s) && std::fs::rename(s, path).is_ok()) {
            std::fs::create_dir_all(path)?;
        }
        self.dirs.insert(path.to_path_buf());
        Ok(())
    }

    /// Removes the spare `.p` directories (at a seal: a stopped log leaves no empty ones).
    pub fn drop_spares(&mut self) {
        for spare in self.spares.drain(..) {
            let _ = std::fs::remove_dir(spare);
        }
    }
}

/// The tiles and bundles growing from size `old` to size `new` (the frontier's size; its
/// tiles not full at `old` still held) adds; `leaves` are the leaves from index `base` (a
/// multiple of 256, ≤ `old`, or a pruned log's cut) on.
pub fn tiles_for(
    tree: &Frontier,
    (old, new): (u64, u64),
    base: u64,
    leaves: &Leaves,
) -> Publication {
    let mut p = Publication::default();
    for (l, n, w) in new_tiles(old, new) {
        p.files
            .push((tile_path(&l.to_string(), n, w), tree.tile(l, n, w)));
        if l == 0 {
            if let Some(b) = bundle_of(leaves, base, n, w) {
                p.files.push((tile_path("entries", n, w), b));
            }
        }
    }
    p
}

/// Entry bundle `n` of width `w` from `leaves` (which start at index `base`): `None` when it
/// holds pruned records (below `base`: not written) or a leaf over 65535 bytes (a warning
/// says so; the leaf is in its segment, its hash in the tiles).
fn bundle_of(leaves: &Leaves, base: u64, n: u64, w: u64) -> Option<Vec<u8>> {
    if n * TILE_WIDTH < base {
        return None;
    }
    let from = (n * TILE_WIDTH - base) as usize;
    let b = leaves.bundle(from, w as usize);
    if b.is_none() && from + w as usize <= leaves.len() {
        tracing::warn!(
            bundle = n,
            "flight recorder: an entry over 65535 bytes: entry bundle not written (the leaf is in its segment)"
        );
    }
    b
}

/// Writes entry bundle `n` of width `w` from `leaves` (which start at index `base`).
fn write_bundle(dir: &Path, n: u64, w: u64, base: u64, leaves: &Leaves) -> std::io::Result<()> {
    match bundle_of(leaves, base, n, w) {
        Some(b) => write_file(dir, &tile_path("entries", n, w), &b),
        None => Ok(()),
    }
}

/// The leaves of the log in `dir` as their locations: (segment, offset of the leaf bytes in
/// the segment file, length). Frames are walked by their length alone, CRC and chain not
/// checked ([`super::verify::scan`] does that): a changed byte changes its leaf, so the tree
/// shows it against any checkpoint. The walk stops at a length past the segment's end or
/// bound (a torn tail), and for good at a segment that does not continue the records so far;
/// a segment starting below the count so far (after a break) replaces the leaves from there.
///
/// In a pruned log ([`crate::prune`]) the locations start at the cut: entry `i` is leaf
/// `base + i`, `base` being [`pruned_prefix`]'s tree size.
pub fn leaf_locations(dir: &Path) -> Result<Vec<(u32, u64, u32)>, RecorderError> {
    let (base, first) = match crate::prune::read_manifest(dir)? {
        Some(m) => (m.next_seq, m.first_segment),
        None => (0, 0),
    };
    let mut out = Vec::new();
    for n in segments(dir)?.into_iter().filter(|&n| n >= first) {
        let path = dir.join(segment_name(n));
        let bytes = std::fs::read(&path).map_err(|source| RecorderError::Open {
            path: path.clone(),
            source,
        })?;
        let Ok(h) = SegmentHeader::decode(&bytes) else {
            break;
        };
        if h.start_seq > base + out.len() as u64 || h.start_seq < base {
            break;
        }
        out.truncate((h.start_seq - base) as usize);
        let (head, overhead) = if h.version == VERSION_1 {
            (5, 5 + CHAIN_LEN + 4)
        } else {
            (FRAME_HEADER, FRAME_OVERHEAD)
        };
        let mut off = HEADER_LEN;
        while let Some(b) = bytes.get(off..off + overhead) {
            let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let total = overhead + len as usize;
            if len > h.max_body() || off + total > bytes.len() {
                break;
            }
            if b[4] == TYPE_RECORD {
                let (at, leaf_len) = if h.version == VERSION_1 {
                    (off + 4, 1 + len as usize)
                } else {
                    (off, head + len as usize)
                };
                out.push((n, at as u64, leaf_len as u32));
            }
            off += total;
        }
    }
    Ok(out)
}

/// Reads leaves by location, in order (one segment file open at a time).
pub fn read_leaves(
    dir: &Path,
    locs: &[(u32, u64, u32)],
    mut f: impl FnMut(u64, &[u8]),
) -> Result<(), RecorderError> {
    let mut cur: Option<(u32, Vec<u8>)> = None;
    for (i, &(seg, at, len)) in locs.iter().enumerate() {
        if cur.as_ref().is_none_or(|(s, _)| *s != seg) {
            let path = dir.join(segment_name(seg));
            let bytes = std::fs::read(&path).map_err(|source| RecorderError::Open {
                path: path.clone(),
                source,
            })?;
            cur = Some((seg, bytes));
        }
        if let Some((_, b)) = &cur {
            let leaf = b
                .get(at as usize..at as usize + len as usize)
                .unwrap_or_default();
            f(i as u64, leaf);
        }
    }
    Ok(())
}

/// The tree over the pruned records of a pruned log (their kept hashes, checked against the
/// signed manifest), or the empty tree.
pub fn pruned_prefix(dir: &Path) -> Result<Tree, RecorderError> {
    let Some(m) = crate::prune::read_manifest(dir)? else {
        return Ok(Tree::default());
    };
    let public = crate::key::load_public(dir)?;
    let (_, hashes) =
        crate::prune::check(dir, &m, public.as_ref()).map_err(|what| RecorderError::Corrupt {
            path: dir.join(crate::prune::PRUNED_FILE),
            seq: m.next_seq,
            offset: 0,
            what,
        })?;
    let tree = Tree::from_stored(hashes, m.next_seq);
    if b64(&tree.root()) != m.tree_root {
        return Err(RecorderError::Corrupt {
            path: dir.join(crate::prune::HASHES_FILE),
            seq: m.next_seq,
            offset: 0,
            what: "the kept tree hashes do not give the root the prune manifest signs".into(),
        });
    }
    Ok(tree)
}

/// The tree over the log in `dir`, with leaf `want`'s bytes if asked (`None` for a pruned
/// record: only its hash is kept).
pub fn read_tree(dir: &Path, want: Option<u64>) -> Result<(Tree, Option<Vec<u8>>), RecorderError> {
    let mut tree = pruned_prefix(dir)?;
    let base = tree.size();
    let locs = leaf_locations(dir)?;
    let mut leaf = None;
    read_leaves(dir, &locs, |i, l| {
        tree.push(l);
        if Some(base + i) == want {
            leaf = Some(l.to_vec());
        }
    })?;
    Ok((tree, leaf))
}

/// Rebuilds the tree from the log and rewrites `tile/` from it; returns its frontier and the
/// leaves of the last, partial entry bundle (from the returned base). In a pruned log the
/// bundles start at the first one holding no pruned record. Tiles are written as they fill,
/// so what is held stays bounded by a tile a level (the pruned prefix's kept hashes aside).
pub fn rebuild(dir: &Path) -> Result<(Frontier, u64, Leaves), RecorderError> {
    let pruned = pruned_prefix(dir)?;
    let locs = leaf_locations(dir)?;
    let tiles = dir.join(TILE_DIR);
    let io = |source| RecorderError::Write {
        path: tiles.clone(),
        source,
    };
    match std::fs::remove_dir_all(&tiles) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    std::fs::create_dir(&tiles).map_err(io)?;
    spread_subdirs(&tiles);
    // The pruned records' full tiles, from their kept hashes; the rest as the frontier fills.
    for (l, n, w) in new_tiles(0, pruned.size()) {
        if w == TILE_WIDTH {
            write_file(dir, &tile_path(&l.to_string(), n, w), &pruned.tile(l, n, w)).map_err(io)?;
        }
    }
    let mut tree = Frontier::from_tree(&pruned);
    drop(pruned);
    let mut pending = Leaves::default();
    let mut base = tree.size();
    let mut err = None;
    read_leaves(dir, &locs, |_, l| {
        tree.push(l);
        pending.push(l);
        let size = tree.size();
        if size % TILE_WIDTH == 0 {
            // Full tiles at every level this leaf completed, and its entry bundle.
            for (lvl, n, w) in new_tiles(size - 1, size) {
                if w == TILE_WIDTH {
                    let t = tree.tile(lvl, n, w);
                    if let Err(e) = write_file(dir, &tile_path(&lvl.to_string(), n, w), &t) {
                        err.get_or_insert(e);
                    }
                }
            }
            if let Err(e) = write_bundle(dir, base / TILE_WIDTH, TILE_WIDTH, base, &pending) {
                err.get_or_insert(e);
            }
            base += pending.len() as u64;
            pending = Leaves::default();
            tree.published(size);
        }
    })?;
    if let Some(e) = err {
        return Err(io(e));
    }
    // The partial tiles at the final size, and the last bundle.
    for (l, n, w) in new_tiles(0, tree.size()) {
        if w < TILE_WIDTH {
            write_file(dir, &tile_path(&l.to_string(), n, w), &tree.tile(l, n, w)).map_err(io)?;
        }
    }
    if !pending.is_empty() {
        let w = (base + pending.len() as u64) % TILE_WIDTH;
        write_bundle(dir, base / TILE_WIDTH, w, base, &pending).map_err(io)?;
    }
    Ok((tree, base, pending))
}

/// Parses a C2SP tile path under `tile/` (`<L>/<N>[.p/<W>]`, `L` a number or `entries`).
pub fn parse_tile_path(rel: &str) -> Option<(String, u64, u64)> {
    let parts: Vec<&str> = rel.split('/').collect();
    let (level, rest) = parts.split_first()?;
    let (digits, w) = match rest {
        [n @ .., last, w] if last.ends_with(".p") => {
            let mut d: Vec<&str> = n.to_vec();
            d.push(last.strip_suffix(".p")?);
            (
                d,
                w.parse::<u64>()
                    .ok()
                    .filter(|w| (1..TILE_WIDTH).contains(w))?,
            )
        }
        n => (n.to_vec(), TILE_WIDTH),
    };
    let (last, upper) = digits.split_last()?;
    let mut n = 0u64;
    for d in upper {
        let d = d.strip_prefix('x')?;
        (d.len() == 3).then_some(())?;
        n = n.checked_mul(1000)?.checked_add(d.parse().ok()?)?;
    }
    (last.len() == 3).then_some(())?;
    n = n.checked_mul(1000)?.checked_add(last.parse().ok()?)?;
    Some((level.to_string(), n, w))
}

/// Every file under `dir`, as paths relative to `base`.
pub(crate) fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk(&p, base, out)?;
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Checks every file under `dir/tile` against the tree over the log (and its leaves): a hash
/// tile must hold the tree's hashes, an entry bundle the records' leaves. Returns how many
/// files were checked and a located problem for each that does not match.
pub fn check_tiles(dir: &Path) -> Result<(usize, Vec<String>), RecorderError> {
    let tiles = dir.join(TILE_DIR);
    let mut files = Vec::new();
    if tiles.is_dir() {
        walk(&tiles, &tiles, &mut files).map_err(|source| RecorderError::Open {
            path: tiles.clone(),
            source,
        })?;
    }
    files.sort();
    let locs = leaf_locations(dir)?;
    let mut tree = pruned_prefix(dir)?;
    let base = tree.size();
    let mut bundles: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
    let wanted: Vec<(String, u64, u64)> = files.iter().filter_map(|f| parse_tile_path(f)).collect();
    read_leaves(dir, &locs, |i, l| {
        let i = base + i;
        tree.push(l);
        let n = i / TILE_WIDTH;
        if wanted
            .iter()
            .any(|(lv, bn, w)| lv == "entries" && *bn == n && i < n * TILE_WIDTH + w)
        {
            let b = bundles.entry(n).or_default();
            if let Ok(len) = u16::try_from(l.len()) {
                b.extend_from_slice(&len.to_be_bytes());
                b.extend_from_slice(l);
            }
        }
    })?;
    let mut problems = Vec::new();
    for f in &files {
        let shown = format!("{TILE_DIR}/{f}");
        let Some((level, n, w)) = parse_tile_path(f) else {
            problems.push(format!("{shown}: not a C2SP tile path"));
            continue;
        };
        let data = std::fs::read(tiles.join(f)).map_err(|source| RecorderError::Open {
            path: tiles.join(f),
            source,
        })?;
        if level == "entries" {
            let first = n * TILE_WIDTH;
            if first + w > tree.size() {
                problems.push(format!(
                    "{shown}: entry bundle of records {first}..{} but the log has {} records",
                    first + w,
                    tree.size()
                ));
                continue;
            }
            let mut expect: &[u8] = bundles.get(&n).map(Vec::as_slice).unwrap_or_default();
            let mut got: &[u8] = &data;
            for i in 0..w {
                let take = |b: &mut &[u8]| -> Option<Vec<u8>> {
                    let len = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
                    let e = b.get(2..2 + len)?.to_vec();
                    *b = &b[2 + len..];
                    Some(e)
                };
                let (e, g) = (take(&mut expect), take(&mut got));
                if e != g {
                    problems.push(format!(
                        "{shown}: entry {i} (record {}) is not the record's leaf in the log",
                        first + i
                    ));
                    break;
                }
            }
            continue;
        }
        let Ok(l) = level.parse::<u8>() else {
            problems.push(format!("{shown}: not a C2SP tile path"));
            continue;
        };
        let level_width = 1u64 << (u32::from(l) * u32::from(TILE_HEIGHT)).min(63);
        let covers = (n * TILE_WIDTH + w).saturating_mul(level_width);
        if covers > tree.size() {
            problems.push(format!(
                "{shown}: hash tile covering {covers} records but the log has {}",
                tree.size()
            ));
            continue;
        }
        let expect = tree.tile(l, n, w);
        if data != expect {
            let at = data
                .chunks(HASH_SIZE)
                .zip(expect.chunks(HASH_SIZE))
                .position(|(a, b)| a != b)
                .unwrap_or(data.len().min(expect.len()) / HASH_SIZE);
            let first = (n * TILE_WIDTH + at as u64) * level_width;
            problems.push(format!(
                "{shown}: hash {at} (the subtree of records {first}..{}) is not the log's",
                first + level_width
            ));
        }
    }
    Ok((files.len(), problems))
}

/// The log's origin: read from `dir/origin`, or chosen (`agentos/<hostname>/recorder`) and
/// written there.
pub fn origin(dir: &Path) -> Result<String, RecorderError> {
    let path = dir.join(ORIGIN_FILE);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if signed_note::is_key_name_valid(s) {
            return Ok(s.to_string());
        }
    }
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == '+' || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect::<String>();
    let host = if host.is_empty() {
        "localhost".into()
    } else {
        host
    };
    let o = format!("agentos/{host}/recorder");
    std::fs::write(&path, format!("{o}\n")).map_err(|source| RecorderError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(o)
}

/// The C2SP signed-note verifier key of the recorder's key under `origin`.
pub fn verifier_key(origin: &str, public: &VerifyingKey) -> String {
    signed_note::new_ed25519_verifier_key(origin, public)
}

struct NoteSigner<'a> {
    name: &'a str,
    id: u32,
    key: &'a SigningKey,
}

impl Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// The checkpoint body (C2SP tlog-checkpoint).
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{root}\n")
}

/// A signed checkpoint note for the tree of `size` with `root`.
pub fn sign_checkpoint(
    origin: &str,
    size: u64,
    root: &Hash,
    key: &SigningKey,
) -> Result<Vec<u8>, String> {
    let mut pk = vec![1u8];
    pk.extend_from_slice(key.verifying_key().as_bytes());
    let signer = NoteSigner {
        name: origin,
        id: signed_note::key_id(origin, &pk),
        key,
    };
    let mut note = Note::new(checkpoint_text(origin, size, root).as_bytes(), &[])
        .map_err(|e| format!("checkpoint note: {e}"))?;
    note.add_sigs(&[&signer])
        .map_err(|e| format!("checkpoint note: {e}"))?;
    Ok(note.to_bytes())
}

/// A checkpoint note, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The note as given.
    pub note: String,
}

/// Parses a checkpoint note and verifies its signature by `public` under its origin.
pub fn open_checkpoint(note: &[u8], public: &VerifyingKey) -> Result<SignedCheckpoint, String> {
    let n = Note::from_bytes(note).map_err(|e| format!("not a signed note: {e}"))?;
    let c = tlog_tiles::Checkpoint::from_bytes(n.text())
        .map_err(|e| format!("not a C2SP checkpoint: {e}"))?;
    let vkey = verifier_key(c.origin(), public);
    let v = StandardVerifier::new(&vkey).map_err(|e| format!("verifier key: {e}"))?;
    let list = VerifierList::new(vec![Box::new(v)]);
    n.verify(&list).map_err(|e| match e {
        signed_note::NoteError::UnverifiedNote => format!(
            "no signature by this recorder's key ({}) on it: signed by another key, or for another origin",
            vkey
        ),
        other => format!("signature does not verify: {other}"),
    })?;
    Ok(SignedCheckpoint {
        origin: c.origin().to_string(),
        size: c.size(),
        root: *c.hash(),
        note: String::from_utf8_lossy(note).into_owned(),
    })
}

/// Replaces `dir/checkpoint` atomically ([`replace_file`]).
pub fn write_checkpoint(dir: &Path, note: &[u8]) -> std::io::Result<()> {
    replace_file(dir, CHECKPOINT_FILE, note)
}

/// Replaces `dir/<name>` atomically with `data`: written to `dir/<name>.tmp`, fsynced, then
/// swapped with the old file (`renameat2(RENAME_EXCHANGE)`), so the old one becomes the next
/// `.tmp` and is overwritten in place next time; a plain `rename` where there is no old file
/// or the filesystem cannot swap.
///
/// Replacing thus frees no inode. The recorder replaces `HEAD` and `checkpoint` about once a
/// second under load, and on ext4 without a journal every inode freed in the last few minutes
/// is skipped, one by one, by every later file creation in its block group — the tile files
/// the publisher creates among them paid for each (`recently_deleted`: up to a seventh of a
/// loaded kernel's CPU).
pub(crate) fn replace_file(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let tmp: PathBuf = dir.join(format!("{name}.tmp"));
    let dest = dir.join(name);
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    match renameat_with(CWD, &tmp, CWD, &dest, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            std::fs::rename(&tmp, &dest)
        }
        Err(e) => Err(e.into()),
    }
}

/// Base64 (standard, padded) of a hash, as in checkpoints and proofs.
pub fn b64(h: &Hash) -> String {
    h.to_string()
}

/// Parses a base64 hash.
pub fn parse_hash(s: &str) -> Result<Hash, String> {
    Hash::parse_hash(s).map_err(|e| format!("`{s}` is not a base64 SHA-256 hash: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).unwrap_or_default();
        Hash(b)
    }

    /// RFC 6962 / certificate-transparency-go test vectors: the roots of the trees over the
    /// first n of the eight leaves.
    const LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn rfc6962_roots_proofs_and_tampering() {
        let mut t = Tree::default();
        for (i, l) in LEAVES.iter().enumerate() {
            t.push(l);
            assert_eq!(t.root(), h(ROOTS[i]), "root of {} leaves", i + 1);
        }
        for n in 1..=8u64 {
            for i in 0..n {
                let p = t.prove(n, i).unwrap_or_default();
                let root = t.root_at(n).unwrap_or(tlog_tiles::EMPTY_HASH);
                assert!(check_inclusion(&p, n, root, i, LEAVES[i as usize]));
                assert!(!check_inclusion(&p, n, root, i, b"changed"));
            }
            for old in 1..=n {
                let p = t.prove_consistency(n, old).unwrap_or_default();
                let (nr, or) = (t.root_at(n), t.root_at(old));
                let (Ok(nr), Ok(or)) = (nr, or) else {
                    panic!("roots")
                };
                assert!(check_consistency(&p, n, nr, old, or));
                assert!(old == n || !check_consistency(&p, n, nr, old, nr));
            }
        }
        // The stored hashes are the crate's (Go sumdb's layout), leaf by leaf.
        let mut slow = Tree::default();
        for i in 0..1000u64 {
            let leaf = i.to_le_bytes();
            let mut fast = slow.clone();
            fast.push(&leaf);
            let new = tlog_tiles::stored_hashes(i, &leaf, &slow).unwrap_or_default();
            slow.hashes.extend(new);
            slow.size += 1;
            assert_eq!(fast.hashes, slow.hashes, "leaf {i}");
        }
        // Cutting back and regrowing gives the same tree.
        let mut u = t.clone();
        u.truncate(3);
        assert_eq!(u.root(), h(ROOTS[2]));
        for l in &LEAVES[3..] {
            u.push(l);
        }
        assert_eq!(u.root(), t.root());
    }

    #[test]
    fn tile_paths_and_new_tiles() {
        assert_eq!(
            parse_tile_path("0/x001/x234/067"),
            Some(("0".into(), 1_234_067, 256))
        );
        assert_eq!(
            parse_tile_path("entries/005.p/3"),
            Some(("entries".into(), 5, 3))
        );
        assert_eq!(parse_tile_path("0/5"), None);
        assert_eq!(tile_path("0", 1_234_067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path("entries", 5, 3), "tile/entries/005.p/3");
        assert_eq!(new_tiles(0, 3), vec![(0, 0, 3)]);
        assert_eq!(new_tiles(3, 257), vec![(0, 0, 256), (0, 1, 1), (1, 0, 1)]);
        assert!(new_tiles(5, 5).is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
        /// The publisher's frontier gives the tiles and roots of the whole tree at every
        /// publication, whatever the sizes published at, and starting from any tree (an
        /// open's rebuild, a pruned prefix).
        #[test]
        fn the_frontier_publishes_what_the_whole_tree_would(
            start in 0u64..70_000,
            steps in proptest::collection::vec(1u64..700, 1..6),
        ) {
            let leaf = |i: u64| i.to_le_bytes();
            let mut tree = Tree::default();
            for i in 0..start {
                tree.push(&leaf(i));
            }
            let mut f = Frontier::from_tree(&tree);
            proptest::prop_assert_eq!(f.root(), tree.root());
            let mut published = start;
            for step in steps {
                for i in published..published + step {
                    tree.push(&leaf(i));
                    f.push(&leaf(i));
                }
                let size = published + step;
                proptest::prop_assert_eq!(f.size(), size);
                proptest::prop_assert_eq!(f.root(), tree.root());
                for (l, n, w) in new_tiles(published, size) {
                    proptest::prop_assert_eq!(f.tile(l, n, w), tree.tile(l, n, w), "tile {}/{}/{}", l, n, w);
                }
                f.published(size);
                published = size;
            }
            // What it holds is a tile's worth a level, not the log.
            proptest::prop_assert!(f.rows.iter().all(|r| r.len() < 256));
            proptest::prop_assert!(f.edge.len() <= 64);
        }
    }

    #[test]
    fn leaves_split_drop_truncate_and_bundle_keep_every_leaf_whole() {
        let mut l = Leaves::default();
        let want: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        for w in &want {
            l.push(w);
        }
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            want.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        // The bundle format: a big-endian u16 length before each leaf.
        assert_eq!(l.bundle(1, 2), Some(vec![0, 2, 1, 1, 0, 3, 2, 2, 2]));
        assert_eq!(l.bundle(9, 2), None, "past the leaves held");
        let front = l.split_front(4);
        assert_eq!(front.len(), 4);
        assert_eq!(front.get(3), Some(&want[3][..]));
        assert_eq!(l.get(0), Some(&want[4][..]));
        assert_eq!(l.len(), 6);
        l.truncate(3);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![&want[4][..], &want[5][..], &want[6][..]]
        );
        let mut all = front.clone();
        all.extend(&l);
        assert_eq!(all.len(), 7);
        assert_eq!(all.get(6), Some(&want[6][..]));
        all.drop_front(5);
        assert_eq!(
            all.iter().collect::<Vec<_>>(),
            vec![&want[5][..], &want[6][..]]
        );
        all.drop_front(9);
        assert!(all.is_empty());
        // A leaf over 65535 bytes has no bundle (its bytes stay in the segment).
        let mut big = Leaves::default();
        big.push(&vec![0; 70_000]);
        assert_eq!(big.bundle(0, 1), None);
    }

    #[test]
    fn a_checkpoint_note_signs_and_opens_and_another_key_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let root = h(ROOTS[4]);
        let note = sign_checkpoint("agentos/test/recorder", 5, &root, &key).unwrap_or_default();
        let c = open_checkpoint(&note, &key.verifying_key());
        assert_eq!(
            c.map(|c| (c.size, c.root)),
            Ok((5, root)),
            "{}",
            String::from_utf8_lossy(&note)
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        let e = open_checkpoint(&note, &other.verifying_key());
        assert!(e.is_err_and(|e| e.contains("another key")));
        let mut changed = note.clone();
        changed[22] = b'6';
        assert!(open_checkpoint(&changed, &key.verifying_key()).is_err());
    }
}

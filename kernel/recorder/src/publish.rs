//! The transparency log's publisher: a thread of its own that hashes the records into the
//! Merkle tree and writes the tiles, entry bundles and signed checkpoint notes ([`crate::tlog`]).
//!
//! The writer hands it, with each `HEAD`, the leaves of the records up to that checkpoint —
//! records in the log and fsynced, never rolled back — and the key the checkpoint was made
//! with. The SHA-256 of every leaf, the file creations and the note's signature then run beside
//! the appenders instead of in their path (they cost as much as the append itself).
//!
//! Jobs that queue while it writes are taken together: every leaf is hashed and every full
//! tile written, partial tiles only at the newest size, one note. The queue holds two jobs; a
//! writer that gets further ahead blocks on it (tiles are never skipped, and the leaves held
//! stay bounded). A seal waits for a [`Publisher::barrier`], so it returns with everything
//! published, as before.

use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender};
use ed25519_dalek::SigningKey;

use crate::tlog::{self, Frontier, Leaves, TileFiles};

/// Leaves of the records `[size - leaves.len(), size)` and the checkpoint note to sign for
/// the tree of `size` leaves.
pub(crate) struct Job {
    pub(crate) leaves: Leaves,
    pub(crate) size: u64,
    pub(crate) key: SigningKey,
}

enum Msg {
    Job(Box<Job>),
    /// Answered once everything sent before it is published.
    Barrier(Sender<()>),
}

/// The writer's end of the publisher thread (it ends when every end is dropped).
#[derive(Clone)]
pub(crate) struct Publisher {
    tx: Sender<Msg>,
}

/// The publisher thread's state: the tree's frontier over every leaf it was given (its memory
/// bounded by what is not yet published, not by the log) and the leaves of the entry bundle
/// not yet full.
struct State {
    dir: PathBuf,
    origin: String,
    tree: Frontier,
    /// The tree size whose tiles and note are written.
    published: u64,
    /// The leaves from `bundle_base` (a multiple of 256, or a pruned log's cut) on.
    bundle_base: u64,
    bundle: Leaves,
    files: TileFiles,
}

impl Publisher {
    /// Starts the thread with the tree [`tlog::rebuild`] made at open, whose tiles are written.
    pub(crate) fn start(
        dir: PathBuf,
        origin: String,
        tree: Frontier,
        bundle_base: u64,
        bundle: Leaves,
    ) -> std::io::Result<Publisher> {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let state = State {
            dir,
            origin,
            published: tree.size(),
            tree,
            bundle_base,
            bundle,
            files: TileFiles::default(),
        };
        std::thread::Builder::new()
            .name("recorder-tlog".into())
            .spawn(move || state.run(&rx))?;
        Ok(Publisher { tx })
    }

    /// Queues the jobs (blocking while two are queued already); with `wait`, returns once they
    /// are published.
    pub(crate) fn send(&self, jobs: Vec<Job>, wait: bool) {
        for job in jobs {
            if self.tx.send(Msg::Job(Box::new(job))).is_err() {
                tracing::error!("flight recorder: the transparency log's publisher is gone; tiles and notes wait for the next start");
                return;
            }
        }
        if wait {
            self.barrier();
        }
    }

    /// Returns once everything sent before is published.
    pub(crate) fn barrier(&self) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send(Msg::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

impl State {
    fn run(mut self, rx: &Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            let mut barriers = Vec::new();
            let mut note: Option<(u64, SigningKey)> = None;
            let mut take = |msg| match msg {
                Msg::Job(job) => {
                    self.add(&job.leaves);
                    note = Some((job.size, job.key));
                }
                Msg::Barrier(done) => barriers.push(done),
            };
            take(first);
            while let Ok(msg) = rx.try_recv() {
                take(msg);
            }
            if let Some((size, key)) = note {
                self.publish(size, &key);
            }
            if !barriers.is_empty() {
                self.files.drop_spares();
            }
            for done in barriers {
                let _ = done.send(());
            }
        }
    }

    fn add(&mut self, leaves: &Leaves) {
        for leaf in leaves.iter() {
            self.tree.push(leaf);
        }
        self.bundle.extend(leaves);
    }

    /// Writes the tiles and bundles from the published size to `size`, then the note.
    fn publish(&mut self, size: u64, key: &SigningKey) {
        if size != self.tree.size() || size < self.published {
            tracing::error!(
                size,
                tree = self.tree.size(),
                published = self.published,
                "flight recorder: a checkpoint to publish does not match the transparency log's tree; not published (the next start rebuilds it)"
            );
            return;
        }
        let mut p = tlog::tiles_for(
            &self.tree,
            (self.published, size),
            self.bundle_base,
            &self.bundle,
        );
        match tlog::sign_checkpoint(&self.origin, size, &self.tree.root(), key) {
            Ok(note) => p.note = Some(note),
            Err(e) => {
                tracing::error!(error = %e, "flight recorder: a checkpoint note does not encode")
            }
        }
        if let Err(e) = self.files.publish(&self.dir, &p) {
            let _ = std::fs::remove_file(self.dir.join("checkpoint.tmp"));
            tracing::warn!(error = %e, "flight recorder: cannot write recorder/tile or recorder/checkpoint; the next checkpoint writes a newer one, the next start rebuilds the tiles");
        }
        self.published = size;
        self.tree.published(size);
        let keep_from = (size / 256 * 256).max(self.bundle_base);
        self.bundle
            .drop_front(keep_from.saturating_sub(self.bundle_base) as usize);
        self.bundle_base = keep_from;
    }
}

//! # agentos-vfs — the virtual file system
//!
//! Each agent sees its own tree (DESIGN §6); this crate owns path normalization and the
//! backends behind that tree: [`normalize`], the mount table [`resolve`], the in-memory
//! backend [`MemFs`] (`/mem/working`) and the persistent [`Store`] (`/mem/episodic`,
//! `/mem/semantic`). The host-directory backend (`/workspace`) lives in the kernel, whose
//! `sys` module owns the `openat2` it is built on.
//!
//! ## Modules
//! - `path` — [`normalize`]: the one place paths are made canonical, before the policy or a
//!   backend sees them.
//! - `mem` — [`MemFs`]: a quota-bound in-memory tree.
//! - `store` — [`Store`]: the redb-backed persistent memory of every agent.
//! - `tree` — [`resolve`]: which mount of the per-agent tree a path falls in.
//!
//! ## Invariants owned here
//! - A normalized path is absolute, has no `.`/`..`/empty components and no trailing slash;
//!   `..` never climbs above `/`, so a backend rooted anywhere cannot be escaped by name.
//! - [`MemFs`] never holds more than its `max_bytes` of file data and metadata (each file's
//!   path and [`FILE_OVERHEAD`]) or `max_files` files; a write that would exceed a quota
//!   changes nothing.
//! - Every path is bounded by PATH_MAX and NAME_MAX ([`agentos_syscalls::limits`]) in
//!   [`normalize`], before any work; every operation is linear in the path's length.
//!
//! ## Never
//! - No host I/O in `MemFs`, no clock reads (time is handed in with [`MemFs::set_now`]),
//!   no `unsafe`. Errors are the ABI's [`agentos_syscalls::Errno`].
#![forbid(unsafe_code)]

mod mem;
mod path;
mod store;
mod tree;

pub use mem::{MemFs, FILE_OVERHEAD};
pub use path::{check_bounds, normalize};
pub use store::{Store, StoreError};
pub use tree::{resolve, Mount, MOUNTS};

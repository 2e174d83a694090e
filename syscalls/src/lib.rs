//! The agentos syscall ABI — the single source of truth for every byte that crosses an
//! agent's socket or the operator's control socket.
//!
//! Modules:
//! - [`abi`]: the handshake (`Hello` → `Welcome`), [`Request`]/[`Response`], the [`Syscall`]
//!   enum, its [`Reply`] values and kernel-pushed [`Event`]s, wrapped in [`AgentFrame`] (agent →
//!   kernel) and [`KernelFrame`] (kernel → agent).
//! - [`errno`]: the typed [`Errno`] with its stable POSIX mapping.
//! - [`signal`]: the agentos signal table (DESIGN §7).
//! - [`frame`]: the `u32` little-endian length + postcard body codec; a frame's length is
//!   checked against the limit before anything is allocated for it.
//! - [`control`]: the `agentctl` ↔ kernel control protocol.
//! - [`limits`]: the bounds on agent-controlled sizes (PATH_MAX, NAME_MAX, argv, strings),
//!   checked by the kernel before any work starts.
//!
//! Invariants this crate owns: the wire format is postcard; enums are append-only (a new
//! variant goes at the end, and `ABI_CHANGES.md` says what breaks); every type that crosses a
//! socket has a golden byte vector under `tests/golden/`. This crate never does I/O beyond the
//! reader or writer it is handed.
#![forbid(unsafe_code)]

pub mod abi;
mod bounded;
pub mod control;
pub mod errno;
pub mod frame;
pub mod limits;
pub mod signal;

pub use abi::*;
pub use errno::Errno;
pub use frame::{FrameDecoder, FrameError};
pub use signal::Signal;

/// The ABI version spoken by this crate. Bumped on any change an older peer cannot decode.
pub const ABI_VERSION: u16 = 4;

/// The descriptor an agent finds its kernel socket on.
pub const AGENT_FD: i32 = 3;

/// The environment variable that announces [`AGENT_FD`] to the agent.
pub const AGENT_FD_ENV: &str = "AGENTOS_FD";

/// The environment variable that carries the agent's id (informational; identity is the socket).
pub const AGENT_ID_ENV: &str = "AGENTOS_AGENT_ID";

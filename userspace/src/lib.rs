//! agentos ring 3: what runs on the agent's side of the kernel socket.
//!
//! - [`sdk`]: the client library agents link — a blocking [`sdk::Client`] and an async
//!   [`sdk::AsyncClient`] that connect over `AGENTOS_FD`, with one typed method per syscall and
//!   a signal handler API.
//! - [`launch`]: the sandbox launcher behind the `agentos-launch` binary. The kernel execs it
//!   with a [`launch::JailSpec`]; it builds the jail in a fixed order and `execve`s the agent.
//! - `sys`: the one module allowed `unsafe` — every raw Linux call, each with a `// SAFETY:`
//!   line.
//!
//! Invariants: nothing spawns unjailed — the launcher either builds every required layer or
//! exits with [`launch::EXIT_SANDBOX_FAILED`] before the agent program runs. The SDK never
//! trusts the kernel's frames beyond the limits it was told in the handshake.
#![deny(unsafe_code)]

pub mod launch;
pub mod sdk;
#[allow(unsafe_code)]
pub(crate) mod sys;

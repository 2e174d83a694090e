//! agentos ring 3, the kernel's side of it: the sandbox launcher that jails every agent.
//! Agents do not link this crate; they link the SDK, `agentos-sdk` (`userspace/sdk/`), which carries
//! none of the launcher's dependencies (landlock, seccomp, capabilities).
//!
//! - [`launch`]: the sandbox launcher behind the `agentos-launch` binary. The kernel execs it
//!   with a [`launch::JailSpec`]; it builds the jail in a fixed order and `execve`s the agent.
//! - `sys`: the one module allowed `unsafe` — every raw Linux call, each with a `// SAFETY:`
//!   line.
//!
//! Invariants: nothing spawns unjailed — the launcher either builds every required layer or
//! exits with [`launch::EXIT_SANDBOX_FAILED`] before the agent program runs.
#![deny(unsafe_code)]

pub mod launch;
#[allow(unsafe_code)]
pub(crate) mod sys;

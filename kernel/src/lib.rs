//! agentos ring 0: the kernel process.
//!
//! One kernel owns a state dir. It runs every agent as a jailed child (through the
//! `agentos-launch` launcher), serves the agent's syscalls over a private socketpair, checks
//! each one against the agent's policy, writes it to the flight recorder and only then
//! answers. Operators reach it through the control socket (`STATE_DIR/kernel.sock`).
//!
//! Modules:
//! - [`config`]: kernel configuration and the state dir layout.
//! - [`options`]: the kernel's flags ([`options::KernelOptions`]), the one source of the
//!   daemon's and `agentctl`'s kernel flags and the one builder of a [`Config`].
//! - [`kernel`]: [`Kernel`] — start, spawn, signal, wait, shutdown: the operations
//!   `agentctl` drives; [`daemon`]: the `agentos-kernel` binary's flags and main.
//! - `state`: `KernelInner`, the state the kernel's tasks share, built only of the core's
//!   types below (so no module cycle runs through it).
//! - `agent`: one agent's record — counters, policy, memory, logs; its lifecycle
//!   (`agent/lifecycle.rs`, the one owner of state, pid and exit) and the agent table
//!   (`agent/table.rs`).
//! - `spawner`: the spawner thread, the only thread that forks; `spawn`: the spawn flow
//!   (prepare → launch → register → start) and the reaper.
//! - `server`: the per-agent syscall server in layers (`connection`, `handshake`, `judge`,
//!   `approval`, `respond`, `replay`); `server/calls/<syscall>.rs`, one file per syscall
//!   owning its classification and its performance.
//! - `signals`: the signal dispatcher (DESIGN §7), over a process-control trait (`Procs`).
//! - `tree`: the per-agent VFS tree (DESIGN §6): mounts, quota, descriptors, checkpoints;
//!   the workspace serves only regular files and directories.
//! - [`history`]: what the kernel keeps on disk per agent (`agents/<id>/agent.json`, log,
//!   checkpoints), read by `agentctl` without a kernel (`logs`, `ps -a`, `memory`,
//!   `checkpoints`); forgetting ended agents (`rm`, `prune`) never touches the recorder.
//! - [`hostio`]: the bounded pool host file work runs on (kernel-wide and per-agent slots).
//! - `policy`: the swappable per-agent policy slot and the composition of an agent's policy
//!   with the kernel's base policy.
//! - [`pysdk`]: the Python SDK embedded in the kernel, written read-only for agents to import.
//! - [`nodesdk`]: the TypeScript/JavaScript SDK, likewise, with the preload that lets `node`
//!   agents `import 'agentos'`.
//! - [`ipc`]: agent-to-agent messages — bounded FIFO inboxes, `Send`/`Recv`, the `/ipc/inbox`
//!   view.
//! - [`providers`]: the tool providers `Call` is routed to (`--provider`).
//! - [`mcp`]: the MCP tool servers (`--mcp`), run per agent in tool jails, spoken to with
//!   `rmcp`; `ListTools` and `Call` of `SERVER/TOOL`.
//! - `tools`: running the tools behind `Exec` and `Call` in jails of their own.
//! - `jail_spec`: the one builder of the jail specs handed to the launcher, an agent's and
//!   its tools' (what every jail holds, what differs by role).
//! - `tool_view`: a tool's view of the workspace, from the agent's `file_read`/`file_write`
//!   rules (what it may read is shown, where every write is allowed is writable).
//! - `audit`: the `Audit` capability — what the kernel's parts need of the flight
//!   recorder (`record`, `record_async`, `admit`), implemented by the recorder and, in tests,
//!   by a double that keeps the events in memory.
//! - `approvals`: the queue of calls parked for operator approval, bounded per agent and
//!   listed in fair, bounded pages, each with its agent's name and a preview of its payload.
//! - `denials`: an agent's refusals by kind (policy refusals, violations a permissive mode
//!   let through, the sandbox's refusals) for `run`'s and `inspect`'s summary, and the notice
//!   an agent's output gets when the sandbox refuses it a network socket.
//! - `control`: the control socket server.
//! - [`recorder`]: the hash-chained, signed flight recorder (writer thread, recovery, verify):
//!   the `agentos-recorder` crate, re-exported here so `agentos_kernel::recorder::…` and
//!   `crate::recorder::…` name it.
//! - [`replay`]: what-if replay of a recorded run against another policy, and re-runs
//!   ([`replay::run`]) answered from the recording (the syscall server's replay mode).
//! - `validate`: every agent-controlled size of a call checked against its bound
//!   (`agentos_syscalls::limits`) before any other work starts.
//! - `util`: the small helpers every module shares (`now_ms`, `lock`, `control_error`,
//!   `syscall_name`); it imports nothing from the rest of the crate.
//! - `error`: the kernel's errors, and `Fault`, the one mapping from internal failures to the
//!   `Errno` an agent sees.
//! - `sys`: the one module of this crate allowed `unsafe` (descriptor plumbing between fork
//!   and exec) and the `/proc` process-tree walk.
//!
//! Invariants owned here: a syscall is recorded before it is answered; an agent is never
//! started without the launcher (so never unjailed); the kernel never jails a child between
//! `fork` and `exec` itself; a kernel that dies takes its agents with it (the launcher's
//! parent-death signal, set relative to the spawner thread, which lives as long as the
//! process); an agent's failure never takes the kernel down; a `requires_approval` call is
//! performed only after an operator approved that one request, and each call is judged by one
//! whole snapshot of its agent's policy; an agent's file syscall never does host I/O on a
//! runtime worker (it runs on the [`hostio`] pool, within its agent's share).
#![deny(unsafe_code)]

mod agent;
mod approvals;
mod audit;
pub mod config;
mod control;
pub mod daemon;
mod denials;
mod error;
mod exposition;
pub mod history;
pub mod hooks;
pub mod hostio;
pub mod ipc;
mod jail_spec;
pub mod kernel;
pub mod mcp;
mod metrics;
pub mod nodesdk;
pub mod options;
mod policy;
pub mod providers;
pub mod pysdk;
pub mod replay;
mod sandbox;
mod sandbox_access;
mod sandbox_limits;
mod server;
mod signals;
mod spawn;
mod spawner;
mod state;
#[allow(unsafe_code)]
mod sys;
mod tool_view;
mod tools;
pub mod traces;
mod tree;
mod util;
mod validate;
pub mod witnesses;

pub use agentos_recorder as recorder;
pub use config::Config;
pub use control::LogFollower;
pub use error::KernelError;
pub use kernel::Kernel;
pub use replay::run::Performer;

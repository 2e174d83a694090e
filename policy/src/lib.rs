//! # agentos-policy — the policy engine
//!
//! Reads an agent's `.agents/security.md` (the Agent OS Security Specification v1.0 plus
//! agentos' documented extensions, see `policy/README.md`), validates it with exact
//! positions, compiles it, and decides requests against it.
//!
//! ## Modules
//! - `source` — finds the YAML in the Markdown (front matter, ```` ```yaml ```` blocks, or
//!   the whole file) and maps YAML positions back to `.md` lines and columns.
//! - `yaml` — a positioned YAML tree built with serde-saphyr's `Spanned`.
//! - `schema` — validation against the spec (unknown keys, types, values, "did you mean")
//!   and compilation of globs and regexes.
//! - `engine` — [`Policy`], [`Request`], [`Decision`]: the compiled rule set and `decide`.
//! - `index` — which rules `decide` checks: per action, then each rule filed under its
//!   `paths` prefixes, its programs (exact or directory) or its hosts (exact or `*.` suffix);
//!   the action's nearest allow rules for a default deny's reason.
//! - `explain` — [`Policy::explain`]: every rule's verdict on one request ([`Explanation`]).
//! - `subtree` — [`Policy::allows_all_beneath`], [`Policy::may_allow_beneath`]: conservative
//!   answers for every path beneath a directory at once (a tool's view of the workspace).
//! - `lint` — [`Policy::lint`]: [`Warning`]s about valid but suspicious rules (never
//!   matching, shadowed, duplicate, approval with dry run, 1/day rates, unknown actions,
//!   programs that run programs without an argument constraint: [`RUNNERS`]).
//! - [`propose`] — the smallest strict policy that allows what a recorded run did
//!   (`agentctl policy suggest`): paths generalised within a mount, programs with their
//!   arguments, hosts, peers; checked against every observed call.
//! - [`templates`] — the spec's strict, permissive and audit templates, verbatim.
//! - `rate` — [`Rate`] and the per-agent [`RateLimiter`] token buckets.
//! - `cache` — [`PolicyCache`]: the policies parsed last, by path and text (a fleet spawned
//!   under one file parses it once).
//! - `error` — [`PolicyError`] and its [`Diagnostic`] (file:line:col, code frame, help).
//!
//! ## Invariants owned here
//! - **Fail closed.** No matching allow rule → deny; any matching deny rule → deny (deny
//!   overrides, rule order never matters); a rule that cannot be evaluated on a request
//!   (e.g. a `hosts` rule on a resource with no host) never allows, and a deny rule that
//!   cannot be evaluated denies.
//! - **Refuse bad files.** Any unknown key, unknown signal, bad rate, glob, regex, size or
//!   type is an error naming the file, line and column in the `.md` file.
//! - **Pure decisions.** [`Policy::decide`] reads no clock, no environment and no global
//!   state; a recorded request re-decides identically.
//! - **The index changes nothing.** [`Policy::decide`] checks only the rules the index
//!   names; it decides exactly as the plain loop `Policy::decide_unindexed` (property-tested).
//!
//! ## Never
//! - No I/O beyond [`Policy::load`] reading the one file it is handed; no `unsafe`.
//! - Never applies `kernel.mode`, approvals or rate limits itself: it reports them in the
//!   [`Decision`] and the kernel enforces them.
#![forbid(unsafe_code)]

mod cache;
mod engine;
mod error;
mod explain;
mod index;
mod lint;
pub mod propose;
mod rate;
mod schema;
mod source;
mod subtree;
mod suggest;
pub mod templates;
mod yaml;

pub use cache::PolicyCache;
pub use engine::{Access, Decision, Policy, Request, RuleRef};
pub use error::{Diagnostic, PolicyError};
pub use explain::{Explanation, Outcome, RuleCheck};
pub use lint::{Exporting, Runs, Warning, WarningKind, RUNNERS};
pub use rate::{Period, Rate, RateLimiter};
pub use schema::{is_known_action, unknown_action, KNOWN_ACTIONS};
pub use source::Origin;

/// `kernel.mode`: how the kernel treats a violation (applied by the kernel, not by `decide`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A violation is refused and the agent gets SIGPOLICY.
    Strict,
    /// A violation is allowed and recorded.
    Permissive,
    /// Everything is allowed and recorded.
    Audit,
}

/// A rule's `effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// A rule's `mode`: `read_only` admits only [`Access::Read`]; `read_write` (or no mode)
/// admits both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleMode {
    ReadOnly,
    ReadWrite,
}

/// A rule's `constraints`, as written (the compiled matchers live in the [`Rule`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    /// Globs the resource path must match (one of).
    pub paths: Vec<String>,
    /// Programs (first word of the command line) allowed, exact or glob.
    pub commands: Vec<String>,
    /// MCP tools (`SERVER/TOOL`, the first word of an `mcp_tool` resource), exact or glob
    /// (`*` stays within the server or the tool name).
    pub tools: Vec<String>,
    /// Globs every argument of the program (argv\[1..\]) must match one of (`code_execution`).
    pub args: Vec<String>,
    /// Globs no argument of the program may match (`code_execution`): a limit, like
    /// `deny_patterns`.
    pub deny_args: Vec<String>,
    /// Hosts, lowercased: `api.example.com`, `*.example.com` or `*`.
    pub hosts: Vec<String>,
    /// Ports a `network` connection may reach, as inclusive ranges (`443` is `(443, 443)`).
    pub ports: Vec<(u16, u16)>,
    /// Agent ids or names.
    pub peers: Vec<String>,
    /// Largest payload in bytes.
    pub max_bytes: Option<u64>,
    /// Regexes that forbid a resource.
    pub deny_patterns: Vec<String>,
    /// Ask the kernel to log matching calls.
    pub log: bool,
    /// Ask the kernel to decide and record but not perform matching calls.
    pub dry_run: bool,
}

/// One compiled rule of `policies:`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Position in `policies:` (0-based), also the key of its rate-limit bucket.
    pub index: usize,
    /// `name`, or `policies[N]`.
    pub id: String,
    /// Line of the rule in the `.md` file.
    pub line: u32,
    /// The action, or `*` for every action.
    pub action: String,
    pub effect: Effect,
    pub mode: Option<RuleMode>,
    pub requires_approval: bool,
    pub rate_limit: Option<Rate>,
    pub constraints: Constraints,
    pub(crate) matchers: engine::Matchers,
}

/// `observability:`. `flight_recorder: false` cannot turn the recorder off (DESIGN §1.3);
/// it is kept for spec compatibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observability {
    pub metrics: bool,
    pub traces: bool,
    pub flight_recorder: bool,
}

impl Default for Observability {
    fn default() -> Self {
        Observability {
            metrics: false,
            traces: false,
            flight_recorder: true,
        }
    }
}

/// `sandbox.limits:` — each `None` leaves the kernel's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of address space (RLIMIT_AS).
    pub address_space: Option<u64>,
    /// Processes/threads (RLIMIT_NPROC in the agent's namespace).
    pub processes: Option<u64>,
    /// Open descriptors (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
    /// CPU seconds (RLIMIT_CPU).
    pub cpu_seconds: Option<u64>,
    /// Largest file the agent may write, bytes (RLIMIT_FSIZE).
    pub file_size: Option<u64>,
    /// Wall-clock lifetime of the agent, seconds.
    pub wall_time_seconds: Option<u64>,
    /// Memory the agent's processes may use together, bytes (its memory cgroup, where the
    /// host gives one; the kernel's default otherwise).
    pub memory: Option<u64>,
    /// CPU quota, in thousandths of a CPU (`cpu: 0.5` → 500): the agent's cpu cgroup, where
    /// the host gives one (one CPU by default).
    pub cpu_millis: Option<u64>,
    /// Bytes the agent's scratch directory may hold together (its tmpfs; the kernel's
    /// `--scratch-bytes` by default).
    pub scratch: Option<u64>,
}

/// `sandbox:` — extra jail settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Extra host paths the agent may read (absolute).
    pub read_only: Vec<String>,
    pub limits: Limits,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_args;
#[cfg(test)]
mod tests_index;
#[cfg(test)]
mod tests_network;
#[cfg(test)]
mod tests_tools;

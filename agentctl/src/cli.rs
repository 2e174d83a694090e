//! The command line.

use std::path::PathBuf;

use agentos_kernel::options::KernelOptions;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// agentctl — drive an agentos kernel: run sandboxed agents under a policy and control them.
///
/// Quick start: `agentctl run --policy examples/hello-agent/.agents/security.md -- ./target/release/hello-agent`
/// runs one agent under an ephemeral kernel. For long-lived agents, `agentctl kernel start`,
/// then `agentctl spawn`, `ps`, `logs`, `signal`, `wait`.
#[derive(Debug, Parser)]
#[command(name = "agentctl", version, about, long_about)]
pub struct Cli {
    /// The kernel's state dir [default: /var/lib/agentos as root, $XDG_STATE_HOME/agentos otherwise].
    #[arg(long, global = true, env = "AGENTOS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start, stop or query the kernel daemon.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Run one agent under an ephemeral kernel, stream its output, print a summary and exit
    /// with the agent's code.
    Run(Box<RunArgs>),
    /// Start an agent on the running kernel and print its id.
    Spawn(SpawnArgs),
    /// List agents.
    Ps {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show everything the kernel knows about one agent (including its sandbox report).
    Inspect {
        /// Agent id or name.
        agent: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an agent's output (stdout and stderr, in arrival order). On a terminal, control
    /// characters other than newline and tab are shown escaped (`\x1b`, `\u{202e}`), so the
    /// agent cannot rewrite the screen; piped or redirected, the bytes are written as they
    /// are.
    Logs {
        /// Agent id or name.
        agent: String,
        /// Keep printing until the agent ends.
        #[arg(short, long)]
        follow: bool,
        /// Write the agent's bytes unescaped even to a terminal.
        #[arg(long)]
        raw: bool,
    },
    /// Wait for an agent to end; exit with its code.
    Wait {
        /// Agent id or name.
        agent: String,
        /// Print the final row as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a signal: SIGINT 2, SIGKILL 9, SIGUSR1 10, SIGTERM 15, SIGCONT 18, SIGSTOP 19,
    /// SIGPOLICY 64, SIGTRUST 65 (name, short name or number).
    Signal {
        /// Agent id or name.
        agent: String,
        /// Signal name or number, e.g. SIGTERM, term, 15.
        signal: String,
    },
    /// SIGKILL: end the agent's whole process tree now.
    Kill {
        /// Agent id or name.
        agent: String,
    },
    /// SIGSTOP: freeze the agent's process tree; its syscalls park.
    Stop {
        /// Agent id or name.
        agent: String,
    },
    /// SIGCONT: resume a stopped agent; parked syscalls continue.
    Cont {
        /// Agent id or name.
        agent: String,
    },
    /// List calls waiting for operator approval (rules with `requires_approval: true`), one
    /// page at a time. Agents share a page round-robin, so one agent's many requests never
    /// hide another's; under the table, each agent's count says how many of its calls are
    /// shown and how to list the rest. Strings longer than 512 bytes are cut (`…(N bytes)`);
    /// control characters are shown escaped.
    Approvals {
        /// At most this many rows (up to 500).
        #[arg(long, default_value_t = agentos_syscalls::control::DEFAULT_APPROVALS_PAGE)]
        limit: u32,
        /// Only calls with an approval id greater than ID (the next page).
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
        /// Only this agent's calls (by id).
        #[arg(long, value_name = "ID")]
        agent: Option<u64>,
        /// Print the page's rows as a JSON array (what is not on the page is said on
        /// stderr).
        #[arg(long)]
        json: bool,
    },
    /// Approve a waiting call: the kernel performs it and answers the agent.
    Approve {
        /// Approval id, from `agentctl approvals`.
        id: u64,
    },
    /// Deny a waiting call: the agent gets ApprovalDenied.
    Deny {
        /// Approval id, from `agentctl approvals`.
        id: u64,
    },
    /// Write, check and explain `.agents/security.md` policies; reload a running agent's.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Read the flight recorder (STATE_DIR/recorder) directly; no kernel needed.
    #[command(subcommand)]
    Recorder(RecorderCommand),
    /// Replay a recorded run (the log must verify).
    #[command(subcommand)]
    Replay(ReplayCommand),
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Re-decide every recorded syscall against another policy and list each decision that
    /// would change (rate limits and the base policy are not re-applied).
    WhatIf {
        /// The policy to judge the recorded calls with.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Only this agent's calls.
        #[arg(long)]
        agent: Option<u64>,
        /// How many changed calls to show per kind of change.
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Print JSON (every change).
        #[arg(long)]
        json: bool,
    },
    /// Start PROGRAM again in a real sandbox on an ephemeral replay kernel that answers each
    /// syscall with the recorded result of agent ID's call of the same request id, performing
    /// and judging nothing; stop at the first divergence (a call the recording lacks, other
    /// parameters, ending early or late, another exit code) and show the expected and the
    /// actual call side by side. Exit 0 when the re-run matches, 1 when it diverges. The
    /// recorded log is only read; the replay kernel logs the replayed calls in its own state
    /// dir (a temporary one, removed afterwards, unless --replay-state-dir).
    Run(ReplayRunArgs),
}

#[derive(Debug, Args)]
pub struct ReplayRunArgs {
    /// The recorded agent whose calls answer the re-run.
    #[arg(long)]
    pub agent: u64,
    /// The policy the re-run is spawned under (only its `sandbox:` section matters: nothing
    /// is judged) [default: the recorded agent's policy file].
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// A host directory the agent sees as /workspace.
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Extra environment variable for the agent (repeatable; the recording does not hold
    /// the original environment).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Keep the replay kernel's state dir (its own recorder logs every replayed call) here
    /// instead of a temporary dir; must not be the recorded state dir.
    #[arg(long, value_name = "DIR")]
    pub replay_state_dir: Option<PathBuf>,
    /// Run the re-run even when a sandbox layer is missing on this host.
    #[arg(long)]
    pub allow_degraded_sandbox: bool,
    /// Print the report as JSON (one object, the last line on stderr).
    #[arg(long)]
    pub json: bool,
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "PROGRAM ARGS")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RecorderCommand {
    /// Verify chain, sequence, segments, checkpoint signatures and HEAD; name the first bad
    /// record. Exit 0 ok, 1 tampered, 2 truncated (shorter than the signed HEAD), 3 only an
    /// unsealed tail (records after the last checkpoint: normal while a kernel runs).
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print records, one line each: the event's JSON cut to 160 characters, control
    /// characters escaped. Nothing is skipped: another agent's flood cannot hide an agent's
    /// records from `--agent ID` (the kernel's id for the connection; an agent cannot choose
    /// it).
    Show {
        /// Only this agent's records.
        #[arg(long)]
        agent: Option<u64>,
        /// Only records from here on: a sequence number (42), a duration before now (90s,
        /// 10m, 2h, 1d, 1h30m) or an RFC 3339 time (2026-11-25T14:00:00Z, or a date).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print the last records; with -f keep printing new ones (polls every 200 ms). Lines as
    /// for `show`; `--agent ID` counts only that agent's records, so another agent's flood
    /// cannot push them out of the last N.
    Tail {
        /// Keep following the log.
        #[arg(short, long)]
        follow: bool,
        /// How many records to print first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Only this agent's records.
        #[arg(long)]
        agent: Option<u64>,
        /// Only records from here on: a sequence number, a duration before now (10m, 2h) or
        /// an RFC 3339 time (as for `show`).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Write every record to stdout.
    Export {
        /// Output format (only `jsonl`: one JSON object per record).
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Replace a running agent's policy with FILE (atomically; a file that does not load
    /// changes nothing). Recorded with the old and new digests.
    Reload {
        /// Agent id or name.
        agent: String,
        /// The new `.agents/security.md`.
        file: PathBuf,
    },
    /// Write a policy from one of the spec's templates (a Markdown page with the YAML in a
    /// fenced block).
    Init(PolicyInitArgs),
    /// Check a policy: errors (exit 1) and warnings about rules that never match, are
    /// shadowed by a deny rule, duplicate another, and more (exit 0).
    Lint(PolicyLintArgs),
    /// Show how one call would be decided: every rule of its action, matched or why not, and
    /// the decision. Exits 0 when allowed, 3 when denied.
    Explain(PolicyExplainArgs),
}

/// The templates of the Agent OS security spec v1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TemplateName {
    /// Production: reads allowed, writes and email need approval, no code execution.
    Strict,
    /// Development: everything allowed and logged; violations recorded.
    Permissive,
    /// Testing: everything allowed, logged and dry-run.
    Audit,
}

#[derive(Debug, Args)]
pub struct PolicyInitArgs {
    /// Which template.
    #[arg(long, value_enum)]
    pub template: TemplateName,
    /// Where to write it.
    #[arg(long, short, default_value = ".agents/security.md")]
    pub output: PathBuf,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PolicyLintArgs {
    /// The policy file.
    pub file: PathBuf,
    /// Exit 1 when there are warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PolicyExplainArgs {
    /// The policy file (or --agent).
    #[arg(required_unless_present = "agent", conflicts_with = "agent")]
    pub file: Option<PathBuf>,
    /// Use the policy a running agent was spawned with (id or name), after checking the file
    /// has not changed since.
    #[arg(long)]
    pub agent: Option<String>,
    /// The action, e.g. file_write, api_call, code_execution.
    #[arg(long)]
    pub action: String,
    /// The resource: a VFS path, a URL or host, a command line, or an agent id.
    #[arg(long)]
    pub resource: String,
    /// The payload size in bytes (checked against max_bytes).
    #[arg(long, default_value_t = 0)]
    pub bytes: u64,
    /// The call writes (read_only rules do not admit it).
    #[arg(long)]
    pub write: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Start the kernel daemon; returns once it answers.
    Start(Box<KernelStartArgs>),
    /// Stop the kernel gracefully (SIGTERM to agents, SIGKILL after the grace period).
    Stop,
    /// Show the kernel's state.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct KernelStartArgs {
    /// Stay attached: run the kernel in this terminal, logging to stderr.
    #[arg(long)]
    pub foreground: bool,
    #[command(flatten)]
    pub kernel: KernelOptions,
}

#[derive(Debug, Args, Clone)]
pub struct AgentSpec {
    /// A name to refer to the agent by (instead of its id).
    #[arg(long)]
    pub name: Option<String>,
    /// The agent's policy [default: ./.agents/security.md].
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// A host directory the agent sees as /workspace.
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Start with `/mem/working` restored from a checkpoint of agent ID: `ID:N` for
    /// checkpoint N, `ID` for its latest.
    #[arg(long, value_name = "ID[:N]")]
    pub restore: Option<String>,
    /// Extra environment variable for the agent (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "PROGRAM ARGS")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    #[command(flatten)]
    pub spec: AgentSpec,
    /// Print the new agent's row as JSON instead of its id.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: AgentSpec,
    #[command(flatten)]
    pub kernel: KernelOptions,
    /// Print the summary as JSON on stderr.
    #[arg(long)]
    pub json: bool,
    /// Write the agent's output unescaped even to a terminal (by default a terminal gets
    /// its control characters, other than newline and tab, escaped; a pipe gets them raw).
    #[arg(long)]
    pub raw: bool,
}

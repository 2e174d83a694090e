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
    /// List agents (live ones; -a for all, --state/--name to filter).
    ///
    /// By default the live agents, and a line on stderr saying how many ended ones `-a` would
    /// add. Agents of earlier kernels on this state dir are listed from their records on disk
    /// (`STATE_DIR/agents/<id>/agent.json`); without a kernel, `-a` still lists them.
    Ps(PsArgs),
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
    ///
    /// Needs no kernel: an agent the running kernel does not know (or any agent, when
    /// none runs) is read from `STATE_DIR/agents/<id>/output.log`.
    Logs {
        /// Agent id or name.
        agent: String,
        /// Keep printing until the agent ends. Only a live agent has more to come, and an
        /// agent lives only while its kernel does: from disk, the log is printed whole and
        /// the command ends.
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
    /// page at a time: the agent (name and id), the action, the resource, how many bytes the
    /// call would write or send, and under the row an escaped preview of those bytes with
    /// their blake3. Agents share a page round-robin, so one agent's many requests never
    /// hide another's; under the table, each agent's count says how many of its calls are
    /// shown and how to list the rest. Strings longer than 512 bytes are cut (`…(N bytes)`);
    /// control characters are shown escaped. `-f` waits for new ones.
    Approvals {
        /// At most this many rows (up to 500).
        #[arg(long, default_value_t = agentos_syscalls::control::DEFAULT_APPROVALS_PAGE)]
        limit: u32,
        /// Only calls with an approval id greater than ID (the next page).
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
        /// Only this agent's calls (id or name).
        #[arg(long, value_name = "AGENT")]
        agent: Option<String>,
        /// Print the page's rows as a JSON array (what is not on the page is said on
        /// stderr); with `-f`, one JSON object per line per new call.
        #[arg(long)]
        json: bool,
        /// Keep watching: print each call parked from now on once, as it arrives (the ones
        /// already waiting first), until Ctrl-C or the kernel stops.
        #[arg(short = 'f', long)]
        follow: bool,
        /// With `-f`: how often to ask the kernel, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 500, requires = "follow")]
        interval_ms: u64,
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
    /// Forget ended agents (never the flight recorder).
    ///
    /// Removes their row in `ps -a` and their dir under STATE_DIR/agents/ (the output log and the working-memory checkpoints). A live agent is refused (nothing is
    /// removed). Never touched: the flight recorder (append-only evidence: its records of the
    /// agent stay and still verify) and the persistent memory of a named agent (kept for the
    /// next agent of that name). Forgotten ids are never given again.
    Rm {
        /// Agent ids or names (a name means its newest agent).
        #[arg(required = true, value_name = "AGENT")]
        agents: Vec<String>,
    },
    /// Forget every ended agent, or those that ended more than DUR ago.
    ///
    /// As `rm` does: never the flight recorder, never a live agent; without a kernel, the
    /// agents on disk (all ended) are forgotten under the kernel's lock.
    Prune {
        /// Only agents that ended more than this long ago: 90s, 10m, 2h, 1d, 1h30m.
        #[arg(long, value_name = "DUR")]
        older_than: Option<String>,
    },
    /// Look at what an agent kept in memory, read-only (ls, cat).
    ///
    /// Its persistent memory (/mem/episodic,
    /// /mem/semantic, kept by name; an unnamed agent's ends with it) and its working memory
    /// (/mem/working, as of its latest checkpoint: the live one exists only inside the
    /// kernel). Reads the state dir, with or without a kernel, and changes nothing in it.
    /// Agent-controlled names and bytes are escaped on a terminal.
    #[command(subcommand)]
    Memory(MemoryCommand),
    /// List an agent's working-memory checkpoints.
    ///
    /// Taken on SIGUSR1 or by the agent's own `Checkpoint` call: number, time taken (UTC),
    /// files, bytes. Read-only; no kernel needed.
    Checkpoints {
        /// Agent id or name.
        agent: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// E.g.
    /// `agentctl completions bash > /etc/bash_completion.d/agentctl`,
    /// `agentctl completions zsh > "${fpath[1]}/_agentctl"`,
    /// `agentctl completions fish > ~/.config/fish/completions/agentctl.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    ///
    /// `agentctl man | man -l -`, or
    /// `agentctl man > /usr/local/share/man/man1/agentctl.1`.
    Man,
}

/// Which agents `ps` lists.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Every agent: the ended ones too, and those of earlier kernels on this state dir.
    #[arg(short, long)]
    pub all: bool,
    /// Only agents in these states (repeatable or comma-separated); an ended state lists
    /// ended agents without `-a`.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STATE")]
    pub state: Vec<StateFilter>,
    /// Only agents with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A state `ps --state` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    Starting,
    /// Running, including agents with a call waiting for approval.
    Running,
    /// Running with a call waiting for operator approval (`agentctl approvals`).
    AwaitingApproval,
    Stopped,
    /// Ended, however it ended.
    Exited,
}

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// List a directory of the agent's tree: `/mem` (default), `/mem/episodic/…`,
    /// `/mem/semantic/…`, `/mem/working/…`, `/state/checkpoints/N/…`.
    Ls {
        /// Agent id or name.
        agent: String,
        /// A path in the agent's tree.
        #[arg(default_value = "/mem")]
        path: String,
        /// Show /mem/working as of checkpoint N instead of the latest.
        #[arg(long, value_name = "N")]
        checkpoint: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a file of the agent's tree (e.g. `/mem/episodic/notes.txt`).
    Cat {
        /// Agent id or name.
        agent: String,
        /// A file path in the agent's tree.
        path: String,
        /// Read /mem/working as of checkpoint N instead of the latest.
        #[arg(long, value_name = "N")]
        checkpoint: Option<u64>,
        /// Write the bytes unescaped even to a terminal.
        #[arg(long)]
        raw: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Re-decide every recorded syscall against another policy and list each decision that
    /// would change (rate limits and the base policy are not re-applied).
    WhatIf {
        /// The policy to judge the recorded calls with.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Only this agent's calls: an id, or a name given at spawn (the newest agent of
        /// that name in the log).
        #[arg(long, value_name = "ID|NAME")]
        agent: Option<String>,
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
    /// The recorded agent whose calls answer the re-run: an id, or a name given at spawn
    /// (the newest agent of that name in the log).
    #[arg(long, value_name = "ID|NAME")]
    pub agent: String,
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
pub enum WitnessCommand {
    /// Serve C2SP tlog-witness `POST /add-checkpoint` on ADDR: body `old N`, the consistency
    /// proof lines, an empty line, the checkpoint note; answers the cosignature line (200),
    /// or 409 with the witness's size (`text/x.tlog.size`), 422 for a proof that does not
    /// verify or another root at the same size, 403 for a note not signed by the log's key,
    /// 404 for an unknown origin, 400 for a malformed body. Same checks and state as `cosign`.
    Serve {
        /// The address to listen on (port 0 picks one; the first line printed names it).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        #[command(flatten)]
        witness: WitnessArgs,
    },
}

/// Who the witness is and what it keeps: shared by `recorder cosign` and `recorder witness
/// serve` (the same checks and state either way).
#[derive(Debug, clap::Args)]
pub struct WitnessArgs {
    /// The witness key file (`recorder witness-key`).
    #[arg(long, value_name = "FILE")]
    pub key: std::path::PathBuf,
    /// The witness's state dir: the latest cosigned checkpoint per log, the trusted keys.
    #[arg(long, value_name = "DIR")]
    pub state: std::path::PathBuf,
    /// A log's verifier key (`recorder checkpoint --verifier-key`) to trust. Repeatable; kept
    /// in the state dir.
    #[arg(long, value_name = "VKEY")]
    pub log_key: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RecorderCommand {
    /// Verify chain, sequence, segments, checkpoint signatures and HEAD; name the first bad
    /// record. Exit 0 ok (records after the last checkpoint while the kernel that writes them
    /// runs are normal: noted, not an error), 1 tampered, 2 truncated (shorter than the signed
    /// HEAD), 5 unsealed tail with no kernel running (a kernel died before sealing its last
    /// records: they verify by chain but are not signed; the next `kernel start` seals them).
    ///
    /// With `--checkpoint FILE` (a checkpoint note obtained elsewhere, e.g. from an earlier
    /// `recorder checkpoint --out`) it also checks the transparency log: the note's signature
    /// by this recorder's key, that the Merkle tree over the records at the note's size has
    /// the note's root (else a record below it changed: a fork), that the log has at least
    /// that many records (else it was cut or rolled back), and every tile and entry bundle
    /// under recorder/tile against the records. Exit 1 when any of that fails.
    ///
    /// With `--witness VKEY` (repeatable) it also requires `--min-witnesses N` (default 1)
    /// valid C2SP cosignatures on the note from those witnesses (e.g. on
    /// recorder/checkpoint.witnessed, the latest checkpoint the kernel's witnesses cosigned).
    Verify {
        /// Also verify the log against this checkpoint note.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
        /// A witness's verifier key (`name+id+base64(0x04 ‖ key)`, from `recorder
        /// witness-key`) whose cosignature counts. Repeatable.
        #[arg(long, value_name = "VKEY", requires = "checkpoint")]
        witness: Vec<String>,
        /// How many of the --witness keys must have cosigned the note.
        #[arg(long, value_name = "N", requires = "witness")]
        min_witnesses: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the latest signed checkpoint of the transparency log: a C2SP tlog-checkpoint
    /// signed note (origin line, tree size = number of records, base64 SHA-256 root of the
    /// RFC 6962 tree over the records, then an ed25519 signature line by the recorder's key).
    /// Keep it: later `verify --checkpoint FILE` and `consistency FILE NEW` prove the log only
    /// grew since. README "The recorder as a transparency log" says what a leaf is.
    Checkpoint {
        /// Write the note to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Print the C2SP signed-note verifier key (`origin+keyid+base64key`) that checks it.
        #[arg(long, conflicts_with = "json")]
        verifier_key: bool,
        /// Print JSON: origin, tree_size, root_hash, verifier_key, note.
        #[arg(long)]
        json: bool,
    },
    /// Print record SEQ with its RFC 6962 inclusion proof against a checkpoint (the latest, or
    /// `--checkpoint FILE`). JSON fields: index, tree_size, root_hash, leaf (base64 of the
    /// leaf bytes), leaf_hash, proof (base64 hashes, leaf to root), checkpoint (the note),
    /// verifier_key, record (export schema). Anyone checks it with the note's key and any
    /// RFC 6962 verifier: leaf_hash = SHA-256(0x00 ‖ leaf), then the proof up to root_hash.
    Prove {
        /// The record's sequence number (its leaf index).
        seq: u64,
        /// Prove against this checkpoint note instead of the latest.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a witness key (ed25519, C2SP tlog-cosignature/v1) named NAME in FILE (mode
    /// 0600, never overwritten) and print its verifier key, which log clients pass to
    /// `verify --witness` and kernels to `--witness URL=VKEY`.
    WitnessKey {
        /// The witness's name, a schema-less URL (e.g. `witness.example/w1`).
        #[arg(long)]
        name: String,
        /// The key file to create.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Act as a witness once: cosign CHECKPOINT (C2SP tlog-cosignature/v1) after checking its
    /// signature by the log's key (--log-key, kept in the state dir after the first time) and
    /// that it is consistent with the latest checkpoint this witness cosigned for its origin
    /// (--proof: the output of `recorder consistency OLD CHECKPOINT` from that size). Refuses
    /// (exit 1) a checkpoint smaller than the last (a rollback), another root at the same size
    /// or a proof that does not verify (a fork). Prints the note with its cosignature line
    /// appended. Needs no kernel nor recorder.
    Cosign {
        #[command(flatten)]
        witness: WitnessArgs,
        /// The consistency proof from the witness's last cosigned size.
        #[arg(long, value_name = "PROOF")]
        proof: Option<std::path::PathBuf>,
        /// Write the cosigned note to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// The checkpoint note to cosign.
        checkpoint: std::path::PathBuf,
    },
    /// Run a witness over HTTP (C2SP tlog-witness).
    #[command(subcommand)]
    Witness(WitnessCommand),
    /// Print an RFC 6962 consistency proof that the tree at OLD is a prefix of the tree at NEW
    /// (the log only grew). OLD and NEW are checkpoint note files or tree sizes (a size uses
    /// the log's own root at it). Refuses a NEW smaller than OLD (a rollback) and a checkpoint
    /// whose root is not the log's at its size (a fork), saying which.
    Consistency {
        /// The older checkpoint note file, or a tree size.
        old: String,
        /// The newer checkpoint note file, or a tree size.
        new: String,
        /// Print JSON: old_size, old_root, new_size, new_root, proof, old_checkpoint,
        /// new_checkpoint (the notes, when files were given), verifier_key.
        #[arg(long)]
        json: bool,
    },
    /// Print records, one line each, like strace: local time, agent NAME#ID, the action and
    /// resource, payloads as length and escaped preview, the decision with its rule
    /// (`→ DENY no-secrets (security.md:34) [violation, permissive]`) and ` = ` the outcome.
    /// Agent strings are escaped; colour only on a terminal (NO_COLOR honoured). Nothing is
    /// skipped: another agent's flood cannot hide an agent's records from `--agent`.
    Show {
        #[command(flatten)]
        filter: RecordFilter,
        /// One JSON object per line (the export schema: see `agentctl recorder export --help`).
        #[arg(long)]
        json: bool,
    },
    /// Print the last records; with -f keep printing new ones (polls every 200 ms). Lines as
    /// for `show`; the filters apply before the last N are counted, so another agent's flood
    /// cannot push an agent's records out of `--agent`'s last N.
    Tail {
        /// Keep following the log (`--agent NAME` follows a newer agent of that name too).
        #[arg(short, long)]
        follow: bool,
        /// How many records to print first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[command(flatten)]
        filter: RecordFilter,
        /// One JSON object per line (the export schema).
        #[arg(long)]
        json: bool,
    },
    /// Write every record to stdout as JSON lines, schema 1: each line an object with
    /// "schema": 1, "seq", "wall_ms", "time" (RFC 3339 UTC), "mono_us", "agent" (id or null),
    /// "agent_name", "kind", "denied", "violation" and "event" (the record, tagged by its
    /// variant). docs/recorder.md describes every field and what may change.
    Export {
        /// Output format (only `jsonl`: one JSON object per record).
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
    /// Remove old records while keeping what proves the rest: the whole segments whose
    /// records all come before `--before` (never the last segment, nor the one holding the
    /// latest signed checkpoint, nor records it does not seal), their entry bundles and the
    /// blobs no kept record names. The tree's hashes (recorder/pruned.hashes, 64 bytes a
    /// record) and the checkpoints stay, so `prove` for every kept record and `consistency`
    /// still verify; a manifest signed by the recorder's key (recorder/pruned) records the
    /// cut, so `verify` reports the range as pruned, while segments deleted without it still
    /// fail as tampered. Only while no kernel runs on the state dir (stop it first); the key
    /// (recorder/key) must be readable.
    Prune {
        /// Prune records before this: a sequence number (4096), a duration before now (30d)
        /// or an RFC 3339 time (2026-11-25T14:00:00Z). Whole segments only: the cut is the
        /// start of the first segment kept.
        #[arg(long, value_name = "SEQ|TIME")]
        before: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate the recorder's signing key: a new ed25519 key is announced in a `key_rotated`
    /// record signed by the old key; checkpoints, HEAD and checkpoint notes are signed by the
    /// new key from then on (recorder/key.pub replaced, the old public key kept in
    /// recorder/key.history). `verify` follows the announcements from the old key to the new
    /// one. Only while no kernel runs on the state dir (stop it first).
    RotateKey {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Which records `recorder show|tail` print; every filter given must hold.
#[derive(Debug, Args, Clone, Default)]
pub struct RecordFilter {
    /// Only this agent's records: an id, or a name given at spawn (the newest agent of that
    /// name; names come from the log, no kernel needed).
    #[arg(long, value_name = "ID|NAME")]
    pub agent: Option<String>,
    /// Only records from here on: a sequence number (42), a duration before now (90s,
    /// 10m, 2h, 1d, 1h30m) or an RFC 3339 time (2026-11-25T14:00:00Z, or a date).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only refusals: syscalls not let through (policy, approval, rate limit, a bound),
    /// sandbox refusals, refused spawns, denied approvals. With --violations: either.
    #[arg(long)]
    pub denied: bool,
    /// Only policy violations (refused in strict mode, let through in permissive and audit)
    /// and protocol violations. With --denied: either.
    #[arg(long)]
    pub violations: bool,
    /// Only records of this kind (repeatable, or comma-separated): syscall, spawn, exit,
    /// signal, sandbox_denied, sandbox_access, … (an unknown kind lists them all).
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub kind: Vec<String>,
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
    /// Suggest the smallest strict policy that would have allowed exactly what a recorded run
    /// did (typically a run under the permissive or audit template).
    ///
    /// Reads the flight recorder (STATE_DIR/recorder; no kernel needed; the log must verify)
    /// and writes a `.agents/security.md` page in strict mode: for each action, the resources
    /// the agent's calls touched. Files are listed exactly, except that a directory holding 3
    /// or more of them becomes `dir/**` (`dir/*` when it also has subdirectories in use, which
    /// keep their own globs); no glob reaches above the mount it is in (`/workspace`,
    /// `/mem/working`, `/mem/episodic`, …), so there is never a `/**`. Programs are allowed
    /// with exactly the arguments they were given (`commands` + `args`, or `deny_args: ["*"]`
    /// for none), `api_call` by host, `ipc_send` by peer name (or id), `signal` by peer id.
    /// Calls the run was denied stay denied (exact deny rules where needed); calls that needed
    /// an approval keep `requires_approval`. The `sandbox:` section is copied from the policy
    /// the run had (when that file is unchanged), and `signals:` lists SIGTERM, SIGSTOP and
    /// SIGCONT plus any maskable signal the run was sent.
    ///
    /// Before writing, the suggestion is loaded, linted and replayed against the same log
    /// (`replay what-if`): every decision that would change, and every lint warning, is
    /// printed as a note on stderr. Under an audit run's dry runs the calls are now performed
    /// (`dry_run → allow`). Not inferred: rate limits, `max_bytes`, `deny_patterns`, approvals
    /// for calls that had none, the actions a `Call` to a provider might take (`database_query`
    /// and other actions without a resource constraint are allowed as a whole, with a note),
    /// and anything the run did not do: review the result before you use it.
    Suggest(PolicySuggestArgs),
}

/// A recorded run's kernel mode, for `policy suggest --from-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FromMode {
    /// Violations recorded, not refused.
    Permissive,
    /// Everything allowed (the audit template marks calls as dry runs).
    Audit,
}

#[derive(Debug, Args)]
pub struct PolicySuggestArgs {
    /// The recorded agent: its id, or the name it was spawned with (the latest agent of that
    /// name).
    #[arg(long, value_name = "NAME|ID")]
    pub agent: String,
    /// Refuse unless every call of the run was judged under this mode.
    #[arg(long, value_enum, value_name = "MODE")]
    pub from_mode: Option<FromMode>,
    /// Write the policy here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
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
    /// The action: file_read, file_write, code_execution, api_call, ipc_send, signal,
    /// database_query, database_write, send_email, mcp_tool or network (the actions the kernel emits,
    /// the list `policy lint` checks rules against); a custom `Call` action only when the
    /// policy names it in a rule.
    #[arg(long)]
    pub action: String,
    /// The resource: a VFS path, a URL or host, a command line, an agent id, an MCP tool
    /// call `SERVER/TOOL {JSON arguments}`, or a connection `HOST:PORT` (action network).
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
    /// Stop the kernel gracefully: SIGTERM to every live agent (refused to an agent whose
    /// policy does not list SIGTERM in `signals:`), SIGKILL to those still alive when the
    /// grace period (`--term-grace-ms`) ends. Shows each agent's SIGTERM, the grace period
    /// counting down (on a terminal) and how each agent ended.
    Stop {
        /// Print one JSON object at the end (each agent: its SIGTERM, how and when it ended)
        /// instead of the progress lines.
        #[arg(long)]
        json: bool,
    },
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
    /// Start with `/mem/working` restored from a checkpoint of AGENT (an id, or a name: the
    /// newest agent of that name on record): `AGENT:N` for checkpoint N, `AGENT` for its
    /// latest (`agentctl checkpoints AGENT` lists them).
    #[arg(long, value_name = "AGENT[:N]")]
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

//! The kernel's tuning options: one clap [`Args`](clap::Args) struct, the only place a kernel
//! flag is written.
//!
//! It is flattened into every command line that starts a kernel: the daemon
//! (`agentos-kernel`), `agentctl kernel start` and `agentctl run`. From it come the
//! [`Config`] ([`KernelOptions::config`], the one builder) and the daemon's argv
//! ([`KernelOptions::to_args`], what `agentctl kernel start` hands the daemon); its defaults
//! are the constants of [`crate::config`] and the crates that own each budget, the same ones
//! [`Config::new`] uses.
//!
//! Adding a flag: a field here (doc comment = help text, `default_value_t` = a named
//! constant), its line in [`KernelOptions::config`]; the compiler then points at
//! [`KernelOptions::to_args`], [`Default`] and the round-trip test (each destructures or
//! builds the whole struct).
//!
//! Not here: the daemon's own plumbing (`--state-dir`, `--launcher`, `--python-sdk`,
//! `--ready-fd`, `--detach`, in [`crate::daemon::DaemonArgs`]) and `agentctl`'s own flags.

use std::path::PathBuf;
use std::time::Duration;

use agentos_policy::{Policy, PolicyError};

use crate::config::{self, Config, DiskBudget};
use crate::providers::Provider;
use crate::recorder::Durability;

/// The kernel's tuning flags (help text, long names and defaults are the command line's).
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct KernelOptions {
    /// Bytes each agent may keep across its writable tree (working memory, persistent
    /// memory, growth of workspace files).
    #[arg(long, default_value_t = config::DEFAULT_QUOTA_BYTES)]
    pub quota_bytes: u64,
    /// Files each agent may keep across its writable tree.
    #[arg(long, default_value_t = config::DEFAULT_QUOTA_FILES)]
    pub quota_files: u64,
    /// The low-disk watermark: while the filesystem of the state dir has fewer free bytes,
    /// calls are refused (QuotaExceeded, not performed) and spawns are refused (0: none).
    #[arg(long, default_value_t = crate::recorder::DEFAULT_MIN_FREE_BYTES)]
    pub min_free_bytes: u64,
    /// Bytes of flight-recorder records and blobs each agent may cause; an agent over it is
    /// ended with SIGKILL (recorded as a SandboxLimit `recorder_bytes`) (0: no limit).
    #[arg(long, default_value_t = crate::recorder::DEFAULT_SHARE_BYTES)]
    pub recorder_share_bytes: u64,
    /// Flight-recorder segment rotation: a new segment starts once the current one holds
    /// this many bytes (0: no size limit). `agentctl recorder prune` removes whole segments.
    #[arg(long, default_value_t = crate::recorder::DEFAULT_SEGMENT_BYTES)]
    pub recorder_segment_bytes: u64,
    /// …or once it is this many seconds old (0: no age limit).
    #[arg(long, default_value_t = 0)]
    pub recorder_segment_secs: u64,
    /// The per-agent kernel memory budget, in bytes: requests read but not yet answered plus
    /// answers not yet written into the agent's socket. When it is spent the kernel stops
    /// reading that agent's socket until the agent reads its answers (min 64 KiB).
    #[arg(long, default_value_t = config::DEFAULT_AGENT_MEMORY_BYTES)]
    pub agent_memory_bytes: u64,
    /// Descriptors (`Open`) each agent may hold at once.
    #[arg(long, default_value_t = config::DEFAULT_MAX_FDS)]
    pub max_fds: u32,
    /// Host file operations (workspace, persistent memory, checkpoints) running at once,
    /// all agents together; a call past it waits for a slot.
    #[arg(long, default_value_t = crate::hostio::DEFAULT_IO_THREADS)]
    pub io_threads: usize,
    /// Host file operations one agent may have running at once; its further calls wait.
    #[arg(long, default_value_t = crate::hostio::DEFAULT_IO_PER_AGENT)]
    pub io_per_agent: usize,
    /// Bytes each agent's (and each tool's) scratch directory may hold: a tmpfs of this size.
    #[arg(long, default_value_t = agentos_userspace::launch::spec::DEFAULT_SCRATCH_BYTES)]
    pub scratch_bytes: u64,
    /// Bytes of each agent's output.log kept on disk: its first half and a rolling last half.
    #[arg(long, default_value_t = config::DEFAULT_LOG_BYTES)]
    pub log_bytes: u64,
    /// Bytes of checkpoint files each agent may hold.
    #[arg(long, default_value_t = config::DEFAULT_CHECKPOINT_BYTES)]
    pub checkpoint_bytes: u64,
    /// Calls each agent may have waiting for operator approval at once; the next one is
    /// refused with Busy (recorded).
    #[arg(long, default_value_t = config::DEFAULT_MAX_APPROVALS_PER_AGENT)]
    pub max_approvals_per_agent: usize,
    /// Run agents even when a sandbox layer is missing on this host (recorded per agent).
    #[arg(long)]
    pub allow_degraded_sandbox: bool,
    /// Milliseconds between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = config::DEFAULT_TERM_GRACE_MS)]
    pub term_grace_ms: u64,
    /// Milliseconds a call that needs operator approval waits before it is denied.
    #[arg(long, default_value_t = config::DEFAULT_APPROVAL_TIMEOUT_MS)]
    pub approval_timeout_ms: u64,
    /// A base policy for every agent: a call is allowed only if both it and the agent's own
    /// policy allow it.
    #[arg(long, value_name = "FILE")]
    pub base_policy: Option<PathBuf>,
    /// Flight recorder durability: `always` answers a syscall only after its record is
    /// fsynced (group commit); `batch` answers once it is written and fsyncs within 50 ms.
    #[arg(long, default_value_t = Durability::default())]
    pub durability: Durability,
    /// A tool provider for a `Call` action (repeatable):
    /// ACTION=PROGRAM[,network][,ro=PATH][,rw=DIR][,arg=VALUE]. `network` shares the host's
    /// network with that provider only.
    #[arg(long = "provider", value_name = "ACTION=PROGRAM[,OPTIONS]")]
    pub providers: Vec<String>,
    /// An MCP tool server speaking over stdio (repeatable):
    /// NAME=PROGRAM[,arg=VALUE][,network][,ro=PATH]. Each agent that uses it gets its own
    /// copy, started on first use in a tool jail; its tools are called as `NAME/TOOL` under
    /// the policy action `mcp_tool`.
    #[arg(long = "mcp", value_name = "NAME=PROGRAM[,OPTIONS]")]
    pub mcp: Vec<String>,
    /// Milliseconds an MCP tool call (or a server's start) may take before it is answered
    /// `TimedOut`.
    #[arg(long, default_value_t = crate::mcp::DEFAULT_TIMEOUT_MS)]
    pub mcp_timeout_ms: u64,
    /// Connections one agent may hold open through its egress proxy at once (agents whose
    /// policy has a `network` rule); the next is answered `503` until one closes.
    #[arg(long, default_value_t = config::DEFAULT_EGRESS_CONNECTIONS)]
    pub egress_max_connections: u32,
    /// Bytes per second one agent's egress connections may move together, each direction
    /// (0: unbounded).
    #[arg(long, default_value_t = config::DEFAULT_EGRESS_BYTES_PER_SEC)]
    pub egress_bytes_per_sec: u64,
    /// Serve Prometheus metrics (`/metrics`) and a health check (`/healthz`: 200, or 503
    /// naming what is wrong) over HTTP on ADDR: `PORT` (on 127.0.0.1) or `HOST:PORT` (any
    /// other address only if you mean to expose them). Off by default.
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Run PROGRAM for each event an operator should hear of without polling: a call waits
    /// for approval, a policy violation, an agent ended by SIGPOLICY/SIGTRUST, an agent's
    /// sandbox refusals reaching --on-event-sandbox-threshold, the flight recorder failing or
    /// resuming. The event is one line of JSON on its stdin (kind also in AGENTOS_EVENT). The
    /// kernel never waits for it; a failure is recorded (HookFailed).
    #[arg(long, value_name = "PROGRAM")]
    pub on_event: Option<PathBuf>,
    /// How long one run of the --on-event program may take before it is killed.
    #[arg(long, default_value_t = crate::hooks::DEFAULT_TIMEOUT_MS)]
    pub on_event_timeout_ms: u64,
    /// How many sandbox refusals of one agent make one `sandbox_denials` event.
    #[arg(long, default_value_t = crate::hooks::DEFAULT_SANDBOX_THRESHOLD)]
    pub on_event_sandbox_threshold: u64,
    /// Export OpenTelemetry traces over OTLP/HTTP (protobuf) to URL: a collector's base
    /// (`http://127.0.0.1:4318`, `/v1/traces` is added) or its full traces URL. Agents whose
    /// policy says `observability: {traces: true}` get one trace per life. Off by default.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The share of traced agent lives whose spans are kept (0.0–1.0; by trace id).
    #[arg(long, value_name = "RATIO", default_value_t = crate::traces::DEFAULT_SAMPLE_RATIO, value_parser = parse_ratio)]
    pub otlp_sample_ratio: f64,
    /// A witness of the flight recorder's transparency log (repeatable): URL=VKEY, the
    /// witness's C2SP tlog-witness submission URL (`http://HOST:PORT`) and its verifier key
    /// (`agentctl recorder witness-key`). Each new checkpoint is sent to it off the
    /// recorder's writer (timeout 5 s, 3 tries); each outcome is recorded and the
    /// cosignatures kept in recorder/checkpoint.witnessed.
    #[arg(long = "witness", value_name = "URL=VKEY")]
    pub witnesses: Vec<String>,
}

/// `--otlp-sample-ratio`: a number from 0 to 1.
fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "`{s}` is not a ratio from 0 to 1 (1 keeps every traced life, 0.1 one in ten)"
        )),
    }
}

/// `--metrics-addr`: `PORT` means `127.0.0.1:PORT`; otherwise an `IP:PORT`.
fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!("`{s}` is not PORT or IP:PORT (e.g. 9464, 127.0.0.1:9464, [::1]:9464)")
    })
}

/// Options that do not make a [`Config`]: each names the flag and the cause.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// `--base-policy` does not load (the message names its `file:line:col`).
    #[error("--base-policy does not load, kernel not started:\n{0}")]
    BasePolicy(PolicyError),
    /// A `--provider` does not parse or names a missing program or path.
    #[error("--provider: {0}; kernel not started")]
    Provider(String),
    /// An `--mcp` does not parse or names a missing program or path.
    #[error("--mcp: {0}; kernel not started")]
    Mcp(String),
    /// `--otlp-endpoint` is not a URL the exporter can use.
    #[error("--otlp-endpoint: {0}; kernel not started")]
    OtlpEndpoint(String),
    /// `--on-event` names no file.
    #[error("--on-event {}: no such program; give the path of an executable, kernel not started", .0.display())]
    OnEvent(PathBuf),
    /// A `--witness` is not URL=VKEY.
    #[error("--witness: {0}; kernel not started")]
    Witness(String),
}

impl Default for KernelOptions {
    /// The command line's defaults (a test checks they are what clap parses from no flags).
    fn default() -> Self {
        Self {
            quota_bytes: config::DEFAULT_QUOTA_BYTES,
            quota_files: config::DEFAULT_QUOTA_FILES,
            min_free_bytes: crate::recorder::DEFAULT_MIN_FREE_BYTES,
            recorder_share_bytes: crate::recorder::DEFAULT_SHARE_BYTES,
            recorder_segment_bytes: crate::recorder::DEFAULT_SEGMENT_BYTES,
            recorder_segment_secs: 0,
            agent_memory_bytes: config::DEFAULT_AGENT_MEMORY_BYTES,
            max_fds: config::DEFAULT_MAX_FDS,
            io_threads: crate::hostio::DEFAULT_IO_THREADS,
            io_per_agent: crate::hostio::DEFAULT_IO_PER_AGENT,
            scratch_bytes: agentos_userspace::launch::spec::DEFAULT_SCRATCH_BYTES,
            log_bytes: config::DEFAULT_LOG_BYTES,
            checkpoint_bytes: config::DEFAULT_CHECKPOINT_BYTES,
            max_approvals_per_agent: config::DEFAULT_MAX_APPROVALS_PER_AGENT,
            allow_degraded_sandbox: false,
            term_grace_ms: config::DEFAULT_TERM_GRACE_MS,
            approval_timeout_ms: config::DEFAULT_APPROVAL_TIMEOUT_MS,
            base_policy: None,
            durability: Durability::default(),
            providers: Vec::new(),
            mcp: Vec::new(),
            mcp_timeout_ms: crate::mcp::DEFAULT_TIMEOUT_MS,
            egress_max_connections: config::DEFAULT_EGRESS_CONNECTIONS,
            egress_bytes_per_sec: config::DEFAULT_EGRESS_BYTES_PER_SEC,
            metrics_addr: None,
            on_event: None,
            on_event_timeout_ms: crate::hooks::DEFAULT_TIMEOUT_MS,
            on_event_sandbox_threshold: crate::hooks::DEFAULT_SANDBOX_THRESHOLD,
            otlp_endpoint: None,
            otlp_sample_ratio: crate::traces::DEFAULT_SAMPLE_RATIO,
            witnesses: Vec::new(),
        }
    }
}

impl KernelOptions {
    /// The configuration of a kernel on `state_dir` with these options: [`Config::new`]'s
    /// defaults with every option applied. The base policy is loaded and the providers are
    /// parsed here (their files must exist), so a bad one stops the start before anything
    /// runs. `io_threads` and `io_per_agent` are raised to 1.
    pub fn config(&self, state_dir: impl Into<PathBuf>) -> Result<Config, OptionsError> {
        let Self {
            quota_bytes,
            quota_files,
            min_free_bytes,
            recorder_share_bytes,
            recorder_segment_bytes,
            recorder_segment_secs,
            agent_memory_bytes,
            max_fds,
            io_threads,
            io_per_agent,
            scratch_bytes,
            log_bytes,
            checkpoint_bytes,
            max_approvals_per_agent,
            allow_degraded_sandbox,
            term_grace_ms,
            approval_timeout_ms,
            base_policy,
            durability,
            providers,
            mcp,
            mcp_timeout_ms,
            egress_max_connections,
            egress_bytes_per_sec,
            metrics_addr,
            on_event,
            on_event_timeout_ms,
            on_event_sandbox_threshold,
            otlp_endpoint,
            otlp_sample_ratio,
            witnesses,
        } = self;
        let mut config = Config::new(state_dir);
        config.working_quota = (*quota_bytes, *quota_files);
        config.recorder.min_free_bytes = *min_free_bytes;
        config.recorder.share_bytes = *recorder_share_bytes;
        config.recorder.max_segment_bytes = *recorder_segment_bytes;
        config.recorder.max_segment_age = Duration::from_secs(*recorder_segment_secs);
        config.agent_memory_bytes = *agent_memory_bytes;
        config.max_fds = *max_fds;
        config.io_threads = (*io_threads).max(1);
        config.io_per_agent = (*io_per_agent).max(1);
        config.limits.scratch_bytes = *scratch_bytes;
        config.disk = DiskBudget {
            log_bytes: *log_bytes,
            checkpoint_bytes: *checkpoint_bytes,
        };
        config.max_approvals_per_agent = *max_approvals_per_agent;
        config.require_full_sandbox = !allow_degraded_sandbox;
        config.term_grace = Duration::from_millis(*term_grace_ms);
        config.approval_timeout = Duration::from_millis(*approval_timeout_ms);
        if let Some(path) = base_policy {
            config.base_policy = Some(Policy::load(path).map_err(OptionsError::BasePolicy)?);
        }
        config.recorder.durability = *durability;
        config.metrics_addr = *metrics_addr;
        if let Some(program) = on_event {
            let program = std::fs::canonicalize(program)
                .ok()
                .filter(|p| p.is_file())
                .ok_or_else(|| OptionsError::OnEvent(program.clone()))?;
            config.hook = Some(crate::hooks::HookConfig {
                program,
                timeout: Duration::from_millis((*on_event_timeout_ms).max(1)),
                sandbox_threshold: (*on_event_sandbox_threshold).max(1),
            });
        }
        if let Some(endpoint) = otlp_endpoint {
            config.traces = Some(crate::traces::TraceConfig {
                endpoint: crate::traces::traces_url(endpoint)
                    .map_err(OptionsError::OtlpEndpoint)?,
                sample_ratio: *otlp_sample_ratio,
            });
        }
        for text in providers {
            config
                .providers
                .push(Provider::parse(text).map_err(OptionsError::Provider)?);
        }
        for text in mcp {
            config
                .mcp
                .push(crate::mcp::McpServer::parse(text).map_err(OptionsError::Mcp)?);
        }
        config.mcp_timeout = Duration::from_millis((*mcp_timeout_ms).max(1));
        for text in witnesses {
            config
                .witnesses
                .push(crate::witnesses::WitnessTarget::parse(text).map_err(OptionsError::Witness)?);
        }
        config.egress = crate::config::EgressLimits {
            connections: (*egress_max_connections).max(1),
            bytes_per_sec: *egress_bytes_per_sec,
        };
        Ok(config)
    }

    /// These options as `agentos-kernel` arguments: parsing them gives back `self`. Numbers
    /// are always written (the daemon then does not depend on its own defaults agreeing);
    /// a flag only when set, an optional value only when present, a repeatable one per value.
    /// Paths are passed as they are: make them absolute first if the daemon may run
    /// elsewhere.
    pub fn to_args(&self) -> Vec<String> {
        let Self {
            quota_bytes,
            quota_files,
            min_free_bytes,
            recorder_share_bytes,
            recorder_segment_bytes,
            recorder_segment_secs,
            agent_memory_bytes,
            max_fds,
            io_threads,
            io_per_agent,
            scratch_bytes,
            log_bytes,
            checkpoint_bytes,
            max_approvals_per_agent,
            allow_degraded_sandbox,
            term_grace_ms,
            approval_timeout_ms,
            base_policy,
            durability,
            providers,
            mcp,
            mcp_timeout_ms,
            egress_max_connections,
            egress_bytes_per_sec,
            metrics_addr,
            on_event,
            on_event_timeout_ms,
            on_event_sandbox_threshold,
            otlp_endpoint,
            otlp_sample_ratio,
            witnesses,
        } = self;
        let mut v = Vec::new();
        let mut arg = |name: &str, value: String| {
            v.push(format!("--{name}"));
            v.push(value);
        };
        arg("quota-bytes", quota_bytes.to_string());
        arg("quota-files", quota_files.to_string());
        arg("min-free-bytes", min_free_bytes.to_string());
        arg("recorder-share-bytes", recorder_share_bytes.to_string());
        arg("recorder-segment-bytes", recorder_segment_bytes.to_string());
        arg("recorder-segment-secs", recorder_segment_secs.to_string());
        arg("agent-memory-bytes", agent_memory_bytes.to_string());
        arg("max-fds", max_fds.to_string());
        arg("io-threads", io_threads.to_string());
        arg("io-per-agent", io_per_agent.to_string());
        arg("scratch-bytes", scratch_bytes.to_string());
        arg("log-bytes", log_bytes.to_string());
        arg("checkpoint-bytes", checkpoint_bytes.to_string());
        arg(
            "max-approvals-per-agent",
            max_approvals_per_agent.to_string(),
        );
        arg("term-grace-ms", term_grace_ms.to_string());
        arg("approval-timeout-ms", approval_timeout_ms.to_string());
        if let Some(path) = base_policy {
            arg("base-policy", path.display().to_string());
        }
        arg("durability", durability.to_string());
        for p in providers {
            arg("provider", p.clone());
        }
        for m in mcp {
            arg("mcp", m.clone());
        }
        arg("mcp-timeout-ms", mcp_timeout_ms.to_string());
        arg("egress-max-connections", egress_max_connections.to_string());
        arg("egress-bytes-per-sec", egress_bytes_per_sec.to_string());
        if let Some(addr) = metrics_addr {
            arg("metrics-addr", addr.to_string());
        }
        if let Some(program) = on_event {
            arg("on-event", program.display().to_string());
        }
        arg("on-event-timeout-ms", on_event_timeout_ms.to_string());
        arg(
            "on-event-sandbox-threshold",
            on_event_sandbox_threshold.to_string(),
        );
        if let Some(url) = otlp_endpoint {
            arg("otlp-endpoint", url.clone());
        }
        arg("otlp-sample-ratio", otlp_sample_ratio.to_string());
        for w in witnesses {
            arg("witness", w.clone());
        }
        if *allow_degraded_sandbox {
            v.push("--allow-degraded-sandbox".into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        options: KernelOptions,
    }

    fn parse(args: &[String]) -> KernelOptions {
        let argv = std::iter::once("agentos-kernel".to_string()).chain(args.iter().cloned());
        Cli::try_parse_from(argv).unwrap().options
    }

    #[test]
    fn default_is_what_no_flags_parse_to() {
        assert_eq!(parse(&[]), KernelOptions::default());
    }

    #[test]
    fn to_args_parses_back_to_the_same_options_when_every_field_is_changed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.md");
        // A struct literal, not `..Default::default()`: a new field must be listed here, and
        // the assertion below then fails until `to_args` writes it.
        let changed = KernelOptions {
            quota_bytes: 1,
            quota_files: 2,
            min_free_bytes: 3,
            recorder_share_bytes: 4,
            recorder_segment_bytes: 18,
            recorder_segment_secs: 19,
            agent_memory_bytes: 5,
            max_fds: 6,
            io_threads: 7,
            io_per_agent: 8,
            scratch_bytes: 9,
            log_bytes: 10,
            checkpoint_bytes: 11,
            max_approvals_per_agent: 12,
            allow_degraded_sandbox: true,
            term_grace_ms: 13,
            approval_timeout_ms: 14,
            base_policy: Some(base),
            durability: Durability::Always,
            providers: vec!["api_call=/bin/true".into(), "send_email=/bin/false".into()],
            mcp: vec![
                "files=/bin/true,arg=--stdio".into(),
                "web=/bin/false,network".into(),
            ],
            mcp_timeout_ms: 17,
            egress_max_connections: 9,
            egress_bytes_per_sec: 1234,
            metrics_addr: Some("[::1]:9464".parse().unwrap()),
            on_event: Some("/bin/true".into()),
            on_event_timeout_ms: 15,
            on_event_sandbox_threshold: 16,
            otlp_endpoint: Some("http://127.0.0.1:4318".into()),
            otlp_sample_ratio: 0.25,
            witnesses: vec![
                "http://127.0.0.1:1=w/1+00000000+BAAA".into(),
                "http://127.0.0.1:2=w/2+00000000+BAAA".into(),
            ],
        };
        let defaults = KernelOptions::default();
        assert_ne!(changed.durability, defaults.durability);
        assert_ne!(
            changed.allow_degraded_sandbox,
            defaults.allow_degraded_sandbox
        );
        assert_eq!(parse(&changed.to_args()), changed);
        assert_eq!(parse(&defaults.to_args()), defaults);
    }

    #[test]
    fn default_options_make_the_default_config() {
        let dir = tempfile::tempdir().unwrap();
        let from_options = KernelOptions::default().config(dir.path()).unwrap();
        // Config holds no PartialEq types (policies, providers); its Debug form is whole.
        assert_eq!(
            format!("{from_options:?}"),
            format!("{:?}", Config::new(dir.path()))
        );
    }

    #[test]
    fn every_option_reaches_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.md");
        std::fs::write(
            &base,
            "---\nkernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies: []\n---\n",
        )
        .unwrap();
        let o = KernelOptions {
            quota_bytes: 1,
            quota_files: 2,
            min_free_bytes: 3,
            recorder_share_bytes: 4,
            recorder_segment_bytes: 18,
            recorder_segment_secs: 19,
            agent_memory_bytes: 5,
            max_fds: 6,
            io_threads: 0,
            io_per_agent: 0,
            scratch_bytes: 9,
            log_bytes: 10,
            checkpoint_bytes: 11,
            max_approvals_per_agent: 12,
            allow_degraded_sandbox: true,
            term_grace_ms: 13,
            approval_timeout_ms: 14,
            base_policy: Some(base),
            durability: Durability::Always,
            providers: vec!["api_call=/bin/true".into()],
            mcp: vec!["files=/bin/true,arg=--stdio".into()],
            mcp_timeout_ms: 17,
            egress_max_connections: 9,
            egress_bytes_per_sec: 1234,
            metrics_addr: Some("127.0.0.1:9464".parse().unwrap()),
            on_event: Some("/bin/true".into()),
            on_event_timeout_ms: 15,
            on_event_sandbox_threshold: 16,
            otlp_endpoint: Some("http://127.0.0.1:4318".into()),
            otlp_sample_ratio: 0.5,
            witnesses: Vec::new(),
        };
        let c = o.config(dir.path()).unwrap();
        assert_eq!(c.working_quota, (1, 2));
        assert_eq!(c.recorder.min_free_bytes, 3);
        assert_eq!(c.recorder.share_bytes, 4);
        assert_eq!(c.recorder.max_segment_bytes, 18);
        assert_eq!(c.recorder.max_segment_age, Duration::from_secs(19));
        assert_eq!(c.agent_memory_bytes, 5);
        assert_eq!(c.max_fds, 6);
        assert_eq!((c.io_threads, c.io_per_agent), (1, 1));
        assert_eq!(c.limits.scratch_bytes, 9);
        assert_eq!(
            c.disk,
            DiskBudget {
                log_bytes: 10,
                checkpoint_bytes: 11
            }
        );
        assert_eq!(c.max_approvals_per_agent, 12);
        assert!(!c.require_full_sandbox);
        assert_eq!(c.term_grace, Duration::from_millis(13));
        assert_eq!(c.approval_timeout, Duration::from_millis(14));
        assert!(c.base_policy.is_some());
        assert_eq!(c.recorder.durability, Durability::Always);
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers[0].action, "api_call");
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        let hook = c.hook.expect("--on-event");
        assert_eq!(hook.timeout, Duration::from_millis(15));
        assert_eq!(hook.sandbox_threshold, 16);
        assert!(hook.program.is_absolute() && hook.program.is_file());
        let traces = c.traces.expect("--otlp-endpoint");
        assert_eq!(traces.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces.sample_ratio, 0.5);
    }

    #[test]
    fn a_bad_base_policy_or_provider_is_an_error_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let o = KernelOptions {
            base_policy: Some(dir.path().join("missing.md")),
            ..KernelOptions::default()
        };
        let e = o.config(dir.path()).unwrap_err();
        assert!(matches!(e, OptionsError::BasePolicy(_)), "{e}");
        assert!(e.to_string().starts_with("--base-policy "), "{e}");
        let o = KernelOptions {
            providers: vec!["api_call=/nonexistent/fetch.py".into()],
            ..KernelOptions::default()
        };
        let e = o.config(dir.path()).unwrap_err();
        assert!(matches!(e, OptionsError::Provider(_)), "{e}");
        assert!(e.to_string().contains("/nonexistent/fetch.py"), "{e}");
    }
}

#[cfg(test)]
mod metrics_addr_tests {
    use super::parse_metrics_addr;

    #[test]
    fn a_bare_port_is_loopback_and_anything_else_must_be_an_address() {
        assert_eq!(
            parse_metrics_addr("9464").unwrap().to_string(),
            "127.0.0.1:9464"
        );
        assert_eq!(
            parse_metrics_addr("0.0.0.0:9").unwrap().to_string(),
            "0.0.0.0:9"
        );
        assert_eq!(
            parse_metrics_addr("[::1]:9464").unwrap().to_string(),
            "[::1]:9464"
        );
        let e = parse_metrics_addr("localhost:9464").unwrap_err();
        assert!(e.contains("PORT or IP:PORT"), "{e}");
    }
}

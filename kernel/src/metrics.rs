//! Prometheus metrics (`--metrics-addr`): what the flight recorder holds, counted.
//!
//! Every counter is fed by [`Metrics::observe`] from the kernel's record path, with the very
//! event the recorder appends, after it was appended — so `agent_os_requests_total` by
//! decision, `agent_os_violations_total` and `agent_os_signals_total` equal what the log holds
//! for the same run. Gauges (agents by state, parked approvals, resource use, the recorder's
//! health) are read from the kernel's state when scraped ([`render`]).
//!
//! Label cardinality is bounded by construction; nothing an agent chooses becomes a label:
//! - `action` is one of the policy's known actions, `builtin` for calls no rule governs, or
//!   `other` (an agent may `Call` any action name it likes);
//! - `rule` is a rule id of a policy the operator wrote, or `default` for a default deny;
//! - `agent` (per-agent series, only for agents whose policy says `observability.metrics:
//!   true`) is the name the operator spawned it with, or its id;
//! - paths, resources, command lines and reasons are never labels.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use agentos_syscalls::control::{AgentState, ExitStatus};
use agentos_syscalls::Syscall;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::recorder::{DecisionRecord, RecordEvent};
use crate::util::lock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    syscall: &'static str,
    action: String,
    decision: Decision,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Decision {
    allow,
    deny,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViolationLabels {
    action: String,
    rule: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    signal: &'static str,
    delivered: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExitLabels {
    outcome: &'static str,
    signal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EgressLabels {
    decision: Decision,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentDecisionLabels {
    agent: String,
    decision: Decision,
}

/// One counter an event adds to ([`Metrics::observe`]).
#[derive(Debug)]
enum Count {
    Request(RequestLabels),
    Violation(ViolationLabels),
    AgentRequest(AgentDecisionLabels),
    AgentViolation(AgentLabels),
    Signal(SignalLabels),
    Spawn(OutcomeLabels),
    Exit(ExitLabels),
    Sandbox(KindLabels, u64),
    ProtocolViolation,
    ApprovalRequested,
    ApprovalDecided(KindLabels),
    HookFailed(KindLabels),
    Egress(EgressLabels),
    EgressBytes(DirectionLabels, u64),
}

impl Count {
    fn sandbox(kind: &str, n: u64) -> Count {
        Count::Sandbox(KindLabels { kind: kind.into() }, n)
    }
}

/// What one event adds to the counters.
#[derive(Debug)]
#[must_use = "count it with Metrics::apply once the event is recorded"]
pub(crate) struct Observation(Vec<Count>);

/// Who an observed event belongs to, as the metrics see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject {
    /// The per-agent label, when the agent's policy opted in (`observability.metrics`).
    pub label: Option<String>,
}

/// The kernel's metrics.
pub(crate) struct Metrics {
    action_of: ActionOf,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    violations: Family<ViolationLabels, Counter>,
    policy_check: Family<ActionLabels, Histogram>,
    signals: Family<SignalLabels, Counter>,
    spawns: Family<OutcomeLabels, Counter>,
    exits: Family<ExitLabels, Counter>,
    sandbox_events: Family<KindLabels, Counter>,
    protocol_violations: Counter,
    approvals_requested: Counter,
    approvals_decided: Family<KindLabels, Counter>,
    hook_failures: Family<KindLabels, Counter>,
    egress_connections: Family<EgressLabels, Counter>,
    egress_bytes: Family<DirectionLabels, Counter>,
    agent_requests: Family<AgentDecisionLabels, Counter>,
    agent_violations: Family<AgentLabels, Counter>,
    recorder_records: Counter,
    recorder_bytes: Counter,
    /// The recorder's totals at the last scrape (its counters are fed the difference).
    recorder_seen: Mutex<(u64, u64)>,
    recorder_fsync: Histogram,
    recorder_checkpoint_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    recorder_failing: Gauge,
    /// Spans exported to the OTLP endpoint, and spans whose export failed.
    trace_spans: Family<OutcomeLabels, Counter>,
    /// The exporter's totals at the last scrape.
    trace_seen: Mutex<(u64, u64)>,
    agents: Family<StateLabels, Gauge>,
    approvals_parked: Gauge,
    agent_memory: Family<AgentLabels, Gauge>,
    agent_pids: Family<AgentLabels, Gauge>,
    rss: Gauge,
    uptime: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The `action` label of a call's policy action (`None`: a call no rule governs): a known
/// action as it is, `builtin`, or `other` for anything else (an agent-chosen `Call` action).
pub(crate) fn action_label(action: Option<&str>) -> String {
    match action {
        Some(a) if agentos_policy::KNOWN_ACTIONS.contains(&a) => a.into(),
        Some(_) => "other".into(),
        None => "builtin".into(),
    }
}

/// How the metrics learn a call's policy action (the syscall server's classification, handed
/// in by whoever builds the [`Metrics`], so this module needs nothing of the server).
pub(crate) type ActionOf = fn(&Syscall) -> Option<String>;

/// The `rule` label: the deciding rule's id (`id (file:line)` without its place), `default`
/// for a default deny.
fn rule_label(d: &DecisionRecord) -> String {
    match d
        .rule
        .split_once(" (")
        .map_or(d.rule.as_str(), |(id, _)| id)
    {
        "" => "default".into(),
        id => id.into(),
    }
}

fn decision(d: &DecisionRecord) -> Decision {
    if d.allowed {
        Decision::allow
    } else {
        Decision::deny
    }
}

fn exit_labels(status: &ExitStatus) -> ExitLabels {
    match status {
        ExitStatus::Code(0) => ExitLabels {
            outcome: "code_zero",
            signal: "",
        },
        ExitStatus::Code(_) => ExitLabels {
            outcome: "code_nonzero",
            signal: "",
        },
        ExitStatus::PosixSignal(_) => ExitLabels {
            outcome: "posix_signal",
            signal: "",
        },
        ExitStatus::Killed { signal, .. } => ExitLabels {
            outcome: "killed",
            signal: signal.name(),
        },
        ExitStatus::SandboxFailed { .. } => ExitLabels {
            outcome: "sandbox_failed",
            signal: "",
        },
    }
}

/// Registers `metric` as `name` and gives it back (the registry keeps a handle to the same
/// values).
fn reg<M: prometheus_client::registry::Metric + Clone>(
    r: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    r.register(name, help, metric.clone());
    metric
}

/// [`reg`] with a unit (its suffix is added to the name).
fn reg_unit<M: prometheus_client::registry::Metric + Clone>(
    r: &mut Registry,
    name: &str,
    help: &str,
    unit: Unit,
    metric: M,
) -> M {
    r.register_with_unit(name, help, unit, metric.clone());
    metric
}

impl Metrics {
    /// Metrics whose `action` labels come from `action_of`.
    pub(crate) fn new(action_of: ActionOf) -> Metrics {
        let mut registry = Registry::default();
        let requests = reg(
            &mut registry,
            "agent_os_requests",
            "Syscalls answered, by syscall, policy action and decision (after the mode)",
            Family::<RequestLabels, Counter>::default(),
        );
        let violations = reg(
            &mut registry,
            "agent_os_violations",
            "Calls that broke the policy (in permissive mode still let through), by action, \
             rule and mode",
            Family::<ViolationLabels, Counter>::default(),
        );
        let policy_check = reg_unit(
            &mut registry,
            "agent_os_policy_check_duration",
            "Time to judge one call against the agent's policy (and the base policy)",
            Unit::Seconds,
            Family::<ActionLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1e-6, 4.0, 10))
            }),
        );
        let signals = reg(
            &mut registry,
            "agent_os_signals",
            "agentos signals sent to agents, by signal and whether they were delivered",
            Family::<SignalLabels, Counter>::default(),
        );
        let spawns = reg(
            &mut registry,
            "agentos_spawns",
            "Spawns, by outcome (started, refused)",
            Family::<OutcomeLabels, Counter>::default(),
        );
        let exits = reg(
            &mut registry,
            "agentos_exits",
            "Agents that ended, by outcome and the agentos signal that ended them",
            Family::<ExitLabels, Counter>::default(),
        );
        let sandbox_events = reg(
            &mut registry,
            "agentos_sandbox_events",
            "What the jail refused or limited, by kind (seccomp_denied, access_refused, \
             flood_suppressed, limit_<resource>)",
            Family::<KindLabels, Counter>::default(),
        );
        let protocol_violations = reg(
            &mut registry,
            "agentos_protocol_violations",
            "Frames or calls that broke the protocol",
            Counter::default(),
        );
        let approvals_requested = reg(
            &mut registry,
            "agentos_approvals_requested",
            "Calls parked for operator approval",
            Counter::default(),
        );
        let approvals_decided = reg(
            &mut registry,
            "agentos_approvals_decided",
            "Parked calls whose approval ended, by how (approved, denied, timed out, agent ended)",
            Family::<KindLabels, Counter>::default(),
        );
        let hook_failures = reg(
            &mut registry,
            "agentos_hook_failures",
            "Events the --on-event hook failed on (or that were dropped), by event kind",
            Family::<KindLabels, Counter>::default(),
        );
        let egress_connections = reg(
            &mut registry,
            "agentos_egress_connections",
            "Connections agents asked their egress proxy for (action network), by decision",
            Family::<EgressLabels, Counter>::default(),
        );
        let egress_bytes = reg(
            &mut registry,
            "agentos_egress_bytes",
            "Bytes through agents' egress proxies, by direction (sent: agent to server)",
            Family::<DirectionLabels, Counter>::default(),
        );
        let agent_requests = reg(
            &mut registry,
            "agentos_agent_requests",
            "Syscalls answered per agent (agents whose policy sets observability.metrics: true)",
            Family::<AgentDecisionLabels, Counter>::default(),
        );
        let agent_violations = reg(
            &mut registry,
            "agentos_agent_violations",
            "Policy violations per agent (agents whose policy sets observability.metrics: true)",
            Family::<AgentLabels, Counter>::default(),
        );
        let recorder_records = reg(
            &mut registry,
            "agentos_recorder_records",
            "Records the flight recorder appended since the kernel started",
            Counter::default(),
        );
        let recorder_bytes = reg_unit(
            &mut registry,
            "agentos_recorder_written",
            "Bytes the flight recorder wrote to its segments since the kernel started",
            Unit::Bytes,
            Counter::default(),
        );
        let recorder_fsync = reg_unit(
            &mut registry,
            "agentos_recorder_fsync_duration",
            "Time each fsync of the flight recorder's log took",
            Unit::Seconds,
            Histogram::new(exponential_buckets(1e-5, 4.0, 10)),
        );
        let recorder_checkpoint_age = reg_unit(
            &mut registry,
            "agentos_recorder_checkpoint_age",
            "Time since the flight recorder's last signed checkpoint",
            Unit::Seconds,
            Gauge::<f64, std::sync::atomic::AtomicU64>::default(),
        );
        let recorder_failing = reg(
            &mut registry,
            "agentos_recorder_failing",
            "1 while the flight recorder cannot write (new work is refused), else 0",
            Gauge::default(),
        );
        let trace_spans = reg(
            &mut registry,
            "agentos_trace_spans",
            "Spans sent to the OTLP endpoint (--otlp-endpoint) by outcome: exported, failed",
            Family::<OutcomeLabels, Counter>::default(),
        );
        let agents = reg(
            &mut registry,
            "agentos_agents",
            "Agents by state",
            Family::<StateLabels, Gauge>::default(),
        );
        let approvals_parked = reg(
            &mut registry,
            "agentos_approvals_parked",
            "Calls waiting for operator approval now",
            Gauge::default(),
        );
        let agent_memory = reg_unit(
            &mut registry,
            "agentos_agent_memory",
            "Memory charged to a running agent's cgroup (agents whose policy sets \
             observability.metrics: true)",
            Unit::Bytes,
            Family::<AgentLabels, Gauge>::default(),
        );
        let agent_pids = reg(
            &mut registry,
            "agentos_agent_pids",
            "Processes and threads of a running agent (agents whose policy sets \
             observability.metrics: true)",
            Family::<AgentLabels, Gauge>::default(),
        );
        let rss = reg_unit(
            &mut registry,
            "agentos_kernel_resident_memory",
            "The kernel process's resident memory",
            Unit::Bytes,
            Gauge::default(),
        );
        let uptime = reg_unit(
            &mut registry,
            "agentos_kernel_uptime",
            "Time since the kernel started",
            Unit::Seconds,
            Gauge::<f64, std::sync::atomic::AtomicU64>::default(),
        );
        registry.register(
            "agentos_build",
            "The kernel's version and ABI",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("abi", agentos_syscalls::ABI_VERSION.to_string()),
            ]),
        );
        Metrics {
            action_of,
            registry,
            requests,
            violations,
            policy_check,
            signals,
            spawns,
            exits,
            sandbox_events,
            protocol_violations,
            approvals_requested,
            approvals_decided,
            hook_failures,
            egress_connections,
            egress_bytes,
            agent_requests,
            agent_violations,
            recorder_records,
            recorder_bytes,
            recorder_seen: Mutex::new((0, 0)),
            recorder_fsync,
            recorder_checkpoint_age,
            recorder_failing,
            trace_spans,
            trace_seen: Mutex::new((0, 0)),
            agents,
            approvals_parked,
            agent_memory,
            agent_pids,
            rss,
            uptime,
        }
    }

    /// What `event` of `subject` adds to the counters, worked out before the event moves into
    /// the recorder (no copy of its payload); [`Metrics::apply`] counts it once it is recorded.
    pub(crate) fn observe(&self, subject: &Subject, event: &RecordEvent) -> Observation {
        let mut out = Vec::new();
        match event {
            RecordEvent::Syscall { call, decision, .. }
            | RecordEvent::SyscallBlobs { call, decision, .. } => {
                let action = action_label((self.action_of)(call).as_deref());
                let verdict = self::decision(decision);
                if decision.violation {
                    out.push(Count::Violation(ViolationLabels {
                        action: action.clone(),
                        rule: rule_label(decision),
                        mode: decision.mode.clone(),
                    }));
                }
                out.push(Count::Request(RequestLabels {
                    syscall: call.name(),
                    action,
                    decision: verdict,
                }));
                if let Some(agent) = &subject.label {
                    if decision.violation {
                        out.push(Count::AgentViolation(AgentLabels {
                            agent: agent.clone(),
                        }));
                    }
                    out.push(Count::AgentRequest(AgentDecisionLabels {
                        agent: agent.clone(),
                        decision: verdict,
                    }));
                }
            }
            RecordEvent::Signal {
                signal, delivered, ..
            } => out.push(Count::Signal(SignalLabels {
                signal: signal.name(),
                delivered: *delivered,
            })),
            RecordEvent::Spawn { .. } => {
                out.push(Count::Spawn(OutcomeLabels { outcome: "started" }))
            }
            RecordEvent::SpawnRefused { .. } => {
                out.push(Count::Spawn(OutcomeLabels { outcome: "refused" }))
            }
            RecordEvent::Exit { status } => out.push(Count::Exit(exit_labels(status))),
            RecordEvent::SandboxDenied { .. } => out.push(Count::sandbox("seccomp_denied", 1)),
            RecordEvent::SandboxAccess { .. } => out.push(Count::sandbox("access_refused", 1)),
            RecordEvent::SandboxFlood { suppressed, .. } => {
                out.push(Count::sandbox("flood_suppressed", *suppressed))
            }
            // `resource` is one of the kernel's own few names, not the agent's.
            RecordEvent::SandboxLimit { resource, .. } => {
                out.push(Count::sandbox(&format!("limit_{resource}"), 1))
            }
            RecordEvent::ProtocolViolation { .. } => out.push(Count::ProtocolViolation),
            RecordEvent::ApprovalRequested { .. } => out.push(Count::ApprovalRequested),
            RecordEvent::ApprovalDecided { outcome, .. } => {
                out.push(Count::ApprovalDecided(KindLabels {
                    kind: outcome.replace(' ', "_"),
                }))
            }
            // `event` is one of the kernel's own event kinds.
            RecordEvent::HookFailed { event, .. } => out.push(Count::HookFailed(KindLabels {
                kind: event.clone(),
            })),
            RecordEvent::Egress { decision, .. } => {
                if decision.violation {
                    out.push(Count::Violation(ViolationLabels {
                        action: "network".into(),
                        rule: rule_label(decision),
                        mode: decision.mode.clone(),
                    }));
                    if let Some(agent) = &subject.label {
                        out.push(Count::AgentViolation(AgentLabels {
                            agent: agent.clone(),
                        }));
                    }
                }
                out.push(Count::Egress(EgressLabels {
                    decision: self::decision(decision),
                }));
            }
            RecordEvent::EgressClosed { sent, received, .. } => {
                out.push(Count::EgressBytes(
                    DirectionLabels { direction: "sent" },
                    *sent,
                ));
                out.push(Count::EgressBytes(
                    DirectionLabels {
                        direction: "received",
                    },
                    *received,
                ));
            }
            // Nothing to count, or counted from the kernel's state when scraped.
            RecordEvent::KernelStart { .. }
            | RecordEvent::WitnessCosigned { .. }
            | RecordEvent::WitnessFailed { .. }
            | RecordEvent::KernelStop { .. }
            | RecordEvent::Sandbox(_)
            | RecordEvent::Handshake { .. }
            | RecordEvent::SandboxCapabilities { .. }
            | RecordEvent::PolicyReloaded { .. }
            | RecordEvent::ReadOnlyGranted { .. }
            | RecordEvent::Recovery { .. }
            | RecordEvent::RecorderBroken { .. }
            | RecordEvent::MemoryCheckpoint { .. }
            | RecordEvent::MemoryRestored { .. }
            | RecordEvent::RecorderResumed { .. }
            | RecordEvent::McpServerExited { .. }
            | RecordEvent::KeyRotated { .. } => {}
        }
        Observation(out)
    }

    /// Counts what [`Metrics::observe`] worked out (the event is in the log).
    pub(crate) fn apply(&self, o: Observation) {
        for count in o.0 {
            match count {
                Count::Request(l) => self.requests.get_or_create(&l).inc(),
                Count::Violation(l) => self.violations.get_or_create(&l).inc(),
                Count::AgentRequest(l) => self.agent_requests.get_or_create(&l).inc(),
                Count::AgentViolation(l) => self.agent_violations.get_or_create(&l).inc(),
                Count::Signal(l) => self.signals.get_or_create(&l).inc(),
                Count::Spawn(l) => self.spawns.get_or_create(&l).inc(),
                Count::Exit(l) => self.exits.get_or_create(&l).inc(),
                Count::Sandbox(l, n) => self.sandbox_events.get_or_create(&l).inc_by(n),
                Count::ProtocolViolation => self.protocol_violations.inc(),
                Count::ApprovalRequested => self.approvals_requested.inc(),
                Count::ApprovalDecided(l) => self.approvals_decided.get_or_create(&l).inc(),
                Count::HookFailed(l) => self.hook_failures.get_or_create(&l).inc(),
                Count::Egress(l) => self.egress_connections.get_or_create(&l).inc(),
                Count::EgressBytes(l, n) => self.egress_bytes.get_or_create(&l).inc_by(n),
            };
        }
    }

    /// How long judging `call` took.
    pub(crate) fn policy_checked(&self, action: Option<&str>, took: Duration) {
        self.policy_check
            .get_or_create(&ActionLabels {
                action: action_label(action),
            })
            .observe(took.as_secs_f64());
    }

    /// The gauges read from the kernel's state when scraped, set by the exposition.
    pub(crate) fn gauges(&self) -> Gauges<'_> {
        Gauges { m: self }
    }

    /// The metrics in Prometheus' text format, as they are now.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            let _ = writeln!(out, "# encoding failed: {e}");
        }
        out
    }

    /// How long one fsync of the recorder's log took (the recorder's writer thread).
    pub(crate) fn fsynced(&self, took: Duration) {
        self.recorder_fsync.observe(took.as_secs_f64());
    }
}

/// The metrics read from the kernel's state at each scrape ([`Metrics::gauges`]).
#[derive(Debug)]
pub(crate) struct Gauges<'a> {
    m: &'a Metrics,
}

impl Gauges<'_> {
    /// How many agents are in each state.
    pub(crate) fn agents(&self, by_state: &[(AgentState, i64)]) {
        for (state, n) in by_state {
            self.m
                .agents
                .get_or_create(&StateLabels {
                    state: state.as_str(),
                })
                .set(*n);
        }
    }

    /// Forgets every agent's usage series (before setting the running ones' again).
    pub(crate) fn clear_agent_usage(&self) {
        self.m.agent_memory.clear();
        self.m.agent_pids.clear();
    }

    /// A running agent's cgroup usage, for an agent whose policy opted in.
    pub(crate) fn agent_usage(&self, agent: &str, memory_bytes: u64, pids: u64) {
        let label = AgentLabels {
            agent: agent.into(),
        };
        self.m
            .agent_memory
            .get_or_create(&label)
            .set(memory_bytes as i64);
        self.m.agent_pids.get_or_create(&label).set(pids as i64);
    }

    pub(crate) fn approvals_parked(&self, n: usize) {
        self.m.approvals_parked.set(n as i64);
    }

    /// The recorder's totals (its counters are fed the difference since the last scrape).
    pub(crate) fn recorder(&self, stats: crate::recorder::RecorderStats, now_ms: u64) {
        {
            let mut seen = lock(&self.m.recorder_seen);
            self.m
                .recorder_records
                .inc_by(stats.records.saturating_sub(seen.0));
            self.m
                .recorder_bytes
                .inc_by(stats.bytes.saturating_sub(seen.1));
            *seen = (stats.records.max(seen.0), stats.bytes.max(seen.1));
        }
        if stats.last_checkpoint_ms > 0 {
            self.m
                .recorder_checkpoint_age
                .set(now_ms.saturating_sub(stats.last_checkpoint_ms) as f64 / 1000.0);
        }
        self.m.recorder_failing.set(i64::from(stats.failing));
    }

    /// The trace exporter's totals: spans exported and spans that failed.
    pub(crate) fn traces(&self, exported: u64, failed: u64) {
        let mut seen = lock(&self.m.trace_seen);
        for (outcome, now, before) in [("exported", exported, seen.0), ("failed", failed, seen.1)] {
            self.m
                .trace_spans
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(now.saturating_sub(before));
        }
        *seen = (exported.max(seen.0), failed.max(seen.1));
    }

    /// The kernel process's resident memory and uptime.
    pub(crate) fn kernel(&self, resident_bytes: u64, uptime: Duration) {
        self.m.rss.set(resident_bytes as i64);
        self.m.uptime.set(uptime.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentos_syscalls::{Errno, Reply, Signal, WriteMode};

    fn decided(allowed: bool, violation: bool, rule: &str) -> DecisionRecord {
        DecisionRecord {
            allowed,
            policy_allowed: allowed && !violation,
            rule: rule.into(),
            reason: String::new(),
            violation,
            mode: "permissive".into(),
        }
    }

    fn syscall(call: Syscall, d: DecisionRecord) -> RecordEvent {
        RecordEvent::Syscall {
            id: 1,
            call,
            decision: d,
            result: Err(Errno::NotFound { what: "x".into() }),
            duration_us: 1,
        }
    }

    /// The actions of the calls these tests use (the kernel hands in the server's classify).
    fn test_action_of(call: &Syscall) -> Option<String> {
        match call {
            Syscall::Write { .. } => Some("file_write".into()),
            Syscall::Read { .. } => Some("file_read".into()),
            Syscall::Call { action, .. } => Some(action.clone()),
            _ => None,
        }
    }

    fn text(m: &Metrics) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).expect("encode");
        out
    }

    #[test]
    fn calls_count_by_action_and_decision_and_violations_by_rule() {
        let m = Metrics::new(test_action_of);
        let write = Syscall::Write {
            path: "/mem/working/secrets/key".into(),
            data: b"x".to_vec(),
            mode: WriteMode::Truncate,
        };
        let s = Subject::default();
        m.apply(m.observe(
            &s,
            &syscall(write.clone(), decided(true, true, "no-secrets (p.md:3)")),
        ));
        m.apply(m.observe(&s, &syscall(write, decided(false, false, ""))));
        m.apply(m.observe(&s, &syscall(Syscall::Checkpoint, decided(true, false, ""))));
        let t = text(&m);
        assert!(
            t.contains(
                r#"agent_os_requests_total{syscall="write",action="file_write",decision="allow"} 1"#
            ),
            "{t}"
        );
        assert!(
            t.contains(
                r#"agent_os_requests_total{syscall="write",action="file_write",decision="deny"} 1"#
            ),
            "{t}"
        );
        assert!(t.contains(r#"agent_os_requests_total{syscall="checkpoint",action="builtin",decision="allow"} 1"#), "{t}");
        assert!(t.contains(r#"agent_os_violations_total{action="file_write",rule="no-secrets",mode="permissive"} 1"#), "{t}");
        assert!(!t.contains("secrets/key"), "a path became a label: {t}");
    }

    #[test]
    fn an_agent_chosen_action_never_becomes_a_label() {
        let m = Metrics::new(test_action_of);
        for i in 0..50 {
            let call = Syscall::Call {
                action: format!("made_up_{i}"),
                params_json: "{}".into(),
            };
            m.apply(m.observe(
                &Subject::default(),
                &syscall(call, decided(false, true, "")),
            ));
        }
        let t = text(&m);
        assert!(!t.contains("made_up"), "{t}");
        assert!(
            t.contains(
                r#"agent_os_requests_total{syscall="call",action="other",decision="deny"} 50"#
            ),
            "{t}"
        );
        assert!(
            t.contains(
                r#"agent_os_violations_total{action="other",rule="default",mode="permissive"} 50"#
            ),
            "{t}"
        );
    }

    #[test]
    fn per_agent_series_only_for_a_subject_with_a_label() {
        let m = Metrics::new(test_action_of);
        let read = Syscall::Read {
            path: "/mem/working/a".into(),
            offset: 0,
            len: Some(1),
        };
        let ok = RecordEvent::Syscall {
            id: 1,
            call: read,
            decision: decided(true, false, "r (p.md:1)"),
            result: Ok(Reply::Data(vec![])),
            duration_us: 1,
        };
        m.apply(m.observe(&Subject::default(), &ok));
        let builder = Subject {
            label: Some("builder".into()),
        };
        m.apply(m.observe(&builder, &ok));
        let t = text(&m);
        assert!(
            t.contains(r#"agentos_agent_requests_total{agent="builder",decision="allow"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(
                r#"agent_os_requests_total{syscall="read",action="file_read",decision="allow"} 2"#
            ),
            "{t}"
        );
        assert_eq!(t.matches("agentos_agent_requests_total{").count(), 1, "{t}");
    }

    #[test]
    fn signals_exits_and_sandbox_events() {
        let m = Metrics::new(test_action_of);
        let s = Subject::default();
        m.apply(m.observe(
            &s,
            &RecordEvent::Signal {
                signal: Signal::Policy,
                source: "kernel".into(),
                reason: "r".into(),
                delivered: true,
            },
        ));
        m.apply(m.observe(
            &s,
            &RecordEvent::Exit {
                status: ExitStatus::Killed {
                    signal: Signal::Policy,
                    reason: "r".into(),
                },
            },
        ));
        m.apply(m.observe(
            &s,
            &RecordEvent::SandboxFlood {
                syscall: "socket".into(),
                suppressed: 7,
                window_start_ms: 0,
                window_ms: 1000,
            },
        ));
        let t = text(&m);
        assert!(
            t.contains(r#"agent_os_signals_total{signal="SIGPOLICY",delivered="true"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"agentos_exits_total{outcome="killed",signal="SIGPOLICY"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"agentos_sandbox_events_total{kind="flood_suppressed"} 7"#),
            "{t}"
        );
    }
}

//! The start of a connection: the launcher's report, then the agent's `Hello`.
//!
//! ```text
//! launcher: JailReport ─► [SandboxListener + fd] ─► [EgressListener + fd] ─► (exec) agent:
//! Hello ─► kernel: Welcome
//! ```
//!
//! The launcher (`agentos-launch`) speaks first on the agent's socket: its jail report
//! (recorded; the agent is then `Running`) and, when the seccomp notifier is on, the listener
//! descriptor (`SCM_RIGHTS`), which the kernel serves (`crate::sandbox::watch`). Then the
//! agent's `Hello`: an ABI other than this kernel's is refused with both versions named;
//! otherwise the handshake is recorded and answered with `Welcome` (the agent's id, the limits
//! and the policy digest). Anything else before the `Hello`, a second report or listener, or a
//! listener without a seccomp descriptor is a protocol violation (the `Err` returned).
//!
//! The frames are read with [`connection::read_frame_with_fds`], which the tool launcher's
//! report (`crate::tools`) is read with too.

use std::sync::Arc;

use agentos_syscalls::{AgentFrame, Hello, KernelFrame, Limits, Welcome, ABI_VERSION};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::connection;
use super::respond::{self, Offence};
use crate::agent::{lock, Agent, Outgoing};
use crate::recorder::RecordEvent;
use crate::state::KernelInner;

/// Runs the handshake on `stream`: `Ok(true)` once the agent is welcomed, `Ok(false)` when the
/// stream ended or the agent's ABI was refused (recorded and answered here), `Err` on a
/// protocol violation (for the caller to punish).
pub(super) async fn handshake(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    stream: &UnixStream,
    tx: &mpsc::Sender<Outgoing>,
) -> Result<bool, String> {
    let Some(hello) = launcher_then_hello(k, agent, stream).await? else {
        return Ok(false);
    };
    if hello.abi != ABI_VERSION {
        let reason = format!(
            "agent speaks ABI {} ({}), this kernel speaks ABI {ABI_VERSION}; rebuild the agent against a matching SDK",
            hello.abi, hello.sdk
        );
        respond::punish(k, agent, tx, Offence::Abi(reason)).await;
        return Ok(false);
    }
    k.record(
        Some(agent.id),
        RecordEvent::Handshake {
            sdk: hello.sdk,
            abi: hello.abi,
        },
    );
    let limits = Limits {
        max_frame: k.config.max_frame,
        max_in_flight: k.config.max_in_flight,
    };
    let welcome = Welcome {
        abi: ABI_VERSION,
        agent_id: agent.id,
        limits,
        policy_digest: agent.policy().digest(),
    };
    connection::send(tx, KernelFrame::Welcome(welcome)).await;
    mark_running(agent);
    Ok(true)
}

/// The launcher's jail report (and seccomp listener), then the agent's Hello; `None` when the
/// stream ends first.
async fn launcher_then_hello(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    stream: &UnixStream,
) -> Result<Option<Hello>, String> {
    let mut listener_seen = false;
    let mut egress_seen = false;
    loop {
        let mut fds = Vec::new();
        let Some(frame) =
            connection::read_frame_with_fds(stream, k.config.max_frame, &mut fds).await?
        else {
            return Ok(None);
        };
        match frame {
            AgentFrame::SandboxListener if lock(&agent.jail).is_some() && !listener_seen => {
                listener_seen = true;
                watch_listener(k, agent, fds.pop())?;
            }
            AgentFrame::SandboxListener => return Err(
                "a sandbox listener out of place (only the launcher sends one, after its report)"
                    .into(),
            ),
            // Only for an agent whose policy gave it an egress proxy at spawn.
            AgentFrame::EgressListener
                if lock(&agent.jail).is_some() && !egress_seen && agent.egress =>
            {
                egress_seen = true;
                super::egress::serve(k, agent, fds.pop())?;
            }
            AgentFrame::EgressListener => return Err(
                "an egress listener out of place (only the launcher of an agent with a network rule sends one, after its report)"
                    .into(),
            ),
            AgentFrame::JailReport(report) if lock(&agent.jail).is_none() => {
                k.record(Some(agent.id), RecordEvent::Sandbox(report.clone()));
                *lock(&agent.jail) = Some(report);
                mark_running(agent);
            }
            AgentFrame::JailReport(_) => {
                return Err("a second jail report (only the launcher sends one, first)".into())
            }
            AgentFrame::ToolExit { .. } => {
                return Err("a tool's exit status on an agent's socket (only a tool's init sends one)".into())
            }
            AgentFrame::Hello(h) if h.sdk.len() > agentos_syscalls::limits::SDK_NAME_MAX => {
                return Err(format!(
                    "a Hello whose sdk name is {} bytes (the limit is {})",
                    h.sdk.len(),
                    agentos_syscalls::limits::SDK_NAME_MAX
                ))
            }
            AgentFrame::Hello(h) => return Ok(Some(h)),
            AgentFrame::Request(r) | AgentFrame::TracedRequest { request: r, .. } => {
                return Err(format!("request {} before the Hello handshake", r.id))
            }
        }
    }
}

/// Serves the launcher's seccomp listener (`crate::sandbox::watch`): the agent's denied
/// syscalls are recorded under it. A listener frame without a seccomp descriptor is a
/// protocol violation.
fn watch_listener(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    listener: Option<std::os::fd::OwnedFd>,
) -> Result<(), String> {
    let Some(listener) = listener else {
        return Err("a sandbox listener frame without its descriptor".into());
    };
    if !crate::sandbox::is_listener(&listener) {
        return Err("a sandbox listener frame whose descriptor is not a seccomp listener".into());
    }
    let watcher = tokio::spawn(crate::sandbox::watch(
        Arc::clone(k),
        Arc::clone(agent),
        listener,
        crate::sandbox::agent_writable(k, agent),
        crate::sandbox_limits::Watched {
            limits: agent.limits,
            cgroup: agent.cgroup.clone(),
            launcher: agent.pid().unwrap_or(0),
        },
    ));
    agent.add_watcher(watcher);
    Ok(())
}

/// `Starting` → `Running`; refused (and nothing to do) when the jail report already marked it
/// or it is stopped.
fn mark_running(agent: &Agent) {
    let _ = agent.life().mark_running();
}

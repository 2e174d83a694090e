//! What each control request does: [`dispatch`] maps a [`ControlRequest`] to a [`Reply`] over
//! [`Operations`], the narrow set of kernel operations the control socket needs (implemented
//! by [`crate::Kernel`], and by a fake in the tests below).
//!
//! Guarantees:
//! - Every request kind is handled (an exhaustive match: a new kind is a compile error here).
//! - A refused operation is answered with [`ControlResponse::Error`] carrying the operation's
//!   [`ControlError`] unchanged: its kind is `agentctl`'s exit code.
//! - Every agent row answered (`ps`, `inspect`, `wait`) has its agent-controlled strings cut to
//!   [`display_bound`] ([`bounded_row`]); the approvals listing is bounded by the approvals
//!   queue itself (`crate::approvals`).
//!
//! Never: frame I/O here; the caller sends the reply ([`super::connection`]).

use agentos_syscalls::control::{
    display_bound, AgentInfo, AgentRef, ApprovalInfo, ApprovalPage, ApprovalQuery, ControlError,
    ControlRequest, ControlResponse, ExitStatus, KernelStatus, PolicySource, SpawnRequest,
};
use agentos_syscalls::{AgentId, Signal};

/// The kernel operations the control socket drives.
pub(crate) trait Operations {
    /// An agent's output: what is on disk, then a live feed.
    type Log: LogFeed;

    fn status(&self) -> KernelStatus;
    async fn spawn(&self, req: SpawnRequest) -> Result<AgentInfo, ControlError>;
    /// Spawns with `/mem/working` restored from checkpoint `checkpoint` (the latest when
    /// `None`) of agent `from`.
    async fn spawn_restored(
        &self,
        req: SpawnRequest,
        from: AgentId,
        checkpoint: Option<u64>,
    ) -> Result<AgentInfo, ControlError>;
    fn ps(&self) -> Vec<AgentInfo>;
    fn inspect(&self, r: &AgentRef) -> Result<AgentInfo, ControlError>;
    /// The agent's final row, once it has ended.
    async fn wait(&self, r: &AgentRef) -> Result<AgentInfo, ControlError>;
    async fn signal(
        &self,
        r: &AgentRef,
        signal: Signal,
        source: &str,
    ) -> Result<AgentId, ControlError>;
    fn follow_log(&self, r: &AgentRef) -> Result<Self::Log, ControlError>;
    fn approvals(&self) -> Vec<ApprovalInfo>;
    fn approvals_page(&self, q: &ApprovalQuery) -> ApprovalPage;
    fn decide(&self, id: u64, approved: bool, by: &str) -> Result<(), ControlError>;
    /// The agent and its policy digests before and after.
    fn reload_policy(
        &self,
        r: &AgentRef,
        source: &PolicySource,
        by: &str,
    ) -> Result<(AgentId, [u8; 32], [u8; 32]), ControlError>;
    /// Asks the kernel to shut down (it does so after the answer is sent).
    fn request_shutdown(&self);
}

/// An agent's output as the `Logs` request streams it.
pub(crate) trait LogFeed {
    /// Everything written before the feed was opened.
    fn backlog(&mut self) -> std::io::Result<Vec<u8>>;
    /// The next chunk; `None` once the agent has ended and all of it was returned.
    async fn next(&mut self) -> Option<Vec<u8>>;
}

/// What to send for one request.
#[derive(Debug)]
pub(crate) enum Reply<L> {
    /// This one frame (boxed: a status or agent row is large beside the other variants).
    Answer(Box<ControlResponse>),
    /// The log's chunks (only the backlog unless `follow`), then `LogEnd`.
    Log { feed: L, follow: bool },
    /// `ShuttingDown`, then [`Operations::request_shutdown`].
    Shutdown,
}

/// Performs `request` on behalf of `source` (`operator (uid N)`).
pub(crate) async fn dispatch<O: Operations>(
    ops: &O,
    request: ControlRequest,
    source: &str,
) -> Reply<O::Log> {
    let answer = match request {
        ControlRequest::Status => Ok(ControlResponse::Status(ops.status())),
        ControlRequest::Spawn(req) => ops.spawn(req).await.map(ControlResponse::Spawned),
        ControlRequest::SpawnRestored {
            spawn,
            from,
            checkpoint,
        } => ops
            .spawn_restored(spawn, from, checkpoint)
            .await
            .map(ControlResponse::Spawned),
        ControlRequest::Ps => Ok(ControlResponse::Agents(
            ops.ps().into_iter().map(bounded_row).collect(),
        )),
        ControlRequest::Inspect { agent } => ops.inspect(&agent).map(agent_row),
        ControlRequest::Wait { agent } => ops.wait(&agent).await.map(agent_row),
        ControlRequest::Signal { agent, signal } => ops
            .signal(&agent, signal, source)
            .await
            .map(|agent| ControlResponse::Signaled { agent, signal }),
        ControlRequest::Logs { agent, follow } => match ops.follow_log(&agent) {
            Ok(feed) => return Reply::Log { feed, follow },
            Err(e) => Err(e),
        },
        ControlRequest::Approvals => Ok(ControlResponse::Approvals(ops.approvals())),
        ControlRequest::ApprovalsPage(q) => {
            Ok(ControlResponse::ApprovalsPage(ops.approvals_page(&q)))
        }
        ControlRequest::Approve { id } => decide(ops, id, true, source),
        ControlRequest::Deny { id } => decide(ops, id, false, source),
        ControlRequest::ReloadPolicy { agent, policy } => reload(ops, &agent, &policy, source),
        ControlRequest::Shutdown => return Reply::Shutdown,
    };
    Reply::Answer(Box::new(answer.unwrap_or_else(ControlResponse::Error)))
}

/// `Approve` and `Deny`.
fn decide<O: Operations>(
    ops: &O,
    id: u64,
    approved: bool,
    source: &str,
) -> Result<ControlResponse, ControlError> {
    ops.decide(id, approved, source)
        .map(|()| ControlResponse::Decided { id, approved })
}

fn reload<O: Operations>(
    ops: &O,
    agent: &AgentRef,
    policy: &PolicySource,
    source: &str,
) -> Result<ControlResponse, ControlError> {
    let (agent, old_digest, new_digest) = ops.reload_policy(agent, policy, source)?;
    Ok(ControlResponse::Reloaded {
        agent,
        old_digest,
        new_digest,
    })
}

fn agent_row(a: AgentInfo) -> ControlResponse {
    ControlResponse::Agent(bounded_row(a))
}

/// An agent row with the strings the agent can influence cut to [`display_bound`].
pub(crate) fn bounded_row(mut a: AgentInfo) -> AgentInfo {
    match &mut a.exit {
        Some(ExitStatus::Killed { reason, .. }) | Some(ExitStatus::SandboxFailed { reason }) => {
            *reason = display_bound(reason);
        }
        Some(ExitStatus::Code(_)) | Some(ExitStatus::PosixSignal(_)) | None => {}
    }
    a
}

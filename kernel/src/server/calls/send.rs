//! `Send`: puts a message into another agent's inbox (the policy's `ipc_send` rule has allowed
//! the target, by id or name). Semantics in `crate::ipc`.

use agentos_policy::Access;
use agentos_syscalls::control::AgentRef;
use agentos_syscalls::{AgentId, Errno, Reply};

use super::class::Class;
use crate::agent::{Agent, AgentTable};
use crate::ipc::PushError;

use crate::util::now_ms;

pub(super) fn send(
    agents: &AgentTable,
    from: &Agent,
    to: AgentId,
    payload: &[u8],
) -> Result<Reply, Errno> {
    let target = agents
        .find(&AgentRef::Id(to))
        .map_err(|_| Errno::NotFound {
            what: format!(
                "agent {to}: no such agent on this kernel (running agents: `agentctl ps`)"
            ),
        })?;
    let ended = || Errno::NotFound {
        what: format!(
            "agent {to} has ended and its inbox is closed; send to a running agent (`agentctl ps`)"
        ),
    };
    if target.is_exited() {
        return Err(ended());
    }
    let limits = target.inbox.limits();
    match target.inbox.push(from.id, payload.to_vec(), now_ms()) {
        Ok(_) => Ok(Reply::Done),
        Err(PushError::Closed) => Err(ended()),
        Err(PushError::TooLarge { size, limit }) => Err(Errno::TooLarge { size, limit }),
        Err(PushError::Full { messages, bytes }) => Err(Errno::Busy {
            what: format!(
                "the inbox of agent {to} is full ({messages} messages, {bytes} bytes pending; \
                 limits {} messages, {} bytes); retry after it receives",
                limits.messages, limits.bytes
            ),
        }),
    }
}

/// `ipc_send` to the target's id (the judge also tries its name, [`target_name`]), the
/// payload's size as its bytes.
pub(super) fn classify(to: AgentId, payload: &[u8]) -> Result<Option<Class>, Errno> {
    Ok(Some(Class::new(
        "ipc_send",
        to.to_string(),
        Access::Write,
        payload.len() as u64,
    )))
}

/// The name of agent `to`, when it has one: the rules may list a peer by id or by name.
pub(super) fn target_name(agents: &AgentTable, to: AgentId) -> Option<String> {
    agents.find(&AgentRef::Id(to)).ok()?.name.clone()
}

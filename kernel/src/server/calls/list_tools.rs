//! `ListTools`: the tools of the operator's MCP servers (`--mcp`, see [`crate::mcp`]) that
//! the agent's policy (composed with the base policy) could let it call — each tool is
//! asked for as `mcp_tool` on `SERVER/TOOL {}`; a tool the policy refuses is not shown, so
//! an agent cannot discover what it may not use. No rule governs the call itself (like
//! `CheckPolicy`), but only servers some rule could allow are started to learn their tools.

use std::sync::Arc;

use agentos_policy::{Access, Effect, Mode};
use agentos_syscalls::{Errno, Reply};

use super::class::Class;
use crate::agent::Agent;
use crate::state::KernelInner;
use crate::util::now_ms;

/// The policy action of an MCP tool call.
pub(crate) const ACTION: &str = "mcp_tool";

pub(super) async fn list_tools(k: &Arc<KernelInner>, agent: &Arc<Agent>) -> Result<Reply, Errno> {
    let policy = agent.policy();
    let base = k.config.base_policy.as_ref();
    let now = now_ms();
    let allowed = |tool: &str| {
        let resource = format!("{tool} {{}}");
        let d = crate::policy::compose(
            &policy,
            base,
            &agentos_policy::Request {
                action: ACTION,
                resource: &resource,
                access: Access::Read,
                bytes: 2,
                now_ms: now,
            },
        );
        d.allowed || d.mode != Mode::Strict
    };
    // A server is started only when both policies have an allow rule that could cover an
    // MCP tool (or a mode that lets calls through).
    let could = |p: &agentos_policy::Policy| {
        p.mode() != Mode::Strict
            || p.rules()
                .iter()
                .any(|r| r.effect == Effect::Allow && r.covers_action(ACTION))
    };
    let might = could(&policy) && base.is_none_or(could);
    crate::mcp::list_tools(k, agent, allowed, |_| might).await
}

/// Not governed by a rule: every tool shown is judged per tool, and each call again.
pub(super) fn classify() -> Result<Option<Class>, Errno> {
    Ok(None)
}

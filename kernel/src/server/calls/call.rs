//! `Call { action, params_json }`: a named action performed by the tool provider the operator
//! declared for it (`--provider`, see [`crate::providers`]).
//!
//! **The resource the policy sees** is derived from the params ([`call_resource`]), so that
//! `hosts` and `deny_patterns` have something meaningful to match:
//!
//! | action | params (JSON object) | resource |
//! |---|---|---|
//! | `api_call` | `url` (required, `http://` or `https://`), `method` (`GET`/`POST`), `headers`, `body` | `url` |
//! | `database_query` | `query` (required, one SQL statement), `params` (list or object) | `query` |
//! | any other | any JSON object | `params_json` as sent |
//!
//! **The provider protocol.** The provider runs jailed like an `Exec` tool (never the agent's
//! workspace — so it can reach no more of it than the agent: nothing; no
//! network unless declared `network`, its `ro=`/`rw=` paths), gets on stdin one JSON object
//! `{"action": …, "params": …, "constraints": {"rule", "mode", "hosts", "paths", "commands",
//! "peers", "deny_patterns", "max_bytes"}}` — the constraints of the agent's rule that allowed
//! the call (`mode` is `read_only` or `read_write`; the kernel has already checked the
//! resource against both the agent's and the base policy) — and writes one JSON value on
//! stdout. Exit 0: the value is the call's result (`Reply::CallResult`). Exit 3: the provider
//! refused the call under its constraints (a write under `read_only`, a redirect to another
//! host): `PermissionDenied` naming the rule and the provider's `{"error": …}`. Any other
//! status, output that is not JSON, or a timeout (30 s): `Internal` / `TimedOut`, with the
//! provider's message.

use std::sync::Arc;

use agentos_policy::{Access, Request, RuleMode};
use agentos_syscalls::{Errno, Reply};
use serde_json::{json, Value};

use super::class::Class;
use crate::agent::Agent;
use crate::state::KernelInner;
use crate::tools::{self, ToolRun};
use crate::util::now_ms;

/// The exit status with which a provider says it refused the call under its constraints.
pub(crate) const EXIT_REFUSED: i32 = 3;

fn invalid(reason: String) -> Errno {
    Errno::InvalidArgument { reason }
}

/// The params of a call: a JSON object.
fn params_of(params_json: &str) -> Result<serde_json::Map<String, Value>, Errno> {
    match serde_json::from_str::<Value>(params_json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(invalid(format!(
            "params_json must be a JSON object, found {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        ))),
        Err(e) => Err(invalid(format!("params_json is not valid JSON: {e}"))),
    }
}

/// The policy resource of a `Call` (see the module docs).
pub(crate) fn call_resource(action: &str, params_json: &str) -> Result<String, Errno> {
    let key = match action {
        "api_call" => "url",
        "database_query" => "query",
        _ => {
            params_of(params_json)?;
            return Ok(params_json.to_string());
        }
    };
    let params = params_of(params_json)?;
    let value = params
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{action} needs params.{key} (a string)")))?;
    if action == "api_call" {
        let lower = value.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(invalid(format!(
                "api_call params.url `{value}` must start with http:// or https://"
            )));
        }
    }
    Ok(value.to_string())
}

/// The constraints of the agent's rule that allows the call, for the provider.
fn constraints(agent: &Agent, action: &str, resource: &str, bytes: u64) -> Value {
    let policy = agent.policy();
    let d = policy.decide(&Request {
        action,
        resource,
        access: Access::Read,
        bytes,
        now_ms: now_ms(),
    });
    let rule = d.rule.as_ref().filter(|_| d.allowed).and_then(|r| {
        policy
            .rules()
            .iter()
            .find(|x| x.id == r.id && x.line == r.line)
            .map(|x| (r.to_string(), x))
    });
    match rule {
        Some((name, r)) => {
            let c = &r.constraints;
            json!({
                "rule": name,
                "mode": match r.mode {
                    Some(RuleMode::ReadOnly) => "read_only",
                    Some(RuleMode::ReadWrite) | None => "read_write",
                },
                "hosts": c.hosts,
                "paths": c.paths,
                "commands": c.commands,
                "peers": c.peers,
                "deny_patterns": c.deny_patterns,
                "max_bytes": c.max_bytes,
            })
        }
        // Let through by a permissive or audit mode: nothing narrows it, but nothing grants
        // writes either.
        None => json!({
            "rule": "",
            "mode": "read_only",
            "hosts": [],
            "paths": [],
            "commands": [],
            "peers": [],
            "deny_patterns": [],
            "max_bytes": null,
        }),
    }
}

pub(crate) async fn call(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    action: &str,
    params_json: &str,
) -> Result<Reply, Errno> {
    if crate::mcp::split_action(action).is_some() {
        return crate::mcp::call_tool(k, agent, action, params_json).await;
    }
    let resource = call_resource(action, params_json)?;
    let params = params_of(params_json)?;
    let Some(provider) = k.config.providers.iter().find(|p| p.action == action) else {
        return Err(Errno::Unsupported {
            what: format!(
                "no tool provider for `{action}`; start the kernel with --provider {action}=PROGRAM"
            ),
        });
    };
    let constraints = constraints(agent, action, &resource, params_json.len() as u64);
    let rule = constraints["rule"].as_str().unwrap_or_default().to_string();
    let input = json!({
        "action": action,
        "params": Value::Object(params),
        "constraints": constraints,
    });
    let stdin = serde_json::to_vec(&input).map_err(|e| Errno::Internal {
        reason: format!("cannot encode the provider's input: {e}"),
    })?;
    let name = provider
        .program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| provider.program.display().to_string());
    let out = tools::run(
        k,
        agent,
        ToolRun {
            program: provider.program.clone(),
            argv: std::iter::once(name)
                .chain(provider.args.iter().cloned())
                .collect(),
            stdin,
            cwd: None,
            timeout: tools::DEFAULT_TIMEOUT,
            network: provider.network,
            workspace: None,
            view: Vec::new(),
            read_only: provider.read_only.clone(),
            read_write: provider.read_write.clone(),
        },
    )
    .await?;
    let who = format!(
        "tool provider for {action} ({})",
        provider.program.display()
    );
    if out.timed_out {
        return Err(Errno::TimedOut {
            after_ms: out.duration_ms,
        });
    }
    let message = || {
        let from_json = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string));
        from_json.unwrap_or_else(|| {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        })
    };
    match out.status {
        0 => {}
        EXIT_REFUSED => {
            return Err(Errno::PermissionDenied {
                rule,
                reason: format!("refused by the {who}: {}", message()),
            })
        }
        status => {
            return Err(Errno::Internal {
                reason: format!("the {who} failed with status {status}: {}", message()),
            })
        }
    }
    if out.truncated {
        return Err(Errno::Internal {
            reason: format!(
                "the {who} wrote more than {} bytes; its result was cut",
                tools::OUTPUT_CAP
            ),
        });
    }
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(v) => Ok(Reply::CallResult {
            result_json: v.to_string(),
        }),
        Err(e) => Err(Errno::Internal {
            reason: format!("the {who} wrote no valid JSON on stdout: {e}"),
        }),
    }
}

/// The call's own action, its resource from the params ([`call_resource`]), the params' size
/// as its bytes.
///
/// A `SERVER/TOOL` action is an MCP tool call ([`crate::mcp`]): action `mcp_tool`, resource
/// `SERVER/TOOL ARGS` (the canonical JSON arguments).
pub(super) fn classify(action: &str, params_json: &str) -> Result<Option<Class>, Errno> {
    if crate::mcp::split_action(action).is_some() {
        return Ok(Some(Class::new(
            super::list_tools::ACTION,
            crate::mcp::resource(action, params_json)?,
            Access::Read,
            params_json.len() as u64,
        )));
    }
    Ok(Some(Class::new(
        action,
        call_resource(action, params_json)?,
        Access::Read,
        params_json.len() as u64,
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_from_the_params() {
        assert_eq!(
            call_resource("api_call", r#"{"url":"http://127.0.0.1:8/x"}"#).unwrap(),
            "http://127.0.0.1:8/x"
        );
        assert_eq!(
            call_resource("database_query", r#"{"query":"SELECT 1"}"#).unwrap(),
            "SELECT 1"
        );
        assert_eq!(call_resource("other", r#"{"a":1}"#).unwrap(), r#"{"a":1}"#);
        assert!(call_resource("api_call", r#"{"url":"file:///etc/passwd"}"#).is_err());
        assert!(call_resource("api_call", "{}").is_err());
        assert!(call_resource("other", "[1]").is_err());
        assert!(call_resource("other", "not json").is_err());
    }
}

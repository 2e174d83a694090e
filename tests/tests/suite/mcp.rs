//! MCP tool servers (`--mcp`, issue 17): a real third-party server — the MCP project's
//! reference server `@modelcontextprotocol/server-everything` (npm, installed by `.ci/run`)
//! — run per agent in a tool jail and offered under the policy: `ListTools` shows what the
//! policy allows, calls are judged on `mcp_tool` / `SERVER/TOOL ARGS`, recorded, replayed;
//! a server killed mid-call is answered and restarted, a hanging call times out.

use std::path::PathBuf;

use agentos_tests::{wait_until, write_policy, TestKernel};

/// The reference server, or a failure saying how to install it (never a silent skip).
fn everything() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = PathBuf::from(dir).join("mcp-server-everything");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "the MCP reference server is not installed: run `npm install -g @modelcontextprotocol/server-everything` \
         (as root, so that it lands under /usr where the tool jail can read it; .ci/run does this)"
    );
}

/// A kernel with the reference server declared as `everything`.
fn kernel(extra: &[&str]) -> TestKernel {
    let decl = format!("everything={}", everything().display());
    let mut args = vec!["--mcp", decl.as_str()];
    args.extend_from_slice(extra);
    TestKernel::start_with(false, &args)
}

const RULES: &str = "  - name: echo-and-sum
    action: mcp_tool
    effect: allow
    constraints:
      tools: [\"everything/echo\", \"everything/get-sum\", \"everything/trigger-long-running-operation\"]
      deny_patterns: [\"secret\"]
  - name: no-env
    action: mcp_tool
    effect: deny
    constraints:
      tools: [\"everything/get-env\"]
";

/// The agent's `step N …` lines, in order, once it is done.
fn steps(k: &TestKernel, id: u64) -> Vec<String> {
    k.wait(id);
    let out = k.ctl_ok(&["logs", &id.to_string()]);
    out.lines()
        .filter(|l| l.starts_with("step "))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_agent_lists_and_calls_the_tools_its_policy_allows_and_no_others() {
    let k = kernel(&[]);
    let policy = write_policy(&k.work, "mcp", "permissive", &[], RULES);
    let policy_strict = write_policy(&k.work, "mcp-strict", "strict", &[], RULES);
    let _ = policy;
    let id = k.spawn(
        &policy_strict,
        &[
            "script",
            "tools",
            r#"tool:everything/echo:{"message":"hello mcp"}"#,
            r#"tool:everything/get-sum:{"a":2,"b":40}"#,
        ],
    );
    let lines = steps(&k, id);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    // Discovery shows exactly the allowed tools: not get-env (denied), not the others
    // (no rule).
    let shown = lines[0].split(": ok ").nth(1).unwrap_or_default();
    let mut shown: Vec<&str> = shown.split(',').collect();
    shown.sort_unstable();
    assert_eq!(
        shown,
        [
            "everything/echo",
            "everything/get-sum",
            "everything/trigger-long-running-operation"
        ],
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("ok ") && lines[1].contains("Echo: hello mcp"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("ok ") && lines[2].contains("42"),
        "{}",
        lines[2]
    );
}

#[test]
fn a_denied_tool_is_refused_with_its_rule_and_denied_arguments_too() {
    let k = kernel(&[]);
    let policy = write_policy(&k.work, "mcp", "strict", &[], RULES);
    // A tool a deny rule names: refused with that rule, and the strict mode ends the agent.
    let id = k.spawn(&policy, &["call", "everything/get-env", "{}"]);
    let line = k.wait_for_line(id, "");
    assert!(line.starts_with("refused: PermissionDenied"), "{line}");
    assert!(line.contains("no-env"), "{line}");
    assert_eq!(k.wait(id)["exit"]["signal"], "SIGPOLICY");
    // Arguments a deny pattern matches: refused, even spelled with a JSON escape.
    let id = k.spawn(
        &policy,
        &["call", "everything/echo", r#"{"message":"my \u0073ecret"}"#],
    );
    let line = k.wait_for_line(id, "");
    assert!(line.starts_with("refused: PermissionDenied"), "{line}");
    assert!(line.contains("secret"), "{line}");
    // A tool no rule names: the default deny.
    let id = k.spawn(&policy, &["call", "everything/get-tiny-image", "{}"]);
    let line = k.wait_for_line(id, "");
    assert!(line.starts_with("refused: PermissionDenied"), "{line}");
    // None of these started a server: nothing was allowed.
    let agents = k.state_dir.join("agents");
    wait_until("no MCP log", || {
        std::fs::read_dir(&agents)
            .map(|d| {
                d.flatten()
                    .all(|a| !a.path().join("mcp-everything.log").exists())
            })
            .unwrap_or(true)
    });
}

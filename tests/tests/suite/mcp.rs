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
    let policy = write_policy(&k.work, "mcp", "strict", &[], RULES);
    let id = k.spawn(
        &policy,
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
    // Each call is refused, and the strict mode ends the agent (SIGPOLICY may come before the
    // agent prints the answer, so the answer is read from the flight recorder).
    let refused = |action: &str, params: &str| -> (String, String) {
        let id = k.spawn(&policy, &["call", action, params]);
        assert_eq!(k.wait(id)["exit"]["signal"], "SIGPOLICY");
        k.records()
            .into_iter()
            .filter(|r| r.agent.map(|a| a.0) == Some(id))
            .find_map(|r| match r.event {
                agentos_kernel::recorder::RecordEvent::Syscall {
                    call: agentos_syscalls::Syscall::Call { .. },
                    result: Err(agentos_syscalls::Errno::PermissionDenied { rule, reason }),
                    ..
                } => Some((rule, reason)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no refused Call recorded for agent {id}"))
    };
    // A tool a deny rule names: refused with that rule.
    let (rule, _) = refused("everything/get-env", "{}");
    assert!(rule.starts_with("no-env ("), "{rule}");
    // Arguments a deny pattern matches: refused, even spelled with a JSON escape.
    let (_, reason) = refused("everything/echo", r#"{"message":"my \u0073ecret"}"#);
    assert!(reason.contains("secret"), "{reason}");
    // A tool no rule names: the default deny.
    let (rule, reason) = refused("everything/get-tiny-image", "{}");
    assert_eq!(rule, "", "{reason}");
    // None of these started a server: nothing was allowed.
    for a in std::fs::read_dir(k.state_dir.join("agents"))
        .unwrap()
        .flatten()
    {
        assert!(
            !a.path().join("mcp-everything.log").exists(),
            "{}",
            a.path().display()
        );
    }
}

/// The failure server (`tests/mcp/fake_mcp_server.py`) declared as `fake`, with `extra` flags.
fn fake_kernel(extra: &[&str]) -> TestKernel {
    let script = agentos_tests::repo_root().join("tests/mcp/fake_mcp_server.py");
    let script = std::fs::canonicalize(script).expect("tests/mcp/fake_mcp_server.py");
    let decl = format!(
        "fake=/usr/bin/python3,arg=-I,arg={s},ro={s}",
        s = script.display()
    );
    let mut args = vec!["--mcp", decl.as_str()];
    args.extend_from_slice(extra);
    TestKernel::start_with(false, &args)
}

const FAKE_RULES: &str = "  - name: fake
    action: mcp_tool
    effect: allow
    constraints:
      tools: [\"fake/*\"]
";

/// The `McpServerExited` records of agent `id`: (why, restarts).
fn exits(k: &TestKernel, id: u64) -> Vec<(String, u32)> {
    k.records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            agentos_kernel::recorder::RecordEvent::McpServerExited { why, restarts, .. } => {
                Some((why, restarts))
            }
            _ => None,
        })
        .collect()
}

/// The host pids of the kernel's processes whose command line names `needle`.
fn server_pids(k: &TestKernel, needle: &str) -> Vec<u32> {
    agentos_tests::descendants(k.kernel_pid())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// The host pids of the failure server's copies (python running the script).
fn fake_server_pids(k: &TestKernel) -> Vec<u32> {
    server_pids(k, "fake_mcp_server.py")
}

/// The reference server killed while it works on a call (a 60-second operation): the call is
/// answered `Interrupted` at once, the end is recorded, and the next call starts a new copy.
#[test]
fn the_reference_server_killed_mid_call_answers_interrupted_and_restarts() {
    let k = kernel(&[]);
    let policy = write_policy(&k.work, "mcp", "strict", &[], RULES);
    let id = k.spawn(
        &policy,
        &[
            "script",
            r#"tool:everything/echo:{"message":"up"}"#,
            r#"tool:everything/trigger-long-running-operation:{"duration":60,"steps":60}"#,
            r#"tool:everything/echo:{"message":"again"}"#,
        ],
    );
    let log = || k.logs(id);
    wait_until("the first call to be answered", || {
        log().contains("step 0 ")
    });
    // The long call follows at once. The agent's copy of the server is killed until that call
    // is answered: a kill that lands before the call arrives only makes the kernel start
    // another copy for it (after a backoff), which the next round kills mid-call.
    wait_until("the long call to be answered", || {
        if log().contains("step 1 ") {
            return true;
        }
        for pid in server_pids(&k, "server-everything") {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
        false
    });
    let lines = steps(&k, id);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].contains("Echo: up"), "{lines:#?}");
    assert!(lines[1].ends_with("err Interrupted"), "{lines:#?}");
    assert!(
        lines[2].contains("ok ") && lines[2].contains("Echo: again"),
        "{lines:#?}"
    );
    assert!(!exits(&k, id).is_empty(), "the server's end is recorded");
}

#[test]
fn a_server_killed_mid_call_answers_the_call_with_an_error_and_is_restarted() {
    let k = fake_kernel(&[]);
    let policy = write_policy(&k.work, "fake", "strict", &[], FAKE_RULES);
    let id = k.spawn(
        &policy,
        &[
            "script",
            r#"tool:fake/echo:{"message":"before"}"#,
            "tool:fake/sleep:{}",
            r#"tool:fake/echo:{"message":"after"}"#,
            "tool:fake/crash:{}",
            r#"tool:fake/echo:{"message":"again"}"#,
        ],
    );
    // The call is in flight once the server says so on its stderr (kept in its log).
    let log = k.state_dir.join(format!("agents/{id}/mcp-fake.log"));
    wait_until("the server to be inside the sleep call", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("sleeping"))
    });
    let pids = fake_server_pids(&k);
    assert!(!pids.is_empty(), "no server process found");
    for pid in &pids {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let lines = steps(&k, id);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].contains("ok ") && lines[0].contains("echo: before"),
        "{lines:#?}"
    );
    // Killed mid-call: the call is answered with an error, not left hanging…
    assert!(lines[1].ends_with("err Interrupted"), "{lines:#?}");
    // …and the next call restarts the server.
    assert!(
        lines[2].contains("ok ") && lines[2].contains("echo: after"),
        "{lines:#?}"
    );
    // A server that crashes by itself alike.
    assert!(lines[3].ends_with("err Interrupted"), "{lines:#?}");
    assert!(
        lines[4].contains("ok ") && lines[4].contains("echo: again"),
        "{lines:#?}"
    );
    // Each end is recorded, with the restarts so far and the server's last words.
    let ends = exits(&k, id);
    assert_eq!(ends.len(), 2, "{ends:#?}");
    assert_eq!(ends[0].1, 0, "{ends:#?}");
    assert!(ends[1].0.contains("crashing on purpose"), "{ends:#?}");
    // The agent's servers die with it.
    wait_until("the servers to be gone with their agent", || {
        fake_server_pids(&k).is_empty()
    });
}

#[test]
fn a_hanging_call_times_out_and_the_server_is_replaced() {
    let k = fake_kernel(&["--mcp-timeout-ms", "1500"]);
    let policy = write_policy(&k.work, "fake", "strict", &[], FAKE_RULES);
    let id = k.spawn(
        &policy,
        &[
            "script",
            "tool:fake/sleep:{}",
            r#"tool:fake/echo:{"message":"still here"}"#,
        ],
    );
    let lines = steps(&k, id);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].ends_with("err TimedOut"), "{lines:#?}");
    assert!(lines[1].contains("echo: still here"), "{lines:#?}");
    let ends = exits(&k, id);
    assert_eq!(ends.len(), 1, "{ends:#?}");
    assert!(ends[0].0.contains("timed out"), "{ends:#?}");
}

/// Hostile agent, from inside its sandbox: it cannot discover or call a tool its policy does
/// not allow, cannot have the kernel hand it (or hold) an unbounded result, and a server that
/// floods or stalls costs it a timeout, not the kernel its answers to others.
#[test]
fn a_hostile_agent_meets_the_policy_and_the_bounds() {
    let k = fake_kernel(&["--mcp-timeout-ms", "3000"]);
    let rules = "  - name: only-echo-and-big
    action: mcp_tool
    effect: allow
    constraints:
      tools: [\"fake/echo\", \"fake/big\"]
";
    let strict = write_policy(&k.work, "hostile", "strict", &[], rules);
    let id = k.spawn(
        &strict,
        &[
            "script",
            "tools",
            // 1.5 MB of result: over the answer bound.
            r#"tool:fake/big:{"n":1500000}"#,
            // 3 MB in one message: dropped by the transport unread; the call times out.
            r#"tool:fake/big:{"n":3000000}"#,
            r#"tool:fake/echo:{"message":"ok"}"#,
            // Not allowed: refused (and, strict, the end of the agent: it waits for it).
            "tool:fake/sleep:{}",
            "park",
        ],
    );
    // While the flood is in flight the kernel answers the operator.
    k.ctl_ok(&["ps"]);
    let lines = steps(&k, id);
    // The last answer may be cut off by SIGPOLICY; the recorder has it (below).
    assert!(lines.len() >= 4, "{lines:#?}");
    assert!(lines[0].ends_with("ok fake/echo,fake/big"), "{lines:#?}");
    assert!(lines[1].ends_with("err TooLarge"), "{lines:#?}");
    assert!(lines[2].ends_with("err TimedOut"), "{lines:#?}");
    assert!(lines[3].contains("echo: ok"), "{lines:#?}");
    assert!(
        lines
            .get(4)
            .is_none_or(|l| l.ends_with("err PermissionDenied")),
        "{lines:#?}"
    );
    assert_eq!(k.wait(id)["exit"]["signal"], "SIGPOLICY");
    // Every call is in the flight recorder with its arguments and answer.
    let calls: Vec<_> = k
        .records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            agentos_kernel::recorder::RecordEvent::Syscall { call, result, .. } => {
                Some((call, result))
            }
            _ => None,
        })
        .collect();
    assert!(calls.iter().any(|(c, r)| matches!(c,
        agentos_syscalls::Syscall::Call { action, params_json } if action == "fake/echo" && params_json.contains("\"ok\""))
        && matches!(r, Ok(agentos_syscalls::Reply::CallResult { result_json }) if result_json.contains("echo: ok"))));
    assert!(calls.iter().any(|(c, r)| matches!(c, agentos_syscalls::Syscall::Call { action, .. } if action == "fake/sleep")
        && matches!(r, Err(agentos_syscalls::Errno::PermissionDenied { .. }))));
}

#[test]
fn a_replayed_run_answers_the_tools_from_the_log_without_any_server() {
    let k = kernel(&[]);
    let policy = write_policy(&k.work, "mcp", "strict", &[], RULES);
    let steps = [
        "script",
        "tools",
        r#"tool:everything/echo:{"message":"recorded"}"#,
        r#"write:/mem/working/echoed=$"#,
        "exit:0",
    ];
    let id = k.spawn(&policy, &steps);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let output = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(output.contains("Echo: recorded"), "{output}");
    k.ctl_ok(&["kernel", "stop"]);
    // The replay kernel declares no MCP server, and its policy allows nothing: every answer
    // comes from the log.
    let deny = k.work.join("deny-all.md");
    std::fs::write(
        &deny,
        "---\nkernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies:\n  - name: nothing\n    action: mcp_tool\n    effect: deny\n---\n",
    )
    .unwrap();
    let replay_state = k.work.join("replay-state");
    let out = std::process::Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(&k.state_dir)
        .args(["replay", "run", "--agent", &id.to_string(), "--policy"])
        .arg(&deny)
        .arg("--replay-state-dir")
        .arg(&replay_state)
        .args(["--json", "--"])
        .arg(&k.agent_bin)
        .args(steps)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_str(err.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| {
            panic!("no JSON report ({e}):\n{err}");
        });
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["status"], "identical", "{report:#}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), output);
}

#[test]
fn a_tool_call_can_need_approval_and_be_rate_limited() {
    let k = kernel(&[]);
    let rules = "  - name: ask-echo
    action: mcp_tool
    effect: allow
    requires_approval: true
    constraints:
      tools: [\"everything/echo\"]
  - name: one-sum
    action: mcp_tool
    effect: allow
    rate_limit: 1/minute
    constraints:
      tools: [\"everything/get-sum\"]
";
    let policy = write_policy(&k.work, "gated", "strict", &[], rules);
    let id = k.spawn(
        &policy,
        &[
            "script",
            r#"tool:everything/echo:{"message":"approved"}"#,
            r#"tool:everything/get-sum:{"a":1,"b":2}"#,
            r#"tool:everything/get-sum:{"a":1,"b":2}"#,
        ],
    );
    // The operator sees the tool and its arguments, and approves.
    let mut rows = Vec::new();
    wait_until("the tool call to wait for approval", || {
        let v: serde_json::Value =
            serde_json::from_str(&k.ctl_ok(&["approvals", "--json"])).unwrap();
        rows = v.as_array().cloned().unwrap_or_default();
        !rows.is_empty()
    });
    assert_eq!(rows[0]["action"], "mcp_tool", "{rows:#?}");
    assert_eq!(
        rows[0]["resource"], r#"everything/echo {"message":"approved"}"#,
        "{rows:#?}"
    );
    let approval = rows[0]["id"].to_string();
    k.ctl_ok(&["approve", &approval]);
    let lines = steps(&k, id);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].contains("Echo: approved"), "{lines:#?}");
    assert!(
        lines[1].contains("ok ") && lines[1].contains('3'),
        "{lines:#?}"
    );
    assert!(lines[2].ends_with("err RateLimited"), "{lines:#?}");
}

/// Hostile agent, from inside its sandbox, with many calls in flight (a real Python agent on
/// the async SDK): an agent runs at most four tools at once, MCP calls included — the rest
/// are refused `Busy` at once, never queued in the kernel — and the stalled ones time out
/// without holding up the kernel or the agent's next call.
#[test]
fn many_stalled_calls_in_flight_are_bounded_per_agent() {
    let k = fake_kernel(&["--mcp-timeout-ms", "1500"]);
    let policy = write_policy(&k.work, "fake", "strict", &[], FAKE_RULES);
    let script = agentos_tests::repo_root().join("tests/mcp/flood_agent.py");
    let id: u64 = k
        .ctl_ok(&[
            "spawn",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "python3",
            script.to_str().unwrap(),
        ])
        .trim()
        .parse()
        .unwrap();
    // The kernel answers its operator while the agent's calls hang.
    k.ctl_ok(&["ps"]);
    let flood = k.wait_for_line(id, "flood: ");
    let kinds: Vec<&str> = flood["flood: ".len()..].split(',').collect();
    assert_eq!(kinds.len(), 8, "{flood}");
    assert_eq!(kinds.iter().filter(|k| **k == "Busy").count(), 4, "{flood}");
    assert!(
        kinds
            .iter()
            .filter(|k| **k != "Busy")
            .all(|k| matches!(*k, "TimedOut" | "Interrupted")),
        "{flood}"
    );
    let after = k.wait_for_line(id, "after: ");
    assert_eq!(after, "after: echo: after the flood");
    assert_eq!(k.wait(id)["exit"]["code"], 0);
}

#[test]
fn a_server_that_dies_on_every_call_backs_off_further_each_time() {
    let k = fake_kernel(&[]);
    let policy = write_policy(&k.work, "fake", "strict", &[], FAKE_RULES);
    let id = k.spawn(
        &policy,
        &[
            "script",
            "tool:fake/crash:{}",
            "tool:fake/crash:{}",
            "tool:fake/crash:{}",
        ],
    );
    let lines = steps(&k, id);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines.iter().all(|l| l.ends_with("err Interrupted")),
        "{lines:#?}"
    );
    let backoffs: Vec<(u32, u64)> = k
        .records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            agentos_kernel::recorder::RecordEvent::McpServerExited {
                restarts,
                backoff_ms,
                ..
            } => Some((restarts, backoff_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(backoffs, [(0, 100), (1, 200), (2, 400)]);
}

//! `mcp_tool` and `tools`: MCP tools judged by name, their arguments by `deny_patterns`.

use crate::{Access, Policy, Request, WarningKind};

/// A strict policy `t.md` of `rules` (YAML list items), or its error as text.
pub(crate) fn policy(rules: &str) -> Result<Policy, String> {
    let text =
        format!("kernel: {{version: \"1.0\", mode: strict}}\nsignals: []\npolicies:\n{rules}");
    Policy::parse("t.md", &text).map_err(|e| e.to_string())
}

fn decide(p: &Policy, resource: &str) -> crate::Decision {
    p.decide(&Request {
        action: "mcp_tool",
        resource,
        access: Access::Read,
        bytes: resource.len() as u64,
        now_ms: 0,
    })
}

const RULES: &str = "  - name: everything
    action: mcp_tool
    effect: allow
    constraints:
      tools: [\"everything/echo\", \"everything/get-*\"]
      deny_patterns: [\"secret\"]
  - name: no-env
    action: mcp_tool
    effect: deny
    constraints:
      tools: [\"*/get-env\"]
";

#[test]
fn a_tool_is_allowed_by_name_and_its_arguments_by_deny_patterns() {
    let p = policy(RULES).unwrap();
    let d = decide(&p, r#"everything/echo {"message":"hi"}"#);
    assert!(d.allowed, "{}", d.reason);
    assert_eq!(d.rule.unwrap().id, "everything");
    assert!(decide(&p, "everything/get-sum {}").allowed);
    // Not listed: default deny.
    let d = decide(&p, "everything/add {}");
    assert!(!d.allowed);
    assert!(d.rule.is_none());
    // `*` does not cross into another server.
    assert!(!decide(&p, "other/echo {}").allowed);
    // The arguments match a deny pattern: the allow rule misses.
    let d = decide(&p, r#"everything/echo {"message":"my secret"}"#);
    assert!(!d.allowed);
    // A deny rule names the tool.
    let d = decide(&p, "everything/get-env {}");
    assert!(!d.allowed);
    assert_eq!(d.rule.unwrap().id, "no-env");
}

#[test]
fn tools_belong_to_mcp_tool_rules_and_name_a_server() {
    let e = policy(
        "  - {name: x, action: file_read, effect: allow, constraints: {tools: [\"a/b\"]}}\n",
    )
    .unwrap_err();
    assert!(
        e.contains("`tools` applies only to `mcp_tool` rules"),
        "{e}"
    );
    let e =
        policy("  - {name: x, action: mcp_tool, effect: allow, constraints: {tools: [echo]}}\n")
            .unwrap_err();
    assert!(e.contains("names no server"), "{e}");
    assert!(crate::is_known_action("mcp_tool"));
}

#[test]
fn lint_warns_about_an_mcp_tool_rule_without_tools() {
    let every = |rules: &str| -> usize {
        policy(rules)
            .unwrap()
            .lint()
            .into_iter()
            .filter(|w| w.kind == WarningKind::EveryTool)
            .count()
    };
    assert_eq!(
        every("  - {name: all, action: mcp_tool, effect: allow}\n"),
        1
    );
    assert_eq!(every(RULES), 0);
    // A deny rule without tools is not broad in the dangerous direction.
    assert_eq!(
        every("  - {name: none, action: mcp_tool, effect: deny}\n"),
        0
    );
}

//! The three policy templates of the Agent OS Security Specification v1.0 ("Policy
//! Templates"), and the Markdown page `agentctl policy init` writes around them.
//!
//! Each constant is the YAML the spec prints (kept verbatim in
//! `tests/fixtures/good/spec-template-*.md`) with one change: its `signals:` list also names
//! the signals an operator needs (DESIGN §7; each is maskable, so it reaches the agent only
//! when listed). The spec's lists trap agents: SIGSTOP without SIGCONT freezes an agent that
//! `agentctl cont` can never resume, and without SIGTERM `agentctl kernel stop` cannot ask an
//! agent to end, only SIGKILL it after the grace period. So every template lists SIGSTOP with
//! SIGCONT, and SIGTERM. Each loads as written and lints clean (tested here).

/// "Strict (Recommended for Production)", with SIGCONT and SIGTERM.
pub const STRICT: &str = r#"kernel:
  version: "1.0"
  mode: strict

signals:
  - SIGSTOP
  - SIGCONT
  - SIGTERM
  - SIGKILL
  - SIGINT

policies:
  - action: database_query
    effect: allow
    mode: read_only
  - action: database_write
    effect: deny
  - action: file_read
    effect: allow
  - action: file_write
    effect: allow
    requires_approval: true
  - action: api_call
    effect: allow
    rate_limit: "100/hour"
  - action: send_email
    effect: allow
    requires_approval: true
  - action: code_execution
    effect: deny

observability:
  metrics: true
  traces: true
  flight_recorder: true
"#;

/// "Permissive (Development)", with SIGCONT and SIGTERM.
pub const PERMISSIVE: &str = r#"kernel:
  version: "1.0"
  mode: permissive

signals:
  - SIGSTOP
  - SIGCONT
  - SIGTERM
  - SIGKILL

policies:
  - action: "*"
    effect: allow
    constraints:
      log: true

observability:
  metrics: true
  traces: false
  flight_recorder: true
"#;

/// "Audit (Testing)", with SIGCONT and SIGTERM.
pub const AUDIT: &str = r#"kernel:
  version: "1.0"
  mode: audit

signals:
  - SIGSTOP
  - SIGCONT
  - SIGTERM

policies:
  - action: "*"
    effect: allow
    constraints:
      log: true
      dry_run: true

observability:
  metrics: true
  traces: true
  flight_recorder: true
"#;

/// A template by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    Strict,
    Permissive,
    Audit,
}

impl Template {
    /// Every template, in the spec's order.
    pub const ALL: [Template; 3] = [Template::Strict, Template::Permissive, Template::Audit];

    /// `strict`, `permissive` or `audit`.
    pub const fn name(self) -> &'static str {
        match self {
            Template::Strict => "strict",
            Template::Permissive => "permissive",
            Template::Audit => "audit",
        }
    }

    /// The template's YAML: the spec's, with the operator's signals added.
    pub const fn yaml(self) -> &'static str {
        match self {
            Template::Strict => STRICT,
            Template::Permissive => PERMISSIVE,
            Template::Audit => AUDIT,
        }
    }

    /// What the template is for, one paragraph of Markdown.
    const fn intro(self) -> &'static str {
        match self {
            Template::Strict => {
                "The spec's **Strict** template (recommended for production). \
`kernel.mode: strict`: a call no rule allows is refused and the agent gets SIGPOLICY. It reads \
files and queries databases (read-only), writes files and sends email only after an operator \
runs `agentctl approve ID`, calls APIs at most 100 times an hour, and never writes databases \
or executes code."
            }
            Template::Permissive => {
                "The spec's **Permissive** template (development). \
`kernel.mode: permissive`: nothing is refused; every violation is recorded. Every action is \
allowed and logged."
            }
            Template::Audit => {
                "The spec's **Audit** template (testing). `kernel.mode: audit`: \
everything is allowed and recorded; every call is logged and marked `dry_run` (decided and \
recorded, not performed)."
            }
        }
    }

    /// The Markdown page `agentctl policy init` writes: what the file is, the template's YAML
    /// in a fenced block (which is what agentos loads), and how to change and check it.
    pub fn page(self) -> String {
        format!(
            "# Agent security policy ({name})\n\
\n\
This file is `.agents/security.md`: the policy agentos enforces on the agent in this \
repository (Agent OS Security Specification v1.0). The policy is the YAML in the fenced \
block below; the prose around it is ignored. Rule order does not matter: a call is allowed \
only when an `allow` rule matches and no `deny` rule does.\n\
\n\
{intro}\n\
\n\
```yaml\n\
{yaml}```\n\
\n\
## Signals\n\
\n\
`signals:` names the signals an operator may send the agent; any other maskable signal is \
refused (SIGKILL, SIGPOLICY and SIGTRUST are always delivered). This template lists SIGSTOP \
and SIGCONT together (`agentctl stop` freezes the agent, `agentctl cont` resumes it; SIGSTOP \
alone would leave a stopped agent frozen until killed) and SIGTERM (`agentctl kernel stop` \
asks the agent to end and SIGKILLs it only after the grace period; without SIGTERM the \
agent just waits out the grace period and is killed).\n\
\n\
## Changing it\n\
\n\
- Narrow a rule with `constraints` (`paths`, `commands`, `hosts`, `peers`, `max_bytes`, \
`deny_patterns`) and give it a `name` so messages can point at it.\n\
- Check the file with `agentctl policy lint .agents/security.md`.\n\
- See how a call would be decided with \
`agentctl policy explain .agents/security.md --action file_read --resource /workspace/README.md`.\n\
",
            name = self.name(),
            intro = self.intro(),
            yaml = self.yaml(),
        )
    }
}

impl std::str::FromStr for Template {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown template `{s}`: expected strict, permissive or audit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Access, Mode, Policy, Request};
    use agentos_syscalls::Signal;

    #[test]
    fn templates_load_as_written_and_as_pages() {
        for (t, mode, rules) in [
            (Template::Strict, Mode::Strict, 7),
            (Template::Permissive, Mode::Permissive, 1),
            (Template::Audit, Mode::Audit, 1),
        ] {
            let p = Policy::parse("security.md", t.yaml()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((p.mode(), p.rules().len()), (mode, rules), "{}", t.name());
            let page = Policy::parse("security.md", &t.page()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(page.origin(), crate::Origin::FencedBlocks);
            assert_eq!(page.rules().len(), rules);
            assert!(p.lint().is_empty(), "{}: {:?}", t.name(), p.lint());
            assert_eq!(t.name().parse::<Template>(), Ok(t));
        }
        let strict = Policy::parse("s.md", STRICT).unwrap_or_else(|e| panic!("{e}"));
        let req = Request {
            action: "code_execution",
            resource: "ls",
            access: Access::Read,
            bytes: 0,
            now_ms: 0,
        };
        assert!(!strict.decide(&req).allowed);
        assert!("lenient".parse::<Template>().is_err());
    }

    #[test]
    fn templates_are_the_spec_plus_the_operators_signals() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/good/");
        for t in Template::ALL {
            let f = std::fs::read_to_string(format!("{dir}spec-template-{}.md", t.name()))
                .unwrap_or_else(|e| panic!("{e}"));
            // The fixture holds the spec's YAML verbatim: the template is the same text once
            // the signals it adds are taken out again.
            let spec: String = t
                .yaml()
                .lines()
                .filter(|l| !matches!(l.trim(), "- SIGCONT" | "- SIGTERM"))
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(f.contains(&spec), "fixture for {} differs", t.name());
            let spec = Policy::parse("spec.md", &f).unwrap_or_else(|e| panic!("{e}"));
            let kinds: Vec<_> = spec.lint().iter().map(|w| w.kind).collect();
            // What the spec's own list gets wrong, and what the template fixes.
            assert!(
                kinds.contains(&crate::WarningKind::StopWithoutCont),
                "{kinds:?}"
            );
            assert!(kinds.contains(&crate::WarningKind::NoSigterm), "{kinds:?}");
            let p = Policy::parse("t.md", t.yaml()).unwrap_or_else(|e| panic!("{e}"));
            for s in [Signal::Stop, Signal::Cont, Signal::Term] {
                assert!(p.signal_allowed(s), "{}: {s}", t.name());
            }
        }
    }
}

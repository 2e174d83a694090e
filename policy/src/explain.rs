//! [`Policy::explain`]: every rule that could apply to a request, whether it matched and
//! why not, beside the decision [`Policy::decide`] makes.

use std::fmt;

use crate::engine::{Decision, Eval, Policy, Request, RuleRef};
use crate::{Access, Effect};

/// How one rule related to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// An allow rule that allows the call, or a deny rule that fires.
    Matched,
    /// Out of the rule's scope, or (allow rule) over one of its limits.
    Missed,
    /// The rule cannot be evaluated on this resource: an allow rule does not allow, a deny
    /// rule denies.
    Unevaluable,
}

impl Outcome {
    /// `matched`, `missed`, `unevaluable`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Missed => "missed",
            Outcome::Unevaluable => "unevaluable",
        }
    }
}

/// One rule's verdict on the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCheck {
    pub rule: RuleRef,
    /// The rule's action (`*` included).
    pub action: String,
    pub effect: Effect,
    pub outcome: Outcome,
    /// Why it matched or missed: "path not under /workspace/src/**".
    pub reason: String,
}

/// The answer of [`Policy::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub action: String,
    pub resource: String,
    pub access: Access,
    pub bytes: u64,
    /// Every rule whose action is the request's or `*`, in file order.
    pub checks: Vec<RuleCheck>,
    /// What [`Policy::decide`] says (its `rule` is the deciding rule).
    pub decision: Decision,
}

impl Policy {
    /// Explains how `req` is decided: each rule for its action (or `*`) with whether it
    /// matched and why not, then the decision itself. Pure, like [`Policy::decide`].
    pub fn explain(&self, req: &Request<'_>) -> Explanation {
        let look = crate::engine::Look::new(None);
        let checks = self
            .rules()
            .iter()
            .filter(|r| r.covers_action(req.action))
            .map(|r| {
                let (outcome, why) = match r.eval(req, &look) {
                    Eval::Match(w) => (Outcome::Matched, w),
                    Eval::Miss(w) => (Outcome::Missed, w),
                    Eval::Unevaluable(w) => (Outcome::Unevaluable, w),
                };
                let mut reason = r.describe(req, &look, why);
                if outcome == Outcome::Unevaluable {
                    reason = format!(
                        "cannot evaluate the rule: {reason} ({})",
                        match r.effect {
                            Effect::Allow => "so it does not allow",
                            Effect::Deny => "so it denies",
                        }
                    );
                }
                RuleCheck {
                    rule: RuleRef {
                        id: r.id.clone(),
                        file: self.path().to_string(),
                        line: r.line,
                    },
                    action: r.action.clone(),
                    effect: r.effect,
                    outcome,
                    reason,
                }
            })
            .collect();
        Explanation {
            action: req.action.to_string(),
            resource: req.resource.to_string(),
            access: req.access,
            bytes: req.bytes,
            checks,
            decision: self.decide(req),
        }
    }
}

impl fmt::Display for Explanation {
    /// ```text
    /// file_write on /mem/x (write, 0 bytes)
    ///   missed   allow write-src (security.md:12): path not under /workspace/src/**
    /// denied: no rule allows file_write on /mem/x; nearest: …
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match self.access {
            Access::Read => "read",
            Access::Write => "write",
        };
        writeln!(
            f,
            "{} on {} ({access}, {} bytes)",
            self.action, self.resource, self.bytes
        )?;
        if self.checks.is_empty() {
            writeln!(f, "  no rule names action `{}` or `*`", self.action)?;
        }
        for c in &self.checks {
            let effect = match c.effect {
                Effect::Allow => "allow",
                Effect::Deny => "deny ",
            };
            let decider = if self.decision.rule.as_ref() == Some(&c.rule) {
                "  ← decides"
            } else {
                ""
            };
            writeln!(
                f,
                "  {:<11} {effect} {}: {}{decider}",
                c.outcome.as_str(),
                c.rule,
                c.reason
            )?;
        }
        let verdict = if self.decision.allowed {
            "allowed"
        } else {
            "denied"
        };
        match &self.decision.rule {
            Some(r) => write!(f, "{verdict} by {r}: {}", self.decision.reason)?,
            None => write!(f, "{verdict} by default: {}", self.decision.reason)?,
        }
        let mut flags = Vec::new();
        if self.decision.requires_approval {
            flags.push("requires approval".to_string());
        }
        if let Some((_, rate)) = self.decision.rate_limit {
            flags.push(format!("rate limit {rate}"));
        }
        if self.decision.log {
            flags.push("logged".to_string());
        }
        if self.decision.dry_run {
            flags.push("dry run".to_string());
        }
        if !flags.is_empty() {
            write!(f, " ({})", flags.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_every_rule_of_the_action() {
        let text = "kernel: {version: \"1.0\", mode: strict}\nsignals: []\npolicies:\n  \
- {name: write-src, action: file_write, effect: allow, constraints: {paths: [\"/workspace/src/**\"]}}\n  \
- {name: small, action: file_write, effect: allow, constraints: {max_bytes: 4096}}\n  \
- {name: ro, action: \"*\", effect: allow, mode: read_only}\n  \
- {name: no-secret, action: \"*\", effect: deny, constraints: {deny_patterns: [secret]}}\n  \
- {name: net, action: api_call, effect: allow}\n";
        let p = Policy::parse("security.md", text).unwrap_or_else(|e| panic!("{e}"));
        let req = Request {
            action: "file_write",
            resource: "/mem/x",
            access: Access::Write,
            bytes: 9000,
            now_ms: 0,
        };
        let e = p.explain(&req);
        assert_eq!(
            e.to_string(),
            "file_write on /mem/x (write, 9000 bytes)
  missed      allow write-src (security.md:4): path not under /workspace/src/**
  missed      allow small (security.md:5): 9000 bytes is over max_bytes 4096
  missed      allow ro (security.md:6): rule is read_only and the call writes
  missed      deny  no-secret (security.md:7): within the rule's limits
denied by default: no rule allows file_write on /mem/x; nearest: rule `write-src` (security.md:4): path not under /workspace/src/**; rule `small` (security.md:5): 9000 bytes is over max_bytes 4096; rule `ro` (security.md:6): rule is read_only and the call writes"
        );
        let secret = Request {
            resource: "/workspace/src/secret",
            bytes: 1,
            ..req
        };
        let e = p.explain(&secret);
        assert_eq!(e.checks[0].outcome, Outcome::Matched);
        assert_eq!(
            e.checks[3].reason,
            "deny pattern `secret` matches /workspace/src/secret"
        );
        assert_eq!(e.decision.rule.map(|r| r.id), Some("no-secret".to_string()));
    }
}

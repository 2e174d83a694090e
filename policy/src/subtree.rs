//! Questions about every path beneath a directory at once, for views that cannot ask per
//! call: a tool's jail binds a workspace subtree read-write only when *every* write beneath
//! it would be allowed ([`Policy::allows_all_beneath`]), and skips walking a subtree no
//! allow rule can reach ([`Policy::may_allow_beneath`]).
//!
//! Both answers are **conservative**: `allows_all_beneath` says `true` only when it is
//! certain, `may_allow_beneath` says `false` only when it is certain. They look at rule
//! structure only (never at `kernel.mode`): a `paths` glob is reduced to its literal prefix
//! (the text before its first metacharacter), and a rule is taken to reach beneath `D` unless
//! every one of its globs' prefixes diverges from `D/`.

use crate::engine::{Access, FastGlob};
use crate::{Effect, Policy, Rule, RuleMode};

/// `dir` with exactly one trailing `/`.
fn with_slash(dir: &str) -> String {
    format!("{}/", dir.trim_end_matches('/'))
}

/// The text of `glob` before its first metacharacter.
fn literal_prefix(glob: &str) -> &str {
    let end = glob
        .find(['*', '?', '[', ']', '{', '}', '\\'])
        .unwrap_or(glob.len());
    &glob[..end]
}

impl Rule {
    /// Whether the rule's mode admits `access`.
    fn admits(&self, access: Access) -> bool {
        !(self.mode == Some(RuleMode::ReadOnly) && access == Access::Write)
    }

    /// Whether the rule's `paths` may match some path strictly beneath `dir_slash` (`D/`).
    /// Rules without `paths` may; a glob may unless its literal prefix and `D/` diverge.
    fn may_reach_beneath(&self, dir_slash: &str) -> bool {
        let paths = &self.constraints.paths;
        paths.is_empty()
            || paths.iter().any(|g| {
                let lit = literal_prefix(g);
                if lit.len() == g.len() {
                    // A literal path: it must itself lie beneath D.
                    g.len() > dir_slash.len() && g.starts_with(dir_slash)
                } else {
                    lit.starts_with(dir_slash) || dir_slash.starts_with(lit)
                }
            })
    }

    /// Whether the rule (an allow rule) certainly matches every path beneath `dir_slash`:
    /// a `paths` glob `P/**` with `D/` under `P/` (or no `paths`), and no other scope key
    /// (`commands`, `hosts`, `peers`) or limit (`max_bytes`, `deny_patterns`) that could
    /// leave a path out.
    fn covers_all_beneath(&self, dir_slash: &str) -> bool {
        let c = &self.constraints;
        if !(c.commands.is_empty()
            && c.tools.is_empty()
            && c.hosts.is_empty()
            && c.peers.is_empty()
            && c.max_bytes.is_none()
            && c.deny_patterns.is_empty())
        {
            return false;
        }
        c.paths.is_empty()
            || c.paths.iter().any(|g| {
                g == "**"
                    || matches!(FastGlob::compile(g), Some(FastGlob::Under(p)) if dir_slash.starts_with(&*p))
            })
    }
}

impl Policy {
    /// Whether every `action` request with `access` on any path strictly beneath `dir`
    /// (a normalized absolute path; `dir/…`, at any depth, existing or not) is certainly
    /// allowed by this policy **without** approval, dry run or rate limit: some allow rule
    /// covers all of `dir/**` with no limit, no allow rule that may reach beneath `dir` asks
    /// for approval, a dry run or a rate limit (a view's accesses cannot be parked, skipped
    /// or counted one by one), and no deny rule may reach beneath `dir` (any deny rule
    /// without `paths`, or with `deny_patterns` only, may). Conservative: `false` when
    /// unsure.
    pub fn allows_all_beneath(&self, action: &str, dir: &str, access: Access) -> bool {
        let dir_slash = with_slash(dir);
        let mut covered = false;
        for r in self.rules() {
            if !r.covers_action(action) || !r.admits(access) || !r.may_reach_beneath(&dir_slash) {
                continue;
            }
            match r.effect {
                Effect::Deny => return false,
                Effect::Allow => {
                    if r.requires_approval || r.constraints.dry_run || r.rate_limit.is_some() {
                        return false;
                    }
                    covered |= r.covers_all_beneath(&dir_slash);
                }
            }
        }
        covered
    }

    /// Whether some allow rule may allow an `action` request with `access` on a path strictly
    /// beneath `dir`. Conservative: `true` when unsure; `false` means every such request is
    /// denied (by default).
    pub fn may_allow_beneath(&self, action: &str, dir: &str, access: Access) -> bool {
        let dir_slash = with_slash(dir);
        self.rules().iter().any(|r| {
            r.effect == Effect::Allow
                && r.covers_action(action)
                && r.admits(access)
                && r.may_reach_beneath(&dir_slash)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Request;

    fn policy(rules: &str) -> Policy {
        let text =
            format!("kernel: {{version: \"1.0\", mode: strict}}\nsignals: []\npolicies:\n{rules}");
        Policy::parse("t.md", &text).unwrap()
    }

    const WS: &str =
        "  - {action: file_write, effect: allow, constraints: {paths: [\"/workspace/**\"]}}\n";

    #[test]
    fn a_whole_workspace_rule_covers_every_subtree() {
        let p = policy(WS);
        for d in ["/workspace", "/workspace/src", "/workspace/a/b"] {
            assert!(p.allows_all_beneath("file_write", d, Access::Write), "{d}");
        }
        assert!(!p.allows_all_beneath("file_write", "/mem", Access::Write));
        assert!(!p.allows_all_beneath("file_read", "/workspace", Access::Read));
    }

    #[test]
    fn a_deny_that_may_reach_beneath_makes_it_not_all() {
        let p = policy(&format!(
            "{WS}  - {{action: file_write, effect: deny, constraints: {{paths: [\"/workspace/.git/hooks/**\"]}}}}\n"
        ));
        assert!(!p.allows_all_beneath("file_write", "/workspace", Access::Write));
        assert!(!p.allows_all_beneath("file_write", "/workspace/.git", Access::Write));
        assert!(!p.allows_all_beneath("file_write", "/workspace/.git/hooks", Access::Write));
        assert!(p.allows_all_beneath("file_write", "/workspace/src", Access::Write));
        assert!(p.allows_all_beneath("file_write", "/workspace/.git/objects", Access::Write));
        // .gitx is not .git/
        assert!(p.allows_all_beneath("file_write", "/workspace/.gitx", Access::Write));
        // A deny with patterns only may reach anywhere.
        let p = policy(&format!(
            "{WS}  - {{action: \"*\", effect: deny, constraints: {{deny_patterns: ['\\.env$']}}}}\n"
        ));
        assert!(!p.allows_all_beneath("file_write", "/workspace/src", Access::Write));
        // A read-only deny rule does not apply to writes.
        let p = policy(&format!(
            "{WS}  - {{action: \"*\", effect: deny, mode: read_only, constraints: {{paths: [\"/workspace/**\"]}}}}\n"
        ));
        assert!(p.allows_all_beneath("file_write", "/workspace", Access::Write));
    }

    #[test]
    fn approval_dry_run_rate_and_limits_make_it_not_all() {
        for extra in ["requires_approval: true, ", "rate_limit: 10/second, "] {
            let p = policy(&format!(
                "{WS}  - {{action: file_write, effect: allow, {extra}constraints: {{paths: [\"/workspace/src/**\"]}}}}\n"
            ));
            assert!(
                !p.allows_all_beneath("file_write", "/workspace/src", Access::Write),
                "{extra}"
            );
            assert!(
                !p.allows_all_beneath("file_write", "/workspace", Access::Write),
                "{extra}"
            );
            assert!(
                p.allows_all_beneath("file_write", "/workspace/doc", Access::Write),
                "{extra}"
            );
        }
        for c in ["dry_run: true", "max_bytes: 10", "deny_patterns: [x]"] {
            let p = policy(&format!(
                "  - {{action: file_write, effect: allow, constraints: {{paths: [\"/workspace/**\"], {c}}}}}\n"
            ));
            assert!(
                !p.allows_all_beneath("file_write", "/workspace", Access::Write),
                "{c}"
            );
        }
        let p = policy("  - {action: file_write, effect: allow, mode: read_only, constraints: {paths: [\"/workspace/**\"]}}\n");
        assert!(!p.allows_all_beneath("file_write", "/workspace", Access::Write));
    }

    #[test]
    fn narrower_globs_cover_only_their_subtree() {
        let p = policy("  - {action: file_write, effect: allow, constraints: {paths: [\"/workspace/src/**\", \"/workspace/*.md\"]}}\n");
        assert!(!p.allows_all_beneath("file_write", "/workspace", Access::Write));
        assert!(p.allows_all_beneath("file_write", "/workspace/src", Access::Write));
        assert!(p.allows_all_beneath("file_write", "/workspace/src/a", Access::Write));
        assert!(!p.allows_all_beneath("file_write", "/workspace/srcx", Access::Write));
    }

    /// Whenever `allows_all_beneath` says yes, `decide` allows (without flags) sample paths
    /// beneath; whenever `may_allow_beneath` says no, `decide` denies them.
    #[test]
    fn answers_agree_with_decide_on_samples() {
        let rules = [
            WS,
            "  - {action: file_write, effect: deny, constraints: {paths: [\"/workspace/.git/hooks/**\"]}}\n",
            "  - {action: file_read, effect: allow, constraints: {paths: [\"/workspace/src/**\"], deny_patterns: [secret]}}\n",
            "  - {action: \"*\", effect: deny, constraints: {paths: [\"/workspace/*/private/**\"]}}\n",
        ];
        let p = policy(&rules.concat());
        let dirs = [
            "/workspace",
            "/workspace/src",
            "/workspace/.git",
            "/workspace/.git/hooks",
            "/workspace/a",
            "/workspace/a/private",
            "/workspace/doc",
        ];
        let leaves = ["x", "secret", "private/k", "hooks/pre-commit", "a/b/c"];
        for (action, access) in [("file_write", Access::Write), ("file_read", Access::Read)] {
            for d in dirs {
                let all = p.allows_all_beneath(action, d, access);
                let may = p.may_allow_beneath(action, d, access);
                for l in leaves {
                    let path = format!("{d}/{l}");
                    let dec = p.decide(&Request {
                        action,
                        resource: &path,
                        access,
                        bytes: 1,
                        now_ms: 0,
                    });
                    if all {
                        assert!(
                            dec.allowed && !dec.requires_approval && !dec.dry_run,
                            "{action} {path}"
                        );
                    }
                    if !may {
                        assert!(!dec.allowed, "{action} {path}");
                    }
                }
            }
        }
    }
}

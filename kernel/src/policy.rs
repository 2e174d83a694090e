//! How the kernel holds and applies policies: the swappable per-agent [`PolicySlot`] and
//! [`compose`], which decides a request against the agent's policy and the kernel's base
//! policy together.
//!
//! Invariants:
//! - A call is judged by exactly one snapshot of the agent's policy ([`PolicySlot::load`]),
//!   taken once at the start of judging; a reload swaps the whole compiled policy at once, so
//!   no call is ever judged by a half-loaded one.
//! - With a base policy, a call is allowed only if both policies allow it (the stricter
//!   wins); a refusal names the file whose rule refused. The agent's `kernel.mode` governs,
//!   except that a base policy in `strict` makes violations of the base strict.

use std::sync::{PoisonError, RwLock};

use agentos_policy::{Mode, Policy, Rate, Request};

/// An agent's policy, replaceable while the agent runs.
#[derive(Debug)]
pub(crate) struct PolicySlot(RwLock<Policy>);

impl PolicySlot {
    pub fn new(policy: Policy) -> Self {
        PolicySlot(RwLock::new(policy))
    }

    /// The current policy: one consistent snapshot (a cheap `Arc` clone).
    pub fn load(&self) -> Policy {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Installs `new` and returns the policy it replaced.
    pub fn swap(&self, new: Policy) -> Policy {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *guard, new)
    }
}

/// Which policy a rate-limit bucket belongs to (each has its own token buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Agent,
    Base,
}

/// One rate limit a call is charged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateCharge {
    pub source: Source,
    /// The rule's index in its policy (the key of its bucket).
    pub index: usize,
    pub rate: Rate,
    /// The limiting rule, `id (file:line)`.
    pub rule: String,
}

impl RateCharge {
    fn new(source: Source, policy: &Policy, (index, rate): (usize, Rate)) -> Self {
        RateCharge {
            source,
            index,
            rate,
            rule: policy
                .rule_ref(index)
                .map(|r| r.to_string())
                .unwrap_or_default(),
        }
    }
}

/// The agent's policy and the base policy, decided together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Composed {
    /// Both policies allow the call.
    pub allowed: bool,
    /// The deciding rule, `id (file:line)`; empty for a default deny.
    pub rule: String,
    pub reason: String,
    /// The kernel mode that applies to this call.
    pub mode: Mode,
    /// Some allowing rule asks for operator approval.
    pub requires_approval: bool,
    /// Rate limits to charge, each in its policy's buckets, with the limiting rule's name.
    pub rate_limits: Vec<RateCharge>,
    pub dry_run: bool,
    /// The digest of the agent policy snapshot this was decided with.
    pub digest: [u8; 32],
}

/// Decides `req` against `policy` and, when there is one, the kernel's `base` policy.
pub(crate) fn compose(policy: &Policy, base: Option<&Policy>, req: &Request<'_>) -> Composed {
    compose_args(policy, base, req, None)
}

/// [`compose`] with an `Exec`'s arguments (argv\[1..\]) as a list, for `args`/`deny_args`
/// (see [`Policy::decide_args`]).
pub(crate) fn compose_args(
    policy: &Policy,
    base: Option<&Policy>,
    req: &Request<'_>,
    args: Option<&[String]>,
) -> Composed {
    let d = policy.decide_args(req, args);
    let rule_text =
        |r: &Option<agentos_policy::RuleRef>| r.as_ref().map(|r| r.to_string()).unwrap_or_default();
    let mut out = Composed {
        allowed: d.allowed,
        rule: rule_text(&d.rule),
        reason: d.reason.clone(),
        mode: policy.mode(),
        requires_approval: d.allowed && d.requires_approval,
        rate_limits: d
            .rate_limit
            .filter(|_| d.allowed)
            .map(|l| RateCharge::new(Source::Agent, policy, l))
            .into_iter()
            .collect(),
        dry_run: d.allowed && d.dry_run,
        digest: policy.digest(),
    };
    let Some(base) = base else {
        return out;
    };
    let b = base.decide_args(req, args);
    if !b.allowed {
        // The base refuses. It names the refusal when the agent's policy allowed the call, or
        // when the base is strict (its violations are then strict whatever the agent's mode).
        if d.allowed || base.mode() == Mode::Strict {
            out.allowed = false;
            out.rule = rule_text(&b.rule);
            out.reason = format!("base policy {}: {}", base.path(), b.reason);
            out.requires_approval = false;
            out.rate_limits.clear();
            out.dry_run = false;
            if base.mode() == Mode::Strict {
                out.mode = Mode::Strict;
            }
        }
        return out;
    }
    if out.allowed {
        out.requires_approval |= b.requires_approval;
        out.dry_run |= b.dry_run;
        if let Some(l) = b.rate_limit {
            out.rate_limits.push(RateCharge::new(Source::Base, base, l));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use agentos_policy::Access;

    use super::*;

    fn policy(path: &str, mode: &str, rules: &str) -> Policy {
        let text =
            format!("kernel:\n  version: \"1.0\"\n  mode: {mode}\nsignals: []\npolicies:\n{rules}");
        Policy::parse(path, &text).expect("test policy parses")
    }

    const WORKING: &str = "  - name: working\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/mem/working/**\"]\n";

    fn req(resource: &str) -> Request<'_> {
        Request {
            action: "file_write",
            resource,
            access: Access::Write,
            bytes: 1,
            now_ms: 1_000,
        }
    }

    #[test]
    fn without_a_base_the_agent_policy_decides_alone() {
        let p = policy("a.md", "permissive", WORKING);
        let c = compose(&p, None, &req("/mem/working/x"));
        assert!(c.allowed);
        assert_eq!(c.mode, Mode::Permissive);
        assert_eq!(c.digest, p.digest());
        assert!(!compose(&p, None, &req("/etc/x")).allowed);
    }

    #[test]
    fn the_base_refuses_what_the_agent_allows_and_is_named() {
        let p = policy("agent.md", "permissive", WORKING);
        let base = policy(
            "base.md",
            "strict",
            &format!("{WORKING}  - name: no-secrets\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/working/secret/**\"]\n"),
        );
        let c = compose(&p, Some(&base), &req("/mem/working/secret/k"));
        assert!(!c.allowed);
        assert!(c.rule.starts_with("no-secrets (base.md:"), "{}", c.rule);
        assert!(
            c.reason.starts_with("base policy base.md: "),
            "{}",
            c.reason
        );
        // A strict base makes its own violations strict.
        assert_eq!(c.mode, Mode::Strict);
        let ok = compose(&p, Some(&base), &req("/mem/working/fine"));
        assert!(ok.allowed);
        assert_eq!(ok.mode, Mode::Permissive);
    }

    #[test]
    fn a_permissive_base_leaves_the_agent_mode() {
        let p = policy("agent.md", "strict", WORKING);
        let base = policy(
            "base.md",
            "permissive",
            "  - name: nothing\n    action: file_read\n    effect: allow\n",
        );
        let c = compose(&p, Some(&base), &req("/mem/working/x"));
        assert!(!c.allowed);
        assert_eq!(c.mode, Mode::Strict);
        assert!(c.reason.contains("base policy base.md"), "{}", c.reason);
    }

    #[test]
    fn approval_and_rate_limits_of_both_policies_apply() {
        let p = policy(
            "agent.md",
            "strict",
            &format!("{WORKING}    rate_limit: \"5/second\"\n"),
        );
        let base = policy(
            "base.md",
            "audit",
            &format!("{WORKING}    requires_approval: true\n"),
        );
        let c = compose(&p, Some(&base), &req("/mem/working/x"));
        assert!(c.allowed && c.requires_approval);
        assert_eq!(c.rate_limits.len(), 1);
        assert_eq!(c.rate_limits[0].source, Source::Agent);
        assert!(c.rate_limits[0].rule.starts_with("working (agent.md:"));
    }

    /// Reload never lets a call be judged by a half-loaded policy: while one thread swaps A and
    /// B, every decision equals A's or B's decision for that request, and reports the digest of
    /// the policy that made it.
    #[test]
    fn decisions_during_swaps_are_always_one_whole_policy() {
        let a = policy("a.md", "strict", WORKING);
        let b = policy(
            "b.md",
            "permissive",
            "  - name: tmp-only\n    action: file_write\n    effect: allow\n    requires_approval: true\n    constraints:\n      paths: [\"/mem/working/tmp/**\"]\n",
        );
        let resources = ["/mem/working/x", "/mem/working/tmp/y", "/etc/passwd"];
        let mut expected: HashMap<([u8; 32], &str), Composed> = HashMap::new();
        for p in [&a, &b] {
            for r in resources {
                expected.insert((p.digest(), r), compose(p, None, &req(r)));
            }
        }
        // The two policies really disagree on these requests.
        assert_ne!(
            expected[&(a.digest(), resources[0])].allowed,
            expected[&(b.digest(), resources[0])].allowed
        );
        let expected = Arc::new(expected);
        let slot = Arc::new(PolicySlot::new(a.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (slot, stop, a, b) = (Arc::clone(&slot), Arc::clone(&stop), a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let next = if swaps % 2 == 0 { b.clone() } else { a.clone() };
                    slot.swap(next);
                    swaps += 1;
                }
                swaps
            })
        };
        let deciders: Vec<_> = (0..4)
            .map(|t| {
                let (slot, expected) = (Arc::clone(&slot), Arc::clone(&expected));
                std::thread::spawn(move || {
                    let mut seen = [0u64; 2];
                    for i in 0..20_000usize {
                        let r = resources[(i + t) % resources.len()];
                        let snapshot = slot.load();
                        let got = compose(&snapshot, None, &req(r));
                        let want = expected
                            .get(&(got.digest, r))
                            .expect("the digest is A's or B's");
                        assert_eq!(&got, want, "decision for {r} does not match its policy");
                        seen[usize::from(got.mode == Mode::Permissive)] += 1;
                    }
                    seen
                })
            })
            .collect();
        let mut seen = [0u64; 2];
        for d in deciders {
            let s = d.join().expect("decider thread");
            seen[0] += s[0];
            seen[1] += s[1];
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().expect("swapper thread");
        assert!(swaps > 0);
        assert_eq!(seen[0] + seen[1], 80_000);
    }

    fn random_rules(prefix: &'static str) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let globs = [
            "/mem/working/**",
            "/mem/working/tmp/**",
            "/mem/working/*",
            "/etc/**",
            "/mem/**",
        ];
        let rule = (
            any::<bool>(),
            proptest::sample::select(globs.to_vec()),
            any::<bool>(),
        );
        proptest::collection::vec(rule, 1..6).prop_map(move |rules| {
            rules
                .iter()
                .enumerate()
                .map(|(i, (allow, glob, approval))| {
                    let effect = if *allow { "allow" } else { "deny" };
                    let approval = if *allow && *approval { "    requires_approval: true\n" } else { "" };
                    format!(
                        "  - name: {prefix}-{i}\n    action: file_write\n    effect: {effect}\n{approval}    constraints:\n      paths: [\"{glob}\"]\n"
                    )
                })
                .collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

        /// The same property for random pairs of policies: while one thread swaps A and B,
        /// every concurrent decision is exactly A's or exactly B's for that request.
        #[test]
        fn reload_never_judges_a_call_by_a_half_loaded_policy(
            rules_a in random_rules("a"),
            rules_b in random_rules("b"),
            mode_a in proptest::sample::select(vec!["strict", "permissive", "audit"]),
            mode_b in proptest::sample::select(vec!["strict", "permissive", "audit"]),
        ) {
            let a = policy("a.md", mode_a, &rules_a);
            let b = policy("b.md", mode_b, &rules_b);
            let resources = ["/mem/working/x", "/mem/working/tmp/y", "/mem/working/a/b", "/etc/passwd", "/mem/other"];
            let mut expected: HashMap<([u8; 32], &str), Composed> = HashMap::new();
            for p in [&a, &b] {
                for r in resources {
                    expected.insert((p.digest(), r), compose(p, None, &req(r)));
                }
            }
            let expected = Arc::new(expected);
            let slot = Arc::new(PolicySlot::new(a.clone()));
            let stop = Arc::new(AtomicBool::new(false));
            let swapper = {
                let (slot, stop, a, b) = (Arc::clone(&slot), Arc::clone(&stop), a.clone(), b.clone());
                std::thread::spawn(move || {
                    let mut swaps = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        slot.swap(if swaps % 2 == 0 { b.clone() } else { a.clone() });
                        swaps += 1;
                    }
                })
            };
            let deciders: Vec<_> = (0..2)
                .map(|t| {
                    let (slot, expected) = (Arc::clone(&slot), Arc::clone(&expected));
                    std::thread::spawn(move || {
                        (0..2_000usize).all(|i| {
                            let r = resources[(i + t) % resources.len()];
                            let got = compose(&slot.load(), None, &req(r));
                            expected.get(&(got.digest, r)) == Some(&got)
                        })
                    })
                })
                .collect();
            let whole: Vec<bool> = deciders.into_iter().map(|d| d.join().expect("decider thread")).collect();
            stop.store(true, Ordering::Relaxed);
            swapper.join().expect("swapper thread");
            proptest::prop_assert!(whole.iter().all(|w| *w), "a decision matched neither A nor B");
        }
    }
}

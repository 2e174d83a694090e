//! The decision index: which rules [`Policy::decide`](crate::Policy::decide) checks for a
//! request. Per action, each rule is filed under one of its scope constraints — its `paths`
//! (by the literal directory prefix of each glob), else its `commands` (by the exact program
//! or the literal directory prefix of each glob), else its `hosts` (by the exact host or the
//! suffix of each `*.` entry) — or, when none of them gives keys, checked for every request.
//!
//! The index may name a rule that then misses, never skip one that could match or that
//! cannot be evaluated (a deny rule that cannot be evaluated denies). A rule skipped for its
//! `paths` misses at its first check; one skipped for its `commands` is named again whenever
//! the resource has no program (that rule would be unevaluable); one skipped for its `hosts`
//! has no `commands` (the only check before `hosts` that can be unevaluable) and is named
//! again whenever the resource has no host. Each rule's keys are cut to those no other key of
//! the same rule covers, so one request reaches a rule through at most one key.

use std::collections::HashMap;

use crate::engine::{FastGlob, Look, Request};
use crate::schema::host_of;
use crate::{Effect, Rule};

/// The literal directory prefix of a glob: the text before its first metacharacter, cut back
/// to just after its last `/` (so lookups happen only at component boundaries). `None` when
/// that text holds no `/`.
fn glob_prefix(glob: &str) -> Option<&str> {
    let lit_end = glob.find(['*', '?', '[', '{', '\\']).unwrap_or(glob.len());
    let lit = &glob[..lit_end];
    lit.rfind('/').map(|i| &lit[..=i])
}

/// FNV-1a, for the short, policy-chosen keys of the index (no untrusted inserts, so SipHash's
/// flooding resistance buys nothing here and costs a third of a lookup).
#[derive(Debug, Clone, Copy, Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvBuild = std::hash::BuildHasherDefault<Fnv>;
type Keyed = HashMap<Box<str>, Vec<usize>, FnvBuild>;

fn file(map: &mut Keyed, key: &str, rule: usize) {
    map.entry(Box::from(key)).or_default().push(rule);
}

/// Rules keyed by `/`-terminated literal prefixes; a string is looked up at each of its `/`.
#[derive(Debug, Default)]
struct Prefixes {
    by_prefix: Keyed,
    /// Bit `k` set: some key holds `k` slashes (bit 63: 63 or more). A string is looked up
    /// only at the slashes where a key can end.
    depths: u64,
}

impl Prefixes {
    fn add(&mut self, key: &str, rule: usize) {
        let slashes = key.bytes().filter(|b| *b == b'/').count().min(63);
        self.depths |= 1 << slashes;
        file(&mut self.by_prefix, key, rule);
    }

    /// Calls `f` with the rules under every key that is a prefix of `s`.
    fn each(&self, s: &str, f: &mut impl FnMut(usize)) {
        if self.by_prefix.is_empty() {
            return;
        }
        let deepest = 63 - self.depths.leading_zeros();
        let mut depth = 0u32;
        for (i, b) in s.bytes().enumerate() {
            if b != b'/' {
                continue;
            }
            depth += 1;
            if self.depths & (1 << depth.min(63)) != 0 {
                if let Some(rules) = self.by_prefix.get(&s[..=i]) {
                    rules.iter().for_each(|r| f(*r));
                }
            }
            if depth >= deepest && deepest < 63 {
                return;
            }
        }
    }
}

/// `keys` without duplicates and without any key another one extends (`covers(a, b)`: a
/// string reached through `b` is also reached through `a`).
fn minimal(mut keys: Vec<&str>, covers: impl Fn(&str, &str) -> bool) -> Vec<&str> {
    keys.sort_unstable();
    keys.dedup();
    keys.iter()
        .filter(|k| !keys.iter().any(|o| o != *k && covers(o, k)))
        .copied()
        .collect()
}

/// How one rule is filed.
enum Filing<'r> {
    /// Under these `/`-terminated path prefixes.
    Paths(Vec<&'r str>),
    /// Under these exact programs and program prefixes.
    Commands(Vec<&'r str>, Vec<&'r str>),
    /// Under these exact hosts and `*.` suffixes.
    Hosts(Vec<&'r str>, Vec<&'r str>),
    /// Checked for every request.
    Always,
}

impl<'r> Filing<'r> {
    fn of(rule: &'r Rule) -> Filing<'r> {
        let c = &rule.constraints;
        let prefixes = |globs: &'r [String]| -> Option<Vec<&'r str>> {
            globs.iter().map(|g| glob_prefix(g)).collect()
        };
        if !c.paths.is_empty() {
            if let Some(keys) = prefixes(&c.paths) {
                return Filing::Paths(minimal(keys, |a, b| b.starts_with(a)));
            }
        }
        if !c.commands.is_empty() {
            let mut exact = Vec::new();
            let mut under = Vec::new();
            for g in &c.commands {
                match (FastGlob::compile(g), glob_prefix(g)) {
                    (Some(FastGlob::Exact(_)), _) => exact.push(g.as_str()),
                    (_, Some(p)) => under.push(p),
                    (_, None) => return Filing::Always,
                }
            }
            let under = minimal(under, |a, b| b.starts_with(a));
            let exact = minimal(exact, |_, _| false)
                .into_iter()
                .filter(|e| !under.iter().any(|p| e.starts_with(p)))
                .collect();
            return Filing::Commands(exact, under);
        }
        if !c.hosts.is_empty() {
            let mut exact = Vec::new();
            let mut suffixes = Vec::new();
            for h in &c.hosts {
                match h.strip_prefix("*.") {
                    _ if h == "*" => return Filing::Always,
                    Some(s) => suffixes.push(s),
                    None => exact.push(h.as_str()),
                }
            }
            let below = |s: &str, name: &str| {
                name.len() > s.len()
                    && name.ends_with(s)
                    && name[..name.len() - s.len()].ends_with('.')
            };
            let suffixes = minimal(suffixes, below);
            let exact = minimal(exact, |_, _| false)
                .into_iter()
                .filter(|e| !suffixes.iter().any(|s| below(s, e)))
                .collect();
            return Filing::Hosts(exact, suffixes);
        }
        Filing::Always
    }
}

/// The candidate rules for one action (its own and the `*` rules).
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    /// Rules checked for every request.
    always: Vec<usize>,
    /// Rules filed by `paths`.
    paths: Prefixes,
    /// Rules filed by `commands`: every one (for a resource with no program), by exact
    /// program, by program prefix.
    commands: Vec<usize>,
    command_exact: Keyed,
    command_under: Prefixes,
    /// Rules filed by `hosts`: every one (for a resource with no host), by exact host, by the
    /// suffix after `*.`.
    hosts: Vec<usize>,
    host_exact: Keyed,
    host_suffix: Keyed,
    /// Every rule of the bucket (to turn a small one into a plain list).
    all: Vec<usize>,
    /// The (at most three) most specific allow rules: in a default deny every allow rule of
    /// the action missed, so these are the nearest misses.
    pub(crate) nearest: Vec<usize>,
}

/// A bucket with at most this many rules is a plain list: below it, hashing the resource's
/// prefixes costs more than checking every rule. (Tiny in unit tests, so that the property
/// test comparing with the plain loop exercises every index on small rule sets.)
#[cfg(not(test))]
const SMALL_BUCKET: usize = 16;
#[cfg(test)]
const SMALL_BUCKET: usize = 2;

impl Bucket {
    fn add(&mut self, rule: &Rule) {
        let i = rule.index;
        self.all.push(i);
        match Filing::of(rule) {
            Filing::Paths(keys) => keys.iter().for_each(|k| self.paths.add(k, i)),
            Filing::Commands(exact, under) => {
                self.commands.push(i);
                exact
                    .iter()
                    .for_each(|e| file(&mut self.command_exact, e, i));
                under.iter().for_each(|p| self.command_under.add(p, i));
            }
            Filing::Hosts(exact, suffixes) => {
                self.hosts.push(i);
                exact.iter().for_each(|e| file(&mut self.host_exact, e, i));
                suffixes
                    .iter()
                    .for_each(|s| file(&mut self.host_suffix, s, i));
            }
            Filing::Always => self.always.push(i),
        }
    }

    /// Turns a small bucket into a plain list (see [`SMALL_BUCKET`]) and picks the nearest
    /// allow rules.
    fn finish(&mut self, rules: &[Rule]) {
        let mut allow: Vec<&Rule> = self
            .all
            .iter()
            .filter_map(|i| rules.get(*i))
            .filter(|r| r.effect == Effect::Allow)
            .collect();
        allow.sort_by_key(|r| r.specificity());
        self.nearest = allow.iter().take(3).map(|r| r.index).collect();
        if self.all.len() <= SMALL_BUCKET {
            let mut all = std::mem::take(&mut self.all);
            all.sort_unstable();
            let nearest = std::mem::take(&mut self.nearest);
            *self = Bucket {
                always: all,
                nearest,
                ..Bucket::default()
            };
        }
    }

    /// The whole bucket when it is a plain list (a small one): every rule is a candidate.
    pub(crate) fn plain(&self) -> Option<&[usize]> {
        let indexed =
            !self.paths.by_prefix.is_empty() || !self.commands.is_empty() || !self.hosts.is_empty();
        (!indexed).then_some(&self.always)
    }

    /// Calls `f` with every rule index that may apply to `req`, each once. Computes the
    /// request's host (in `look`) only when some rule is filed by `hosts`.
    pub(crate) fn each_candidate(
        &self,
        req: &Request<'_>,
        look: &Look<'_>,
        mut f: impl FnMut(usize),
    ) {
        let all = |rules: &[usize], f: &mut dyn FnMut(usize)| rules.iter().for_each(|r| f(*r));
        all(&self.always, &mut f);
        self.paths.each(req.resource, &mut f);
        if !self.commands.is_empty() {
            match req.resource.split_whitespace().next() {
                None => all(&self.commands, &mut f),
                Some(program) => {
                    if let Some(rules) = self.command_exact.get(program) {
                        all(rules, &mut f);
                    }
                    self.command_under.each(program, &mut f);
                }
            }
        }
        if !self.hosts.is_empty() {
            match look.host.get_or_init(|| host_of(req.resource)).as_deref() {
                None => all(&self.hosts, &mut f),
                Some(host) => {
                    if let Some(rules) = self.host_exact.get(host) {
                        all(rules, &mut f);
                    }
                    for (i, b) in host.bytes().enumerate() {
                        if b == b'.' {
                            if let Some(rules) = self.host_suffix.get(&host[i + 1..]) {
                                all(rules, &mut f);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The candidates of one decision: on the stack up to a few dozen, which is every decision
/// of a policy whose index separates its rules.
#[derive(Debug)]
pub(crate) struct Picked {
    small: [usize; 32],
    len: usize,
    more: Vec<usize>,
}

impl Picked {
    pub(crate) fn new() -> Picked {
        Picked {
            small: [0; 32],
            len: 0,
            more: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, rule: usize) {
        match self.small.get_mut(self.len) {
            Some(slot) => {
                *slot = rule;
                self.len += 1;
            }
            None => self.more.push(rule),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.small[..self.len].iter().chain(&self.more).copied()
    }
}

/// The compiled decision structure: one [`Bucket`] per exact action (holding that action's
/// rules and the `*` rules), and one for actions no rule names.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_action: HashMap<Box<str>, Bucket, FnvBuild>,
    wildcard: Bucket,
}

impl Index {
    pub(crate) fn build(rules: &[Rule]) -> Index {
        let mut index = Index::default();
        for r in rules.iter().filter(|r| r.action != "*") {
            index
                .by_action
                .entry(Box::from(r.action.as_str()))
                .or_default()
                .add(r);
        }
        for r in rules.iter().filter(|r| r.action == "*") {
            index.wildcard.add(r);
            for b in index.by_action.values_mut() {
                b.add(r);
            }
        }
        index.wildcard.finish(rules);
        for b in index.by_action.values_mut() {
            b.finish(rules);
        }
        index
    }

    pub(crate) fn bucket(&self, action: &str) -> &Bucket {
        self.by_action.get(action).unwrap_or(&self.wildcard)
    }
}

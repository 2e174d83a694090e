//! The compiled [`Policy`] and its pure decision function.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use agentos_syscalls::Signal;
use globset::GlobSet;
use regex::Regex;

use crate::error::PolicyError;
use crate::rate::Rate;
use crate::schema::{host_of, Ctx};
use crate::source::{self, Source};
use crate::{yaml, Effect, Mode, Observability, Rule, RuleMode, Sandbox};

/// A rule's compiled matchers (private to the crate).
#[derive(Debug, Clone, Default)]
pub(crate) struct Matchers {
    pub paths: Option<GlobSet>,
    pub commands: Option<GlobSet>,
    pub deny: Vec<Regex>,
}

/// Whether a request reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
}

/// One call to decide on. `resource` is a normalized VFS path (file actions), a command line
/// (`code_execution`), a URL or host (`api_call`), an agent id or name (`ipc_send`, `signal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub access: Access,
    /// Payload size, checked against `max_bytes`.
    pub bytes: u64,
    /// The caller's clock; `decide` does not use it today but receives it so that a recorded
    /// run re-decides identically once time-dependent rules exist.
    pub now_ms: u64,
}

/// Which rule decided, for messages: `write-src (security.md:12)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleRef {
    /// The rule's `name`, or `policies[N]` (0-based, file order) when it has none.
    pub id: String,
    /// The policy file's path as given to [`Policy::parse`].
    pub file: String,
    /// The rule's line in that file.
    pub line: u32,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.id, self.file, self.line)
    }
}

/// The outcome of [`Policy::decide`]. The kernel applies `mode`, approval, rate limits, `log`
/// and `dry_run`; the decision only reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The deciding rule; `None` for a default deny.
    pub rule: Option<RuleRef>,
    pub reason: String,
    pub requires_approval: bool,
    /// The strictest `rate_limit` among the matching allow rules, with that rule's index.
    pub rate_limit: Option<(usize, Rate)>,
    pub log: bool,
    pub dry_run: bool,
}

/// How one rule relates to one request.
enum Eval {
    /// In scope and within its limits (for a deny rule: a limit is crossed, or it has none).
    Match(String),
    /// Out of scope, or (allow rule) over a limit: why.
    Miss(String),
    /// A constraint cannot be evaluated on this resource: why. Fails closed.
    Unevaluable(String),
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

impl Rule {
    /// Whether the action and mode admit the request; then each constraint.
    fn eval(&self, req: &Request<'_>) -> Eval {
        if self.mode == Some(RuleMode::ReadOnly) && req.access == Access::Write {
            return Eval::Miss("rule is read_only and the call writes".to_string());
        }
        let c = &self.constraints;
        let m = &self.matchers;
        // Scope: where the rule applies.
        if let Some(paths) = &m.paths {
            if !paths.is_match(req.resource) {
                return Eval::Miss(format!("path not under {}", list(&c.paths)));
            }
        }
        if let Some(cmds) = &m.commands {
            let Some(program) = req.resource.split_whitespace().next() else {
                return Eval::Unevaluable("no command given".to_string());
            };
            if !cmds.is_match(program) {
                return Eval::Miss(format!("command `{program}` not in {}", list(&c.commands)));
            }
        }
        if !c.hosts.is_empty() {
            let Some(host) = host_of(req.resource) else {
                return Eval::Unevaluable(format!("`{}` names no host", req.resource));
            };
            let ok = c.hosts.iter().any(|h| {
                h == "*"
                    || *h == host
                    || h.strip_prefix("*.").is_some_and(|suffix| {
                        host.len() > suffix.len() + 1
                            && host.ends_with(suffix)
                            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    })
            });
            if !ok {
                return Eval::Miss(format!("host `{host}` not in {}", list(&c.hosts)));
            }
        }
        if !c.peers.is_empty() && !c.peers.iter().any(|p| p == req.resource) {
            return Eval::Miss(format!("peer `{}` not in {}", req.resource, list(&c.peers)));
        }
        // Limits: what is over the line.
        let over_size = c.max_bytes.filter(|max| req.bytes > *max);
        let pattern = m.deny.iter().position(|re| re.is_match(req.resource));
        let crossed = match (over_size, pattern) {
            (Some(max), _) => Some(format!("{} bytes is over max_bytes {max}", req.bytes)),
            (None, Some(i)) => Some(format!(
                "deny pattern `{}` matches {}",
                c.deny_patterns.get(i).map_or("", String::as_str),
                req.resource
            )),
            (None, None) => None,
        };
        let has_limits = c.max_bytes.is_some() || !c.deny_patterns.is_empty();
        match (self.effect, crossed) {
            (Effect::Allow, Some(why)) => Eval::Miss(why),
            (Effect::Allow, None) => {
                Eval::Match(format!("{} on {} is allowed", req.action, req.resource))
            }
            (Effect::Deny, Some(why)) => Eval::Match(why),
            (Effect::Deny, None) if has_limits => {
                Eval::Miss("within the rule's limits".to_string())
            }
            (Effect::Deny, None) => {
                Eval::Match(format!("{} on {} is denied", req.action, req.resource))
            }
        }
    }

    /// Sort key for choosing the reported rule among several: an exact action beats `*`, more
    /// scope constraints beat fewer, then the earlier line.
    fn specificity(&self) -> (bool, std::cmp::Reverse<usize>, u32) {
        let c = &self.constraints;
        let scoped = usize::from(!c.paths.is_empty())
            + usize::from(!c.commands.is_empty())
            + usize::from(!c.hosts.is_empty())
            + usize::from(!c.peers.is_empty());
        (self.action == "*", std::cmp::Reverse(scoped), self.line)
    }
}

#[derive(Debug)]
struct Inner {
    path: String,
    digest: [u8; 32],
    origin: source::Origin,
    version: String,
    mode: Mode,
    signals: Vec<Signal>,
    rules: Vec<Rule>,
    /// Rule indices per exact action.
    by_action: HashMap<String, Vec<usize>>,
    /// Rule indices with `action: "*"`.
    wildcard: Vec<usize>,
    observability: Observability,
    sandbox: Sandbox,
}

/// A compiled, immutable policy. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

impl Policy {
    /// Parses, validates and compiles a policy file's text. `path` is only used in messages.
    pub fn parse(path: &str, text: &str) -> Result<Policy, PolicyError> {
        let digest = *blake3::hash(text.as_bytes()).as_bytes();
        let file_lines = source::lines(text);
        let src = match Source::extract(text) {
            Ok(s) => s,
            Err((line, col, msg)) => {
                let dummy = Source::empty();
                let ctx = Ctx {
                    path,
                    lines: file_lines,
                    src: &dummy,
                };
                return Err(ctx.at_file((line, col), 3, msg, None, true));
            }
        };
        let ctx = Ctx {
            path,
            lines: file_lines,
            src: &src,
        };
        let root = yaml::parse(&src.yaml).map_err(|e| syntax_error(&ctx, &e))?;
        let doc = ctx.doc(&root)?;
        let mut rules = doc.rules;
        let mut by_action: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard = Vec::new();
        for (i, r) in rules.iter_mut().enumerate() {
            r.index = i;
            if r.action == "*" {
                wildcard.push(i);
            } else {
                by_action.entry(r.action.clone()).or_default().push(i);
            }
        }
        Ok(Policy {
            inner: Arc::new(Inner {
                path: path.to_string(),
                digest,
                origin: src.origin,
                version: doc.version,
                mode: doc.mode,
                signals: doc.signals,
                rules,
                by_action,
                wildcard,
                observability: doc.observability,
                sandbox: doc.sandbox,
            }),
        })
    }

    /// Reads and parses a policy file. Non-UTF-8 text is an error.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: shown.clone(),
            source,
        })?;
        Policy::parse(&shown, &text)
    }

    /// blake3 of the file's text, exactly as read.
    pub fn digest(&self) -> [u8; 32] {
        self.inner.digest
    }

    /// The path given to [`Policy::parse`].
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Where the YAML was found: whole file, front matter or fenced blocks.
    pub fn origin(&self) -> source::Origin {
        self.inner.origin
    }

    /// `kernel.version` (always "1.0" today).
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// `kernel.mode`. Not applied by [`Policy::decide`]: the kernel applies it.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The signals listed under `signals:`, in file order, without duplicates.
    pub fn signals(&self) -> &[Signal] {
        &self.inner.signals
    }

    /// Whether the kernel may deliver `sig` to this agent: always for the non-maskable
    /// SIGKILL, SIGPOLICY and SIGTRUST; for the others, only if `signals:` lists them.
    pub fn signal_allowed(&self, sig: Signal) -> bool {
        !sig.maskable() || self.inner.signals.contains(&sig)
    }

    /// `observability:` (defaults when absent).
    pub fn observability(&self) -> &Observability {
        &self.inner.observability
    }

    /// `sandbox:` (empty when absent).
    pub fn sandbox(&self) -> &Sandbox {
        &self.inner.sandbox
    }

    /// Every rule, in file order; `rules()[i].index == i`.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// A reference to rule `i`, for messages.
    pub fn rule_ref(&self, i: usize) -> Option<RuleRef> {
        self.inner.rules.get(i).map(|r| self.make_ref(r))
    }

    fn make_ref(&self, r: &Rule) -> RuleRef {
        RuleRef {
            id: r.id.clone(),
            file: self.inner.path.clone(),
            line: r.line,
        }
    }

    /// Decides one request. Pure: the same policy and request always give the same decision;
    /// no clock, no global state, no I/O. Deny overrides allow; nothing allows → deny.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        let inner = &*self.inner;
        let exact = inner
            .by_action
            .get(req.action)
            .map_or(&[][..], Vec::as_slice);
        let candidates = exact
            .iter()
            .chain(inner.wildcard.iter())
            .filter_map(|&i| inner.rules.get(i));

        let mut denies: Vec<(&Rule, String)> = Vec::new();
        let mut allows: Vec<(&Rule, String)> = Vec::new();
        let mut misses: Vec<(&Rule, String)> = Vec::new();
        for rule in candidates {
            match (rule.effect, rule.eval(req)) {
                (Effect::Deny, Eval::Match(why)) => denies.push((rule, why)),
                (Effect::Deny, Eval::Unevaluable(why)) => {
                    denies.push((rule, format!("cannot evaluate the rule: {why}")))
                }
                (Effect::Deny, Eval::Miss(_)) => {}
                (Effect::Allow, Eval::Match(why)) => allows.push((rule, why)),
                (Effect::Allow, Eval::Miss(why) | Eval::Unevaluable(why)) => {
                    misses.push((rule, why))
                }
            }
        }

        if let Some((rule, why)) = denies.iter().min_by_key(|(r, _)| r.specificity()) {
            return Decision {
                allowed: false,
                rule: Some(self.make_ref(rule)),
                reason: why.clone(),
                requires_approval: false,
                rate_limit: None,
                log: denies.iter().any(|(r, _)| r.constraints.log),
                dry_run: false,
            };
        }

        if let Some((rule, why)) = allows.iter().min_by_key(|(r, _)| r.specificity()) {
            // Flags are OR-ed over every matching allow rule, so adding a rule can never turn
            // approval or logging off; the rate limit is the strictest one.
            let rate_limit = allows
                .iter()
                .filter_map(|(r, _)| r.rate_limit.map(|rate| (r.index, rate)))
                .min_by_key(|(i, rate)| {
                    // calls per day, lower = stricter; ties by rule index
                    let per_day = u64::from(rate.count) * (86_400_000 / rate.period.millis());
                    (per_day, *i)
                });
            return Decision {
                allowed: true,
                rule: Some(self.make_ref(rule)),
                reason: why.clone(),
                requires_approval: allows.iter().any(|(r, _)| r.requires_approval),
                rate_limit,
                log: allows.iter().any(|(r, _)| r.constraints.log),
                dry_run: allows.iter().any(|(r, _)| r.constraints.dry_run),
            };
        }

        let mut reason = format!("no rule allows {} on {}", req.action, req.resource);
        if misses.is_empty() {
            reason.push_str(&format!(" (no allow rule for action `{}`)", req.action));
        } else {
            misses.sort_by_key(|(r, _)| r.specificity());
            let near: Vec<String> = misses
                .iter()
                .take(3)
                .map(|(r, why)| format!("rule `{}` ({}:{}): {why}", r.id, inner.path, r.line))
                .collect();
            reason.push_str("; nearest: ");
            reason.push_str(&near.join("; "));
        }
        Decision {
            allowed: false,
            rule: None,
            reason,
            requires_approval: false,
            rate_limit: None,
            log: false,
            dry_run: false,
        }
    }
}

/// A serde-saphyr error, as a located diagnostic in the `.md` file.
fn syntax_error(ctx: &Ctx<'_>, e: &serde_saphyr::Error) -> PolicyError {
    let (line, col) = e
        .location()
        .map(|l| {
            (
                u32::try_from(l.line()).unwrap_or(1),
                u32::try_from(l.column()).unwrap_or(1),
            )
        })
        .unwrap_or((1, 1));
    let mut msg = e.to_string();
    let suffix = format!(" at line {line}, column {col}");
    if let Some(stripped) = msg.strip_suffix(&suffix) {
        msg = stripped.to_string();
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        msg = format!("duplicate key `{key}`");
    }
    let file_pos = ctx.src.to_file(line.max(1), col.max(1));
    ctx.at_file(file_pos, 1, format!("invalid YAML: {msg}"), None, true)
}

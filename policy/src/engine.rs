//! The compiled [`Policy`] and its pure decision function.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::Arc;

use agentos_syscalls::Signal;
use globset::GlobSet;
use regex::Regex;

use crate::error::PolicyError;
use crate::index::{Index, Picked};
use crate::rate::Rate;
use crate::schema::{host_of, Ctx};
use crate::source::{self, Source};
use crate::{yaml, Effect, Mode, Observability, Rule, RuleMode, Sandbox};

/// A rule's compiled matchers (private to the crate).
#[derive(Debug, Clone, Default)]
pub(crate) struct Matchers {
    pub paths: Option<GlobSet>,
    /// The same globs as `paths` when every one has a simple shape (else `None`): matched
    /// with string comparisons instead of the glob automaton.
    pub fast_paths: Option<Vec<FastGlob>>,
    pub commands: Option<GlobSet>,
    /// `tools`: the MCP tool (`SERVER/TOOL`, the resource's first word) must match one.
    pub tools: Option<GlobSet>,
    /// `args`: every argument must match one (`*` crosses `/`).
    pub args: Option<GlobSet>,
    /// `deny_args`: no argument may match one.
    pub deny_args: Option<GlobSet>,
    /// `commands`, when every entry has a simple shape.
    pub fast_commands: Option<Vec<FastGlob>>,
    pub deny: Vec<Regex>,
}

/// A glob of one of the common shapes, matched exactly as globset (with
/// `literal_separator`) matches it — a unit test and a property test hold them equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FastGlob {
    /// No metacharacter: the whole string.
    Exact(Box<str>),
    /// `P/**` with a literal `P`: anything starting with `P/`.
    Under(Box<str>),
    /// `P/*` with a literal `P`: `P/` then no further `/`.
    Children(Box<str>),
}

impl FastGlob {
    /// The fast form of `glob`, if it has one of the simple shapes.
    pub(crate) fn compile(glob: &str) -> Option<FastGlob> {
        let literal = |s: &str| !s.contains(['*', '?', '[', ']', '{', '}', '\\']);
        if literal(glob) {
            return Some(FastGlob::Exact(glob.into()));
        }
        if let Some(p) = glob.strip_suffix("/**").filter(|p| literal(p)) {
            return Some(FastGlob::Under(format!("{p}/").into()));
        }
        if let Some(p) = glob.strip_suffix("/*").filter(|p| literal(p)) {
            return Some(FastGlob::Children(format!("{p}/").into()));
        }
        None
    }

    /// The fast forms of all `globs`, or `None` if one has no fast form.
    pub(crate) fn compile_all<'g>(
        globs: impl IntoIterator<Item = &'g str>,
    ) -> Option<Vec<FastGlob>> {
        globs.into_iter().map(FastGlob::compile).collect()
    }

    pub(crate) fn is_match(&self, s: &str) -> bool {
        match self {
            FastGlob::Exact(e) => s == &**e,
            FastGlob::Under(p) => s.starts_with(&**p),
            FastGlob::Children(p) => s.strip_prefix(&**p).is_some_and(|rest| !rest.contains('/')),
        }
    }
}

/// What one decision looks at besides the [`Request`]: the request's host, computed at most
/// once (only `hosts` rules need it), and the program's arguments when the caller has them as
/// a list (an `Exec`'s argv\[1..\]); without them, `args`/`deny_args` see the resource's
/// words after the first (split at whitespace).
#[derive(Debug, Default)]
pub(crate) struct Look<'a> {
    pub host: std::cell::OnceCell<Option<String>>,
    pub args: Option<&'a [String]>,
}

impl<'a> Look<'a> {
    pub(crate) fn new(args: Option<&'a [String]>) -> Self {
        Look {
            host: std::cell::OnceCell::new(),
            args,
        }
    }

    /// The program's arguments (argv\[1..\]) of `req`.
    pub(crate) fn args<'s>(&'s self, req: &Request<'s>) -> Vec<&'s str> {
        match self.args {
            Some(a) => a.iter().map(String::as_str).collect(),
            None => req.resource.split_whitespace().skip(1).collect(),
        }
    }
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

/// Why a rule matched or missed, as a code: [`Rule::describe`] turns it into text only when a
/// message is needed, so deciding allocates nothing for the rules that do not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The rule is `read_only` and the call writes.
    ReadOnly,
    /// The resource matches none of `paths`.
    Path,
    /// `commands` on an empty command line.
    NoCommand,
    /// The program is not in `commands`.
    Command,
    /// The MCP tool is not in `tools`.
    Tool,
    /// Argument `i` (0-based, after the program) matches none of `args`.
    Arg(usize),
    /// Argument `i` matches `deny_args[j]`.
    DenyArg(usize, usize),
    /// `hosts` on a resource with no host.
    NoHost,
    /// The host is not in `hosts`.
    Host,
    /// `ports` on a resource with no port.
    NoPort,
    /// The port is not in `ports`.
    Port,
    /// The resource is not in `peers`.
    Peer,
    /// The payload is over this `max_bytes`.
    OverSize(u64),
    /// `deny_patterns[i]` matches the resource.
    Pattern(usize),
    /// An allow rule applies.
    Allowed,
    /// A deny rule with limits, none crossed.
    WithinLimits,
    /// A deny rule without limits, in scope.
    Denied,
}

/// How one rule relates to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eval {
    /// In scope and within its limits (for a deny rule: a limit is crossed, or it has none).
    Match(Why),
    /// Out of scope, or (allow rule) over a limit.
    Miss(Why),
    /// A constraint cannot be evaluated on this resource. Fails closed.
    Unevaluable(Why),
}

/// Items joined with `, `.
struct List<'l>(&'l [String]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, item) in self.0.iter().enumerate() {
            if k > 0 {
                f.write_str(", ")?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}

/// The text of a [`Why`] for a rule and request, written where it is needed (into the
/// decision's reason) without an intermediate string.
pub(crate) struct Described<'d> {
    pub rule: &'d Rule,
    pub req: &'d Request<'d>,
    pub look: &'d Look<'d>,
    pub why: Why,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, req, look) = (&self.rule.constraints, self.req, self.look);
        match self.why {
            Why::ReadOnly => f.write_str("rule is read_only and the call writes"),
            Why::Path => write!(f, "path not under {}", List(&c.paths)),
            Why::NoCommand => f.write_str("no command given"),
            Why::Command => write!(
                f,
                "command `{}` not in {}",
                req.resource.split_whitespace().next().unwrap_or(""),
                List(&c.commands)
            ),
            Why::Tool => write!(
                f,
                "tool `{}` not in {}",
                req.resource.split_whitespace().next().unwrap_or(""),
                List(&c.tools)
            ),
            Why::Arg(i) => write!(
                f,
                "argument {} `{}` matches none of args {}",
                i + 1,
                look.args(req).get(i).copied().unwrap_or(""),
                List(&c.args)
            ),
            Why::DenyArg(i, j) => write!(
                f,
                "argument {} `{}` matches deny_args `{}`",
                i + 1,
                look.args(req).get(i).copied().unwrap_or(""),
                c.deny_args.get(j).map_or("", String::as_str)
            ),
            Why::NoHost => write!(f, "`{}` names no host", req.resource),
            Why::NoPort => write!(f, "`{}` names no port", req.resource),
            Why::Port => write!(
                f,
                "port {} not in {}",
                port_of(req.resource).unwrap_or(0),
                ports_text(&c.ports)
            ),
            Why::Host => write!(
                f,
                "host `{}` not in {}",
                host_of(req.resource).unwrap_or_default(),
                List(&c.hosts)
            ),
            Why::Peer => write!(f, "peer `{}` not in {}", req.resource, List(&c.peers)),
            Why::OverSize(max) => write!(f, "{} bytes is over max_bytes {max}", req.bytes),
            Why::Pattern(i) => write!(
                f,
                "deny pattern `{}` matches {}",
                c.deny_patterns.get(i).map_or("", String::as_str),
                req.resource
            ),
            Why::Allowed => write!(f, "{} on {} is allowed", req.action, req.resource),
            Why::WithinLimits => f.write_str("within the rule's limits"),
            Why::Denied => write!(f, "{} on {} is denied", req.action, req.resource),
        }
    }
}

fn described<'d>(
    rule: &'d Rule,
    req: &'d Request<'d>,
    look: &'d Look<'d>,
    why: Why,
) -> Described<'d> {
    Described {
        rule,
        req,
        look,
        why,
    }
}

/// An empty reason with room for the usual ones (`A on R is allowed`), so that writing it
/// allocates once.
fn reason_buffer(req: &Request<'_>) -> String {
    String::with_capacity(64 + req.action.len() + req.resource.len())
}

/// The port of a `HOST:PORT` resource (a `network` connection; `[V6]:PORT` for IPv6).
pub(crate) fn port_of(resource: &str) -> Option<u16> {
    let (host, port) = resource.trim().rsplit_once(':')?;
    if host.contains(':') && !host.ends_with(']') {
        return None; // a bare IPv6 address, no port
    }
    port.parse().ok()
}

/// `443, 8000-8100`.
pub(crate) fn ports_text(ports: &[(u16, u16)]) -> String {
    let one = |(lo, hi): &(u16, u16)| {
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        }
    };
    ports.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// Whether `host` (lowercase) is admitted by one `hosts` entry.
fn host_matches(entry: &str, host: &str) -> bool {
    entry == "*"
        || entry == host
        || entry.strip_prefix("*.").is_some_and(|suffix| {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        })
}

impl Rule {
    /// Whether the action and mode admit the request; then each constraint. The caller has
    /// already checked the action.
    pub(crate) fn eval(&self, req: &Request<'_>, look: &Look<'_>) -> Eval {
        if self.mode == Some(RuleMode::ReadOnly) && req.access == Access::Write {
            return Eval::Miss(Why::ReadOnly);
        }
        let c = &self.constraints;
        let m = &self.matchers;
        // Scope: where the rule applies.
        if let Some(fast) = &m.fast_paths {
            if !fast.iter().any(|g| g.is_match(req.resource)) {
                return Eval::Miss(Why::Path);
            }
        } else if let Some(paths) = &m.paths {
            if !paths.is_match(req.resource) {
                return Eval::Miss(Why::Path);
            }
        }
        if let Some(cmds) = &m.commands {
            let Some(program) = req.resource.split_whitespace().next() else {
                return Eval::Unevaluable(Why::NoCommand);
            };
            let ok = match &m.fast_commands {
                Some(fast) => fast.iter().any(|g| g.is_match(program)),
                None => cmds.is_match(program),
            };
            if !ok {
                return Eval::Miss(Why::Command);
            }
        }
        if let Some(tools) = &m.tools {
            let tool = req.resource.split_whitespace().next().unwrap_or("");
            if !tools.is_match(tool) {
                return Eval::Miss(Why::Tool);
            }
        }
        if let Some(allowed) = &m.args {
            if let Some(i) = look.args(req).iter().position(|a| !allowed.is_match(a)) {
                return Eval::Miss(Why::Arg(i));
            }
        }
        if !c.hosts.is_empty() {
            let Some(host) = look.host.get_or_init(|| host_of(req.resource)) else {
                return Eval::Unevaluable(Why::NoHost);
            };
            if !c.hosts.iter().any(|h| host_matches(h, host)) {
                return Eval::Miss(Why::Host);
            }
        }
        if !c.ports.is_empty() {
            let Some(port) = port_of(req.resource) else {
                return Eval::Unevaluable(Why::NoPort);
            };
            if !c.ports.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)) {
                return Eval::Miss(Why::Port);
            }
        }
        if !c.peers.is_empty() && !c.peers.iter().any(|p| p == req.resource) {
            return Eval::Miss(Why::Peer);
        }
        // Limits: what is over the line.
        let crossed = match c.max_bytes.filter(|max| req.bytes > *max) {
            Some(max) => Some(Why::OverSize(max)),
            None => m
                .deny
                .iter()
                .position(|re| re.is_match(req.resource))
                .map(Why::Pattern),
        };
        let crossed = crossed.or_else(|| {
            let denied = m.deny_args.as_ref()?;
            look.args(req)
                .iter()
                .enumerate()
                .find_map(|(i, a)| denied.matches(a).first().map(|j| Why::DenyArg(i, *j)))
        });
        let has_limits =
            c.max_bytes.is_some() || !c.deny_patterns.is_empty() || !c.deny_args.is_empty();
        match (self.effect, crossed) {
            (Effect::Allow, Some(why)) => Eval::Miss(why),
            (Effect::Allow, None) => Eval::Match(Why::Allowed),
            (Effect::Deny, Some(why)) => Eval::Match(why),
            (Effect::Deny, None) if has_limits => Eval::Miss(Why::WithinLimits),
            (Effect::Deny, None) => Eval::Match(Why::Denied),
        }
    }

    /// The text of a [`Why`] for this rule and request.
    pub(crate) fn describe(&self, req: &Request<'_>, look: &Look<'_>, why: Why) -> String {
        described(self, req, look, why).to_string()
    }

    /// Sort key for choosing the reported rule among several: an exact action beats `*`, more
    /// scope constraints beat fewer, then the earlier line, then the earlier rule. A total
    /// order, so the choice never depends on the order rules are visited in.
    pub(crate) fn specificity(&self) -> (bool, std::cmp::Reverse<usize>, u32, usize) {
        let c = &self.constraints;
        let scoped = usize::from(!c.paths.is_empty())
            + usize::from(!c.commands.is_empty())
            + usize::from(!c.tools.is_empty())
            + usize::from(!c.hosts.is_empty())
            + usize::from(!c.ports.is_empty())
            + usize::from(!c.peers.is_empty());
        (
            self.action == "*",
            std::cmp::Reverse(scoped),
            self.line,
            self.index,
        )
    }

    /// Whether the rule is about `action` (its own action or `*`).
    pub fn covers_action(&self, action: &str) -> bool {
        self.action == "*" || self.action == action
    }
}

#[derive(Debug)]
struct Inner {
    path: String,
    /// The file's text, exactly as parsed (served to the agent as `/policy/security.md`).
    text: String,
    digest: [u8; 32],
    origin: source::Origin,
    version: String,
    mode: Mode,
    signals: Vec<Signal>,
    /// The `.md` line of `signals:`.
    signals_line: u32,
    rules: Vec<Rule>,
    /// Candidate rules per action and path prefix.
    index: Index,
    observability: Observability,
    /// The `.md` line of `observability:`.
    observability_line: u32,
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
        for (i, r) in rules.iter_mut().enumerate() {
            r.index = i;
        }
        let index = Index::build(&rules);
        Ok(Policy {
            inner: Arc::new(Inner {
                path: path.to_string(),
                text: text.to_string(),
                digest,
                origin: src.origin,
                version: doc.version,
                mode: doc.mode,
                signals: doc.signals,
                signals_line: doc.signals_line,
                rules,
                index,
                observability: doc.observability,
                observability_line: doc.observability_line,
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

    /// Whether `other` is this very policy (one parse shared), not an equal one.
    #[cfg(test)]
    pub(crate) fn is(&self, other: &Policy) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// blake3 of the file's text, exactly as read.
    pub fn digest(&self) -> [u8; 32] {
        self.inner.digest
    }

    /// The file's text, exactly as given to [`Policy::parse`].
    pub fn text(&self) -> &str {
        &self.inner.text
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

    /// The line of the `observability:` key in the `.md` file.
    pub fn observability_line(&self) -> u32 {
        self.inner.observability_line
    }

    /// The line of the `signals:` key in the `.md` file.
    pub fn signals_line(&self) -> u32 {
        self.inner.signals_line
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

    /// Whether some rule names `action` itself (not through `*`): for `network`, whether the
    /// agent gets an egress proxy at all.
    pub fn names_action(&self, action: &str) -> bool {
        self.inner.rules.iter().any(|r| r.action == action)
    }

    /// Whether an allow `network` rule lists `addr` literally in its `hosts` (`127.0.0.2`,
    /// `::1` or `[::1]`; never through a glob or `*`): what lets a connection reach a
    /// loopback, private, link-local or host address.
    pub fn names_address(&self, addr: std::net::IpAddr) -> bool {
        self.inner.rules.iter().any(|r| {
            r.effect == Effect::Allow
                && r.action == "network"
                && r.constraints.hosts.iter().any(|h| {
                    let bare = h.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
                    bare.unwrap_or(h).parse::<std::net::IpAddr>() == Ok(addr)
                })
        })
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
    ///
    /// Only the rules the index names for the request's action and resource are checked;
    /// the decision is identical to [`Policy::decide_unindexed`]'s (a property test holds
    /// them equal).
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        self.decide_args(req, None)
    }

    /// [`Policy::decide`] with the program's arguments as a list (an `Exec`'s argv\[1..\],
    /// for `args` and `deny_args`), when the caller has them: `None` splits the resource at
    /// whitespace instead (exact unless an argument holds whitespace).
    pub fn decide_args(&self, req: &Request<'_>, args: Option<&[String]>) -> Decision {
        let inner = &*self.inner;
        let bucket = inner.index.bucket(req.action);
        let look = Look::new(args);
        let nearest = Some(&bucket.nearest[..]);
        if let Some(all) = bucket.plain() {
            let rules = all.iter().filter_map(|i| inner.rules.get(*i));
            return self.decide_among(req, &look, rules, nearest);
        }
        let mut picked = Picked::new();
        bucket.each_candidate(req, &look, |i| picked.push(i));
        let rules = picked.iter().filter_map(|i| inner.rules.get(i));
        self.decide_among(req, &look, rules, nearest)
    }

    /// [`Policy::decide`] by a plain loop over every rule, without the index: the reference
    /// the index is tested and benchmarked against.
    #[doc(hidden)]
    pub fn decide_unindexed(&self, req: &Request<'_>) -> Decision {
        let rules = self
            .inner
            .rules
            .iter()
            .filter(|r| r.covers_action(req.action));
        self.decide_among(req, &Look::new(None), rules, None)
    }

    /// The decision over `rules` (every rule of the request's action that may apply; each at
    /// most once, in any order). `nearest`: the action's three most specific allow rules (in
    /// a default deny every allow rule missed, so these are the nearest misses), or `None` to
    /// find them by checking every rule of the action.
    fn decide_among<'r>(
        &self,
        req: &Request<'_>,
        look: &Look<'_>,
        rules: impl Iterator<Item = &'r Rule>,
        nearest: Option<&[usize]>,
    ) -> Decision {
        let mut deny: Option<(&Rule, Eval)> = None;
        let mut allow: Option<(&Rule, Why)> = None;
        // The most specific matching allow rule that asks for approval: the one an operator
        // is shown as asking (whichever allow rule is more specific).
        let mut gate: Option<(&Rule, Why)> = None;
        let (mut deny_log, mut allow_log, mut approval, mut dry_run) = (false, false, false, false);
        let mut rate: Option<(u64, usize, Rate)> = None;
        for rule in rules {
            match (rule.effect, rule.eval(req, look)) {
                (Effect::Deny, e @ (Eval::Match(_) | Eval::Unevaluable(_))) => {
                    deny_log |= rule.constraints.log;
                    if deny.is_none_or(|(d, _)| rule.specificity() < d.specificity()) {
                        deny = Some((rule, e));
                    }
                }
                (Effect::Deny, Eval::Miss(_)) => {}
                (Effect::Allow, Eval::Match(why)) => {
                    allow_log |= rule.constraints.log;
                    approval |= rule.requires_approval;
                    dry_run |= rule.constraints.dry_run;
                    if let Some(r) = rule.rate_limit {
                        // calls per day, lower = stricter; ties by rule index
                        let per_day = u64::from(r.count) * (86_400_000 / r.period.millis());
                        if rate.is_none_or(|(d, i, _)| (per_day, rule.index) < (d, i)) {
                            rate = Some((per_day, rule.index, r));
                        }
                    }
                    if rule.requires_approval
                        && gate.is_none_or(|(g, _)| rule.specificity() < g.specificity())
                    {
                        gate = Some((rule, why));
                    }
                    if allow.is_none_or(|(a, _)| rule.specificity() < a.specificity()) {
                        allow = Some((rule, why));
                    }
                }
                (Effect::Allow, Eval::Miss(_) | Eval::Unevaluable(_)) => {}
            }
        }

        if let Some((rule, e)) = deny {
            let mut reason = reason_buffer(req);
            let (prefix, why) = match e {
                Eval::Unevaluable(why) => ("cannot evaluate the rule: ", why),
                Eval::Match(why) | Eval::Miss(why) => ("", why),
            };
            reason.push_str(prefix);
            let _ = write!(reason, "{}", described(rule, req, look, why));
            return Decision {
                allowed: false,
                rule: Some(self.make_ref(rule)),
                reason,
                requires_approval: false,
                rate_limit: None,
                log: deny_log,
                dry_run: false,
            };
        }

        if let Some((rule, why)) = gate.or(allow) {
            // Flags are OR-ed over every matching allow rule, so adding a rule can never turn
            // approval or logging off; the rate limit is the strictest one. A call that needs
            // approval names the rule that asks for it (what the operator decides on).
            return Decision {
                allowed: true,
                rule: Some(self.make_ref(rule)),
                reason: {
                    let mut reason = reason_buffer(req);
                    let _ = write!(reason, "{}", described(rule, req, look, why));
                    reason
                },
                requires_approval: approval,
                rate_limit: rate.map(|(_, i, r)| (i, r)),
                log: allow_log,
                dry_run,
            };
        }

        // The nearest misses come from every rule of the action, not only the index's
        // candidates: a rule the index skipped (another path prefix) may be the nearest.
        let reason = match nearest {
            Some(near) => {
                let near = near.iter().filter_map(|i| self.inner.rules.get(*i));
                self.default_deny_reason(req, look, near)
            }
            None => self.default_deny_reason(
                req,
                look,
                self.inner
                    .rules
                    .iter()
                    .filter(|r| r.covers_action(req.action)),
            ),
        };
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

    /// "no rule allows A on R; nearest: …" — the three most specific allow rules that missed.
    fn default_deny_reason<'r>(
        &self,
        req: &Request<'_>,
        look: &Look<'_>,
        rules: impl Iterator<Item = &'r Rule>,
    ) -> String {
        let mut misses: Vec<(&Rule, Why)> = rules
            .filter(|r| r.effect == Effect::Allow)
            .filter_map(|r| match r.eval(req, look) {
                Eval::Miss(why) | Eval::Unevaluable(why) => Some((r, why)),
                Eval::Match(_) => None,
            })
            .collect();
        let mut reason = reason_buffer(req);
        reason.reserve(256);
        let _ = write!(reason, "no rule allows {} on {}", req.action, req.resource);
        if misses.is_empty() {
            let _ = write!(reason, " (no allow rule for action `{}`)", req.action);
        } else {
            misses.sort_by_key(|(r, _)| r.specificity());
            for (k, (r, why)) in misses.iter().take(3).enumerate() {
                let _ = write!(
                    reason,
                    "{}rule `{}` ({}:{}): {}",
                    if k == 0 { "; nearest: " } else { "; " },
                    r.id,
                    self.inner.path,
                    r.line,
                    described(r, req, look, *why)
                );
            }
        }
        reason
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

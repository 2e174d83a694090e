//! Validation of the positioned YAML tree against the security spec v1.0 plus our documented
//! extensions, and compilation of each rule's matchers (globs, regexes). The first problem
//! found is reported, with its position in the `.md` file.

use agentos_syscalls::signal::ALL_SIGNALS;
use agentos_syscalls::Signal;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;

use crate::error::{Diagnostic, PolicyError};
use crate::rate::Rate;
use crate::source::Source;
use crate::suggest::closest;
use crate::yaml::{Key, Node, Pos, Value};
use crate::{Constraints, Effect, Limits, Mode, Observability, Rule, RuleMode, Sandbox};

/// Actions the kernel and the spec name. An action within a typo's distance of one of these
/// (but not equal) is rejected with a suggestion: a misspelled `deny` would silently never
/// match. Other custom action names are accepted.
pub const KNOWN_ACTIONS: &[&str] = &[
    "file_read",
    "file_write",
    "code_execution",
    "api_call",
    "ipc_send",
    "signal",
    "database_query",
    "database_write",
    "send_email",
    "mcp_tool",
    "network",
];

/// Whether the kernel emits `action` itself (one of [`KNOWN_ACTIONS`]). Any other name comes
/// only from a `Call` that names it, served by a tool provider the operator declared.
pub fn is_known_action(action: &str) -> bool {
    KNOWN_ACTIONS.contains(&action)
}

/// What to say about an action name the kernel never emits: the one list of valid names
/// (`policy lint` warns with it, `policy explain` refuses with it), and the closest known
/// name when it looks like a typo.
pub fn unknown_action(action: &str) -> String {
    let mut msg = format!(
        "action `{action}` is not one the kernel emits ({})",
        KNOWN_ACTIONS.join(", ")
    );
    if let Some(near) = closest(action, KNOWN_ACTIONS.iter().copied()) {
        msg.push_str(&format!("; did you mean `{near}`?"));
    }
    msg
}

const TOP_KEYS: &[&str] = &["kernel", "signals", "policies", "observability", "sandbox"];
const KERNEL_KEYS: &[&str] = &["version", "mode"];
const RULE_KEYS: &[&str] = &[
    "name",
    "action",
    "effect",
    "mode",
    "requires_approval",
    "rate_limit",
    "constraints",
];
const CONSTRAINT_KEYS: &[&str] = &[
    "paths",
    "commands",
    "tools",
    "args",
    "deny_args",
    "hosts",
    "ports",
    "peers",
    "max_bytes",
    "deny_patterns",
    "log",
    "dry_run",
];
const OBSERVABILITY_KEYS: &[&str] = &["metrics", "traces", "flight_recorder"];
const SANDBOX_KEYS: &[&str] = &["read_only", "limits"];
const LIMIT_KEYS: &[&str] = &[
    "address_space",
    "processes",
    "open_files",
    "cpu_seconds",
    "file_size",
    "wall_time_seconds",
    "memory",
    "cpu",
    "scratch",
];

/// Everything a policy file says, validated and compiled.
#[derive(Debug)]
pub(crate) struct Doc {
    pub version: String,
    pub mode: Mode,
    pub signals: Vec<Signal>,
    /// The `.md` line of the `signals:` key (lint points at it).
    pub signals_line: u32,
    pub rules: Vec<Rule>,
    pub observability: Observability,
    /// The `.md` line of the `observability:` key (lint points at it; `signals:`'s when absent).
    pub observability_line: u32,
    pub sandbox: Sandbox,
}

pub(crate) struct Ctx<'a> {
    pub path: &'a str,
    pub lines: Vec<&'a str>,
    pub src: &'a Source,
}

type Res<T> = Result<T, PolicyError>;
type Map<'n> = &'n [(Key, Node)];

impl Ctx<'_> {
    /// An error at a YAML position.
    pub(crate) fn at(&self, pos: Pos, message: String, help: Option<String>) -> PolicyError {
        let file_pos = self.src.to_file(pos.line.max(1), pos.col.max(1));
        self.at_file(file_pos, pos.len, message, help, false)
    }

    /// An error at a position already in file coordinates.
    pub(crate) fn at_file(
        &self,
        (line, col): (u32, u32),
        len: u32,
        message: String,
        help: Option<String>,
        syntax: bool,
    ) -> PolicyError {
        let text = self
            .lines
            .get(line.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("");
        let d = Box::new(Diagnostic::new(
            self.path,
            (line, col),
            len,
            message,
            text,
            help,
        ));
        if syntax {
            PolicyError::Syntax(d)
        } else {
            PolicyError::Invalid(d)
        }
    }

    fn file_line(&self, pos: Pos) -> u32 {
        self.src.to_file(pos.line.max(1), pos.col.max(1)).0
    }

    fn did_you_mean<'k>(word: &str, known: impl IntoIterator<Item = &'k str>) -> Option<String> {
        closest(word, known).map(|k| format!("did you mean `{k}`?"))
    }

    /// A mapping's entries; `null` (an empty value) counts as an empty mapping.
    fn map<'n>(&self, node: &'n Node, what: &str) -> Res<Map<'n>> {
        match &node.value {
            Value::Map(m) => Ok(m),
            Value::Null => Ok(&[]),
            other => Err(self.at(
                node.pos,
                format!("{what} must be a mapping, found {}", other.kind()),
                None,
            )),
        }
    }

    fn check_keys(&self, map: Map<'_>, known: &[&str], what: &str) -> Res<()> {
        for (k, _) in map {
            if !known.contains(&k.name.as_str()) {
                let help =
                    Self::did_you_mean(&k.name, known.iter().copied()).unwrap_or_else(|| {
                        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                        format!("expected one of {}", list.join(", "))
                    });
                return Err(self.at(
                    k.pos,
                    format!("unknown key `{}` in {what}", k.name),
                    Some(help),
                ));
            }
        }
        Ok(())
    }

    fn require<'n>(
        &self,
        map: Map<'n>,
        key: &str,
        at: Pos,
        what: &str,
        hint: &str,
    ) -> Res<&'n Node> {
        get(map, key).ok_or_else(|| {
            self.at(
                at,
                format!("{what} is missing `{key}`"),
                Some(hint.to_string()),
            )
        })
    }

    fn string<'n>(&self, node: &'n Node, what: &str) -> Res<&'n str> {
        match &node.value {
            Value::Str(s) => Ok(s),
            other => Err(self.at(
                node.pos,
                format!("`{what}` must be a string, found {}", other.kind()),
                None,
            )),
        }
    }

    fn boolean(&self, node: &Node, what: &str) -> Res<bool> {
        match &node.value {
            Value::Bool(b) => Ok(*b),
            Value::Str(s) => {
                let guess = match s.to_ascii_lowercase().as_str() {
                    "yes" | "on" | "y" | "true" => Some("did you mean `true`?".to_string()),
                    "no" | "off" | "n" | "false" => Some("did you mean `false`?".to_string()),
                    _ => None,
                };
                Err(self.at(
                    node.pos,
                    format!("`{what}` must be true or false, found `{s}`"),
                    guess,
                ))
            }
            other => Err(self.at(
                node.pos,
                format!("`{what}` must be true or false, found {}", other.kind()),
                None,
            )),
        }
    }

    fn word<T: Copy>(&self, node: &Node, what: &str, table: &[(T, &str)]) -> Res<T> {
        let s = self.string(node, what)?;
        if let Some((v, _)) = table.iter().find(|(_, name)| *name == s) {
            return Ok(*v);
        }
        let names: Vec<&str> = table.iter().map(|(_, n)| *n).collect();
        let expected = match names.as_slice() {
            [a, b] => format!("{a} or {b}"),
            [init @ .., last] => format!("{}, or {last}", init.join(", ")),
            [] => String::new(),
        };
        let help = Self::did_you_mean(s, names.iter().copied());
        Err(self.at(
            node.pos,
            format!("invalid {what} `{s}`: expected {expected}"),
            help,
        ))
    }

    fn uint(&self, node: &Node, what: &str) -> Res<u64> {
        match &node.value {
            Value::Int(i) => u64::try_from(*i).map_err(|_| {
                self.at(
                    node.pos,
                    format!("`{what}` must be a whole number ≥ 0, found {i}"),
                    None,
                )
            }),
            other => Err(self.at(
                node.pos,
                format!("`{what}` must be a whole number, found {}", other.kind()),
                None,
            )),
        }
    }

    fn positive(&self, node: &Node, what: &str) -> Res<u64> {
        let n = self.uint(node, what)?;
        if n == 0 {
            return Err(self.at(node.pos, format!("`{what}` must be at least 1"), None));
        }
        Ok(n)
    }

    /// `sandbox.limits.cpu`: CPUs of quota (`0.5`, `2`), 0.01 to 1024, as milli-CPUs.
    fn cpus(&self, node: &Node) -> Res<u64> {
        let cpus = match &node.value {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            other => {
                return Err(self.at(
                    node.pos,
                    format!(
                        "`cpu` must be a number of CPUs (like 0.5 or 2), found {}",
                        other.kind()
                    ),
                    None,
                ))
            }
        };
        if !cpus.is_finite() || !(0.01..=1024.0).contains(&cpus) {
            return Err(self.at(
                node.pos,
                format!("`cpu` must be between 0.01 and 1024 CPUs, found {cpus}"),
                Some("e.g. `cpu: 0.5` for half of one CPU, `cpu: 2` for two".into()),
            ));
        }
        Ok((cpus * 1000.0).round() as u64)
    }

    /// A byte size: an integer, or a string like `"512MiB"` / `"10 MB"`.
    fn size(&self, node: &Node, what: &str) -> Res<u64> {
        match &node.value {
            Value::Int(_) => self.uint(node, what),
            Value::Str(s) => parse_size(s).map_err(|(msg, help)| self.at(node.pos, format!("`{what}`: {msg}"), help)),
            other => Err(self.at(
                node.pos,
                format!("`{what}` must be a size in bytes (an integer or a string like \"512MiB\"), found {}", other.kind()),
                None,
            )),
        }
    }

    /// A list of non-empty strings; a single string counts as a one-item list.
    fn strings<'n>(&self, node: &'n Node, what: &str) -> Res<Vec<(&'n str, Pos)>> {
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            Value::Str(_) => vec![node],
            other => {
                return Err(self.at(
                    node.pos,
                    format!("`{what}` must be a list of strings, found {}", other.kind()),
                    None,
                ))
            }
        };
        if items.is_empty() {
            return Err(self.at(
                node.pos,
                format!("`{what}` is empty and would match nothing"),
                Some(format!(
                    "remove `{what}` to leave it unconstrained, or list at least one entry"
                )),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let s = match &item.value {
                Value::Str(s) => s.as_str(),
                other => {
                    return Err(self.at(
                        item.pos,
                        format!(
                            "each entry of `{what}` must be a string, found {}",
                            other.kind()
                        ),
                        None,
                    ))
                }
            };
            if s.trim().is_empty() {
                return Err(self.at(item.pos, format!("an entry of `{what}` is empty"), None));
            }
            out.push((s, item.pos));
        }
        Ok(out)
    }
}

fn get<'n>(map: Map<'n>, key: &str) -> Option<&'n Node> {
    map.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
}

fn key_pos(map: Map<'_>, key: &str) -> Option<Pos> {
    map.iter().find(|(k, _)| k.name == key).map(|(k, _)| k.pos)
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses `"512MiB"`, `"10 MB"`, `"4096"`. Units are case-insensitive: B, KB/MB/GB/TB (powers
/// of 1000) and KiB/MiB/GiB/TiB (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<u64, (String, Option<String>)> {
    let t = s.trim();
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim();
    let n: u64 = num.parse().map_err(|_| {
        (
            format!("invalid size `{s}`: expected a number of bytes like 4096 or \"512MiB\""),
            None,
        )
    })?;
    let lower = unit.to_ascii_lowercase();
    let mult = if unit.is_empty() {
        1
    } else if let Some((_, m)) = SIZE_UNITS.iter().find(|(u, _)| *u == lower) {
        *m
    } else {
        let canonical = ["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"];
        let guess = match lower.as_str() {
            "k" => Some("KiB"),
            "m" => Some("MiB"),
            "g" => Some("GiB"),
            "t" => Some("TiB"),
            _ => closest(unit, canonical),
        };
        return Err((
            format!("invalid size unit `{unit}` in `{s}`: expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"),
            guess.map(|g| format!("did you mean `{n}{g}`?")),
        ));
    };
    n.checked_mul(mult)
        .ok_or_else(|| (format!("size `{s}` is too large"), None))
}

fn glob_set(globs: &[(&str, Pos)], ctx: &Ctx<'_>, what: &str) -> Res<GlobSet> {
    build_globs(globs, ctx, what, true)
}

/// The globs of `args`/`deny_args`: an argument is no path, so `*` matches `/` too.
fn arg_glob_set(globs: &[(&str, Pos)], ctx: &Ctx<'_>, what: &str) -> Res<GlobSet> {
    build_globs(globs, ctx, what, false)
}

/// One set of globs; `paths`: `*` stops at `/` (a path glob) rather than crossing it.
fn build_globs(globs: &[(&str, Pos)], ctx: &Ctx<'_>, what: &str, paths: bool) -> Res<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for (g, pos) in globs {
        let glob = GlobBuilder::new(g)
            .literal_separator(paths)
            .backslash_escape(true)
            .build()
            .map_err(|e| {
                ctx.at(
                    *pos,
                    format!("invalid glob `{g}` in `{what}`: {}", e.kind()),
                    None,
                )
            })?;
        b.add(glob);
    }
    b.build().map_err(|e| {
        ctx.at(
            globs.first().map_or(Pos::default(), |g| g.1),
            format!("invalid globs in `{what}`: {e}"),
            None,
        )
    })
}

/// The gist of a regex error: its `error: ...` line, without the multi-line frame.
fn regex_gist(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.lines().last().unwrap_or("").trim().to_string(),
            str::to_string,
        )
}

fn valid_action(a: &str) -> bool {
    a == "*"
        || (!a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
}

/// The host part of a URL or `host[:port]`, lowercased; `None` if there is none.
pub(crate) fn host_of(resource: &str) -> Option<String> {
    let s = resource.trim();
    let rest = s.find("://").map_or(s, |i| &s[i + 3..]);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| h)?
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some(host)
}

impl Ctx<'_> {
    pub(crate) fn doc(&self, root: &Node) -> Res<Doc> {
        let top = match &root.value {
            Value::Map(m) => m.as_slice(),
            other => {
                return Err(self.at(
                    root.pos,
                    format!("a policy must be a YAML mapping with `kernel`, `signals` and `policies`, found {}", other.kind()),
                    Some("put the policy in `---` front matter or in ```yaml blocks".to_string()),
                ))
            }
        };
        self.check_keys(top, TOP_KEYS, "the policy")?;
        let start = Pos {
            line: 1,
            col: 1,
            len: 1,
        };
        let kernel = self.require(
            top,
            "kernel",
            start,
            "the policy",
            "add `kernel: {version: \"1.0\", mode: strict}`",
        )?;
        let signals = self.require(
            top,
            "signals",
            start,
            "the policy",
            "add `signals: [SIGSTOP, SIGKILL]` (the signals the kernel may send)",
        )?;
        let policies = self.require(
            top,
            "policies",
            start,
            "the policy",
            "add `policies:` with at least one rule",
        )?;
        let kernel_at = key_pos(top, "kernel").unwrap_or(start);
        let (version, mode) = self.kernel(kernel, kernel_at)?;
        let signals_line = self.file_line(key_pos(top, "signals").unwrap_or(start));
        let signals = self.signals(signals)?;
        let rules = self.rules(policies)?;
        let observability_line = self.file_line(key_pos(top, "observability").unwrap_or(start));
        let observability = match get(top, "observability") {
            Some(n) => self.observability(n)?,
            None => Observability::default(),
        };
        let sandbox = match get(top, "sandbox") {
            Some(n) => self.sandbox(n)?,
            None => Sandbox::default(),
        };
        Ok(Doc {
            version,
            mode,
            signals,
            signals_line,
            rules,
            observability,
            observability_line,
            sandbox,
        })
    }

    fn kernel(&self, node: &Node, at: Pos) -> Res<(String, Mode)> {
        let m = self.map(node, "`kernel`")?;
        self.check_keys(m, KERNEL_KEYS, "`kernel`")?;
        let v = self.require(m, "version", at, "`kernel`", "add `version: \"1.0\"`")?;
        let version = match &v.value {
            Value::Str(s) => s.clone(),
            // `version: 1.0` unquoted is a YAML number; it means the same.
            Value::Float(f) if *f == 1.0 => "1.0".to_string(),
            Value::Int(1) => "1.0".to_string(),
            other => {
                return Err(self.at(
                    v.pos,
                    format!("`kernel.version` must be a string, found {}", other.kind()),
                    None,
                ))
            }
        };
        if version != "1.0" {
            return Err(self.at(
                v.pos,
                format!("unsupported kernel.version `{version}`: this kernel implements version \"1.0\""),
                None,
            ));
        }
        let mode_node = self.require(
            m,
            "mode",
            at,
            "`kernel`",
            "add `mode: strict` (or permissive, audit)",
        )?;
        let mode = self.word(
            mode_node,
            "kernel.mode",
            &[
                (Mode::Strict, "strict"),
                (Mode::Permissive, "permissive"),
                (Mode::Audit, "audit"),
            ],
        )?;
        Ok((version, mode))
    }

    fn signals(&self, node: &Node) -> Res<Vec<Signal>> {
        let items = match &node.value {
            Value::Seq(items) => items,
            other => {
                return Err(self.at(
                    node.pos,
                    format!(
                        "`signals` must be a list of signal names, found {}",
                        other.kind()
                    ),
                    None,
                ))
            }
        };
        let mut out = Vec::new();
        for item in items {
            let name = match &item.value {
                Value::Str(s) => s.as_str(),
                other => {
                    return Err(self.at(
                        item.pos,
                        format!(
                            "a signal must be a name like SIGSTOP, found {}",
                            other.kind()
                        ),
                        None,
                    ))
                }
            };
            let Some(sig) = ALL_SIGNALS.into_iter().find(|s| s.name() == name) else {
                let help = match name.parse::<Signal>() {
                    Ok(sig) => Some(format!("did you mean `{}`?", sig.name())),
                    Err(_) => Self::did_you_mean(name, ALL_SIGNALS.iter().map(|s| s.name()))
                        .or_else(|| {
                            let all: Vec<&str> = ALL_SIGNALS.iter().map(|s| s.name()).collect();
                            Some(format!("known signals: {}", all.join(", ")))
                        }),
                };
                return Err(self.at(item.pos, format!("unknown signal `{name}`"), help));
            };
            if !out.contains(&sig) {
                out.push(sig);
            }
        }
        Ok(out)
    }

    fn rules(&self, node: &Node) -> Res<Vec<Rule>> {
        let items = match &node.value {
            Value::Seq(items) => items,
            other => {
                return Err(self.at(
                    node.pos,
                    format!("`policies` must be a list of rules, found {}", other.kind()),
                    None,
                ))
            }
        };
        let mut rules: Vec<Rule> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let rule = self.rule(index, item)?;
            if let Some(prev) = rules.iter().find(|r| r.id == rule.id) {
                let name_pos = match &item.value {
                    Value::Map(m) => key_pos(m, "name").unwrap_or(item.pos),
                    _ => item.pos,
                };
                return Err(self.at(
                    name_pos,
                    format!(
                        "duplicate rule name `{}` (first used at line {})",
                        rule.id, prev.line
                    ),
                    None,
                ));
            }
            rules.push(rule);
        }
        Ok(rules)
    }

    fn rule(&self, index: usize, item: &Node) -> Res<Rule> {
        let default_id = format!("policies[{index}]");
        let m = match &item.value {
            Value::Map(m) => m.as_slice(),
            other => {
                return Err(self.at(
                    item.pos,
                    format!(
                        "rule `{default_id}` must be a mapping, found {}",
                        other.kind()
                    ),
                    None,
                ))
            }
        };
        let id = match get(m, "name") {
            Some(n) => {
                let s = self.string(n, "name")?;
                if s.trim().is_empty() {
                    return Err(self.at(
                        n.pos,
                        "a rule `name` must not be empty".to_string(),
                        None,
                    ));
                }
                s.to_string()
            }
            None => default_id,
        };
        let what = format!("rule `{id}`");
        self.check_keys(m, RULE_KEYS, &what)?;
        let action_node = self.require(
            m,
            "action",
            item.pos,
            &what,
            "add `action: file_read` (or another action, or \"*\")",
        )?;
        let action = self.string(action_node, "action")?;
        if !valid_action(action) {
            return Err(self.at(
                action_node.pos,
                format!("invalid action `{action}`: use letters, digits, `_`, `-`, `.`, `:` or \"*\" for every action"),
                Self::did_you_mean(action, KNOWN_ACTIONS.iter().copied()),
            ));
        }
        if !KNOWN_ACTIONS.contains(&action) && action != "*" {
            if let Some(help) = Self::did_you_mean(action, KNOWN_ACTIONS.iter().copied()) {
                return Err(self.at(
                    action_node.pos,
                    format!("unknown action `{action}`"),
                    Some(help),
                ));
            }
        }
        let effect_node = self.require(
            m,
            "effect",
            item.pos,
            &what,
            "add `effect: allow` or `effect: deny`",
        )?;
        let effect = self.word(
            effect_node,
            "effect",
            &[(Effect::Allow, "allow"), (Effect::Deny, "deny")],
        )?;
        let mode = match get(m, "mode") {
            Some(n) => Some(self.word(
                n,
                "mode",
                &[
                    (RuleMode::ReadOnly, "read_only"),
                    (RuleMode::ReadWrite, "read_write"),
                ],
            )?),
            None => None,
        };
        let requires_approval = match get(m, "requires_approval") {
            Some(n) => self.boolean(n, "requires_approval")?,
            None => false,
        };
        let rate_limit = match get(m, "rate_limit") {
            Some(n) => {
                let s = self.string(n, "rate_limit")?;
                Some(Rate::parse(s).map_err(|(msg, guess)| {
                    self.at(n.pos, msg, guess.map(|g| format!("did you mean `{g}`?")))
                })?)
            }
            None => None,
        };
        if effect == Effect::Deny {
            for key in ["requires_approval", "rate_limit"] {
                if let (Some(p), Some(n)) = (key_pos(m, key), get(m, key)) {
                    if !matches!(n.value, Value::Bool(false)) {
                        return Err(self.at(
                            p,
                            format!("`{key}` has no effect on a deny rule ({what})"),
                            Some("a deny rule always refuses; put it on an allow rule".to_string()),
                        ));
                    }
                }
            }
        }
        let (constraints, matchers) = match get(m, "constraints") {
            Some(n) => {
                let out = self.constraints(n)?;
                if action != "mcp_tool" {
                    let cm = self.map(n, "`constraints`")?;
                    if let Some(p) = key_pos(cm, "tools") {
                        return Err(self.at(
                            p,
                            format!("`tools` applies only to `mcp_tool` rules ({what} has action `{action}`)"),
                            Some("`tools` names the MCP tools (`SERVER/TOOL` globs) an mcp_tool rule covers".to_string()),
                        ));
                    }
                }
                if action != "network" {
                    let cm = self.map(n, "`constraints`")?;
                    if let Some(p) = key_pos(cm, "ports") {
                        return Err(self.at(
                            p,
                            format!("`ports` applies only to `network` rules ({what} has action `{action}`)"),
                            Some("`ports` limits the ports an agent's connections through its egress proxy may reach: move it to a network rule".to_string()),
                        ));
                    }
                }
                if action != "code_execution" {
                    let cm = self.map(n, "`constraints`")?;
                    for key in ["args", "deny_args"] {
                        if let Some(p) = key_pos(cm, key) {
                            return Err(self.at(
                                p,
                                format!("`{key}` applies only to `code_execution` rules ({what} has action `{action}`)"),
                                Some("`args` and `deny_args` judge the arguments of an `Exec`: move them to a code_execution rule".to_string()),
                            ));
                        }
                    }
                }
                out
            }
            None => (Constraints::default(), crate::engine::Matchers::default()),
        };
        Ok(Rule {
            index: 0,
            id,
            line: self.file_line(item.pos),
            action: action.to_string(),
            effect,
            mode,
            requires_approval,
            rate_limit,
            constraints,
            matchers,
        })
    }

    fn constraints(&self, node: &Node) -> Res<(Constraints, crate::engine::Matchers)> {
        let m = self.map(node, "`constraints`")?;
        self.check_keys(m, CONSTRAINT_KEYS, "`constraints`")?;
        let mut c = Constraints::default();
        let mut mt = crate::engine::Matchers::default();
        if let Some(n) = get(m, "paths") {
            let globs = self.strings(n, "paths")?;
            for (g, pos) in &globs {
                if !g.starts_with('/') && !g.starts_with('*') {
                    return Err(self.at(
                        *pos,
                        format!("path glob `{g}` is relative; resources are absolute VFS paths"),
                        Some(format!("did you mean `/{g}`?")),
                    ));
                }
            }
            mt.paths = Some(glob_set(&globs, self, "paths")?);
            mt.fast_paths = crate::engine::FastGlob::compile_all(globs.iter().map(|(g, _)| *g));
            c.paths = globs.iter().map(|(g, _)| g.to_string()).collect();
        }
        if let Some(n) = get(m, "commands") {
            let cmds = self.strings(n, "commands")?;
            mt.commands = Some(glob_set(&cmds, self, "commands")?);
            mt.fast_commands = crate::engine::FastGlob::compile_all(cmds.iter().map(|(g, _)| *g));
            c.commands = cmds.iter().map(|(g, _)| g.to_string()).collect();
        }
        if let Some(n) = get(m, "tools") {
            let globs = self.strings(n, "tools")?;
            for (g, pos) in &globs {
                if !g.contains('/') {
                    return Err(self.at(
                        *pos,
                        format!("tool glob `{g}` names no server; MCP tools are `SERVER/TOOL`"),
                        Some(format!("did you mean `*/{g}` or `{g}/*`?")),
                    ));
                }
            }
            mt.tools = Some(glob_set(&globs, self, "tools")?);
            c.tools = globs.iter().map(|(g, _)| g.to_string()).collect();
        }
        for key in ["args", "deny_args"] {
            if let Some(n) = get(m, key) {
                let globs = self.strings(n, key)?;
                let set = arg_glob_set(&globs, self, key)?;
                let list = globs.iter().map(|(g, _)| g.to_string()).collect();
                if key == "args" {
                    mt.args = Some(set);
                    c.args = list;
                } else {
                    mt.deny_args = Some(set);
                    c.deny_args = list;
                }
            }
        }
        if let Some(n) = get(m, "hosts") {
            for (h, pos) in self.strings(n, "hosts")? {
                let lower = h.trim().to_ascii_lowercase();
                let bare = lower.strip_prefix("*.").unwrap_or(&lower);
                let ok = lower == "*"
                    || (!bare.is_empty()
                        && bare.chars().all(|ch| {
                            ch.is_ascii_alphanumeric()
                                || matches!(ch, '-' | '.' | '_' | ':' | '[' | ']')
                        }));
                if !ok {
                    let guess = host_of(h)
                        .filter(|g| g != &lower)
                        .map(|g| format!("did you mean `{g}`?"));
                    return Err(self.at(
                        pos,
                        format!("invalid host `{h}`: expected a host name like `api.example.com` or `*.example.com`"),
                        guess,
                    ));
                }
                // `[::1]` is the address `::1`, as resources name it.
                let unbracketed = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
                c.hosts
                    .push(unbracketed.map_or(lower.clone(), str::to_string));
            }
        }
        if let Some(n) = get(m, "ports") {
            c.ports = self.ports(n)?;
        }
        if let Some(n) = get(m, "peers") {
            c.peers = self
                .strings(n, "peers")?
                .iter()
                .map(|(p, _)| p.to_string())
                .collect();
        }
        if let Some(n) = get(m, "max_bytes") {
            c.max_bytes = Some(self.size(n, "max_bytes")?);
        }
        if let Some(n) = get(m, "deny_patterns") {
            for (p, pos) in self.strings(n, "deny_patterns")? {
                let re = Regex::new(p).map_err(|e| {
                    self.at(
                        pos,
                        format!("invalid regex `{p}` in `deny_patterns`: {}", regex_gist(&e)),
                        None,
                    )
                })?;
                mt.deny.push(re);
                c.deny_patterns.push(p.to_string());
            }
        }
        if let Some(n) = get(m, "log") {
            c.log = self.boolean(n, "log")?;
        }
        if let Some(n) = get(m, "dry_run") {
            c.dry_run = self.boolean(n, "dry_run")?;
        }
        Ok((c, mt))
    }

    /// `ports`: a list of ports (`443`) and inclusive ranges (`"8000-8100"`), 1 to 65535.
    fn ports(&self, node: &Node) -> Res<Vec<(u16, u16)>> {
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            Value::Int(_) | Value::Str(_) => vec![node],
            other => {
                return Err(self.at(
                    node.pos,
                    format!(
                        "`ports` must be a list of ports and ranges, found {}",
                        other.kind()
                    ),
                    Some("write `ports: [443, \"8000-8100\"]`".to_string()),
                ))
            }
        };
        if items.is_empty() {
            return Err(self.at(
                node.pos,
                "`ports` is empty and would match nothing".to_string(),
                Some("remove `ports` to allow every port, or list at least one".to_string()),
            ));
        }
        let port = |text: &str| text.trim().parse::<u16>().ok().filter(|p| *p > 0);
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let range = match &item.value {
                Value::Int(i) => u16::try_from(*i).ok().filter(|p| *p > 0).map(|p| (p, p)),
                Value::Str(s) => match s.split_once('-') {
                    Some((lo, hi)) => port(lo).zip(port(hi)).filter(|(lo, hi)| lo <= hi),
                    None => port(s).map(|p| (p, p)),
                },
                _ => None,
            };
            let Some(range) = range else {
                return Err(self.at(
                    item.pos,
                    "invalid port: expected a port from 1 to 65535 (`443`) or a range `\"LOW-HIGH\"` with LOW ≤ HIGH".to_string(),
                    None,
                ));
            };
            out.push(range);
        }
        Ok(out)
    }

    fn observability(&self, node: &Node) -> Res<Observability> {
        let m = self.map(node, "`observability`")?;
        self.check_keys(m, OBSERVABILITY_KEYS, "`observability`")?;
        let mut o = Observability::default();
        if let Some(n) = get(m, "metrics") {
            o.metrics = self.boolean(n, "metrics")?;
        }
        if let Some(n) = get(m, "traces") {
            o.traces = self.boolean(n, "traces")?;
        }
        if let Some(n) = get(m, "flight_recorder") {
            o.flight_recorder = self.boolean(n, "flight_recorder")?;
        }
        Ok(o)
    }

    fn sandbox(&self, node: &Node) -> Res<Sandbox> {
        let m = self.map(node, "`sandbox`")?;
        self.check_keys(m, SANDBOX_KEYS, "`sandbox`")?;
        let mut s = Sandbox::default();
        if let Some(n) = get(m, "read_only") {
            for (p, pos) in self.strings(n, "read_only")? {
                if !p.starts_with('/') || p.contains('\0') || p.split('/').any(|c| c == "..") {
                    return Err(self.at(
                        pos,
                        format!(
                            "`read_only` path `{p}` must be an absolute host path without `..`"
                        ),
                        None,
                    ));
                }
                s.read_only.push(p.to_string());
            }
        }
        if let Some(n) = get(m, "limits") {
            let lm = self.map(n, "`sandbox.limits`")?;
            self.check_keys(lm, LIMIT_KEYS, "`sandbox.limits`")?;
            let mut l = Limits::default();
            for (k, v) in lm {
                let name = k.name.as_str();
                if name == "cpu" {
                    l.cpu_millis = Some(self.cpus(v)?);
                    continue;
                }
                let value = match name {
                    "address_space" | "file_size" | "memory" | "scratch" => {
                        let b = self.size(v, name)?;
                        if b == 0 {
                            return Err(self.at(
                                v.pos,
                                format!("`{name}` must be at least 1 byte"),
                                None,
                            ));
                        }
                        b
                    }
                    _ => self.positive(v, name)?,
                };
                match name {
                    "address_space" => l.address_space = Some(value),
                    "processes" => l.processes = Some(value),
                    "open_files" => l.open_files = Some(value),
                    "cpu_seconds" => l.cpu_seconds = Some(value),
                    "file_size" => l.file_size = Some(value),
                    "memory" => l.memory = Some(value),
                    "scratch" => l.scratch = Some(value),
                    _ => l.wall_time_seconds = Some(value),
                }
            }
            s.limits = l;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(
            parse_size("512M").unwrap_err().1.as_deref(),
            Some("did you mean `512MiB`?")
        );
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999TiB").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            host_of("https://user@API.example.com:443/x?y").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host_of("example.com").as_deref(), Some("example.com"));
        assert_eq!(host_of("example.com:8080").as_deref(), Some("example.com"));
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host_of(""), None);
        assert_eq!(host_of("https:///path"), None);
    }
}

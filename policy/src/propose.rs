//! [`propose`]: the smallest strict policy that allows what a recorded run did, from the calls
//! it made (`agentctl policy suggest` reads them from the flight recorder).
//!
//! ## What it writes
//! One allow rule per action and area (and per program for `code_execution`):
//! - **files** (`file_read`, `file_write`): the paths touched, generalised only where a
//!   directory holds many files: [`MANY_FILES`] or more files directly in a directory become
//!   `dir/**` (or `dir/*` when the directory also has subdirectories in use, which keep their
//!   own rules: distinct areas stay apart). A glob never reaches above the mount the paths
//!   are in (`/workspace`, `/mem/working`, `/mem/episodic`, … — [`MOUNTS`]), so there is never
//!   a `/**` or a `/mem/**`, and never a glob over a path the run was denied;
//! - **programs** (`code_execution`): `commands` the program exactly, `args` the arguments it
//!   was given (every argument of every call), `deny_args: ["*"]` when it ran without any;
//! - **`api_call`**: the hosts called; **`ipc_send`**: the peers, by name when they had one;
//!   **`signal`**: the peers, by id; **`mcp_tool`**: the `SERVER/TOOL`s called (`tools`);
//! - **other actions** (`database_query`, `send_email`, custom `Call`s): the action, not
//!   narrowed — no constraint names a query or a message (said in [`Proposal::notes`]).
//!
//! Calls that needed an approval get exact-path rules with `requires_approval: true`; calls
//! the run was denied stay denied (nothing is allowed for them, and where an allow rule would
//! still cover one, an exact deny rule is added). Then the proposal is checked against every
//! observed call with [`Policy::decide`] (in [`propose`]); what it cannot make agree
//! is said in the notes.
//!
//! ## Not inferred
//! Rate limits, `max_bytes`, `deny_patterns` beyond the exact denials, approvals for calls
//! that did not need one, and anything the run did not do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use agentos_syscalls::Signal;

use crate::engine::{Access, Policy, Request};
use crate::schema::host_of;
use crate::Sandbox;

/// The VFS mounts (DESIGN §6): a generalised glob stays inside one.
pub const MOUNTS: &[&str] = &[
    "/mem/working",
    "/mem/episodic",
    "/mem/semantic",
    "/state/checkpoints",
    "/policy",
    "/ipc/inbox",
    "/workspace",
];

/// A directory holding at least this many files the run touched is generalised to a glob.
pub const MANY_FILES: usize = 3;

/// How the recorded run's policy decided a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Allowed (a dry run counts: the suggestion performs it).
    Allow,
    /// Allowed once an operator approved it.
    Approval,
    /// Denied (a violation in permissive mode, or refused in strict mode).
    Denied,
}

/// One judged call of the recorded run, as the policy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub action: String,
    /// A normalized path, a command line, a URL, an agent id.
    pub resource: String,
    pub access: Access,
    pub bytes: u64,
    /// `code_execution`: the program's arguments (argv\[1..\]).
    pub args: Option<Vec<String>>,
    /// `ipc_send`: the target's name, if it had one.
    pub peer_name: Option<String>,
    pub verdict: Verdict,
}

/// One rule of a [`Proposal`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProposedRule {
    pub name: String,
    pub action: String,
    pub allow: bool,
    pub read_only: bool,
    pub requires_approval: bool,
    pub paths: Vec<String>,
    pub commands: Vec<String>,
    pub args: Vec<String>,
    pub deny_args: Vec<String>,
    pub hosts: Vec<String>,
    pub peers: Vec<String>,
    /// `mcp_tool`: the `SERVER/TOOL`s called.
    pub tools: Vec<String>,
    pub deny_patterns: Vec<String>,
    /// How many observed calls led to it.
    pub calls: usize,
}

/// The suggested rules and what the operator should know about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposal {
    pub rules: Vec<ProposedRule>,
    pub notes: Vec<String>,
}

/// The mount `path` is in, or its first component when it is in none; `/` for `/`.
pub fn area_of(path: &str) -> &str {
    if let Some(m) = MOUNTS
        .iter()
        .filter(|m| path == **m || path.strip_prefix(**m).is_some_and(|r| r.starts_with('/')))
        .max_by_key(|m| m.len())
    {
        return m;
    }
    match path.get(1..).and_then(|r| r.find('/')) {
        Some(i) => &path[..=i],
        None => path,
    }
}

/// `text` as a glob that matches exactly `text` (metacharacters escaped with `\`).
pub fn literal_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A regex matching exactly `text` (for an exact deny rule's `deny_patterns`).
fn exact_regex(text: &str) -> String {
    format!("^{}$", regex::escape(text))
}

/// The parent directory of a normalized path (`/a/b` → `/a`; `/a` → `/`).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Whether `path` lies strictly beneath directory `dir`.
fn beneath(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|r| r.starts_with('/') && r.len() > 1)
}

/// The `paths` globs for the `allowed` paths of one action, none of which may match a path in
/// `denied`: exact paths, and `dir/**` / `dir/*` where a directory holds [`MANY_FILES`] or
/// more of them (see the module docs). Sorted; never `/**`, never above a mount.
pub fn generalise_paths(allowed: &BTreeSet<String>, denied: &BTreeSet<String>) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut by_area: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in allowed {
        by_area.entry(area_of(p)).or_default().push(p);
    }
    for (area, paths) in by_area {
        collapse(area, &paths, denied, &mut out);
    }
    out.into_iter().collect()
}

/// The globs for `paths` (each at or beneath `dir`), deciding at `dir` and recursing into its
/// subdirectories.
fn collapse(dir: &str, paths: &[&str], denied: &BTreeSet<String>, out: &mut BTreeSet<String>) {
    // `dir` itself (listed, stat'ed) is only ever matched exactly.
    if paths.contains(&dir) {
        out.insert(literal_glob(dir));
    }
    // What lies beneath `dir`, by its child component.
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in paths.iter().copied().filter(|p| beneath(p, dir)) {
        let rest = &p[dir.len().min(p.len())..];
        let rest = if dir == "/" { &p[1..] } else { &rest[1..] };
        let child_len = rest.find('/').unwrap_or(rest.len());
        let child = &p[..p.len() - rest.len() + child_len];
        children.entry(child).or_default().push(p);
    }
    let is_file = |child: &str, under: &[&str]| under.iter().all(|p| *p == child);
    let files: Vec<&str> = children
        .iter()
        .filter(|(c, under)| is_file(c, under))
        .map(|(c, _)| *c)
        .collect();
    let subdirs: Vec<(&str, &Vec<&str>)> = children
        .iter()
        .filter(|(c, under)| !is_file(c, under))
        .map(|(c, u)| (*c, u))
        .collect();
    let generalisable = dir != "/" && files.len() >= MANY_FILES;
    if generalisable && subdirs.is_empty() && !denied.iter().any(|d| beneath(d, dir)) {
        out.insert(format!("{}/**", literal_glob(dir)));
        return;
    }
    if generalisable && !denied.iter().any(|d| beneath(d, dir) && parent(d) == dir) {
        out.insert(format!("{}/*", literal_glob(dir)));
    } else {
        for f in &files {
            out.insert(literal_glob(f));
        }
    }
    for (child, under) in subdirs {
        collapse(child, under, denied, out);
    }
}

/// A rule name from free text: lowercase letters, digits and `-`.
fn slug(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-');
    let s: String = s.chars().take(40).collect();
    if s.is_empty() {
        "x".into()
    } else {
        s
    }
}

/// The proposal's rules before the check, from the calls.
fn draft(observed: &[Observed], notes: &mut Vec<String>) -> Vec<ProposedRule> {
    let mut rules = Vec::new();
    // Files: per action, per verdict, per area.
    for (action, verb) in [("file_read", "read"), ("file_write", "write")] {
        let of = |v: Verdict| -> BTreeMap<String, usize> {
            let mut m = BTreeMap::new();
            for o in observed
                .iter()
                .filter(|o| o.action == action && o.verdict == v)
            {
                *m.entry(o.resource.clone()).or_default() += 1;
            }
            m
        };
        let (allow, approval, denied) = (
            of(Verdict::Allow),
            of(Verdict::Approval),
            of(Verdict::Denied),
        );
        let denied_set: BTreeSet<String> = denied.keys().cloned().collect();
        for p in allow
            .keys()
            .chain(approval.keys())
            .filter(|p| denied.contains_key(*p))
        {
            notes.push(format!(
                "{action} {p:?} was both allowed and denied in the run (its size or an approval decided); suggested as allowed"
            ));
        }
        let allowed: BTreeSet<String> = allow.keys().cloned().collect();
        let globs = generalise_paths(&allowed, &denied_set);
        let mut by_area: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in globs {
            // A glob's area is that of its literal part: the area root has no metacharacter.
            by_area.entry(area_of(&g).to_string()).or_default().push(g);
        }
        for (area, paths) in by_area {
            let calls = allow
                .iter()
                .filter(|(p, _)| area_of(p) == area)
                .map(|(_, n)| n)
                .sum();
            rules.push(ProposedRule {
                name: format!("{verb}-{}", slug(&area)),
                action: action.into(),
                allow: true,
                read_only: action == "file_read",
                paths,
                calls,
                ..ProposedRule::default()
            });
        }
        if !approval.is_empty() {
            rules.push(ProposedRule {
                name: format!("{verb}-with-approval"),
                action: action.into(),
                allow: true,
                read_only: action == "file_read",
                requires_approval: true,
                paths: approval.keys().map(|p| literal_glob(p)).collect(),
                calls: approval.values().sum(),
                ..ProposedRule::default()
            });
        }
    }
    // Programs: one rule per program and verdict.
    let mut programs: BTreeMap<(String, Verdict), (BTreeSet<String>, usize, bool)> =
        BTreeMap::new();
    for o in observed
        .iter()
        .filter(|o| o.action == "code_execution" && o.verdict != Verdict::Denied)
    {
        let program = o
            .resource
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let e = programs.entry((program, o.verdict)).or_default();
        e.1 += 1;
        let args = o.args.clone().unwrap_or_else(|| {
            o.resource
                .split_whitespace()
                .skip(1)
                .map(String::from)
                .collect()
        });
        if args.iter().any(String::is_empty) {
            e.2 = true;
        }
        e.0.extend(args.into_iter().filter(|a| !a.is_empty()));
    }
    for ((program, verdict), (args, calls, empty_arg)) in programs {
        if program.is_empty() {
            continue;
        }
        if empty_arg {
            notes.push(format!(
                "`{program}` was given an empty argument, which `args` cannot list: its calls with one stay denied"
            ));
        }
        let base = program.rsplit('/').next().unwrap_or(&program);
        let (args, deny_args) = if args.is_empty() {
            (Vec::new(), vec!["*".to_string()])
        } else {
            (args.iter().map(|a| literal_glob(a)).collect(), Vec::new())
        };
        rules.push(ProposedRule {
            name: format!(
                "run-{}{}",
                slug(base),
                if verdict == Verdict::Approval {
                    "-with-approval"
                } else {
                    ""
                }
            ),
            action: "code_execution".into(),
            allow: true,
            requires_approval: verdict == Verdict::Approval,
            commands: vec![literal_glob(&program)],
            args,
            deny_args,
            calls,
            ..ProposedRule::default()
        });
    }
    // Hosts, peers and the rest: one rule per action and verdict.
    let mut others: BTreeMap<(String, Verdict), (BTreeSet<String>, usize)> = BTreeMap::new();
    for o in observed.iter().filter(|o| {
        !matches!(
            o.action.as_str(),
            "file_read" | "file_write" | "code_execution"
        ) && o.verdict != Verdict::Denied
    }) {
        let key = match o.action.as_str() {
            "api_call" | "network" => match host_of(&o.resource) {
                Some(h) => h,
                None => {
                    notes.push(format!(
                        "{} {:?} names no host: not allowed",
                        o.action, o.resource
                    ));
                    continue;
                }
            },
            "ipc_send" => o.peer_name.clone().unwrap_or_else(|| o.resource.clone()),
            "signal" => o.resource.clone(),
            "mcp_tool" => o
                .resource
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        let e = others.entry((o.action.clone(), o.verdict)).or_default();
        e.1 += 1;
        if !key.is_empty() {
            e.0.insert(key);
        }
    }
    for ((action, verdict), (keys, calls)) in others {
        let mut r = ProposedRule {
            name: format!(
                "{}{}",
                slug(&action),
                if verdict == Verdict::Approval {
                    "-with-approval"
                } else {
                    ""
                }
            ),
            action: action.clone(),
            allow: true,
            requires_approval: verdict == Verdict::Approval,
            calls,
            ..ProposedRule::default()
        };
        let keys: Vec<String> = keys.into_iter().collect();
        match action.as_str() {
            "api_call" | "network" => r.hosts = keys,
            "ipc_send" | "signal" => r.peers = keys,
            "mcp_tool" if !keys.is_empty() => r.tools = keys,
            _ => notes.push(format!(
                "{action}: {calls} call(s) allowed as a whole (no constraint narrows this action to the calls made); narrow it by hand"
            )),
        }
        rules.push(r);
    }
    // Unique names.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &mut rules {
        let n = seen.entry(r.name.clone()).or_default();
        *n += 1;
        if *n > 1 {
            r.name = format!("{}-{n}", r.name);
        }
    }
    rules
}

/// An exact deny rule for one denied call.
fn deny_rule(o: &Observed, n: usize) -> ProposedRule {
    let mut r = ProposedRule {
        name: format!("deny-{}-{n}", slug(&o.action)),
        action: o.action.clone(),
        allow: false,
        calls: 1,
        ..ProposedRule::default()
    };
    if matches!(o.action.as_str(), "file_read" | "file_write") {
        r.paths = vec![literal_glob(&o.resource)];
    } else {
        r.deny_patterns = vec![exact_regex(&o.resource)];
    }
    r
}

/// How `policy` decides `o`, as the kernel does (an `ipc_send` on its target's id and name).
pub fn decide_observed(policy: &Policy, o: &Observed) -> Verdict {
    let req = Request {
        action: &o.action,
        resource: &o.resource,
        access: o.access,
        bytes: o.bytes,
        now_ms: 0,
    };
    let mut d = policy.decide_args(&req, o.args.as_deref());
    if let Some(name) = &o.peer_name {
        let by_name = policy.decide(&Request {
            resource: name,
            ..req
        });
        let vetoes = |d: &crate::Decision| !d.allowed && d.rule.is_some();
        d = match (d.allowed, by_name.allowed) {
            (true, false) if vetoes(&by_name) => by_name,
            (false, true) if !vetoes(&d) => by_name,
            _ => d,
        };
    }
    if !d.allowed {
        Verdict::Denied
    } else if d.requires_approval {
        Verdict::Approval
    } else {
        Verdict::Allow
    }
}

/// What the page says besides the rules.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Markdown paragraphs before the YAML (the caller's, escaped by it).
    pub intro: Vec<String>,
    pub signals: Vec<Signal>,
    pub sandbox: Sandbox,
    /// The run's `observability:` section, copied as it was.
    pub observability: crate::Observability,
}

/// The smallest strict policy that decides every observed call as the run's policy did (see
/// the module docs), checked: the rules, and notes on what could not be matched.
pub fn propose(observed: &[Observed], page: &Page) -> Proposal {
    let mut notes = Vec::new();
    let mut rules = draft(observed, &mut notes);
    // Denied calls an allow rule still covers get an exact deny rule, unless the same
    // resource was also allowed (the allowed call wins; the check below says so).
    if let Ok(policy) = Policy::parse("suggested.md", &render(&rules, page)) {
        let allowed: BTreeSet<(&str, &str)> = observed
            .iter()
            .filter(|o| o.verdict != Verdict::Denied)
            .map(|o| (o.action.as_str(), o.resource.as_str()))
            .collect();
        let mut denied: BTreeSet<(&str, &str)> = BTreeSet::new();
        for o in observed.iter().filter(|o| o.verdict == Verdict::Denied) {
            let key = (o.action.as_str(), o.resource.as_str());
            if allowed.contains(&key)
                || denied.contains(&key)
                || decide_observed(&policy, o) == Verdict::Denied
            {
                continue;
            }
            denied.insert(key);
            rules.push(deny_rule(o, denied.len()));
        }
    }
    match Policy::parse("suggested.md", &render(&rules, page)) {
        Ok(policy) => {
            let mut differ: BTreeMap<(Verdict, Verdict), Vec<&Observed>> = BTreeMap::new();
            for o in observed {
                let now = decide_observed(&policy, o);
                if now != o.verdict {
                    differ.entry((o.verdict, now)).or_default().push(o);
                }
            }
            for ((was, now), calls) in differ {
                let sample: Vec<String> = calls
                    .iter()
                    .take(3)
                    .map(|o| format!("{} {:?}", o.action, o.resource))
                    .collect();
                notes.push(format!(
                    "{} call(s) recorded as {was:?} would now be {now:?} (e.g. {})",
                    calls.len(),
                    sample.join(", ")
                ));
            }
        }
        Err(e) => notes.push(format!("the suggestion does not load (a bug): {e}")),
    }
    Proposal { rules, notes }
}

/// A YAML double-quoted scalar: `\`, `"` and every character a terminal or an editor could
/// act on (controls, line and bidi separators, BOM) escaped.
pub fn yaml_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}') =>
            {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|i| yaml_quote(i)).collect();
    format!("[{}]", q.join(", "))
}

fn size(bytes: u64) -> String {
    bytes.to_string()
}

/// The Markdown page: the intro, then the policy in one fenced YAML block.
pub fn render(rules: &[ProposedRule], page: &Page) -> String {
    let mut y = String::new();
    y.push_str("kernel:\n  version: \"1.0\"\n  mode: strict\n\n");
    y.push_str("signals:\n");
    for s in &page.signals {
        let _ = writeln!(y, "  - {}", s.name());
    }
    if page.signals.is_empty() {
        y.push_str("  []\n");
    }
    y.push_str("\npolicies:\n");
    if rules.is_empty() {
        y.push_str("  []\n");
    }
    for r in rules {
        let _ = writeln!(
            y,
            "  # {} recorded call(s){}",
            r.calls,
            if r.allow { "" } else { " the run was denied" }
        );
        let _ = writeln!(y, "  - name: {}", yaml_quote(&r.name));
        let _ = writeln!(y, "    action: {}", yaml_quote(&r.action));
        let _ = writeln!(y, "    effect: {}", if r.allow { "allow" } else { "deny" });
        if r.read_only {
            y.push_str("    mode: read_only\n");
        }
        if r.requires_approval {
            y.push_str("    requires_approval: true\n");
        }
        let fields: [(&str, &Vec<String>); 8] = [
            ("paths", &r.paths),
            ("commands", &r.commands),
            ("tools", &r.tools),
            ("args", &r.args),
            ("deny_args", &r.deny_args),
            ("hosts", &r.hosts),
            ("peers", &r.peers),
            ("deny_patterns", &r.deny_patterns),
        ];
        if fields.iter().any(|(_, v)| !v.is_empty()) {
            y.push_str("    constraints:\n");
            for (k, v) in fields.iter().filter(|(_, v)| !v.is_empty()) {
                let _ = writeln!(y, "      {k}: {}", list(v));
            }
        }
    }
    let o = &page.observability;
    let _ = write!(
        y,
        "\nobservability:\n  metrics: {}\n  traces: {}\n  flight_recorder: {}\n",
        o.metrics, o.traces, o.flight_recorder
    );
    let s = &page.sandbox;
    let l = &s.limits;
    let limits: Vec<(&str, String)> = [
        ("address_space", l.address_space.map(size)),
        ("processes", l.processes.map(|v| v.to_string())),
        ("open_files", l.open_files.map(|v| v.to_string())),
        ("cpu_seconds", l.cpu_seconds.map(|v| v.to_string())),
        ("file_size", l.file_size.map(size)),
        (
            "wall_time_seconds",
            l.wall_time_seconds.map(|v| v.to_string()),
        ),
        ("memory", l.memory.map(size)),
        (
            "cpu",
            l.cpu_millis
                .map(|m| format!("{}.{:03}", m / 1000, m % 1000)),
        ),
        ("scratch", l.scratch.map(size)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    if !s.read_only.is_empty() || !limits.is_empty() {
        y.push_str("\nsandbox:\n");
        if !s.read_only.is_empty() {
            let _ = writeln!(y, "  read_only: {}", list(&s.read_only));
        }
        if !limits.is_empty() {
            y.push_str("  limits:\n");
            for (k, v) in limits {
                let _ = writeln!(y, "    {k}: {v}");
            }
        }
    }
    let mut out = String::from("# Agent security policy (suggested from a recorded run)\n\n");
    for p in &page.intro {
        out.push_str(p);
        out.push_str("\n\n");
    }
    out.push_str("```yaml\n");
    out.push_str(&y);
    out.push_str("```\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn areas_are_mounts() {
        assert_eq!(area_of("/mem/working/a/b"), "/mem/working");
        assert_eq!(area_of("/mem/working"), "/mem/working");
        assert_eq!(area_of("/mem/workingX/a"), "/mem");
        assert_eq!(area_of("/workspace/src/a.rs"), "/workspace");
        assert_eq!(area_of("/etc/passwd"), "/etc");
        assert_eq!(area_of("/x"), "/x");
    }

    #[test]
    fn few_files_stay_exact_many_become_a_glob() {
        assert_eq!(
            generalise_paths(&set(&["/workspace/a", "/workspace/b"]), &set(&[])),
            vec!["/workspace/a", "/workspace/b"]
        );
        assert_eq!(
            generalise_paths(
                &set(&[
                    "/workspace/src/a.rs",
                    "/workspace/src/b.rs",
                    "/workspace/src/c.rs",
                    "/workspace/README"
                ]),
                &set(&[])
            ),
            vec!["/workspace/README", "/workspace/src/**"]
        );
    }

    #[test]
    fn areas_stay_apart_and_denials_stay_out() {
        // Many files at the top of /workspace, and two subdirectories with their own files:
        // the top gets `/workspace/*`, each subdirectory its own globs.
        let allowed = set(&[
            "/workspace/a",
            "/workspace/b",
            "/workspace/c",
            "/workspace/src/1",
            "/workspace/src/2",
            "/workspace/src/3",
            "/workspace/docs/x",
            "/mem/working/1",
            "/mem/working/2",
            "/mem/working/3",
            "/mem/episodic/k",
        ]);
        assert_eq!(
            generalise_paths(&allowed, &set(&[])),
            vec![
                "/mem/episodic/k",
                "/mem/working/**",
                "/workspace/*",
                "/workspace/docs/x",
                "/workspace/src/**",
            ]
        );
        // A denied file in /workspace/src keeps that directory exact.
        assert_eq!(
            generalise_paths(&allowed, &set(&["/workspace/src/secret"])),
            vec![
                "/mem/episodic/k",
                "/mem/working/**",
                "/workspace/*",
                "/workspace/docs/x",
                "/workspace/src/1",
                "/workspace/src/2",
                "/workspace/src/3",
            ]
        );
    }

    #[test]
    fn metacharacters_are_literal() {
        assert_eq!(
            generalise_paths(&set(&["/workspace/a*b", "/workspace/[x]"]), &set(&[])),
            vec!["/workspace/\\[x\\]", "/workspace/a\\*b"]
        );
    }

    #[test]
    fn quoting_escapes_what_a_terminal_acts_on() {
        assert_eq!(yaml_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            yaml_quote("\u{1b}[2J\u{202e}\n"),
            "\"\\u001b[2J\\u202e\\u000a\""
        );
    }

    fn glob_matches(glob: &str, path: &str) -> bool {
        globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map(|g| g.compile_matcher().is_match(path))
            .unwrap_or(false)
    }

    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("c".to_string()),
            Just("d".to_string()),
            Just("*".to_string()),
            Just("x y".to_string()),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just("/workspace"),
                Just("/mem/working"),
                Just("/mem/episodic"),
                Just("/etc"),
            ],
            proptest::collection::vec(component(), 1..4),
        )
            .prop_map(|(root, parts)| format!("{root}/{}", parts.join("/")))
    }

    proptest! {
        /// Every allowed path is matched, no denied path is, and no glob leaves its mount or
        /// is `/**`.
        #[test]
        fn globs_cover_the_allowed_and_never_the_denied(
            allowed in proptest::collection::btree_set(path(), 0..24),
            denied in proptest::collection::btree_set(path(), 0..4),
        ) {
            let denied: BTreeSet<String> = denied.difference(&allowed).cloned().collect();
            let globs = generalise_paths(&allowed, &denied);
            for p in &allowed {
                prop_assert!(globs.iter().any(|g| glob_matches(g, p)), "{p} not covered by {globs:?}");
            }
            for d in &denied {
                prop_assert!(!globs.iter().any(|g| glob_matches(g, d)), "{d} covered by {globs:?}");
            }
            for g in &globs {
                prop_assert!(g != "/**" && !g.starts_with("/mem/**") && !g.starts_with("/*"));
                // The glob's literal directory stays inside one mount.
                let lit = g.trim_end_matches("/**").trim_end_matches("/*");
                prop_assert!(MOUNTS.iter().any(|m| lit == *m || lit.starts_with(&format!("{m}/"))) || lit.starts_with("/etc"), "{g}");
            }
        }

        /// The proposal decides every observed call as the run did.
        #[test]
        fn proposals_decide_as_the_run_did(
            calls in proptest::collection::vec((path(), any::<bool>(), prop_oneof![Just(Verdict::Allow), Just(Verdict::Denied)]), 1..20),
        ) {
            let mut seen = BTreeMap::new();
            let observed: Vec<Observed> = calls
                .into_iter()
                // One verdict per (action, path): a run decides a path one way.
                .filter(|(p, w, _)| seen.insert((p.clone(), *w), ()).is_none())
                .map(|(p, write, verdict)| Observed {
                    action: if write { "file_write" } else { "file_read" }.into(),
                    resource: p,
                    access: if write { Access::Write } else { Access::Read },
                    bytes: 0,
                    args: None,
                    peer_name: None,
                    verdict,
                })
                .collect();
            let page = Page { signals: vec![Signal::Term], ..Page::default() };
            let proposal = propose(&observed, &page);
            prop_assert!(proposal.notes.is_empty(), "{:?}", proposal.notes);
            let policy = Policy::parse("s.md", &render(&proposal.rules, &page)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(policy.lint().is_empty(), "{:?}", policy.lint());
            for o in &observed {
                prop_assert_eq!(decide_observed(&policy, o), o.verdict, "{:?}", o);
            }
        }
    }

    #[test]
    fn programs_hosts_peers_and_denials() {
        let obs = |action: &str, resource: &str, args: Option<Vec<&str>>, verdict| Observed {
            action: action.into(),
            resource: resource.into(),
            access: Access::Read,
            bytes: 0,
            args: args.map(|a| a.into_iter().map(String::from).collect()),
            peer_name: None,
            verdict,
        };
        let observed = vec![
            obs(
                "code_execution",
                "/usr/bin/git status",
                Some(vec!["status"]),
                Verdict::Allow,
            ),
            obs(
                "code_execution",
                "/usr/bin/git log -1",
                Some(vec!["log", "-1"]),
                Verdict::Allow,
            ),
            obs(
                "code_execution",
                "/usr/bin/git log status",
                Some(vec!["log", "status"]),
                Verdict::Denied,
            ),
            obs("code_execution", "/bin/true", Some(vec![]), Verdict::Allow),
            obs(
                "api_call",
                "https://api.example.com/v1/x",
                None,
                Verdict::Allow,
            ),
            obs(
                "api_call",
                "https://api.example.com/v1/admin",
                None,
                Verdict::Denied,
            ),
            obs(
                "api_call",
                "https://evil.example.net/",
                None,
                Verdict::Denied,
            ),
            Observed {
                peer_name: Some("planner".into()),
                ..obs("ipc_send", "7", None, Verdict::Allow)
            },
            obs(
                "mcp_tool",
                r#"everything/echo {"message":"hi"}"#,
                None,
                Verdict::Allow,
            ),
            obs("mcp_tool", "everything/get-env {}", None, Verdict::Denied),
            obs("network", "api.openai.com:443", None, Verdict::Allow),
            obs("network", "evil.example.net:443", None, Verdict::Denied),
        ];
        let page = Page {
            signals: vec![Signal::Term],
            ..Page::default()
        };
        let p = propose(&observed, &page);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let text = render(&p.rules, &page);
        let policy = Policy::parse("s.md", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for o in &observed {
            assert_eq!(decide_observed(&policy, o), o.verdict, "{o:?}\n{text}");
        }
        assert!(
            text.contains(
                "commands: [\"/usr/bin/git\"]\n      args: [\"-1\", \"log\", \"status\"]"
            ),
            "{text}"
        );
        assert!(
            text.contains("commands: [\"/bin/true\"]\n      deny_args: [\"*\"]"),
            "{text}"
        );
        assert!(text.contains("hosts: [\"api.example.com\"]"), "{text}");
        assert!(text.contains("peers: [\"planner\"]"), "{text}");
        assert!(text.contains("tools: [\"everything/echo\"]"), "{text}");
        assert!(
            text.contains("deny_patterns: [\"^https://api\\\\.example\\\\.com/v1/admin$\"]"),
            "{text}"
        );
    }
}

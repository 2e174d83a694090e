//! [`Policy::lint`]: things a valid policy says that are almost certainly not what its author
//! meant. Each check is conservative — it reports only what is certain from the rules alone
//! (a warning the author cannot act on is noise).

use std::fmt;

use crate::engine::Policy;
use crate::schema::{is_known_action, unknown_action};
use crate::{Effect, Rule, RuleMode};
use agentos_syscalls::Signal;

/// What a [`Warning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// An allow rule no call can ever match.
    NeverMatches,
    /// An allow rule a deny rule always overrides.
    Shadowed,
    /// A rule identical to an earlier one.
    Duplicate,
    /// `requires_approval` together with `dry_run`.
    ApprovalWithDryRun,
    /// A rate limit of at most one call a day.
    SuspiciousRate,
    /// An action name the kernel never emits.
    UnknownAction,
    /// `commands` admits a program that can run other programs, without an argument
    /// constraint that could stop it.
    RunsPrograms,
    /// An allow `mcp_tool` rule without `tools`: every tool of every MCP server.
    EveryTool,
    /// An allow `network` rule without `hosts`: every host on the internet.
    EveryHost,
    /// `signals:` lists SIGSTOP but not SIGCONT: a stopped agent cannot be resumed.
    StopWithoutCont,
    /// `signals:` does not list SIGTERM: the agent cannot be asked to end.
    NoSigterm,
    /// An `observability:` key that changes nothing in this agentos.
    NoEffect,
}

impl WarningKind {
    /// A stable kebab-case name, for `--json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            WarningKind::NeverMatches => "never-matches",
            WarningKind::Shadowed => "shadowed",
            WarningKind::Duplicate => "duplicate",
            WarningKind::ApprovalWithDryRun => "approval-with-dry-run",
            WarningKind::SuspiciousRate => "suspicious-rate",
            WarningKind::UnknownAction => "unknown-action",
            WarningKind::RunsPrograms => "runs-programs",
            WarningKind::EveryTool => "every-tool",
            WarningKind::EveryHost => "every-host",
            WarningKind::StopWithoutCont => "stop-without-cont",
            WarningKind::NoSigterm => "no-sigterm",
            WarningKind::NoEffect => "no-effect",
        }
    }
}

/// One lint finding: `security.md:12: warning: rule `write-src`: …`, or about the
/// `signals:` list: `security.md:5: warning: signals: …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The rule's id (`name` or `policies[N]`); empty for a warning about `signals:`.
    pub rule: String,
    /// The policy file, as given to [`Policy::parse`].
    pub file: String,
    /// The rule's line.
    pub line: u32,
    pub kind: WarningKind,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rule.is_empty() {
            // About a top-level section: the message names it (`observability: …`), or it
            // is about `signals:`.
            let section = if self.kind == WarningKind::NoEffect {
                ""
            } else {
                "signals: "
            };
            return write!(
                f,
                "{}:{}: warning: {section}{}",
                self.file, self.line, self.message
            );
        }
        write!(
            f,
            "{}:{}: warning: rule `{}`: {}",
            self.file, self.line, self.rule, self.message
        )
    }
}

/// Why a `paths` glob can never match a normalized VFS path (no `.`/`..`/empty components,
/// no trailing `/`), if it cannot.
fn unreachable_glob(glob: &str) -> Option<&'static str> {
    let rest = glob.strip_prefix('/')?;
    if rest.is_empty() {
        return None;
    }
    if rest.ends_with('/') {
        return Some("normalized paths never end in `/`");
    }
    if rest.split('/').any(str::is_empty) {
        return Some("normalized paths never contain `//`");
    }
    if rest.split('/').any(|c| c == "." || c == "..") {
        return Some("normalized paths never contain `.` or `..` components");
    }
    None
}

/// Why an allow rule can never match, if it cannot.
fn never_matches(r: &Rule) -> Option<String> {
    let c = &r.constraints;
    if r.mode == Some(RuleMode::ReadOnly) && r.action == "file_write" {
        return Some(
            "`mode: read_only` does not admit writes, so this file_write rule never matches; \
             remove `mode` or use `mode: read_write`"
                .to_string(),
        );
    }
    if c.max_bytes == Some(0) {
        return Some(
            "`max_bytes: 0` admits only empty payloads; raise it or remove it".to_string(),
        );
    }
    if matches!(r.action.as_str(), "file_read" | "file_write") && !c.hosts.is_empty() {
        return Some(format!(
            "`hosts` never matches a {}: its resource is a path with no host; use `paths`",
            r.action
        ));
    }
    if !c.paths.is_empty() {
        let bad: Vec<(&String, &str)> = c
            .paths
            .iter()
            .filter_map(|g| unreachable_glob(g).map(|why| (g, why)))
            .collect();
        if bad.len() == c.paths.len() {
            let list: Vec<String> = bad
                .iter()
                .map(|(g, why)| format!("`{g}` ({why})"))
                .collect();
            return Some(format!(
                "no path can match {}; write globs over normalized absolute paths",
                list.join(", ")
            ));
        }
    }
    None
}

/// Whether every path `inner` matches is matched by `outer` (conservative: `false` when
/// unsure). Both are `paths` globs.
fn glob_covers(outer: &str, inner: &str) -> bool {
    if outer == inner || outer == "**" {
        return true;
    }
    let Some(base) = outer.strip_suffix("/**") else {
        return false;
    };
    if base.contains(['*', '?', '[', '{', '\\']) {
        return false;
    }
    // `base/**` matches everything strictly below `base/`.
    inner
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
}

/// Whether deny rule `d` fires on every call allow rule `a` matches.
fn deny_covers(d: &Rule, a: &Rule) -> bool {
    let (dc, ac) = (&d.constraints, &a.constraints);
    let action = d.action == "*" || d.action == a.action;
    // A read_only deny fires only on reads: it covers only a read_only allow.
    let mode = d.mode != Some(RuleMode::ReadOnly) || a.mode == Some(RuleMode::ReadOnly);
    // A deny with limits fires only when one is crossed.
    let unlimited =
        dc.max_bytes.is_none() && dc.deny_patterns.is_empty() && dc.deny_args.is_empty();
    let same_or_none = |dl: &Vec<String>, al: &Vec<String>| {
        dl.is_empty() || {
            let (mut x, mut y) = (dl.clone(), al.clone());
            x.sort();
            y.sort();
            x == y
        }
    };
    let scope = same_or_none(&dc.commands, &ac.commands)
        && same_or_none(&dc.args, &ac.args)
        && same_or_none(&dc.hosts, &ac.hosts)
        && same_or_none(&dc.peers, &ac.peers);
    let paths = dc.paths.is_empty()
        || (!ac.paths.is_empty()
            && ac
                .paths
                .iter()
                .all(|g| dc.paths.iter().any(|o| glob_covers(o, g))));
    action && mode && unlimited && scope && paths
}

/// How a program runs other programs, which says what argument constraint can stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// Its operands are a program or code (a shell, an interpreter, `env`, `xargs`): only an
    /// `args` allow-list can hold it.
    Operands,
    /// Only through some options (`find -exec`, `git -c`, `tar --to-command`): `args` or
    /// `deny_args` can hold it.
    Options,
}

/// Programs that can run other programs, as reviewed data: `(name glob, a sample name the
/// glob matches, how, what to say)`. Matched against the basename of each `commands` entry
/// (a glob entry is tried on the samples, bare and under `/bin`, `/usr/bin`,
/// `/usr/local/bin`).
pub const RUNNERS: &[(&str, &str, Runs, &str)] = &[
    ("sh", "sh", Runs::Operands, "a shell runs any command"),
    ("bash", "bash", Runs::Operands, "a shell runs any command"),
    ("dash", "dash", Runs::Operands, "a shell runs any command"),
    ("zsh", "zsh", Runs::Operands, "a shell runs any command"),
    ("ksh*", "ksh", Runs::Operands, "a shell runs any command"),
    ("mksh", "mksh", Runs::Operands, "a shell runs any command"),
    ("csh", "csh", Runs::Operands, "a shell runs any command"),
    ("tcsh", "tcsh", Runs::Operands, "a shell runs any command"),
    ("fish", "fish", Runs::Operands, "a shell runs any command"),
    ("busybox", "busybox", Runs::Operands, "its applets include a shell"),
    ("env", "env", Runs::Operands, "env runs its operands as a command"),
    ("xargs", "xargs", Runs::Operands, "xargs runs its operands as a command"),
    ("nice", "nice", Runs::Operands, "nice runs its operands as a command"),
    ("nohup", "nohup", Runs::Operands, "nohup runs its operands as a command"),
    ("timeout", "timeout", Runs::Operands, "timeout runs its operands as a command"),
    ("stdbuf", "stdbuf", Runs::Operands, "stdbuf runs its operands as a command"),
    ("setsid", "setsid", Runs::Operands, "setsid runs its operands as a command"),
    ("ionice", "ionice", Runs::Operands, "ionice runs its operands as a command"),
    ("taskset", "taskset", Runs::Operands, "taskset runs its operands as a command"),
    ("chrt", "chrt", Runs::Operands, "chrt runs its operands as a command"),
    ("flock", "flock", Runs::Operands, "flock runs its operands as a command"),
    ("unshare", "unshare", Runs::Operands, "unshare runs its operands as a command"),
    ("chroot", "chroot", Runs::Operands, "chroot runs its operands as a command"),
    ("script", "script", Runs::Options, "script -c runs a command"),
    ("watch", "watch", Runs::Operands, "watch runs its operands as a command"),
    ("strace", "strace", Runs::Operands, "strace runs its operands as a command"),
    ("ltrace", "ltrace", Runs::Operands, "ltrace runs its operands as a command"),
    ("gdb", "gdb", Runs::Operands, "gdb runs programs and shell commands"),
    ("sudo", "sudo", Runs::Operands, "sudo runs its operands as a command"),
    ("su", "su", Runs::Options, "su -c runs a command"),
    ("doas", "doas", Runs::Operands, "doas runs its operands as a command"),
    ("python*", "python3", Runs::Operands, "an interpreter runs any code it is given"),
    ("perl*", "perl", Runs::Operands, "an interpreter runs any code it is given"),
    ("ruby*", "ruby", Runs::Operands, "an interpreter runs any code it is given"),
    ("node", "node", Runs::Operands, "an interpreter runs any code it is given"),
    ("nodejs", "nodejs", Runs::Operands, "an interpreter runs any code it is given"),
    ("deno", "deno", Runs::Operands, "an interpreter runs any code it is given"),
    ("php*", "php", Runs::Operands, "an interpreter runs any code it is given"),
    ("lua*", "lua", Runs::Operands, "an interpreter runs any code it is given"),
    ("tclsh*", "tclsh", Runs::Operands, "an interpreter runs any code it is given"),
    ("expect", "expect", Runs::Operands, "an interpreter runs any code it is given"),
    ("awk", "awk", Runs::Operands, "awk's system() and pipes run commands"),
    ("gawk", "gawk", Runs::Operands, "awk's system() and pipes run commands"),
    ("mawk", "mawk", Runs::Operands, "awk's system() and pipes run commands"),
    ("nawk", "nawk", Runs::Operands, "awk's system() and pipes run commands"),
    ("sed", "sed", Runs::Operands, "GNU sed's `e` command runs commands"),
    ("make", "make", Runs::Operands, "make runs the recipes of the makefile it reads"),
    ("find", "find", Runs::Options, "find -exec, -execdir, -ok and -okdir run commands"),
    ("git", "git", Runs::Options, "git -c (core.pager, core.sshCommand, …), --exec-path, --upload-pack, aliases and hooks run commands"),
    ("tar", "tar", Runs::Options, "tar --to-command, --use-compress-program and --checkpoint-action run commands"),
    ("rsync", "rsync", Runs::Options, "rsync -e / --rsh runs a command"),
    ("ssh", "ssh", Runs::Options, "ssh -o ProxyCommand / LocalCommand runs a command"),
    ("vi", "vi", Runs::Operands, "an editor's `:!` runs commands"),
    ("vim", "vim", Runs::Operands, "an editor's `:!` runs commands"),
    ("nvim", "nvim", Runs::Operands, "an editor's `:!` runs commands"),
    ("less", "less", Runs::Options, "less's `!` and LESSOPEN run commands"),
    ("npm", "npm", Runs::Operands, "package scripts run commands"),
    ("npx", "npx", Runs::Operands, "npx runs packages as commands"),
    ("cargo", "cargo", Runs::Operands, "build scripts and `cargo run` run code"),
    ("parallel", "parallel", Runs::Operands, "parallel runs its operands as commands"),
];

/// The runner a `commands` entry admits, if any.
fn runner_of(entry: &str) -> Option<&'static (&'static str, &'static str, Runs, &'static str)> {
    let glob = |g: &str| {
        globset::GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .ok()
            .map(|g| g.compile_matcher())
    };
    let is_glob = entry.contains(['*', '?', '[', '{', '\\']);
    if is_glob {
        let m = glob(entry)?;
        RUNNERS.iter().find(|(_, sample, _, _)| {
            ["", "/bin/", "/usr/bin/", "/usr/local/bin/"]
                .iter()
                .any(|dir| m.is_match(format!("{dir}{sample}")))
        })
    } else {
        let base = entry.rsplit('/').next().unwrap_or(entry);
        RUNNERS
            .iter()
            .find(|(name, _, _, _)| glob(name).is_some_and(|m| m.is_match(base)))
    }
}

/// Why an allow `code_execution` rule admits a program that runs other programs, if it does
/// without an argument constraint that could hold it.
fn runs_programs(r: &Rule) -> Option<String> {
    let c = &r.constraints;
    if !(r.action == "code_execution" || (r.action == "*" && !c.commands.is_empty())) {
        return None;
    }
    if !c.args.is_empty() {
        return None;
    }
    if c.commands.is_empty() {
        return Some(
            "no `commands`: any program may run, shells and interpreters included; list the \
             programs in `commands` and constrain their arguments with `args`"
                .to_string(),
        );
    }
    let found: Vec<String> = c
        .commands
        .iter()
        .filter_map(|e| {
            let (_, _, runs, how) = runner_of(e)?;
            match runs {
                Runs::Options if !c.deny_args.is_empty() => None,
                Runs::Options => Some(format!(
                    "`{e}` ({how}: constrain it with `args` or `deny_args`)"
                )),
                Runs::Operands => {
                    Some(format!("`{e}` ({how}: only an `args` allow-list holds it)"))
                }
            }
        })
        .collect();
    (!found.is_empty()).then(|| {
        format!(
            "`commands` admits programs that run other programs without an argument constraint: {}",
            found.join("; ")
        )
    })
}

/// Whether two rules say the same thing (ids and lines aside).
fn same_rule(a: &Rule, b: &Rule) -> bool {
    let mode = |r: &Rule| r.mode.unwrap_or(RuleMode::ReadWrite);
    a.action == b.action
        && a.effect == b.effect
        && mode(a) == mode(b)
        && a.requires_approval == b.requires_approval
        && a.rate_limit == b.rate_limit
        && a.constraints == b.constraints
}

/// What `signals:` leaves an operator unable to do (DESIGN §7: SIGSTOP, SIGCONT and SIGTERM
/// are maskable, so each reaches the agent only when listed).
fn signal_traps(policy: &Policy) -> Vec<(WarningKind, String)> {
    let listed = |s: Signal| policy.signal_allowed(s);
    let mut out = Vec::new();
    if listed(Signal::Stop) && !listed(Signal::Cont) {
        out.push((
            WarningKind::StopWithoutCont,
            "SIGSTOP is listed but SIGCONT is not: `agentctl stop` will work but `cont` will be \
             refused: the agent stays frozen until killed; add SIGCONT"
                .to_string(),
        ));
    }
    if !listed(Signal::Term) {
        out.push((
            WarningKind::NoSigterm,
            "SIGTERM is not listed: `agentctl kernel stop` (and `agentctl signal ID SIGTERM`) \
             cannot ask the agent to end, so `kernel stop` waits the grace period \
             (`--term-grace-ms`, 5000 ms by default) and then SIGKILLs the agent's whole \
             process tree, with no chance to save its work; add SIGTERM"
                .to_string(),
        ));
    }
    out
}

/// What the kernel an agent would run under exports: the running configuration
/// [`Policy::lint_under`] checks `observability:` against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exporting {
    /// The kernel serves metrics (`--metrics-addr`).
    pub metrics: bool,
    /// The kernel exports traces (`--otlp-endpoint`).
    pub traces: bool,
}

/// `observability:` keys that change nothing under the kernel that `exporting` describes:
/// `metrics: true` without `--metrics-addr`, `traces: true` without `--otlp-endpoint`.
fn no_effect_under(policy: &Policy, exporting: Exporting) -> Vec<(WarningKind, String)> {
    let o = policy.observability();
    let mut out = Vec::new();
    if o.metrics && !exporting.metrics {
        out.push((
            WarningKind::NoEffect,
            "observability: `metrics: true` has no effect: the kernel serves no metrics; \
             start it with --metrics-addr PORT for the agent's per-agent series"
                .to_string(),
        ));
    }
    if o.traces && !exporting.traces {
        out.push((
            WarningKind::NoEffect,
            "observability: `traces: true` has no effect: the kernel exports no traces; \
             start it with --otlp-endpoint URL (an OTLP/HTTP collector) for a trace of the \
             agent's life"
                .to_string(),
        ));
    }
    out
}

/// `observability:` keys that change nothing under any kernel: `flight_recorder: false` (the
/// recorder records every agent, DESIGN §1.3).
fn no_effect(policy: &Policy) -> Vec<(WarningKind, String)> {
    let o = policy.observability();
    let mut out = Vec::new();
    if !o.flight_recorder {
        out.push((
            WarningKind::NoEffect,
            "observability: `flight_recorder: false` has no effect: the flight recorder records \
             every call of every agent, and cannot be turned off"
                .to_string(),
        ));
    }
    out
}

impl Policy {
    /// [`Policy::lint`], plus the `observability:` keys that have no effect under a kernel
    /// that exports what `exporting` says (the running configuration).
    pub fn lint_under(&self, exporting: Exporting) -> Vec<Warning> {
        let mut out = self.lint();
        // After the warnings about sections, before those about rules (file order).
        let at = out
            .iter()
            .position(|w| !w.rule.is_empty())
            .unwrap_or(out.len());
        let more: Vec<Warning> = no_effect_under(self, exporting)
            .into_iter()
            .map(|(kind, message)| Warning {
                rule: String::new(),
                file: self.path().to_string(),
                line: self.observability_line(),
                kind,
                message,
            })
            .collect();
        out.splice(at..at, more);
        out
    }

    /// Warnings about a valid policy: a `signals:` list that traps the agent (SIGSTOP
    /// without SIGCONT, no SIGTERM), allow rules that can never match or that a deny rule
    /// always overrides, duplicate rules, `requires_approval` with `dry_run`, a rate limit of
    /// at most one call a day, and action names the kernel never emits. In file order.
    pub fn lint(&self) -> Vec<Warning> {
        let rules = self.rules();
        let mut out: Vec<Warning> = signal_traps(self)
            .into_iter()
            .map(|(kind, message)| Warning {
                rule: String::new(),
                file: self.path().to_string(),
                line: self.signals_line(),
                kind,
                message,
            })
            .collect();
        out.extend(no_effect(self).into_iter().map(|(kind, message)| Warning {
            rule: String::new(),
            file: self.path().to_string(),
            line: self.observability_line(),
            kind,
            message,
        }));
        let mut warn = |r: &Rule, kind: WarningKind, message: String| {
            out.push(Warning {
                rule: r.id.clone(),
                file: self.path().to_string(),
                line: r.line,
                kind,
                message,
            });
        };
        for r in rules {
            if r.action != "*" && !is_known_action(&r.action) {
                warn(
                    r,
                    WarningKind::UnknownAction,
                    format!(
                        "{}; the rule only applies to calls that name it explicitly (a `Call` \
                         served by a tool provider)",
                        unknown_action(&r.action)
                    ),
                );
            }
            if let Some(prev) = rules[..r.index].iter().find(|p| same_rule(p, r)) {
                warn(
                    r,
                    WarningKind::Duplicate,
                    format!(
                        "duplicates rule `{}` (line {}); remove one of them",
                        prev.id, prev.line
                    ),
                );
                continue;
            }
            if r.effect == Effect::Allow {
                if let Some(why) = never_matches(r) {
                    warn(r, WarningKind::NeverMatches, why);
                } else if let Some(d) = rules
                    .iter()
                    .find(|d| d.effect == Effect::Deny && deny_covers(d, r))
                {
                    warn(
                        r,
                        WarningKind::Shadowed,
                        format!(
                            "never allows anything: deny rule `{}` (line {}) covers every call it \
                             matches (deny overrides allow); narrow the deny rule or remove this one",
                            d.id, d.line
                        ),
                    );
                }
            }
            if r.effect == Effect::Allow {
                if let Some(why) = runs_programs(r) {
                    warn(r, WarningKind::RunsPrograms, why);
                }
                if r.action == "network" && r.constraints.hosts.iter().all(|h| h == "*") {
                    warn(
                        r,
                        WarningKind::EveryHost,
                        "no `hosts` (or `*`): the agent may connect to every host on the internet \
                         (never the host's own, loopback or private addresses, which must be \
                         listed literally); list them as `hosts: [\"api.example.com\"]`"
                            .to_string(),
                    );
                }
                if r.action == "mcp_tool" && r.constraints.tools.is_empty() {
                    warn(
                        r,
                        WarningKind::EveryTool,
                        "no `tools`: every tool of every MCP server the kernel runs (`--mcp`) may be \
                         listed and called, those added later included; list them as \
                         `tools: [\"SERVER/TOOL\"]`"
                            .to_string(),
                    );
                }
            }
            if r.requires_approval && r.constraints.dry_run {
                warn(
                    r,
                    WarningKind::ApprovalWithDryRun,
                    "`requires_approval` with `dry_run: true` asks an operator to approve calls \
                     that are never performed; drop one of them"
                        .to_string(),
                );
            }
            if let Some(rate) = r.rate_limit {
                if u64::from(rate.count) * (86_400_000 / rate.period.millis()) <= 1 {
                    warn(
                        r,
                        WarningKind::SuspiciousRate,
                        format!(
                            "`rate_limit: {rate}` allows at most one call a day; if the agent \
                             must not make this call, use `effect: deny`"
                        ),
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(rules: &str) -> Vec<String> {
        let text = format!(
            "kernel: {{version: \"1.0\", mode: strict}}\nsignals: [SIGTERM]\npolicies:\n{rules}"
        );
        Policy::parse("s.md", &text)
            .unwrap_or_else(|e| panic!("{e}"))
            .lint()
            .iter()
            .map(|w| format!("{w} [{}]", w.kind.as_str()))
            .collect()
    }

    #[test]
    fn clean_policy_has_no_warnings() {
        assert!(lint(
            "  - {name: r, action: file_read, effect: allow, constraints: {paths: [\"/w/**\"]}}\n  \
             - {name: d, action: file_read, effect: deny, constraints: {paths: [\"/w/**\"], deny_patterns: [x]}}\n  \
             - {name: e, action: file_write, effect: deny, constraints: {paths: [\"/w/a/**\"]}}\n  \
             - {name: w, action: file_write, effect: allow, constraints: {paths: [\"/w/**\"]}}\n"
        )
        .is_empty());
    }

    #[test]
    fn never_matching_allow_rules() {
        assert_eq!(
            lint(
                "  - {name: a, action: file_write, effect: allow, mode: read_only}\n  \
                 - {name: b, action: ipc_send, effect: allow, constraints: {max_bytes: 0}}\n  \
                 - {name: c, action: file_read, effect: allow, constraints: {paths: [\"/w/../x\", \"/w//y\", \"/w/\"]}}\n  \
                 - {name: d, action: file_read, effect: allow, constraints: {hosts: [a.io]}}\n"
            ),
            vec![
                "s.md:4: warning: rule `a`: `mode: read_only` does not admit writes, so this file_write rule never matches; remove `mode` or use `mode: read_write` [never-matches]",
                "s.md:5: warning: rule `b`: `max_bytes: 0` admits only empty payloads; raise it or remove it [never-matches]",
                "s.md:6: warning: rule `c`: no path can match `/w/../x` (normalized paths never contain `.` or `..` components), `/w//y` (normalized paths never contain `//`), `/w/` (normalized paths never end in `/`); write globs over normalized absolute paths [never-matches]",
                "s.md:7: warning: rule `d`: `hosts` never matches a file_read: its resource is a path with no host; use `paths` [never-matches]",
            ]
        );
    }

    #[test]
    fn shadowed_allow_rules() {
        let w = lint(
            "  - {name: a, action: file_write, effect: allow, constraints: {paths: [\"/w/src/**\"]}}\n  \
             - {name: b, action: file_write, effect: allow, constraints: {paths: [\"/x/**\"]}}\n  \
             - {name: c, action: api_call, effect: allow, constraints: {hosts: [a.io]}}\n  \
             - {name: d, action: file_write, effect: deny, constraints: {paths: [\"/w/**\"]}}\n  \
             - {name: e, action: \"*\", effect: deny, constraints: {hosts: [a.io]}}\n",
        );
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(w[0].starts_with(
            "s.md:4: warning: rule `a`: never allows anything: deny rule `d` (line 7)"
        ));
        assert!(w[1].starts_with(
            "s.md:6: warning: rule `c`: never allows anything: deny rule `e` (line 8)"
        ));
        // Not certain → no warning: a read_only deny, a deny with limits, a narrower deny.
        assert!(lint(
            "  - {action: file_read, effect: allow}\n  \
             - {action: file_read, effect: deny, mode: read_only, constraints: {paths: [\"/w/**\"]}}\n  \
             - {action: file_read, effect: deny, constraints: {max_bytes: 10}}\n  \
             - {action: \"*\", effect: deny, constraints: {paths: [\"/w/*\"]}}\n"
        )
        .is_empty());
    }

    #[test]
    fn duplicates_approval_dry_run_rates_and_unknown_actions() {
        assert_eq!(
            lint(
                "  - {name: a, action: file_read, effect: allow, mode: read_write}\n  \
                 - {name: b, action: file_read, effect: allow}\n  \
                 - {name: c, action: send_email, effect: allow, requires_approval: true, constraints: {dry_run: true}}\n  \
                 - {name: d, action: api_call, effect: allow, rate_limit: 1/day}\n  \
                 - {name: e, action: deploy, effect: allow}\n"
            ),
            vec![
                "s.md:5: warning: rule `b`: duplicates rule `a` (line 4); remove one of them [duplicate]",
                "s.md:6: warning: rule `c`: `requires_approval` with `dry_run: true` asks an operator to approve calls that are never performed; drop one of them [approval-with-dry-run]",
                "s.md:7: warning: rule `d`: `rate_limit: 1/day` allows at most one call a day; if the agent must not make this call, use `effect: deny` [suspicious-rate]",
                "s.md:8: warning: rule `e`: action `deploy` is not one the kernel emits (file_read, file_write, code_execution, api_call, ipc_send, signal, database_query, database_write, send_email, mcp_tool, network); the rule only applies to calls that name it explicitly (a `Call` served by a tool provider) [unknown-action]",
            ]
        );
    }

    /// `file`'s lint warnings as printed, each with its kind: `FILE:LINE: warning: … [kind]`.
    fn warnings(file: &str, text: &str) -> Vec<String> {
        Policy::parse(file, text)
            .unwrap_or_else(|e| panic!("{e}"))
            .lint()
            .iter()
            .map(|w| format!("{w} [{}]", w.kind.as_str()))
            .collect()
    }

    fn signal_warnings(signals: &str) -> Vec<String> {
        warnings(
            "s.md",
            &format!(
                "kernel: {{version: \"1.0\", mode: strict}}\nsignals: {signals}\npolicies: []\n"
            ),
        )
    }

    #[test]
    fn observability_keys_without_effect_are_named() {
        let lint = |o: &str| {
            warnings(
                "o.md",
                &format!(
                    "kernel: {{version: \"1.0\", mode: strict}}\nsignals: [SIGTERM]\npolicies: []\nobservability:\n{o}"
                ),
            )
        };
        assert!(lint("  metrics: true\n  traces: true\n  flight_recorder: true\n").is_empty());
        let w = lint("  metrics: true\n  flight_recorder: false\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "o.md:4: warning: observability: `flight_recorder: false` has no effect"
            ) && w[0].ends_with("[no-effect]"),
            "{w:?}"
        );
    }

    #[test]
    fn metrics_and_traces_without_an_exporter_have_no_effect() {
        let policy = Policy::parse(
            "o.md",
            "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGTERM]\npolicies:\n  - {name: a, action: file_read, effect: allow, rate_limit: 1/day}\nobservability:\n  metrics: true\n  traces: true\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let under = |metrics, traces| {
            policy
                .lint_under(Exporting { metrics, traces })
                .iter()
                .map(|w| format!("{w} [{}]", w.kind.as_str()))
                .collect::<Vec<_>>()
        };
        let rate = "o.md:4: warning: rule `a`: `rate_limit: 1/day`";
        let both = under(false, false);
        assert_eq!(both.len(), 3, "{both:?}");
        assert!(both[0].starts_with("o.md:5: warning: observability: `metrics: true` has no effect: the kernel serves no metrics; start it with --metrics-addr"), "{both:?}");
        assert!(both[1].starts_with("o.md:5: warning: observability: `traces: true` has no effect: the kernel exports no traces; start it with --otlp-endpoint"), "{both:?}");
        assert!(both[0].ends_with("[no-effect]") && both[1].ends_with("[no-effect]"));
        assert!(both[2].starts_with(rate), "{both:?}");
        let traces_only = under(true, false);
        assert_eq!(traces_only.len(), 2, "{traces_only:?}");
        assert!(traces_only[0].contains("`traces: true`"));
        assert_eq!(under(true, true).len(), 1);
        assert_eq!(
            under(true, true),
            policy
                .lint()
                .iter()
                .map(|w| format!("{w} [{}]", w.kind.as_str()))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn signals_that_trap_the_agent() {
        let no_cont = "s.md:2: warning: signals: SIGSTOP is listed but SIGCONT is not: `agentctl stop` will work but `cont` will be refused: the agent stays frozen until killed; add SIGCONT [stop-without-cont]";
        let no_term = "s.md:2: warning: signals: SIGTERM is not listed: `agentctl kernel stop` (and `agentctl signal ID SIGTERM`) cannot ask the agent to end, so `kernel stop` waits the grace period (`--term-grace-ms`, 5000 ms by default) and then SIGKILLs the agent's whole process tree, with no chance to save its work; add SIGTERM [no-sigterm]";
        assert_eq!(
            signal_warnings("[SIGSTOP, SIGKILL]"),
            vec![no_cont, no_term]
        );
        assert_eq!(signal_warnings("[SIGSTOP, SIGTERM]"), vec![no_cont]);
        assert_eq!(signal_warnings("[]"), vec![no_term]);
        assert_eq!(signal_warnings("[SIGKILL, SIGPOLICY]"), vec![no_term]);
        for clean in [
            "[SIGTERM]",
            "[SIGSTOP, SIGCONT, SIGTERM]",
            "[SIGCONT, SIGTERM, SIGINT]",
        ] {
            assert!(signal_warnings(clean).is_empty(), "{clean}");
        }
    }
}

//! `agentctl policy init|lint|explain|suggest`: write a policy from a spec template, check
//! one, show how a call would be decided, suggest one from a recorded run (`crate::suggest`).
//! All work on files alone; `explain --agent` asks the kernel which file an agent runs under
//! and refuses if it changed since the spawn.

use std::io::Write;
use std::path::Path;

use agentos_policy::templates::Template;
use agentos_policy::{
    Access, Effect, Explanation, Exporting, Policy, PolicyError, Request, RuleRef, Warning,
};
use agentos_syscalls::control::{AgentRef, ControlRequest, ControlResponse};
use serde_json::{json, Value};

use crate::cli::{PolicyCommand, PolicyExplainArgs, PolicyInitArgs, PolicyLintArgs, TemplateName};
use crate::client::{call, unexpected};
use crate::CliError;

pub fn dispatch(dir: &Path, cmd: PolicyCommand) -> Result<u8, CliError> {
    // Explain echoes the request it is given: lines for a person are escaped.
    let mut out = crate::safe::Escaping::new(crate::stdout::Stdout, crate::safe::Keep::LINES);
    match cmd {
        PolicyCommand::Reload { agent, file } => crate::commands::reload(dir, &agent, &file),
        PolicyCommand::Init(args) => init(&args, &mut out),
        PolicyCommand::Lint(args) => lint(&args, exporting(dir), &mut out),
        PolicyCommand::Suggest(args) => crate::suggest::suggest(dir, &args),
        PolicyCommand::Explain(args) => {
            let policy = match (&args.file, &args.agent) {
                (_, Some(agent)) => agent_policy(dir, agent)?,
                (Some(file), None) => load(file)?,
                (None, None) => {
                    return Err(CliError::usage(
                        "no policy given",
                        "pass a FILE or --agent ID",
                    ))
                }
            };
            explain(&policy, &args, &mut out)
        }
    }
}

fn io_error(e: std::io::Error) -> CliError {
    CliError::failed(format!("cannot write the output: {e}"), "")
}

fn template(t: TemplateName) -> Template {
    match t {
        TemplateName::Strict => Template::Strict,
        TemplateName::Permissive => Template::Permissive,
        TemplateName::Audit => Template::Audit,
    }
}

/// `policy init`: writes the template's page, refusing to overwrite without `--force`.
pub fn init(args: &PolicyInitArgs, out: &mut dyn Write) -> Result<u8, CliError> {
    let t = template(args.template);
    let page = t.page();
    let shown = args.output.display().to_string();
    // The page must load as written; a failure here is a bug in the template, not the user's.
    Policy::parse(&shown, &page).map_err(|e| {
        CliError::failed(
            format!("the {} template does not load:\n{e}", t.name()),
            "report this bug",
        )
    })?;
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            CliError::failed(
                format!("cannot create {}: {e}", parent.display()),
                "choose another --output",
            )
        })?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if args.force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut file = opts.open(&args.output).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::failed(
                format!("{shown} already exists"),
                "pass --force to overwrite it, or --output FILE to write elsewhere",
            )
        } else {
            CliError::failed(
                format!("cannot write {shown}: {e}"),
                "choose another --output",
            )
        }
    })?;
    file.write_all(page.as_bytes())
        .map_err(|e| CliError::failed(format!("cannot write {shown}: {e}"), ""))?;
    writeln!(
        out,
        "wrote the {} template to {shown}; check it with `agentctl policy lint {shown}`",
        t.name()
    )
    .map_err(io_error)?;
    Ok(0)
}

fn load(file: &Path) -> Result<Policy, CliError> {
    Policy::load(file).map_err(|e| match e {
        PolicyError::Read { .. } => CliError::new(
            4,
            format!("cannot read policy {}: {}", file.display(), e.message()),
            "check the path",
        ),
        other => CliError::failed(
            other.to_string(),
            "fix the file, then run the command again",
        ),
    })
}

fn error_json(e: &PolicyError) -> Value {
    json!({
        "line": e.line(),
        "column": e.column(),
        "message": e.message(),
        "help": e.help(),
    })
}

fn warning_json(w: &Warning) -> Value {
    json!({
        "rule": w.rule,
        "file": w.file,
        "line": w.line,
        "kind": w.kind.as_str(),
        "message": w.message,
    })
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// What the kernel running on `dir` exports, when one answers there.
fn exporting(dir: &Path) -> Option<Exporting> {
    match call(dir, &ControlRequest::Status) {
        Ok(ControlResponse::Status(s)) => Some(Exporting {
            metrics: s.metrics_url.is_some(),
            traces: s.otlp_endpoint.is_some(),
        }),
        _ => None,
    }
}

/// `policy lint`: errors exit 1; warnings exit 0, or 1 with `--deny-warnings`. The
/// `observability:` keys are checked against `kernel`, the running kernel's flags, when one
/// answers.
pub fn lint(
    args: &PolicyLintArgs,
    kernel: Option<Exporting>,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let shown = args.file.display().to_string();
    let mut unchecked = false;
    let (error, warnings) = match Policy::load(&args.file) {
        Ok(p) => match kernel {
            Some(k) => (None, p.lint_under(k)),
            None => {
                let o = p.observability();
                unchecked = o.metrics || o.traces;
                (None, p.lint())
            }
        },
        Err(e @ PolicyError::Read { .. }) => {
            return Err(CliError::new(
                4,
                format!("cannot read policy {shown}: {}", e.message()),
                "check the path",
            ))
        }
        Err(e) => (Some(e), Vec::new()),
    };
    let code = u8::from(error.is_some() || (args.deny_warnings && !warnings.is_empty()));
    if args.json {
        let v = json!({
            "file": shown,
            "ok": code == 0,
            "errors": error.iter().map(error_json).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(warning_json).collect::<Vec<_>>(),
            "kernel": kernel.map(|k| json!({"metrics": k.metrics, "traces": k.traces})),
        });
        writeln!(out, "{}", crate::safe::json_pretty(&v)).map_err(io_error)?;
        return Ok(code);
    }
    if let Some(e) = &error {
        writeln!(out, "{e}").map_err(io_error)?;
        writeln!(
            out,
            "{shown}: 1 error; the kernel refuses to spawn an agent under it"
        )
        .map_err(io_error)?;
        return Ok(code);
    }
    for w in &warnings {
        writeln!(out, "{w}").map_err(io_error)?;
    }
    if unchecked {
        writeln!(
            out,
            "note: no kernel answers on the state dir, so `metrics`/`traces` were not checked \
             against its --metrics-addr/--otlp-endpoint; run lint while the kernel runs"
        )
        .map_err(io_error)?;
    }
    let summary = if warnings.is_empty() {
        format!("{shown}: ok, no warnings")
    } else {
        format!("{shown}: valid, {}", plural(warnings.len(), "warning"))
    };
    writeln!(out, "{summary}").map_err(io_error)?;
    Ok(code)
}

/// The policy a running agent was spawned with, if its file has not changed since.
fn agent_policy(dir: &Path, agent: &str) -> Result<Policy, CliError> {
    let info = match call(
        dir,
        &ControlRequest::Inspect {
            agent: AgentRef::parse(agent),
        },
    )? {
        ControlResponse::Agent(info) => info,
        other => return Err(unexpected(&other)),
    };
    let path = Path::new(&info.policy_path);
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            4,
            format!(
                "agent {} runs under {}, which cannot be read now: {e}",
                info.id, info.policy_path
            ),
            "explain against a copy of the file: `agentctl policy explain FILE --action A --resource R`",
        )
    })?;
    let policy = Policy::parse(&info.policy_path, &text).map_err(|e| {
        CliError::failed(
            format!(
                "{} changed since agent {} was spawned and no longer loads:\n{e}",
                info.policy_path, info.id
            ),
            "the agent still runs under the policy it was spawned with",
        )
    })?;
    if policy.digest() != info.policy_digest {
        return Err(CliError::failed(
            format!(
                "{} changed since agent {} was spawned (blake3 {} then, {} now); the agent \
                 still runs under the old text",
                info.policy_path,
                info.id,
                &hex::encode(info.policy_digest)[..16],
                &hex::encode(policy.digest())[..16],
            ),
            format!(
                "explain the file as it is now with `agentctl policy explain {} …`, or apply it \
                 with `agentctl policy reload`",
                info.policy_path
            ),
        ));
    }
    Ok(policy)
}

fn rule_json(r: &RuleRef) -> Value {
    json!({"id": r.id, "file": r.file, "line": r.line})
}

/// The JSON form of an [`Explanation`].
pub fn explanation_json(e: &Explanation) -> Value {
    let d = &e.decision;
    json!({
        "action": e.action,
        "resource": e.resource,
        "access": match e.access { Access::Read => "read", Access::Write => "write" },
        "bytes": e.bytes,
        "allowed": d.allowed,
        "rule": d.rule.as_ref().map(rule_json),
        "reason": d.reason,
        "requires_approval": d.requires_approval,
        "rate_limit": d.rate_limit.map(|(_, r)| r.to_string()),
        "log": d.log,
        "dry_run": d.dry_run,
        "checks": e.checks.iter().map(|c| json!({
            "rule": rule_json(&c.rule),
            "action": c.action,
            "effect": match c.effect { Effect::Allow => "allow", Effect::Deny => "deny" },
            "outcome": c.outcome.as_str(),
            "reason": c.reason,
            "decides": d.rule.as_ref() == Some(&c.rule),
        })).collect::<Vec<_>>(),
    })
}

/// Whether `policy explain` takes `action`: one of the actions the kernel emits
/// ([`agentos_policy::KNOWN_ACTIONS`], the same list `policy lint` checks rules against), or
/// a custom `Call` action the policy itself names in a rule (lint has warned about it there;
/// explain says so again on stderr). Anything else is refused with the list: `shell` is not
/// a call an agent can make, and explaining it would only show how the `*` rules treat a
/// name that never occurs.
pub fn check_action(policy: &Policy, action: &str) -> Result<Option<String>, CliError> {
    if agentos_policy::is_known_action(action) {
        return Ok(None);
    }
    let message = agentos_policy::unknown_action(action);
    if policy.rules().iter().any(|r| r.action == action) {
        return Ok(Some(format!(
            "{message}; explained anyway because {} names it (a `Call` to a tool provider)",
            policy.path()
        )));
    }
    Err(CliError::usage(
        message,
        "pass one of the actions listed (a custom `Call` action is explained only when the policy names it in a rule)",
    ))
}

/// `policy explain`: exit 0 when allowed, 3 when denied (DESIGN §9).
pub fn explain(
    policy: &Policy,
    args: &PolicyExplainArgs,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    if let Some(note) = check_action(policy, &args.action)? {
        say_err!("agentctl: note: {note}");
    }
    let req = Request {
        action: &args.action,
        resource: &args.resource,
        access: if args.write {
            Access::Write
        } else {
            Access::Read
        },
        bytes: args.bytes,
        now_ms: 0,
    };
    let e = policy.explain(&req);
    if args.json {
        let text = crate::safe::json_pretty(&explanation_json(&e));
        writeln!(out, "{text}").map_err(io_error)?;
    } else {
        writeln!(out, "{e}").map_err(io_error)?;
    }
    Ok(if e.decision.allowed { 0 } else { 3 })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn run(f: impl FnOnce(&mut dyn Write) -> Result<u8, CliError>) -> (u8, String) {
        let mut buf = Vec::new();
        let code = f(&mut buf).map_err(|e| e.message).unwrap();
        (code, String::from_utf8(buf).unwrap())
    }

    #[test]
    fn init_writes_a_loading_page_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join(".agents/security.md");
        for t in [
            TemplateName::Strict,
            TemplateName::Permissive,
            TemplateName::Audit,
        ] {
            let args = PolicyInitArgs {
                template: t,
                output: output.clone(),
                force: true,
            };
            let (code, text) = run(|o| init(&args, o));
            assert_eq!(code, 0);
            assert!(text.starts_with("wrote the "), "{text}");
            let p = Policy::load(&output).unwrap();
            assert!(p.lint().is_empty());
        }
        let args = PolicyInitArgs {
            template: TemplateName::Strict,
            output: output.clone(),
            force: false,
        };
        let err = init(&args, &mut Vec::new()).unwrap_err();
        assert_eq!(err.code, 1);
        assert!(err.message.ends_with("security.md already exists"));
        assert!(err.hint.contains("--force"));
        // Untouched: still the audit page written last.
        let text = std::fs::read_to_string(&output).unwrap();
        assert!(text.contains("mode: audit"));
    }

    #[test]
    fn lint_exit_codes_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.md");
        std::fs::write(
            &file,
            "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGTERM]\npolicies:\n  - {name: a, action: file_write, effect: allow, mode: read_only}\n",
        )
        .unwrap();
        let mut args = PolicyLintArgs {
            file: file.clone(),
            deny_warnings: false,
            json: false,
        };
        let (code, text) = run(|o| lint(&args, None, o));
        assert_eq!(code, 0);
        let shown = file.display().to_string();
        assert!(
            text.starts_with(&format!("{shown}:4: warning: rule `a`: `mode: read_only`")),
            "{text}"
        );
        assert!(text.ends_with(&format!("{shown}: valid, 1 warning\n")));
        args.deny_warnings = true;
        assert_eq!(run(|o| lint(&args, None, o)).0, 1);
        args.json = true;
        let (_, text) = run(|o| lint(&args, None, o));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["warnings"][0]["kind"], "never-matches");
        assert_eq!(v["ok"], false);

        std::fs::write(
            &file,
            "kernel: {version: \"1.0\", mode: strickt}\nsignals: []\npolicies: []\n",
        )
        .unwrap();
        args.json = false;
        let (code, text) = run(|o| lint(&args, None, o));
        assert_eq!(code, 1);
        assert!(
            text.starts_with(&format!("{shown}:1:32: invalid kernel.mode")),
            "{text}"
        );

        args.file = dir.path().join("missing.md");
        assert_eq!(lint(&args, None, &mut Vec::new()).unwrap_err().code, 4);
    }

    #[test]
    fn explain_text_json_and_exit_codes() {
        let p = Policy::parse(
            "security.md",
            "kernel: {version: \"1.0\", mode: strict}\nsignals: []\npolicies:\n  - {name: write-src, action: file_write, effect: allow, constraints: {paths: [\"/workspace/src/**\"]}}\n",
        )
        .unwrap();
        let mut args = PolicyExplainArgs {
            file: None,
            agent: None,
            action: "file_write".into(),
            resource: "/workspace/src/a.rs".into(),
            bytes: 10,
            write: true,
            json: false,
        };
        let (code, text) = run(|o| explain(&p, &args, o));
        assert_eq!(code, 0);
        assert!(
            text.contains("allowed by write-src (security.md:4)"),
            "{text}"
        );
        args.resource = "/mem/x".into();
        args.json = true;
        let (code, text) = run(|o| explain(&p, &args, o));
        assert_eq!(code, 3);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["allowed"], false);
        assert_eq!(v["rule"], Value::Null);
        assert_eq!(v["checks"][0]["outcome"], "missed");
        assert_eq!(
            v["reason"],
            "no rule allows file_write on /mem/x; nearest: rule `write-src` (security.md:4): path not under /workspace/src/**"
        );
    }

    #[test]
    fn explain_and_lint_agree_on_actions() {
        let text = "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGTERM]\npolicies:\n  - {name: any, action: \"*\", effect: allow}\n";
        let p = Policy::parse("security.md", text).unwrap();
        let mut args = PolicyExplainArgs {
            file: None,
            agent: None,
            action: "shell".into(),
            resource: "ls".into(),
            bytes: 0,
            write: false,
            json: false,
        };
        // `shell` is refused with the one list lint checks rules against.
        let err = explain(&p, &args, &mut Vec::new()).unwrap_err();
        assert_eq!(err.code, 2);
        assert_eq!(err.message, agentos_policy::unknown_action("shell"));
        for known in agentos_policy::KNOWN_ACTIONS {
            assert!(err.message.contains(known), "{}", err.message);
            args.action = (*known).into();
            assert_eq!(run(|o| explain(&p, &args, o)).0, 0, "{known}");
        }
        // A typo names the action it is close to.
        args.action = "file_raed".into();
        let err = explain(&p, &args, &mut Vec::new()).unwrap_err();
        assert!(
            err.message.ends_with("did you mean `file_read`?"),
            "{}",
            err.message
        );
        // The same name in a rule is what lint warns about, with the same words.
        let custom = Policy::parse(
            "security.md",
            "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGTERM]\npolicies:\n  - {name: deploy, action: deploy, effect: allow}\n",
        )
        .unwrap();
        let w = custom.lint();
        assert_eq!(w.len(), 1);
        assert!(w[0]
            .message
            .starts_with(&agentos_policy::unknown_action("deploy")));
        // … and explain takes it there (a custom Call action the policy names), with a note.
        args.action = "deploy".into();
        assert_eq!(run(|o| explain(&custom, &args, o)).0, 0);
        assert!(check_action(&custom, "deploy").unwrap().is_some());
        assert!(check_action(&custom, "file_read").unwrap().is_none());
    }
}

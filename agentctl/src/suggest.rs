//! `agentctl policy suggest`: a strict policy from a recorded run.
//!
//! Reads `STATE_DIR/recorder` directly (no kernel needed), refuses a log that does not
//! verify, finds the agent (by id, or by the name it was spawned with), classifies its calls
//! exactly as the kernel did (`agentos_kernel::replay::judged_calls`), hands them to
//! `agentos_policy::propose` (the generalisation and its rules are documented there), and
//! checks the result twice before writing it: it must load, and a what-if replay of the same
//! log under it (`agentos_kernel::replay::what_if`) must change no decision but the dry runs
//! an audit run recorded (which the suggestion performs). Lint warnings and every decision
//! it could not keep are printed as notes on stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use agentos_kernel::recorder::{Record, RecordEvent};
use agentos_kernel::replay::{judged_calls, recorded_verdict, what_if};
use agentos_policy::propose::{propose, render, yaml_quote, Observed, Page, Verdict};
use agentos_policy::{Observability, Policy, Sandbox};
use agentos_syscalls::signal::ALL_SIGNALS;
use agentos_syscalls::Signal;

use crate::cli::{FromMode, PolicySuggestArgs};
use crate::CliError;

/// What the log says about the agent the suggestion is for.
struct Run {
    id: u64,
    name: Option<String>,
    program: String,
    args: Vec<String>,
    /// The policy it last ran under: path and digest (spawn, or the last reload).
    policy_path: String,
    policy_digest: [u8; 32],
    /// Maskable signals an operator delivered to it.
    signals: Vec<Signal>,
}

/// The agent `wanted` names: an id, or a name it was spawned with (the latest such agent).
fn find_run(records: &[Record], wanted: &str, notes: &mut Vec<String>) -> Result<Run, CliError> {
    let mut spawns: Vec<(u64, &RecordEvent)> = records
        .iter()
        .filter(|r| matches!(r.event, RecordEvent::Spawn { .. }))
        .filter_map(|r| r.agent.map(|a| (a.0, &r.event)))
        .collect();
    let by_id = wanted.parse::<u64>().ok();
    spawns.retain(|(id, e)| match e {
        RecordEvent::Spawn { name, .. } => Some(*id) == by_id || name.as_deref() == Some(wanted),
        _ => false,
    });
    // An id wins over a name that happens to be a number.
    if let Some(id) = by_id.filter(|id| spawns.iter().any(|(i, _)| i == id)) {
        spawns.retain(|(i, _)| *i == id);
    }
    let Some(&(id, event)) = spawns.last() else {
        return Err(CliError::new(
            4,
            format!("no agent `{wanted}` in the flight recorder (by id or by the name it was spawned with)"),
            "find the recorded agents with `agentctl recorder show --json` (Spawn records)",
        ));
    };
    if spawns.len() > 1 {
        let ids: Vec<String> = spawns.iter().map(|(i, _)| i.to_string()).collect();
        notes.push(format!(
            "agents {} were all spawned as `{wanted}`; using the latest, {id} (pass --agent ID for another)",
            ids.join(", ")
        ));
    }
    let RecordEvent::Spawn {
        name,
        program,
        args,
        policy_path,
        policy_digest,
        ..
    } = event
    else {
        return Err(CliError::failed("not a spawn record", "report this bug"));
    };
    let mut run = Run {
        id,
        name: name.clone(),
        program: program.clone(),
        args: args.clone(),
        policy_path: policy_path.clone(),
        policy_digest: *policy_digest,
        signals: Vec::new(),
    };
    for r in records.iter().filter(|r| r.agent.map(|a| a.0) == Some(id)) {
        match &r.event {
            RecordEvent::PolicyReloaded {
                new_digest, path, ..
            } => {
                run.policy_path = path.clone();
                run.policy_digest = *new_digest;
            }
            RecordEvent::Signal {
                signal,
                delivered: true,
                source,
                ..
            } if signal.maskable() && source != "kernel" && !run.signals.contains(signal) => {
                run.signals.push(*signal);
            }
            _ => {}
        }
    }
    Ok(run)
}

/// The `sandbox:` section the run had: its policy file's, when the file still holds the text
/// the agent ran under.
/// The `sandbox:` and `observability:` sections of the policy the run had, when its file
/// still holds it.
fn recorded_sections(run: &Run, notes: &mut Vec<String>) -> (Sandbox, Observability) {
    let loaded = std::fs::read_to_string(&run.policy_path)
        .ok()
        .and_then(|t| Policy::parse(&run.policy_path, &t).ok())
        .filter(|p| p.digest() == run.policy_digest);
    match loaded {
        Some(p) => (p.sandbox().clone(), *p.observability()),
        None => {
            notes.push(format!(
                "{} no longer holds the policy agent {} ran under, so its `sandbox:` section (extra read-only paths, limits) and `observability:` section are not known: copy them by hand if it had them",
                run.policy_path, run.id
            ));
            (Sandbox::default(), Observability::default())
        }
    }
}

fn mode_name(m: FromMode) -> &'static str {
    match m {
        FromMode::Permissive => "permissive",
        FromMode::Audit => "audit",
    }
}

pub fn suggest(state_dir: &Path, args: &PolicySuggestArgs) -> Result<u8, CliError> {
    let dir = crate::recorder::recorder_dir(state_dir)?;
    let records = crate::recorder::verified_records(&dir)?;
    let mut notes = Vec::new();
    let run = find_run(&records, &args.agent, &mut notes)?;
    let (_, calls) = judged_calls(&records, Some(run.id));
    let mut modes: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &calls {
        *modes.entry(c.decision.mode.as_str()).or_default() += 1;
    }
    let seen: Vec<String> = modes.iter().map(|(m, n)| format!("{n} {m}")).collect();
    if let Some(want) = args.from_mode {
        let want = mode_name(want);
        if modes.keys().any(|m| *m != want) {
            return Err(CliError::failed(
                format!(
                    "agent {} was not recorded under {want} mode: its calls were judged {}",
                    run.id,
                    seen.join(", ")
                ),
                "drop --from-mode to learn from the run as recorded, or record a run under that mode",
            ));
        }
    }
    let mut observed = Vec::new();
    for c in &calls {
        let verdict = match recorded_verdict(&c.decision) {
            "deny" => Verdict::Denied,
            "approval" => Verdict::Approval,
            _ => Verdict::Allow,
        };
        for resource in std::iter::once(&c.resource).chain(c.also.as_ref()) {
            observed.push(Observed {
                action: c.action.clone(),
                resource: resource.clone(),
                access: c.access,
                bytes: c.bytes,
                args: c.args.clone(),
                peer_name: c.peer_name.clone(),
                verdict,
            });
        }
    }
    let denied = calls
        .iter()
        .filter(|c| recorded_verdict(&c.decision) == "deny")
        .count();
    let mut signals: Vec<Signal> = ALL_SIGNALS
        .into_iter()
        .filter(|s| {
            matches!(s, Signal::Term | Signal::Stop | Signal::Cont) || run.signals.contains(s)
        })
        .collect();
    signals.sort_by_key(|s| s.number());
    let (sandbox, observability) = recorded_sections(&run, &mut notes);
    let label = match &run.name {
        Some(n) => format!("agent {} ({})", run.id, yaml_quote(n)),
        None => format!("agent {}", run.id),
    };
    let shown_out = args
        .output
        .as_ref()
        .map_or("FILE".to_string(), |o| o.display().to_string());
    let command = std::iter::once(&run.program)
        .chain(&run.args)
        .map(|a| yaml_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let page =
        Page {
            intro: vec![
                format!(
                "Suggested by `agentctl policy suggest` from {label}, which ran {command}, in the \
                 flight recorder at {} ({} judged calls, {}; {denied} denied). It is the smallest \
                 strict policy that allows what that run did: each file the run read or wrote \
                 (a directory with {} or more of them as `dir/**`, never above its mount), each \
                 program with the arguments it was given, each host and peer; the calls the run \
                 was denied stay denied. The signals are the ones an operator needs (SIGTERM for \
                 `kernel stop`, SIGSTOP with SIGCONT) and those the run was sent.",
                yaml_quote(&dir.display().to_string()),
                calls.len(),
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") },
                agentos_policy::propose::MANY_FILES,
            ),
                format!(
                    "Not inferred: rate limits, `max_bytes`, approvals for calls that had none, \
                 anything the run did not do. Review it before use: a rule allows what the run \
                 did, which is not always what the agent should do. Check it with \
                 `agentctl replay what-if --policy {shown_out} --agent {}` and \
                 `agentctl policy lint {shown_out}`.",
                    run.id
                ),
            ],
            signals,
            sandbox,
            observability,
        };
    let proposal = propose(&observed, &page);
    notes.extend(proposal.notes.iter().cloned());
    let text = render(&proposal.rules, &page);
    let shown = args
        .output
        .as_ref()
        .map_or("suggested.md".to_string(), |o| o.display().to_string());
    let policy = Policy::parse(&shown, &text).map_err(|e| {
        CliError::failed(
            format!("the suggested policy does not load:\n{e}"),
            "report this bug",
        )
    })?;
    for w in policy.lint() {
        notes.push(format!("lint: {w}"));
    }
    let check = what_if(&records, &policy, Some(run.id));
    for (kind, n) in &check.counts {
        if kind == "dry_run → allow" {
            notes.push(format!(
                "{n} call(s) the run recorded as dry runs (audit) are allowed and performed under the suggestion"
            ));
        } else {
            notes.push(format!("what-if: {n} decision(s) {kind}"));
        }
    }
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| CliError::failed(format!("cannot write the output: {e}"), ""))?;
        }
        Some(path) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true);
            if args.force {
                opts.create(true).truncate(true);
            } else {
                opts.create_new(true);
            }
            let mut f = opts.open(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    CliError::failed(
                        format!("{shown} already exists"),
                        "pass --force to overwrite it, or -o FILE to write elsewhere",
                    )
                } else {
                    CliError::failed(format!("cannot write {shown}: {e}"), "choose another -o")
                }
            })?;
            f.write_all(text.as_bytes())
                .map_err(|e| CliError::failed(format!("cannot write {shown}: {e}"), ""))?;
        }
    }
    say_err!(
        "agentctl: suggested {} rule(s) for {label} from {} call(s); what-if under it: {} of {} decisions change",
        proposal.rules.len(),
        calls.len(),
        check.changes.len(),
        check.judged
    );
    for n in &notes {
        say_err!("agentctl: note: {n}");
    }
    if let Some(path) = &args.output {
        say_err!(
            "agentctl: wrote {}; check it with `agentctl replay what-if --policy {} --agent {}`",
            path.display(),
            path.display(),
            run.id
        );
    }
    Ok(0)
}

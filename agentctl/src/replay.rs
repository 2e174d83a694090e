//! `agentctl replay run`: re-run a program against a recorded agent's calls.
//!
//! The recorded log is verified first (a log that fails is refused) and only read. The
//! re-run gets an ephemeral kernel in this process, on its own state dir (temporary, or
//! `--replay-state-dir`), in replay mode: its syscall server answers from the recording and
//! performs nothing (`agentos_kernel::replay::run`). Its own recorder logs each replayed call
//! (decision mode `replay`) in that state dir, never in the recorded one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentos_kernel::options::KernelOptions;
use agentos_kernel::replay::run::{working_usage, Outcome, Script, Session};
use agentos_kernel::{Kernel, Performer};
use agentos_syscalls::control::{AgentRef, ExitStatus};
use agentos_syscalls::Signal;
use serde_json::{json, Value};

use crate::cli::{AgentSpec, ReplayRunArgs};
use crate::commands::spawn_request;
use crate::safe::{escape, Safe};
use crate::CliError;

/// The report beside the outcome.
struct Report {
    outcome: Outcome,
    /// `(bytes, files)` in the re-run's working memory at its end.
    working: Option<(u64, u64)>,
    replay_state_dir: Option<PathBuf>,
    notes: Vec<String>,
    log_id: String,
}

pub fn run(state_dir: &Path, args: ReplayRunArgs) -> Result<u8, CliError> {
    let dir = crate::recorder::recorder_dir(state_dir)?;
    let records = crate::recorder::verified_records(&dir)?;
    let agent = crate::recorder::resolve_agent(&records, &args.agent, &dir)?;
    let script = Script::from_records(&records, agent).map_err(|e| {
        CliError::new(
            4,
            format!("{e} ({})", dir.display()),
            "find the recorded agents with `agentctl recorder show --json`",
        )
    })?;
    let log_id = agentos_recorder::verify::read_head(&dir)
        .ok()
        .flatten()
        .map(|h| h.log_id)
        .unwrap_or_default();
    let mut notes = Vec::new();
    let policy = match args.policy.clone() {
        Some(p) => p,
        None => {
            let p = PathBuf::from(&script.spawn.policy_path);
            if !p.is_file() {
                return Err(CliError::usage(
                    format!(
                        "the recorded agent's policy {} no longer exists",
                        p.display()
                    ),
                    "pass --policy FILE (only its sandbox: section matters; the replay judges nothing)",
                ));
            }
            p
        }
    };
    let spec = AgentSpec {
        name: None,
        policy: Some(policy),
        workspace: args.workspace.clone(),
        restore: None,
        env: args.env.clone(),
        command: args.command.clone(),
    };
    let req = spawn_request(&spec)?;
    if let Ok(p) = agentos_policy::Policy::parse(&req.policy.path, &req.policy.text) {
        if p.digest() != script.spawn.policy_digest {
            notes.push(format!(
                "the policy {} is not the one agent {} ran under (digest differs); nothing is judged, only its sandbox: section applies",
                req.policy.path, agent
            ));
        }
    }
    let program = req.program.display().to_string();
    if program != script.spawn.program || req.args != script.spawn.args {
        notes.push(format!(
            "agent {} was recorded running {} {:?}; re-running {program} {:?}",
            agent, script.spawn.program, script.spawn.args, req.args
        ));
    }
    // The replay kernel's own state dir: never the recorded one.
    let (replay_dir, _temp) = match &args.replay_state_dir {
        Some(d) => {
            let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            if canon(d) == canon(state_dir) {
                return Err(CliError::usage(
                    "--replay-state-dir is the recorded state dir; the replay must not write to the recorded log",
                    "give a new directory",
                ));
            }
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("agentos-replay-")
                .tempdir()
                .map_err(|e| {
                    CliError::failed(
                        format!("cannot create a temporary state dir: {e}"),
                        "set --replay-state-dir",
                    )
                })?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let session = Arc::new(Session::new(script));
    let options = KernelOptions {
        allow_degraded_sandbox: args.allow_degraded_sandbox,
        ..KernelOptions::default()
    };
    let config = options
        .config(&replay_dir)
        .map_err(|e| CliError::failed(e.to_string(), ""))?;
    if std::env::var_os("AGENTOS_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("AGENTOS_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    for n in &notes {
        say_err!("agentctl: note: {n}");
    }
    let runtime = crate::run::runtime()?;
    let (outcome, working) = runtime.block_on(async {
        let kernel = crate::run::start_kernel(
            config,
            Performer::Replay(Arc::clone(&session)),
            "cannot start the replay kernel",
            "check --replay-state-dir",
        )
        .await?;
        let info = match kernel.spawn(req).await {
            Ok(i) => i,
            Err(e) => {
                kernel.shutdown("agentctl replay run: spawn refused").await;
                return Err(e.into());
            }
        };
        let exit = follow(&kernel, info.id).await?;
        let outcome = session.finish(&exit);
        let working = working_usage(&kernel, info.id);
        kernel.shutdown("agentctl replay run finished").await;
        Ok::<_, CliError>((outcome, working))
    })?;
    let report = Report {
        outcome,
        working,
        replay_state_dir: args.replay_state_dir.clone(),
        notes,
        log_id,
    };
    if args.json {
        say_err!("{}", crate::safe::json_line(&report_json(&report)));
    } else {
        print_report(&report);
    }
    Ok(if report.outcome.divergence.is_some() {
        1
    } else {
        0
    })
}

/// Streams the agent's output to stdout until it ends; Ctrl-C stops it.
async fn follow(kernel: &Kernel, id: agentos_syscalls::AgentId) -> Result<ExitStatus, CliError> {
    let r = AgentRef::Id(id);
    let mut follower = kernel.follow_log(&r)?;
    let mut out = crate::safe::stdout_sink(false);
    if let Ok(backlog) = follower.backlog() {
        let _ = out.chunk(&backlog);
    }
    loop {
        tokio::select! {
            chunk = follower.next() => match chunk {
                Some(bytes) => {
                    let _ = out.chunk(&bytes);
                }
                None => {
                    let _ = out.finish();
                    break;
                }
            },
            _ = tokio::signal::ctrl_c() => {
                say_err!("agentctl: stopping the re-run (agent {id})");
                let _ = kernel.signal(&r, Signal::Kill, "operator (agentctl replay run)").await;
            }
        }
    }
    let last = tokio::time::timeout(Duration::from_secs(30), kernel.wait(&r))
        .await
        .map_err(|_| CliError::failed("the re-run did not end", "see the replay kernel's log"))??;
    Ok(last.exit.unwrap_or(ExitStatus::Code(-1)))
}

fn report_json(r: &Report) -> Value {
    let mut v = serde_json::to_value(&r.outcome).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert(
            "status".into(),
            json!(if r.outcome.divergence.is_some() {
                "diverged"
            } else {
                "identical"
            }),
        );
        m.insert("log_id".into(), json!(r.log_id));
        m.insert(
            "working_memory".into(),
            r.working.map_or(
                Value::Null,
                |(bytes, files)| json!({"bytes": bytes, "files": files}),
            ),
        );
        m.insert(
            "replay_state_dir".into(),
            json!(r.replay_state_dir.as_ref().map(|d| d.display().to_string())),
        );
        m.insert("notes".into(), json!(r.notes));
    }
    v
}

fn print_report(r: &Report) {
    let o = &r.outcome;
    let recorded_end = o
        .recorded_end
        .as_ref()
        .map_or("did not end in the log".to_string(), |e| {
            escape(&e.to_string())
        });
    let exit = escape(&o.exit.to_string());
    match &o.divergence {
        None => {
            say_err!(
                "── agentctl replay run: agent {}: {} calls replayed, 0 divergences",
                o.agent,
                o.replayed
            );
            say_err!("   re-run {exit} (recorded run {recorded_end})");
            if o.ended_at_recording_end {
                say_err!("   the recording ends here: the re-run was stopped at the same point");
            }
        }
        Some(d) => {
            say_err!(
                "── agentctl replay run: agent {}: DIVERGED after {} of {} recorded calls",
                o.agent,
                o.replayed,
                o.recorded_calls
            );
            say_err!("   {}", Safe(&d.what));
            let head = |c: &Option<agentos_kernel::replay::run::CallView>, side: &str| match c {
                Some(c) => match c.seq {
                    Some(seq) => format!("{side} (record {seq}, request {})", c.id),
                    None => format!("{side} (request {})", c.id),
                },
                None => format!("{side} (none)"),
            };
            if !d.fields.is_empty() {
                // Field values are the agent's: escaped before their width is measured.
                let fields: Vec<(bool, String, String, String)> = d
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            f.differs,
                            escape(&f.field),
                            escape(&f.expected),
                            escape(&f.actual),
                        )
                    })
                    .collect();
                let w0 = fields
                    .iter()
                    .map(|f| f.1.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(7);
                let left = head(&d.expected, "expected");
                let w1 = fields
                    .iter()
                    .map(|f| f.2.chars().count())
                    .chain([left.chars().count()])
                    .max()
                    .unwrap_or(0);
                say_err!("     {:w0$}  {left:w1$}  {}", "", head(&d.actual, "actual"));
                for (differs, field, expected, actual) in &fields {
                    say_err!(
                        "   {} {:w0$}  {:w1$}  {}",
                        if *differs { "≠" } else { " " },
                        field,
                        expected,
                        actual
                    );
                }
            } else {
                for (side, c) in [("expected", &d.expected), ("actual", &d.actual)] {
                    if let Some(c) = c {
                        say_err!(
                            "   {}: {}",
                            head(&Some(c.clone()), side),
                            crate::safe::json_line(&c.call)
                        );
                    }
                }
            }
            say_err!("   re-run {exit} (recorded run {recorded_end})");
        }
    }
    if let Some((bytes, files)) = r.working {
        say_err!(
            "   performed nothing: the re-run's working memory holds {files} file(s), {bytes} byte(s)"
        );
    }
    if let Some(d) = &r.replay_state_dir {
        say_err!(
            "   replay kernel's own log: {}",
            d.join("recorder").display()
        );
    }
}

//! `agentctl run`: an ephemeral kernel in this process, one agent, its output streamed, a
//! summary, and the agent's exit code.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentos_kernel::options::OptionsError;
use agentos_kernel::Kernel;
use agentos_syscalls::control::{AgentInfo, AgentRef};
use agentos_syscalls::Signal;

use crate::cli::RunArgs;
use crate::commands::spawn_request;
use crate::CliError;

pub fn run(state_dir: Option<PathBuf>, args: RunArgs) -> Result<u8, CliError> {
    let req = spawn_request(&args.spec)?;
    let state_dir = match state_dir {
        Some(d) => {
            crate::client::check_writable_state_dir(&d)?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("agentos-run-")
            .tempdir()
            .map_err(|e| {
                CliError::failed(
                    format!("cannot create a temporary state dir: {e}"),
                    "set --state-dir",
                )
            })?
            .keep(),
    };
    let restore = crate::commands::restore_of(&args.spec, &state_dir)?;
    let config = crate::commands::resolved(&args.kernel)?
        .config(&state_dir)
        .map_err(|e| match e {
            OptionsError::BasePolicy(_) => {
                CliError::failed(e.to_string(), "fix the file and run again")
            }
            OptionsError::Provider(_)
            | OptionsError::Mcp(_)
            | OptionsError::OnEvent(_)
            | OptionsError::OtlpEndpoint(_)
            | OptionsError::Witness(_) => {
                CliError::usage(e.to_string(), "see `agentctl run --help`")
            }
        })?;
    if std::env::var_os("AGENTOS_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("AGENTOS_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = runtime()?;
    runtime.block_on(async move {
        let started = Instant::now();
        let kernel = start_kernel(
            config,
            agentos_kernel::Performer::Live,
            "cannot start the kernel",
            "check --state-dir, or stop the kernel that owns it",
        )
        .await?;
        let spawned = match restore {
            Some((from, checkpoint)) => kernel.spawn_restored(req, from, checkpoint).await,
            None => kernel.spawn(req).await,
        };
        let info = match spawned {
            Ok(i) => i,
            Err(e) => {
                kernel.shutdown("agentctl run: spawn refused").await;
                return Err(e.into());
            }
        };
        let id = AgentRef::Id(info.id);
        let mut follower = kernel.follow_log(&id)?;
        let mut out = crate::safe::stdout_sink(args.raw);
        if let Ok(backlog) = follower.backlog() {
            let _ = out.chunk(&backlog);
        }
        let mut interrupts = 0;
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
                    interrupts += 1;
                    let sig = if interrupts == 1 { Signal::Term } else { Signal::Kill };
                    say_err!("agentctl: sending {sig} to agent {}", info.id);
                    if let Err(e) = kernel.signal(&id, sig, "operator (agentctl run)").await {
                        // A policy without SIGTERM in `signals:` still ends on the second Ctrl-C.
                        say_err!("agentctl: {}", e.message);
                    }
                }
            }
        }
        let last = kernel.wait(&id).await?;
        kernel.shutdown("agentctl run finished").await;
        summary(&last, &kernel, started.elapsed(), args.json);
        Ok(last
            .exit
            .as_ref()
            .map_or(1, |e| e.code().clamp(0, 255) as u8))
    })
}

/// The runtime an in-process kernel runs on (two workers, like the daemon's).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}"), ""))
}

/// Starts an in-process kernel; an error names every cause in its chain.
pub(crate) async fn start_kernel(
    config: agentos_kernel::Config,
    performer: agentos_kernel::Performer,
    what: &str,
    hint: &str,
) -> Result<Kernel, CliError> {
    // From here a closed stdout must not end the process (`crate::stdout`).
    crate::stdout::hosting_kernel();
    Kernel::start_with(config, performer).await.map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        CliError::failed(format!("{what}: {msg}"), hint)
    })
}

fn summary(a: &AgentInfo, kernel: &Kernel, took: Duration, json: bool) {
    let ended = a
        .exit
        .as_ref()
        .map(|e| crate::safe::escape(&e.to_string()))
        .unwrap_or_else(|| "ended".into());
    let recorder = kernel.recorder_dir().display().to_string();
    if json {
        let mut v = crate::output::agent_json(a);
        v["recorder"] = serde_json::Value::String(recorder);
        v["state_dir"] = serde_json::Value::String(kernel.config().state_dir.display().to_string());
        say_err!("{}", crate::safe::json_line(&v));
        return;
    }
    let c = &a.counters;
    say_err!(
        "── agentctl run: agent {} {ended} after {} ms",
        a.id,
        took.as_millis()
    );
    say_err!(
        "   syscalls: {} ({} allowed, {} denied) · signals: {}",
        c.syscalls,
        c.allowed,
        c.denied,
        c.signals
    );
    for line in crate::output::denial_lines(a, "   ") {
        say_err!("{line}");
    }
    say_err!("   recorder: {recorder}");
    say_err!("   output:   {}", a.log_path.display());
}

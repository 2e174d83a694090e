//! One function per command.

use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use agentos_kernel::options::KernelOptions;
use agentos_syscalls::control::{
    AgentRef, ControlRequest, ControlResponse, PolicySource, SpawnRequest,
};
use agentos_syscalls::Signal;

use crate::cli::{AgentSpec, Cli, Command, KernelCommand, KernelStartArgs};
use crate::client::{self, call, unexpected, Connection};
use crate::output;
use crate::CliError;

pub fn dispatch(cli: Cli) -> Result<u8, CliError> {
    let dir = client::state_dir(&cli.state_dir);
    if !matches!(cli.command, Command::Completions { .. } | Command::Man) {
        client::check_state_dir(&dir)?;
    }
    match cli.command {
        Command::Kernel(KernelCommand::Start(args)) => kernel_start(&dir, *args),
        Command::Kernel(KernelCommand::Stop { json }) => crate::stop::kernel_stop(&dir, json),
        Command::Kernel(KernelCommand::Status { json }) => {
            match call(&dir, &ControlRequest::Status)? {
                ControlResponse::Status(s) if json => {
                    output::print_json(&output::status_json(&s));
                    Ok(0)
                }
                ControlResponse::Status(s) => {
                    output::print_status(&s);
                    Ok(0)
                }
                other => Err(unexpected(&other)),
            }
        }
        Command::Run(args) => crate::run::run(cli.state_dir, *args),
        Command::Spawn(args) => {
            let req = spawn_request(&args.spec)?;
            let request = match restore_of(&args.spec, &dir)? {
                Some((from, checkpoint)) => ControlRequest::SpawnRestored {
                    spawn: req,
                    from,
                    checkpoint,
                },
                None => ControlRequest::Spawn(req),
            };
            match call(&dir, &request)? {
                ControlResponse::Spawned(info) if args.json => {
                    output::print_json(&output::agent_json(&info));
                    Ok(0)
                }
                ControlResponse::Spawned(info) => {
                    say!("{}", info.id);
                    Ok(0)
                }
                other => Err(unexpected(&other)),
            }
        }
        Command::Ps(args) => crate::ops::ps(&dir, &args),
        Command::Inspect { agent, json } => match call(
            &dir,
            &ControlRequest::Inspect {
                agent: AgentRef::parse(&agent),
            },
        )? {
            ControlResponse::Agent(info) if json => {
                output::print_json(&output::agent_json(&info));
                Ok(0)
            }
            ControlResponse::Agent(info) => {
                output::print_agent(&info);
                Ok(0)
            }
            other => Err(unexpected(&other)),
        },
        Command::Logs { agent, follow, raw } => logs(&dir, &agent, follow, raw),
        Command::Wait { agent, json } => match call(
            &dir,
            &ControlRequest::Wait {
                agent: AgentRef::parse(&agent),
            },
        )? {
            ControlResponse::Agent(info) => {
                if json {
                    output::print_json(&output::agent_json(&info));
                } else if let Some(e) = &info.exit {
                    say!("agent {} {}", info.id, crate::safe::Safe(&e.to_string()));
                }
                Ok(info.exit.map_or(1, |e| e.code().clamp(0, 255) as u8))
            }
            other => Err(unexpected(&other)),
        },
        Command::Signal { agent, signal } => {
            let sig: Signal =
                signal
                    .parse()
                    .map_err(|e: agentos_syscalls::signal::UnknownSignal| {
                        CliError::usage(e.to_string(), "e.g. `agentctl signal 3 SIGTERM`")
                    })?;
            send_signal(&dir, &agent, sig)
        }
        Command::Kill { agent } => send_signal(&dir, &agent, Signal::Kill),
        Command::Stop { agent } => send_signal(&dir, &agent, Signal::Stop),
        Command::Cont { agent } => send_signal(&dir, &agent, Signal::Cont),
        Command::Approvals {
            limit,
            after,
            agent,
            json,
            follow,
            interval_ms,
        } => crate::approvals::run(
            &dir,
            crate::approvals::Args {
                limit,
                after,
                agent,
                json,
                follow,
                interval_ms,
            },
        ),
        Command::Approve { id } => decide(&dir, ControlRequest::Approve { id }),
        Command::Deny { id } => decide(&dir, ControlRequest::Deny { id }),
        Command::Policy(cmd) => crate::policy::dispatch(&dir, cmd),
        Command::Recorder(cmd) => crate::recorder::run(&dir, cmd),
        Command::Replay(cmd) => crate::recorder::replay(&dir, cmd),
        Command::Rm { agents } => crate::ops::rm(&dir, &agents),
        Command::Prune { older_than } => crate::ops::prune(&dir, older_than.as_deref()),
        Command::Memory(cmd) => crate::ops::memory(&dir, &cmd),
        Command::Checkpoints { agent, json } => crate::ops::checkpoints(&dir, &agent, json),
        Command::Completions { shell } => crate::ops::completions(shell),
        Command::Man => crate::ops::man(),
    }
}

fn decide(dir: &Path, request: ControlRequest) -> Result<u8, CliError> {
    match call(dir, &request)? {
        ControlResponse::Decided { id, approved } => {
            say!(
                "approval {id} {}",
                if approved { "approved" } else { "denied" }
            );
            Ok(0)
        }
        other => Err(unexpected(&other)),
    }
}

pub(crate) fn reload(dir: &Path, agent: &str, file: &Path) -> Result<u8, CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::new(
            4,
            format!("cannot read policy {}: {e}", file.display()),
            "check the path",
        )
    })?;
    let shown = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let request = ControlRequest::ReloadPolicy {
        agent: AgentRef::parse(agent),
        policy: PolicySource {
            path: shown.display().to_string(),
            text,
        },
    };
    match call(dir, &request)? {
        ControlResponse::Reloaded {
            agent,
            old_digest,
            new_digest,
        } => {
            say!(
                "agent {agent} policy reloaded: {} -> {}",
                hex::encode(old_digest),
                hex::encode(new_digest)
            );
            Ok(0)
        }
        other => Err(unexpected(&other)),
    }
}

/// Checks a `--base-policy` file before a kernel is started with it; returns its absolute
/// path (the daemon runs from another directory).
pub fn base_policy_path(path: &Path) -> Result<PathBuf, CliError> {
    let abs = std::fs::canonicalize(path).map_err(|e| {
        CliError::new(
            4,
            format!("cannot read base policy {}: {e}", path.display()),
            "check the path",
        )
    })?;
    agentos_policy::Policy::load(&abs).map_err(|e| {
        CliError::failed(
            format!("the base policy does not load:\n{e}"),
            "fix the file and start the kernel again",
        )
    })?;
    Ok(abs)
}

fn send_signal(dir: &Path, agent: &str, signal: Signal) -> Result<u8, CliError> {
    match call(
        dir,
        &ControlRequest::Signal {
            agent: AgentRef::parse(agent),
            signal,
        },
    )? {
        ControlResponse::Signaled { agent, signal } => {
            say!("sent {signal} to agent {agent}");
            Ok(0)
        }
        other => Err(unexpected(&other)),
    }
}

/// `agentctl logs`: the agent's bytes, escaped on a terminal unless `raw`
/// ([`crate::safe::OutputSink`]). From the kernel when it knows the agent; otherwise (no
/// kernel, or an agent of an earlier kernel) from its log on disk.
fn logs(dir: &Path, agent: &str, follow: bool, raw: bool) -> Result<u8, CliError> {
    if !client::kernel_answers(dir) {
        return crate::ops::logs_from_disk(dir, agent, follow, raw);
    }
    let mut conn = Connection::send(
        dir,
        &ControlRequest::Logs {
            agent: AgentRef::parse(agent),
            follow,
        },
    )?;
    if follow {
        // A quiet agent writes nothing that would fail: notice the reader leaving by itself.
        crate::stdout::exit_when_reader_leaves();
    }
    let mut out = crate::safe::stdout_sink(raw);
    loop {
        match conn.next()? {
            Some(ControlResponse::LogChunk(bytes)) => {
                if out.chunk(&bytes).is_err() {
                    return Ok(0);
                }
            }
            Some(ControlResponse::LogEnd) | None => {
                let _ = out.finish();
                return Ok(0);
            }
            Some(ControlResponse::Error(e))
                if e.kind == agentos_syscalls::control::ControlErrorKind::NotFound =>
            {
                // Not this kernel's: an earlier kernel's agent is still on disk.
                return crate::ops::logs_from_disk(dir, agent, follow, raw)
                    .map_err(|_| CliError::from(e));
            }
            Some(ControlResponse::Error(e)) => return Err(e.into()),
            Some(other) => return Err(unexpected(&other)),
        }
    }
}

/// Finds `name` on `PATH` (or resolves a path containing `/`), as the kernel needs an
/// absolute path to an existing file.
pub fn resolve_program(name: &str) -> Result<PathBuf, CliError> {
    let not_found = || {
        CliError::new(
            4,
            format!("program `{name}` not found"),
            "give a path (./target/release/my-agent) or a program on PATH",
        )
    };
    if name.contains('/') {
        // A path is handed to the kernel as it is, whatever it names: the kernel's checks
        // say what is wrong with a directory or a file it cannot run.
        return std::fs::canonicalize(name).map_err(|_| not_found());
    }
    let candidates: Vec<PathBuf> = {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
            .unwrap_or_default()
    };
    for c in candidates {
        if c.is_file() {
            return std::fs::canonicalize(&c).map_err(|_| not_found());
        }
    }
    Err(not_found())
}

/// `--restore AGENT[:N]`: the agent (an id, or a name: its newest agent on record in
/// `state_dir`) and the checkpoint to start from.
pub fn restore_of(
    spec: &AgentSpec,
    state_dir: &Path,
) -> Result<Option<(agentos_syscalls::AgentId, Option<u64>)>, CliError> {
    let Some(text) = spec.restore.as_deref() else {
        return Ok(None);
    };
    let bad = || {
        CliError::usage(
            format!("--restore `{text}` is not AGENT or AGENT:N"),
            "e.g. `--restore 3` (agent 3's latest checkpoint), `--restore builder:2` (checkpoint 2 of the newest agent named builder)",
        )
    };
    let (agent, n) = match text.rsplit_once(':') {
        Some((agent, n)) => (agent, Some(n.parse::<u64>().map_err(|_| bad())?)),
        None => (text, None),
    };
    if agent.is_empty() {
        return Err(bad());
    }
    let id = match agentos_syscalls::control::AgentRef::parse(agent) {
        agentos_syscalls::control::AgentRef::Id(id) => id,
        r @ agentos_syscalls::control::AgentRef::Name(_) => {
            agentos_kernel::history::find(&state_dir.join("agents"), &r)
                .map(|rec| agentos_syscalls::AgentId(rec.id))
                .ok_or_else(|| {
                    CliError::new(
                        4,
                        format!(
                            "--restore: no agent named `{agent}` on record in {}",
                            state_dir.display()
                        ),
                        "list them with `agentctl ps -a`, or give the agent's id",
                    )
                })?
        }
    };
    Ok(Some((id, n)))
}

/// Builds a spawn request: reads the policy, resolves the program and the workspace.
pub fn spawn_request(spec: &AgentSpec) -> Result<SpawnRequest, CliError> {
    let policy_path = spec
        .policy
        .clone()
        .unwrap_or_else(|| PathBuf::from(".agents/security.md"));
    let text = std::fs::read_to_string(&policy_path).map_err(|e| {
        if spec.policy.is_none() {
            CliError::usage(
                format!(
                    "no policy given and {} cannot be read ({e})",
                    policy_path.display()
                ),
                "pass --policy FILE (every agent runs under a .agents/security.md policy)",
            )
        } else {
            CliError::new(
                4,
                format!("cannot read policy {}: {e}", policy_path.display()),
                "check the path",
            )
        }
    })?;
    let shown_path = std::fs::canonicalize(&policy_path).unwrap_or(policy_path);
    let (program, args) = spec.command.split_first().ok_or_else(|| {
        CliError::usage(
            "no program given",
            "put the program after `--`, e.g. `-- ./my-agent --flag`",
        )
    })?;
    let program = jail_runtime_program(program, resolve_program(program)?);
    let (args, extra_read_only) = script_args(&program, args);
    let workspace = match &spec.workspace {
        Some(w) => Some(std::fs::canonicalize(w).map_err(|e| {
            CliError::new(
                4,
                format!("workspace {} is not usable: {e}", w.display()),
                "give an existing directory",
            )
        })?),
        None => None,
    };
    let env = spec
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    CliError::usage(
                        format!("--env `{kv}` is not NAME=VALUE"),
                        "e.g. --env MODE=fast",
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SpawnRequest {
        name: spec.name.clone(),
        policy: PolicySource {
            path: shown_path.display().to_string(),
            text,
        },
        workspace,
        program,
        args,
        env,
        extra_read_only,
    })
}

/// The read-only runtime every jail shows its agent (the kernel's default `Runtime`).
const JAIL_RUNTIME: [&str; 4] = ["/usr", "/lib", "/lib64", "/bin"];

/// A program found outside the jail's runtime (a pyenv shim under `/root`, say) cannot run
/// inside the jail; when `/usr/bin/<name>` exists, that one is used instead, with a note.
pub fn jail_runtime_program(given: &str, resolved: PathBuf) -> PathBuf {
    if given.contains('/') || JAIL_RUNTIME.iter().any(|r| resolved.starts_with(r)) {
        return resolved;
    }
    let system = Path::new("/usr/bin").join(given);
    if !system.is_file() {
        return resolved;
    }
    let system = std::fs::canonicalize(&system).unwrap_or(system);
    say_err!(
        "agentctl: note: `{given}` on PATH is {}, outside the jail's runtime; using {}",
        resolved.display(),
        system.display()
    );
    system
}

/// Whether `program` is a script interpreter whose first argument names the script to run.
fn is_interpreter(program: &Path) -> bool {
    program
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("python3") || n == "python" || n == "node" || n == "nodejs")
}

/// For `python3 path/agent.py …` (or `node path/agent.mjs …`): the arguments with the script made absolute (the agent
/// does not start in the caller's directory), and the script's directory, which the jail must
/// let the agent read. Any other program's arguments are unchanged and need no extra path.
pub fn script_args(program: &Path, args: &[String]) -> (Vec<String>, Vec<PathBuf>) {
    let mut out = args.to_vec();
    let script = args
        .first()
        .filter(|s| is_interpreter(program) && Path::new(s).is_file())
        .and_then(|s| std::fs::canonicalize(s).ok());
    let (Some(script), Some(first)) = (script, out.first_mut()) else {
        return (out, Vec::new());
    };
    let Some(dir) = script.parent().map(Path::to_path_buf) else {
        return (out, Vec::new());
    };
    *first = script.display().to_string();
    (out, vec![dir])
}

/// The `--provider` flags, checked here so that a bad one is reported before a kernel starts;
/// relative paths are made absolute.
pub fn providers(k: &KernelOptions) -> Result<Vec<String>, CliError> {
    k.providers
        .iter()
        .map(|text| {
            let absolute = absolute_provider(text);
            agentos_kernel::providers::Provider::parse(&absolute)
                .map(|_| absolute)
                .map_err(|e| {
                    CliError::usage(
                        format!("--provider: {e}"),
                        "see `agentctl kernel start --help`",
                    )
                })
        })
        .collect()
}

/// The `--mcp` flags, checked here like `--provider` (relative paths made absolute).
pub fn mcp_servers(k: &KernelOptions) -> Result<Vec<String>, CliError> {
    k.mcp
        .iter()
        .map(|text| {
            let absolute = absolute_provider(text);
            agentos_kernel::mcp::McpServer::parse(&absolute)
                .map(|_| absolute)
                .map_err(|e| {
                    CliError::usage(format!("--mcp: {e}"), "see `agentctl kernel start --help`")
                })
        })
        .collect()
}

/// `ACTION=PROGRAM,…` (or an `--mcp` `NAME=PROGRAM,…`) with PROGRAM and `ro=`/`rw=` paths made absolute against the cwd.
fn absolute_provider(text: &str) -> String {
    let Some((action, rest)) = text.split_once('=') else {
        return text.to_string();
    };
    let abs = |p: &str| -> String {
        if p.starts_with('/') || p.is_empty() {
            return p.to_string();
        }
        std::env::current_dir()
            .map(|d| d.join(p).display().to_string())
            .unwrap_or_else(|_| p.to_string())
    };
    let mut parts = rest.split(',');
    let mut out = vec![abs(parts.next().unwrap_or_default())];
    for opt in parts {
        out.push(match opt.split_once('=') {
            Some((k @ ("ro" | "rw"), p)) => format!("{k}={}", abs(p)),
            _ => opt.to_string(),
        });
    }
    format!("{action}={}", out.join(","))
}

/// The kernel options as a kernel gets them: the base policy and the providers checked (a
/// bad one is reported before a kernel starts) and their paths made absolute (the daemon
/// runs from another directory).
pub fn resolved(k: &KernelOptions) -> Result<KernelOptions, CliError> {
    let mut k = k.clone();
    if let Some(base) = &k.base_policy {
        k.base_policy = Some(base_policy_path(base)?);
    }
    k.providers = providers(&k)?;
    k.mcp = mcp_servers(&k)?;
    if let Some(program) = &k.on_event {
        k.on_event = Some(std::fs::canonicalize(program).map_err(|e| {
            CliError::usage(
                format!("--on-event {}: {e}", program.display()),
                "give the path of the program to run for each event",
            )
        })?);
    }
    Ok(k)
}

fn kernel_start(dir: &Path, args: KernelStartArgs) -> Result<u8, CliError> {
    use std::os::unix::fs::DirBuilderExt;
    use std::os::unix::process::CommandExt;
    client::check_writable_state_dir(dir)?;
    let binary = agentos_kernel::config::sibling_binary("agentos-kernel");
    if !binary.is_file() {
        return Err(CliError::failed(
            format!("kernel binary {} not found", binary.display()),
            "build it with `cargo build --release` (it ships beside agentctl)",
        ));
    }
    let mut cmd = std::process::Command::new(&binary);
    cmd.arg("--state-dir")
        .arg(dir)
        .args(resolved(&args.kernel)?.to_args());
    if args.foreground {
        let e = cmd.exec();
        return Err(CliError::failed(
            format!("cannot run {}: {e}", binary.display()),
            "",
        ));
    }
    if Connection::send(dir, &ControlRequest::Status).is_ok() {
        return Err(CliError::failed(
            format!("a kernel is already running on {}", dir.display()),
            "see it with `agentctl kernel status`, stop it with `agentctl kernel stop`",
        ));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            CliError::failed(
                format!("cannot create state dir {}: {e}", dir.display()),
                "choose another --state-dir",
            )
        })?;
    let log_path = dir.join("kernel.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| {
            CliError::failed(
                format!("cannot open {}: {e}", log_path.display()),
                "check the state dir",
            )
        })?;
    let log2 = log
        .try_clone()
        .map_err(|e| CliError::failed(format!("{e}"), ""))?;
    // The readiness pipe: the kernel writes one line on the write end once it answers.
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| CliError::failed(format!("cannot create a pipe: {e}"), ""))?;
    rustix::io::fcntl_setfd(&write_end, rustix::io::FdFlags::empty())
        .map_err(|e| CliError::failed(format!("cannot prepare the pipe: {e}"), ""))?;
    cmd.arg("--ready-fd")
        .arg(write_end.as_raw_fd().to_string())
        .arg("--detach")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::failed(format!("cannot start {}: {e}", binary.display()), ""))?;
    drop(write_end);
    let started = Instant::now();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(std::fs::File::from(read_end));
    let _ = reader.read_line(&mut line);
    if let Some(pid) = line.strip_prefix("ready ") {
        say!(
            "kernel started (pid {}) on {} in {} ms",
            pid.trim(),
            dir.display(),
            started.elapsed().as_millis()
        );
        return Ok(0);
    }
    let _ = child.wait();
    let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
    let last: Vec<&str> = tail.lines().rev().take(5).collect();
    Err(CliError::failed(
        format!(
            "the kernel did not start:\n{}",
            last.into_iter()
                .rev()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        format!("full log: {}", log_path.display()),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn python_script_is_made_absolute_and_its_dir_granted() {
        let dir = tempfile_dir();
        let script = dir.join("agent.py");
        std::fs::write(&script, "print(1)\n").unwrap();
        let args = vec![script.display().to_string(), "--flag".to_string()];
        let (out, extra) = script_args(Path::new("/usr/bin/python3.11"), &args);
        let real = std::fs::canonicalize(&script).unwrap();
        assert_eq!(out, vec![real.display().to_string(), "--flag".to_string()]);
        assert_eq!(extra, vec![real.parent().unwrap().to_path_buf()]);
        // Not an interpreter, or not a file: unchanged, nothing granted.
        let (out, extra) = script_args(Path::new("/usr/bin/env"), &args);
        assert_eq!((out, extra), (args.clone(), Vec::new()));
        let (out, extra) = script_args(Path::new("/usr/bin/node"), &args);
        assert_eq!(out[0], real.display().to_string());
        assert_eq!(extra, vec![real.parent().unwrap().to_path_buf()]);
        let missing = vec!["/no/such/agent.py".to_string()];
        let (out, extra) = script_args(Path::new("/usr/bin/python3"), &missing);
        assert_eq!((out, extra), (missing, Vec::new()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn programs_inside_the_runtime_or_given_by_path_are_kept() {
        let p = PathBuf::from("/usr/bin/python3.11");
        assert_eq!(jail_runtime_program("python3", p.clone()), p);
        let shim = PathBuf::from("/opt/shims/python3");
        assert_eq!(jail_runtime_program("./python3", shim.clone()), shim);
        assert_eq!(
            jail_runtime_program("no-such-program-xyz", shim.clone()),
            shim
        );
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("agentctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

//! MCP tool servers: programs speaking the Model Context Protocol over stdio, declared by
//! the operator and offered to agents as governed tools.
//!
//! `agentos-kernel`, `agentctl kernel start` and `agentctl run` take
//! `--mcp NAME=PROGRAM[,arg=VALUE][,network][,ro=PATH]` (repeatable, one per name; `NAME` is
//! lowercase letters, digits, `_` and `-`):
//!
//! - `PROGRAM`: an absolute path to an executable (a script's interpreter must lie in the
//!   tools' runtime, as for `--provider`);
//! - `arg=VALUE`: an argument (repeatable, in order);
//! - `network`: the server shares the host's network (every other tool has none);
//! - `ro=PATH`: a host file or directory the server may read (at the same path).
//!
//! ```text
//! agent ─ ListTools ──────────────► kernel: every declared server's tools, filtered by the
//!                                   agent's policy (action `mcp_tool`, resource `SERVER/TOOL`)
//! agent ─ Call{"SERVER/TOOL", args} ► judge (mcp_tool, `SERVER/TOOL ARGS`) ► the agent's copy
//!                                   of SERVER (started on first use) ─ tools/call ─► result
//! ```
//!
//! **One server per agent.** Each agent that uses `NAME` gets its own copy of the server,
//! started on first use and killed when the agent ends, in a tool jail built by the same
//! launcher and spec builder as `Exec`/`Call` tools ([`crate::tools`]): its own scratch
//! directory, the agent's rlimits and cgroup (so the server's memory and processes count
//! against the agent), no network unless declared, no workspace, no socket to the kernel. A
//! server never carries one agent's state to another, and an agent that wedges or floods its
//! copy hurts only itself.
//!
//! **Bounds.** A message from the server longer than [`MESSAGE_MAX`] is dropped by the
//! transport (the call then times out); a result is answered only up to [`RESULT_MAX`] bytes
//! of JSON (`TooLarge` beyond); each call and each start waits at most `--mcp-timeout-ms`
//! ([`DEFAULT_TIMEOUT_MS`]) — a call that times out also kills the server (restarted on the
//! next call), so hung requests never pile up; the agent's tool slots ([`crate::tools::slot`],
//! four) bound its calls in flight to all servers; stderr goes to
//! `agents/<id>/mcp-<name>.log`, kept up to [`LOG_MAX`] bytes. A server that exits is
//! recorded (`McpServerExited`), the calls in flight are answered `Interrupted`, and the next
//! call restarts it after an exponential backoff ([`backoff`]) that grows while no copy of it
//! answers a call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentos_syscalls::limits::{TOOLS_MAX, TOOL_DESCRIPTION_MAX, TOOL_NAME_MAX, TOOL_SCHEMA_MAX};
use agentos_syscalls::{Errno, Reply, ToolInfo};
use rmcp::model::CallToolRequestParams;
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::ServiceExt;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::agent::Agent;
use crate::recorder::RecordEvent;
use crate::state::KernelInner;
use crate::tools::{self, ToolRun};

/// The default of `--mcp-timeout-ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The longest message (one JSON-RPC line) taken from a server.
pub const MESSAGE_MAX: usize = 2 << 20;
/// The most bytes of JSON a tool call answers with.
pub const RESULT_MAX: usize = tools::OUTPUT_CAP;
/// The most of a server's stderr kept in its log.
pub const LOG_MAX: u64 = 1 << 20;
/// The longest wait before a restart.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The wait before restarting a server that failed `failures` times in a row: 100 ms, doubled
/// each time, at most [`BACKOFF_MAX`].
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let ms = 100u64.saturating_mul(1u64 << failures.saturating_sub(1).min(20));
    Duration::from_millis(ms).min(BACKOFF_MAX)
}

/// One declared MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    /// Its name: tools are called as `NAME/TOOL`.
    pub name: String,
    /// Its program (absolute, canonical).
    pub program: PathBuf,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Shares the host's network.
    pub network: bool,
    /// Host paths it may read.
    pub read_only: Vec<PathBuf>,
}

/// Whether `name` is a valid server name: 1–32 of `[a-z0-9_-]`.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// Whether `name` is a tool name the kernel lists and calls: 1–[`TOOL_NAME_MAX`] of
/// `[A-Za-z0-9_.-]` (no `/`, no space: `SERVER/TOOL` is then one word the policy can match).
pub fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOOL_NAME_MAX
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl McpServer {
    /// Parses `NAME=PROGRAM[,arg=VALUE][,network][,ro=PATH]`, checking that the program and
    /// paths exist (they are made canonical).
    pub fn parse(text: &str) -> Result<McpServer, String> {
        let usage = "give NAME=PROGRAM[,arg=VALUE][,network][,ro=PATH]";
        let (name, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("MCP server `{text}` has no `=`; {usage}"))?;
        if !valid_server_name(name) {
            return Err(format!(
                "MCP server name `{name}` must be 1 to 32 lowercase letters, digits, `_` and `-` (like `files`)"
            ));
        }
        let mut parts = rest.split(',');
        let program = existing(parts.next().unwrap_or_default(), "program")?;
        if !program.is_file() {
            return Err(format!(
                "MCP server program {} is not a file",
                program.display()
            ));
        }
        let mut s = McpServer {
            name: name.to_string(),
            program,
            args: Vec::new(),
            network: false,
            read_only: Vec::new(),
        };
        for opt in parts {
            match opt.split_once('=') {
                None if opt == "network" => s.network = true,
                Some(("ro", path)) => s.read_only.push(existing(path, "ro path")?),
                Some(("arg", value)) => s.args.push(value.to_string()),
                _ => return Err(format!("MCP server option `{opt}` is unknown; {usage}")),
            }
        }
        Ok(s)
    }
}

fn existing(path: &str, what: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "MCP server {what} `{path}` is not an absolute path"
        ));
    }
    std::fs::canonicalize(path).map_err(|e| format!("MCP server {what} {path}: {e}"))
}

/// Checks a kernel's MCP servers: each apart from the state dir, one per name.
pub fn check_all(servers: &[McpServer], state_dir: &std::path::Path) -> Result<(), String> {
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    for (i, s) in servers.iter().enumerate() {
        for p in std::iter::once(&s.program).chain(&s.read_only) {
            if p.starts_with(&state) || state.starts_with(p) {
                return Err(format!(
                    "MCP server {} path {} overlaps the kernel's state dir {}",
                    s.name,
                    p.display(),
                    state.display()
                ));
            }
        }
        if servers[..i].iter().any(|q| q.name == s.name) {
            return Err(format!("MCP server {} is declared twice", s.name));
        }
    }
    Ok(())
}

/// A `Call` action that names an MCP tool: `SERVER/TOOL` (provider actions have no `/`).
pub(crate) fn split_action(action: &str) -> Option<(&str, &str)> {
    action.split_once('/')
}

/// The arguments of a tool call: a JSON object, in canonical form (compact, keys sorted,
/// escapes resolved), so that `deny_patterns` see what the server will get and cannot be
/// dodged with `\u` escapes or spacing.
pub(crate) fn canonical_args(params_json: &str) -> Result<String, Errno> {
    match serde_json::from_str::<serde_json::Value>(params_json) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v.to_string()),
        Ok(_) => Err(Errno::InvalidArgument {
            reason: "an MCP tool's arguments (params_json) must be a JSON object".into(),
        }),
        Err(e) => Err(Errno::InvalidArgument {
            reason: format!("params_json is not valid JSON: {e}"),
        }),
    }
}

/// The policy resource of an MCP tool call: `SERVER/TOOL ARGS` (the canonical arguments after
/// one space) — like a command line: `tools` globs match the first word, `deny_patterns` the
/// whole. Errors: a bad server or tool name, arguments that are not a JSON object.
pub(crate) fn resource(action: &str, params_json: &str) -> Result<String, Errno> {
    let Some((server, tool)) = split_action(action) else {
        return Err(Errno::InvalidArgument {
            reason: format!("`{action}` is not SERVER/TOOL"),
        });
    };
    if !valid_server_name(server) || !valid_tool_name(tool) {
        return Err(Errno::InvalidArgument {
            reason: format!(
                "`{action}` is not SERVER/TOOL (a server name of [a-z0-9_-], a tool name of up to {TOOL_NAME_MAX} of [A-Za-z0-9_.-])"
            ),
        });
    }
    Ok(format!("{action} {}", canonical_args(params_json)?))
}

/// An agent's MCP servers, by name (each started on first use).
#[derive(Default)]
pub(crate) struct Sessions {
    map: std::sync::Mutex<HashMap<String, Arc<Session>>>,
    /// The agent's process is gone: its servers are being ended with its cgroup, and none
    /// starts again.
    ending: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

impl Sessions {
    /// The agent ended (called by its reaper before its cgroup is removed): the servers that
    /// die from now on died with it, and are not recorded as crashes.
    pub(crate) fn end(&self) {
        self.ending.store(true, Ordering::SeqCst);
    }

    fn is_ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }

    fn get(&self, name: &str) -> Arc<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(name.to_string()).or_default())
    }
}

/// One agent's copy of one server: running, or waiting to be (re)started.
#[derive(Default)]
struct Session {
    state: tokio::sync::Mutex<State>,
    /// A call to the running copy succeeded: its end does not continue a run of failures.
    proven: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    live: Option<Live>,
    /// Exits and failed starts since the last copy that answered a call.
    failures: u32,
    /// Not before this may it be started again.
    not_before: Option<Instant>,
}

/// A running server.
struct Live {
    peer: Peer<RoleClient>,
    /// `true` once the server is gone.
    gone: watch::Receiver<bool>,
    /// Kills the server (its supervisor does the rest).
    kill: tokio::sync::mpsc::Sender<Kill>,
    /// Its tools, listed once at start.
    tools: Vec<ToolInfo>,
}

impl Live {
    fn is_gone(&self) -> bool {
        *self.gone.borrow()
    }
}

/// Why the kernel ends a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// A call to it timed out.
    TimedOut,
    /// Its MCP session ended (it closed its stdout, or broke the protocol).
    Closed,
}

/// Handles to a running server for one call.
type Handles = (
    Peer<RoleClient>,
    watch::Receiver<bool>,
    Vec<ToolInfo>,
    tokio::sync::mpsc::Sender<Kill>,
);

fn internal(reason: impl Into<String>) -> Errno {
    Errno::Internal {
        reason: reason.into(),
    }
}

fn declared<'k>(k: &'k KernelInner, name: &str) -> Result<&'k McpServer, Errno> {
    k.config
        .mcp
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Errno::Unsupported {
            what: format!(
                "no MCP server `{name}`; start the kernel with --mcp {name}=PROGRAM (declared: {})",
                declared_names(k)
            ),
        })
}

fn declared_names(k: &KernelInner) -> String {
    if k.config.mcp.is_empty() {
        return "none".into();
    }
    k.config
        .mcp
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The running server `decl` for `agent`, started (after its backoff) if it is not.
async fn ensure(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    decl: &McpServer,
) -> Result<Handles, Errno> {
    let session = agent.mcp.get(&decl.name);
    let timeout = k.config.mcp_timeout;
    let deadline = Instant::now() + timeout;
    let mut st = tokio::time::timeout(timeout, session.state.lock())
        .await
        .map_err(|_| Errno::TimedOut {
            after_ms: timeout.as_millis() as u64,
        })?;
    if let Some(live) = st.live.as_ref().filter(|l| !l.is_gone()) {
        return Ok((
            live.peer.clone(),
            live.gone.clone(),
            live.tools.clone(),
            live.kill.clone(),
        ));
    }
    if st.live.take().is_some() {
        // It exited since the last call: its supervisor recorded it. A copy that answered
        // calls ends a run of failures; one that never did extends it (a server that starts
        // and dies on every call backs off further each time).
        if session.proven.swap(false, Ordering::SeqCst) {
            st.failures = 0;
        }
        st.failures = st.failures.saturating_add(1);
        st.not_before = Some(Instant::now() + backoff(st.failures));
    }
    if agent.is_exited() || agent.mcp.is_ending() {
        return Err(Errno::Interrupted {
            reason: format!("agent {} is ending; its MCP servers are stopped", agent.id),
        });
    }
    if let Some(at) = st.not_before {
        if at > deadline {
            return Err(Errno::Busy {
                what: format!(
                    "MCP server {} is restarting after {} failures; retry in {} ms",
                    decl.name,
                    st.failures,
                    at.saturating_duration_since(Instant::now()).as_millis()
                ),
            });
        }
        tokio::time::sleep_until(at.into()).await;
    }
    match tokio::time::timeout_at(deadline.into(), start(k, agent, decl, st.failures)).await {
        Ok(Ok(live)) => {
            st.not_before = None;
            let out = (
                live.peer.clone(),
                live.gone.clone(),
                live.tools.clone(),
                live.kill.clone(),
            );
            st.live = Some(live);
            Ok(out)
        }
        Ok(Err(e)) => {
            st.failures = st.failures.saturating_add(1);
            st.not_before = Some(Instant::now() + backoff(st.failures));
            Err(e)
        }
        Err(_) => {
            st.failures = st.failures.saturating_add(1);
            st.not_before = Some(Instant::now() + backoff(st.failures));
            Err(Errno::TimedOut {
                after_ms: timeout.as_millis() as u64,
            })
        }
    }
}

/// Starts one server for `agent` in a tool jail and initializes the MCP session. Dropping the
/// future before it returns kills the server (its supervisor holds the kill switch's
/// receiver and sees the sender dropped).
async fn start(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    decl: &McpServer,
    restarts: u32,
) -> Result<Live, Errno> {
    let n = tools::NEXT_TOOL.fetch_add(1, Ordering::Relaxed);
    let dir = k.config.agents_dir().join(agent.id.to_string());
    let scratch_path = dir.join(format!("mcp-{}-{n}", decl.name));
    crate::util::private_dir(&scratch_path)
        .map_err(|e| internal(format!("cannot create the MCP server's scratch dir: {e}")))?;
    let scratch = tools::Scratch(scratch_path.clone());
    let argv0 = decl
        .program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| decl.name.clone());
    let run = ToolRun {
        program: decl.program.clone(),
        argv: std::iter::once(argv0)
            .chain(decl.args.iter().cloned())
            .collect(),
        stdin: Vec::new(),
        cwd: None,
        timeout: k.config.mcp_timeout,
        network: decl.network,
        workspace: None,
        view: Vec::new(),
        read_only: decl.read_only.clone(),
        read_write: Vec::new(),
    };
    let what = format!("MCP server {}", decl.name);
    let tools::Launched {
        mut child, stdin, ..
    } = tools::launch(k, agent, &run, &scratch_path, &what).await?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (stdin, child.take_stdout(), child.take_stderr())
    else {
        child.kill_tree();
        let _ = child.wait().await;
        return Err(internal("the MCP server's pipes are missing"));
    };
    let log_path = dir.join(format!("mcp-{}.log", decl.name));
    let tail = Arc::new(std::sync::Mutex::new(String::new()));
    tokio::spawn(log_stderr(stderr, log_path, Arc::clone(&tail)));

    let (gone_tx, gone_rx) = watch::channel(false);
    let (kill_tx, kill_rx) = tokio::sync::mpsc::channel::<Kill>(1);
    tokio::spawn(supervise(
        Arc::clone(k),
        Arc::clone(agent),
        decl.name.clone(),
        child,
        scratch,
        kill_rx,
        gone_tx,
        Arc::clone(&tail),
        restarts,
    ));
    let transport = AsyncRwTransport::new_client(stdout, stdin).with_max_line_length(MESSAGE_MAX);
    let why = |what: &str, e: String| {
        let tail = tail.lock().map(|t| t.clone()).unwrap_or_default();
        internal(format!(
            "MCP server {} {what}: {e}{}",
            decl.name,
            if tail.is_empty() {
                String::new()
            } else {
                format!(" (its stderr: {})", tail.trim())
            }
        ))
    };
    let mut gone = gone_rx.clone();
    let service: RunningService<RoleClient, ()> = tokio::select! {
        r = ().serve(transport) => r.map_err(|e| why("did not start", e.to_string()))?,
        _ = gone.wait_for(|g| *g) => return Err(why("exited while starting", "no MCP handshake".into())),
    };
    let peer = service.peer().clone();
    let listed = tokio::select! {
        r = list_bounded(&peer) => r.map_err(|e| why("did not list its tools", e.to_string()))?,
        _ = gone.wait_for(|g| *g) => return Err(why("exited while listing its tools", "".into())),
    };
    // The service runs until the server is gone; when its session ends first (stdout
    // closed, the protocol broken), the server is ended too.
    let keep = kill_tx.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = service.waiting() => {
                let _ = keep.try_send(Kill::Closed);
            }
            _ = keep.closed() => {}
        }
    });
    Ok(Live {
        peer,
        gone: gone_rx,
        kill: kill_tx,
        tools: bounded_tools(&decl.name, listed),
    })
}

/// The most pages of `tools/list` read from one server.
pub const PAGES_MAX: usize = 64;

/// A server's tools, page by page, stopping at [`TOOLS_MAX`] tools or [`PAGES_MAX`] pages (a
/// server that pages forever cannot make the kernel hold more).
async fn list_bounded(
    peer: &Peer<RoleClient>,
) -> Result<Vec<rmcp::model::Tool>, rmcp::ServiceError> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..PAGES_MAX {
        let params = cursor
            .take()
            .map(|c| rmcp::model::PaginatedRequestParams::default().with_cursor(Some(c)));
        let page = peer.list_tools(params).await?;
        out.extend(page.tools);
        if out.len() >= TOOLS_MAX {
            out.truncate(TOOLS_MAX);
            break;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(out)
}

/// The tools of one server as `ListTools` shows them: valid names only, descriptions cut,
/// schemas over the bound replaced by `{}`, at most [`TOOLS_MAX`].
fn bounded_tools(server: &str, listed: Vec<rmcp::model::Tool>) -> Vec<ToolInfo> {
    listed
        .into_iter()
        .filter(|t| valid_tool_name(&t.name))
        .take(TOOLS_MAX)
        .map(|t| {
            let mut description = t.description.map(|d| d.into_owned()).unwrap_or_default();
            cut(&mut description, TOOL_DESCRIPTION_MAX);
            let schema = serde_json::Value::Object((*t.input_schema).clone()).to_string();
            ToolInfo {
                server: server.to_string(),
                name: t.name.into_owned(),
                description,
                input_schema_json: if schema.len() > TOOL_SCHEMA_MAX {
                    "{}".into()
                } else {
                    schema
                },
            }
        })
        .collect()
}

/// Cuts `s` to at most `max` bytes, at a char boundary.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Copies a server's stderr to its log, up to [`LOG_MAX`] bytes (the rest is read and
/// dropped), keeping the last lines for error messages.
async fn log_stderr(
    mut pipe: crate::spawner::Output,
    path: PathBuf,
    tail: Arc<std::sync::Mutex<String>>,
) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok();
    let mut written = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Ok(mut t) = tail.lock() {
            t.push_str(&String::from_utf8_lossy(&buf[..n]));
            if t.len() > 1024 {
                let mut from = t.len() - 512;
                while !t.is_char_boundary(from) {
                    from += 1;
                }
                *t = t[from..].to_string();
            }
        }
        if let Some(f) = file.as_mut() {
            let room = LOG_MAX.saturating_sub(written) as usize;
            let take = n.min(room);
            if take > 0 && f.write_all(&buf[..take]).is_ok() {
                written += take as u64;
            }
        }
    }
}

/// Waits for a server to end — by itself, by a kill (timeout, the session dropped), or with
/// its agent — then kills its tree, reaps it, removes its scratch and records the exit.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    k_: Arc<KernelInner>,
    agent: Arc<Agent>,
    server: String,
    mut child: crate::spawner::AgentProcess,
    scratch: tools::Scratch,
    mut kill: tokio::sync::mpsc::Receiver<Kill>,
    gone: watch::Sender<bool>,
    tail: Arc<std::sync::Mutex<String>>,
    restarts: u32,
) {
    let why = tokio::select! {
        s = child.wait() => match s {
            Ok(s) => format!("it exited ({s})"),
            Err(e) => format!("cannot wait for it: {e}"),
        },
        k = kill.recv() => {
            // A server whose session closed is usually exiting by itself: its status says
            // more than our kill would.
            if k == Some(Kill::Closed) {
                if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
                    child.kill_tree();
                    let _ = gone.send(true);
                    return finish(k_, agent, server, scratch, tail, restarts, format!("it exited ({s})"));
                }
            }
            child.kill_tree();
            let _ = child.wait().await;
            match k {
                Some(Kill::TimedOut) => "killed by the kernel: a call to it timed out".to_string(),
                Some(Kill::Closed) => "killed by the kernel: its MCP session ended".to_string(),
                None => "stopped by the kernel".to_string(),
            }
        }
        _ = agent.wait_exit() => {
            child.kill_tree();
            let _ = child.wait().await;
            let _ = gone.send(true);
            drop(scratch);
            return;
        }
    };
    // Whatever ended it, no process of its tree is left.
    child.kill_tree();
    let _ = gone.send(true);
    finish(k_, agent, server, scratch, tail, restarts, why);
}

/// Records a server's end (its tree is gone).
fn finish(
    k: Arc<KernelInner>,
    agent: Arc<Agent>,
    server: String,
    scratch: tools::Scratch,
    tail: Arc<std::sync::Mutex<String>>,
    restarts: u32,
    why: String,
) {
    drop(scratch);
    // The agent's end kills its cgroup, the server with it, maybe before the agent is marked
    // exited: a server that died with its agent did not crash.
    if agent.mcp.is_ending() || agent.is_exited() || agent.life().kill_reason().is_some() {
        return;
    }
    let stderr = tail
        .lock()
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let why = if stderr.is_empty() {
        why
    } else {
        format!("{why}; its stderr ends: {stderr}")
    };
    // As `ensure` will count it: a copy that answered calls starts a new run of failures.
    let failures = if agent.mcp.get(&server).proven.load(Ordering::SeqCst) {
        1
    } else {
        restarts.saturating_add(1)
    };
    let backoff_ms = backoff(failures).as_millis() as u64;
    tracing::warn!(agent = %agent.id, server = %server, %why, "an MCP server ended");
    k.record(
        Some(agent.id),
        RecordEvent::McpServerExited {
            server,
            why,
            restarts,
            backoff_ms,
        },
    );
}

/// `ListTools`: the tools of every declared server that `allowed` (the agent's policy, asked
/// per tool with empty arguments) could let the agent call. Starting a server is how its
/// tools are learnt, so only servers with at least one rule that could allow them are started.
pub(crate) async fn list_tools(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    allowed: impl Fn(&str) -> bool,
    might_allow: impl Fn(&str) -> bool,
) -> Result<Reply, Errno> {
    let mut out = Vec::new();
    let mut failed = None;
    for decl in &k.config.mcp {
        if !might_allow(&decl.name) {
            continue;
        }
        // A server that does not start hides only its own tools (its failure is recorded,
        // and a call to one of its tools says why); with none started, the error is the
        // answer.
        let tools = match ensure(k, agent, decl).await {
            Ok((_, _, tools, _)) => tools,
            Err(e) => {
                tracing::warn!(agent = %agent.id, server = %decl.name, error = %e, "an MCP server did not start for ListTools");
                failed.get_or_insert(e);
                continue;
            }
        };
        out.extend(
            tools
                .into_iter()
                .filter(|t| allowed(&format!("{}/{}", t.server, t.name))),
        );
        if out.len() >= TOOLS_MAX {
            out.truncate(TOOLS_MAX);
            break;
        }
    }
    match failed {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(Reply::Tools(out)),
    }
}

/// Waits for a server to be gone.
async fn until_gone(mut gone: watch::Receiver<bool>) {
    let _ = gone.wait_for(|g| *g).await.is_ok();
}

/// Waits up to `within` for a server to be gone; whether it is.
async fn wait_gone(mut gone: watch::Receiver<bool>, within: Duration) -> bool {
    let seen = tokio::time::timeout(within, async { gone.wait_for(|g| *g).await.is_ok() }).await;
    seen.unwrap_or(false)
}

/// `Call` of `SERVER/TOOL` with `params_json` as the arguments, already judged.
pub(crate) async fn call_tool(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    action: &str,
    params_json: &str,
) -> Result<Reply, Errno> {
    let Some((server, tool)) = split_action(action) else {
        return Err(internal(format!("{action} is not an MCP tool")));
    };
    let decl = declared(k, server)?;
    let args = match serde_json::from_str::<serde_json::Value>(params_json) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(internal("the arguments were checked to be an object")),
    };
    let _slot = tools::slot(agent)?;
    let started = Instant::now();
    let timeout = k.config.mcp_timeout;
    let (peer, gone, tools, kill) = ensure(k, agent, decl).await?;
    if !tools.iter().any(|t| t.name == tool) {
        return Err(Errno::NotFound {
            what: format!(
                "MCP server {server} has no tool `{tool}` (ListTools shows those you may call)"
            ),
        });
    }
    let left = timeout.saturating_sub(started.elapsed());
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    let result = tokio::select! {
        r = peer.call_tool(params) => r,
        _ = tokio::time::sleep(left) => {
            // Killed, so that hung calls never pile up; gone before the answer, so that the
            // next call starts a new one.
            let _ = kill.try_send(Kill::TimedOut);
            wait_gone(gone.clone(), Duration::from_secs(5)).await;
            return Err(Errno::TimedOut { after_ms: timeout.as_millis() as u64 });
        }
        _ = until_gone(gone.clone()) => {
            return Err(Errno::Interrupted {
                reason: format!("MCP server {server} exited during the call; it is restarted on the next call"),
            });
        }
        _ = agent.wait_exit() => {
            return Err(Errno::Interrupted {
                reason: format!("agent {} ended while its MCP tool ran", agent.id),
            });
        }
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            // A session that broke because the server died: said so once the supervisor
            // has seen it go (the next call then starts a new one).
            if wait_gone(gone.clone(), Duration::from_secs(2)).await {
                return Err(Errno::Interrupted {
                    reason: format!("MCP server {server} exited during the call; it is restarted on the next call"),
                });
            }
            return Err(internal(format!("MCP server {server}, tool {tool}: {e}")));
        }
    };
    agent.mcp.get(server).proven.store(true, Ordering::SeqCst);
    let json = serde_json::to_string(&result)
        .map_err(|e| internal(format!("the result of {action} does not encode: {e}")))?;
    if json.len() > RESULT_MAX {
        return Err(Errno::TooLarge {
            size: json.len() as u64,
            limit: RESULT_MAX as u64,
        });
    }
    Ok(Reply::CallResult { result_json: json })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_options_and_refuses_bad_ones() {
        let s = McpServer::parse("files=/bin/sh,arg=-c,arg=x,network,ro=/etc/hostname").unwrap();
        assert_eq!(s.name, "files");
        assert!(s.network);
        assert_eq!(s.args, vec!["-c", "x"]);
        assert_eq!(s.read_only.len(), 1);
        assert!(McpServer::parse("files").unwrap_err().contains("no `=`"));
        assert!(McpServer::parse("Files=/bin/sh")
            .unwrap_err()
            .contains("lowercase"));
        assert!(McpServer::parse("a/b=/bin/sh")
            .unwrap_err()
            .contains("lowercase"));
        assert!(McpServer::parse("f=bin/sh")
            .unwrap_err()
            .contains("absolute"));
        assert!(McpServer::parse("f=/nonexistent/x").is_err());
        assert!(McpServer::parse("f=/bin/sh,rw=/tmp")
            .unwrap_err()
            .contains("unknown"));
        let dup = [
            McpServer::parse("f=/bin/sh").unwrap(),
            McpServer::parse("f=/bin/true").unwrap(),
        ];
        assert!(check_all(&dup, std::path::Path::new("/nonexistent-state"))
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn the_resource_is_the_tool_then_canonical_arguments() {
        assert_eq!(
            resource("everything/echo", r#"{ "message" : "hi", "a": 1 }"#).unwrap(),
            r#"everything/echo {"a":1,"message":"hi"}"#
        );
        // Escapes are resolved: a deny pattern on `secret` sees it.
        assert_eq!(
            resource("e/echo", r#"{"m":"\u0073ecret"}"#).unwrap(),
            r#"e/echo {"m":"secret"}"#
        );
        for bad in ["e/", "/echo", "E/echo", "e/ec ho", "e/a/b", "noslash"] {
            assert!(resource(bad, "{}").is_err(), "{bad}");
        }
        assert!(resource("e/echo", "[1]").is_err());
        assert!(resource("e/echo", "nope").is_err());
        let long = format!("e/{}", "a".repeat(TOOL_NAME_MAX + 1));
        assert!(resource(&long, "{}").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(30), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn listed_tools_are_bounded() {
        let tool = |name: &str, desc: &str| {
            let mut t = rmcp::model::Tool::default();
            t.name = name.to_string().into();
            t.description = Some(desc.to_string().into());
            t
        };
        let out = bounded_tools(
            "s",
            vec![
                tool("ok", &"é".repeat(TOOL_DESCRIPTION_MAX)),
                tool("bad name", "x"),
                tool("a/b", "x"),
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "ok");
        assert!(out[0].description.len() <= TOOL_DESCRIPTION_MAX);
    }
}

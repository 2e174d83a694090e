//! `Exec { argv, stdin, cwd, timeout_ms }`: run a tool in a jail of its own (see
//! [`crate::tools`]).
//!
//! The policy has already allowed the call: action `code_execution`, resource the command
//! line (`argv` joined by spaces) with argv\[0\] *as written*, so `commands: [cat]` admits
//! `cat` and `commands: [/bin/cat]` admits `/bin/cat` (and neither admits the other);
//! `args`/`deny_args` judged argv\[1..\] as the list it is (the server's judge hands it to
//! `Policy::decide_args`), so an argument holding spaces is one argument. A bare
//! name is then resolved against the jail's PATH, `/usr/local/bin:/usr/bin:/bin` — read-only
//! system directories, so `cat` always means the system's `cat`; a path must be absolute.
//! Either way the program must lie inside the read-exec runtime (`/usr`, `/bin`, `/lib`, …):
//! a tool cannot run a file of the workspace directly (`/bin/sh /workspace/x.sh` can).
//!
//! **The tool's view of the workspace** is computed now, from the agent's policy and the base
//! policy ([`crate::tool_view`]): `/workspace` is bound read-only; the highest directories
//! beneath which every write is certainly allowed (no deny rule or `deny_patterns` may match,
//! no approval, dry run or rate limit) are bound read-write over it; entries the agent may not
//! `file_read` are covered with empty read-only files or directories. Beyond the view's bounds
//! (entries walked, depth, mounts) the call is refused with `QuotaExceeded`. The agent's tool
//! slot ([`tools::MAX_TOOLS`]) is taken before the walk, which runs on a blocking thread.
//! The working directory defaults to `/workspace` (or the tool's scratch when the agent has
//! no workspace); a given `cwd` must be `/workspace` or a directory under it that the view does
//! not cover.

use std::path::PathBuf;
use std::sync::Arc;

use agentos_policy::Access;
use agentos_syscalls::{Errno, Reply};
use agentos_userspace::launch::ViewKind;

use super::class::Class;
use crate::agent::Agent;
use crate::state::KernelInner;
use crate::tools::{self, ToolRun, WORKSPACE};
use crate::util::now_ms;

pub(crate) async fn exec(
    k: &Arc<KernelInner>,
    agent: &Arc<Agent>,
    argv: &[String],
    stdin: &[u8],
    cwd: Option<&str>,
    timeout_ms: Option<u64>,
) -> Result<Reply, Errno> {
    let Some(first) = argv.first() else {
        return Err(Errno::InvalidArgument {
            reason: "argv is empty; give the program and its arguments".into(),
        });
    };
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(Errno::InvalidArgument {
            reason: "an argument contains a NUL byte".into(),
        });
    }
    let program = tools::resolve_program(k, first)?;
    let timeout = tools::timeout_of(timeout_ms)?;
    // The slot is taken before the workspace is walked: an agent walks at most MAX_TOOLS
    // views at once.
    let slot = tools::slot(agent)?;
    let (workspace, view) = match &agent.workspace {
        None => (None, Vec::new()),
        Some(ws) => {
            let view = view_of(k, agent, ws).await?;
            (Some((ws.clone(), view.writable_root)), view.entries)
        }
    };
    let cwd = match cwd {
        None => None,
        Some(c) => Some(check_cwd(agent, c)?),
    };
    // A cwd the view covers does not exist for the tool (and is not told apart from one that
    // does not exist on the host).
    if let Some(c) = &cwd {
        let covered = view.iter().any(|e| {
            e.kind != ViewKind::Writable && c.starts_with(PathBuf::from(WORKSPACE).join(&e.path))
        });
        if covered {
            return Err(Errno::NotFound {
                what: format!("cwd {} (not a directory of the workspace)", c.display()),
            });
        }
    }
    let out = tools::run_in(
        k,
        agent,
        slot,
        ToolRun {
            program,
            argv: argv.to_vec(),
            stdin: stdin.to_vec(),
            cwd,
            timeout,
            network: false,
            workspace,
            view,
            read_only: Vec::new(),
            read_write: Vec::new(),
        },
    )
    .await?;
    Ok(Reply::Exec(out))
}

/// The tool's view of the agent's workspace `ws` (see [`crate::tool_view`]), computed on a
/// blocking thread.
async fn view_of(
    k: &KernelInner,
    agent: &Agent,
    ws: &std::path::Path,
) -> Result<crate::tool_view::View, Errno> {
    let policy = agent.policy();
    let base = k.config.base_policy.clone();
    let ws = ws.to_path_buf();
    let now = now_ms();
    tokio::task::spawn_blocking(move || crate::tool_view::compute(&ws, &policy, base.as_ref(), now))
        .await
        .map_err(|e| Errno::Internal {
            reason: format!("the tool's view of the workspace could not be computed: {e}"),
        })?
}

/// A `cwd` must be `/workspace` or an existing directory under it.
fn check_cwd(agent: &Agent, cwd: &str) -> Result<PathBuf, Errno> {
    let path = agentos_vfs::normalize(cwd)?;
    let Some(rest) = path.strip_prefix(WORKSPACE) else {
        return Err(bad_cwd(&path));
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(bad_cwd(&path));
    }
    if agent.workspace.is_none() {
        return Err(Errno::InvalidArgument {
            reason: format!("cwd {path}: this agent has no workspace (spawn it with --workspace)"),
        });
    }
    // Looked at beneath the workspace root for a clear error (`O_PATH`: nothing is opened
    // for I/O, nothing outside is reached); the tool's chdir happens inside its jail, where
    // nothing outside /workspace and the runtime exists.
    if !crate::tree::workspace_dir(agent, rest) {
        return Err(Errno::NotFound {
            what: format!("cwd {path} (not a directory of the workspace)"),
        });
    }
    Ok(PathBuf::from(path))
}

fn bad_cwd(path: &str) -> Errno {
    Errno::InvalidArgument {
        reason: format!(
            "cwd {path} is outside {WORKSPACE}; give {WORKSPACE} or a directory under it, or none"
        ),
    }
}

/// `code_execution` of the command line (`argv` joined by spaces; the arguments reach
/// `args`/`deny_args` as the list they are, see `judge`), stdin's size as its bytes.
pub(super) fn classify(argv: &[String], stdin: &[u8]) -> Result<Option<Class>, Errno> {
    Ok(Some(Class::new(
        "code_execution",
        argv.join(" "),
        Access::Read,
        stdin.len() as u64,
    )))
}

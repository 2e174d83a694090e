//! `Exec { argv, stdin, cwd, timeout_ms }`: run a tool in a jail of its own (see
//! [`crate::tools`]).
//!
//! The policy has already allowed the call: action `code_execution`, resource the command
//! line (`argv` joined by spaces) with argv\[0\] *as written*, so `commands: [cat]` admits
//! `cat` and `commands: [/bin/cat]` admits `/bin/cat` (and neither admits the other). A bare
//! name is then resolved against the jail's PATH, `/usr/local/bin:/usr/bin:/bin` — read-only
//! system directories, so `cat` always means the system's `cat`; a path must be absolute.
//! Either way the program must lie inside the read-exec runtime (`/usr`, `/bin`, `/lib`, …):
//! a tool cannot run a file of the workspace directly (`/bin/sh /workspace/x.sh` can).
//!
//! The workspace is bound at `/workspace` **read-write only when the agent's policy (with
//! the base policy) allows `file_write` of `/workspace/.agentos-tool-write`** — that is, writes
//! anywhere directly under `/workspace`, without `requires_approval` or `dry_run` (a tool's
//! writes cannot be approved or recorded one by one) — and read-only otherwise, so a rule
//! narrower than the whole workspace (`/workspace/src/**`) gives tools a read-only workspace.
//! The working directory defaults to `/workspace` (or the tool's scratch when the agent has
//! no workspace); a given `cwd` must be `/workspace` or a directory under it.

use std::path::PathBuf;
use std::sync::Arc;

use agentos_policy::{Access, Request};
use agentos_syscalls::{Errno, Reply};

use crate::agent::Agent;
use crate::kernel::{now_ms, KernelInner};
use crate::tools::{self, ToolRun, WORKSPACE};

/// The resource the write probe asks the policy about (see the module docs).
pub(crate) const WRITE_PROBE: &str = "/workspace/.agentos-tool-write";

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
    let workspace = agent
        .workspace
        .as_ref()
        .map(|ws| (ws.clone(), workspace_writable(k, agent)));
    let cwd = match cwd {
        None => None,
        Some(c) => Some(check_cwd(agent, c)?),
    };
    let out = tools::run(
        k,
        agent,
        ToolRun {
            program,
            argv: argv.to_vec(),
            stdin: stdin.to_vec(),
            cwd,
            timeout,
            network: false,
            workspace,
            read_only: Vec::new(),
            read_write: Vec::new(),
        },
    )
    .await?;
    Ok(Reply::Exec(out))
}

/// Whether tools may write the workspace (see the module docs).
pub(crate) fn workspace_writable(k: &KernelInner, agent: &Agent) -> bool {
    let policy = agent.policy();
    let req = Request {
        action: "file_write",
        resource: WRITE_PROBE,
        access: Access::Write,
        bytes: 0,
        now_ms: now_ms(),
    };
    let d = crate::policy::compose(&policy, k.config.base_policy.as_ref(), &req);
    d.allowed && !d.requires_approval && !d.dry_run
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

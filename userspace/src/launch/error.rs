//! [`LaunchError`]: every way building the jail can fail, one variant per step.
//!
//! The `Display` text names the step only (lowercase, no trailing period); the cause is the
//! `source`. The launcher prints `agentos-launch: <step>: <cause>` and exits
//! [`super::EXIT_SANDBOX_FAILED`].

use std::io;
use std::path::PathBuf;

/// A jail step failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("read spec from {}", super::SPEC_ENV)]
    SpecMissing(#[source] std::env::VarError),
    #[error("parse spec")]
    SpecParse(#[source] serde_json::Error),
    #[error("invalid spec")]
    SpecInvalid(#[source] io::Error),
    #[error("scratch directory {}", .path.display())]
    Scratch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("working directory {}", .path.display())]
    Cwd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("setsid")]
    Setsid(#[source] io::Error),
    #[error("set parent-death signal")]
    Pdeathsig(#[source] io::Error),
    #[error("parent check (expected kernel pid {expected}, parent is {actual})")]
    ParentGone {
        expected: u32,
        actual: u32,
        source: io::Error,
    },
    #[error("close inherited descriptors")]
    CloseFds(#[source] io::Error),
    #[error("set rlimit {resource}")]
    Rlimit {
        resource: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("join cgroup {}", .path.display())]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unshare namespaces")]
    Unshare(#[source] io::Error),
    #[error("write {}", .path)]
    IdMap {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("liveness pipe")]
    Pipe(#[source] io::Error),
    #[error("fork")]
    Fork(#[source] io::Error),
    #[error("wait for child")]
    Wait(#[source] io::Error),
    #[error("launcher liveness check")]
    LauncherGone(#[source] io::Error),
    #[error("set hostname")]
    Hostname(#[source] io::Error),
    #[error("make mounts private")]
    MountPrivate(#[source] io::Error),
    #[error("minimal root")]
    Rootfs(#[source] io::Error),
    #[error("drop capabilities")]
    Capabilities(#[source] io::Error),
    #[error("set no_new_privs")]
    NoNewPrivs(#[source] io::Error),
    #[error("landlock")]
    Landlock(#[source] io::Error),
    #[error("seccomp")]
    Seccomp(#[source] io::Error),
    #[error("send jail report on fd {}", agentos_syscalls::AGENT_FD)]
    Report(#[source] io::Error),
    #[error("send seccomp listener on fd {}", agentos_syscalls::AGENT_FD)]
    Listener(#[source] io::Error),
    #[error("listen for the egress proxy on the agent's loopback")]
    Egress(#[source] io::Error),
    #[error("send egress proxy listener on fd {}", agentos_syscalls::AGENT_FD)]
    EgressListener(#[source] io::Error),
    #[error("close agent socket in launcher")]
    CloseAgentFd(#[source] io::Error),
    #[error("layer {layer} is missing and the spec requires the full sandbox")]
    Required {
        layer: super::layer::LayerName,
        source: io::Error,
    },
}

impl LaunchError {
    /// The one-line message printed on stderr: `agentos-launch: <step>: <cause>`.
    pub fn message(&self) -> String {
        match std::error::Error::source(self) {
            Some(source) => format!("agentos-launch: {self}: {source}"),
            None => format!("agentos-launch: {self}"),
        }
    }
}

/// Wraps any displayable error as an `io::Error` (for crate errors without an errno).
pub(crate) fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

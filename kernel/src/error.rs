//! The kernel's error type.

use std::path::PathBuf;

/// A kernel step that failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot create state dir {path}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another kernel (pid {pid}) is running on {path}; stop it with `agentctl kernel stop` or use another --state-dir")]
    AlreadyRunning { path: PathBuf, pid: String },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on control socket {path}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "launcher {path} not found; build it with `cargo build --workspace` or set --launcher"
    )]
    LauncherMissing { path: PathBuf },
    #[error("flight recorder failed")]
    Recorder(#[from] crate::recorder::RecorderError),
    #[error("cannot write the Python SDK to {path}")]
    PythonSdk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the agents' persistent memory")]
    MemoryStore(#[from] agentos_vfs::StoreError),
    #[error("cannot start the spawner thread")]
    Spawner(#[source] std::io::Error),
    #[error("{0}; fix the --provider flag")]
    Provider(String),
}

//! The kernel's error types: [`KernelError`] (a kernel step that failed: start-up, the state
//! dir, the recorder) and [`Fault`] (what went wrong on the way to an agent's answer), with
//! the one mapping from internal failures to the ABI's [`Errno`] (`From<Fault> for Errno`).

use std::path::PathBuf;

use agentos_syscalls::Errno;

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
    #[error("cannot write the TypeScript SDK to {path}")]
    NodeSdk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the agents' persistent memory")]
    MemoryStore(#[from] agentos_vfs::StoreError),
    #[error("cannot start the spawner thread")]
    Spawner(#[source] std::io::Error),
    #[error("{0}; fix the --provider flag")]
    Provider(String),
    #[error("--otlp-endpoint: {0}")]
    Traces(String),
    #[error("cannot serve metrics on {addr}; choose another --metrics-addr")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A failure on the way to an agent's answer. `Errno::from(fault)` is the one place the
/// kernel decides how an internal error is told to the agent: what the agent can act on gets
/// its own errno (a missing file, an escape, a busy or full host), the rest is `Internal`,
/// naming what failed.
#[derive(Debug)]
pub(crate) enum Fault<'a> {
    /// Host I/O on `/workspace{path}`, a path the agent named: the host's errno decides.
    Workspace {
        path: &'a str,
        source: &'a std::io::Error,
    },
    /// A file the kernel keeps for the agent (`what`, e.g. `checkpoint 3 (/…/3)`) could not
    /// be read: a missing one is `NotFound`, anything else `Internal`.
    Kept {
        what: String,
        source: std::io::Error,
    },
    /// Kernel work the agent cannot fix (`what` failed: `source`), e.g. a descriptor's I/O,
    /// a task that died, a value that does not encode: `Internal`.
    Internal {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The flight recorder or the state dir's disk refuses new work (`what` says what to
    /// do): `QuotaExceeded`.
    Refused(String),
}

impl From<Fault<'_>> for Errno {
    fn from(fault: Fault<'_>) -> Errno {
        match fault {
            Fault::Workspace { path, source } => workspace_errno(path, source),
            Fault::Kept { what, source } => match source.kind() {
                std::io::ErrorKind::NotFound => Errno::NotFound { what },
                _ => Errno::Internal {
                    reason: format!("cannot read {what}: {source}"),
                },
            },
            Fault::Internal { what, source } => Errno::Internal {
                reason: format!("{what}: {source}"),
            },
            Fault::Refused(what) => Errno::QuotaExceeded { what },
        }
    }
}

/// What the agent is told when host I/O on `/workspace{path}` fails.
fn workspace_errno(path: &str, e: &std::io::Error) -> Errno {
    let full = format!("/workspace{path}");
    match e.raw_os_error() {
        Some(libc::EXDEV) => Errno::PermissionDenied {
            rule: "workspace".into(),
            reason: format!(
                "{full} resolves outside the workspace (a `..`, an absolute symlink, a symlink climbing out or a mount crossing); refused"
            ),
        },
        Some(libc::ELOOP) => Errno::PermissionDenied {
            rule: "workspace".into(),
            reason: format!("{full} goes through a magic link or a symlink loop; refused"),
        },
        Some(libc::ENOENT) => Errno::NotFound { what: full },
        Some(libc::ENOTDIR) => Errno::NotDirectory { path: full },
        Some(libc::EISDIR) => Errno::IsDirectory { path: full },
        Some(libc::EEXIST) => Errno::AlreadyExists { path: full },
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => Errno::PermissionDenied {
            rule: "host".into(),
            reason: format!("the host refused {full}: {e}"),
        },
        // O_NONBLOCK: a file under a lease (or lock) another host process holds answers at once
        // instead of waiting for the lease to be broken.
        Some(libc::EAGAIN) => Errno::Busy {
            what: format!("{full} is leased or locked by another process on the host; try again"),
        },
        // A FIFO without a reader, or a socket, opened for writing with O_NONBLOCK (one swapped
        // in after the O_PATH look).
        Some(libc::ENXIO) => Errno::Unsupported {
            what: format!(
                "{full} is a FIFO, a socket or a device; the kernel serves only regular files and directories from the workspace"
            ),
        },
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Errno::QuotaExceeded {
            what: format!("the host filesystem is full writing {full}"),
        },
        _ => Errno::Internal {
            reason: format!("{full}: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io::Error;

    use super::*;

    #[test]
    fn each_fault_maps_to_its_errno() {
        let errno = |raw: i32| Error::from_raw_os_error(raw);
        let ws = |raw: i32| {
            Errno::from(Fault::Workspace {
                path: "/a",
                source: &errno(raw),
            })
        };
        assert!(
            matches!(ws(libc::EXDEV), Errno::PermissionDenied { rule, .. } if rule == "workspace")
        );
        assert!(
            matches!(ws(libc::ELOOP), Errno::PermissionDenied { rule, .. } if rule == "workspace")
        );
        assert!(matches!(ws(libc::EACCES), Errno::PermissionDenied { rule, .. } if rule == "host"));
        assert_eq!(
            ws(libc::ENOENT),
            Errno::NotFound {
                what: "/workspace/a".into()
            }
        );
        assert_eq!(
            ws(libc::ENOTDIR),
            Errno::NotDirectory {
                path: "/workspace/a".into()
            }
        );
        assert_eq!(
            ws(libc::EISDIR),
            Errno::IsDirectory {
                path: "/workspace/a".into()
            }
        );
        assert_eq!(
            ws(libc::EEXIST),
            Errno::AlreadyExists {
                path: "/workspace/a".into()
            }
        );
        assert!(matches!(ws(libc::EAGAIN), Errno::Busy { .. }));
        assert!(matches!(ws(libc::ENXIO), Errno::Unsupported { .. }));
        assert!(matches!(ws(libc::ENOSPC), Errno::QuotaExceeded { .. }));
        assert!(matches!(ws(libc::EIO), Errno::Internal { .. }));
        let kept = |raw: i32| {
            Errno::from(Fault::Kept {
                what: "checkpoint 3".into(),
                source: errno(raw),
            })
        };
        assert_eq!(
            kept(libc::ENOENT),
            Errno::NotFound {
                what: "checkpoint 3".into()
            }
        );
        assert!(
            matches!(kept(libc::EIO), Errno::Internal { reason } if reason.starts_with("cannot read checkpoint 3: "))
        );
        assert_eq!(
            Errno::from(Fault::Internal {
                what: "writing descriptor 4".into(),
                source: "boom".into(),
            }),
            Errno::Internal {
                reason: "writing descriptor 4: boom".into()
            }
        );
        assert_eq!(
            Errno::from(Fault::Refused("disk full".into())),
            Errno::QuotaExceeded {
                what: "disk full".into()
            }
        );
    }
}

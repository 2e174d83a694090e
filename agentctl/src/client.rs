//! A blocking client of the kernel's control socket.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use agentos_syscalls::control::{self, ControlRequest, ControlResponse};
use agentos_syscalls::frame;

use crate::CliError;

/// Responses larger than this are refused (the kernel never sends one).
const MAX_RESPONSE: u32 = agentos_syscalls::control::MAX_CONTROL_RESPONSE;

#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
}

pub fn state_dir(given: &Option<PathBuf>) -> PathBuf {
    let dir = given
        .clone()
        .unwrap_or_else(|| control::default_state_dir(rustix::process::geteuid().is_root()));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Whether a kernel listens on `dir` (its control socket accepts a connection).
pub fn kernel_answers(dir: &Path) -> bool {
    UnixStream::connect(control::socket_path(dir)).is_ok()
}

/// `--state-dir` names something that is not a directory: say what it is and what to do.
pub fn check_state_dir(dir: &Path) -> Result<(), CliError> {
    let mut cur = Some(dir);
    while let Some(p) = cur {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                let what = if p == dir {
                    format!("the state dir {} is a file, not a directory", dir.display())
                } else {
                    format!(
                        "the state dir {} cannot exist: {} is a file, not a directory",
                        dir.display(),
                        p.display()
                    )
                };
                return Err(CliError::usage(
                    what,
                    "give --state-dir (or AGENTOS_STATE_DIR) a directory, or a path where one can be created, e.g. --state-dir /tmp/agentos-state",
                ));
            }
            Err(_) => cur = p.parent(),
        }
    }
    Ok(())
}

/// The state dir can be written by this user (a kernel needs to create its socket, lock,
/// recorder and agent dirs there): the dir itself when it exists, otherwise the nearest
/// existing parent it would be created in.
pub fn check_writable_state_dir(dir: &Path) -> Result<(), CliError> {
    check_state_dir(dir)?;
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.exists() {
            let access = rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK;
            if rustix::fs::access(p, access).is_err() {
                let uid = rustix::process::geteuid().as_raw();
                let what = if p == dir {
                    format!(
                        "the state dir {} is not writable by uid {uid}",
                        dir.display()
                    )
                } else {
                    format!(
                        "the state dir {} cannot be created: {} is not writable by uid {uid}",
                        dir.display(),
                        p.display()
                    )
                };
                return Err(CliError::failed(
                    what,
                    "choose a --state-dir you own (the default is $XDG_STATE_HOME/agentos, or /var/lib/agentos as root), or run as its owner",
                ));
            }
            return Ok(());
        }
        cur = p.parent();
    }
    Ok(())
}

fn no_kernel(dir: &Path) -> CliError {
    CliError::failed(
        format!("no kernel is running on {}", dir.display()),
        format!(
            "start one with `agentctl --state-dir {} kernel start`, or run a one-off agent with `agentctl run`",
            dir.display()
        ),
    )
}

impl Connection {
    /// Connects to the kernel on `dir` and sends `request`.
    pub fn send(dir: &Path, request: &ControlRequest) -> Result<Connection, CliError> {
        let path = control::socket_path(dir);
        let mut stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => no_kernel(dir),
            std::io::ErrorKind::PermissionDenied => CliError::failed(
                format!("permission denied on {}", path.display()),
                "run agentctl as the kernel's user or as root",
            ),
            _ => CliError::failed(
                format!("cannot connect to {}: {e}", path.display()),
                "check the state dir",
            ),
        })?;
        let bytes = frame::encode(request)
            .map_err(|e| CliError::failed(format!("request does not encode: {e}"), ""))?;
        stream.write_all(&bytes).map_err(|e| {
            CliError::failed(
                format!("cannot talk to the kernel: {e}"),
                "check `agentctl kernel status`",
            )
        })?;
        Ok(Connection { stream })
    }

    /// The next response; `None` when the kernel closed the connection.
    pub fn next(&mut self) -> Result<Option<ControlResponse>, CliError> {
        let lost = |e: String| {
            CliError::failed(
                format!("lost the kernel's answer: {e}"),
                "check `agentctl kernel status`",
            )
        };
        match frame::read_frame(&mut self.stream, MAX_RESPONSE).map_err(|e| lost(e.to_string()))? {
            Some(body) => Ok(Some(frame::decode(&body).map_err(|e| {
                lost(format!("{e} (is agentctl the same version as the kernel?)"))
            })?)),
            None => Ok(None),
        }
    }
}

/// Sends one request and returns its single answer, turning a kernel error into a
/// [`CliError`] with the kernel's exit code.
pub fn call(dir: &Path, request: &ControlRequest) -> Result<ControlResponse, CliError> {
    let mut conn = Connection::send(dir, request)?;
    match conn.next()? {
        Some(ControlResponse::Error(e)) => Err(e.into()),
        Some(r) => Ok(r),
        None => Err(CliError::failed(
            "the kernel closed the connection without answering",
            "see the kernel's log",
        )),
    }
}

pub fn unexpected(r: &ControlResponse) -> CliError {
    CliError::failed(
        format!("unexpected answer from the kernel: {r:?}"),
        "upgrade agentctl and the kernel together",
    )
}

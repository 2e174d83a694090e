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

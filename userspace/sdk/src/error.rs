//! The SDK's error type.

use agentos_syscalls::{Errno, FrameError};

/// Why a syscall did not return a value.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The kernel answered with an error.
    #[error(transparent)]
    Errno(#[from] Errno),
    /// `AGENTOS_FD` is missing or does not name a socket: the program is not running under an
    /// agentos kernel.
    #[error(
        "no agentos kernel socket: {0} (run this program with `agentctl run` or `agentctl spawn`)"
    )]
    NoKernel(String),
    /// The handshake was refused.
    #[error("kernel refused the handshake")]
    Refused(#[source] Errno),
    /// The connection to the kernel is gone (the kernel closed it or is shutting down).
    #[error("connection to the kernel is closed")]
    Closed,
    /// A frame could not be read or written.
    #[error("kernel connection failed")]
    Frame(#[from] FrameError),
    /// The kernel sent something the protocol does not allow here.
    #[error("unexpected answer from the kernel: {0}")]
    Protocol(String),
    /// The argument cannot be sent (e.g. larger than the frame limit).
    #[error("payload of {size} bytes is over the kernel's frame limit of {limit}")]
    TooLarge { size: usize, limit: u32 },
}

impl SdkError {
    /// The kernel's errno, when the kernel refused the call.
    pub fn errno(&self) -> Option<&Errno> {
        match self {
            SdkError::Errno(e) | SdkError::Refused(e) => Some(e),
            _ => None,
        }
    }
}

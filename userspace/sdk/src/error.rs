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
    /// `set_traceparent` was given something that is not a W3C `traceparent`.
    #[error("{0}")]
    TraceParent(String),
}

impl SdkError {
    /// The kernel's errno, when the kernel refused the call.
    pub fn errno(&self) -> Option<&Errno> {
        match self {
            SdkError::Errno(e) | SdkError::Refused(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the policy refused the call: a rule or the default deny (`PermissionDenied`),
    /// or an approval its rule requires that an operator denied or nobody gave in time
    /// (`ApprovalDenied`, `ApprovalTimeout`). The message of each says "denied by policy".
    /// A rate limit is not a denial: retry after its hint.
    pub fn is_denied_by_policy(&self) -> bool {
        matches!(
            self,
            SdkError::Errno(
                Errno::PermissionDenied { .. } | Errno::ApprovalDenied | Errno::ApprovalTimeout
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_by_policy_says_so_with_its_rule() {
        let denied = SdkError::from(Errno::PermissionDenied {
            rule: "no-etc (security.md:12)".into(),
            reason: "path under /etc".into(),
        });
        assert!(denied.is_denied_by_policy());
        assert_eq!(
            denied.to_string(),
            "denied by policy: no-etc (security.md:12): path under /etc"
        );
        for e in [Errno::ApprovalDenied, Errno::ApprovalTimeout] {
            let e = SdkError::from(e);
            assert!(e.is_denied_by_policy());
            assert!(e.to_string().starts_with("denied by policy: "), "{e}");
        }
        let limited = SdkError::from(Errno::RateLimited { retry_after_ms: 5 });
        assert!(!limited.is_denied_by_policy());
        assert!(!SdkError::Closed.is_denied_by_policy());
    }
}

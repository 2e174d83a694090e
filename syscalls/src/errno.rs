//! The typed error every syscall can answer with, and its stable POSIX errno mapping.

use serde::{Deserialize, Serialize};

/// Why the kernel refused or failed a syscall.
///
/// Append-only: a new variant goes at the end. Every variant maps to one POSIX errno number
/// ([`Errno::posix`]) so that C users of the ABI get a familiar code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Errno {
    /// The policy refused the call. `rule` is the deciding rule's id with `file:line`
    /// (empty for a default deny), `reason` says why.
    #[error("denied by policy: {}: {reason}", if rule.is_empty() { "default deny" } else { rule.as_str() })]
    PermissionDenied { rule: String, reason: String },
    /// The path, descriptor target or agent does not exist.
    #[error("not found: {what}")]
    NotFound { what: String },
    /// The call's arguments are malformed.
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },
    /// A `rate_limit` refused the call; retry after the hint. Not a violation.
    #[error("rate limited: retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// An operator denied the approval this call needed.
    #[error(
        "denied by policy: the operator denied the approval this call needs (requires_approval)"
    )]
    ApprovalDenied,
    /// Nobody approved the call before its timeout.
    #[error("denied by policy: nobody approved this call before the approval timeout (requires_approval)")]
    ApprovalTimeout,
    /// A per-agent quota (bytes, files, inbox) would be exceeded.
    #[error("quota exceeded: {what}")]
    QuotaExceeded { what: String },
    /// A payload is over its limit.
    #[error("too large: {size} bytes over the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    /// The peer broke the protocol (bad frame, bad handshake, ABI mismatch).
    #[error("protocol violation: {reason}")]
    ProtocolViolation { reason: String },
    /// The kernel does not serve this syscall (yet, or on this host).
    #[error("unsupported: {what}")]
    Unsupported { what: String },
    /// The kernel failed; the recorder has the details.
    #[error("internal kernel error: {reason}")]
    Internal { reason: String },
    /// The target (an inbox, a resource) is busy; try again.
    #[error("busy: {what}")]
    Busy { what: String },
    /// No such open descriptor.
    #[error("bad descriptor {fd}")]
    BadDescriptor { fd: u32 },
    /// The path names a directory where a file was expected.
    #[error("is a directory: {path}")]
    IsDirectory { path: String },
    /// A path component is not a directory.
    #[error("not a directory: {path}")]
    NotDirectory { path: String },
    /// The path already exists.
    #[error("already exists: {path}")]
    AlreadyExists { path: String },
    /// The call ran past its timeout.
    #[error("timed out after {after_ms} ms")]
    TimedOut { after_ms: u64 },
    /// The call was cut short by a signal or by the agent's end.
    #[error("interrupted: {reason}")]
    Interrupted { reason: String },
}

/// POSIX errno numbers (Linux values), spelled out so the ABI does not depend on `libc`.
pub mod posix {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EINTR: i32 = 4;
    pub const EIO: i32 = 5;
    pub const EBADF: i32 = 9;
    pub const EAGAIN: i32 = 11;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const EFBIG: i32 = 27;
    pub const ENOSYS: i32 = 38;
    pub const EPROTO: i32 = 71;
    pub const ETIMEDOUT: i32 = 110;
    pub const EDQUOT: i32 = 122;
    pub const ECANCELED: i32 = 125;
}

impl Errno {
    /// The stable POSIX errno for this error. Never changes once published.
    pub const fn posix(&self) -> i32 {
        use posix::*;
        match self {
            Errno::PermissionDenied { .. } => EACCES,
            Errno::NotFound { .. } => ENOENT,
            Errno::InvalidArgument { .. } => EINVAL,
            Errno::RateLimited { .. } => EAGAIN,
            Errno::ApprovalDenied => ECANCELED,
            Errno::ApprovalTimeout => ETIMEDOUT,
            Errno::QuotaExceeded { .. } => EDQUOT,
            Errno::TooLarge { .. } => EFBIG,
            Errno::ProtocolViolation { .. } => EPROTO,
            Errno::Unsupported { .. } => ENOSYS,
            Errno::Internal { .. } => EIO,
            Errno::Busy { .. } => EBUSY,
            Errno::BadDescriptor { .. } => EBADF,
            Errno::IsDirectory { .. } => EISDIR,
            Errno::NotDirectory { .. } => ENOTDIR,
            Errno::AlreadyExists { .. } => EEXIST,
            Errno::TimedOut { .. } => ETIMEDOUT,
            Errno::Interrupted { .. } => EINTR,
        }
    }

    /// A short stable name, e.g. `PermissionDenied`, for logs and JSON.
    pub const fn kind(&self) -> &'static str {
        match self {
            Errno::PermissionDenied { .. } => "PermissionDenied",
            Errno::NotFound { .. } => "NotFound",
            Errno::InvalidArgument { .. } => "InvalidArgument",
            Errno::RateLimited { .. } => "RateLimited",
            Errno::ApprovalDenied => "ApprovalDenied",
            Errno::ApprovalTimeout => "ApprovalTimeout",
            Errno::QuotaExceeded { .. } => "QuotaExceeded",
            Errno::TooLarge { .. } => "TooLarge",
            Errno::ProtocolViolation { .. } => "ProtocolViolation",
            Errno::Unsupported { .. } => "Unsupported",
            Errno::Internal { .. } => "Internal",
            Errno::Busy { .. } => "Busy",
            Errno::BadDescriptor { .. } => "BadDescriptor",
            Errno::IsDirectory { .. } => "IsDirectory",
            Errno::NotDirectory { .. } => "NotDirectory",
            Errno::AlreadyExists { .. } => "AlreadyExists",
            Errno::TimedOut { .. } => "TimedOut",
            Errno::Interrupted { .. } => "Interrupted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_mapping_is_stable() {
        let cases = [
            (
                Errno::PermissionDenied {
                    rule: String::new(),
                    reason: String::new(),
                },
                13,
            ),
            (
                Errno::NotFound {
                    what: String::new(),
                },
                2,
            ),
            (Errno::RateLimited { retry_after_ms: 1 }, 11),
            (
                Errno::Unsupported {
                    what: String::new(),
                },
                38,
            ),
            (
                Errno::ProtocolViolation {
                    reason: String::new(),
                },
                71,
            ),
            (
                Errno::QuotaExceeded {
                    what: String::new(),
                },
                122,
            ),
        ];
        for (e, n) in cases {
            assert_eq!(e.posix(), n, "{e:?}");
        }
    }

    #[test]
    fn default_deny_message_names_it() {
        let e = Errno::PermissionDenied {
            rule: String::new(),
            reason: "no rule allows file_write".into(),
        };
        assert_eq!(
            e.to_string(),
            "denied by policy: default deny: no rule allows file_write"
        );
        let e = Errno::PermissionDenied {
            rule: "write-src (security.md:12)".into(),
            reason: "path not under /workspace/src".into(),
        };
        assert_eq!(
            e.to_string(),
            "denied by policy: write-src (security.md:12): path not under /workspace/src"
        );
    }
}

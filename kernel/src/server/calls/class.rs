//! [`Class`]: how the policy sees a call — what each call's `classify` gives the judge.

use agentos_policy::Access;

/// How the policy sees a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Class {
    /// The policy action (`file_read`, `code_execution`, a `Call`'s own name, …).
    pub action: String,
    /// The resource the rules match (a normalized path, a command line, a peer, …).
    pub resource: String,
    pub access: Access,
    /// The payload size (`max_bytes`).
    pub bytes: u64,
    /// A second resource judged with the same action and access (a `Rename`'s target): the
    /// call is refused when the policy refuses either ([`both_resources`]).
    pub also: Option<String>,
}

impl Class {
    pub(crate) fn new(action: &str, resource: String, access: Access, bytes: u64) -> Class {
        Class {
            action: action.into(),
            resource,
            access,
            bytes,
            also: None,
        }
    }

    /// The policy request for this class at `now` (on its first resource).
    pub(crate) fn request(&self, now: u64) -> agentos_policy::Request<'_> {
        agentos_policy::Request {
            action: &self.action,
            resource: &self.resource,
            access: self.access,
            bytes: self.bytes,
            now_ms: now,
        }
    }

    /// The same class, judged on `also` too.
    pub(crate) fn and_also(self, also: String) -> Class {
        Class {
            also: Some(also),
            ..self
        }
    }
}

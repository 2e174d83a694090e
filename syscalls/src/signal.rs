//! The agentos signal table (DESIGN §7).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A signal the kernel delivers to an agent. Numbers follow POSIX where POSIX has the signal;
/// `SIGPOLICY` (64) and `SIGTRUST` (65) are agentos' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Signal {
    /// Interrupt: an SDK event plus POSIX `SIGINT` to the agent's process group.
    Int,
    /// Kill the whole process tree. Non-maskable.
    Kill,
    /// Checkpoint the agent's working memory.
    Usr1,
    /// Terminate: an SDK event plus POSIX `SIGTERM`, then `SIGKILL` after the grace period.
    Term,
    /// Resume a stopped tree; parked syscalls continue.
    Cont,
    /// Freeze the tree; its syscalls are parked.
    Stop,
    /// Policy violation: kill and record the rule. Non-maskable.
    Policy,
    /// Trust or protocol violation: kill and record. Non-maskable.
    Trust,
}

/// Every signal, in table order.
pub const ALL_SIGNALS: [Signal; 8] = [
    Signal::Int,
    Signal::Kill,
    Signal::Usr1,
    Signal::Term,
    Signal::Cont,
    Signal::Stop,
    Signal::Policy,
    Signal::Trust,
];

impl Signal {
    /// The signal's number.
    pub const fn number(self) -> u8 {
        match self {
            Signal::Int => 2,
            Signal::Kill => 9,
            Signal::Usr1 => 10,
            Signal::Term => 15,
            Signal::Cont => 18,
            Signal::Stop => 19,
            Signal::Policy => 64,
            Signal::Trust => 65,
        }
    }

    /// The signal's name, e.g. `SIGTERM`.
    pub const fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Kill => "SIGKILL",
            Signal::Usr1 => "SIGUSR1",
            Signal::Term => "SIGTERM",
            Signal::Cont => "SIGCONT",
            Signal::Stop => "SIGSTOP",
            Signal::Policy => "SIGPOLICY",
            Signal::Trust => "SIGTRUST",
        }
    }

    /// Whether the policy's `signals:` list may refuse it. `SIGKILL`, `SIGPOLICY` and
    /// `SIGTRUST` are always deliverable.
    pub const fn maskable(self) -> bool {
        !matches!(self, Signal::Kill | Signal::Policy | Signal::Trust)
    }

    /// Whether delivering it ends the agent's whole process tree.
    pub const fn is_fatal(self) -> bool {
        !self.maskable()
    }

    /// Looks a signal up by number.
    pub fn from_number(n: u8) -> Option<Signal> {
        ALL_SIGNALS.into_iter().find(|s| s.number() == n)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no agentos signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal `{0}` (known: SIGINT 2, SIGKILL 9, SIGUSR1 10, SIGTERM 15, SIGCONT 18, SIGSTOP 19, SIGPOLICY 64, SIGTRUST 65)")]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;

    /// Accepts `SIGTERM`, `TERM`, `term` and `15`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u8>() {
            return Signal::from_number(n).ok_or_else(|| UnknownSignal(s.to_string()));
        }
        let upper = t.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        ALL_SIGNALS
            .into_iter()
            .find(|sig| &sig.name()[3..] == bare)
            .ok_or_else(|| UnknownSignal(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for sig in ALL_SIGNALS {
            assert_eq!(sig.name().parse::<Signal>(), Ok(sig));
            assert_eq!(sig.number().to_string().parse::<Signal>(), Ok(sig));
            assert_eq!(sig.name()[3..].to_lowercase().parse::<Signal>(), Ok(sig));
        }
        assert!("SIGHUP".parse::<Signal>().is_err());
        assert!("1".parse::<Signal>().is_err());
    }

    #[test]
    fn only_kill_policy_trust_are_non_maskable() {
        let fatal: Vec<Signal> = ALL_SIGNALS.into_iter().filter(|s| !s.maskable()).collect();
        assert_eq!(fatal, vec![Signal::Kill, Signal::Policy, Signal::Trust]);
    }
}

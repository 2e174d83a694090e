//! An agent's refusals, summarised for the person running it: which kinds of call the policy
//! refused or let through as a violation, and which operations the sandbox refused, each with
//! what refused it and how often (`agentctl run`'s summary, `agentctl inspect`).
//!
//! Also what the kernel tells the agent's output about the network: an unmodified program
//! whose `socket(AF_INET, …)` the sandbox refuses sees only EPERM, which most libraries turn
//! into "Temporary failure in name resolution" — an outage, not a policy.
//! [`network_notice`] is the one line the kernel writes into the agent's output log (what
//! `agentctl run` streams and `agentctl logs` shows) the first time each kind of socket is
//! refused, so the person reading the output sees the policy beside the program's own error.
//!
//! No imports from the rest of the crate; pure, unit-tested here.
//!
//! Invariants:
//! - Bounded: at most [`MAX_KINDS`] rows per agent, every string cut by [`display_bound`];
//!   a refusal of a kind that finds the table full is still counted in the total.
//! - Exact totals: every refusal noted counts once in [`Denials::total`], whatever the table
//!   keeps.

use agentos_syscalls::control::{
    display_bound, Denial, DenialKind, DenialSummary, MAX_DENIAL_ROWS,
};

/// Distinct kinds of refusal an agent's table keeps.
pub(crate) const MAX_KINDS: usize = 16;

/// One agent's refusals.
#[derive(Debug, Default)]
pub(crate) struct Denials {
    /// Kinds in the order first seen.
    rows: Vec<Denial>,
    total: u64,
}

/// What was refused, before it is cut for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal<'a> {
    pub kind: DenialKind,
    pub action: &'a str,
    pub resource: &'a str,
    pub rule: &'a str,
    pub reason: &'a str,
}

impl Denials {
    /// Counts one refusal: in its row when the table has its kind or room for it.
    pub fn note(&mut self, r: Refusal<'_>) {
        self.total += 1;
        let action = display_bound(r.action);
        let resource = display_bound(r.resource);
        let rule = display_bound(r.rule);
        let same = |d: &&mut Denial| {
            d.kind == r.kind && d.action == action && d.resource == resource && d.rule == rule
        };
        if let Some(d) = self.rows.iter_mut().find(same) {
            d.count += 1;
            return;
        }
        if self.rows.len() < MAX_KINDS {
            self.rows.push(Denial {
                kind: r.kind,
                action,
                resource,
                rule,
                reason: display_bound(r.reason),
                count: 1,
            });
        }
    }

    /// The most frequent kinds (at most [`MAX_DENIAL_ROWS`]; ties in the order first seen)
    /// and the total.
    pub fn summary(&self) -> DenialSummary {
        let mut top = self.rows.clone();
        // A stable sort: equally frequent kinds stay in the order they were first seen.
        top.sort_by_key(|d| std::cmp::Reverse(d.count));
        top.truncate(MAX_DENIAL_ROWS);
        DenialSummary {
            top,
            total: self.total,
        }
    }
}

/// `AF_*` names of the socket domains an agent may try.
fn domain_name(domain: u64) -> String {
    match domain as i32 {
        libc::AF_UNIX => "AF_UNIX".into(),
        libc::AF_INET => "AF_INET".into(),
        libc::AF_INET6 => "AF_INET6".into(),
        libc::AF_NETLINK => "AF_NETLINK".into(),
        libc::AF_PACKET => "AF_PACKET".into(),
        libc::AF_VSOCK => "AF_VSOCK".into(),
        libc::AF_BLUETOOTH => "AF_BLUETOOTH".into(),
        n => format!("domain {n}"),
    }
}

/// `SOCK_*` name of a socket type (its flags `SOCK_CLOEXEC`/`SOCK_NONBLOCK` left out).
fn type_name(ty: u64) -> String {
    let base = (ty as i32) & 0xf;
    match base {
        libc::SOCK_STREAM => "SOCK_STREAM".into(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".into(),
        libc::SOCK_RAW => "SOCK_RAW".into(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".into(),
        n => format!("type {n}"),
    }
}

/// A socket domain that reaches a network (IPv4, IPv6, raw packets).
pub(crate) fn is_network(domain: u64) -> bool {
    matches!(
        domain as i32,
        libc::AF_INET | libc::AF_INET6 | libc::AF_PACKET
    )
}

/// How a refused `socket`/`socketpair` reads: `socket(AF_INET, SOCK_DGRAM)`; `None` for any
/// other syscall.
pub(crate) fn socket_call(syscall: &str, args: &[u64; 6]) -> Option<String> {
    matches!(syscall, "socket" | "socketpair").then(|| {
        format!(
            "{syscall}({}, {})",
            domain_name(args[0]),
            type_name(args[1])
        )
    })
}

/// The row of a syscall the seccomp filter refused: its resource and what refused it.
pub(crate) fn seccomp_refusal(syscall: &str, args: &[u64; 6]) -> (String, &'static str) {
    match socket_call(syscall, args) {
        Some(call) if is_network(args[0]) => (call, NO_NETWORK),
        Some(call) => (call, "sandbox: seccomp (socket domain not allowed)"),
        None => (syscall.to_string(), "sandbox: seccomp"),
    }
}

/// What refused an agent's network socket.
pub(crate) const NO_NETWORK: &str = "sandbox: no network";

/// The line the kernel writes into an agent's output the first time a network socket of one
/// kind (`call`, e.g. `socket(AF_INET, SOCK_DGRAM)`) is refused.
pub(crate) fn network_notice(call: &str) -> String {
    format!(
        "agentos: network denied by policy: {call} refused with EPERM (an agent has no network of its own: give its policy a `network` rule for the hosts it needs, and its HTTP clients reach them through its egress proxy)\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<'a>(kind: DenialKind, resource: &'a str) -> Refusal<'a> {
        Refusal {
            kind,
            action: "file_write",
            resource,
            rule: "no-etc (security.md:12)",
            reason: "path under /etc",
        }
    }

    #[test]
    fn kinds_are_counted_and_the_most_frequent_come_first() {
        let mut d = Denials::default();
        d.note(refusal(DenialKind::Refused, "/etc/a"));
        d.note(refusal(DenialKind::Allowed, "/etc/b"));
        d.note(refusal(DenialKind::Allowed, "/etc/b"));
        d.note(refusal(DenialKind::Refused, "/etc/a"));
        d.note(refusal(DenialKind::Refused, "/etc/a"));
        d.note(refusal(DenialKind::Sandbox, "/etc/c"));
        let s = d.summary();
        assert_eq!(s.total, 6);
        let rows: Vec<(DenialKind, &str, u64)> = s
            .top
            .iter()
            .map(|r| (r.kind, r.resource.as_str(), r.count))
            .collect();
        assert_eq!(
            rows,
            vec![
                (DenialKind::Refused, "/etc/a", 3),
                (DenialKind::Allowed, "/etc/b", 2),
                (DenialKind::Sandbox, "/etc/c", 1),
            ]
        );
        assert_eq!(s.top[0].rule, "no-etc (security.md:12)");
        assert_eq!(s.top[0].reason, "path under /etc");
    }

    #[test]
    fn the_table_is_bounded_and_the_total_stays_exact() {
        let mut d = Denials::default();
        let long = "x".repeat(10_000);
        for i in 0..1000 {
            let path = format!("/etc/{i}{long}");
            d.note(refusal(DenialKind::Refused, &path));
        }
        assert_eq!(d.rows.len(), MAX_KINDS);
        let s = d.summary();
        assert_eq!(s.total, 1000);
        assert_eq!(s.top.len(), MAX_DENIAL_ROWS);
        assert!(s.top.iter().all(|r| r.resource.len() < 600));
    }

    #[test]
    fn sockets_read_as_calls_and_only_inet_is_the_network() {
        let args = |d: i32, t: i32| [d as u64, t as u64, 0, 0, 0, 0];
        let udp = args(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC);
        assert_eq!(
            seccomp_refusal("socket", &udp),
            ("socket(AF_INET, SOCK_DGRAM)".to_string(), NO_NETWORK)
        );
        let tcp6 = args(libc::AF_INET6, libc::SOCK_STREAM);
        assert_eq!(seccomp_refusal("socket", &tcp6).1, NO_NETWORK);
        let netlink = args(libc::AF_NETLINK, libc::SOCK_RAW);
        assert_eq!(
            seccomp_refusal("socket", &netlink),
            (
                "socket(AF_NETLINK, SOCK_RAW)".to_string(),
                "sandbox: seccomp (socket domain not allowed)"
            )
        );
        assert_eq!(
            seccomp_refusal("ptrace", &[0; 6]),
            ("ptrace".to_string(), "sandbox: seccomp")
        );
        assert!(network_notice("socket(AF_INET, SOCK_DGRAM)")
            .starts_with("agentos: network denied by policy: socket(AF_INET, SOCK_DGRAM) refused"));
    }
}

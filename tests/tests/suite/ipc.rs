//! Agent-to-agent IPC between real jailed agents: `Send`/`Recv` both ways in order, the
//! `ipc_send` policy and its `peers` (ids and names), bounded inboxes (`Busy`, nothing lost or
//! duplicated), `Recv` timeouts, and a `Recv` pending when its agent is killed.

use std::path::Path;

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::{Errno, Signal, Syscall};
use agentos_tests::{write_policy, TestKernel};

/// An `ipc_send` allow rule, for all peers (`peers` empty) or for the listed ones.
fn ipc_rule(peers: &[&str]) -> String {
    let mut rule = "  - name: ipc\n    action: ipc_send\n    effect: allow\n".to_string();
    if !peers.is_empty() {
        let list: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
        rule += &format!("    constraints:\n      peers: [{}]\n", list.join(", "));
    }
    rule
}

fn spawn_named(k: &TestKernel, name: &str, policy: &Path, args: &[&str]) -> u64 {
    let mut argv = vec![
        "spawn",
        "--name",
        name,
        "--policy",
        policy.to_str().expect("utf-8"),
        "--",
        k.agent_bin.to_str().expect("utf-8"),
    ];
    argv.extend_from_slice(args);
    k.ctl_ok(&argv).trim().parse().expect("agent id")
}

/// The lines of an agent's log that start with `prefix`.
fn lines_with(k: &TestKernel, id: u64, prefix: &str) -> Vec<String> {
    k.logs(id)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn two_agents_ping_pong_both_ways_in_order_with_peers_by_name() {
    let k = TestKernel::start();
    // Each may send only to the other, named in `peers` by name (not by id).
    let pong_policy = write_policy(&k.work, "pong", "strict", &[], &ipc_rule(&["ping"]));
    let ping_policy = write_policy(&k.work, "ping", "strict", &[], &ipc_rule(&["pong"]));
    let rounds = 5;
    let pong = spawn_named(&k, "pong", &pong_policy, &["ipc-pong", &rounds.to_string()]);
    k.wait_for_line(pong, "ready");
    let ping = spawn_named(
        &k,
        "ping",
        &ping_policy,
        &["ipc-ping", &pong.to_string(), &rounds.to_string()],
    );
    let (ping_end, pong_end) = (k.wait(ping), k.wait(pong));
    assert_eq!(ping_end["exit"]["code"], 0, "{ping_end}\n{}", k.logs(ping));
    assert_eq!(pong_end["exit"]["code"], 0, "{pong_end}\n{}", k.logs(pong));
    let want = |word: &str, from: u64| -> Vec<String> {
        (0..rounds)
            .map(|i| format!("got {word} {i} from {from} seq {}", i + 1))
            .collect()
    };
    assert_eq!(lines_with(&k, pong, "got "), want("ping", ping));
    assert_eq!(lines_with(&k, ping, "got "), want("pong", pong));
    // Every send was judged allowed by the `ipc` rule and recorded with its payload.
    let sends: Vec<(u64, Vec<u8>, bool)> = k
        .records()
        .into_iter()
        .filter_map(|r| match r.event {
            RecordEvent::Syscall {
                call: Syscall::Send { to, payload },
                decision,
                ..
            } => Some((
                to.0,
                payload,
                decision.allowed && decision.rule.starts_with("ipc ("),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 2 * rounds, "{sends:?}");
    assert!(sends.iter().all(|s| s.2), "{sends:?}");
}

#[test]
fn a_send_to_a_non_peer_is_refused_and_in_strict_mode_kills_the_sender() {
    let k = TestKernel::start();
    let open = write_policy(&k.work, "open", "strict", &[], &ipc_rule(&[]));
    let friend = spawn_named(&k, "friend", &open, &["ipc-drain", "1"]);
    let stranger = spawn_named(&k, "stranger", &open, &["park"]);
    k.wait_for_line(friend, "ready");
    k.wait_for_line(stranger, "ready");

    // Permissive: refused by the policy, recorded as a violation, but performed.
    let only_friend = ipc_rule(&["friend"]);
    let permissive = write_policy(&k.work, "permissive", "permissive", &[], &only_friend);
    let p = k.spawn(&permissive, &["ipc-send", &stranger.to_string(), "psst"]);
    assert_eq!(k.wait_for_line(p, "sent"), "sent");

    // Strict: refused with the rule's reason, then SIGPOLICY.
    let strict = write_policy(&k.work, "strict", "strict", &[], &only_friend);
    let s = k.spawn(&strict, &["ipc-send", &stranger.to_string(), "psst"]);
    let refused = k.wait_for_line(s, "refused:");
    assert!(
        refused.starts_with("refused: PermissionDenied") && refused.contains("friend"),
        "{refused}"
    );
    let last = k.wait(s);
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}");
    let records = k.records();
    let violation = records.iter().find_map(|r| match &r.event {
        RecordEvent::Syscall {
            call: Syscall::Send { to, .. },
            decision,
            result,
            ..
        } if r.agent.map(|a| a.0) == Some(s) => Some((to.0, decision.clone(), result.clone())),
        _ => None,
    });
    let (to, decision, result) = violation.expect("the refused send is recorded");
    assert_eq!(to, stranger);
    assert!(decision.violation && !decision.allowed, "{decision:?}");
    assert!(matches!(result, Err(Errno::PermissionDenied { .. })));
    assert!(records.iter().any(|r| r.agent.map(|a| a.0) == Some(s)
        && matches!(
            &r.event,
            RecordEvent::Signal {
                signal: Signal::Policy,
                ..
            }
        )));

    // The same strict policy lets the sender reach its peer, named by name.
    let ok = k.spawn(&strict, &["ipc-send", &friend.to_string(), "hi"]);
    assert_eq!(k.wait_for_line(ok, "sent"), "sent");
    assert_eq!(k.wait(friend)["exit"]["code"], 0);
    assert_eq!(
        lines_with(&k, friend, "got "),
        vec![format!("got hi from {ok} seq 1")]
    );
    for id in [stranger, p, ok] {
        k.ctl_ok(&["kill", &id.to_string()]);
    }
}

#[test]
fn a_full_inbox_answers_busy_and_every_accepted_message_arrives_once_in_order() {
    let k = TestKernel::start();
    let policy = write_policy(
        &k.work,
        "fill",
        "strict",
        &["SIGSTOP", "SIGCONT"],
        &ipc_rule(&[]),
    );
    // The default inbox holds 64 messages; the sender gets 64 in, then `Busy`, then retries the
    // 65th until the receiver has drained.
    let total = 65;
    let receiver = k.spawn(&policy, &["ipc-drain", &total.to_string()]);
    k.wait_for_line(receiver, "ready");
    // Stopped, the receiver takes nothing: its `Recv` stays parked.
    k.ctl_ok(&["stop", &receiver.to_string()]);
    assert_eq!(k.info(receiver)["state"], "stopped");
    let sender = k.spawn(&policy, &["ipc-fill", &receiver.to_string()]);
    assert_eq!(k.wait_for_line(sender, "accepted"), "accepted 64");
    let busy = k.wait_for_line(sender, "refused:");
    assert!(
        busy.starts_with("refused: Busy") && busy.contains("full (64 messages"),
        "{busy}"
    );
    assert!(lines_with(&k, receiver, "got ").is_empty());
    k.ctl_ok(&["cont", &receiver.to_string()]);
    let (s_end, r_end) = (k.wait(sender), k.wait(receiver));
    assert_eq!(s_end["exit"]["code"], 0, "{s_end}\n{}", k.logs(sender));
    assert_eq!(r_end["exit"]["code"], 0, "{r_end}\n{}", k.logs(receiver));
    assert!(
        k.logs(sender).contains("retried m64 ok after"),
        "{}",
        k.logs(sender)
    );
    let want: Vec<String> = (0..total)
        .map(|i| format!("got m{i} from {sender} seq {}", i + 1))
        .collect();
    assert_eq!(lines_with(&k, receiver, "got "), want);
    // Nothing more: every accepted message was delivered exactly once.
    assert_eq!(
        lines_with(&k, receiver, "then:"),
        vec!["then: err TimedOut".to_string()]
    );
}

#[test]
fn recv_times_out_with_timed_out_after_its_deadline() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "timeout", "strict", &[], "");
    let id = k.spawn(&policy, &["ipc-timeout", "200"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let line = lines_with(&k, id, "timeout:").pop().expect("timeout line");
    assert!(
        line.starts_with("timeout: err TimedOut (timed out after 200 ms)"),
        "{line}"
    );
    let took: u64 = line
        .rsplit(" after ")
        .next()
        .and_then(|t| t.trim_end_matches(" ms").parse().ok())
        .expect("elapsed ms");
    assert!(took >= 200, "answered after {took} ms, before its 200 ms");
}

#[test]
fn a_recv_pending_when_its_agent_is_killed_does_not_wedge_the_kernel() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "wait", "strict", &[], &ipc_rule(&[]));
    let waiter = k.spawn(&policy, &["ipc-wait"]);
    k.wait_for_line(waiter, "waiting");
    k.ctl_ok(&["kill", &waiter.to_string()]);
    let last = k.wait(waiter);
    assert_eq!(last["exit"]["signal"], "SIGKILL", "{last}");
    // The pending call was answered (recorded as interrupted), not left hanging.
    agentos_tests::wait_until("the interrupted recv is recorded", || {
        k.records().iter().any(|r| {
            r.agent.map(|a| a.0) == Some(waiter)
                && matches!(
                    &r.event,
                    RecordEvent::Syscall {
                        call: Syscall::Recv { timeout_ms: None },
                        result: Err(Errno::Interrupted { .. }),
                        ..
                    }
                )
        })
    });
    // A send to the ended agent is NotFound with a hint; the kernel serves on.
    let late = k.spawn(&policy, &["ipc-send", &waiter.to_string(), "too late"]);
    let refused = k.wait_for_line(late, "refused:");
    assert!(
        refused.starts_with("refused: NotFound") && refused.contains("has ended"),
        "{refused}"
    );
    let nobody = k.spawn(&policy, &["ipc-send", "999999", "hello?"]);
    let refused = k.wait_for_line(nobody, "refused:");
    assert!(
        refused.starts_with("refused: NotFound") && refused.contains("agentctl ps"),
        "{refused}"
    );
    let echo = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(echo)["exit"]["code"], 0);
    for id in [late, nobody] {
        k.ctl_ok(&["kill", &id.to_string()]);
    }
}

#[test]
fn a_rust_agent_and_a_python_agent_exchange_messages() {
    if !Path::new("/usr/bin/python3").is_file() {
        eprintln!("skipped: /usr/bin/python3 is missing");
        return;
    }
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "mixed", "strict", &[], &ipc_rule(&[]));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/pyagent.py");
    let script = script.to_str().expect("utf-8");
    let rounds = "3";
    let pong: u64 = k
        .ctl_ok(&[
            "spawn",
            "--policy",
            policy.to_str().expect("utf-8"),
            "--",
            "python3",
            script,
            "pong",
            rounds,
        ])
        .trim()
        .parse()
        .expect("agent id");
    let ping = k.spawn(&policy, &["ipc-ping", &pong.to_string(), rounds]);
    let (ping_end, pong_end) = (k.wait(ping), k.wait(pong));
    assert_eq!(ping_end["exit"]["code"], 0, "{ping_end}\n{}", k.logs(ping));
    assert_eq!(pong_end["exit"]["code"], 0, "{pong_end}\n{}", k.logs(pong));
    let got_ping: Vec<String> = (0..3)
        .map(|i| format!("got ping {i} from {ping} seq {}", i + 1))
        .collect();
    let got_pong: Vec<String> = (0..3)
        .map(|i| format!("got pong {i} from {pong} seq {}", i + 1))
        .collect();
    assert_eq!(lines_with(&k, pong, "got "), got_ping);
    assert_eq!(lines_with(&k, ping, "got "), got_pong);
}

#[test]
fn the_inbox_is_listed_and_read_under_ipc_inbox_without_taking_messages() {
    let k = TestKernel::start();
    let rules = format!(
        "{}  - name: inbox\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/ipc/**\", \"/ipc\"]\n  - name: inbox-w\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/ipc/**\"]\n",
        ipc_rule(&["me"])
    );
    let policy = write_policy(&k.work, "me", "permissive", &[], &rules);
    let me = spawn_named(
        &k,
        "me",
        &policy,
        &[
            "ops",
            "send=self=first",
            "send=self=second",
            "list=/ipc",
            "list=/ipc/inbox",
            "stat=/ipc/inbox",
            "stat=/ipc/inbox/0000000002-from-1",
            "read=/ipc/inbox/0000000001-from-1",
            "write=/ipc/inbox/0000000001-from-1=forged",
            "unlink=/ipc/inbox/0000000001-from-1",
            "read=/ipc/inbox/0000000009-from-1",
            "recv=",
            "list=/ipc/inbox",
        ],
    );
    assert_eq!(me, 1, "the test names its messages after agent 1");
    let end = k.wait(me);
    assert_eq!(end["exit"]["code"], 0, "{end}\n{}", k.logs(me));
    let out = k.logs(me);
    let lines: Vec<&str> = out.lines().collect();
    let want = [
        "send=self: ok ",
        "send=self: ok ",
        "list=/ipc: ok inbox",
        "list=/ipc/inbox: ok 0000000001-from-1,0000000002-from-1",
        "stat=/ipc/inbox: ok Directory 0 ro=true",
        "stat=/ipc/inbox/0000000002-from-1: ok File 6 ro=true",
        "read=/ipc/inbox/0000000001-from-1: ok first",
    ];
    assert_eq!(&lines[..want.len()], &want[..], "{out}");
    let rest = &lines[want.len()..];
    assert!(
        rest[0].starts_with("write=/ipc/inbox/0000000001-from-1: err PermissionDenied"),
        "{out}"
    );
    assert!(
        rest[1].starts_with("unlink=/ipc/inbox/0000000001-from-1: err PermissionDenied"),
        "{out}"
    );
    assert!(
        rest[2].starts_with("read=/ipc/inbox/0000000009-from-1: err NotFound"),
        "{out}"
    );
    // Looking took nothing: Recv still gets the first message, and then one is left.
    assert_eq!(rest[3], "recv=: ok first from 1", "{out}");
    assert_eq!(rest[4], "list=/ipc/inbox: ok 0000000002-from-1", "{out}");
}

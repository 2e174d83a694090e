//! The agent lifecycle, end to end: spawn, stop/park, continue, SIGTERM, SIGKILL of a tree,
//! crashes, and the kernel's own death.

use std::time::Duration;

use agentos_kernel::recorder::RecordEvent;
use agentos_syscalls::control::ExitStatus;
use agentos_syscalls::Signal;
use agentos_tests::{
    descendants, is_namespace_init, jail_processes, proc_state, wait_pid_gone, wait_until,
    write_policy, TestKernel,
};

const ALL_SIGNALS: &[&str] = &["SIGSTOP", "SIGCONT", "SIGTERM", "SIGINT", "SIGUSR1"];

fn syscalls(k: &TestKernel, id: u64) -> u64 {
    k.info(id)["syscalls"].as_u64().expect("syscalls")
}

/// spawn → running → stop (tree frozen, syscalls parked) → cont (they complete) → kill.
pub fn stop_park_cont_kill(k: &TestKernel) {
    let policy = write_policy(&k.work, "lifecycle", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["spin"]);
    k.wait_for_line(id, "ready");
    wait_until("syscalls flowing", || syscalls(k, id) > 10);
    assert_eq!(k.info(id)["state"], "running");

    k.ctl_ok(&["stop", &id.to_string()]);
    assert_eq!(k.info(id)["state"], "stopped");
    let launcher = k.launcher_pid(id);
    let tree = jail_processes(launcher);
    assert!(tree.len() >= 2, "init and agent expected, got {tree:?}");
    wait_until("every process of the tree stopped", || {
        tree.iter().all(|&p| proc_state(p) == Some('T'))
    });
    let frozen = syscalls(k, id);
    // The tree is stopped: nothing may be answered until it is continued. Observe a window.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        syscalls(k, id),
        frozen,
        "syscalls were answered while the agent was stopped"
    );

    k.ctl_ok(&["cont", &id.to_string()]);
    wait_until("syscalls resume after SIGCONT", || {
        syscalls(k, id) > frozen + 10
    });
    assert_eq!(k.info(id)["state"], "running");
    assert!(jail_processes(launcher)
        .iter()
        .all(|&p| proc_state(p) != Some('T')));

    k.ctl_ok(&["kill", &id.to_string()]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "killed");
    assert_eq!(last["exit"]["signal"], "SIGKILL");
    for p in tree {
        assert!(
            proc_state(p).is_none(),
            "process {p} of the killed tree is still there"
        );
    }
}

/// SIGTERM with an SDK handler lets the agent finish cleanly.
pub fn sigterm_handler(k: &TestKernel) {
    let policy = write_policy(&k.work, "term", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["term-handler"]);
    k.wait_for_line(id, "ready");
    k.ctl_ok(&["signal", &id.to_string(), "SIGTERM"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "code", "{last}");
    assert_eq!(last["exit"]["code"], 0);
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(log.contains("handler ran for SIGTERM"), "{log}");
    assert!(log.contains("clean shutdown"), "{log}");
}

/// SIGKILL of an agent that forked children and grandchildren leaves none of them.
pub fn sigkill_tree(k: &TestKernel) {
    let policy = write_policy(&k.work, "tree", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["fork-tree", "3"]);
    k.wait_for_line(id, "ready");
    let launcher = k.launcher_pid(id);
    // init → agent → 3 sleeps + sh → 2 sleeps
    wait_until("the whole tree to exist", || {
        jail_processes(launcher).len() >= 8
    });
    let tree = jail_processes(launcher);
    k.ctl_ok(&["signal", &id.to_string(), "9"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["signal"], "SIGKILL");
    let alive: Vec<u32> = tree
        .iter()
        .copied()
        .filter(|&p| proc_state(p).is_some())
        .collect();
    assert!(
        alive.is_empty(),
        "processes of the killed tree still alive: {alive:?}"
    );
}

#[test]
fn lifecycle_stop_park_cont_kill() {
    stop_park_cont_kill(&TestKernel::start());
}

#[test]
fn lifecycle_sigterm_with_handler_exits_cleanly() {
    sigterm_handler(&TestKernel::start());
}

#[test]
fn lifecycle_sigkill_leaves_no_process_of_the_tree() {
    sigkill_tree(&TestKernel::start());
}

#[test]
fn sigterm_without_handler_ends_the_agent() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "term", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["no-handler"]);
    k.wait_for_line(id, "ready");
    k.ctl_ok(&["signal", &id.to_string(), "term"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "posix_signal", "{last}");
    assert_eq!(last["exit"]["signal"], 15);
}

#[test]
fn sigterm_ignored_is_followed_by_sigkill_after_the_grace_period() {
    let k = TestKernel::start_with(false, &["--term-grace-ms", "300"]);
    let policy = write_policy(&k.work, "term", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["term-handler", "ignore"]);
    k.wait_for_line(id, "ready");
    k.ctl_ok(&["signal", &id.to_string(), "15"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "killed", "{last}");
    assert_eq!(last["exit"]["signal"], "SIGKILL");
    assert!(
        last["exit"]["reason"]
            .as_str()
            .unwrap()
            .contains("did not exit within 300 ms"),
        "{last}"
    );
    assert!(k
        .ctl_ok(&["logs", &id.to_string()])
        .contains("handler ran for SIGTERM"));
}

#[test]
fn a_crashing_agent_leaves_the_kernel_serving_others() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "crash", "strict", ALL_SIGNALS, "");
    let parked = k.spawn(&policy, &["park"]);
    k.wait_for_line(parked, "ready");
    let crash = k.spawn(&policy, &["crash"]);
    let last = k.wait(crash);
    assert_eq!(last["exit"]["kind"], "posix_signal", "{last}");
    assert_eq!(last["exit"]["signal"], 6, "SIGABRT expected: {last}");
    // The kernel still serves a new agent and the one that was already running.
    let echo = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(echo)["exit"]["code"], 0);
    assert!(k.ctl_ok(&["logs", &echo.to_string()]).contains("echo ping"));
    assert_eq!(k.info(parked)["state"], "running");
    k.ctl_ok(&["kill", &parked.to_string()]);
}

/// An agent costs two processes: its jail's init, cloned by the zygote straight into the
/// agent's namespaces as the kernel's own child (pid 1 of its pid namespace, reaping), and
/// the agent program below it. No launcher stays above the init; killing the agent ends both.
#[test]
fn an_agent_is_two_processes_its_init_the_kernels_child() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "two", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["park"]);
    k.wait_for_line(id, "ready");
    let root = k.launcher_pid(id);
    assert!(
        is_namespace_init(root),
        "{root} is not a pid namespace's init"
    );
    let stat = std::fs::read_to_string(format!("/proc/{root}/stat")).unwrap();
    let ppid: u32 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, k.kernel_pid(), "the init's parent is the kernel");
    let tree = jail_processes(root);
    assert_eq!(tree.len(), 2, "init and agent, nothing else: {tree:?}");
    assert_eq!(descendants(root).len(), 1, "{tree:?}");
    // Every process of the tree shares the init's namespaces (the agent's own).
    for ns in ["user", "pid", "net", "mnt", "ipc", "uts"] {
        let of = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).unwrap();
        let kernel = std::fs::read_link(format!("/proc/{}/ns/{ns}", k.kernel_pid())).unwrap();
        assert_ne!(
            of(root),
            kernel,
            "{ns}: the init is in the kernel's namespace"
        );
        assert_eq!(of(tree[1]), of(root), "{ns}");
    }
    // The zygote (the kernel's other child running `--zygote`, no namespace's init) keeps its
    // request socket at fd 0; neither the init nor the agent holds it (the clone replaced its
    // fd 0 first thing and closed everything above fd 3): the agent cannot ask for clones.
    let zygote = agentos_tests::zygote_of(k.kernel_pid()).expect("the kernel's zygote");
    let socket = std::fs::read_link(format!("/proc/{zygote}/fd/0")).unwrap();
    assert!(
        socket.to_string_lossy().starts_with("socket:"),
        "{socket:?}"
    );
    for &p in &tree {
        for fd in std::fs::read_dir(format!("/proc/{p}/fd"))
            .unwrap()
            .flatten()
        {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            assert_ne!(
                target,
                socket,
                "{p} holds the zygote's socket as {:?}",
                fd.file_name()
            );
        }
    }
    k.ctl_ok(&["kill", &id.to_string()]);
    assert_eq!(k.wait(id)["exit"]["kind"], "killed");
    for p in tree {
        assert!(
            wait_pid_gone(p, Duration::from_secs(10)),
            "{p} outlived the kill"
        );
    }
}

/// The init cloned ahead for the next agent: born in namespaces of its own with its ids
/// mapped, it holds nothing of any agent (no descriptor of the running agent's, an empty
/// environment, no session of its own) until the next agent's spec arrives; then it is that
/// agent's init, and another is cloned to wait. `kernel stop` kills the one waiting.
#[test]
fn an_init_cloned_ahead_holds_nothing_of_an_agent_and_serves_the_next_one() {
    let k = TestKernel::start();
    let kernel = k.kernel_pid();
    let policy = write_policy(&k.work, "ahead", "strict", ALL_SIGNALS, "");
    let a = k.spawn(&policy, &["park"]);
    k.wait_for_line(a, "ready");
    let a_init = k.launcher_pid(a);
    let waiting = agentos_tests::waiting_init(kernel, &[a_init]);
    let targets = |p: u32| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(format!("/proc/{p}/fd"))
            .unwrap()
            .flatten()
            .map(|fd| std::fs::read_link(fd.path()).unwrap_or_default())
            .collect()
    };
    let held = targets(waiting);
    for p in jail_processes(a_init) {
        for t in targets(p) {
            let shared = t.to_string_lossy().starts_with("socket:")
                || t.to_string_lossy().starts_with("pipe:");
            assert!(
                !(shared && held.contains(&t)),
                "the waiting init holds {t:?} of agent {a}'s process {p}"
            );
        }
    }
    // Its own request socket at fd 0, /dev/null at 1 and 3, the zygote's stderr at 2.
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{waiting}/fd"))
        .unwrap()
        .flatten()
        .map(|fd| fd.file_name().to_string_lossy().into_owned())
        .collect();
    let mut fds: Vec<u32> = fds.iter().filter_map(|f| f.parse().ok()).collect();
    fds.sort_unstable();
    assert_eq!(fds, [0, 1, 2, 3], "{held:?}");
    let environ = std::fs::read(format!("/proc/{waiting}/environ")).unwrap();
    assert!(environ.is_empty(), "{}", String::from_utf8_lossy(&environ));
    let uid = std::fs::read_to_string(format!("/proc/{waiting}/uid_map")).unwrap();
    assert_eq!(
        uid.split_whitespace().nth(2),
        Some("1"),
        "ids mapped: {uid}"
    );
    for ns in ["user", "pid", "net", "mnt", "ipc", "uts"] {
        let of = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).unwrap();
        assert_ne!(of(waiting), of(a_init), "{ns}");
        assert_ne!(of(waiting), of(kernel), "{ns}");
    }
    // The next agent gets it: its init is that process, in those namespaces.
    let net = std::fs::read_link(format!("/proc/{waiting}/ns/net")).unwrap();
    let b = k.spawn(&policy, &["park"]);
    k.wait_for_line(b, "ready");
    assert_eq!(k.launcher_pid(b), waiting);
    assert_eq!(
        std::fs::read_link(format!("/proc/{waiting}/ns/net")).unwrap(),
        net
    );
    let next = agentos_tests::waiting_init(kernel, &[a_init, waiting]);
    assert_ne!(next, waiting);
    k.ctl_ok(&["kernel", "stop"]);
    assert!(
        wait_pid_gone(next, Duration::from_secs(10)),
        "the waiting init {next} outlived `kernel stop`"
    );
}

/// A waiting init found dead is reaped, the kernel's log says so, and the agent gets a fresh
/// clone: it runs in the full jail all the same.
#[test]
fn a_waiting_init_found_dead_is_replaced_by_a_fresh_clone_and_logged() {
    let k = TestKernel::start();
    let kernel = k.kernel_pid();
    let policy = write_policy(&k.work, "dead", "strict", ALL_SIGNALS, "");
    let a = k.spawn(&policy, &["park"]);
    k.wait_for_line(a, "ready");
    let waiting = agentos_tests::waiting_init(kernel, &[k.launcher_pid(a)]);
    assert!(std::process::Command::new("kill")
        .args(["-9", &waiting.to_string()])
        .status()
        .unwrap()
        .success());
    wait_until("the waiting init to die", || {
        proc_state(waiting).is_none_or(|s| s == 'Z')
    });
    let b = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(b)["exit"]["code"], 0);
    assert!(k.logs(b).contains("echo ping"), "{}", k.logs(b));
    assert_ne!(k.info(b)["pid"].as_u64(), Some(u64::from(waiting)));
    assert!(
        wait_pid_gone(waiting, Duration::from_secs(10)),
        "the dead waiting init {waiting} was not reaped"
    );
    let log = std::fs::read_to_string(k.state_dir.join("kernel.log")).unwrap();
    assert!(
        log.contains("the init cloned ahead was found dead (signal 9)")
            && log.contains(&format!("pid={waiting}")),
        "{log}"
    );
    assert_eq!(k.info(a)["state"], "running");
}

#[test]
fn killing_the_kernel_leaves_no_agent_process() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "orphans", "strict", ALL_SIGNALS, "");
    let a = k.spawn(&policy, &["park"]);
    let b = k.spawn(&policy, &["fork-tree", "2"]);
    k.wait_for_line(a, "ready");
    k.wait_for_line(b, "ready");
    let mut pids = Vec::new();
    for id in [a, b] {
        let launcher = k.launcher_pid(id);
        pids.push(launcher);
        pids.extend(descendants(launcher));
    }
    assert!(pids.len() >= 9, "{pids:?}");
    let kernel = k.kernel_pid();
    // The init cloned ahead for the next agent dies with the kernel too.
    pids.push(agentos_tests::waiting_init(kernel, &pids));
    assert!(std::process::Command::new("kill")
        .args(["-9", &kernel.to_string()])
        .status()
        .unwrap()
        .success());
    for p in pids {
        assert!(
            wait_pid_gone(p, Duration::from_secs(10)),
            "agent process {p} outlived its kernel"
        );
    }
}

#[test]
fn strict_violation_is_refused_then_killed_with_sigpolicy_and_recorded_once() {
    let k = TestKernel::start();
    let deny = "  - name: no-secrets\n    action: file_write\n    effect: deny\n    constraints:\n      paths: [\"/mem/working/secrets/**\"]\n";
    let policy = write_policy(&k.work, "strict", "strict", ALL_SIGNALS, deny);
    let id = k.spawn(&policy, &["write", "/mem/working/secrets/key"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["signal"], "SIGPOLICY", "{last}");
    let denied: Vec<_> = k
        .records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            RecordEvent::Syscall { decision, .. } if decision.violation => Some(decision),
            _ => None,
        })
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(!denied[0].allowed);
    assert!(
        denied[0].rule.starts_with("no-secrets ("),
        "{:?}",
        denied[0]
    );
    let policy_signals = k
        .records()
        .into_iter()
        .filter(|r| {
            matches!(
                &r.event,
                RecordEvent::Signal {
                    signal: Signal::Policy,
                    ..
                }
            ) && r.agent.map(|a| a.0) == Some(id)
        })
        .count();
    assert_eq!(policy_signals, 1);
    // Refused first, ended after: the refusal is recorded (and answered) before SIGPOLICY.
    let records = k.records();
    let refusal = records
        .iter()
        .position(|r| {
            matches!(
                &r.event,
                RecordEvent::Syscall {
                    result: Err(agentos_syscalls::Errno::PermissionDenied { .. }),
                    ..
                }
            )
        })
        .expect("the refusal is recorded");
    let sigpolicy = records
        .iter()
        .position(|r| {
            matches!(
                &r.event,
                RecordEvent::Signal {
                    signal: Signal::Policy,
                    ..
                }
            )
        })
        .expect("SIGPOLICY is recorded");
    assert!(
        refusal < sigpolicy,
        "the refusal must come before SIGPOLICY"
    );
    let exits: Vec<_> = k
        .records()
        .into_iter()
        .filter_map(|r| match r.event {
            RecordEvent::Exit { status } if r.agent.map(|a| a.0) == Some(id) => Some(status),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            &exits[..],
            [ExitStatus::Killed {
                signal: Signal::Policy,
                ..
            }]
        ),
        "{exits:?}"
    );
}

#[test]
fn every_syscall_is_recorded_with_its_decision_and_outcome() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "rec", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let calls: Vec<String> = k
        .records()
        .into_iter()
        .filter(|r| r.agent.map(|a| a.0) == Some(id))
        .filter_map(|r| match r.event {
            RecordEvent::Syscall { call, result, .. } => {
                Some(format!("{} {}", call.name(), result.is_ok()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(calls, vec!["write true", "read true"]);
}

#[test]
fn sigint_reaches_the_agents_process_group() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "int", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["no-handler"]);
    k.wait_for_line(id, "ready");
    k.ctl_ok(&["signal", &id.to_string(), "SIGINT"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "posix_signal", "{last}");
    assert_eq!(last["exit"]["signal"], 2);
}

#[test]
fn sigterm_to_the_kernel_shuts_it_down_gracefully() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "graceful", "strict", ALL_SIGNALS, "");
    let id = k.spawn(&policy, &["term-handler"]);
    k.wait_for_line(id, "ready");
    let log_path = k.info(id)["log"].as_str().unwrap().to_string();
    let kernel = k.kernel_pid();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &kernel.to_string()])
        .status()
        .unwrap()
        .success());
    assert!(
        wait_pid_gone(kernel, Duration::from_secs(15)),
        "the kernel did not exit on SIGTERM"
    );
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(
        log.contains("clean shutdown"),
        "the agent must get its SIGTERM first: {log}"
    );
    let records = k.records();
    assert!(
        matches!(records.last().map(|r| &r.event), Some(RecordEvent::KernelStop { reason }) if reason == "SIGTERM"),
        "{:?}",
        records.last()
    );
    assert!(
        !k.state_dir.join("kernel.sock").exists(),
        "the control socket is removed on shutdown"
    );
}

//! Per-agent cgroups: a root kernel puts each agent in its own `pids`/`memory` (and `cpu`)
//! groups, so a fork bomb meets `pids.max` even though uid 0 ignores `RLIMIT_NPROC`, and a
//! memory bomb meets the memory limit (the OOM killer ends the agent, not the kernel). An
//! unprivileged kernel on cgroup v1 has no group to give: the layer is missing with the
//! reason, and spawns still work.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentos_kernel::recorder::RecordEvent;
use agentos_tests::{is_root, wait_until, write_policy, TestKernel};
use serde_json::Value;

const SIGNALS: &[&str] = &["SIGTERM", "SIGKILL"];

fn limited_policy(k: &TestKernel, name: &str, limits: &str) -> PathBuf {
    write_policy(
        &k.work,
        name,
        "strict",
        SIGNALS,
        &format!("sandbox:\n  limits: {{{limits}}}\n"),
    )
}

/// `agentctl ps` answers within 2 s.
fn assert_kernel_answers(k: &TestKernel) {
    let start = Instant::now();
    k.ctl_ok(&["ps"]);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "agentctl ps took {took:?}");
}

/// The kernel's `cgroup` layer from `agentctl kernel status --json`.
fn kernel_cgroup_layer(k: &TestKernel) -> Value {
    let status: Value =
        serde_json::from_str(&k.ctl_ok(&["kernel", "status", "--json"])).expect("json");
    status["sandbox"]
        .as_array()
        .expect("sandbox")
        .iter()
        .find(|l| l["layer"] == "cgroup")
        .cloned()
        .unwrap_or_else(|| panic!("no cgroup layer: {status}"))
}

/// The agent's `cgroup` layer from its jail report.
fn agent_cgroup_layer(k: &TestKernel, id: u64) -> Value {
    let mut layer = Value::Null;
    wait_until("the agent's jail report", || {
        let info = k.info(id);
        match info["sandbox"].as_array() {
            Some(layers) => {
                layer = layers
                    .iter()
                    .find(|l| l["layer"] == "cgroup")
                    .cloned()
                    .unwrap_or(Value::Null);
                true
            }
            None => false,
        }
    });
    layer
}

/// The agent's group dirs: `<parent>/<id>` for each `agentos-<pid>` parent the kernel's
/// status names.
fn agent_group_dirs(k: &TestKernel, id: u64) -> Vec<PathBuf> {
    let layer = kernel_cgroup_layer(k);
    let detail = layer["detail"].as_str().expect("detail");
    let parents = detail
        .split_once(" under ")
        .unwrap_or_else(|| panic!("no parents named: {detail}"))
        .1;
    parents
        .split(", ")
        .map(|p| PathBuf::from(p).join(id.to_string()))
        .collect()
}

fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        println!("{test}: skipped, needs root (cgroup v1 is writable only by root here)");
        return true;
    }
    false
}

/// `sandbox: limits: cpu: 0.5` → the agent's cpu group gets half a CPU of quota.
#[test]
fn cgroup_cpu_quota_comes_from_the_policy() {
    if skip_unless_root("cgroup_cpu_quota") {
        return;
    }
    let k = TestKernel::start();
    let policy = limited_policy(&k, "half-cpu", "cpu: 0.5");
    let id = k.spawn(&policy, &["park"]);
    k.wait_for_line(id, "ready");
    let layer = agent_cgroup_layer(&k, id);
    assert!(
        layer["detail"]
            .as_str()
            .unwrap_or("")
            .contains("cpu 0.5 core"),
        "{layer}"
    );
    let cpu_dir = agent_group_dirs(&k, id)
        .into_iter()
        .find(|d| d.join("cpu.cfs_quota_us").exists() || d.join("cpu.max").exists());
    if let Some(dir) = cpu_dir {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        if dir.join("cpu.max").exists() {
            assert_eq!(read("cpu.max").trim(), "50000 100000");
        } else {
            let period: u64 = read("cpu.cfs_period_us").trim().parse().unwrap();
            let quota: u64 = read("cpu.cfs_quota_us").trim().parse().unwrap();
            assert_eq!(quota * 2, period, "quota {quota} of period {period}");
        }
    } else {
        println!("cgroup_cpu_quota: no cpu controller on this host; the detail was checked");
    }
    k.ctl_ok(&["kill", &id.to_string()]);
    k.wait(id);
}

#[test]
fn cgroup_fork_bomb_under_a_root_kernel_is_stopped_by_pids_max() {
    if skip_unless_root("cgroup_fork_bomb") {
        return;
    }
    let k = TestKernel::start();
    assert_eq!(kernel_cgroup_layer(&k)["status"], "active");
    let policy = limited_policy(&k, "bomb", "processes: 32");
    let id = k.spawn(&policy, &["attack", "fork-bomb"]);
    let dirs = agent_group_dirs(&k, id);
    assert_kernel_answers(&k);
    let line = k.wait_for_line(id, "attack fork-bomb:");
    println!("{line}");
    assert!(line.ends_with(": blocked EAGAIN"), "{line}");
    assert_kernel_answers(&k);
    let layer = agent_cgroup_layer(&k, id);
    assert_eq!(layer["status"], "active", "{layer}");
    assert!(
        layer["detail"]
            .as_str()
            .unwrap_or("")
            .contains("pids.max 32"),
        "{layer}"
    );
    // The bomb holds its processes until killed: the sample sees the group full.
    wait_until("the process-limit event", || {
        k.records().iter().any(|r| {
            r.agent.map(|a| a.0) == Some(id)
                && matches!(&r.event, RecordEvent::SandboxLimit { resource, .. } if resource == "processes")
        })
    });
    let launcher = k.launcher_pid(id);
    k.ctl_ok(&["kill", &id.to_string()]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "killed", "{last}");
    assert!(agentos_tests::wait_pid_gone(
        launcher,
        agentos_tests::DEADLINE
    ));
    assert!(
        agentos_tests::descendants(launcher).is_empty(),
        "processes of the agent remain"
    );
    // The groups are removed before the agent's end is published.
    for d in &dirs {
        assert!(!d.exists(), "{} is left behind", d.display());
    }
    assert_kernel_answers(&k);
    // The group seen full, and the group's own count of the refused forks (read before it
    // was removed).
    let live = k.limit_event_before_exit(id, "processes", &["sample"]);
    assert!(
        matches!(&live, RecordEvent::SandboxLimit { limit: 32, used: 32, detail, .. }
            if detail.contains("pids.max")),
        "{live:?}"
    );
    let counted = k.limit_event_before_exit(id, "processes", &["cgroup"]);
    assert!(
        matches!(&counted, RecordEvent::SandboxLimit { used, detail, .. }
            if *used >= 1 && detail.contains("pids.events")),
        "{counted:?}"
    );
}

#[test]
fn cgroup_memory_bomb_is_oom_killed_and_the_kernel_goes_on() {
    if skip_unless_root("cgroup_memory_bomb") {
        return;
    }
    let k = TestKernel::start();
    // RLIMIT_AS far above the cgroup limit: the memory cgroup is what stops the bomb.
    let policy = limited_policy(&k, "membomb", "address_space: 64GiB, memory: 128MiB");
    let id = k.spawn(&policy, &["attack", "memory-bomb"]);
    assert_kernel_answers(&k);
    let last = k.wait(id);
    assert_eq!(last["exit"]["kind"], "posix_signal", "{last}");
    assert_eq!(last["exit"]["signal"], 9, "{last}");
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    assert!(!log.contains("ESCAPED"), "{log}");
    let layer = agent_cgroup_layer(&k, id);
    assert!(
        layer["detail"]
            .as_str()
            .unwrap_or("")
            .contains("memory 128MiB"),
        "{layer}"
    );
    assert_kernel_answers(&k);
    // The OOM kill, as the group counted it before it was removed.
    let event = k.limit_event_before_exit(id, "memory", &["cgroup"]);
    assert!(
        matches!(&event, RecordEvent::SandboxLimit { limit, used, detail, .. }
            if *limit == 128 << 20 && *used >= 1 && detail.contains("killed")),
        "{event:?}"
    );
    // The kernel still spawns and serves agents.
    let policy = write_policy(&k.work, "after", "strict", SIGNALS, "");
    let next = k.spawn(&policy, &["echo"]);
    assert_eq!(k.wait(next)["exit"]["code"], 0);
}

#[test]
fn ps_json_shows_cgroup_usage_of_a_running_agent() {
    if skip_unless_root("ps_json_usage") {
        return;
    }
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "park", "strict", SIGNALS, "");
    let id = k.spawn(&policy, &["fork-tree", "2"]);
    k.wait_for_line(id, "ready");
    // launcher, init, agent, 2 sleeps, sh and its 2 sleeps (threads count too); `ready` comes
    // before the sh has started its own sleeps, so the count is awaited.
    let mut row = Value::Null;
    wait_until("the agent's whole tree in ps --json", || {
        let rows: Value = serde_json::from_str(&k.ctl_ok(&["ps", "--json"])).expect("json");
        row = rows
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .expect("row");
        row["usage"]["pids"].as_u64().unwrap_or(0) >= 8
    });
    assert!(
        row["usage"]["memory_bytes"].as_u64().unwrap_or(0) > 0,
        "{row}"
    );
    let info = k.info(id);
    assert!(info["usage"]["pids"].as_u64().unwrap_or(0) >= 8, "{info}");
    let table = k.ctl_ok(&["ps"]);
    assert!(table.contains("PIDS") && table.contains("MiB"), "{table}");
    k.ctl_ok(&["kill", &id.to_string()]);
    let last = k.wait(id);
    assert!(last["usage"].is_null(), "{last}");
}

#[test]
fn cgroup_layer_is_active_as_root_and_missing_with_the_reason_unprivileged() {
    if is_root() {
        let k = TestKernel::start();
        let layer = kernel_cgroup_layer(&k);
        assert_eq!(layer["status"], "active", "{layer}");
        let detail = layer["detail"].as_str().unwrap_or("");
        assert!(detail.contains("pids.max 128"), "{layer}");
        let policy = write_policy(&k.work, "echo", "strict", SIGNALS, "");
        let id = k.spawn(&policy, &["echo"]);
        let agent = agent_cgroup_layer(&k, id);
        assert_eq!(agent["status"], "active", "{agent}");
        assert!(
            agent["detail"]
                .as_str()
                .unwrap_or("")
                .contains("pids,memory"),
            "{agent}"
        );
        assert_eq!(k.wait(id)["exit"]["code"], 0);
    }
    let k = TestKernel::start_unprivileged();
    let layer = kernel_cgroup_layer(&k);
    assert_eq!(layer["status"], "missing", "{layer}");
    let detail = layer["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with("rlimits only: "), "{layer}");
    assert!(
        detail.contains("not writable") || detail.contains("delegate"),
        "{layer}"
    );
    let text = k.ctl_ok(&["kernel", "status"]);
    assert!(text.contains("cgroup"), "{text}");
    // Spawns still work without a cgroup.
    let policy = write_policy(&k.work, "echo", "strict", SIGNALS, "");
    let id = k.spawn(&policy, &["echo"]);
    let last = k.wait(id);
    assert_eq!(last["exit"]["code"], 0, "{last}");
    let agent = agent_cgroup_layer(&k, id);
    assert_eq!(agent["status"], "missing", "{agent}");
    assert!(
        agent["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("rlimits only: "),
        "{agent}"
    );
}

//! Day-to-day operations with real kernels and agents: `logs` without a kernel, a plain
//! `kernel.log` named by `kernel status`, `ps` (live, `-a`, filters), `rm`/`prune`,
//! `completions`/`man`, the checks before spawn, `--state-dir` and `--` mistakes, and the
//! read-only `memory`/`checkpoints` views.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agentos_tests::{binary, wait_until, write_policy, TestKernel};
use serde_json::Value;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `agentctl --state-dir DIR ARGS` without a kernel fixture.
fn ctl_on(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("agentctl"))
        .arg("--state-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

const MEMORY_RW: &str = "  - name: mem-rw\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/mem/**\"]\n  - name: mem-ro\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/mem/**\", \"/state/**\", \"/state\"]\n";

/// The ids `ps ARGS --json` lists.
fn ps_ids(k: &TestKernel, args: &[&str]) -> Vec<u64> {
    let out = k.ctl(&[&["ps", "--json"], args].concat());
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect()
}

fn stop_kernel(k: &TestKernel) {
    k.ctl_ok(&["kernel", "stop"]);
}

#[test]
fn logs_are_read_from_disk_when_no_kernel_runs() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "logs", "strict", &[], "");
    let id = k.spawn_with(&policy, &["--name", "talker"], &["echo"]);
    assert_eq!(k.wait(id)["exit"]["code"], 0);
    let live = k.ctl_ok(&["logs", "talker"]);
    assert!(!live.is_empty());
    stop_kernel(&k);

    // By name and by id, the same bytes as the kernel served.
    for who in ["talker", &id.to_string()] {
        let out = k.ctl(&["logs", who]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(stdout(&out), live);
    }
    // -f has nothing to wait for: the log, then a note, and the command ends.
    let out = k.ctl(&["logs", "-f", "talker"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout(&out), live);
    assert!(stderr(&out).contains("has ended"), "{}", text(&out));
    // An agent never spawned here is not found (exit 4) and the message says where it looked.
    let out = k.ctl(&["logs", "nobody"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("no agent nobody on record"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_detached_kernel_logs_plain_text_and_status_names_the_file() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "plain", "strict", &[], "");
    let id = k.spawn(&policy, &["echo"]);
    k.wait(id);
    let log = k.state_dir.join("kernel.log");
    wait_until("the kernel logged the agent's end", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("agent ended"))
    });
    let bytes = std::fs::read(&log).unwrap();
    assert!(!bytes.is_empty());
    assert!(
        !bytes.contains(&0x1b),
        "ESC in kernel.log:\n{}",
        String::from_utf8_lossy(&bytes)
    );
    let status = k.ctl_ok(&["kernel", "status"]);
    assert!(
        status.contains(&format!("log:       {}", log.display())),
        "{status}"
    );
    let v: Value = serde_json::from_str(&k.ctl_ok(&["kernel", "status", "--json"])).unwrap();
    assert_eq!(v["log"], log.display().to_string(), "{v}");
}

#[test]
fn ps_shows_live_agents_by_default_every_agent_with_a_and_filters() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "ps", "strict", &["SIGTERM"], "");
    let live = k.spawn_with(&policy, &["--name", "live"], &["park"]);
    k.wait_for_line(live, "ready");
    let done = k.spawn_with(&policy, &["--name", "done"], &["echo"]);
    k.wait(done);

    assert_eq!(ps_ids(&k, &[]), [live]);
    let out = k.ctl(&["ps"]);
    assert!(stdout(&out).contains("live") && !stdout(&out).contains("done"));
    assert!(
        stderr(&out).contains("1 ended agent not shown: `agentctl ps -a` lists it"),
        "{}",
        text(&out)
    );
    assert_eq!(ps_ids(&k, &["-a"]), [live, done]);
    assert_eq!(ps_ids(&k, &["--all"]), [live, done]);
    assert_eq!(ps_ids(&k, &["--state", "exited"]), [done]);
    assert_eq!(ps_ids(&k, &["--state", "running,exited"]), [live, done]);
    assert_eq!(ps_ids(&k, &["--state", "stopped"]), Vec::<u64>::new());
    assert_eq!(ps_ids(&k, &["-a", "--name", "done"]), [done]);
    assert_eq!(ps_ids(&k, &["--name", "done"]), Vec::<u64>::new());
    let out = k.ctl(&["ps", "--state", "bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // With no kernel, `ps` says so; `ps -a` lists what is on record, all ended.
    k.ctl_ok(&["kill", &live.to_string()]);
    k.wait(live);
    stop_kernel(&k);
    let out = k.ctl(&["ps"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("`agentctl ps -a` lists the 2 agents on record"));
    assert_eq!(ps_ids(&k, &["-a"]), [live, done]);
    let rows: Value = serde_json::from_slice(&k.ctl(&["ps", "-a", "--json"]).stdout).unwrap();
    assert_eq!(rows[0]["name"], "live");
    assert_eq!(rows[0]["state"], "exited");
    assert_eq!(rows[0]["exit"]["signal"], "SIGKILL");
    assert_eq!(rows[1]["exit"]["code"], 0);
    // Its counters as they were when it ended.
    assert!(rows[1]["syscalls"].as_u64().unwrap() > 0, "{rows}");
    assert_eq!(rows[1]["syscalls"], rows[1]["allowed"]);
}

/// Every file under `dir` with its length and modification time.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.insert(e.path(), (m.len(), m.modified().unwrap()));
        }
    }
    out
}

#[test]
fn rm_and_prune_forget_ended_agents_refuse_live_ones_and_keep_the_recorder() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "rm", "strict", &["SIGTERM"], "");
    let live = k.spawn_with(&policy, &["--name", "live"], &["park"]);
    k.wait_for_line(live, "ready");
    let a = k.spawn_with(&policy, &["--name", "a"], &["echo"]);
    let b = k.spawn(&policy, &["echo"]);
    k.wait(a);
    k.wait(b);
    let recorder_before = tree(&k.recorder_dir());
    let records_before = k.records().len();

    // A live agent is refused, and the whole request removes nothing.
    let out = k.ctl(&["rm", "a", "live"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("agent {live} (live) is running")),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("nothing was removed"));
    assert_eq!(ps_ids(&k, &["-a"]), [live, a, b]);
    let out = k.ctl(&["rm", "ghost"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));

    // `rm` by name: its row and its dir go.
    let out = k.ctl(&["rm", "a"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout(&out), format!("forgot agent {a}\n"));
    assert!(!k.state_dir.join(format!("agents/{a}")).exists());
    assert_eq!(ps_ids(&k, &["-a"]), [live, b]);
    let out = k.ctl(&["logs", &a.to_string()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));

    // `prune --older-than` keeps what ended recently; `prune` forgets every ended agent.
    assert_eq!(
        k.ctl_ok(&["prune", "--older-than", "1h"]),
        "nothing to forget\n"
    );
    let out = k.ctl(&["prune", "--older-than", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(k.ctl_ok(&["prune"]), format!("forgot agent {b}\n"));
    assert_eq!(ps_ids(&k, &["-a"]), [live]);

    // The flight recorder is untouched: every segment byte as it was, and it still verifies
    // with the forgotten agents' records in it.
    let after = tree(&k.recorder_dir());
    for (path, before) in &recorder_before {
        let now = after
            .get(path)
            .unwrap_or_else(|| panic!("{} gone", path.display()));
        assert!(now.0 >= before.0, "{} shrank", path.display());
    }
    let records = k.records();
    assert!(records.len() >= records_before);
    assert!(records
        .iter()
        .any(|r| r.agent == Some(agentos_syscalls::AgentId(a))));

    // A forgotten id is never given again, even by a kernel started afresh.
    k.ctl_ok(&["kill", &live.to_string()]);
    k.wait(live);
    stop_kernel(&k);
    // Without a kernel the agents on disk are forgotten under the kernel's lock.
    assert_eq!(k.ctl_ok(&["rm", "live"]), format!("forgot agent {live}\n"));
    k.restart(&[]);
    let next = k.spawn(&policy, &["echo"]);
    assert!(next > b, "id {next} given again (after {b})");
}

#[test]
fn completions_and_the_man_page_name_every_subcommand() {
    let help = Command::new(binary("agentctl"))
        .arg("--help")
        .output()
        .unwrap();
    let help = stdout(&help);
    let subcommands = [
        "kernel",
        "run",
        "spawn",
        "ps",
        "inspect",
        "logs",
        "wait",
        "signal",
        "kill",
        "stop",
        "cont",
        "approvals",
        "approve",
        "deny",
        "policy",
        "recorder",
        "replay",
        "rm",
        "prune",
        "memory",
        "checkpoints",
        "completions",
        "man",
    ];
    for sub in subcommands {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
            "`{sub}` missing from --help:\n{help}"
        );
    }
    let bash = Command::new(binary("agentctl"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(bash.status.code(), Some(0));
    let bash = stdout(&bash);
    assert!(bash.contains("complete -F _agentctl"), "{bash}");
    // The top level offers every subcommand, and each has its own case.
    let top = bash
        .lines()
        .find(|l| l.trim_start().starts_with("opts=\"-h -V --state-dir"))
        .unwrap_or_else(|| panic!("no top-level opts line:\n{bash}"));
    let offered: Vec<&str> = top.split(['"', ' ']).collect();
    for sub in subcommands {
        assert!(offered.contains(&sub), "`{sub}` not offered: {top}");
        assert!(
            bash.contains(&format!("agentctl,{sub})")),
            "`{sub}` has no case in the bash completions"
        );
    }
    assert!(bash.contains("agentctl__subcmd__memory,ls)"));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(binary("agentctl"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(stdout(&out).contains("checkpoints"), "{shell}");
    }
    // The state dir does not matter to them, even a wrong one.
    let out = Command::new(binary("agentctl"))
        .args(["--state-dir", "/etc/hostname", "completions", "fish"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let man = Command::new(binary("agentctl"))
        .arg("man")
        .output()
        .unwrap();
    assert_eq!(man.status.code(), Some(0));
    let man = stdout(&man);
    assert!(man.contains(".TH agentctl 1"), "{man}");
    for sub in subcommands {
        assert!(
            man.contains(&format!(".SH \"AGENTCTL {}\"", sub.to_uppercase())),
            "`{sub}` has no section in the man page"
        );
    }
    // Nested commands too, with their options.
    assert!(man.contains(".SH \"AGENTCTL MEMORY LS\""));
    assert!(man.contains(".SH \"AGENTCTL KERNEL START\""));
    assert!(man.contains("\\-\\-older\\-than"));
}

#[test]
fn spawn_refuses_a_directory_a_non_executable_and_a_file_exec_cannot_run() {
    use std::os::unix::fs::PermissionsExt;
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "checks", "strict", &[], "");
    let dir = k.work.join("a-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let plain = k.work.join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text_file = k.work.join("hostname");
    std::fs::write(&text_file, "myhost\n").unwrap();
    std::fs::set_permissions(&text_file, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cases = [
        (dir.clone(), "is a directory"),
        (plain.clone(), "is not executable"),
        (
            text_file.clone(),
            "is neither an ELF executable nor a `#!` script (exec format error)",
        ),
        (
            PathBuf::from("/etc/hostname"),
            "is neither an ELF executable nor a `#!` script (exec format error)",
        ),
    ];
    for (program, why) in &cases {
        if !program.exists() {
            continue;
        }
        let shown = program.canonicalize().unwrap();
        let out = k.ctl(&[
            "spawn",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            program.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let want = format!("spawn refused: {} {why}", shown.display());
        assert!(
            stderr(&out).contains(&want),
            "want `{want}` in:\n{}",
            text(&out)
        );
        assert!(stderr(&out).contains("hint: "), "{}", text(&out));
    }
    // No agent was registered, none got a dir.
    assert_eq!(ps_ids(&k, &["-a"]), Vec::<u64>::new());
    let dirs: Vec<_> = std::fs::read_dir(k.state_dir.join("agents"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");
    // The refusals are in the flight recorder.
    let refused = k
        .records()
        .iter()
        .filter(|r| {
            matches!(
                r.event,
                agentos_kernel::recorder::RecordEvent::SpawnRefused { .. }
            )
        })
        .count();
    assert!(refused >= 3, "{refused} refusals recorded");
    // A script with its x bit still runs.
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = k.ctl(&[
        "spawn",
        "--policy",
        policy.to_str().unwrap(),
        "--",
        plain.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // `run` (its own kernel) refuses the same way.
    let state = tempfile::tempdir().unwrap();
    let out = ctl_on(
        &state.path().join("s"),
        &[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            text_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("exec format error"), "{}", text(&out));
}

#[test]
fn a_state_dir_that_is_a_file_says_what_is_wrong() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let policy = write_policy(root.path(), "p", "strict", &[], "");
    for args in [
        &["ps"][..],
        &["kernel", "start"],
        &["logs", "1"],
        &[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "/bin/true",
        ],
    ] {
        let out = ctl_on(&file, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(&format!(
                "the state dir {} is a file, not a directory",
                file.display()
            )),
            "{args:?}: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("hint: give --state-dir"),
            "{}",
            text(&out)
        );
        assert!(!text(&out).contains("File exists"), "{}", text(&out));
    }
    let below = file.join("state");
    let out = ctl_on(&below, &["kernel", "start"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{} is a file, not a directory", file.display())),
        "{}",
        text(&out)
    );
}

#[test]
fn forgetting_the_double_dash_hints_where_to_put_it() {
    let out = Command::new(binary("agentctl"))
        .args(["run", "--policy", "p.md", "./agent", "--flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains(
            "hint: put `--` before the program and its arguments: agentctl run --policy p.md -- ./agent --flag"
        ),
        "{}",
        text(&out)
    );
    let out = Command::new(binary("agentctl"))
        .args(["spawn", "--name", "x", "/bin/echo", "hi there"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("agentctl spawn --name x -- /bin/echo 'hi there'"),
        "{}",
        text(&out)
    );
    // Other usage errors get no such hint.
    let out = Command::new(binary("agentctl"))
        .args(["ps", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("put `--`"), "{}", text(&out));
}

#[test]
fn memory_and_checkpoints_show_what_an_agent_kept_without_changing_the_state_dir() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "mem", "strict", &["SIGTERM"], MEMORY_RW);
    let id = k.spawn_with(
        &policy,
        &["--name", "keeper"],
        &[
            "ops",
            "write=/mem/episodic/notes/day1=remember \u{1b}[31mred",
            "write=/mem/episodic/evil\u{1b}[2J=x",
            "write=/mem/semantic/facts=water is wet",
            "write=/mem/working/w.txt=work",
            "checkpoint",
            "write=/mem/working/w.txt=changed",
            "write=/mem/working/more=12345",
            "checkpoint",
            "park",
        ],
    );
    k.wait_for_line(id, "ready");

    // While the kernel runs (and holds memory.redb), from a copy.
    let out = k.ctl(&["memory", "ls", "keeper", "/mem/episodic"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ls = stdout(&out);
    assert!(ls.contains("dir            -  notes"), "{ls}");
    // An agent-chosen name is escaped.
    assert!(ls.contains("evil\\x1b[2J"), "{ls}");
    assert!(!ls.contains('\u{1b}'), "{ls}");
    let out = k.ctl(&["memory", "cat", "keeper", "/mem/episodic/notes/day1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Piped: the bytes as the agent wrote them (escaped only on a terminal, as `logs`).
    assert_eq!(out.stdout, "remember \u{1b}[31mred".as_bytes());
    assert_eq!(
        k.ctl_ok(&["memory", "cat", &id.to_string(), "/mem/semantic/facts"]),
        "water is wet"
    );

    // Checkpoints, with the working memory as of the latest or a chosen one.
    let cps: Value = serde_json::from_str(&k.ctl_ok(&["checkpoints", "keeper", "--json"])).unwrap();
    let cps = cps.as_array().unwrap();
    assert_eq!(cps.len(), 2, "{cps:?}");
    assert_eq!(
        (cps[0]["number"].as_u64(), cps[0]["files"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(cps[0]["bytes"], 4);
    assert_eq!(
        (cps[1]["files"].as_u64(), cps[1]["bytes"].as_u64()),
        (Some(2), Some(12))
    );
    assert!(cps[1]["taken_ms"].as_u64().unwrap() >= cps[0]["taken_ms"].as_u64().unwrap());
    assert!(cps[0]["disk_bytes"].as_u64().unwrap() > 0);
    let table = k.ctl_ok(&["checkpoints", "keeper"]);
    assert!(table.starts_with("N     TAKEN (UTC)"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    assert_eq!(
        k.ctl_ok(&["memory", "cat", "keeper", "/mem/working/w.txt"]),
        "changed"
    );
    assert_eq!(
        k.ctl_ok(&[
            "memory",
            "cat",
            "keeper",
            "/mem/working/w.txt",
            "--checkpoint",
            "1"
        ]),
        "work"
    );
    assert_eq!(
        k.ctl_ok(&["memory", "cat", "keeper", "/state/checkpoints/1/w.txt"]),
        "work"
    );
    let out = k.ctl(&["memory", "cat", "keeper", "/mem/working/nothing"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let out = k.ctl(&["memory", "ls", "keeper", "/workspace"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));

    // Without a kernel, the same answers, and not one file of the state dir changes.
    k.ctl_ok(&["kill", "keeper"]);
    k.wait(id);
    stop_kernel(&k);
    let before = tree(&k.state_dir);
    let ls = k.ctl_ok(&["memory", "ls", "keeper"]);
    assert_eq!(
        ls.lines()
            .map(|l| l.rsplit("  ").next().unwrap())
            .collect::<Vec<_>>(),
        ["episodic", "semantic", "working"]
    );
    assert_eq!(
        k.ctl_ok(&["memory", "cat", "keeper", "/mem/episodic/notes/day1"]),
        "remember \u{1b}[31mred"
    );
    assert_eq!(
        k.ctl_ok(&["memory", "ls", "keeper", "/mem/working"])
            .lines()
            .count(),
        2
    );
    assert_eq!(k.ctl_ok(&["checkpoints", "keeper"]).lines().count(), 3);
    assert_eq!(
        tree(&k.state_dir),
        before,
        "a read-only view changed the state dir"
    );

    // An unnamed agent's persistent memory ends with it; the message says so.
    k.restart(&[]);
    let anon = k.spawn(&policy, &["ops", "write=/mem/episodic/x=1"]);
    k.wait(anon);
    let out = k.ctl(&["memory", "cat", &anon.to_string(), "/mem/episodic/x"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("an unnamed agent's persistent memory ends with it"));
    let out = k.ctl(&["checkpoints", &anon.to_string()]);
    assert!(stdout(&out).contains("has no checkpoint"), "{}", text(&out));
}

#[test]
fn a_state_dir_this_user_cannot_write_says_so_before_a_kernel_starts() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = root.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    // Root may write anywhere: the check is made as another user then (with a copy of
    // agentctl that user can run, outside a possibly private checkout).
    let as_root = agentos_tests::is_root();
    let copy = root.path().join("agentctl");
    let uid = if as_root {
        std::fs::copy(binary("agentctl"), &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        65534
    } else {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        rustix::process::geteuid().as_raw()
    };
    let start_on = |dir: &Path| {
        let mut c = if as_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&copy);
            c
        } else {
            Command::new(binary("agentctl"))
        };
        c.arg("--state-dir")
            .arg(dir)
            .args(["kernel", "start"])
            .output()
            .unwrap()
    };
    for (dir, what) in [
        (
            locked.clone(),
            format!(
                "the state dir {} is not writable by uid {uid}",
                locked.display()
            ),
        ),
        (
            locked.join("sub"),
            format!(
                "the state dir {} cannot be created: {} is not writable by uid {uid}",
                locked.join("sub").display(),
                locked.display()
            ),
        ),
    ] {
        let out = start_on(&dir);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains(&what),
            "want `{what}` in:\n{}",
            text(&out)
        );
        assert!(
            text(&out).contains("hint: choose a --state-dir you own"),
            "{}",
            text(&out)
        );
    }
}

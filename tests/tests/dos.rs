//! The kernel defends itself (`cargo test -p agentos-tests --test dos`): every class of attack an ordinary agent can make on the kernel,
//! each run by a real jailed attacker (Rust, and Python where the SDK can express it) while an
//! honest neighbour measures its round trips. For each attack the suite asserts:
//!
//! - the neighbour's p99 round trip stays within [`P99_BUDGET`] (DESIGN §10's isolation budget);
//! - `agentctl ps` answers within [`PS_BUDGET`] every time it is asked during the attack;
//!
//!   (both ×4 in an unoptimized build, [`BUILD_SLACK`], and never below [`IDLE_FACTOR`]
//!   times the same measure taken idle just before; `benches/benches/isolation.rs` measures the
//!   optimized kernel against the budget itself);
//! - the kernel's resident memory (VmRSS, sampled during the attack, and the peak VmHWM) stays
//!   within [`RSS_BUDGET`] of its baseline;
//! - what the attack made the host keep on disk under the state dir stays within the agent's
//!   disk budget (the budgets are set small on the kernel's command line so the suite reaches
//!   them quickly);
//! - the flight recorder still verifies (`agentctl recorder verify` exits 0 after the kernel's
//!   stop), with the attacker's records in it.
//!
//! The attacks are `agentos-test-agent dos ATTACK` (see `agentos_tests::dos_modes`) and
//! `tests/attacks/dos.py`. The classes: a FIFO in the workspace (freezing the runtime), paths
//! of a MiB (superlinear work), a 15 MiB `Exec` argument (an unverifiable record), a
//! zero-permission agent filling the disk (scratch, stdout, `CheckPolicy` strings,
//! checkpoints), and kernel memory (pipelined answers never read, large and small, long names, an `Exec` frame of
//! millions of empty arguments).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is a failed test

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentos_tests::{disk_bytes, write_policy, TestKernel};

/// The honest neighbour's p99 round trip while another agent attacks (DESIGN §10).
const P99_BUDGET: Duration = Duration::from_millis(5);
/// How long `agentctl ps` may take while an agent attacks.
const PS_BUDGET: Duration = Duration::from_millis(200);
/// How far the kernel's memory may grow over its baseline while an agent attacks.
const RSS_BUDGET_KIB: u64 = 64 << 10;
/// Round trips the neighbour times.
const VICTIM_CALLS: &str = "3000";
/// The suite runs debug builds beside other tests on a 2-core machine: a latency bound is the
/// budget or this many times the same measure taken idle on the same kernel just before the
/// attack, whichever is larger. A frozen kernel or superlinear work shows up as seconds either
/// way; the absolute budget in an optimized build is `benches/benches/isolation.rs`'s.
const IDLE_FACTOR: u32 = 4;
/// An unoptimized build (`cargo test`'s default: kernel, SDK and agents alike) does several
/// times the work per call of the optimized one the budget is stated for, and an attacker that
/// only burns CPU (`scratch-fill`) then shows the host scheduler's slices in the neighbour's
/// tail (p99 up to 17 ms measured on 2 cores, 0.3 ms optimized): there the budgets are
/// quadrupled. The bench measures the optimized kernel against the budget itself.
const BUILD_SLACK: u32 = if cfg!(debug_assertions) { 4 } else { 1 };

/// One attack at a time: two at once would measure each other, not the kernel.
static ONE_ATTACK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The disk budgets the zero-permission attacks run under (kernel flags), and their sum.
const LOG_BYTES: u64 = 1 << 20;
const CHECKPOINT_BYTES: u64 = 1 << 20;
const RECORDER_SHARE: u64 = 8 << 20;
const SCRATCH_BYTES: u64 = 8 << 20;
/// What the host may keep for one zero-permission agent: its output log, its checkpoints and
/// its share of the recorder (its scratch is a tmpfs and leaves nothing), plus the records of
/// the victim and the kernel's own bookkeeping.
const DISK_BUDGET: u64 = LOG_BYTES + CHECKPOINT_BYTES + RECORDER_SHARE + (2 << 20);

fn budget_flags() -> Vec<String> {
    vec![
        format!("--log-bytes={LOG_BYTES}"),
        format!("--checkpoint-bytes={CHECKPOINT_BYTES}"),
        format!("--recorder-share-bytes={RECORDER_SHARE}"),
        format!("--scratch-bytes={SCRATCH_BYTES}"),
    ]
}

/// A field of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Runs `agentctl ARGS` and returns its stdout and how long it took; a kernel that does not
/// answer within 20 s (frozen) fails the test instead of hanging it.
fn timed_ctl(k: &TestKernel, args: &[&str]) -> (String, Duration) {
    use std::process::{Command, Stdio};
    let start = Instant::now();
    let mut child = Command::new(&k.agentctl)
        .arg("--state-dir")
        .arg(&k.state_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run agentctl");
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!(
                "`agentctl {}` got no answer in 20 s: the kernel is frozen",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = start.elapsed();
    let out = child.wait_with_output().expect("agentctl output");
    assert!(
        out.status.success(),
        "agentctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

/// What one attack did to the kernel and its neighbour.
#[derive(Debug)]
struct Under {
    attack: String,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    ps_max: Duration,
    /// The same measures on the same kernel before the attack.
    idle_p99_us: u64,
    idle_ps_max: Duration,
    rss_growth_kib: u64,
    hwm_growth_kib: u64,
    disk_growth: u64,
}

/// One attack scenario.
struct Scenario<'a> {
    name: &'a str,
    /// Extra policy rules (YAML under `policies:`), or `None` for `policies: []`.
    rules: Option<&'a str>,
    /// The attacker's argv after the program (`dos ATTACK …`, or a Python script's args).
    argv: Vec<String>,
    /// Spawn the attacker with `python3` and this script instead of the test agent.
    python: bool,
    /// Give the attacker this workspace.
    workspace: Option<PathBuf>,
}

fn zero_permission_policy(k: &TestKernel, name: &str) -> PathBuf {
    let path = k.work.join(format!("{name}.md"));
    std::fs::write(
        &path,
        "---\nkernel:\n  version: \"1.0\"\n  mode: strict\nsignals: []\npolicies: []\n---\n",
    )
    .unwrap();
    path
}

fn spawn_attacker(k: &TestKernel, s: &Scenario) -> u64 {
    let policy = match s.rules {
        Some(rules) => write_policy(&k.work, s.name, "permissive", &[], rules),
        None => zero_permission_policy(k, s.name),
    };
    let mut args: Vec<String> = vec![
        "spawn".into(),
        "--policy".into(),
        policy.display().to_string(),
    ];
    if let Some(ws) = &s.workspace {
        args.push("--workspace".into());
        args.push(ws.display().to_string());
    }
    args.push("--".into());
    if s.python {
        args.push("/usr/bin/python3".into());
        args.push(py_script(k).display().to_string());
    } else {
        args.push(k.agent_bin.display().to_string());
    }
    args.extend(s.argv.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    k.ctl_ok(&refs).trim().parse().expect("agent id")
}

/// `tests/attacks/dos.py`, copied where every kernel user can read it.
fn py_script(k: &TestKernel) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = k.work.join("dos-py");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join("dos.py");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("attacks/dos.py"),
        &script,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    script
}

/// The `victim …` line of the neighbour's log, parsed.
fn victim_result(k: &TestKernel, id: u64) -> (u64, u64, u64) {
    let log = k.ctl_ok(&["logs", &id.to_string()]);
    let line = log
        .lines()
        .find(|l| l.starts_with("victim n="))
        .unwrap_or_else(|| panic!("the victim printed no result: {log}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in `{line}`"))
    };
    (field("p50_us="), field("p99_us="), field("max_us="))
}

/// Runs one attack against a fresh kernel and measures it; the kernel is stopped and its
/// recorder verified before this returns.
fn run(s: &Scenario, unprivileged: bool, extra_flags: &[String]) -> Under {
    let _one = ONE_ATTACK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut flags = budget_flags();
    flags.extend(extra_flags.iter().cloned());
    let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let k = TestKernel::start_with(unprivileged, &refs);
    let kernel = k.kernel_pid();
    let victim_policy = write_policy(&k.work, "victim", "strict", &[], "");
    // A first neighbour warms the kernel up (its tables, its workers, the recorder) and
    // measures the idle floor.
    let warm = k.spawn(&victim_policy, &["victim", VICTIM_CALLS]);
    k.wait(warm);
    let (_, idle_p99_us, _) = victim_result(&k, warm);
    let idle_ps_max = (0..5)
        .map(|_| timed_ctl(&k, &["ps"]).1)
        .max()
        .unwrap_or_default();
    let rss0 = status_kib(kernel, "VmRSS:");
    let hwm0 = status_kib(kernel, "VmHWM:");
    let disk0 = disk_bytes(&k.state_dir);

    let attacker = spawn_attacker(&k, s);
    k.wait_for_line(attacker, "attacking");
    let victim = k.spawn(&victim_policy, &["victim", VICTIM_CALLS]);
    let mut ps_max = Duration::ZERO;
    let mut rss_max = rss0;
    loop {
        let (_, took) = timed_ctl(&k, &["ps"]);
        ps_max = ps_max.max(took);
        rss_max = rss_max.max(status_kib(kernel, "VmRSS:"));
        let (info, _) = timed_ctl(&k, &["inspect", &victim.to_string(), "--json"]);
        let info: serde_json::Value = serde_json::from_str(&info).expect("inspect --json");
        if !info["exit"].is_null() {
            break;
        }
        // Sampling pace: the probes (two agentctl processes each) must not be a load of
        // their own on a 2-core machine.
        std::thread::sleep(Duration::from_millis(50));
    }
    let (p50_us, p99_us, max_us) = victim_result(&k, victim);
    rss_max = rss_max.max(status_kib(kernel, "VmRSS:"));
    let hwm = status_kib(kernel, "VmHWM:");
    // The kernel may have ended the attacker already (a budget it spent).
    k.ctl(&["kill", &attacker.to_string()]);
    k.wait(attacker);
    let disk_growth = disk_bytes(&k.state_dir).saturating_sub(disk0);
    k.ctl_ok(&["kernel", "stop"]);
    let (code, v) = k.verify();
    assert_eq!(code, 0, "{}: the recorder does not verify: {v:#}", s.name);
    let under = Under {
        attack: s.name.to_string(),
        p50_us,
        p99_us,
        max_us,
        ps_max,
        idle_p99_us,
        idle_ps_max,
        rss_growth_kib: rss_max.saturating_sub(rss0),
        hwm_growth_kib: hwm.saturating_sub(hwm0),
        disk_growth,
    };
    println!(
        "{}: victim p50 {} µs p99 {} µs (idle {} µs) max {} µs; ps max {:?} (idle {:?}); kernel +{} KiB (peak +{} KiB); disk +{} bytes",
        under.attack,
        under.p50_us,
        under.p99_us,
        under.idle_p99_us,
        under.max_us,
        under.ps_max,
        under.idle_ps_max,
        under.rss_growth_kib,
        under.hwm_growth_kib,
        under.disk_growth
    );
    under
}

/// The isolation promises, for one measured attack.
fn assert_isolated(u: &Under) {
    let p99_bound = (P99_BUDGET.as_micros() as u64 * u64::from(BUILD_SLACK))
        .max(u.idle_p99_us * u64::from(IDLE_FACTOR));
    assert!(
        u.p99_us <= p99_bound,
        "{}: the neighbour's p99 round trip was {} µs (bound {p99_bound} µs: {P99_BUDGET:?} ×{BUILD_SLACK}, or {IDLE_FACTOR}× idle): {u:?}",
        u.attack,
        u.p99_us
    );
    let ps_bound = (PS_BUDGET * BUILD_SLACK).max(u.idle_ps_max * IDLE_FACTOR);
    assert!(
        u.ps_max <= ps_bound,
        "{}: `agentctl ps` took {:?} (bound {ps_bound:?}: {PS_BUDGET:?} ×{BUILD_SLACK}, or {IDLE_FACTOR}× idle): {u:?}",
        u.attack,
        u.ps_max
    );
    assert!(
        u.rss_growth_kib <= RSS_BUDGET_KIB && u.hwm_growth_kib <= RSS_BUDGET_KIB,
        "{}: the kernel grew by {} KiB (peak {} KiB; budget {RSS_BUDGET_KIB} KiB): {u:?}",
        u.attack,
        u.rss_growth_kib,
        u.hwm_growth_kib
    );
}

fn assert_disk_within(u: &Under, budget: u64) {
    assert!(
        u.disk_growth <= budget,
        "{}: the host kept {} bytes for the attacker (budget {budget}): {u:?}",
        u.attack,
        u.disk_growth
    );
}

const WORKING_RW: &str = "";
const EXEC_TRUE: &str = "  - name: true-tool\n    action: code_execution\n    effect: allow\n    constraints:\n      commands: [\"/bin/true\"]\n";
const WORKSPACE_RW: &str = "  - name: ws-rw\n    action: file_write\n    effect: allow\n    constraints:\n      paths: [\"/workspace/**\"]\n  - name: ws-ro\n    action: file_read\n    effect: allow\n    constraints:\n      paths: [\"/workspace\", \"/workspace/**\"]\n";

fn dos(attack: &str) -> Vec<String> {
    vec!["dos".into(), attack.into()]
}

/// A workspace holding a FIFO (`fifo`), readable by any kernel user.
fn fifo_workspace() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ws = root.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o777)).unwrap();
    nix::unistd::mkfifo(
        &ws.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    (root, ws)
}

#[test]
fn a_fifo_in_the_workspace_freezes_nothing() {
    let (_root, ws) = fifo_workspace();
    for python in [false, true] {
        let argv = if python {
            vec!["fifo".into(), "/workspace/fifo".into()]
        } else {
            vec!["dos".into(), "fifo".into(), "/workspace/fifo".into()]
        };
        let s = Scenario {
            name: if python { "fifo-py" } else { "fifo" },
            rules: Some(WORKSPACE_RW),
            argv,
            python,
            workspace: Some(ws.clone()),
        };
        assert_isolated(&run(&s, false, &[]));
    }
}

#[test]
fn a_fifo_in_the_workspace_freezes_nothing_under_an_unprivileged_kernel() {
    let (_root, ws) = fifo_workspace();
    let s = Scenario {
        name: "fifo-unprivileged",
        rules: Some(WORKSPACE_RW),
        argv: vec!["dos".into(), "fifo".into(), "/workspace/fifo".into()],
        python: false,
        workspace: Some(ws),
    };
    assert_isolated(&run(&s, true, &[]));
}

/// `agentos-test-agent dos long-path` times its first six calls: they are answered at once,
/// not after seconds of kernel work.
#[test]
fn a_mib_long_path_is_answered_at_once() {
    let k = TestKernel::start();
    let policy = write_policy(&k.work, "long", "permissive", &[], "");
    let id = k.spawn(&policy, &["dos", "long-path"]);
    let line = k.wait_for_line(id, "first answers after");
    let ms: u64 = line
        .split_whitespace()
        .nth(3)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no time in `{line}`"));
    assert!(
        ms < 1000,
        "six writes with 1 MiB paths took {ms} ms: {line}"
    );
}

#[test]
fn mib_long_paths_cost_linear_work() {
    for python in [false, true] {
        let s = Scenario {
            name: if python { "long-path-py" } else { "long-path" },
            rules: Some(WORKING_RW),
            argv: if python {
                vec!["long-path".into()]
            } else {
                dos("long-path")
            },
            python,
            workspace: None,
        };
        assert_isolated(&run(&s, false, &[]));
    }
}

#[test]
fn a_15_mib_exec_argument_leaves_a_verifiable_log() {
    for python in [false, true] {
        let s = Scenario {
            name: if python { "big-exec-py" } else { "big-exec" },
            rules: Some(EXEC_TRUE),
            argv: if python {
                vec!["big-exec".into()]
            } else {
                dos("big-exec")
            },
            python,
            workspace: None,
        };
        // `run` verifies the recorder after the attack.
        assert_isolated(&run(&s, false, &[]));
    }
}

#[test]
fn kernel_memory_is_bounded_per_agent() {
    for (name, rules, flags) in [
        ("pipeline", WORKING_RW, vec![]),
        ("small-pipeline", WORKING_RW, vec![]),
        (
            "long-names",
            WORKING_RW,
            vec!["--quota-bytes=8388608".to_string()],
        ),
        ("million-args", EXEC_TRUE, vec![]),
    ] {
        let s = Scenario {
            name,
            rules: Some(rules),
            argv: dos(name),
            python: false,
            workspace: None,
        };
        assert_isolated(&run(&s, false, &flags));
    }
}

#[test]
fn a_zero_permission_agent_keeps_at_most_its_disk_budget() {
    for (name, python) in [
        ("scratch-fill", false),
        ("stdout-flood", false),
        ("stdout-flood", true),
        ("checkpolicy-flood", false),
        ("checkpolicy-flood", true),
        ("checkpoint-flood", false),
        ("checkpoint-flood", true),
        ("scratch-fill", true),
    ] {
        let s = Scenario {
            name,
            rules: None,
            argv: if python { vec![name.into()] } else { dos(name) },
            python,
            workspace: None,
        };
        let u = run(&s, false, &[]);
        assert_isolated(&u);
        assert_disk_within(&u, DISK_BUDGET);
    }
}

#[test]
fn a_zero_permission_agent_keeps_at_most_its_disk_budget_under_an_unprivileged_kernel() {
    for name in ["scratch-fill", "stdout-flood", "checkpolicy-flood"] {
        let s = Scenario {
            name,
            rules: None,
            argv: dos(name),
            python: false,
            workspace: None,
        };
        let u = run(&s, true, &[]);
        assert_isolated(&u);
        assert_disk_within(&u, DISK_BUDGET);
    }
}

/// Calls refused before the judge (over a size bound) are records too: a flood of them is held
/// to the agent's share of the recorder like any other, and the agent is ended when it is
/// spent.
#[test]
fn a_flood_of_over_limit_calls_is_held_to_the_recorder_share() {
    const SHARE: u64 = 1 << 20;
    let k = TestKernel::start_with(false, &[&format!("--recorder-share-bytes={SHARE}")]);
    let policy = zero_permission_policy(&k, "flood");
    let before = disk_bytes(&k.recorder_dir());
    let id = k.spawn(&policy, &["dos", "checkpolicy-flood"]);
    let end = k.wait(id);
    assert_eq!(
        (&end["exit"]["kind"], &end["exit"]["signal"]),
        (
            &serde_json::Value::from("killed"),
            &serde_json::Value::from("SIGKILL")
        ),
        "{end:#}"
    );
    k.limit_event_before_exit(id, "recorder_bytes", &["syscall"]);
    let grown = disk_bytes(&k.recorder_dir()).saturating_sub(before);
    assert!(
        grown <= SHARE + (512 << 10),
        "the recorder grew by {grown} bytes for a share of {SHARE}"
    );
    k.ctl_ok(&["kernel", "stop"]);
    assert_eq!(k.verify().0, 0);
}

//! Shared harness for the agentos benches (DESIGN §10): an in-process kernel on a temp state
//! dir, CPU pinning, the ping-pong floor's child, and a small summary of medians.
//!
//! Modules: [`http`], the egress bench's loopback HTTP source and client; everything else
//! here is a helper for `benches/*.rs`.
//!
//! Invariants: every kernel it starts runs on a private temporary state dir (never
//! `/var/lib/agentos`) and is shut down by [`BenchKernel::shutdown`]; every agent is a real
//! jailed process spawned by that kernel.
//!
//! It must never be used outside benches: failures panic with a message, by design.

// Bench harness: a failure must abort the bench loudly, so unwrap/expect/panic are intended.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod http;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentos_kernel::{Config, Kernel};
use agentos_syscalls::control::{AgentInfo, AgentRef, ExitStatus, PolicySource, SpawnRequest};
use rustix::process::Pid;
use rustix::thread::CpuSet;

/// The policy every bench agent runs under: strict, with `/mem/working` readable and writable.
pub const POLICY: &str = r#"---
kernel:
  version: "1.0"
  mode: strict
signals: []
policies:
  - name: working-rw
    action: file_write
    effect: allow
    constraints:
      paths: ["/mem/working/**"]
  - name: working-ro
    action: file_read
    effect: allow
    mode: read_only
    constraints:
      paths: ["/mem/working", "/mem/working/**"]
  - name: true-tool
    action: code_execution
    effect: allow
    constraints:
      commands: ["/bin/true"]
observability:
  metrics: true
  traces: false
  flight_recorder: true
---

# agentos bench policy
"#;

/// [`POLICY`] plus reading and writing anywhere in `/workspace`.
pub const WORKSPACE_POLICY: &str = r#"---
kernel:
  version: "1.0"
  mode: strict
signals: []
policies:
  - name: workspace-rw
    action: file_write
    effect: allow
    constraints:
      paths: ["/workspace/**"]
  - name: workspace-ro
    action: file_read
    effect: allow
    constraints:
      paths: ["/workspace", "/workspace/**"]
---
"#;

/// The message size of every round trip.
pub const MSG: usize = 64;

/// Panics with the build command when `agentos-launch` was not built beside the bench.
pub fn require_launcher(config: &Config) {
    assert!(
        config.launcher.is_file(),
        "{} is missing: run `cargo build --release --workspace --bins` first",
        config.launcher.display()
    );
}

/// A CPU set holding exactly `cpus`.
pub fn cpu_set(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    set
}

/// Every CPU this machine has online.
pub fn all_cpus() -> Vec<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// Pins the calling thread.
pub fn pin_current_thread(cpus: &[usize]) {
    rustix::thread::sched_setaffinity(None, &cpu_set(cpus)).expect("sched_setaffinity");
}

/// Pins another process (or thread) by id.
pub fn pin_pid(pid: u32, cpus: &[usize]) {
    let pid = Pid::from_raw(pid as i32).expect("nonzero pid");
    rustix::thread::sched_setaffinity(Some(pid), &cpu_set(cpus)).expect("sched_setaffinity");
}

/// Pins every thread of this process and of every process below it (affinity is per thread;
/// new threads and processes inherit it from the thread that creates them): the kernel's
/// workers and spawner, and the zygote and the init it cloned ahead, whose clones are the
/// next agents. Two passes catch a thread or process created during the first.
pub fn pin_whole_process(cpus: &[usize]) {
    for _ in 0..2 {
        let mut pids = agentos_tests::descendants(std::process::id());
        pids.push(std::process::id());
        for entry in pids
            .into_iter()
            .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/task")).ok())
            .flatten()
            .flatten()
        {
            if let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                // A thread may end between the listing and the call.
                if let Some(pid) = Pid::from_raw(tid as i32) {
                    let _ = rustix::thread::sched_setaffinity(Some(pid), &cpu_set(cpus));
                }
            }
        }
    }
}

/// A cargo-built binary of this package, from the path cargo gives benches.
pub fn own_binary(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// `bench-agent`, for an example of this package (`target/release/examples/X`): it sits beside
/// the examples' directory (`target/release/bench-agent`).
pub fn bench_agent_beside_examples() -> PathBuf {
    let exe = std::env::current_exe().expect("this example's path");
    let agent = exe
        .parent()
        .and_then(|examples| examples.parent())
        .expect("an example lives in <target>/<profile>/examples")
        .join("bench-agent");
    assert!(agent.is_file(), "{} is missing", agent.display());
    agent
}

/// The ping-pong floor's other side: a `pingpong-echo` child holding one end of a socketpair.
#[derive(Debug)]
pub struct Echo {
    child: Child,
    sock: Option<UnixStream>,
}

impl Echo {
    /// Starts `pingpong-echo` with the child's end of a fresh `socketpair` as its descriptor 0.
    pub fn start(echo_bin: &Path) -> Echo {
        let (mine, theirs) = UnixStream::pair().expect("socketpair");
        let theirs: OwnedFd = theirs.into();
        let child = Command::new(echo_bin)
            .arg("0")
            .stdin(Stdio::from(theirs))
            .spawn()
            .expect("spawn pingpong-echo");
        Echo {
            child,
            sock: Some(mine),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One 64-byte write and the 64-byte echo read back.
    #[inline]
    pub fn round_trip(&mut self, msg: &[u8; MSG], back: &mut [u8; MSG]) {
        use std::io::Write;
        let sock = self.sock.as_mut().expect("echo socket");
        sock.write_all(msg).expect("ping");
        sock.read_exact(back).expect("pong");
    }

    /// Closes the socket (the child sees EOF) and reaps the child.
    pub fn stop(mut self) {
        self.sock = None;
        let status = self.child.wait().expect("wait pingpong-echo");
        assert!(status.success(), "pingpong-echo ended with {status}");
    }
}

/// The request that spawns `program args` under `policy` (the bench agents' request).
pub fn spawn_request(
    program: &Path,
    args: &[&str],
    workspace: Option<&Path>,
    policy: &str,
) -> SpawnRequest {
    SpawnRequest {
        name: None,
        policy: PolicySource {
            path: "bench-policy.md".into(),
            text: policy.into(),
        },
        workspace: workspace.map(Path::to_path_buf),
        program: program.to_path_buf(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        extra_read_only: Vec::new(),
    }
}

/// A kernel in this process, on its own tokio runtime (2 workers) and temp state dir.
#[derive(Debug)]
pub struct BenchKernel {
    pub rt: tokio::runtime::Runtime,
    pub kernel: Kernel,
    _state: tempfile::TempDir,
}

impl BenchKernel {
    /// Starts the runtime and the kernel. The runtime's threads (and the kernel's spawner
    /// thread, whose affinity every agent inherits) take the calling thread's affinity.
    pub fn start() -> BenchKernel {
        Self::start_with(|_| {})
    }

    /// [`BenchKernel::start`] with the default config changed by `configure` first.
    pub fn start_with(configure: impl FnOnce(&mut Config)) -> BenchKernel {
        let state = tempfile::Builder::new()
            .prefix("agentos-bench-")
            .tempdir()
            .expect("tempdir");
        let mut config = Config::new(state.path().join("state"));
        configure(&mut config);
        require_launcher(&config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let kernel = rt
            .block_on(Kernel::start(config))
            .expect("start the in-process kernel");
        BenchKernel {
            rt,
            kernel,
            _state: state,
        }
    }

    /// Ends the kernel and its runtime but keeps its state dir (removed when the returned
    /// dir is dropped): a bench that starts kernel after kernel keeps every state dir to the
    /// end, so that no run creates its files among the inodes the last one just freed (on
    /// an ext4 without a journal each creation then scans them: `recently_deleted`).
    pub fn into_state(self) -> tempfile::TempDir {
        // In the order a drop of the whole would take (fields in declaration order).
        let BenchKernel { rt, kernel, _state } = self;
        drop(rt);
        drop(kernel);
        _state
    }

    /// Spawns a jailed agent running `program args`, waits for its end, checks it exited 0,
    /// and returns its final row and its output.
    pub fn run(&self, program: &Path, args: &[&str]) -> (AgentInfo, String) {
        self.run_with(program, args, None, POLICY)
    }

    /// [`BenchKernel::run`] with a `--workspace` and a policy of its own.
    pub fn run_with(
        &self,
        program: &Path,
        args: &[&str],
        workspace: Option<&Path>,
        policy: &str,
    ) -> (AgentInfo, String) {
        let spawned = self.start_agent(program, args, workspace, policy);
        let info = self
            .rt
            .block_on(self.kernel.wait(&AgentRef::Id(spawned.id)))
            .expect("wait for the bench agent");
        let log = std::fs::read_to_string(&info.log_path).unwrap_or_default();
        assert!(
            matches!(info.exit, Some(ExitStatus::Code(0))),
            "bench agent {} {:?} ended with {:?}; its output:\n{log}",
            program.display(),
            args,
            info.exit
        );
        (info, log)
    }

    /// Spawns a jailed agent running `program args` and returns at once (see
    /// [`BenchKernel::end`]).
    pub fn start_agent(
        &self,
        program: &Path,
        args: &[&str],
        workspace: Option<&Path>,
        policy: &str,
    ) -> AgentInfo {
        let req = spawn_request(program, args, workspace, policy);
        self.rt
            .block_on(self.kernel.spawn(req))
            .expect("spawn the bench agent")
    }

    /// Waits (up to 20 s) until the agent's output has a line starting with `prefix`.
    pub fn wait_for_line(&self, agent: &AgentInfo, prefix: &str) {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < end {
            let log = std::fs::read_to_string(&agent.log_path).unwrap_or_default();
            if log.lines().any(|l| l.starts_with(prefix)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("agent {} never printed `{prefix}`", agent.id);
    }

    /// SIGKILLs an agent and waits for its end.
    pub fn end(&self, agent: &AgentInfo) {
        let r = AgentRef::Id(agent.id);
        self.rt.block_on(async {
            let _ = self
                .kernel
                .signal(&r, agentos_syscalls::Signal::Kill, "bench")
                .await;
            let _ = self.kernel.wait(&r).await;
        });
    }

    /// Runs `bench-agent rtt iters` and returns the time it measured for the round trips.
    pub fn rtt(&self, agent: &Path, iters: u64) -> Duration {
        self.rtt_under(agent, iters, POLICY)
    }

    /// [`BenchKernel::rtt`] under `policy`.
    pub fn rtt_under(&self, agent: &Path, iters: u64, policy: &str) -> Duration {
        let n = iters.to_string();
        let (_, log) = self.run_with(agent, &["rtt", &n], None, policy);
        elapsed(&log)
    }

    /// Runs `bench-agent exec N` (N `Exec`s of `/bin/true`) and returns the time it measured.
    pub fn exec_true(&self, agent: &Path, iters: u64) -> Duration {
        let n = iters.to_string();
        let (_, log) = self.run(agent, &["exec", &n]);
        elapsed(&log)
    }

    /// Runs `bench-agent first` and returns spawn → first answered syscall.
    pub fn first_syscall(&self, agent: &Path) -> Duration {
        let (info, log) = self.run(agent, &["first"]);
        let us = info
            .first_syscall_us
            .unwrap_or_else(|| panic!("the agent answered no syscall; its output:\n{log}"));
        Duration::from_micros(us)
    }

    pub fn shutdown(self) {
        self.rt.block_on(self.kernel.shutdown("bench done"));
    }
}

/// Per-sample means (ns per op) collected beside criterion's own analysis.
///
/// Criterion calls the routine for its warm-up first (1, 2, 4, … iterations) and then once
/// per sample, so only the last `sample_size` entries of each bench are its measurement.
#[derive(Debug)]
pub struct Samples {
    sample_size: usize,
    rows: Vec<(String, Vec<f64>)>,
}

impl Samples {
    /// Prints the summary of a floor and an agentos bench: their medians, then `what` through
    /// the kernel beside `floor_what` as a ratio (`title` names the group and its unit).
    pub fn report_pair(
        &self,
        title: &str,
        floor: &str,
        agentos: &str,
        what: &str,
        floor_what: &str,
    ) {
        let show = |v: Option<f64>| v.map_or_else(|| "not run".into(), fmt_ns);
        println!();
        println!("{title}");
        println!("{:<40} {:>12} {:>8}", "bench", "median", "samples");
        for n in [floor, agentos] {
            println!(
                "{:<40} {:>12} {:>8}",
                n,
                show(self.median(n)),
                self.count(n)
            );
        }
        if let (Some(a), Some(f)) = (self.median(agentos), self.median(floor)) {
            println!(
                "{what} through the kernel: {} ({:.1}× {floor_what} of {})",
                fmt_ns(a),
                a / f,
                fmt_ns(f)
            );
        }
    }

    /// `sample_size` must match the criterion group's.
    pub fn new(sample_size: usize) -> Samples {
        Samples {
            sample_size,
            rows: Vec::new(),
        }
    }

    /// Records one call of `iters` ops that took `total`.
    pub fn push(&mut self, name: &str, iters: u64, total: Duration) {
        if iters == 0 {
            return;
        }
        let per_op = total.as_nanos() as f64 / iters as f64;
        match self.rows.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(per_op),
            None => self.rows.push((name.to_string(), vec![per_op])),
        }
    }

    /// The measured samples of `name` (warm-up calls dropped).
    fn measured(&self, name: &str) -> &[f64] {
        self.rows
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[][..], |(_, v)| {
                &v[v.len().saturating_sub(self.sample_size)..]
            })
    }

    /// The median ns per op of `name`, if it was measured.
    pub fn median(&self, name: &str) -> Option<f64> {
        median(self.measured(name))
    }

    /// How many measured samples `name` has.
    pub fn count(&self, name: &str) -> usize {
        self.measured(name).len()
    }
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 0 {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    })
}

/// `12.3 µs` style.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The fork+exec floor: runs `/bin/true` `iters` times (fork, exec, wait; no jail) and returns
/// the time it took.
pub fn fork_exec_true(iters: u64) -> std::time::Duration {
    let start = std::time::Instant::now();
    for _ in 0..iters {
        let status = std::process::Command::new("/bin/true")
            .status()
            .expect("run /bin/true");
        assert!(status.success());
    }
    start.elapsed()
}

/// The time a bench agent measured for its own loop: its `elapsed_ns N` line.
pub fn elapsed(log: &str) -> Duration {
    let ns = log
        .lines()
        .find_map(|l| l.strip_prefix("elapsed_ns "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no `elapsed_ns` line in the agent's output:\n{log}"));
    Duration::from_nanos(ns)
}

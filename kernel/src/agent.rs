//! One agent: its identity, lifecycle ([`Lifecycle`], the one owner of its state, pid and
//! exit), counters, policy, memory and output log.

mod lifecycle;
mod table;

pub(crate) use lifecycle::Lifecycle;
pub(crate) use table::AgentTable;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use agentos_policy::{Policy, RateLimiter};
use agentos_syscalls::control::{AgentCounters, AgentInfo, AgentState, AgentUsage, ExitStatus};
use agentos_syscalls::{AgentId, JailReport, KernelFrame};
use agentos_userspace::launch::cgroup::AgentGroup;
use agentos_vfs::MemFs;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::policy::PolicySlot;

/// Re-exported for the modules that still import it from here (server, spawn, signals,
/// tools); new code imports [`crate::util::lock`].
pub(crate) use crate::util::lock;

/// How many tools (`Exec`, `Call`) one agent may run at once.
pub const MAX_TOOLS: usize = 4;

/// A frame on its way to the agent, with an optional notice once it has been written.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub frame: KernelFrame,
    pub flushed: Option<oneshot::Sender<()>>,
}

/// One chunk of output and its offset in the agent's output (every byte it ever wrote counts,
/// kept or cut).
pub(crate) type LogChunk = (u64, Arc<[u8]>);

/// The line that stands, when the log is read back, for the output cut between its head and
/// its tail.
pub(crate) fn cut_marker(cut: u64) -> Vec<u8> {
    format!("\n[agentos: {cut} bytes of output cut]\n").into_bytes()
}

/// The agent's output log, bounded: a file plus a broadcast of each chunk with its offset, so
/// that a follower can read what is kept and then continue live without a gap or a repeat.
/// The broadcast (a ring of 1,024 chunks, 48 KiB) is made by the first follower: a thousand
/// agents nobody follows do not each hold one, nor copy each chunk for nobody.
///
/// Offsets are the output's own (byte `n` of everything the agent wrote). The file keeps at
/// most `cap` bytes: the first `cap/2` of the output (the head, at the start of the file) and
/// the last `cap - cap/2` (the tail, a ring after the head). What lies between is cut: read
/// back ([`LogSink::read`]) it is one [`cut_marker`] line naming how many bytes are gone. When
/// the agent has ended ([`LogSink::finish`]) the file is rewritten in order (head, marker,
/// tail), so that `output.log` reads as text on its own.
///
/// Never: the file grows past `cap` bytes while the agent runs (plus the marker line after
/// it ends); a read returns a byte of the ring that was overwritten.
#[derive(Debug)]
pub(crate) struct LogSink {
    pub path: PathBuf,
    state: Mutex<LogState>,
    /// Set, under `state`'s lock, by the first [`LogSink::follow`].
    tx: std::sync::OnceLock<broadcast::Sender<LogChunk>>,
}

#[derive(Debug)]
struct LogState {
    file: std::fs::File,
    /// Bytes the agent wrote in all.
    len: u64,
    /// Bytes kept from the start of the output.
    head: u64,
    /// Bytes kept from the end of the output (the ring's size).
    tail: u64,
    /// Once rewritten in order: the length of the marker line between head and tail.
    linear: Option<u64>,
}

impl LogState {
    /// The first offset of the kept tail (everything in `head..kept` is cut).
    fn kept(&self) -> u64 {
        self.head.max(self.len.saturating_sub(self.tail))
    }

    /// The file position of offset `o` of the tail (`o >= kept()`).
    fn at(&self, o: u64) -> u64 {
        match self.linear {
            Some(marker) => self.head + marker + (o - self.kept()),
            None => self.head + (o - self.head) % self.tail.max(1),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut o = self.len;
        let mut rest = bytes;
        self.len += bytes.len() as u64;
        if o < self.head {
            let n = rest.len().min((self.head - o) as usize);
            self.file.write_all_at(&rest[..n], o)?;
            rest = &rest[n..];
            o += n as u64;
        }
        if self.tail == 0 || rest.is_empty() {
            return Ok(());
        }
        // Only the last `tail` bytes of a long write survive it.
        if rest.len() as u64 > self.tail {
            let skip = rest.len() - self.tail as usize;
            rest = &rest[skip..];
            o += skip as u64;
        }
        while !rest.is_empty() {
            let pos = (o - self.head) % self.tail;
            let n = rest.len().min((self.tail - pos) as usize);
            self.file.write_all_at(&rest[..n], self.head + pos)?;
            rest = &rest[n..];
            o += n as u64;
        }
        Ok(())
    }

    fn read(&self, from: u64, to: Option<u64>) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let to = to.unwrap_or(self.len).min(self.len);
        let read_at = |out: &mut Vec<u8>, pos: u64, n: u64| -> std::io::Result<()> {
            let start = out.len();
            out.resize(start + n as usize, 0);
            self.file.read_exact_at(&mut out[start..], pos)
        };
        let mut out = Vec::new();
        let mut o = from;
        if o < to && o < self.head {
            let end = to.min(self.head);
            read_at(&mut out, o, end - o)?;
            o = end;
        }
        let kept = self.kept();
        if o < to && o < kept {
            let end = to.min(kept);
            out.extend(cut_marker(end - o));
            o = end;
        }
        while o < to {
            let pos = self.at(o);
            let n = match self.linear {
                Some(_) => to - o,
                None => (to - o).min(self.head + self.tail - pos),
            };
            read_at(&mut out, pos, n)?;
            o += n;
        }
        Ok(out)
    }
}

impl LogSink {
    /// A new empty log at `path` keeping at most `cap` bytes (at least 2: one of head, one of
    /// tail).
    pub fn create(path: PathBuf, cap: u64) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        let cap = cap.max(2);
        Ok(Self {
            path,
            state: Mutex::new(LogState {
                file,
                len: 0,
                head: cap / 2,
                tail: cap - cap / 2,
                linear: None,
            }),
            tx: std::sync::OnceLock::new(),
        })
    }

    pub fn append(&self, bytes: &[u8]) {
        let mut state = lock(&self.state);
        if state.linear.is_some() {
            return;
        }
        if let Err(e) = state.write(bytes) {
            tracing::warn!(path = %self.path.display(), error = %e, "agent log write failed");
        }
        // Still under the state's lock: a follower that came after this chunk's write gets
        // its offset from the length, one that came before gets the chunk.
        if let Some(tx) = self.tx.get() {
            let offset = state.len - bytes.len() as u64;
            let _ = tx.send((offset, Arc::from(bytes)));
        }
    }

    /// The output's length so far and a receiver for everything after it.
    pub fn follow(&self) -> (u64, broadcast::Receiver<LogChunk>) {
        let state = lock(&self.state);
        let tx = self.tx.get_or_init(|| broadcast::channel(1024).0);
        (state.len, tx.subscribe())
    }

    /// The output from offset `from` to `to` (or its end) as kept: bytes cut in that range are
    /// one [`cut_marker`] line.
    pub fn read(&self, from: u64, to: Option<u64>) -> std::io::Result<Vec<u8>> {
        lock(&self.state).read(from, to)
    }

    /// The agent has ended: rewrites the file in order (head, the cut marker if anything was
    /// cut, tail). Later appends are dropped.
    pub fn finish(&self) {
        let mut state = lock(&self.state);
        if state.linear.is_some() {
            return;
        }
        let kept = state.kept();
        if kept == state.head {
            // Nothing cut: the ring never wrapped, the file is in order already.
            state.linear = Some(0);
            return;
        }
        let rewrite = |state: &LogState| -> std::io::Result<std::fs::File> {
            use std::io::Write;
            let tail = state.read(kept, None)?;
            let tmp = self.path.with_extension("log.tmp");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .truncate(true)
                .open(&tmp)?;
            let mut head = vec![0u8; state.head as usize];
            std::os::unix::fs::FileExt::read_exact_at(&state.file, &mut head, 0)?;
            f.write_all(&head)?;
            f.write_all(&cut_marker(kept - state.head))?;
            f.write_all(&tail)?;
            std::fs::rename(&tmp, &self.path)?;
            Ok(f)
        };
        match rewrite(&state) {
            Ok(f) => {
                state.file = f;
                state.linear = Some(cut_marker(kept - state.head).len() as u64);
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot rewrite the agent's log in order (it stays a ring)");
            }
        }
    }
}

/// The kernel's record of one agent.
#[derive(Debug)]
pub(crate) struct Agent {
    pub id: AgentId,
    pub name: Option<String>,
    pub program: String,
    pub args: Vec<String>,
    /// The agent's policy; replaced as a whole by `agentctl policy reload`.
    pub policy: PolicySlot,
    pub started_ms: u64,
    /// When its launcher was started: the origin of `first_syscall_us`.
    spawned_at: Instant,
    pub scratch: PathBuf,
    pub log: LogSink,
    /// State, launcher pid, kill reason and exit: changed only through its transitions.
    life: Lifecycle,
    /// Calls, denials, signals, parked calls: through [`Agent::counters`].
    counters: Mutex<AgentCounters>,
    /// Its refusals by kind, for the summary ([`Agent::note_refusal`]).
    denials: Mutex<crate::denials::Denials>,
    /// The kinds of network socket the sandbox refused it that its output was told about
    /// ([`Agent::first_network_refusal`]).
    network_told: Mutex<Vec<String>>,
    /// Microseconds from the launch to its first answered syscall ([`Agent::note_answered`]).
    first_syscall_us: OnceLock<u64>,
    /// The writer of its live connection, while the server runs ([`Agent::attach_outbox`]).
    outbox: Mutex<Option<mpsc::Sender<Outgoing>>>,
    pub working: Mutex<MemFs>,
    /// The rest of the agent's VFS tree: persistent namespace, workspace root, quota,
    /// descriptors, checkpoints.
    pub tree: crate::tree::AgentTree,
    pub jail: Mutex<Option<JailReport>>,
    pub limiter: Mutex<RateLimiter>,
    /// The token buckets of the kernel's base policy's rules, for this agent.
    pub base_limiter: Mutex<RateLimiter>,
    /// The launcher's last `agentos-launch: …` line, for a sandbox failure report.
    launcher_error: Mutex<Option<String>>,
    /// The agent's cgroup(s), where the host gave the kernel any; removed once it ends.
    pub cgroup: Option<AgentGroup>,
    /// The limits its jail was given (rlimits, and its cgroup's where it has one).
    pub limits: agentos_userspace::launch::ResourceLimits,
    /// The tasks watching its seccomp listener: the reaper lets them finish (they end when the
    /// agent's last process is gone) before it records the exit, so every sandbox event of the
    /// agent precedes its `Exit` record.
    watchers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The host directory given with `--workspace` (canonical), served as `/workspace`.
    pub workspace: Option<PathBuf>,
    /// Its jail has an egress proxy (its policy had a `network` rule at spawn): the launcher
    /// hands its listener over (`crate::server::egress`).
    pub egress: bool,
    /// Messages other agents sent, waiting for `Recv`.
    pub inbox: crate::ipc::Inbox,
    /// Slots for the tools (`Exec`, `Call`) the agent runs at once ([`MAX_TOOLS`]).
    pub tools: Arc<tokio::sync::Semaphore>,
    /// The tool slots' scratch mount points not in use (`agents/<id>/tool-<i>`, see
    /// [`crate::tools::SlotScratch`]); a tool holding one of [`Agent::tools`]'s permits always
    /// finds one here.
    pub(crate) tool_dirs: Mutex<Vec<usize>>,
    /// The agent's copies of the MCP servers (`--mcp`), started on first use.
    pub(crate) mcp: crate::mcp::Sessions,
    /// Its life's trace, when the kernel exports traces and its policy asked for them at
    /// spawn ([`crate::traces`]).
    trace: OnceLock<crate::traces::Life>,
    /// The host pids of its namespace's init and of its program, as last found
    /// (`signals::agent_process` checks them before each use).
    processes: Mutex<Option<(u32, u32)>>,
    /// See [`NewAgent::cloned`].
    cloned: bool,
    /// Set by the reaper once the launcher has exited (so has every process of the tree),
    /// before it waits for the watchers: what ends the egress proxy's connections.
    tree_gone: tokio::sync::watch::Sender<bool>,
}

/// What the spawn flow has made for an agent once its launcher runs: everything [`Agent::new`]
/// cannot start empty.
#[derive(Debug)]
pub(crate) struct NewAgent {
    pub id: AgentId,
    pub name: Option<String>,
    pub program: String,
    pub args: Vec<String>,
    pub policy: Policy,
    pub spawned_at: Instant,
    pub scratch: PathBuf,
    pub log: LogSink,
    /// The launcher's pid (0 when the spawner could not tell it), or the init's when `cloned`.
    pub pid: u32,
    /// The kernel's child is the jail's init itself (cloned by the zygote), not a launcher
    /// whose only child is the init.
    pub cloned: bool,
    pub working: MemFs,
    pub tree: crate::tree::AgentTree,
    pub cgroup: Option<AgentGroup>,
    pub limits: agentos_userspace::launch::ResourceLimits,
    pub workspace: Option<PathBuf>,
    pub egress: bool,
    pub inbox: crate::ipc::InboxLimits,
}

impl Agent {
    /// A launched agent, `Starting`, with empty counters, limiters and outbox.
    pub fn new(a: NewAgent) -> Self {
        Agent {
            id: a.id,
            name: a.name,
            program: a.program,
            args: a.args,
            policy: PolicySlot::new(a.policy),
            started_ms: crate::util::now_ms(),
            spawned_at: a.spawned_at,
            scratch: a.scratch,
            log: a.log,
            life: Lifecycle::new(a.pid),
            counters: Mutex::new(AgentCounters::default()),
            denials: Mutex::new(Default::default()),
            network_told: Mutex::new(Vec::new()),
            first_syscall_us: OnceLock::new(),
            outbox: Mutex::new(None),
            working: Mutex::new(a.working),
            tree: a.tree,
            jail: Mutex::new(None),
            limiter: Mutex::new(RateLimiter::new()),
            base_limiter: Mutex::new(RateLimiter::new()),
            launcher_error: Mutex::new(None),
            cgroup: a.cgroup,
            limits: a.limits,
            watchers: Mutex::new(Vec::new()),
            workspace: a.workspace,
            egress: a.egress,
            inbox: crate::ipc::Inbox::new(a.inbox),
            tools: Arc::new(tokio::sync::Semaphore::new(MAX_TOOLS)),
            tool_dirs: Mutex::new((0..MAX_TOOLS).rev().collect()),
            mcp: crate::mcp::Sessions::default(),
            trace: OnceLock::new(),
            processes: Mutex::new(None),
            cloned: a.cloned,
            tree_gone: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Whether its live pid is its jail's init (cloned by the zygote) rather than a launcher
    /// above the init.
    pub fn pid_is_init(&self) -> bool {
        self.cloned
    }

    /// Its init's and its program's host pids, as last found.
    pub fn known_processes(&self) -> Option<(u32, u32)> {
        *lock(&self.processes)
    }

    /// Remembers its init's and its program's host pids.
    pub fn remember_processes(&self, init: u32, program: u32) {
        *lock(&self.processes) = Some((init, program));
    }

    /// Starts tracing the agent's life (once; at spawn).
    pub fn begin_trace(&self, life: crate::traces::Life) {
        let _ = self.trace.set(life);
    }

    /// Its life's trace while its policy still asks for traces: `None` when it is not
    /// traced.
    pub fn trace(&self) -> Option<&crate::traces::Life> {
        self.trace
            .get()
            .filter(|_| self.policy().observability().traces)
    }

    /// Its life's trace whatever its policy says now (to end it).
    pub fn life_trace(&self) -> Option<&crate::traces::Life> {
        self.trace.get()
    }

    /// The current policy: one snapshot, to be used for a whole decision.
    pub fn policy(&self) -> Policy {
        self.policy.load()
    }

    /// The agent's lifecycle: its state and every transition of it.
    pub fn life(&self) -> &Lifecycle {
        &self.life
    }

    pub fn current_state(&self) -> AgentState {
        self.life.state()
    }

    /// The launcher's pid as spawned (kept after the end, for listings).
    pub fn pid(&self) -> Option<u32> {
        self.life.pid()
    }

    pub fn is_exited(&self) -> bool {
        self.life.is_exited()
    }

    pub fn counters(&self) -> std::sync::MutexGuard<'_, AgentCounters> {
        lock(&self.counters)
    }

    /// Counts one refusal of the agent in its denial summary.
    pub fn note_refusal(&self, r: crate::denials::Refusal<'_>) {
        lock(&self.denials).note(r);
    }

    /// Whether this is the first refusal of network socket kind `call` the agent's output
    /// hears of (at most 16 kinds are remembered; later ones are not told again).
    pub fn first_network_refusal(&self, call: &str) -> bool {
        let mut told = lock(&self.network_told);
        if told.iter().any(|c| c == call) || told.len() >= 16 {
            return false;
        }
        told.push(call.to_string());
        true
    }

    /// Waits until the agent is not stopped (or has ended). Used to park syscalls.
    pub async fn wait_unfrozen(&self) {
        self.life.wait_unfrozen().await
    }

    /// Waits for the agent's end and returns how it ended.
    pub async fn wait_exit(&self) -> ExitStatus {
        self.life.wait_exit().await
    }

    /// The server's writer for the agent's connection: frames [`Agent::push`]ed go to it.
    pub fn attach_outbox(&self, tx: mpsc::Sender<Outgoing>) {
        *lock(&self.outbox) = Some(tx);
    }

    /// The connection is gone (the server ended, or the agent did): pushes fail from now on.
    pub fn detach_outbox(&self) {
        *lock(&self.outbox) = None;
    }

    /// A syscall of the agent was answered: the first one sets `first_syscall_us`.
    pub fn note_answered(&self) {
        let _ = self
            .first_syscall_us
            .set(self.spawned_at.elapsed().as_micros() as u64);
    }

    /// A task watching the agent's seccomp listener, for the reaper to wait for.
    pub fn add_watcher(&self, watcher: tokio::task::JoinHandle<()>) {
        lock(&self.watchers).push(watcher);
    }

    /// Every process of the agent's tree is gone (the reaper saw its launcher exit).
    pub fn mark_tree_gone(&self) {
        self.tree_gone.send_replace(true);
    }

    /// Resolves once [`Agent::mark_tree_gone`] has been called.
    pub async fn wait_tree_gone(&self) {
        let mut rx = self.tree_gone.subscribe();
        let _ = rx.wait_for(|gone| *gone).await;
    }

    /// The watchers added so far (the reaper's, once the launcher has exited).
    pub fn take_watchers(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut *lock(&self.watchers))
    }

    /// Keeps the launcher's latest `agentos-launch: …` line (the newest replaces the last).
    pub fn note_launcher_error(&self, line: String) {
        *lock(&self.launcher_error) = Some(line);
    }

    /// The launcher's latest `agentos-launch: …` line, if it wrote one.
    pub fn launcher_error(&self) -> Option<String> {
        lock(&self.launcher_error).clone()
    }

    /// Queues a frame for the agent. Returns a receiver that fires once it is written, or
    /// `None` when the agent has no live connection.
    pub fn push(&self, frame: KernelFrame) -> Option<oneshot::Receiver<()>> {
        let tx = lock(&self.outbox).clone()?;
        let (done, rx) = oneshot::channel();
        tx.try_send(Outgoing {
            frame,
            flushed: Some(done),
        })
        .ok()?;
        Some(rx)
    }

    pub fn info(&self) -> AgentInfo {
        // Each lock is taken and released in its own statement: a struct literal keeps its
        // temporaries (guards) alive to its end, and a second read of `exit` (in `usage`) while
        // the reaper waits to write it would deadlock the write-preferring lock.
        let policy = self.policy();
        let counters = *self.counters();
        // A running agent with a call parked for approval waits on the operator: say so.
        let state = match self.current_state() {
            AgentState::Running if counters.awaiting_approval > 0 => AgentState::AwaitingApproval,
            s => s,
        };
        let denials = lock(&self.denials).summary();
        let exit = self.life.exit();
        let jail = lock(&self.jail).clone();
        let usage = self.usage();
        AgentInfo {
            id: self.id,
            name: self.name.clone(),
            state,
            pid: self.pid(),
            program: self.program.clone(),
            args: self.args.clone(),
            started_ms: self.started_ms,
            first_syscall_us: self.first_syscall_us.get().copied(),
            counters,
            exit,
            policy_path: policy.path().to_string(),
            policy_digest: policy.digest(),
            log_path: self.log.path.clone(),
            jail,
            usage,
            denials,
        }
    }

    /// What the agent's cgroup says it uses, while it runs.
    pub fn usage(&self) -> Option<AgentUsage> {
        let group = self.cgroup.as_ref()?;
        if self.is_exited() {
            return None;
        }
        Some(AgentUsage {
            memory_bytes: group.memory_bytes().unwrap_or(0),
            pids: group.pids().unwrap_or(0),
        })
    }
}

/// An agent for unit tests: launcher `pid`, its log and checkpoints under `dir`, a one-rule
/// policy. Builds no launcher, recorder or spawner.
impl<'a> From<&'a Agent> for crate::tree::Owner<'a> {
    fn from(a: &'a Agent) -> Self {
        crate::tree::Owner {
            id: a.id,
            started_ms: a.started_ms,
            tree: &a.tree,
            working: &a.working,
            policy: &a.policy,
            inbox: &a.inbox,
        }
    }
}

impl<'a> From<&'a Arc<Agent>> for crate::tree::Owner<'a> {
    fn from(a: &'a Arc<Agent>) -> Self {
        crate::tree::Owner::from(&**a)
    }
}

#[cfg(test)]
pub(crate) fn test_agent(
    dir: &std::path::Path,
    id: u64,
    name: Option<&str>,
    pid: u32,
) -> Arc<Agent> {
    let policy = Policy::parse(
        "test.md",
        "kernel: {version: \"1.0\", mode: strict}\nsignals: [SIGSTOP, SIGCONT]\npolicies:\n  - action: file_read\n    effect: allow\n",
    )
    .unwrap();
    let id = AgentId(id);
    let (ns, ephemeral) = crate::tree::namespace_of(name, id);
    Arc::new(Agent::new(NewAgent {
        id,
        name: name.map(String::from),
        program: "/bin/true".into(),
        args: Vec::new(),
        policy,
        spawned_at: Instant::now(),
        scratch: dir.join(format!("{id}.scratch")),
        log: LogSink::create(dir.join(format!("{id}.log")), 1024).unwrap(),
        pid,
        cloned: false,
        working: MemFs::new(1 << 20, 100),
        tree: crate::tree::AgentTree::new(
            ns,
            ephemeral,
            None,
            (0, 0),
            (1 << 20, 100),
            dir.join(format!("{id}.checkpoints")),
        ),
        cgroup: None,
        limits: Default::default(),
        workspace: None,
        egress: false,
        inbox: Default::default(),
    }))
}

#[cfg(test)]
mod state_tests {
    use super::*;

    #[test]
    fn a_running_agent_with_a_parked_approval_is_listed_awaiting_approval() {
        let dir = tempfile::tempdir().unwrap();
        let a = test_agent(dir.path(), 1, Some("builder"), 0);
        a.life().mark_running().unwrap();
        assert_eq!(a.info().state, AgentState::Running);
        a.counters().awaiting_approval = 1;
        assert_eq!(a.info().state, AgentState::AwaitingApproval);
        // The lifecycle itself never leaves Running for it.
        assert_eq!(a.current_state(), AgentState::Running);
        a.life().stop().unwrap();
        assert_eq!(a.info().state, AgentState::Stopped);
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    /// Every byte the "agent" writes: a counter pattern, so a misplaced byte shows.
    fn output(n: usize) -> Vec<u8> {
        (0..n).map(|i| b'a' + (i % 26) as u8).collect()
    }

    #[test]
    fn the_log_keeps_its_head_and_its_tail_and_says_what_was_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        let log = LogSink::create(path.clone(), 100).unwrap();
        let all = output(1000);
        // Uneven chunks, one longer than the whole ring.
        for chunk in [
            &all[..7],
            &all[7..40],
            &all[40..77],
            &all[77..900],
            &all[900..],
        ] {
            log.append(chunk);
            assert!(std::fs::metadata(&path).unwrap().len() <= 100);
        }
        let mut expect = all[..50].to_vec();
        expect.extend(cut_marker(900));
        expect.extend(&all[950..]);
        assert_eq!(log.read(0, None).unwrap(), expect);
        // A follower behind the cut gets the marker for what it missed, then the tail.
        let mut behind = cut_marker(950 - 60);
        behind.extend(&all[950..960]);
        assert_eq!(log.read(60, Some(960)).unwrap(), behind);
        assert_eq!(log.read(990, None).unwrap(), &all[990..]);
        // Once the agent has ended the file itself reads in order, and so does the log.
        log.finish();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
        assert_eq!(log.read(0, None).unwrap(), expect);
        assert_eq!(log.read(970, None).unwrap(), &all[970..]);
        assert_eq!(log.follow().0, 1000);
    }

    #[test]
    fn a_follower_gets_every_chunk_after_the_length_it_was_told() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogSink::create(dir.path().join("output.log"), 1000).unwrap();
        log.append(b"early");
        // Nobody follows: no broadcast ring is held.
        assert!(log.tx.get().is_none());
        let (from, mut first) = log.follow();
        assert_eq!(from, 5);
        log.append(b"late");
        let (at, chunk) = first.try_recv().unwrap();
        assert_eq!((at, &chunk[..]), (5, &b"late"[..]));
        let (from, mut second) = log.follow();
        assert_eq!(from, 9);
        log.append(b"!");
        for rx in [&mut first, &mut second] {
            let (at, chunk) = rx.try_recv().unwrap();
            assert_eq!((at, &chunk[..]), (9, &b"!"[..]));
            assert!(rx.try_recv().is_err());
        }
        assert_eq!(log.read(0, None).unwrap(), b"earlylate!");
    }

    #[test]
    fn a_short_log_is_kept_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        let log = LogSink::create(path.clone(), 100).unwrap();
        let all = output(80);
        log.append(&all[..30]);
        log.append(&all[30..]);
        assert_eq!(log.read(0, None).unwrap(), all);
        assert_eq!(log.read(10, Some(70)).unwrap(), &all[10..70]);
        log.finish();
        assert_eq!(std::fs::read(&path).unwrap(), all);
    }
}

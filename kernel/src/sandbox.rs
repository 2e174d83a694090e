//! Sandbox events: the agent's denied syscalls, read from its seccomp user-notification
//! listener and recorded.
//!
//! ```text
//! agent ── denied syscall ──► host kernel (filter: SECCOMP_RET_USER_NOTIF; the caller blocks)
//!        ◄── EPERM ─────────── watch(): NOTIF_RECV ─► record SandboxDenied ─► NOTIF_SEND
//! ```
//!
//! The launcher's init sends the listener after the jail report (`AgentFrame::SandboxListener`
//! with `SCM_RIGHTS`); [`recv_with_fds`] receives it and [`watch`] serves it until every
//! process of the agent is gone (the listener hangs up) or the agent has exited.
//!
//! The path and signal calls of `seccomp_table::NOTIFIED` come through the same listener; they
//! are shown to [`crate::sandbox_access`], recorded if the jail will refuse them, and let
//! through (CONTINUE) for the jail to decide.
//!
//! Invariants: every notification is recorded (or counted, in a flood: [`Flood`]) *before* it
//! is answered; every denied call is answered EPERM (the kernel never lets one through); a notification the watcher cannot answer
//! because the kernel died fails with ENOSYS in the agent, which dies with the kernel anyway.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use agentos_userspace::launch::cgroup::{self, AgentGroup, Host};
use agentos_userspace::launch::{seccomp, seccomp_table, LayerName};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixStream;

use crate::agent::Agent;
use crate::recorder::RecordEvent;
use crate::state::KernelInner;
use crate::sys;
use crate::util::{now_ms, syscall_name};

/// The host report's entry that stands for the probe itself when it could not run (missing).
const PROBE: &str = "probe";
/// The host report's last entry: whether a missing required layer refuses spawns (active) or
/// not (missing: `--allow-degraded-sandbox`).
pub(crate) const FULL_SANDBOX: &str = "full_sandbox";

/// The host's sandbox layers, from `<launcher> --probe` (named by [`LayerName`]), followed by
/// the [`FULL_SANDBOX`] entry; or only [`PROBE`], missing, and that entry when the probe fails.
pub(crate) fn probe_host(config: &crate::config::Config) -> Vec<agentos_syscalls::Layer> {
    use agentos_syscalls::{Layer, LayerStatus};
    let mut layers = match std::process::Command::new(&config.launcher)
        .arg("--probe")
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {
            agentos_userspace::launch::probe::parse(&String::from_utf8_lossy(&out.stdout))
        }
        Ok(out) => vec![Layer {
            name: PROBE.into(),
            status: LayerStatus::Missing {
                detail: format!(
                    "{} --probe failed ({}): {}",
                    config.launcher.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            },
        }],
        Err(e) => vec![Layer {
            name: PROBE.into(),
            status: LayerStatus::Missing {
                detail: format!("cannot run {} --probe: {e}", config.launcher.display()),
            },
        }],
    };
    layers.push(Layer {
        name: FULL_SANDBOX.into(),
        status: if config.require_full_sandbox {
            LayerStatus::Active {
                detail: "required: a missing layer refuses the spawn".into(),
            }
        } else {
            LayerStatus::Missing {
                detail: "--allow-degraded-sandbox: agents may run with missing layers (recorded)"
                    .into(),
            }
        },
    });
    layers
}

/// Finds the cgroup hierarchies this kernel may use, removes groups left by kernels that are
/// gone, creates this kernel's `agentos-<pid>` groups, and puts the outcome in the `cgroup`
/// entry of `layers` (the launcher's probe only knows what is mounted and writable).
pub(crate) fn setup_cgroups(
    layers: &mut Vec<agentos_syscalls::Layer>,
    limits: &agentos_userspace::launch::ResourceLimits,
) -> Result<Host, String> {
    use agentos_syscalls::{Layer, LayerStatus};
    let pid = std::process::id();
    let host = cgroup::detect().and_then(|h| {
        remove_stale(&h);
        h.create_parents(pid).map(|()| h)
    });
    let status = match &host {
        Ok(h) => {
            let parents: Vec<String> = h
                .parents(pid)
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let cpu = if h.hierarchies.iter().any(|x| x.controllers.contains(&"cpu")) {
                ", cpu 1 core"
            } else {
                ""
            };
            LayerStatus::Active {
                detail: format!(
                    "{}: pids.max {}, memory {}{cpu} by default; one group per agent under {}",
                    h.describe(),
                    limits.processes,
                    cgroup::format_bytes(limits.memory),
                    parents.join(", ")
                ),
            }
        }
        Err(why) => LayerStatus::Missing {
            detail: format!(
                "rlimits only: {why}. Limit events then see the process limit by a once-a-second sample and an address-space hit only for a mapping of 1/64 of the limit or more"
            ),
        },
    };
    let cgroup = LayerName::Cgroup.as_str();
    let layer = Layer {
        name: cgroup.into(),
        status,
    };
    match layers.iter_mut().find(|l| l.name == cgroup) {
        Some(slot) => *slot = layer,
        None => {
            let at = layers
                .iter()
                .position(|l| l.name == FULL_SANDBOX)
                .unwrap_or(layers.len());
            layers.insert(at, layer);
        }
    }
    host
}

/// Removes the (empty) groups of `agentos-<pid>` kernels whose process is gone.
fn remove_stale(host: &Host) {
    for h in &host.hierarchies {
        let Ok(entries) = std::fs::read_dir(&h.base) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("agentos-"))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if let Ok(children) = std::fs::read_dir(e.path()) {
                for c in children.flatten() {
                    if c.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Ends whatever is left in an agent's groups and removes them, retrying while the host
/// kernel still counts exiting processes in them (bounded: 5 s).
pub(crate) async fn remove_agent_group(agent_id: agentos_syscalls::AgentId, group: &AgentGroup) {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(5);
    // The last tasks leave the group a moment after the launcher is reaped: retry soon, then
    // back off (200 µs doubling to 20 ms), so a normal exit costs well under a millisecond.
    let mut pause = Duration::from_micros(200);
    loop {
        group.kill_members();
        match group.remove() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => {
                tracing::warn!(agent_id = %agent_id, error = %e, "cannot remove the agent's cgroup");
                return;
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

/// The first required layer the host lacks, as `(name, detail)`. An entry that names no jail
/// layer counts as required (fail closed: a [`PROBE`] that did not run refuses spawns), except
/// [`FULL_SANDBOX`], which is the setting itself.
pub(crate) fn missing_required(layers: &[agentos_syscalls::Layer]) -> Option<(String, String)> {
    use agentos_syscalls::LayerStatus;
    layers.iter().find_map(|l| match &l.status {
        LayerStatus::Missing { detail }
            if l.name != FULL_SANDBOX
                && LayerName::parse(&l.name).is_none_or(LayerName::required) =>
        {
            Some((l.name.clone(), detail.clone()))
        }
        _ => None,
    })
}

/// The most descriptors one read accepts (more are closed by the host kernel).
const MAX_FDS: usize = 4;

/// One `recvmsg` (non-blocking, `MSG_CMSG_CLOEXEC`) into `buf`; descriptors that came along
/// (`SCM_RIGHTS`) are appended to `fds`.
fn recv_once(stream: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space =
        [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg(
        stream,
        &mut iov,
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    )?;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    Ok(msg.bytes)
}

/// Fills `buf` from the stream with `recvmsg`, keeping any descriptors sent along. Returns
/// `false` if the stream ended before the first byte.
pub(crate) async fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || {
            recv_once(stream, &mut buf[got..], fds)
        }) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Whether `fd` is a seccomp user-notification listener (what its `/proc/self/fd` link says).
pub(crate) fn is_listener(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|p| p.as_os_str() == "anon_inode:seccomp notify")
}

/// Events of one syscall per agent recorded one by one in a window; the rest of the window is
/// counted and recorded once, as [`RecordEvent::SandboxFlood`].
pub(crate) const FLOOD_BURST: u64 = 16;
/// The length of a flood window.
pub(crate) const FLOOD_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// An agent's sandbox events in the current window, per syscall: the recorder grows by at most
/// [`FLOOD_BURST`] + 1 records per syscall per window however hard the agent loops, and the
/// summary's count is exact.
#[derive(Debug)]
pub(crate) struct Flood {
    start: std::time::Instant,
    start_ms: u64,
    seen: std::collections::BTreeMap<String, u64>,
}

impl Flood {
    pub fn new(now: std::time::Instant, now_ms: u64) -> Self {
        Self {
            start: now,
            start_ms: now_ms,
            seen: Default::default(),
        }
    }

    /// Counts one event of `syscall`; returns whether it gets a record of its own, and the
    /// summaries of a window that ended before `now` (to be recorded first).
    pub fn admit(
        &mut self,
        syscall: &str,
        now: std::time::Instant,
        now_ms: u64,
    ) -> (bool, Vec<RecordEvent>) {
        let ended = if now.duration_since(self.start) >= FLOOD_WINDOW {
            self.roll(now, now_ms)
        } else {
            Vec::new()
        };
        let n = self.seen.entry(syscall.to_string()).or_insert(0);
        *n += 1;
        (*n <= FLOOD_BURST, ended)
    }

    /// Ends the window at `now` if it is over; returns its summaries.
    pub fn tick(&mut self, now: std::time::Instant, now_ms: u64) -> Vec<RecordEvent> {
        if now.duration_since(self.start) >= FLOOD_WINDOW {
            self.roll(now, now_ms)
        } else {
            Vec::new()
        }
    }

    /// Ends the window now (the agent is gone); returns its summaries.
    pub fn finish(&mut self, now: std::time::Instant, now_ms: u64) -> Vec<RecordEvent> {
        self.roll(now, now_ms)
    }

    fn roll(&mut self, now: std::time::Instant, now_ms: u64) -> Vec<RecordEvent> {
        let window_ms = now.duration_since(self.start).as_millis() as u64;
        let out = std::mem::take(&mut self.seen)
            .into_iter()
            .filter(|(_, n)| *n > FLOOD_BURST)
            .map(|(syscall, n)| RecordEvent::SandboxFlood {
                syscall,
                suppressed: n - FLOOD_BURST,
                window_start_ms: self.start_ms,
                window_ms,
            })
            .collect();
        self.start = now;
        self.start_ms = now_ms;
        out
    }
}

/// Serves the agent's listener: records each denied syscall and answers it EPERM; shows the
/// notified path and signal calls to [`crate::sandbox_access`] and the calls that may meet a
/// resource limit to [`crate::sandbox_limits`], records what the jail or a limit refuses, and
/// lets them through (CONTINUE). Watches the scratch dir for files at their size limit.
/// Floods are summarised ([`Flood`]). Ends when no process is left under the filter.
pub(crate) async fn watch(
    k: Arc<KernelInner>,
    agent: Arc<Agent>,
    listener: OwnedFd,
    writable: crate::sandbox_access::Writable,
    watched: crate::sandbox_limits::Watched,
) {
    let mut flood = Flood::new(std::time::Instant::now(), now_ms());
    let mut sizes = match crate::sandbox_limits::FileSizes::new(
        watched.launcher,
        &writable.scratch,
        watched.limits.file_size,
        watched.limits.scratch_bytes,
    )
    .and_then(|s| {
        s.map(|s| Ok((sys::async_fd_readable(s.readiness()?)?, s)))
            .transpose()
    }) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(agent_id = %agent.id, error = %e, "cannot watch the scratch dir for the file-size limit");
            None
        }
    };
    let mut w = Watch {
        k: &k,
        agent: &agent,
        writable: &writable,
        watched: &watched,
        flood: &mut flood,
        processes: Default::default(),
    };
    w.serve(listener, sizes.as_mut()).await;
    // Whatever the agent wrote before its end is queued by now.
    if let Some((_, s)) = sizes.as_mut() {
        for hit in s.drain() {
            w.limit(hit);
        }
    }
    // Closing the last descriptor of an inotify instance waits for an SRCU grace period
    // (milliseconds): not on a runtime worker, and not before the agent's end is recorded.
    if let Some((ready, s)) = sizes {
        drop(ready);
        tokio::task::spawn_blocking(move || drop(s));
    }
    for e in flood.finish(std::time::Instant::now(), now_ms()) {
        k.record(Some(agent.id), e);
    }
}

/// What an agent's own jail lets it write: its scratch and the devices.
pub(crate) fn agent_writable(k: &KernelInner, agent: &Agent) -> crate::sandbox_access::Writable {
    crate::sandbox_access::Writable {
        scratch: agent.scratch.clone(),
        devices: k.config.runtime.devices.clone(),
        runtime: k.config.runtime.read_exec.clone(),
        extra: Vec::new(),
    }
}

/// One listener's watcher.
struct Watch<'a> {
    k: &'a KernelInner,
    agent: &'a Agent,
    writable: &'a crate::sandbox_access::Writable,
    watched: &'a crate::sandbox_limits::Watched,
    flood: &'a mut Flood,
    processes: crate::sandbox_limits::Processes,
}

impl Watch<'_> {
    /// Admits one event of `syscall` through the flood window; records it if it is one of the
    /// window's first few.
    fn admit(&mut self, syscall: &str, event: RecordEvent) {
        self.count(&event);
        let (own, ended) = self
            .flood
            .admit(syscall, std::time::Instant::now(), now_ms());
        for e in ended {
            self.k.record(Some(self.agent.id), e);
        }
        if own {
            self.k.record(Some(self.agent.id), event);
        }
    }

    /// Counts a sandbox refusal in the agent's counters and denial summary (every one, the
    /// flooded ones too).
    fn count(&self, event: &RecordEvent) {
        use crate::denials::Refusal;
        use agentos_syscalls::control::DenialKind;
        let (action, resource, rule, reason) = match event {
            RecordEvent::SandboxDenied { syscall, args, .. } => {
                let (resource, rule) = crate::denials::seccomp_refusal(syscall, args);
                (
                    syscall.clone(),
                    resource,
                    rule.to_string(),
                    "refused with EPERM by the seccomp filter".to_string(),
                )
            }
            RecordEvent::SandboxAccess {
                syscall,
                target,
                why,
            } => (
                syscall.clone(),
                target.clone(),
                format!("sandbox: {why}"),
                "the jail (landlock) refuses it".to_string(),
            ),
            RecordEvent::SandboxLimit {
                resource,
                limit,
                by,
                detail,
                ..
            } => (
                by.clone(),
                format!("{resource} limit {limit}"),
                "sandbox: resource limit".to_string(),
                detail.clone(),
            ),
            _ => return,
        };
        self.agent.counters().sandbox_denied += 1;
        self.agent.note_refusal(Refusal {
            kind: DenialKind::Sandbox,
            action: &action,
            resource: &resource,
            rule: &rule,
            reason: &reason,
        });
    }

    fn limit(&mut self, hit: crate::sandbox_limits::Hit) {
        tracing::info!(agent_id = %self.agent.id, resource = hit.resource, by = %hit.by, "the agent meets a limit");
        let key = format!("{} ({})", hit.by, hit.resource);
        self.admit(&key, hit.event());
    }

    async fn serve(
        &mut self,
        listener: OwnedFd,
        mut sizes: Option<&mut (AsyncFd<OwnedFd>, crate::sandbox_limits::FileSizes)>,
    ) {
        let agent_id = self.agent.id;
        let afd = match sys::async_fd_readable(listener) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(agent_id = %agent_id, error = %e, "cannot watch the seccomp listener; denials fail with ENOSYS");
                return;
            }
        };
        let mut exit = self.agent.life().subscribe_exit();
        let mut ticks = tokio::time::interval(FLOOD_WINDOW);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let written = async {
                match sizes.as_deref() {
                    Some((ready, _)) => ready.readable().await.map(|mut g| g.clear_ready()),
                    None => std::future::pending().await,
                }
            };
            let mut guard = tokio::select! {
                g = afd.readable() => match g {
                    Ok(g) => g,
                    Err(_) => return,
                },
                _ = exit.wait_for(Option::is_some) => return,
                r = written => {
                    if r.is_ok() {
                        if let Some((_, s)) = sizes.as_deref_mut() {
                            for hit in s.drain() {
                                self.limit(hit);
                            }
                        }
                    }
                    continue;
                }
                _ = ticks.tick() => {
                    for e in self.flood.tick(std::time::Instant::now(), now_ms()) {
                        self.k.record(Some(agent_id), e);
                    }
                    if let Some(hit) = self.processes.sample(self.watched) {
                        self.limit(hit);
                    }
                    continue;
                }
            };
            let fd = afd.get_ref().as_raw_fd();
            loop {
                match sys::poll_now(fd) {
                    Ok((true, _)) => {}
                    Ok((false, false)) => {
                        guard.clear_ready();
                        break;
                    }
                    Ok((false, true)) | Err(_) => return,
                }
                let n = match sys::seccomp_notif_recv(fd) {
                    Ok(n) => n,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => {
                        continue
                    }
                    Err(e) => {
                        tracing::error!(agent_id = %agent_id, error = %e, "seccomp listener failed");
                        return;
                    }
                };
                if seccomp::lets_through(i64::from(n.nr), &n.args) {
                    self.look(fd, &n);
                    if let Err(e) = sys::seccomp_notif_continue(fd, n.id) {
                        tracing::warn!(agent_id = %agent_id, error = %e, "cannot let a notified syscall through");
                    }
                } else {
                    self.deny(&n);
                    if let Err(e) = sys::seccomp_notif_deny(fd, n.id, libc::EPERM) {
                        tracing::warn!(agent_id = %agent_id, error = %e, "cannot answer a denied syscall");
                    }
                }
            }
        }
    }

    /// A call the filter shows the kernel and lets through: records what the jail or a limit
    /// will refuse of it.
    fn look(&mut self, listener: std::os::fd::RawFd, n: &sys::SeccompNotification) {
        let nr = i64::from(n.nr);
        if seccomp_table::is_notified(nr) {
            if let Some(a) = crate::sandbox_access::inspect(listener, n, self.writable) {
                tracing::info!(agent_id = %self.agent.id, syscall = %a.syscall, target = %a.target, "the jail refuses an access");
                let syscall = a.syscall.clone();
                self.admit(
                    &syscall,
                    RecordEvent::SandboxAccess {
                        syscall: a.syscall,
                        target: a.target,
                        why: a.why,
                    },
                );
            }
        }
        // What /proc showed belongs to this call only if it is still waiting.
        if let Some(hit) = crate::sandbox_limits::look(n, self.watched) {
            if sys::seccomp_notif_id_valid(listener, n.id) {
                self.limit(hit);
            }
        }
    }

    fn deny(&mut self, n: &sys::SeccompNotification) {
        let nr = i64::from(n.nr);
        let name = syscall_name(nr);
        tracing::info!(agent_id = %self.agent.id, syscall = %name, pid = n.pid, "sandbox denied a syscall");
        // An unmodified program sees only EPERM (and its resolver "Temporary failure in name
        // resolution"): the agent's output says once per kind of socket that this is policy.
        if let Some(call) = crate::denials::socket_call(&name, &n.args)
            .filter(|_| crate::denials::is_network(n.args[0]))
        {
            if self.agent.first_network_refusal(&call) {
                // Before the answer, so the program's own error follows it in the output; a
                // file write, off the runtime worker (at most 16 per agent).
                let line = crate::denials::network_notice(&call);
                crate::hostio::off_worker(|| self.agent.log.append(line.as_bytes()));
            }
        }
        self.admit(
            &name.clone(),
            RecordEvent::SandboxDenied {
                syscall: name,
                nr,
                args: n.args,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentos_syscalls::{Layer, LayerStatus};

    fn layer(name: impl Into<String>, missing: bool) -> Layer {
        Layer {
            name: name.into(),
            status: if missing {
                LayerStatus::Missing {
                    detail: "no".into(),
                }
            } else {
                LayerStatus::Active {
                    detail: "yes".into(),
                }
            },
        }
    }

    #[test]
    fn a_missing_required_layer_is_named_cgroup_is_optional() {
        let mut layers = vec![
            layer(LayerName::Userns.as_str(), false),
            layer(LayerName::Cgroup.as_str(), true),
            layer(FULL_SANDBOX, true),
        ];
        assert_eq!(missing_required(&layers), None);
        layers.push(layer(LayerName::Landlock.as_str(), true));
        assert_eq!(
            missing_required(&layers),
            Some(("landlock".into(), "no".into()))
        );
        // A probe that could not run names no layer: it refuses spawns too.
        let failed = vec![layer(PROBE, true), layer(FULL_SANDBOX, false)];
        assert_eq!(
            missing_required(&failed),
            Some(("probe".into(), "no".into()))
        );
    }

    #[test]
    fn a_flood_is_recorded_as_a_burst_and_an_exact_count() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let mut f = Flood::new(t0, 1_000);
        let mut own = 0;
        let mut summaries = Vec::new();
        // 100,000 events over 2.5 s: three windows.
        for i in 0..100_000u64 {
            let at = Duration::from_micros(i * 25);
            let (o, ended) = f.admit("mount", t0 + at, 1_000 + at.as_millis() as u64);
            own += u64::from(o);
            summaries.extend(ended);
        }
        // Another syscall in the same window has its own burst.
        assert!(
            f.admit("ptrace", t0 + Duration::from_millis(2_600), 3_600)
                .0
        );
        summaries.extend(f.finish(t0 + Duration::from_millis(2_700), 3_700));
        let suppressed: u64 = summaries
            .iter()
            .map(|e| match e {
                RecordEvent::SandboxFlood {
                    syscall,
                    suppressed,
                    ..
                } if syscall == "mount" => *suppressed,
                other => panic!("unexpected {other:?}"),
            })
            .sum();
        assert_eq!(own, 3 * FLOOD_BURST);
        assert_eq!(summaries.len(), 3);
        assert_eq!(own + suppressed, 100_000);
        assert!(f.tick(t0 + Duration::from_millis(2_800), 3_800).is_empty());
    }
}

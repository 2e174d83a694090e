//! The three step sequences of the launcher — L (launcher), I (the agent's init, pid 1 of its
//! pid namespace) and A (the agent) — written against [`Sys`] so their order is unit-tested.
//!
//! Order is the security argument, so it is fixed here and nowhere else:
//!
//! - **L**: spec check, `setsid`, parent-death signal + parent check, close fds > 3, scrub env,
//!   rlimits (not `NPROC`), join the agent's cgroup(s) (before anything is forked, so the
//!   whole tree is inside), unshare all namespaces, id maps, re-arm the parent-death signal and
//!   re-check the parent, liveness pipe, fork → I; close fd 3, wait for I, exit with its status.
//! - **I**: parent-death signal, liveness check, hostname, loopback up, private mounts, the
//!   minimal root (tmpfs of binds, own `/proc`, `pivot_root`), `RLIMIT_NPROC`, capabilities,
//!   `no_new_privs`, landlock, seccomp, send the jail report and the seccomp listener, `chdir`
//!   to A's working directory, start A (`posix_spawn`: a vfork, nothing of I copied); close fd 3, reap until
//!   A ends, kill the rest of the namespace, exit with A's status. A tool's init keeps fd 3
//!   and, once the rest is killed, reaps it all and sends the tool's status on fd 3 before
//!   its own exit (`AgentFrame::ToolExit`). The root is built while I
//!   still holds its namespace capabilities and before seccomp (which denies `mount` and
//!   `pivot_root` to the agent); landlock comes after it, so its rules name paths of the new
//!   root.
//! - **A** (in the vfork child I's `posix_spawn` makes): `setsid`, (a tool: close fd 3),
//!   `execve` — in I's working directory, the cwd or scratch.
//!
//! Invariants: the agent program never runs unless every step before it succeeded (a layer may
//! be `Missing` only when the spec does not require the full sandbox); exactly one jail report
//! is sent, by whichever of L or I is the last to hold fd 3 with the report unsent.

use std::ffi::CString;
use std::io;

use agentos_syscalls::{JailReport, Layer, LayerStatus};

use super::error::{other, LaunchError};
use super::layer::LayerName;
use super::os::{ForkSide, Limit, Sys};
use super::spec::{JailSpec, EXIT_SANDBOX_FAILED};

/// The layers of the report, in report order: every layer the jail has.
pub const LAYERS: [LayerName; 13] = LayerName::ALL;

/// Exit code when the agent program does not exist.
pub const EXIT_EXEC_NOT_FOUND: i32 = 127;
/// Exit code when the agent program exists but may not be executed.
pub const EXIT_EXEC_DENIED: i32 = 126;

/// Where fd 3 stands in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentFd {
    /// Open, no report sent yet: a failure must send one.
    Unreported,
    /// Closed here, or the report is already out: a failure only prints.
    Done,
}

/// The jail as built so far.
#[derive(Debug, Clone)]
struct Jail {
    /// Each layer's outcome so far, indexed by [`LayerName::index`]; `None`: not reached.
    layers: [Option<LayerStatus>; LAYERS.len()],
    require_full: bool,
    fd: AgentFd,
}

impl Jail {
    fn new() -> Self {
        Self {
            layers: Default::default(),
            require_full: true,
            fd: AgentFd::Unreported,
        }
    }

    fn set(&mut self, name: LayerName, status: LayerStatus) {
        self.layers[name.index()] = Some(status);
    }

    fn reached(&self, name: LayerName) -> bool {
        self.layers[name.index()].is_some()
    }

    /// Records a layer's outcome. A `Missing` layer (failed or unsupported) is fatal only when
    /// the spec requires the full sandbox; `Partial` is reported and allowed.
    fn layer(
        &mut self,
        name: LayerName,
        outcome: Result<LayerStatus, LaunchError>,
    ) -> Result<(), LaunchError> {
        match outcome {
            Ok(LayerStatus::Missing { detail }) => {
                self.set(
                    name,
                    LayerStatus::Missing {
                        detail: detail.clone(),
                    },
                );
                if self.require_full {
                    return Err(LaunchError::Required {
                        layer: name,
                        source: other(detail),
                    });
                }
                Ok(())
            }
            Ok(status) => {
                self.set(name, status);
                Ok(())
            }
            Err(e) => {
                self.set(
                    name,
                    LayerStatus::Missing {
                        detail: e.message(),
                    },
                );
                if self.require_full {
                    Err(e)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The report: every layer, unreached ones `Missing` with `why`.
    fn report(&self, why: &str) -> JailReport {
        JailReport {
            layers: LAYERS
                .iter()
                .zip(&self.layers)
                .map(|(name, status)| Layer {
                    name: name.as_str().to_string(),
                    status: status.clone().unwrap_or_else(|| LayerStatus::Missing {
                        detail: why.to_string(),
                    }),
                })
                .collect(),
        }
    }
}

/// Runs the launcher from the spec's JSON (as read from the environment) and returns the exit
/// code of whichever process returns here (L, I or — only on exec failure — A).
pub fn run<S: Sys>(sys: &mut S, spec_json: Result<String, std::env::VarError>) -> i32 {
    let mut jail = Jail::new();
    let outcome = launcher(sys, spec_json, &mut jail);
    finish(sys, &jail, outcome)
}

/// Runs the agent's init as the zygote's clone (see [`super::zygote`]): born in its new
/// namespaces with the kernel as its parent, it makes L's steps but the `unshare` (`ids`: the
/// zygote's, read before the clone: inside the new user namespace they read as the overflow
/// id until mapped) and the fork, then I's from the hostname on. One process fewer per agent
/// and no `execve` of the launcher; the same jail, in the same order.
///
/// `mapped`: the init was cloned ahead of its agent and wrote its id maps while it waited
/// ([`map_ids_ahead`]); only the layers' statuses are left to set.
pub fn run_cloned<S: Sys>(
    sys: &mut S,
    spec_json: Result<String, std::env::VarError>,
    ids: (u32, u32),
    mapped: bool,
) -> i32 {
    let mut jail = Jail::new();
    let outcome = cloned(sys, spec_json, ids, mapped, &mut jail);
    finish(sys, &jail, outcome)
}

/// The cloned init: prologue, id maps, the jail.
fn cloned<S: Sys>(
    sys: &mut S,
    spec_json: Result<String, std::env::VarError>,
    ids: (u32, u32),
    mapped: bool,
    jail: &mut Jail,
) -> Result<i32, LaunchError> {
    let spec = parse(sys, spec_json)?;
    prologue(sys, &spec, jail)?;
    if mapped {
        set_namespace_layers(&spec, jail, ids);
    } else {
        map_ids(sys, &spec, jail, ids)?;
    }
    init_jail(sys, &spec, jail)
}

/// The id maps of an init cloned ahead of its agent, written before any spec exists: each id
/// mapped to itself, `setgroups` denied — the same maps [`map_ids`] writes, which depend on
/// nothing of the agent.
pub fn map_ids_ahead<S: Sys>(sys: &mut S, ids: (u32, u32)) -> Result<(), String> {
    write_id_maps(sys, ids).map_err(|e| e.message())
}

/// The exit code of `outcome`; a failure is printed and, when fd 3 still owes the kernel a
/// report, reported.
fn finish<S: Sys>(sys: &mut S, jail: &Jail, outcome: Result<i32, LaunchError>) -> i32 {
    match outcome {
        Ok(code) => code,
        Err(e) => {
            let message = e.message();
            sys.eprint(&message);
            if jail.fd == AgentFd::Unreported {
                let report = jail.report(&format!("not reached: {message}"));
                if let Err(send) = sys.send_report(&report) {
                    sys.eprint(&LaunchError::Report(send).message());
                }
            }
            EXIT_SANDBOX_FAILED
        }
    }
}

fn parse(
    sys: &mut impl Sys,
    json: Result<String, std::env::VarError>,
) -> Result<JailSpec, LaunchError> {
    let json = json.map_err(LaunchError::SpecMissing)?;
    let spec: JailSpec = serde_json::from_str(&json).map_err(LaunchError::SpecParse)?;
    spec.validate().map_err(LaunchError::SpecInvalid)?;
    sys.check_dir(&spec.scratch)
        .map_err(|source| LaunchError::Scratch {
            path: spec.scratch.clone(),
            source,
        })?;
    Ok(spec)
}

fn check_parent(sys: &mut impl Sys, spec: &JailSpec) -> Result<(), LaunchError> {
    let actual = sys.getppid();
    if actual != spec.kernel_pid {
        return Err(LaunchError::ParentGone {
            expected: spec.kernel_pid,
            actual,
            source: other("the kernel that started the launcher is gone"),
        });
    }
    Ok(())
}

/// L: everything up to the fork of the init, then wait for it.
fn launcher<S: Sys>(
    sys: &mut S,
    spec_json: Result<String, std::env::VarError>,
    jail: &mut Jail,
) -> Result<i32, LaunchError> {
    let spec = parse(sys, spec_json)?;
    prologue(sys, &spec, jail)?;

    // Namespaces are the process model itself (the init is pid 1 of its own namespace and
    // kills it whole), so they are required whatever the spec says.
    // Before unshare: inside a user namespace without maps, every id reads as the overflow id.
    let (uid, gid) = sys.ids();
    if let Err(e) = sys.unshare_namespaces(!spec.network) {
        let e = LaunchError::Unshare(e);
        for ns in LayerName::NAMESPACES {
            jail.set(
                ns,
                LayerStatus::Missing {
                    detail: e.message(),
                },
            );
        }
        return Err(e);
    }
    map_ids(sys, &spec, jail, (uid, gid))?;

    // Entering the user namespace changed our credentials, which clears the parent-death
    // signal: arm it again, then make sure the kernel did not die in between.
    sys.set_pdeathsig().map_err(LaunchError::Pdeathsig)?;
    check_parent(sys, &spec)?;
    sys.liveness_pipe().map_err(LaunchError::Pipe)?;
    match sys.fork().map_err(LaunchError::Fork)? {
        ForkSide::Child => init(sys, &spec, jail),
        ForkSide::Parent { child } => {
            sys.liveness_hold();
            jail.fd = AgentFd::Done;
            sys.close_agent_fd().map_err(LaunchError::CloseAgentFd)?;
            let exit = sys.wait_child(child).map_err(LaunchError::Wait)?;
            Ok(exit.code())
        }
    }
}

/// L's steps (or the cloned init's) before the namespaces are made or filled: session,
/// parent-death signal and parent check, descriptors, environment, rlimits (not `NPROC`), the
/// agent's cgroup(s) (before anything is forked, so the whole tree is inside).
fn prologue<S: Sys>(sys: &mut S, spec: &JailSpec, jail: &mut Jail) -> Result<(), LaunchError> {
    jail.require_full = spec.require_full;
    sys.setsid().map_err(LaunchError::Setsid)?;
    sys.set_pdeathsig().map_err(LaunchError::Pdeathsig)?;
    check_parent(sys, spec)?;
    sys.close_fds_above_agent_fd()
        .map_err(LaunchError::CloseFds)?;
    sys.clear_env();

    let limits = spec.limits;
    let mut rlimits = Ok(());
    for (limit, value) in [
        (Limit::AddressSpace, limits.address_space),
        (Limit::OpenFiles, limits.open_files),
        (Limit::CpuSeconds, limits.cpu_seconds),
        (Limit::FileSize, limits.file_size),
        (Limit::Core, 0),
    ] {
        if let Err(source) = sys.setrlimit(limit, value) {
            rlimits = Err(LaunchError::Rlimit {
                resource: limit.name(),
                source,
            });
            break;
        }
    }
    // The layer is completed by the init (RLIMIT_NPROC); only a failure is final here.
    if let Err(e) = rlimits {
        jail.layer(LayerName::Rlimits, Err(e))?;
    }
    join_cgroups(sys, spec, jail)
}

/// The id maps of the new user namespace (each id mapped to itself, `setgroups` denied) and
/// the namespace layers' statuses.
fn map_ids<S: Sys>(
    sys: &mut S,
    spec: &JailSpec,
    jail: &mut Jail,
    ids: (u32, u32),
) -> Result<(), LaunchError> {
    write_id_maps(sys, ids)?;
    set_namespace_layers(spec, jail, ids);
    Ok(())
}

fn write_id_maps<S: Sys>(sys: &mut S, (uid, gid): (u32, u32)) -> Result<(), LaunchError> {
    for (file, contents) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("{uid} {uid} 1")),
        ("gid_map", format!("{gid} {gid} 1")),
    ] {
        sys.write_proc_self(file, &contents)
            .map_err(|source| LaunchError::IdMap {
                path: proc_path(file),
                source,
            })?;
    }
    Ok(())
}

/// The namespace layers' statuses once the ids are mapped.
fn set_namespace_layers(spec: &JailSpec, jail: &mut Jail, (uid, gid): (u32, u32)) {
    jail.set(
        LayerName::Userns,
        LayerStatus::Active {
            detail: format!("uid {uid} and gid {gid} mapped to themselves, setgroups denied"),
        },
    );
    jail.set(
        LayerName::Pidns,
        LayerStatus::Active {
            detail: "init is pid 1 and kills the namespace when the agent exits".into(),
        },
    );
    jail.set(
        LayerName::Netns,
        if spec.network {
            LayerStatus::Partial {
                detail: "the host's network, shared: a tool provider declared `network`".into(),
            }
        } else {
            LayerStatus::Active {
                detail: "empty: no interface up".into(),
            }
        },
    );
    jail.set(
        LayerName::Ipcns,
        LayerStatus::Active {
            detail: "private".into(),
        },
    );
    jail.set(
        LayerName::Utsns,
        LayerStatus::Active {
            detail: format!("hostname agent-{}", spec.agent_id),
        },
    );
    jail.set(
        LayerName::Mountns,
        LayerStatus::Active {
            detail: "private copy, propagation private".into(),
        },
    );
}

/// Joins the cgroup(s) the kernel made for this agent. No group, or a failed join, leaves the
/// layer `Missing`; that is fatal only when the spec marks the cgroup required.
fn join_cgroups<S: Sys>(sys: &mut S, spec: &JailSpec, jail: &mut Jail) -> Result<(), LaunchError> {
    let cg = &spec.cgroup;
    if cg.procs.is_empty() {
        let detail = if cg.detail.is_empty() {
            "the kernel gave no cgroup (rlimits only)".to_string()
        } else {
            cg.detail.clone()
        };
        jail.set(LayerName::Cgroup, LayerStatus::Missing { detail });
        return Ok(());
    }
    for path in &cg.procs {
        if let Err(source) = sys.join_cgroup(path) {
            let e = LaunchError::Cgroup {
                path: path.clone(),
                source,
            };
            jail.set(
                LayerName::Cgroup,
                LayerStatus::Missing {
                    detail: e.message(),
                },
            );
            return if cg.required { Err(e) } else { Ok(()) };
        }
    }
    jail.set(
        LayerName::Cgroup,
        LayerStatus::Active {
            detail: cg.detail.clone(),
        },
    );
    Ok(())
}

fn proc_path(file: &str) -> &'static str {
    match file {
        "setgroups" => "/proc/self/setgroups",
        "uid_map" => "/proc/self/uid_map",
        _ => "/proc/self/gid_map",
    }
}

/// I: the agent's init. Finishes the jail, reports it, forks the agent and reaps.
fn init<S: Sys>(sys: &mut S, spec: &JailSpec, jail: &mut Jail) -> Result<i32, LaunchError> {
    sys.set_pdeathsig().map_err(LaunchError::Pdeathsig)?;
    sys.liveness_check().map_err(LaunchError::LauncherGone)?;
    init_jail(sys, spec, jail)
}

/// I's steps from the hostname on: the rest of the jail, the report, the fork of the agent,
/// the reaping.
fn init_jail<S: Sys>(sys: &mut S, spec: &JailSpec, jail: &mut Jail) -> Result<i32, LaunchError> {
    sys.sethostname(&format!("agent-{}", spec.agent_id))
        .map_err(LaunchError::Hostname)?;
    if !spec.network {
        let netns = match sys.loopback_up() {
            Ok(()) => "loopback up, no other interface".to_string(),
            Err(e) => format!("empty: loopback not up ({e})"),
        };
        jail.set(LayerName::Netns, LayerStatus::Active { detail: netns });
        // The egress proxy's listener, on the namespace's loopback: without it an agent with a
        // network rule would meet a dead proxy, so failing here refuses the agent.
        if let Some(port) = spec.egress_port {
            sys.egress_listen(port).map_err(LaunchError::Egress)?;
            jail.set(
                LayerName::Netns,
                LayerStatus::Active {
                    detail: format!(
                        "loopback up, no other interface; egress proxy on 127.0.0.1:{port}"
                    ),
                },
            );
        }
    }
    sys.mount_private().map_err(LaunchError::MountPrivate)?;

    // The minimal root: nothing but the spec's paths exists for the agent, so it cannot even
    // name a host Unix socket (landlock below ABI 9 does not mediate connect()).
    let rootfs = sys
        .build_root(spec)
        .and_then(|detail| sys.pivot_root().map(|()| detail))
        .map(|detail| LayerStatus::Active { detail })
        .map_err(LaunchError::Rootfs);
    jail.layer(LayerName::Rootfs, rootfs)?;

    // RLIMIT_NPROC is set only now, inside the user namespace: the kernel counts processes per
    // (user namespace, uid) and charges every ancestor namespace up the ucount chain. Set
    // before unshare(CLONE_NEWUSER), the limit would be checked against the uid's host-wide
    // process count (every process that uid runs on the host, all agents included), so one
    // busy uid could keep an agent from forking at all. Set here, it caps what this agent's
    // namespace spawns (the host-wide limit of the uid still applies on top).
    if !jail.reached(LayerName::Rlimits) {
        let l = spec.limits;
        let outcome = sys
            .setrlimit(Limit::Processes, l.processes)
            .map(|()| LayerStatus::Active {
                detail: format!(
                    "as {} nofile {} cpu {}s fsize {} core 0 nproc {}",
                    l.address_space, l.open_files, l.cpu_seconds, l.file_size, l.processes
                ),
            })
            .map_err(|source| LaunchError::Rlimit {
                resource: Limit::Processes.name(),
                source,
            });
        jail.layer(LayerName::Rlimits, outcome)?;
    }

    let caps = sys
        .drop_capabilities()
        .map(|detail| LayerStatus::Active { detail })
        .map_err(LaunchError::Capabilities);
    jail.layer(LayerName::Capabilities, caps)?;
    let nnp = sys
        .set_no_new_privs()
        .map(|()| LayerStatus::Active {
            detail: "set".into(),
        })
        .map_err(LaunchError::NoNewPrivs);
    jail.layer(LayerName::NoNewPrivs, nnp)?;
    let landlock = sys.landlock(spec).map_err(LaunchError::Landlock);
    jail.layer(LayerName::Landlock, landlock)?;
    let large_mmap = super::seccomp::large_mmap(spec.limits.address_space);
    let seccomp = sys
        .seccomp(spec.network || spec.egress_port.is_some(), large_mmap)
        .map_err(LaunchError::Seccomp);
    jail.layer(LayerName::Seccomp, seccomp)?;

    let report = jail.report("not reached");
    jail.fd = AgentFd::Done;
    sys.send_report(&report).map_err(LaunchError::Report)?;
    // Before the fork: the agent never holds the listener of its own filter.
    sys.send_listener().map_err(LaunchError::Listener)?;
    sys.send_egress_listener()
        .map_err(LaunchError::EgressListener)?;

    let child = match start_agent(sys, spec) {
        Ok(child) => child,
        Err(code) => return Ok(code),
    };
    // An agent's init lets go of the agent's socket; a tool's keeps its report socket for the
    // tool's exit status (the tool was started without it).
    if !spec.tool {
        sys.close_agent_fd().map_err(LaunchError::CloseAgentFd)?;
    }
    sys.release_memory();
    let exit = loop {
        let (pid, exit) = sys.reap().map_err(LaunchError::Wait)?;
        if pid == child {
            break exit;
        }
    };
    sys.kill_all();
    if spec.tool {
        tool_ended(sys, exit.code());
    }
    Ok(exit.code())
}

/// A tool's init, its tool ended and every other process of the pid namespace sent SIGKILL:
/// reaps them all, so nothing of the tool is left but this init, closes its own copies of
/// the output pipes, then tells the kernel the tool's status. The kernel answers the call on
/// it instead of waiting for this init's own exit, which tears the jail's namespaces down (a
/// mount namespace's teardown waits for an RCU grace period) before it releases the init's
/// files. A failed send goes unsaid (stderr is closed): the kernel then takes the status from
/// this init's exit, as it would without the frame.
fn tool_ended<S: Sys>(sys: &mut S, status: i32) {
    sys.reap_rest();
    sys.close_output();
    let _ = sys.send_tool_exit(status);
}

/// A: starts the agent program in its own session, in its working directory (the init moves
/// there first: A inherits it), with exactly `spec.env`; a tool without fd 3 (it carried only
/// the report and the listener). Returns A's pid, or the exit code of a start that failed,
/// its reason printed: 125 when the working directory is not there, 126/127 when the
/// program could not be executed (permission / anything else, e.g. not found).
fn start_agent<S: Sys>(sys: &mut S, spec: &JailSpec) -> Result<i32, i32> {
    let cwd = spec.cwd.as_ref().unwrap_or(&spec.scratch);
    if let Err(source) = sys.chdir(cwd) {
        let e = if spec.cwd.is_some() {
            LaunchError::Cwd {
                path: cwd.clone(),
                source,
            }
        } else {
            LaunchError::Scratch {
                path: cwd.clone(),
                source,
            }
        };
        sys.eprint(&e.message());
        return Err(EXIT_SANDBOX_FAILED);
    }
    let program = spec.program.display();
    let (path, argv, env) = match exec_args(spec) {
        Ok(args) => args,
        Err(e) => {
            sys.eprint(&format!("agentos-launch: exec {program}: {e}"));
            return Err(EXIT_EXEC_NOT_FOUND);
        }
    };
    sys.spawn(&path, &argv, &env, spec.tool).map_err(|err| {
        sys.eprint(&format!("agentos-launch: exec {program}: {err}"));
        match err.kind() {
            io::ErrorKind::PermissionDenied => EXIT_EXEC_DENIED,
            _ if err.raw_os_error() == Some(libc::EPERM) => EXIT_EXEC_DENIED,
            _ => EXIT_EXEC_NOT_FOUND,
        }
    })
}

type ExecArgs = (CString, Vec<CString>, Vec<CString>);

fn exec_args(spec: &JailSpec) -> io::Result<ExecArgs> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(spec.program.as_os_str().as_bytes())?;
    let argv = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let env = spec
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((path, argv, env))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::launch::os::RecordingSys;
    use crate::launch::spec::CgroupSpec;

    fn spec() -> JailSpec {
        JailSpec {
            agent_id: 7,
            kernel_pid: 42,
            program: "/bin/true".into(),
            argv: vec!["true".into()],
            env: vec![("A".into(), "1".into())],
            scratch: "/scratch".into(),
            read_exec: vec!["/usr".into()],
            read_only: vec![],
            devices: vec![],
            limits: Default::default(),
            cgroup: CgroupSpec {
                procs: vec![
                    "/sys/fs/cgroup/pids/agentos-42/7/tasks".into(),
                    "/sys/fs/cgroup/memory/agentos-42/7/tasks".into(),
                ],
                detail: "v1 pids,memory: pids.max 128, memory 512MiB".into(),
                required: false,
            },
            require_full: true,
            mounts: vec![],
            cwd: None,
            tool: false,
            network: false,
            egress_port: None,
        }
    }

    fn json() -> Result<String, std::env::VarError> {
        Ok(serde_json::to_string(&spec()).unwrap())
    }

    const L: &[&str] = &[
        "check_dir /scratch",
        "setsid",
        "set_pdeathsig SIGKILL",
        "getppid",
        "close_range 4..",
        "clear_env",
        "setrlimit as 4294967296",
        "setrlimit nofile 256",
        "setrlimit cpu 3600",
        "setrlimit fsize 268435456",
        "setrlimit core 0",
        "write /sys/fs/cgroup/pids/agentos-42/7/tasks \"0\"",
        "write /sys/fs/cgroup/memory/agentos-42/7/tasks \"0\"",
        "ids",
        "unshare user|pid|net|ipc|uts|mount",
        "write /proc/self/setgroups \"deny\"",
        "write /proc/self/uid_map \"1000 1000 1\"",
        "write /proc/self/gid_map \"1000 1000 1\"",
        "set_pdeathsig SIGKILL",
        "getppid",
        "liveness_pipe",
    ];

    const I: &[&str] = &[
        "set_pdeathsig SIGKILL",
        "liveness_check",
        "sethostname agent-7",
        "ifup lo",
        "mount / MS_REC|MS_PRIVATE",
        "build_root tmpfs + 2 paths + scratch tmpfs 67108864 + proc, all nosuid,nodev",
        "pivot_root",
        "setrlimit nproc 128",
        "drop_capabilities",
        "no_new_privs",
        "landlock",
        "seccomp",
        "send_report userns,pidns,netns,ipcns,utsns,mountns,rootfs,rlimits,cgroup,capabilities,no_new_privs,landlock,seccomp",
        "send_listener",
        "send_egress_listener",
    ];

    fn expect(parts: &[&[&str]]) -> Vec<String> {
        parts
            .iter()
            .flat_map(|p| p.iter().map(|s| s.to_string()))
            .collect()
    }

    #[test]
    fn launcher_side_order() {
        let mut sys = RecordingSys::new(42, [ForkSide::Parent { child: 9 }]);
        assert_eq!(run(&mut sys, json()), 0);
        let tail: &[&str] = &["fork -> parent", "liveness_hold", "close fd 3", "waitpid 9"];
        assert_eq!(sys.calls, expect(&[L, tail]));
    }

    #[test]
    fn init_side_order() {
        let mut sys = RecordingSys::new(42, [ForkSide::Child, ForkSide::Parent { child: 2 }]);
        assert_eq!(run(&mut sys, json()), 0);
        let fork: &[&str] = &["fork -> child"];
        let tail: &[&str] = &[
            "chdir /scratch",
            "spawn setsid execve \"/bin/true\" argv=[\"true\"] env=[\"A=1\"]",
            "close fd 3",
            "release_memory",
            "reap",
            "kill -1 SIGKILL",
        ];
        assert_eq!(sys.calls, expect(&[L, fork, I, tail]));
    }

    /// The zygote's clone: L's steps but `ids`, `unshare`, the second parent check, the
    /// liveness pipe and the fork; then I's from the hostname on (no launcher to check on).
    #[test]
    fn cloned_init_side_order() {
        let mut sys = RecordingSys::new(42, [ForkSide::Parent { child: 2 }]);
        assert_eq!(run_cloned(&mut sys, json(), (1000, 1000), false), 0);
        let prologue = &L[..L.iter().position(|c| *c == "ids").unwrap()];
        let maps: &[&str] = &[
            "write /proc/self/setgroups \"deny\"",
            "write /proc/self/uid_map \"1000 1000 1\"",
            "write /proc/self/gid_map \"1000 1000 1\"",
        ];
        let jail = &I[I.iter().position(|c| c.starts_with("sethostname")).unwrap()..];
        let tail: &[&str] = &[
            "chdir /scratch",
            "spawn setsid execve \"/bin/true\" argv=[\"true\"] env=[\"A=1\"]",
            "close fd 3",
            "release_memory",
            "reap",
            "kill -1 SIGKILL",
        ];
        assert_eq!(sys.calls, expect(&[prologue, maps, jail, tail]));
        // Every layer the launcher's init reports, the clone reports.
        let mut full = RecordingSys::new(42, [ForkSide::Child, ForkSide::Parent { child: 2 }]);
        run(&mut full, json());
        let report = |calls: &[String]| {
            calls
                .iter()
                .find(|c| c.starts_with("send_report"))
                .cloned()
                .unwrap()
        };
        assert_eq!(report(&sys.calls), report(&full.calls));
    }

    /// An init cloned ahead wrote its id maps while it waited ([`map_ids_ahead`], the same
    /// three writes): once its spec comes it runs the prologue and the jail, no write of its
    /// own ids, and reports exactly what a fresh clone reports.
    #[test]
    fn an_init_cloned_ahead_maps_ids_before_its_spec_and_reports_the_same_jail() {
        let mut ahead = RecordingSys::new(42, []);
        map_ids_ahead(&mut ahead, (1000, 1000)).unwrap();
        assert_eq!(
            ahead.calls,
            [
                "write /proc/self/setgroups \"deny\"",
                "write /proc/self/uid_map \"1000 1000 1\"",
                "write /proc/self/gid_map \"1000 1000 1\"",
            ]
        );
        let mut sys = RecordingSys::new(42, [ForkSide::Parent { child: 2 }]);
        assert_eq!(run_cloned(&mut sys, json(), (1000, 1000), true), 0);
        assert!(
            !sys.calls.iter().any(|c| c.starts_with("write /proc/self")),
            "{:?}",
            sys.calls
        );
        let mut fresh = RecordingSys::new(42, [ForkSide::Parent { child: 2 }]);
        run_cloned(&mut fresh, json(), (1000, 1000), false);
        let without_maps: Vec<&String> = fresh
            .calls
            .iter()
            .filter(|c| !c.starts_with("write /proc/self"))
            .collect();
        assert_eq!(sys.calls.iter().collect::<Vec<_>>(), without_maps);
    }

    #[test]
    fn a_cloned_init_whose_kernel_is_gone_fails_before_any_jail_step_and_reports() {
        let mut sys = RecordingSys::new(1, []);
        assert_eq!(
            run_cloned(&mut sys, json(), (1000, 1000), false),
            EXIT_SANDBOX_FAILED
        );
        assert_eq!(sys.calls.len(), 6, "{:?}", sys.calls);
        assert!(sys.calls[5].starts_with("send_report "));
        assert!(!sys.calls.iter().any(|c| c.starts_with("write")));
    }

    #[test]
    fn cloned_agent_side_order() {
        let mut sys = RecordingSys::new(42, [ForkSide::Child]);
        assert_eq!(
            run_cloned(&mut sys, json(), (1000, 1000), false),
            EXIT_EXEC_NOT_FOUND
        );
        let at = sys
            .calls
            .iter()
            .position(|c| c == "chdir /scratch")
            .unwrap();
        assert_eq!(
            sys.calls[at + 1..],
            [
                "spawn setsid execve \"/bin/true\" argv=[\"true\"] env=[\"A=1\"]".to_string(),
                "eprint agentos-launch: exec /bin/true: entity not found".into()
            ]
        );
        assert!(sys.calls[at - 3..at].contains(&"send_listener".to_string()));
    }

    #[test]
    fn an_agent_with_an_egress_proxy_listens_on_its_loopback_before_the_jail_closes() {
        let mut s = spec();
        s.egress_port = Some(3128);
        let mut sys = RecordingSys::new(42, [ForkSide::Child, ForkSide::Parent { child: 2 }]);
        assert_eq!(run(&mut sys, Ok(serde_json::to_string(&s).unwrap())), 0);
        let at = |c: &str| sys.calls.iter().position(|x| x == c).unwrap();
        // Listening needs the namespace's loopback up, and happens before every layer that
        // closes the jail; the listener leaves before the agent is started.
        assert_eq!(at("listen 127.0.0.1:3128"), at("ifup lo") + 1);
        assert!(at("listen 127.0.0.1:3128") < at("drop_capabilities"));
        assert!(sys.calls.iter().any(|c| c == "seccomp +inet"));
        assert_eq!(at("send_egress_listener"), at("send_listener") + 1);
        let spawn = sys
            .calls
            .iter()
            .position(|c| c.starts_with("spawn"))
            .unwrap();
        assert!(at("send_egress_listener") < spawn);
        assert!(!sys.calls.iter().any(|c| c == "seccomp"));
    }

    #[test]
    fn agent_side_order() {
        let mut sys = RecordingSys::new(42, [ForkSide::Child, ForkSide::Child]);
        // The recorder's spawn fails with ENOENT (its execve): the init reports it and exits
        // 127.
        assert_eq!(run(&mut sys, json()), EXIT_EXEC_NOT_FOUND);
        let fork: &[&str] = &["fork -> child"];
        let tail: &[&str] = &[
            "chdir /scratch",
            "spawn setsid execve \"/bin/true\" argv=[\"true\"] env=[\"A=1\"]",
            "eprint agentos-launch: exec /bin/true: entity not found",
        ];
        assert_eq!(sys.calls, expect(&[L, fork, I, tail]));
    }

    #[test]
    fn wrong_parent_fails_before_any_jail_step_and_reports() {
        let mut sys = RecordingSys::new(1, []);
        assert_eq!(run(&mut sys, json()), EXIT_SANDBOX_FAILED);
        assert_eq!(
            sys.calls,
            vec![
                "check_dir /scratch".to_string(),
                "setsid".into(),
                "set_pdeathsig SIGKILL".into(),
                "getppid".into(),
                "eprint agentos-launch: parent check (expected kernel pid 42, parent is 1): the kernel that started the launcher is gone".into(),
                "send_report userns,pidns,netns,ipcns,utsns,mountns,rootfs,rlimits,cgroup,capabilities,no_new_privs,landlock,seccomp".into(),
            ]
        );
    }

    #[test]
    fn missing_layer_is_fatal_only_when_required() {
        let mut jail = Jail::new();
        let missing = || {
            Ok(LayerStatus::Missing {
                detail: "unsupported".into(),
            })
        };
        assert!(jail.layer(LayerName::Landlock, missing()).is_err());
        jail.require_full = false;
        assert!(jail.layer(LayerName::Landlock, missing()).is_ok());
        assert!(jail
            .layer(
                LayerName::Seccomp,
                Ok(LayerStatus::Partial { detail: "x".into() })
            )
            .is_ok());
        jail.require_full = true;
        assert!(jail
            .layer(
                LayerName::Seccomp,
                Ok(LayerStatus::Partial { detail: "x".into() })
            )
            .is_ok());
        let report = jail.report("not reached");
        assert_eq!(report.layers.len(), LAYERS.len());
        assert_eq!(
            report.layers[0].status,
            LayerStatus::Missing {
                detail: "not reached".into()
            }
        );
    }

    #[test]
    fn cgroup_join_failure_is_missing_and_fatal_only_when_required() {
        let mut sys = RecordingSys::new(42, [ForkSide::Parent { child: 9 }]);
        sys.fail_cgroup = true;
        assert_eq!(run(&mut sys, json()), 0);
        // The first failure stops the joining; the jail goes on.
        assert_eq!(
            sys.calls
                .iter()
                .filter(|c| c.ends_with("/tasks \"0\""))
                .count(),
            1
        );

        let mut s = spec();
        s.cgroup.required = true;
        let mut sys = RecordingSys::new(42, []);
        sys.fail_cgroup = true;
        assert_eq!(
            run(&mut sys, Ok(serde_json::to_string(&s).unwrap())),
            EXIT_SANDBOX_FAILED
        );
        assert!(sys.calls.iter().any(|c| c
            == "eprint agentos-launch: join cgroup /sys/fs/cgroup/pids/agentos-42/7/tasks: Permission denied (os error 13)"));
        assert!(!sys.calls.iter().any(|c| c.starts_with("unshare")));
    }

    #[test]
    fn no_cgroup_is_reported_missing_with_the_kernels_reason() {
        let mut s = spec();
        s.cgroup = CgroupSpec {
            procs: vec![],
            detail: "rlimits only: v1 /sys/fs/cgroup/pids is not writable".into(),
            required: false,
        };
        let mut jail = Jail::new();
        let mut sys = RecordingSys::new(42, []);
        join_cgroups(&mut sys, &s, &mut jail).unwrap();
        let report = jail.report("x");
        let cg = report
            .layers
            .iter()
            .find(|l| l.name == LayerName::Cgroup.as_str())
            .unwrap();
        assert_eq!(
            cg.status,
            LayerStatus::Missing {
                detail: "rlimits only: v1 /sys/fs/cgroup/pids is not writable".into()
            }
        );
        assert!(sys.calls.is_empty());
    }

    #[test]
    fn a_tool_closes_fd_3_starts_in_its_cwd_and_a_network_tool_keeps_the_host_net() {
        let mut s = spec();
        s.tool = true;
        s.network = true;
        s.cwd = Some("/workspace".into());
        let mut sys = RecordingSys::new(42, [ForkSide::Child, ForkSide::Child]);
        assert_eq!(
            run(&mut sys, Ok(serde_json::to_string(&s).unwrap())),
            EXIT_EXEC_NOT_FOUND
        );
        let has = |c: &str| sys.calls.iter().any(|x| x == c);
        assert!(has("unshare user|pid|ipc|uts|mount"));
        assert!(!has("ifup lo"));
        assert!(has("seccomp +inet"));
        let at = sys
            .calls
            .iter()
            .position(|c| c == "chdir /workspace")
            .unwrap();
        assert!(
            sys.calls[at + 1].starts_with("spawn setsid close fd 3 execve \"/bin/true\""),
            "{:?}",
            sys.calls
        );
    }

    /// A tool's init keeps its report socket, and sends the tool's status on it only after the
    /// rest of the namespace is killed and reaped: nothing of the tool is left when the
    /// kernel hears it ended. An agent's init never sends one.
    #[test]
    fn a_tools_init_sends_its_status_only_once_nothing_else_is_left() {
        let mut s = spec();
        s.tool = true;
        let mut sys = RecordingSys::new(42, [ForkSide::Parent { child: 2 }]);
        assert_eq!(
            run_cloned(
                &mut sys,
                Ok(serde_json::to_string(&s).unwrap()),
                (1000, 1000),
                true
            ),
            0
        );
        let at = sys
            .calls
            .iter()
            .position(|c| c == "chdir /scratch")
            .unwrap();
        assert_eq!(
            sys.calls[at..],
            [
                "chdir /scratch",
                "spawn setsid close fd 3 execve \"/bin/true\" argv=[\"true\"] env=[\"A=1\"]",
                "release_memory",
                "reap",
                "kill -1 SIGKILL",
                "reap until ECHILD",
                "close fd 1, fd 2",
                "send_tool_exit 0",
            ]
        );
        let mut agent = RecordingSys::new(42, [ForkSide::Parent { child: 2 }]);
        run_cloned(&mut agent, json(), (1000, 1000), true);
        assert!(
            !agent.calls.iter().any(|c| c.starts_with("send_tool_exit")),
            "{:?}",
            agent.calls
        );
    }

    #[test]
    fn mounts_and_cwd_must_be_plain_absolute_paths() {
        use crate::launch::spec::Mount;
        let mut s = spec();
        s.mounts = vec![Mount {
            source: "/srv/ws".into(),
            target: "/workspace/../etc".into(),
            writable: true,
            view: vec![],
        }];
        assert!(s.validate().is_err());
        s.mounts[0].target = "/".into();
        assert!(s.validate().is_err());
        s.mounts[0].target = "/workspace".into();
        assert!(s.validate().is_ok());
        use crate::launch::spec::{ViewEntry, ViewKind};
        for bad in ["", "../x", "/etc", "./a"] {
            s.mounts[0].view = vec![ViewEntry {
                path: bad.into(),
                kind: ViewKind::HiddenDir,
            }];
            assert!(s.validate().is_err(), "{bad}");
        }
        s.mounts[0].view[0].path = "a/b".into();
        assert!(s.validate().is_ok());
        s.mounts[0].view = vec![s.mounts[0].view[0].clone(); crate::launch::MAX_VIEW_ENTRIES + 1];
        assert!(s.validate().is_err());
        s.mounts[0].view.clear();
        s.cwd = Some("workspace".into());
        assert!(s.validate().is_err());
    }

    #[test]
    fn spec_json_round_trip() {
        let s = spec();
        let back: JailSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}

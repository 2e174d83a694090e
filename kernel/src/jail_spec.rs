//! The one builder of the jail specs the kernel hands `agentos-launch`: an agent's (from
//! `spawn`) and its tools' (from `tools`), so the two cannot drift apart.
//!
//! Every jail of an agent holds what [`JailBase`] says (the kernel's read-only runtime: the
//! read-exec paths, the read-only files, the devices; the kernel's pid for the launcher's
//! parent check; `require_full_sandbox`), the paths the agent's policy adds read-only
//! (`sandbox.read_only`), and the base environment (`PATH` = [`JAIL_PATH`], `HOME` and
//! `TMPDIR` = the scratch directory, `LANG`). What differs comes from the caller, in
//! [`Occupant`]: the program and argv, the scratch directory, the limits, the cgroup, extra
//! read-only paths and environment, and the [`Role`]:
//!
//! - [`Role::Agent`]: the agent's kernel socket (fd 3, announced in `AGENTOS_FD` and, with
//!   its id, `AGENTOS_AGENT_ID`), the embedded Python SDK (read-only, on `PYTHONPATH`), the
//!   embedded TypeScript SDK (read-only, preloaded through `NODE_OPTIONS`, on `NODE_PATH`), and
//!   its program readable and executable (it may lie outside the runtime); no mounts, no network
//!   but, when its policy has a `network` rule, its egress proxy on the loopback of its own
//!   namespace ([`EGRESS_PROXY_PORT`], announced in `HTTP_PROXY` and the other proxy variables).
//! - [`Role::Tool`]: no kernel socket (the launcher closes fd 3 before the exec) and no SDK;
//!   the tool's mounts (the workspace as its view, a provider's `rw=` paths), its working
//!   directory, and the host's network only for a provider the operator declared `network`.
//!
//! Invariants: a tool's spec never names the agent's socket or the SDK; an agent's spec
//! never has a mount, a working directory or the network. Pure: no I/O, no clock.

use std::path::PathBuf;

use agentos_policy::Sandbox;
use agentos_syscalls::{AgentId, AGENT_FD, AGENT_FD_ENV, AGENT_ID_ENV};
use agentos_userspace::launch::{CgroupSpec, JailSpec, Mount, ResourceLimits};

use crate::config::{Config, Runtime};

/// The PATH inside every jail, an agent's and a tool's; bare program names resolve against it.
pub const JAIL_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The port of an agent's egress proxy on the loopback of its own network namespace.
pub const EGRESS_PROXY_PORT: u16 = 3128;

/// The variables that send an unmodified HTTP client (curl, Python's `urllib`, `requests`,
/// Node's `undici` with its env proxy agent, `git`, `pip`) through the egress proxy, upper and
/// lower case, with `NO_PROXY` naming nothing.
pub fn proxy_env(port: u16) -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let mut env = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        env.push((name.to_string(), url.clone()));
        env.push((name.to_ascii_lowercase(), url.clone()));
    }
    env.push(("NO_PROXY".into(), String::new()));
    env.push(("no_proxy".into(), String::new()));
    env
}

/// What every jail of this kernel holds, from its configuration.
#[derive(Debug, Clone)]
pub(crate) struct JailBase<'a> {
    pub runtime: &'a Runtime,
    pub require_full: bool,
    /// The directory agents import the Python SDK from.
    pub python_sdk: PathBuf,
    /// The directory agents' `node` imports the TypeScript SDK from (`nodesdk`).
    pub node_sdk: PathBuf,
    /// The kernel's pid: the launcher checks it is its parent.
    pub kernel_pid: u32,
}

impl<'a> JailBase<'a> {
    /// The jails of the kernel configured by `config`, this process being the kernel.
    pub(crate) fn of(config: &'a Config) -> Self {
        Self {
            runtime: &config.runtime,
            require_full: config.require_full_sandbox,
            python_sdk: config.python_sdk_dir(),
            node_sdk: config.node_sdk_dir(),
            kernel_pid: std::process::id(),
        }
    }
}

/// Who runs in one jail, and what that jail holds beyond [`JailBase`] and the policy's paths.
#[derive(Debug, Clone)]
pub(crate) struct Occupant {
    /// The agent the jail is for (a tool's: the agent it runs for).
    pub agent_id: AgentId,
    /// Absolute host path of the program.
    pub program: PathBuf,
    /// argv, argv\[0\] included.
    pub argv: Vec<String>,
    /// The private scratch directory (read-write; `HOME`, `TMPDIR`).
    pub scratch: PathBuf,
    /// Host paths readable besides the runtime's and the policy's, after them.
    pub read_only: Vec<PathBuf>,
    /// Environment after the jail's own variables (later entries win in the launcher).
    pub env: Vec<(String, String)>,
    pub limits: ResourceLimits,
    pub cgroup: CgroupSpec,
    pub role: Role,
}

/// Whether the jail holds the agent itself or a tool run for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// The agent: its kernel socket, the Python SDK, its program executable; its egress
    /// proxy's port when its policy has a `network` rule.
    Agent { egress: Option<u16> },
    /// A tool or provider: no kernel socket.
    Tool {
        mounts: Vec<Mount>,
        /// The working directory in the jail; `None`: the scratch directory.
        cwd: Option<PathBuf>,
        /// Share the host's network (a provider declared `network`).
        network: bool,
    },
}

/// The jail spec of `occupant`, whose agent's policy has the sandbox settings `sandbox`.
pub(crate) fn build(base: &JailBase<'_>, sandbox: &Sandbox, occupant: Occupant) -> JailSpec {
    let Occupant {
        agent_id,
        program,
        argv,
        scratch,
        read_only: extra_read_only,
        env: extra_env,
        limits,
        cgroup,
        role,
    } = occupant;
    let scratch_str = scratch.display().to_string();
    let is_agent = matches!(role, Role::Agent { .. });

    let mut env: Vec<(String, String)> = Vec::new();
    if is_agent {
        env.push((AGENT_FD_ENV.into(), AGENT_FD.to_string()));
        env.push((AGENT_ID_ENV.into(), agent_id.to_string()));
    }
    env.extend([
        ("PATH".into(), JAIL_PATH.into()),
        ("HOME".into(), scratch_str.clone()),
        ("TMPDIR".into(), scratch_str),
        ("LANG".into(), "C.UTF-8".into()),
    ]);
    if is_agent {
        env.push(("PYTHONPATH".into(), base.python_sdk.display().to_string()));
        env.extend(crate::nodesdk::env(&base.node_sdk));
    }
    if let Role::Agent { egress: Some(port) } = role {
        env.extend(proxy_env(port));
    }
    env.extend(extra_env);

    let mut read_exec = base.runtime.read_exec.clone();
    if is_agent {
        read_exec.push(program.clone());
    }
    let mut read_only = base.runtime.read_only.clone();
    read_only.extend(sandbox.read_only.iter().map(PathBuf::from));
    if is_agent {
        read_only.push(base.python_sdk.clone());
        read_only.push(base.node_sdk.clone());
    }
    read_only.extend(extra_read_only);

    let (mounts, cwd, tool, network, egress_port) = match role {
        Role::Agent { egress } => (Vec::new(), None, false, false, egress),
        Role::Tool {
            mounts,
            cwd,
            network,
        } => (mounts, cwd, true, network, None),
    };
    JailSpec {
        agent_id: agent_id.0,
        kernel_pid: base.kernel_pid,
        program,
        argv,
        env,
        scratch,
        read_exec,
        read_only,
        devices: base.runtime.devices.clone(),
        limits,
        cgroup,
        require_full: base.require_full,
        mounts,
        cwd,
        tool,
        network,
        egress_port,
    }
}

/// The resource limits of an occupant: the kernel's defaults (`base`), each overridden by the
/// policy's `sandbox.limits` where it names one.
pub(crate) fn limits(base: ResourceLimits, policy: &agentos_policy::Policy) -> ResourceLimits {
    let l = &policy.sandbox().limits;
    ResourceLimits {
        address_space: l.address_space.unwrap_or(base.address_space),
        processes: l.processes.unwrap_or(base.processes),
        open_files: l.open_files.unwrap_or(base.open_files),
        cpu_seconds: l.cpu_seconds.unwrap_or(base.cpu_seconds),
        file_size: l.file_size.unwrap_or(base.file_size),
        memory: l.memory.unwrap_or(base.memory),
        scratch_bytes: l.scratch.unwrap_or(base.scratch_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Runtime {
        Runtime {
            read_exec: vec!["/usr".into(), "/bin".into()],
            read_only: vec!["/etc/ld.so.cache".into()],
            devices: vec!["/dev/null".into()],
        }
    }

    fn base(runtime: &Runtime) -> JailBase<'_> {
        JailBase {
            runtime,
            require_full: true,
            python_sdk: "/state/sdk/python".into(),
            node_sdk: "/state/sdk/node".into(),
            kernel_pid: 4242,
        }
    }

    fn sandbox() -> Sandbox {
        Sandbox {
            read_only: vec!["/opt/models".into()],
            ..Sandbox::default()
        }
    }

    fn limits() -> ResourceLimits {
        ResourceLimits {
            address_space: 1 << 30,
            processes: 64,
            open_files: 256,
            cpu_seconds: 60,
            file_size: 1 << 20,
            memory: 1 << 29,
            scratch_bytes: 1 << 24,
        }
    }

    fn cgroup(detail: &str) -> CgroupSpec {
        CgroupSpec {
            procs: vec!["/sys/fs/cgroup/agentos-1/7/cgroup.procs".into()],
            detail: detail.into(),
            required: true,
        }
    }

    fn agent() -> Occupant {
        Occupant {
            agent_id: AgentId(7),
            program: "/home/me/agent".into(),
            argv: vec!["agent".into(), "--fast".into()],
            scratch: "/state/agents/7/scratch".into(),
            read_only: vec!["/srv/data".into()],
            env: vec![("MODEL".into(), "small".into())],
            limits: limits(),
            cgroup: cgroup("the agent's group"),
            role: Role::Agent { egress: None },
        }
    }

    fn workspace_mount() -> Mount {
        Mount {
            source: "/home/me/project".into(),
            target: "/workspace".into(),
            writable: false,
            view: Vec::new(),
        }
    }

    #[test]
    fn an_agent_with_a_network_rule_gets_its_proxy_and_nothing_else_of_the_network() {
        let rt = runtime();
        let spec = build(
            &base(&rt),
            &sandbox(),
            Occupant {
                role: Role::Agent {
                    egress: Some(EGRESS_PROXY_PORT),
                },
                ..agent()
            },
        );
        assert_eq!(spec.egress_port, Some(3128));
        assert!(!spec.network, "its own namespace, never the host's");
        let get = |k: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        for name in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            assert_eq!(get(name), Some("http://127.0.0.1:3128"), "{name}");
        }
        assert_eq!(get("NO_PROXY"), Some(""));
        // The agent's own environment comes after: it may point a client elsewhere (only the
        // proxy is reachable anyway).
        assert!(spec.env.last().is_some_and(|(k, _)| k == "MODEL"));
        // A tool run for it never gets the proxy.
        let tool = build(
            &base(&rt),
            &sandbox(),
            Occupant {
                role: Role::Tool {
                    mounts: Vec::new(),
                    cwd: None,
                    network: false,
                },
                ..agent()
            },
        );
        assert_eq!(tool.egress_port, None);
        assert!(!tool.env.iter().any(|(k, _)| k.ends_with("_PROXY")));
    }

    #[test]
    fn an_agent_gets_its_socket_the_sdk_and_its_program() {
        let rt = runtime();
        let spec = build(&base(&rt), &sandbox(), agent());
        let env = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            spec,
            JailSpec {
                agent_id: 7,
                kernel_pid: 4242,
                program: "/home/me/agent".into(),
                argv: vec!["agent".into(), "--fast".into()],
                env: vec![
                    env(AGENT_FD_ENV, &AGENT_FD.to_string()),
                    env(AGENT_ID_ENV, "7"),
                    env("PATH", JAIL_PATH),
                    env("HOME", "/state/agents/7/scratch"),
                    env("TMPDIR", "/state/agents/7/scratch"),
                    env("LANG", "C.UTF-8"),
                    env("PYTHONPATH", "/state/sdk/python"),
                    env(
                        "NODE_OPTIONS",
                        "--import=file:///state/sdk/node/register.mjs"
                    ),
                    env("NODE_PATH", "/state/sdk/node/node_modules"),
                    env("MODEL", "small"),
                ],
                scratch: "/state/agents/7/scratch".into(),
                read_exec: vec!["/usr".into(), "/bin".into(), "/home/me/agent".into()],
                read_only: vec![
                    "/etc/ld.so.cache".into(),
                    "/opt/models".into(),
                    "/state/sdk/python".into(),
                    "/state/sdk/node".into(),
                    "/srv/data".into(),
                ],
                devices: vec!["/dev/null".into()],
                limits: limits(),
                cgroup: cgroup("the agent's group"),
                require_full: true,
                mounts: Vec::new(),
                cwd: None,
                tool: false,
                network: false,
                egress_port: None,
            }
        );
    }

    /// The tool of the same agent, given its own program, scratch, cgroup detail and mounts:
    /// the spec differs from the agent's exactly there, plus no socket, no SDK, no program
    /// outside the runtime, and `tool` set; everything else is the agent's.
    #[test]
    fn a_tool_differs_from_its_agent_exactly_where_intended() {
        let rt = runtime();
        let base = base(&rt);
        let agent_spec = build(&base, &sandbox(), agent());
        let tool = Occupant {
            program: "/usr/bin/grep".into(),
            argv: vec!["grep".into(), "x".into()],
            scratch: "/state/agents/7/tool-3".into(),
            read_only: vec!["/etc/resolv.conf".into()],
            env: Vec::new(),
            cgroup: cgroup("shared with the agent"),
            role: Role::Tool {
                mounts: vec![workspace_mount()],
                cwd: Some("/workspace".into()),
                network: true,
            },
            ..agent()
        };
        let tool_spec = build(&base, &sandbox(), tool);
        let env = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            tool_spec,
            JailSpec {
                program: "/usr/bin/grep".into(),
                argv: vec!["grep".into(), "x".into()],
                env: vec![
                    env("PATH", JAIL_PATH),
                    env("HOME", "/state/agents/7/tool-3"),
                    env("TMPDIR", "/state/agents/7/tool-3"),
                    env("LANG", "C.UTF-8"),
                ],
                scratch: "/state/agents/7/tool-3".into(),
                read_exec: rt.read_exec.clone(),
                read_only: vec![
                    "/etc/ld.so.cache".into(),
                    "/opt/models".into(),
                    "/etc/resolv.conf".into(),
                ],
                cgroup: cgroup("shared with the agent"),
                mounts: vec![workspace_mount()],
                cwd: Some("/workspace".into()),
                tool: true,
                network: true,
                ..agent_spec.clone()
            }
        );
    }
}

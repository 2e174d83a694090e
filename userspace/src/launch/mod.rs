//! The sandbox launcher behind `agentos-launch` (DESIGN §4).
//!
//! The kernel execs `agentos-launch` with fd 0 = `/dev/null`, fds 1/2 = its log pipes, fd 3 =
//! the agent's socket and a single environment variable, [`SPEC_ENV`], holding a JSON
//! [`JailSpec`] — or, for an agent, with the socket as fd 0 and [`AGENT_FD_ON_STDIN_ENV`] set,
//! in which case the launcher first moves it to fd 3 and opens `/dev/null` as fd 0 (a tool:
//! with [`TOOL_STDIN_ON_SOCKET_ENV`] also set, takes its stdin pipe, queued on that socket, as
//! fd 0 instead), so the jail steps always start from the first layout. Three processes result
//! (an agent or a tool started through the [`zygote`] has two: the init, cloned into its
//! namespaces with the kernel as its parent, and the agent program or tool):
//!
//! - **L**, the launcher, stays in the kernel's pid namespace, enters new user/pid/net/ipc/
//!   uts/mount namespaces, forks I, and exits with I's status;
//! - **I**, pid 1 of the new pid namespace, finishes the jail (loopback, the minimal root
//!   and `pivot_root`, capabilities, `no_new_privs`, landlock, seccomp), sends one `AgentFrame::JailReport` on fd 3, then `AgentFrame::SandboxListener` with the
//!   seccomp user-notification listener (`SCM_RIGHTS`, closed before A starts), starts A (`posix_spawn`), reaps, and exits
//!   with A's status (code, or 128 + signal);
//! - **A** `execve`s the agent program in its own session, in the scratch directory, with
//!   exactly `spec.env`.
//!
//! Modules: [`spec`] (what the kernel asks for), [`steps`] (the step order, the security
//! argument), [`os`] (the `Sys` trait: real and recording), [`rootfs`] (the agent's minimal
//! root), [`view`] (a tool's view of its workspace: writable subtrees, covered entries),
//! [`layer`] (the layers' names, one enum), [`probe`] (`agentos-launch --probe`: the host's
//! layers), [`landlock_rules`] and
//! [`seccomp_table`]/[`seccomp`] (the two policy layers, as data), [`cgroup`] (the per-agent
//! cgroups the kernel creates and the launcher joins), [`error`].
//!
//! Exit codes: the agent's own; 128 + n if it died of signal n; [`EXIT_SANDBOX_FAILED`] (125)
//! if the jail could not be built (nothing of the agent ran); 126/127 if `execve` of the
//! program failed (permission / anything else, e.g. not found).
//!
//! Invariants: single-threaded, no async runtime; the agent program runs only inside the
//! complete jail (or with the missing layers reported, when `require_full` is off); exactly
//! one jail report is sent per launch, also on failure.

pub mod cgroup;
pub mod error;
pub mod landlock_rules;
pub mod layer;
pub mod os;
pub mod probe;
pub mod rootfs;
pub mod seccomp;
pub mod seccomp_table;
pub mod spec;
pub mod steps;
pub mod view;
pub mod zygote;

pub use error::LaunchError;
pub use layer::LayerName;
pub use os::{LinuxSys, RecordingSys, Sys};
pub use spec::*;
pub use steps::{run, run_cloned, EXIT_EXEC_DENIED, EXIT_EXEC_NOT_FOUND, LAYERS};

/// The `agentos-launch` binary: reads the spec from [`SPEC_ENV`], builds the jail and runs the
/// agent; exits with the code of whichever process returns here.
pub fn main_entry() -> ! {
    if std::env::args().nth(1).as_deref() == Some("--probe") {
        print!("{}", probe::format(&probe::probe()));
        std::process::exit(0)
    }
    if std::env::args().nth(1).as_deref() == Some(zygote::ZYGOTE_ARG) {
        let kernel_pid = std::env::args().nth(2).and_then(|p| p.parse().ok());
        zygote::main(kernel_pid)
    }
    if std::env::var_os(AGENT_FD_ON_STDIN_ENV).is_some() {
        if let Err(e) = crate::sys::move_stdin_to(agentos_syscalls::AGENT_FD) {
            // No report can be sent: the socket is not at fd 3. The kernel sees the launcher
            // exit EXIT_SANDBOX_FAILED with this line on its stderr.
            eprintln!("agentos-launch: move the agent socket from fd 0 to fd 3: {e}");
            std::process::exit(EXIT_SANDBOX_FAILED)
        }
        if std::env::var_os(TOOL_STDIN_ON_SOCKET_ENV).is_some() {
            if let Err(e) = crate::sys::stdin_from_socket(agentos_syscalls::AGENT_FD) {
                // As above: the kernel sees EXIT_SANDBOX_FAILED, no report, and this line.
                eprintln!("agentos-launch: take the tool's stdin from the report socket: {e}");
                std::process::exit(EXIT_SANDBOX_FAILED)
            }
        }
    }
    let json = std::env::var(SPEC_ENV);
    let code = run(&mut LinuxSys::default(), json);
    std::process::exit(code)
}

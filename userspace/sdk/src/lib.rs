//! `agentos-sdk`, the Rust agent SDK: how a Rust agent talks to its kernel. It is all an agent
//! links: the jail launcher (`agentos-userspace`) and its landlock, seccomp and capability
//! dependencies stay on the kernel's side.
//!
//! An agent finds its kernel socket at the descriptor named by `AGENTOS_FD` (always 3),
//! says `Hello`, and from then on every action is a typed syscall:
//!
//! ```no_run
//! use agentos_sdk::Client;
//! let client = Client::connect()?;
//! client.write("/mem/working/notes.txt", b"hello")?;
//! let back = client.read("/mem/working/notes.txt")?;
//! # Ok::<(), agentos_sdk::SdkError>(())
//! ```
//!
//! - [`Client`] is blocking, `Clone + Send + Sync`: many threads may call at once, each call
//!   waits for its own answer (answers are matched by request id).
//! - [`AsyncClient`] is the tokio flavour, with any number of calls in flight.
//! - [`Client::on_signal`] / [`AsyncClient::on_signal`] register a handler for a kernel
//!   signal event. Registering one for `SIGTERM` or `SIGINT` also keeps the POSIX signal that
//!   follows the event from ending the process, so the handler can shut down cleanly.
//!
//! Both clients share the typed calls in `calls`: one function per syscall builds the
//! request and checks the shape of the reply, so the two flavours cannot drift apart.
//! `sys` is the one module allowed `unsafe` (adopting the inherited descriptor), each block
//! with a `// SAFETY:` line.
//!
//! Invariants: the SDK never trusts the kernel's frames beyond the limits it was told in the
//! handshake; it takes the kernel socket at most once per process.
#![deny(unsafe_code)]

mod asynchronous;
mod blocking;
mod calls;
mod error;
mod handlers;
mod pending;
#[allow(unsafe_code)]
mod sys;

pub use asynchronous::AsyncClient;
pub use blocking::Client;
pub use error::SdkError;

/// The SDK's name and version, sent in `Hello`.
pub const SDK_NAME: &str = concat!("agentos-rust/", env!("CARGO_PKG_VERSION"));

/// What one answer frame needs beyond its payload; the kernel serves at most
/// `max_frame - CHUNK_OVERHEAD` bytes of file data per `Read`/`ReadFd` answer.
pub const CHUNK_OVERHEAD: u32 = 4096;

static SOCKET_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes ownership of the kernel socket named by `AGENTOS_FD`. Only once per process: a
/// second connection would close the first one's descriptor; clone the client instead.
fn agent_socket() -> Result<std::os::unix::net::UnixStream, SdkError> {
    use agentos_syscalls::AGENT_FD_ENV;
    let raw = std::env::var(AGENT_FD_ENV)
        .map_err(|_| SdkError::NoKernel(format!("{AGENT_FD_ENV} is not set")))?;
    let fd: i32 = raw.parse().map_err(|_| {
        SdkError::NoKernel(format!("{AGENT_FD_ENV}={raw} is not a descriptor number"))
    })?;
    if SOCKET_TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(SdkError::NoKernel(
            "this process already connected; clone the existing client".into(),
        ));
    }
    crate::sys::socket_from_fd(fd).map_err(|e| SdkError::NoKernel(format!("descriptor {fd}: {e}")))
}

/// The raw kernel socket, for programs that speak the ABI themselves (another language's SDK
/// shim, or a conformance test). Like [`Client::connect`], it can be taken once per process.
pub fn kernel_socket() -> Result<std::os::unix::net::UnixStream, SdkError> {
    agent_socket()
}

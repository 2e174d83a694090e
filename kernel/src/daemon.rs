//! Running a kernel as a daemon process (`agentos-kernel`, `agentctl kernel start`).

use std::io::Write;

use crate::{Config, Kernel, KernelError};

/// Runs a kernel until SIGTERM, SIGINT or a control `Shutdown`, then shuts it down
/// gracefully. `ready` (a pipe from `agentctl kernel start`) gets one line once the control
/// socket answers.
pub async fn run(config: Config, ready: Option<std::fs::File>) -> Result<(), KernelError> {
    use tokio::signal::unix::{signal, SignalKind};
    let kernel = Kernel::start(config).await?;
    let mut term = signal(SignalKind::terminate()).map_err(KernelError::Spawner)?;
    let mut int = signal(SignalKind::interrupt()).map_err(KernelError::Spawner)?;
    tracing::info!(state_dir = %kernel.config().state_dir.display(), pid = std::process::id(), "kernel ready");
    if let Some(mut ready) = ready {
        let _ = writeln!(ready, "ready {}", std::process::id());
    }
    let reason = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = kernel.shutdown_requested() => "agentctl kernel stop",
    };
    tracing::info!(reason, "kernel shutting down");
    kernel.shutdown(reason).await;
    Ok(())
}

/// Opens the readiness pipe `fd` handed over by `agentctl kernel start`.
pub fn ready_pipe(fd: i32) -> std::io::Result<std::fs::File> {
    crate::sys::file_from_fd(fd)
}

//! Small helpers every part of the kernel shares, so no domain module has to import another
//! for them: the wall clock in milliseconds, a poison-tolerant mutex lock, a control-protocol
//! error, a syscall's name. Nothing here knows about agents, the recorder or the tree.

use std::sync::{Mutex, MutexGuard, PoisonError};

use agentos_syscalls::control::{ControlError, ControlErrorKind};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Locks a mutex, treating a poisoned one as usable: every critical section here leaves the
/// data consistent, and an agent's panic must not wedge the kernel.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An error for `agentctl`: what went wrong and what to do.
pub(crate) fn control_error(
    kind: ControlErrorKind,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> ControlError {
    ControlError {
        kind,
        message: message.into(),
        hint: hint.into(),
    }
}

/// The name of syscall `nr` (`syscall_<nr>` when no table knows it).
pub(crate) fn syscall_name(nr: i64) -> String {
    agentos_userspace::launch::seccomp_table::syscall_name(nr)
        .map(str::to_string)
        .unwrap_or_else(|| format!("syscall_{nr}"))
}

/// Creates `path`, a directory only its owner may enter (an agent's dir, a scratch dir).
pub(crate) fn private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_names() {
        assert_eq!(syscall_name(libc::SYS_mount), "mount");
        assert_eq!(syscall_name(99_999), "syscall_99999");
    }

    #[test]
    fn a_poisoned_lock_is_still_usable() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = std::sync::Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}

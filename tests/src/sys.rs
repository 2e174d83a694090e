//! The one module of `agentos-tests` allowed `unsafe`: raw syscalls the attack agent makes
//! from inside the jail, for calls `nix` has no safe wrapper for.

/// `syscall(nr, args…)`: `Ok(return value)` or `Err(errno)`.
///
/// Only integer arguments (or null pointers) are passed by the attack agent: the kernel never
/// reads or writes memory of this process through them.
pub fn raw_syscall(nr: i64, args: [u64; 6]) -> Result<i64, i32> {
    // SAFETY: `syscall` with integer arguments only (see above); a call that would need a
    // valid pointer fails with EFAULT instead of touching our memory.
    let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    }
}

/// `ioctl(fd, request, &byte)`: the TIOCSTI shape (one byte of input to inject).
pub fn ioctl_byte(fd: i32, request: u64, byte: u8) -> Result<i32, i32> {
    let b = byte;
    // SAFETY: TIOCSTI-style requests read one byte through the pointer, which points at `b`,
    // alive for the whole call.
    let rc = unsafe { libc::ioctl(fd, request as _, &b as *const u8) };
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    }
}

/// Ignores `SIGXFSZ`, so a write past `RLIMIT_FSIZE` fails with `EFBIG` instead of killing.
pub fn ignore_sigxfsz() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety question arises.
    let _ = unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) };
}

/// `setxattr(path, name, value, len, 0)`: `Ok(return value)` or `Err(errno)`.
pub fn setxattr(path: &str, name: &str, value: &[u8]) -> Result<i32, i32> {
    let (Ok(path), Ok(name)) = (std::ffi::CString::new(path), std::ffi::CString::new(name)) else {
        return Err(libc::EINVAL);
    };
    // SAFETY: `path` and `name` are NUL-terminated and `value` is `value.len()` bytes, all
    // alive for the whole call; the kernel only reads them.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    }
}

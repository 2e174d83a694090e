//! The one module of `agentos-sdk` allowed `unsafe`: adopting the kernel socket the agent
//! inherited by its descriptor number, which no safe API can do.
//!
//! Invariants: every `unsafe` block carries a `// SAFETY:` line; nothing here keeps state;
//! functions return `std::io::Error`, never panic.

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd};
use std::os::unix::net::UnixStream;

/// Adopts an inherited descriptor as a [`UnixStream`] after checking (with `fstat`) that it is
/// open and a socket. The caller must own `fd` (nothing else in the process may close it).
pub(crate) fn socket_from_fd(fd: i32) -> io::Result<UnixStream> {
    // A negative number is no descriptor, and `BorrowedFd` must never hold -1.
    if fd < 0 {
        return Err(io::Error::from(rustix::io::Errno::BADF));
    }
    // SAFETY: `fd` is non-negative and only borrowed for the duration of the `fstat` call; an
    // fd that is not open makes fstat fail with EBADF, which is reported, not undefined
    // behaviour.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = rustix::fs::fstat(borrowed).map_err(io::Error::from)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not a socket"),
        ));
    }
    // SAFETY: the fd is open (fstat succeeded) and is a socket; the caller hands us its
    // ownership, so the returned stream is its only owner.
    Ok(unsafe { UnixStream::from_raw_fd(fd) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, IntoRawFd};

    use super::*;

    #[test]
    fn adopts_a_socket_and_refuses_anything_else() {
        let (mine, theirs) = UnixStream::pair().unwrap();
        let mut adopted = socket_from_fd(theirs.into_raw_fd()).unwrap();
        adopted.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        (&mine).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");

        let file = std::fs::File::open("/dev/null").unwrap();
        let err = socket_from_fd(file.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let ebadf = Some(rustix::io::Errno::BADF.raw_os_error());
        assert_eq!(socket_from_fd(-1).unwrap_err().raw_os_error(), ebadf);
        assert_eq!(socket_from_fd(999_999).unwrap_err().raw_os_error(), ebadf);
    }
}

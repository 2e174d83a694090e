//! What agentctl does when the reader of its stdout goes away (`agentctl recorder show |
//! head -1`, `agentctl inspect 3 | head`): it stops, quietly, with exit code 0 — as `cat`
//! or `journalctl` do under a shell — instead of panicking (exit 101) or writing on into a
//! closed pipe.
//!
//! Why not `SIGPIPE = SIG_DFL`: Rust ignores SIGPIPE before `main`, so a write to a closed
//! pipe fails with `EPIPE` instead of killing the process. We keep it ignored, because two
//! commands (`agentctl run`, `agentctl replay run`) host a whole kernel in this process, whose
//! tokio tasks write to agents' sockets: with the default action, an agent closing its end of
//! the socket at the wrong moment would kill the kernel, its recorder unsealed, its agents
//! orphaned to PDEATHSIG. So `EPIPE` is handled where stdout is written, in one place
//! ([`write_all`], used by `say!`, the JSON printers and agents' output sinks):
//!
//! - no kernel in this process (every other command): exit 0 at once. Nothing is left
//!   half-done: these commands either only read (the recorder, the control socket) or have
//!   done their one act (a spawn, a signal) before they print its result;
//! - a kernel in this process ([`hosting_kernel`]): stdout output is dropped from then on and
//!   the command goes on to its clean end (the agent runs to its end, the kernel stops and
//!   seals its recorder, the summary still goes to stderr).
//!
//! `tail -f` writes only when a record arrives; [`reader_gone`] lets a follower notice a
//! closed pipe while the log is quiet (`poll` reports `POLLERR` on a pipe whose reader left).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// A kernel runs in this process: never exit on a closed stdout.
static HOSTING: AtomicBool = AtomicBool::new(false);
/// Stdout's reader went away (only remembered while hosting a kernel).
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Marks this process as hosting a kernel (`run`, `replay run`): a closed stdout then drops
/// output instead of ending the process.
pub fn hosting_kernel() {
    HOSTING.store(true, Ordering::SeqCst);
}

/// Handles a failed write to stdout: a closed pipe ends the process with code 0 (or, while a
/// kernel runs here, is remembered and swallowed); any other error is returned.
pub fn on_error(e: io::Error) -> io::Result<()> {
    if e.kind() != io::ErrorKind::BrokenPipe {
        return Err(e);
    }
    if HOSTING.load(Ordering::SeqCst) {
        CLOSED.store(true, Ordering::SeqCst);
        return Ok(());
    }
    // The reader has what it wanted; nothing of ours is half-written (see the module doc).
    std::process::exit(0)
}

/// Writes `bytes` to stdout and flushes them (see the module doc for a closed pipe).
pub fn write_all(bytes: &[u8]) -> io::Result<()> {
    if CLOSED.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .or_else(on_error)
}

/// Stdout as a writer with [`write_all`]'s handling of a closed pipe (for streams:
/// `agentctl logs`, `run`, the policy views).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if CLOSED.load(Ordering::SeqCst) {
            return Ok(buf.len());
        }
        match io::stdout().lock().write(buf) {
            Ok(n) => Ok(n),
            Err(e) => on_error(e).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if CLOSED.load(Ordering::SeqCst) {
            return Ok(());
        }
        io::stdout().lock().flush().or_else(on_error)
    }
}

/// Whether stdout is a pipe or socket whose reader has gone (checked without writing).
pub fn reader_gone() -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let stdout = io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(n) if n > 0 => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        _ => false,
    }
}

/// For a follower blocked on something else (`logs -f` on a quiet agent): a thread that waits
/// for stdout's reader to leave and then ends the process quietly (exit 0). Nothing happens
/// for a terminal or a file (their reader never leaves), nor while a kernel runs here.
pub fn exit_when_reader_leaves() {
    use rustix::event::{poll, PollFd, PollFlags};
    if HOSTING.load(Ordering::SeqCst) {
        return;
    }
    std::thread::spawn(|| loop {
        let stdout = io::stdout();
        // No events asked: poll wakes only for POLLERR/POLLHUP (the reader left).
        let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
        match poll(&mut fds, None) {
            Ok(_) if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) => {
                std::process::exit(0)
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
    });
}

/// Ends the process quietly (exit 0) when stdout's reader is gone and no kernel runs here.
pub fn exit_if_reader_gone() {
    if !HOSTING.load(Ordering::SeqCst) && reader_gone() {
        std::process::exit(0);
    }
}

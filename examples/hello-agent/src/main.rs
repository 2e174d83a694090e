//! hello-agent: a small agent that shows the shape of agentos work.
//!
//! Every action below is a syscall to the kernel, checked against
//! `examples/hello-agent/.agents/security.md` and written to the flight recorder before the
//! answer comes back. Run it with:
//!
//! ```text
//! cargo build --release
//! ./target/release/agentctl run --policy examples/hello-agent/.agents/security.md -- ./target/release/hello-agent
//! ```
//!
//! With `--stay` it then stays on as a long-lived agent would: it writes a report that the
//! policy gates behind operator approval (`agentctl approvals`, `agentctl approve ID`), saves
//! its working memory as a checkpoint, and waits for SIGTERM (`agentctl signal NAME SIGTERM` or `agentctl kernel stop`) to end.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use agentos_sdk::{Client, SdkError};
use agentos_syscalls::{Errno, Signal};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), SdkError> {
    let stay = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--stay") => true,
        Some(other) => {
            eprintln!("hello-agent: unknown argument {other:?}; usage: hello-agent [--stay]");
            std::process::exit(2);
        }
    };
    let client = Client::connect()?;
    println!("hello-agent: connected as agent {}", client.agent_id());

    // Ask the kernel to tell us when to stop, instead of dying mid-write.
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    let (term_tx, term_rx) = mpsc::channel();
    client.on_signal(Signal::Term, move |sig, _| {
        println!("hello-agent: got {sig}, finishing up");
        flag.store(true, Ordering::SeqCst);
        let _ = term_tx.send(());
    })?;

    // Working memory: allowed by the policy's `notes` rules.
    client.write("/mem/working/notes/plan.md", b"1. look around\n")?;
    client.append("/mem/working/notes/plan.md", b"2. write down what I saw\n")?;
    let plan = client.read("/mem/working/notes/plan.md")?;
    print!("hello-agent: my plan:\n{}", String::from_utf8_lossy(&plan));
    let entries = client.list("/mem/working/notes")?;
    println!(
        "hello-agent: {} note(s) in /mem/working/notes",
        entries.len()
    );

    // Ask before acting: CheckPolicy is a dry run and never a violation.
    let d = client.check_policy("file_write", "/mem/working/secrets/key")?;
    println!(
        "hello-agent: may I write /mem/working/secrets/key? {} — {} {}",
        if d.allowed { "yes" } else { "no" },
        d.rule,
        d.reason
    );

    // The policy runs in permissive mode for this example, so a violation is recorded but not
    // fatal; under `mode: strict` this call would be refused and the agent ended with SIGPOLICY.
    match client.write("/mem/working/secrets/key", b"hunter2") {
        Ok(_) => println!("hello-agent: wrote /mem/working/secrets/key (recorded as a violation)"),
        Err(SdkError::Errno(Errno::PermissionDenied { rule, reason })) => {
            println!("hello-agent: refused by {rule}: {reason}")
        }
        Err(e) => return Err(e),
    }

    if stay {
        // Gated by the policy's `outbox` rule (`requires_approval: true`): the call parks
        // until an operator approves or denies it.
        println!("hello-agent: asking to write /mem/working/outbox/report.md (needs approval)");
        match client.write("/mem/working/outbox/report.md", &plan) {
            Ok(n) => println!("hello-agent: report approved, {n} bytes written"),
            Err(SdkError::Errno(e @ (Errno::ApprovalDenied | Errno::ApprovalTimeout))) => {
                println!("hello-agent: report not written: {e}")
            }
            Err(e) => return Err(e),
        }
        // A snapshot of working memory, on disk: `agentctl spawn --restore ID:N` starts a
        // new agent from it.
        let n = client.checkpoint()?;
        println!("hello-agent: working memory saved as checkpoint {n}");
        if !stopping.load(Ordering::SeqCst) {
            println!("hello-agent: waiting for SIGTERM");
            let _ = term_rx.recv();
        }
    } else if stopping.load(Ordering::SeqCst) {
        println!("hello-agent: stopping early");
    }
    client.announce_exit(0)?;
    println!("hello-agent: done");
    Ok(())
}

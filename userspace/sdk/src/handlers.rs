//! Signal handlers registered by the agent, run on a dispatcher thread of their own so that a
//! handler may itself make syscalls (the connection's reader thread stays free).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use agentos_syscalls::Signal;

/// A signal handler: called with the signal and the kernel's reason.
pub(crate) type Handler = Arc<dyn Fn(Signal, &str) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Handlers {
    map: Mutex<HashMap<Signal, Handler>>,
    /// Flags set by the POSIX handlers that neutralise `SIGTERM`/`SIGINT` once an SDK handler
    /// exists (the SDK event carries the signal instead).
    posix_flags: Mutex<HashMap<Signal, Arc<AtomicBool>>>,
    tx: Mutex<Option<mpsc::Sender<(Signal, String)>>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Handlers")
            .field("signals", &map.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Handlers {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers `handler` for `signal`, starting the dispatcher thread on first use.
    pub(crate) fn register(self: &Arc<Self>, signal: Signal, handler: Handler) -> io::Result<()> {
        let posix = match signal {
            Signal::Term => Some(signal_hook::consts::SIGTERM),
            Signal::Int => Some(signal_hook::consts::SIGINT),
            _ => None,
        };
        if let Some(posix) = posix {
            let mut flags = self
                .posix_flags
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let std::collections::hash_map::Entry::Vacant(slot) = flags.entry(signal) {
                let flag = Arc::new(AtomicBool::new(false));
                signal_hook::flag::register(posix, Arc::clone(&flag))?;
                slot.insert(flag);
            }
        }
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(signal, handler);
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        if tx.is_none() {
            let (sender, receiver) = mpsc::channel::<(Signal, String)>();
            let me = Arc::clone(self);
            std::thread::Builder::new()
                .name("agentos-signals".into())
                .spawn(move || {
                    for (signal, reason) in receiver {
                        let handler = me
                            .map
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get(&signal)
                            .cloned();
                        if let Some(handler) = handler {
                            handler(signal, &reason);
                        }
                    }
                })?;
            *tx = Some(sender);
        }
        Ok(())
    }

    /// Hands a signal event to the dispatcher. Without any handler the event is dropped: the
    /// POSIX signal that follows it takes its default action.
    pub(crate) fn deliver(&self, signal: Signal, reason: String) {
        if let Some(tx) = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = tx.send((signal, reason));
        }
    }
}

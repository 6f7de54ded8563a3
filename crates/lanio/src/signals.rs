//! SIGINT (Ctrl-C) and SIGTERM: a clean stop.
//!
//! Install the handlers with [`Signals::install`] *before* the program says
//! it is ready (prints `listening`, `started`, `joined`, …): a script that
//! reads that line may signal at once, and a signal that arrives before the
//! handlers exist gets the default action and kills the process.

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Which signal asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT, usually Ctrl-C.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

/// Installed SIGINT and SIGTERM handlers. While this value lives, neither
/// signal kills the process; each is delivered to [`Signals::recv`].
#[derive(Debug)]
pub struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    /// Installs both handlers. Must be called inside a tokio runtime.
    pub fn install() -> io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) -> Stop {
        tokio::select! {
            _ = self.int.recv() => Stop::Interrupt,
            _ = self.term.recv() => Stop::Terminate,
        }
    }

    /// A token cancelled at the first signal (the handlers stay installed,
    /// so later signals are ignored rather than fatal). Must be called
    /// inside a tokio runtime.
    pub fn into_token(mut self) -> CancellationToken {
        let token = CancellationToken::new();
        let cancel = token.clone();
        tokio::spawn(async move {
            let stop = self.recv().await;
            tracing::debug!(?stop, "stopping");
            cancel.cancel();
            // Keep the handlers alive: a second Ctrl-C must not kill the
            // process in the middle of its clean stop.
            loop {
                self.recv().await;
            }
        });
        token
    }
}

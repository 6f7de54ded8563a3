//! Waiting for Ctrl-C (SIGINT) or SIGTERM, so that commands stop cleanly,
//! print their summary and exit 0.

use tokio::signal::unix::{signal, SignalKind};

/// Completes when SIGINT or SIGTERM arrives.
///
/// If the handlers cannot be installed the future never completes (the default
/// signal action then still ends the process).
pub async fn shutdown() {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

//! `tracker --http ADDR`: a small read-only web server showing the tracker
//! live (see [`routes`] for what it answers).
//!
//! | module | holds |
//! |---|---|
//! | [`routes`] | the page, `/api/status`, `/api/events`; 405 for other methods |
//! | [`feed`] | the bounded broadcast behind `/api/events` and its subscriber cap |
//! | [`deadline`] | a socket whose writes fail when the client takes nothing for too long |
//!
//! This module runs the server: axum's router on hyper's HTTP/1 connections,
//! accepted here so that each is bounded. At most `max_subscribers + 64`
//! connections at once (more are closed unanswered, and counted as
//! refused); request headers must arrive within the stall timeout, and a
//! client that takes no bytes for that long is disconnected
//! ([`deadline::WriteDeadline`]) and counted as dropped. Each socket's send
//! buffer is fixed at [`SEND_BUFFER`], so a client that stops reading pins
//! at most that much kernel memory, and stalls (and is found) soon.
//! Once a second, while anyone subscribes,
//! the feed carries a `stats` message with the counters. On shutdown the
//! event streams end, the listener closes, and every connection gets
//! [`SHUTDOWN_GRACE`] to finish.

pub mod deadline;
pub mod feed;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};
use wire::tracker::TrackerStats;

pub use feed::{Feed, DEFAULT_MAX_SUBSCRIBERS};
pub use routes::App;

use crate::handler::Tracker;
use crate::stats::{Count, Counters, METER_PERIOD};
use deadline::WriteDeadline;

/// How long connections may take to finish once the tracker stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Connections beyond the subscriber cap, for the page and `/api/status`.
const SPARE_CONNECTIONS: usize = 64;

/// Send buffer of each web connection (the kernel doubles it).
pub const SEND_BUFFER: usize = 64 * 1024;

/// The web server's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Event-stream subscribers at once; more get 503.
    pub max_subscribers: usize,
    /// Longest wait for a request's headers, and longest a client may take
    /// no bytes before it is disconnected.
    pub stall_timeout: Duration,
}

/// What the feed carries besides the tracker's peer events.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Tick {
    /// The counters, once a second.
    Stats(TrackerStats),
}

/// Serves the page and the API on `listener` until `app.stop` is cancelled,
/// then lets connections finish (at most [`SHUTDOWN_GRACE`]) and returns.
pub async fn run(listener: TcpListener, app: App, limits: Limits) {
    let ticker = tokio::spawn(stats_ticker(app.feed.clone(), app.tracker.clone()));
    let router = routes::router(app.clone());
    let service = TowerToHyperService::new(router);
    let max = limits.max_subscribers + SPARE_CONNECTIONS;
    let slots = Arc::new(Semaphore::new(max));
    let counters: Arc<Counters> = app.tracker.counters().clone();
    let connections = TaskTracker::new();
    loop {
        let (socket, src) = tokio::select! {
            _ = app.stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!("http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%src, "http connection refused: {max} open");
            counters.add(Count::ConnectionRefused);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
        let io = TokioIo::new(WriteDeadline::new(socket, limits.stall_timeout));
        let service = service.clone();
        let stop = app.stop.clone();
        let counters = counters.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.stall_timeout);
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let finished = tokio::select! {
                finished = conn.as_mut() => finished,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut())
                        .await
                        .unwrap_or(Ok(()))
                }
            };
            if let Err(e) = finished {
                debug!(%src, "http connection closed: {e:?}");
                if stalled(&e) {
                    counters.add(Count::SubscriberDropped);
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    ticker.abort();
    connections.close();
    connections.wait().await;
}

/// Whether a connection ended because its client took no data in time.
fn stalled(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = cause.source();
    }
    false
}

/// Publishes the counters every [`METER_PERIOD`] while anyone subscribes.
async fn stats_ticker(feed: Feed, tracker: Arc<Tracker>) {
    let mut ticker = tokio::time::interval(METER_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if feed.subscribers() > 0 {
            feed.publish(&Tick::Stats(tracker.counters().snapshot()));
        }
    }
}

//! The network side: the accept loop, one task per connection, the expiry
//! sweep and graceful shutdown.
//!
//! - Connections are capped by a semaphore, and per source IP
//!   ([`crate::admission`]). A connection over the per-IP cap gets one error
//!   frame if its socket can take it at once, and is closed. At the total
//!   cap, the connection that has waited longest for a request (at least
//!   250 ms) is closed and hands its slot to the newcomer; with no idle
//!   connection to close, the newcomer is refused too.
//! - A connection is recycled (closed after its reply; the client reopens)
//!   once it is older than the age cap or has carried the request cap, so a
//!   trickle of requests cannot hold a slot forever.
//! - Each connection is a `Framed<TcpStream, TrackerCodec>` carrying any
//!   number of request/reply pairs. Waiting for a whole request and sending a
//!   whole reply are each bounded by the idle timeout, so an idle, half-sent
//!   or non-reading client only ever holds its own task and one permit.
//! - An oversize length prefix or a truncated frame closes only that connection.
//! - With replication configured, the group is joined before `listening` is
//!   reported and [`crate::replicator`] runs beside the accept loop.
//! - Refusals, bad frames and timeouts are counted ([`crate::stats`]); a
//!   meter task updates the announce rate once a second.
//! - With a web listener ([`serve_with_web`]) the page and API run beside
//!   the tracker on the same runtime ([`crate::web`]), and the reporter also
//!   feeds peer events to the page.
//! - Shutdown: the accept loop stops, a `watch` channel tells every connection
//!   to stop reading, replies already being handled are still sent, the web
//!   server ends its event streams and closes, and [`serve`] returns once
//!   every connection task has dropped its `mpsc` sender (each task owns a
//!   clone; `recv()` yields `None` when all are gone).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wire::tracker::AnnounceResponse;
use wire::{FrameCodec, FrameError, InfoHash, DEFAULT_MAX_FRAME};

use lanio::Cidr;

use crate::admission::{Handoff, IdleSet, PerIp, Ticket};
use crate::handler::Tracker;
use crate::registry::Limits;
use crate::replication::Settings;
use crate::replicator::{self, Link, ReplicationConfig};
use crate::report::Reporter;
use crate::stats::{self, Count, Counters};
use crate::web::{self, Feed};

/// Largest request frame the tracker reads. Requests are small JSON objects
/// whose strings are at most 256 bytes; anything larger closes the connection.
pub const MAX_REQUEST_FRAME: usize = 64 * 1024;

/// Default seconds between peer refreshes (this is a LAN).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default bound on waiting for a request or sending a reply.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on concurrent connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on concurrent connections from one IP.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// Default age at which a connection is recycled.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(120);
/// Default number of requests after which a connection is recycled.
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u64 = 1_000_000;

/// A swarm declared on the command line (from a torrent file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmConfig {
    pub info_hash: InfoHash,
    pub file_name: String,
}

/// How the tracker runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seconds between refreshes, sent in every reply; peers expire after twice this.
    pub interval: Duration,
    /// Longest wait for a complete request, or to send a reply.
    pub idle_timeout: Duration,
    /// Concurrent connections served; more are refused.
    pub max_connections: usize,
    /// Concurrent connections from one source IP; more are refused.
    pub max_connections_per_ip: usize,
    /// A connection older than this is closed after its current request.
    pub max_connection_age: Duration,
    /// A connection is closed after this many requests.
    pub max_requests_per_connection: u64,
    /// List peers at the `ip` they announce instead of their source address,
    /// from any source (deprecated: prefer `trust_ip_from`).
    pub trust_ip_field: bool,
    /// Believe the `ip` field of requests from these ranges (relays).
    pub trust_ip_from: Vec<Cidr>,
    /// Bounds on swarms and peers, and the allow-list.
    pub limits: Limits,
    /// Also print events as JSON lines on stdout.
    pub json: bool,
    /// Swarms from torrent files. The first is the default swarm; without any,
    /// the default swarm is the all-zero info hash.
    pub swarms: Vec<SwarmConfig>,
    /// Share the registry with other trackers over multicast.
    pub replication: Option<ReplicationConfig>,
    /// `--seed-udp`: the seed's chat directory, its sockets already bound.
    pub seed: Option<Arc<crate::seed::Bound>>,
    /// Web event-stream subscribers at once (with a web listener); more get 503.
    pub max_subscribers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: DEFAULT_INTERVAL,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connection_age: DEFAULT_MAX_CONNECTION_AGE,
            max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            trust_ip_field: false,
            trust_ip_from: Vec::new(),
            limits: Limits::default(),
            json: false,
            swarms: Vec::new(),
            replication: None,
            seed: None,
            max_subscribers: web::DEFAULT_MAX_SUBSCRIBERS,
        }
    }
}

/// Framing for tracker connections: requests are read with a small limit,
/// replies (a status listing can be large) are written with the default one.
#[derive(Debug, Clone, Copy)]
pub struct TrackerCodec {
    inbound: FrameCodec,
    outbound: FrameCodec,
}

impl Default for TrackerCodec {
    fn default() -> Self {
        TrackerCodec {
            inbound: FrameCodec::new(MAX_REQUEST_FRAME),
            outbound: FrameCodec::new(DEFAULT_MAX_FRAME),
        }
    }
}

impl Decoder for TrackerCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        self.inbound.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        self.inbound.decode_eof(src)
    }
}

impl Encoder<Bytes> for TrackerCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.outbound.encode(body, dst)
    }
}

/// Everything a connection task needs.
#[derive(Clone)]
struct Shared {
    tracker: Arc<Tracker>,
    reporter: Reporter,
    idle_timeout: Duration,
    max_age: Duration,
    max_requests: u64,
    counters: Arc<Counters>,
    /// Connections waiting for a request: the longest idle gives way when full.
    idle: Arc<IdleSet<OwnedSemaphorePermit>>,
}

/// Serves tracker requests on `listener` until `shutdown` completes, then
/// stops accepting, lets in-flight replies finish and returns.
///
/// Logs `listening on ADDR` (and with `config.json` prints the `listening`
/// event) first, with the listener's real address. Events go through a
/// [`lanio::EventWriter`], never blocking a connection; before returning,
/// `serve` waits up to [`crate::report::FINISH_TIMEOUT`] for stdout to take
/// the last of them.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with_web(config, listener, None, shutdown).await
}

/// [`serve`], and with `http` the web page and API on that listener too
/// (see [`crate::web`]): logged as `http on ADDR`, and with `config.json`
/// the `http_listening` event, right after `listening`. Its connections
/// idle out like the tracker's (`config.idle_timeout`).
pub async fn serve_with_web(
    config: Config,
    listener: TcpListener,
    http: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
    let default_swarm = config
        .swarms
        .first()
        .map(|s| s.info_hash)
        .unwrap_or_default();
    let mut tracker = Tracker::new(default_swarm, config.interval, config.trust_ip_field)
        .trusting(&config.trust_ip_from)
        .with_limits(config.limits);
    let mut replication = None;
    if let Some(rc) = &config.replication {
        let sock = replicator::bind(rc).map_err(|e| io::Error::other(format!("{e:#}")))?;
        let id = loop {
            if let Some(id) = wire::replica::TrackerId::new(rand::random()) {
                break id;
            }
        };
        let link = Arc::new(Link::new(Settings {
            id,
            group: rc.group,
            accept: rc.accept.clone(),
        }));
        tracker = tracker.with_replication(link.clone());
        replication = Some((link, sock, rc.iface.as_ref().map(|i| i.index)));
    }
    let tracker = Arc::new(tracker);
    {
        let mut registry = tracker.registry();
        for swarm in &config.swarms {
            registry.configure_swarm(swarm.info_hash, Some(swarm.file_name.clone()));
        }
    }
    let counters = tracker.counters().clone();
    let feed = Feed::new(config.max_subscribers, counters.clone());
    let mut reporter = Reporter::new(config.json);
    if http.is_some() {
        reporter = reporter.with_feed(feed.clone());
    }
    let shared = Shared {
        tracker: tracker.clone(),
        reporter: reporter.clone(),
        idle_timeout: config.idle_timeout,
        max_age: config.max_connection_age,
        max_requests: config.max_requests_per_connection.max(1),
        counters: counters.clone(),
        idle: Arc::new(IdleSet::default()),
    };
    let per_ip = PerIp::new(config.max_connections_per_ip);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let seed = config.seed.clone().map(|bound| {
        let task = crate::seed::run(bound, tracker.clone(), reporter.clone(), config.interval);
        tokio::spawn(task)
    });
    let sweeper = tokio::spawn(sweep(tracker.clone(), reporter.clone(), config.interval));
    let meter = tokio::spawn(stats::meter(counters.clone()));
    reporter.listening(addr);
    let web_stop = CancellationToken::new();
    let web_server = http.zip(http_addr).map(|(http, http_addr)| {
        let app = web::App {
            tracker: tracker.clone(),
            feed,
            stop: web_stop.clone(),
        };
        let limits = web::Limits {
            max_subscribers: config.max_subscribers,
            stall_timeout: config.idle_timeout,
        };
        let task = tokio::spawn(web::run(http, app, limits));
        reporter.http_listening(http_addr);
        task
    });
    let replicator = replication.map(|(link, sock, iface)| {
        tokio::spawn(replicator::run(
            tracker,
            link,
            sock,
            iface,
            reporter.clone(),
            stop_rx.clone(),
        ))
    });

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, src) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(ticket) = per_ip.enter(src.ip()) else {
                    counters.add(Count::ConnectionRefused);
                    refuse(socket, src, &Busy::FromIp(per_ip.max()));
                    continue;
                };
                match limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let shared = shared.clone();
                        let stop = stop_rx.clone();
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            connection(socket, src, shared, stop, permit).await;
                            drop::<Ticket>(ticket);
                            drop(done);
                        });
                    }
                    // Full: the connection idle the longest gives way, and the
                    // newcomer takes its slot.
                    Err(_) => {
                        let (to, slot) = oneshot::channel();
                        if shared.idle.evict_oldest(Instant::now(), MIN_IDLE_TO_EVICT, to).is_ok() {
                            let shared = shared.clone();
                            let stop = stop_rx.clone();
                            let done = done_tx.clone();
                            let counters = counters.clone();
                            let max = config.max_connections;
                            tokio::spawn(async move {
                                match timeout(SLOT_WAIT, slot).await {
                                    Ok(Ok(permit)) => connection(socket, src, shared, stop, permit).await,
                                    // It got a request just then and stayed.
                                    _ => {
                                        counters.add(Count::ConnectionRefused);
                                        refuse(socket, src, &Busy::Full(max));
                                    }
                                }
                                drop::<Ticket>(ticket);
                                drop(done);
                            });
                        } else {
                            counters.add(Count::ConnectionRefused);
                            refuse(socket, src, &Busy::Full(config.max_connections));
                        }
                    }
                }
            }
        }
    }

    drop(listener);
    sweeper.abort();
    if let Some(task) = replicator {
        task.abort();
    }
    if let Some(seed) = seed {
        seed.abort();
    }
    meter.abort();
    reporter.shutdown(config.max_connections - limit.available_permits());
    let _ = stop_tx.send(true);
    web_stop.cancel();
    drop(done_tx);
    let _ = done_rx.recv().await;
    if let Some(web_server) = web_server {
        let _ = web_server.await;
    }
    // The last events (`shutdown`) reach a reader that keeps up; a stalled
    // stdout delays the exit by at most the finish timeout.
    let _ = tokio::task::spawn_blocking(move || reporter.finish()).await;
    Ok(())
}

/// A connection waiting this long for a request may give way to a newcomer
/// when every slot is taken.
const MIN_IDLE_TO_EVICT: Duration = Duration::from_millis(250);
/// How long a newcomer waits for the slot an idle connection gives up.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// Why a connection was turned away.
#[derive(Debug, thiserror::Error)]
enum Busy {
    #[error("tracker busy: {0} connections already open, try again later")]
    Full(usize),
    #[error("tracker busy: {0} connections from your address already open, close one first")]
    FromIp(usize),
}

/// Turns away a connection over a cap: one error frame if it fits in the
/// socket buffer right now, then close.
fn refuse(socket: TcpStream, src: SocketAddr, why: &Busy) {
    debug!(%src, "refused: {why}");
    let reply = AnnounceResponse::error(why.to_string()).to_json();
    let _ = socket.try_write(&lanio::frame::encode(&reply));
}

/// Serves one connection until the client closes, misbehaves, times out,
/// or the tracker shuts down.
async fn connection(
    socket: TcpStream,
    src: SocketAddr,
    shared: Shared,
    mut stop: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    let _ = socket.set_nodelay(true);
    let mut framed = Framed::new(socket, TrackerCodec::default());
    let idle = shared.idle_timeout;
    let retire = Instant::now() + shared.max_age;
    let mut served = 0u64;
    let id = shared.idle.id();
    let handoff = Arc::new(Handoff::default());
    loop {
        let now = Instant::now();
        if served >= shared.max_requests || now >= retire {
            debug!(%src, "recycling connection after {served} requests");
            shared.counters.add(Count::ConnectionRecycled);
            break;
        }
        // Waiting for a request ends at the idle timeout or at the age cap.
        let wait = idle.min(retire - now);
        shared.idle.waiting(id, now, &handoff);
        let frame = tokio::select! {
            _ = stop.changed() => break,
            _ = handoff.evicted() => {
                debug!(%src, "closing idle connection: the tracker is full and a newcomer needs its slot");
                shared.counters.add(Count::ConnectionRecycled);
                break;
            }
            next = timeout(wait, framed.next()) => match next {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    info!(%src, "closing connection: {e}");
                    shared.counters.add(Count::BadFrame);
                    break;
                }
                Err(_) if wait < idle => {
                    debug!(%src, "recycling connection: older than {:?}", shared.max_age);
                    shared.counters.add(Count::ConnectionRecycled);
                    break;
                }
                Err(_) => {
                    debug!(%src, "closing connection: no complete request within {idle:?}");
                    shared.counters.add(Count::Timeout);
                    break;
                }
            },
        };
        shared.idle.busy(id);
        served += 1;
        let handled = shared.tracker.handle(&frame, src, Instant::now());
        if let Some(note) = &handled.note {
            shared.reporter.note(note);
        }
        let reply = if handled.reply.len() > DEFAULT_MAX_FRAME {
            // Only a status listing of some hundred thousand peers gets here.
            AnnounceResponse::error(format!(
                "reply of {} bytes exceeds the frame limit of {DEFAULT_MAX_FRAME} bytes",
                handled.reply.len()
            ))
            .to_json()
        } else {
            handled.reply
        };
        match timeout(idle, framed.send(Bytes::from(reply))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(%src, "closing connection: {e}");
                break;
            }
            Err(_) => {
                debug!(%src, "closing connection: reply not taken within {idle:?}");
                shared.counters.add(Count::Timeout);
                break;
            }
        }
    }
    shared.idle.busy(id);
    // An evicted connection's slot goes to the newcomer it gave way to.
    handoff.pass_on(slot);
}

/// Drops expired peers, a few times per interval.
async fn sweep(tracker: Arc<Tracker>, reporter: Reporter, interval: Duration) {
    let period = (interval / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for gone in tracker.expire(Instant::now()) {
            reporter.expired(&gone);
        }
    }
}

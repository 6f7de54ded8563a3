//! The replication socket: one UDP socket joined to the group (TTL 1,
//! loopback on, so trackers on one host hear each other), driving
//! [`Replication`] and merging what it hears into the registry.
//!
//! Two tasks share the socket:
//!
//! - the **main loop** receives datagrams (applying changes and snapshot
//!   parts, noting requests), sends the outbox whenever a connection task
//!   queued a change ([`Link::record_announce`] wakes it), and once per
//!   [`HEARTBEAT`] sends a heartbeat, forgets silent replicas, asks for
//!   snapshots when due and reports drops;
//! - the **snapshot sender** waits until a snapshot is due, lists the
//!   registry, and sends it to the group [`SNAPSHOT_BURST`] datagrams at a
//!   time, one burst per [`SNAPSHOT_PACE`].
//!
//! Locks: the registry and the replication state are never held together,
//! and neither across an `.await`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lanio::iface::Iface;
use lanio::multicast::{bind_receiver, configure_sending, into_tokio, recv_with_ttl, SendOptions};
use lanio::Cidr;
use tokio::net::UdpSocket;
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};
use wire::replica::{pack_snapshot, Record, MAX_DATAGRAM};

use crate::events::{PeerEvent, ReplicaChange};
use crate::handler::Tracker;
use crate::registry::{Announce, Applied, Departed, Outcome};
use crate::replication::{Incoming, Replication, Settings, HEARTBEAT};
use crate::report::Reporter;

/// Snapshot datagrams sent back to back.
pub const SNAPSHOT_BURST: usize = 8;
/// Pause after each burst: 8 datagrams per 4 ms, about 2.8 MB/s at most.
pub const SNAPSHOT_PACE: Duration = Duration::from_millis(4);

/// Where and how to replicate (`--replicate`, `--iface`, `--replicate-from`).
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// Multicast group and UDP port.
    pub group: SocketAddr,
    pub iface: Option<Iface>,
    /// Sources whose datagrams are accepted.
    pub accept: Vec<Cidr>,
}

/// The replication state shared by the connection tasks (which queue
/// changes) and the replicator's tasks.
#[derive(Debug)]
pub struct Link {
    state: Mutex<Replication>,
    changes: Notify,
    snapshot: Notify,
}

impl Link {
    pub fn new(settings: Settings) -> Link {
        Link {
            state: Mutex::new(Replication::new(settings)),
            changes: Notify::new(),
            snapshot: Notify::new(),
        }
    }

    /// Locks the replication state (a poisoned lock is still usable: no
    /// update leaves it half-done).
    pub fn state(&self) -> MutexGuard<'_, Replication> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a local announce's change and wakes the sender.
    pub fn record_announce(&self, a: &Announce<'_>, outcome: &Outcome, now: Instant) {
        self.state().record_announce(a, outcome, now);
        self.changes.notify_one();
    }

    /// Queues expiries and wakes the sender.
    pub fn record_expired(&self, gone: &[Departed]) {
        if gone.is_empty() {
            return;
        }
        let mut state = self.state();
        for d in gone {
            state.record_expired(d);
        }
        drop(state);
        self.changes.notify_one();
    }
}

/// Joins the group and readies the socket for sending to it.
pub fn bind(cfg: &ReplicationConfig) -> anyhow::Result<UdpSocket> {
    let group = cfg.group.ip();
    let sock = bind_receiver(group, cfg.group.port(), cfg.iface.as_ref(), None)
        .with_context(|| format!("replication group {}", cfg.group))?;
    configure_sending(
        &sock,
        group,
        cfg.iface.as_ref(),
        SendOptions {
            ttl: 1,
            multicast_loop: true,
        },
    )?;
    into_tokio(sock)
}

/// Everything the replicator's tasks share.
#[derive(Clone)]
struct Ctx {
    tracker: Arc<Tracker>,
    link: Arc<Link>,
    sock: Arc<UdpSocket>,
    dest: SocketAddr,
    reporter: Reporter,
}

impl Ctx {
    async fn send(&self, datagram: &[u8]) {
        if let Err(e) = self.sock.send_to(datagram, self.dest).await {
            debug!("replication send to {} failed: {e}", self.dest);
        }
    }
}

/// Runs replication on `sock` until `stop` turns true.
pub async fn run(
    tracker: Arc<Tracker>,
    link: Arc<Link>,
    sock: UdpSocket,
    iface: Option<u32>,
    reporter: Reporter,
    stop: watch::Receiver<bool>,
) {
    let group = link.state().settings().group;
    let ctx = Ctx {
        tracker,
        dest: lanio::group::destination(group.ip(), group.port(), iface.unwrap_or(0)),
        link,
        sock: Arc::new(sock),
        reporter,
    };
    ctx.reporter.replicating(ctx.link.state().settings());
    let snapshots = tokio::spawn(snapshot_sender(ctx.clone(), stop.clone()));
    main_loop(ctx, stop).await;
    snapshots.abort();
}

async fn main_loop(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            received = recv_with_ttl(&ctx.sock, &mut buf) => match received {
                Ok(r) => {
                    let len = r.len.min(buf.len());
                    on_datagram(&ctx, &buf[..len], r.truncated, r.from).await;
                }
                Err(e) => {
                    warn!("replication receive failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = ctx.link.changes.notified() => send_changes(&ctx).await,
            _ = tick.tick() => {
                let now = Instant::now();
                let beat = {
                    let mut state = ctx.link.state();
                    state.sweep(now);
                    state.heartbeat()
                };
                ctx.send(&beat).await;
                after(&ctx, now).await;
            }
        }
    }
}

/// Sends the queued changes.
async fn send_changes(ctx: &Ctx) {
    let (datagrams, bad) = ctx.link.state().take_changes(Instant::now());
    for (record, e) in bad {
        warn!("not replicated: {e}: {record:?}");
    }
    for d in &datagrams {
        ctx.send(d).await;
    }
}

/// Snapshot requests and drop reports that may be due after something happened.
async fn after(ctx: &Ctx, now: Instant) {
    let (request, report) = {
        let mut state = ctx.link.state();
        (state.poll_request(now), state.drop_report(now))
    };
    if let Some(counts) = report {
        ctx.reporter.replica_dropped(counts);
    }
    if let Some((datagram, reason)) = request {
        ctx.reporter.snapshot_requested(reason);
        ctx.send(&datagram).await;
    }
}

async fn on_datagram(ctx: &Ctx, bytes: &[u8], truncated: bool, from: SocketAddr) {
    let now = Instant::now();
    let received = ctx.link.state().receive(bytes, truncated, from, now);
    if let Some((id, addr)) = received.new_replica {
        ctx.reporter.replica_heard(id, addr);
    }
    match received.incoming {
        Incoming::Dropped(why) => debug!(%from, "replication datagram dropped: {why:?}"),
        Incoming::Changes { sender, records } => {
            let applied = apply(ctx, &records, now);
            for (record, applied) in records.iter().zip(applied) {
                report_change(ctx, record, applied, sender);
            }
        }
        Incoming::SnapshotPart {
            sender,
            mark,
            records,
        } => {
            let applied = apply(ctx, &records, now);
            let joined = applied
                .iter()
                .filter(|a| matches!(a, Applied::Joined { .. }))
                .count();
            let done = ctx
                .link
                .state()
                .part_applied(sender, mark, joined, records.len());
            if let Some(done) = done {
                ctx.reporter.snapshot_received(&done);
            }
        }
        Incoming::SnapshotRequested { sender, reason } => {
            debug!(replica = %sender, "snapshot requested ({reason:?})");
            ctx.link.snapshot.notify_one();
        }
        Incoming::Heartbeat => {}
    }
    after(ctx, now).await;
}

/// Merges records into the registry; counts those refused by a bound.
fn apply(ctx: &Ctx, records: &[Record], now: Instant) -> Vec<Applied> {
    let applied: Vec<Applied> = {
        let mut registry = ctx.tracker.registry();
        records.iter().map(|r| registry.apply(r, now)).collect()
    };
    let over = applied.iter().filter(|a| **a == Applied::OverLimit).count();
    if over > 0 {
        ctx.link.state().count_over_limit(over as u64);
    }
    applied
}

/// Reports a replica's change that changed something here.
fn report_change(ctx: &Ctx, record: &Record, applied: Applied, via: wire::replica::TrackerId) {
    let (swarm, addr) = record.key();
    let (change, peer_id) = match (&applied, record) {
        (Applied::Joined { .. }, Record::Join(p) | Record::Refresh(p) | Record::Seed(p)) => {
            (ReplicaChange::Join, p.peer_id.clone())
        }
        (Applied::BecameSeed, Record::Join(p) | Record::Refresh(p) | Record::Seed(p)) => {
            (ReplicaChange::Seed, p.peer_id.clone())
        }
        (Applied::Left { peer_id }, Record::Leave(_)) => {
            (ReplicaChange::Leave, peer_id.to_string())
        }
        (Applied::Left { peer_id }, Record::Expire(_)) => {
            (ReplicaChange::Expire, peer_id.to_string())
        }
        _ => return,
    };
    let peer = PeerEvent {
        info_hash: swarm,
        peer_id,
        addr,
    };
    ctx.reporter.replicated(peer, change, via);
}

/// Sends a snapshot whenever one is due.
async fn snapshot_sender(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    loop {
        let now = Instant::now();
        let due = ctx.link.state().next_snapshot_at(now);
        match due {
            None => {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = ctx.link.snapshot.notified() => continue,
                }
            }
            Some(at) if at > now => {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep_until(at.into()) => continue,
                }
            }
            Some(_) => {}
        }
        let Some((number, seq)) = ctx.link.state().poll_snapshot(now) else {
            continue;
        };
        // The number was read first: the listing covers at least that far.
        let id = ctx.link.state().id();
        let records = ctx.tracker.registry().snapshot_records(id, Instant::now());
        let (datagrams, bad) = pack_snapshot(id, seq, number, &records);
        for (record, e) in bad {
            warn!("not in the snapshot: {e}: {record:?}");
        }
        for (i, burst) in datagrams.chunks(SNAPSHOT_BURST).enumerate() {
            if i > 0 {
                tokio::time::sleep(SNAPSHOT_PACE).await;
            }
            for d in burst {
                ctx.send(d).await;
            }
        }
        let millis = now.elapsed().as_millis() as u64;
        ctx.link.state().snapshot_finished(Instant::now());
        ctx.reporter
            .snapshot_sent(number, records.len(), datagrams.len(), millis);
    }
}

//! What the tracker tells its operator: tracing lines at info level on
//! stderr, with `--json` one [`Event`] per line on stdout, written by a
//! [`lanio::EventWriter`] so that a stdout nobody reads never stalls a
//! connection, and with `--http` the peer events (`join`, `seed`, `leave`,
//! `expire`) on the web page's live [`Feed`] too, as the same JSON.

use std::net::SocketAddr;
use std::time::Duration;

use lanio::EventWriter;
use tracing::info;
use wire::replica::{DropCounts, SnapshotReason, TrackerId};

use crate::events::{Event, PeerEvent, ReplicaChange};
use crate::handler::Note;
use crate::registry::{Change, Departed};
use crate::replication::{Settings, SnapshotDone};
use crate::web::Feed;

/// Longest wait at exit for stdout to take the events still queued.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Reports tracker events to the log and, with `--json`, on stdout.
#[derive(Debug, Clone)]
pub struct Reporter {
    out: EventWriter<Event>,
    feed: Option<Feed>,
}

impl Reporter {
    /// Events on stdout as JSON lines when `json`; log lines either way.
    pub fn new(json: bool) -> Self {
        Reporter {
            out: EventWriter::stdout(json),
            feed: None,
        }
    }

    /// Also sends peer events to the web page's `feed`.
    pub fn with_feed(mut self, feed: Feed) -> Self {
        self.feed = Some(feed);
        self
    }

    /// A peer event: on stdout (with `--json`) and on the feed.
    fn peer_event(&self, event: Event) {
        if let Some(feed) = &self.feed {
            feed.publish(&event);
        }
        self.out.emit(&event);
    }

    pub fn http_listening(&self, addr: SocketAddr) {
        info!("http on {addr}");
        self.out.emit(&Event::HttpListening { addr });
    }

    pub fn listening(&self, addr: SocketAddr) {
        info!("listening on {addr}");
        self.out.emit(&Event::Listening { addr });
    }

    /// A join, a leave or a peer turning seed.
    pub fn note(&self, note: &Note) {
        let Note {
            change,
            swarm,
            peer_id,
            addr,
        } = note;
        let peer = || PeerEvent {
            info_hash: *swarm,
            peer_id: peer_id.clone(),
            addr: *addr,
        };
        let event = match change {
            Change::Joined { seed } => {
                let role = if *seed { "seed" } else { "leech" };
                info!(%swarm, %addr, peer_id, "join ({role})");
                Event::Join {
                    peer: peer(),
                    seed: *seed,
                }
            }
            Change::BecameSeed => {
                info!(%swarm, %addr, peer_id, "completed: now a seed");
                Event::Seed(peer())
            }
            Change::Left => {
                info!(%swarm, %addr, peer_id, "leave");
                Event::Leave(peer())
            }
            Change::Refreshed | Change::Absent | Change::NameTaken | Change::Refused(_) => return,
        };
        self.peer_event(event);
    }

    pub fn expired(&self, d: &Departed) {
        info!(swarm = %d.swarm, addr = %d.addr, peer_id = &*d.peer_id, "expire: not heard from in 2 x interval");
        self.peer_event(Event::Expire(PeerEvent {
            info_hash: d.swarm,
            peer_id: d.peer_id.to_string(),
            addr: d.addr,
        }));
    }

    /// Replication is on.
    pub fn replicating(&self, s: &Settings) {
        let accept: Vec<String> = s.accept.iter().map(|c| c.to_string()).collect();
        info!(
            "replicating on {} as tracker {}, accepting datagrams from {}",
            s.group,
            s.id,
            accept.join(", ")
        );
        self.out.emit(&Event::Replicating {
            id: s.id,
            group: s.group,
            accept,
        });
    }

    pub fn replica_heard(&self, id: TrackerId, addr: SocketAddr) {
        info!(replica = %id, %addr, "replica heard");
        self.out.emit(&Event::ReplicaHeard { id, addr });
    }

    /// A replica's change applied here.
    pub fn replicated(&self, peer: PeerEvent, change: ReplicaChange, via: TrackerId) {
        info!(swarm = %peer.info_hash, addr = %peer.addr, peer_id = peer.peer_id, replica = %via, "replicated {change:?}");
        self.out.emit(&Event::Replicated { peer, change, via });
    }

    pub fn snapshot_requested(&self, reason: SnapshotReason) {
        info!("asking the group for snapshots ({reason:?})");
        self.out.emit(&Event::SnapshotRequested { reason });
    }

    pub fn snapshot_sent(&self, number: u32, peers: usize, datagrams: usize, millis: u64) {
        info!("snapshot {number} sent: {peers} peers in {datagrams} datagrams, {millis} ms");
        self.out.emit(&Event::SnapshotSent {
            number,
            peers,
            datagrams,
            millis,
        });
    }

    pub fn snapshot_received(&self, d: &SnapshotDone) {
        info!(replica = %d.from, addr = %d.addr, "snapshot received: {} peers, {} new here", d.peers, d.joined);
        self.out.emit(&Event::SnapshotReceived {
            from: d.from,
            addr: d.addr,
            peers: d.peers,
            joined: d.joined,
        });
    }

    pub fn replica_dropped(&self, counts: DropCounts) {
        info!(
            "replication datagrams dropped so far: {} foreign, {} malformed, {} oversize, {} over limit ({} own)",
            counts.foreign, counts.malformed, counts.oversize, counts.over_limit, counts.own
        );
        self.out.emit(&Event::ReplicaDropped(counts));
    }

    /// A datagram of the seed's directory that was dropped.
    pub fn seed_dropped(&self, d: &crate::seed::directory::Dropped, total: u64) {
        info!(from = %d.from, "seed: dropped a datagram: {} ({total} so far)", d.reason);
        self.out.emit(&Event::SeedDropped {
            from: d.from,
            reason: d.reason.clone(),
            dropped: total,
        });
    }

    pub fn shutdown(&self, open_connections: usize) {
        info!("shutting down: finishing {open_connections} open connection(s)");
        self.out.emit(&Event::Shutdown { open_connections });
    }

    /// Waits up to [`FINISH_TIMEOUT`] for the queued events to be written,
    /// then stops the writer. Blocks: call it off the async workers.
    pub fn finish(&self) {
        self.out.finish(FINISH_TIMEOUT);
    }
}

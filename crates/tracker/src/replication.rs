//! Replication bookkeeping, sans-IO: what a tracker sends to the group and
//! what it makes of what it hears. [`crate::replicator`] owns the socket and
//! the clock and drives this; [`crate::registry`] merges the records.
//!
//! - **Outgoing changes.** Every registry change made here (join, refresh,
//!   seed, leave, and the expiry of a peer announced here) goes into an
//!   outbox that keeps one record per peer, the latest. The replicator
//!   empties it into changes datagrams numbered 1, 2, … ([`Replication::take_changes`]).
//!   A heartbeat every [`HEARTBEAT`] carries the last number.
//! - **What is dropped.** Datagrams larger than [`MAX_DATAGRAM`], from a
//!   source outside the accepted ranges, malformed, or our own: each is
//!   counted ([`DropCounts`]), never applied.
//! - **Replicas.** Each sender heard is tracked: address, last heard, the
//!   highest number seen and the number up to which nothing is missing. At
//!   most [`MAX_REPLICAS`]; when full, one silent for [`REPLICA_SILENT`]
//!   makes room, otherwise the newcomer's datagrams are dropped (counted as
//!   over limit). Replicas silent for [`REPLICA_FORGET`] are forgotten.
//! - **Snapshot requests.** A starting tracker asks once; a gap in a
//!   sender's numbers (or a heartbeat ahead of what we have) asks again,
//!   at most every [`REQUEST_RETRY`], until a complete snapshot of that
//!   sender covers the gap.
//! - **Snapshots.** A request from anyone schedules one snapshot of the
//!   whole registry, sent to the group; requests arriving meanwhile are
//!   served by the next one, at least [`SNAPSHOT_COOLDOWN`] after the last
//!   ended. So a flood of requests costs at most one snapshot per cooldown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lanio::Cidr;
use wire::replica::{
    heartbeat, pack_changes, snapshot_request, Body, Datagram, DatagramError, DropCounts,
    EncodeError, PeerRecord, Record, Removal, ReplicaStatus, ReplicationStatus, SnapshotReason,
    TrackerId, MAX_DATAGRAM,
};
use wire::InfoHash;

use crate::registry::{Announce, Change, Departed, Outcome};

/// The group and port used when `--replicate` names none: administratively
/// scoped (239.255.0.0/16, local scope), UDP port 6666.
pub const DEFAULT_GROUP: &str = "239.255.66.66:6666";
/// Most other trackers tracked at once.
pub const MAX_REPLICAS: usize = 16;
/// Seconds between heartbeats.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A replica this silent may be replaced by a new one when the table is full.
pub const REPLICA_SILENT: Duration = Duration::from_secs(5);
/// A replica this silent is forgotten.
pub const REPLICA_FORGET: Duration = Duration::from_secs(60);
/// Shortest time between two snapshot requests of ours.
pub const REQUEST_RETRY: Duration = Duration::from_secs(2);
/// Shortest time between the end of one snapshot we send and the next.
pub const SNAPSHOT_COOLDOWN: Duration = Duration::from_millis(500);
/// Shortest time between two reports of dropped datagrams.
pub const DROP_REPORT_EVERY: Duration = Duration::from_secs(1);

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    Own,
    Foreign,
    Malformed(DatagramError),
    Oversize(usize),
    /// A new sender while the replica table is full of live ones.
    TooManyReplicas,
}

/// Where a snapshot part belongs, to report the snapshot once complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartMark {
    pub snapshot: u32,
    pub part: u16,
    pub parts: u16,
    /// The sender's last changes number when it took the snapshot.
    pub seq: u64,
}

/// What a received datagram asks of the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Dropped and counted.
    Dropped(Dropped),
    /// Apply these changes.
    Changes {
        sender: TrackerId,
        records: Vec<Record>,
    },
    /// Apply these records, then report with [`Replication::part_applied`].
    SnapshotPart {
        sender: TrackerId,
        mark: PartMark,
        records: Vec<Record>,
    },
    /// Someone wants a snapshot; one is scheduled ([`Replication::poll_snapshot`]).
    SnapshotRequested {
        sender: TrackerId,
        reason: SnapshotReason,
    },
    Heartbeat,
}

/// A received datagram, and whether its sender is new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// A sender heard for the first time (or again after being forgotten).
    pub new_replica: Option<(TrackerId, SocketAddr)>,
    pub incoming: Incoming,
}

/// A snapshot whose parts have all arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDone {
    pub from: TrackerId,
    pub addr: SocketAddr,
    /// Records it held.
    pub peers: usize,
    /// Of those, peers new to this registry.
    pub joined: usize,
}

/// The parts of a snapshot received so far.
#[derive(Debug)]
struct Receiving {
    snapshot: u32,
    parts: u16,
    /// One bit per part (at most 1,024 words).
    seen: Vec<u64>,
    count: u16,
    peers: usize,
    joined: usize,
}

#[derive(Debug)]
struct Replica {
    addr: SocketAddr,
    last_heard: Instant,
    /// Highest changes number heard of.
    high: u64,
    /// Every changes number up to this one was received or covered by a snapshot.
    applied: u64,
    needs_snapshot: bool,
    receiving: Option<Receiving>,
}

impl Replica {
    /// Takes note of the sender's numbers: `seq` is a changes datagram's own
    /// number (`own`) or the last one a heartbeat or snapshot names.
    fn sequence(&mut self, seq: u64, own: bool) {
        self.high = self.high.max(seq);
        if own && seq == self.applied + 1 {
            self.applied = seq;
        }
        if self.high > self.applied {
            self.needs_snapshot = true;
        }
    }
}

/// The latest record per peer, waiting to be sent.
#[derive(Debug, Default)]
struct Outbox {
    index: HashMap<(InfoHash, SocketAddr), usize>,
    items: Vec<(Record, Instant)>,
}

impl Outbox {
    fn push(&mut self, record: Record, at: Instant) {
        match self.index.get(&record.key()) {
            Some(&i) if self.items[i].1 <= at => self.items[i] = (record, at),
            Some(_) => {}
            None => {
                self.index.insert(record.key(), self.items.len());
                self.items.push((record, at));
            }
        }
    }

    fn take(&mut self) -> Vec<(Record, Instant)> {
        self.index.clear();
        std::mem::take(&mut self.items)
    }
}

/// How a tracker replicates.
#[derive(Debug, Clone)]
pub struct Settings {
    pub id: TrackerId,
    pub group: SocketAddr,
    /// Sources whose datagrams are accepted.
    pub accept: Vec<Cidr>,
}

/// One tracker's replication state.
#[derive(Debug)]
pub struct Replication {
    settings: Settings,
    /// Our last changes datagram number.
    seq: u64,
    outbox: Outbox,
    replicas: HashMap<TrackerId, Replica>,
    dropped: DropCounts,
    reported: DropCounts,
    last_report: Option<Instant>,
    starting: bool,
    requested_at: Option<Instant>,
    snapshot_wanted: bool,
    snapshot_sending: bool,
    snapshot_ended: Option<Instant>,
    snapshots: u32,
}

/// Milliseconds from `at` to `now`, saturated.
fn age_ms(at: Instant, now: Instant) -> u32 {
    u32::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u32::MAX)
}

fn with_age(record: Record, age: u32) -> Record {
    match record {
        Record::Join(p) => Record::Join(PeerRecord { age_ms: age, ..p }),
        Record::Refresh(p) => Record::Refresh(PeerRecord { age_ms: age, ..p }),
        Record::Seed(p) => Record::Seed(PeerRecord { age_ms: age, ..p }),
        Record::Leave(r) => Record::Leave(Removal { age_ms: age, ..r }),
        Record::Expire(r) => Record::Expire(Removal { age_ms: age, ..r }),
    }
}

impl Replication {
    pub fn new(settings: Settings) -> Replication {
        Replication {
            settings,
            seq: 0,
            outbox: Outbox::default(),
            replicas: HashMap::new(),
            dropped: DropCounts::default(),
            reported: DropCounts::default(),
            last_report: None,
            starting: true,
            requested_at: None,
            snapshot_wanted: false,
            snapshot_sending: false,
            snapshot_ended: None,
            snapshots: 0,
        }
    }

    pub fn id(&self) -> TrackerId {
        self.settings.id
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Our last changes datagram number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Queues the change a local announce made.
    pub fn record_announce(&mut self, a: &Announce<'_>, outcome: &Outcome, now: Instant) {
        let peer = || PeerRecord {
            swarm: outcome.swarm,
            addr: a.addr,
            age_ms: 0,
            origin: self.settings.id,
            seed: outcome.seed,
            proto: a.proto,
            peer_id: a.peer_id.to_string(),
        };
        let record = match outcome.change {
            Change::Joined { .. } => Record::Join(peer()),
            Change::Refreshed => Record::Refresh(peer()),
            Change::BecameSeed => Record::Seed(peer()),
            // Also when absent here: a replica may still list it.
            Change::Left | Change::Absent => Record::Leave(Removal {
                swarm: outcome.swarm,
                addr: a.addr,
                age_ms: 0,
            }),
            // Refused: nothing changed.
            Change::NameTaken | Change::Refused(_) => return,
        };
        self.outbox.push(record, now);
    }

    /// Queues the expiry of a peer announced here (replicas expire theirs
    /// on their own).
    pub fn record_expired(&mut self, d: &Departed) {
        if d.origin.is_none() {
            let removal = Removal {
                swarm: d.swarm,
                addr: d.addr,
                age_ms: 0,
            };
            self.outbox.push(Record::Expire(removal), d.last_seen);
        }
    }

    /// The queued changes as datagrams, numbered on from our last one, and
    /// the records that could not be encoded.
    pub fn take_changes(&mut self, now: Instant) -> (Vec<Vec<u8>>, Vec<(Record, EncodeError)>) {
        let records: Vec<Record> = self
            .outbox
            .take()
            .into_iter()
            .map(|(r, at)| with_age(r, age_ms(at, now)))
            .collect();
        let (datagrams, bad) = pack_changes(self.settings.id, self.seq + 1, &records);
        self.seq += datagrams.len() as u64;
        (datagrams, bad)
    }

    /// A heartbeat datagram.
    pub fn heartbeat(&self) -> Vec<u8> {
        heartbeat(self.settings.id, self.seq)
    }

    /// Takes one datagram of `len` bytes (`truncated`: it was larger than
    /// the buffer) from `from`, received at `now`.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        truncated: bool,
        from: SocketAddr,
        now: Instant,
    ) -> Received {
        let drop = |this: &mut Self, why: Dropped| {
            let counts = &mut this.dropped;
            match why {
                Dropped::Own => counts.own += 1,
                Dropped::Foreign => counts.foreign += 1,
                Dropped::Malformed(_) => counts.malformed += 1,
                Dropped::Oversize(_) => counts.oversize += 1,
                Dropped::TooManyReplicas => counts.over_limit += 1,
            }
            Received {
                new_replica: None,
                incoming: Incoming::Dropped(why),
            }
        };
        if truncated || bytes.len() > MAX_DATAGRAM {
            return drop(self, Dropped::Oversize(bytes.len()));
        }
        if !self.settings.accept.iter().any(|c| c.contains(from.ip())) {
            return drop(self, Dropped::Foreign);
        }
        let datagram = match Datagram::decode(bytes) {
            Ok(d) => d,
            Err(e) => return drop(self, Dropped::Malformed(e)),
        };
        if datagram.sender == self.settings.id {
            return drop(self, Dropped::Own);
        }
        let sender = datagram.sender;
        let new_replica = !self.replicas.contains_key(&sender);
        if new_replica && !self.make_room(now) {
            return drop(self, Dropped::TooManyReplicas);
        }
        let replica = self.replicas.entry(sender).or_insert(Replica {
            addr: from,
            last_heard: now,
            high: 0,
            applied: 0,
            needs_snapshot: false,
            receiving: None,
        });
        replica.addr = from;
        replica.last_heard = now;
        let incoming = match datagram.body {
            Body::Changes(records) => {
                replica.sequence(datagram.seq, true);
                Incoming::Changes { sender, records }
            }
            Body::Heartbeat => {
                replica.sequence(datagram.seq, false);
                Incoming::Heartbeat
            }
            Body::SnapshotRequest(reason) => {
                self.snapshot_wanted = true;
                Incoming::SnapshotRequested { sender, reason }
            }
            Body::Snapshot(part) => {
                replica.high = replica.high.max(datagram.seq);
                Incoming::SnapshotPart {
                    sender,
                    mark: PartMark {
                        snapshot: part.snapshot,
                        part: part.part,
                        parts: part.parts,
                        seq: datagram.seq,
                    },
                    records: part.records,
                }
            }
        };
        Received {
            new_replica: new_replica.then_some((sender, from)),
            incoming,
        }
    }

    /// Room for one more replica: true if there is, or if the longest
    /// silent one was silent long enough to be replaced.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.replicas.len() < MAX_REPLICAS {
            return true;
        }
        let quietest = self
            .replicas
            .iter()
            .min_by_key(|(_, r)| r.last_heard)
            .map(|(id, r)| (*id, r.last_heard));
        match quietest {
            Some((id, heard)) if now.saturating_duration_since(heard) >= REPLICA_SILENT => {
                self.replicas.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// Takes note of a snapshot part applied to the registry (`peers`
    /// records, `joined` of them new). Returns the snapshot once all its
    /// parts are in.
    pub fn part_applied(
        &mut self,
        sender: TrackerId,
        mark: PartMark,
        joined: usize,
        peers: usize,
    ) -> Option<SnapshotDone> {
        let replica = self.replicas.get_mut(&sender)?;
        let receiving = match &mut replica.receiving {
            Some(r) if r.snapshot == mark.snapshot && r.parts == mark.parts => r,
            slot => slot.insert(Receiving {
                snapshot: mark.snapshot,
                parts: mark.parts,
                seen: vec![0; usize::from(mark.parts).div_ceil(64)],
                count: 0,
                peers: 0,
                joined: 0,
            }),
        };
        let (word, bit) = (usize::from(mark.part) / 64, mark.part % 64);
        let w = receiving.seen.get_mut(word)?;
        if *w & (1 << bit) != 0 {
            return None;
        }
        *w |= 1 << bit;
        receiving.count += 1;
        receiving.peers += peers;
        receiving.joined += joined;
        if receiving.count < receiving.parts {
            return None;
        }
        let done = SnapshotDone {
            from: sender,
            addr: replica.addr,
            peers: receiving.peers,
            joined: receiving.joined,
        };
        replica.receiving = None;
        replica.applied = replica.applied.max(mark.seq);
        replica.high = replica.high.max(mark.seq);
        if replica.applied >= replica.high {
            replica.needs_snapshot = false;
        }
        Some(done)
    }

    /// Counts records the registry refused because a bound was reached.
    pub fn count_over_limit(&mut self, n: u64) {
        self.dropped.over_limit += n;
    }

    /// Our snapshot request, when one is due: once at start, then while a
    /// replica's gap is not covered, at most every [`REQUEST_RETRY`].
    pub fn poll_request(&mut self, now: Instant) -> Option<(Vec<u8>, SnapshotReason)> {
        let reason = if self.starting {
            SnapshotReason::Start
        } else if self.replicas.values().any(|r| r.needs_snapshot) {
            SnapshotReason::Gap
        } else {
            return None;
        };
        if let Some(at) = self.requested_at {
            if now.saturating_duration_since(at) < REQUEST_RETRY {
                return None;
            }
        }
        self.starting = false;
        self.requested_at = Some(now);
        Some((snapshot_request(self.settings.id, self.seq, reason), reason))
    }

    /// Starts a snapshot when one is wanted and the cooldown is over:
    /// returns its number and our last changes number (read before the
    /// registry is listed, so the snapshot covers at least that far).
    pub fn poll_snapshot(&mut self, now: Instant) -> Option<(u32, u64)> {
        if self.next_snapshot_at(now)? > now {
            return None;
        }
        self.snapshot_wanted = false;
        self.snapshot_sending = true;
        self.snapshots = self.snapshots.wrapping_add(1);
        Some((self.snapshots, self.seq))
    }

    /// When a wanted snapshot may start, `now` at the earliest (`None`:
    /// none wanted, or one is being sent).
    pub fn next_snapshot_at(&self, now: Instant) -> Option<Instant> {
        if !self.snapshot_wanted || self.snapshot_sending {
            return None;
        }
        Some(match self.snapshot_ended {
            Some(end) => (end + SNAPSHOT_COOLDOWN).max(now),
            None => now,
        })
    }

    /// The snapshot started by [`Replication::poll_snapshot`] is sent.
    pub fn snapshot_finished(&mut self, now: Instant) {
        self.snapshot_sending = false;
        self.snapshot_ended = Some(now);
    }

    /// Forgets replicas silent for [`REPLICA_FORGET`].
    pub fn sweep(&mut self, now: Instant) {
        self.replicas
            .retain(|_, r| now.saturating_duration_since(r.last_heard) < REPLICA_FORGET);
    }

    /// The drop counts, when some other than our own changed since the last
    /// report and the last report is [`DROP_REPORT_EVERY`] old.
    pub fn drop_report(&mut self, now: Instant) -> Option<DropCounts> {
        let changed = DropCounts {
            own: self.reported.own,
            ..self.dropped
        } != self.reported;
        let due = self
            .last_report
            .is_none_or(|at| now.saturating_duration_since(at) >= DROP_REPORT_EVERY);
        if !(changed && due) {
            return None;
        }
        self.reported = self.dropped;
        self.last_report = Some(now);
        Some(self.dropped)
    }

    pub fn dropped(&self) -> DropCounts {
        self.dropped
    }

    /// The replication part of `tracker status`.
    pub fn status(&self, now: Instant) -> ReplicationStatus {
        let mut replicas: Vec<ReplicaStatus> = self
            .replicas
            .iter()
            .map(|(id, r)| ReplicaStatus {
                id: *id,
                addr: r.addr,
                last_heard_secs: (now.saturating_duration_since(r.last_heard).as_secs_f64()
                    * 1000.0)
                    .round()
                    / 1000.0,
                seq: r.high,
                lag: r.high - r.applied.min(r.high),
            })
            .collect();
        replicas.sort_by_key(|r| r.id);
        ReplicationStatus {
            id: self.settings.id,
            group: self.settings.group,
            seq: self.seq,
            replicas,
            dropped: self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::replica::pack_snapshot;

    fn id(n: u64) -> TrackerId {
        TrackerId::new(n).unwrap()
    }

    fn src(host: u8) -> SocketAddr {
        SocketAddr::from(([10, 77, 0, host], 6666))
    }

    fn replication() -> Replication {
        Replication::new(Settings {
            id: id(1),
            group: DEFAULT_GROUP.parse().unwrap(),
            accept: vec!["10.77.0.0/24".parse().unwrap()],
        })
    }

    fn join(port: u16) -> Record {
        Record::Join(PeerRecord {
            swarm: InfoHash::default(),
            addr: SocketAddr::from(([10, 77, 0, 9], port)),
            age_ms: 0,
            origin: id(2),
            seed: false,
            proto: None,
            peer_id: "p".into(),
        })
    }

    fn changes(sender: u64, seq: u64) -> Vec<u8> {
        pack_changes(id(sender), seq, &[join(seq as u16 + 1)])
            .0
            .remove(0)
    }

    #[test]
    fn drops_are_counted_by_kind_and_reported_at_most_every_second() {
        let mut r = replication();
        let t0 = Instant::now();
        let kinds = [
            r.receive(&[0; 1401], false, src(2), t0),
            r.receive(&[0; 10], true, src(2), t0),
            r.receive(&changes(2, 1), false, "10.78.0.2:6666".parse().unwrap(), t0),
            r.receive(b"garbage", false, src(2), t0),
            r.receive(&changes(1, 1), false, src(1), t0),
        ];
        assert!(kinds
            .iter()
            .all(|k| matches!(k.incoming, Incoming::Dropped(_))));
        let expected = DropCounts {
            own: 1,
            foreign: 1,
            malformed: 1,
            oversize: 2,
            over_limit: 0,
        };
        assert_eq!(r.drop_report(t0), Some(expected));
        assert_eq!(r.drop_report(t0), None, "nothing new");
        r.receive(b"more garbage", false, src(2), t0);
        assert_eq!(
            r.drop_report(t0 + Duration::from_millis(500)),
            None,
            "too soon"
        );
        let later = r.drop_report(t0 + DROP_REPORT_EVERY).unwrap();
        assert_eq!(later.malformed, 2);
        // Our own looped-back datagrams alone are not news.
        r.receive(&changes(1, 2), false, src(1), t0);
        assert_eq!(r.drop_report(t0 + DROP_REPORT_EVERY * 3), None);
        assert_eq!(r.dropped().own, 2);
    }

    #[test]
    fn a_gap_asks_for_snapshots_until_one_covers_it() {
        let mut r = replication();
        let t0 = Instant::now();
        let (_, reason) = r.poll_request(t0).unwrap();
        assert_eq!(reason, SnapshotReason::Start);
        assert_eq!(r.poll_request(t0 + REQUEST_RETRY), None, "nothing missing");
        let heard = r.receive(&changes(2, 1), false, src(2), t0);
        assert_eq!(heard.new_replica, Some((id(2), src(2))));
        r.receive(&changes(2, 2), false, src(2), t0);
        assert_eq!(r.status(t0).replicas[0].lag, 0);
        // 3 and 4 are lost.
        let again = r.receive(&changes(2, 5), false, src(2), t0);
        assert_eq!(again.new_replica, None);
        assert_eq!(r.status(t0).replicas[0].lag, 3);
        let t1 = t0 + REQUEST_RETRY;
        assert_eq!(r.poll_request(t1).unwrap().1, SnapshotReason::Gap);
        assert_eq!(r.poll_request(t1 + REQUEST_RETRY / 2), None, "paced");
        // A snapshot in two parts taken at 6 covers it, once both are in.
        let mark = |part| PartMark {
            snapshot: 1,
            part,
            parts: 2,
            seq: 6,
        };
        assert_eq!(r.part_applied(id(2), mark(0), 3, 5), None);
        assert_eq!(r.part_applied(id(2), mark(0), 3, 5), None, "duplicate");
        let done = r.part_applied(id(2), mark(1), 1, 4).unwrap();
        assert_eq!((done.peers, done.joined, done.from), (9, 4, id(2)));
        assert_eq!(r.status(t1).replicas[0].lag, 0);
        assert_eq!(r.poll_request(t1 + REQUEST_RETRY * 2), None);
        // A heartbeat ahead of what we have is a gap too.
        r.receive(&heartbeat(id(2), 9), false, src(2), t1);
        assert_eq!(r.status(t1).replicas[0].seq, 9);
        assert!(r.poll_request(t1 + REQUEST_RETRY * 3).is_some());
    }

    #[test]
    fn a_sender_first_heard_mid_stream_needs_a_snapshot() {
        let mut r = replication();
        let t0 = Instant::now();
        r.poll_request(t0);
        r.receive(&heartbeat(id(3), 40), false, src(3), t0);
        assert_eq!(r.status(t0).replicas[0].lag, 40);
        assert!(r.poll_request(t0 + REQUEST_RETRY).is_some());
        // A sender that just started has nothing we missed.
        r.receive(&heartbeat(id(4), 0), false, src(4), t0);
        r.receive(&changes(4, 1), false, src(4), t0);
        let four = r
            .status(t0)
            .replicas
            .into_iter()
            .find(|x| x.id == id(4))
            .unwrap();
        assert_eq!((four.seq, four.lag), (1, 0));
    }

    #[test]
    fn requests_schedule_one_snapshot_per_cooldown() {
        let mut r = replication();
        let t0 = Instant::now();
        assert_eq!(r.poll_snapshot(t0), None, "nobody asked");
        let req = snapshot_request(id(2), 0, SnapshotReason::Start);
        let got = r.receive(&req, false, src(2), t0);
        assert_eq!(
            got.incoming,
            Incoming::SnapshotRequested {
                sender: id(2),
                reason: SnapshotReason::Start
            }
        );
        assert_eq!(r.poll_snapshot(t0), Some((1, 0)));
        // Requests while sending wait for the end and the cooldown.
        for _ in 0..100 {
            r.receive(&req, false, src(2), t0);
        }
        assert_eq!(r.poll_snapshot(t0), None);
        let end = t0 + Duration::from_millis(300);
        r.snapshot_finished(end);
        assert_eq!(r.next_snapshot_at(end), Some(end + SNAPSHOT_COOLDOWN));
        assert_eq!(r.poll_snapshot(end), None);
        assert_eq!(r.poll_snapshot(end + SNAPSHOT_COOLDOWN), Some((2, 0)));
        r.snapshot_finished(end + SNAPSHOT_COOLDOWN);
        assert_eq!(r.next_snapshot_at(end + SNAPSHOT_COOLDOWN * 9), None);
    }

    #[test]
    fn the_replica_table_is_bounded() {
        let mut r = replication();
        let t0 = Instant::now();
        for n in 0..MAX_REPLICAS as u64 {
            let got = r.receive(&heartbeat(id(100 + n), 0), false, src(2), t0);
            assert!(got.new_replica.is_some());
        }
        let refused = r.receive(&heartbeat(id(999), 0), false, src(3), t0);
        assert_eq!(
            refused.incoming,
            Incoming::Dropped(Dropped::TooManyReplicas)
        );
        assert_eq!(r.dropped().over_limit, 1);
        // One falls silent: the newcomer takes its place.
        let later = t0 + REPLICA_SILENT;
        for n in 1..MAX_REPLICAS as u64 {
            r.receive(&heartbeat(id(100 + n), 0), false, src(2), later);
        }
        let admitted = r.receive(&heartbeat(id(999), 0), false, src(3), later);
        assert_eq!(admitted.new_replica, Some((id(999), src(3))));
        assert_eq!(r.status(later).replicas.len(), MAX_REPLICAS);
        r.sweep(later + REPLICA_FORGET);
        assert!(r.status(later).replicas.is_empty());
    }

    #[test]
    fn the_outbox_keeps_the_latest_record_per_peer() {
        let mut r = replication();
        let t0 = Instant::now();
        let announce = Announce {
            swarm: None,
            addr: "10.77.0.9:7001".parse().unwrap(),
            peer_id: "p",
            event: None,
            numwant: None,
            proto: Some(1),
            name: None,
            left: None,
            downloaded: None,
        };
        let outcome = |change, seed| Outcome {
            swarm: InfoHash::default(),
            change,
            seed,
            others: 0,
            peers: vec![],
        };
        r.record_announce(
            &announce,
            &outcome(Change::Joined { seed: false }, false),
            t0,
        );
        r.record_announce(
            &announce,
            &outcome(Change::BecameSeed, true),
            t0 + Duration::from_millis(20),
        );
        let other = Announce {
            addr: "10.77.0.9:7002".parse().unwrap(),
            ..announce.clone()
        };
        r.record_announce(&other, &outcome(Change::Left, false), t0);
        r.record_expired(&Departed {
            swarm: InfoHash::default(),
            peer_id: "x".into(),
            addr: "10.77.0.9:7003".parse().unwrap(),
            last_seen: t0,
            origin: None,
        });
        r.record_expired(&Departed {
            swarm: InfoHash::default(),
            peer_id: "y".into(),
            addr: "10.77.0.9:7004".parse().unwrap(),
            last_seen: t0,
            origin: Some(id(5)),
        });
        let (datagrams, bad) = r.take_changes(t0 + Duration::from_millis(100));
        assert!(bad.is_empty());
        assert_eq!((datagrams.len(), r.seq()), (1, 1));
        let Body::Changes(records) = Datagram::decode(&datagrams[0]).unwrap().body else {
            panic!()
        };
        let [Record::Seed(seed), Record::Leave(leave), Record::Expire(expire)] = &records[..]
        else {
            panic!("{records:?}")
        };
        assert_eq!((seed.seed, seed.age_ms, seed.origin), (true, 80, id(1)));
        assert_eq!((leave.addr.port(), leave.age_ms), (7002, 100));
        assert_eq!((expire.addr.port(), expire.age_ms), (7003, 100));
        assert!(r.take_changes(t0).0.is_empty(), "emptied");
        r.record_announce(&announce, &outcome(Change::Refreshed, true), t0);
        let (again, _) = r.take_changes(t0);
        assert_eq!(Datagram::decode(&again[0]).unwrap().seq, 2);
    }

    #[test]
    fn snapshot_parts_come_through_with_their_mark() {
        let mut r = replication();
        let t0 = Instant::now();
        let (parts, _) = pack_snapshot(id(2), 77, 5, &[join(1), join(2)]);
        let got = r.receive(&parts[0], false, src(2), t0);
        let Incoming::SnapshotPart {
            sender,
            mark,
            records,
        } = got.incoming
        else {
            panic!("{got:?}")
        };
        assert_eq!(sender, id(2));
        assert_eq!(
            mark,
            PartMark {
                snapshot: 5,
                part: 0,
                parts: 1,
                seq: 77
            }
        );
        assert_eq!(records.len(), 2);
        let done = r.part_applied(sender, mark, 2, 2).unwrap();
        assert_eq!(done.addr, src(2));
        let st = r.status(t0).replicas.remove(0);
        assert_eq!((st.seq, st.lag), (77, 0));
    }
}

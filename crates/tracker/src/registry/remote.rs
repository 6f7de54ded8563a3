//! Replicas' peers in the registry. Sans-IO.
//!
//! - **Merging.** A replica's record is dated "now minus its age". A join,
//!   refresh or seed record updates a peer only if it is newer than what the
//!   registry holds (so every replica converges on the latest announce,
//!   whichever tracker got it); the seed flag only ever turns on. A leave or
//!   expire record removes the peer only if the registry heard nothing newer.
//! - **Graves.** A peer removed by a leave (here or on a replica) is
//!   remembered, with the time, for one TTL: a record dated before that,
//!   e.g. from a snapshot still on its way, cannot bring it back.
//! - **Bounds.** Peers learned from replicas are counted by the tracker they
//!   announced to: at most [`MAX_ORIGINS`] such trackers,
//!   [`MAX_PEERS_PER_ORIGIN`] peers each and [`MAX_REMOTE_PEERS`] in all;
//!   a record adds no swarm once there are [`MAX_SWARMS`]. A new peer must
//!   also pass the registry's own [`Limits`](super::Limits) (swarms and
//!   peers in all and per IP, the allow-list), like a local announce. Graves are
//!   capped at [`MAX_GRAVES`]. Records past a bound are refused
//!   ([`Applied::OverLimit`]), so hostile datagrams cannot grow memory
//!   without bound.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wire::replica::{PeerRecord, Record, Removal, TrackerId};
use wire::InfoHash;

use super::{Peer, Registry, Swarm};

/// Most trackers whose peers the registry holds (besides its own).
pub const MAX_ORIGINS: usize = 32;
/// Most peers held for one other tracker.
pub const MAX_PEERS_PER_ORIGIN: usize = 65_536;
/// Most peers held for other trackers in all.
pub const MAX_REMOTE_PEERS: usize = 131_072;
/// A replica's record adds no swarm past this many (each costs more than a peer).
pub const MAX_SWARMS: usize = 16_384;
/// Most removed peers remembered.
pub const MAX_GRAVES: usize = 65_536;

/// What a replica's record did to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A peer new to this registry.
    Joined { seed: bool },
    /// A known leech is a seed now.
    BecameSeed,
    /// A known peer, heard from more recently.
    Refreshed,
    /// The peer was removed.
    Left { peer_id: Arc<str> },
    /// Older than what the registry holds (or already expired, or removed since).
    Stale,
    /// A removal of a peer the registry does not hold.
    Absent,
    /// Refused: a bound on replicas' peers is reached.
    OverLimit,
}

type Key = (InfoHash, SocketAddr);

/// The registry's bookkeeping for replicated peers.
#[derive(Debug, Default)]
pub(super) struct Remote {
    /// This tracker's id, once it replicates.
    id: Option<TrackerId>,
    per_origin: HashMap<TrackerId, usize>,
    total: usize,
    graves: HashMap<Key, Instant>,
    /// Graves in the order dug (entries whose time no longer matches
    /// `graves` were dug again later).
    dug: VecDeque<(Key, Instant)>,
}

impl Remote {
    pub(super) fn id(&self) -> Option<TrackerId> {
        self.id
    }

    /// Counts one more peer for `origin` (`None`: announced here), or
    /// refuses when a bound is reached.
    fn claim(&mut self, origin: Option<TrackerId>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.total >= MAX_REMOTE_PEERS {
            return false;
        }
        let known = self.per_origin.len();
        match self.per_origin.entry(origin) {
            Entry::Occupied(mut e) if *e.get() < MAX_PEERS_PER_ORIGIN => *e.get_mut() += 1,
            Entry::Vacant(e) if known < MAX_ORIGINS => {
                e.insert(1);
            }
            _ => return false,
        }
        self.total += 1;
        true
    }

    /// Counts one peer of `origin` less.
    pub(super) fn release(&mut self, origin: Option<TrackerId>) {
        let Some(origin) = origin else { return };
        if let Entry::Occupied(mut e) = self.per_origin.entry(origin) {
            *e.get_mut() -= 1;
            self.total -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Remembers that the peer at `addr` left `swarm` at `at` (only while
    /// replicating: a lone tracker needs no graves).
    pub(super) fn bury(&mut self, swarm: InfoHash, addr: SocketAddr, at: Instant) {
        if self.id.is_none() {
            return;
        }
        let key = (swarm, addr);
        let time = self.graves.entry(key).or_insert(at);
        *time = (*time).max(at);
        self.dug.push_back((key, *time));
        while self.dug.len() > MAX_GRAVES {
            self.pop_grave();
        }
    }

    fn pop_grave(&mut self) {
        if let Some((key, at)) = self.dug.pop_front() {
            if self.graves.get(&key) == Some(&at) {
                self.graves.remove(&key);
            }
        }
    }

    /// Forgets graves older than `ttl`: records that old are refused anyway.
    pub(super) fn forget_graves(&mut self, now: Instant, ttl: Duration) {
        while let Some(&(_, at)) = self.dug.front() {
            if now.saturating_duration_since(at) <= ttl {
                break;
            }
            self.pop_grave();
        }
    }

    fn buried_since(&self, key: &Key, seen: Instant) -> bool {
        self.graves.get(key).is_some_and(|&at| at >= seen)
    }
}

fn millis(age_ms: u32) -> Duration {
    Duration::from_millis(u64::from(age_ms))
}

impl Registry {
    /// Names this tracker on the replication group: its peers are listed
    /// in `status` with this id, and removals are remembered from now on.
    pub fn set_tracker_id(&mut self, id: TrackerId) {
        self.remote.id = Some(id);
    }

    /// Peers held for other trackers.
    pub fn remote_peer_count(&self) -> usize {
        self.remote.total
    }

    /// Applies one record from a replica, received at `now`.
    pub fn apply(&mut self, record: &Record, now: Instant) -> Applied {
        match record {
            Record::Join(p) | Record::Refresh(p) | Record::Seed(p) => self.upsert(p, now),
            Record::Leave(r) => self.remove(r, true, now),
            Record::Expire(r) => self.remove(r, false, now),
        }
    }

    fn upsert(&mut self, p: &PeerRecord, now: Instant) -> Applied {
        let age = millis(p.age_ms);
        let Some(seen) = now.checked_sub(age).filter(|_| age <= self.ttl) else {
            return Applied::Stale;
        };
        let key = (p.swarm, p.addr);
        if self.remote.buried_since(&key, seen) {
            return Applied::Stale;
        }
        let origin = (Some(p.origin) != self.remote.id).then_some(p.origin);
        let held = self
            .swarms
            .get(&p.swarm)
            .and_then(|s| s.index.get(&p.addr).map(|&i| i as usize));
        let Some(i) = held else {
            let new_swarm = !self.swarms.contains_key(&p.swarm);
            if (new_swarm && self.swarms.len() >= MAX_SWARMS)
                || self.admit(p.swarm, p.addr).is_err()
                || !self.remote.claim(origin)
            {
                return Applied::OverLimit;
            }
            self.add_peer(
                p.swarm,
                Peer {
                    addr: p.addr,
                    peer_id: p.peer_id.as_str().into(),
                    proto: p.proto,
                    name: None,
                    seed: p.seed,
                    last_seen: seen,
                    left: None,
                    downloaded: None,
                    origin,
                    entry: Peer::render(p.addr, &p.peer_id, p.proto),
                },
            );
            return Applied::Joined { seed: p.seed };
        };
        let swarm: &mut Swarm = self.swarms.get_mut(&p.swarm).expect("held above");
        let peer = &mut swarm.peers[i];
        let newer = seen > peer.last_seen;
        if newer {
            if peer.origin != origin {
                if !self.remote.claim(origin) {
                    return Applied::OverLimit;
                }
                self.remote.release(peer.origin);
                peer.origin = origin;
            }
            peer.last_seen = seen;
            if *peer.peer_id != *p.peer_id || peer.proto != p.proto {
                peer.peer_id = p.peer_id.as_str().into();
                peer.proto = p.proto;
                peer.entry = Peer::render(peer.addr, &p.peer_id, p.proto);
            }
        }
        if p.seed && !peer.seed {
            peer.seed = true;
            Applied::BecameSeed
        } else if newer {
            Applied::Refreshed
        } else {
            Applied::Stale
        }
    }

    fn remove(&mut self, r: &Removal, bury: bool, now: Instant) -> Applied {
        let Some(at) = now.checked_sub(millis(r.age_ms)) else {
            return Applied::Stale;
        };
        if bury {
            self.remote.bury(r.swarm, r.addr, at);
        }
        let Some(swarm) = self.swarms.get_mut(&r.swarm) else {
            return Applied::Absent;
        };
        let Some(&i) = swarm.index.get(&r.addr) else {
            return Applied::Absent;
        };
        if swarm.peers[i as usize].last_seen > at {
            return Applied::Stale;
        }
        let peer = self.remove_peer(r.swarm, i as usize);
        Applied::Left {
            peer_id: peer.peer_id,
        }
    }

    /// Every peer as a join record dated at `now`, for a snapshot. Peers
    /// announced here name `own` as their origin.
    pub fn snapshot_records(&self, own: TrackerId, now: Instant) -> Vec<Record> {
        self.swarms
            .iter()
            .flat_map(|(hash, swarm)| swarm.peers.iter().map(move |p| (*hash, p)))
            .map(|(swarm, p)| {
                let age = now.saturating_duration_since(p.last_seen).as_millis();
                Record::Join(PeerRecord {
                    swarm,
                    addr: p.addr,
                    age_ms: u32::try_from(age).unwrap_or(u32::MAX),
                    origin: p.origin.unwrap_or(own),
                    seed: p.seed,
                    proto: p.proto,
                    peer_id: p.peer_id.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Announce, Change};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use wire::tracker::Event;

    const TTL: Duration = Duration::from_secs(120);

    fn id(n: u64) -> TrackerId {
        TrackerId::new(n).unwrap()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 77, 0, 9], port))
    }

    fn registry() -> Registry {
        let mut r = Registry::new(InfoHash::default(), TTL);
        r.set_tracker_id(id(1));
        r
    }

    fn peer(port: u16, origin: u64, age_ms: u32) -> PeerRecord {
        PeerRecord {
            swarm: InfoHash::default(),
            addr: addr(port),
            age_ms,
            origin: id(origin),
            seed: false,
            proto: Some(1),
            peer_id: format!("p{port}"),
        }
    }

    fn removal(port: u16, age_ms: u32) -> Removal {
        Removal {
            swarm: InfoHash::default(),
            addr: addr(port),
            age_ms,
        }
    }

    fn local(reg: &mut Registry, port: u16, event: Option<Event>, now: Instant) -> Change {
        let id = format!("p{port}");
        let a = Announce {
            swarm: None,
            addr: addr(port),
            peer_id: &id,
            event,
            numwant: None,
            proto: Some(1),
            name: None,
            left: None,
            downloaded: None,
        };
        reg.announce(&a, now, &mut StdRng::seed_from_u64(1)).change
    }

    fn origin_of(reg: &Registry, port: u16) -> Option<TrackerId> {
        let status = reg.status(Instant::now());
        status.swarms[0]
            .peers
            .iter()
            .find(|p| p.entry.peer_port == port)
            .and_then(|p| p.tracker)
    }

    #[test]
    fn the_newest_announce_wins_whatever_the_order() {
        let now = Instant::now();
        let older = Record::Refresh(peer(7001, 2, 5_000));
        let newer = Record::Refresh(peer(7001, 3, 1_000));
        for order in [[&older, &newer], [&newer, &older]] {
            let mut reg = registry();
            for r in order {
                reg.apply(r, now);
            }
            assert_eq!(origin_of(&reg, 7001), Some(id(3)), "{order:?}");
            assert_eq!(reg.peer_count(), 1);
            assert_eq!(reg.remote_peer_count(), 1);
        }
        let mut reg = registry();
        assert_eq!(reg.apply(&newer, now), Applied::Joined { seed: false });
        assert_eq!(reg.apply(&older, now), Applied::Stale);
        let mut fresher = peer(7001, 2, 10);
        assert_eq!(
            reg.apply(&Record::Refresh(fresher.clone()), now),
            Applied::Refreshed
        );
        fresher.seed = true;
        assert_eq!(reg.apply(&Record::Seed(fresher), now), Applied::BecameSeed);
    }

    #[test]
    fn a_local_announce_takes_the_peer_over() {
        let now = Instant::now();
        let mut reg = registry();
        reg.apply(&Record::Join(peer(7001, 2, 0)), now);
        assert_eq!(reg.remote_peer_count(), 1);
        assert_eq!(
            local(&mut reg, 7001, None, now + Duration::from_secs(1)),
            Change::Refreshed
        );
        assert_eq!(origin_of(&reg, 7001), Some(id(1)), "listed as ours");
        assert_eq!(reg.remote_peer_count(), 0);
        // A record naming this tracker as origin is ours too.
        reg.apply(&Record::Join(peer(7002, 1, 0)), now);
        assert_eq!(reg.remote_peer_count(), 0);
    }

    #[test]
    fn removals_only_take_what_is_not_newer() {
        let now = Instant::now();
        let mut reg = registry();
        reg.apply(&Record::Join(peer(7001, 2, 3_000)), now);
        // Left 5 s ago, but announced 3 s ago: stays.
        assert_eq!(
            reg.apply(&Record::Leave(removal(7001, 5_000)), now),
            Applied::Stale
        );
        assert_eq!(
            reg.apply(&Record::Expire(removal(7001, 1_000)), now),
            Applied::Left {
                peer_id: "p7001".into()
            }
        );
        assert_eq!(
            reg.apply(&Record::Leave(removal(7001, 0)), now),
            Applied::Absent
        );
        assert_eq!(reg.peer_count(), 0);
        assert_eq!(reg.remote_peer_count(), 0);
    }

    #[test]
    fn a_leave_is_not_undone_by_an_older_record() {
        let now = Instant::now();
        let mut reg = registry();
        reg.apply(&Record::Join(peer(7001, 2, 2_000)), now);
        reg.apply(&Record::Leave(removal(7001, 1_000)), now);
        // A snapshot taken before the leave arrives late.
        assert_eq!(
            reg.apply(&Record::Join(peer(7001, 3, 1_500)), now),
            Applied::Stale
        );
        // The peer joining again afterwards is news.
        assert_eq!(
            reg.apply(&Record::Join(peer(7001, 3, 500)), now),
            Applied::Joined { seed: false }
        );
        // Local leaves bury too.
        local(&mut reg, 7002, Some(Event::Started), now);
        local(&mut reg, 7002, Some(Event::Stopped), now);
        let late = now + Duration::from_millis(10);
        assert_eq!(
            reg.apply(&Record::Join(peer(7002, 3, 100)), late),
            Applied::Stale
        );
    }

    #[test]
    fn records_older_than_the_ttl_are_stale() {
        let now = Instant::now();
        let mut reg = registry();
        let old = (TTL.as_millis() + 1) as u32;
        assert_eq!(
            reg.apply(&Record::Join(peer(7001, 2, old)), now),
            Applied::Stale
        );
        assert_eq!(
            reg.apply(&Record::Join(peer(7001, 2, u32::MAX)), now),
            Applied::Stale
        );
        assert_eq!(reg.peer_count(), 0);
    }

    #[test]
    fn replicated_peers_expire_like_local_ones() {
        let t0 = Instant::now();
        let mut reg = registry();
        reg.apply(&Record::Join(peer(7001, 2, 0)), t0);
        local(&mut reg, 7002, Some(Event::Started), t0);
        let gone = reg.expire(t0 + TTL + Duration::from_millis(1));
        assert_eq!(gone.len(), 2);
        let remote = gone.iter().find(|d| d.addr == addr(7001)).unwrap();
        assert_eq!(remote.origin, Some(id(2)));
        assert_eq!(reg.remote_peer_count(), 0);
    }

    #[test]
    fn bounds_refuse_what_a_hostile_sender_piles_up() {
        let now = Instant::now();
        let mut reg = registry();
        // Peers of one origin.
        for i in 0..MAX_PEERS_PER_ORIGIN as u32 {
            let mut p = peer(1, 2, 0);
            p.addr = SocketAddr::from(((0x0a00_0000 + i).to_be_bytes(), 1));
            assert_eq!(
                reg.apply(&Record::Join(p), now),
                Applied::Joined { seed: false }
            );
        }
        assert_eq!(
            reg.apply(&Record::Join(peer(9, 2, 0)), now),
            Applied::OverLimit
        );
        // Origins.
        for o in 3..3 + MAX_ORIGINS as u64 - 1 {
            assert!(matches!(
                reg.apply(&Record::Join(peer(o as u16, o, 0)), now),
                Applied::Joined { .. }
            ));
        }
        assert_eq!(
            reg.apply(&Record::Join(peer(1000, 999, 0)), now),
            Applied::OverLimit
        );
        // Moving a known peer to a full origin is refused too.
        assert_eq!(
            reg.apply(
                &Record::Refresh(peer(3, 2, 0)),
                now + Duration::from_millis(5)
            ),
            Applied::OverLimit
        );
        assert_eq!(
            reg.remote_peer_count(),
            MAX_PEERS_PER_ORIGIN + MAX_ORIGINS - 1
        );
        // Swarms.
        let mut other_swarm = peer(1, 2, 0);
        for i in 0..MAX_SWARMS as u32 {
            other_swarm.swarm = InfoHash([0; 20]);
            other_swarm.swarm.0[..4].copy_from_slice(&i.to_be_bytes());
            other_swarm.origin = id(3);
            reg.apply(&Record::Join(other_swarm.clone()), now);
        }
        assert!(reg.swarms.len() <= MAX_SWARMS);
        other_swarm.swarm = InfoHash([9; 20]);
        assert_eq!(
            reg.apply(&Record::Join(other_swarm), now),
            Applied::OverLimit
        );
        // Graves are capped.
        for i in 0..(MAX_GRAVES + 10) as u32 {
            reg.remote.bury(
                InfoHash([1; 20]),
                SocketAddr::from((i.to_be_bytes(), 1)),
                now,
            );
        }
        assert!(reg.remote.graves.len() <= MAX_GRAVES && reg.remote.dug.len() <= MAX_GRAVES);
        reg.remote
            .forget_graves(now + TTL + Duration::from_secs(1), TTL);
        assert!(reg.remote.graves.is_empty() && reg.remote.dug.is_empty());
    }

    #[test]
    fn snapshots_list_everything_with_its_origin() {
        let now = Instant::now();
        let mut reg = registry();
        reg.apply(&Record::Join(peer(7001, 2, 1_000)), now);
        local(&mut reg, 7002, Some(Event::Started), now);
        let mut records = reg.snapshot_records(id(1), now);
        records.sort_by_key(|r| r.key().1);
        let [Record::Join(a), Record::Join(b)] = &records[..] else {
            panic!("{records:?}")
        };
        assert_eq!((a.origin, a.age_ms), (id(2), 1_000));
        assert_eq!((b.origin, b.age_ms), (id(1), 0));
        // Applied to another registry, it converges.
        let mut other = Registry::new(InfoHash::default(), TTL);
        other.set_tracker_id(id(9));
        for r in &records {
            other.apply(r, now);
        }
        assert_eq!(other.peer_count(), 2);
        assert_eq!(origin_of(&other, 7002), Some(id(1)));
    }

    #[test]
    fn replicated_peers_respect_the_registrys_own_bounds() {
        let now = Instant::now();
        let mut reg = registry();
        reg.set_limits(crate::registry::Limits {
            max_peers_per_ip: 2,
            ..Default::default()
        });
        assert!(matches!(
            reg.apply(&Record::Join(peer(1, 2, 0)), now),
            Applied::Joined { .. }
        ));
        local(&mut reg, 2, Some(Event::Started), now);
        // All three at 10.77.0.9: the third is over the per-IP cap.
        assert_eq!(
            reg.apply(&Record::Join(peer(3, 2, 0)), now),
            Applied::OverLimit
        );
        let mut served = registry();
        served.set_limits(crate::registry::Limits {
            only_configured: true,
            ..Default::default()
        });
        let mut elsewhere = peer(1, 2, 0);
        elsewhere.swarm = InfoHash([5; 20]);
        assert_eq!(
            served.apply(&Record::Join(elsewhere), now),
            Applied::OverLimit
        );
        assert_eq!((served.peer_count(), served.swarm_count()), (0, 1));
    }
}

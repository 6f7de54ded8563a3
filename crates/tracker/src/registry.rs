//! The swarm registry: which peers are in which swarm. Sans-IO.
//!
//! A swarm is named by an info hash. Within a swarm a peer is keyed by its
//! listening address (the IP the tracker decided on, plus the announced port),
//! so a peer that reconnects from another source port is still the same peer.
//! Peers live in a `Vec` (for O(1) random choice) with a `HashMap` from
//! address to index (for O(1) lookup); removal is a swap-remove.
//!
//! A peer may carry a name (chat rooms): within a swarm a name belongs to
//! one address at a time, and an announce claiming a name another live peer
//! holds is refused ([`Change::NameTaken`]) and changes nothing.
//!
//! Each peer keeps its list entry pre-rendered as JSON (shared through an
//! [`Arc<str>`]), so answering an announce only copies bytes: no per-reply
//! serialisation of up to 200 entries.
//!
//! [`Registry::snapshot`] copies what a status listing needs (a few words
//! per peer, the peer id shared, not copied) so that the caller can release
//! the lock before sorting and rendering: a big listing never stalls
//! announces.
//!
//! Time comes in as an [`Instant`] argument and randomness as an [`Rng`], so
//! every rule here is unit-tested without sockets or clocks.
//!
//! A peer is either announced here or learned from a replica (its `origin`
//! names the tracker it announced to); [`remote`] merges replicas' records
//! in and lists the registry for snapshots.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use wire::replica::TrackerId;
use wire::tracker::{Event, PeerEntry, StatusPeer, StatusResponse, SwarmStatus};
use wire::InfoHash;

pub mod remote;

pub use remote::Applied;

/// Peers returned when the request names no `numwant`.
pub const DEFAULT_NUMWANT: usize = 50;
/// Most peers returned, whatever `numwant` asks for.
pub const MAX_NUMWANT: usize = 200;

/// One registered peer. Cloning it is a few words and two reference
/// counts (the id and the entry are shared): what a snapshot copies.
#[derive(Clone)]
struct Peer {
    addr: SocketAddr,
    peer_id: Arc<str>,
    proto: Option<u32>,
    /// The name a chat member announced.
    name: Option<Box<str>>,
    seed: bool,
    last_seen: Instant,
    /// Progress as last announced, when the peer says.
    left: Option<u64>,
    downloaded: Option<u64>,
    /// The tracker it announced to, when that is a replica; `None` when here.
    origin: Option<TrackerId>,
    /// This peer's `PeerEntry` as JSON, shared by every reply that lists it.
    entry: Arc<str>,
}

impl Peer {
    /// This peer as a status listing shows it at `now`, on the tracker
    /// `own` (named as the tracker it announced to, unless a replica was).
    fn status(&self, now: Instant, own: Option<TrackerId>) -> StatusPeer {
        let age = now.saturating_duration_since(self.last_seen).as_secs_f64();
        StatusPeer {
            entry: PeerEntry {
                peer_id: self.peer_id.to_string(),
                peer_ip: self.addr.ip().to_string(),
                peer_port: self.addr.port(),
                proto: self.proto,
            },
            seed: self.seed,
            name: self.name.as_deref().map(str::to_string),
            last_seen_secs: (age * 1000.0).round() / 1000.0,
            left: self.left,
            downloaded: self.downloaded,
            tracker: self.origin.or(own),
        }
    }

    fn render(addr: SocketAddr, peer_id: &str, proto: Option<u32>) -> Arc<str> {
        let entry = PeerEntry {
            peer_id: peer_id.to_string(),
            peer_ip: addr.ip().to_string(),
            peer_port: addr.port(),
            proto,
        };
        serde_json::to_string(&entry)
            .expect("a peer entry always serialises")
            .into()
    }
}

/// The peers of one info hash.
#[derive(Default)]
struct Swarm {
    /// Known when the swarm was configured from a torrent file.
    file_name: Option<String>,
    /// Configured swarms stay listed while empty; announced ones are dropped.
    pinned: bool,
    peers: Vec<Peer>,
    index: HashMap<SocketAddr, u32>,
    /// Who holds each name.
    names: HashMap<Box<str>, SocketAddr>,
}

impl Swarm {
    /// Whether `name` is held by a peer other than the one at `addr`.
    fn name_taken(&self, name: &str, addr: SocketAddr) -> bool {
        self.names.get(name).is_some_and(|holder| *holder != addr)
    }

    /// Gives the peer at `addr` the name `new` in the index, releasing `old`.
    fn rename(&mut self, addr: SocketAddr, old: Option<&str>, new: Option<&str>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            if self.names.get(old) == Some(&addr) {
                self.names.remove(old);
            }
        }
        if let Some(new) = new {
            self.names.insert(new.into(), addr);
        }
    }

    fn remove_at(&mut self, i: usize) -> Peer {
        let peer = self.peers.swap_remove(i);
        self.rename(peer.addr, peer.name.as_deref(), None);
        self.index.remove(&peer.addr);
        if let Some(moved) = self.peers.get(i) {
            self.index.insert(moved.addr, i as u32);
        }
        peer
    }
}

/// One announce, already validated and with the peer's address decided.
#[derive(Debug, Clone)]
pub struct Announce<'a> {
    /// `None` means the default swarm.
    pub swarm: Option<InfoHash>,
    /// The address to list: source IP (or trusted `ip` field) and announced port.
    pub addr: SocketAddr,
    pub peer_id: &'a str,
    pub event: Option<Event>,
    pub numwant: Option<u32>,
    pub proto: Option<u32>,
    /// A chat member's name.
    pub name: Option<&'a str>,
    /// Bytes the peer still lacks, when it says.
    pub left: Option<u64>,
    /// Bytes the peer has downloaded, when it says.
    pub downloaded: Option<u64>,
}

/// What an announce changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new peer; `seed` when it announced `completed` straight away.
    Joined { seed: bool },
    /// A known peer refreshed itself.
    Refreshed,
    /// A known leech announced `completed`.
    BecameSeed,
    /// A known peer announced `stopped` and was removed; so does a peer of
    /// the seed's protocol (no `proto`) announcing `completed`, its word for
    /// "I am leaving".
    Left,
    /// `stopped` (or a seed-protocol `completed`) from a peer that was not registered.
    Absent,
    /// Another live peer of the swarm holds the announced name; nothing
    /// changed.
    NameTaken,
}

/// The registry's answer to an announce.
#[derive(Debug)]
pub struct Outcome {
    /// The swarm the announce went to (the default swarm resolved).
    pub swarm: InfoHash,
    pub change: Change,
    /// Whether the peer is a seed now.
    pub seed: bool,
    /// Number of other peers in the swarm.
    pub others: usize,
    /// Up to `numwant` other peers, chosen at random, as JSON entries.
    pub peers: Vec<Arc<str>>,
}

/// A peer that left the registry (by `stopped` or by expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    pub swarm: InfoHash,
    pub peer_id: Arc<str>,
    pub addr: SocketAddr,
    /// When it last announced (to any tracker).
    pub last_seen: Instant,
    /// The replica it announced to; `None` when here.
    pub origin: Option<TrackerId>,
}

/// Every swarm the tracker knows.
pub struct Registry {
    swarms: HashMap<InfoHash, Swarm>,
    default_swarm: InfoHash,
    /// A peer silent for longer than this is dropped (2 × interval).
    ttl: Duration,
    /// Bookkeeping for replicas' peers.
    remote: remote::Remote,
}

impl Registry {
    /// A registry whose default swarm is `default_swarm` (the all-zero hash
    /// when no torrent was given) and whose peers expire after `ttl`.
    pub fn new(default_swarm: InfoHash, ttl: Duration) -> Self {
        let mut registry = Registry {
            swarms: HashMap::new(),
            default_swarm,
            ttl,
            remote: remote::Remote::default(),
        };
        registry.configure_swarm(default_swarm, None);
        registry
    }

    /// The swarm that requests without `info_hash` go to.
    pub fn default_swarm(&self) -> InfoHash {
        self.default_swarm
    }

    /// Declares a swarm from a torrent file: it is listed, with its file name,
    /// even while empty.
    pub fn configure_swarm(&mut self, hash: InfoHash, file_name: Option<String>) {
        let swarm = self.swarms.entry(hash).or_default();
        swarm.pinned = true;
        if file_name.is_some() {
            swarm.file_name = file_name;
        }
    }

    /// Total registered peers over all swarms.
    pub fn peer_count(&self) -> usize {
        self.swarms.values().map(|s| s.peers.len()).sum()
    }

    /// Applies one announce at time `now`.
    pub fn announce<R: Rng + ?Sized>(
        &mut self,
        a: &Announce<'_>,
        now: Instant,
        rng: &mut R,
    ) -> Outcome {
        let key = a.swarm.unwrap_or(self.default_swarm);
        let completed = a.event == Some(Event::Completed);
        if a.event == Some(Event::Stopped) || (completed && a.proto.is_none()) {
            return self.stop(key, a.addr, now);
        }
        if let Some(name) = a.name {
            if self
                .swarms
                .get(&key)
                .is_some_and(|s| s.name_taken(name, a.addr))
            {
                return Outcome {
                    swarm: key,
                    change: Change::NameTaken,
                    seed: false,
                    others: 0,
                    peers: Vec::new(),
                };
            }
        }
        let swarm = self.swarms.entry(key).or_default();
        let (me, change) = match swarm.index.get(&a.addr) {
            Some(&i) => {
                let peer = &mut swarm.peers[i as usize];
                peer.last_seen = now;
                self.remote.release(peer.origin.take());
                if peer.name.as_deref() != a.name {
                    let old = std::mem::replace(&mut peer.name, a.name.map(Into::into));
                    swarm.rename(a.addr, old.as_deref(), a.name);
                }
                let peer = &mut swarm.peers[i as usize];
                // A refresh that leaves the keys out keeps what we knew.
                peer.left = a.left.or(peer.left);
                peer.downloaded = a.downloaded.or(peer.downloaded);
                if *peer.peer_id != *a.peer_id || peer.proto != a.proto {
                    peer.peer_id = a.peer_id.into();
                    peer.proto = a.proto;
                    peer.entry = Peer::render(peer.addr, a.peer_id, a.proto);
                }
                let change = if completed && !peer.seed {
                    peer.seed = true;
                    Change::BecameSeed
                } else {
                    Change::Refreshed
                };
                (i as usize, change)
            }
            None => {
                let i = swarm.peers.len();
                swarm.peers.push(Peer {
                    addr: a.addr,
                    peer_id: a.peer_id.into(),
                    proto: a.proto,
                    name: a.name.map(Into::into),
                    seed: completed,
                    last_seen: now,
                    left: a.left,
                    downloaded: a.downloaded,
                    origin: None,
                    entry: Peer::render(a.addr, a.peer_id, a.proto),
                });
                swarm.index.insert(a.addr, i as u32);
                swarm.rename(a.addr, None, a.name);
                (i, Change::Joined { seed: completed })
            }
        };
        let seed = swarm.peers[me].seed;
        let others = swarm.peers.len() - 1;
        let want = a
            .numwant
            .map_or(DEFAULT_NUMWANT, |n| n as usize)
            .min(MAX_NUMWANT)
            .min(others);
        // Sample among the others: indices past the requester shift by one.
        let peers = rand::seq::index::sample(rng, others, want)
            .into_iter()
            .map(|j| {
                let i = if j >= me { j + 1 } else { j };
                swarm.peers[i].entry.clone()
            })
            .collect();
        Outcome {
            swarm: key,
            change,
            seed,
            others,
            peers,
        }
    }

    fn stop(&mut self, key: InfoHash, addr: SocketAddr, now: Instant) -> Outcome {
        // A snapshot still on its way must not bring the peer back.
        self.remote.bury(key, addr, now);
        let Some(swarm) = self.swarms.get_mut(&key) else {
            return Outcome {
                swarm: key,
                change: Change::Absent,
                seed: false,
                others: 0,
                peers: Vec::new(),
            };
        };
        let change = match swarm.index.get(&addr) {
            Some(&i) => {
                let peer = swarm.remove_at(i as usize);
                self.remote.release(peer.origin);
                Change::Left
            }
            None => Change::Absent,
        };
        let others = swarm.peers.len();
        if others == 0 && !swarm.pinned {
            self.swarms.remove(&key);
        }
        Outcome {
            swarm: key,
            change,
            seed: false,
            others,
            peers: Vec::new(),
        }
    }

    /// The address and `proto` of every peer of `swarm`.
    pub fn addrs(&self, swarm: InfoHash) -> Vec<(SocketAddr, Option<u32>)> {
        self.swarms.get(&swarm).map_or_else(Vec::new, |s| {
            s.peers.iter().map(|p| (p.addr, p.proto)).collect()
        })
    }

    /// Drops every peer not heard from within the TTL before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Departed> {
        let ttl = self.ttl;
        let mut gone = Vec::new();
        for (hash, swarm) in &mut self.swarms {
            let mut i = 0;
            while i < swarm.peers.len() {
                if now.saturating_duration_since(swarm.peers[i].last_seen) > ttl {
                    let peer = swarm.remove_at(i);
                    self.remote.release(peer.origin);
                    gone.push(Departed {
                        swarm: *hash,
                        peer_id: peer.peer_id,
                        addr: peer.addr,
                        last_seen: peer.last_seen,
                        origin: peer.origin,
                    });
                } else {
                    i += 1;
                }
            }
        }
        self.swarms.retain(|_, s| s.pinned || !s.peers.is_empty());
        self.remote.forget_graves(now, ttl);
        gone
    }

    /// Copies what a status listing needs, quickly: call it under the lock
    /// and render the [`Snapshot`] after releasing it.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let swarms = self
            .swarms
            .iter()
            .map(|(hash, swarm)| SwarmSnapshot {
                info_hash: *hash,
                file_name: swarm.file_name.clone(),
                peers: swarm.peers.clone(),
            })
            .collect();
        Snapshot {
            default_swarm: self.default_swarm,
            own: self.remote.id(),
            now,
            swarms,
        }
    }

    /// Every swarm and its peers (see [`Snapshot::into_status`]).
    pub fn status(&self, now: Instant) -> StatusResponse {
        self.snapshot(now).into_status()
    }
}

/// The registry's swarms at one instant, detached from the registry.
pub struct Snapshot {
    default_swarm: InfoHash,
    /// This tracker's replication id, if it replicates.
    own: Option<TrackerId>,
    now: Instant,
    swarms: Vec<SwarmSnapshot>,
}

struct SwarmSnapshot {
    info_hash: InfoHash,
    file_name: Option<String>,
    peers: Vec<Peer>,
}

impl Snapshot {
    /// Peers in the snapshot, over all swarms.
    pub fn peer_count(&self) -> usize {
        self.swarms.iter().map(|s| s.peers.len()).sum()
    }

    /// The status listing (no counters): the default swarm first, then by
    /// info hash; peers by address, then peer id.
    pub fn into_status(mut self) -> StatusResponse {
        let default = self.default_swarm;
        self.swarms
            .sort_unstable_by_key(|s| (s.info_hash != default, s.info_hash));
        let (now, own) = (self.now, self.own);
        let swarms = self
            .swarms
            .into_iter()
            .map(|mut swarm| {
                swarm
                    .peers
                    .sort_unstable_by(|a, b| (a.addr, &a.peer_id).cmp(&(b.addr, &b.peer_id)));
                SwarmStatus {
                    info_hash: swarm.info_hash.to_hex(),
                    file_name: swarm.file_name,
                    peers: swarm.peers.iter().map(|p| p.status(now, own)).collect(),
                }
            })
            .collect();
        StatusResponse {
            swarms,
            rooms: Vec::new(),
            replicas: Vec::new(),
            stats: None,
            replication: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashSet;

    const TTL: Duration = Duration::from_secs(120);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn req(port: u16, event: Option<Event>) -> Announce<'static> {
        Announce {
            swarm: None,
            addr: addr(port),
            peer_id: "p",
            event,
            numwant: None,
            proto: None,
            name: None,
            left: None,
            downloaded: None,
        }
    }

    fn entry_port(entry: &str) -> u16 {
        serde_json::from_str::<PeerEntry>(entry).unwrap().peer_port
    }

    /// A registry with no torrent, a seeded RNG and a start time.
    fn setup(seed: u64) -> (Registry, StdRng, Instant) {
        (
            Registry::new(InfoHash::default(), TTL),
            StdRng::seed_from_u64(seed),
            Instant::now(),
        )
    }

    fn fill(reg: &mut Registry, n: u16, now: Instant, rng: &mut StdRng) {
        for port in 1..=n {
            reg.announce(&req(port, Some(Event::Started)), now, rng);
        }
    }

    #[test]
    fn numwant_default_max_and_bounds() {
        let (mut reg, mut rng, now) = setup(1);
        fill(&mut reg, 300, now, &mut rng);
        let mut r = req(1, None);
        assert_eq!(reg.announce(&r, now, &mut rng).peers.len(), DEFAULT_NUMWANT);
        r.numwant = Some(1000);
        let out = reg.announce(&r, now, &mut rng);
        assert_eq!(out.peers.len(), MAX_NUMWANT);
        assert_eq!(out.others, 299);
        r.numwant = Some(0);
        assert!(reg.announce(&r, now, &mut rng).peers.is_empty());
        r.numwant = Some(7);
        assert_eq!(reg.announce(&r, now, &mut rng).peers.len(), 7);
    }

    #[test]
    fn never_the_requester_and_no_duplicates() {
        let (mut reg, mut rng, now) = setup(2);
        fill(&mut reg, 60, now, &mut rng);
        for me in 1..=60u16 {
            let mut r = req(me, None);
            r.numwant = Some(200);
            let out = reg.announce(&r, now, &mut rng);
            let ports: Vec<u16> = out.peers.iter().map(|e| entry_port(e)).collect();
            assert_eq!(ports.len(), 59);
            assert!(!ports.contains(&me), "requester {me} listed");
            assert_eq!(ports.iter().collect::<HashSet<_>>().len(), 59);
        }
        // A lone peer gets nobody.
        let mut lone = Registry::new(InfoHash::default(), TTL);
        let out = lone.announce(&req(9, Some(Event::Started)), now, &mut rng);
        assert_eq!(out.others, 0);
        assert!(out.peers.is_empty());
        assert_eq!(out.change, Change::Joined { seed: false });
    }

    #[test]
    fn selection_is_random() {
        let (mut reg, mut rng, now) = setup(3);
        fill(&mut reg, 100, now, &mut rng);
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let mut r = req(1, None);
            r.numwant = Some(5);
            for e in reg.announce(&r, now, &mut rng).peers {
                seen.insert(entry_port(&e));
            }
        }
        assert!(
            seen.len() > 30,
            "only {} distinct peers offered",
            seen.len()
        );
    }

    #[test]
    fn expiry_after_ttl() {
        let (mut reg, mut rng, t0) = setup(4);
        reg.announce(&req(1, Some(Event::Started)), t0, &mut rng);
        reg.announce(&req(2, Some(Event::Started)), t0, &mut rng);
        // Peer 2 refreshes later, so it outlives peer 1.
        reg.announce(&req(2, None), t0 + TTL / 2, &mut rng);
        assert!(
            reg.expire(t0 + TTL).is_empty(),
            "expired at exactly the TTL"
        );
        let gone = reg.expire(t0 + TTL + Duration::from_millis(1));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].addr, addr(1));
        assert_eq!(reg.peer_count(), 1);
        let gone = reg.expire(t0 + TTL * 2);
        assert_eq!(gone[0].addr, addr(2));
        assert_eq!(reg.peer_count(), 0);
    }

    #[test]
    fn completed_marks_a_seed_and_keeps_it_listed() {
        let (mut reg, mut rng, now) = setup(5);
        let ours = |port, event| Announce {
            proto: Some(1),
            ..req(port, event)
        };
        reg.announce(&ours(1, Some(Event::Started)), now, &mut rng);
        let out = reg.announce(&ours(1, Some(Event::Completed)), now, &mut rng);
        assert_eq!(out.change, Change::BecameSeed);
        let again = reg.announce(&ours(1, Some(Event::Completed)), now, &mut rng);
        assert_eq!(again.change, Change::Refreshed);
        let status = reg.status(now);
        assert_eq!(status.swarms[0].peers.len(), 1);
        assert!(status.swarms[0].peers[0].seed);
        let direct = reg.announce(&ours(2, Some(Event::Completed)), now, &mut rng);
        assert_eq!(direct.change, Change::Joined { seed: true });
        let listed = reg.announce(&req(3, None), now, &mut rng);
        assert_eq!(listed.others, 2);
    }

    #[test]
    fn completed_without_proto_means_leaving() {
        let (mut reg, mut rng, now) = setup(9);
        fill(&mut reg, 2, now, &mut rng);
        // The seed's peers (no proto) say `completed` when they quit.
        let out = reg.announce(&req(1, Some(Event::Completed)), now, &mut rng);
        assert_eq!(out.change, Change::Left);
        assert_eq!(reg.peer_count(), 1);
        // Ours (proto 1) keep meaning "now a seed".
        let mut ours = req(2, Some(Event::Completed));
        ours.proto = Some(1);
        assert_eq!(
            reg.announce(&ours, now, &mut rng).change,
            Change::BecameSeed
        );
    }

    #[test]
    fn stopped_removes_the_peer() {
        let (mut reg, mut rng, now) = setup(6);
        fill(&mut reg, 3, now, &mut rng);
        let out = reg.announce(&req(2, Some(Event::Stopped)), now, &mut rng);
        assert_eq!(out.change, Change::Left);
        assert_eq!(out.others, 2);
        assert!(out.peers.is_empty());
        let again = reg.announce(&req(2, Some(Event::Stopped)), now, &mut rng);
        assert_eq!(again.change, Change::Absent);
        // The swap-remove kept the index right: every remaining peer is found.
        for port in [1, 3] {
            let r = reg.announce(&req(port, None), now, &mut rng);
            assert_eq!(r.change, Change::Refreshed);
            assert_eq!(r.others, 1);
        }
    }

    #[test]
    fn swarms_are_separate_and_default_swarm_is_configurable() {
        let mut rng = StdRng::seed_from_u64(7);
        let torrent = InfoHash([7; 20]);
        let other = InfoHash([9; 20]);
        let mut reg = Registry::new(torrent, TTL);
        reg.configure_swarm(torrent, Some("movie.mkv".into()));
        let now = Instant::now();
        // No info_hash: the default swarm, which is the torrent's.
        reg.announce(&req(1, Some(Event::Started)), now, &mut rng);
        let mut named = req(2, Some(Event::Started));
        named.swarm = Some(torrent);
        assert_eq!(reg.announce(&named, now, &mut rng).others, 1);
        let mut elsewhere = req(3, Some(Event::Started));
        elsewhere.swarm = Some(other);
        let out = reg.announce(&elsewhere, now, &mut rng);
        assert_eq!(out.others, 0);
        assert_eq!(out.swarm, other);
        let status = reg.status(now);
        assert_eq!(status.swarms.len(), 2);
        assert_eq!(status.swarms[0].info_hash, torrent.to_hex());
        assert_eq!(status.swarms[0].file_name.as_deref(), Some("movie.mkv"));
        assert_eq!(status.swarms[1].file_name, None);
        // An announced swarm disappears when its last peer leaves; the configured one stays.
        elsewhere.event = Some(Event::Stopped);
        reg.announce(&elsewhere, now, &mut rng);
        reg.announce(&req(1, Some(Event::Stopped)), now, &mut rng);
        named.event = Some(Event::Stopped);
        reg.announce(&named, now, &mut rng);
        let status = reg.status(now);
        assert_eq!(status.swarms.len(), 1);
        assert!(status.swarms[0].peers.is_empty());
    }

    #[test]
    fn progress_is_kept_per_peer_and_listed() {
        let (mut reg, mut rng, now) = setup(9);
        let mut a = req(1, Some(Event::Started));
        a.left = Some(1000);
        a.downloaded = Some(0);
        reg.announce(&a, now, &mut rng);
        reg.announce(&req(2, Some(Event::Started)), now, &mut rng);
        a.event = None;
        a.left = Some(400);
        a.downloaded = Some(600);
        reg.announce(&a, now, &mut rng);
        // A refresh without the keys keeps the last figures.
        reg.announce(&req(1, None), now, &mut rng);
        let peers = &reg.status(now).swarms[0].peers;
        assert_eq!((peers[0].left, peers[0].downloaded), (Some(400), Some(600)));
        assert_eq!((peers[1].left, peers[1].downloaded), (None, None));
    }

    #[test]
    fn snapshot_outlives_changes_and_sorts_when_rendered() {
        let (mut reg, mut rng, t0) = setup(10);
        let other = InfoHash([1; 20]);
        for port in [9, 3, 7] {
            let mut a = req(port, Some(Event::Started));
            a.swarm = Some(other);
            reg.announce(&a, t0, &mut rng);
        }
        reg.announce(&req(5, Some(Event::Started)), t0, &mut rng);
        let snap = reg.snapshot(t0 + Duration::from_millis(1500));
        // The registry moves on; the snapshot does not.
        reg.announce(&req(5, Some(Event::Stopped)), t0, &mut rng);
        assert_eq!(snap.peer_count(), 4);
        let status = snap.into_status();
        assert_eq!(status.swarms[0].info_hash, InfoHash::default().to_hex());
        assert_eq!(status.swarms[0].peers[0].entry.peer_port, 5);
        assert_eq!(status.swarms[0].peers[0].last_seen_secs, 1.5);
        let ports: Vec<u16> = status.swarms[1]
            .peers
            .iter()
            .map(|p| p.entry.peer_port)
            .collect();
        assert_eq!(ports, [3, 7, 9]);
        assert!(reg.status(t0).swarms[0].peers.is_empty());
    }

    #[test]
    fn entries_carry_proto_and_follow_peer_id_changes() {
        let (mut reg, mut rng, now) = setup(8);
        let mut a = req(1, Some(Event::Started));
        a.proto = Some(1);
        reg.announce(&a, now, &mut rng);
        let mut b = req(2, Some(Event::Started));
        b.peer_id = "old";
        reg.announce(&b, now, &mut rng);
        b.peer_id = "new";
        reg.announce(&b, now, &mut rng);
        let out = reg.announce(&req(3, None), now, &mut rng);
        let mut entries: Vec<PeerEntry> = out
            .peers
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        entries.sort_by_key(|e| e.peer_port);
        assert_eq!(entries[0].proto, Some(1));
        assert_eq!(entries[1].proto, None);
        assert_eq!(entries[1].peer_id, "new");
        assert_eq!(entries[1].peer_ip, "127.0.0.1");
    }

    #[test]
    fn a_name_belongs_to_one_live_peer_of_a_swarm() {
        let (mut reg, mut rng, t0) = setup(9);
        let named = |port, name| Announce {
            name: Some(name),
            ..req(port, Some(Event::Started))
        };
        assert_eq!(
            reg.announce(&named(1, "ann"), t0, &mut rng).change,
            Change::Joined { seed: false }
        );
        // Another address may not take it, and nothing changes.
        let taken = reg.announce(&named(2, "ann"), t0, &mut rng);
        assert_eq!(taken.change, Change::NameTaken);
        assert_eq!(reg.peer_count(), 1);
        // The holder refreshes with it; another room may use it.
        assert_eq!(
            reg.announce(&named(1, "ann"), t0, &mut rng).change,
            Change::Refreshed
        );
        let mut elsewhere = named(2, "ann");
        elsewhere.swarm = Some(InfoHash([3; 20]));
        assert!(matches!(
            reg.announce(&elsewhere, t0, &mut rng).change,
            Change::Joined { .. }
        ));
        // A rename frees the old name.
        reg.announce(&named(1, "anna"), t0, &mut rng);
        assert!(matches!(
            reg.announce(&named(3, "ann"), t0, &mut rng).change,
            Change::Joined { .. }
        ));
        // Leaving, or expiring, frees a name too.
        reg.announce(&req(3, Some(Event::Stopped)), t0, &mut rng);
        assert!(matches!(
            reg.announce(&named(4, "ann"), t0, &mut rng).change,
            Change::Joined { .. }
        ));
        reg.expire(t0 + TTL * 2);
        assert!(matches!(
            reg.announce(&named(5, "anna"), t0 + TTL * 2, &mut rng)
                .change,
            Change::Joined { .. }
        ));
        let status = reg.status(t0 + TTL * 2);
        let names: Vec<_> = status.swarms[0]
            .peers
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(names, [Some("anna".to_string())]);
    }
}

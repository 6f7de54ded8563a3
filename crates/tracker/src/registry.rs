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
//!
//! **Bounds.** Every peer added, announced here or replicated, is first
//! admitted by [`limits`]: swarms and peers in all and per IP, and with
//! `--only-torrents` only configured swarms ([`Change::Refused`]).
//!
//! **Ownership.** An entry is changed or removed only by a request carrying
//! its peer id (the address and port are its key): a `stopped` or an
//! announce for the same address under another id is refused
//! ([`Refusal::AddressHeld`]) and changes nothing, unless the entry has been
//! silent for [`Registry::takeover_after`] (three quarters of the TTL: it
//! missed a refresh), so that a peer restarted under a new id is not locked
//! out until expiry.
//!
//! **Status.** A listing holds at most [`MAX_STATUS_PEERS`] peers and
//! [`MAX_STATUS_SWARMS`] swarms (the default swarm first, then configured
//! ones, then by size), with the totals, so that it stays small whatever the
//! registry holds; only the listed peers are copied under the lock.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use wire::replica::TrackerId;
use wire::tracker::{Event, PeerEntry, StatusPeer, StatusResponse, StatusTotals, SwarmStatus};
use wire::InfoHash;

pub mod limits;
pub mod remote;

pub use limits::{IpUsage, Limits, Refusal};
pub use remote::Applied;

use limits::{Placement, Usage};

/// Most peers one status listing holds.
pub const MAX_STATUS_PEERS: usize = 5_000;
/// Most swarms one status listing holds.
pub const MAX_STATUS_SWARMS: usize = 1_000;

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
    /// Peers per IP in this swarm (for the per-IP swarm count).
    by_ip: HashMap<IpAddr, u32>,
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

    /// Whether `ip` has no peer here yet.
    fn new_ip(&self, ip: IpAddr) -> bool {
        !self.by_ip.contains_key(&ip)
    }

    /// Adds a peer (not yet held); its index, and whether it is its IP's
    /// first here.
    fn push(&mut self, peer: Peer) -> (usize, bool) {
        let i = self.peers.len();
        let count = self.by_ip.entry(peer.addr.ip()).or_insert(0);
        *count += 1;
        let first = *count == 1;
        self.index.insert(peer.addr, i as u32);
        let name = peer.name.clone();
        let addr = peer.addr;
        self.peers.push(peer);
        self.rename(addr, None, name.as_deref());
        (i, first)
    }

    /// Removes the peer at `i`; it, and whether it was its IP's last here.
    fn remove_at(&mut self, i: usize) -> (Peer, bool) {
        let peer = self.peers.swap_remove(i);
        self.rename(peer.addr, peer.name.as_deref(), None);
        self.index.remove(&peer.addr);
        if let Some(moved) = self.peers.get(i) {
            self.index.insert(moved.addr, i as u32);
        }
        let ip = peer.addr.ip();
        let last = match self.by_ip.get_mut(&ip) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.by_ip.remove(&ip);
                true
            }
        };
        (peer, last)
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
    /// Refused by a bound, the allow-list, or because another peer id holds
    /// the address; nothing changed.
    Refused(Refusal),
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
    limits: Limits,
    usage: Usage,
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
            limits: Limits::default(),
            usage: Usage::default(),
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

    /// Sets the bounds on what announces and replicas' records may add
    /// (what is held already stays).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Total registered peers over all swarms.
    pub fn peer_count(&self) -> usize {
        self.usage.peers()
    }

    /// Swarms held (configured ones included).
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Peers listed at `ip`, and the swarms they are in.
    pub fn ip_usage(&self, ip: IpAddr) -> IpUsage {
        self.usage.ip(ip)
    }

    /// How long an entry must be silent before another peer id may take its
    /// address over: three quarters of the TTL (it missed a refresh).
    pub fn takeover_after(&self) -> Duration {
        self.ttl * 3 / 4
    }

    /// Admits a new peer at `addr` into `key`, or says why not.
    fn admit(&self, key: InfoHash, addr: SocketAddr) -> Result<(), Refusal> {
        let swarm = self.swarms.get(&key);
        let at = Placement {
            new_swarm: swarm.is_none(),
            configured: swarm.is_some_and(|s| s.pinned),
            new_ip_in_swarm: match swarm {
                Some(s) => s.new_ip(addr.ip()),
                None => true,
            },
        };
        self.usage
            .admit(&self.limits, addr.ip(), at, self.swarms.len())
    }

    /// Removes the peer at `i` of `key`'s swarm, keeping the counts, and
    /// drops the swarm when it empties (unless configured).
    fn remove_peer(&mut self, key: InfoHash, i: usize) -> Peer {
        let swarm = self
            .swarms
            .get_mut(&key)
            .expect("the caller found the peer");
        let (peer, last) = swarm.remove_at(i);
        if swarm.peers.is_empty() && !swarm.pinned {
            self.swarms.remove(&key);
        }
        self.usage.removed(peer.addr.ip(), last);
        self.remote.release(peer.origin);
        peer
    }

    /// Adds a peer (admitted already) to `key`'s swarm; its index.
    fn add_peer(&mut self, key: InfoHash, peer: Peer) -> usize {
        let ip = peer.addr.ip();
        let (i, first) = self.swarms.entry(key).or_default().push(peer);
        self.usage.added(ip, first);
        i
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
        let nothing = |change| Outcome {
            swarm: key,
            change,
            seed: false,
            others: 0,
            peers: Vec::new(),
        };
        let held = self
            .swarms
            .get(&key)
            .and_then(|s| s.index.get(&a.addr).map(|&i| &s.peers[i as usize]));
        // Another peer id's entry: refused, unless it went silent.
        let takeover = match held {
            Some(p) if *p.peer_id != *a.peer_id => {
                if now.saturating_duration_since(p.last_seen) <= self.takeover_after() {
                    return nothing(Change::Refused(Refusal::AddressHeld));
                }
                true
            }
            _ => false,
        };
        if a.event == Some(Event::Stopped) || (completed && a.proto.is_none()) {
            return self.stop(key, a.addr, now);
        }
        if let Some(name) = a.name {
            if self
                .swarms
                .get(&key)
                .is_some_and(|s| s.name_taken(name, a.addr))
            {
                return nothing(Change::NameTaken);
            }
        }
        let found = self.swarms.get(&key).and_then(|s| s.index.get(&a.addr));
        let (me, change) = match found {
            Some(&i) => {
                let swarm = self.swarms.get_mut(&key).expect("found above");
                let peer = &mut swarm.peers[i as usize];
                peer.last_seen = now;
                self.remote.release(peer.origin.take());
                if peer.name.as_deref() != a.name {
                    let old = std::mem::replace(&mut peer.name, a.name.map(Into::into));
                    swarm.rename(a.addr, old.as_deref(), a.name);
                }
                let peer = &mut swarm.peers[i as usize];
                if takeover {
                    // A new peer at a silent one's address: nothing carries over.
                    peer.seed = false;
                    peer.left = None;
                    peer.downloaded = None;
                }
                // A refresh that leaves the keys out keeps what we knew.
                peer.left = a.left.or(peer.left);
                peer.downloaded = a.downloaded.or(peer.downloaded);
                if *peer.peer_id != *a.peer_id || peer.proto != a.proto {
                    peer.peer_id = a.peer_id.into();
                    peer.proto = a.proto;
                    peer.entry = Peer::render(peer.addr, a.peer_id, a.proto);
                }
                let change = if takeover {
                    peer.seed = completed;
                    Change::Joined { seed: completed }
                } else if completed && !peer.seed {
                    peer.seed = true;
                    Change::BecameSeed
                } else {
                    Change::Refreshed
                };
                (i as usize, change)
            }
            None => {
                if let Err(refusal) = self.admit(key, a.addr) {
                    return nothing(Change::Refused(refusal));
                }
                let i = self.add_peer(
                    key,
                    Peer {
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
                    },
                );
                (i, Change::Joined { seed: completed })
            }
        };
        let swarm = &self.swarms[&key];
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
        let found = self
            .swarms
            .get(&key)
            .and_then(|s| s.index.get(&addr).copied());
        let change = match found {
            Some(i) => {
                self.remove_peer(key, i as usize);
                Change::Left
            }
            None => Change::Absent,
        };
        let others = self.swarms.get(&key).map_or(0, |s| s.peers.len());
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
                    let (peer, last) = swarm.remove_at(i);
                    self.usage.removed(peer.addr.ip(), last);
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
    /// and render the [`Snapshot`] after releasing it. At most
    /// [`MAX_STATUS_SWARMS`] swarms and [`MAX_STATUS_PEERS`] peers are
    /// copied: the default swarm, configured swarms, then the largest.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        self.snapshot_within(now, MAX_STATUS_SWARMS, MAX_STATUS_PEERS)
    }

    /// [`Registry::snapshot`] with other bounds.
    pub fn snapshot_within(&self, now: Instant, max_swarms: usize, max_peers: usize) -> Snapshot {
        let default = self.default_swarm;
        let mut order: Vec<_> = self
            .swarms
            .iter()
            .map(|(hash, s)| (*hash != default, !s.pinned, Reverse(s.peers.len()), *hash))
            .collect();
        let keep = order.len().min(max_swarms);
        if keep < order.len() {
            order.select_nth_unstable(keep);
            order.truncate(keep);
        }
        let mut budget = max_peers;
        order.sort_unstable();
        let mut swarms = Vec::with_capacity(order.len());
        for (.., hash) in order {
            let swarm = &self.swarms[&hash];
            let n = swarm.peers.len().min(budget);
            if n == 0 && !swarm.peers.is_empty() {
                break;
            }
            budget -= n;
            swarms.push(SwarmSnapshot {
                info_hash: hash,
                file_name: swarm.file_name.clone(),
                peers: swarm.peers[..n].to_vec(),
            });
        }
        let listed: usize = swarms.iter().map(|s| s.peers.len()).sum();
        let totals = StatusTotals {
            swarms: self.swarms.len() as u64,
            peers: self.usage.peers() as u64,
            truncated: swarms.len() < self.swarms.len() || listed < self.usage.peers(),
        };
        Snapshot {
            default_swarm: self.default_swarm,
            own: self.remote.id(),
            now,
            swarms,
            totals,
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
    totals: StatusTotals,
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
    /// info hash; peers by address, then peer id; with the registry's totals.
    pub fn into_status(mut self) -> StatusResponse {
        let default = self.default_swarm;
        self.swarms
            .sort_unstable_by_key(|s| (s.info_hash != default, s.info_hash));
        let (now, own, totals) = (self.now, self.own, self.totals);
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
            totals: Some(totals),
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
        // Another id takes the address over only once the holder is silent.
        b.peer_id = "new";
        let later = now + reg.takeover_after() + Duration::from_millis(1);
        reg.announce(&b, later, &mut rng);
        let out = reg.announce(&req(3, None), later, &mut rng);
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

    #[test]
    fn only_the_peer_id_holding_an_address_changes_or_removes_it() {
        let (mut reg, mut rng, t0) = setup(11);
        let mut victim = req(1, Some(Event::Started));
        victim.peer_id = "victim";
        victim.proto = Some(1);
        reg.announce(&victim, t0, &mut rng);
        // Same address and port, another id: a stop, a re-announce, a
        // seed-protocol `completed`, all refused.
        for event in [Some(Event::Stopped), None, Some(Event::Started)] {
            let mut spoof = req(1, event);
            spoof.peer_id = "spoofer";
            assert_eq!(
                reg.announce(&spoof, t0, &mut rng).change,
                Change::Refused(Refusal::AddressHeld)
            );
        }
        let mut leave = req(1, Some(Event::Completed));
        leave.peer_id = "spoofer";
        assert_eq!(
            reg.announce(&leave, t0, &mut rng).change,
            Change::Refused(Refusal::AddressHeld)
        );
        let listed = reg.status(t0);
        assert_eq!(listed.swarms[0].peers[0].entry.peer_id, "victim");
        assert_eq!(listed.swarms[0].peers[0].entry.proto, Some(1));
        // The holder itself still refreshes and leaves.
        victim.event = None;
        assert_eq!(
            reg.announce(&victim, t0, &mut rng).change,
            Change::Refreshed
        );
        victim.event = Some(Event::Stopped);
        assert_eq!(reg.announce(&victim, t0, &mut rng).change, Change::Left);
    }

    #[test]
    fn a_silent_entry_may_be_taken_over_by_a_new_id() {
        let (mut reg, mut rng, t0) = setup(12);
        let mut old = req(1, Some(Event::Completed));
        old.peer_id = "before-restart";
        old.proto = Some(1);
        reg.announce(&old, t0, &mut rng);
        let mut new = req(1, Some(Event::Started));
        new.peer_id = "after-restart";
        let soon = t0 + reg.takeover_after();
        assert!(matches!(
            reg.announce(&new, soon, &mut rng).change,
            Change::Refused(_)
        ));
        let later = soon + Duration::from_millis(1);
        assert_eq!(
            reg.announce(&new, later, &mut rng).change,
            Change::Joined { seed: false }
        );
        let peer = &reg.status(later).swarms[0].peers[0];
        assert_eq!(
            (peer.entry.peer_id.as_str(), peer.seed),
            ("after-restart", false)
        );
        assert_eq!(reg.peer_count(), 1);
    }

    fn at(ip: u8, port: u16, swarm: u8) -> Announce<'static> {
        Announce {
            addr: SocketAddr::from(([127, 0, 1, ip], port)),
            swarm: Some(InfoHash([swarm; 20])),
            ..req(port, Some(Event::Started))
        }
    }

    #[test]
    fn bounds_hold_for_announces_and_free_up_on_leave_and_expiry() {
        let (mut reg, mut rng, t0) = setup(13);
        reg.set_limits(Limits {
            max_swarms: 5,
            max_peers: 8,
            max_peers_per_ip: 3,
            max_swarms_per_ip: 2,
            only_configured: false,
        });
        let refused = |reg: &mut Registry, a: &Announce<'_>, rng: &mut StdRng| match reg
            .announce(a, t0, rng)
            .change
        {
            Change::Refused(why) => Some(why),
            _ => None,
        };
        // One IP: two swarms, three peers.
        assert_eq!(refused(&mut reg, &at(1, 1, 1), &mut rng), None);
        assert_eq!(refused(&mut reg, &at(1, 2, 2), &mut rng), None);
        assert!(matches!(
            refused(&mut reg, &at(1, 3, 3), &mut rng),
            Some(Refusal::SwarmsPerIp { max: 2, .. })
        ));
        assert_eq!(refused(&mut reg, &at(1, 3, 2), &mut rng), None);
        assert!(matches!(
            refused(&mut reg, &at(1, 4, 2), &mut rng),
            Some(Refusal::PeersPerIp { max: 3, .. })
        ));
        assert_eq!(
            reg.ip_usage(IpAddr::from([127, 0, 1, 1])),
            IpUsage {
                peers: 3,
                swarms: 2
            }
        );
        // Swarms in all (the default swarm counts: 1 + 4 = 5).
        assert_eq!(refused(&mut reg, &at(2, 1, 3), &mut rng), None);
        assert_eq!(refused(&mut reg, &at(3, 1, 4), &mut rng), None);
        assert_eq!(
            refused(&mut reg, &at(4, 1, 5), &mut rng),
            Some(Refusal::TooManySwarms(5))
        );
        // Peers in all.
        for ip in 5..8 {
            assert_eq!(refused(&mut reg, &at(ip, 1, 1), &mut rng), None);
        }
        assert_eq!(reg.peer_count(), 8);
        assert_eq!(
            refused(&mut reg, &at(9, 1, 1), &mut rng),
            Some(Refusal::TooManyPeers(8))
        );
        // A leave frees a place; so does expiry.
        let mut bye = at(5, 1, 1);
        bye.event = Some(Event::Stopped);
        reg.announce(&bye, t0, &mut rng);
        assert_eq!(refused(&mut reg, &at(9, 1, 1), &mut rng), None);
        reg.expire(t0 + TTL * 2);
        assert_eq!((reg.peer_count(), reg.swarm_count()), (0, 1));
        assert_eq!(
            reg.ip_usage(IpAddr::from([127, 0, 1, 1])),
            IpUsage::default()
        );
        assert_eq!(refused(&mut reg, &at(1, 4, 4), &mut rng), None);
    }

    #[test]
    fn only_configured_swarms_take_peers_when_asked() {
        let mut rng = StdRng::seed_from_u64(14);
        let served = InfoHash([7; 20]);
        let mut reg = Registry::new(served, TTL);
        reg.configure_swarm(served, Some("f".into()));
        reg.set_limits(Limits {
            only_configured: true,
            ..Limits::default()
        });
        let now = Instant::now();
        assert!(matches!(
            reg.announce(&req(1, None), now, &mut rng).change,
            Change::Joined { .. }
        ));
        assert_eq!(
            reg.announce(&at(1, 1, 9), now, &mut rng).change,
            Change::Refused(Refusal::NotServed)
        );
        assert_eq!(reg.swarm_count(), 1);
    }

    #[test]
    fn a_status_listing_is_bounded_and_says_so() {
        let (mut reg, mut rng, now) = setup(15);
        for swarm in 1..=20u8 {
            for port in 1..=u16::from(swarm) {
                reg.announce(&at(1, port + 100 * u16::from(swarm), swarm), now, &mut rng);
            }
        }
        reg.announce(&req(1, Some(Event::Started)), now, &mut rng);
        let total = reg.peer_count();
        let status = reg.snapshot_within(now, 5, 30).into_status();
        let totals = status.totals.unwrap();
        assert_eq!((totals.swarms, totals.peers), (21, total as u64));
        assert!(totals.truncated);
        // The default swarm first, then the largest until the peers run out.
        assert_eq!(status.swarms[0].info_hash, InfoHash::default().to_hex());
        let mut sizes: Vec<usize> = status.swarms.iter().map(|s| s.peers.len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [1, 9, 20]);
        let few = reg.snapshot_within(now, 5, 1000).into_status();
        assert_eq!(few.swarms.len(), 5);
        let whole = reg.snapshot_within(now, 100, 10_000).into_status();
        assert!(!whole.totals.unwrap().truncated);
    }
}

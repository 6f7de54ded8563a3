//! The state shared by all connections of one torrent: which pieces we
//! have, the piece picker, the choker, the connected peers with their
//! counters and strikes, their admission (caps, bans, dials: kept by
//! [`crate::admission`]), and the operations on them.
//!
//! The state is private. Connection drivers (`peer_conn`) own their
//! sockets and their [`wire::Connection`], and tell the swarm what happened
//! through methods named for it: a peer's bitfield or Have, a piece arrived,
//! verified or failed, a connection closed. The swarm answers through the
//! [`wire::Connection`] it is handed (requests, interest) and through
//! [`Command`]s over unbounded channels whose volume is bounded by the piece
//! count (and, for [`Command::Evict`], by one ask per connection every
//! half second). The piece lifecycle and the lock order are in `STATE.md` beside
//! this file. The session ([`crate::session`]) runs the background tasks
//! around it, and dials the peers the swarm says to dial.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::tracker::{AnnounceRequest, Event, PeerEntry};
use wire::{
    BanReason, Bitfield, Config as ConnConfig, Connection, Disconnect, InfoHash, PeerId, Timeouts,
    Torrent,
};

use crate::admission::{Admission, Culprit, Full};
use crate::choker::{Candidate, Choker};
use crate::chunks::{self, ChunkPool};
use crate::events::{Done, Event as PeerEvent, OtherPeers, PeerSummary, SwarmDone};
use crate::output::{human_bytes, Output};
use crate::picker::Picker;
use crate::receive::Receiver;
use crate::storage::Storage;
use crate::superseed::{Offer, SuperSeed};

pub use crate::admission::MAX_PEERS;
/// Bytes we aim to keep requested from one peer (sets the pipeline depth).
const IN_FLIGHT_BYTES: u64 = 16 * 1024 * 1024;
/// Requests in flight over all peers, in bytes (bounds a leecher's memory).
const GLOBAL_IN_FLIGHT_BYTES: u64 = 24 * 1024 * 1024;
/// Bad pieces after which a peer is banned.
const STRIKES_TO_BAN: u32 = 2;
/// A connection is asked whether it is of use at most this often.
const EVICT_ASK_EVERY: Duration = Duration::from_millis(500);
/// Requests timed out (of a peer that delivers, slowly) after which its
/// connection is dropped.
const TIMEOUTS_TO_DROP: u32 = 3;
/// How long a peer that let our requests time out is not redialed, after
/// its first such strike; it doubles with each strike, up to the maximum.
const STALL_BACKOFF: Duration = Duration::from_secs(30);
const MAX_STALL_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// Addresses whose strikes we remember (the oldest backoffs go first).
const MAX_STALL_RECORDS: usize = 1024;
/// Peers whose figures we keep one by one; beyond it the least useful
/// disconnected ones are folded into totals.
const MAX_PEER_RECORDS: usize = 1024;
/// Peers a summary (`done`, `stopped`, the human one) lists one by one.
pub const SUMMARY_PEERS: usize = 16;

/// Engine → connection task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// We verified a piece: announce it, cancel it if in flight, request more.
    Have(u32),
    Choke,
    Unchoke,
    /// Pieces may have become requestable (a peer left): try to request.
    Refill,
    /// Send Close and end the connection, for this reason.
    Close(Disconnect),
    /// Super-seeding: tell the peer we have this piece (it may request it).
    Offer(u32),
    /// The slots are full: close with [`Disconnect::Evicted`] if the
    /// connection is of no use ([`wire::Connection::is_useless`]).
    Evict,
}

/// Per-peer byte counters, shared by a peer's connections over time.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes of verified pieces received from the peer.
    pub downloaded: AtomicU64,
    /// Bytes of pieces sent to the peer.
    pub uploaded: AtomicU64,
}

struct ConnEntry {
    peer_id: Option<PeerId>,
    addr: SocketAddr,
    outgoing: bool,
    /// Told to close (a duplicate): its slot is as good as free.
    closing: bool,
    /// When it was last asked whether it is of use (see [`Command::Evict`]).
    evict_asked: Option<Instant>,
    cmd: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    interested: bool,
    unchoked: bool,
    last_down: u64,
    last_up: u64,
    /// Requests of ours that timed out on this connection.
    timeouts: u32,
}

struct PeerRecord {
    addr: SocketAddr,
    peer_id: Option<PeerId>,
    counters: Arc<Counters>,
    /// When a connection of this peer was last admitted.
    seen: Instant,
}

impl PeerRecord {
    fn figures(&self) -> (u64, u64) {
        (
            self.counters.downloaded.load(Ordering::Relaxed),
            self.counters.uploaded.load(Ordering::Relaxed),
        )
    }
}

/// An address that let our requests time out: how often, and until when
/// it is not redialed.
struct Stall {
    strikes: u32,
    until: Instant,
}

/// Mutable swarm state, behind [`Swarm::state`]; private to this module.
struct State {
    have: Bitfield,
    picker: Picker,
    choker: Choker,
    conns: HashMap<u64, ConnEntry>,
    /// Addresses we dialed, from the dial until the connection ends.
    dialing: HashSet<SocketAddr>,
    /// Caps, openings, bans, the dial queue and redial backoff.
    admission: Admission<CancellationToken>,
    /// Bad pieces per [`Culprit`] (what its connection proved, not its id).
    strikes: HashMap<String, u32>,
    /// Bounded by `MAX_PEER_RECORDS`; the evicted are in `forgotten`.
    peers: HashMap<String, PeerRecord>,
    forgotten: OtherPeers,
    /// Bounded by `MAX_STALL_RECORDS`.
    stalls: HashMap<SocketAddr, Stall>,
    downloaded: u64,
    done_at: Option<Instant>,
    /// Super-seeding, when on: which piece is offered to whom.
    superseed: Option<SuperSeed>,
}

/// How one request for a piece ended (see `STATE.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestEnd {
    /// The piece passed its hash: nobody needs to ask for it any more.
    Verified,
    /// The piece arrived but failed its hash (or could not be stored).
    Failed,
    /// The request went away without a piece: choke, cancel, refusal, or
    /// the connection closed.
    Withdrawn,
}

impl State {
    /// Whether connection `id` is super-seeded (offered pieces one at a time).
    fn super_seeded(&self, id: u64) -> bool {
        self.superseed.as_ref().is_some_and(|s| s.tracks(id))
    }

    /// Sends super-seeding offers to their connections.
    fn send_offers(&self, offers: Vec<Offer>) {
        for (id, index) in offers {
            if let Some(c) = self.conns.get(&id) {
                let _ = c.cmd.send(Command::Offer(index));
            }
        }
    }

    /// Feeds the super-seeder what `update` does for connection `id`, and
    /// sends the offers that follow.
    fn super_seed_update(
        &mut self,
        id: u64,
        update: impl FnOnce(&mut SuperSeed, u64) -> Vec<Offer>,
    ) {
        if let Some(ss) = self.superseed.as_mut() {
            let offers = update(ss, id);
            self.send_offers(offers);
        }
    }

    /// Whether we hold, or are dialing, a connection to the listener at
    /// `addr`, or one from its IP under the id `claimed` (it dialed us).
    fn is_connected_to(&self, addr: SocketAddr, claimed: Option<PeerId>) -> bool {
        self.dialing.contains(&addr)
            || self.conns.values().any(|e| {
                (e.outgoing && e.addr == addr)
                    || (claimed.is_some() && e.peer_id == claimed && e.addr.ip() == addr.ip())
            })
    }

    /// The one place where a piece stops being requested. Until this is
    /// called, the picker counts the piece as requested, so nobody else is
    /// asked for it, also while it is being verified.
    fn request_ended(&mut self, index: u32, end: RequestEnd) {
        match end {
            RequestEnd::Verified => self.picker.completed(index),
            RequestEnd::Failed | RequestEnd::Withdrawn => self.picker.release(index),
        }
    }

    /// Makes room for a new peer record: past `MAX_PEER_RECORDS`, the
    /// records of disconnected peers that gave and took the least (the
    /// oldest first among equals) are folded into `forgotten`, down to
    /// three quarters of the bound, so the cost is spread over many admissions.
    fn make_room_for_a_peer(&mut self) {
        if self.peers.len() < MAX_PEER_RECORDS {
            return;
        }
        let mut idle: Vec<(u64, Instant, String)> = self
            .peers
            .iter()
            .filter(|(_, r)| Arc::strong_count(&r.counters) == 1)
            .map(|(k, r)| {
                let (down, up) = r.figures();
                (down.saturating_add(up), r.seen, k.clone())
            })
            .collect();
        idle.sort_unstable();
        let excess = self.peers.len() + 1 - MAX_PEER_RECORDS * 3 / 4;
        for (_, _, key) in idle.into_iter().take(excess) {
            if let Some(r) = self.peers.remove(&key) {
                let (down, up) = r.figures();
                self.forgotten.add(down, up);
            }
        }
    }

    /// The top `SUMMARY_PEERS` peers by bytes exchanged, and the rest as totals.
    fn peer_summary(&self) -> (Vec<PeerSummary>, OtherPeers) {
        let mut peers: Vec<(u64, &PeerRecord)> = self
            .peers
            .values()
            .map(|p| {
                let (down, up) = p.figures();
                (down.saturating_add(up), p)
            })
            .collect();
        peers.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.addr.cmp(&b.1.addr)));
        let mut others = self.forgotten.clone();
        for (_, p) in peers.iter().skip(SUMMARY_PEERS) {
            let (down, up) = p.figures();
            others.add(down, up);
        }
        peers.truncate(SUMMARY_PEERS);
        peers.sort_by_key(|(_, p)| p.addr);
        let top = peers
            .iter()
            .map(|(_, p)| {
                let (downloaded, uploaded) = p.figures();
                PeerSummary {
                    addr: p.addr.to_string(),
                    peer_id: p.peer_id.map(|id| id.to_hex()),
                    downloaded,
                    uploaded,
                }
            })
            .collect();
        (top, others)
    }

    /// A strike against `addr` for letting requests time out, at `now`:
    /// how many it has, and how long it is not redialed.
    fn stall_strike(&mut self, addr: SocketAddr, now: Instant) -> (u32, Duration) {
        if !self.stalls.contains_key(&addr) && self.stalls.len() >= MAX_STALL_RECORDS {
            self.stalls.retain(|_, s| s.until > now);
            if self.stalls.len() >= MAX_STALL_RECORDS {
                if let Some(oldest) = self.stalls.iter().min_by_key(|(_, s)| s.until) {
                    let oldest = *oldest.0;
                    self.stalls.remove(&oldest);
                }
            }
        }
        let stall = self.stalls.entry(addr).or_insert(Stall {
            strikes: 0,
            until: now,
        });
        stall.strikes = stall.strikes.saturating_add(1);
        let wait = STALL_BACKOFF
            .saturating_mul(1 << (stall.strikes - 1).min(16))
            .min(MAX_STALL_BACKOFF);
        stall.until = now + wait;
        (stall.strikes, wait)
    }

    /// Whether `addr` is backing off at `now`.
    fn backing_off(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.stalls.get(addr).is_some_and(|s| s.until > now)
    }
}

/// Who a connection is, for the tasks that serve it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub id: u64,
    /// The peer id in hex, or `legacy@ADDR`: what counters follow.
    pub identity: String,
    pub addr: SocketAddr,
    pub outgoing: bool,
    pub counters: Arc<Counters>,
}

/// What a connection gets when it joins the swarm.
pub struct Registration {
    pub conn: ConnInfo,
    pub commands: mpsc::UnboundedReceiver<Command>,
}

/// A received piece on its way through verification. The piece stays
/// requested until the receive pool settles it with [`Swarm::piece_verified`],
/// [`Swarm::piece_failed`] or [`Swarm::piece_unusable`].
#[derive(Debug)]
#[must_use = "an arrival must be settled, or its piece stays requested"]
pub struct Arrival {
    index: u32,
    /// Whether it answers a request of ours that still counts (not a late
    /// piece whose request was already withdrawn).
    requested: bool,
}

impl Arrival {
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// One torrent's swarm.
pub struct Swarm {
    pub torrent: Torrent,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub storage: Storage,
    pub out: Output,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    pub listen_addr: SocketAddr,
    /// Requests kept in flight per (non-legacy) peer.
    pub request_depth: usize,
    /// Exit once complete instead of seeding on.
    pub exit_when_done: bool,
    /// Hashes and stores received pieces as they stream in, within a byte budget.
    pub receiver: Receiver,
    state: Mutex<State>,
    completed: Notify,
    /// A connection left: a newcomer waiting for a slot may try again.
    slot_freed: Notify,
    start: Instant,
    next_id: AtomicU64,
    uploaded_total: AtomicU64,
}

/// A fresh random peer id: "-LS0100-" and 12 random bytes.
pub fn new_peer_id() -> PeerId {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(b"-LS0100-");
    rand::Rng::fill(&mut rand::rng(), &mut id[8..]);
    PeerId(id)
}

impl Swarm {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn piece_count(&self) -> u32 {
        self.torrent.info.piece_count()
    }

    /// Largest frame a peer may send us: a whole piece or bitfield plus headers.
    pub fn max_frame(&self) -> usize {
        (self
            .torrent
            .info
            .piece_length
            .max(self.piece_count() as u64)
            + 64) as usize
    }

    pub fn has_piece(&self, index: u32) -> bool {
        self.lock().have.has(index)
    }

    pub fn is_complete(&self) -> bool {
        self.lock().have.is_complete()
    }

    pub fn have_snapshot(&self) -> Bitfield {
        self.lock().have.clone()
    }

    /// The settings every [`Connection`] of this swarm starts with.
    pub fn conn_config(&self) -> ConnConfig {
        ConnConfig {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            piece_count: self.piece_count(),
            timeouts: Timeouts::default(),
        }
    }

    /// We sent a piece of `bytes` bytes to the peer with `counters`.
    pub fn piece_uploaded(&self, counters: &Counters, bytes: u64) {
        counters.uploaded.fetch_add(bytes, Ordering::Relaxed);
        self.uploaded_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A connection from (or, `outgoing`, to) `addr` starts opening: its
    /// id, and a token cancelled if it must make way for newer openings (see
    /// [`Admission::opening_started`]). Only connections made to us count
    /// among the openings: our own dials are bounded where they start
    /// ([`Swarm::next_dial`]). End it with [`Swarm::opening_ended`].
    pub fn opening_started(&self, addr: SocketAddr, outgoing: bool) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stop = CancellationToken::new();
        if outgoing {
            return (id, stop);
        }
        let evicted = self
            .lock()
            .admission
            .opening_started(id, addr.ip(), stop.clone());
        for old in evicted {
            old.cancel();
        }
        (id, stop)
    }

    /// Connection `id` (from [`Swarm::opening_started`]) is open or gone.
    pub fn opening_ended(&self, id: u64) {
        self.lock().admission.opening_ended(id);
    }

    /// Whether connection `ticket` has a place in the line for a slot (a
    /// full line refuses newcomers rather than let them wait unbounded).
    pub fn is_waiting(&self, ticket: u64) -> bool {
        self.lock().admission.is_waiting(ticket)
    }

    /// Connection `ticket` no longer waits for a slot.
    pub fn stop_waiting(&self, ticket: u64) {
        self.lock().admission.stop_waiting(ticket);
    }

    /// Whether a connection with `addr` (`outgoing` if we dialed) is banned.
    pub fn is_banned(&self, addr: SocketAddr, outgoing: bool) -> bool {
        self.lock().admission.is_banned(addr, outgoing)
    }

    /// Notified when a connection leaves the swarm (a slot may be free).
    pub fn slot_freed(&self) -> &Notify {
        &self.slot_freed
    }

    /// Admits a connection that completed its handshake, or says why not.
    ///
    /// A claimed peer id proves nothing, so duplicates are told by facts: a
    /// connection claiming the id of one we hold *from the same IP* in the
    /// other direction is a simultaneous dial, settled by a rule both ends
    /// agree on (keep the one initiated by the smaller id); in the same
    /// direction the established one stays. The same id from another IP is
    /// another host: it is judged on its own and never displaces anyone.
    ///
    /// When the address or the swarm is full, the connections that could
    /// give way are asked whether they are of use ([`Command::Evict`]), and
    /// the caller may try again once [`Swarm::slot_freed`] fires.
    pub fn register(
        &self,
        addr: SocketAddr,
        peer_id: Option<PeerId>,
        outgoing: bool,
    ) -> Result<Registration, Disconnect> {
        self.register_in_turn(crate::admission::NO_TICKET, addr, peer_id, outgoing)
    }

    /// [`Swarm::register`] for connection `ticket` (its opening id), which
    /// waits its turn for a slot behind older ones (see
    /// [`Admission::slot_in_turn`]) until admitted or [`Swarm::stop_waiting`].
    pub fn register_in_turn(
        &self,
        ticket: u64,
        addr: SocketAddr,
        peer_id: Option<PeerId>,
        outgoing: bool,
    ) -> Result<Registration, Disconnect> {
        let mut st = self.lock();
        if st.admission.is_banned(addr, outgoing) {
            return Err(Disconnect::BannedPeer);
        }
        let mut replaced = None;
        if let Some(pid) = peer_id {
            let same = st
                .conns
                .iter_mut()
                .find(|(_, e)| !e.closing && e.peer_id == Some(pid) && e.addr.ip() == addr.ip());
            if let Some((&old, e)) = same {
                if e.outgoing == outgoing {
                    return Err(Disconnect::Duplicate);
                }
                let initiator = |out: bool| if out { self.peer_id } else { pid };
                if initiator(e.outgoing) <= initiator(outgoing) {
                    return Err(Disconnect::Duplicate);
                }
                e.closing = true;
                let _ = e.cmd.send(Command::Close(Disconnect::Duplicate));
                replaced = Some(old);
            }
        }
        // The cap per address is on connections a host makes to us; those
        // we dial (from a bounded list, see `offer_dial`) count in the total.
        let live = st.conns.values().filter(|e| !e.closing);
        let (of_ip, total) = live.fold((0, 0), |(i, t), e| {
            (
                i + usize::from(!e.outgoing && e.addr.ip() == addr.ip()),
                t + 1,
            )
        });
        let of_ip = if outgoing { 0 } else { of_ip };
        if let Err(full) = st.admission.slot_in_turn(ticket, addr.ip(), of_ip, total) {
            let now = Instant::now();
            for e in st.conns.values_mut() {
                let candidate = match full {
                    Full::Address(ip) => !e.outgoing && e.addr.ip() == ip,
                    Full::Total => true,
                };
                let asked_lately = e
                    .evict_asked
                    .is_some_and(|t| now.duration_since(t) < EVICT_ASK_EVERY);
                if candidate && !e.closing && !asked_lately {
                    e.evict_asked = Some(now);
                    let _ = e.cmd.send(Command::Evict);
                }
            }
            return Err(match full {
                Full::Address(ip) => Disconnect::TooManyFromAddress(ip),
                Full::Total => Disconnect::TooManyPeers,
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let identity = match peer_id {
            Some(pid) => pid.to_hex(),
            None => format!("legacy@{addr}"),
        };
        if !st.peers.contains_key(&identity) {
            st.make_room_for_a_peer();
        }
        let now = Instant::now();
        let record = st
            .peers
            .entry(identity.clone())
            .or_insert_with(|| PeerRecord {
                addr,
                peer_id,
                counters: Arc::default(),
                seen: now,
            });
        record.seen = now;
        if outgoing {
            record.addr = addr;
        }
        let counters = record.counters.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        st.conns.insert(
            id,
            ConnEntry {
                peer_id,
                addr,
                outgoing,
                closing: false,
                evict_asked: None,
                cmd: tx,
                counters: counters.clone(),
                interested: false,
                unchoked: false,
                last_down: counters.downloaded.load(Ordering::Relaxed),
                last_up: counters.uploaded.load(Ordering::Relaxed),
                timeouts: 0,
            },
        );
        if peer_id.is_some() {
            // Peers of our protocol know Have: they get offers, not our
            // bitfield (a replacing connection takes over the old one's).
            if let Some(ss) = st.superseed.as_mut() {
                let offers = ss.join(id, replaced);
                st.send_offers(offers);
            }
        }
        Ok(Registration {
            conn: ConnInfo {
                id,
                identity,
                addr,
                outgoing,
                counters,
            },
            commands: rx,
        })
    }

    /// A connection closed: it leaves the swarm. `remote` is what the peer
    /// had (for availability) and `in_flight` the requests it leaves behind.
    pub fn connection_closed(&self, id: u64, remote: &Bitfield, in_flight: &[u32]) {
        let mut st = self.lock();
        if st.conns.remove(&id).is_none() {
            return;
        }
        self.slot_freed.notify_waiters();
        st.picker.peer_gone(remote);
        if let Some(ss) = st.superseed.as_mut() {
            let offers = ss.leave(id);
            st.send_offers(offers);
        }
        for &i in in_flight {
            st.request_ended(i, RequestEnd::Withdrawn);
        }
        if !in_flight.is_empty() {
            for c in st.conns.values() {
                let _ = c.cmd.send(Command::Refill);
            }
        }
    }

    /// A peer sent its bitfield (replacing `previous`): availability, and
    /// whether we are interested in it.
    pub fn peer_bitfield(&self, id: u64, conn: &mut Connection, previous: &Bitfield) {
        let mut st = self.lock();
        st.picker.peer_bitfield(previous, conn.remote());
        conn.update_interest(&st.have);
        st.super_seed_update(id, |ss, id| ss.bitfield(id, conn.remote()));
    }

    /// A peer announced piece `index`: availability, and our interest if we
    /// lack it.
    pub fn peer_have(&self, id: u64, conn: &mut Connection, index: u32) {
        let mut st = self.lock();
        st.picker.peer_have(index, conn.remote().is_complete());
        if !st.have.has(index) {
            conn.set_interested(true);
        }
        st.super_seed_update(id, |ss, id| ss.have(id, index));
    }

    /// Requests of ours ended without their pieces (the peer choked us, or
    /// we cancelled them): the pieces may be asked for elsewhere.
    pub fn requests_withdrawn(&self, pieces: &[u32]) {
        if pieces.is_empty() {
            return;
        }
        let mut st = self.lock();
        for &i in pieces {
            st.request_ended(i, RequestEnd::Withdrawn);
        }
    }

    /// Requests pieces from `conn` at `now` until `depth` are in flight
    /// (within the global budget that bounds a leecher's memory), and keeps
    /// our interest true to what the peer has. `trusted`: the peer has
    /// delivered (see [`crate::picker::Pipeline::trusted`]); only then does
    /// it get end-game duplicates.
    pub fn request_pieces(&self, conn: &mut Connection, depth: usize, now: Instant, trusted: bool) {
        if !conn.am_interested() {
            return;
        }
        let piece_length = self.torrent.info.piece_length.max(1);
        let global_max = (GLOBAL_IN_FLIGHT_BYTES / piece_length).max(2) as usize;
        let mut guard = self.lock();
        let st = &mut *guard;
        while conn.request_room(depth) > 0 {
            // Every peer may keep one request going; beyond that, respect
            // the global budget.
            if !conn.in_flight().is_empty() && st.picker.total_requested() >= global_max {
                break;
            }
            let Some(index) = st
                .picker
                .pick(&st.have, conn.remote(), conn.in_flight(), trusted)
            else {
                break;
            };
            if conn.request(index, now).is_err() {
                st.request_ended(index, RequestEnd::Withdrawn);
                break;
            }
        }
        if conn.in_flight().is_empty() {
            conn.update_interest(&st.have);
        }
    }

    /// Piece `index` arrived (`requested`: as an answer to a request of
    /// ours that still counts). It stays requested while it is verified.
    /// Until its copy is settled, no one is asked for it again (not even
    /// in the end-game): its data is on its way.
    pub fn piece_arrived(&self, index: u32, requested: bool) -> Arrival {
        self.lock().picker.arrival_started(index);
        Arrival { index, requested }
    }

    /// The remote's interest changed. Returns true when it should be
    /// unchoked right away (a free upload slot).
    pub fn peer_interest(&self, id: u64, interested: bool) -> bool {
        let mut st = self.lock();
        // A super-seeded peer can take only what it is offered: always unchoked.
        let free_slot = st.super_seeded(id)
            || st.conns.values().filter(|c| c.unchoked).count() < st.choker.capacity();
        let Some(entry) = st.conns.get_mut(&id) else {
            return false;
        };
        entry.interested = interested;
        if interested && !entry.unchoked && free_slot {
            entry.unchoked = true;
            return true;
        }
        false
    }

    /// A piece from `conn` failed its hash check: it is wanted again, and
    /// counts against the peer; the second such piece bans it. Returns
    /// whether the peer is now banned (and its connection told to close).
    pub fn piece_failed(&self, arrival: Arrival, conn: &ConnInfo) -> bool {
        let index = arrival.index;
        let banned = {
            let mut st = self.lock();
            st.picker.arrival_ended(index);
            if arrival.requested {
                st.request_ended(index, RequestEnd::Failed);
            }
            // The address that sent the data is struck, not the id it claimed.
            let culprit = Culprit::of(conn.addr, conn.outgoing);
            let strikes = st.strikes.entry(culprit.to_string()).or_default();
            *strikes += 1;
            let strikes = *strikes;
            if strikes >= STRIKES_TO_BAN {
                st.admission.ban(culprit);
                Some(BanReason::BadPieces(strikes))
            } else {
                None
            }
        };
        let addr = conn.addr.to_string();
        tracing::warn!("{addr}: piece {index} failed its hash check");
        self.out.emit(&PeerEvent::PieceFailed {
            addr: addr.clone(),
            piece: index,
        });
        match banned {
            Some(reason) => {
                self.out.emit(&PeerEvent::PeerBanned {
                    addr,
                    reason: reason.to_string(),
                });
                self.command(conn.id, Command::Close(Disconnect::Banned(reason)));
                true
            }
            None => {
                // Ask the connection to request more (the piece is wanted again).
                self.command(conn.id, Command::Refill);
                false
            }
        }
    }

    /// Our request for `index` on `conn` passed its deadline, although the
    /// peer delivers (slowly): the piece may be asked elsewhere, and the
    /// peer has a strike; at `TIMEOUTS_TO_DROP` its connection is told to
    /// close. Returns whether it was.
    pub fn request_timed_out(&self, conn: &ConnInfo, index: u32) -> bool {
        let timeouts = {
            let mut st = self.lock();
            st.request_ended(index, RequestEnd::Withdrawn);
            for c in st.conns.values() {
                let _ = c.cmd.send(Command::Refill);
            }
            st.conns.get_mut(&conn.id).map(|c| {
                c.timeouts += 1;
                c.timeouts
            })
        };
        let addr = conn.addr.to_string();
        tracing::info!("{addr}: request for piece {index} timed out");
        self.out
            .emit(&PeerEvent::RequestTimedOut { addr, piece: index });
        match timeouts {
            Some(n) if n >= TIMEOUTS_TO_DROP => {
                self.close_connection(conn.id, Disconnect::RequestsTimedOut(n));
                true
            }
            _ => false,
        }
    }

    /// `conn` closed because it let our requests time out (`reason`): a
    /// strike, and a peer we dialed is not dialed again before its backoff
    /// is over.
    pub fn peer_stalled(&self, conn: &ConnInfo, reason: &Disconnect) {
        let (strikes, wait) = if conn.outgoing {
            self.lock().stall_strike(conn.addr, Instant::now())
        } else {
            (1, Duration::ZERO)
        };
        let addr = conn.addr.to_string();
        tracing::info!(
            "{addr}: {reason}; not redialed for {}s (strike {strikes})",
            wait.as_secs()
        );
        self.out.emit(&PeerEvent::PeerBackedOff {
            addr,
            reason: reason.to_string(),
            strikes,
            retry_secs: wait.as_secs_f64(),
        });
    }

    /// A piece that arrived will not be verified (it could not be stored,
    /// it was cut off, or another copy was being received): it is wanted again.
    pub fn piece_unusable(&self, arrival: Arrival) {
        let mut st = self.lock();
        st.picker.arrival_ended(arrival.index);
        if arrival.requested {
            st.request_ended(arrival.index, RequestEnd::Failed);
        }
    }

    /// Asks connection `id` to close, for `reason`.
    pub fn close_connection(&self, id: u64, reason: Disconnect) {
        self.command(id, Command::Close(reason));
    }

    /// Sends `cmd` to connection `id`, if it is still there.
    fn command(&self, id: u64, cmd: Command) {
        if let Some(c) = self.lock().conns.get(&id) {
            let _ = c.cmd.send(cmd);
        }
    }

    /// A piece passed its hash and was written. Tells every connection.
    pub fn piece_verified(&self, arrival: Arrival, counters: &Counters) {
        let index = arrival.index;
        let len = self.torrent.info.piece_size(index);
        let complete = {
            let mut st = self.lock();
            st.picker.arrival_ended(index);
            if !st.have.set(index, true) {
                return;
            }
            st.request_ended(index, RequestEnd::Verified);
            st.downloaded += len;
            counters.downloaded.fetch_add(len, Ordering::Relaxed);
            for c in st.conns.values() {
                let _ = c.cmd.send(Command::Have(index));
            }
            st.have.is_complete()
        };
        if complete {
            self.download_complete();
        }
    }

    pub(crate) fn download_complete(&self) {
        let summary = {
            let mut st = self.lock();
            if st.done_at.is_some() {
                return;
            }
            st.done_at = Some(Instant::now());
            st.peer_summary()
        };
        let seconds = self.start.elapsed().as_secs_f64();
        let bytes = self.lock().downloaded;
        let (peers, others) = summary;
        self.out.emit(&PeerEvent::Done(Done::Swarm(SwarmDone {
            seconds,
            bytes,
            peers,
            others,
        })));
        self.out.finish();
        if let Err(e) = self.storage.save_resume(&self.have_snapshot()) {
            tracing::warn!("cannot write resume file: {e}");
        }
        if bytes > 0 {
            self.say_summary("download complete", seconds, bytes);
        }
        if !self.exit_when_done {
            self.out.say(&format!(
                "seeding {} on {} (Ctrl-C to stop)",
                self.torrent.info.file_name, self.listen_addr
            ));
        }
        self.completed.notify_one();
    }

    pub(crate) fn say_summary(&self, what: &str, seconds: f64, bytes: u64) {
        if self.out.is_json() {
            return;
        }
        let rate = bytes as f64 / seconds.max(1e-9);
        let mut text = format!(
            "{what}: {} in {seconds:.2}s ({}/s), {} uploaded",
            human_bytes(bytes),
            human_bytes(rate as u64),
            human_bytes(self.uploaded_total.load(Ordering::Relaxed))
        );
        let (peers, others) = self.lock().peer_summary();
        for p in peers {
            text.push_str(&format!(
                "\n  {:<22} received {:>10}   sent {:>10}",
                p.addr,
                human_bytes(p.downloaded),
                human_bytes(p.uploaded),
            ));
        }
        if others.peers > 0 {
            text.push_str(&format!(
                "\n  and {} other peers: received {}, sent {}",
                others.peers,
                human_bytes(others.downloaded),
                human_bytes(others.uploaded),
            ));
        }
        self.out.say(&text);
    }

    /// Offers a peer from the tracker's list (or heard on the LAN) for
    /// dialing: not if it is us, banned, backing off, already connected or
    /// being dialed. Dials start with [`Swarm::next_dial`].
    pub fn offer_dial(&self, entry: &PeerEntry) -> bool {
        if entry.peer_id == self.peer_id.to_hex() {
            return false;
        }
        let Ok(ip) = entry.peer_ip.parse::<IpAddr>() else {
            tracing::debug!(
                "tracker listed a peer with a bad address {:?}",
                entry.peer_ip
            );
            return false;
        };
        let addr = SocketAddr::new(ip, entry.peer_port);
        let legacy = entry.proto.is_none();
        let claimed = entry.peer_id.parse::<PeerId>().ok();
        let mut st = self.lock();
        if st.is_connected_to(addr, claimed) || st.backing_off(&addr, Instant::now()) {
            return false;
        }
        st.admission.offer_dial(addr, legacy, Instant::now())
    }

    /// The next offered peer to dial, if a dial is free (at most
    /// [`crate::admission::MAX_DIALS`] connecting) and the swarm has room
    /// (connections and dials under [`MAX_PEERS`]). Returns its address,
    /// whether it speaks the original protocol, and the dials now
    /// connecting. It counts as connecting until [`Swarm::connect_ended`],
    /// and as dialed until [`Swarm::dial_ended`].
    pub fn next_dial(&self) -> Option<(SocketAddr, bool, usize)> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let room = st.conns.len() + st.admission.connecting() < MAX_PEERS;
        let (conns, dialing, stalls) = (&st.conns, &st.dialing, &st.stalls);
        let now = Instant::now();
        let (addr, legacy) = st.admission.next_dial(room, now, |a| {
            dialing.contains(&a)
                || conns.values().any(|e| e.outgoing && e.addr == a)
                || stalls.get(&a).is_some_and(|s| s.until > now)
        })?;
        st.dialing.insert(addr);
        Some((addr, legacy, st.admission.connecting()))
    }

    /// The TCP connect of a dial is over, connected or not.
    pub fn connect_ended(&self) {
        self.lock().admission.connect_ended();
    }

    /// A dial of `addr` (from [`Swarm::next_dial`]) is over, after a
    /// connection of `lasted` (zero if none): a lasting one clears its backoff.
    pub fn dial_ended(&self, addr: SocketAddr, lasted: Duration) {
        let mut st = self.lock();
        st.dialing.remove(&addr);
        st.admission.dial_ended(addr, lasted);
    }

    pub(crate) fn announce_request(
        &self,
        event: Option<Event>,
        announce_ip: Option<std::net::Ipv4Addr>,
    ) -> AnnounceRequest {
        let (left, downloaded) = {
            let st = self.lock();
            let left = crate::tracker_client::bytes_left(&self.torrent.info, &st.have);
            (left, st.downloaded)
        };
        AnnounceRequest {
            port: self.listen_addr.port(),
            ip: announce_ip,
            peer_id: self.peer_id.to_hex(),
            event,
            info_hash: Some(self.info_hash),
            numwant: Some(crate::admission::NUMWANT as u32),
            proto: Some(1),
            left: Some(left),
            downloaded: Some(downloaded),
        }
    }
}

/// Per-tick figures for progress reports.
pub struct ProgressSnapshot {
    pub have: u32,
    pub downloaded: u64,
    pub peers: usize,
    pub done: bool,
}

impl Swarm {
    /// A swarm for `torrent` whose data file is `storage`, holding `have`.
    pub fn new(
        torrent: Torrent,
        storage: Storage,
        have: Bitfield,
        out: Output,
        listen_addr: SocketAddr,
        upload_slots: usize,
        exit_when_done: bool,
    ) -> Swarm {
        let piece_count = torrent.info.piece_count();
        Swarm {
            info_hash: torrent.info_hash(),
            peer_id: new_peer_id(),
            storage,
            out,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            listen_addr,
            request_depth: (IN_FLIGHT_BYTES / torrent.info.piece_length.max(1)).clamp(2, 32)
                as usize,
            exit_when_done,
            receiver: Receiver::new(
                ChunkPool::new(chunks::BUDGET, chunks::CHUNK),
                Receiver::threads_for_cores(),
            ),
            state: Mutex::new(State {
                have,
                picker: Picker::new(piece_count),
                choker: Choker::new(upload_slots),
                conns: HashMap::new(),
                dialing: HashSet::new(),
                admission: Admission::default(),
                strikes: HashMap::new(),
                peers: HashMap::new(),
                forgotten: OtherPeers::default(),
                stalls: HashMap::new(),
                downloaded: 0,
                done_at: None,
                superseed: None,
            }),
            completed: Notify::new(),
            slot_freed: Notify::new(),
            start: Instant::now(),
            next_id: AtomicU64::new(1),
            uploaded_total: AtomicU64::new(0),
            torrent,
        }
    }

    /// Turns super-seeding on (see [`crate::superseed`]), with `window`
    /// unspread offers per peer. Only a complete swarm, before any peer
    /// connects, can super-seed; returns whether it does.
    pub fn super_seed(&mut self, window: usize) -> bool {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !st.have.is_complete() || !st.conns.is_empty() {
            return false;
        }
        st.superseed = Some(SuperSeed::new(st.have.len(), window));
        true
    }

    /// The bitfield to open connection `id` with: ours, or an empty one for
    /// a super-seeded peer (it is offered pieces one by one instead).
    pub fn bitfield_for(&self, id: u64) -> Bitfield {
        let st = self.lock();
        if st.super_seeded(id) {
            Bitfield::new(st.have.len())
        } else {
            st.have.clone()
        }
    }

    /// Time since the swarm started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Bytes sent to all peers.
    pub fn uploaded(&self) -> u64 {
        self.uploaded_total.load(Ordering::Relaxed)
    }

    /// Resolves once the download completes (immediately if it already did
    /// and nobody has waited since).
    pub async fn download_completed(&self) {
        self.completed.notified().await
    }

    /// Asks every connection to close, for `reason`.
    pub fn close_all(&self, reason: Disconnect) {
        for c in self.lock().conns.values() {
            let _ = c.cmd.send(Command::Close(reason.clone()));
        }
    }

    /// The figures a progress report shows.
    pub fn progress(&self) -> ProgressSnapshot {
        let st = self.lock();
        ProgressSnapshot {
            have: st.have.count(),
            downloaded: st.downloaded,
            peers: st.conns.len(),
            done: st.done_at.is_some(),
        }
    }

    /// The final report: bytes downloaded this session, the top peers'
    /// figures and the others' totals.
    pub fn summary(&self) -> (u64, Vec<PeerSummary>, OtherPeers) {
        let st = self.lock();
        let (peers, others) = st.peer_summary();
        (st.downloaded, peers, others)
    }

    /// One choking round: rates over the last `secs` seconds, then the
    /// choker's choice, sent as Choke/Unchoke to the connections that change.
    pub fn choke_round(&self, secs: f64) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let seeding = st.have.is_complete();
        let mut candidates = Vec::with_capacity(st.conns.len());
        for (&id, c) in st.conns.iter_mut() {
            let down = c.counters.downloaded.load(Ordering::Relaxed);
            let up = c.counters.uploaded.load(Ordering::Relaxed);
            let delta = if seeding {
                up - c.last_up
            } else {
                down - c.last_down
            };
            c.last_down = down;
            c.last_up = up;
            if st.superseed.as_ref().is_some_and(|s| s.tracks(id)) {
                continue;
            }
            candidates.push(Candidate {
                id,
                interested: c.interested,
                rate: delta as f64 / secs,
            });
        }
        let unchoke = st.choker.round(&candidates);
        let superseed = st.superseed.as_ref();
        for (id, c) in st.conns.iter_mut() {
            // A super-seeded peer stays unchoked: it can take only what it
            // is offered, and a choke would void the requests it has made.
            let want = unchoke.contains(id) || superseed.is_some_and(|s| s.tracks(*id));
            if want != c.unchoked {
                c.unchoked = want;
                let _ = c.cmd.send(if want {
                    Command::Unchoke
                } else {
                    Command::Choke
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use wire::{ConnEvent, Info, Message, Role};

    use super::*;
    use crate::hashing;

    const PIECE: u64 = 4;

    /// A leeching swarm for a file of `pieces` pieces of 4 bytes, none held.
    fn leecher(pieces: u32) -> (tempfile::TempDir, Swarm) {
        swarm_of(pieces, false)
    }

    /// A swarm for a file of `pieces` pieces of 4 bytes, all held if `seeding`.
    fn swarm_of(pieces: u32, seeding: bool) -> (tempfile::TempDir, Swarm) {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..pieces as u64 * PIECE).map(|i| i as u8).collect();
        if seeding {
            std::fs::write(dir.path().join("data.bin"), &data).unwrap();
        }
        let info = Info {
            piece_length: PIECE,
            piece_hash: data.chunks(PIECE as usize).map(hashing::sha1).collect(),
            file_name: "data.bin".into(),
            file_length: data.len() as u64,
            files: None,
        };
        let torrent = Torrent {
            announce: "127.0.0.1".into(),
            port: 6666,
            announce_list: Vec::new(),
            comment: String::new(),
            info,
        };
        let (storage, have, _) =
            Storage::open(dir.path(), &torrent.info, torrent.info_hash(), |_| {}).unwrap();
        let out = Output::new(false, data.len() as u64);
        let addr = "127.0.0.1:1".parse().unwrap();
        (dir, Swarm::new(torrent, storage, have, out, addr, 4, false))
    }

    /// A registered, open connection from peer `n` of our protocol.
    fn open_conn(swarm: &Swarm, n: u8) -> (Connection, Registration) {
        let now = Instant::now();
        let peer_id = PeerId([n; 20]);
        let mut conn = Connection::new(swarm.conn_config(), Role::Incoming, now);
        conn.handle(
            Message::Handshake {
                info_hash: swarm.info_hash,
                peer_id,
            },
            now,
        );
        let addr = SocketAddr::from(([127, 0, 0, n], 1000));
        let reg = swarm.register(addr, Some(peer_id), false).unwrap();
        (conn, reg)
    }

    /// A registered, open connection to a seed that has unchoked us.
    fn seed_conn(swarm: &Swarm, n: u8) -> (Connection, Registration) {
        let now = Instant::now();
        let (mut conn, reg) = open_conn(swarm, n);
        conn.handle(Message::Bitfield(Bitfield::full(swarm.piece_count())), now);
        conn.handle(Message::Unchoke, now);
        while let Some(ev) = conn.poll_event() {
            if let ConnEvent::Bitfield { previous } = ev {
                swarm.peer_bitfield(reg.conn.id, &mut conn, &previous);
            }
        }
        assert!(conn.am_interested());
        (conn, reg)
    }

    fn requested(swarm: &Swarm, index: u32) -> u8 {
        swarm.lock().picker.in_flight(index)
    }

    fn arrive(swarm: &Swarm, conn: &mut Connection, index: u32) -> Arrival {
        conn.handle(
            Message::Piece {
                index,
                data: bytes::Bytes::new(),
            },
            Instant::now(),
        );
        match conn.poll_event() {
            Some(ConnEvent::Piece {
                index, requested, ..
            }) => swarm.piece_arrived(index, requested),
            other => panic!("{other:?}"),
        }
    }

    fn commands(reg: &mut Registration) -> Vec<Command> {
        std::iter::from_fn(|| reg.commands.try_recv().ok()).collect()
    }

    #[test]
    fn a_piece_stays_requested_while_it_is_verified() {
        let (_dir, swarm) = leecher(3);
        let (mut a, mut reg_a) = seed_conn(&swarm, 1);
        let (mut b, _reg_b) = seed_conn(&swarm, 2);
        swarm.request_pieces(&mut a, 1, Instant::now(), true);
        let p = a.in_flight()[0];
        let arrival = arrive(&swarm, &mut a, p);
        assert!(a.in_flight().is_empty());
        assert_eq!(
            requested(&swarm, p),
            1,
            "verifying still counts as requested"
        );
        // Another peer is not asked for it meanwhile.
        swarm.request_pieces(&mut b, 2, Instant::now(), true);
        assert!(!b.in_flight().contains(&p), "{:?}", b.in_flight());
        swarm.piece_verified(arrival, &reg_a.conn.counters);
        assert_eq!(requested(&swarm, p), 0);
        assert!(swarm.has_piece(p));
        assert_eq!(commands(&mut reg_a), vec![Command::Have(p)]);
    }

    #[test]
    fn a_failed_piece_is_wanted_again_and_the_second_bans() {
        let (_dir, swarm) = leecher(3);
        let (mut a, mut reg_a) = seed_conn(&swarm, 1);
        for strike in 1..=2 {
            swarm.request_pieces(&mut a, 1, Instant::now(), true);
            let p = a.in_flight()[0];
            let arrival = arrive(&swarm, &mut a, p);
            let banned = swarm.piece_failed(arrival, &reg_a.conn);
            assert_eq!(requested(&swarm, p), 0, "piece {p} is wanted again");
            assert!(!swarm.has_piece(p));
            assert_eq!(banned, strike == 2);
            let expected = if banned {
                Command::Close(Disconnect::Banned(BanReason::BadPieces(2)))
            } else {
                Command::Refill
            };
            assert_eq!(commands(&mut reg_a), vec![expected]);
        }
        assert_eq!(
            swarm
                .register(reg_a.conn.addr, Some(PeerId([1; 20])), false)
                .err(),
            Some(Disconnect::BannedPeer)
        );
    }

    #[test]
    fn withdrawn_requests_and_closed_connections_free_their_pieces() {
        let (_dir, swarm) = leecher(4);
        let (mut a, reg_a) = seed_conn(&swarm, 1);
        let (mut b, mut reg_b) = seed_conn(&swarm, 2);
        swarm.request_pieces(&mut a, 2, Instant::now(), true);
        assert_eq!(a.in_flight().len(), 2);
        // Choked: both requests are void.
        a.handle(Message::Choke, Instant::now());
        let Some(ConnEvent::Choked { dropped }) = a.poll_event() else {
            panic!("no Choked event");
        };
        swarm.requests_withdrawn(&dropped);
        assert!(dropped.iter().all(|&i| requested(&swarm, i) == 0));
        // A late piece after the choke holds no request: failing it frees nothing.
        swarm.request_pieces(&mut b, 1, Instant::now(), true);
        let q = b.in_flight()[0];
        if dropped.contains(&q) {
            let late = arrive(&swarm, &mut a, q);
            swarm.piece_failed(late, &reg_a.conn);
            assert_eq!(requested(&swarm, q), 1, "b's request still counts");
        }
        // B closes with its request in flight: the piece is free, and the
        // others are told to request again.
        let in_flight = b.take_in_flight();
        swarm.connection_closed(reg_b.conn.id, b.remote(), &in_flight);
        assert_eq!(requested(&swarm, q), 0);
        assert!(commands(&mut reg_b).is_empty());
        assert_eq!(swarm.progress().peers, 1);
    }

    #[test]
    fn an_impostor_with_a_peers_id_displaces_no_one_and_its_ban_falls_on_its_ip() {
        let (_dir, swarm) = leecher(3);
        // The real seeder, dialed by us at 127.0.0.1:7000.
        let seeder_id = PeerId([1; 20]);
        let real_addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let mut real = swarm.register(real_addr, Some(seeder_id), true).unwrap();
        // An impostor from another host claims its id: admitted on its own.
        let fake_addr: SocketAddr = "127.0.0.2:40000".parse().unwrap();
        let fake = swarm.register(fake_addr, Some(seeder_id), false).unwrap();
        assert!(
            commands(&mut real).is_empty(),
            "the real seeder was told to go"
        );
        // Its bad pieces ban its IP, not the id: the seeder stays welcome.
        for _ in 0..STRIKES_TO_BAN {
            swarm.piece_failed(
                Arrival {
                    index: 0,
                    requested: false,
                },
                &fake.conn,
            );
        }
        assert!(commands(&mut real).is_empty());
        assert!(swarm.is_banned("127.0.0.2:40001".parse().unwrap(), false));
        assert!(!swarm.is_banned(real_addr, true));
        swarm.connection_closed(real.conn.id, &Bitfield::new(3), &[]);
        assert!(swarm.register(real_addr, Some(seeder_id), true).is_ok());
        // A tracker listing the seeder's id elsewhere is dialed all the same.
        let entry = |ip: &str, port| PeerEntry {
            peer_id: seeder_id.to_hex(),
            peer_ip: ip.into(),
            peer_port: port,
            proto: Some(1),
        };
        assert!(!swarm.offer_dial(&entry("127.0.0.1", 7000)), "connected");
        assert!(!swarm.offer_dial(&entry("127.0.0.2", 7000)), "banned");
        assert!(swarm.offer_dial(&entry("127.0.0.3", 7000)));
    }

    #[test]
    fn a_full_address_asks_its_connections_whether_they_are_of_use() {
        let (_dir, swarm) = leecher(3);
        let mut held: Vec<Registration> = (0..crate::admission::MAX_PER_IP as u16)
            .map(|port| {
                let addr = SocketAddr::from(([127, 0, 0, 1], 2000 + port));
                swarm.register(addr, None, false).unwrap()
            })
            .collect();
        let other = swarm.register("127.0.0.9:2000".parse().unwrap(), None, false);
        let mut other = other.unwrap();
        let newcomer: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(
            swarm.register(newcomer, None, false).err(),
            Some(Disconnect::TooManyFromAddress([127, 0, 0, 1].into()))
        );
        for reg in &mut held {
            assert_eq!(commands(reg), vec![Command::Evict]);
        }
        assert!(
            commands(&mut other).is_empty(),
            "another address is left alone"
        );
        // Asked again only after a while.
        assert!(swarm.register(newcomer, None, false).is_err());
        assert!(commands(&mut held[0]).is_empty());
        // One gives way: the newcomer fits.
        swarm.connection_closed(held[0].conn.id, &Bitfield::new(3), &[]);
        assert!(swarm.register(newcomer, None, false).is_ok());
    }

    #[test]
    fn a_simultaneous_dial_keeps_one_connection_by_the_shared_rule() {
        let (_dir, swarm) = leecher(2);
        let them = PeerId([0; 20]); // smaller than any id of ours
        let dialed = swarm.register("127.0.0.5:6881".parse().unwrap(), Some(them), true);
        let mut dialed = dialed.unwrap();
        // It dialed us too, from the same host: its connection is kept.
        let incoming = swarm.register("127.0.0.5:50000".parse().unwrap(), Some(them), false);
        assert!(incoming.is_ok());
        assert_eq!(
            commands(&mut dialed),
            vec![Command::Close(Disconnect::Duplicate)]
        );
    }

    #[test]
    fn the_second_connection_to_a_peer_is_refused_by_the_shared_rule() {
        let (_dir, swarm) = leecher(2);
        let (_a, _reg) = seed_conn(&swarm, 1);
        // We accepted the first; an incoming duplicate is refused.
        let again = swarm.register("127.0.0.1:9".parse().unwrap(), Some(PeerId([1; 20])), false);
        assert_eq!(again.err(), Some(Disconnect::Duplicate));
    }

    #[test]
    fn a_super_seeder_offers_each_piece_to_one_peer_until_it_spreads() {
        let (_dir, mut swarm) = swarm_of(4, true);
        assert!(swarm.super_seed(1));
        let now = Instant::now();
        let mut peers: Vec<_> = (1..=2).map(|n| open_conn(&swarm, n)).collect();
        for (conn, reg) in &mut peers {
            // Our protocol: it is told we have nothing, then offered one piece.
            assert_eq!(swarm.bitfield_for(reg.conn.id).count(), 0);
            conn.handle(Message::Bitfield(Bitfield::new(4)), now);
            while let Some(ev) = conn.poll_event() {
                if let ConnEvent::Bitfield { previous } = ev {
                    swarm.peer_bitfield(reg.conn.id, conn, &previous);
                }
            }
            // Always unchoked: it can take only what it is offered.
            assert!(swarm.peer_interest(reg.conn.id, true));
        }
        let offer = |reg: &mut Registration| match commands(reg)[..] {
            [Command::Offer(i)] => i,
            ref other => panic!("expected one offer, got {other:?}"),
        };
        let (a, b) = (offer(&mut peers[0].1), offer(&mut peers[1].1));
        assert_ne!(a, b);
        let have = |peers: &mut Vec<(Connection, Registration)>, who: usize, i: u32| {
            let (conn, reg) = &mut peers[who];
            conn.handle(Message::Have(i), now);
            assert_eq!(conn.poll_event(), Some(ConnEvent::Have(i)));
            swarm.peer_have(reg.conn.id, conn, i);
        };
        // The first peer holds its piece: no new offer until the second has it too.
        have(&mut peers, 0, a);
        assert!(commands(&mut peers[0].1).is_empty());
        have(&mut peers, 1, a);
        let next = offer(&mut peers[0].1);
        assert!(![a, b].contains(&next), "{next} was offered before");
        assert!(commands(&mut peers[1].1).is_empty());
        // A peer of the original protocol gets our whole bitfield.
        let legacy = swarm
            .register("127.0.0.9:1".parse().unwrap(), None, false)
            .unwrap();
        assert!(swarm.bitfield_for(legacy.conn.id).is_complete());
    }

    #[test]
    fn the_record_of_peers_seen_is_bounded_and_keeps_totals() {
        let (_dir, swarm) = leecher(2);
        let total = MAX_PEER_RECORDS * 3;
        for n in 0..total {
            let mut id = [0u8; 20];
            id[..8].copy_from_slice(&(n as u64).to_be_bytes());
            let addr = SocketAddr::from(([127, 0, 0, 1], 1000 + (n % 60000) as u16));
            let reg = swarm.register(addr, Some(PeerId(id)), false).unwrap();
            // Every fourth peer gave us something.
            if n % 4 == 0 {
                reg.conn
                    .counters
                    .downloaded
                    .fetch_add(10, Ordering::Relaxed);
            }
            swarm.connection_closed(reg.conn.id, &Bitfield::new(2), &[]);
        }
        assert!(swarm.lock().peers.len() <= MAX_PEER_RECORDS);
        let (_, peers, others) = swarm.summary();
        assert_eq!(peers.len(), SUMMARY_PEERS);
        assert_eq!(peers.len() as u64 + others.peers, total as u64);
        let listed: u64 = peers.iter().map(|p| p.downloaded).sum();
        assert_eq!(listed + others.downloaded, 10 * (total as u64 / 4));
        assert!(
            peers.iter().all(|p| p.downloaded == 10),
            "the top peers are listed"
        );
    }

    #[test]
    fn a_peer_that_stalls_is_backed_off_before_any_redial() {
        let (_dir, swarm) = leecher(2);
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let entry = PeerEntry {
            peer_id: "ab".repeat(20),
            peer_ip: "127.0.0.1".into(),
            peer_port: 7001,
            proto: Some(1),
        };
        let now = Instant::now();
        assert_eq!(swarm.lock().stall_strike(addr, now), (1, STALL_BACKOFF));
        assert!(!swarm.offer_dial(&entry), "backing off");
        assert_eq!(swarm.lock().stall_strike(addr, now), (2, STALL_BACKOFF * 2));
        // Backoffs over: dialed again.
        swarm.lock().stalls.get_mut(&addr).unwrap().until = now;
        assert!(swarm.offer_dial(&entry));
        // The table is bounded.
        let mut st = swarm.lock();
        for port in 0..(MAX_STALL_RECORDS as u16 + 10) {
            st.stall_strike(SocketAddr::from(([10, 0, 0, 1], port)), now);
        }
        assert!(st.stalls.len() <= MAX_STALL_RECORDS);
    }

    #[test]
    fn a_slow_peer_is_dropped_at_the_third_timed_out_request() {
        let (_dir, swarm) = leecher(4);
        let (mut a, mut reg) = seed_conn(&swarm, 1);
        for n in 1..=TIMEOUTS_TO_DROP {
            swarm.request_pieces(&mut a, 1, Instant::now(), true);
            let p = a.in_flight()[0];
            assert!(a.cancel(p));
            let dropped = swarm.request_timed_out(&reg.conn, p);
            assert_eq!(requested(&swarm, p), 0, "piece {p} is free again");
            assert_eq!(dropped, n == TIMEOUTS_TO_DROP);
        }
        let cmds = commands(&mut reg);
        assert_eq!(
            cmds.last(),
            Some(&Command::Close(Disconnect::RequestsTimedOut(3)))
        );
    }
}

//! The state shared by all connections of one torrent: which pieces we
//! have, the piece picker, the choker, the connected peers with their
//! counters, strikes and bans, and the operations on them.
//!
//! The state is private. Connection drivers (`peer_conn`) own their
//! sockets and their [`wire::Connection`], and tell the swarm what happened
//! through methods named for it: a peer's bitfield or Have, a piece arrived,
//! verified or failed, a connection closed. The swarm answers through the
//! [`wire::Connection`] it is handed (requests, interest) and through
//! [`Command`]s over unbounded channels whose volume is bounded by the piece
//! count. The piece lifecycle and the lock order are in `STATE.md` beside
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

use crate::choker::{Candidate, Choker};
use crate::chunks::{self, ChunkPool};
use crate::events::{Done, Event as PeerEvent, PeerSummary, SwarmDone};
use crate::output::{human_bytes, Output};
use crate::picker::Picker;
use crate::receive::Receiver;
use crate::storage::Storage;

/// Most peer connections at once.
pub const MAX_PEERS: usize = 64;
/// Bytes we aim to keep requested from one peer (sets the pipeline depth).
const IN_FLIGHT_BYTES: u64 = 16 * 1024 * 1024;
/// Requests in flight over all peers, in bytes (bounds a leecher's memory).
const GLOBAL_IN_FLIGHT_BYTES: u64 = 24 * 1024 * 1024;
/// Bad pieces after which a peer is banned.
const STRIKES_TO_BAN: u32 = 2;

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
    outgoing: bool,
    cmd: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
    interested: bool,
    unchoked: bool,
    last_down: u64,
    last_up: u64,
}

struct PeerRecord {
    addr: SocketAddr,
    peer_id: Option<PeerId>,
    counters: Arc<Counters>,
}

/// Mutable swarm state, behind [`Swarm::state`]; private to this module.
struct State {
    have: Bitfield,
    picker: Picker,
    choker: Choker,
    conns: HashMap<u64, ConnEntry>,
    by_peer_id: HashMap<PeerId, u64>,
    dialing: HashSet<SocketAddr>,
    banned_ids: HashSet<PeerId>,
    banned_addrs: HashSet<SocketAddr>,
    strikes: HashMap<String, u32>,
    peers: HashMap<String, PeerRecord>,
    downloaded: u64,
    done_at: Option<Instant>,
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
    /// The one place where a piece stops being requested. Until this is
    /// called, the picker counts the piece as requested, so nobody else is
    /// asked for it, also while it is being verified.
    fn request_ended(&mut self, index: u32, end: RequestEnd) {
        match end {
            RequestEnd::Verified => self.picker.completed(index),
            RequestEnd::Failed | RequestEnd::Withdrawn => self.picker.release(index),
        }
    }
}

/// Who a connection is, for the tasks that serve it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub id: u64,
    /// The peer id in hex, or `legacy@ADDR`: what strikes and counters follow.
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

    /// Admits a connection that completed its handshake, or says why not.
    pub fn register(
        &self,
        addr: SocketAddr,
        peer_id: Option<PeerId>,
        outgoing: bool,
    ) -> Result<Registration, Disconnect> {
        let mut st = self.lock();
        if let Some(pid) = peer_id {
            if st.banned_ids.contains(&pid) {
                return Err(Disconnect::BannedPeer);
            }
            let existing = st.by_peer_id.get(&pid).and_then(|id| st.conns.get(id));
            if let Some(e) = existing {
                // Two connections to the same peer (both dialed at once): keep
                // the one initiated by the smaller peer id, a rule both ends agree on.
                let initiator = |out: bool| if out { self.peer_id } else { pid };
                let (old_init, new_init) = (initiator(e.outgoing), initiator(outgoing));
                if old_init <= new_init {
                    return Err(Disconnect::Duplicate);
                }
                let _ = e.cmd.send(Command::Close(Disconnect::Duplicate));
            }
        }
        if st.conns.len() >= MAX_PEERS {
            return Err(Disconnect::TooManyPeers);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let identity = match peer_id {
            Some(pid) => pid.to_hex(),
            None => format!("legacy@{addr}"),
        };
        let record = st
            .peers
            .entry(identity.clone())
            .or_insert_with(|| PeerRecord {
                addr,
                peer_id,
                counters: Arc::default(),
            });
        if outgoing {
            record.addr = addr;
        }
        let counters = record.counters.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        st.conns.insert(
            id,
            ConnEntry {
                peer_id,
                outgoing,
                cmd: tx,
                counters: counters.clone(),
                interested: false,
                unchoked: false,
                last_down: counters.downloaded.load(Ordering::Relaxed),
                last_up: counters.uploaded.load(Ordering::Relaxed),
            },
        );
        if let Some(pid) = peer_id {
            st.by_peer_id.insert(pid, id);
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
        let Some(entry) = st.conns.remove(&id) else {
            return;
        };
        if let Some(pid) = entry.peer_id {
            if st.by_peer_id.get(&pid) == Some(&id) {
                st.by_peer_id.remove(&pid);
            }
        }
        st.picker.peer_gone(remote);
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
    pub fn peer_bitfield(&self, conn: &mut Connection, previous: &Bitfield) {
        let mut st = self.lock();
        st.picker.peer_bitfield(previous, conn.remote());
        conn.update_interest(&st.have);
    }

    /// A peer announced piece `index`: availability, and our interest if we
    /// lack it.
    pub fn peer_have(&self, conn: &mut Connection, index: u32) {
        let mut st = self.lock();
        st.picker.peer_have(index, conn.remote().is_complete());
        if !st.have.has(index) {
            conn.set_interested(true);
        }
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
    /// our interest true to what the peer has.
    pub fn request_pieces(&self, conn: &mut Connection, depth: usize, now: Instant) {
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
            let Some(index) = st.picker.pick(&st.have, conn.remote(), conn.in_flight()) else {
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
    pub fn piece_arrived(&self, index: u32, requested: bool) -> Arrival {
        Arrival { index, requested }
    }

    /// The remote's interest changed. Returns true when it should be
    /// unchoked right away (a free upload slot).
    pub fn peer_interest(&self, id: u64, interested: bool) -> bool {
        let mut st = self.lock();
        let unchoked_now = st.conns.values().filter(|c| c.unchoked).count();
        let capacity = st.choker.capacity();
        let Some(entry) = st.conns.get_mut(&id) else {
            return false;
        };
        entry.interested = interested;
        if interested && !entry.unchoked && unchoked_now < capacity {
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
            if arrival.requested {
                st.request_ended(index, RequestEnd::Failed);
            }
            let strikes = st.strikes.entry(conn.identity.clone()).or_default();
            *strikes += 1;
            let strikes = *strikes;
            if strikes >= STRIKES_TO_BAN {
                if let Some(pid) = st.conns.get(&conn.id).and_then(|c| c.peer_id) {
                    st.banned_ids.insert(pid);
                }
                if conn.outgoing {
                    st.banned_addrs.insert(conn.addr);
                }
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

    /// A piece that arrived will not be verified (it could not be stored,
    /// it was cut off, or another copy was being received): it is wanted again.
    pub fn piece_unusable(&self, arrival: Arrival) {
        if arrival.requested {
            self.lock().request_ended(arrival.index, RequestEnd::Failed);
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
            self.peer_summary(&st)
        };
        let seconds = self.start.elapsed().as_secs_f64();
        let bytes = self.lock().downloaded;
        self.out.emit(&PeerEvent::Done(Done::Swarm(SwarmDone {
            seconds,
            bytes,
            peers: summary,
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

    fn peer_summary(&self, st: &State) -> Vec<PeerSummary> {
        let mut peers: Vec<&PeerRecord> = st.peers.values().collect();
        peers.sort_by_key(|p| p.addr);
        peers
            .iter()
            .map(|p| PeerSummary {
                addr: p.addr.to_string(),
                peer_id: p.peer_id.map(|id| id.to_hex()),
                downloaded: p.counters.downloaded.load(Ordering::Relaxed),
                uploaded: p.counters.uploaded.load(Ordering::Relaxed),
            })
            .collect()
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
        let st = self.lock();
        let mut peers: Vec<&PeerRecord> = st.peers.values().collect();
        peers.sort_by_key(|p| p.addr);
        for p in peers {
            text.push_str(&format!(
                "\n  {:<22} received {:>10}   sent {:>10}",
                p.addr.to_string(),
                human_bytes(p.counters.downloaded.load(Ordering::Relaxed)),
                human_bytes(p.counters.uploaded.load(Ordering::Relaxed)),
            ));
        }
        drop(st);
        self.out.say(&text);
    }

    /// Whether to dial a peer from the tracker's list: not if it is us,
    /// banned, already connected or being dialed, or if the swarm is full.
    /// Returns its address and whether it speaks the original protocol, and
    /// counts it as being dialed until [`Swarm::dial_ended`].
    pub fn dial_target(&self, entry: &PeerEntry) -> Option<(SocketAddr, bool)> {
        if entry.peer_id == self.peer_id.to_hex() {
            return None;
        }
        let Ok(ip) = entry.peer_ip.parse::<IpAddr>() else {
            tracing::debug!(
                "tracker listed a peer with a bad address {:?}",
                entry.peer_ip
            );
            return None;
        };
        let addr = SocketAddr::new(ip, entry.peer_port);
        let legacy = entry.proto.is_none();
        let mut st = self.lock();
        let known_id = entry
            .peer_id
            .parse::<PeerId>()
            .is_ok_and(|pid| st.by_peer_id.contains_key(&pid) || st.banned_ids.contains(&pid));
        if known_id
            || st.banned_addrs.contains(&addr)
            || st.dialing.contains(&addr)
            || st.conns.len() >= MAX_PEERS
        {
            return None;
        }
        st.dialing.insert(addr);
        Some((addr, legacy))
    }

    /// A dial of `addr` (from [`Swarm::dial_target`]) is over, connected or not.
    pub fn dial_ended(&self, addr: SocketAddr) {
        self.lock().dialing.remove(&addr);
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
            numwant: Some(50),
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
                by_peer_id: HashMap::new(),
                dialing: HashSet::new(),
                banned_ids: HashSet::new(),
                banned_addrs: HashSet::new(),
                strikes: HashMap::new(),
                peers: HashMap::new(),
                downloaded: 0,
                done_at: None,
            }),
            completed: Notify::new(),
            start: Instant::now(),
            next_id: AtomicU64::new(1),
            uploaded_total: AtomicU64::new(0),
            torrent,
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

    /// The final report: bytes downloaded this session and per-peer figures.
    pub fn summary(&self) -> (u64, Vec<PeerSummary>) {
        let st = self.lock();
        (st.downloaded, self.peer_summary(&st))
    }

    /// One choking round: rates over the last `secs` seconds, then the
    /// choker's choice, sent as Choke/Unchoke to the connections that change.
    pub fn choke_round(&self, secs: f64) {
        let mut st = self.lock();
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
            candidates.push(Candidate {
                id,
                interested: c.interested,
                rate: delta as f64 / secs,
            });
        }
        let unchoke = st.choker.round(&candidates);
        for (id, c) in st.conns.iter_mut() {
            let want = unchoke.contains(id);
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
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..pieces as u64 * PIECE).map(|i| i as u8).collect();
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

    /// A registered, open connection to a seed that has unchoked us.
    fn seed_conn(swarm: &Swarm, n: u8) -> (Connection, Registration) {
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
        conn.handle(Message::Bitfield(Bitfield::full(swarm.piece_count())), now);
        conn.handle(Message::Unchoke, now);
        while let Some(ev) = conn.poll_event() {
            if let ConnEvent::Bitfield { previous } = ev {
                swarm.peer_bitfield(&mut conn, &previous);
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
        swarm.request_pieces(&mut a, 1, Instant::now());
        let p = a.in_flight()[0];
        let arrival = arrive(&swarm, &mut a, p);
        assert!(a.in_flight().is_empty());
        assert_eq!(
            requested(&swarm, p),
            1,
            "verifying still counts as requested"
        );
        // Another peer is not asked for it meanwhile.
        swarm.request_pieces(&mut b, 2, Instant::now());
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
            swarm.request_pieces(&mut a, 1, Instant::now());
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
        swarm.request_pieces(&mut a, 2, Instant::now());
        assert_eq!(a.in_flight().len(), 2);
        // Choked: both requests are void.
        a.handle(Message::Choke, Instant::now());
        let Some(ConnEvent::Choked { dropped }) = a.poll_event() else {
            panic!("no Choked event");
        };
        swarm.requests_withdrawn(&dropped);
        assert!(dropped.iter().all(|&i| requested(&swarm, i) == 0));
        // A late piece after the choke holds no request: failing it frees nothing.
        swarm.request_pieces(&mut b, 1, Instant::now());
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
    fn the_second_connection_to_a_peer_is_refused_by_the_shared_rule() {
        let (_dir, swarm) = leecher(2);
        let (_a, _reg) = seed_conn(&swarm, 1);
        // We accepted the first; an incoming duplicate is refused.
        let again = swarm.register("127.0.0.1:9".parse().unwrap(), Some(PeerId([1; 20])), false);
        assert_eq!(again.err(), Some(Disconnect::Duplicate));
    }
}

//! The state shared by all connections of one torrent: which pieces we
//! have, the piece picker, the choker, the connected peers with their
//! counters, strikes and bans, and the operations on them.
//!
//! Connection tasks ([`crate::peer_conn`]) own their sockets and their
//! [`wire::Connection`] state; they consult and update the shared [`State`]
//! under a short-held mutex, and receive [`Command`]s over unbounded channels
//! whose volume is bounded by the piece count. The session
//! ([`crate::session`]) runs the background tasks around it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::tracker::{AnnounceRequest, Event, PeerEntry};
use wire::{Bitfield, InfoHash, PeerId, Torrent};

use crate::choker::{Candidate, Choker};
use crate::output::{human_bytes, Output};
use crate::peer_conn;
use crate::picker::Picker;
use crate::storage::Storage;

/// Most peer connections at once.
pub const MAX_PEERS: usize = 64;
/// Bytes we aim to keep requested from one peer (sets the pipeline depth).
const IN_FLIGHT_BYTES: u64 = 16 * 1024 * 1024;
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
    Close(String),
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

/// Mutable swarm state, behind [`Swarm::state`].
pub struct State {
    pub have: Bitfield,
    pub picker: Picker,
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

/// What a connection gets when it joins the swarm.
pub struct Registration {
    pub id: u64,
    pub identity: String,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub counters: Arc<Counters>,
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
    pub fn lock(&self) -> MutexGuard<'_, State> {
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

    pub fn note_uploaded(&self, counters: &Counters, bytes: u64) {
        counters.uploaded.fetch_add(bytes, Ordering::Relaxed);
        self.uploaded_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Admits a connection that completed its handshake, or says why not.
    pub fn register(
        &self,
        addr: SocketAddr,
        peer_id: Option<PeerId>,
        outgoing: bool,
    ) -> Result<Registration, String> {
        let mut st = self.lock();
        if let Some(pid) = peer_id {
            if st.banned_ids.contains(&pid) {
                return Err("banned peer".into());
            }
            let existing = st.by_peer_id.get(&pid).and_then(|id| st.conns.get(id));
            if let Some(e) = existing {
                // Two connections to the same peer (both dialed at once): keep
                // the one initiated by the smaller peer id, a rule both ends agree on.
                let initiator = |out: bool| if out { self.peer_id } else { pid };
                let (old_init, new_init) = (initiator(e.outgoing), initiator(outgoing));
                if old_init <= new_init {
                    return Err("duplicate connection".into());
                }
                let _ = e.cmd.send(Command::Close("duplicate connection".into()));
            }
        }
        if st.conns.len() >= MAX_PEERS {
            return Err("too many peers".into());
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
            id,
            identity,
            commands: rx,
            counters,
        })
    }

    /// Removes a connection; `remote` is what it had (for availability) and
    /// `in_flight` the requests it leaves behind.
    pub fn unregister(&self, id: u64, remote: &Bitfield, in_flight: &[u32]) {
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
            st.picker.release(i);
        }
        if !in_flight.is_empty() {
            for c in st.conns.values() {
                let _ = c.cmd.send(Command::Refill);
            }
        }
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

    /// Records a bad piece from `identity`. Returns true if that peer is now banned.
    pub fn strike(&self, id: u64, identity: &str, addr: SocketAddr, outgoing: bool) -> bool {
        let mut st = self.lock();
        let strikes = st.strikes.entry(identity.to_string()).or_default();
        *strikes += 1;
        if *strikes < STRIKES_TO_BAN {
            return false;
        }
        if let Some(pid) = st.conns.get(&id).and_then(|c| c.peer_id) {
            st.banned_ids.insert(pid);
        }
        if outgoing {
            st.banned_addrs.insert(addr);
        }
        true
    }

    /// Asks connection `id` to close, for `reason`.
    pub fn close_conn(&self, id: u64, reason: String) {
        if let Some(c) = self.lock().conns.get(&id) {
            let _ = c.cmd.send(Command::Close(reason));
        }
    }

    /// Asks connection `id` to request more (after a piece it sent was refused).
    pub fn refill_conn(&self, id: u64) {
        if let Some(c) = self.lock().conns.get(&id) {
            let _ = c.cmd.send(Command::Refill);
        }
    }

    /// A piece passed its hash and was written. Tells every connection.
    pub fn piece_verified(&self, index: u32, counters: &Counters) {
        let len = self.torrent.info.piece_size(index);
        let complete = {
            let mut st = self.lock();
            if !st.have.set(index, true) {
                return;
            }
            st.picker.completed(index);
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
        self.out.event(
            "done",
            json!({"seconds": seconds, "bytes": bytes, "peers": summary}),
        );
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

    pub(crate) fn peer_summary(&self, st: &State) -> Vec<serde_json::Value> {
        let mut peers: Vec<&PeerRecord> = st.peers.values().collect();
        peers.sort_by_key(|p| p.addr);
        peers
            .iter()
            .map(|p| {
                json!({
                    "addr": p.addr.to_string(),
                    "peer_id": p.peer_id.map(|id| id.to_hex()),
                    "downloaded": p.counters.downloaded.load(Ordering::Relaxed),
                    "uploaded": p.counters.uploaded.load(Ordering::Relaxed),
                })
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

    /// Dials a peer from the tracker's list unless it is us, banned, or
    /// already connected or being dialed.
    pub(crate) fn dial(self: &Arc<Self>, entry: &PeerEntry) {
        if entry.peer_id == self.peer_id.to_hex() {
            return;
        }
        let Ok(ip) = entry.peer_ip.parse::<IpAddr>() else {
            tracing::debug!(
                "tracker listed a peer with a bad address {:?}",
                entry.peer_ip
            );
            return;
        };
        let addr = SocketAddr::new(ip, entry.peer_port);
        let legacy = entry.proto.is_none();
        {
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
                return;
            }
            st.dialing.insert(addr);
        }
        let swarm = self.clone();
        self.tasks.spawn(async move {
            peer_conn::dial(swarm.clone(), addr, legacy).await;
            swarm.lock().dialing.remove(&addr);
        });
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
    pub fn close_all(&self, reason: &str) {
        for c in self.lock().conns.values() {
            let _ = c.cmd.send(Command::Close(reason.to_string()));
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
    pub fn summary(&self) -> (u64, Vec<serde_json::Value>) {
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

//! Hostile peers for attack tests and benchmarks: liars that claim every
//! piece, unchoke and never send ([`Liar`]), and a churn of connections
//! that each handshake under a new random peer id ([`churn`]).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use peer::events::Event;

use wire::tracker::{AnnounceRequest, Event as Announce};
use wire::{Bitfield, InfoHash, Message, PeerId};

use crate::expect_event;
use crate::fixture::{announce, expect_done, load_torrent, start_peer, Scenario, WireStream, STEP};

/// A peer that promises everything and sends nothing: it answers the
/// handshake, claims every piece, unchokes, then reads and discards. Its
/// threads live as long as the process.
pub struct Liar {
    pub addr: SocketAddr,
    pub peer_id: PeerId,
    dialed: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Liar {
    /// A liar listening on 127.0.0.1 for the torrent `info_hash` of `pieces` pieces.
    pub fn start(info_hash: InfoHash, pieces: u32) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a liar");
        let addr = listener.local_addr().expect("liar address");
        let peer_id = peer::swarm::new_peer_id();
        let dialed = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (d, r) = (dialed.clone(), requests.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                d.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                thread::spawn(move || lie(stream, info_hash, peer_id, pieces, &r));
            }
        });
        Liar {
            addr,
            peer_id,
            dialed,
            requests,
        }
    }

    /// Connections it accepted.
    pub fn dialed(&self) -> usize {
        self.dialed.load(Ordering::SeqCst)
    }

    /// Requests it received (and never answered).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Announces the liar (a seed, of our protocol) to `tracker`.
    pub fn announce(&self, tracker: SocketAddr, info_hash: InfoHash, event: Option<Announce>) {
        announce_seed(tracker, info_hash, self.addr, self.peer_id, event);
    }
}

/// Announces a seed of our protocol listening at `addr` under `peer_id`.
pub fn announce_seed(
    tracker: SocketAddr,
    info_hash: InfoHash,
    addr: SocketAddr,
    peer_id: PeerId,
    event: Option<Announce>,
) {
    announce(
        tracker,
        &AnnounceRequest {
            port: addr.port(),
            ip: None,
            peer_id: peer_id.to_hex(),
            event,
            info_hash: Some(info_hash),
            numwant: Some(0),
            proto: Some(1),
            left: Some(0),
            downloaded: Some(0),
        },
    );
}

fn lie(
    stream: TcpStream,
    info_hash: InfoHash,
    peer_id: PeerId,
    pieces: u32,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    let mut ws = WireStream::new(stream, Some(pieces));
    if !matches!(ws.recv()?, Message::Handshake { .. }) {
        return Ok(());
    }
    ws.send(&Message::Handshake { info_hash, peer_id })?;
    ws.send(&Message::Bitfield(Bitfield::full(pieces)))?;
    ws.send(&Message::Unchoke)?;
    loop {
        if let Message::Request(_) = ws.recv()? {
            requests.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `count` liars for the scenario's torrent, announced to its tracker.
/// Returns them and the torrent's info hash.
pub fn liars(s: &Scenario, count: usize) -> (Vec<Liar>, InfoHash) {
    let torrent = load_torrent(&s.torrent);
    let (info_hash, pieces) = (torrent.info_hash(), torrent.info.piece_count());
    let liars: Vec<Liar> = (0..count).map(|_| Liar::start(info_hash, pieces)).collect();
    for l in &liars {
        l.announce(s.tracker.addr, info_hash, Some(Announce::Started));
    }
    (liars, info_hash)
}

/// `count` connections to the peer at `addr`, `threads` at a time: each
/// sends a handshake under a fresh random peer id, waits for the answer and
/// closes.
pub fn churn(addr: SocketAddr, info_hash: InfoHash, count: usize, threads: usize) {
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..count / threads {
                    let Ok(stream) = TcpStream::connect(addr) else {
                        continue;
                    };
                    stream.set_read_timeout(Some(STEP)).ok();
                    let mut ws = WireStream::new(stream, None);
                    let hello = Message::Handshake {
                        info_hash,
                        peer_id: peer::swarm::new_peer_id(),
                    };
                    if ws.send(&hello).is_ok() {
                        let _ = ws.recv();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("churn thread");
    }
}

/// Starts leecher `name` while the tracker lists no seeder, waits until it
/// has met the `liars` listed, then starts a seeder `name-seed`. Returns
/// the seconds from the seeder's start to the leecher's `done`, and the
/// leecher's peak RSS (KiB).
pub fn seeded_after_meeting_liars(s: &mut Scenario, name: &str, liars: usize) -> (f64, u64) {
    let (mut leech, _) = start_peer(name, s.leecher_command(name));
    for _ in 0..liars {
        expect_event!(leech, STEP, Event::PeerConnected { .. });
    }
    let t0 = Instant::now();
    let _seed = s.start_seeder(&format!("{name}-seed"));
    expect_done(&mut leech);
    let took = t0.elapsed().as_secs_f64();
    let (code, peak) = leech.wait_with_peak_rss();
    assert_eq!(code, 0, "{name} failed");
    assert!(s.has_right_copy(name));
    (took, peak)
}

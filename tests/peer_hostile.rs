//! One hostile host against a peer (issue 14, items 1, 2, 3 and 6): each
//! attack is mounted while a good leecher downloads, which must still finish
//! in about the time it needs without the attack, with the attacked peer's
//! memory bounded.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lanio::frame::write_frame;
use lanswarm::expect_event;
use lanswarm::fixture::*;
use lanswarm::process::Proc;
use peer::events::Event;
use wire::tracker::{AnnounceResponse, PeerEntry};
use wire::{Bitfield, Disconnect, Message, PeerId, Torrent};

fn vm_hwm(proc: &Proc) -> u64 {
    vm_hwm_kib(proc.pid())
}

fn from(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

/// Runs a leecher named `name` (its extra arguments `args`) to the end and
/// returns how long it took, by its own `done` event.
fn leech(s: &Scenario, name: &str, args: &[&str]) -> f64 {
    let mut cmd = s.leecher_command(name);
    cmd.args(args);
    let (mut leech, _) = start_peer(name, cmd);
    let done = expect_done(&mut leech);
    assert!(leech.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy(name));
    done.seconds
}

/// "About normal time" on a loaded 2-core machine: a few times the
/// baseline, plus the few seconds eviction may take.
fn assert_about_normal(attacked: f64, baseline: f64, what: &str) {
    assert!(
        attacked < 3.0 * baseline + 8.0,
        "{what}: {attacked:.2}s under attack against {baseline:.2}s without"
    );
}

/// Attackers that stop together.
struct Attack {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Attack {
    fn new() -> Self {
        Attack {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    fn spawn(&mut self, f: impl FnOnce(Arc<AtomicBool>) + Send + 'static) {
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || f(stop)));
    }

    fn end(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// Item 1: silent connections of the seed's protocol (a Bitfield, then
/// nothing), from 127.0.0.1 and seven other addresses, reconnecting as soon
/// as they are dropped, try to hold every slot of a seeder.
#[test]
fn silent_seed_protocol_connections_give_their_slots_to_a_good_leecher() {
    let mut s = Scenario::new(4 << 20, 64 << 10, 141, &["--interval", "1"]);
    let (mut seed, started) = s.start_seeder("seed");
    let addr: SocketAddr = started.listen.parse().unwrap();
    let pieces = load_torrent(&s.torrent).info.piece_count();
    let baseline = leech(&s, "base", &[]);
    let hwm_before = vm_hwm(&seed);

    let mut attack = Attack::new();
    let connections = Arc::new(AtomicUsize::new(0));
    // 16 from 127.0.0.1 (twice its cap), 8 each from 127.0.0.2..=8: 72 in all.
    let sources = (0..16)
        .map(|_| 1u8)
        .chain((2..=8u8).flat_map(|ip| std::iter::repeat_n(ip, 8)));
    for last in sources {
        let connections = connections.clone();
        attack.spawn(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = connect_from(from(0, 0, last), addr) else {
                    // Not a synchronisation: an attacker pacing its retries.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                connections.fetch_add(1, Ordering::Relaxed);
                let hello = wire::codec::encode_framed(&Message::Bitfield(Bitfield::new(pieces)));
                if stream.write_all(&hello).is_ok() {
                    hold_open(&mut stream, &stop);
                }
            }
        });
    }
    // The slots fill with them.
    let mut admitted = 0;
    while admitted < 60 {
        expect_event!(seed, STEP, Event::PeerConnected { legacy: true, .. });
        admitted += 1;
    }

    let attacked = leech(&s, "good", &[]);
    assert_about_normal(attacked, baseline, "leecher against silent slot holders");
    let hwm_after = vm_hwm(&seed);
    attack.end();

    let out = seed.output();
    // Newcomers from 127.0.0.1 found its slots full and waited their turn.
    let waited = out
        .lines()
        .filter(|l| {
            l.contains("\"slot_wait\"") && l.contains("too many connections from 127.0.0.1")
        })
        .count();
    assert!(waited > 0, "no per-address cap:\n{out}");
    let evicted = out
        .lines()
        .filter(|l| l.contains(&Disconnect::Evicted.to_string()))
        .count();
    assert!(evicted > 0, "no eviction:\n{out}");
    assert!(
        hwm_after < hwm_before + 64 * 1024,
        "VmHWM grew from {hwm_before} to {hwm_after} KiB"
    );
    eprintln!(
        "baseline {baseline:.2}s, attacked {attacked:.2}s, {} attacker connections, VmHWM {hwm_before} -> {hwm_after} KiB",
        connections.load(Ordering::Relaxed)
    );
}

/// Item 2: before any handshake, 100 connections each send half a frame
/// that claims the size of a piece, and 40 more open and say nothing.
#[test]
fn half_frames_and_silent_openings_before_the_handshake_cost_nothing() {
    let mut s = Scenario::new(8 << 20, 1 << 20, 142, &["--interval", "1"]);
    let (mut seed, started) = s.start_seeder("seed");
    let addr: SocketAddr = started.listen.parse().unwrap();
    let piece = 1usize << 20;
    let baseline = leech(&s, "base", &[]);
    let hwm_before = vm_hwm(&seed);

    let mut attack = Attack::new();
    for n in 0..100u32 {
        attack.spawn(move |stop| {
            // A Piece frame's header, then half its body.
            let source = from(0, 1, 10 + (n % 20) as u8);
            let claim = (piece + 13) as u64;
            if let Ok(mut stream) = half_frame_from(source, addr, claim, piece / 2) {
                hold_open(&mut stream, &stop);
            }
        });
    }
    let silent: Vec<TcpStream> = (0..40)
        .map(|_| connect_from(from(0, 2, 1), addr).unwrap())
        .collect();

    let attacked = leech(&s, "good", &[]);
    assert_about_normal(attacked, baseline, "leecher against half frames");
    // Each half frame is refused at its header, unless, among too many
    // openings, it gave way to a newer one before its header was read.
    let evicted_reason = Disconnect::OpeningEvicted.to_string();
    let (mut at_header, mut gave_way) = (0, 0);
    while at_header + gave_way < 100 {
        let limit = expect_event!(seed, STEP, Event::PeerRefused { addr, reason }
            if addr.starts_with("127.0.1.")
                && (reason.contains("exceeds the limit of 45 bytes") || reason == evicted_reason)
            => reason != evicted_reason);
        if limit {
            at_header += 1;
        } else {
            gave_way += 1;
        }
    }
    assert!(
        at_header >= 50,
        "{at_header} refused at the header, {gave_way} gave way"
    );
    let hwm_after = vm_hwm(&seed);
    attack.end();
    drop(silent);
    // The silent openings beyond the per-address cap made way for newer ones.
    let out = seed.output();
    let evicted = out
        .lines()
        .filter(|l| l.contains(&Disconnect::OpeningEvicted.to_string()))
        .count();
    assert!(evicted >= 30, "{evicted} openings evicted:\n{out}");
    // Without the opening limit each connection buffered half a piece:
    // 100 x 512 KiB = 50 MiB at least.
    assert!(
        hwm_after < hwm_before + 24 * 1024,
        "VmHWM grew from {hwm_before} to {hwm_after} KiB"
    );
    eprintln!(
        "baseline {baseline:.2}s, attacked {attacked:.2}s, VmHWM {hwm_before} -> {hwm_after} KiB"
    );
}

/// A fake peer from `from` claiming `peer_id`, holding every piece and
/// serving garbage for each request, over our protocol.
fn impostor(source: IpAddr, to: SocketAddr, t: &Torrent, peer_id: PeerId) -> SocketAddr {
    let stream = connect_from(source, to).unwrap();
    let local = stream.local_addr().unwrap();
    let t = t.clone();
    std::thread::spawn(move || {
        let mut ws = WireStream::new(stream, Some(t.info.piece_count()));
        let _ = ws.send(&Message::Handshake {
            info_hash: t.info_hash(),
            peer_id,
        });
        let _ = ws.send(&Message::Bitfield(Bitfield::full(t.info.piece_count())));
        while let Ok(msg) = ws.recv() {
            let reply = match msg {
                Message::Interested => Message::Unchoke,
                Message::Request(i) => Message::Piece {
                    index: i,
                    data: vec![0xAB; t.info.piece_size(i) as usize].into(),
                },
                _ => continue,
            };
            if ws.send(&reply).is_err() {
                return;
            }
        }
    });
    local
}

/// Item 3: an attacker takes the peer id the tracker publishes for a
/// seeder, connects to a leecher that holds a connection to that seeder,
/// and serves bad pieces.
#[test]
fn an_impostor_with_a_seeders_id_is_banned_by_address_and_the_seeder_kept() {
    let mut s = Scenario::new(2 << 20, 64 << 10, 143, &["--interval", "1"]);
    let t = load_torrent(&s.torrent);
    let half = t.info.piece_count() / 2;
    // The real seeder holds the first half only, so the leecher keeps its
    // connection and still wants pieces when the impostor comes.
    let dir = s.seed_dir("seed");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("data.bin"))
            .unwrap();
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(half as u64 * t.info.piece_length))
            .unwrap();
        f.write_all(&vec![
            0;
            (t.info.file_length - half as u64 * t.info.piece_length)
                as usize
        ])
        .unwrap();
    }
    let (_seed, seed_ev) = start_peer("seed", peer_command(&s.torrent, &dir));
    assert_eq!(seed_ev.have, half);
    s.tracker.expect_join(&seed_ev.peer_id, STEP);
    let seeder_id: PeerId = seed_ev.peer_id.parse().unwrap();

    let (mut leech, leech_ev) = start_peer("leech", s.leecher_command("leech"));
    let leech_addr: SocketAddr = leech_ev.listen.parse().unwrap();
    expect_event!(leech, STEP,
        Event::Progress(peer::events::Progress::Swarm { have, .. }) if have == half);

    // The impostor, from another address, under the seeder's id.
    let bad = from(0, 0, 66);
    let fake = impostor(bad, leech_addr, &t, seeder_id);
    let banned = expect_event!(leech, STEP, Event::PeerBanned { addr, .. } => addr);
    assert_eq!(banned, fake.to_string());

    // From a new source port it gets nothing, not even a handshake.
    let mut again = connect_from(bad, leech_addr).unwrap();
    let mut ws = WireStream::new(again.try_clone().unwrap(), None);
    let _ = ws.send(&Message::Handshake {
        info_hash: t.info_hash(),
        peer_id: seeder_id,
    });
    again
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(again.read(&mut buf), Ok(0) | Err(_)),
        "a banned address was answered"
    );
    let refused = expect_event!(leech, STEP,
        Event::PeerRefused { addr, reason } if addr.starts_with("127.0.0.66:") => reason);
    assert_eq!(refused, Disconnect::BannedPeer.to_string());

    // A full seeder comes: the leecher finishes.
    let began = Instant::now();
    let (_full, _) = s.start_seeder("full");
    expect_done(&mut leech);
    assert!(leech.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy("leech"), "corrupt data was kept");
    assert!(began.elapsed() < Duration::from_secs(30));

    // The real seeder was never dropped for the impostor.
    let seed_addr = seed_ev.listen.clone();
    let out = leech.output();
    let dropped = out
        .lines()
        .filter(|l| l.contains("\"peer_disconnected\"") && l.contains(&seed_addr))
        .filter(|l| !l.contains("shutting down"))
        .collect::<Vec<_>>();
    assert!(dropped.is_empty(), "the seeder was dropped: {dropped:?}");
}

/// Item 6: a tracker reply lists 3,000 addresses where nobody listens, the
/// real seeder among the first, and asks for a refresh every second.
#[test]
fn a_tracker_reply_of_3000_addresses_makes_a_bounded_number_of_dials() {
    let mut s = Scenario::new(4 << 20, 64 << 10, 146, &[]);
    let (_seed, seed_ev) = s.start_seeder("seed");
    let baseline = leech(&s, "base", &[]);
    let seed_addr: SocketAddr = seed_ev.listen.parse().unwrap();

    // A port nobody listens on, on any address.
    let dead_port = TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut peers: Vec<PeerEntry> = (0..3000u32)
        .map(|i| PeerEntry {
            peer_id: format!("{i:040x}"),
            peer_ip: Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8).to_string(),
            peer_port: dead_port,
            proto: Some(1),
        })
        .collect();
    peers.insert(
        5,
        PeerEntry {
            peer_id: seed_ev.peer_id.clone(),
            peer_ip: seed_addr.ip().to_string(),
            peer_port: seed_addr.port(),
            proto: Some(1),
        },
    );
    let reply = AnnounceResponse {
        error_code: 0,
        message: "started ACK".into(),
        num_of_peer: peers.len() as u32,
        peers: peers.clone(),
        interval: Some(1),
    }
    .to_json();
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in fake.incoming() {
            let Ok(mut stream) = stream else { return };
            if read_frame(&mut stream, 1 << 20).is_ok() {
                let _ = write_frame(&mut stream, &reply);
            }
        }
    });

    let mut cmd = peer_command(&s.torrent, &s.path("storm"));
    cmd.args(["--tracker", &fake_addr.to_string()]);
    let (mut storm, _) = start_peer("storm", cmd);
    let done = expect_done(&mut storm);
    assert!(s.has_right_copy("storm"));
    assert_about_normal(done.seconds, baseline, "leecher fed 3,000 addresses");
    // Eight more refreshes, each listing the same 3,000.
    for _ in 0..8 {
        expect_event!(storm, STEP, Event::Announced { .. });
    }
    let hwm = vm_hwm(&storm);
    storm.signal(libc::SIGTERM);
    storm.wait_exit(STEP).unwrap();

    let mut dials: HashMap<String, usize> = HashMap::new();
    let mut most_connecting = 0;
    for line in storm.output().lines() {
        let Some(json) = line.strip_prefix("out| ") else {
            continue;
        };
        if let Ok(Event::DialStarted { addr, connecting }) = serde_json::from_str(json) {
            *dials.entry(addr).or_default() += 1;
            most_connecting = most_connecting.max(connecting);
        }
    }
    let listed: HashMap<String, usize> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{}:{}", p.peer_ip, p.peer_port), i))
        .collect();
    assert!(
        dials
            .keys()
            .all(|a| listed.get(a).is_some_and(|&i| i < peer::admission::NUMWANT)),
        "dialed entries beyond numwant"
    );
    assert!(dials.len() <= peer::admission::NUMWANT, "{}", dials.len());
    assert!(
        most_connecting <= peer::admission::MAX_DIALS,
        "{most_connecting} dials at once"
    );
    // Nine announces or more, a second apart: without backoff each dead
    // address would be dialed at each; with it (after 1 s, 2 s, 4 s, 8 s)
    // at most five times in the 15 s or so this takes.
    let most = dials.values().max().copied().unwrap_or(0);
    assert!(most <= 5, "an address was dialed {most} times: {dials:?}");
    assert!(hwm < 64 * 1024, "VmHWM {hwm} KiB");
    eprintln!(
        "baseline {baseline:.2}s, storm {:.2}s, {} addresses dialed, {most_connecting} at once at most, VmHWM {hwm} KiB",
        done.seconds,
        dials.len()
    );
}

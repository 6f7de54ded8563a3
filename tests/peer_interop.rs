//! Peers that are not lanswarm peers: the seed project's original protocol
//! (no handshake, Bitfield first, one request at a time), and a liar that
//! serves corrupted pieces. Each is simulated in the test with the `wire` crate.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use lanswarm::expect_event;
use lanswarm::fixture::*;
use peer::events::Event as PeerEvent;
use wire::tracker::{AnnounceRequest, Event};
use wire::{Bitfield, Message, PeerId, Torrent};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

fn piece_bytes(data: &[u8], t: &Torrent, i: u32) -> Vec<u8> {
    let off = t.info.piece_offset(i) as usize;
    data[off..off + t.info.piece_size(i) as usize].to_vec()
}

/// Announces a fake peer listening on `port`. `proto: None` is the seed's
/// original protocol, which also sends no info hash.
fn announce_fake(tracker: SocketAddr, port: u16, t: &Torrent, proto: Option<u32>, id: &str) {
    let req = AnnounceRequest {
        port,
        ip: None,
        peer_id: id.to_string(),
        event: Some(Event::Started),
        info_hash: proto.map(|_| t.info_hash()),
        numwant: None,
        proto,
        left: None,
        downloaded: None,
    };
    let resp = announce(tracker, &req);
    assert_eq!(resp.error_code, 0, "fake peer's announce refused: {resp:?}");
}

/// A seeder of the original protocol: answers our Bitfield with its own,
/// Interested with Unchoke, and each Request with the Piece. Returns the
/// largest number of requests it ever saw outstanding at once.
fn legacy_seeder(listener: TcpListener, t: Torrent, data: Vec<u8>) -> usize {
    let (stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    let mut ws = WireStream::new(stream, Some(t.info.piece_count()));
    let first = ws.recv().unwrap();
    assert!(
        matches!(first, Message::Bitfield(_)),
        "a legacy peer must be opened with Bitfield, got {first:?}"
    );
    ws.send(&Message::Bitfield(Bitfield::full(t.info.piece_count())))
        .unwrap();
    let mut max_outstanding = 0;
    let mut served = 0;
    while served < t.info.piece_count() {
        match ws.recv() {
            Ok(Message::Interested) => ws.send(&Message::Unchoke).unwrap(),
            Ok(Message::Request(i)) => {
                // Before answering, see whether a second request is queued behind it.
                ws.stream
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                let mut peek = [0u8; 1];
                let outstanding = if ws.stream.peek(&mut peek).is_ok() {
                    2
                } else {
                    1
                };
                ws.stream.set_read_timeout(Some(STEP)).unwrap();
                max_outstanding = max_outstanding.max(outstanding);
                ws.send(&Message::Piece {
                    index: i,
                    data: piece_bytes(&data, &t, i).into(),
                })
                .unwrap();
                served += 1;
            }
            Ok(Message::Have(_)) | Ok(Message::KeepAlive) | Ok(Message::Cancel(_)) => {
                panic!("sent a message the original protocol does not know")
            }
            Ok(_) => {}
            Err(e) => panic!("legacy seeder: {e}"),
        }
    }
    max_outstanding
}

#[test]
fn we_download_from_a_peer_of_the_original_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let data_path = tmp.path().join("data.bin");
    write_random_file(&data_path, MIB, 11);
    let data = std::fs::read(&data_path).unwrap();
    // The tracker's default swarm is this torrent, so a peer that sends no
    // info hash meets ours.
    let boot = start_tracker(&[]);
    let torrent_path = create_torrent(
        &data_path,
        boot.addr,
        Some(64 * KIB),
        &tmp.path().join("t.torrent"),
    );
    drop(boot);
    let tracker = start_tracker(&["--torrent", torrent_path.to_str().unwrap()]);
    let t = load_torrent(&torrent_path);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    announce_fake(tracker.addr, port, &t, None, &format!("127.0.0.1:{port}"));
    let seeder = {
        let (t, data) = (t.clone(), data.clone());
        std::thread::spawn(move || legacy_seeder(listener, t, data))
    };

    let dir = tmp.path().join("leech");
    let mut cmd = peer_command(&torrent_path, &dir);
    cmd.args(["--tracker", &tracker.addr.to_string(), "--exit-when-done"]);
    let (mut leech, _) = start_peer("leech", cmd);
    let legacy = expect_event!(leech, STEP, PeerEvent::PeerConnected { legacy, .. } => legacy);
    assert!(legacy);
    expect_done(&mut leech);
    assert!(leech.wait_exit(STEP).unwrap().success());
    assert!(same_file(&data_path, &dir.join("data.bin")));
    assert_eq!(
        seeder.join().unwrap(),
        1,
        "more than one request in flight to a legacy peer"
    );
}

#[test]
fn a_peer_of_the_original_protocol_downloads_from_us() {
    legacy_peer_downloads_from_a_seeder_with(&[]);
}

/// A super-seeder offers pieces one by one with Have, which the original
/// protocol does not know: such a peer gets the whole bitfield as usual.
#[test]
fn a_peer_of_the_original_protocol_downloads_from_a_super_seeder() {
    legacy_peer_downloads_from_a_seeder_with(&["--super-seed"]);
}

/// Our seeder, started with `seeder_args`, serves the whole file to a peer
/// of the original protocol.
fn legacy_peer_downloads_from_a_seeder_with(seeder_args: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let data_path = tmp.path().join("data.bin");
    write_random_file(&data_path, MIB, 12);
    let data = std::fs::read(&data_path).unwrap();
    let tracker = start_tracker(&[]);
    let torrent_path = create_torrent(
        &data_path,
        tracker.addr,
        Some(64 * KIB),
        &tmp.path().join("t.torrent"),
    );
    let t = load_torrent(&torrent_path);
    let seed_dir = tmp.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::copy(&data_path, seed_dir.join("data.bin")).unwrap();
    let mut cmd = peer_command(&torrent_path, &seed_dir);
    cmd.args(seeder_args);
    let (_seed, started) = start_peer("seed", cmd);
    let addr: SocketAddr = started.listen.parse().unwrap();

    // No handshake: open with our (empty) Bitfield, as the original peers do.
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    let n = t.info.piece_count();
    let mut ws = WireStream::new(stream, Some(n));
    ws.send(&Message::Bitfield(Bitfield::new(n))).unwrap();
    let Message::Bitfield(theirs) = ws.recv().unwrap() else {
        panic!("expected Bitfield first")
    };
    assert!(theirs.is_complete());
    ws.send(&Message::Interested).unwrap();
    let mut next = 0u32;
    loop {
        match ws.recv().unwrap() {
            Message::Unchoke => {
                ws.send(&Message::Request(next)).unwrap();
            }
            Message::Piece { index, data: got } => {
                assert_eq!(index, next);
                assert_eq!(got.to_vec(), piece_bytes(&data, &t, index), "piece {index}");
                next += 1;
                if next == n {
                    break;
                }
                ws.send(&Message::Request(next)).unwrap();
            }
            Message::Have(_) | Message::KeepAlive | Message::Cancel(_) => {
                panic!("sent a message the original protocol does not know")
            }
            _ => {}
        }
    }
}

/// Serves garbage for every piece, over our protocol.
fn lying_seeder(listener: TcpListener, t: Torrent) {
    let liar_id = PeerId(*b"-LIAR0-aaaaaaaaaaaaa");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let t = t.clone();
        std::thread::spawn(move || {
            let mut ws = WireStream::new(stream, Some(t.info.piece_count()));
            let Ok(Message::Handshake { .. }) = ws.recv() else {
                return;
            };
            let _ = ws.send(&Message::Handshake {
                info_hash: t.info_hash(),
                peer_id: liar_id,
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
    }
}

#[test]
fn liar_is_banned_and_the_file_still_comes_out_right() {
    let mut s = Scenario::new(4 * MIB, 64 * KIB, 13, &[]);
    let t = load_torrent(&s.torrent);
    let (_seed, _) = s.start_seeder("seed");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let liar_addr = listener.local_addr().unwrap();
    announce_fake(
        s.tracker.addr,
        liar_addr.port(),
        &t,
        Some(1),
        &"ab".repeat(20),
    );
    {
        let t = t.clone();
        std::thread::spawn(move || lying_seeder(listener, t));
    }

    let (mut leech, _) = start_peer("leech", s.leecher_command("leech"));
    let banned = expect_event!(leech, STEP, PeerEvent::PeerBanned { addr, .. } => addr);
    assert_eq!(banned, liar_addr.to_string());
    expect_done(&mut leech);
    assert!(leech.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy("leech"), "corrupt data was kept");
    let output = leech.output();
    let liar_connections = output
        .lines()
        .filter(|l| l.contains("\"peer_connected\"") && l.contains(&liar_addr.to_string()))
        .count();
    assert_eq!(liar_connections, 1, "the liar was reconnected:\n{output}");
}

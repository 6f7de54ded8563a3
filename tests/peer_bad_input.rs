//! A peer faced with bad input: unsafe torrents, garbage, oversize frames,
//! and connections that hang. It refuses clearly and keeps serving others.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lanswarm::expect_event;
use lanswarm::fixture::*;
use lanswarm::process::command;
use peer::events::Event;

#[test]
fn path_traversal_torrent_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let torrent = serde_json::json!({
        "announce": "127.0.0.1", "port": 6666, "comment": "",
        "info": {"piece_length": 4, "piece_hash": ["00".repeat(20)], "file_name": "../evil", "file_length": 3}
    });
    let path = tmp.path().join("evil.torrent");
    std::fs::write(&path, torrent.to_string()).unwrap();
    let dir = tmp.path().join("dl");
    let out = command("peer")
        .arg("--torrent")
        .arg(&path)
        .arg("--dir")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad input must exit 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("file_name") && stderr.contains("../evil"),
        "unclear error: {stderr}"
    );
    assert!(!tmp.path().join("evil").exists());
    assert!(!dir.exists(), "the download directory was created");
}

#[test]
fn malformed_torrent_is_refused_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.torrent");
    std::fs::write(&path, b"{\"announce\": ").unwrap();
    let out = command("peer")
        .arg("--torrent")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
}

/// Expects the peer to close `stream` (EOF or reset) within `within`.
fn expect_closed(mut stream: TcpStream, within: Duration, what: &str) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("{what}: connection still open after {within:?}")
            }
            Err(_) => return,
        }
    }
}

#[test]
fn garbage_oversize_and_hanging_connections_do_not_disturb_a_transfer() {
    let mut s = Scenario::new(4 << 20, 64 << 10, 21, &[]);
    let (mut seed, started) = s.start_seeder("seed");
    let addr: SocketAddr = started.listen.parse().unwrap();

    // Connects and says nothing.
    let hanging = TcpStream::connect(addr).unwrap();
    // Claims a 16 EiB frame.
    let mut oversize = TcpStream::connect(addr).unwrap();
    oversize.write_all(&[0xff; 8]).unwrap();
    // A well-formed frame holding an unknown message id.
    let mut unknown = TcpStream::connect(addr).unwrap();
    unknown
        .write_all(&[0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 99])
        .unwrap();
    // Random bytes.
    let mut garbage = TcpStream::connect(addr).unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    garbage.write_all(&noise).unwrap();

    let (mut leech, _) = start_peer("leech", s.leecher_command("leech"));
    expect_done(&mut leech);
    assert!(leech.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy("leech"));

    expect_closed(oversize, Duration::from_secs(5), "oversize frame");
    expect_closed(unknown, Duration::from_secs(5), "unknown message id");
    expect_closed(garbage, Duration::from_secs(5), "garbage");
    // The handshake timeout (10 s) ends the silent connection.
    expect_closed(hanging, Duration::from_secs(30), "hanging connection");
    let refused = expect_event!(seed, STEP, Event::PeerRefused { reason, .. } => reason);
    assert!(!refused.is_empty());
    // The seeder is still up and serving.
    assert!(TcpStream::connect(addr).is_ok());
}

#[test]
fn wrong_info_hash_and_our_own_peer_id_are_refused() {
    let mut s = Scenario::new(1 << 20, 64 << 10, 22, &[]);
    let (mut seed, started) = s.start_seeder("seed");
    let addr: SocketAddr = started.listen.parse().unwrap();
    let own_id: wire::PeerId = started.peer_id.parse().unwrap();
    let info_hash = load_torrent(&s.torrent).info_hash();
    let cases = [
        (
            wire::InfoHash([9; 20]),
            wire::PeerId([1; 20]),
            "info hash mismatch",
        ),
        (info_hash, own_id, "connected to ourselves"),
    ];
    for (hash, id, reason) in cases {
        let stream = TcpStream::connect(addr).unwrap();
        let mut ws = WireStream::new(stream.try_clone().unwrap(), None);
        ws.send(&wire::Message::Handshake {
            info_hash: hash,
            peer_id: id,
        })
        .unwrap();
        expect_closed(stream, Duration::from_secs(10), reason);
        let refused = expect_event!(seed, STEP, Event::PeerRefused { reason, .. } => reason);
        assert!(refused.contains(reason), "{refused}");
    }
}

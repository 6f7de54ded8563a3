//! Peers and their trackers, on loopback:
//!
//! - a peer given three trackers, the first refusing connections, fails
//!   over to the next and completes;
//! - the seed's original tracker, written here as the seed has it (one
//!   connection at a time, only `started` and `completed`, an unframed error
//!   for anything else, no `interval`, and dead after a request without
//!   `event`), serves a swarm of our peers to completion, and our peers
//!   leave it with `completed`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

use lanswarm::expect_event;
use lanswarm::fixture::{
    create_torrent, expect_done, read_frame, start_peer, start_tracker, Scenario, STEP,
};
use peer::events::Event;
use serde_json::{json, Value};

/// An address nothing listens on: connections to it are refused.
fn refusing_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn a_peer_given_three_trackers_skips_the_one_that_refuses() {
    let mut s = Scenario::new(1 << 20, 64 << 10, 11, &[]);
    let spare = start_tracker(&[]);
    let _seeder = s.start_seeder("seed");
    let refused = refusing_addr().to_string();
    let good = s.tracker.addr.to_string();
    let mut cmd = s.leecher_command("leech");
    for t in [&refused, &good, &spare.addr.to_string()] {
        cmd.args(["--tracker", t]);
    }
    let (mut leech, _) = start_peer("leech", cmd);
    let error = expect_event!(leech, STEP, Event::TrackerError { error } => error);
    assert!(error.contains(&refused), "{error}");
    let to = expect_event!(leech, STEP, Event::Announced { tracker, .. } => tracker);
    assert_eq!(to, good, "the next tracker in the list");
    expect_done(&mut leech);
    assert_eq!(leech.wait_exit(STEP).unwrap().code(), Some(0));
    assert!(s.has_right_copy("leech"));
}

/// One request as the seed's tracker saw it.
#[derive(Debug)]
struct Seen {
    peer_id: String,
    event: Option<String>,
}

/// The seed's tracker: answers `started` (registering the peer) and
/// `completed` (removing it: "I am leaving") with a framed reply without
/// `interval`; anything else gets an unframed error; a request without
/// `event` kills it. One connection at a time, no timeouts. The thread
/// returns why it died.
fn seeds_tracker() -> (SocketAddr, Receiver<Seen>, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut peers: BTreeMap<String, Value> = BTreeMap::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(body) = read_frame(&mut stream, 1 << 20) else {
                continue;
            };
            let Ok(req) = serde_json::from_slice::<Value>(&body) else {
                let _ = stream.write_all(b"error: bad request");
                continue;
            };
            let peer_id = req["peer_id"].as_str().unwrap_or_default().to_string();
            let event = req["event"].as_str().map(str::to_string);
            let _ = tx.send(Seen {
                peer_id: peer_id.clone(),
                event: event.clone(),
            });
            let src = stream.peer_addr().unwrap();
            let reply = match event.as_deref() {
                None => {
                    let _ = stream.write_all(b"error: no event");
                    return format!("{peer_id} sent a request without event");
                }
                Some("started") => {
                    let entry = json!({"peer-id": peer_id, "peer-ip": src.ip().to_string(),
                                       "peer-port": req["port"]});
                    peers.insert(peer_id.clone(), entry);
                    let others: Vec<&Value> = peers
                        .iter()
                        .filter(|(id, _)| **id != peer_id)
                        .map(|(_, e)| e)
                        .collect();
                    json!({"error_code": 0, "message": "started ACK",
                           "num-of-peer": others.len(), "peers": others})
                }
                Some("completed") => {
                    peers.remove(&peer_id);
                    json!({"error_code": 0, "message": "completed ACK",
                           "num-of-peer": peers.len(), "peers": []})
                }
                Some(other) => {
                    let _ = write!(stream, "error: unsupported event {other}");
                    continue;
                }
            };
            let _ = lanio::frame::write_frame(&mut stream, reply.to_string().as_bytes());
        }
        "the listener failed".to_string()
    });
    (addr, rx, thread)
}

#[test]
fn the_seeds_tracker_serves_our_swarm_and_hears_completed_when_we_leave() {
    let (tracker, seen, thread) = seeds_tracker();
    let tmp = tempfile::tempdir().unwrap();
    let s = Scenario::new(1 << 20, 64 << 10, 12, &[]);
    let torrent = create_torrent(
        &s.data,
        tracker,
        Some(64 << 10),
        &tmp.path().join("seeds.torrent"),
    );
    let seed_dir = s.seed_dir("seed");
    let (mut seeder, started) =
        start_peer("seed", lanswarm::fixture::peer_command(&torrent, &seed_dir));
    let mut ids = vec![started.peer_id];
    let mut leechers = Vec::new();
    for name in ["l1", "l2"] {
        let mut cmd = lanswarm::fixture::peer_command(&torrent, &s.path(name));
        cmd.arg("--exit-when-done");
        let (proc, started) = start_peer(name, cmd);
        ids.push(started.peer_id);
        leechers.push(proc);
    }
    for l in &mut leechers {
        expect_done(l);
        assert_eq!(l.wait_exit(STEP).unwrap().code(), Some(0), "{}", l.output());
    }
    seeder.signal(libc::SIGTERM);
    assert_eq!(seeder.wait_exit(STEP).unwrap().code(), Some(0));
    for name in ["l1", "l2"] {
        assert!(s.has_right_copy(name), "{name}");
    }
    assert!(!thread.is_finished(), "the seed's tracker died");

    // Every request carried started or completed; each peer's last one,
    // and only that one, was completed.
    let mut by_peer: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for req in seen.try_iter() {
        by_peer.entry(req.peer_id).or_default().push(req.event);
    }
    for id in &ids {
        let events = by_peer
            .get(id)
            .unwrap_or_else(|| panic!("{id} never announced"));
        let (last, before) = events.split_last().unwrap();
        assert_eq!(last.as_deref(), Some("completed"), "{id}: {events:?}");
        assert!(
            before.iter().all(|e| e.as_deref() == Some("started")),
            "{id}: {events:?}"
        );
    }
    // No request on a connection we did not use: the tracker still serves.
    let mut probe = TcpStream::connect(tracker).unwrap();
    probe.set_read_timeout(Some(STEP)).unwrap();
    lanio::frame::write_frame(
        &mut probe,
        br#"{"port":1,"peer_id":"probe","event":"started"}"#,
    )
    .unwrap();
    assert!(read_frame(&mut probe, 1 << 20).is_ok());
}

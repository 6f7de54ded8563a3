//! The tracker's protocol and views, through a real process: peers meeting
//! in swarms, seed-style one-shot clients, completed/stopped, expiry, the
//! default swarm from `--torrent`, `tracker status` and shutdown.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use lanio::frame::encode;
use lanswarm::fixture::{start_tracker, tracker_command, TrackerProc};
use lanswarm::process::{command, Proc, Stream};
use lanswarm::tracker_client::{announce_body, assert_serves, Client, WAIT};
use tempfile::TempDir;
use tracker::Event;
use wire::Torrent;

const H1: &str = "1111111111111111111111111111111111111111";
const H2: &str = "2222222222222222222222222222222222222222";

fn ports(r: &wire::tracker::AnnounceResponse) -> BTreeSet<u16> {
    r.peers.iter().map(|p| p.peer_port).collect()
}

#[test]
fn many_requests_on_one_connection() {
    let tracker = start_tracker(&["--interval", "42"]);
    let addr = tracker.addr;
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    let r = a.request(&announce_body(7001, "a", r#","event":"started","proto":1"#));
    assert_eq!((r.error_code, r.num_of_peer, r.interval), (0, 0, Some(42)));
    let r = b.request(&announce_body(7002, "b", r#","event":"started""#));
    assert_eq!(r.num_of_peer, 1);
    assert_eq!(r.peers[0].peer_id, "a");
    assert_eq!(r.peers[0].peer_ip, "127.0.0.1");
    assert_eq!(r.peers[0].proto, Some(1));
    for _ in 0..10 {
        let r = a.request(&announce_body(7001, "a", ""));
        assert_eq!(r.message, "started ACK");
        assert_eq!(ports(&r), BTreeSet::from([7002]), "never the requester");
        assert_eq!(r.peers[0].proto, None);
    }
}

#[test]
fn seed_style_one_request_per_connection() {
    let mut tracker = start_tracker(&[]);
    let addr = tracker.addr;
    for i in 0..5u16 {
        let mut c = Client::connect(addr);
        let id = format!("127.0.0.1:{}", 6881 + i);
        let r = c.request(&announce_body(
            6881 + i,
            &id,
            r#","event":"started","ip":"127.0.0.1""#,
        ));
        assert_eq!(r.num_of_peer, u32::from(i));
        drop(c);
        let joined = tracker.wait_event(WAIT, |e| match e {
            Event::Join { peer, .. } => Some(peer),
            _ => None,
        });
        assert_eq!(joined.peer_id, id);
        assert_eq!(joined.addr, id.parse().unwrap());
    }
    let mut c = Client::connect(addr);
    let r = c.request(&announce_body(
        6881,
        "127.0.0.1:6881",
        r#","event":"stopped""#,
    ));
    assert_eq!(r.message, "disconnect ACK");
    assert_eq!(r.num_of_peer, 4);
    let left = tracker.wait_event(WAIT, |e| match e {
        Event::Leave(peer) => Some(peer),
        _ => None,
    });
    assert_eq!(left.addr, "127.0.0.1:6881".parse().unwrap());
    let mut c = Client::connect(addr);
    let r = c.request(&announce_body(6885, "127.0.0.1:6885", ""));
    assert_eq!(ports(&r), BTreeSet::from([6882, 6883, 6884]));
}

#[test]
fn numwant_limits_the_list() {
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    for port in 7001..7061 {
        c.request(&announce_body(port, "p", ""));
    }
    let r = c.request(&announce_body(7001, "p", ""));
    assert_eq!(
        (r.num_of_peer, r.peers.len()),
        (59, 50),
        "default numwant is 50"
    );
    let r = c.request(&announce_body(7001, "p", r#","numwant":3"#));
    assert_eq!((r.num_of_peer, r.peers.len()), (59, 3));
    let r = c.request(&announce_body(7001, "p", r#","numwant":1000"#));
    assert_eq!(r.peers.len(), 59);
    assert!(!ports(&r).contains(&7001));
}

#[test]
fn swarms_are_separated_by_info_hash() {
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    let in1 = format!(r#","info_hash":"{H1}""#);
    let in2 = format!(r#","info_hash":"{H2}""#);
    c.request(&announce_body(7001, "a", &in1));
    c.request(&announce_body(7002, "b", &in1));
    c.request(&announce_body(7003, "c", &in2));
    c.request(&announce_body(7004, "d", ""));
    assert_eq!(
        ports(&c.request(&announce_body(7001, "a", &in1))),
        BTreeSet::from([7002])
    );
    let r = c.request(&announce_body(7003, "c", &in2));
    assert_eq!(r.num_of_peer, 0);
    let r = c.request(&announce_body(7004, "d", ""));
    assert_eq!(r.num_of_peer, 0, "default swarm is its own swarm");
}

#[test]
fn completed_from_a_seed_protocol_peer_means_it_leaves() {
    let mut tracker = start_tracker(&[]);
    let mut c = Client::connect(tracker.addr);
    for port in [6881, 6882] {
        let id = format!("127.0.0.1:{port}");
        c.request(&announce_body(port, &id, r#","event":"started""#));
    }
    // No proto: the seed's peers say `completed` when their user quits.
    let r = c.request(&announce_body(
        6881,
        "127.0.0.1:6881",
        r#","event":"completed""#,
    ));
    assert_eq!(r.error_code, 0);
    let left = tracker.wait_event(WAIT, |e| match e {
        Event::Leave(peer) => Some(peer),
        _ => None,
    });
    assert_eq!(left.addr, "127.0.0.1:6881".parse().unwrap());
    let r = c.request(&announce_body(6882, "127.0.0.1:6882", ""));
    assert!(r.peers.is_empty(), "{r:?}");
}

#[test]
fn completed_peer_stays_listed_as_a_seed() {
    let mut tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    c.request(&announce_body(7001, "a", r#","event":"started""#));
    let r = c.request(&announce_body(
        7001,
        "a",
        r#","event":"completed","proto":1"#,
    ));
    assert_eq!(r.error_code, 0);
    let seed = tracker.wait_event(WAIT, |e| match e {
        Event::Seed(peer) => Some(peer),
        _ => None,
    });
    assert_eq!(seed.addr, "127.0.0.1:7001".parse().unwrap());
    let r = c.request(&announce_body(7002, "b", r#","event":"started""#));
    assert_eq!(ports(&r), BTreeSet::from([7001]));
    let status = status_json(addr);
    let peers = status["swarms"][0]["peers"].as_array().unwrap();
    let a = peers.iter().find(|p| p["peer-port"] == 7001).unwrap();
    let b = peers.iter().find(|p| p["peer-port"] == 7002).unwrap();
    assert_eq!(
        (a["seed"].as_bool(), b["seed"].as_bool()),
        (Some(true), Some(false))
    );
}

#[test]
fn ip_field_is_ignored_unless_trusted() {
    for (flag, expected) in [(None, "127.0.0.1"), (Some("--trust-ip-field"), "10.1.2.3")] {
        let tracker = start_tracker(flag.as_slice());
        let addr = tracker.addr;
        let mut c = Client::connect(addr);
        c.request(&announce_body(7001, "a", r#","ip":"10.1.2.3""#));
        let r = c.request(&announce_body(7002, "b", ""));
        assert_eq!(r.peers[0].peer_ip, expected, "flag {flag:?}");
    }
}

#[test]
fn silent_peers_expire_after_two_intervals() {
    let mut tracker = start_tracker(&["--interval", "1"]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    let r = c.request(&announce_body(7001, "quiet", r#","event":"started""#));
    assert_eq!(r.interval, Some(1));
    let gone = tracker.wait_event(WAIT, |e| match e {
        Event::Expire(peer) => Some(peer),
        _ => None,
    });
    assert_eq!(gone.peer_id, "quiet");
    // The log line comes on stderr, which may trail the event on stdout.
    let logged = tracker
        .proc
        .output()
        .lines()
        .any(|l| l.starts_with("err| ") && l.contains("expire"))
        || tracker
            .proc
            .wait_for(WAIT, |stream, l| {
                stream == lanswarm::process::Stream::Stderr && l.contains("expire")
            })
            .is_ok();
    assert!(logged, "not logged:\n{}", tracker.proc.output());
    let r = c.request(&announce_body(7002, "late", ""));
    assert_eq!(r.num_of_peer, 0, "expired peer still listed");
    let status = status_json(addr);
    let peers = status["swarms"][0]["peers"].as_array().unwrap();
    assert!(peers.iter().all(|p| p["peer-id"] != "quiet"));
}

fn write_torrent(dir: &std::path::Path, file_name: &str) -> (std::path::PathBuf, String) {
    let json = format!(
        r#"{{"announce":"127.0.0.1","port":6666,"comment":"test","info":{{"piece_length":4,"piece_hash":["{}"],"file_name":"{file_name}","file_length":3}}}}"#,
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    let path = dir.join(format!("{file_name}.torrent"));
    std::fs::write(&path, &json).unwrap();
    let hash = Torrent::from_json(json.as_bytes())
        .unwrap()
        .info_hash()
        .to_hex();
    (path, hash)
}

/// A tracker whose default swarm is a torrent for `file_name`; returns the
/// tracker and the info hash (and the directory that must outlive the test).
fn start_with_torrent(file_name: &str) -> (TempDir, TrackerProc, String) {
    let dir = tempfile::tempdir().unwrap();
    let (path, hash) = write_torrent(dir.path(), file_name);
    let tracker = start_tracker(&["--torrent", path.to_str().unwrap()]);
    (dir, tracker, hash)
}

#[test]
fn default_swarm_comes_from_the_torrent() {
    let (_dir, tracker, hash) = start_with_torrent("movie.mkv");
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    // A seed-protocol peer (no info_hash) and one of ours (with it) meet.
    c.request(&announce_body(
        6881,
        "127.0.0.1:6881",
        r#","event":"started""#,
    ));
    let r = c.request(&announce_body(
        7001,
        "ours",
        &format!(r#","info_hash":"{hash}","proto":1"#),
    ));
    assert_eq!(ports(&r), BTreeSet::from([6881]));
    let status = status_json(addr);
    assert_eq!(status["swarms"][0]["info_hash"], hash.as_str());
    assert_eq!(status["swarms"][0]["file_name"], "movie.mkv");
    assert_eq!(status["swarms"][0]["peers"].as_array().unwrap().len(), 2);
}

/// Runs `tracker status --addr ADDR ARGS…`; expects success, returns stdout.
fn status(addr: SocketAddr, args: &[&str]) -> String {
    let out = command("tracker")
        .args(["status", "--addr", &addr.to_string()])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tracker status failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn status_json(addr: SocketAddr) -> serde_json::Value {
    let text = status(addr, &["--json"]);
    assert_eq!(text.lines().count(), 1, "--json prints one object: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn status_table_and_json() {
    let (_dir, tracker, hash) = start_with_torrent("talk.mp4");
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    c.request(&announce_body(
        6881,
        "seeder-1",
        r#","event":"completed","proto":1"#,
    ));
    c.request(&announce_body(6882, "leecher-2", r#","event":"started""#));
    c.request(&announce_body(
        7001,
        "elsewhere",
        &format!(r#","info_hash":"{H1}""#),
    ));

    let table = status(addr, &[]);
    let default_block = table.split("\n\n").next().unwrap();
    assert!(default_block.contains(&format!("swarm {hash}")), "{table}");
    assert!(default_block.contains("file: talk.mp4"), "{table}");
    let seeder = default_block
        .lines()
        .find(|l| l.contains("seeder-1"))
        .expect(&table);
    assert!(
        seeder.contains("127.0.0.1:6881") && seeder.contains("seed"),
        "{seeder}"
    );
    assert!(seeder.contains("s ago"), "{seeder}");
    let leecher = default_block
        .lines()
        .find(|l| l.contains("leecher-2"))
        .expect(&table);
    assert!(leecher.contains("leech"), "{leecher}");
    assert!(
        table.contains(&format!("swarm {H1}  file: (unknown)")),
        "{table}"
    );

    let v = status_json(addr);
    let swarms = v["swarms"].as_array().unwrap();
    assert_eq!(swarms.len(), 2);
    assert_eq!(swarms[1]["info_hash"], H1);
    assert_eq!(swarms[1]["file_name"], serde_json::Value::Null);
    let peer = &swarms[0]["peers"][0];
    assert_eq!(peer["peer-id"], "seeder-1");
    assert_eq!(peer["peer-ip"], "127.0.0.1");
    assert_eq!(peer["peer-port"], 6881);
    assert_eq!(peer["seed"], true);
    assert!(peer["last_seen_secs"].as_f64().unwrap() >= 0.0);
}

#[test]
fn sigterm_exits_0_and_closes_connections() {
    let mut tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    c.request(&announce_body(7001, "a", ""));
    tracker.proc.signal(libc::SIGTERM);
    tracker.wait_event(WAIT, |e| match e {
        Event::Shutdown { .. } => Some(()),
        _ => None,
    });
    c.expect_closed();
    let status = tracker.proc.wait_exit(WAIT).unwrap();
    assert_eq!(status.code(), Some(0), "{}", tracker.proc.output());
}

#[test]
fn sigterm_finishes_replies_in_flight() {
    let mut tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    // Many requests in one write: SIGTERM arrives while they are being answered.
    let one = announce_body(7001, "busy", "");
    c.send_raw(&encode(one.as_bytes()).repeat(2000));
    let first = c.recv().unwrap();
    assert!(!first.is_empty());
    tracker.proc.signal(libc::SIGTERM);
    // Every reply that was started arrives whole; then a clean close.
    for reply in c.expect_closed() {
        let r = wire::tracker::AnnounceResponse::parse(&reply).unwrap();
        assert_eq!(r.error_code, 0);
    }
    let status = tracker.proc.wait_exit(WAIT).unwrap();
    assert_eq!(status.code(), Some(0), "{}", tracker.proc.output());
}

#[test]
fn sigint_exits_0() {
    let mut tracker = start_tracker(&[]);
    tracker.proc.signal(libc::SIGINT);
    let status = tracker.proc.wait_exit(Duration::from_secs(10)).unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn listening_line_names_the_bound_address() {
    // Spawned here, not by start_tracker: this test reads the start itself.
    let mut tracker = Proc::spawn("tracker", tracker_command(&[]));
    // The log line (stderr) and the JSON event (stdout), in either order.
    let listening = |line: &str| match serde_json::from_str(line) {
        Ok(Event::Listening { addr }) => Some(addr),
        _ => None,
    };
    let (mut logged, mut event) = (None, None);
    while logged.is_none() || event.is_none() {
        let line = tracker
            .wait_for(WAIT, |stream, l| match stream {
                Stream::Stderr => l.contains("listening on "),
                Stream::Stdout => listening(l).is_some(),
            })
            .unwrap();
        match listening(&line) {
            Some(addr) => event = Some(addr),
            None => {
                let addr = line.rsplit("listening on ").next().unwrap().trim();
                logged = Some(addr.parse::<SocketAddr>().unwrap());
            }
        }
    }
    let (logged, event) = (logged.unwrap(), event.unwrap());
    assert_eq!(logged, event);
    let addr = logged;
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the real bound port is reported");
    assert_serves(addr);
}

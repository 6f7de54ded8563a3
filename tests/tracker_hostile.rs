//! The tracker against one hostile host (issue 14, items 7 and 9): a flood
//! of swarms, and requests that try to remove, replace or invent other
//! peers' entries. Each attack runs beside an honest client, which is still
//! served. (Connection hogging, item 8: `tracker_defence.rs`, and the soak
//! example with 10,000 idle connections.)

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use lanswarm::fixture::*;
use lanswarm::tracker_client::Client;
use wire::tracker::{AnnounceResponse, StatusResponse};

fn ip(a: u8, b: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, a, b))
}

/// A client connected from `from` (any 127.0.0.0/8 address on loopback).
fn client_from(from: IpAddr, tracker: SocketAddr) -> Client {
    let stream = connect_from(from, tracker).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    Client { stream }
}

fn announce(port: u16, peer_id: &str, hash: &str, extra: &str) -> String {
    format!(r#"{{"port":{port},"peer_id":"{peer_id}","info_hash":"{hash}"{extra}}}"#)
}

fn hash(n: u64) -> String {
    format!("{n:040x}")
}

fn status(c: &mut Client) -> (StatusResponse, usize) {
    let reply = c.request_raw(br#"{"request":"status"}"#);
    (serde_json::from_slice(&reply).unwrap(), reply.len())
}

#[test]
fn a_flood_of_swarms_from_one_host_is_capped_and_others_are_still_served() {
    let tracker = start_tracker(&["--max-swarms-per-ip", "50"]);
    let mut honest = client_from(ip(5, 2), tracker.addr);
    let h = hash(0xabc);
    let t = Instant::now();
    assert_eq!(
        honest
            .request(&announce(7000, "honest-a", &h, ""))
            .error_code,
        0
    );
    let baseline = t.elapsed();
    let before = status(&mut honest).0.totals.expect("totals").swarms;

    let mut flooder = client_from(ip(5, 1), tracker.addr);
    let (mut accepted, mut refused) = (0, 0);
    for n in 0..2_000u64 {
        let r = flooder.request(&announce(9000, "flood", &hash(1_000_000 + n), ""));
        if r.error_code == 0 {
            accepted += 1;
        } else {
            assert!(r.message.contains("swarm"), "{}", r.message);
            refused += 1;
        }
    }
    assert_eq!(accepted, 50, "{refused} refused");

    // The honest host still registers and finds its peer, about as fast.
    let mut other = client_from(ip(5, 3), tracker.addr);
    let t = Instant::now();
    let r = other.request(&announce(7001, "honest-b", &h, ""));
    let attacked = t.elapsed();
    assert_eq!(r.error_code, 0, "{r:?}");
    assert!(r.peers.iter().any(|p| p.peer_id == "honest-a"), "{r:?}");
    assert!(
        attacked < baseline * 20 + STEP / 10,
        "{attacked:?} against {baseline:?}"
    );
    // The registry holds 50 more swarms, and says so in a bounded reply.
    let (st, bytes) = status(&mut other);
    let totals = st.totals.expect("totals");
    assert_eq!(totals.swarms, before + 50, "{totals:?}");
    assert!(bytes < 64 * 1024, "status reply of {bytes} bytes");
}

#[test]
fn only_torrents_refuses_unknown_swarms() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.bin");
    write_random_file(&data, 100_000, 3);
    let torrent = create_torrent(
        &data,
        "127.0.0.1:1".parse().unwrap(),
        None,
        &dir.path().join("t.torrent"),
    );
    let known = load_torrent(&torrent).info_hash().to_hex();
    let t = torrent.to_str().unwrap();
    let tracker = start_tracker(&["--torrent", t, "--only-torrents"]);
    let mut c = Client::connect(tracker.addr);
    c.expect_error(
        announce(7000, "x", &hash(42), "").as_bytes(),
        "serves only the swarms of its torrent files",
    );
    assert_eq!(c.request(&announce(7000, "x", &known, "")).error_code, 0);
}

#[test]
fn nobody_removes_replaces_or_invents_another_peers_entry() {
    let relays = "127.0.7.0/24";
    let tracker = start_tracker(&["--trust-ip-from", relays]);
    let h = hash(0x5eed);
    let mut real = client_from(ip(6, 1), tracker.addr);
    assert_eq!(real.request(&announce(7001, "real", &h, "")).error_code, 0);

    // Same host, another peer id: no `stopped`, no takeover of the address.
    let mut spoofer = client_from(ip(6, 1), tracker.addr);
    let r = spoofer.request(&announce(7001, "spoof", &h, r#","event":"stopped""#));
    assert_eq!(r.error_code, 1, "{r:?}");
    let r = spoofer.request(&announce(7001, "spoof", &h, r#","proto":1"#));
    assert_eq!(r.error_code, 1, "{r:?}");
    // An `ip` field from a host that is not a named relay is not believed.
    let mut liar = client_from(ip(6, 2), tracker.addr);
    let _ = liar.request(&announce(22, "liar", &h, r#","ip":"10.9.9.9""#));

    let mut third = client_from(ip(6, 3), tracker.addr);
    let r: AnnounceResponse = third.request(&announce(7003, "third", &h, ""));
    let real_entry = r
        .peers
        .iter()
        .find(|p| p.peer_port == 7001)
        .expect("real listed");
    assert_eq!(real_entry.peer_id, "real");
    assert_eq!(real_entry.peer_ip, "127.0.6.1");
    assert!(
        r.peers.iter().all(|p| p.peer_ip != "10.9.9.9"),
        "a stranger listed another host: {r:?}"
    );

    // A relay the operator named may speak for another address.
    let mut relay = client_from(ip(7, 1), tracker.addr);
    let r = relay.request(&announce(7004, "relayed", &h, r#","ip":"10.1.2.3""#));
    assert_eq!(r.error_code, 0, "{r:?}");
    let r = third.request(&announce(7003, "third", &h, ""));
    assert!(
        r.peers
            .iter()
            .any(|p| p.peer_ip == "10.1.2.3" && p.peer_port == 7004),
        "{r:?}"
    );
}

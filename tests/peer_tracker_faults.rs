//! A peer facing a misbehaving tracker: malformed and error replies are
//! logged and retried with backoff, and never crash the peer.

use std::net::TcpListener;

use lanio::frame::write_frame;
use lanswarm::expect_event;
use lanswarm::fixture::*;
use peer::events::Event;
use wire::tracker::{AnnounceResponse, PeerEntry};

#[test]
fn malformed_and_error_replies_are_retried_until_a_good_one() {
    // A real tracker for the seeder; a scripted one for the leecher.
    let mut s = Scenario::new(1 << 20, 64 << 10, 31, &[]);
    let (_seed, seed_ev) = s.start_seeder("seed");
    let seed_addr: std::net::SocketAddr = seed_ev.listen.parse().unwrap();

    let scripted = TcpListener::bind("127.0.0.1:0").unwrap();
    let scripted_addr = scripted.local_addr().unwrap();
    let script = std::thread::spawn(move || {
        let good = AnnounceResponse {
            error_code: 0,
            message: "started ACK".into(),
            num_of_peer: 1,
            peers: vec![PeerEntry {
                peer_id: seed_ev.peer_id.clone(),
                peer_ip: seed_addr.ip().to_string(),
                peer_port: seed_addr.port(),
                proto: Some(1),
            }],
            interval: Some(60),
        };
        let replies: Vec<Vec<u8>> = vec![
            b"this is not json".to_vec(),
            AnnounceResponse::error("tracker overloaded").to_json(),
            good.to_json(),
        ];
        for reply in replies {
            let (mut s, _) = scripted.accept().unwrap();
            read_frame(&mut s, 1 << 20).unwrap();
            write_frame(&mut s, &reply).unwrap();
            // Closes after every reply, as the seed's tracker does.
        }
    });

    let mut cmd = s.leecher_command("leech");
    cmd.args(["--tracker", &scripted_addr.to_string()]);
    let (mut leech, _) = start_peer("leech", cmd);
    let first = expect_event!(leech, STEP, Event::TrackerError { error } => error);
    assert!(first.contains("malformed"), "{first}");
    let second = expect_event!(leech, STEP, Event::TrackerError { error } => error);
    assert!(second.contains("tracker overloaded"), "{second}");
    expect_done(&mut leech);
    script.join().unwrap();
    assert!(s.has_right_copy("leech"));
}

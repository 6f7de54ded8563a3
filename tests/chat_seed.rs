//! The seed's chat protocol (UDP text) against `tracker --seed-udp`: a UDP
//! client written here, from the protocol's description, registers, shows
//! up in a `peer chat` member's `/who`, and text flows both ways; two
//! trackers on one host share their lists over 228.0.0.1:9999.
//!
//! Each test runs in its own network namespace (so the group, its port and
//! the seed's fixed ports are the test's alone, and nothing reaches a real
//! network); without root they print why and skip.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};

use lanswarm::chat_lab::{Member, T};
use lanswarm::expect_event;
use lanswarm::mcast_lab::lab;
use lanswarm::netns::Host;
use lanswarm::process::{bin_path, Proc};
use tracker::Event as TrackerEvent;
use wire::seed_chat::{parse_list, SEED_GROUP};

/// `tracker --json --listen LISTEN --interval 1 --seed-udp SEED_PORT` on
/// `host` (the seed group is the default, 228.0.0.1:9999), once it listens.
fn tracker_on(host: &Host, name: &str, listen: &str, seed_port: &str) -> Proc {
    let mut cmd = host.command(bin_path("tracker"));
    cmd.args(["--json", "--listen", listen, "--interval", "1"])
        .args(["--seed-udp", seed_port]);
    let mut proc = Proc::spawn(name, cmd);
    expect_event!(proc, T, TrackerEvent::Listening { .. });
    proc
}

/// Waits for the tracker to list `id` (a seed client's `ip:port`).
fn expect_join(tracker: &mut Proc, id: &str) {
    expect_event!(tracker, T, TrackerEvent::Join { peer, .. } if peer.peer_id == id);
}

fn expect_leave(tracker: &mut Proc, id: &str) {
    expect_event!(tracker, T, TrackerEvent::Leave(peer) if peer.peer_id == id);
}

/// A seed client: a UDP socket inside `host`'s namespace.
struct SeedClient {
    socket: UdpSocket,
}

impl SeedClient {
    fn new(host: &Host) -> SeedClient {
        SeedClient::bound(host, "127.0.0.1:0")
    }

    fn bound(host: &Host, addr: &'static str) -> SeedClient {
        let socket = host
            .ns()
            .run_inside(|| UdpSocket::bind(addr))
            .unwrap()
            .unwrap();
        socket.set_read_timeout(Some(T)).unwrap();
        SeedClient { socket }
    }

    /// `ip:port`, as the directory lists it.
    fn id(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    fn send(&self, text: &str, to: impl std::net::ToSocketAddrs) {
        self.socket.send_to(text.as_bytes(), to).unwrap();
    }

    fn recv(&self) -> (String, SocketAddr) {
        let mut buf = [0u8; 65536];
        let (n, from) = self.socket.recv_from(&mut buf).expect("a datagram in time");
        (String::from_utf8(buf[..n].to_vec()).unwrap(), from)
    }

    /// `READY` to a server, and the list it answers with.
    fn register(&self, server: &str) -> Vec<SocketAddrV4> {
        self.send("READY", server);
        let (text, from) = self.recv();
        assert_eq!(from.to_string(), server);
        let list = parse_list(&text, 100);
        assert_eq!(list.dropped, 0, "{text}");
        list.addrs
    }
}

#[test]
fn a_seed_client_registers_shows_up_and_talks_both_ways() {
    let Some(lan) = lab(1) else {
        return;
    };
    let host = lan.host(0);
    let mut tracker = tracker_on(host, "tracker", "127.0.0.1:6666", "8000");
    let mut cmd = host.command(bin_path("peer"));
    cmd.args([
        "chat",
        "--json",
        "--name",
        "ann",
        "--tracker",
        "127.0.0.1:6666",
    ])
    .args(["--listen", "127.0.0.1:0"]);
    let mut ann = Member::spawn("ann", cmd);

    let client = SeedClient::new(host);
    let id = client.id();
    let list = client.register("127.0.0.1:8000");
    expect_join(&mut tracker, &id);
    let me: SocketAddrV4 = id.parse().unwrap();
    let ann_addr = match ann.listen {
        SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    assert!(list.contains(&me), "{list:?}");
    assert!(
        list.contains(&ann_addr),
        "our member is in the list: {list:?}"
    );

    // Ann sees the client join, and lists it.
    ann.expect_joined(&id);
    assert_eq!(ann.who().0, std::slice::from_ref(&id));

    // Datagrams both ways.
    client.send("hello from the seed \x1b[2J", ann_addr);
    assert_eq!(
        ann.expect_message(),
        (id.clone(), "hello from the seed \\u{1b}[2J".into(), false)
    );
    ann.line("hello, seed client");
    assert_eq!(client.recv(), ("hello, seed client".into(), ann.listen));
    ann.line(&format!("/msg {id} just for you"));
    assert_eq!(client.recv().0, "just for you");

    // What is not the protocol is dropped and counted, never evaluated.
    client.send("__import__('os').system('id')", "127.0.0.1:8000");
    expect_event!(tracker, T, TrackerEvent::SeedDropped { dropped: 1, .. });

    client.send("QUIT_CLIENT", "127.0.0.1:8000");
    expect_leave(&mut tracker, &id);
    ann.expect_left(&id);
}

#[test]
fn two_trackers_on_one_host_share_their_lists_over_the_group() {
    let Some(lan) = lab(1) else {
        return;
    };
    let host = lan.host(0);
    let mut a = tracker_on(host, "tracker-a", "127.0.0.1:6666", "8000");
    let mut b = tracker_on(host, "tracker-b", "127.0.0.1:6667", "8001");

    // X registers with A: B hears of it over the group.
    let x = SeedClient::new(host);
    let x_list = x.register("127.0.0.1:8000");
    assert!(x_list.contains(&x.id().parse().unwrap()));
    expect_join(&mut a, &x.id());
    expect_join(&mut b, &x.id());

    // Y registers with B and gets the union: X (from A) and itself.
    let y = SeedClient::new(host);
    let y_list = y.register("127.0.0.1:8001");
    for c in [&x, &y] {
        assert!(y_list.contains(&c.id().parse().unwrap()), "{y_list:?}");
    }
    expect_join(&mut a, &y.id());

    // A stranger's datagram on the group is dropped and counted by both.
    let stranger = SeedClient::bound(host, "0.0.0.0:0");
    stranger.send(
        "INSERT_CLIENTS_DATA __import__('os').system('id')",
        SEED_GROUP,
    );
    for t in [&mut a, &mut b] {
        expect_event!(t, T, TrackerEvent::SeedDropped { reason, .. } if reason.contains("address"));
    }

    // X quits at A: both forget it.
    x.send("QUIT_CLIENT", "127.0.0.1:8000");
    expect_leave(&mut a, &x.id());
    expect_leave(&mut b, &x.id());
}

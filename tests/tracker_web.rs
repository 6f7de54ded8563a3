//! `tracker --http`: the web page's API through a real tracker process and
//! plain HTTP (no browser): the status listing, the live event stream, the
//! subscriber cap, read-only methods, and a subscriber that stops reading.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lanswarm::fixture::{start_web_tracker, STEP};
use lanswarm::process::command;
use lanswarm::tracker_client::{announce_body, Client, WAIT};
use lanswarm::web_client::{get, request, EventStream, Opened};
use serde_json::Value;

const H1: &str = "1111111111111111111111111111111111111111";

/// The status listing without what moves by itself between two reads.
fn steady(mut status: Value) -> Value {
    for swarm in status["swarms"].as_array_mut().expect("swarms") {
        for peer in swarm["peers"].as_array_mut().expect("peers") {
            peer.as_object_mut().unwrap().remove("last_seen_secs");
        }
    }
    status["stats"]
        .as_object_mut()
        .expect("stats")
        .remove("announces_per_sec");
    status
}

fn open_events(http: SocketAddr) -> EventStream {
    match EventStream::open(http, "/api/events", WAIT) {
        Opened::Stream(s) => s,
        Opened::Refused(r) => panic!("/api/events refused: {} {}", r.status, r.text()),
    }
}

/// One counter from `/api/status`.
fn counter(http: SocketAddr, name: &str) -> u64 {
    get(http, "/api/status", WAIT).json()["stats"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name}"))
}

#[test]
fn api_status_is_the_same_data_as_tracker_status_json() {
    let (tracker, http) = start_web_tracker(&[]);
    let mut c = Client::connect(tracker.addr);
    let progress = r#","event":"started","left":300,"downloaded":700"#;
    c.request(&announce_body(7001, "a", progress));
    // proto 1: one of our peers, for which `completed` means "now a seed".
    c.request(&announce_body(
        7002,
        "b",
        r#","event":"completed","proto":1"#,
    ));
    c.request(&announce_body(
        7003,
        "c",
        &format!(r#","info_hash":"{H1}""#),
    ));
    c.expect_error(br#"{"port":0,"peer_id":"x"}"#, "'port'");

    let reply = get(http, "/api/status", WAIT);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), "application/json");
    let api = reply.json();
    let out = command("tracker")
        .args(["status", "--json", "--addr", &tracker.addr.to_string()])
        .output()
        .expect("run tracker status");
    assert!(out.status.success(), "{out:?}");
    let cli: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(steady(api.clone()), steady(cli));

    let a = &api["swarms"][0]["peers"][0];
    assert_eq!(
        (a["peer-id"].as_str(), a["left"].as_u64()),
        (Some("a"), Some(300))
    );
    assert_eq!(a["downloaded"], 700);
    let b = &api["swarms"][0]["peers"][1];
    assert_eq!(b["seed"], true);
    assert!(b.get("left").is_none(), "no progress announced: {b}");
    assert_eq!(api["swarms"][1]["info_hash"], H1);
    assert_eq!(api["stats"]["announces"], 3);
    assert_eq!(api["stats"]["bad_requests"], 1);
    assert!(api.get("replicas").is_none() && api.get("rooms").is_none());
}

#[test]
fn api_events_streams_joins_seeds_and_leaves_as_they_happen() {
    let (tracker, http) = start_web_tracker(&[]);
    let mut events = open_events(http);
    let mut c = Client::connect(tracker.addr);
    let started = Instant::now();
    c.request(&announce_body(
        7001,
        "a",
        &format!(r#","event":"started","info_hash":"{H1}""#),
    ));
    let join = events.next_event("join", STEP).expect("a join event");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "join took {:?}",
        started.elapsed()
    );
    assert_eq!(join["info_hash"], H1);
    assert_eq!(join["peer_id"], "a");
    assert_eq!(join["addr"], "127.0.0.1:7001");
    assert_eq!(join["seed"], false);
    c.request(&announce_body(
        7001,
        "a",
        &format!(r#","event":"completed","proto":1,"info_hash":"{H1}""#),
    ));
    assert_eq!(
        events.next_event("seed", STEP).expect("a seed event")["peer_id"],
        "a"
    );
    c.request(&announce_body(
        7001,
        "a",
        &format!(r#","event":"stopped","info_hash":"{H1}""#),
    ));
    let leave = events.next_event("leave", STEP).expect("a leave event");
    assert_eq!(leave["addr"], "127.0.0.1:7001");
    // The counters come once a second.
    let stats = events.next_event("stats", STEP).expect("a stats event");
    assert_eq!(stats["announces"], 3);
}

#[test]
fn subscribers_beyond_the_cap_get_503_until_one_leaves() {
    let (_tracker, http) = start_web_tracker(&["--http-max-subscribers", "2"]);
    let first = open_events(http);
    let _second = open_events(http);
    let Opened::Refused(refused) = EventStream::open(http, "/api/events", WAIT) else {
        panic!("a third subscriber was let in");
    };
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), "5");
    assert!(
        refused.text().contains("2 event subscribers"),
        "{}",
        refused.text()
    );
    assert_eq!(counter(http, "subscribers_refused"), 1);
    // The page and the status listing are still served.
    assert_eq!(get(http, "/", WAIT).status, 200);
    drop(first);
    // The server notices the closed stream at its next write (the counters,
    // once a second) and frees the slot.
    let deadline = Instant::now() + STEP;
    loop {
        match EventStream::open(http, "/api/events", WAIT) {
            Opened::Stream(_) => break,
            Opened::Refused(r) => {
                assert_eq!(r.status, 503);
                assert!(Instant::now() < deadline, "the slot was never freed");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

#[test]
fn page_and_api_are_read_only() {
    let (_tracker, http) = start_web_tracker(&[]);
    let page = get(http, "/", WAIT);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert!(page.text().contains("<title>lanswarm tracker</title>"));
    assert!(
        !page.text().contains("http://") && !page.text().contains("https://"),
        "the page fetches nothing from elsewhere"
    );
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    for path in ["/", "/api/status", "/api/events"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = request(http, method, path, WAIT);
            assert_eq!(r.status, 405, "{method} {path}");
            assert!(
                r.header("allow").contains("GET"),
                "{method} {path}: {:?}",
                r.headers
            );
        }
        assert_eq!(request(http, "HEAD", path, WAIT).status, 200, "HEAD {path}");
    }
    assert_eq!(get(http, "/api/nothing", WAIT).status, 404);
}

/// Reads the resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// `cycles` join + stop announces on one connection; the slowest of them.
fn churn(tracker: SocketAddr, cycles: u16) -> Duration {
    let mut c = Client::connect(tracker);
    let mut worst = Duration::ZERO;
    for i in 0..cycles {
        let port = 10_000 + i;
        for event in ["started", "stopped"] {
            let t = Instant::now();
            let r = c.request(&announce_body(port, "p", &format!(r#","event":"{event}""#)));
            worst = worst.max(t.elapsed());
            assert_eq!(r.error_code, 0);
        }
    }
    worst
}

#[test]
fn a_subscriber_that_never_reads_is_dropped_without_slowing_announces() {
    let (tracker, http) =
        start_web_tracker(&["--http-max-subscribers", "1", "--idle-timeout", "2"]);
    // Warm up, then measure the slowest announce with nobody subscribed.
    churn(tracker.addr, 200);
    let baseline = churn(tracker.addr, 1000);
    let rss_before = rss_kib(tracker.proc.pid());

    // A subscriber with a tiny receive window that never reads a byte.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&http.into()).expect("connect");
    let mut stalled: TcpStream = socket.into();
    // A misbehaving client, so its request is written by hand.
    write!(stalled, "GET /api/events HTTP/1.1\r\nHost: {http}\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // 8,000 events (about 1 MB of stream) that it never takes.
    let worst = churn(tracker.addr, 4000);
    let rss_after = rss_kib(tracker.proc.pid());
    eprintln!(
        "slowest announce: {baseline:?} alone, {worst:?} beside the stalled subscriber; \
         RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        worst < baseline.max(Duration::from_millis(100)) * 10,
        "announces slowed down: {worst:?} (alone: {baseline:?})"
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "tracker grew from {rss_before} to {rss_after} KiB"
    );
    // It is dropped within the idle timeout, and its slot is free again.
    let deadline = Instant::now() + STEP;
    while counter(http, "subscribers_dropped") == 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled subscriber was never dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut events = open_events(http);
    Client::connect(tracker.addr).request(&announce_body(7001, "after", r#","event":"started""#));
    assert_eq!(
        events.next_event("join", STEP).expect("join")["peer_id"],
        "after"
    );
    drop(stalled);
}

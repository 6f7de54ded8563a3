//! The tracker defends itself: an oversize frame, bytes that are not a frame,
//! an idle or half-sent connection, too many connections, or a client that
//! never reads its replies only ever affect that one connection. After each,
//! a well-behaved client on another connection still gets its answer.

mod tracker_util;

use std::io::ErrorKind;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use tracker_util::{announce, assert_serves, start, Client, WAIT};
use wire::tracker::AnnounceResponse;

#[test]
fn oversize_frame_closes_only_that_connection() {
    let (_tracker, addr) = start(&[]);
    let mut bystander = Client::connect(addr);
    bystander.request(&announce(7001, "bystander", ""));
    let mut c = Client::connect(addr);
    c.send_raw(&[0xff; 8]);
    assert!(
        c.expect_closed().is_empty(),
        "tracker answered an oversize frame"
    );
    assert_serves(addr);
    // The connection opened before is untouched.
    assert_eq!(
        bystander
            .request(&announce(7001, "bystander", ""))
            .error_code,
        0
    );
}

#[test]
fn large_but_legal_looking_length_closes_the_connection() {
    // 1 MiB is far below u64::MAX but above the tracker's request limit.
    let (_tracker, addr) = start(&[]);
    let mut c = Client::connect(addr);
    c.send_raw(&(1u64 << 20).to_be_bytes());
    c.expect_closed();
    assert_serves(addr);
}

#[test]
fn bytes_that_are_not_a_frame_close_only_that_connection() {
    let (_tracker, addr) = start(&[]);
    let mut c = Client::connect(addr);
    c.send_raw(b"GET /announce?port=6881 HTTP/1.1\r\nHost: tracker\r\n\r\n");
    assert!(c.expect_closed().is_empty());
    assert_serves(addr);
}

#[test]
fn connection_ending_inside_a_frame_is_closed() {
    let (_tracker, addr) = start(&[]);
    let mut c = Client::connect(addr);
    c.send_raw(&[0, 0, 0, 0, 0, 0, 0, 40, b'{', b'"']);
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert!(c.expect_closed().is_empty());
    assert_serves(addr);
}

#[test]
fn idle_connection_times_out() {
    let (_tracker, addr) = start(&["--idle-timeout", "0.5"]);
    let opened = Instant::now();
    let mut idle = Client::connect(addr);
    // Served while the idle one waits.
    assert_serves(addr);
    idle.expect_closed();
    // The tracker's clock starts at accept, after `opened`.
    assert!(
        opened.elapsed() >= Duration::from_millis(500),
        "closed after {:?}, before the idle timeout",
        opened.elapsed()
    );
    assert_serves(addr);
}

#[test]
fn half_sent_request_times_out() {
    let (_tracker, addr) = start(&["--idle-timeout", "0.5"]);
    let mut half = Client::connect(addr);
    // A header announcing 100 bytes, then only 10 of them.
    half.send_raw(&100u64.to_be_bytes());
    half.send_raw(br#"{"port":70"#);
    assert_serves(addr);
    half.expect_closed();
    assert_serves(addr);
}

#[test]
fn a_connection_keeps_serving_while_it_is_active() {
    // The idle timeout bounds each wait for a request, not the connection's life.
    let (_tracker, addr) = start(&["--idle-timeout", "0.5"]);
    let mut c = Client::connect(addr);
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(c.request(&announce(7001, "steady", "")).error_code, 0);
        served += 1;
    }
    assert!(served > 1);
}

#[test]
fn connection_cap_refuses_excess_connections() {
    let (_tracker, addr) = start(&["--max-connections", "2"]);
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    // Both are being served, so both hold a slot.
    a.request(&announce(7001, "a", ""));
    b.request(&announce(7002, "b", ""));
    let mut excess = Client::connect(addr);
    let frames = excess.expect_closed();
    let refusal = frames.first().expect("a refusal message before the close");
    let r = AnnounceResponse::parse(refusal).unwrap();
    assert_eq!(r.error_code, 1);
    assert!(r.message.contains("busy"), "{}", r.message);
    // The connections already open are still served.
    assert_eq!(b.request(&announce(7002, "b", "")).error_code, 0);
    // Freeing a slot lets a newcomer in (the tracker notices the close
    // asynchronously, so retry until the deadline).
    drop(a);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = Client::connect(addr);
        c.send_frame(announce(7003, "newcomer", "").as_bytes());
        let reply = AnnounceResponse::parse(&c.recv().expect("some reply")).unwrap();
        if reply.error_code == 0 {
            break;
        }
        assert!(reply.message.contains("busy"), "{reply:?}");
        assert!(
            Instant::now() < deadline,
            "no slot freed after closing a connection"
        );
    }
}

#[test]
fn a_hanging_client_does_not_stop_others() {
    // Default 30 s idle timeout: the hanging client stays connected throughout.
    let (_tracker, addr) = start(&[]);
    let mut hang = Client::connect(addr);
    hang.send_raw(&50u64.to_be_bytes());
    hang.send_raw(b"{\"port\":");
    let started = Instant::now();
    for i in 0..20 {
        let mut c = Client::connect(addr);
        let r = c.request(&announce(8000 + i, "other", r#","event":"started""#));
        assert_eq!(r.error_code, 0);
    }
    assert!(started.elapsed() < WAIT);
    // It is still connected (not timed out yet), and others were served.
    hang.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let still_open = matches!(
        std::io::Read::read(&mut hang.stream, &mut byte),
        Err(e) if e.kind() == ErrorKind::WouldBlock
    );
    assert!(still_open, "the hanging client was dropped early");
}

#[test]
fn a_client_that_never_reads_does_not_stop_others() {
    let (_tracker, addr) = start(&[]);
    // Fifty peers make every reply a few kilobytes.
    for i in 0..50 {
        let mut c = Client::connect(addr);
        c.request(&announce(9000 + i, "filler", ""));
    }
    let mut greedy = Client::connect(addr);
    greedy
        .stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let request = announce(7001, "greedy", "");
    let mut frame = (request.len() as u64).to_be_bytes().to_vec();
    frame.extend_from_slice(request.as_bytes());
    let batch = frame.repeat(256);
    // Write until the socket stops taking data: both directions are then
    // backed up and the tracker's task for this connection is stuck on send.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match std::io::Write::write(&mut greedy.stream, &batch) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write failed before the buffers filled: {e}"),
        }
        assert!(Instant::now() < deadline, "socket buffers never filled");
    }
    assert_serves(addr);
    let mut c = Client::connect(addr);
    // 50 fillers, the greedy client and the well-behaved one.
    assert_eq!(c.request(&announce(7002, "x", "")).num_of_peer, 52);
}

//! The tracker defends itself: an oversize frame, bytes that are not a frame,
//! an idle or half-sent connection, too many connections, or a client that
//! never reads its replies only ever affect that one connection. After each,
//! a well-behaved client on another connection still gets its answer. A
//! stdout that nobody reads does not stall it either.

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lanio::frame::{encode, header};
use lanswarm::fixture::{start_tracker, tracker_command, STEP};
use lanswarm::tracker_client::{announce_body, assert_serves, Client, WAIT};
use tracker::events::{Event, PeerEvent};
use wire::tracker::AnnounceResponse;
use wire::InfoHash;

#[test]
fn oversize_frame_closes_only_that_connection() {
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut bystander = Client::connect(addr);
    bystander.request(&announce_body(7001, "bystander", ""));
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
            .request(&announce_body(7001, "bystander", ""))
            .error_code,
        0
    );
}

#[test]
fn large_but_legal_looking_length_closes_the_connection() {
    // 1 MiB is far below u64::MAX but above the tracker's request limit.
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    c.send_raw(&header(1 << 20));
    c.expect_closed();
    assert_serves(addr);
}

#[test]
fn bytes_that_are_not_a_frame_close_only_that_connection() {
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    c.send_raw(b"GET /announce?port=6881 HTTP/1.1\r\nHost: tracker\r\n\r\n");
    assert!(c.expect_closed().is_empty());
    assert_serves(addr);
}

#[test]
fn connection_ending_inside_a_frame_is_closed() {
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    c.send_raw(&[&header(40)[..], b"{\""].concat());
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert!(c.expect_closed().is_empty());
    assert_serves(addr);
}

#[test]
fn idle_connection_times_out() {
    let tracker = start_tracker(&["--idle-timeout", "0.5"]);
    let addr = tracker.addr;
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
    let tracker = start_tracker(&["--idle-timeout", "0.5"]);
    let addr = tracker.addr;
    let mut half = Client::connect(addr);
    // A header announcing 100 bytes, then only 10 of them.
    half.send_raw(&header(100));
    half.send_raw(br#"{"port":70"#);
    assert_serves(addr);
    half.expect_closed();
    assert_serves(addr);
}

#[test]
fn a_connection_keeps_serving_while_it_is_active() {
    // The idle timeout bounds each wait for a request, not the connection's life.
    let tracker = start_tracker(&["--idle-timeout", "0.5"]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(c.request(&announce_body(7001, "steady", "")).error_code, 0);
        served += 1;
    }
    assert!(served > 1);
}

#[test]
fn at_the_connection_cap_the_longest_idle_connection_gives_way() {
    let tracker = start_tracker(&["--max-connections", "2"]);
    let addr = tracker.addr;
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    // Both are being served, so both hold a slot; then `a` idles first.
    a.request(&announce_body(7001, "a", ""));
    b.request(&announce_body(7002, "b", ""));
    // A newcomer takes the slot of the connection idle the longest (idle
    // for at least a quarter second; until then it is refused as busy).
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = Client::connect(addr);
        c.send_frame(announce_body(7003, "newcomer", "").as_bytes());
        let reply = AnnounceResponse::parse(&c.recv().expect("some reply")).unwrap();
        if reply.error_code == 0 {
            break;
        }
        assert!(reply.message.contains("busy"), "{reply:?}");
        assert!(Instant::now() < deadline, "no idle connection gave way");
    }
    // `a` was closed for it; `b`, idle for less long, is still served.
    a.expect_closed();
    assert_eq!(b.request(&announce_body(7002, "b", "")).error_code, 0);
}

#[test]
fn a_hanging_client_does_not_stop_others() {
    // Default 30 s idle timeout: the hanging client stays connected throughout.
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut hang = Client::connect(addr);
    hang.send_raw(&header(50));
    hang.send_raw(b"{\"port\":");
    let started = Instant::now();
    for i in 0..20 {
        let mut c = Client::connect(addr);
        let r = c.request(&announce_body(8000 + i, "other", r#","event":"started""#));
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
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    // Fifty peers make every reply a few kilobytes.
    for i in 0..50 {
        let mut c = Client::connect(addr);
        c.request(&announce_body(9000 + i, "filler", ""));
    }
    let mut greedy = Client::connect(addr);
    greedy
        .stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let request = announce_body(7001, "greedy", "");
    let batch = encode(request.as_bytes()).repeat(256);
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
    assert_eq!(c.request(&announce_body(7002, "x", "")).num_of_peer, 52);
}

/// Kills and reaps the child when the test ends, passed or failed.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_stdout_nobody_reads_does_not_stall_the_tracker() {
    const JOINS: u16 = 5000;
    // Not Proc::spawn, which drains stdout: here stdout is a pipe that is
    // held open and not read until every announce has been answered. The
    // log goes to a file, which never fills.
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Reaped(
        tracker_command(&[])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(log.path()).unwrap();
    let stdout = child.0.stdout.take().unwrap();
    // SAFETY: F_GETPIPE_SZ only reads the pipe's capacity.
    let capacity = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(capacity > 0, "not a pipe");
    let mut out = BufReader::new(stdout);
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let Ok(Event::Listening { addr }) = serde_json::from_str(&first) else {
        panic!("first line {first:?} is not the listening event\n{}", log())
    };

    // Every announce is a new peer, so every one is a `join` event. A writer
    // that blocked once the pipe and the reader's buffer were full would
    // stop answering a small fraction of the way through.
    let joins: Vec<Event> = (0..JOINS)
        .map(|i| Event::Join {
            peer: PeerEvent {
                info_hash: InfoHash::default(),
                peer_id: format!("p{i}"),
                addr: ([127, 0, 0, 1], 10_000 + i).into(),
            },
            seed: false,
        })
        .collect();
    let event_bytes: usize = joins
        .iter()
        .map(|e| serde_json::to_string(e).unwrap().len() + 1)
        .sum();
    let unread_room = capacity as usize + out.capacity();
    assert!(
        event_bytes > 4 * unread_room,
        "{event_bytes} bytes of events would fit in a {capacity}-byte pipe"
    );
    assert!(
        event_bytes < lanio::events::DEFAULT_BUDGET,
        "the events must fit in the writer's queue"
    );
    let started = Instant::now();
    let mut c = Client::connect(addr);
    for e in &joins {
        let Event::Join { peer, .. } = e else {
            unreachable!()
        };
        let body = announce_body(peer.addr.port(), &peer.peer_id, r#","numwant":1"#);
        let r = c.request(&body);
        assert_eq!(r.error_code, 0, "{r:?}");
    }
    let took = started.elapsed();
    assert!(took < STEP, "{JOINS} announces took {took:?}");

    // Now read: every event was queued, none dropped, `shutdown` comes last.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = out.lines().map_while(Result::ok).collect();
        let _ = tx.send(lines);
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let lines = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("stdout not closed after SIGTERM\n{}", log()));
    let events: Vec<Event> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let (last, seen) = events.split_last().expect("events after listening");
    assert!(
        matches!(last, Event::Shutdown { .. }),
        "last event {last:?}"
    );
    assert_eq!(seen, joins, "the join events, in order, none dropped");
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", log());
}

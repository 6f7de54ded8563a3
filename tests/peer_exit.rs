//! A finished peer leaves: `--exit-when-done` exits promptly when its
//! tracker stops answering, and a reader that never drains `--json`
//! output does not hold the peer (issue 14, "also found").

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use lanswarm::expect_event;
use lanswarm::fixture::*;
use peer::events::Event;
use wire::tracker::{AnnounceResponse, PeerEntry};

/// A tracker that answers the first announce with `seeder`, then accepts
/// every connection and never answers again (it keeps them open).
fn tracker_that_goes_silent(seeder: SocketAddr, seeder_id: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for (n, stream) in listener.incoming().flatten().enumerate() {
            if n > 0 {
                held.push(stream);
                continue;
            }
            let mut stream = stream;
            if read_frame(&mut stream, 1 << 20).is_err() {
                continue;
            }
            let reply = AnnounceResponse {
                error_code: 0,
                message: "started ACK".into(),
                num_of_peer: 1,
                peers: vec![PeerEntry {
                    peer_id: seeder_id.clone(),
                    peer_ip: seeder.ip().to_string(),
                    peer_port: seeder.port(),
                    proto: Some(1),
                }],
                interval: Some(3600),
            };
            let body = reply.to_json();
            let _ = stream.write_all(&(body.len() as u64).to_be_bytes());
            let _ = stream.write_all(&body);
        }
    });
    addr
}

#[test]
fn exit_when_done_leaves_promptly_when_the_tracker_stops_answering() {
    let mut s = Scenario::new(2 << 20, 64 << 10, 51, &[]);
    let (_seed, started) = s.start_seeder("seed");
    let silent = tracker_that_goes_silent(started.listen.parse().unwrap(), started.peer_id);
    let mut cmd = s.leecher_command("leech");
    cmd.args(["--tracker", &silent.to_string()]);
    let (mut leech, _) = start_peer("leech", cmd);
    expect_event!(leech, STEP, Event::Announced { peers: 1, .. });
    expect_done(&mut leech);
    let done_at = Instant::now();
    let status = leech.wait_exit(STEP).unwrap();
    let took = done_at.elapsed();
    assert!(status.success());
    assert!(s.has_right_copy("leech"));
    // Before, each of three `completed` announces waited 10 s for a reply,
    // with backoffs between: 36 s or more.
    assert!(
        took < Duration::from_secs(20),
        "exited {took:?} after done:\n{}",
        leech.output()
    );
}

/// A pipe whose buffer is full: what is written to its write end blocks
/// until someone reads the read end. Returns (read end, write end).
fn full_pipe() -> (std::fs::File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills in two new descriptors, which we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let filler = write.try_clone().unwrap();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(filler.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(filler.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut filler = std::fs::File::from(filler);
    for chunk in [4096, 1] {
        let bytes = vec![b'x'; chunk];
        while filler.write(&bytes).is_ok() {}
    }
    (std::fs::File::from(read), write)
}

#[test]
fn a_reader_that_never_drains_json_output_does_not_hold_the_peer() {
    let mut s = Scenario::new(4 << 20, 64 << 10, 52, &[]);
    let _seed = s.start_seeder("seed");
    let (mut read, write) = full_pipe();
    let mut cmd = s.leecher_command("leech");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    // The download runs and the process exits although stdout never moves.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > STEP {
            let _ = child.kill();
            panic!("the peer did not exit with its stdout stalled");
        }
        // Polling an exit status; nothing else to wait on.
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(s.has_right_copy("leech"));
    // Nothing got through: the reader was stalled all along.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut buf = Vec::new();
    let _ = read.read_to_end(&mut buf);
    assert!(!buf.is_empty() && buf.iter().all(|&b| b == b'x'));
}

//! `peer fetch` against servers that misbehave, and `peer serve` against
//! clients that vanish. A failed fetch exits non-zero and leaves neither OUT
//! nor its temporary file; a vanished client costs the server nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lanswarm::expect_event;
use lanswarm::files::{assert_same_file, dir_entries};
use lanswarm::transfer::{random_file, start_fetch, start_server, WAIT};
use peer::events::Event;

/// A one-connection server written for the test: accepts one client, sends
/// `bytes`, then either closes at once or holds the connection open until the
/// returned sender is dropped.
fn fake_server(bytes: Vec<u8>, hold_open: bool) -> (String, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let _ = sock.write_all(&bytes);
        if hold_open {
            // Hang: send nothing more until the test is over.
            let _ = release_rx.recv();
        }
    });
    (addr, release_tx)
}

/// A frame header announcing `len` bytes, followed by `sent` bytes of body.
fn partial_frame(len: u64, sent: usize) -> Vec<u8> {
    let mut v = lanio::frame::header(len).to_vec();
    v.extend(std::iter::repeat_n(0xab, sent));
    v
}

/// Runs `peer fetch` to completion and asserts it failed, leaving `dir` empty;
/// returns its output.
fn expect_failed_fetch(addr: &str, dir: &Path, extra: &[&str]) -> String {
    let mut fetch = start_fetch("fetch", addr, &dir.join("out.bin"), extra);
    let status = fetch.wait_exit(WAIT).unwrap();
    let output = fetch.output();
    assert!(!status.success(), "fetch should fail: {output}");
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        dir_entries(dir).is_empty(),
        "fetch left files behind: {:?}\n{output}",
        dir_entries(dir)
    );
    output
}

#[test]
fn a_server_that_dies_mid_file_is_a_short_stream_error() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _release) = fake_server(partial_frame(1_000_000, 300_000), false);
    let output = expect_failed_fetch(&addr, dir.path(), &[]);
    assert!(output.contains("short stream"), "{output}");
    assert!(output.contains("300000 of 1000000"), "{output}");
}

#[test]
fn a_length_beyond_the_free_space_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _release) = fake_server(partial_frame(u64::MAX, 10), false);
    let output = expect_failed_fetch(&addr, dir.path(), &[]);
    assert!(output.contains("not enough free space"), "{output}");
}

#[test]
fn a_length_beyond_max_size_is_refused_while_a_good_fetch_is_served() {
    let src = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "good.bin", 300_000);
    let (_server, good_addr) = start_server(&file, &[]);
    // The hostile server announces 1 MB and sends a little of it.
    let dir = tempfile::tempdir().unwrap();
    let (addr, _release) = fake_server(partial_frame(1_000_000, 1000), true);
    let output = expect_failed_fetch(&addr, dir.path(), &["--max-size", "500000"]);
    assert!(
        output.contains("announced 1000000 bytes, more than --max-size 500000"),
        "{output}"
    );
    // A file within the limit is fetched as usual.
    let good = tempfile::tempdir().unwrap();
    let out = good.path().join("out.bin");
    let mut fetch = start_fetch("good", &good_addr, &out, &["--max-size", "500000"]);
    assert!(
        fetch.wait_exit(WAIT).unwrap().success(),
        "{}",
        fetch.output()
    );
    assert_same_file(&file, &out);
}

#[test]
fn a_truncated_length_field_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _release) = fake_server(vec![0, 0, 1], false);
    let output = expect_failed_fetch(&addr, dir.path(), &[]);
    assert!(output.contains("reading the length"), "{output}");
}

#[test]
fn a_server_that_hangs_mid_file_trips_the_stall_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, release) = fake_server(partial_frame(1_000_000, 1000), true);
    let start = Instant::now();
    let output = expect_failed_fetch(&addr, dir.path(), &["--stall-timeout", "1"]);
    assert!(output.contains("stalled"), "{output}");
    assert!(start.elapsed() < WAIT);
    drop(release);
}

#[test]
fn a_server_that_never_sends_the_length_trips_the_stall_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, release) = fake_server(Vec::new(), true);
    let output = expect_failed_fetch(&addr, dir.path(), &["--stall-timeout", "1"]);
    assert!(output.contains("sent no length"), "{output}");
    drop(release);
}

#[test]
fn ctrl_c_during_a_fetch_exits_zero_and_removes_the_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, release) = fake_server(partial_frame(1_000_000, 1000), true);
    let out = dir.path().join("out.bin");
    let mut fetch = start_fetch("fetch", &addr, &out, &[]);
    expect_event!(fetch, WAIT, Event::Connected { .. });
    // The temporary file appears once the body starts arriving.
    let deadline = Instant::now() + WAIT;
    while !dir_entries(dir.path()).iter().any(|n| n.ends_with(".part")) {
        assert!(
            Instant::now() < deadline,
            "no temporary file: {}",
            fetch.output()
        );
        thread::sleep(Duration::from_millis(10));
    }
    fetch.signal(libc::SIGINT);
    let status = fetch.wait_exit(WAIT).unwrap();
    assert_eq!(status.code(), Some(0), "{}", fetch.output());
    assert!(fetch.output().contains("interrupted"), "{}", fetch.output());
    assert!(
        dir_entries(dir.path()).is_empty(),
        "{:?}",
        dir_entries(dir.path())
    );
    drop(release);
}

#[test]
fn serve_survives_a_client_that_leaves_early_and_serves_the_next() {
    let src_dir = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    // Far larger than the socket buffers, so the server is still sending when
    // the client goes away.
    let src = random_file(src_dir.path(), "data.bin", 48 * 1024 * 1024);
    let (mut server, addr) = start_server(&src, &[]);

    let mut quitter = TcpStream::connect(&addr).unwrap();
    let len = lanio::frame::read_header(&mut quitter, u64::MAX).unwrap();
    assert_eq!(len, Some(48 * 1024 * 1024));
    let mut some = [0u8; 4096];
    quitter.read_exact(&mut some).unwrap();
    drop(quitter);
    let failed = expect_event!(server, WAIT, Event::ClientFailed { bytes, .. } => bytes);
    assert!(failed < 48 * 1024 * 1024, "{failed}");

    let out = out_dir.path().join("copy.bin");
    let mut fetch = start_fetch("fetch", &addr, &out, &[]);
    let status = fetch.wait_exit(WAIT).unwrap();
    assert!(status.success(), "{}", fetch.output());
    assert_same_file(&src, &out);
    expect_event!(server, WAIT, Event::ClientDone { .. });
}

#[test]
fn a_client_that_sends_bytes_first_still_gets_the_whole_file() {
    // The seed's clients send nothing, but one that does (a stray request line)
    // leaves unread input at the server: closing then would reset the
    // connection and cut off the end of the file still in the send buffer.
    let src_dir = tempfile::tempdir().unwrap();
    let len = 24 * 1024 * 1024;
    let src = random_file(src_dir.path(), "data.bin", len);
    let (mut server, addr) = start_server(&src, &[]);

    let mut client = TcpStream::connect(&addr).unwrap();
    client.write_all(b"GET /file HTTP/1.0\r\n\r\n").unwrap();
    let mut received = Vec::new();
    client
        .set_read_timeout(Some(WAIT))
        .expect("set read timeout");
    client
        .read_to_end(&mut received)
        .expect("the stream ends cleanly, without a reset");
    assert_eq!(received.len(), 8 + len);
    assert_eq!(received[..8], lanio::frame::header(len as u64));
    assert!(received[8..] == std::fs::read(&src).unwrap()[..]);
    // The server counts the client done once it has closed its side too.
    drop(client);
    expect_event!(server, WAIT, Event::ClientDone { .. });
}

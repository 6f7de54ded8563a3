//! `peer serve` + `peer fetch` on 127.0.0.1: files arrive byte-identical, one
//! client or many at once, and both processes exit the way users expect.

use lanswarm::expect_event;
use lanswarm::files::{assert_same_file, dir_entries};
use lanswarm::process::command;
use lanswarm::transfer::{random_file, start_fetch, start_server, WAIT};
use peer::events::{Done, Event};

/// Fetches `len` random bytes from a server started with `serve_flags`.
fn round_trip(len: usize, serve_flags: &[&str]) {
    let src_dir = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let src = random_file(src_dir.path(), "data.bin", len);
    let (mut server, addr) = start_server(&src, serve_flags);

    let out = out_dir.path().join("copy.bin");
    let mut fetch = start_fetch("fetch", &addr, &out, &[]);
    let connected = expect_event!(fetch, WAIT, Event::Connected { bytes, .. } => bytes);
    assert_eq!(connected, len as u64, "{}", fetch.output());
    let (bytes, seconds, rate) = expect_event!(fetch, WAIT,
        Event::Done(Done::Fetch { bytes, seconds, rate, .. }) => (bytes, seconds, rate));
    assert_eq!(bytes, len as u64);
    assert!(seconds >= 0.0);
    assert!(rate.is_finite());
    let status = fetch.wait_exit(WAIT).unwrap();
    assert!(status.success(), "fetch failed: {}", fetch.output());

    assert_same_file(&src, &out);
    // Only the finished file: the temporary name is gone.
    assert_eq!(dir_entries(out_dir.path()), vec!["copy.bin".to_string()]);

    let served = expect_event!(server, WAIT, Event::ClientDone { bytes, .. } => bytes);
    assert_eq!(served, len as u64, "{}", server.output());
}

#[test]
fn fetch_receives_an_identical_file() {
    round_trip(3 * 1024 * 1024 + 12_345, &[]);
}

#[test]
fn fetch_receives_an_identical_file_from_the_copy_path() {
    round_trip(3 * 1024 * 1024 + 777, &["--copy"]);
}

#[test]
fn an_empty_file_is_served_and_fetched() {
    round_trip(0, &[]);
}

#[test]
fn many_clients_fetch_at_once() {
    const CLIENTS: usize = 6;
    let src_dir = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let src = random_file(src_dir.path(), "data.bin", 8 * 1024 * 1024 + 1);
    let (mut server, addr) = start_server(&src, &[]);

    let outs: Vec<_> = (0..CLIENTS)
        .map(|i| out_dir.path().join(format!("copy{i}.bin")))
        .collect();
    let mut fetches: Vec<_> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| start_fetch(&format!("fetch{i}"), &addr, out, &[]))
        .collect();
    for fetch in &mut fetches {
        let status = fetch.wait_exit(WAIT).unwrap();
        assert!(status.success(), "fetch failed: {}", fetch.output());
    }
    for out in &outs {
        assert_same_file(&src, out);
    }
    assert_eq!(dir_entries(out_dir.path()).len(), CLIENTS);
    for _ in 0..CLIENTS {
        expect_event!(server, WAIT, Event::ClientDone { .. });
    }
}

#[test]
fn serve_exits_zero_on_sigterm_and_sigint() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = random_file(src_dir.path(), "data.bin", 1000);
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let (mut server, _addr) = start_server(&src, &[]);
        server.signal(sig);
        let status = server.wait_exit(WAIT).unwrap();
        assert_eq!(status.code(), Some(0), "signal {sig}: {}", server.output());
    }
}

#[test]
fn serve_refuses_a_missing_file_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = command("peer")
        .arg("serve")
        .arg(dir.path().join("nope.bin"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope.bin"), "{stderr}");
}

#[test]
fn fetch_reports_bad_usage_and_refused_connections() {
    let dir = tempfile::tempdir().unwrap();
    // The output directory does not exist: bad input, exit 2.
    let out = command("peer")
        .args(["fetch", "127.0.0.1:9"])
        .arg("-o")
        .arg(dir.path().join("missing/out.bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // Nobody listens: runtime failure, exit 1, nothing written.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let out = command("peer")
        .args(["fetch", &addr, "--connect-timeout", "5"])
        .arg("-o")
        .arg(dir.path().join("out.bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(dir_entries(dir.path()).is_empty());

    // A nonsensical timeout is bad input.
    let out = command("peer")
        .args(["fetch", &addr, "--stall-timeout", "0"])
        .arg("-o")
        .arg(dir.path().join("out.bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

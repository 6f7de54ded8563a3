//! The `tracker` binary's command line: help, and refusing bad arguments
//! with a clear message and exit code 2.

use std::io::Write;
use std::process::Command;

fn tracker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracker"))
}

#[test]
fn help_explains_the_options_and_the_status_command() {
    let out = tracker().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--listen",
        "0.0.0.0:6666",
        "--interval",
        "--torrent",
        "--trust-ip-field",
        "--max-connections",
        "--idle-timeout",
        "--json",
        "status",
        "Exit codes",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let out = tracker().args(["status", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--addr") && help.contains("--json"), "{help}");
}

/// Runs the tracker with `--torrent PATH`; expects exit code 2 and returns stderr.
fn refused_torrent(path: &str) -> String {
    let out = tracker()
        .args(["--listen", "127.0.0.1:0", "--torrent", path])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_torrent_file_is_a_usage_error() {
    let err = refused_torrent("/nonexistent/x.torrent");
    assert!(err.contains("cannot read /nonexistent/x.torrent"), "{err}");
}

#[test]
fn invalid_torrent_file_is_a_usage_error() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"{\"announce\": \"x\"").unwrap();
    let err = refused_torrent(file.path().to_str().unwrap());
    assert!(err.contains("not a valid torrent"), "{err}");
}

#[test]
fn bad_numbers_are_usage_errors() {
    for args in [
        &["--interval", "0"][..],
        &["--idle-timeout", "-1"],
        &["--max-connections", "0"],
        &["--listen", "nowhere"],
    ] {
        let out = tracker().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn status_of_an_unreachable_tracker_exits_1() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tracker()
        .args(["status", "--addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
}

//! Runs the `mcast` binary: help text and bad input rejected before sending.
//!
//! None of these reach the network: every case fails validation first.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn mcast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcast"))
        .args(args)
        .output()
        .expect("running mcast")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_explains_commands_and_exit_codes() {
    let out = mcast(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["send", "recv", "probe", "chat", "Exit codes", "--json"] {
        assert!(text.contains(word), "--help lacks {word:?}:\n{text}");
    }
    let out = mcast(&["send", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--ttl",
        "--no-loop",
        "--iface",
        "--wait",
        "224.3.29.71",
        "10000",
    ] {
        assert!(text.contains(word), "send --help lacks {word:?}:\n{text}");
    }
}

#[test]
fn non_multicast_group_is_a_usage_error() {
    for cmd in ["send", "recv", "chat"] {
        let mut args = vec![cmd, "--group", "192.168.1.10"];
        if cmd == "chat" {
            args.extend(["--name", "x"]);
        }
        let out = mcast(&args);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not a multicast group"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn oversize_message_from_stdin_is_rejected_before_sending() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcast"))
        .args(["send", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Write on a thread: mcast stops reading after 65,508 bytes.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&vec![b'x'; 100_000]);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("at most 65507 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "nothing may be sent: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn oversize_ipv6_message_argument_is_rejected() {
    let big = "y".repeat(65_528);
    let out = mcast(&["send", &big, "--group", "ff15::1234"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("at most 65527 bytes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_interface_is_rejected_before_sending() {
    for args in [
        &["send", "--iface", "nosuchif9"][..],
        &["recv", "--iface", "nosuchif9"][..],
        &["probe", "send", "--iface", "192.0.2.77"][..],
    ] {
        let out = mcast(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        let err = stderr(&out);
        assert!(err.contains("interface") && err.contains("error"), "{err}");
    }
}

#[test]
fn bad_durations_and_sizes_are_usage_errors() {
    let out = mcast(&["send", "--wait", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid duration"),
        "{}",
        stderr(&out)
    );
    let out = mcast(&["probe", "send", "--size", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("probe header"), "{}", stderr(&out));
    let out = mcast(&["chat", "--name", ""]);
    assert_eq!(out.status.code(), Some(2));
    let out = mcast(&["send", "--ttl", "300"]);
    assert_eq!(out.status.code(), Some(2));
}

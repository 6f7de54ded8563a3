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

/// Asserts that `mcast ARGS…` prints help (exit 0) that mentions every word.
fn help_mentions(args: &[&str], words: &[&str]) {
    let out = mcast(args);
    assert!(out.status.success(), "{args:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<_> = words.iter().filter(|w| !text.contains(**w)).collect();
    assert!(missing.is_empty(), "{args:?} lacks {missing:?}:\n{text}");
}

/// Asserts that a run was refused as bad input: exit 2, nothing on stdout
/// (nothing was sent), and an `error:` on stderr that says every one of `says`.
fn refused(out: &Output, says: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing may be sent: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("mcast: error") || err.contains("error:"),
        "{err}"
    );
    for word in says {
        assert!(err.contains(word), "stderr lacks {word:?}: {err}");
    }
}

#[test]
fn help_explains_commands_and_exit_codes() {
    help_mentions(
        &["--help"],
        &[
            "send",
            "recv",
            "probe",
            "chat",
            "igmp",
            "groups",
            "querier",
            "Exit codes",
            "--json",
        ],
    );
    help_mentions(
        &["querier", "--help"],
        &["--interval", "--iface", "lower address", "125"],
    );
    help_mentions(&["igmp", "--help"], &["--iface", "--count", "checksum"]);
    help_mentions(
        &["send", "--help"],
        &[
            "--ttl",
            "--no-loop",
            "--iface",
            "--wait",
            "224.3.29.71",
            "10000",
        ],
    );
}

#[test]
fn non_multicast_group_is_a_usage_error() {
    for cmd in ["send", "recv", "chat"] {
        let mut args = vec![cmd, "--group", "192.168.1.10"];
        if cmd == "chat" {
            args.extend(["--name", "x"]);
        }
        refused(&mcast(&args), &["not a multicast group"]);
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
    refused(&out, &["at most 65507 bytes"]);
}

#[test]
fn oversize_ipv6_message_argument_is_rejected() {
    let big = "y".repeat(65_528);
    refused(
        &mcast(&["send", &big, "--group", "ff15::1234"]),
        &["at most 65527 bytes"],
    );
}

#[test]
fn unknown_interface_is_rejected_before_sending() {
    for args in [
        &["send", "--iface", "nosuchif9"][..],
        &["recv", "--iface", "nosuchif9"][..],
        &["probe", "send", "--iface", "192.0.2.77"][..],
    ] {
        refused(&mcast(args), &["interface"]);
    }
}

#[test]
fn bad_durations_and_sizes_are_usage_errors() {
    refused(&mcast(&["send", "--wait", "soon"]), &["invalid duration"]);
    refused(
        &mcast(&["probe", "send", "--size", "10"]),
        &["probe header"],
    );
    refused(&mcast(&["chat", "--name", ""]), &["--name"]);
    refused(&mcast(&["send", "--ttl", "300"]), &["--ttl"]);
}

#[test]
fn unknown_interfaces_are_refused_before_any_socket() {
    for sub in ["igmp", "groups", "querier"] {
        let out = mcast(&[sub, "--iface", "no-such-if0"]);
        refused(&out, &["no-such-if0"]);
    }
}

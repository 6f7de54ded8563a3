//! `mcast chat` with three members on three namespace hosts: join notices
//! (including the roster a newcomer learns), messages with names, escaping,
//! foreign datagrams ignored, leave notices. Needs root (skips otherwise).

use lanswarm::mcast_lab::*;
use mcast::events::{ChatMessage, ChatSummary};
use std::net::SocketAddr;

#[test]
fn chat_between_three_members() {
    let Some(lan) = lab(3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spawn = |i: usize, name: &str| {
        let mut m = Interactive::spawn(
            lan.host(i),
            dir.path(),
            name,
            &["chat", "--name", name, "--json"],
        );
        joined(&mut m.proc);
        m
    };
    let mut alice = spawn(0, "alice");
    let mut bob = spawn(1, "bob");
    assert_eq!(member_joined(&mut alice.proc), "bob");
    assert_eq!(
        member_joined(&mut bob.proc),
        "alice",
        "newcomers learn who is there"
    );
    let mut carol = spawn(2, "carol");
    assert_eq!(member_joined(&mut alice.proc), "carol");
    assert_eq!(member_joined(&mut bob.proc), "carol");
    let mut seen = [
        member_joined(&mut carol.proc),
        member_joined(&mut carol.proc),
    ];
    seen.sort();
    assert_eq!(seen, ["alice".to_string(), "bob".to_string()]);

    // A stranger's raw datagram on the chat port is ignored by everyone.
    send(
        lan.host(1),
        &[
            "not a chat packet",
            "--group",
            "224.3.29.73",
            "--port",
            "10003",
        ],
    );

    bob.line(b"hello from bob \x1b[31mred\x07");
    for m in [&mut alice, &mut carol] {
        let msg: ChatMessage = expect(&mut m.proc);
        assert_eq!(msg.name, "bob");
        assert_eq!(msg.text, "hello from bob \\u{1b}[31mred\\u{7}");
        assert_eq!(msg.from, SocketAddr::new(lan.host(1).ipv4().into(), 10003));
    }
    carol.line(b"gr\xc3\xbc\xc3\x9fe von carol \xff\r");
    for m in [&mut alice, &mut bob] {
        let msg: ChatMessage = expect(&mut m.proc);
        assert_eq!(
            (msg.name.as_str(), msg.text.as_str()),
            ("carol", "grüße von carol \\xff")
        );
    }

    // End of input: carol leaves; the others see it.
    carol.close_stdin();
    let summary: ChatSummary = expect(&mut carol.proc);
    assert_eq!(summary.sent, 1);
    assert_eq!(summary.received, 1, "carol saw bob's line, not her own");
    assert_eq!(summary.foreign, 1);
    assert!(carol.proc.wait_exit(T).unwrap().success());
    for m in [&mut alice, &mut bob] {
        assert_eq!(member_left(&mut m.proc), "carol");
    }

    // Ctrl-C: bob leaves cleanly with exit code 0.
    bob.proc.signal(libc::SIGINT);
    assert_eq!(expect::<ChatSummary>(&mut bob.proc).sent, 1);
    assert_eq!(bob.proc.wait_exit(T).unwrap().code(), Some(0));
    assert_eq!(member_left(&mut alice.proc), "bob");
}

//! `mcast chat` with three members on three namespace hosts: join notices
//! (including the roster a newcomer learns), messages with names, escaping,
//! foreign datagrams ignored, leave notices. Needs root (skips otherwise).

mod mcast_support;

use lanswarm::netns::skip_unless_root;
use mcast_support::*;

fn member_joined(m: &mut Interactive) -> String {
    m.proc.expect_event("member_joined", T)["name"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn chat_between_three_members() {
    if skip_unless_root("chat_between_three_members") {
        return;
    }
    let lan = lan(3);
    let dir = tempfile::tempdir().unwrap();
    let spawn = |i: usize, name: &str| {
        let mut m = Interactive::spawn(
            lan.host(i),
            dir.path(),
            name,
            &["chat", "--name", name, "--json"],
        );
        m.proc.expect_event("joined", T);
        m
    };
    let mut alice = spawn(0, "alice");
    let mut bob = spawn(1, "bob");
    assert_eq!(member_joined(&mut alice), "bob");
    assert_eq!(
        member_joined(&mut bob),
        "alice",
        "newcomers learn who is there"
    );
    let mut carol = spawn(2, "carol");
    assert_eq!(member_joined(&mut alice), "carol");
    assert_eq!(member_joined(&mut bob), "carol");
    let mut seen = [member_joined(&mut carol), member_joined(&mut carol)];
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
        let msg = m.proc.expect_event("message", T);
        assert_eq!(msg["name"], "bob");
        assert_eq!(msg["text"], "hello from bob \\u{1b}[31mred\\u{7}");
        assert_eq!(msg["from"], format!("{}:10003", lan.host(1).ipv4()));
    }
    carol.line(b"gr\xc3\xbc\xc3\x9fe von carol \xff\r");
    for m in [&mut alice, &mut bob] {
        let msg = m.proc.expect_event("message", T);
        assert_eq!(
            (msg["name"].as_str(), msg["text"].as_str()),
            (Some("carol"), Some("grüße von carol \\xff"))
        );
    }

    // End of input: carol leaves; the others see it.
    carol.close_stdin();
    let summary = carol.proc.expect_event("summary", T);
    assert_eq!(summary["sent"], 1);
    assert_eq!(summary["received"], 1, "carol saw bob's line, not her own");
    assert_eq!(summary["foreign"], 1);
    assert!(carol.proc.wait_exit(T).unwrap().success());
    for m in [&mut alice, &mut bob] {
        assert_eq!(m.proc.expect_event("member_left", T)["name"], "carol");
    }

    // Ctrl-C: bob leaves cleanly with exit code 0.
    bob.proc.signal(libc::SIGINT);
    assert_eq!(bob.proc.expect_event("summary", T)["sent"], 1);
    assert_eq!(bob.proc.wait_exit(T).unwrap().code(), Some(0));
    assert_eq!(alice.proc.expect_event("member_left", T)["name"], "bob");
}

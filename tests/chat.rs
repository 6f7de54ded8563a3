//! `peer chat` with real processes on one tracker: a room of three, private
//! lines, `--send`, a member killed and coming back to its queued lines,
//! and bad input that closes only the offending connection.
//!
//! Every wait is on a typed event (`peer::events::Event`,
//! `tracker::Event`) with a timeout; nothing sleeps to synchronise. The
//! tracker refreshes every second (`--interval 1`).

use std::net::TcpListener;
use std::thread;

use lanswarm::chat_lab::{chat_command, Member, RawMember, T};
use lanswarm::expect_event;
use lanswarm::fixture::start_tracker;
use lanswarm::process::Proc;
use lanswarm::tracker_client::Client;
use peer::events::Event;
use wire::chat::{room_hash, ChatMessage, CHAT_PROTO};
use wire::tracker::{AnnounceExtras, AnnounceRequest, Event as Announce, StatusResponse};

/// How soon a member killed with SIGKILL is shown as left: its connections
/// close with the process, so at once; this bounds a loaded machine.
const LEFT_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

#[test]
fn a_room_of_three_sees_each_other_and_talks() {
    let mut tracker = start_tracker(&["--interval", "1"]);
    let mut ann = Member::start("ann", tracker.addr, &[]);
    assert!(ann.online.is_empty());
    let mut bob = Member::start("bob", tracker.addr, &[]);
    assert_eq!(bob.online, ["ann"]);
    ann.expect_joined("bob");
    let mut carol = Member::start("carol", tracker.addr, &[]);
    assert_eq!(carol.online, ["ann", "bob"]);
    ann.expect_joined("carol");
    bob.expect_joined("carol");

    // The tracker holds names, not lines.
    let status = tracker_status(tracker.addr);
    let lobby = room_hash("lobby").to_hex();
    let room = status.swarms.iter().find(|s| s.info_hash == lobby).unwrap();
    let mut names: Vec<_> = room.peers.iter().filter_map(|p| p.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["ann", "bob", "carol"]);
    // Nobody else may take a name that is online.
    let taken = chat_command("bob", tracker.addr, &[]).output().unwrap();
    assert_eq!(taken.status.code(), Some(1));
    let err = String::from_utf8_lossy(&taken.stderr);
    assert!(err.contains("key 'name'"), "{err}");

    // A line to everyone: shown with its sender, escaped, acknowledged by both.
    let (seq, to) = bob.say("hello \x1b[31mroom\x07");
    assert_eq!(to, ["ann", "carol"]);
    for m in [&mut ann, &mut carol] {
        assert_eq!(
            m.expect_message(),
            ("bob".into(), "hello \\u{1b}[31mroom\\u{7}".into(), false)
        );
    }
    bob.expect_delivered(seq, 2);

    // One sender's lines arrive in order.
    for i in 0..30 {
        carol.line(&format!("line {i}"));
    }
    for m in [&mut ann, &mut bob] {
        for i in 0..30 {
            assert_eq!(m.expect_message().1, format!("line {i}"));
        }
    }

    // `--send`: one line, everyone acknowledged, exit 0.
    let mut send = Proc::spawn(
        "dave",
        chat_command("dave", tracker.addr, &["--send", "from a script"]),
    );
    for m in [&mut ann, &mut bob, &mut carol] {
        assert_eq!(
            m.expect_message(),
            ("dave".into(), "from a script".into(), false)
        );
    }
    expect_event!(
        send,
        T,
        Event::Delivered {
            acked: 3,
            of: 3,
            ..
        }
    );
    assert_eq!(send.wait_exit(T).unwrap().code(), Some(0));
    for m in [&mut ann, &mut bob, &mut carol] {
        assert_eq!(m.expect_left("dave"), "left");
    }

    // End of input leaves the room; the others see it, the tracker too.
    carol.close_stdin();
    expect_event!(carol.proc, T, Event::Left { sent: 30, .. });
    assert!(carol.proc.wait_exit(T).unwrap().success());
    ann.expect_left("carol");
    bob.expect_left("carol");
    tracker.wait_event(T, |e| match e {
        tracker::Event::Leave(p) if p.peer_id == "carol" => Some(()),
        _ => None,
    });
    assert!(matches!(bob.quit(), Event::Left { received: 31, .. }));
    ann.expect_left("bob");
}

#[test]
fn a_private_line_reaches_only_its_target() {
    let tracker = start_tracker(&["--interval", "1"]);
    let mut ann = Member::start("ann", tracker.addr, &[]);
    let mut bob = Member::start("bob", tracker.addr, &[]);
    let mut carol = Member::start("carol", tracker.addr, &[]);
    ann.expect_joined("carol");

    ann.line("/msg bob for bob only");
    let (seq, to) = expect_event!(ann.proc, T,
        Event::Sent { seq, to, private: true } => (seq, to));
    assert_eq!(to, ["bob"]);
    assert_eq!(
        bob.expect_message(),
        ("ann".into(), "for bob only".into(), true)
    );
    ann.expect_delivered(seq, 1);
    // Carol gets ann's lines in order: the next one is the public line.
    ann.say("for everyone");
    assert_eq!(
        carol.expect_message(),
        ("ann".into(), "for everyone".into(), false)
    );
    assert_eq!(bob.expect_message().1, "for everyone");
    // Nobody by that name: said, nothing sent.
    ann.line("/msg dave hello?");
    let notice = expect_event!(ann.proc, T, Event::Notice { text } => text);
    assert!(notice.contains("dave"), "{notice}");
}

#[test]
fn a_killed_member_is_shown_as_left_and_gets_its_queue_when_it_returns() {
    let tracker = start_tracker(&["--interval", "1"]);
    let mut ann = Member::start("ann", tracker.addr, &[]);
    let bob = Member::start("bob", tracker.addr, &[]);
    ann.expect_joined("bob");
    let port = bob.listen.port().to_string();

    bob.proc.signal(libc::SIGKILL);
    let t0 = std::time::Instant::now();
    let reason = ann.expect_left("bob");
    assert!(t0.elapsed() < LEFT_WITHIN, "shown after {:?}", t0.elapsed());
    assert!(reason.contains("kept"), "{reason}");
    assert_eq!(ann.who(), (vec![], vec!["bob".to_string()]));

    let (first, to) = ann.say("while you were away");
    assert_eq!(to, ["bob"]);
    let (second, _) = ann.say("and this too");
    // Bob comes back (on its old port, which the tracker still lists).
    let listen = format!("127.0.0.1:{port}");
    let mut bob = Member::start("bob", tracker.addr, &["--listen", &listen]);
    assert_eq!(bob.online, ["ann"]);
    assert_eq!(bob.expect_message().1, "while you were away");
    assert_eq!(bob.expect_message().1, "and this too");
    ann.expect_delivered(first, 1);
    ann.expect_delivered(second, 1);
}

#[test]
fn send_fails_when_a_member_never_acknowledges() {
    let tracker = start_tracker(&["--interval", "1"]);
    // A member that says hello and then nothing: listed by the tracker.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let request = AnnounceRequest {
        port,
        ip: None,
        peer_id: "mute".into(),
        event: Some(Announce::Started),
        info_hash: Some(room_hash("lobby")),
        numwant: None,
        proto: Some(CHAT_PROTO),
        left: None,
        downloaded: None,
    };
    let extras = AnnounceExtras {
        name: Some("mute".into()),
    };
    let reply = Client::connect_within(tracker.addr, T).request(&extras.add_to(&request));
    assert_eq!(reply.error_code, 0, "{reply:?}");
    let mute = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(T)).unwrap();
        let mut raw = RawMember { stream };
        assert!(matches!(raw.recv(), Some(ChatMessage::Hello { .. })));
        raw.send(&ChatMessage::Hello {
            name: "mute".into(),
            room: "lobby".into(),
        });
        // Read until the sender gives up; acknowledge nothing.
        let mut said = None;
        while let Some(msg) = raw.recv() {
            if let ChatMessage::Say { text, .. } = msg {
                said = Some(text);
            }
        }
        said
    });
    let out = chat_command(
        "sender",
        tracker.addr,
        &["--send", "anyone?", "--timeout", "1"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not acknowledged") && err.contains("mute"),
        "{err}"
    );
    assert_eq!(mute.join().unwrap().as_deref(), Some("anyone?"));
}

#[test]
fn bad_input_closes_the_offending_connection_and_the_chat_goes_on() {
    let tracker = start_tracker(&["--interval", "1"]);
    let mut ann = Member::start("ann", tracker.addr, &[]);
    let mut bob = Member::start("bob", tracker.addr, &[]);
    ann.expect_joined("bob");
    let hello = |name: &str| ChatMessage::Hello {
        name: name.into(),
        room: "lobby".into(),
    };

    // A hello with the name of a member who is online.
    let mut forger = RawMember::connect(ann.listen);
    forger.send(&hello("bob"));
    assert!(forger.closed_within(T), "a forged hello is refused");
    let reason = expect_event!(ann.proc, T, Event::PeerRefused { reason, .. } => reason);
    assert!(reason.contains("bob"), "{reason}");

    // A line that claims another member's name.
    let mut mallory = RawMember::connect(ann.listen);
    mallory.send(&hello("mallory"));
    ann.expect_joined("mallory");
    mallory.send(&ChatMessage::Say {
        seq: 1,
        text: "i am bob".into(),
        from: Some("bob".into()),
    });
    assert!(mallory.closed_within(T));
    let reason = ann.expect_left("mallory");
    assert!(reason.contains("claiming"), "{reason}");

    // A frame longer than the limit, before anything is allocated for it.
    let mut big = RawMember::connect(ann.listen);
    big.write(&lanio::frame::header(1 << 40));
    assert!(big.closed_within(T));
    expect_event!(ann.proc, T, Event::PeerRefused { reason, .. } if reason.contains("exceeds"));

    // Garbage: text where a frame should be, and a frame that is no message.
    let mut http = RawMember::connect(ann.listen);
    http.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(http.closed_within(T));
    let mut junk = RawMember::connect(ann.listen);
    junk.write(&lanio::frame::encode(b"\x00\xffnot json"));
    assert!(junk.closed_within(T));

    // A flood of hellos on one connection: the second one ends it.
    let mut flood = RawMember::connect(ann.listen);
    let mut frames = Vec::new();
    for i in 0..2000 {
        frames.extend(lanio::frame::encode(&hello(&format!("f{i}")).encode()));
    }
    flood.write(&frames);
    assert!(flood.closed_within(T));
    let reason = ann.expect_left("f0");
    assert!(reason.contains("second hello"), "{reason}");

    // The chat goes on.
    let (seq, _) = bob.say("still here");
    assert_eq!(
        ann.expect_message(),
        ("bob".into(), "still here".into(), false)
    );
    bob.expect_delivered(seq, 1);
    match ann.quit() {
        Event::Left {
            forged, refused, ..
        } => {
            assert_eq!(forged, 2, "the hello and the line");
            assert!(refused >= 5, "{refused}");
        }
        other => panic!("{other:?}"),
    }
}

/// `tracker status --json` of the tracker at `addr`.
fn tracker_status(addr: std::net::SocketAddr) -> StatusResponse {
    let out = lanswarm::process::command("tracker")
        .args(["status", "--json", "--addr", &addr.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

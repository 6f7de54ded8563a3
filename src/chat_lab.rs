//! `peer chat` for tests: members started on a tracker and typed at, their
//! `--json` lines read back as [`peer::events::Event`]; and a raw member
//! that speaks the chat wire by hand, for bad input.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{ChildStdin, Command};
use std::time::{Duration, Instant};

use peer::events::Event;
use wire::chat::{ChatMessage, MAX_CHAT_FRAME};

use crate::expect_event;
use crate::process::{command, Proc};

/// Upper bound for any one expected event on a loaded 2-core machine.
pub const T: Duration = Duration::from_secs(20);

/// `peer chat --json --name NAME --tracker TRACKER --no-discover ARGS…`, on
/// `--listen 127.0.0.1:0` unless ARGS names another. (LAN discovery is off:
/// tests on this host must not multicast on its real interfaces.)
pub fn chat_command(name: &str, tracker: SocketAddr, args: &[&str]) -> Command {
    let mut cmd = command("peer");
    cmd.args(["chat", "--json", "--name", name])
        .args(["--tracker", &tracker.to_string(), "--no-discover"])
        .args(args);
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd
}

/// A running `peer chat`.
pub struct Member {
    pub proc: Proc,
    stdin: Option<ChildStdin>,
    /// Who was online when it joined.
    pub online: Vec<String>,
    /// Its TCP (and UDP) address.
    pub listen: SocketAddr,
}

impl Member {
    /// Starts `peer chat` as `name` on `tracker` and waits until it joined.
    pub fn start(name: &str, tracker: SocketAddr, args: &[&str]) -> Member {
        Member::spawn(name, chat_command(name, tracker, args))
    }

    /// Starts a `peer chat` command and waits until it joined.
    pub fn spawn(name: &str, cmd: Command) -> Member {
        let (mut proc, stdin) = Proc::spawn_with_stdin(name, cmd);
        let (online, listen) = expect_event!(proc, T,
            Event::Joined { members, listen, .. } => (members, listen));
        let listen = listen.parse().expect("joined names its address");
        Member {
            proc,
            stdin: Some(stdin),
            online,
            listen,
        }
    }

    /// Types one line.
    pub fn line(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Ends its input (as Ctrl-D does).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for `name` to join; its address.
    pub fn expect_joined(&mut self, name: &str) -> String {
        expect_event!(self.proc, T,
            Event::MemberJoined { name: n, addr } if n == name => addr)
    }

    /// Waits until every one of `names` has joined, in any order.
    pub fn expect_joined_all(&mut self, names: &[&str]) {
        let mut missing: Vec<&str> = names.to_vec();
        while !missing.is_empty() {
            let n = expect_event!(self.proc, T,
                Event::MemberJoined { name, .. } if missing.contains(&name.as_str()) => name);
            missing.retain(|m| *m != n);
        }
    }

    /// Waits for `name` to leave; the reason.
    pub fn expect_left(&mut self, name: &str) -> String {
        expect_event!(self.proc, T,
            Event::MemberLeft { name: n, reason } if n == name => reason)
    }

    /// The next line received: (from, text, private).
    pub fn expect_message(&mut self) -> (String, String, bool) {
        expect_event!(self.proc, T,
            Event::Message { from, text, private } => (from, text, private))
    }

    /// Sends a line for the room and waits for its `sent` event: its seq and
    /// the members it went to.
    pub fn say(&mut self, text: &str) -> (u64, Vec<String>) {
        self.line(text);
        expect_event!(self.proc, T, Event::Sent { seq, to, .. } => (seq, to))
    }

    /// Waits until `seq` was acknowledged by `n` members.
    pub fn expect_delivered(&mut self, seq: u64, n: usize) {
        expect_event!(self.proc, T,
            Event::Delivered { seq: s, acked, .. } if s == seq && acked == n);
    }

    /// Asks `/who`: (online, away).
    pub fn who(&mut self) -> (Vec<String>, Vec<String>) {
        self.line("/who");
        expect_event!(self.proc, T, Event::Who { members, away } => (members, away))
    }

    /// Leaves with `/quit`, waits for its `left` event and a clean exit.
    pub fn quit(mut self) -> Event {
        self.line("/quit");
        let left = expect_event!(self.proc, T, e @ Event::Left { .. } => e);
        let status = self.proc.wait_exit(T).expect("peer chat exits");
        assert!(status.success(), "{status}\n{}", self.proc.output());
        left
    }
}

/// A member speaking the chat wire by hand (blocking), for bad input.
pub struct RawMember {
    pub stream: TcpStream,
}

impl RawMember {
    /// Connects to a member and reads its hello.
    pub fn connect(to: SocketAddr) -> RawMember {
        let stream = TcpStream::connect(to).expect("connect to the member");
        stream.set_read_timeout(Some(T)).unwrap();
        let mut raw = RawMember { stream };
        match raw.recv() {
            Some(ChatMessage::Hello { .. }) => raw,
            other => panic!("expected a hello, got {other:?}"),
        }
    }

    /// Writes raw bytes; false when the other side has closed.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Sends one message in a frame.
    pub fn send(&mut self, msg: &ChatMessage) -> bool {
        self.write(&lanio::frame::encode(&msg.encode()))
    }

    /// The next message, or `None` once the connection is closed.
    pub fn recv(&mut self) -> Option<ChatMessage> {
        match lanio::frame::read_frame(&mut self.stream, MAX_CHAT_FRAME as u64) {
            Ok(Some(body)) => Some(ChatMessage::decode(&body).expect("a chat message")),
            _ => None,
        }
    }

    /// Whether the other side closed the connection within `timeout`
    /// (whatever it sent first is skipped).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

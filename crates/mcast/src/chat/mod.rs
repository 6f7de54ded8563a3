//! `mcast chat`: a group chat over multicast.
//!
//! - [`packet`]: the chat datagram format.
//!
//! Each member announces itself with a join, answers others' joins with a
//! "present" so newcomers learn who is there, sends one datagram per stdin
//! line and a leave on EOF or Ctrl-C. Our own looped-back datagrams are
//! recognised by the random member id and not printed.

pub mod packet;

use crate::cli::ChatArgs;
use crate::escape::escape_bytes;
use crate::events::{ChatJoined, ChatMessage, ChatSummary, Event, Joined, Message, Summary};
use crate::probe::random_u64;
use crate::Out;
use anyhow::Context as _;
use lanio::group::destination;
use lanio::multicast::{bind_receiver, configure_sending, into_tokio, SendOptions};
use lanio::{bad_input, Signals};
use packet::{ChatPacket, Kind, MAX_NAME, MAX_TEXT};
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::io::AsyncBufReadExt as _;

/// Members remembered at once; others still print, they just are not tracked.
const MAX_MEMBERS: usize = 1024;

/// What the room state machine wants printed or sent after a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing to show (our own echo, a repeated present, ...).
    Nothing,
    /// A new member became known.
    Joined { name: String },
    /// A member left.
    Left { name: String },
    /// A line of text.
    Message {
        name: String,
        text: String,
        bytes: usize,
    },
}

/// The members we know of, keyed by member id.
#[derive(Debug)]
pub struct Room {
    me: u64,
    members: HashMap<u64, String>,
    /// Datagrams that were not valid chat datagrams.
    pub foreign: u64,
}

impl Room {
    /// An empty room seen by member `me`.
    pub fn new(me: u64) -> Self {
        Room {
            me,
            members: HashMap::new(),
            foreign: 0,
        }
    }

    /// Handles one datagram. Returns what to print, and whether to answer with
    /// a "present" (when someone else just joined).
    pub fn handle(&mut self, datagram: &[u8]) -> (Reaction, bool) {
        let p = match ChatPacket::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.foreign += 1;
                tracing::debug!("ignoring datagram: {e}");
                return (Reaction::Nothing, false);
            }
        };
        if p.member == self.me {
            return (Reaction::Nothing, false);
        }
        let name = escape_bytes(&p.name);
        let is_new = !self.members.contains_key(&p.member);
        match p.kind {
            Kind::Join | Kind::Present => {
                let reply = p.kind == Kind::Join;
                if is_new && self.remember(p.member, &name) {
                    (Reaction::Joined { name }, reply)
                } else {
                    (Reaction::Nothing, reply)
                }
            }
            Kind::Leave => {
                self.members.remove(&p.member);
                (Reaction::Left { name }, false)
            }
            Kind::Message => {
                if is_new {
                    self.remember(p.member, &name);
                }
                let text = escape_bytes(&p.text);
                (
                    Reaction::Message {
                        name,
                        text,
                        bytes: p.text.len(),
                    },
                    false,
                )
            }
        }
    }

    fn remember(&mut self, member: u64, name: &str) -> bool {
        if self.members.len() >= MAX_MEMBERS {
            return false;
        }
        self.members.insert(member, name.to_owned());
        true
    }

    /// Number of other members currently known.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no other member is known.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad_input(format!(
            "--name must be 1 to {MAX_NAME} bytes long"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(bad_input("--name must not contain control characters"));
    }
    Ok(())
}

/// Runs `mcast chat`: its events go to `out`; a signal makes it leave cleanly.
pub async fn run(args: ChatArgs, out: &Out, signals: &mut Signals) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    let iface = args.common.resolve_iface()?;
    let sock = bind_receiver(args.group, args.port, iface.as_ref(), None)?;
    let opts = SendOptions {
        ttl: args.ttl,
        multicast_loop: true,
    };
    configure_sending(&sock, args.group, iface.as_ref(), opts)?;
    let sock = into_tokio(sock)?;
    let dest = destination(args.group, args.port, iface.as_ref().map_or(0, |i| i.index));
    let me = random_u64();
    let packet = |kind, text: &[u8]| {
        ChatPacket {
            kind,
            member: me,
            name: args.name.as_bytes().to_vec(),
            text: text.to_vec(),
        }
        .encode()
    };
    let send = |bytes: Vec<u8>| {
        let sock = &sock;
        async move {
            sock.send_to(&bytes, dest)
                .await
                .with_context(|| format!("sending to {dest}"))
        }
    };

    send(packet(Kind::Join, b"")).await?;
    out.emit(&Event::Joined(Joined::Chat(ChatJoined {
        group: args.group,
        port: args.port,
        name: args.name.clone(),
    })));

    let mut room = Room::new(me);
    let (mut sent, mut received) = (0u64, 0u64);
    // Lines as bytes: text that is not UTF-8 is sent as is (and escaped by readers).
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).split(b'\n');
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            line = lines.next_segment() => {
                match line.context("reading stdin")?.map(trim_line_end) {
                    None => break,
                    Some(line) if line.len() > MAX_TEXT => {
                        eprintln!("mcast: line of {} bytes not sent (at most {MAX_TEXT})", line.len());
                    }
                    Some(line) => {
                        send(packet(Kind::Message, &line)).await?;
                        sent += 1;
                    }
                }
            }
            r = sock.recv_from(&mut buf) => {
                let (len, from): (usize, SocketAddr) = r.context("receiving chat datagrams")?;
                let (reaction, reply) = room.handle(&buf[..len]);
                if reply {
                    send(packet(Kind::Present, b"")).await?;
                }
                show(out, reaction, from, &mut received);
            }
            _ = signals.recv() => break,
        }
    }
    send(packet(Kind::Leave, b"")).await?;
    out.emit(&Event::Summary(Summary::Chat(ChatSummary {
        sent,
        received,
        members: room.len(),
        foreign: room.foreign,
    })));
    Ok(())
}

/// Drops a trailing `\r` (input typed or piped with CRLF line ends).
fn trim_line_end(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

fn show(out: &Out, reaction: Reaction, from: SocketAddr, received: &mut u64) {
    let event = match reaction {
        Reaction::Nothing => return,
        Reaction::Joined { name } => Event::MemberJoined { name, from },
        Reaction::Left { name } => Event::MemberLeft { name, from },
        Reaction::Message { name, text, bytes } => {
            *received += 1;
            Event::Message(Message::Chat(ChatMessage {
                from,
                name,
                bytes,
                text,
            }))
        }
    };
    out.emit(&event);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(kind: Kind, member: u64, name: &str, text: &str) -> Vec<u8> {
        ChatPacket {
            kind,
            member,
            name: name.into(),
            text: text.into(),
        }
        .encode()
    }

    #[test]
    fn join_present_message_leave() {
        let mut room = Room::new(1);
        assert_eq!(
            room.handle(&pkt(Kind::Join, 2, "bob", "")),
            (Reaction::Joined { name: "bob".into() }, true)
        );
        // A repeated present from a known member shows nothing.
        assert_eq!(
            room.handle(&pkt(Kind::Present, 2, "bob", "")),
            (Reaction::Nothing, false)
        );
        assert_eq!(
            room.handle(&pkt(Kind::Present, 3, "carol", "")),
            (
                Reaction::Joined {
                    name: "carol".into()
                },
                false
            )
        );
        assert_eq!(room.len(), 2);
        let (r, _) = room.handle(&pkt(Kind::Message, 2, "bob", "hi\x07"));
        assert_eq!(
            r,
            Reaction::Message {
                name: "bob".into(),
                text: "hi\\u{7}".into(),
                bytes: 3
            }
        );
        assert_eq!(
            room.handle(&pkt(Kind::Leave, 2, "bob", "")).0,
            Reaction::Left { name: "bob".into() }
        );
        assert_eq!(room.len(), 1);
    }

    #[test]
    fn own_echo_and_foreign_datagrams_are_silent() {
        let mut room = Room::new(7);
        assert_eq!(
            room.handle(&pkt(Kind::Message, 7, "me", "echo")),
            (Reaction::Nothing, false)
        );
        assert_eq!(
            room.handle(b"very important data"),
            (Reaction::Nothing, false)
        );
        assert_eq!(room.handle(b"LSWC\x01\x02"), (Reaction::Nothing, false));
        assert_eq!(room.foreign, 2);
        assert!(room.is_empty());
    }

    #[test]
    fn names_with_control_characters_are_escaped() {
        let mut room = Room::new(1);
        let (r, _) = room.handle(&pkt(Kind::Join, 2, "evil\x1b[2J", ""));
        assert_eq!(
            r,
            Reaction::Joined {
                name: "evil\\u{1b}[2J".into()
            }
        );
    }

    #[test]
    fn crlf_line_ends_are_trimmed() {
        assert_eq!(trim_line_end(b"hi\r".to_vec()), b"hi");
        assert_eq!(trim_line_end(b"hi".to_vec()), b"hi");
        assert_eq!(trim_line_end(b"\xff\r".to_vec()), b"\xff");
    }

    #[test]
    fn name_validation() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert!(validate_name("a\nb").is_err());
    }
}

//! `mcast chat`: a group chat over multicast.
//!
//! - [`packet`]: the chat datagram format.
//! - [`room`]: the members we know, bound to their source, expiring, bounded.
//! - [`announce`]: when we send a present (answers to joins, rate-limited,
//!   and our heartbeat).
//!
//! Each member announces itself with a join, answers others' joins with a
//! "present" so newcomers learn who is there (at most one per
//! [`announce::ANSWER_PERIOD`], however many join), sends one datagram per
//! stdin line, a present when it has been silent for a third of the member
//! timeout, and a leave on EOF or Ctrl-C. Members silent for the member
//! timeout expire. Our own looped-back datagrams are recognised by the
//! random member id and not printed.
//!
//! The datagrams are those of earlier versions: members of those still chat
//! with this one, but they send no heartbeat, so they time out here after
//! the member timeout without a line (and reappear when they speak).

pub mod announce;
pub mod packet;
pub mod room;

use crate::cli::ChatArgs;
use crate::events::{ChatJoined, ChatMessage, ChatSummary, Event, Joined, Message, Summary};
use crate::probe::random_u64;
use crate::Out;
use announce::{Announcer, ANSWER_PERIOD};
use anyhow::Context as _;
use lanio::group::destination;
use lanio::multicast::{bind_receiver, configure_sending, into_tokio, SendOptions};
use lanio::{bad_input, Signals};
use packet::{ChatPacket, Kind, MAX_NAME, MAX_TEXT};
use room::{Reaction, Room};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncBufReadExt as _;
use tokio::time::Instant;

/// Shortest `--member-timeout`: three heartbeats of at least [`ANSWER_PERIOD`].
pub const MIN_MEMBER_TIMEOUT: Duration = Duration::from_secs(3);

fn validate(args: &ChatArgs) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    if args.member_timeout < MIN_MEMBER_TIMEOUT {
        return Err(bad_input(format!(
            "--member-timeout must be at least {MIN_MEMBER_TIMEOUT:?}"
        )));
    }
    Ok(())
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
    validate(&args)?;
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

    let now = Instant::now();
    let mut room = Room::new(me, args.member_timeout);
    let mut announcer = Announcer::new(now.into_std(), heartbeat(args.member_timeout));
    let (mut sent, mut received) = (0u64, 0u64);
    // Lines as bytes: text that is not UTF-8 is sent as is (and escaped by readers).
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).split(b'\n');
    let mut buf = vec![0u8; 65_536];
    loop {
        let next = room
            .next_expiry()
            .map_or(announcer.deadline(), |e| e.min(announcer.deadline()));
        tokio::select! {
            line = lines.next_segment() => {
                match line.context("reading stdin")?.map(trim_line_end) {
                    None => break,
                    Some(line) if line.len() > MAX_TEXT => {
                        eprintln!("mcast: line of {} bytes not sent (at most {MAX_TEXT})", line.len());
                    }
                    Some(line) => {
                        send(packet(Kind::Message, &line)).await?;
                        announcer.sent_other(Instant::now().into_std());
                        sent += 1;
                    }
                }
            }
            r = sock.recv_from(&mut buf) => {
                let (len, from): (usize, SocketAddr) = r.context("receiving chat datagrams")?;
                let (reaction, join) = room.handle(from, &buf[..len], Instant::now().into_std());
                if join {
                    announcer.join_heard();
                }
                show(out, reaction, from, &mut received);
            }
            _ = tokio::time::sleep_until(Instant::from_std(next)) => {
                for gone in room.expire(Instant::now().into_std()) {
                    out.emit(&Event::MemberExpired { name: gone.name, from: gone.from });
                }
            }
            _ = signals.recv() => break,
        }
        if announcer.poll(Instant::now().into_std()) {
            send(packet(Kind::Present, b"")).await?;
        }
    }
    send(packet(Kind::Leave, b"")).await?;
    out.emit(&Event::Summary(Summary::Chat(ChatSummary {
        sent,
        received,
        members: room.len(),
        foreign: room.foreign,
        spoofed: room.spoofed,
        evicted: room.evicted,
        expired: room.expired,
    })));
    Ok(())
}

/// How often we refresh ourselves at the others: a third of their timeout
/// (which we assume is ours), never more often than answers may go.
pub fn heartbeat(member_timeout: Duration) -> Duration {
    (member_timeout / 3).max(ANSWER_PERIOD)
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

//! The room as one member sees it: who is connected, who is away, what we
//! sent and who acknowledged it. Sans-IO.
//!
//! The I/O side feeds in hellos, messages and closed connections (each
//! connection is a [`ConnId`]), lines typed, and the time; the room answers
//! with [`Output`]s: a message to send on a connection, a connection to
//! close, an event to show.
//!
//! - **Identity.** A connection's name is its hello's. A hello for our own
//!   name, or for a member who is connected, is refused; a message or `bye`
//!   whose `from` is another name is dropped and the connection closed.
//!   Both count as forged.
//! - **Delivery.** Each line gets the next `seq`. Every member, online or
//!   away, has a queue of the seqs it has not acknowledged, in order; a
//!   member that comes back gets its whole queue again, in order. Receivers
//!   acknowledge every line and show a seq only once.
//! - **Bounds.** At most [`MAX_MEMBERS`] members; at most [`MAX_KEPT`]
//!   lines kept for acknowledgement, the oldest dropped (and said) first;
//!   a member away for [`GRACE`] is forgotten with its queue (and said).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lanio::escape::escape_str;
use wire::chat::ChatMessage;

use crate::events::Event;

/// A connection, as the I/O side numbers them.
pub type ConnId = u64;

/// Members (online or away) kept at most.
pub const MAX_MEMBERS: usize = 256;
/// Lines kept until everyone acknowledged them, at most.
pub const MAX_KEPT: usize = 256;
/// How long an absent member's queue is kept.
pub const GRACE: Duration = Duration::from_secs(120);

/// What the room wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send(ConnId, ChatMessage),
    Close(ConnId, String),
    Show(Event),
}

/// Why a hello was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("hello claims our own name {0:?}")]
    OwnName(String),
    #[error("hello claims {0:?}, who is already connected")]
    NameInUse(String),
    #[error("the room is full ({MAX_MEMBERS} members)")]
    Full,
}

/// What the room counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub sent: u64,
    pub received: u64,
    /// Hellos and messages that claimed another member's name.
    pub forged: u64,
    /// Connections refused or closed for breaking the protocol.
    pub refused: u64,
    /// Lines dropped from queues.
    pub queue_dropped: u64,
    /// Lines received a second time (after a reconnection), not shown again.
    pub duplicates: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Online(ConnId),
    Away { since: Instant },
}

#[derive(Debug)]
struct Member {
    presence: Presence,
    /// Our seqs it has not acknowledged, oldest first.
    pending: VecDeque<u64>,
    /// The highest seq of its own we have shown.
    last_seq: u64,
}

/// One of our lines, kept until every recipient acknowledged it.
#[derive(Debug)]
struct Kept {
    text: String,
    private: bool,
    recipients: usize,
    acked: usize,
    /// Recipients that were online when it was sent and have not acknowledged it.
    online: BTreeSet<String>,
    /// Members whose queue holds it.
    waiting: usize,
}

/// The room seen from member `me`.
#[derive(Debug)]
pub struct Room {
    me: String,
    next_seq: u64,
    members: BTreeMap<String, Member>,
    conns: HashMap<ConnId, String>,
    kept: BTreeMap<u64, Kept>,
    pub counters: Counters,
}

impl Room {
    /// An empty room for `me`, whose first line will be `first_seq`.
    pub fn new(me: &str, first_seq: u64) -> Room {
        Room {
            me: me.to_string(),
            next_seq: first_seq.max(1),
            members: BTreeMap::new(),
            conns: HashMap::new(),
            kept: BTreeMap::new(),
            counters: Counters::default(),
        }
    }

    /// Our name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Members online, by name.
    pub fn online(&self) -> Vec<String> {
        self.names(|p| matches!(p, Presence::Online(_)))
    }

    /// Members away (dropped, within the grace time), by name.
    pub fn away(&self) -> Vec<String> {
        self.names(|p| matches!(p, Presence::Away { .. }))
    }

    fn names(&self, pick: impl Fn(&Presence) -> bool) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, m)| pick(&m.presence))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether `name` is a member (online or away).
    pub fn knows(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// Whether `name` is connected.
    pub fn is_online(&self, name: &str) -> bool {
        self.members
            .get(name)
            .is_some_and(|m| matches!(m.presence, Presence::Online(_)))
    }

    /// A connection's hello named `name`: it becomes (or comes back as) that member.
    pub fn hello(
        &mut self,
        conn: ConnId,
        name: &str,
        addr: SocketAddr,
    ) -> Result<Vec<Output>, Refusal> {
        let refusal = if name == self.me {
            Some(Refusal::OwnName(name.to_string()))
        } else if self.is_online(name) {
            Some(Refusal::NameInUse(name.to_string()))
        } else if !self.knows(name) && self.members.len() >= MAX_MEMBERS {
            Some(Refusal::Full)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            if refusal != Refusal::Full {
                self.counters.forged += 1;
            }
            self.counters.refused += 1;
            return Err(refusal);
        }
        let member = self.members.entry(name.to_string()).or_insert(Member {
            presence: Presence::Online(conn),
            pending: VecDeque::new(),
            last_seq: 0,
        });
        member.presence = Presence::Online(conn);
        self.conns.insert(conn, name.to_string());
        let mut out = vec![Output::Show(Event::MemberJoined {
            name: escape_str(name),
            addr: addr.to_string(),
        })];
        // Whatever it has not acknowledged, again and in order.
        let pending: Vec<u64> = self.members[name].pending.iter().copied().collect();
        for seq in pending {
            if let Some(msg) = self.message(seq) {
                out.push(Output::Send(conn, msg));
            }
        }
        Ok(out)
    }

    /// The name a connection's hello gave, once accepted.
    pub fn name_of(&self, conn: ConnId) -> Option<&str> {
        self.conns.get(&conn).map(String::as_str)
    }

    fn message(&self, seq: u64) -> Option<ChatMessage> {
        let kept = self.kept.get(&seq)?;
        let text = kept.text.clone();
        let from = Some(self.me.clone());
        Some(if kept.private {
            ChatMessage::Whisper { seq, text, from }
        } else {
            ChatMessage::Say { seq, text, from }
        })
    }

    /// A message on an accepted connection.
    pub fn received(&mut self, conn: ConnId, msg: ChatMessage, now: Instant) -> Vec<Output> {
        let Some(name) = self.conns.get(&conn).cloned() else {
            return Vec::new();
        };
        if let ChatMessage::Hello { .. } = msg {
            self.counters.refused += 1;
            return self.violation(conn, "sent a second hello", now);
        }
        if let Some(claimed) = msg.claimed_name().filter(|c| *c != name) {
            self.counters.forged += 1;
            let reason = format!("sent a message claiming to be {:?}", escape_str(claimed));
            return self.violation(conn, &reason, now);
        }
        match msg {
            ChatMessage::Hello { .. } => unreachable!("handled above"),
            ChatMessage::Say { seq, text, .. } => self.line(conn, &name, seq, &text, false),
            ChatMessage::Whisper { seq, text, .. } => self.line(conn, &name, seq, &text, true),
            ChatMessage::Ack { seq } => self.ack(&name, seq),
            ChatMessage::Bye { .. } => {
                self.conns.remove(&conn);
                self.forget(&name);
                vec![
                    Output::Show(Event::MemberLeft {
                        name: escape_str(&name),
                        reason: "left".into(),
                    }),
                    Output::Close(conn, "bye".into()),
                ]
            }
        }
    }

    fn line(
        &mut self,
        conn: ConnId,
        name: &str,
        seq: u64,
        text: &str,
        private: bool,
    ) -> Vec<Output> {
        let mut out = vec![Output::Send(conn, ChatMessage::Ack { seq })];
        let member = self
            .members
            .get_mut(name)
            .expect("a connection's member exists");
        if seq <= member.last_seq {
            self.counters.duplicates += 1;
            return out;
        }
        member.last_seq = seq;
        self.counters.received += 1;
        out.push(Output::Show(Event::Message {
            from: escape_str(name),
            text: escape_str(text),
            private,
        }));
        out
    }

    fn ack(&mut self, name: &str, seq: u64) -> Vec<Output> {
        let member = self
            .members
            .get_mut(name)
            .expect("a connection's member exists");
        let Some(at) = member.pending.iter().position(|s| *s == seq) else {
            return Vec::new();
        };
        member.pending.remove(at);
        let kept = self.kept.get_mut(&seq).expect("a pending seq is kept");
        kept.acked += 1;
        kept.online.remove(name);
        let event = Event::Delivered {
            seq,
            to: escape_str(name),
            acked: kept.acked,
            of: kept.recipients,
        };
        self.release(seq);
        vec![Output::Show(event)]
    }

    /// One queue less holds `seq`; the line goes when none does.
    fn release(&mut self, seq: u64) {
        if let Some(kept) = self.kept.get_mut(&seq) {
            kept.waiting = kept.waiting.saturating_sub(1);
            if kept.waiting == 0 {
                self.kept.remove(&seq);
            }
        }
    }

    /// Removes a member and releases its queue; how many lines it held.
    fn forget(&mut self, name: &str) -> usize {
        let Some(member) = self.members.remove(name) else {
            return 0;
        };
        let dropped = member.pending.len();
        for seq in member.pending {
            self.release(seq);
        }
        dropped
    }

    /// Closes a connection that broke the protocol; its member is away.
    fn violation(&mut self, conn: ConnId, reason: &str, now: Instant) -> Vec<Output> {
        let mut out = vec![Output::Close(conn, reason.to_string())];
        out.extend(self.closed(conn, reason, now));
        out
    }

    /// A connection ended without a `bye`: its member is away, its queue kept.
    pub fn closed(&mut self, conn: ConnId, reason: &str, now: Instant) -> Vec<Output> {
        let Some(name) = self.conns.remove(&conn) else {
            return Vec::new();
        };
        let Some(member) = self.members.get_mut(&name) else {
            return Vec::new();
        };
        if member.presence != Presence::Online(conn) {
            return Vec::new();
        }
        member.presence = Presence::Away { since: now };
        vec![Output::Show(Event::MemberLeft {
            name: escape_str(&name),
            reason: format!("{reason}; lines for it are kept for {} s", GRACE.as_secs()),
        })]
    }

    /// A line for everyone (`to` None) or for one member. `Err` names a
    /// member we do not know.
    pub fn send(&mut self, to: Option<&str>, text: &str) -> Result<(u64, Vec<Output>), String> {
        let recipients: Vec<String> = match to {
            Some(name) if self.knows(name) => vec![name.to_string()],
            Some(name) => return Err(format!("nobody called {:?} is here", escape_str(name))),
            None => self.members.keys().cloned().collect(),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.counters.sent += 1;
        let mut out = vec![Output::Show(Event::Sent {
            seq,
            private: to.is_some(),
            to: recipients.iter().map(|n| escape_str(n)).collect(),
        })];
        if recipients.is_empty() {
            return Ok((seq, out));
        }
        if self.kept.len() >= MAX_KEPT {
            out.extend(self.drop_oldest());
        }
        let online = recipients
            .iter()
            .filter(|n| self.is_online(n))
            .cloned()
            .collect();
        self.kept.insert(
            seq,
            Kept {
                text: text.to_string(),
                private: to.is_some(),
                recipients: recipients.len(),
                acked: 0,
                online,
                waiting: recipients.len(),
            },
        );
        let msg = self.message(seq).expect("just kept");
        for name in &recipients {
            let member = self.members.get_mut(name).expect("a recipient is a member");
            member.pending.push_back(seq);
            if let Presence::Online(conn) = member.presence {
                out.push(Output::Send(conn, msg.clone()));
            }
        }
        Ok((seq, out))
    }

    /// Makes room for one more line: the oldest kept one is dropped from
    /// every queue that holds it.
    fn drop_oldest(&mut self) -> Vec<Output> {
        let Some((&seq, _)) = self.kept.iter().next() else {
            return Vec::new();
        };
        self.kept.remove(&seq);
        let mut out = Vec::new();
        for (name, member) in &mut self.members {
            if let Some(at) = member.pending.iter().position(|s| *s == seq) {
                member.pending.remove(at);
                self.counters.queue_dropped += 1;
                out.push(Output::Show(Event::QueueDropped {
                    to: escape_str(name),
                    messages: 1,
                    reason: format!("more than {MAX_KEPT} lines waiting for acknowledgement"),
                }));
            }
        }
        out
    }

    /// The members that were online when `seq` was sent and have not
    /// acknowledged it (empty once everyone did).
    pub fn unacknowledged(&self, seq: u64) -> Vec<String> {
        self.kept
            .get(&seq)
            .map(|k| k.online.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a line waits for a member that was online when it was sent.
    pub fn awaiting_online(&self) -> bool {
        self.kept.values().any(|k| !k.online.is_empty())
    }

    /// Forgets members away for longer than [`GRACE`].
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| match m.presence {
                Presence::Away { since } => now.saturating_duration_since(since) >= GRACE,
                Presence::Online(_) => false,
            })
            .map(|(n, _)| n.clone())
            .collect();
        let mut out = Vec::new();
        for name in expired {
            let dropped = self.forget(&name);
            if dropped > 0 {
                self.counters.queue_dropped += dropped as u64;
                out.push(Output::Show(Event::QueueDropped {
                    to: escape_str(&name),
                    messages: dropped,
                    reason: format!("away for more than {} s", GRACE.as_secs()),
                }));
            }
        }
        out
    }

    /// Connections of the members online, for saying goodbye.
    pub fn connections(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn sends(out: &[Output]) -> Vec<(ConnId, ChatMessage)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(c, m) => Some((*c, m.clone())),
                _ => None,
            })
            .collect()
    }

    fn shown(out: &[Output]) -> Vec<Event> {
        out.iter()
            .filter_map(|o| match o {
                Output::Show(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn say(seq: u64, text: &str) -> ChatMessage {
        ChatMessage::Say {
            seq,
            text: text.into(),
            from: None,
        }
    }

    #[test]
    fn lines_go_to_everyone_and_acks_count_up() {
        let mut room = Room::new("ann", 100);
        room.hello(1, "bob", addr()).unwrap();
        room.hello(2, "carol", addr()).unwrap();
        let (seq, out) = room.send(None, "hi").unwrap();
        assert_eq!(seq, 100);
        let sent = sends(&out);
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(
            |(_, m)| matches!(m, ChatMessage::Say { seq: 100, from: Some(f), .. } if f == "ann")
        ));
        assert_eq!(room.unacknowledged(seq), ["bob", "carol"]);
        let acked = room.received(2, ChatMessage::Ack { seq }, Instant::now());
        assert_eq!(
            shown(&acked),
            [Event::Delivered {
                seq,
                to: "carol".into(),
                acked: 1,
                of: 2
            }]
        );
        // A repeated ack counts once.
        assert!(room
            .received(2, ChatMessage::Ack { seq }, Instant::now())
            .is_empty());
        room.received(1, ChatMessage::Ack { seq }, Instant::now());
        assert!(room.unacknowledged(seq).is_empty());
        assert!(room.kept.is_empty());
    }

    #[test]
    fn whispers_reach_one_member_and_unknown_names_are_an_error() {
        let mut room = Room::new("ann", 1);
        room.hello(1, "bob", addr()).unwrap();
        room.hello(2, "carol", addr()).unwrap();
        let (_, out) = room.send(Some("bob"), "psst").unwrap();
        let sent = sends(&out);
        assert_eq!(sent.len(), 1);
        assert!(matches!(sent[0], (1, ChatMessage::Whisper { .. })));
        assert!(room.send(Some("dave"), "x").is_err());
    }

    #[test]
    fn received_lines_are_acked_shown_once_and_escaped() {
        let mut room = Room::new("ann", 1);
        room.hello(1, "bob", addr()).unwrap();
        let out = room.received(1, say(5, "hi \x1b[2J"), Instant::now());
        assert_eq!(sends(&out), [(1, ChatMessage::Ack { seq: 5 })]);
        assert_eq!(
            shown(&out),
            [Event::Message {
                from: "bob".into(),
                text: "hi \\u{1b}[2J".into(),
                private: false
            }]
        );
        // Again after a reconnection: acked, not shown.
        let again = room.received(1, say(5, "hi"), Instant::now());
        assert_eq!(sends(&again).len(), 1);
        assert!(shown(&again).is_empty());
        assert_eq!(room.counters.duplicates, 1);
    }

    #[test]
    fn forged_names_are_refused_dropped_and_counted() {
        let mut room = Room::new("ann", 1);
        room.hello(1, "bob", addr()).unwrap();
        assert_eq!(
            room.hello(2, "bob", addr()),
            Err(Refusal::NameInUse("bob".into()))
        );
        assert_eq!(
            room.hello(3, "ann", addr()),
            Err(Refusal::OwnName("ann".into()))
        );
        let now = Instant::now();
        let forged = room.received(
            1,
            ChatMessage::Say {
                seq: 1,
                text: "i am carol".into(),
                from: Some("carol".into()),
            },
            now,
        );
        assert!(matches!(
            forged[..],
            [Output::Close(1, _), Output::Show(Event::MemberLeft { .. })]
        ));
        assert!(!room.is_online("bob"), "the connection is closed");
        assert!(shown(&room.received(1, say(9, "later"), now)).is_empty());
        room.hello(2, "bob", addr()).unwrap();
        let leave = room.received(
            2,
            ChatMessage::Bye {
                from: Some("carol".into()),
            },
            now,
        );
        assert!(matches!(leave[0], Output::Close(2, _)));
        assert!(room.knows("bob"), "the forged bye did not make bob leave");
        assert_eq!(room.counters.forged, 4);
        room.hello(3, "bob", addr()).unwrap();
        let hello = room.received(
            3,
            ChatMessage::Hello {
                name: "bob".into(),
                room: "lobby".into(),
            },
            now,
        );
        assert!(matches!(hello[0], Output::Close(3, _)));
        assert_eq!(room.counters.refused, 3);
    }

    #[test]
    fn an_absent_member_gets_its_queue_in_order_when_it_returns() {
        let t0 = Instant::now();
        let mut room = Room::new("ann", 1);
        room.hello(1, "bob", addr()).unwrap();
        let (first, _) = room.send(None, "one").unwrap();
        let left = room.closed(1, "connection lost", t0);
        assert!(matches!(&shown(&left)[..], [Event::MemberLeft { name, .. }] if name == "bob"));
        assert_eq!(room.away(), ["bob"]);
        let (second, out) = room.send(None, "two").unwrap();
        assert!(sends(&out).is_empty(), "nothing sent to an absent member");
        assert!(room.unacknowledged(second).is_empty(), "bob was not online");
        let back = room.hello(7, "bob", addr()).unwrap();
        let resent: Vec<u64> = sends(&back)
            .iter()
            .map(|(c, m)| match m {
                ChatMessage::Say { seq, .. } if *c == 7 => *seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(resent, [first, second]);
        assert!(room.tick(t0 + GRACE * 2).is_empty(), "online again");
    }

    #[test]
    fn a_member_away_too_long_is_forgotten_and_that_is_said() {
        let t0 = Instant::now();
        let mut room = Room::new("ann", 1);
        room.hello(1, "bob", addr()).unwrap();
        room.send(None, "one").unwrap();
        room.closed(1, "gone", t0);
        assert!(room.tick(t0 + GRACE / 2).is_empty());
        let out = room.tick(t0 + GRACE);
        assert!(
            matches!(&shown(&out)[..], [Event::QueueDropped { to, messages: 1, .. }] if to == "bob")
        );
        assert!(!room.knows("bob"));
        assert!(room.kept.is_empty());
    }

    #[test]
    fn a_bye_forgets_the_member_and_its_queue() {
        let mut room = Room::new("ann", 1);
        room.hello(1, "bob", addr()).unwrap();
        room.send(None, "one").unwrap();
        let out = room.received(1, ChatMessage::Bye { from: None }, Instant::now());
        assert!(matches!(&shown(&out)[..], [Event::MemberLeft { reason, .. }] if reason == "left"));
        assert!(!room.knows("bob"));
        assert!(room.kept.is_empty());
        assert!(room.closed(1, "closed", Instant::now()).is_empty());
    }

    #[test]
    fn kept_lines_are_bounded_and_drops_are_said() {
        let t0 = Instant::now();
        let mut room = Room::new("ann", 1);
        room.hello(1, "bob", addr()).unwrap();
        room.closed(1, "gone", t0);
        let mut dropped = 0;
        for i in 0..MAX_KEPT + 5 {
            let (_, out) = room.send(None, &format!("line {i}")).unwrap();
            dropped += shown(&out)
                .iter()
                .filter(|e| matches!(e, Event::QueueDropped { .. }))
                .count();
        }
        assert_eq!(dropped, 5);
        assert_eq!(room.kept.len(), MAX_KEPT);
        let back = room.hello(2, "bob", addr()).unwrap();
        assert_eq!(sends(&back).len(), MAX_KEPT);
    }

    #[test]
    fn members_are_bounded() {
        let mut room = Room::new("ann", 1);
        for i in 0..MAX_MEMBERS as u64 {
            room.hello(i, &format!("m{i}"), addr()).unwrap();
        }
        assert_eq!(room.hello(9999, "one-more", addr()), Err(Refusal::Full));
    }
}

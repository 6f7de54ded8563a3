//! The members of a chat room, without sockets: datagrams in (with their
//! source and arrival time), what to print out.
//!
//! - **Bound to a source.** A member id belongs to the address and port its
//!   first datagram came from. A datagram that claims a known member from
//!   anywhere else (a forged leave, a message in someone's name) is ignored
//!   and counted as spoofed.
//! - **Expiry.** Members refresh themselves (any datagram, and a periodic
//!   present, see [`super::announce`]); one silent for the member timeout
//!   expires, and the caller prints that it timed out.
//! - **Bounded.** At most [`MAX_MEMBERS`] members, and at most
//!   [`MAX_PER_HOST`] from one IP address. A newcomer always gets in, so a
//!   real join is always shown: when full, the member evicted is, among those
//!   of the newcomer's own host if that host is at its cap and else among all,
//!   one never heard from again after its first datagram, then the idlest.
//!   Members heard from repeatedly (real ones refresh) stay. Evictions are
//!   counted and not printed.

use super::packet::{ChatPacket, Kind};
use crate::escape::escape_bytes;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Members remembered at once.
pub const MAX_MEMBERS: usize = 256;
/// Members remembered from one IP address (several members may share a host).
pub const MAX_PER_HOST: usize = 16;

/// What to print after a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing to show (our own echo, a repeated present, a spoofed datagram...).
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

/// A member that expired: its name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub name: String,
    pub from: SocketAddr,
}

#[derive(Debug)]
struct Member {
    name: String,
    from: SocketAddr,
    last: Instant,
    /// Datagrams heard from it (saturating).
    heard: u32,
}

impl Member {
    /// Eviction order: lowest first (heard once, then the idlest).
    fn eviction_rank(&self) -> (bool, Instant) {
        (self.heard > 1, self.last)
    }
}

/// The members we know of, keyed by member id.
#[derive(Debug)]
pub struct Room {
    me: u64,
    timeout: Duration,
    members: HashMap<u64, Member>,
    /// Datagrams that were not valid chat datagrams.
    pub foreign: u64,
    /// Datagrams claiming a known member from another source.
    pub spoofed: u64,
    /// Members dropped to make room for newcomers.
    pub evicted: u64,
    /// Members that timed out.
    pub expired: u64,
}

impl Room {
    /// An empty room seen by member `me`; members silent for `timeout` expire.
    pub fn new(me: u64, timeout: Duration) -> Self {
        Room {
            me,
            timeout,
            members: HashMap::new(),
            foreign: 0,
            spoofed: 0,
            evicted: 0,
            expired: 0,
        }
    }

    /// Handles one datagram from `from` at `now`. Returns what to print,
    /// and whether it was a join (which wants a present in answer, see
    /// [`super::announce::Announcer::join_heard`]).
    pub fn handle(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> (Reaction, bool) {
        let p = match ChatPacket::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.foreign += 1;
                tracing::debug!(%from, "ignoring datagram: {e}");
                return (Reaction::Nothing, false);
            }
        };
        if p.member == self.me {
            return (Reaction::Nothing, false);
        }
        let known = match self.members.get_mut(&p.member) {
            Some(m) if m.from != from => {
                self.spoofed += 1;
                tracing::debug!(%from, bound = %m.from, "ignoring a datagram claiming another source's member");
                return (Reaction::Nothing, false);
            }
            Some(m) => {
                m.last = now;
                m.heard = m.heard.saturating_add(1);
                true
            }
            None => false,
        };
        let name = escape_bytes(&p.name);
        match p.kind {
            Kind::Join | Kind::Present => {
                let join = p.kind == Kind::Join;
                if known {
                    (Reaction::Nothing, join)
                } else {
                    self.admit(p.member, &name, from, now);
                    (Reaction::Joined { name }, join)
                }
            }
            Kind::Leave if known => {
                let m = self.members.remove(&p.member);
                let name = m.map_or(name, |m| m.name);
                (Reaction::Left { name }, false)
            }
            // A leave of a member we do not know (expired, evicted, never seen).
            Kind::Leave => (Reaction::Nothing, false),
            Kind::Message => {
                if !known {
                    self.admit(p.member, &name, from, now);
                }
                let text = escape_bytes(&p.text);
                let bytes = p.text.len();
                (Reaction::Message { name, text, bytes }, false)
            }
        }
    }

    /// Adds a member, evicting one first when its host or the room is full.
    fn admit(&mut self, member: u64, name: &str, from: SocketAddr, now: Instant) {
        let host = from.ip();
        let same_host = |m: &Member| m.from.ip() == host;
        let on_host = self.members.values().filter(|m| same_host(m)).count();
        let pool: Option<fn(&Member, IpAddr) -> bool> = if on_host >= MAX_PER_HOST {
            Some(|m, host| m.from.ip() == host)
        } else if self.members.len() >= MAX_MEMBERS {
            Some(|_, _| true)
        } else {
            None
        };
        if let Some(in_pool) = pool {
            let victim = self
                .members
                .iter()
                .filter(|(_, m)| in_pool(m, host))
                .min_by_key(|(_, m)| m.eviction_rank())
                .map(|(id, _)| *id);
            if let Some(id) = victim {
                self.members.remove(&id);
                self.evicted += 1;
            }
        }
        self.members.insert(
            member,
            Member {
                name: name.to_owned(),
                from,
                last: now,
                heard: 1,
            },
        );
    }

    /// Removes the members silent for the timeout at `now`, and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let timeout = self.timeout;
        let mut gone = Vec::new();
        self.members.retain(|_, m| {
            let alive = now.saturating_duration_since(m.last) < timeout;
            if !alive {
                gone.push(Expired {
                    name: std::mem::take(&mut m.name),
                    from: m.from,
                });
            }
            alive
        });
        self.expired += gone.len() as u64;
        gone
    }

    /// When the next member would expire, if nobody speaks before.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.members.values().map(|m| m.last + self.timeout).min()
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn pkt(kind: Kind, member: u64, name: &str, text: &str) -> Vec<u8> {
        ChatPacket {
            kind,
            member,
            name: name.into(),
            text: text.into(),
        }
        .encode()
    }

    fn addr(host: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, host], port))
    }

    fn joined(name: &str) -> Reaction {
        Reaction::Joined { name: name.into() }
    }

    #[test]
    fn join_present_message_leave() {
        let (bob, carol, t) = (addr(2, 10003), addr(3, 10003), Instant::now());
        let mut room = Room::new(1, TIMEOUT);
        assert_eq!(
            room.handle(bob, &pkt(Kind::Join, 2, "bob", ""), t),
            (joined("bob"), true)
        );
        // A repeated present from a known member shows nothing.
        assert_eq!(
            room.handle(bob, &pkt(Kind::Present, 2, "bob", ""), t),
            (Reaction::Nothing, false)
        );
        assert_eq!(
            room.handle(carol, &pkt(Kind::Present, 3, "carol", ""), t),
            (joined("carol"), false)
        );
        assert_eq!(room.len(), 2);
        let (r, _) = room.handle(bob, &pkt(Kind::Message, 2, "bob", "hi\x07"), t);
        assert_eq!(
            r,
            Reaction::Message {
                name: "bob".into(),
                text: "hi\\u{7}".into(),
                bytes: 3
            }
        );
        assert_eq!(
            room.handle(bob, &pkt(Kind::Leave, 2, "bob", ""), t).0,
            Reaction::Left { name: "bob".into() }
        );
        assert_eq!(room.len(), 1);
        // Leaving twice, or a leave of someone never seen, shows nothing.
        assert_eq!(
            room.handle(bob, &pkt(Kind::Leave, 2, "bob", ""), t).0,
            Reaction::Nothing
        );
    }

    #[test]
    fn a_member_is_bound_to_the_source_it_first_came_from() {
        let (bob, mallory, t) = (addr(2, 10003), addr(9, 10003), Instant::now());
        let mut room = Room::new(1, TIMEOUT);
        room.handle(bob, &pkt(Kind::Join, 2, "bob", ""), t);
        for kind in [Kind::Leave, Kind::Message, Kind::Join, Kind::Present] {
            assert_eq!(
                room.handle(mallory, &pkt(kind, 2, "bob", "I quit"), t),
                (Reaction::Nothing, false),
                "{kind:?}"
            );
        }
        // Same host, another port: another source too.
        let (r, _) = room.handle(addr(2, 999), &pkt(Kind::Leave, 2, "bob", ""), t);
        assert_eq!(r, Reaction::Nothing);
        assert_eq!((room.len(), room.spoofed), (1, 5));
        let (r, _) = room.handle(bob, &pkt(Kind::Leave, 2, "bob", ""), t);
        assert_eq!(r, Reaction::Left { name: "bob".into() });
    }

    #[test]
    fn own_echo_and_foreign_datagrams_are_silent() {
        let (a, t) = (addr(7, 1), Instant::now());
        let mut room = Room::new(7, TIMEOUT);
        assert_eq!(
            room.handle(a, &pkt(Kind::Message, 7, "me", "echo"), t),
            (Reaction::Nothing, false)
        );
        assert_eq!(
            room.handle(a, b"very important data", t),
            (Reaction::Nothing, false)
        );
        assert_eq!(
            room.handle(a, b"LSWC\x01\x02", t),
            (Reaction::Nothing, false)
        );
        assert_eq!(room.foreign, 2);
        assert!(room.is_empty());
    }

    #[test]
    fn names_with_control_characters_are_escaped() {
        let mut room = Room::new(1, TIMEOUT);
        let (r, _) = room.handle(
            addr(2, 1),
            &pkt(Kind::Join, 2, "evil\x1b[2J", ""),
            Instant::now(),
        );
        assert_eq!(r, joined("evil\\u{1b}[2J"));
    }

    #[test]
    fn silent_members_expire_and_speaking_ones_do_not() {
        let t0 = Instant::now();
        let mut room = Room::new(1, TIMEOUT);
        room.handle(addr(2, 1), &pkt(Kind::Join, 2, "bob", ""), t0);
        room.handle(addr(3, 1), &pkt(Kind::Join, 3, "fake", ""), t0);
        assert_eq!(room.next_expiry(), Some(t0 + TIMEOUT));
        let t1 = t0 + TIMEOUT / 2;
        room.handle(addr(2, 1), &pkt(Kind::Present, 2, "bob", ""), t1);
        assert!(room
            .expire(t0 + TIMEOUT - Duration::from_millis(1))
            .is_empty());
        assert_eq!(
            room.expire(t0 + TIMEOUT),
            vec![Expired {
                name: "fake".into(),
                from: addr(3, 1)
            }]
        );
        assert_eq!((room.len(), room.expired), (1, 1));
        assert_eq!(room.next_expiry(), Some(t1 + TIMEOUT));
        // An expired member that speaks again is a member again.
        let (r, _) = room.handle(addr(3, 1), &pkt(Kind::Present, 3, "fake", ""), t1 + TIMEOUT);
        assert_eq!(r, joined("fake"));
    }

    #[test]
    fn a_real_join_is_shown_after_a_flood_of_fake_members_and_old_members_stay() {
        let t0 = Instant::now();
        let mut room = Room::new(1, TIMEOUT);
        // Two members that have been talking (heard more than once).
        for (id, host) in [(2, 2), (3, 3)] {
            room.handle(addr(host, 10003), &pkt(Kind::Join, id, "real", ""), t0);
            room.handle(addr(host, 10003), &pkt(Kind::Present, id, "real", ""), t0);
        }
        // 2,000 fake members from one host, then 2,000 from 200 hosts.
        let mut t = t0;
        for i in 0..4_000u64 {
            t += Duration::from_micros(10);
            let host = if i < 2_000 { 9 } else { 10 + (i % 200) as u8 };
            let port = 20_000 + (i % 1000) as u16;
            room.handle(addr(host, port), &pkt(Kind::Join, 100 + i, "fake", ""), t);
            assert!(room.len() <= MAX_MEMBERS);
        }
        let on_9 = room
            .members
            .values()
            .filter(|m| m.from.ip() == addr(9, 0).ip());
        assert!(on_9.count() <= MAX_PER_HOST);
        let (r, _) = room.handle(addr(4, 10003), &pkt(Kind::Join, 4, "carol", ""), t);
        assert_eq!(r, joined("carol"));
        for id in [2, 3, 4] {
            assert!(room.members.contains_key(&id), "member {id} evicted");
        }
        assert_eq!(room.evicted, 4_003 - room.len() as u64);
    }

    proptest! {
        /// Whatever arrives from wherever, the table stays within its
        /// bounds, each host within its cap, and a newcomer is always shown.
        #[test]
        fn bounded_and_newcomers_always_shown(
            datagrams in proptest::collection::vec(
                (0u8..40, 0u16..4, 0u64..600, 0u8..4, 0u64..100), 0..800)
        ) {
            let t0 = Instant::now();
            let mut room = Room::new(0, TIMEOUT);
            for (host, port, member, kind, ms) in datagrams {
                let kind = [Kind::Join, Kind::Message, Kind::Leave, Kind::Present][usize::from(kind)];
                let from = addr(host, port);
                let new = !room.members.contains_key(&member) && member != 0;
                let now = t0 + Duration::from_millis(ms);
                let (r, _) = room.handle(from, &pkt(kind, member, "x", ""), now);
                if new && matches!(kind, Kind::Join | Kind::Present) {
                    prop_assert_eq!(r, joined("x"));
                    prop_assert_eq!(room.members[&member].from, from);
                }
                prop_assert!(room.len() <= MAX_MEMBERS);
                let on_host = room.members.values().filter(|m| m.from.ip() == from.ip()).count();
                prop_assert!(on_host <= MAX_PER_HOST);
            }
        }
    }
}

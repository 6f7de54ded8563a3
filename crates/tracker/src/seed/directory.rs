//! The seed's directory server as a state machine. Sans-IO.
//!
//! Datagrams from clients and from the other servers go in with the time;
//! [`Action`]s come out: what to send where, and which clients to add to or
//! remove from the registry. Replies to clients wait [`REPLY_DELAY`], the
//! time the seed's servers give each other to answer a request;
//! [`Directory::due`] hands them over when their time has come.
//!
//! Every server keeps every client it hears of (its own, and those of
//! `INSERT_CLIENTS_DATA` and `RESPONSE_CLIENTS_DATA`), up to
//! [`MAX_CLIENTS`]; every handler is idempotent, so our own multicasts
//! coming back to us, or a response that reaches the wrong server on a
//! shared host, do no harm. Anything that does not parse is dropped and
//! counted.

use std::collections::BTreeSet;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use wire::seed_chat::{AddrList, ClientRequest, ServerMessage};

/// Clients kept at most; more are refused (and counted).
pub const MAX_CLIENTS: usize = 1024;
/// Replies waiting at most; a client asking while this many wait gets none.
pub const MAX_PENDING: usize = 64;
/// How long a server waits for the others' answers before replying.
pub const REPLY_DELAY: Duration = Duration::from_secs(2);

/// What the I/O side must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A client to list in the room (`ip:port`).
    Register(SocketAddrV4),
    /// A client to take off the list.
    Unregister(SocketAddrV4),
    /// A datagram for the group.
    ToGroup(ServerMessage),
    /// A datagram from the group socket to one server.
    Answer(SocketAddr, ServerMessage),
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub from: SocketAddr,
    pub reason: String,
}

/// The clients this server knows and the replies it owes.
#[derive(Debug, Default)]
pub struct Directory {
    clients: BTreeSet<SocketAddrV4>,
    /// Clients waiting for the list, with when it is due.
    pending: Vec<(SocketAddrV4, Instant)>,
    /// Datagrams (or list lines) dropped: malformed, or over a bound.
    pub dropped: u64,
}

impl Directory {
    pub fn new() -> Self {
        Directory::default()
    }

    /// Every client known, in address order.
    pub fn clients(&self) -> impl Iterator<Item = SocketAddrV4> + '_ {
        self.clients.iter().copied()
    }

    /// Adds a client; false when the directory is full.
    fn insert(&mut self, addr: SocketAddrV4, actions: &mut Vec<Action>) -> bool {
        if self.clients.contains(&addr) {
            return true;
        }
        if self.clients.len() >= MAX_CLIENTS {
            self.dropped += 1;
            return false;
        }
        self.clients.insert(addr);
        actions.push(Action::Register(addr));
        true
    }

    fn remove(&mut self, addr: SocketAddrV4, actions: &mut Vec<Action>) {
        if self.clients.remove(&addr) {
            actions.push(Action::Unregister(addr));
        }
        self.pending.retain(|(c, _)| *c != addr);
    }

    /// A datagram from a client at `from`.
    pub fn on_client(
        &mut self,
        from: SocketAddrV4,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Vec<Action>, Dropped> {
        let mut actions = Vec::new();
        match ClientRequest::parse(datagram) {
            Some(ClientRequest::Ready | ClientRequest::Return) => {
                let waiting = self.pending.iter().position(|(c, _)| *c == from);
                if waiting.is_none() && self.pending.len() >= MAX_PENDING {
                    return Err(self.drop(from.into(), "too many replies waiting"));
                }
                if !self.insert(from, &mut actions) {
                    return Err(self.drop(from.into(), "the directory is full"));
                }
                actions.push(Action::ToGroup(ServerMessage::Insert(from)));
                actions.push(Action::ToGroup(ServerMessage::Request));
                let due = now + REPLY_DELAY;
                match waiting {
                    Some(i) => self.pending[i].1 = due,
                    None => self.pending.push((from, due)),
                }
            }
            Some(ClientRequest::Quit) => {
                self.remove(from, &mut actions);
                actions.push(Action::ToGroup(ServerMessage::Quit(from)));
            }
            None => return Err(self.drop(from.into(), "not READY, RETURN or QUIT_CLIENT")),
        }
        Ok(actions)
    }

    /// A datagram from another server (to the group, or a unicast response).
    pub fn on_server(&mut self, from: SocketAddr, datagram: &[u8]) -> Result<Vec<Action>, Dropped> {
        let message = ServerMessage::parse(datagram, MAX_CLIENTS)
            .map_err(|e| self.drop(from, &e.to_string()))?;
        let mut actions = Vec::new();
        match message {
            ServerMessage::Insert(addr) => {
                self.insert(addr, &mut actions);
            }
            ServerMessage::Request => {
                let list = AddrList {
                    addrs: self.clients.iter().copied().collect(),
                    dropped: 0,
                };
                actions.push(Action::Answer(from, ServerMessage::Response(list)));
            }
            ServerMessage::Response(list) => {
                self.dropped += list.dropped as u64;
                for addr in list.addrs {
                    self.insert(addr, &mut actions);
                }
            }
            ServerMessage::Quit(addr) => self.remove(addr, &mut actions),
        }
        Ok(actions)
    }

    /// The clients whose list is due at `now`; they are forgotten here.
    pub fn due(&mut self, now: Instant) -> Vec<SocketAddrV4> {
        let mut due = Vec::new();
        self.pending.retain(|(client, at)| {
            let ready = *at <= now;
            if ready {
                due.push(*client);
            }
            !ready
        });
        due
    }

    /// When the next reply is due, if one waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|(_, at)| *at).min()
    }

    fn drop(&mut self, from: SocketAddr, reason: &str) -> Dropped {
        self.dropped += 1;
        Dropped {
            from,
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_registers_is_announced_and_gets_its_list_after_the_delay() {
        let mut d = Directory::new();
        let t0 = Instant::now();
        let c = a("10.0.0.5:4242");
        let actions = d.on_client(c, b"READY", t0).unwrap();
        assert_eq!(
            actions,
            [
                Action::Register(c),
                Action::ToGroup(ServerMessage::Insert(c)),
                Action::ToGroup(ServerMessage::Request),
            ]
        );
        assert_eq!(d.next_due(), Some(t0 + REPLY_DELAY));
        assert!(d.due(t0 + Duration::from_millis(1999)).is_empty());
        assert_eq!(d.due(t0 + REPLY_DELAY), [c]);
        assert!(d.due(t0 + REPLY_DELAY * 2).is_empty());
        // RETURN again: no second Register, a fresh reply.
        let again = d.on_client(c, b"RETURN\n", t0).unwrap();
        assert!(!again.contains(&Action::Register(c)));
        assert_eq!(d.next_due(), Some(t0 + REPLY_DELAY));
    }

    #[test]
    fn servers_share_inserts_requests_responses_and_quits() {
        let mut d = Directory::new();
        let peer: SocketAddr = "10.0.0.2:9999".parse().unwrap();
        let c1 = a("10.0.0.7:1000");
        let c2 = a("10.0.0.8:2000");
        let ins = d
            .on_server(peer, b"INSERT_CLIENTS_DATA ('10.0.0.7', 1000)")
            .unwrap();
        assert_eq!(ins, [Action::Register(c1)]);
        // Our own insert looped back: nothing new.
        assert!(d
            .on_server(peer, b"INSERT_CLIENTS_DATA ('10.0.0.7', 1000)")
            .unwrap()
            .is_empty());
        let resp = d
            .on_server(peer, b"RESPONSE_CLIENTS_DATA\n('10.0.0.8', 2000)\nevil()")
            .unwrap();
        assert_eq!(resp, [Action::Register(c2)]);
        assert_eq!(d.dropped, 1, "the bad line is counted");
        let answer = d.on_server(peer, b"REQUEST_CLIENTS_DATA").unwrap();
        assert_eq!(
            answer,
            [Action::Answer(
                peer,
                ServerMessage::Response(AddrList {
                    addrs: vec![c1, c2],
                    dropped: 0
                })
            )]
        );
        let quit = d
            .on_server(peer, b"QUIT_CLIENT_DATA ('10.0.0.7', 1000)")
            .unwrap();
        assert_eq!(quit, [Action::Unregister(c1)]);
        assert_eq!(d.clients().collect::<Vec<_>>(), [c2]);
    }

    #[test]
    fn a_client_quits() {
        let mut d = Directory::new();
        let t0 = Instant::now();
        let c = a("10.0.0.5:4242");
        d.on_client(c, b"READY", t0).unwrap();
        let quit = d.on_client(c, b"QUIT_CLIENT", t0).unwrap();
        assert_eq!(
            quit,
            [
                Action::Unregister(c),
                Action::ToGroup(ServerMessage::Quit(c))
            ]
        );
        assert_eq!(d.next_due(), None, "no list for a client that left");
    }

    #[test]
    fn garbage_is_dropped_and_counted_never_evaluated() {
        let mut d = Directory::new();
        let from: SocketAddr = "10.0.0.2:9999".parse().unwrap();
        for junk in [
            &b"INSERT_CLIENTS_DATA __import__('os').system('id')"[..],
            b"INSERT_CLIENTS_DATA ('10.0.0.1', 99999)",
            b"HELLO",
            b"\xff\xfe",
        ] {
            assert!(d.on_server(from, junk).is_err());
        }
        assert!(d
            .on_client(a("10.0.0.3:1"), b"exec('x')", Instant::now())
            .is_err());
        assert_eq!(d.dropped, 5);
        assert_eq!(d.clients().count(), 0);
    }

    #[test]
    fn tables_are_bounded() {
        let mut d = Directory::new();
        let t0 = Instant::now();
        let mut refused = 0;
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let c = SocketAddrV4::new((0x0a00_0000 + i).into(), 1000);
            if d.on_client(c, b"READY", t0).is_err() {
                refused += 1;
            }
        }
        assert_eq!(d.pending.len(), MAX_PENDING);
        assert_eq!(refused, MAX_CLIENTS as u32 + 10 - MAX_PENDING as u32);
        assert_eq!(
            d.clients().count(),
            MAX_PENDING,
            "refused clients are not kept"
        );
        let from: SocketAddr = "10.0.0.2:9999".parse().unwrap();
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let c = SocketAddrV4::new((0x0b00_0000 + i).into(), 1000);
            let insert = ServerMessage::Insert(c).render();
            d.on_server(from, insert.as_bytes()).unwrap();
        }
        assert_eq!(d.clients().count(), MAX_CLIENTS);
    }
}

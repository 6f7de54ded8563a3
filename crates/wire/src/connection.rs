//! The per-connection choke/interest state machine, sans-IO.
//!
//! A [`Connection`] holds what both ends of one peer connection know about
//! each other: the four choke/interest flags, the remote's [`Bitfield`], and
//! the requests we have in flight. Feed it decoded messages with
//! [`Connection::handle`] and local decisions with its command methods; drain
//! the messages to send with [`Connection::poll_transmit`] and the events for
//! the engine with [`Connection::poll_event`]. It never touches a socket.
//!
//! Policy (whom to unchoke, which piece to request) belongs to the engine;
//! this type enforces the protocol: a Piece we never requested or an index out
//! of range is a [`ProtocolError`], while a Request that races with our Choke
//! is dropped quietly, as it is no attack.
//!
//! Peers of the seed's original protocol (`legacy`) never receive Have,
//! Cancel or KeepAlive, which they do not know.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::message::Message;

/// How many cancelled or choke-dropped requests we remember, so that a Piece
/// already on its way when we cancelled is not mistaken for an unrequested one.
const RECENTLY_ABANDONED: usize = 256;

/// What the engine learns from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// The remote sent its bitfield; read it with [`Connection::remote`].
    /// `previous` is the bitfield it replaces (all absent the first time).
    Bitfield { previous: Bitfield },
    /// The remote announced a new piece.
    Have(u32),
    /// The remote unchoked us: requests may flow.
    Unchoked,
    /// The remote choked us; these requests of ours are void and need a new home.
    Choked { dropped: Vec<u32> },
    /// The remote's interest in our pieces changed.
    Interest(bool),
    /// The remote asks for a piece, and we are not choking it.
    Request(u32),
    /// A piece arrived. `requested` is false for a late arrival of a
    /// request we had cancelled or lost to a choke.
    Piece {
        index: u32,
        data: Bytes,
        requested: bool,
    },
    /// The remote no longer wants piece `index`.
    Cancel(u32),
    /// The remote says it is going away.
    Closing,
}

/// A violation of the protocol by the remote peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("received piece {0}, which was never requested")]
    UnrequestedPiece(u32),
    #[error("{what} index {index} is out of range (torrent has {count} pieces)")]
    IndexOutOfRange {
        what: &'static str,
        index: u32,
        count: u32,
    },
    #[error("bitfield covers {actual} pieces but the torrent has {expected}")]
    BitfieldLength { expected: u32, actual: u32 },
    #[error("handshake received after the connection was established")]
    UnexpectedHandshake,
}

/// Why a request could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefused {
    #[error("the peer is choking us")]
    Choked,
    #[error("the peer does not have that piece")]
    NotAvailable,
    #[error("that piece is already requested from this peer")]
    AlreadyRequested,
}

/// Protocol state of one peer connection.
#[derive(Debug, Clone)]
pub struct Connection {
    piece_count: u32,
    legacy: bool,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    remote: Bitfield,
    in_flight: Vec<u32>,
    abandoned: VecDeque<u32>,
    dropped_requests: u64,
    transmit: VecDeque<Message>,
    events: VecDeque<ConnEvent>,
}

impl Connection {
    /// A fresh connection for a torrent of `piece_count` pieces. Both sides
    /// start choked and uninterested, as in BitTorrent. `legacy` marks a peer
    /// of the seed's original protocol.
    pub fn new(piece_count: u32, legacy: bool) -> Self {
        Self {
            piece_count,
            legacy,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            remote: Bitfield::new(piece_count),
            in_flight: Vec::new(),
            abandoned: VecDeque::new(),
            dropped_requests: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn is_legacy(&self) -> bool {
        self.legacy
    }
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }
    /// The pieces the remote has told us it holds.
    pub fn remote(&self) -> &Bitfield {
        &self.remote
    }
    /// Our outstanding requests to this peer, oldest first.
    pub fn in_flight(&self) -> &[u32] {
        &self.in_flight
    }
    /// Requests the remote sent while we were choking it (a harmless race).
    pub fn dropped_requests(&self) -> u64 {
        self.dropped_requests
    }

    /// Next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    /// Next event for the engine, if any.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    fn check_index(&self, what: &'static str, index: u32) -> Result<(), ProtocolError> {
        if index < self.piece_count {
            Ok(())
        } else {
            Err(ProtocolError::IndexOutOfRange {
                what,
                index,
                count: self.piece_count,
            })
        }
    }

    /// Feeds one message received from the remote.
    pub fn handle(&mut self, msg: Message) -> Result<(), ProtocolError> {
        match msg {
            Message::KeepAlive => {}
            Message::Choke => {
                if !self.peer_choking {
                    self.peer_choking = true;
                    let dropped = std::mem::take(&mut self.in_flight);
                    for &i in &dropped {
                        self.remember_abandoned(i);
                    }
                    self.events.push_back(ConnEvent::Choked { dropped });
                }
            }
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.events.push_back(ConnEvent::Unchoked);
                }
            }
            Message::Interested | Message::NotInterested => {
                let interested = msg == Message::Interested;
                if self.peer_interested != interested {
                    self.peer_interested = interested;
                    self.events.push_back(ConnEvent::Interest(interested));
                }
            }
            Message::Have(index) => {
                self.check_index("Have", index)?;
                if self.remote.set(index, true) {
                    self.events.push_back(ConnEvent::Have(index));
                }
            }
            Message::Bitfield(bf) => {
                if bf.len() != self.piece_count {
                    return Err(ProtocolError::BitfieldLength {
                        expected: self.piece_count,
                        actual: bf.len(),
                    });
                }
                let previous = std::mem::replace(&mut self.remote, bf);
                self.events.push_back(ConnEvent::Bitfield { previous });
            }
            Message::Request(index) => {
                self.check_index("Request", index)?;
                if self.am_choking {
                    self.dropped_requests += 1;
                } else {
                    self.events.push_back(ConnEvent::Request(index));
                }
            }
            Message::Piece { index, data } => {
                self.check_index("Piece", index)?;
                let requested = if let Some(pos) = self.in_flight.iter().position(|&i| i == index) {
                    self.in_flight.remove(pos);
                    true
                } else if let Some(pos) = self.abandoned.iter().position(|&i| i == index) {
                    self.abandoned.remove(pos);
                    false
                } else {
                    return Err(ProtocolError::UnrequestedPiece(index));
                };
                self.events.push_back(ConnEvent::Piece {
                    index,
                    data,
                    requested,
                });
            }
            Message::Cancel(index) => {
                self.check_index("Cancel", index)?;
                self.events.push_back(ConnEvent::Cancel(index));
            }
            Message::Close => self.events.push_back(ConnEvent::Closing),
            Message::Handshake { .. } => return Err(ProtocolError::UnexpectedHandshake),
        }
        Ok(())
    }

    fn remember_abandoned(&mut self, index: u32) {
        if self.abandoned.len() == RECENTLY_ABANDONED {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back(index);
    }

    /// Sends our bitfield (the opening message of both protocols).
    pub fn send_bitfield(&mut self, ours: &Bitfield) {
        self.transmit.push_back(Message::Bitfield(ours.clone()));
    }

    /// Recomputes our interest from what we have: interested exactly when the
    /// remote holds a piece we lack. Sends Interested/NotInterested on change.
    /// Returns the new interest.
    pub fn update_interest(&mut self, ours: &Bitfield) -> bool {
        let want = ours.lacks_any_of(&self.remote);
        self.set_interested(want);
        want
    }

    /// Sets our interest explicitly, sending a message only on change.
    pub fn set_interested(&mut self, interested: bool) {
        if self.am_interested != interested {
            self.am_interested = interested;
            self.transmit.push_back(if interested {
                Message::Interested
            } else {
                Message::NotInterested
            });
        }
    }

    /// Chokes the remote (no-op if already choked).
    pub fn choke(&mut self) {
        if !self.am_choking {
            self.am_choking = true;
            self.transmit.push_back(Message::Choke);
        }
    }

    /// Unchokes the remote (no-op if already unchoked).
    pub fn unchoke(&mut self) {
        if self.am_choking {
            self.am_choking = false;
            self.transmit.push_back(Message::Unchoke);
        }
    }

    /// Requests piece `index` from the remote.
    pub fn request(&mut self, index: u32) -> Result<(), RequestRefused> {
        if self.peer_choking {
            return Err(RequestRefused::Choked);
        }
        if !self.remote.has(index) {
            return Err(RequestRefused::NotAvailable);
        }
        if self.in_flight.contains(&index) {
            return Err(RequestRefused::AlreadyRequested);
        }
        self.in_flight.push(index);
        self.transmit.push_back(Message::Request(index));
        Ok(())
    }

    /// Withdraws an outstanding request (end-game). Returns whether it was in
    /// flight. Legacy peers get no Cancel message, as they do not know it; a
    /// late Piece is still accepted.
    pub fn cancel(&mut self, index: u32) -> bool {
        let Some(pos) = self.in_flight.iter().position(|&i| i == index) else {
            return false;
        };
        self.in_flight.remove(pos);
        self.remember_abandoned(index);
        if !self.legacy {
            self.transmit.push_back(Message::Cancel(index));
        }
        true
    }

    /// Takes back every request in flight (e.g. when the connection dies) so
    /// the engine can re-queue them.
    pub fn take_in_flight(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.in_flight)
    }

    /// Queues a piece for the remote.
    pub fn send_piece(&mut self, index: u32, data: Bytes) {
        self.transmit.push_back(Message::Piece { index, data });
    }

    /// Announces a newly verified piece (not to legacy peers, which never
    /// expect Have).
    pub fn have(&mut self, index: u32) {
        if !self.legacy {
            self.transmit.push_back(Message::Have(index));
        }
    }

    /// Queues a keep-alive (not for legacy peers).
    pub fn keep_alive(&mut self) {
        if !self.legacy {
            self.transmit.push_back(Message::KeepAlive);
        }
    }

    /// Queues Close: we are going away.
    pub fn close(&mut self) {
        self.transmit.push_back(Message::Close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut Connection) -> Vec<Message> {
        std::iter::from_fn(|| c.poll_transmit()).collect()
    }
    fn events(c: &mut Connection) -> Vec<ConnEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    /// The seed's flow, with a seeder and a leecher wired back to back and a
    /// minimal engine policy in the loop: Bitfield both ways, Interested,
    /// Unchoke, Request, Piece → next Request, NotInterested when done.
    #[test]
    fn seed_flow_is_expressible() {
        let pieces: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 4])).collect();
        let seed_have = Bitfield::full(3);
        let mut leech_have = Bitfield::new(3);
        let mut seeder = Connection::new(3, true);
        let mut leecher = Connection::new(3, true);
        seeder.send_bitfield(&seed_have);
        leecher.send_bitfield(&leech_have);
        let mut log = Vec::new();
        for _round in 0..20 {
            let to_leecher = drain(&mut seeder);
            let to_seeder = drain(&mut leecher);
            if to_leecher.is_empty() && to_seeder.is_empty() {
                break;
            }
            for m in to_seeder {
                log.push(format!("L->S {}", m.name()));
                seeder.handle(m).unwrap();
            }
            for m in to_leecher {
                log.push(format!("S->L {}", m.name()));
                leecher.handle(m).unwrap();
            }
            // Seeder policy: answer Interested with Unchoke, serve requests.
            for ev in events(&mut seeder) {
                match ev {
                    ConnEvent::Interest(true) => seeder.unchoke(),
                    ConnEvent::Request(i) => seeder.send_piece(i, pieces[i as usize].clone()),
                    _ => {}
                }
            }
            // Leecher policy: get interested, request one piece at a time.
            for ev in events(&mut leecher) {
                match ev {
                    ConnEvent::Bitfield { .. } => {
                        leecher.update_interest(&leech_have);
                    }
                    ConnEvent::Piece {
                        index,
                        data,
                        requested,
                    } => {
                        assert!(requested);
                        assert_eq!(data, pieces[index as usize]);
                        leech_have.set(index, true);
                    }
                    _ => {}
                }
                if !leecher.peer_choking() && leecher.in_flight().is_empty() {
                    if let Some(next) = leech_have.iter_missing().next() {
                        leecher.request(next).unwrap();
                    } else {
                        leecher.update_interest(&leech_have);
                    }
                }
            }
        }
        assert!(leech_have.is_complete());
        let expected = [
            "L->S Bitfield",
            "S->L Bitfield",
            "L->S Interested",
            "S->L Unchoke",
            "L->S Request",
            "S->L Piece",
            "L->S Request",
            "S->L Piece",
            "L->S Request",
            "S->L Piece",
            "L->S NotInterested",
        ];
        assert_eq!(log, expected);
    }

    #[test]
    fn unrequested_piece_is_a_violation() {
        let mut c = Connection::new(4, false);
        let err = c
            .handle(Message::Piece {
                index: 1,
                data: Bytes::new(),
            })
            .unwrap_err();
        assert_eq!(err, ProtocolError::UnrequestedPiece(1));
    }

    #[test]
    fn out_of_range_indices_are_violations() {
        let mut c = Connection::new(4, false);
        for msg in [Message::Have(4), Message::Request(9), Message::Cancel(4)] {
            assert!(matches!(
                c.handle(msg),
                Err(ProtocolError::IndexOutOfRange { .. })
            ));
        }
        assert!(matches!(
            c.handle(Message::Bitfield(Bitfield::new(3))),
            Err(ProtocolError::BitfieldLength {
                expected: 4,
                actual: 3
            })
        ));
    }

    #[test]
    fn request_while_choking_is_dropped_quietly() {
        let mut c = Connection::new(4, false);
        c.handle(Message::Request(1)).unwrap();
        assert!(events(&mut c).is_empty());
        assert_eq!(c.dropped_requests(), 1);
        c.unchoke();
        c.handle(Message::Request(1)).unwrap();
        assert_eq!(events(&mut c), vec![ConnEvent::Request(1)]);
    }

    #[test]
    fn requests_need_unchoke_and_availability() {
        let mut c = Connection::new(4, false);
        assert_eq!(c.request(0), Err(RequestRefused::Choked));
        c.handle(Message::Unchoke).unwrap();
        assert_eq!(c.request(0), Err(RequestRefused::NotAvailable));
        c.handle(Message::Have(0)).unwrap();
        assert_eq!(c.request(0), Ok(()));
        assert_eq!(c.request(0), Err(RequestRefused::AlreadyRequested));
        assert_eq!(c.in_flight(), &[0]);
    }

    #[test]
    fn choke_drops_requests_and_late_pieces_are_accepted() {
        let mut c = Connection::new(4, false);
        c.handle(Message::Bitfield(Bitfield::full(4))).unwrap();
        c.handle(Message::Unchoke).unwrap();
        c.request(1).unwrap();
        c.request(2).unwrap();
        events(&mut c);
        c.handle(Message::Choke).unwrap();
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Choked {
                dropped: vec![1, 2]
            }]
        );
        assert!(c.in_flight().is_empty());
        c.handle(Message::Piece {
            index: 2,
            data: Bytes::from_static(b"x"),
        })
        .unwrap();
        assert!(matches!(
            events(&mut c)[..],
            [ConnEvent::Piece {
                index: 2,
                requested: false,
                ..
            }]
        ));
        // Only once: a second copy is unrequested.
        assert!(c
            .handle(Message::Piece {
                index: 2,
                data: Bytes::new()
            })
            .is_err());
    }

    #[test]
    fn cancel_sends_cancel_except_to_legacy() {
        for legacy in [false, true] {
            let mut c = Connection::new(2, legacy);
            c.handle(Message::Bitfield(Bitfield::full(2))).unwrap();
            c.handle(Message::Unchoke).unwrap();
            c.request(1).unwrap();
            drain(&mut c);
            assert!(c.cancel(1));
            assert!(!c.cancel(1));
            let sent = drain(&mut c);
            assert_eq!(
                sent,
                if legacy {
                    vec![]
                } else {
                    vec![Message::Cancel(1)]
                }
            );
            c.have(0);
            assert_eq!(drain(&mut c).len(), usize::from(!legacy));
        }
    }

    #[test]
    fn late_handshake_is_a_violation() {
        let mut c = Connection::new(1, false);
        let hs = Message::Handshake {
            info_hash: Default::default(),
            peer_id: Default::default(),
        };
        assert_eq!(c.handle(hs), Err(ProtocolError::UnexpectedHandshake));
    }

    #[test]
    fn interest_follows_bitfields() {
        let mut c = Connection::new(2, false);
        let mut ours = Bitfield::new(2);
        c.handle(Message::Have(1)).unwrap();
        assert!(c.update_interest(&ours));
        assert_eq!(drain(&mut c), vec![Message::Interested]);
        ours.set(1, true);
        assert!(!c.update_interest(&ours));
        assert_eq!(drain(&mut c), vec![Message::NotInterested]);
        c.update_interest(&ours);
        assert!(drain(&mut c).is_empty(), "no message without a change");
    }
}

//! One peer connection's protocol, sans-IO: the handshake, the choke and
//! interest flags, our requests, the peer's requests queued for upload, the
//! timers, and why it closed.
//!
//! A driver owns the socket and the clock. It feeds decoded messages to
//! [`Connection::handle`], the end of the stream to
//! [`Connection::handle_eof`] and the passing of time to
//! [`Connection::handle_timeout`]; it sends what
//! [`Connection::poll_transmit`] returns, uploads the pieces
//! [`Connection::poll_upload`] names, hands the engine what
//! [`Connection::poll_event`] reports, and sleeps no later than
//! [`Connection::poll_timeout`]. Every method that depends on time takes the
//! current [`Instant`] as a parameter: nothing here reads a clock, so tests
//! drive time by hand.
//!
//! **Opening.** A dialer of our protocol sends Handshake and waits for the
//! peer's; a listener waits for the peer's Handshake and answers with its
//! own. A wrong info hash, or our own peer id (we dialed ourselves), closes
//! the connection. Peers of the seed's original protocol (`legacy`) have no
//! handshake: we dial them open at once ([`Role::Outgoing`] with `legacy`,
//! as the tracker lists them without `proto`), and we recognise one dialing
//! us by its first message, a Bitfield of the right length. Both sides then
//! send Bitfield; that is the driver's call ([`Connection::send_bitfield`]),
//! once the engine has admitted the peer.
//!
//! **Rules.** Policy (whom to unchoke, which piece to request) belongs to the
//! engine; this type enforces the protocol: a Piece we never requested or an
//! index out of range is a [`ProtocolError`], while a Request that races
//! with our Choke is dropped quietly, as it is no attack. Legacy peers are
//! asked for one piece at a time and never receive Have, Cancel or
//! KeepAlive, which they do not know.
//!
//! **Closing.** Every end, whatever its cause, comes out once as
//! [`ConnEvent::Closed`] with a typed [`Disconnect`]; unless the peer itself
//! said goodbye, a Close message is queued first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::disconnect::Disconnect;
use crate::ids::{InfoHash, PeerId};
use crate::message::Message;
use crate::timers::{self, Timeouts, Timer};
use crate::upload::UploadQueue;

/// How many cancelled or choke-dropped requests we remember, so that a Piece
/// already on its way when we cancelled is not mistaken for an unrequested one.
const RECENTLY_ABANDONED: usize = 256;

/// What every connection of one swarm shares: who we are, which torrent, and
/// the time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub info_hash: InfoHash,
    /// Our own peer id.
    pub peer_id: PeerId,
    pub piece_count: u32,
    pub timeouts: Timeouts,
}

/// How the connection came about, which decides how it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We dialed. `legacy`: the tracker listed the peer without `proto`, so
    /// it speaks the seed's original protocol (no handshake, Bitfield first).
    Outgoing { legacy: bool },
    /// The peer dialed us: it opens with Handshake, or with its Bitfield if it
    /// speaks the original protocol.
    Incoming,
}

/// What the engine learns from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// The opening is done: `peer_id` is the remote's (none for a legacy
    /// peer). Always the first event of an open connection.
    Established {
        peer_id: Option<PeerId>,
        legacy: bool,
    },
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
    /// Our request for `index` passed its deadline although the peer has
    /// delivered since it was sent (a slow peer, not a stalled one): it is
    /// withdrawn (with Cancel) and needs a new home. A stalled peer, which
    /// delivered nothing since the request went out, is closed instead
    /// ([`Disconnect::PieceTimeout`]).
    RequestTimedOut { index: u32 },
    /// A piece arrived. `requested` is false for a late arrival of a
    /// request we had cancelled, lost to a choke or let time out.
    Piece {
        index: u32,
        data: Bytes,
        requested: bool,
    },
    /// The connection is over, for this reason. Always the last event.
    Closed(Disconnect),
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
    #[error("the connection is not open")]
    NotOpen,
    #[error("the peer is choking us")]
    Choked,
    #[error("the peer speaks the original protocol: one request at a time")]
    OneAtATime,
    #[error("the peer does not have that piece")]
    NotAvailable,
    #[error("that piece is already requested from this peer")]
    AlreadyRequested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Open,
    Closed,
}

/// Protocol state of one peer connection.
#[derive(Debug, Clone)]
pub struct Connection {
    config: Config,
    role: Role,
    phase: Phase,
    legacy: bool,
    remote_id: Option<PeerId>,
    closed: Option<Disconnect>,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    /// What we told the remote we have: its requests are checked against it.
    ours: Bitfield,
    remote: Bitfield,
    in_flight: Vec<u32>,
    /// When each request of `in_flight` went out (same order).
    sent_at: Vec<Instant>,
    /// How long one request may wait for its piece (see
    /// [`Connection::set_request_timeout`]).
    request_timeout: Duration,
    abandoned: VecDeque<u32>,
    uploads: UploadQueue,
    dropped_requests: u64,
    unavailable_requests: u64,
    started: Instant,
    /// When the opening completed (the start, until then).
    opened: Instant,
    last_rx: Instant,
    last_tx: Instant,
    /// When the last piece we had asked for arrived.
    last_piece: Option<Instant>,
    transmit: VecDeque<Message>,
    events: VecDeque<ConnEvent>,
}

impl Connection {
    /// A connection that starts at `now`. Both sides start choked and
    /// uninterested, as in BitTorrent. A dialer of our protocol queues its
    /// Handshake; a dialer of a legacy peer is open at once.
    pub fn new(config: Config, role: Role, now: Instant) -> Self {
        let piece_count = config.piece_count;
        let mut conn = Self {
            config,
            role,
            phase: Phase::Handshake,
            legacy: false,
            remote_id: None,
            closed: None,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            ours: Bitfield::new(piece_count),
            remote: Bitfield::new(piece_count),
            in_flight: Vec::new(),
            sent_at: Vec::new(),
            request_timeout: config.timeouts.piece,
            abandoned: VecDeque::new(),
            uploads: UploadQueue::default(),
            dropped_requests: 0,
            unavailable_requests: 0,
            started: now,
            opened: now,
            last_rx: now,
            last_tx: now,
            last_piece: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        match role {
            Role::Outgoing { legacy: true } => conn.establish(None, true, now),
            Role::Outgoing { legacy: false } => conn.transmit.push_back(conn.our_handshake()),
            Role::Incoming => {}
        }
        conn
    }

    pub fn role(&self) -> Role {
        self.role
    }
    /// Whether the remote speaks the seed's original protocol (known once open).
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }
    /// The remote's peer id, once its handshake is in (never for legacy peers).
    pub fn remote_peer_id(&self) -> Option<PeerId> {
        self.remote_id
    }
    /// Whether the opening is done and the connection not closed.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }
    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&Disconnect> {
        self.closed.as_ref()
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
    /// Requests the remote sent for pieces we never announced (ignored).
    pub fn unavailable_requests(&self) -> u64 {
        self.unavailable_requests
    }
    /// Pieces the remote asked for that wait for [`Connection::poll_upload`].
    pub fn uploads_queued(&self) -> usize {
        self.uploads.len()
    }

    /// Whether the connection is of no use to either side at `now`, so that
    /// it may give its slot to a newcomer when the slots are full: open for
    /// at least `grace` and either silent (nothing received) for `silence`,
    /// or wanting nothing from us (not interested, nothing queued) while
    /// holding nothing we want (we are not interested, nothing in flight).
    pub fn is_useless(&self, now: Instant, grace: Duration, silence: Duration) -> bool {
        if self.phase != Phase::Open || now.saturating_duration_since(self.opened) < grace {
            return false;
        }
        let silent = now.saturating_duration_since(self.last_rx) >= silence;
        let wants_nothing = !self.peer_interested && self.uploads.is_empty();
        let has_nothing_we_want = !self.am_interested && self.in_flight.is_empty();
        silent || (wants_nothing && has_nothing_we_want)
    }

    /// Next message to send, if any; `now` is when it goes out (it
    /// postpones the next KeepAlive).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Message> {
        let msg = self.transmit.pop_front()?;
        self.last_tx = now;
        Some(msg)
    }

    /// Next piece to upload: the driver sends `index` as a Piece message.
    pub fn poll_upload(&mut self) -> Option<u32> {
        self.uploads.pop()
    }

    /// Next event for the engine, if any.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must be called next; `None` when
    /// no timer runs (e.g. once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        Timer::ALL.iter().filter_map(|&t| self.deadline(t)).min()
    }

    /// When `timer` fires, if it runs now.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        let limits = &self.config.timeouts;
        match (timer, self.phase) {
            (Timer::Handshake, Phase::Handshake) => {
                timers::deadline(self.started, limits.handshake)
            }
            (Timer::Piece, Phase::Open) => {
                let oldest = self.sent_at.iter().min()?;
                timers::deadline(*oldest, self.request_timeout)
            }
            // Every open connection, the original protocol's too: a peer that
            // says nothing for this long holds a slot for nothing.
            (Timer::Idle, Phase::Open) => timers::deadline(self.last_rx, limits.idle),
            (Timer::KeepAlive, Phase::Open) if !self.legacy => {
                timers::deadline(self.last_tx, limits.keep_alive)
            }
            _ => None,
        }
    }

    /// Lets time pass until `now`: fires every timer whose deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if timers::expired(self.deadline(timer), now) {
                self.fire(timer, now);
            }
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::Handshake => self.close(Disconnect::HandshakeTimeout),
            Timer::Piece => self.requests_expired(now),
            Timer::Idle => self.close(Disconnect::IdleTimeout),
            Timer::KeepAlive => {
                self.transmit.push_back(Message::KeepAlive);
                self.last_tx = now;
            }
        }
    }

    /// Feeds one message received from the remote at `now`. A violation
    /// closes the connection (see [`ConnEvent::Closed`]).
    pub fn handle(&mut self, msg: Message, now: Instant) {
        match self.phase {
            Phase::Closed => {}
            Phase::Handshake => {
                self.last_rx = now;
                self.handle_opening(msg, now);
            }
            Phase::Open => {
                self.last_rx = now;
                if let Err(e) = self.handle_open(msg, now) {
                    self.close(Disconnect::Protocol(e));
                }
            }
        }
    }

    /// The remote's byte stream ended.
    pub fn handle_eof(&mut self) {
        self.close(if self.phase == Phase::Handshake {
            Disconnect::ClosedBeforeHandshake
        } else {
            Disconnect::ClosedByPeer
        });
    }

    fn our_handshake(&self) -> Message {
        Message::Handshake {
            info_hash: self.config.info_hash,
            peer_id: self.config.peer_id,
        }
    }

    fn establish(&mut self, peer_id: Option<PeerId>, legacy: bool, now: Instant) {
        self.phase = Phase::Open;
        self.legacy = legacy;
        self.remote_id = peer_id;
        self.opened = now;
        self.last_rx = now;
        self.last_tx = now;
        self.events
            .push_back(ConnEvent::Established { peer_id, legacy });
    }

    fn handle_opening(&mut self, msg: Message, now: Instant) {
        match msg {
            Message::Handshake { info_hash, peer_id } => {
                if info_hash != self.config.info_hash {
                    return self.close(Disconnect::InfoHashMismatch(info_hash));
                }
                if peer_id == self.config.peer_id {
                    return self.close(Disconnect::OwnPeerId);
                }
                if self.role == Role::Incoming {
                    self.transmit.push_back(self.our_handshake());
                }
                self.establish(Some(peer_id), false, now);
            }
            // A peer of the original protocol dialing us opens with its Bitfield.
            Message::Bitfield(bf) if self.role == Role::Incoming => {
                if bf.len() != self.config.piece_count {
                    return self.close(Disconnect::Protocol(ProtocolError::BitfieldLength {
                        expected: self.config.piece_count,
                        actual: bf.len(),
                    }));
                }
                self.establish(None, true, now);
                self.handle(Message::Bitfield(bf), now);
            }
            other => self.close(Disconnect::ExpectedHandshake(other.name())),
        }
    }

    fn check_index(&self, what: &'static str, index: u32) -> Result<(), ProtocolError> {
        if index < self.config.piece_count {
            Ok(())
        } else {
            Err(ProtocolError::IndexOutOfRange {
                what,
                index,
                count: self.config.piece_count,
            })
        }
    }

    fn handle_open(&mut self, msg: Message, now: Instant) -> Result<(), ProtocolError> {
        match msg {
            Message::KeepAlive => {}
            Message::Choke => {
                if !self.peer_choking {
                    self.peer_choking = true;
                    self.sent_at.clear();
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
                if bf.len() != self.config.piece_count {
                    return Err(ProtocolError::BitfieldLength {
                        expected: self.config.piece_count,
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
                } else if !self.ours.has(index) {
                    self.unavailable_requests += 1;
                } else {
                    self.uploads.push(index);
                }
            }
            Message::Piece { index, data } => {
                let requested = self.accept_piece(index, now)?;
                self.events.push_back(ConnEvent::Piece {
                    index,
                    data,
                    requested,
                });
            }
            Message::Cancel(index) => {
                self.check_index("Cancel", index)?;
                self.uploads.cancel(index);
            }
            Message::Close => self.close(Disconnect::PeerSentClose),
            Message::Handshake { .. } => return Err(ProtocolError::UnexpectedHandshake),
        }
        Ok(())
    }

    /// Checks that piece `index` answers a request of ours (or a request we
    /// withdrew, then `false`: a late arrival) and ends that request.
    fn accept_piece(&mut self, index: u32, now: Instant) -> Result<bool, ProtocolError> {
        self.check_index("Piece", index)?;
        let requested = if let Some(pos) = self.in_flight.iter().position(|&i| i == index) {
            self.remove_request(pos);
            self.last_piece = Some(now);
            true
        } else if let Some(pos) = self.abandoned.iter().position(|&i| i == index) {
            self.abandoned.remove(pos);
            false
        } else {
            return Err(ProtocolError::UnrequestedPiece(index));
        };
        Ok(requested)
    }

    /// A Piece's header arrived at `now`; its data follows on the stream,
    /// and the driver streams it to storage itself (see
    /// [`crate::codec::Head::Piece`]). The same checks as a whole Piece
    /// through [`Connection::handle`], without a [`ConnEvent::Piece`]:
    /// returns `Some(requested)` when the piece is accepted (`false` for a
    /// late arrival of a request we withdrew), `None` when the connection
    /// is, or has just been, closed (a violation, or not open yet).
    pub fn handle_piece_header(&mut self, index: u32, now: Instant) -> Option<bool> {
        match self.phase {
            Phase::Closed => None,
            Phase::Handshake => {
                self.last_rx = now;
                self.close(Disconnect::ExpectedHandshake("Piece"));
                None
            }
            Phase::Open => {
                self.last_rx = now;
                match self.accept_piece(index, now) {
                    Ok(requested) => Some(requested),
                    Err(e) => {
                        self.close(Disconnect::Protocol(e));
                        None
                    }
                }
            }
        }
    }

    fn remember_abandoned(&mut self, index: u32) {
        if self.abandoned.len() == RECENTLY_ABANDONED {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back(index);
    }

    /// Closes the connection for `reason` (only the first reason counts).
    /// An open connection tells the peer with Close unless the peer has
    /// already gone; pieces queued for upload are dropped.
    pub fn close(&mut self, reason: Disconnect) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Open && reason.tells_peer() {
            self.transmit.push_back(Message::Close);
        }
        self.phase = Phase::Closed;
        self.uploads.clear();
        self.closed = Some(reason.clone());
        self.events.push_back(ConnEvent::Closed(reason));
    }

    /// Sends our bitfield (the opening message of both protocols, once the
    /// connection is open). The remote may request exactly these pieces and
    /// those we later announce with [`Connection::have`].
    pub fn send_bitfield(&mut self, ours: &Bitfield) {
        if !self.is_open() {
            return;
        }
        self.ours = ours.clone();
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
        if self.is_open() && self.am_interested != interested {
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
        if self.is_open() && !self.am_choking {
            self.am_choking = true;
            self.transmit.push_back(Message::Choke);
        }
    }

    /// Unchokes the remote (no-op if already unchoked).
    pub fn unchoke(&mut self) {
        if self.is_open() && self.am_choking {
            self.am_choking = false;
            self.transmit.push_back(Message::Unchoke);
        }
    }

    /// How many more requests the remote may be sent now, aiming at `depth`
    /// in flight: none unless it unchoked us and we are interested; legacy
    /// peers one at a time.
    pub fn request_room(&self, depth: usize) -> usize {
        if !self.is_open() || self.peer_choking || !self.am_interested {
            return 0;
        }
        let max = if self.legacy { 1 } else { depth };
        max.saturating_sub(self.in_flight.len())
    }

    /// Requests piece `index` from the remote at `now`.
    pub fn request(&mut self, index: u32, now: Instant) -> Result<(), RequestRefused> {
        if !self.is_open() {
            return Err(RequestRefused::NotOpen);
        }
        if self.peer_choking {
            return Err(RequestRefused::Choked);
        }
        if self.legacy && !self.in_flight.is_empty() {
            return Err(RequestRefused::OneAtATime);
        }
        if !self.remote.has(index) {
            return Err(RequestRefused::NotAvailable);
        }
        if self.in_flight.contains(&index) {
            return Err(RequestRefused::AlreadyRequested);
        }
        self.in_flight.push(index);
        self.sent_at.push(now);
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
        self.remove_request(pos);
        self.remember_abandoned(index);
        if self.is_open() && !self.legacy {
            self.transmit.push_back(Message::Cancel(index));
        }
        true
    }

    /// Takes back every request in flight (e.g. when the connection dies) so
    /// the engine can re-queue them.
    pub fn take_in_flight(&mut self) -> Vec<u32> {
        self.sent_at.clear();
        std::mem::take(&mut self.in_flight)
    }

    /// How long each request may now wait for its piece: the driver sets it
    /// from the rate the peer has shown (it starts at `Timeouts::piece`).
    /// It applies to requests already in flight too.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// The deadline each request now has.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    fn remove_request(&mut self, pos: usize) {
        self.in_flight.remove(pos);
        self.sent_at.remove(pos);
    }

    /// Requests whose deadline came at `now`. If the peer delivered nothing
    /// since one of them went out it is stalled and the connection closes;
    /// otherwise each is withdrawn on its own (Cancel, and
    /// [`ConnEvent::RequestTimedOut`]).
    fn requests_expired(&mut self, now: Instant) {
        let timeout = self.request_timeout;
        let expired = |at: &Instant| timers::expired(timers::deadline(*at, timeout), now);
        let stalled = self
            .sent_at
            .iter()
            .filter(|at| expired(at))
            .any(|at| self.last_piece.is_none_or(|p| p < *at));
        if stalled {
            return self.close(Disconnect::PieceTimeout(timeout));
        }
        let mut pos = 0;
        while pos < self.in_flight.len() {
            if !expired(&self.sent_at[pos]) {
                pos += 1;
                continue;
            }
            let index = self.in_flight[pos];
            self.remove_request(pos);
            self.remember_abandoned(index);
            if !self.legacy {
                self.transmit.push_back(Message::Cancel(index));
            }
            self.events.push_back(ConnEvent::RequestTimedOut { index });
        }
    }

    /// We verified piece `index`: the remote may now request it, and hears
    /// of it with Have (not legacy peers, which never expect Have).
    pub fn have(&mut self, index: u32) {
        self.ours.set(index, true);
        if self.is_open() && !self.legacy {
            self.transmit.push_back(Message::Have(index));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: InfoHash = InfoHash([7; 20]);
    const ME: PeerId = PeerId([1; 20]);
    const THEM: PeerId = PeerId([2; 20]);

    fn config(piece_count: u32) -> Config {
        Config {
            info_hash: HASH,
            peer_id: ME,
            piece_count,
            timeouts: Timeouts::default(),
        }
    }
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }
    /// The only clock reading in these tests: every other instant is `t0`
    /// plus a duration chosen by hand.
    fn t0() -> Instant {
        Instant::now()
    }
    fn handshake(info_hash: InfoHash, peer_id: PeerId) -> Message {
        Message::Handshake { info_hash, peer_id }
    }
    /// An open connection at `now`: legacy ones dialed, ours after the
    /// remote's handshake. Its opening events and messages are drained.
    fn open_at(piece_count: u32, legacy: bool, now: Instant) -> Connection {
        let mut c = Connection::new(config(piece_count), Role::Outgoing { legacy }, now);
        if !legacy {
            c.handle(handshake(HASH, THEM), now);
        }
        drain_at(&mut c, now);
        assert!(matches!(
            events(&mut c)[..],
            [ConnEvent::Established { .. }]
        ));
        c
    }
    fn open(piece_count: u32, legacy: bool) -> Connection {
        open_at(piece_count, legacy, t0())
    }
    fn drain_at(c: &mut Connection, now: Instant) -> Vec<Message> {
        std::iter::from_fn(|| c.poll_transmit(now)).collect()
    }
    fn drain(c: &mut Connection) -> Vec<Message> {
        drain_at(c, t0())
    }
    fn events(c: &mut Connection) -> Vec<ConnEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }
    /// Feeds `msg` and reports a close it caused as an error, leaving the
    /// other events queued.
    fn feed(c: &mut Connection, msg: Message) -> Result<(), Disconnect> {
        c.handle(msg, t0());
        match c.close_reason() {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }
    fn violation(e: ProtocolError) -> Disconnect {
        Disconnect::Protocol(e)
    }

    /// The seed's flow, with a seeder and a leecher wired back to back and a
    /// minimal engine policy in the loop: Bitfield both ways, Interested,
    /// Unchoke, Request, Piece → next Request, NotInterested when done.
    #[test]
    fn seed_flow_is_expressible() {
        let pieces: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 4])).collect();
        let seed_have = Bitfield::full(3);
        let mut leech_have = Bitfield::new(3);
        let mut seeder = open(3, true);
        let mut leecher = open(3, true);
        seeder.send_bitfield(&seed_have);
        leecher.send_bitfield(&leech_have);
        let mut log = Vec::new();
        for _round in 0..20 {
            let mut to_leecher = drain(&mut seeder);
            // Seeder driver: uploads go out after the control messages.
            while let Some(i) = seeder.poll_upload() {
                to_leecher.push(Message::Piece {
                    index: i,
                    data: pieces[i as usize].clone(),
                });
            }
            let to_seeder = drain(&mut leecher);
            if to_leecher.is_empty() && to_seeder.is_empty() {
                break;
            }
            for m in to_seeder {
                log.push(format!("L->S {}", m.name()));
                feed(&mut seeder, m).unwrap();
            }
            for m in to_leecher {
                log.push(format!("S->L {}", m.name()));
                feed(&mut leecher, m).unwrap();
            }
            // Seeder policy: answer Interested with Unchoke.
            for ev in events(&mut seeder) {
                if ev == ConnEvent::Interest(true) {
                    seeder.unchoke();
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
                        leecher.request(next, t0()).unwrap();
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
        let mut c = open(4, false);
        let err = feed(
            &mut c,
            Message::Piece {
                index: 1,
                data: Bytes::new(),
            },
        )
        .unwrap_err();
        assert_eq!(err, violation(ProtocolError::UnrequestedPiece(1)));
    }

    #[test]
    fn out_of_range_indices_are_violations() {
        for msg in [Message::Have(4), Message::Request(9), Message::Cancel(4)] {
            let mut c = open(4, false);
            assert!(matches!(
                feed(&mut c, msg),
                Err(Disconnect::Protocol(ProtocolError::IndexOutOfRange { .. }))
            ));
        }
        let mut c = open(4, false);
        assert!(matches!(
            feed(&mut c, Message::Bitfield(Bitfield::new(3))),
            Err(Disconnect::Protocol(ProtocolError::BitfieldLength {
                expected: 4,
                actual: 3
            }))
        ));
    }

    #[test]
    fn request_while_choking_is_dropped_quietly() {
        let mut c = open(4, false);
        c.send_bitfield(&Bitfield::full(4));
        feed(&mut c, Message::Request(1)).unwrap();
        assert!(events(&mut c).is_empty());
        assert_eq!(c.uploads_queued(), 0);
        assert_eq!(c.dropped_requests(), 1);
        c.unchoke();
        feed(&mut c, Message::Request(1)).unwrap();
        assert_eq!(c.poll_upload(), Some(1));
    }

    #[test]
    fn requests_need_unchoke_and_availability() {
        let mut c = open(4, false);
        let now = t0();
        assert_eq!(c.request(0, now), Err(RequestRefused::Choked));
        feed(&mut c, Message::Unchoke).unwrap();
        assert_eq!(c.request(0, now), Err(RequestRefused::NotAvailable));
        feed(&mut c, Message::Have(0)).unwrap();
        assert_eq!(c.request(0, now), Ok(()));
        assert_eq!(c.request(0, now), Err(RequestRefused::AlreadyRequested));
        assert_eq!(c.in_flight(), &[0]);
    }

    #[test]
    fn legacy_peers_get_one_request_at_a_time() {
        let mut c = open(4, true);
        feed(&mut c, Message::Bitfield(Bitfield::full(4))).unwrap();
        feed(&mut c, Message::Unchoke).unwrap();
        assert_eq!(c.request_room(8), 0, "not interested yet");
        c.set_interested(true);
        assert_eq!(c.request_room(8), 1);
        c.request(0, t0()).unwrap();
        assert_eq!(c.request_room(8), 0);
        assert_eq!(c.request(1, t0()), Err(RequestRefused::OneAtATime));
        let mut ours = open(4, false);
        feed(&mut ours, Message::Bitfield(Bitfield::full(4))).unwrap();
        feed(&mut ours, Message::Unchoke).unwrap();
        ours.set_interested(true);
        ours.request(0, t0()).unwrap();
        assert_eq!(ours.request_room(8), 7);
    }

    #[test]
    fn choke_drops_requests_and_late_pieces_are_accepted() {
        let mut c = open(4, false);
        feed(&mut c, Message::Bitfield(Bitfield::full(4))).unwrap();
        feed(&mut c, Message::Unchoke).unwrap();
        c.request(1, t0()).unwrap();
        c.request(2, t0()).unwrap();
        events(&mut c);
        feed(&mut c, Message::Choke).unwrap();
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Choked {
                dropped: vec![1, 2]
            }]
        );
        assert!(c.in_flight().is_empty());
        feed(
            &mut c,
            Message::Piece {
                index: 2,
                data: Bytes::from_static(b"x"),
            },
        )
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
        assert!(feed(
            &mut c,
            Message::Piece {
                index: 2,
                data: Bytes::new()
            }
        )
        .is_err());
    }

    #[test]
    fn cancel_sends_cancel_except_to_legacy() {
        for legacy in [false, true] {
            let mut c = open(2, legacy);
            feed(&mut c, Message::Bitfield(Bitfield::full(2))).unwrap();
            feed(&mut c, Message::Unchoke).unwrap();
            c.request(1, t0()).unwrap();
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
        let mut c = open(1, false);
        assert_eq!(
            feed(&mut c, handshake(HASH, THEM)),
            Err(violation(ProtocolError::UnexpectedHandshake))
        );
    }

    #[test]
    fn interest_follows_bitfields() {
        let mut c = open(2, false);
        let mut ours = Bitfield::new(2);
        feed(&mut c, Message::Have(1)).unwrap();
        assert!(c.update_interest(&ours));
        assert_eq!(drain(&mut c), vec![Message::Interested]);
        ours.set(1, true);
        assert!(!c.update_interest(&ours));
        assert_eq!(drain(&mut c), vec![Message::NotInterested]);
        c.update_interest(&ours);
        assert!(drain(&mut c).is_empty(), "no message without a change");
    }

    // --- Opening.

    #[test]
    fn dialer_sends_handshake_and_opens_on_the_answer() {
        let now = t0();
        let mut c = Connection::new(config(3), Role::Outgoing { legacy: false }, now);
        assert_eq!(drain(&mut c), vec![handshake(HASH, ME)]);
        assert!(!c.is_open() && events(&mut c).is_empty());
        c.handle(handshake(HASH, THEM), now);
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Established {
                peer_id: Some(THEM),
                legacy: false
            }]
        );
        assert!(drain(&mut c).is_empty(), "the dialer does not answer");
        assert_eq!(c.remote_peer_id(), Some(THEM));
        assert!(c.is_open() && !c.is_legacy());
    }

    #[test]
    fn listener_answers_a_handshake() {
        let now = t0();
        let mut c = Connection::new(config(3), Role::Incoming, now);
        assert!(drain(&mut c).is_empty(), "a listener waits");
        c.handle(handshake(HASH, THEM), now);
        assert_eq!(drain(&mut c), vec![handshake(HASH, ME)]);
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Established {
                peer_id: Some(THEM),
                legacy: false
            }]
        );
    }

    #[test]
    fn legacy_dialed_opens_at_once_without_handshake() {
        let mut c = Connection::new(config(3), Role::Outgoing { legacy: true }, t0());
        assert!(
            drain(&mut c).is_empty(),
            "no handshake for the original protocol"
        );
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Established {
                peer_id: None,
                legacy: true
            }]
        );
        assert!(c.is_open() && c.is_legacy());
        c.send_bitfield(&Bitfield::new(3));
        assert!(matches!(drain(&mut c)[..], [Message::Bitfield(_)]));
    }

    #[test]
    fn legacy_dialing_us_is_recognised_by_its_bitfield() {
        let mut c = Connection::new(config(3), Role::Incoming, t0());
        let theirs = Bitfield::from_bools(vec![true, false, true]);
        c.handle(Message::Bitfield(theirs.clone()), t0());
        assert!(
            drain(&mut c).is_empty(),
            "no handshake answer to a legacy peer"
        );
        assert_eq!(
            events(&mut c),
            vec![
                ConnEvent::Established {
                    peer_id: None,
                    legacy: true
                },
                ConnEvent::Bitfield {
                    previous: Bitfield::new(3)
                },
            ]
        );
        assert_eq!(c.remote(), &theirs);
        assert!(c.is_legacy());
    }

    #[test]
    fn our_dialer_refuses_a_bitfield_instead_of_a_handshake() {
        let mut c = Connection::new(config(3), Role::Outgoing { legacy: false }, t0());
        drain(&mut c);
        c.handle(Message::Bitfield(Bitfield::new(3)), t0());
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Closed(Disconnect::ExpectedHandshake("Bitfield"))]
        );
        let mut l = Connection::new(config(3), Role::Incoming, t0());
        l.handle(Message::Have(0), t0());
        assert_eq!(
            l.close_reason(),
            Some(&Disconnect::ExpectedHandshake("Have"))
        );
        let mut short = Connection::new(config(3), Role::Incoming, t0());
        short.handle(Message::Bitfield(Bitfield::new(2)), t0());
        assert!(matches!(
            short.close_reason(),
            Some(Disconnect::Protocol(ProtocolError::BitfieldLength { .. }))
        ));
        assert!(!short.is_legacy());
    }

    #[test]
    fn wrong_info_hash_and_own_peer_id_are_refused_silently() {
        for role in [Role::Incoming, Role::Outgoing { legacy: false }] {
            let wrong = InfoHash([9; 20]);
            let cases = [
                (handshake(wrong, THEM), Disconnect::InfoHashMismatch(wrong)),
                (handshake(HASH, ME), Disconnect::OwnPeerId),
            ];
            for (msg, reason) in cases {
                let mut c = Connection::new(config(3), role, t0());
                drain(&mut c);
                c.handle(msg, t0());
                assert_eq!(events(&mut c), vec![ConnEvent::Closed(reason)]);
                assert!(drain(&mut c).is_empty(), "no answer, not even Close");
                assert!(!c.is_open());
            }
        }
        assert!(Disconnect::InfoHashMismatch(InfoHash([9; 20]))
            .to_string()
            .contains("info hash mismatch"));
    }

    #[test]
    fn eof_before_or_after_the_handshake() {
        let mut c = Connection::new(config(3), Role::Incoming, t0());
        c.handle_eof();
        assert_eq!(c.close_reason(), Some(&Disconnect::ClosedBeforeHandshake));
        let mut c = open(3, false);
        c.handle_eof();
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Closed(Disconnect::ClosedByPeer)]
        );
        assert!(drain(&mut c).is_empty(), "no Close to a peer that is gone");
    }

    // --- Timers, driven by hand.

    #[test]
    fn handshake_timer() {
        let start = t0();
        let mut c = Connection::new(config(3), Role::Incoming, start);
        assert_eq!(c.poll_timeout(), Some(start + secs(10)));
        c.handle_timeout(start + secs(9));
        assert!(events(&mut c).is_empty());
        c.handle_timeout(start + secs(10));
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Closed(Disconnect::HandshakeTimeout)]
        );
        assert_eq!(c.poll_timeout(), None);
        // Once open, the handshake timer is off.
        let mut c = open_at(3, false, start);
        c.handle_timeout(start + secs(11));
        assert!(c.close_reason().is_none());
    }

    #[test]
    fn piece_timer_runs_only_with_requests_out() {
        let start = t0();
        let mut c = open_at(3, false, start);
        c.handle(Message::Bitfield(Bitfield::full(3)), start);
        c.handle(Message::Unchoke, start + secs(1));
        assert_eq!(c.deadline(Timer::Piece), None, "nothing requested");
        c.request(0, start + secs(5)).unwrap();
        c.request(1, start + secs(6)).unwrap();
        // Each request has its own deadline; the oldest comes first.
        assert_eq!(c.deadline(Timer::Piece), Some(start + secs(35)));
        c.handle(
            Message::Piece {
                index: 0,
                data: Bytes::new(),
            },
            start + secs(20),
        );
        assert_eq!(c.deadline(Timer::Piece), Some(start + secs(36)));
        // Keep the peer chatty so that only the piece timer can fire.
        c.handle(Message::KeepAlive, start + secs(30));
        drain_at(&mut c, start + secs(30));
        c.handle_timeout(start + secs(35));
        assert!(c.close_reason().is_none());
        // Request 1 went out before piece 0 arrived: the peer is slow, not
        // stalled. The request is withdrawn on its own.
        c.handle_timeout(start + secs(36));
        assert!(c.close_reason().is_none());
        assert_eq!(c.in_flight(), &[] as &[u32]);
        assert_eq!(drain(&mut c), vec![Message::Cancel(1)]);
        let evs = events(&mut c);
        assert_eq!(evs.last(), Some(&ConnEvent::RequestTimedOut { index: 1 }));
        // Its late piece is still accepted.
        c.handle(
            Message::Piece {
                index: 1,
                data: Bytes::new(),
            },
            start + secs(37),
        );
        assert!(matches!(
            events(&mut c)[..],
            [ConnEvent::Piece {
                index: 1,
                requested: false,
                ..
            }]
        ));
        // A request the peer answers nothing to, from then on: stalled, closed.
        c.set_request_timeout(secs(2));
        c.request(2, start + secs(40)).unwrap();
        assert_eq!(c.deadline(Timer::Piece), Some(start + secs(42)));
        c.handle_timeout(start + secs(42));
        assert_eq!(c.close_reason(), Some(&Disconnect::PieceTimeout(secs(2))));
        assert_eq!(drain(&mut c).last(), Some(&Message::Close));
        assert_eq!(
            c.close_reason().unwrap().to_string(),
            "no piece for 2s despite requests"
        );
    }

    #[test]
    fn a_peer_that_never_delivers_is_closed_at_the_first_deadline() {
        let start = t0();
        let mut c = open_at(3, false, start);
        c.handle(Message::Bitfield(Bitfield::full(3)), start);
        c.handle(Message::Unchoke, start);
        c.set_request_timeout(secs(3));
        c.request(0, start).unwrap();
        c.request(1, start + secs(1)).unwrap();
        c.handle_timeout(start + secs(3));
        assert_eq!(c.close_reason(), Some(&Disconnect::PieceTimeout(secs(3))));
        // A choke voids the requests and their deadlines.
        let mut d = open_at(3, false, start);
        d.handle(Message::Bitfield(Bitfield::full(3)), start);
        d.handle(Message::Unchoke, start);
        d.request(0, start).unwrap();
        d.handle(Message::Choke, start + secs(1));
        assert_eq!(d.deadline(Timer::Piece), None);
    }

    #[test]
    fn idle_timer_for_our_peers_only() {
        let start = t0();
        let mut c = open_at(3, false, start);
        assert_eq!(c.deadline(Timer::Idle), Some(start + secs(120)));
        c.handle(Message::KeepAlive, start + secs(100));
        assert_eq!(c.deadline(Timer::Idle), Some(start + secs(220)));
        // We keep talking (keep-alives), yet the peer stays silent.
        for t in (140..220).step_by(40) {
            c.handle_timeout(start + secs(t));
            drain_at(&mut c, start + secs(t));
        }
        assert!(c.close_reason().is_none());
        c.handle_timeout(start + secs(220));
        assert_eq!(c.close_reason(), Some(&Disconnect::IdleTimeout));
    }

    #[test]
    fn idle_timer_for_the_original_protocol_too() {
        // A legacy peer gets no keep-alives, but may not stay silent for ever:
        // neither one we dialed nor one that dialed us with its Bitfield.
        let start = t0();
        let dialed = open_at(3, true, start);
        let mut dialing = Connection::new(config(3), Role::Incoming, start);
        dialing.handle(Message::Bitfield(Bitfield::new(3)), start + secs(1));
        events(&mut dialing);
        for (mut c, opened) in [(dialed, start), (dialing, start + secs(1))] {
            assert!(c.is_legacy());
            assert_eq!(c.poll_timeout(), Some(opened + secs(120)));
            c.handle(Message::Interested, opened + secs(60));
            c.handle_timeout(opened + secs(179));
            assert!(c.close_reason().is_none());
            assert!(drain(&mut c).is_empty(), "no keep-alive to a legacy peer");
            c.handle_timeout(opened + secs(180));
            assert_eq!(c.close_reason(), Some(&Disconnect::IdleTimeout));
        }
    }

    #[test]
    fn useless_when_silent_or_when_neither_side_wants_anything() {
        let (grace, silence) = (secs(2), secs(60));
        let start = t0();
        // Opened with a Bitfield of nothing, then silent: useless after the grace.
        let mut c = Connection::new(config(3), Role::Incoming, start);
        c.handle(Message::Bitfield(Bitfield::new(3)), start);
        assert!(
            !c.is_useless(start + secs(1), grace, silence),
            "in its grace"
        );
        assert!(c.is_useless(start + secs(2), grace, silence));
        // It asks for something: useful, until it has been silent too long.
        c.handle(Message::Interested, start + secs(3));
        assert!(!c.is_useless(start + secs(62), grace, silence));
        assert!(c.is_useless(start + secs(63), grace, silence));
        // A peer with pieces we want, that unchokes us: useful while it talks.
        let mut seed = open_at(3, false, start);
        seed.handle(Message::Bitfield(Bitfield::full(3)), start);
        seed.update_interest(&Bitfield::new(3));
        assert!(!seed.is_useless(start + secs(5), grace, silence));
        seed.handle(Message::Unchoke, start + secs(5));
        seed.request(0, start + secs(5)).unwrap();
        assert!(!seed.is_useless(start + secs(30), grace, silence));
        // Once we have all it has: useless, though it still talks.
        seed.handle(
            Message::Piece {
                index: 0,
                data: Bytes::new(),
            },
            start + secs(31),
        );
        seed.update_interest(&Bitfield::full(3));
        assert!(seed.is_useless(start + secs(31), grace, silence));
        // Nothing is useless before it is open, nor once closed.
        let opening = Connection::new(config(3), Role::Incoming, start);
        assert!(!opening.is_useless(start + secs(600), grace, silence));
        seed.close(Disconnect::ShuttingDown);
        assert!(!seed.is_useless(start + secs(600), grace, silence));
    }

    #[test]
    fn keep_alive_after_a_third_of_the_idle_limit_of_silence() {
        let start = t0();
        let mut c = open_at(3, false, start);
        assert_eq!(c.poll_timeout(), Some(start + secs(40)));
        c.handle_timeout(start + secs(39));
        assert!(drain_at(&mut c, start + secs(39)).is_empty());
        c.handle_timeout(start + secs(40));
        assert_eq!(drain_at(&mut c, start + secs(40)), vec![Message::KeepAlive]);
        assert_eq!(c.deadline(Timer::KeepAlive), Some(start + secs(80)));
        // Anything we send postpones the next one.
        c.set_interested(true);
        assert_eq!(
            drain_at(&mut c, start + secs(50)),
            vec![Message::Interested]
        );
        assert_eq!(c.deadline(Timer::KeepAlive), Some(start + secs(90)));
        c.handle(Message::KeepAlive, start + secs(85));
        c.handle_timeout(start + secs(90));
        assert_eq!(drain_at(&mut c, start + secs(90)), vec![Message::KeepAlive]);
        assert!(c.close_reason().is_none());
    }

    #[test]
    fn poll_timeout_is_the_nearest_deadline() {
        let start = t0();
        let mut c = open_at(3, false, start);
        c.handle(Message::Bitfield(Bitfield::full(3)), start);
        c.handle(Message::Unchoke, start);
        c.request(2, start + secs(30)).unwrap();
        drain_at(&mut c, start + secs(30));
        // keep-alive at 70, piece at 60, idle at 120.
        assert_eq!(c.poll_timeout(), Some(start + secs(60)));
        c.close(Disconnect::ShuttingDown);
        assert_eq!(c.poll_timeout(), None);
    }

    // --- Uploads.

    #[test]
    fn upload_queue_and_cancel() {
        let mut c = open(4, false);
        let mut ours = Bitfield::new(4);
        ours.set(1, true);
        ours.set(2, true);
        c.send_bitfield(&ours);
        c.unchoke();
        for i in [1, 2, 1] {
            feed(&mut c, Message::Request(i)).unwrap();
        }
        // Piece 3: we never announced it, so the request is ignored.
        feed(&mut c, Message::Request(3)).unwrap();
        assert_eq!(c.unavailable_requests(), 1);
        assert_eq!(c.uploads_queued(), 3);
        feed(&mut c, Message::Cancel(1)).unwrap();
        assert_eq!(c.uploads_queued(), 1);
        assert_eq!(c.poll_upload(), Some(2));
        assert_eq!(c.poll_upload(), None);
        // A piece we verify later may be requested.
        c.have(3);
        feed(&mut c, Message::Request(3)).unwrap();
        assert_eq!(c.poll_upload(), Some(3));
        // Cancel of a piece no longer queued (already sent) is no violation.
        feed(&mut c, Message::Cancel(3)).unwrap();
        assert!(events(&mut c).is_empty());
    }

    #[test]
    fn closing_drops_queued_uploads() {
        let mut c = open(2, false);
        c.send_bitfield(&Bitfield::full(2));
        c.unchoke();
        feed(&mut c, Message::Request(0)).unwrap();
        c.close(Disconnect::ShuttingDown);
        assert_eq!(c.poll_upload(), None);
        assert_eq!(c.uploads_queued(), 0);
    }

    // --- Typed reasons.

    #[test]
    fn every_end_is_one_typed_closed_event() {
        // The peer's Close: no Close in return.
        let mut c = open(2, false);
        c.handle(Message::Close, t0());
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Closed(Disconnect::PeerSentClose)]
        );
        assert!(drain(&mut c).is_empty());
        // Our close: Close goes out once, and the first reason stays.
        let mut c = open(2, true);
        c.close(Disconnect::Duplicate);
        c.close(Disconnect::ShuttingDown);
        c.handle(Message::Have(0), t0());
        c.handle_eof();
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Closed(Disconnect::Duplicate)]
        );
        assert_eq!(drain(&mut c), vec![Message::Close]);
        assert_eq!(c.close_reason(), Some(&Disconnect::Duplicate));
        // A violation: the events before it still come first.
        let mut c = open(2, false);
        c.handle(Message::Have(1), t0());
        c.handle(Message::Have(5), t0());
        assert_eq!(
            events(&mut c),
            vec![
                ConnEvent::Have(1),
                ConnEvent::Closed(violation(ProtocolError::IndexOutOfRange {
                    what: "Have",
                    index: 5,
                    count: 2
                }))
            ]
        );
        assert_eq!(drain(&mut c), vec![Message::Close]);
        // Nothing is sent before the opening is done.
        let mut c = Connection::new(config(2), Role::Incoming, t0());
        c.unchoke();
        c.set_interested(true);
        c.have(0);
        c.send_bitfield(&Bitfield::full(2));
        c.close(Disconnect::ShuttingDown);
        assert!(drain(&mut c).is_empty());
        assert_eq!(c.request(0, t0()), Err(RequestRefused::NotOpen));
    }

    #[test]
    fn a_streamed_piece_header_is_checked_like_a_whole_piece() {
        let mut c = open(4, false);
        feed(&mut c, Message::Bitfield(Bitfield::full(4))).unwrap();
        feed(&mut c, Message::Unchoke).unwrap();
        c.request(1, t0()).unwrap();
        c.request(2, t0()).unwrap();
        events(&mut c);
        assert_eq!(c.handle_piece_header(1, t0()), Some(true));
        assert_eq!(c.in_flight(), &[2]);
        // Withdrawn by a choke: a late arrival, still accepted.
        feed(&mut c, Message::Choke).unwrap();
        assert_eq!(c.handle_piece_header(2, t0()), Some(false));
        assert!(
            !events(&mut c)
                .iter()
                .any(|e| matches!(e, ConnEvent::Piece { .. })),
            "a streamed piece makes no Piece event"
        );
        // Never requested: a violation that closes the connection.
        assert_eq!(c.handle_piece_header(3, t0()), None);
        assert_eq!(
            c.close_reason(),
            Some(&Disconnect::Protocol(ProtocolError::UnrequestedPiece(3)))
        );
        assert_eq!(c.handle_piece_header(1, t0()), None);
        // Before the handshake a piece is refused.
        let mut fresh = Connection::new(open(4, false).config, Role::Incoming, t0());
        assert_eq!(fresh.handle_piece_header(0, t0()), None);
        assert_eq!(
            fresh.close_reason(),
            Some(&Disconnect::ExpectedHandshake("Piece"))
        );
    }
}

//! Why a peer connection ends: [`Disconnect`], one variant per cause.
//!
//! Code decides on the variant, never on the text; the text (its `Display`)
//! is what logs and the peer's JSON events show as `reason`.

use std::net::IpAddr;
use std::time::Duration;

use crate::codec::WireError;
use crate::connection::ProtocolError;
use crate::frame::FrameError;
use crate::ids::InfoHash;
use crate::message::MessageError;

/// Why a peer connection was refused or closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Disconnect {
    // --- Opening the connection.
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer closed the connection before its handshake.
    #[error("closed before the handshake")]
    ClosedBeforeHandshake,
    /// The peer's handshake names another torrent.
    #[error("info hash mismatch ({0})")]
    InfoHashMismatch(InfoHash),
    /// The peer's handshake carries our own peer id: we dialed ourselves.
    #[error("connected to ourselves")]
    OwnPeerId,
    /// The peer opened with something other than a handshake (or, for a peer
    /// of the original protocol dialing us, a Bitfield).
    #[error("expected a handshake, got {0}")]
    ExpectedHandshake(&'static str),

    /// Too many connections were opening at once (from its address, or in
    /// all): the oldest opening gave way to a newer one.
    #[error("evicted while opening: too many connections opening")]
    OpeningEvicted,

    // --- Admission to the swarm.
    /// The peer's address was banned earlier (for bad data it sent).
    #[error("banned peer")]
    BannedPeer,
    /// Another connection to the same peer is kept instead.
    #[error("duplicate connection")]
    Duplicate,
    /// The swarm has all the connections it takes.
    #[error("too many peers")]
    TooManyPeers,
    /// The address has all the connections one address may hold.
    #[error("too many connections from {0}")]
    TooManyFromAddress(IpAddr),
    /// The slots were full and this connection was of no use to either side:
    /// it gave its slot to a newcomer.
    #[error("evicted: of no use while the slots are full")]
    Evicted,

    // --- The peer's doing.
    /// The peer closed the TCP connection.
    #[error("closed by peer")]
    ClosedByPeer,
    /// The peer said it is going away.
    #[error("peer sent Close")]
    PeerSentClose,
    /// The peer broke a protocol rule.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer sent a frame larger than the limit.
    #[error("bad input: frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: u64, max: usize },
    /// The connection ended inside a frame.
    #[error("bad input: connection closed inside a frame ({buffered} bytes buffered)")]
    TruncatedFrame { buffered: usize },
    /// A frame's body is not a valid message.
    #[error("bad input: malformed message: {0}")]
    Malformed(#[from] MessageError),
    /// A request of ours reached its deadline and the peer had delivered
    /// nothing since it was sent (it stalled).
    #[error("no piece for {}s despite requests", .0.as_secs())]
    PieceTimeout(Duration),
    /// Requests of ours kept timing out although the peer delivered now
    /// and then: too slow to keep (this many timed out).
    #[error("{0} requests timed out")]
    RequestsTimedOut(u32),
    /// Nothing arrived from the peer for this long.
    #[error("idle timeout")]
    IdleTimeout,
    /// The peer sent pieces that failed their hash check.
    #[error("banned: {0}")]
    Banned(BanReason),

    // --- Our side.
    /// The network failed (the text is the operating system's).
    #[error("connection lost: {0}")]
    Lost(String),
    /// Our writer stopped (the peer stopped reading, or the socket failed).
    #[error("write failed")]
    WriteFailed,
    /// A received piece could not be verified or stored (the text says why).
    #[error("{0}")]
    Storage(String),
    /// The swarm the connection belonged to is gone.
    #[error("swarm closed")]
    SwarmClosed,
    /// We are shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

impl Disconnect {
    /// Whether the peer let our requests time out (a strike against it).
    pub fn is_stall(&self) -> bool {
        matches!(
            self,
            Disconnect::PieceTimeout(_) | Disconnect::RequestsTimedOut(_)
        )
    }

    /// Whether we tell the peer with a Close message: not when the peer has
    /// closed already, by TCP or by its own Close.
    pub fn tells_peer(&self) -> bool {
        !matches!(self, Disconnect::ClosedByPeer | Disconnect::PeerSentClose)
    }

    /// A network error, as a reason.
    pub fn lost(e: &std::io::Error) -> Self {
        Disconnect::Lost(e.to_string())
    }
}

impl From<WireError> for Disconnect {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Frame(FrameError::Io(io)) => Disconnect::lost(&io),
            WireError::Frame(FrameError::TooLarge { len, max }) => {
                Disconnect::FrameTooLarge { len, max }
            }
            WireError::Frame(FrameError::Truncated { buffered }) => {
                Disconnect::TruncatedFrame { buffered }
            }
            WireError::Message(m) => Disconnect::Malformed(m),
        }
    }
}

/// Why a peer was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BanReason {
    /// It sent this many pieces that failed their hash check.
    #[error("sent {0} pieces that failed their hash check")]
    BadPieces(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_before() {
        // The peer's JSON events show these texts; scripts and tests read them.
        let cases = [
            (Disconnect::PeerSentClose, "peer sent Close"),
            (Disconnect::ClosedByPeer, "closed by peer"),
            (Disconnect::OwnPeerId, "connected to ourselves"),
            (Disconnect::HandshakeTimeout, "handshake timed out"),
            (Disconnect::IdleTimeout, "idle timeout"),
            (
                Disconnect::PieceTimeout(Duration::from_secs(30)),
                "no piece for 30s despite requests",
            ),
            (
                Disconnect::Banned(BanReason::BadPieces(2)),
                "banned: sent 2 pieces that failed their hash check",
            ),
            (
                Disconnect::TooManyFromAddress([127, 0, 0, 2].into()),
                "too many connections from 127.0.0.2",
            ),
            (
                Disconnect::Evicted,
                "evicted: of no use while the slots are full",
            ),
            (
                Disconnect::ExpectedHandshake("Have"),
                "expected a handshake, got Have",
            ),
            (
                Disconnect::Protocol(ProtocolError::UnrequestedPiece(3)),
                "protocol violation: received piece 3, which was never requested",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
        assert!(Disconnect::InfoHashMismatch(InfoHash([9; 20]))
            .to_string()
            .starts_with("info hash mismatch ("));
    }

    #[test]
    fn stream_errors_become_typed_reasons() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(
            Disconnect::from(WireError::from(io)),
            Disconnect::Lost("reset".into())
        );
        let big = WireError::Frame(FrameError::TooLarge { len: 9, max: 8 });
        assert!(matches!(
            Disconnect::from(big),
            Disconnect::FrameTooLarge { len: 9, max: 8 }
        ));
        let bad = WireError::Message(MessageError::UnknownId(99));
        let reason = Disconnect::from(bad);
        assert_eq!(reason, Disconnect::Malformed(MessageError::UnknownId(99)));
        assert_eq!(
            reason.to_string(),
            "bad input: malformed message: unknown message id 99"
        );
    }

    #[test]
    fn only_the_peers_own_goodbye_goes_unanswered() {
        assert!(!Disconnect::ClosedByPeer.tells_peer());
        assert!(!Disconnect::PeerSentClose.tells_peer());
        assert!(Disconnect::IdleTimeout.tells_peer());
        assert!(Disconnect::ShuttingDown.tells_peer());
    }
}

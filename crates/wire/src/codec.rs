//! [`PeerCodec`]: frames carrying peer-wire messages, ready for `Framed`.
//!
//! Decoding is two checked steps: the frame layer ([`FrameCodec`]) bounds the
//! size, then [`Message::decode`] validates the body. Encoding writes the frame
//! header and the message body straight into the output buffer, so a Piece is
//! copied once.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{FrameCodec, FrameError, FRAME_HEADER_LEN};
use crate::message::{id, Message, MessageError, PIECE_HEADER_LEN};

/// Any error on a peer connection's byte stream.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("malformed message: {0}")]
    Message(#[from] MessageError),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Frame(FrameError::Io(e))
    }
}

/// Framed peer-wire messages.
///
/// Until the remote has opened (its first frame: a Handshake, or the Bitfield
/// of a peer of the original protocol) a codec made with
/// [`PeerCodec::opening`] takes no frame larger than that first message, so
/// a stranger who has not even said hello cannot make us buffer a piece.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerCodec {
    frames: FrameCodec,
    /// The limit of the remote's first frame, until it has arrived.
    first: Option<FrameCodec>,
    piece_count: Option<u32>,
    /// Largest Piece frame [`PeerCodec::decode_head`] lets through, when
    /// larger than the frame limit (whose bound holds for every other frame).
    max_piece_frame: usize,
}

/// Body size of a Handshake frame: N, id, info hash, peer id.
pub const HANDSHAKE_FRAME: usize = 4 + 1 + 20 + 20;

/// Body size of a Bitfield frame for `piece_count` pieces: N, id, one byte a piece.
pub fn bitfield_frame(piece_count: u32) -> usize {
    4 + 1 + piece_count as usize
}

/// What [`PeerCodec::decode_head`] found at the front of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A whole message, never a Piece.
    Message(Message),
    /// A Piece's header: piece `index`, whose `len` bytes of data follow on
    /// the stream. They are the caller's to consume before the next call.
    Piece { index: u32, len: usize },
}

/// Bytes of a framed Piece before its data: the frame length, then the
/// message's N, id and index.
pub const PIECE_FRAME_HEADER_LEN: usize = FRAME_HEADER_LEN + PIECE_HEADER_LEN;

impl PeerCodec {
    /// A codec that checks Bitfield lengths against `piece_count` (when given)
    /// and refuses frames larger than `max_frame`.
    pub fn new(max_frame: usize, piece_count: Option<u32>) -> Self {
        Self {
            frames: FrameCodec::new(max_frame),
            first: None,
            piece_count,
            max_piece_frame: 0,
        }
    }

    /// A codec like [`PeerCodec::new`] whose first decoded frame may be at
    /// most `first_frame` bytes; the limit becomes `max_frame` once that
    /// frame is in (see [`opening_limit`]).
    pub fn opening(max_frame: usize, piece_count: Option<u32>, first_frame: usize) -> Self {
        Self {
            first: Some(FrameCodec::new(first_frame.min(max_frame))),
            ..Self::new(max_frame, piece_count)
        }
    }

    /// The frame limit now: the opening's until the first frame is in.
    pub fn max_frame(&self) -> usize {
        self.first.unwrap_or(self.frames).max_frame()
    }

    /// Decodes one frame with the limit in force, lifting the opening's
    /// limit once its frame is in.
    fn next_body(&mut self, src: &mut BytesMut, eof: bool) -> Result<Option<BytesMut>, WireError> {
        let frames = self.first.as_mut().unwrap_or(&mut self.frames);
        let body = if eof {
            frames.decode_eof(src)?
        } else {
            frames.decode(src)?
        };
        if body.is_some() {
            self.first = None;
        }
        Ok(body)
    }

    /// Lets [`PeerCodec::decode_head`] announce Piece frames of up to
    /// `max` bytes (their data is never buffered here), while every other
    /// frame stays within the frame limit.
    pub fn with_max_piece_frame(mut self, max: usize) -> Self {
        self.max_piece_frame = max;
        self
    }

    /// The streaming form of decoding: the next message, or only the header
    /// of the next Piece, leaving its data on the stream (so a piece is never
    /// held whole). After [`Head::Piece`] the caller consumes exactly `len`
    /// bytes, from `src` first, before calling again.
    ///
    /// A Piece frame may be as large as [`PeerCodec::with_max_piece_frame`]
    /// allows (at least the frame limit); its header is checked like
    /// [`Message::decode`] does. `src` only grows for frames within the
    /// frame limit, and only with bytes received.
    pub fn decode_head(&mut self, src: &mut BytesMut) -> Result<Option<Head>, WireError> {
        if self.first.is_some() {
            // The opening (Handshake or Bitfield) is never a Piece, and
            // holds to its own limit.
            return Ok(self.decode(src)?.map(Head::Message));
        }
        if src.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = u64::from_be_bytes(src[..FRAME_HEADER_LEN].try_into().expect("8 bytes"));
        let max_piece = self.max_piece_frame.max(self.frames.max_frame());
        // N (4 bytes), then the id: is it a Piece long enough to hold its index?
        let id_at = FRAME_HEADER_LEN + 4;
        if len >= PIECE_HEADER_LEN as u64 && len <= max_piece as u64 {
            if src.len() <= id_at {
                if len > self.frames.max_frame() as u64 {
                    // Only a Piece may be this long: wait for its id, no more.
                    src.reserve(PIECE_FRAME_HEADER_LEN);
                    return Ok(None);
                }
            } else if src[id_at] == id::PIECE {
                if src.len() < PIECE_FRAME_HEADER_LEN {
                    src.reserve(PIECE_FRAME_HEADER_LEN);
                    return Ok(None);
                }
                let len = len as usize;
                let word = |at: usize| u32::from_be_bytes(src[at..at + 4].try_into().expect("4"));
                let declared = word(FRAME_HEADER_LEN);
                if declared as usize != len - 4 {
                    return Err(MessageError::LengthMismatch {
                        declared,
                        actual: len - 4,
                    }
                    .into());
                }
                let index = word(id_at + 1);
                src.advance(PIECE_FRAME_HEADER_LEN);
                return Ok(Some(Head::Piece {
                    index,
                    len: len - PIECE_HEADER_LEN,
                }));
            }
        }
        Ok(self.decode(src)?.map(Head::Message))
    }

    /// A codec with the default frame limit for a torrent of `piece_count` pieces.
    pub fn for_torrent(piece_count: u32) -> Self {
        Self::new(crate::frame::DEFAULT_MAX_FRAME, Some(piece_count))
    }
}

impl Decoder for PeerCodec {
    type Item = Message;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        match self.next_body(src, false)? {
            Some(body) => Ok(Some(Message::decode(body.freeze(), self.piece_count)?)),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        match self.next_body(src, true)? {
            Some(body) => Ok(Some(Message::decode(body.freeze(), self.piece_count)?)),
            None => Ok(None),
        }
    }
}

impl Encoder<Message> for PeerCodec {
    type Error = WireError;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), WireError> {
        self.encode(&msg, dst)
    }
}

impl Encoder<&Message> for PeerCodec {
    type Error = WireError;

    fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), WireError> {
        let len = msg.encoded_len();
        self.frames.put_header(len, dst)?;
        dst.reserve(len);
        let before = dst.len();
        msg.encode(dst);
        debug_assert_eq!(dst.len() - before, len);
        Ok(())
    }
}

/// The largest first frame a remote may send us in `role`: a Handshake when
/// it speaks our protocol, or, from a peer dialing us, possibly the Bitfield
/// of the original protocol. (A legacy peer we dial opens with its Bitfield.)
pub fn opening_limit(role: crate::Role, piece_count: u32) -> usize {
    match role {
        crate::Role::Outgoing { legacy: false } => HANDSHAKE_FRAME,
        crate::Role::Outgoing { legacy: true } => bitfield_frame(piece_count),
        crate::Role::Incoming => HANDSHAKE_FRAME.max(bitfield_frame(piece_count)),
    }
}

/// Encodes one framed message into a fresh buffer (handy for tests and for
/// one-off writes on a raw socket).
pub fn encode_framed(msg: &Message) -> BytesMut {
    let mut buf = BytesMut::with_capacity(crate::frame::FRAME_HEADER_LEN + msg.encoded_len());
    buf.put_u64(msg.encoded_len() as u64);
    msg.encode(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bitfield;
    use bytes::Bytes;

    #[test]
    fn framed_round_trip_with_bitfield_check() {
        let mut codec = PeerCodec::for_torrent(3);
        let mut buf = BytesMut::new();
        codec.encode(Message::Have(1), &mut buf).unwrap();
        codec
            .encode(
                Message::Bitfield(Bitfield::from_wire(&[1, 1, 0]).unwrap()),
                &mut buf,
            )
            .unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Message::Have(1)));
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Message::Bitfield(_))
        ));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);

        let mut wrong = PeerCodec::for_torrent(4);
        let mut buf = BytesMut::new();
        codec
            .encode(Message::Bitfield(Bitfield::new(3)), &mut buf)
            .unwrap();
        assert!(matches!(
            wrong.decode(&mut buf),
            Err(WireError::Message(MessageError::BitfieldLength {
                expected: 4,
                actual: 3
            }))
        ));
    }

    #[test]
    fn the_first_frame_is_held_to_the_opening_message() {
        use crate::{FrameError, InfoHash, PeerId, Role};
        let hello = Message::Handshake {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
        };
        assert_eq!(hello.encoded_len(), HANDSHAKE_FRAME);
        assert_eq!(
            Message::Bitfield(Bitfield::new(300)).encoded_len(),
            bitfield_frame(300)
        );
        let limit = opening_limit(Role::Outgoing { legacy: false }, 300);
        assert_eq!(limit, HANDSHAKE_FRAME);
        assert_eq!(opening_limit(Role::Incoming, 3), HANDSHAKE_FRAME);
        assert_eq!(opening_limit(Role::Incoming, 300), bitfield_frame(300));

        // A stranger's first frame claiming a piece is refused at its header.
        let mut codec = PeerCodec::opening(1 << 20, Some(3), limit);
        assert_eq!(codec.max_frame(), HANDSHAKE_FRAME);
        let mut buf = BytesMut::new();
        buf.put_u64(1 << 20);
        buf.put_slice(&[0; 100]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(WireError::Frame(FrameError::TooLarge { len, max }))
                if len == 1 << 20 && max == HANDSHAKE_FRAME
        ));

        // After the handshake the torrent's limit holds.
        let mut codec = PeerCodec::opening(1 << 20, Some(3), limit);
        let mut buf = encode_framed(&hello);
        buf.extend_from_slice(&encode_framed(&Message::Piece {
            index: 0,
            data: vec![7; 1000].into(),
        }));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(hello));
        assert_eq!(codec.max_frame(), 1 << 20);
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Message::Piece { index: 0, .. })
        ));
        // A half frame within the opening limit just waits.
        let mut codec = PeerCodec::opening(1 << 20, Some(3), limit);
        let mut half = BytesMut::from(&encode_framed(&Message::Have(1))[..6]);
        assert_eq!(codec.decode(&mut half).unwrap(), None);
        assert_eq!(codec.max_frame(), HANDSHAKE_FRAME);
    }

    #[test]
    fn encode_framed_matches_codec() {
        let mut codec = PeerCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(Message::Request(5), &mut buf).unwrap();
        assert_eq!(buf, encode_framed(&Message::Request(5)));
    }

    fn piece(index: u32, len: usize) -> Message {
        Message::Piece {
            index,
            data: Bytes::from(vec![index as u8; len]),
        }
    }

    #[test]
    fn decode_head_leaves_piece_data_on_the_stream() {
        let mut codec = PeerCodec::new(64, Some(3)).with_max_piece_frame(1000);
        let mut wire = BytesMut::new();
        let mut enc = PeerCodec::default();
        enc.encode(Message::Have(1), &mut wire).unwrap();
        enc.encode(piece(2, 500), &mut wire).unwrap();
        enc.encode(Message::Unchoke, &mut wire).unwrap();
        // Byte by byte: nothing is announced early, a Piece's data is not buffered.
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        let mut body_left = 0;
        for &b in wire.iter() {
            if body_left > 0 {
                body_left -= 1;
                continue;
            }
            src.put_u8(b);
            if let Some(head) = codec.decode_head(&mut src).unwrap() {
                if let Head::Piece { len, .. } = head {
                    body_left = len;
                }
                got.push(head);
                assert!(src.is_empty());
            }
        }
        assert_eq!(
            got,
            vec![
                Head::Message(Message::Have(1)),
                Head::Piece { index: 2, len: 500 },
                Head::Message(Message::Unchoke),
            ]
        );
    }

    #[test]
    fn decode_head_bounds() {
        let mut codec = PeerCodec::new(64, Some(3)).with_max_piece_frame(1000);
        // A Piece above its limit, and a large frame that is not a Piece.
        let mut big = BytesMut::new();
        PeerCodec::default()
            .encode(piece(0, 2000), &mut big)
            .unwrap();
        assert!(matches!(
            codec.decode_head(&mut big),
            Err(WireError::Frame(FrameError::TooLarge { .. }))
        ));
        let mut bf = BytesMut::new();
        PeerCodec::default()
            .encode(Message::Bitfield(Bitfield::new(100)), &mut bf)
            .unwrap();
        assert!(matches!(
            codec.decode_head(&mut bf),
            Err(WireError::Frame(FrameError::TooLarge { .. }))
        ));
        // A Piece whose N disagrees with its frame.
        let mut bad = BytesMut::new();
        bad.put_u64(20);
        bad.put_u32(99);
        bad.put_u8(7);
        bad.put_u32(0);
        assert!(matches!(
            codec.decode_head(&mut bad),
            Err(WireError::Message(MessageError::LengthMismatch { .. }))
        ));
        // Too short for its index: the message decoder's error.
        let mut short = BytesMut::new();
        short.put_u64(7);
        short.put_u32(3);
        short.put_u8(7);
        short.put_u16(0);
        assert!(matches!(
            codec.decode_head(&mut short),
            Err(WireError::Message(MessageError::PayloadSize { .. }))
        ));
        // Only 13 bytes of a long frame: waits, having reserved little.
        let mut partial = BytesMut::new();
        partial.put_u64(900);
        partial.put_u32(896);
        assert_eq!(codec.decode_head(&mut partial).unwrap(), None);
        assert!(partial.capacity() < 64, "{}", partial.capacity());
    }
}

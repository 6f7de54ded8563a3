//! [`PeerCodec`]: frames carrying peer-wire messages, ready for `Framed`.
//!
//! Decoding is two checked steps: the frame layer ([`FrameCodec`]) bounds the
//! size, then [`Message::decode`] validates the body. Encoding writes the frame
//! header and the message body straight into the output buffer, so a Piece is
//! copied once.

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{FrameCodec, FrameError};
use crate::message::{Message, MessageError};

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
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerCodec {
    frames: FrameCodec,
    piece_count: Option<u32>,
}

impl PeerCodec {
    /// A codec that checks Bitfield lengths against `piece_count` (when given)
    /// and refuses frames larger than `max_frame`.
    pub fn new(max_frame: usize, piece_count: Option<u32>) -> Self {
        Self {
            frames: FrameCodec::new(max_frame),
            piece_count,
        }
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
        match self.frames.decode(src)? {
            Some(body) => Ok(Some(Message::decode(body.freeze(), self.piece_count)?)),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        match self.frames.decode_eof(src)? {
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
    fn encode_framed_matches_codec() {
        let mut codec = PeerCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(Message::Request(5), &mut buf).unwrap();
        assert_eq!(buf, encode_framed(&Message::Request(5)));
    }
}

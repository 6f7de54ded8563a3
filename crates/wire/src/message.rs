//! Peer-wire messages: the body of one frame.
//!
//! Layout (the seed project's, byte-exact): a 4-byte big-endian length `N` of
//! what follows, then, when `N > 0`, a 1-byte id and `N - 1` bytes of payload.
//!
//! | message | id | payload |
//! |---|---|---|
//! | KeepAlive | – | none, `N = 0` |
//! | Choke / Unchoke / Interested / NotInterested | 0 / 1 / 2 / 3 | none |
//! | Have | 4 | piece index, u32 BE |
//! | Bitfield | 5 | one byte per piece, 0 or 1 |
//! | Request | 6 | piece index, u32 BE |
//! | Piece | 7 | piece index u32 BE, then the piece's bytes |
//! | Cancel | 8 | piece index u32 BE |
//! | Close | 10 | none |
//! | Handshake | 20 | 20-byte info hash, 20-byte peer id |

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::bitfield::Bitfield;
use crate::ids::{InfoHash, PeerId};

/// Message ids.
pub mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const CLOSE: u8 = 10;
    pub const HANDSHAKE: u8 = 20;
}

/// Bytes before a Piece's data inside the message body: N, id, index.
pub const PIECE_HEADER_LEN: usize = 4 + 1 + 4;

/// One peer-wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bitfield),
    Request(u32),
    Piece {
        index: u32,
        data: Bytes,
    },
    Cancel(u32),
    Close,
    Handshake {
        info_hash: InfoHash,
        peer_id: PeerId,
    },
}

/// Why a frame body is not a valid message. Each is its own variant so that
/// callers (and tests) can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message body of {0} bytes is too short for its 4-byte length")]
    Truncated(usize),
    #[error("message length field says {declared} bytes but the frame holds {actual}")]
    LengthMismatch { declared: u32, actual: usize },
    #[error("unknown message id {0}")]
    UnknownId(u8),
    #[error("{name} (id {id}) needs a payload of {expected} bytes, got {actual}")]
    PayloadSize {
        name: &'static str,
        id: u8,
        expected: &'static str,
        actual: usize,
    },
    #[error("bitfield covers {actual} pieces but the torrent has {expected}")]
    BitfieldLength { expected: u32, actual: usize },
    #[error("bitfield byte {0:#04x} is neither 0 nor 1")]
    BitfieldByte(u8),
}

impl Message {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::KeepAlive => "KeepAlive",
            Message::Choke => "Choke",
            Message::Unchoke => "Unchoke",
            Message::Interested => "Interested",
            Message::NotInterested => "NotInterested",
            Message::Have(_) => "Have",
            Message::Bitfield(_) => "Bitfield",
            Message::Request(_) => "Request",
            Message::Piece { .. } => "Piece",
            Message::Cancel(_) => "Cancel",
            Message::Close => "Close",
            Message::Handshake { .. } => "Handshake",
        }
    }

    /// Length of the encoded body (including the 4-byte N).
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::Close => 1,
            Message::Have(_) | Message::Request(_) | Message::Cancel(_) => 5,
            Message::Bitfield(bf) => 1 + bf.len() as usize,
            Message::Piece { data, .. } => 5 + data.len(),
            Message::Handshake { .. } => 41,
        }
    }

    /// Appends the body (N, id, payload) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        let n = (self.encoded_len() - 4) as u32;
        dst.reserve(self.encoded_len());
        dst.put_u32(n);
        match self {
            Message::KeepAlive => {}
            Message::Choke => dst.put_u8(id::CHOKE),
            Message::Unchoke => dst.put_u8(id::UNCHOKE),
            Message::Interested => dst.put_u8(id::INTERESTED),
            Message::NotInterested => dst.put_u8(id::NOT_INTERESTED),
            Message::Close => dst.put_u8(id::CLOSE),
            Message::Have(i) => {
                dst.put_u8(id::HAVE);
                dst.put_u32(*i);
            }
            Message::Request(i) => {
                dst.put_u8(id::REQUEST);
                dst.put_u32(*i);
            }
            Message::Cancel(i) => {
                dst.put_u8(id::CANCEL);
                dst.put_u32(*i);
            }
            Message::Bitfield(bf) => {
                dst.put_u8(id::BITFIELD);
                dst.extend(bf.as_bools().iter().map(|&b| b as u8));
            }
            Message::Piece { index, data } => {
                dst.put_u8(id::PIECE);
                dst.put_u32(*index);
                dst.extend_from_slice(data);
            }
            Message::Handshake { info_hash, peer_id } => {
                dst.put_u8(id::HANDSHAKE);
                dst.put_slice(&info_hash.0);
                dst.put_slice(&peer_id.0);
            }
        }
    }

    /// The encoded body as bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }

    /// Decodes one frame body. `piece_count`, when known, is the number of
    /// pieces in the torrent, against which a Bitfield's length is checked.
    /// A Piece's data is a zero-copy slice of `body`.
    pub fn decode(mut body: Bytes, piece_count: Option<u32>) -> Result<Message, MessageError> {
        if body.len() < 4 {
            return Err(MessageError::Truncated(body.len()));
        }
        let declared = body.get_u32();
        if declared as usize != body.len() {
            return Err(MessageError::LengthMismatch {
                declared,
                actual: body.len(),
            });
        }
        if body.is_empty() {
            return Ok(Message::KeepAlive);
        }
        let msg_id = body.get_u8();
        let payload = body;
        let size_err = |name: &'static str, expected: &'static str| MessageError::PayloadSize {
            name,
            id: msg_id,
            expected,
            actual: payload.len(),
        };
        let index = |name: &'static str| -> Result<u32, MessageError> {
            if payload.len() == 4 {
                Ok(u32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]))
            } else {
                Err(size_err(name, "4"))
            }
        };
        let empty = |msg: Message| -> Result<Message, MessageError> {
            if payload.is_empty() {
                Ok(msg)
            } else {
                Err(size_err(msg.name(), "0"))
            }
        };
        match msg_id {
            id::CHOKE => empty(Message::Choke),
            id::UNCHOKE => empty(Message::Unchoke),
            id::INTERESTED => empty(Message::Interested),
            id::NOT_INTERESTED => empty(Message::NotInterested),
            id::CLOSE => empty(Message::Close),
            id::HAVE => index("Have").map(Message::Have),
            id::REQUEST => index("Request").map(Message::Request),
            id::CANCEL => index("Cancel").map(Message::Cancel),
            id::BITFIELD => {
                if let Some(expected) = piece_count {
                    if payload.len() != expected as usize {
                        return Err(MessageError::BitfieldLength {
                            expected,
                            actual: payload.len(),
                        });
                    }
                }
                Bitfield::from_wire(&payload)
                    .map(Message::Bitfield)
                    .map_err(MessageError::BitfieldByte)
            }
            id::PIECE => {
                if payload.len() < 4 {
                    return Err(size_err("Piece", "at least 4"));
                }
                let mut payload = payload;
                let index = payload.get_u32();
                Ok(Message::Piece {
                    index,
                    data: payload,
                })
            }
            id::HANDSHAKE => {
                if payload.len() != 40 {
                    return Err(size_err("Handshake", "40"));
                }
                let mut info_hash = [0u8; 20];
                let mut peer_id = [0u8; 20];
                info_hash.copy_from_slice(&payload[..20]);
                peer_id.copy_from_slice(&payload[20..]);
                Ok(Message::Handshake {
                    info_hash: InfoHash(info_hash),
                    peer_id: PeerId(peer_id),
                })
            }
            other => Err(MessageError::UnknownId(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn check(msg: Message, bytes: &str, pieces: Option<u32>) {
        let expected = hex(bytes);
        assert_eq!(msg.to_bytes().to_vec(), expected, "encoding of {msg:?}");
        assert_eq!(Message::decode(Bytes::from(expected), pieces).unwrap(), msg);
    }

    #[test]
    fn byte_examples_from_the_spec() {
        check(Message::Have(3), "00000005 04 00000003", None);
        check(
            Message::Bitfield(Bitfield::from_wire(&[1, 0, 1]).unwrap()),
            "00000004 05 010001",
            Some(3),
        );
        check(Message::Request(258), "00000005 06 00000102", None);
        check(
            Message::Piece {
                index: 2,
                data: Bytes::from_static(b"ab"),
            },
            "00000007 07 00000002 6162",
            None,
        );
        check(Message::Close, "00000001 0a", None);
        check(Message::KeepAlive, "00000000", None);
        check(Message::Choke, "00000001 00", None);
        check(Message::Unchoke, "00000001 01", None);
        check(Message::Interested, "00000001 02", None);
        check(Message::NotInterested, "00000001 03", None);
        check(Message::Cancel(1), "00000005 08 00000001", None);
        check(
            Message::Handshake {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
            },
            &format!("00000029 14 {} {}", "01".repeat(20), "02".repeat(20)),
            None,
        );
    }

    fn decode_hex(s: &str, pieces: Option<u32>) -> Result<Message, MessageError> {
        Message::decode(Bytes::from(hex(s)), pieces)
    }

    #[test]
    fn length_field_must_match_frame() {
        assert_eq!(
            decode_hex("00000006 04 00000003", None),
            Err(MessageError::LengthMismatch {
                declared: 6,
                actual: 5
            })
        );
        assert_eq!(
            decode_hex("ffffffff 04", None),
            Err(MessageError::LengthMismatch {
                declared: u32::MAX,
                actual: 1
            })
        );
        assert_eq!(decode_hex("0000", None), Err(MessageError::Truncated(2)));
    }

    #[test]
    fn unknown_id() {
        assert_eq!(
            decode_hex("00000001 09", None),
            Err(MessageError::UnknownId(9))
        );
        assert_eq!(
            decode_hex("00000001 ff", None),
            Err(MessageError::UnknownId(255))
        );
    }

    #[test]
    fn wrong_payload_size() {
        for bad in [
            "00000004 04 000003",
            "00000002 00 00",
            "00000003 07 0000",
            "00000002 14 00",
        ] {
            assert!(
                matches!(decode_hex(bad, None), Err(MessageError::PayloadSize { .. })),
                "{bad} should be a payload-size error"
            );
        }
    }

    #[test]
    fn bitfield_length_and_bytes_are_checked() {
        assert_eq!(
            decode_hex("00000003 05 0100", Some(3)),
            Err(MessageError::BitfieldLength {
                expected: 3,
                actual: 2
            })
        );
        assert_eq!(
            decode_hex("00000004 05 010201", Some(3)),
            Err(MessageError::BitfieldByte(2))
        );
    }

    #[test]
    fn piece_data_is_zero_copy() {
        let body = Message::Piece {
            index: 9,
            data: Bytes::from(vec![7u8; 1000]),
        }
        .to_bytes();
        let start = body.as_ptr() as usize;
        let Message::Piece { data, .. } = Message::decode(body, None).unwrap() else {
            panic!()
        };
        assert_eq!(data.as_ptr() as usize, start + PIECE_HEADER_LEN);
    }
}

//! The chat datagram format.
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0  | 4 | magic `LSWC` ([`crate::preamble`]) |
//! | 4  | 1 | version (1) |
//! | 5  | 1 | kind: 1 join, 2 message, 3 leave, 4 present (reply to a join) |
//! | 6  | 8 | member id (random per session, big-endian) |
//! | 14 | 1 | name length N (1..=[`MAX_NAME`]) |
//! | 15 | N | name |
//! | 15+N | rest | message text (empty except for kind 2) |

use crate::preamble::{Preamble, PreambleError};

/// Magic bytes and version that start every chat datagram.
pub const PREAMBLE: Preamble = Preamble {
    magic: b"LSWC",
    version: 1,
};
/// Longest member name in bytes.
pub const MAX_NAME: usize = 32;
/// Longest message text in bytes.
pub const MAX_TEXT: usize = 1024;
const FIXED: usize = 15;

/// What a chat datagram announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A member entered the room.
    Join,
    /// A line of text.
    Message,
    /// A member left the room.
    Leave,
    /// A member already present answers a join, so newcomers learn who is there.
    Present,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Join => 1,
            Kind::Message => 2,
            Kind::Leave => 3,
            Kind::Present => 4,
        }
    }
}

/// A decoded chat datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPacket {
    /// What it announces.
    pub kind: Kind,
    /// The sender's random session id.
    pub member: u64,
    /// The sender's name (raw bytes; escape before printing).
    pub name: Vec<u8>,
    /// The message text (raw bytes; escape before printing).
    pub text: Vec<u8>,
}

/// Why a datagram is not a valid chat datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a chat datagram of our version, or shorter than the fixed header.
    #[error("not a chat datagram: {0}")]
    Preamble(#[from] PreambleError),
    /// Shorter than its name length says.
    #[error("truncated chat datagram")]
    Truncated,
    /// Unknown kind.
    #[error("unknown chat packet kind {0}")]
    BadKind(u8),
    /// Empty name or one longer than [`MAX_NAME`].
    #[error("invalid name length {0}")]
    BadName(usize),
    /// Text longer than [`MAX_TEXT`].
    #[error("message text of {0} bytes is too long")]
    TextTooLong(usize),
}

impl ChatPacket {
    /// Encodes the packet. Callers keep name and text within the limits.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + self.name.len() + self.text.len());
        out.extend_from_slice(&PREAMBLE.encode(self.kind.code()));
        out.extend_from_slice(&self.member.to_be_bytes());
        out.push(self.name.len() as u8);
        out.extend_from_slice(&self.name);
        out.extend_from_slice(&self.text);
        out
    }

    /// Decodes and validates a datagram.
    pub fn decode(buf: &[u8]) -> Result<ChatPacket, DecodeError> {
        let kind = match PREAMBLE.check(buf, FIXED)? {
            1 => Kind::Join,
            2 => Kind::Message,
            3 => Kind::Leave,
            4 => Kind::Present,
            k => return Err(DecodeError::BadKind(k)),
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&buf[6..14]);
        let name_len = usize::from(buf[14]);
        if name_len == 0 || name_len > MAX_NAME {
            return Err(DecodeError::BadName(name_len));
        }
        let rest = &buf[FIXED..];
        if rest.len() < name_len {
            return Err(DecodeError::Truncated);
        }
        let (name, text) = rest.split_at(name_len);
        if text.len() > MAX_TEXT {
            return Err(DecodeError::TextTooLong(text.len()));
        }
        Ok(ChatPacket {
            kind,
            member: u64::from_be_bytes(id),
            name: name.to_vec(),
            text: text.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &[u8]) -> ChatPacket {
        ChatPacket {
            kind: Kind::Message,
            member: 0x0102_0304_0506_0708,
            name: b"alice".to_vec(),
            text: text.to_vec(),
        }
    }

    #[test]
    fn round_trips_every_kind() {
        for kind in [Kind::Join, Kind::Message, Kind::Leave, Kind::Present] {
            let p = ChatPacket {
                kind,
                ..msg(b"hi \x1b there")
            };
            assert_eq!(ChatPacket::decode(&p.encode()), Ok(p));
        }
        let empty = msg(b"");
        assert_eq!(ChatPacket::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn malformed_datagrams_are_rejected() {
        let good = msg(b"hello").encode();
        assert_eq!(
            ChatPacket::decode(b"Hello Everybody"),
            Err(DecodeError::Preamble(PreambleError::BadMagic))
        );
        assert_eq!(
            ChatPacket::decode(&good[..10]),
            Err(DecodeError::Preamble(PreambleError::TooShort {
                len: 10,
                min: FIXED
            }))
        );
        // Name length pointing past the end of the datagram.
        let mut bad = good[..17].to_vec();
        bad[14] = 5;
        assert_eq!(ChatPacket::decode(&bad), Err(DecodeError::Truncated));
        let mut bad = good.clone();
        bad[14] = 0;
        assert_eq!(ChatPacket::decode(&bad), Err(DecodeError::BadName(0)));
        bad[14] = 200;
        assert_eq!(ChatPacket::decode(&bad), Err(DecodeError::BadName(200)));
        let mut bad = good.clone();
        bad[5] = 0;
        assert_eq!(ChatPacket::decode(&bad), Err(DecodeError::BadKind(0)));
        let long = msg(&vec![b'x'; MAX_TEXT + 1]).encode();
        assert_eq!(
            ChatPacket::decode(&long),
            Err(DecodeError::TextTooLong(MAX_TEXT + 1))
        );
    }
}

//! 20-byte identifiers: the info hash that names a swarm, and a peer's id.

use std::fmt;
use std::str::FromStr;

/// Error for a malformed 40-character hex identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 40 hexadecimal characters, got {0:?}")]
pub struct HexIdError(pub String);

macro_rules! id20 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 20]);

        impl $name {
            /// The lowercase 40-character hex form.
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = HexIdError;
            fn from_str(s: &str) -> Result<Self, HexIdError> {
                parse_hex20(s).map($name).ok_or_else(|| HexIdError(s.chars().take(64).collect()))
            }
        }
    };
}

id20!(
    /// SHA-1 over the canonical encoding of a torrent's `info`: the swarm's name.
    InfoHash
);
id20!(
    /// A peer's self-chosen identity, sent in the Handshake.
    PeerId
);

/// Lowercase hex of any bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses exactly 40 hex digits (either case) into 20 bytes.
pub fn parse_hex20(s: &str) -> Option<[u8; 20]> {
    let s = s.as_bytes();
    if s.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = InfoHash([0xa9; 20]);
        assert_eq!(id.to_hex(), "a9".repeat(20));
        assert_eq!("A9".repeat(20).parse::<InfoHash>().unwrap(), id);
    }

    #[test]
    fn bad_hex_is_refused() {
        assert!("xyz".parse::<InfoHash>().is_err());
        assert!("g".repeat(40).parse::<PeerId>().is_err());
        assert!("é".repeat(20).parse::<PeerId>().is_err());
    }
}

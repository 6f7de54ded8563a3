//! The six bytes that open every probe and chat datagram.
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 4 | magic: which format (`LSWP` probe, `LSWC` chat) |
//! | 4 | 1 | format version |
//! | 5 | 1 | kind, defined by the format |
//!
//! Checking them first tells our datagrams from anyone else's on the port.

/// Length of the preamble.
pub const LEN: usize = 6;

/// One datagram format's magic bytes and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// The format's magic bytes.
    pub magic: &'static [u8; 4],
    /// The format's version.
    pub version: u8,
}

/// Why a datagram does not open with a format's preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PreambleError {
    /// Other magic bytes: someone else's datagram.
    #[error("bad magic (not one of ours)")]
    BadMagic,
    /// Shorter than the format's fixed header.
    #[error("datagram of {len} bytes is shorter than the {min}-byte header")]
    TooShort { len: usize, min: usize },
    /// A version we do not speak.
    #[error("unsupported version {0}")]
    BadVersion(u8),
}

impl Preamble {
    /// The preamble of a datagram of `kind`.
    pub fn encode(&self, kind: u8) -> [u8; LEN] {
        let [a, b, c, d] = *self.magic;
        [a, b, c, d, self.version, kind]
    }

    /// Checks the magic, that `buf` holds the format's fixed header of
    /// `header_len` bytes, and the version; returns the kind byte.
    pub fn check(&self, buf: &[u8], header_len: usize) -> Result<u8, PreambleError> {
        if buf.len() >= 4 && &buf[..4] != self.magic {
            return Err(PreambleError::BadMagic);
        }
        let min = header_len.max(LEN);
        if buf.len() < min {
            return Err(PreambleError::TooShort {
                len: buf.len(),
                min,
            });
        }
        if buf[4] != self.version {
            return Err(PreambleError::BadVersion(buf[4]));
        }
        Ok(buf[5])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Preamble = Preamble {
        magic: b"LSWT",
        version: 3,
    };

    #[test]
    fn encodes_and_checks() {
        let mut buf = TEST.encode(7).to_vec();
        assert_eq!(buf, b"LSWT\x03\x07");
        assert_eq!(TEST.check(&buf, 0), Ok(7));
        buf.extend_from_slice(b"rest");
        assert_eq!(TEST.check(&buf, 10), Ok(7));
    }

    #[test]
    fn foreign_short_and_future_datagrams_are_rejected() {
        assert_eq!(
            TEST.check(b"very important data", 6),
            Err(PreambleError::BadMagic)
        );
        for short in [&b""[..], b"LS", b"LSWT\x03"] {
            assert_eq!(
                TEST.check(short, 0),
                Err(PreambleError::TooShort {
                    len: short.len(),
                    min: LEN
                })
            );
        }
        assert_eq!(
            TEST.check(b"LSWT\x03\x01abc", 10),
            Err(PreambleError::TooShort { len: 9, min: 10 })
        );
        assert_eq!(
            TEST.check(b"LSWT\x04\x01", 6),
            Err(PreambleError::BadVersion(4))
        );
    }
}

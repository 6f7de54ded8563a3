//! The probe datagram format.
//!
//! All integers are big-endian. The header is [`HEADER_LEN`] bytes; data
//! packets are padded with zeros to the requested size.
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0  | 4 | magic `LSWP` ([`crate::preamble`]) |
//! | 4  | 1 | version (1) |
//! | 5  | 1 | kind: 1 = data, 2 = end of run |
//! | 6  | 2 | reserved (0) |
//! | 8  | 8 | run id (random per sender run) |
//! | 16 | 8 | sequence number (data) / datagrams sent (end) |
//! | 24 | 8 | send time, ns of `CLOCK_MONOTONIC` |
//! | 32 | 8 | interval between datagrams in ns (informational) |

use crate::preamble::{Preamble, PreambleError};

/// Magic bytes and version that start every probe datagram.
pub const PREAMBLE: Preamble = Preamble {
    magic: b"LSWP",
    version: 1,
};
/// Length of the fixed header; the smallest valid probe datagram.
pub const HEADER_LEN: usize = 40;

/// What a probe datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A numbered, timestamped measurement datagram.
    Data,
    /// The sender finished; `seq` holds the number of data datagrams sent.
    End,
}

/// A decoded probe datagram header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePacket {
    /// Data or end of run.
    pub kind: Kind,
    /// Identifies one sender run.
    pub run: u64,
    /// Sequence number (data) or total sent (end).
    pub seq: u64,
    /// Send time in ns of `CLOCK_MONOTONIC`.
    pub sent_ns: u64,
    /// Interval between datagrams in ns.
    pub interval_ns: u64,
}

/// Why a datagram is not a valid probe datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a probe datagram of our version, or shorter than the header.
    #[error("not a probe datagram: {0}")]
    Preamble(#[from] PreambleError),
    /// Unknown packet kind.
    #[error("unknown probe packet kind {0}")]
    BadKind(u8),
}

impl ProbePacket {
    /// Writes the header into the start of `buf` (which must hold at least
    /// [`HEADER_LEN`] bytes); the rest of `buf` is left as is (padding).
    pub fn encode_into(&self, buf: &mut [u8]) {
        assert!(buf.len() >= HEADER_LEN, "probe buffer smaller than header");
        let kind = match self.kind {
            Kind::Data => 1,
            Kind::End => 2,
        };
        buf[..crate::preamble::LEN].copy_from_slice(&PREAMBLE.encode(kind));
        buf[6..8].copy_from_slice(&[0, 0]);
        buf[8..16].copy_from_slice(&self.run.to_be_bytes());
        buf[16..24].copy_from_slice(&self.seq.to_be_bytes());
        buf[24..32].copy_from_slice(&self.sent_ns.to_be_bytes());
        buf[32..40].copy_from_slice(&self.interval_ns.to_be_bytes());
    }

    /// Decodes a datagram. Any length from [`HEADER_LEN`] up is accepted.
    pub fn decode(buf: &[u8]) -> Result<ProbePacket, DecodeError> {
        let kind = match PREAMBLE.check(buf, HEADER_LEN)? {
            1 => Kind::Data,
            2 => Kind::End,
            k => return Err(DecodeError::BadKind(k)),
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Ok(ProbePacket {
            kind,
            run: u64_at(8),
            seq: u64_at(16),
            sent_ns: u64_at(24),
            interval_ns: u64_at(32),
        })
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC`, shared by all network namespaces of a machine.
pub fn monotonic_ns() -> u64 {
    // SAFETY: all-zero is a valid timespec; clock_gettime only writes to it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: Kind) -> ProbePacket {
        ProbePacket {
            kind,
            run: 0xdead_beef_0102_0304,
            seq: 42,
            sent_ns: 123_456_789,
            interval_ns: 1_000_000,
        }
    }

    #[test]
    fn round_trip_with_padding() {
        for kind in [Kind::Data, Kind::End] {
            let mut buf = vec![0xaa; 1400];
            sample(kind).encode_into(&mut buf);
            assert_eq!(ProbePacket::decode(&buf), Ok(sample(kind)));
            assert_eq!(ProbePacket::decode(&buf[..HEADER_LEN]), Ok(sample(kind)));
        }
    }

    #[test]
    fn malformed_datagrams_are_rejected() {
        let mut buf = vec![0u8; HEADER_LEN];
        sample(Kind::Data).encode_into(&mut buf);
        assert_eq!(
            ProbePacket::decode(&buf[..HEADER_LEN - 1]),
            Err(DecodeError::Preamble(PreambleError::TooShort {
                len: HEADER_LEN - 1,
                min: HEADER_LEN
            }))
        );
        assert_eq!(
            ProbePacket::decode(b"very important data"),
            Err(DecodeError::Preamble(PreambleError::BadMagic))
        );
        buf[5] = 7;
        assert_eq!(ProbePacket::decode(&buf), Err(DecodeError::BadKind(7)));
    }

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}

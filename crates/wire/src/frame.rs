//! The frame layer: an 8-byte unsigned big-endian length, then that many bytes.
//!
//! [`FrameCodec`] is a tokio-util [`Decoder`]/[`Encoder`]. It copes with a
//! frame split over many reads and with many frames in one read. A length above
//! the codec's maximum is rejected as soon as the 8 header bytes are in, before
//! any buffer is sized for it; and while a legal frame arrives the buffer only
//! grows with the bytes actually received, so a stranger's length field never
//! decides how much we allocate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Size of the length prefix.
pub const FRAME_HEADER_LEN: usize = 8;

/// Default frame limit: the largest piece we allow (16 MiB) plus room for headers.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024 + 1024;

/// How much buffer space the decoder reserves ahead of data that has not
/// arrived yet: enough for a typical 1 MiB piece in one step, small enough
/// that idle connections claiming huge frames cost little.
const READ_AHEAD: usize = 1024 * 1024 + 64;

/// Errors of the frame layer.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
    /// The connection ended inside a frame.
    #[error("connection closed inside a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Length-prefixed framing with an 8-byte big-endian length.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameCodec {
    /// A codec that refuses frames with a body longer than `max_frame` bytes
    /// (at most `usize::MAX - 8`, so header plus body always fits a `usize`).
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame: max_frame.min(usize::MAX - FRAME_HEADER_LEN),
        }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Reads the length of the next frame, if its header is complete, and
    /// checks it against the limit.
    fn peek_len(&self, src: &BytesMut) -> Result<Option<usize>, FrameError> {
        if src.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER_LEN];
        header.copy_from_slice(&src[..FRAME_HEADER_LEN]);
        let len = u64::from_be_bytes(header);
        if len > self.max_frame as u64 {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        Ok(Some(len as usize))
    }

    /// Writes a frame header for a body of `len` bytes.
    pub fn put_header(&self, len: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len: len as u64,
                max: self.max_frame,
            });
        }
        dst.put_u64(len as u64);
        Ok(())
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let Some(len) = self.peek_len(src)? else {
            return Ok(None);
        };
        let total = FRAME_HEADER_LEN + len;
        if src.len() < total {
            // Grow with the data, not with the claim.
            src.reserve((total - src.len()).min(READ_AHEAD));
            return Ok(None);
        }
        src.advance(FRAME_HEADER_LEN);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&body[..], dst)
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        self.put_header(body.len(), dst)?;
        dst.extend_from_slice(body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(bodies: &[&[u8]]) -> BytesMut {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for body in bodies {
            codec.encode(*body, &mut buf).unwrap();
        }
        buf
    }

    #[test]
    fn header_is_eight_bytes_big_endian() {
        let buf = encoded(&[b"abc"]);
        assert_eq!(&buf[..], b"\0\0\0\0\0\0\0\x03abc");
    }

    #[test]
    fn frame_split_across_many_reads() {
        let wire = encoded(&[b"hello world"]);
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.put_u8(*byte);
            let out = codec.decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert!(out.is_none(), "frame produced early at byte {i}");
            } else {
                assert_eq!(&out.unwrap()[..], b"hello world");
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn several_frames_in_one_read() {
        let mut buf = encoded(&[b"one", b"", b"three"]);
        let mut codec = FrameCodec::default();
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"one");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"three");
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn oversize_length_is_refused_before_allocation() {
        let mut buf = BytesMut::from(&[0xffu8; 8][..]);
        let cap_before = buf.capacity();
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len: u64::MAX, .. }),
            "{err}"
        );
        assert_eq!(
            buf.capacity(),
            cap_before,
            "decoder grew the buffer for a refused frame"
        );
    }

    #[test]
    fn limit_is_a_parameter() {
        let mut codec = FrameCodec::new(4);
        let mut buf = encoded(&[b"12345"]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len: 5, max: 4 })
        ));
        let mut out = BytesMut::new();
        assert!(codec.encode(&b"12345"[..], &mut out).is_err());
        let mut ok = encoded(&[b"1234"]);
        assert_eq!(&codec.decode(&mut ok).unwrap().unwrap()[..], b"1234");
    }

    #[test]
    fn buffer_grows_with_data_not_with_claim() {
        // A legal but large claim with only a few bytes behind it.
        let mut buf = BytesMut::new();
        buf.put_u64(DEFAULT_MAX_FRAME as u64);
        buf.put_slice(b"tiny");
        let mut codec = FrameCodec::default();
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= READ_AHEAD + 64,
            "reserved {}",
            buf.capacity()
        );
    }

    #[test]
    fn limit_near_usize_max_does_not_overflow() {
        let mut buf = BytesMut::from(&[0xffu8; 8][..]);
        let err = FrameCodec::new(usize::MAX).decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }

    #[test]
    fn eof_inside_frame_is_an_error() {
        let wire = encoded(&[b"hello"]);
        let mut buf = BytesMut::from(&wire[..10]);
        let err = FrameCodec::default().decode_eof(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { buffered: 10 }));
        let mut empty = BytesMut::new();
        assert!(FrameCodec::default()
            .decode_eof(&mut empty)
            .unwrap()
            .is_none());
    }
}

//! Reading and writing one frame (an 8-byte big-endian length, then the
//! body), blocking or async, for code that does not run a
//! [`wire::FrameCodec`] over a stream: one-shot clients, `peer fetch`, the
//! tracker's refusal path, test fixtures.
//!
//! A length above the caller's limit is refused as soon as the header is
//! in ([`FrameError::TooLarge`]), and a body is read into a buffer that
//! grows with the bytes that actually arrive, never sized by the length
//! field alone.

use std::io::{Read, Write};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
pub use wire::frame::{FrameError, FRAME_HEADER_LEN};

/// The buffer reserved up front for a body, however long it claims to be.
const INITIAL_BODY: usize = 64 << 10;

/// The header of a frame whose body is `len` bytes long.
pub fn header(len: u64) -> [u8; FRAME_HEADER_LEN] {
    len.to_be_bytes()
}

/// A whole frame: the header and the body, in one buffer.
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    frame.extend_from_slice(&header(body.len() as u64));
    frame.extend_from_slice(body);
    frame
}

fn check(len: u64, max: u64) -> Result<u64, FrameError> {
    if len > max {
        return Err(FrameError::TooLarge {
            len,
            max: usize::try_from(max).unwrap_or(usize::MAX),
        });
    }
    Ok(len)
}

fn truncated(err: std::io::Error, buffered: usize) -> FrameError {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated { buffered }
    } else {
        FrameError::Io(err)
    }
}

/// Writes one frame.
pub fn write_frame<W: Write + ?Sized>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&encode(body))?;
    w.flush()
}

/// Reads a frame header and checks the length against `max`. `Ok(None)`
/// when the stream ends cleanly before the first header byte.
pub fn read_header<R: Read + ?Sized>(r: &mut R, max: u64) -> Result<Option<u64>, FrameError> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    let mut got = 0;
    while got < h.len() {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated { buffered: got }),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    check(u64::from_be_bytes(h), max).map(Some)
}

/// Reads one frame of at most `max` body bytes. `Ok(None)` on a clean end
/// of stream before the frame; [`FrameError::Truncated`] inside one.
pub fn read_frame<R: Read + ?Sized>(r: &mut R, max: u64) -> Result<Option<Vec<u8>>, FrameError> {
    let Some(len) = read_header(r, max)? else {
        return Ok(None);
    };
    let mut body = Vec::with_capacity((len as usize).min(INITIAL_BODY));
    r.take(len).read_to_end(&mut body).map_err(FrameError::Io)?;
    if body.len() as u64 != len {
        return Err(FrameError::Truncated {
            buffered: body.len(),
        });
    }
    Ok(Some(body))
}

/// Writes one frame to an async stream.
pub async fn write_frame_async<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    body: &[u8],
) -> std::io::Result<()> {
    w.write_all(&encode(body)).await?;
    w.flush().await
}

/// [`read_header`] for an async stream.
pub async fn read_header_async<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    max: u64,
) -> Result<Option<u64>, FrameError> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    let first = r.read(&mut h).await.map_err(FrameError::Io)?;
    if first == 0 {
        return Ok(None);
    }
    r.read_exact(&mut h[first..])
        .await
        .map_err(|e| truncated(e, first))?;
    check(u64::from_be_bytes(h), max).map(Some)
}

/// [`read_frame`] for an async stream.
pub async fn read_frame_async<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    max: u64,
) -> Result<Option<Vec<u8>>, FrameError> {
    let Some(len) = read_header_async(r, max).await? else {
        return Ok(None);
    };
    let mut body = Vec::with_capacity((len as usize).min(INITIAL_BODY));
    (&mut *r)
        .take(len)
        .read_to_end(&mut body)
        .await
        .map_err(FrameError::Io)?;
    if body.len() as u64 != len {
        return Err(FrameError::Truncated {
            buffered: body.len(),
        });
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clean_end() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        write_frame(&mut buf, b"").unwrap();
        assert_eq!(&buf[..8], &[0, 0, 0, 0, 0, 0, 0, 5]);
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r, 64).unwrap().unwrap(), b"hello");
        assert_eq!(read_frame(&mut r, 64).unwrap().unwrap(), b"");
        assert!(read_frame(&mut r, 64).unwrap().is_none());
    }

    #[test]
    fn oversize_is_refused_before_allocating() {
        let frame = [0xffu8; 8];
        let err = read_frame(&mut &frame[..], 1 << 20).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len: u64::MAX, .. }),
            "{err}"
        );
    }

    #[test]
    fn truncation_inside_header_or_body_is_an_error() {
        let err = read_frame(&mut &[0u8, 0, 0][..], 64).unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { buffered: 3 }),
            "{err}"
        );
        let mut short = header(10).to_vec();
        short.extend_from_slice(b"abc");
        let err = read_frame(&mut &short[..], 64).unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { buffered: 3 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn async_round_trip_and_errors() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame_async(&mut a, b"xyz").await.unwrap();
        assert_eq!(read_frame_async(&mut b, 8).await.unwrap().unwrap(), b"xyz");
        a.write_all(&header(9)).await.unwrap();
        let err = read_frame_async(&mut b, 8).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 9, max: 8 }));
        a.write_all(&[0, 0]).await.unwrap();
        drop(a);
        let err = read_frame_async(&mut b, 8).await.unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { buffered: 2 }),
            "{err}"
        );
    }
}

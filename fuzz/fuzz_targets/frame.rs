//! The 8-byte length-prefixed framing: arbitrary bytes, fed in arbitrary
//! chunks, under an arbitrary frame limit. No panic; no frame above the
//! limit; the buffer never grows with a length field's claim; and the frames
//! decoded, framed again, give back exactly the bytes consumed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};
use wire::{FrameCodec, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = match u16::from_be_bytes([data[0], data[1]]) {
        0xffff => DEFAULT_MAX_FRAME,
        n => usize::from(n),
    };
    let chunk = usize::from(data[2]).max(1);
    let input = &data[3..];
    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut consumed = 0;
    let mut failed = false;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(body)) => {
                    assert!(body.len() <= max, "frame above the limit");
                    consumed += before - buf.len();
                    frames.push(body);
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
            // The claim of a length field must not be what sizes the buffer.
            assert!(
                buf.capacity() <= 4 * 1024 * 1024,
                "buffer of {} bytes for {} buffered",
                buf.capacity(),
                buf.len()
            );
        }
        if failed {
            break;
        }
    }
    if !failed {
        // At the end of the stream: either nothing is left, or a typed error.
        match codec.decode_eof(&mut buf) {
            Ok(Some(_)) => panic!("decode_eof found a frame decode missed"),
            Ok(None) => assert!(buf.is_empty()),
            Err(_) => assert!(!buf.is_empty()),
        }
    }
    let mut again = BytesMut::new();
    for f in &frames {
        codec
            .encode(&f[..], &mut again)
            .expect("a decoded frame re-encodes");
    }
    assert_eq!(&again[..], &input[..consumed]);
    assert_eq!(
        consumed,
        frames
            .iter()
            .map(|f| f.len() + FRAME_HEADER_LEN)
            .sum::<usize>()
    );
});

//! Peer-wire messages: one frame body through `Message::decode`, then the
//! same bytes as a framed stream through `PeerCodec`. A decoded message
//! encodes back to exactly the body it came from (there is one encoding per
//! message), and decode(encode(m)) == m.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};
use wire::{Message, PeerCodec};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    // The piece count the Bitfield length is checked against, or none.
    let piece_count = match sel {
        0 => None,
        n => Some(u32::from(n) - 1),
    };
    if let Ok(msg) = Message::decode(Bytes::copy_from_slice(body), piece_count) {
        assert_eq!(msg.encoded_len(), body.len());
        assert_eq!(&msg.to_bytes()[..], body, "not the one encoding of {msg:?}");
        let framed = wire::codec::encode_framed(&msg);
        let mut codec = PeerCodec::new(wire::DEFAULT_MAX_FRAME, piece_count);
        let mut buf = framed.clone();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(msg.clone()));
        assert!(buf.is_empty());
        let mut enc = BytesMut::new();
        codec.encode(&msg, &mut enc).unwrap();
        assert_eq!(enc, framed);
        let _ = msg.name();
    }

    // The whole input as a stream of framed messages, with a small limit.
    let mut codec = PeerCodec::new(64 * 1024, piece_count);
    let mut buf = BytesMut::from(body);
    while let Ok(Some(msg)) = codec.decode(&mut buf) {
        let mut again = BytesMut::new();
        codec.encode(&msg, &mut again).unwrap();
        assert_eq!(codec.decode(&mut again).unwrap(), Some(msg));
    }
    let _ = codec.decode_eof(&mut buf);
});

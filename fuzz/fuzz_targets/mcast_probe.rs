//! `mcast probe` datagrams (decoded in crates/mcast/src/probe/packet.rs):
//! decode; a decoded header encodes back into the same header bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcast::probe::packet::{ProbePacket, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = ProbePacket::decode(data) else {
        return;
    };
    assert!(data.len() >= HEADER_LEN);
    let mut buf = [0u8; HEADER_LEN];
    p.encode_into(&mut buf);
    assert_eq!(ProbePacket::decode(&buf), Ok(p));
    // Bytes 6..8 are reserved: the decoder may accept any value there.
    assert_eq!(buf[..6], data[..6]);
    assert_eq!(buf[8..], data[8..HEADER_LEN]);
});

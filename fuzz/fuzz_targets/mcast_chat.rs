//! `mcast chat` datagrams (decoded in crates/mcast/src/chat/packet.rs):
//! decode; decode(encode(p)) == p, and the encoding is the datagram itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcast::chat::packet::ChatPacket;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = ChatPacket::decode(data) else {
        return;
    };
    let bytes = p.encode();
    assert_eq!(ChatPacket::decode(&bytes).as_ref(), Ok(&p));
    assert_eq!(bytes, data);
});

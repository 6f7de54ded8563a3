//! `peer chat` messages (JSON in one frame): decode and validate, then
//! decode(encode(m)) == m. Room and member names alone too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::chat::{room_hash, validate_name, ChatMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ChatMessage::decode(data) {
        let bytes = m.encode();
        assert_eq!(ChatMessage::decode(&bytes).as_ref(), Ok(&m));
        let _ = m.claimed_name();
    }
    if let Ok(name) = std::str::from_utf8(data) {
        if validate_name(name).is_ok() {
            let _ = room_hash(name);
        }
    }
});

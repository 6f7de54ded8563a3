//! IGMP v1/v2/v3 messages: decode; a decoded message encodes with a right
//! checksum, and decode(encode(m)) == m. Display never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::igmp::{checksum_ok, decode};

fuzz_target!(|data: &[u8]| {
    let _ = checksum_ok(data);
    let Ok(m) = decode(data) else {
        return;
    };
    let _ = (m.to_string(), m.group());
    let bytes = m.encode();
    assert!(checksum_ok(&bytes));
    assert_eq!(decode(&bytes).as_ref(), Ok(&m), "{bytes:02x?}");
});

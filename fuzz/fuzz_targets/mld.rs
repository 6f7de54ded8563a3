//! MLD v1/v2 messages: decode; a decoded message encodes with a right
//! checksum (pseudo-header included), and decode(encode(m)) == m.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use wire::mld::{checksum_ok, decode};

fuzz_target!(|data: &[u8]| {
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let dst: Ipv6Addr = "ff02::16".parse().unwrap();
    let _ = checksum_ok(src, dst, data);
    let Ok(m) = decode(data) else {
        return;
    };
    let _ = (m.to_string(), m.group());
    let bytes = m.encode(src, dst);
    assert!(checksum_ok(src, dst, &bytes));
    assert_eq!(decode(&bytes).as_ref(), Ok(&m), "{bytes:02x?}");
});

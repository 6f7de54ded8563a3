//! LAN discovery datagrams (BEP 14 `BT-SEARCH`): parse; an announce that
//! parses encodes back to a datagram that parses to the same announce.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::discovery::{Announce, MAX_COOKIE, MAX_HASHES};

fuzz_target!(|data: &[u8]| {
    let Ok(a) = Announce::parse(data) else {
        return;
    };
    assert!(!a.info_hashes.is_empty() && a.info_hashes.len() <= MAX_HASHES);
    assert!(a.cookie.as_ref().is_none_or(|c| c.len() <= MAX_COOKIE));
    assert_ne!(a.port, 0);
    for host in ["239.192.152.143:6771", "[ff15::efc0:988f]:6771"] {
        let bytes = a.encode(host);
        assert_eq!(
            Announce::parse(&bytes).as_ref(),
            Ok(&a),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
});

//! Captured IPv4/IPv6 packets: find the IGMP or MLD message inside, check
//! its checksum, decode it. The payload found lies inside the packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::inet::{parse, Decoded};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(p)) = parse(data) else {
        return;
    };
    assert!(p.payload.len() <= data.len());
    let _ = p.checksum_ok();
    if let Ok(m) = p.decode() {
        let _ = match m {
            Decoded::Igmp(m) => m.to_string(),
            Decoded::Mld(m) => m.to_string(),
        };
    }
});

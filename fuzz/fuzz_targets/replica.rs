//! Tracker replication datagrams (binary, multicast): decode; a decoded
//! datagram encodes, and decode(encode(d)) == d.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::replica::{Body, Datagram, MAX_DATAGRAM};

fuzz_target!(|data: &[u8]| {
    let Ok(d) = Datagram::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_DATAGRAM);
    if let Body::Changes(records) = &d.body {
        for r in records {
            let _ = (r.key(), r.encoded_len());
        }
    }
    let bytes = d.encode().expect("a decoded datagram encodes");
    assert!(bytes.len() <= MAX_DATAGRAM);
    assert_eq!(Datagram::decode(&bytes).as_ref(), Ok(&d));
});

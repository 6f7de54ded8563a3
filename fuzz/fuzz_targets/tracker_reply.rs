//! Tracker replies: the announce response a peer reads, and the status
//! response the web page and `tracker status` read. A parsed announce
//! response writes back to JSON that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::tracker::{AnnounceResponse, StatusResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = AnnounceResponse::parse(data) {
        let json = r.to_json();
        assert_eq!(AnnounceResponse::parse(&json).ok().as_ref(), Some(&r));
        let _ = r.is_error();
    }
    if let Ok(s) = serde_json::from_slice::<StatusResponse>(data) {
        let json = serde_json::to_vec(&s).expect("status serialises");
        serde_json::from_slice::<StatusResponse>(&json).expect("status reads back");
    }
});

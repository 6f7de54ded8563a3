//! Python bytes reprs (the seed tool's piece hashes): whatever parses, and
//! any bytes at all, go through `to_repr` and `parse` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::pyrepr::{parse, to_repr};

fuzz_target!(|data: &[u8]| {
    // Any bytes: repr, then parse back.
    let repr = to_repr(data);
    assert_eq!(parse(&repr).as_deref(), Ok(data), "{repr}");
    // Any text: parse, then repr and parse back.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = parse(text) {
            assert!(bytes.len() <= text.len());
            assert_eq!(parse(&to_repr(&bytes)), Ok(bytes));
        }
    }
});

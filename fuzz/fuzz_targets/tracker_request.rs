//! Tracker requests (JSON in one frame): parse and validate, then the
//! request's own JSON (with and without the extras) parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::tracker::TrackerRequest;

fuzz_target!(|data: &[u8]| {
    let Ok((request, extras)) = TrackerRequest::parse_with_extras(data) else {
        return;
    };
    let json = request.to_json();
    assert_eq!(
        TrackerRequest::parse(&json).as_ref(),
        Ok(&request),
        "{}",
        String::from_utf8_lossy(&json)
    );
    if let TrackerRequest::Announce(a) = &request {
        let with = extras.add_to(a);
        assert_eq!(
            TrackerRequest::parse_with_extras(&with),
            Ok((request.clone(), extras)),
            "{}",
            String::from_utf8_lossy(&with)
        );
    }
});

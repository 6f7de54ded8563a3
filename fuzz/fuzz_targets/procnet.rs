//! `/proc/net/igmp`, `igmp6`, `mcfilter`, `mcfilter6`: the input is split
//! at NUL bytes into the three texts; each parses (in both byte orders) or
//! fails with a typed error, and whatever parsed joins into per-interface
//! groups.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::procnet::{host_groups, parse_igmp, parse_igmp6, parse_mcfilter, HostOrder};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let igmp_text = parts.next().unwrap_or("");
    let igmp6_text = parts.next().unwrap_or("");
    let filter_text = parts.next().unwrap_or("");
    let igmp = parse_igmp(igmp_text, HostOrder::Little).unwrap_or_default();
    let _ = parse_igmp(igmp_text, HostOrder::Big);
    let igmp6 = parse_igmp6(igmp6_text).unwrap_or_default();
    let filters = parse_mcfilter(filter_text).unwrap_or_default();
    let groups = host_groups(&igmp, &igmp6, &filters);
    assert!(groups.len() <= igmp.len() + igmp6.len() + filters.len());
});

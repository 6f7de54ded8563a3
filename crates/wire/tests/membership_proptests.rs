//! Property tests for the multicast group management formats of `wire`.
//!
//! - Hostile input: arbitrary bytes fed to the IGMP, MLD and IP-header
//!   decoders and arbitrary text fed to the `/proc/net` parsers never panic;
//!   a decoded message never holds more addresses than the datagram had
//!   room for, whatever its count fields claim.
//! - Round trips: every IGMP and MLD message encodes to bytes with a right
//!   checksum that decode back to the same message, also wrapped in an IP
//!   header; flipping any byte of an IGMP message is noticed by the checksum.
//! - The querier election, driven with random queries and clock steps, never
//!   queries while a lower address is querying and always takes over once
//!   the other querier has been silent for the other-querier-present interval.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use wire::igmp::{self, IgmpMessage};
use wire::inet::{self, Decoded};
use wire::membership::{decode_code, GroupRecord, Query, RecordType, SourceQuery, WireAddr};
use wire::mld::{self, MldMessage};
use wire::procnet::{self, HostOrder};
use wire::querier::{Action, Querier, QuerierConfig, Role};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn v4() -> impl Strategy<Value = Ipv4Addr> + Clone {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> + Clone {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn record<A: std::fmt::Debug + Clone + 'static>(
    addr: impl Strategy<Value = A> + Clone,
) -> impl Strategy<Value = GroupRecord<A>> {
    (
        any::<u8>(),
        addr.clone(),
        prop::collection::vec(addr, 0..5),
        0u8..3,
    )
        .prop_map(|(mode, group, sources, aux_words)| GroupRecord {
            mode: RecordType::from_u8(mode),
            group,
            sources,
            aux_words,
        })
}

/// Long-form query fields whose QQI is exactly expressible.
fn source_query<A: std::fmt::Debug + Clone + 'static>(
    addr: impl Strategy<Value = A>,
) -> impl Strategy<Value = SourceQuery<A>> {
    (
        any::<bool>(),
        0u8..8,
        any::<u8>(),
        prop::collection::vec(addr, 0..5),
    )
        .prop_map(|(suppress, qrv, qqic, sources)| SourceQuery {
            suppress,
            qrv,
            qqi_s: decode_code(u16::from(qqic), 4),
            sources,
        })
}

fn igmp_message() -> impl Strategy<Value = IgmpMessage> {
    let query = prop_oneof![
        v4().prop_map(|group| Query {
            version: 1,
            group,
            max_resp_ms: igmp::V1_MAX_RESP_MS,
            v3: None
        }),
        (v4(), 1u32..=255).prop_map(|(group, t)| Query {
            version: 2,
            group,
            max_resp_ms: t * 100,
            v3: None
        }),
        (v4(), any::<u8>(), source_query(v4())).prop_map(|(group, code, v3)| Query {
            version: 3,
            group,
            max_resp_ms: decode_code(u16::from(code), 4) * 100,
            v3: Some(v3)
        }),
    ];
    prop_oneof![
        query.prop_map(IgmpMessage::Query),
        v4().prop_map(|group| IgmpMessage::V1Report { group }),
        v4().prop_map(|group| IgmpMessage::V2Report { group }),
        v4().prop_map(|group| IgmpMessage::V2Leave { group }),
        prop::collection::vec(record(v4()), 0..4)
            .prop_map(|records| IgmpMessage::V3Report { records }),
    ]
}

fn mld_message() -> impl Strategy<Value = MldMessage> {
    let query = prop_oneof![
        (v6(), any::<u16>()).prop_map(|(group, ms)| Query {
            version: 1,
            group,
            max_resp_ms: u32::from(ms),
            v3: None
        }),
        (v6(), any::<u16>(), source_query(v6())).prop_map(|(group, code, v3)| Query {
            version: 2,
            group,
            max_resp_ms: decode_code(code, 12),
            v3: Some(v3)
        }),
    ];
    prop_oneof![
        query.prop_map(MldMessage::Query),
        v6().prop_map(|group| MldMessage::V1Report { group }),
        v6().prop_map(|group| MldMessage::V1Done { group }),
        prop::collection::vec(record(v6()), 0..3)
            .prop_map(|records| MldMessage::V2Report { records }),
    ]
}

/// Addresses a decoded message holds (groups and sources).
fn igmp_addrs(m: &IgmpMessage) -> usize {
    match m {
        IgmpMessage::Query(q) => 1 + q.v3.as_ref().map_or(0, |v| v.sources.len()),
        IgmpMessage::V3Report { records } => records.iter().map(|r| 1 + r.sources.len()).sum(),
        _ => 1,
    }
}

fn mld_addrs(m: &MldMessage) -> usize {
    match m {
        MldMessage::Query(q) => 1 + q.v3.as_ref().map_or(0, |v| v.sources.len()),
        MldMessage::V2Report { records } => records.iter().map(|r| 1 + r.sources.len()).sum(),
        _ => 1,
    }
}

/// Bytes that look like a membership message: a known type first, then
/// anything (so the decoders get past their first checks).
fn near_miss(types: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(types),
        prop::collection::vec(any::<u8>(), 0..120),
    )
        .prop_map(|(t, mut rest)| {
            rest.insert(0, t);
            rest
        })
}

/// An IPv4 packet around `payload`, with a Router Alert option.
fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = (24 + payload.len()) as u16;
    let mut p = vec![0x46, 0xc0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 1, 2, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0x94, 4, 0, 0]);
    p.extend_from_slice(payload);
    p
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn arbitrary_bytes_never_panic_nor_overclaim(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            near_miss(&[0x11, 0x12, 0x16, 0x17, 0x22]),
            near_miss(&[130, 131, 132, 143]),
        ]
    ) {
        if let Ok(m) = igmp::decode(&bytes) {
            prop_assert!(igmp_addrs(&m) * Ipv4Addr::LEN <= bytes.len());
            let _ = m.to_string();
        }
        let _ = igmp::checksum_ok(&bytes);
        if let Ok(m) = mld::decode(&bytes) {
            prop_assert!(mld_addrs(&m) * Ipv6Addr::LEN <= bytes.len());
            let _ = m.to_string();
        }
        let _ = mld::checksum_ok(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, &bytes);
        if let Ok(Some(pkt)) = inet::parse(&bytes) {
            let _ = pkt.checksum_ok();
            let _ = pkt.decode();
        }
    }

    #[test]
    fn arbitrary_ip_headers_never_panic(
        version in prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60]),
        rest in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = rest;
        bytes.insert(0, version);
        if let Ok(Some(pkt)) = inet::parse(&bytes) {
            prop_assert!(pkt.payload.len() <= bytes.len());
            let _ = pkt.decode();
        }
    }

    #[test]
    fn arbitrary_proc_text_never_panics(text in "[0-9a-fA-Fx:V \t\n]{0,300}", any_text in ".{0,200}") {
        for t in [&text, &any_text] {
            let igmp = procnet::parse_igmp(t, HostOrder::NATIVE).unwrap_or_default();
            let igmp6 = procnet::parse_igmp6(t).unwrap_or_default();
            let filters = procnet::parse_mcfilter(t).unwrap_or_default();
            let _ = procnet::host_groups(&igmp, &igmp6, &filters);
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn igmp_round_trips(msg in igmp_message(), src in v4(), dst in v4(), flip in any::<(usize, u8)>()) {
        let bytes = msg.encode();
        prop_assert!(igmp::checksum_ok(&bytes));
        prop_assert_eq!(&igmp::decode(&bytes)?, &msg);
        let packet = ipv4_packet(src, dst, &bytes);
        let pkt = inet::parse(&packet)?.expect("an IGMP packet");
        prop_assert!(pkt.checksum_ok());
        prop_assert_eq!(pkt.decode()?, Decoded::Igmp(msg));
        // Any change of one byte breaks the checksum: a one's complement sum
        // misses a change of a 16-bit word only between 0x0000 and 0xffff,
        // which takes two bytes.
        let (at, x) = flip;
        let mut bad = bytes;
        let at = at % bad.len();
        bad[at] ^= x.max(1);
        prop_assert!(!igmp::checksum_ok(&bad));
    }

    #[test]
    fn mld_round_trips(msg in mld_message(), src in v6(), dst in v6()) {
        let bytes = msg.encode(src, dst);
        prop_assert!(mld::checksum_ok(src, dst, &bytes));
        prop_assert_eq!(mld::decode(&bytes)?, msg);
    }

    #[test]
    fn count_fields_beyond_the_datagram_are_refused(
        records in prop::collection::vec(record(v4()), 1..4),
        extra in 1u16..1000,
    ) {
        let mut bytes = IgmpMessage::V3Report { records: records.clone() }.encode();
        let claimed = (records.len() as u16).saturating_add(extra);
        bytes[6..8].copy_from_slice(&claimed.to_be_bytes());
        prop_assert!(igmp::decode(&bytes).is_err());
    }
}

/// One step of a querier's life.
#[derive(Debug, Clone)]
enum Step {
    /// The clock moves on.
    Wait(Duration),
    /// A query arrives from this address (last octet), with QRV and QQI.
    Hear(u8, u8, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..4000).prop_map(|ms| Step::Wait(Duration::from_millis(ms))),
        (1u8..=20, 0u8..4, 0u8..5).prop_map(|(a, qrv, qqi)| Step::Hear(a, qrv, qqi)),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn querier_election_invariants(
        me in 1u8..=20,
        interval_s in 1u64..5,
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let me = Ipv4Addr::new(10, 0, 0, me);
        let t0 = Instant::now();
        let cfg = QuerierConfig::new(Duration::from_secs(interval_s));
        let mut q = Querier::new(me, cfg, t0);
        let mut now = t0;
        // Until when a lower querier silences us.
        let mut silenced_until: Option<Instant> = None;
        for s in steps {
            match s {
                Step::Wait(d) => now += d,
                Step::Hear(last, qrv, qqi) => {
                    let from = Ipv4Addr::new(10, 0, 0, last);
                    let mut query = cfg.general_query();
                    if let Some(v3) = query.v3.as_mut() {
                        v3.qrv = qrv;
                        v3.qqi_s = u32::from(qqi);
                    }
                    let before = q.role();
                    let action = q.on_query(from, &query, now);
                    if from < me {
                        let silenced = matches!(q.role(), Role::NonQuerier { .. });
                        prop_assert!(silenced);
                        prop_assert_eq!(action.is_some(), before == Role::Querier);
                        silenced_until = Some(q.next_deadline());
                    } else {
                        prop_assert_eq!(action, None);
                        prop_assert_eq!(q.role(), before);
                    }
                }
            }
            while let Some(action) = q.poll(now) {
                match action {
                    Action::SendGeneralQuery => {
                        prop_assert_eq!(q.role(), Role::Querier);
                        if let Some(until) = silenced_until {
                            prop_assert!(now >= until);
                        }
                    }
                    Action::TookOver { .. } => {
                        prop_assert!(silenced_until.is_some_and(|t| now >= t));
                        silenced_until = None;
                    }
                    Action::SteppedDown { .. } => prop_assert!(false, "poll never steps down"),
                }
            }
            prop_assert!(q.next_deadline() > now);
            if silenced_until.is_some_and(|t| now >= t) {
                prop_assert_eq!(q.role(), Role::Querier);
            }
        }
    }
}

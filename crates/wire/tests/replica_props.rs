//! Property tests for tracker replication datagrams ([`wire::replica`]):
//! arbitrary bytes never panic the decoder, every datagram the packers
//! build is at most 1,400 bytes and decodes back to what went in, and a
//! valid datagram with any byte changed is still either refused with a
//! typed error or decoded, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use wire::replica::{
    heartbeat, pack_changes, pack_snapshot, snapshot_request, Body, Datagram, DropCounts,
    PeerRecord, Record, Removal, ReplicaStatus, ReplicationStatus, SnapshotReason, TrackerId,
    MAX_DATAGRAM, MAX_PEER_ID,
};
use wire::InfoHash;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn tracker_id() -> impl Strategy<Value = TrackerId> {
    (1u64..).prop_map(|n| TrackerId::new(n).unwrap())
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ];
    (ip, 1u16..).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

/// Peer ids up to the limit in bytes, any Unicode.
fn peer_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.:]{0,40}",
        any::<String>().prop_map(|mut s| {
            while s.len() > MAX_PEER_ID {
                s.pop();
            }
            s
        }),
    ]
}

fn peer_record() -> impl Strategy<Value = PeerRecord> {
    (
        any::<[u8; 20]>(),
        addr(),
        any::<u32>(),
        tracker_id(),
        any::<bool>(),
        prop::option::of(any::<u32>()),
        peer_id(),
    )
        .prop_map(
            |(swarm, addr, age_ms, origin, seed, proto, peer_id)| PeerRecord {
                swarm: InfoHash(swarm),
                addr,
                age_ms,
                origin,
                seed,
                proto,
                peer_id,
            },
        )
}

fn removal() -> impl Strategy<Value = Removal> {
    (any::<[u8; 20]>(), addr(), any::<u32>()).prop_map(|(swarm, addr, age_ms)| Removal {
        swarm: InfoHash(swarm),
        addr,
        age_ms,
    })
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        peer_record().prop_map(Record::Join),
        peer_record().prop_map(Record::Refresh),
        peer_record().prop_map(Record::Seed),
        removal().prop_map(Record::Leave),
        removal().prop_map(Record::Expire),
    ]
}

fn records_of(datagrams: &[Vec<u8>]) -> Vec<Record> {
    datagrams
        .iter()
        .flat_map(
            |d| match Datagram::decode(d).expect("own datagram decodes").body {
                Body::Changes(r) => r,
                Body::Snapshot(s) => s.records,
                other => panic!("unexpected {other:?}"),
            },
        )
        .collect()
}

/// Any well-formed datagram's bytes.
fn valid_datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            tracker_id(),
            any::<u64>(),
            prop::collection::vec(record(), 0..12)
        )
            .prop_map(|(s, seq, r)| {
                let first = pack_changes(s, seq, &r).0.into_iter().next();
                first.unwrap_or_else(|| heartbeat(s, seq))
            }),
        (tracker_id(), any::<u64>(), any::<bool>()).prop_map(|(s, seq, gap)| {
            let reason = if gap {
                SnapshotReason::Gap
            } else {
                SnapshotReason::Start
            };
            snapshot_request(s, seq, reason)
        }),
        (tracker_id(), any::<u64>()).prop_map(|(s, seq)| heartbeat(s, seq)),
        (
            tracker_id(),
            any::<u64>(),
            prop::collection::vec(peer_record(), 0..12)
        )
            .prop_map(|(s, seq, p)| {
                let joins: Vec<Record> = p.into_iter().map(Record::Join).collect();
                pack_snapshot(s, seq, 1, &joins).0.remove(0)
            }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Datagram::decode(&bytes);
    }

    #[test]
    fn bytes_after_a_valid_header_never_panic(
        kind in 0u8..6,
        rest in prop::collection::vec(any::<u8>(), 0..1400),
    ) {
        let mut d = b"LSRP\x01".to_vec();
        d.push(kind);
        d.extend_from_slice(&rest);
        d.truncate(MAX_DATAGRAM);
        let _ = Datagram::decode(&d);
    }

    #[test]
    fn any_mutation_of_a_valid_datagram_never_panics(
        d in valid_datagram(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut m = d.clone();
        let i = at.index(m.len());
        m[i] = byte;
        let _ = Datagram::decode(&m);
        let _ = Datagram::decode(&d[..cut.index(d.len() + 1)]);
    }

    #[test]
    fn changes_round_trip_within_the_size_limit(
        sender in tracker_id(),
        first in 0u64..u64::MAX / 2,
        records in prop::collection::vec(record(), 0..60),
    ) {
        let (datagrams, bad) = pack_changes(sender, first, &records);
        prop_assert!(bad.is_empty());
        for (i, d) in datagrams.iter().enumerate() {
            prop_assert!(d.len() <= MAX_DATAGRAM, "{} bytes", d.len());
            let decoded = Datagram::decode(d).unwrap();
            prop_assert_eq!(decoded.sender, sender);
            prop_assert_eq!(decoded.seq, first + i as u64);
        }
        prop_assert_eq!(records_of(&datagrams), records);
    }

    #[test]
    fn snapshots_round_trip_within_the_size_limit(
        sender in tracker_id(),
        seq in any::<u64>(),
        number in any::<u32>(),
        peers in prop::collection::vec(peer_record(), 0..60),
    ) {
        let joins: Vec<Record> = peers.into_iter().map(Record::Join).collect();
        let (datagrams, bad) = pack_snapshot(sender, seq, number, &joins);
        prop_assert!(bad.is_empty());
        let parts = datagrams.len();
        for (i, d) in datagrams.iter().enumerate() {
            prop_assert!(d.len() <= MAX_DATAGRAM);
            let decoded = Datagram::decode(d).unwrap();
            prop_assert_eq!(decoded.seq, seq);
            let Body::Snapshot(s) = decoded.body else { panic!("not a snapshot") };
            prop_assert_eq!((s.snapshot, s.part as usize, s.parts as usize), (number, i, parts));
        }
        prop_assert_eq!(records_of(&datagrams), joins);
    }

    #[test]
    fn replication_status_round_trips(
        id in tracker_id(),
        replicas in prop::collection::vec((tracker_id(), addr(), 0u64..1_000_000_000, any::<u64>(), any::<u64>()), 0..4),
        counts in any::<[u64; 5]>(),
    ) {
        let status = ReplicationStatus {
            id,
            group: "239.255.66.66:6666".parse().unwrap(),
            seq: counts[0],
            replicas: replicas
                .into_iter()
                .map(|(id, addr, millis, seq, lag)| ReplicaStatus {
                    id,
                    addr,
                    last_heard_secs: millis as f64 / 1000.0,
                    seq,
                    lag,
                })
                .collect(),
            dropped: DropCounts {
                own: counts[0],
                foreign: counts[1],
                malformed: counts[2],
                oversize: counts[3],
                over_limit: counts[4],
            },
        };
        let json = serde_json::to_string(&status).unwrap();
        prop_assert_eq!(serde_json::from_str::<ReplicationStatus>(&json).unwrap(), status);
    }
}

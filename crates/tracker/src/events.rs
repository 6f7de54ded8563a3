//! The tracker's `--json` events: one enum, one JSON object per line on
//! stdout, tagged on `"event"`.
//!
//! | event | fields |
//! |---|---|
//! | `listening` | `addr`: the bound address |
//! | `http_listening` | `addr`: the web server's bound address (with `--http`), right after `listening` |
//! | `join` | `info_hash`, `peer_id`, `addr`, `seed` (it announced `completed` straight away) |
//! | `seed` | `info_hash`, `peer_id`, `addr`: a leech announced `completed` |
//! | `leave` | `info_hash`, `peer_id`, `addr`: the peer announced `stopped` |
//! | `expire` | `info_hash`, `peer_id`, `addr`: not heard from in twice the interval |
//! | `seed_dropped` | `from`, `reason`, `dropped` (so far): a datagram of the seed's UDP directory (`--seed-udp`) that was not understood, or over a bound |
//! | `shutdown` | `open_connections`: still being finished |
//!
//! With `--replicate`:
//!
//! | event | fields |
//! |---|---|
//! | `replicating` | `id` (this tracker's, 16 hex digits), `group`, `accept` (source ranges) |
//! | `replica_heard` | `id`, `addr`: a tracker heard on the group for the first time |
//! | `replicated` | `info_hash`, `peer_id`, `addr`, `change` (`join`, `seed`, `leave`, `expire`), `via` (the replica's id): a replica's change, applied here |
//! | `snapshot_requested` | `reason` (`start` or `gap`): this tracker asked the group |
//! | `snapshot_sent` | `number`, `peers`, `datagrams`, `millis`: this tracker's registry, sent to the group |
//! | `snapshot_received` | `from`, `addr`, `peers`, `joined` (new here): a replica's snapshot, complete |
//! | `replica_dropped` | `own`, `foreign`, `malformed`, `oversize`, `over_limit`: datagrams (and records) dropped so far; at most once a second, when they changed |
//!
//! `info_hash` is 40 lowercase hex digits; `addr` is `IP:PORT`, the address
//! the tracker lists for the peer. Tests read these lines back into
//! [`Event`] (it derives `Deserialize`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use wire::replica::{DropCounts, SnapshotReason, TrackerId};
use wire::InfoHash;

/// Everything the tracker reports with `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The tracker accepts connections at `addr`.
    Listening { addr: SocketAddr },
    /// The web page and API (`--http`) are served at `addr`.
    HttpListening { addr: SocketAddr },
    /// A new peer.
    Join {
        #[serde(flatten)]
        peer: PeerEvent,
        /// The peer announced `completed` in its first request.
        seed: bool,
    },
    /// A known leech announced `completed`.
    Seed(PeerEvent),
    /// A peer announced `stopped` and was removed.
    Leave(PeerEvent),
    /// A peer was not heard from in twice the interval and was removed.
    Expire(PeerEvent),
    /// `--seed-udp`: a datagram dropped (malformed, or over a bound).
    SeedDropped {
        from: SocketAddr,
        reason: String,
        /// Datagrams and list lines dropped so far.
        dropped: u64,
    },
    /// The tracker stopped accepting; it finishes these connections, then exits.
    Shutdown { open_connections: usize },
    /// Replication is on: this tracker's id, its group, the source ranges
    /// whose datagrams it accepts.
    Replicating {
        id: TrackerId,
        group: SocketAddr,
        accept: Vec<String>,
    },
    /// A tracker heard on the group for the first time (or again after
    /// being forgotten).
    ReplicaHeard { id: TrackerId, addr: SocketAddr },
    /// A replica's change, applied here.
    Replicated {
        #[serde(flatten)]
        peer: PeerEvent,
        change: ReplicaChange,
        /// The replica that sent it.
        via: TrackerId,
    },
    /// This tracker asked the group for snapshots.
    SnapshotRequested { reason: SnapshotReason },
    /// This tracker sent its registry to the group.
    SnapshotSent {
        number: u32,
        peers: usize,
        datagrams: usize,
        millis: u64,
    },
    /// A replica's snapshot arrived whole.
    SnapshotReceived {
        from: TrackerId,
        addr: SocketAddr,
        peers: usize,
        /// Peers new here.
        joined: usize,
    },
    /// Replication datagrams (and records) dropped so far, by reason.
    ReplicaDropped(DropCounts),
}

/// What a replica's change did here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaChange {
    /// A peer new here.
    Join,
    /// A known leech became a seed.
    Seed,
    /// The peer left (on the replica) and was removed here.
    Leave,
    /// The peer expired on the tracker it announced to and was removed here.
    Expire,
}

/// Which peer of which swarm an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEvent {
    #[serde(with = "hex")]
    pub info_hash: InfoHash,
    pub peer_id: String,
    pub addr: SocketAddr,
}

/// Nothing on stdout without `--json`: the log lines on stderr say it all.
impl lanio::events::Event for Event {}

/// An [`InfoHash`] as its 40 hex digits.
mod hex {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use wire::InfoHash;

    pub fn serialize<S: Serializer>(hash: &InfoHash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hash.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<InfoHash, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> TrackerId {
        TrackerId::new(0xab).unwrap()
    }

    fn peer() -> PeerEvent {
        PeerEvent {
            info_hash: InfoHash([0xab; 20]),
            peer_id: "p".into(),
            addr: "127.0.0.1:7001".parse().unwrap(),
        }
    }

    /// The JSON of every event, as the README and scripts know it.
    #[test]
    fn events_keep_their_documented_json() {
        let hash = "ab".repeat(20);
        let cases = [
            (
                Event::Listening {
                    addr: "127.0.0.1:6666".parse().unwrap(),
                },
                json!({"event": "listening", "addr": "127.0.0.1:6666"}),
            ),
            (
                Event::HttpListening {
                    addr: "127.0.0.1:8080".parse().unwrap(),
                },
                json!({"event": "http_listening", "addr": "127.0.0.1:8080"}),
            ),
            (
                Event::Join {
                    peer: peer(),
                    seed: false,
                },
                json!({"event": "join", "info_hash": hash, "peer_id": "p",
                       "addr": "127.0.0.1:7001", "seed": false}),
            ),
            (
                Event::Seed(peer()),
                json!({"event": "seed", "info_hash": hash, "peer_id": "p", "addr": "127.0.0.1:7001"}),
            ),
            (
                Event::Leave(peer()),
                json!({"event": "leave", "info_hash": hash, "peer_id": "p", "addr": "127.0.0.1:7001"}),
            ),
            (
                Event::Expire(peer()),
                json!({"event": "expire", "info_hash": hash, "peer_id": "p", "addr": "127.0.0.1:7001"}),
            ),
            (
                Event::Shutdown {
                    open_connections: 3,
                },
                json!({"event": "shutdown", "open_connections": 3}),
            ),
            (
                Event::Replicating {
                    id: id(),
                    group: "239.255.66.66:6666".parse().unwrap(),
                    accept: vec!["10.77.0.0/24".into()],
                },
                json!({"event": "replicating", "id": "00000000000000ab",
                       "group": "239.255.66.66:6666", "accept": ["10.77.0.0/24"]}),
            ),
            (
                Event::ReplicaHeard {
                    id: id(),
                    addr: "10.77.0.2:6666".parse().unwrap(),
                },
                json!({"event": "replica_heard", "id": "00000000000000ab", "addr": "10.77.0.2:6666"}),
            ),
            (
                Event::Replicated {
                    peer: peer(),
                    change: ReplicaChange::Join,
                    via: id(),
                },
                json!({"event": "replicated", "info_hash": hash, "peer_id": "p",
                       "addr": "127.0.0.1:7001", "change": "join", "via": "00000000000000ab"}),
            ),
            (
                Event::SnapshotRequested {
                    reason: SnapshotReason::Gap,
                },
                json!({"event": "snapshot_requested", "reason": "gap"}),
            ),
            (
                Event::SnapshotSent {
                    number: 2,
                    peers: 10,
                    datagrams: 1,
                    millis: 3,
                },
                json!({"event": "snapshot_sent", "number": 2, "peers": 10, "datagrams": 1, "millis": 3}),
            ),
            (
                Event::SnapshotReceived {
                    from: id(),
                    addr: "10.77.0.2:6666".parse().unwrap(),
                    peers: 10,
                    joined: 4,
                },
                json!({"event": "snapshot_received", "from": "00000000000000ab",
                       "addr": "10.77.0.2:6666", "peers": 10, "joined": 4}),
            ),
            (
                Event::ReplicaDropped(DropCounts {
                    own: 1,
                    foreign: 2,
                    malformed: 3,
                    oversize: 4,
                    over_limit: 5,
                }),
                json!({"event": "replica_dropped", "own": 1, "foreign": 2, "malformed": 3,
                       "oversize": 4, "over_limit": 5}),
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(serde_json::to_value(&event).unwrap(), expected);
            let line = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
        }
    }

    #[test]
    fn a_bad_info_hash_does_not_decode() {
        let line = r#"{"event":"seed","info_hash":"xyz","peer_id":"p","addr":"127.0.0.1:1"}"#;
        assert!(serde_json::from_str::<Event>(line).is_err());
    }
}

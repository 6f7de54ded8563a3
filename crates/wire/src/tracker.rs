//! Tracker messages: UTF-8 JSON, one per frame.
//!
//! Requests are parsed by hand from a [`serde_json::Value`] so that every
//! problem gets a typed [`RequestError`] naming the key at fault, which the
//! tracker turns into `error_code: 1`. Unknown keys are ignored.
//!
//! Request keys: `port` (1–65535, required), `peer_id` (string, required),
//! `ip` (dotted quad), `event` (`started` | `completed` | `stopped`; absent
//! means a periodic refresh), and ours: `info_hash` (40 hex), `numwant`,
//! `proto`, `name` (chat rooms: the member's name, 1–64 bytes without
//! control characters; see [`crate::chat`]), `left` and `downloaded` (bytes;
//! optional, the seed's peers omit them). A request `{"request":"status"}`
//! asks for the tracker's swarms.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chat::{validate_name, NameError};
use crate::ids::InfoHash;
use crate::replica::{ReplicationStatus, TrackerId};

/// Longest string value accepted in a request.
pub const MAX_STRING_LEN: usize = 256;

/// Announce events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Started,
    Completed,
    Stopped,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Completed => "completed",
            Event::Stopped => "stopped",
        }
    }
}

/// A peer's announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub port: u16,
    pub ip: Option<Ipv4Addr>,
    pub peer_id: String,
    /// `None` is a periodic refresh.
    pub event: Option<Event>,
    /// `None` means the tracker's default swarm.
    pub info_hash: Option<InfoHash>,
    pub numwant: Option<u32>,
    /// Peer-wire version; `None` for the seed's original protocol.
    pub proto: Option<u32>,
    /// Bytes the peer still lacks; `None` when it does not say.
    pub left: Option<u64>,
    /// Bytes the peer has downloaded since it started; `None` when it does not say.
    pub downloaded: Option<u64>,
}

/// The announce keys only some clients send, kept apart from
/// [`AnnounceRequest`] so that clients which never send them build their
/// requests as before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceExtras {
    /// A chat member's name ([`validate_name`]).
    pub name: Option<String>,
}

/// Anything a client may ask a tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerRequest {
    Announce(AnnounceRequest),
    Status,
}

/// Why a tracker request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("bad JSON: {0}")]
    BadJson(String),
    #[error("request must be a JSON object")]
    NotAnObject,
    #[error("missing required key '{0}'")]
    Missing(&'static str),
    #[error("key '{key}' must be {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    #[error("key 'port' must be between 1 and 65535, got {0}")]
    BadPort(i128),
    #[error("key 'ip' must be a dotted-quad IPv4 address, got {0:?}")]
    BadIp(String),
    #[error("key 'info_hash' must be 40 hexadecimal characters, got {0:?}")]
    BadInfoHash(String),
    #[error("key 'event' must be started, completed or stopped, got {0:?}")]
    UnknownEvent(String),
    #[error("key '{key}' is longer than {MAX_STRING_LEN} bytes")]
    TooLong { key: &'static str },
    #[error("unknown request {0:?}")]
    UnknownRequest(String),
    #[error("key 'name' {0}")]
    BadName(NameError),
}

fn get_str<'a>(
    obj: &'a Map<String, Value>,
    key: &'static str,
) -> Result<Option<&'a str>, RequestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > MAX_STRING_LEN => Err(RequestError::TooLong { key }),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RequestError::WrongType {
            key,
            expected: "a string",
        }),
    }
}

fn get_uint(obj: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, RequestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(RequestError::WrongType {
            key,
            expected: "a non-negative integer",
        }),
        Some(_) => Err(RequestError::WrongType {
            key,
            expected: "a non-negative integer",
        }),
    }
}

impl TrackerRequest {
    /// Parses and validates one request frame.
    pub fn parse(body: &[u8]) -> Result<TrackerRequest, RequestError> {
        Self::parse_with_extras(body).map(|(request, _)| request)
    }

    /// Parses and validates one request frame, with the keys of
    /// [`AnnounceExtras`] (empty for a status request).
    pub fn parse_with_extras(
        body: &[u8],
    ) -> Result<(TrackerRequest, AnnounceExtras), RequestError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| RequestError::BadJson(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(RequestError::NotAnObject);
        };
        match get_str(&obj, "request")? {
            None | Some("announce") => {}
            Some("status") => return Ok((TrackerRequest::Status, AnnounceExtras::default())),
            Some(other) => return Err(RequestError::UnknownRequest(other.to_string())),
        }
        let announce = AnnounceRequest::from_object(&obj)?;
        Ok((
            TrackerRequest::Announce(announce),
            AnnounceExtras::from_object(&obj)?,
        ))
    }

    /// The JSON body of this request.
    pub fn to_json(&self) -> Vec<u8> {
        match self {
            TrackerRequest::Status => br#"{"request":"status"}"#.to_vec(),
            TrackerRequest::Announce(a) => a.to_json(),
        }
    }
}

impl AnnounceRequest {
    fn from_object(obj: &Map<String, Value>) -> Result<AnnounceRequest, RequestError> {
        let port = match obj.get("port") {
            None | Some(Value::Null) => return Err(RequestError::Missing("port")),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(p) if (1..=65535).contains(&p) => p as u16,
                Some(p) => return Err(RequestError::BadPort(p as i128)),
                None => match n.as_u64() {
                    Some(p) => return Err(RequestError::BadPort(p as i128)),
                    None => {
                        return Err(RequestError::WrongType {
                            key: "port",
                            expected: "an integer",
                        })
                    }
                },
            },
            Some(_) => {
                return Err(RequestError::WrongType {
                    key: "port",
                    expected: "an integer",
                })
            }
        };
        let ip = match get_str(obj, "ip")? {
            None => None,
            Some(s) => Some(
                s.parse::<Ipv4Addr>()
                    .map_err(|_| RequestError::BadIp(s.to_string()))?,
            ),
        };
        let peer_id = get_str(obj, "peer_id")?
            .ok_or(RequestError::Missing("peer_id"))?
            .to_string();
        let event = match get_str(obj, "event")? {
            None | Some("") => None,
            Some("started") => Some(Event::Started),
            Some("completed") => Some(Event::Completed),
            Some("stopped") => Some(Event::Stopped),
            Some(other) => return Err(RequestError::UnknownEvent(other.to_string())),
        };
        let info_hash = match get_str(obj, "info_hash")? {
            None => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|_| RequestError::BadInfoHash(s.to_string()))?,
            ),
        };
        let clamp = |v: Option<u64>| v.map(|n| n.min(u32::MAX as u64) as u32);
        Ok(AnnounceRequest {
            port,
            ip,
            peer_id,
            event,
            info_hash,
            numwant: clamp(get_uint(obj, "numwant")?),
            proto: clamp(get_uint(obj, "proto")?),
            left: get_uint(obj, "left")?,
            downloaded: get_uint(obj, "downloaded")?,
        })
    }

    /// The JSON body, with optional keys left out when unset.
    pub fn to_json(&self) -> Vec<u8> {
        let mut obj = Map::new();
        obj.insert("port".into(), self.port.into());
        if let Some(ip) = self.ip {
            obj.insert("ip".into(), ip.to_string().into());
        }
        obj.insert("peer_id".into(), self.peer_id.clone().into());
        if let Some(e) = self.event {
            obj.insert("event".into(), e.as_str().into());
        }
        if let Some(h) = self.info_hash {
            obj.insert("info_hash".into(), h.to_hex().into());
        }
        if let Some(n) = self.numwant {
            obj.insert("numwant".into(), n.into());
        }
        if let Some(p) = self.proto {
            obj.insert("proto".into(), p.into());
        }
        if let Some(n) = self.left {
            obj.insert("left".into(), n.into());
        }
        if let Some(n) = self.downloaded {
            obj.insert("downloaded".into(), n.into());
        }
        serde_json::to_vec(&Value::Object(obj)).expect("a JSON map always serialises")
    }
}

impl AnnounceExtras {
    fn from_object(obj: &Map<String, Value>) -> Result<AnnounceExtras, RequestError> {
        let name = get_str(obj, "name")?
            .map(|n| validate_name(n).map(|()| n.to_string()))
            .transpose()
            .map_err(RequestError::BadName)?;
        Ok(AnnounceExtras { name })
    }

    /// `request`'s JSON body with these keys added.
    pub fn add_to(&self, request: &AnnounceRequest) -> Vec<u8> {
        let mut obj: Map<String, Value> =
            serde_json::from_slice(&request.to_json()).expect("our own JSON reads back");
        if let Some(name) = &self.name {
            obj.insert("name".into(), name.clone().into());
        }
        serde_json::to_vec(&Value::Object(obj)).expect("a JSON map always serialises")
    }
}

/// One entry of a tracker's peer list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    #[serde(rename = "peer-id")]
    pub peer_id: String,
    #[serde(rename = "peer-ip")]
    pub peer_ip: String,
    #[serde(rename = "peer-port")]
    pub peer_port: u16,
    /// Present when that peer announced a peer-wire version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u32>,
}

/// The tracker's answer to an announce (and the shape of its error replies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceResponse {
    /// 0 for OK, 1 for an error.
    pub error_code: u8,
    /// "started ACK", "disconnect ACK", … or the error text.
    pub message: String,
    #[serde(rename = "num-of-peer", default)]
    pub num_of_peer: u32,
    #[serde(default)]
    pub peers: Vec<PeerEntry>,
    /// Seconds between refreshes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

impl AnnounceResponse {
    /// An error reply (error_code 1) carrying `message`.
    pub fn error(message: impl Into<String>) -> Self {
        AnnounceResponse {
            error_code: 1,
            message: message.into(),
            num_of_peer: 0,
            peers: Vec::new(),
            interval: None,
        }
    }

    pub fn is_error(&self) -> bool {
        self.error_code != 0
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("response always serialises")
    }

    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// A peer as shown by `tracker status`: its list entry, plus whether it is a
/// seed, when it was last heard from and, when it says, its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusPeer {
    #[serde(flatten)]
    pub entry: PeerEntry,
    pub seed: bool,
    pub last_seen_secs: f64,
    /// The tracker it announced to, when the tracker replicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker: Option<TrackerId>,
    /// The name a chat member announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Bytes the peer still lacks, as it last announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<u64>,
    /// Bytes the peer has downloaded, as it last announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded: Option<u64>,
}

/// One swarm as shown by `tracker status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmStatus {
    pub info_hash: String,
    pub file_name: Option<String>,
    pub peers: Vec<StatusPeer>,
}

/// A member of a chat room, as a tracker that hears of rooms shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomMember {
    /// `IP:PORT`.
    pub addr: String,
    /// The name the member chats under.
    pub name: String,
    pub last_seen_secs: f64,
}

/// A chat room, as a tracker that hears of rooms shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomStatus {
    /// The room's name (for multicast chat, its group address).
    pub name: String,
    pub members: Vec<RoomMember>,
}

/// Another tracker this one replicates with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// `IP:PORT`.
    pub addr: String,
    pub last_seen_secs: f64,
    /// Peers it reported, over all swarms.
    pub peers: u64,
}

/// A tracker's counters: what it served, refused and dropped since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackerStats {
    /// Announces answered (good ones; bad requests are counted apart).
    pub announces: u64,
    /// Announces per second over the last second.
    pub announces_per_sec: f64,
    /// Requests answered with `error_code: 1` (bad JSON, a bad key, …).
    pub bad_requests: u64,
    /// Connections closed for an oversize or truncated frame.
    pub bad_frames: u64,
    /// Connections refused because `--max-connections` were open (or, on
    /// newer trackers, `--max-connections-per-ip` from that address).
    pub connections_refused: u64,
    /// Announces refused by a bound or the allow-list (too many swarms or
    /// peers, in all or from one IP; a swarm not served), or for an address
    /// another peer id holds.
    #[serde(default)]
    pub announces_refused: u64,
    /// Connections closed at their age or request cap, to be reopened.
    #[serde(default)]
    pub connections_recycled: u64,
    /// Connections closed for sending no request, or taking no reply, in time.
    pub timeouts: u64,
    /// Web event-stream subscribers refused because the cap was reached.
    pub subscribers_refused: u64,
    /// Web clients dropped for falling behind: an event stream too far
    /// behind, or a client that took no data for the idle timeout.
    pub subscribers_dropped: u64,
}

/// How much a tracker holds, beside a listing that may show only part of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusTotals {
    /// Swarms held.
    pub swarms: u64,
    /// Peers held, over all swarms.
    pub peers: u64,
    /// Whether the listing leaves some swarms or peers out (it is bounded).
    pub truncated: bool,
}

/// The answer to `{"request":"status"}`. `rooms`, `replicas` and `stats`
/// are left out when the tracker has none (older trackers never send them).
/// The listing is bounded: `totals` says how much the tracker holds and
/// whether some was left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub swarms: Vec<SwarmStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<RoomStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<TrackerStats>,
    /// Present when the tracker replicates (`--replicate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
    /// What the tracker holds in all (absent from older trackers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<StatusTotals>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TrackerRequest, RequestError> {
        TrackerRequest::parse(s.as_bytes())
    }

    #[test]
    fn seed_request_parses() {
        let r = parse(
            r#"{"port": 6881, "ip": "10.0.0.2", "peer_id": "10.0.0.2:6881", "event": "started"}"#,
        )
        .unwrap();
        let TrackerRequest::Announce(a) = r else {
            panic!()
        };
        assert_eq!(a.port, 6881);
        assert_eq!(a.ip, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(a.event, Some(Event::Started));
        assert_eq!(a.info_hash, None);
        assert_eq!(a.proto, None);
    }

    #[test]
    fn ours_and_unknown_keys() {
        let h = "ab".repeat(20);
        let r = parse(&format!(
            r#"{{"port":1,"peer_id":"x","info_hash":"{h}","numwant":7,"proto":1,"whatever":[1]}}"#
        ))
        .unwrap();
        let TrackerRequest::Announce(a) = r else {
            panic!()
        };
        assert_eq!(a.event, None);
        assert_eq!(a.numwant, Some(7));
        assert_eq!(a.proto, Some(1));
        assert_eq!(a.info_hash.unwrap().to_hex(), h);
        assert_eq!(
            parse(r#"{"request":"status"}"#).unwrap(),
            TrackerRequest::Status
        );
    }

    #[test]
    fn progress_keys_are_optional() {
        let TrackerRequest::Announce(old) = parse(r#"{"port":1,"peer_id":"x"}"#).unwrap() else {
            panic!()
        };
        assert_eq!((old.left, old.downloaded), (None, None));
        assert!(!String::from_utf8(old.to_json()).unwrap().contains("left"));
        let big = u64::MAX;
        let body = format!(r#"{{"port":1,"peer_id":"x","left":{big},"downloaded":0}}"#);
        let TrackerRequest::Announce(ours) = parse(&body).unwrap() else {
            panic!()
        };
        assert_eq!((ours.left, ours.downloaded), (Some(big), Some(0)));
        let again = TrackerRequest::parse(&ours.to_json()).unwrap();
        assert_eq!(again, TrackerRequest::Announce(ours));
        for bad in [r#""left":-1"#, r#""left":"9""#, r#""downloaded":1.5"#] {
            let err = parse(&format!(r#"{{"port":1,"peer_id":"x",{bad}}}"#)).unwrap_err();
            assert!(
                matches!(err, RequestError::WrongType { key, .. } if bad.contains(key)),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn every_bad_input_has_its_error() {
        use RequestError::*;
        let long = "x".repeat(300);
        let cases: Vec<(String, RequestError)> = vec![
            ("{not json".into(), BadJson(String::new())),
            ("[1,2]".into(), NotAnObject),
            (r#"{"peer_id":"a"}"#.into(), Missing("port")),
            (r#"{"port":1}"#.into(), Missing("peer_id")),
            (
                r#"{"port":"80","peer_id":"a"}"#.into(),
                WrongType {
                    key: "port",
                    expected: "an integer",
                },
            ),
            (
                r#"{"port":1.5,"peer_id":"a"}"#.into(),
                WrongType {
                    key: "port",
                    expected: "an integer",
                },
            ),
            (r#"{"port":0,"peer_id":"a"}"#.into(), BadPort(0)),
            (r#"{"port":65536,"peer_id":"a"}"#.into(), BadPort(65536)),
            (r#"{"port":-1,"peer_id":"a"}"#.into(), BadPort(-1)),
            (
                r#"{"port":1,"peer_id":7}"#.into(),
                WrongType {
                    key: "peer_id",
                    expected: "a string",
                },
            ),
            (
                r#"{"port":1,"peer_id":"a","ip":"1.2.3"}"#.into(),
                BadIp("1.2.3".into()),
            ),
            (
                r#"{"port":1,"peer_id":"a","info_hash":"zz"}"#.into(),
                BadInfoHash("zz".into()),
            ),
            (
                r#"{"port":1,"peer_id":"a","event":"paused"}"#.into(),
                UnknownEvent("paused".into()),
            ),
            (
                format!(r#"{{"port":1,"peer_id":"{long}"}}"#),
                TooLong { key: "peer_id" },
            ),
            (
                r#"{"port":1,"peer_id":"a","numwant":-3}"#.into(),
                WrongType {
                    key: "numwant",
                    expected: "a non-negative integer",
                },
            ),
            (
                r#"{"request":"reboot"}"#.into(),
                UnknownRequest("reboot".into()),
            ),
        ];
        for (input, expected) in cases {
            let got = parse(&input).unwrap_err();
            match (&got, &expected) {
                (BadJson(_), BadJson(_)) => {}
                _ => assert_eq!(got, expected, "input {input}"),
            }
            // Every message names what is wrong.
            assert!(!got.to_string().is_empty());
        }
        assert!(parse(r#"{"port":"80","peer_id":"a"}"#)
            .unwrap_err()
            .to_string()
            .contains("'port'"));
    }

    #[test]
    fn name_key_is_checked_and_optional() {
        let (_, extras) =
            TrackerRequest::parse_with_extras(br#"{"port":1,"peer_id":"x","name":"ann"}"#).unwrap();
        assert_eq!(extras.name.as_deref(), Some("ann"));
        let (req, none) =
            TrackerRequest::parse_with_extras(br#"{"port":1,"peer_id":"x"}"#).unwrap();
        assert_eq!(none, AnnounceExtras::default());
        let TrackerRequest::Announce(req) = req else {
            panic!()
        };
        let body = extras.add_to(&req);
        let (again, back) = TrackerRequest::parse_with_extras(&body).unwrap();
        assert_eq!((again, back), (TrackerRequest::Announce(req), extras));
        for bad in [
            r#"{"port":1,"peer_id":"x","name":""}"#,
            r#"{"port":1,"peer_id":"x","name":"a\u001b"}"#,
            r#"{"port":1,"peer_id":"x","name":7}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.to_string().contains("'name'"), "{bad}: {err}");
        }
        let long = format!(r#"{{"port":1,"peer_id":"x","name":"{}"}}"#, "n".repeat(65));
        assert_eq!(
            parse(&long),
            Err(RequestError::BadName(NameError::TooLong(65)))
        );
    }

    #[test]
    fn response_uses_seed_key_names() {
        let resp = AnnounceResponse {
            error_code: 0,
            message: "started ACK".into(),
            num_of_peer: 1,
            peers: vec![PeerEntry {
                peer_id: "p".into(),
                peer_ip: "127.0.0.1".into(),
                peer_port: 5,
                proto: None,
            }],
            interval: Some(60),
        };
        let json = String::from_utf8(resp.to_json()).unwrap();
        assert!(json.contains(r#""num-of-peer":1"#), "{json}");
        assert!(json.contains(r#""peer-ip":"127.0.0.1""#), "{json}");
        assert!(!json.contains("proto"), "{json}");
        assert_eq!(AnnounceResponse::parse(json.as_bytes()).unwrap(), resp);
    }
}

//! Announcing a chat member to its trackers and reading the room's list.
//!
//! A member announces to every `--tracker` at once: the room's swarm
//! ([`wire::chat::room_hash`]), its port, `peer_id` and `name` both its
//! name, `proto` [`CHAT_PROTO`]. Each tracker gets one request on a fresh
//! connection (one frame each way, bounded by [`TIMEOUT`]). The lists are
//! merged: entries with a `proto` are chat members (their `peer-id` is
//! their name), entries without are the seed's UDP clients.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;
use wire::chat::{room_hash, CHAT_PROTO};
use wire::tracker::{AnnounceExtras, AnnounceRequest, AnnounceResponse, Event};

/// Longest wait for one tracker's answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply read from a tracker.
const MAX_REPLY: u64 = 1 << 20;
/// Peers asked for (the tracker's own maximum).
const NUMWANT: u32 = 200;

/// Why one announce failed.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("tracker {tracker} refused us: {message}")]
    Refused { tracker: String, message: String },
    #[error("cannot reach tracker {tracker}: {source}")]
    Io {
        tracker: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tracker {tracker} sent a bad reply: {reason}")]
    BadReply { tracker: String, reason: String },
    #[error("tracker {tracker} did not answer within {TIMEOUT:?}")]
    Timeout { tracker: String },
}

/// The room as the trackers list it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Chat members by name.
    pub members: BTreeMap<String, SocketAddr>,
    /// The seed's UDP clients.
    pub seed_clients: BTreeSet<SocketAddrV4>,
    /// The shortest refresh interval any tracker asked for.
    pub interval: Option<Duration>,
}

impl Listing {
    fn add(&mut self, reply: AnnounceResponse) {
        for entry in reply.peers {
            let Ok(ip) = entry.peer_ip.parse::<IpAddr>() else {
                continue;
            };
            match (entry.proto, ip) {
                (Some(_), ip) => {
                    let addr = SocketAddr::new(ip, entry.peer_port);
                    self.members.insert(entry.peer_id, addr);
                }
                (None, IpAddr::V4(v4)) => {
                    self.seed_clients
                        .insert(SocketAddrV4::new(v4, entry.peer_port));
                }
                (None, IpAddr::V6(_)) => {}
            }
        }
        if let Some(secs) = reply.interval {
            let interval = Duration::from_secs(secs.max(1));
            self.interval = Some(self.interval.map_or(interval, |i| i.min(interval)));
        }
    }
}

/// One member's registration with its trackers.
#[derive(Debug, Clone)]
pub struct Directory {
    pub trackers: Vec<String>,
    name: String,
    room: String,
    port: u16,
}

impl Directory {
    pub fn new(trackers: Vec<String>, name: &str, room: &str, port: u16) -> Self {
        Directory {
            trackers,
            name: name.to_string(),
            room: room.to_string(),
            port,
        }
    }

    /// The same registration with only these trackers.
    pub fn only(&self, trackers: Vec<String>) -> Directory {
        Directory {
            trackers,
            ..self.clone()
        }
    }

    fn body(&self, event: Option<Event>) -> Vec<u8> {
        let request = AnnounceRequest {
            port: self.port,
            ip: None,
            peer_id: self.name.clone(),
            event,
            info_hash: Some(room_hash(&self.room)),
            numwant: Some(NUMWANT),
            proto: Some(CHAT_PROTO),
            left: None,
            downloaded: None,
        };
        let extras = AnnounceExtras {
            name: Some(self.name.clone()),
        };
        extras.add_to(&request)
    }

    /// Announces to every tracker at once: the merged list, the trackers
    /// that answered, and the errors of the others.
    pub async fn announce(
        &self,
        event: Option<Event>,
    ) -> (Listing, Vec<String>, Vec<AnnounceError>) {
        let body = self.body(event);
        let replies = futures::future::join_all(
            self.trackers
                .iter()
                .map(|tracker| ask(tracker.clone(), &body)),
        )
        .await;
        let mut listing = Listing::default();
        let mut answered = Vec::new();
        let mut errors = Vec::new();
        for (tracker, reply) in self.trackers.iter().zip(replies) {
            match reply {
                Ok(reply) => {
                    listing.add(reply);
                    answered.push(tracker.clone());
                }
                Err(e) => errors.push(e),
            }
        }
        listing.members.remove(&self.name);
        (listing, answered, errors)
    }
}

/// One request to one tracker, on a fresh connection.
async fn ask(tracker: String, body: &[u8]) -> Result<AnnounceResponse, AnnounceError> {
    let exchange = async {
        let io = |source| AnnounceError::Io {
            tracker: tracker.clone(),
            source,
        };
        let mut stream = TcpStream::connect(&tracker).await.map_err(io)?;
        lanio::frame::write_frame_async(&mut stream, body)
            .await
            .map_err(io)?;
        let bad = |reason: String| AnnounceError::BadReply {
            tracker: tracker.clone(),
            reason,
        };
        let frame = lanio::frame::read_frame_async(&mut stream, MAX_REPLY)
            .await
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("closed without answering".into()))?;
        let reply = AnnounceResponse::parse(&frame).map_err(|e| bad(e.to_string()))?;
        if reply.is_error() {
            return Err(AnnounceError::Refused {
                tracker: tracker.clone(),
                message: lanio::escape::escape_str(&reply.message),
            });
        }
        Ok(reply)
    };
    timeout(TIMEOUT, exchange).await.unwrap_or_else(|_| {
        Err(AnnounceError::Timeout {
            tracker: tracker.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::tracker::PeerEntry;

    #[test]
    fn chat_members_and_seed_clients_are_told_apart() {
        let entry = |id: &str, ip: &str, port, proto| PeerEntry {
            peer_id: id.into(),
            peer_ip: ip.into(),
            peer_port: port,
            proto,
        };
        let mut listing = Listing::default();
        listing.add(AnnounceResponse {
            error_code: 0,
            message: "started ACK".into(),
            num_of_peer: 3,
            peers: vec![
                entry("bob", "127.0.0.1", 7001, Some(1)),
                entry("127.0.0.1:4242", "127.0.0.1", 4242, None),
                entry("junk", "not an ip", 1, Some(1)),
            ],
            interval: Some(30),
        });
        listing.add(AnnounceResponse {
            interval: Some(2),
            peers: vec![entry("carol", "10.0.0.2", 7002, Some(1))],
            ..AnnounceResponse::error("")
        });
        assert_eq!(listing.members.keys().collect::<Vec<_>>(), ["bob", "carol"]);
        assert_eq!(
            listing.seed_clients.iter().collect::<Vec<_>>(),
            [&"127.0.0.1:4242".parse::<SocketAddrV4>().unwrap()]
        );
        assert_eq!(listing.interval, Some(Duration::from_secs(2)));
    }

    #[test]
    fn the_announce_names_the_room_and_the_member() {
        let dir = Directory::new(vec![], "ann", "lobby", 7000);
        let body: serde_json::Value = serde_json::from_slice(&dir.body(None)).unwrap();
        assert_eq!(body["name"], "ann");
        assert_eq!(body["peer_id"], "ann");
        assert_eq!(body["port"], 7000);
        assert_eq!(body["proto"], CHAT_PROTO);
        assert_eq!(body["info_hash"], room_hash("lobby").to_hex());
    }
}

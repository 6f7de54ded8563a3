//! One request frame in, one reply frame out. Sans-IO.
//!
//! [`Tracker`] parses a request with [`wire::tracker::TrackerRequest::parse`],
//! decides which address to list for the peer (the TCP source IP with the
//! announced port; the `ip` key only from a source in `--trust-ip-from`, the
//! relays the operator names), applies it to the [`Registry`] and renders
//! the reply. Bad input becomes an `error_code: 1` reply naming the
//! problem; it never ends the connection. So does a `name` another live
//! member of the swarm holds, and an announce the registry refuses (a bound,
//! the allow-list, an address another peer id holds: [`Refusal`]).
//! Announces and bad requests are counted in the tracker's [`Counters`].
//! When the tracker replicates, every change is also queued for the group
//! ([`Link`]).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wire::tracker::{AnnounceResponse, Event, StatusResponse, TrackerRequest};
use wire::InfoHash;

use lanio::Cidr;

use crate::registry::{Announce, Change, Departed, Limits, Refusal, Registry};
use crate::replicator::Link;
use crate::stats::{Count, Counters};

/// A registry change worth reporting (join, leave, seed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub change: Change,
    pub swarm: InfoHash,
    pub peer_id: String,
    pub addr: SocketAddr,
}

/// The result of handling one request.
#[derive(Debug)]
pub struct Handled {
    /// The reply frame's body (JSON).
    pub reply: Vec<u8>,
    pub note: Option<Note>,
}

/// The tracker's shared state: the registry plus the reply policy.
pub struct Tracker {
    registry: Mutex<Registry>,
    counters: Arc<Counters>,
    interval_secs: u64,
    /// Sources whose `ip` field is believed.
    trust_ip_from: Vec<Cidr>,
    /// Lock order: never hold the registry while locking this.
    replication: Option<Arc<Link>>,
}

impl Tracker {
    /// A tracker telling peers to refresh every `interval`; peers expire
    /// after twice that. `trust_ip_field` believes every source's `ip`
    /// field (the deprecated `--trust-ip-field`); see [`Tracker::trusting`].
    pub fn new(registry_default: InfoHash, interval: Duration, trust_ip_field: bool) -> Self {
        let everyone = [
            Cidr::new([0, 0, 0, 0].into(), 0),
            Cidr::new([0u16; 8].into(), 0),
        ];
        Tracker {
            registry: Mutex::new(Registry::new(registry_default, interval * 2)),
            counters: Arc::default(),
            interval_secs: interval.as_secs().max(1),
            trust_ip_from: if trust_ip_field {
                everyone.into_iter().flatten().collect()
            } else {
                Vec::new()
            },
            replication: None,
        }
    }

    /// Also believes the `ip` field of requests from these ranges (relays).
    pub fn trusting(mut self, relays: &[Cidr]) -> Self {
        self.trust_ip_from.extend_from_slice(relays);
        self
    }

    /// Bounds what the registry may hold.
    pub fn with_limits(self, limits: Limits) -> Self {
        self.registry().set_limits(limits);
        self
    }

    /// Whether requests from `ip` may name the address to list.
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trust_ip_from.iter().any(|c| c.contains(ip))
    }

    /// Shares every change with the replicas through `link`.
    pub fn with_replication(mut self, link: Arc<Link>) -> Self {
        let id = link.state().id();
        self.registry
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .set_tracker_id(id);
        self.replication = Some(link);
        self
    }

    /// Locks the registry (a poisoned lock is still usable: no update leaves
    /// it half-done).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters this tracker keeps.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Every swarm with its peers, and the counters. The registry is locked
    /// only to copy the peers; sorting and rendering happen after.
    pub fn status(&self, now: Instant) -> StatusResponse {
        let snapshot = self.registry().snapshot(now);
        let mut status = snapshot.into_status();
        status.stats = Some(self.counters.snapshot());
        if let Some(link) = &self.replication {
            status.replication = Some(link.state().status(now));
        }
        status
    }

    /// Drops expired peers.
    pub fn expire(&self, now: Instant) -> Vec<Departed> {
        let gone = self.registry().expire(now);
        if let Some(link) = &self.replication {
            link.record_expired(&gone);
        }
        gone
    }

    /// Answers one request frame from a connection whose source is `src`.
    pub fn handle(&self, body: &[u8], src: SocketAddr, now: Instant) -> Handled {
        let (request, extras) = match TrackerRequest::parse_with_extras(body) {
            Ok(r) => r,
            Err(e) => {
                self.counters.add(Count::BadRequest);
                return Handled {
                    reply: AnnounceResponse::error(e.to_string()).to_json(),
                    note: None,
                };
            }
        };
        let a = match request {
            TrackerRequest::Status => {
                let status = self.status(now);
                return Handled {
                    reply: serde_json::to_vec(&status).expect("status always serialises"),
                    note: None,
                };
            }
            TrackerRequest::Announce(a) => a,
        };
        let ip = match a.ip {
            Some(ip) if self.trusts(src.ip()) => IpAddr::V4(ip),
            _ => src.ip().to_canonical(),
        };
        let announce = Announce {
            swarm: a.info_hash,
            addr: SocketAddr::new(ip, a.port),
            peer_id: &a.peer_id,
            event: a.event,
            numwant: a.numwant,
            proto: a.proto,
            name: extras.name.as_deref(),
            left: a.left,
            downloaded: a.downloaded,
        };
        self.counters.add(Count::Announce);
        let outcome = self.registry().announce(&announce, now, &mut rand::rng());
        if let Some(link) = &self.replication {
            link.record_announce(&announce, &outcome, now);
        }
        if let Change::Refused(why) = outcome.change {
            self.counters.add(Count::AnnounceRefused);
            return refused(why, announce.addr);
        }
        if outcome.change == Change::NameTaken {
            let name = extras.name.as_deref().unwrap_or_default();
            return Handled {
                reply: AnnounceResponse::error(format!(
                    "key 'name': {name:?} is held by another live member of this swarm"
                ))
                .to_json(),
                note: None,
            };
        }
        let message = match a.event {
            Some(Event::Stopped) => "disconnect ACK",
            Some(Event::Completed) => "completed ACK",
            _ => "started ACK",
        };
        let reply = ok_reply(message, outcome.others, &outcome.peers, self.interval_secs);
        let addr = announce.addr;
        let note = match outcome.change {
            Change::Refreshed | Change::Absent | Change::NameTaken => None,
            change => Some(Note {
                change,
                swarm: outcome.swarm,
                peer_id: a.peer_id,
                addr,
            }),
        };
        Handled { reply, note }
    }
}

/// The error reply to an announce the registry refused.
fn refused(why: Refusal, addr: SocketAddr) -> Handled {
    let message = match why {
        Refusal::AddressHeld => format!("{addr}: {why}"),
        _ => why.to_string(),
    };
    Handled {
        reply: AnnounceResponse::error(message).to_json(),
        note: None,
    }
}

/// Renders an `error_code: 0` reply around pre-rendered peer entries. The
/// shape is [`AnnounceResponse`]'s.
fn ok_reply(message: &str, others: usize, peers: &[Arc<str>], interval: u64) -> Vec<u8> {
    let size = 96 + peers.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let _ = write!(
        out,
        r#"{{"error_code":0,"message":"{message}","num-of-peer":{others},"peers":["#
    );
    for (i, peer) in peers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(peer.as_bytes());
    }
    let _ = write!(out, r#"],"interval":{interval}}}"#);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::tracker::{PeerEntry, StatusResponse};

    fn tracker(trust: bool) -> Tracker {
        Tracker::new(InfoHash::default(), Duration::from_secs(60), trust)
    }

    fn src(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn ask(t: &Tracker, body: &str, from: u16) -> AnnounceResponse {
        AnnounceResponse::parse(&t.handle(body.as_bytes(), src(from), Instant::now()).reply)
            .expect("reply is an AnnounceResponse")
    }

    #[test]
    fn reply_matches_the_wire_type() {
        let t = tracker(false);
        ask(
            &t,
            r#"{"port":7001,"peer_id":"a","event":"started","proto":1}"#,
            50000,
        );
        let r = ask(
            &t,
            r#"{"port":7002,"peer_id":"b","event":"started"}"#,
            50001,
        );
        assert_eq!(r.error_code, 0);
        assert_eq!(r.message, "started ACK");
        assert_eq!(r.num_of_peer, 1);
        assert_eq!(r.interval, Some(60));
        assert_eq!(
            r.peers,
            vec![PeerEntry {
                peer_id: "a".into(),
                peer_ip: "127.0.0.1".into(),
                peer_port: 7001,
                proto: Some(1),
            }]
        );
        let bye = ask(
            &t,
            r#"{"port":7002,"peer_id":"b","event":"stopped"}"#,
            50002,
        );
        assert_eq!(bye.message, "disconnect ACK");
        assert_eq!(bye.num_of_peer, 1);
        let done = ask(
            &t,
            r#"{"port":7001,"peer_id":"a","event":"completed"}"#,
            50003,
        );
        assert_eq!(done.message, "completed ACK");
    }

    #[test]
    fn ip_field_ignored_unless_trusted() {
        let body = r#"{"port":7001,"peer_id":"a","ip":"10.9.8.7"}"#;
        for (trust, expected) in [(false, "127.0.0.1"), (true, "10.9.8.7")] {
            let t = tracker(trust);
            let h = t.handle(body.as_bytes(), src(40000), Instant::now());
            assert_eq!(h.note.unwrap().addr.ip().to_string(), expected);
            let r = ask(&t, r#"{"port":7002,"peer_id":"b"}"#, 40001);
            assert_eq!(r.peers[0].peer_ip, expected, "trust={trust}");
        }
    }

    #[test]
    fn ip_field_believed_only_from_named_relays() {
        let relay: Cidr = "127.0.0.0/24".parse().unwrap();
        let t = tracker(false).trusting(&[relay]);
        let body = br#"{"port":7001,"peer_id":"a","ip":"10.9.8.7"}"#;
        let relayed = t.handle(body, src(1), Instant::now());
        assert_eq!(relayed.note.unwrap().addr.ip().to_string(), "10.9.8.7");
        let stranger: SocketAddr = "127.0.1.5:4000".parse().unwrap();
        let direct = t.handle(body, stranger, Instant::now());
        assert_eq!(direct.note.unwrap().addr.ip().to_string(), "127.0.1.5");
    }

    #[test]
    fn refusals_are_errors_that_say_why() {
        let t = tracker(false);
        ask(&t, r#"{"port":7001,"peer_id":"a"}"#, 1);
        let r = ask(&t, r#"{"port":7001,"peer_id":"b","event":"stopped"}"#, 2);
        assert_eq!(r.error_code, 1);
        assert!(r.message.contains("127.0.0.1:7001"), "{}", r.message);
        assert!(r.message.contains("another peer id"), "{}", r.message);
        let t = tracker(false).with_limits(Limits {
            max_peers_per_ip: 1,
            ..Limits::default()
        });
        ask(&t, r#"{"port":7001,"peer_id":"a"}"#, 1);
        let r = ask(&t, r#"{"port":7002,"peer_id":"b"}"#, 1);
        assert!(r.message.contains("at most 1 per IP"), "{}", r.message);
        assert_eq!(t.counters().snapshot().announces_refused, 1);
    }

    #[test]
    fn bad_requests_get_error_code_1_naming_the_key() {
        let t = tracker(false);
        for (body, needle) in [
            ("{oops", "JSON"),
            (r#"{"peer_id":"a"}"#, "'port'"),
            (r#"{"port":0,"peer_id":"a"}"#, "'port'"),
            (r#"{"port":1,"peer_id":"a","event":"paused"}"#, "'event'"),
        ] {
            let r = ask(&t, body, 1);
            assert_eq!(r.error_code, 1, "{body}");
            assert!(r.message.contains(needle), "{body}: {}", r.message);
        }
    }

    #[test]
    fn status_request_lists_swarms() {
        let t = tracker(false);
        ask(&t, r#"{"port":7001,"peer_id":"a"}"#, 1);
        let h = t.handle(br#"{"request":"status"}"#, src(2), Instant::now());
        let status: StatusResponse = serde_json::from_slice(&h.reply).unwrap();
        assert_eq!(status.swarms.len(), 1);
        assert_eq!(status.swarms[0].peers[0].entry.peer_port, 7001);
    }

    #[test]
    fn a_taken_name_is_refused_naming_the_key() {
        let t = tracker(false);
        let ann = r#"{"port":7001,"peer_id":"ann","name":"ann"}"#;
        assert_eq!(ask(&t, ann, 1).error_code, 0);
        let r = ask(&t, r#"{"port":7002,"peer_id":"x","name":"ann"}"#, 2);
        assert_eq!(r.error_code, 1);
        assert!(r.message.contains("key 'name'"), "{}", r.message);
        let h = t.handle(br#"{"request":"status"}"#, src(3), Instant::now());
        let status: StatusResponse = serde_json::from_slice(&h.reply).unwrap();
        assert_eq!(status.swarms[0].peers.len(), 1);
        assert_eq!(status.swarms[0].peers[0].name.as_deref(), Some("ann"));
        let bad = ask(&t, r#"{"port":7003,"peer_id":"x","name":"a\u0007"}"#, 4);
        assert!(bad.message.contains("key 'name'"), "{}", bad.message);
    }

    #[test]
    fn announces_and_bad_requests_are_counted_and_listed() {
        let t = tracker(false);
        ask(
            &t,
            r#"{"port":7001,"peer_id":"a","left":5,"downloaded":7}"#,
            1,
        );
        ask(&t, r#"{"port":7001,"peer_id":"a"}"#, 1);
        ask(&t, "{oops", 1);
        ask(&t, r#"{"port":0,"peer_id":"a"}"#, 1);
        let status = t.status(Instant::now());
        let stats = status.stats.expect("the tracker lists its counters");
        assert_eq!((stats.announces, stats.bad_requests), (2, 2));
        let peer = &status.swarms[0].peers[0];
        assert_eq!((peer.left, peer.downloaded), (Some(5), Some(7)));
    }

    #[test]
    fn mapped_ipv6_source_is_listed_as_ipv4() {
        let t = tracker(false);
        let mapped: SocketAddr = "[::ffff:10.0.0.5]:4000".parse().unwrap();
        let h = t.handle(br#"{"port":7001,"peer_id":"a"}"#, mapped, Instant::now());
        assert_eq!(h.note.unwrap().addr.to_string(), "10.0.0.5:7001");
    }
}

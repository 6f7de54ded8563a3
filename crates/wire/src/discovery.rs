//! LAN peer discovery: BitTorrent's Local Service Discovery (BEP 14).
//!
//! A peer multicasts, for the swarms it is in, a datagram shaped like an
//! HTTP request:
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: 0123456789abcdef0123456789abcdef01234567\r\n
//! Infohash: …\r\n
//! cookie: 5f3a9c\r\n
//! \r\n
//! \r\n
//! ```
//!
//! to 239.192.152.143:6771 (and `[ff15::efc0:988f]:6771` over IPv6). `Port`
//! is the sender's peer port; its address is the datagram's source. Header
//! names are case-insensitive, unknown headers are ignored, and the
//! `cookie` lets a peer recognise (and ignore) its own datagrams.
//!
//! [`Announce`] is the datagram; [`Discovery`] is the sans-IO state machine
//! that decides when to announce, answers searches by unicast, guards
//! against floods and keeps a bounded table of peers found.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use crate::ids::InfoHash;

/// The IPv4 group and port of BEP 14.
pub const LSD_V4: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 192, 152, 143), 6771);
/// The IPv6 group and port of BEP 14 (site-local scope).
pub const LSD_V6: SocketAddrV6 = SocketAddrV6::new(
    Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f),
    6771,
    0,
    0,
);
/// Largest datagram we send or read.
pub const MAX_DATAGRAM: usize = 1400;
/// Most info hashes one datagram carries (more are ignored).
pub const MAX_HASHES: usize = 32;
/// Longest cookie we accept.
pub const MAX_COOKIE: usize = 64;

const REQUEST_LINE: &str = "BT-SEARCH * HTTP/1.1";

/// Why a datagram is not a discovery announce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("datagram of {0} bytes is larger than {MAX_DATAGRAM}")]
    TooLarge(usize),
    #[error("not UTF-8 text")]
    NotText,
    #[error("the first line is not `BT-SEARCH * HTTP/1.1`")]
    NotSearch,
    #[error("a header line has no `:`")]
    BadHeader,
    #[error("no Port header")]
    MissingPort,
    #[error("Port {0:?} is not a port number (1-65535)")]
    BadPort(String),
    #[error("no valid Infohash header")]
    NoInfohash,
}

/// One BT-SEARCH datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The sender's peer (TCP) port.
    pub port: u16,
    /// The swarms it is in, or searches.
    pub info_hashes: Vec<InfoHash>,
    /// A token the sender puts in all its datagrams.
    pub cookie: Option<String>,
}

impl Announce {
    /// The datagram, addressed (`Host`) to `host`, e.g. `239.192.152.143:6771`.
    /// At most [`MAX_HASHES`] hashes are written.
    pub fn encode(&self, host: &str) -> Vec<u8> {
        let mut s = format!("{REQUEST_LINE}\r\nHost: {host}\r\nPort: {}\r\n", self.port);
        for h in self.info_hashes.iter().take(MAX_HASHES) {
            s.push_str(&format!("Infohash: {}\r\n", h.to_hex()));
        }
        if let Some(cookie) = &self.cookie {
            s.push_str(&format!("cookie: {cookie}\r\n"));
        }
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    /// Parses a datagram. Invalid `Infohash` lines are skipped; hashes past
    /// [`MAX_HASHES`] are ignored; an overlong cookie is dropped.
    pub fn parse(bytes: &[u8]) -> Result<Announce, DiscoveryError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(DiscoveryError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| DiscoveryError::NotText)?;
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        if lines.next().map(str::trim) != Some(REQUEST_LINE) {
            return Err(DiscoveryError::NotSearch);
        }
        let (mut port, mut info_hashes, mut cookie) = (None, Vec::new(), None);
        for line in lines {
            if line.trim().is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or(DiscoveryError::BadHeader)?;
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "port" => {
                    port = Some(
                        value
                            .parse::<u16>()
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or_else(|| {
                                DiscoveryError::BadPort(value.chars().take(16).collect())
                            })?,
                    )
                }
                "infohash" if info_hashes.len() < MAX_HASHES => {
                    if let Ok(h) = value.parse::<InfoHash>() {
                        if !info_hashes.contains(&h) {
                            info_hashes.push(h);
                        }
                    }
                }
                "cookie" if value.len() <= MAX_COOKIE => cookie = Some(value.to_string()),
                _ => {}
            }
        }
        let port = port.ok_or(DiscoveryError::MissingPort)?;
        if info_hashes.is_empty() {
            return Err(DiscoveryError::NoInfohash);
        }
        Ok(Announce {
            port,
            info_hashes,
            cookie,
        })
    }
}

/// Timing and bounds of [`Discovery`].
#[derive(Debug, Clone, Copy)]
pub struct DiscoveryConfig {
    /// How often each swarm is announced (BEP 14: 5 minutes).
    pub interval: Duration,
    /// The least time between two multicast announces (BEP 14: 1 minute).
    pub min_gap: Duration,
    /// The least time between two unicast answers to one source.
    pub answer_gap: Duration,
    /// Datagrams handled per second in all; the rest are dropped and counted.
    pub max_per_second: u32,
    /// Datagrams handled per second from one source address, so that one
    /// flooding host cannot crowd out the others.
    pub max_per_source: u32,
    /// Peers remembered per swarm and source address (distinct ports), so
    /// that one host's forged announces take few places.
    pub max_ports_per_source: usize,
    /// Peers remembered per swarm (oldest forgotten first).
    pub max_peers_per_swarm: usize,
    /// Sources remembered for answer pacing.
    pub max_sources: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            interval: Duration::from_secs(300),
            min_gap: Duration::from_secs(60),
            answer_gap: Duration::from_secs(10),
            max_per_second: 2000,
            max_per_source: 20,
            max_ports_per_source: 4,
            max_peers_per_swarm: 256,
            max_sources: 1024,
        }
    }
}

/// What [`Discovery`] asks its driver to do or to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryEvent {
    /// Multicast this datagram on every interface.
    Multicast(Announce),
    /// Send this datagram to one peer's discovery socket (an answer).
    Unicast(SocketAddr, Announce),
    /// A peer of one of our swarms, new to the table.
    Discovered {
        addr: SocketAddr,
        info_hash: InfoHash,
    },
}

/// Counters of what was received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    pub received: u64,
    pub own: u64,
    pub malformed: u64,
    pub flood_dropped: u64,
    pub foreign_swarm: u64,
}

/// The discovery state of one peer process: its swarms, when each is due,
/// the peers found, and the flood guard. Sans-IO: the driver feeds it
/// datagrams and the time, and sends what it returns.
#[derive(Debug)]
pub struct Discovery {
    config: DiscoveryConfig,
    port: u16,
    cookie: String,
    /// Our swarms and when each is next due to be announced.
    swarms: HashMap<InfoHash, Instant>,
    last_multicast: Option<Instant>,
    /// Peers found per swarm, oldest first.
    found: HashMap<InfoHash, VecDeque<SocketAddr>>,
    /// When each source was last answered, oldest first.
    answered: VecDeque<(SocketAddr, Instant)>,
    /// The flood guard: the current one-second window and its count, in
    /// all and per source address (bounded by `max_sources`).
    window: (Option<Instant>, u32),
    per_source: HashMap<IpAddr, u32>,
    events: VecDeque<DiscoveryEvent>,
    stats: DiscoveryStats,
}

impl Discovery {
    /// Discovery for a peer listening on `port`, marking its datagrams
    /// with `cookie`.
    pub fn new(port: u16, cookie: String, config: DiscoveryConfig) -> Discovery {
        Discovery {
            config,
            port,
            cookie,
            swarms: HashMap::new(),
            last_multicast: None,
            found: HashMap::new(),
            answered: VecDeque::new(),
            window: (None, 0),
            per_source: HashMap::new(),
            events: VecDeque::new(),
            stats: DiscoveryStats::default(),
        }
    }

    /// Joins a swarm: it is announced at the next opportunity.
    pub fn add_swarm(&mut self, info_hash: InfoHash, now: Instant) {
        self.swarms.entry(info_hash).or_insert(now);
    }

    /// Counters so far.
    pub fn stats(&self) -> DiscoveryStats {
        self.stats
    }

    fn announce(&self, info_hashes: Vec<InfoHash>) -> Announce {
        Announce {
            port: self.port,
            info_hashes,
            cookie: Some(self.cookie.clone()),
        }
    }

    /// Whether a multicast may go out now (the gap since the last one).
    fn may_multicast(&self, now: Instant) -> bool {
        self.last_multicast
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.min_gap)
    }

    /// When [`Discovery::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let due = self.swarms.values().min().copied()?;
        Some(match self.last_multicast {
            Some(t) => due.max(t + self.config.min_gap),
            None => due,
        })
    }

    /// Sends the announces that are due, all due swarms in one datagram.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.may_multicast(now) {
            return;
        }
        let mut due: Vec<InfoHash> = self
            .swarms
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(h, _)| *h)
            .collect();
        if due.is_empty() {
            return;
        }
        due.sort_by_key(|h| h.0);
        due.truncate(MAX_HASHES);
        for h in &due {
            self.swarms.insert(*h, now + self.config.interval);
        }
        self.last_multicast = Some(now);
        self.events
            .push_back(DiscoveryEvent::Multicast(self.announce(due)));
    }

    /// Takes in one datagram from `src`.
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, bytes: &[u8]) {
        self.stats.received += 1;
        if !self.admit(now, src.ip()) {
            self.stats.flood_dropped += 1;
            return;
        }
        let Ok(announce) = Announce::parse(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        if announce.cookie.as_deref() == Some(self.cookie.as_str()) {
            self.stats.own += 1;
            return;
        }
        let ours: Vec<InfoHash> = announce
            .info_hashes
            .iter()
            .filter(|h| self.swarms.contains_key(h))
            .copied()
            .collect();
        if ours.is_empty() {
            self.stats.foreign_swarm += 1;
            return;
        }
        let peer = SocketAddr::new(src.ip(), announce.port);
        let mut new_to_us = false;
        let max_ports = self.config.max_ports_per_source;
        for h in &ours {
            let table = self.found.entry(*h).or_default();
            let from_source = table.iter().filter(|a| a.ip() == peer.ip()).count();
            if !table.contains(&peer) && from_source < max_ports {
                if table.len() >= self.config.max_peers_per_swarm {
                    table.pop_front();
                }
                table.push_back(peer);
                new_to_us = true;
                self.events.push_back(DiscoveryEvent::Discovered {
                    addr: peer,
                    info_hash: *h,
                });
            }
        }
        // A newcomer learns of us at once, by unicast, paced per source.
        if new_to_us && self.may_answer(src, now) {
            self.events
                .push_back(DiscoveryEvent::Unicast(src, self.announce(ours)));
        }
    }

    /// The flood guard: whether a datagram from `ip` is handled, within the
    /// total and the per-source budgets of the current second.
    fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let fresh = self
            .window
            .0
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window = (Some(now), 0);
            self.per_source.clear();
        }
        if self.window.1 >= self.config.max_per_second {
            return false;
        }
        if !self.per_source.contains_key(&ip) && self.per_source.len() >= self.config.max_sources {
            return false;
        }
        let n = self.per_source.entry(ip).or_insert(0);
        if *n >= self.config.max_per_source {
            return false;
        }
        *n += 1;
        self.window.1 += 1;
        true
    }

    fn may_answer(&mut self, src: SocketAddr, now: Instant) -> bool {
        let gap = self.config.answer_gap;
        while self
            .answered
            .front()
            .is_some_and(|&(_, t)| now.saturating_duration_since(t) >= gap)
        {
            self.answered.pop_front();
        }
        if self.answered.iter().any(|&(a, _)| a == src) {
            return false;
        }
        if self.answered.len() >= self.config.max_sources {
            self.answered.pop_front();
        }
        self.answered.push_back((src, now));
        true
    }

    /// The next thing to do or know, if any.
    pub fn poll_event(&mut self) -> Option<DiscoveryEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    #[test]
    fn encode_and_parse_round_trip_with_several_hashes() {
        let a = Announce {
            port: 6881,
            info_hashes: vec![h(1), h(2)],
            cookie: Some("abc".into()),
        };
        let bytes = a.encode("239.192.152.143:6771");
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text
            .starts_with("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!(Announce::parse(&bytes).unwrap(), a);
    }

    #[test]
    fn parse_is_lenient_where_bep14_peers_differ_and_strict_where_it_matters() {
        let other_client = b"BT-SEARCH * HTTP/1.1\nhost: x\nPORT: 51413\nx-unknown: 1\ninfohash: 0101010101010101010101010101010101010101\nInfohash: nothex\n\n";
        let a = Announce::parse(other_client).unwrap();
        assert_eq!((a.port, a.info_hashes, a.cookie), (51413, vec![h(1)], None));
        for (bad, err) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], DiscoveryError::NotSearch),
            (b"BT-SEARCH * HTTP/1.1\r\nInfohash: 0101010101010101010101010101010101010101\r\n\r\n", DiscoveryError::MissingPort),
            (b"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\n\r\n", DiscoveryError::BadPort("0".into())),
            (b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n", DiscoveryError::NoInfohash),
            (b"BT-SEARCH * HTTP/1.1\r\nnocolon\r\n\r\n", DiscoveryError::BadHeader),
            (b"\xff\xfe", DiscoveryError::NotText),
        ] {
            assert_eq!(Announce::parse(bad), Err(err));
        }
        assert_eq!(
            Announce::parse(&[b'a'; 2000]),
            Err(DiscoveryError::TooLarge(2000))
        );
    }

    #[test]
    fn announces_at_start_then_every_interval_never_closer_than_the_gap() {
        let t0 = Instant::now();
        let mut d = Discovery::new(7000, "me".into(), DiscoveryConfig::default());
        d.add_swarm(h(1), t0);
        assert_eq!(d.poll_timeout(), Some(t0));
        d.handle_timeout(t0);
        let Some(DiscoveryEvent::Multicast(a)) = d.poll_event() else {
            panic!()
        };
        assert_eq!(a.info_hashes, vec![h(1)]);
        // A second swarm joined right after waits for the one-minute gap,
        // then both that are due share one datagram.
        d.add_swarm(h(2), t0 + Duration::from_secs(1));
        d.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(d.poll_event(), None);
        assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        d.handle_timeout(t0 + Duration::from_secs(60));
        let Some(DiscoveryEvent::Multicast(a)) = d.poll_event() else {
            panic!()
        };
        assert_eq!(a.info_hashes, vec![h(2)]);
        assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_secs(300)));
        d.handle_timeout(t0 + Duration::from_secs(300));
        let Some(DiscoveryEvent::Multicast(a)) = d.poll_event() else {
            panic!()
        };
        assert_eq!(a.info_hashes, vec![h(1)]);
    }

    #[test]
    fn a_newcomer_is_discovered_and_answered_once_own_and_foreign_are_ignored() {
        let t0 = Instant::now();
        let mut d = Discovery::new(7000, "me".into(), DiscoveryConfig::default());
        d.add_swarm(h(1), t0);
        let src: SocketAddr = "10.0.0.2:6771".parse().unwrap();
        let theirs = Announce {
            port: 7001,
            info_hashes: vec![h(1), h(9)],
            cookie: Some("them".into()),
        };
        d.handle_datagram(t0, src, &theirs.encode("g"));
        assert_eq!(
            d.poll_event(),
            Some(DiscoveryEvent::Discovered {
                addr: "10.0.0.2:7001".parse().unwrap(),
                info_hash: h(1)
            })
        );
        let Some(DiscoveryEvent::Unicast(to, answer)) = d.poll_event() else {
            panic!()
        };
        assert_eq!(
            (to, answer.info_hashes, answer.port),
            (src, vec![h(1)], 7000)
        );
        // Again: already known, no answer.
        d.handle_datagram(t0, src, &theirs.encode("g"));
        assert_eq!(d.poll_event(), None);
        // Our own datagram and a foreign swarm change nothing.
        let own = Announce {
            port: 7000,
            info_hashes: vec![h(1)],
            cookie: Some("me".into()),
        };
        d.handle_datagram(t0, src, &own.encode("g"));
        let foreign = Announce {
            port: 1,
            info_hashes: vec![h(8)],
            cookie: None,
        };
        d.handle_datagram(t0, src, &foreign.encode("g"));
        d.handle_datagram(t0, src, b"junk");
        assert_eq!(d.poll_event(), None);
        let s = d.stats();
        assert_eq!(
            (s.own, s.foreign_swarm, s.malformed, s.received),
            (1, 1, 1, 5)
        );
    }

    #[test]
    fn one_flooding_source_cannot_crowd_out_another_or_fill_the_table() {
        let t0 = Instant::now();
        let mut d = Discovery::new(7000, "me".into(), DiscoveryConfig::default());
        d.add_swarm(h(1), t0);
        let flooder: SocketAddr = "10.0.0.66:6771".parse().unwrap();
        for port in 1..=10_000u16 {
            let forged = Announce {
                port,
                info_hashes: vec![h(1)],
                cookie: None,
            };
            d.handle_datagram(t0, flooder, &forged.encode("g"));
        }
        let honest = Announce {
            port: 7005,
            info_hashes: vec![h(1)],
            cookie: None,
        };
        d.handle_datagram(t0, "10.0.0.5:6771".parse().unwrap(), &honest.encode("g"));
        let mut found = Vec::new();
        while let Some(e) = d.poll_event() {
            if let DiscoveryEvent::Discovered { addr, .. } = e {
                found.push(addr);
            }
        }
        assert_eq!(found.iter().filter(|a| a.ip() == flooder.ip()).count(), 4);
        assert!(
            found.contains(&"10.0.0.5:7005".parse().unwrap()),
            "{found:?}"
        );
        assert_eq!(d.stats().flood_dropped, 10_000 - 20);
    }

    #[test]
    fn floods_are_dropped_and_the_table_stays_bounded() {
        let t0 = Instant::now();
        let config = DiscoveryConfig {
            max_per_second: 100,
            max_peers_per_swarm: 8,
            ..Default::default()
        };
        let mut d = Discovery::new(7000, "me".into(), config);
        d.add_swarm(h(1), t0);
        for i in 0..1000u32 {
            let src = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6771));
            let a = Announce {
                port: 7001,
                info_hashes: vec![h(1)],
                cookie: None,
            };
            d.handle_datagram(t0, src, &a.encode("g"));
        }
        assert_eq!(d.stats().flood_dropped, 900);
        while d.poll_event().is_some() {}
        assert!(d.found[&h(1)].len() <= 8);
        assert!(d.answered.len() <= config.max_sources);
        // The next second's window takes datagrams again.
        let a = Announce {
            port: 7002,
            info_hashes: vec![h(1)],
            cookie: None,
        };
        d.handle_datagram(
            t0 + Duration::from_secs(1),
            "10.9.9.9:6771".parse().unwrap(),
            &a.encode("g"),
        );
        assert!(matches!(
            d.poll_event(),
            Some(DiscoveryEvent::Discovered { .. })
        ));
    }
}

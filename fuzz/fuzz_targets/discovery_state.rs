//! The discovery state machine, fed an arbitrary sequence of datagrams
//! (well-formed announces of a few swarms from a few sources, and raw
//! bytes), new swarms and the passing of time. No panic; the counters add
//! up; every event is sensible (a discovered peer is of one of our swarms);
//! and the state stays bounded by the configuration, whatever is received.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wire::discovery::{Announce, Discovery, DiscoveryConfig, DiscoveryEvent};
use wire::InfoHash;

#[derive(Arbitrary, Debug)]
enum Op {
    /// An announce of swarms (by small number) from source `src`.
    Announce {
        src: u8,
        src_port: u16,
        port: u16,
        swarms: Vec<u8>,
        own_cookie: bool,
    },
    /// Raw bytes from source `src`.
    Raw {
        src: u8,
        bytes: Vec<u8>,
    },
    AddSwarm(u8),
    /// Time passes (milliseconds), then the timers fire.
    Tick(u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_per_second: u8,
    max_per_source: u8,
    max_ports_per_source: u8,
    max_peers_per_swarm: u8,
    max_sources: u8,
    ops: Vec<Op>,
}

fn hash(n: u8) -> InfoHash {
    InfoHash([n % 8; 20])
}

fn source(n: u8, port: u16) -> SocketAddr {
    let ip = if n & 0x80 == 0 {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    } else {
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(n)))
    };
    SocketAddr::new(ip, port)
}

fuzz_target!(|input: Input| {
    let config = DiscoveryConfig {
        interval: Duration::from_secs(300),
        min_gap: Duration::from_secs(60),
        answer_gap: Duration::from_secs(10),
        max_per_second: u32::from(input.max_per_second),
        max_per_source: u32::from(input.max_per_source),
        max_ports_per_source: usize::from(input.max_ports_per_source % 8),
        max_peers_per_swarm: usize::from(input.max_peers_per_swarm % 16).max(1),
        max_sources: usize::from(input.max_sources % 16),
    };
    let cookie = "me".to_string();
    let mut d = Discovery::new(6881, cookie.clone(), config);
    let mut now = Instant::now();
    let mut ours: Vec<InfoHash> = Vec::new();
    let mut received = 0u64;
    for op in input.ops {
        match op {
            Op::Announce {
                src,
                src_port,
                port,
                swarms,
                own_cookie,
            } => {
                let a = Announce {
                    port,
                    info_hashes: swarms.iter().map(|&s| hash(s)).collect(),
                    cookie: own_cookie.then(|| cookie.clone()),
                };
                d.handle_datagram(now, source(src, src_port), &a.encode("host"));
                received += 1;
            }
            Op::Raw { src, bytes } => {
                d.handle_datagram(now, source(src, 6771), &bytes);
                received += 1;
            }
            Op::AddSwarm(n) => {
                d.add_swarm(hash(n), now);
                if !ours.contains(&hash(n)) {
                    ours.push(hash(n));
                }
            }
            Op::Tick(ms) => {
                now += Duration::from_millis(u64::from(ms));
                d.handle_timeout(now);
            }
        }
        if let Some(t) = d.poll_timeout() {
            if t <= now {
                d.handle_timeout(now);
            }
        }
        let mut events = 0;
        while let Some(e) = d.poll_event() {
            events += 1;
            match e {
                DiscoveryEvent::Discovered { addr, info_hash } => {
                    assert!(ours.contains(&info_hash));
                    assert_ne!(addr.port(), 0);
                }
                DiscoveryEvent::Multicast(a) | DiscoveryEvent::Unicast(_, a) => {
                    assert_eq!(a.port, 6881);
                    assert!(!a.info_hashes.is_empty());
                    assert!(a.info_hashes.iter().all(|h| ours.contains(h)));
                    assert_eq!(Announce::parse(&a.encode("h")).as_ref(), Ok(&a));
                }
            }
        }
        // One datagram finds at most one peer per swarm, plus an answer and
        // a due multicast.
        assert!(events <= 8 + 2, "{events} events for one step");
        let s = d.stats();
        assert_eq!(s.received, received);
        assert!(s.own + s.malformed + s.flood_dropped + s.foreign_swarm <= s.received);
        // Bounded state: our 8 swarms, each with a bounded peer table, and
        // bounded source tables.
        let size = format!("{d:?}").len();
        assert!(size < 64 * 1024, "discovery state of {size} bytes");
    }
});

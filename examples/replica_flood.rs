//! Benchmark: a replicating tracker under a flood of hostile datagrams.
//!
//! Two namespace hosts on a bridge. Host 0 runs `tracker --replicate`;
//! host 1, inside the accepted range, sends well-formed changes datagrams
//! full of joins of fresh peers: all but the last 1,000 from one sender,
//! its peers in 64 swarms and "announced to" 40 trackers (the peer bounds
//! fill up), the last 1,000 each from a fresh random sender id, each peer
//! in a fresh swarm and "announced to" a fresh random tracker (the replica,
//! origin and swarm bounds are reached), then garbage. It prints the tracker's resident memory after the flood next to
//! the same tracker empty, the peers it ended up holding, and what it
//! counted as dropped: the bounds (16 replicas, 32 origin trackers, 65,536
//! peers per origin, 131,072 replicated peers, 16,384 swarms) must cap it.
//!
//! Needs root and the release `tracker` binary:
//!
//! ```text
//! cargo build --release -p tracker
//! sudo target/release/examples/replica_flood [DATAGRAMS]   # default 200000
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lanswarm::netns::{is_root, Lan, LanOptions};
use lanswarm::tracker_client::Client;
use lanswarm::tracker_lab::start_tracker_on;
use rand::Rng;
use tracker::replication::DEFAULT_GROUP;
use tracker::Event;
use wire::replica::{pack_changes, PeerRecord, Record, TrackerId};
use wire::tracker::{StatusResponse, TrackerRequest};
use wire::InfoHash;

/// The tracker's resident set and its peak, in KiB, from /proc.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One datagram of 14 joins of random peers in random swarms, from
/// `sender` (random when `None`), each peer announced to one of `origins`
/// trackers (random ones when `None`).
fn hostile(rng: &mut impl Rng, sender: Option<u64>, origins: Option<u64>) -> Vec<u8> {
    let mut id = |fixed: Option<u64>| {
        TrackerId::new(fixed.unwrap_or_else(|| rng.random_range(1..=u64::MAX))).unwrap()
    };
    let sender_fixed = sender.is_some();
    let sender = id(sender);
    let records: Vec<Record> = (0..14)
        .map(|_| {
            Record::Join(PeerRecord {
                // Fixed senders fill 64 swarms; random ones make new swarms.
                swarm: match sender_fixed {
                    true => InfoHash([rng.random_range(0..64u8); 20]),
                    false => InfoHash(rng.random()),
                },
                addr: SocketAddr::from((rng.random::<[u8; 4]>(), rng.random_range(1..=u16::MAX))),
                age_ms: 0,
                origin: TrackerId::new(match origins {
                    Some(n) => 1 + rng.random_range(0..n),
                    None => rng.random_range(1..=u64::MAX),
                })
                .unwrap(),
                seed: false,
                proto: Some(1),
                peer_id: format!("{:040x}", rng.random::<u128>()),
            })
        })
        .collect();
    pack_changes(sender, rng.random_range(1..1000), &records)
        .0
        .remove(0)
}

fn main() -> ExitCode {
    if !is_root() {
        eprintln!("replica_flood needs root (network namespaces)");
        return ExitCode::from(2);
    }
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let lan = Lan::new(2, LanOptions::default()).expect("test LAN");
    let mut tracker = start_tracker_on(lan.host(0), "tracker", &[]);
    let pid = tracker.proc.pid();
    let (empty, _) = rss_kib(pid);
    let group: SocketAddr = DEFAULT_GROUP.parse().unwrap();
    let started = Instant::now();
    lan.host(1)
        .ns()
        .run_inside(|| {
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            sock.set_multicast_ttl_v4(1).unwrap();
            let mut rng = rand::rng();
            for i in 0..count {
                let datagram = if i + 1000 < count {
                    hostile(&mut rng, Some(0x5eed), Some(40))
                } else {
                    hostile(&mut rng, None, None)
                };
                let _ = sock.send_to(&datagram, group);
                if i % 64 == 63 {
                    // Let the receiver keep up a little: a full socket buffer
                    // only measures the kernel dropping datagrams.
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            let garbage: Vec<u8> = (0..1400).map(|_| rng.random()).collect();
            for _ in 0..1000 {
                let _ = sock.send_to(&garbage, group);
                std::thread::sleep(Duration::from_micros(50));
            }
        })
        .expect("enter host 1");
    let sent_in = started.elapsed();
    let dropped = tracker.wait_event(Duration::from_secs(60), |e| match e {
        Event::ReplicaDropped(d) if d.malformed >= 900 => Some(d),
        _ => None,
    });
    let (after, peak) = rss_kib(pid);
    // A listing of a quarter million peers is larger than a frame: then the
    // tracker answers with an error, and we say so.
    let reply = lan
        .host(0)
        .ns()
        .run_inside(|| Client::connect(tracker.addr).request_raw(&TrackerRequest::Status.to_json()))
        .expect("enter host 0");
    let held = match serde_json::from_slice::<StatusResponse>(&reply) {
        Ok(status) => {
            let peers: usize = status.swarms.iter().map(|s| s.peers.len()).sum();
            let replicas = status.replication.map_or(0, |r| r.replicas.len());
            format!("{peers} peers from {replicas} replicas")
        }
        Err(_) => format!(
            "too many peers to list: {}",
            String::from_utf8_lossy(&reply)
        ),
    };
    println!(
        "sent {count} hostile datagrams ({} joins) in {:.1} s",
        count * 14,
        sent_in.as_secs_f64()
    );
    println!("tracker holds {held}");
    println!(
        "dropped: {} over limit, {} malformed, {} foreign, {} oversize",
        dropped.over_limit, dropped.malformed, dropped.foreign, dropped.oversize
    );
    println!(
        "resident memory: {:.1} MiB after (peak {:.1} MiB), empty tracker {:.1} MiB",
        after as f64 / 1024.0,
        peak as f64 / 1024.0,
        empty as f64 / 1024.0
    );
    ExitCode::SUCCESS
}

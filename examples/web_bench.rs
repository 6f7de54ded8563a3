//! Benchmark: what the web page's status listing costs the tracker.
//!
//! 1. In this process, on a `tracker::handler::Tracker` holding 10,000 peers
//!    (`--peers`): how long the registry lock is held to snapshot them, and
//!    how long rendering the listing takes after the lock is released (the
//!    part that used to run under the lock).
//! 2. Against the real `tracker --http` binary holding as many peers:
//!    `GET /api/status` time and size, and the latency of refresh announces
//!    on one connection, first alone, then while two threads fetch
//!    `/api/status` back to back.
//!
//! ```text
//! cargo build --release -p tracker
//! cargo run --release --example web_bench
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use lanswarm::fixture::start_web_tracker;
use lanswarm::tracker_client::{announce_body, Client};
use lanswarm::web_client::get;
use tracker::handler::Tracker;
use wire::InfoHash;

/// The status listing's cost: lock hold time, render time, announce latency.
#[derive(Debug, Parser)]
#[command(name = "web_bench")]
struct Args {
    /// Peers in the registry.
    #[arg(long, default_value_t = 10_000)]
    peers: u16,
    /// Timed announces per run.
    #[arg(long, default_value_t = 5_000)]
    announces: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// An announce body for peer `i` with some progress.
fn peer_body(i: u16, event: &str) -> String {
    let left = u64::from(i) * 1000;
    announce_body(
        10_000 + i % 50_000,
        &format!("peer-{i}"),
        &format!(r#"{event},"left":{left},"downloaded":{}"#, 1 << 30),
    )
}

fn in_process(peers: u16) {
    let tracker = Tracker::new(InfoHash::default(), Duration::from_secs(60), false);
    for i in 0..peers {
        // Source addresses spread over 127.0.0.0/16 so each peer is its own.
        let src = SocketAddr::from(([127, 0, (i >> 8) as u8, i as u8], 40_000));
        tracker.handle(
            peer_body(i, r#","event":"started""#).as_bytes(),
            src,
            Instant::now(),
        );
    }
    let (mut locked, mut rendered, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let snapshot = tracker.registry().snapshot(Instant::now());
        locked.push(t.elapsed());
        let t = Instant::now();
        let mut status = snapshot.into_status();
        status.stats = Some(tracker.counters().snapshot());
        bytes = serde_json::to_vec(&status).unwrap().len();
        rendered.push(t.elapsed());
        let t = Instant::now();
        let _ = tracker.registry().status(Instant::now());
        whole.push(t.elapsed());
    }
    println!("in process, {peers} peers (median of 21):");
    println!(
        "  registry lock held to snapshot      {}",
        ms(median(locked))
    );
    println!(
        "  render + JSON after the lock        {} ({bytes} bytes)",
        ms(median(rendered))
    );
    println!(
        "  snapshot + render (the old time under the lock) {}",
        ms(median(whole))
    );
}

/// `n` refresh announces on one connection: p50, p99, max.
fn announce_latency(addr: SocketAddr, n: usize) -> (Duration, Duration, Duration) {
    let mut c = Client::connect(addr);
    let mut times: Vec<Duration> = (0..n)
        .map(|k| {
            let t = Instant::now();
            c.request(&peer_body((k % 100) as u16, ""));
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[n / 2], times[n * 99 / 100], times[n - 1])
}

fn main() {
    let args = Args::parse();
    in_process(args.peers);

    let (tracker, http) = start_web_tracker(&["--max-connections", "4096"]);
    let mut c = Client::connect(tracker.addr);
    for i in 0..args.peers {
        // Over one connection every peer has the same source IP: distinct ports.
        c.request(&peer_body(i, r#","event":"started""#));
    }
    let wait = Duration::from_secs(30);
    let mut fetches = Vec::new();
    let mut size = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let reply = get(http, "/api/status", wait);
        fetches.push(t.elapsed());
        size = reply.body.len();
    }
    println!("\ntracker process, {} peers:", args.peers);
    println!(
        "  GET /api/status                     {} ({size} bytes, median of 21)",
        ms(median(fetches))
    );

    let alone = announce_latency(tracker.addr, args.announces);
    let run = Arc::new(AtomicBool::new(true));
    let polls = Arc::new(AtomicU64::new(0));
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            let (run, polls) = (run.clone(), polls.clone());
            std::thread::spawn(move || {
                while run.load(Ordering::Relaxed) {
                    get(http, "/api/status", wait);
                    polls.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let polled = announce_latency(tracker.addr, args.announces);
    let secs = started.elapsed().as_secs_f64();
    run.store(false, Ordering::Relaxed);
    for p in pollers {
        let _ = p.join();
    }
    let rate = polls.load(Ordering::Relaxed) as f64 / secs;
    println!(
        "  announce latency, {} refreshes on one connection:",
        args.announces
    );
    println!(
        "    alone                             p50 {}  p99 {}  max {}",
        ms(alone.0),
        ms(alone.1),
        ms(alone.2)
    );
    println!(
        "    while /api/status is polled       p50 {}  p99 {}  max {}  ({rate:.0} listings/s)",
        ms(polled.0),
        ms(polled.1),
        ms(polled.2)
    );
}

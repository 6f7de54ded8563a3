//! Soak (issue 14): thousands of idle connections held against the tracker,
//! and separately against a seeding peer, while a good client is served.
//! Reports the good client's latency without and with the load, their
//! ratio, and the server's memory.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! target/release/examples/soak                 # 10,000 connections
//! target/release/examples/soak --quick         # 2,000, fewer samples
//! ```
//!
//! The idle connections come from many loopback addresses (127.77.x.y), a
//! few dozen per address, as a crowd of hosts would; the example raises its
//! own descriptor limit (and the servers', which they inherit) first.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use clap::Parser;
use lanswarm::fixture::*;
use lanswarm::process::Proc;
use lanswarm::tracker_client::{announce_body, Client};

#[derive(Parser, Debug)]
#[command(
    about = "Idle connections against the tracker and a seeder while a good client is served"
)]
struct Args {
    /// Idle connections to open against each server.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Idle connections per source address.
    #[arg(long, default_value_t = 40)]
    per_address: usize,
    /// Good announces timed, each on a fresh connection.
    #[arg(long, default_value_t = 300)]
    announces: usize,
    /// Good downloads timed against the seeder (median).
    #[arg(long, default_value_t = 3)]
    downloads: usize,
    /// A smaller run: 2,000 connections, 100 announces, 1 download.
    #[arg(long)]
    quick: bool,
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.connections = args.connections.min(2_000);
        args.announces = args.announces.min(100);
        args.downloads = 1;
    }
    let limit = raise_nofile(args.connections as u64 * 2 + 4096);
    println!(
        "soak: {} idle connections per server ({} per address), descriptor limit {limit}",
        args.connections, args.per_address
    );

    let t = soak_tracker(&args);
    let p = soak_seeder(&args);

    println!();
    println!("| server | good client | without load | with load | ratio | server RSS without → with (peak) | idle connections still open at the end |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    println!(
        "| tracker | announce, median / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} | {} → {} KiB ({} KiB) | {} of {} |",
        t.before.0, t.before.1, t.after.0, t.after.1,
        t.after.0 / t.before.0, t.after.1 / t.before.1,
        t.rss_before, t.rss_after, t.hwm, t.held, t.opened
    );
    println!(
        "| seeding peer | {} MiB download, median | {:.3} s | {:.3} s | {:.2} | {} → {} KiB ({} KiB) | {} of {} |",
        p.mib, p.before, p.after, p.after / p.before, p.rss_before, p.rss_after, p.hwm, p.held, p.opened
    );
}

/// Raises RLIMIT_NOFILE to `want` (or the hard limit, raised too when we
/// may); children inherit it. Returns the soft limit now in force.
fn raise_nofile(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit fill and read a struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let mut new = lim;
        new.rlim_cur = want as libc::rlim_t;
        new.rlim_max = lim.rlim_max.max(want as libc::rlim_t);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
            new.rlim_cur = lim.rlim_max.min(want as libc::rlim_t);
            new.rlim_max = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &new);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur as u64
    }
}

/// Source address `n` of the crowd: 127.77.x.y.
fn source(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 77, (n / 250) as u8, (n % 250 + 1) as u8))
}

/// Opens `count` idle connections to `to`, `per_address` from each source.
fn crowd(to: SocketAddr, count: usize, per_address: usize) -> Vec<TcpStream> {
    let started = Instant::now();
    let conns: Vec<TcpStream> = (0..count)
        .filter_map(|i| connect_from(source(i / per_address.max(1)), to).ok())
        .collect();
    println!(
        "  opened {} of {count} idle connections in {:.2} s",
        conns.len(),
        started.elapsed().as_secs_f64()
    );
    conns
}

/// How many of `conns` the server still holds open (not closed by it).
fn still_open(conns: &[TcpStream]) -> usize {
    let mut buf = [0u8; 64];
    conns
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).ok();
            // Read what the server said (a refusal, say) up to its close.
            loop {
                match (&**s).read(&mut buf) {
                    Ok(0) => break false,
                    Ok(_) => continue,
                    Err(e) => break e.kind() == std::io::ErrorKind::WouldBlock,
                }
            }
        })
        .count()
}

struct TrackerFigures {
    before: (f64, f64),
    after: (f64, f64),
    rss_before: u64,
    rss_after: u64,
    hwm: u64,
    opened: usize,
    held: usize,
}

/// Median and p99 of `n` good announces, in ms, each on a fresh connection.
fn announce_latency(addr: SocketAddr, n: usize) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            let mut c = Client::connect_within(addr, Duration::from_secs(10));
            let r = c.request(&announce_body(
                20_000 + (i % 1000) as u16,
                &format!("good-{i}"),
                "",
            ));
            assert!(!r.is_error(), "a good announce was refused: {r:?}");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (
        ms[ms.len() / 2],
        ms[(ms.len() * 99 / 100).min(ms.len() - 1)],
    )
}

fn soak_tracker(args: &Args) -> TrackerFigures {
    println!("tracker:");
    let tracker = start_tracker(&[]);
    let pid = tracker.proc.pid();
    let before = announce_latency(tracker.addr, args.announces);
    let rss_before = tracker.proc.status_kib("VmRSS");
    let conns = crowd(tracker.addr, args.connections, args.per_address);
    let after = announce_latency(tracker.addr, args.announces);
    let rss_after = tracker.proc.status_kib("VmRSS");
    let held = still_open(&conns);
    let hwm = vm_hwm_kib(pid);
    drop(conns);
    TrackerFigures {
        before,
        after,
        rss_before,
        rss_after,
        hwm,
        opened: args.connections,
        held,
    }
}

struct PeerFigures {
    mib: u64,
    before: f64,
    after: f64,
    rss_before: u64,
    rss_after: u64,
    hwm: u64,
    opened: usize,
    held: usize,
}

/// Median time of `n` downloads of the scenario's file, by their `done` events.
fn download_time(s: &Scenario, tag: &str, n: usize) -> f64 {
    let mut secs: Vec<f64> = (0..n)
        .map(|i| {
            let name = format!("{tag}{i}");
            let mut leech = Proc::spawn(&name, s.leecher_command(&name));
            let done = expect_done(&mut leech);
            assert!(leech.wait_exit(STEP).unwrap().success());
            assert!(s.has_right_copy(&name), "{name}: wrong copy");
            let _ = std::fs::remove_dir_all(s.path(&name));
            done.seconds
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    secs[secs.len() / 2]
}

fn soak_seeder(args: &Args) -> PeerFigures {
    println!("seeding peer:");
    let mib = 32;
    let mut s = Scenario::new(mib << 20, 256 << 10, 77, &[]);
    let (seed, started) = s.start_seeder("seed");
    let addr: SocketAddr = started.listen.parse().unwrap();
    let before = download_time(&s, "base", args.downloads);
    let rss_before = seed.status_kib("VmRSS");
    let conns = crowd(addr, args.connections, args.per_address);
    let after = download_time(&s, "loaded", args.downloads);
    let rss_after = seed.status_kib("VmRSS");
    let held = still_open(&conns);
    let hwm = vm_hwm_kib(seed.pid());
    drop(conns);
    PeerFigures {
        mib,
        before,
        after,
        rss_before,
        rss_after,
        hwm,
        opened: args.connections,
        held,
    }
}

//! What hostile peers cost, against baselines measured in the same run.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! cargo run --release --example hostile_peers_bench -- [SIZE_MIB] [LIARS] [CHURN]
//! ```
//! (defaults: 8 MiB, 30 liars, 100,000 connections)
//!
//! 1. **Liars** (issue 14, item 4): a leecher meets LIARS fake seeders,
//!    which claim every piece, unchoke and never send, then a real seeder
//!    comes: the time from the seeder's start to `done`, against the same
//!    without liars, and the leecher's peak RSS.
//! 2. **Churn** (item 5): CHURN connections to a seeder, each a handshake
//!    under a new random peer id, then close: the seeder's VmRSS before
//!    and after, and the size of its final `stopped` line; with a download
//!    timed during the churn against one before it.
//!
//! Everything runs on 127.0.0.1 in a temporary directory removed at the end.

use std::net::SocketAddr;
use std::thread;

use lanswarm::fixture::*;
use lanswarm::hostile::{churn, liars, seeded_after_meeting_liars};

/// Downloads into `name` with `--exit-when-done`: seconds, peak RSS (KiB).
fn download(s: &Scenario, name: &str) -> (f64, u64) {
    let (mut leech, _) = start_peer(name, s.leecher_command(name));
    let done = expect_done(&mut leech);
    let (code, peak) = leech.wait_with_peak_rss();
    assert_eq!(code, 0, "{name} failed");
    assert!(s.has_right_copy(name), "{name}: wrong copy");
    (done.seconds, peak)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: SIZE_MIB LIARS CHURN"))
        .collect();
    let size_mib = args.first().copied().unwrap_or(8);
    let liar_count = args.get(1).copied().unwrap_or(30) as usize;
    let churn_count = args.get(2).copied().unwrap_or(100_000) as usize;

    println!("## Liars: {size_mib} MiB, {liar_count} liars\n");
    let mut s = Scenario::new(size_mib << 20, 64 << 10, 61, &[]);
    let (base, base_peak) = seeded_after_meeting_liars(&mut s, "baseline", 0);
    let (liars, _) = liars(&s, liar_count);
    let (with, with_peak) = seeded_after_meeting_liars(&mut s, "with-liars", liar_count);
    let asked = liars.iter().filter(|l| l.requests() > 0).count();
    println!("| case | download s | ratio | leecher peak RSS MiB |");
    println!("|---|---|---|---|");
    println!(
        "| one seeder | {base:.3} | 1.00 | {:.1} |",
        base_peak as f64 / 1024.0
    );
    println!(
        "| one seeder + {liar_count} liars ({asked} asked) | {with:.3} | {:.2} | {:.1} |",
        with / base,
        with_peak as f64 / 1024.0
    );

    println!("\n## Churn: {churn_count} connections under new peer ids\n");
    let mut s = Scenario::new(size_mib << 20, 256 << 10, 62, &[]);
    let (mut seed, started) = s.start_seeder("seed");
    let info_hash = load_torrent(&s.torrent).info_hash();
    let addr: SocketAddr = started.listen.parse().unwrap();
    churn(addr, info_hash, 1_000, 4);
    let before = seed.status_kib("VmRSS");
    let (quiet, _) = download(&s, "before-churn");
    let churner = thread::spawn(move || churn(addr, info_hash, churn_count, 4));
    let (busy, _) = download(&s, "during-churn");
    churner.join().unwrap();
    let after = seed.status_kib("VmRSS");
    let stopped = stop_peer(&mut seed);
    println!("| figure | value |");
    println!("|---|---|");
    println!("| seeder VmRSS after 1,000 connections | {before} KiB |");
    println!("| seeder VmRSS after {churn_count} more | {after} KiB |");
    println!(
        "| growth per connection | {:.1} bytes |",
        (after as f64 - before as f64) * 1024.0 / churn_count as f64
    );
    println!("| final `stopped` line | {} bytes |", stopped.len());
    println!(
        "| download before / during the churn | {quiet:.3} s / {busy:.3} s ({:.2}x) |",
        busy / quiet
    );
}

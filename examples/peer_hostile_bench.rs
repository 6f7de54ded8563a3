//! A seeder under issue 14's connection attacks, against a baseline
//! measured in the same run.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! cargo run --release --example peer_hostile_bench -- [SIZE_MIB]   # default 64
//! ```
//!
//! One seeder of SIZE_MIB in 1 MiB pieces. Each row starts a fresh leecher
//! and reports its download time (by its `done` event), the ratio to the
//! baseline, and the seeder's peak RSS (VmHWM) after the row:
//!
//! 1. baseline: no attack;
//! 2. 100 connections from 20 loopback addresses, each sending, before any
//!    handshake, half of a frame that claims a whole piece;
//! 3. 72 connections of the seed's protocol (a Bitfield, then silence) from
//!    127.0.0.1..8, reconnecting whenever dropped, against 64 slots.
//!
//! Everything runs on 127.0.0.0/8 in a temporary directory removed at the end.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lanswarm::fixture::*;
use lanswarm::process::Proc;
use wire::{Bitfield, Message};

const PIECE: u64 = 1 << 20;

fn leech(s: &Scenario, name: &str) -> f64 {
    let (mut leech, _) = start_peer(name, s.leecher_command(name));
    let done = expect_done(&mut leech);
    leech.wait_exit(STEP).expect("leecher exits");
    assert!(s.has_right_copy(name), "{name}: wrong copy");
    done.seconds
}

fn ip(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

fn row(name: &str, secs: f64, baseline: f64, seed: &Proc) {
    println!(
        "{name:<34} {secs:>9.2} {:>9.2} {:>12.1}",
        secs / baseline,
        vm_hwm_kib(seed.pid()) as f64 / 1024.0
    );
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("SIZE_MIB"))
        .unwrap_or(64);
    let mut s = Scenario::new(mib << 20, PIECE, 7, &["--interval", "1"]);
    let (seed, started) = s.start_seeder("seed");
    let addr: SocketAddr = started.listen.parse().unwrap();
    let pieces = load_torrent(&s.torrent).info.piece_count();

    println!("{mib} MiB in 1 MiB pieces, one seeder, one leecher per row");
    println!(
        "{:<34} {:>9} {:>9} {:>12}",
        "case", "leech s", "ratio", "seed HWM MiB"
    );
    let baseline = leech(&s, "base");
    row("baseline (no attack)", baseline, baseline, &seed);

    // 100 half frames before the handshake, held open during the download.
    let stop = Arc::new(AtomicBool::new(false));
    let half: Vec<_> = (0..100u32)
        .map(|n| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let from = ip(0, 1, 10 + (n % 20) as u8);
                if let Ok(mut stream) = half_frame_from(from, addr, PIECE + 13, PIECE as usize / 2)
                {
                    hold_open(&mut stream, &stop);
                }
            })
        })
        .collect();
    let t = leech(&s, "half");
    row("100 pre-handshake half frames", t, baseline, &seed);
    stop.store(true, Ordering::Relaxed);
    half.into_iter().for_each(|h| h.join().unwrap());

    // 72 silent slot holders of the seed's protocol, reconnecting.
    let stop = Arc::new(AtomicBool::new(false));
    let sources = (0..16).map(|_| 1u8).chain((2..=8u8).flat_map(|c| [c; 8]));
    let silent: Vec<_> = sources
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let hello = wire::codec::encode_framed(&Message::Bitfield(Bitfield::new(pieces)));
                while !stop.load(Ordering::Relaxed) {
                    match connect_from(ip(0, 0, c), addr) {
                        Ok(mut stream) => {
                            if stream.write_all(&hello).is_ok() {
                                hold_open(&mut stream, &stop);
                            }
                        }
                        // An attacker pacing its retries.
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        })
        .collect();
    // Let them take the slots first.
    std::thread::sleep(Duration::from_secs(2));
    let t = leech(&s, "silent");
    row("72 silent seed-protocol holders", t, baseline, &seed);
    stop.store(true, Ordering::Relaxed);
    silent.into_iter().for_each(|h| h.join().unwrap());
}

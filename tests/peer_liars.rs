//! Peers that cost a leecher without giving: liars that claim every piece,
//! unchoke and never send (issue 14, item 4), and a churn of connections
//! under ever new peer ids (item 5). Each attack runs while a good client
//! is served, against a baseline measured in the same test.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use lanswarm::expect_event;
use lanswarm::fixture::*;
use lanswarm::hostile::{announce_seed, churn, liars, seeded_after_meeting_liars};
use peer::events::Event;

#[test]
fn liars_that_never_deliver_do_not_slow_a_download() {
    // 32 pieces: fewer than the liars could hold three times over.
    let mut s = Scenario::new(2 << 20, 64 << 10, 41, &[]);
    let (baseline, base_peak) = seeded_after_meeting_liars(&mut s, "baseline", 0);
    let (liars, _) = liars(&s, 30);
    let (took, peak) = seeded_after_meeting_liars(&mut s, "leech", liars.len());

    let asked = liars.iter().filter(|l| l.requests() > 0).count();
    assert!(asked > 0, "no liar was asked for anything: no attack");
    // Before, the liars took every request and every end-game duplicate,
    // and the seeder got nothing until a 30 s timeout; a 0.1 s download took
    // minutes.
    let bound = baseline * 3.0 + 2.0;
    println!(
        "baseline {baseline:.2}s, with 30 liars {took:.2}s ({asked} asked), bound {bound:.2}s; \
         peak RSS {base_peak} KiB vs {peak} KiB"
    );
    assert!(
        took <= bound,
        "with 30 liars the download took {took:.2}s, baseline {baseline:.2}s"
    );
    assert!(
        peak <= base_peak + 32 * 1024,
        "peak RSS {peak} KiB against {base_peak} KiB without the liars"
    );
}

#[test]
fn liars_are_struck_and_backed_off_before_any_redial() {
    // Announces every second: without a backoff, every one would redial.
    let mut s = Scenario::new(2 << 20, 64 << 10, 42, &["--interval", "1"]);
    let (liars, info_hash) = liars(&s, 30);
    // Keep the liars listed (the tracker forgets peers after two intervals).
    let stop = Arc::new(AtomicBool::new(false));
    let refresher = {
        let stop = stop.clone();
        let tracker = s.tracker.addr;
        let liars: Vec<_> = liars.iter().map(|l| (l.addr, l.peer_id)).collect();
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for &(addr, peer_id) in &liars {
                    announce_seed(tracker, info_hash, addr, peer_id, None);
                }
                // Pacing a refresh; nothing waits on it.
                thread::sleep(Duration::from_millis(400));
            }
        })
    };

    let (mut leech, _) = start_peer("leech", s.leecher_command("leech"));
    let mut struck = HashSet::new();
    while struck.len() < liars.len() {
        let (addr, reason, retry) = expect_event!(leech, STEP,
            Event::PeerBackedOff { addr, reason, retry_secs, .. } => (addr, reason, retry_secs));
        assert!(reason.contains("no piece"), "{reason}");
        assert!(retry >= 30.0, "backoff {retry}s");
        struck.insert(addr);
    }
    let addrs: HashSet<String> = liars.iter().map(|l| l.addr.to_string()).collect();
    assert_eq!(struck, addrs, "every liar is struck, and only they");
    // Three more announces list the liars again: none is redialed.
    for _ in 0..3 {
        expect_event!(leech, STEP, Event::Announced { peers, .. } if peers >= liars.len());
    }
    for l in &liars {
        assert_eq!(l.dialed(), 1, "{} was redialed", l.addr);
        assert_eq!(l.requests(), 1, "one request until it delivers");
    }
    // A real seeder comes: the download completes.
    let _seed = s.start_seeder("seed");
    expect_done(&mut leech);
    assert!(leech.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy("leech"));
    stop.store(true, Ordering::SeqCst);
    refresher.join().unwrap();
}

#[test]
fn churn_of_new_peer_ids_leaves_memory_and_the_summary_bounded() {
    const WARM_UP: usize = 2_000;
    const CHURN: usize = 24_000;
    let mut s = Scenario::new(4 << 20, 64 << 10, 43, &[]);
    let (mut seed, started) = s.start_seeder("seed");
    let addr: SocketAddr = started.listen.parse().unwrap();
    let info_hash = load_torrent(&s.torrent).info_hash();

    let (mut base, _) = start_peer("baseline", s.leecher_command("baseline"));
    let baseline = expect_done(&mut base);
    assert!(base.wait_exit(STEP).unwrap().success());

    churn(addr, info_hash, WARM_UP, 4);
    let warm = seed.status_kib("VmRSS");
    let churner = thread::spawn(move || churn(addr, info_hash, CHURN, 4));
    let (mut leech, _) = start_peer("leech", s.leecher_command("leech"));
    let done = expect_done(&mut leech);
    assert!(leech.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy("leech"));
    churner.join().unwrap();
    let after = seed.status_kib("VmRSS");

    let line = stop_peer(&mut seed);
    let Ok(Event::Stopped { peers, others, .. }) = serde_json::from_str(&line) else {
        panic!("not a stopped event: {line}");
    };
    println!(
        "seeder VmRSS {warm} KiB after {WARM_UP} connections, {after} KiB after {} more; \
         stopped line {} bytes ({} peers listed, {} others); leecher {:.2}s (baseline {:.2}s)",
        CHURN,
        line.len(),
        peers.len(),
        others.peers,
        done.seconds,
        baseline.seconds
    );
    assert!(
        line.len() < 8 << 10,
        "the stopped line is {} bytes",
        line.len()
    );
    assert!(peers.len() <= peer::swarm::SUMMARY_PEERS);
    assert!(
        others.peers as usize >= (WARM_UP + CHURN) / 2,
        "the churned peers are not counted: {others:?}"
    );
    assert!(
        peers.iter().any(|p| p.uploaded > 0),
        "the leechers that took data are listed: {peers:?}"
    );
    // 124 MiB for 400,000 connections before: ~300 bytes per id seen.
    assert!(
        after <= warm + 4 * 1024,
        "the seeder grew from {warm} KiB to {after} KiB over {CHURN} connections"
    );
    // The machine is shared by the churn, so the bound is generous.
    let bound = baseline.seconds * 10.0 + 10.0;
    assert!(
        done.seconds <= bound,
        "the leecher took {:.2}s during the churn, baseline {:.2}s",
        done.seconds,
        baseline.seconds
    );
}

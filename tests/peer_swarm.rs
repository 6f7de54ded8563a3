//! Swarm behaviour with real `tracker` and `peer` processes on 127.0.0.1.

use lanswarm::expect_event;
use lanswarm::fixture::*;
use lanswarm::process::Proc;
use peer::events::Event;
use tracker::events::Event as TrackerEvent;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Runs a leecher to completion; returns its `done` event.
fn leech_to_the_end(s: &Scenario, name: &str) -> SwarmDone {
    let (mut leech, started) = start_peer(name, s.leecher_command(name));
    assert_eq!(started.have, 0);
    let done = expect_done(&mut leech);
    let status = leech.wait_exit(STEP).unwrap();
    assert!(
        status.success(),
        "{name} exit: {status}\n{}",
        leech.output()
    );
    assert!(s.has_right_copy(name), "{name}: downloaded file differs");
    done
}

/// The seed project's experiment: peer3 fetches halves from peer1 and peer2 at once.
#[test]
fn leecher_downloads_from_two_seeders_at_once() {
    let size = 8 * MIB;
    let mut s = Scenario::new(size, 64 * KIB, 1, &[]);
    let (_s1, ev1) = s.start_seeder("seed1");
    let (_s2, ev2) = s.start_seeder("seed2");
    assert_eq!(ev1.have, ev1.pieces, "seed1 must verify its complete file");

    let done = leech_to_the_end(&s, "leech");
    assert_eq!(done.bytes, size);
    let from1 = done.downloaded_from(&ev1.peer_id);
    let from2 = done.downloaded_from(&ev2.peer_id);
    assert_eq!(from1 + from2, size, "done: {done:?}");
    assert!(
        from1 >= size / 4 && from2 >= size / 4,
        "unbalanced: {from1} vs {from2}; done: {done:?}"
    );
}

#[test]
fn five_leechers_share_with_each_other() {
    let mut s = Scenario::new(24 * MIB, 64 * KIB, 2, &[]);
    let (_seed, seed_ev) = s.start_seeder("seed");
    let mut leechers: Vec<Proc> = (0..5)
        .map(|i| {
            let name = format!("leech{i}");
            Proc::spawn(&name, s.leecher_command(&name))
        })
        .collect();
    let mut from_leechers = 0;
    for proc in &mut leechers {
        let done = expect_done(proc);
        assert!(proc.wait_exit(STEP).unwrap().success(), "{}", proc.output());
        assert!(s.has_right_copy(&proc.name), "{} differs", proc.name);
        from_leechers += done.bytes - done.downloaded_from(&seed_ev.peer_id);
    }
    assert!(
        from_leechers > 0,
        "no leecher received anything from another leecher"
    );
}

#[test]
fn killed_leecher_resumes_without_refetching_verified_pieces() {
    let (piece, size) = (64 * KIB, 4 * MIB);
    let pieces = size / piece;
    let mut s = Scenario::new(size, piece, 3, &[]);

    // A peer that holds only the first half: the leecher can get no further.
    let half_dir = s.path("half");
    std::fs::create_dir_all(&half_dir).unwrap();
    let mut bytes = std::fs::read(&s.data).unwrap();
    bytes[(size / 2) as usize..].fill(0);
    std::fs::write(half_dir.join("data.bin"), &bytes).unwrap();
    let leech_dir = s.path("leech");
    let _half = leech_until_then_kill(
        &mut s.tracker,
        &s.torrent,
        &half_dir,
        &leech_dir,
        (pieces / 2) as u32,
    );

    let (_seed, _) = s.start_seeder("seed");
    let (mut again, started) = start_peer("leech-again", s.leecher_command("leech"));
    assert_eq!(
        u64::from(started.have),
        pieces / 2,
        "verified pieces were not kept"
    );
    let done = expect_done(&mut again);
    assert!(again.wait_exit(STEP).unwrap().success());
    assert_eq!(done.bytes, size / 2, "refetched verified data: {done:?}");
    assert!(s.has_right_copy("leech"));
}

#[test]
fn sigterm_closes_peers_tells_the_tracker_and_exits_0() {
    let mut s = Scenario::new(MIB, 64 * KIB, 4, &[]);
    let (mut seed, seed_ev) = s.start_seeder("seed");
    // A leecher that stays after completing, connected to the seeder.
    let (mut leech, _) = start_peer("leech", peer_command(&s.torrent, &s.path("leech")));
    expect_done(&mut leech);

    seed.signal(libc::SIGTERM);
    let status = seed.wait_exit(STEP).unwrap();
    assert_eq!(status.code(), Some(0), "{}", seed.output());
    let gone = expect_event!(leech, STEP, Event::PeerDisconnected { reason, .. } => reason);
    assert_eq!(gone, "peer sent Close");
    s.tracker.wait_event(STEP, |e| match e {
        TrackerEvent::Leave(p) if p.peer_id == seed_ev.peer_id => Some(()),
        _ => None,
    });
    // The seeder has exited: its `stopped` line must be among what it printed.
    expect_event!(seed, STEP, Event::Stopped { .. });

    leech.signal(libc::SIGINT);
    assert_eq!(leech.wait_exit(STEP).unwrap().code(), Some(0));
    assert!(
        s.path("leech/data.bin.lsresume").exists(),
        "resume file not flushed"
    );
}

#[test]
fn a_signal_right_after_started_still_exits_0() {
    let s = Scenario::new(64 * KIB, 64 * KIB, 5, &[]);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (mut peer, _) = start_peer("seed", peer_command(&s.torrent, &s.seed_dir("seed")));
        peer.signal(sig);
        let status = peer.wait_exit(STEP).unwrap();
        assert_eq!(status.code(), Some(0), "signal {sig}: {}", peer.output());
    }
}

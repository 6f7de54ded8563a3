//! Swarm behaviour with real `tracker` and `peer` processes on 127.0.0.1.

use lanswarm::fixture::*;
use lanswarm::process::Proc;
use serde_json::Value;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Bytes received from the peer with `peer_id`, per a `done` event.
fn downloaded_from(done: &Value, peer_id: &Value) -> u64 {
    done["peers"]
        .as_array()
        .expect("peers list")
        .iter()
        .filter(|p| &p["peer_id"] == peer_id)
        .map(|p| p["downloaded"].as_u64().unwrap())
        .sum()
}

/// Runs a leecher to completion; returns its `done` event.
fn leech_to_the_end(s: &Scenario, name: &str) -> Value {
    let (mut leech, started) = start_peer(name, s.leecher_command(name));
    assert_eq!(started["have"], 0);
    let done = leech.expect_event("done", STEP);
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
    assert_eq!(
        ev1["have"], ev1["pieces"],
        "seed1 must verify its complete file"
    );

    let done = leech_to_the_end(&s, "leech");
    assert_eq!(done["bytes"].as_u64(), Some(size));
    let from1 = downloaded_from(&done, &ev1["peer_id"]);
    let from2 = downloaded_from(&done, &ev2["peer_id"]);
    assert_eq!(from1 + from2, size, "done: {done}");
    assert!(
        from1 >= size / 4 && from2 >= size / 4,
        "unbalanced: {from1} vs {from2}; done: {done}"
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
        let done = proc.expect_event("done", STEP);
        assert!(proc.wait_exit(STEP).unwrap().success(), "{}", proc.output());
        assert!(s.has_right_copy(&proc.name), "{} differs", proc.name);
        from_leechers +=
            done["bytes"].as_u64().unwrap() - downloaded_from(&done, &seed_ev["peer_id"]);
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
    let (_half, half_ev) = start_peer("half", peer_command(&s.torrent, &half_dir));
    assert_eq!(half_ev["have"].as_u64(), Some(pieces / 2));
    s.tracker.proc.expect_line("join", STEP);

    let (mut leech, _) = start_peer("leech", peer_command(&s.torrent, &s.path("leech")));
    leech
        .wait_for(STEP, |_, line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|v| v["event"] == "progress" && v["have"].as_u64() == Some(pieces / 2))
        })
        .unwrap();
    leech.signal(libc::SIGKILL);
    leech.wait_exit(STEP).unwrap();
    // The killed leecher's registration is still at the tracker.
    s.tracker.proc.expect_line("join", STEP);

    let (_seed, _) = s.start_seeder("seed");
    let (mut again, started) = start_peer("leech-again", s.leecher_command("leech"));
    assert_eq!(
        started["have"].as_u64(),
        Some(pieces / 2),
        "verified pieces were not kept"
    );
    let done = again.expect_event("done", STEP);
    assert!(again.wait_exit(STEP).unwrap().success());
    assert_eq!(
        done["bytes"].as_u64(),
        Some(size / 2),
        "refetched verified data: {done}"
    );
    assert!(s.has_right_copy("leech"));
}

#[test]
fn sigterm_closes_peers_tells_the_tracker_and_exits_0() {
    let mut s = Scenario::new(MIB, 64 * KIB, 4, &[]);
    let (mut seed, _) = s.start_seeder("seed");
    // A leecher that stays after completing, connected to the seeder.
    let (mut leech, _) = start_peer("leech", peer_command(&s.torrent, &s.path("leech")));
    leech.expect_event("done", STEP);

    seed.signal(libc::SIGTERM);
    let status = seed.wait_exit(STEP).unwrap();
    assert_eq!(status.code(), Some(0), "{}", seed.output());
    let gone = leech.expect_event("peer_disconnected", STEP);
    assert_eq!(gone["reason"], "peer sent Close", "{gone}");
    s.tracker.proc.expect_line("leave", STEP);
    let stopped = seed.output();
    assert!(
        stopped.contains("\"event\":\"stopped\""),
        "no stopped event:\n{stopped}"
    );

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

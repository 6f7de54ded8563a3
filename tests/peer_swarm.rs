//! Swarm behaviour with real `tracker` and `peer` processes on 127.0.0.1.

use std::path::Path;

use lanswarm::fixture::*;
use serde_json::Value;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Waits until the tracker has logged `n` more joins.
fn wait_joins(tracker: &mut TrackerProc, n: usize) {
    for _ in 0..n {
        tracker.proc.expect_line("join", STEP);
    }
}

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

fn seed_dir(root: &Path, name: &str, data: &Path) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(data, dir.join(data.file_name().unwrap())).unwrap();
    dir
}

/// The seed project's experiment: peer3 fetches halves from peer1 and peer2 at once.
#[test]
fn leecher_downloads_from_two_seeders_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tracker = start_tracker(&[]);
    let data = tmp.path().join("data.bin");
    let size = 8 * MIB;
    write_random_file(&data, size, 1);
    let torrent = create_torrent(
        &data,
        tracker.addr,
        Some(64 * KIB),
        &tmp.path().join("t.torrent"),
    );

    let (_s1, ev1) = start_peer(
        "seed1",
        peer_command(&torrent, &seed_dir(tmp.path(), "s1", &data)),
    );
    let (_s2, ev2) = start_peer(
        "seed2",
        peer_command(&torrent, &seed_dir(tmp.path(), "s2", &data)),
    );
    assert_eq!(
        ev1["have"], ev1["pieces"],
        "seed1 must verify its complete file"
    );
    wait_joins(&mut tracker, 2);

    let leech_dir = tmp.path().join("leech");
    let mut cmd = peer_command(&torrent, &leech_dir);
    cmd.arg("--exit-when-done");
    let (mut leech, started) = start_peer("leech", cmd);
    assert_eq!(started["have"], 0);
    let done = leech.expect_event("done", STEP);
    let status = leech.wait_exit(STEP).unwrap();
    assert!(
        status.success(),
        "leecher exit: {status}\n{}",
        leech.output()
    );
    assert!(
        same_file(&data, &leech_dir.join("data.bin")),
        "downloaded file differs"
    );

    assert_eq!(done["bytes"].as_u64(), Some(size));
    let (from1, from2) = (
        downloaded_from(&done, &ev1["peer_id"]),
        downloaded_from(&done, &ev2["peer_id"]),
    );
    assert_eq!(from1 + from2, size, "done: {done}");
    assert!(
        from1 >= size / 4 && from2 >= size / 4,
        "unbalanced: {from1} vs {from2}; done: {done}"
    );
}

#[test]
fn five_leechers_share_with_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tracker = start_tracker(&[]);
    let data = tmp.path().join("data.bin");
    let size = 24 * MIB;
    write_random_file(&data, size, 2);
    let torrent = create_torrent(
        &data,
        tracker.addr,
        Some(64 * KIB),
        &tmp.path().join("t.torrent"),
    );
    let (_seed, seed_ev) = start_peer(
        "seed",
        peer_command(&torrent, &seed_dir(tmp.path(), "seed", &data)),
    );
    wait_joins(&mut tracker, 1);

    let mut leechers: Vec<_> = (0..5)
        .map(|i| {
            let dir = tmp.path().join(format!("leech{i}"));
            let mut cmd = peer_command(&torrent, &dir);
            cmd.arg("--exit-when-done");
            (
                lanswarm::process::Proc::spawn(&format!("leech{i}"), cmd),
                dir,
            )
        })
        .collect();
    let mut from_leechers = 0;
    for (proc, dir) in &mut leechers {
        let done = proc.expect_event("done", STEP);
        assert!(proc.wait_exit(STEP).unwrap().success(), "{}", proc.output());
        assert!(
            same_file(&data, &dir.join("data.bin")),
            "{} differs",
            proc.name
        );
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
    let tmp = tempfile::tempdir().unwrap();
    let mut tracker = start_tracker(&[]);
    let data = tmp.path().join("data.bin");
    let piece = 64 * KIB;
    let size = 4 * MIB;
    let pieces = size / piece;
    write_random_file(&data, size, 3);
    let torrent = create_torrent(
        &data,
        tracker.addr,
        Some(piece),
        &tmp.path().join("t.torrent"),
    );

    // A peer that holds only the first half: the leecher can get no further.
    let half_dir = tmp.path().join("half");
    std::fs::create_dir_all(&half_dir).unwrap();
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[(size / 2) as usize..].fill(0);
    std::fs::write(half_dir.join("data.bin"), &bytes).unwrap();
    let (_half, half_ev) = start_peer("half", peer_command(&torrent, &half_dir));
    assert_eq!(half_ev["have"].as_u64(), Some(pieces / 2));
    wait_joins(&mut tracker, 1);

    let leech_dir = tmp.path().join("leech");
    let (mut leech, _) = start_peer("leech", peer_command(&torrent, &leech_dir));
    leech
        .wait_for(STEP, |_, line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|v| v["event"] == "progress" && v["have"].as_u64() == Some(pieces / 2))
        })
        .unwrap();
    leech.signal(libc::SIGKILL);
    leech.wait_exit(STEP).unwrap();

    let (_seed, _) = start_peer(
        "seed",
        peer_command(&torrent, &seed_dir(tmp.path(), "seed", &data)),
    );
    wait_joins(&mut tracker, 2); // the killed leecher, then the seed
    let mut cmd = peer_command(&torrent, &leech_dir);
    cmd.arg("--exit-when-done");
    let (mut again, started) = start_peer("leech-again", cmd);
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
    assert!(same_file(&data, &leech_dir.join("data.bin")));
}

#[test]
fn sigterm_closes_peers_tells_the_tracker_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tracker = start_tracker(&[]);
    let data = tmp.path().join("data.bin");
    write_random_file(&data, MIB, 4);
    let torrent = create_torrent(
        &data,
        tracker.addr,
        Some(64 * KIB),
        &tmp.path().join("t.torrent"),
    );
    let (mut seed, _) = start_peer(
        "seed",
        peer_command(&torrent, &seed_dir(tmp.path(), "seed", &data)),
    );
    wait_joins(&mut tracker, 1);
    // A leecher that stays after completing, connected to the seeder.
    let (mut leech, _) = start_peer("leech", peer_command(&torrent, &tmp.path().join("leech")));
    leech.expect_event("done", STEP);

    seed.signal(libc::SIGTERM);
    let status = seed.wait_exit(STEP).unwrap();
    assert_eq!(status.code(), Some(0), "{}", seed.output());
    let gone = leech.expect_event("peer_disconnected", STEP);
    assert_eq!(gone["reason"], "peer sent Close", "{gone}");
    tracker.proc.expect_line("leave", STEP);
    let stopped = seed.output();
    assert!(
        stopped.contains("\"event\":\"stopped\""),
        "no stopped event:\n{stopped}"
    );

    leech.signal(libc::SIGINT);
    assert_eq!(leech.wait_exit(STEP).unwrap().code(), Some(0));
    assert!(
        tmp.path().join("leech/data.bin.lsresume").exists(),
        "resume file not flushed"
    );
}

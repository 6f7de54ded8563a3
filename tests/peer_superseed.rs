//! Super-seeding (`peer --super-seed`) with real `tracker` and `peer`
//! processes on 127.0.0.1: the seeder hands each piece to one leecher, the
//! leechers share the rest, and the seeder uploads about one copy.

use lanswarm::expect_event;
use lanswarm::fixture::*;
use lanswarm::process::Proc;
use peer::events::Event;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Starts a super-seeder in a fresh copy of the data and waits until the
/// tracker has registered it.
fn start_super_seeder(s: &mut Scenario) -> (Proc, Started) {
    let mut cmd = peer_command(&s.torrent, &s.seed_dir("seed"));
    cmd.arg("--super-seed");
    let (seed, started) = start_peer("seed", cmd);
    assert_eq!(started.have, started.pieces);
    s.tracker.expect_join(&started.peer_id, STEP);
    (seed, started)
}

/// Stops `seed` with SIGTERM and returns the bytes it uploaded.
fn stop_and_count_upload(mut seed: Proc) -> u64 {
    seed.signal(libc::SIGTERM);
    let status = seed.wait_exit(STEP).unwrap();
    assert!(status.success(), "seed exit: {status}\n{}", seed.output());
    expect_event!(seed, STEP, Event::Stopped { uploaded, .. } => uploaded)
}

/// Runs leecher `cmd` (`--exit-when-done`, into `leech/`) to its clean
/// exit, checks its copy, and returns it with its `done` event.
fn leech_to_the_end(s: &Scenario, cmd: std::process::Command) -> (Proc, SwarmDone) {
    let (mut leech, _) = start_peer("leech", cmd);
    let done = expect_done(&mut leech);
    let status = leech.wait_exit(STEP).unwrap();
    assert!(status.success(), "leech exit: {status}\n{}", leech.output());
    assert!(s.has_right_copy("leech"), "the leecher's copy differs");
    (leech, done)
}

#[test]
fn a_super_seeder_uploads_about_one_copy_to_four_leechers() {
    let size = 8 * MIB;
    let mut s = Scenario::new(size, 64 * KIB, 21, &[]);
    let (seed, seed_ev) = start_super_seeder(&mut s);
    // The leechers stay after they are done (as in a swarm that seeds on),
    // so no piece has to be offered twice because its only holder left.
    let names: Vec<String> = (0..4).map(|i| format!("leech{i}")).collect();
    let mut leechers: Vec<Proc> = names
        .iter()
        .map(|name| Proc::spawn(name, peer_command(&s.torrent, &s.path(name))))
        .collect();
    let mut from_seed = 0;
    for leech in &mut leechers {
        let done = expect_done(leech);
        assert_eq!(done.bytes, size, "{}: {done:?}", leech.name);
        from_seed += done.downloaded_from(&seed_ev.peer_id);
    }
    for (leech, name) in leechers.iter_mut().zip(&names) {
        leech.signal(libc::SIGTERM);
        assert!(
            leech.wait_exit(STEP).unwrap().success(),
            "{}",
            leech.output()
        );
        assert!(s.has_right_copy(name), "{name}: downloaded file differs");
    }
    let uploaded = stop_and_count_upload(seed);
    // The leechers count the pieces they kept; a piece that two of them
    // asked for at the end (end-game) counts only once.
    assert!(uploaded >= from_seed, "sent {uploaded}, kept {from_seed}");
    // Every piece leaves the seeder at least once, and without super-seeding
    // four leechers on loopback take well over one copy from it.
    assert!(
        (size..=size + size / 10).contains(&uploaded),
        "the super-seeder uploaded {uploaded} bytes for a file of {size}"
    );
}

#[test]
fn a_lone_leecher_gets_the_whole_file_from_a_super_seeder() {
    let size = 8 * MIB;
    let mut s = Scenario::new(size, 64 * KIB, 22, &[]);
    let (seed, seed_ev) = start_super_seeder(&mut s);
    let (_, done) = leech_to_the_end(&s, s.leecher_command("leech"));
    // Nobody to spread to: each piece is offered once, and sent once but
    // for a few at the very end, which the leecher's end-game may ask for
    // again while it verifies them.
    assert_eq!(done.downloaded_from(&seed_ev.peer_id), size);
    let uploaded = stop_and_count_upload(seed);
    assert!(
        (size..=size + size / 10).contains(&uploaded),
        "the super-seeder uploaded {uploaded} bytes for a file of {size}"
    );
}

#[test]
fn super_seed_is_ignored_by_a_peer_without_the_whole_file() {
    let mut s = Scenario::new(MIB, 64 * KIB, 23, &[]);
    let (_seed, _) = s.start_seeder("seed");
    // A leecher started with --super-seed downloads as usual.
    let mut cmd = s.leecher_command("leech");
    cmd.arg("--super-seed");
    let (leech, _) = leech_to_the_end(&s, cmd);
    assert!(
        leech.output().contains("--super-seed ignored"),
        "no warning:\n{}",
        leech.output()
    );
}

//! A small run of the P2P-vs-C/S testbed (examples/lan_testbed.rs): one
//! server and 3 clients on an emulated LAN, a 4 MiB file, 20 Mbit/s uploads.
//! Every setup must deliver byte-identical files to every client, in a time
//! that respects the lower bound and stays within a generous factor of it;
//! a super-seeding seeder must upload about one copy of the file.
//! A sanity check of the harness and the binaries, not a benchmark.
//! Needs root (network namespaces, tc); skipped with a message otherwise.

use lanswarm::netns::skip_unless_root;
use lanswarm::testbed::{Outcome, Params, Setup, Testbed};

const N: usize = 3;

fn check(outcome: &Outcome, max_ratio: f64) {
    assert_eq!(outcome.client_seconds.len(), N, "{outcome:?}");
    // tbf holds every host to its rate, so nobody beats the bound (a little
    // slack for the token bucket's initial burst).
    assert!(
        outcome.seconds >= 0.9 * outcome.bound,
        "{} faster than its lower bound: {outcome:?}",
        outcome.setup.label()
    );
    assert!(
        outcome.ratio() <= max_ratio,
        "{} took {:.2} s, more than {max_ratio} × its bound {:.2} s: {outcome:?}",
        outcome.setup.label(),
        outcome.seconds,
        outcome.bound
    );
}

#[test]
fn both_setups_deliver_verified_files_near_their_bounds() {
    if skip_unless_root("both_setups_deliver_verified_files_near_their_bounds") {
        return;
    }
    let params = Params {
        rate_mbit: 20,
        server_rate_mbit: None,
        down_mbit: None,
        file_bytes: 4 * 1024 * 1024,
    };
    let mut bed = Testbed::new(N, params).expect("building the testbed");
    // `run` checks every client's copy byte for byte against the original.
    let cs = bed.run(Setup::ClientServer, N).expect("C/S run");
    check(&cs, 2.0);
    let p2p = bed.run(Setup::PeerToPeer, N).expect("P2P run");
    check(&p2p, 5.0);
    // With 3 clients, sharing beats serving each copy from one upload.
    assert!(p2p.seconds < cs.seconds, "P2P {p2p:?} vs C/S {cs:?}");
    // Super-seeding: each piece leaves the seeder once (a few more only if
    // a piece's sole holder left, which these leechers do not).
    let ss = bed.run(Setup::SuperSeed, N).expect("super-seed run");
    check(&ss, 5.0);
    let copies = ss
        .server_copies(bed.params().file_bytes)
        .expect("done events name their peers");
    assert!(
        (1.0..=1.1).contains(&copies),
        "the super-seeder uploaded {copies:.2} copies: {ss:?}"
    );
}

//! Trackers replicating over multicast, in network namespaces on one bridge
//! (needs root; skips otherwise):
//!
//! - three trackers hear each other; peers announced to different ones are
//!   listed by all, a leave on one removes the peer everywhere, a seed on
//!   one is a seed everywhere, and every status names the tracker each peer
//!   announced to;
//! - a fourth tracker started late holds the same state within seconds;
//! - forged datagrams (from outside `--replicate-from`, or claiming a
//!   tracker's own id) and garbage (malformed, oversize) are counted and
//!   change nothing;
//! - real peers announced to different trackers find each other and finish;
//! - one of three trackers killed mid-swarm: a leecher that announced to it
//!   fails over and finishes, and a peer joining afterwards through a
//!   survivor finds the seeder that only ever announced to the dead one.
//!
//! Everything waits on the trackers' typed events, never on sleeps.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use lanswarm::expect_event;
use lanswarm::fixture::{
    create_torrent, expect_done, start_peer, write_random_file, Started, STEP,
};
use lanswarm::mcast_lab::{lab, lab_with};
use lanswarm::netns::{Host, LanOptions};
use lanswarm::process::Proc;
use lanswarm::tracker_lab::{
    announce_from, peer_on, start_tracker_on, status_from, status_rows, HostTracker, PeerRow,
};
use peer::events::{Event as PeerEvent, Progress};
use tracker::events::ReplicaChange;
use tracker::replication::DEFAULT_GROUP;
use tracker::Event;
use wire::replica::{
    pack_changes, snapshot_request, PeerRecord, Record, SnapshotReason, TrackerId,
};
use wire::InfoHash;

const HASH: &str = "abababababababababababababababababababab";

/// Trackers accept datagrams from hosts 0, 1, 2 and 4 only: host 3 (the
/// peers' host, 10.77.0.4) is outside.
const ACCEPT: [&str; 8] = [
    "--replicate-from",
    "10.77.0.1",
    "--replicate-from",
    "10.77.0.2",
    "--replicate-from",
    "10.77.0.3",
    "--replicate-from",
    "10.77.0.5",
];

fn with_hash(event: &str) -> String {
    format!(r#","info_hash":"{HASH}","proto":1,"event":"{event}""#)
}

/// Waits until `t` has applied these replicas' changes, by peer port.
fn expect_replicated(t: &mut HostTracker, change: ReplicaChange, ports: &[u16]) {
    t.wait_all(STEP, ports.iter().copied(), |e| match e {
        Event::Replicated {
            peer, change: c, ..
        } if c == change => Some(peer.addr.port()),
        _ => None,
    });
}

fn rows_of(host: &Host, t: &HostTracker) -> BTreeSet<PeerRow> {
    status_rows(host, t.addr)
}

/// Sends datagrams to the replication group from inside `host`.
fn send_to_group(host: &Host, datagrams: &[Vec<u8>]) {
    let group: SocketAddr = DEFAULT_GROUP.parse().unwrap();
    host.ns()
        .run_inside(|| {
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            sock.set_multicast_ttl_v4(1).unwrap();
            for d in datagrams {
                sock.send_to(d, group).expect("send to the group");
            }
        })
        .unwrap();
}

/// Three trackers on hosts 0–2 started with `args`, once each has heard
/// the other two.
fn three_trackers(lan: &lanswarm::netns::Lan, args: &[&str]) -> Vec<HostTracker> {
    let mut t: Vec<HostTracker> = (0..3)
        .map(|i| start_tracker_on(lan.host(i), &format!("t{i}"), args))
        .collect();
    let ids: Vec<TrackerId> = t.iter().map(|t| t.id).collect();
    for (i, tracker) in t.iter_mut().enumerate() {
        let others = ids.iter().copied().filter(|id| *id != ids[i]);
        tracker.wait_all(STEP, others, |e| match e {
            Event::ReplicaHeard { id, .. } => Some(id),
            _ => None,
        });
    }
    t
}

/// A temporary directory holding `seed/data.bin` (`size` bytes) and its
/// torrent `t.torrent` (64 KiB pieces) naming `tracker`.
struct Files {
    tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    torrent: std::path::PathBuf,
}

impl Files {
    fn new(size: u64, seed: u64, tracker: SocketAddr) -> Files {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("seed").join("data.bin");
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        write_random_file(&data, size, seed);
        let torrent = create_torrent(
            &data,
            tracker,
            Some(64 << 10),
            &tmp.path().join("t.torrent"),
        );
        Files { tmp, data, torrent }
    }

    fn dir(&self, name: &str) -> std::path::PathBuf {
        self.tmp.path().join(name)
    }

    /// A seeder on `host` announcing to `tracker` only.
    fn start_seeder(&self, host: &Host, tracker: SocketAddr) -> (Proc, Started) {
        let cmd = peer_on(host, &self.torrent, &self.dir("seed"), &[tracker]);
        start_peer("seeder", cmd)
    }

    fn assert_copy(&self, name: &str) {
        assert!(
            lanswarm::files::same_file(&self.data, &self.dir(name).join("data.bin")),
            "{name} has a bad copy"
        );
    }
}

#[test]
fn trackers_replicate_converge_and_ignore_forgeries() {
    let Some(lan) = lab(5) else { return };
    let peers = lan.host(3);
    let mut t = three_trackers(&lan, &ACCEPT);
    let ids: Vec<TrackerId> = t.iter().map(|t| t.id).collect();

    // Three peers, each announced to a different tracker.
    for (i, port) in [7001u16, 7002, 7003].into_iter().enumerate() {
        let r = announce_from(
            peers,
            t[i].addr,
            port,
            &format!("p{port}"),
            &with_hash("started"),
        );
        assert_eq!(r.error_code, 0, "{r:?}");
    }
    expect_replicated(&mut t[0], ReplicaChange::Join, &[7002, 7003]);
    expect_replicated(&mut t[1], ReplicaChange::Join, &[7001, 7003]);
    expect_replicated(&mut t[2], ReplicaChange::Join, &[7001, 7002]);
    // Every tracker lists the others to each.
    for (i, port) in [7001u16, 7002, 7003].into_iter().enumerate() {
        let r = announce_from(peers, t[i].addr, port, &format!("p{port}"), &with_hash(""));
        let listed: BTreeSet<u16> = r.peers.iter().map(|p| p.peer_port).collect();
        let others: BTreeSet<u16> = [7001, 7002, 7003]
            .into_iter()
            .filter(|p| *p != port)
            .collect();
        assert_eq!(listed, others, "tracker {i}");
    }

    // 7002 (announced to t1) leaves through t0; 7003 (on t2) completes.
    announce_from(peers, t[0].addr, 7002, "p7002", &with_hash("stopped"));
    announce_from(peers, t[2].addr, 7003, "p7003", &with_hash("completed"));
    expect_replicated(&mut t[1], ReplicaChange::Leave, &[7002]);
    expect_replicated(&mut t[2], ReplicaChange::Leave, &[7002]);
    expect_replicated(&mut t[0], ReplicaChange::Seed, &[7003]);
    expect_replicated(&mut t[1], ReplicaChange::Seed, &[7003]);
    let expected: BTreeSet<PeerRow> = BTreeSet::from([
        (
            HASH.into(),
            "10.77.0.4:7001".into(),
            "p7001".into(),
            false,
            Some(ids[0]),
        ),
        (
            HASH.into(),
            "10.77.0.4:7003".into(),
            "p7003".into(),
            true,
            Some(ids[2]),
        ),
    ]);
    for (i, tracker) in t.iter().enumerate() {
        assert_eq!(rows_of(lan.host(i), tracker), expected, "tracker {i}");
    }
    // Status shows whom t0 hears from, where, and that it misses nothing.
    let replication = status_from(lan.host(0), t[0].addr).replication.unwrap();
    assert_eq!(replication.id, ids[0]);
    let heard: BTreeSet<(TrackerId, String)> = replication
        .replicas
        .iter()
        .map(|r| (r.id, r.addr.ip().to_string()))
        .collect();
    let expected_heard = BTreeSet::from([
        (ids[1], "10.77.0.2".to_string()),
        (ids[2], "10.77.0.3".to_string()),
    ]);
    assert_eq!(heard, expected_heard);
    assert!(
        replication.replicas.iter().all(|r| r.lag == 0 && r.seq > 0),
        "{replication:?}"
    );

    // A fourth tracker, started late, holds the same state within seconds.
    let started = Instant::now();
    let mut late = start_tracker_on(lan.host(4), "t3", &ACCEPT);
    late.wait_all(STEP, ids.iter().copied(), |e| match e {
        Event::SnapshotReceived { from, .. } => Some(from),
        _ => None,
    });
    let converged = started.elapsed();
    assert_eq!(rows_of(lan.host(4), &late), expected);
    eprintln!("a late tracker held the full state {converged:?} after it was started");
    assert!(converged.as_secs() < 10, "{converged:?}");
    t.push(late);

    // Forgeries from outside the accepted ranges: a join, one claiming t1's
    // id, a snapshot request. Garbage from inside: malformed, cut short,
    // oversize.
    let forged_peer = |sender: TrackerId, port| {
        let record = Record::Join(PeerRecord {
            swarm: HASH.parse::<InfoHash>().unwrap(),
            addr: SocketAddr::from(([10, 77, 0, 66], port)),
            age_ms: 0,
            origin: sender,
            seed: true,
            proto: Some(1),
            peer_id: "forged".into(),
        });
        pack_changes(sender, 1, &[record]).0.remove(0)
    };
    let stranger = TrackerId::new(0x5eed).unwrap();
    send_to_group(
        peers,
        &[
            forged_peer(stranger, 9001),
            forged_peer(ids[1], 9002),
            snapshot_request(stranger, 0, SnapshotReason::Gap),
        ],
    );
    let valid = forged_peer(stranger, 9003);
    send_to_group(
        lan.host(0),
        &[
            b"not a replication datagram".to_vec(),
            valid[..valid.len() - 3].to_vec(),
            vec![0x4c; 2000],
        ],
    );
    for tracker in &mut t {
        tracker.wait_event(STEP, |e| match e {
            Event::ReplicaDropped(d)
                if d.foreign >= 3 && d.malformed >= 2 && d.oversize >= 1 && d.own >= 1 =>
            {
                Some(())
            }
            _ => None,
        });
    }
    // Nothing changed, anywhere.
    for (i, tracker) in t.iter().enumerate() {
        let host = lan.host(if i == 3 { 4 } else { i });
        assert_eq!(rows_of(host, tracker), expected, "tracker {i}");
    }
}

#[test]
fn peers_on_different_trackers_find_each_other() {
    let Some(lan) = lab(6) else { return };
    // Default --replicate-from: the trackers' own subnet.
    let mut t = three_trackers(&lan, &[]);
    let f = Files::new(3 << 20, 7, t[0].addr);

    // The seeder announces to t0 only; each leecher to another tracker.
    let (_seeder, seeder) = f.start_seeder(lan.host(3), t[0].addr);
    t[0].wait_event(STEP, |e| match e {
        Event::Join { peer, .. } if peer.peer_id == seeder.peer_id => Some(()),
        _ => None,
    });
    let mut leechers: Vec<_> = [(4, 1), (5, 2)]
        .into_iter()
        .map(|(host, tracker)| {
            let dir = f.dir(&format!("l{host}"));
            let mut cmd = peer_on(lan.host(host), &f.torrent, &dir, &[t[tracker].addr]);
            cmd.arg("--exit-when-done");
            start_peer(&format!("leecher{host}"), cmd).0
        })
        .collect();
    for l in &mut leechers {
        expect_done(l);
    }
    for name in ["l4", "l5"] {
        f.assert_copy(name);
    }
}

#[test]
fn killing_a_tracker_mid_swarm_loses_nobody() {
    // Hosts' uploads limited to 16 Mbit/s: the download takes seconds, so a
    // tracker can be killed in the middle of it.
    let Some(lan) = lab_with(
        6,
        LanOptions {
            rate_mbit: Some(16),
            ipv6: false,
        },
    ) else {
        return;
    };
    let mut t = three_trackers(&lan, &[]);
    let f = Files::new(6 << 20, 8, t[1].addr);

    // The seeder only ever announces to t1, the tracker about to die.
    let (_seeder, seeder) = f.start_seeder(lan.host(3), t[1].addr);
    t[2].wait_event(STEP, |e| match e {
        Event::Replicated {
            peer,
            change: ReplicaChange::Join,
            ..
        } if peer.peer_id == seeder.peer_id => Some(()),
        _ => None,
    });
    // A leecher announcing to t1 first, with t2 and t0 to fall back on.
    let fallbacks = [t[1].addr, t[2].addr, t[0].addr];
    let mut cmd = peer_on(lan.host(4), &f.torrent, &f.dir("l1"), &fallbacks);
    cmd.arg("--exit-when-done");
    let (mut l1, _) = start_peer("l1", cmd);
    let first = expect_event!(l1, STEP, PeerEvent::Announced { tracker, .. } => tracker);
    assert_eq!(first, t[1].addr.to_string());
    expect_event!(l1, STEP, PeerEvent::Progress(Progress::Swarm { have, pieces, .. })
        if have > 0 && have < pieces);
    t[1].proc.kill();

    // It finishes, and tells a surviving tracker (t2, next in its list).
    expect_done(&mut l1);
    let told = expect_event!(l1, STEP, PeerEvent::Announced { tracker, announce: Some(a), .. }
        if a == "completed" => tracker);
    assert_eq!(told, t[2].addr.to_string());
    assert_eq!(l1.wait_exit(STEP).unwrap().code(), Some(0));

    // A peer joining now through t0 finds the seeder, which only ever
    // announced to the dead tracker, and completes.
    let mut cmd = peer_on(lan.host(5), &f.torrent, &f.dir("l2"), &[t[0].addr]);
    cmd.arg("--exit-when-done");
    let (mut l2, _) = start_peer("l2", cmd);
    expect_done(&mut l2);
    for name in ["l1", "l2"] {
        f.assert_copy(name);
    }
}

/// Issue 11 across replicas: three chat members, each registered with a
/// different one of three replicating trackers, see each other and talk.
#[test]
fn a_chat_room_spans_three_replicating_trackers() {
    use lanswarm::chat_lab::Member;
    let Some(lan) = lab(3) else { return };
    let t = three_trackers(&lan, &["--interval", "2"]);
    let member = |i: usize, name: &str| {
        let mut cmd = lan.host(i).command(lanswarm::process::bin_path("peer"));
        cmd.args(["chat", "--json", "--name", name, "--no-discover"])
            .args(["--tracker", &t[i].addr.to_string()])
            .args(["--listen", &format!("{}:0", lan.host(i).ipv4())]);
        Member::spawn(name, cmd)
    };
    let mut ann = member(0, "ann");
    let mut bob = member(1, "bob");
    // bob learns of ann (registered with another tracker) through the replica.
    assert_eq!(bob.online, ["ann"]);
    ann.expect_joined("bob");
    let mut cid = member(2, "cid");
    let mut online = cid.online.clone();
    online.sort();
    assert_eq!(online, ["ann", "bob"]);
    ann.expect_joined("cid");
    bob.expect_joined("cid");
    let (seq, to) = cid.say("across trackers");
    assert_eq!(to.len(), 2, "{to:?}");
    cid.expect_delivered(seq, 2);
    for m in [&mut ann, &mut bob] {
        let (from, text, _) = m.expect_message();
        assert_eq!((from.as_str(), text.as_str()), ("cid", "across trackers"));
    }
}

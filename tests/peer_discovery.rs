//! Swarms without a tracker: peers find each other by LAN discovery (BEP 14)
//! between network namespaces on a bridge. Needs root; skips without it.

use std::path::{Path, PathBuf};
use std::process::Command;

use lanswarm::expect_event;
use lanswarm::files::{same_file, write_random_file};
use lanswarm::fixture::{expect_done, STEP};
use lanswarm::netns::{skip_unless_root, Host, Lan, LanOptions};
use lanswarm::process::{bin_path, command, Proc};
use peer::events::{Event, Started};

/// A data file and its tracker-less torrent in a temporary directory.
struct Data {
    tmp: tempfile::TempDir,
    torrent: PathBuf,
    info_hash: String,
}

impl Data {
    fn new(size: u64, seed: u64) -> Data {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        write_random_file(&src.join("data.bin"), size, seed);
        let torrent = tmp.path().join("data.torrent");
        let out = command("peer")
            .arg("create")
            .arg(src.join("data.bin"))
            .args(["--no-tracker", "--piece-length", "65536", "--json", "-o"])
            .arg(&torrent)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let Event::Created { info_hash, .. } = serde_json::from_slice(&out.stdout).unwrap() else {
            panic!("no created event");
        };
        assert!(!std::fs::read_to_string(&torrent)
            .unwrap()
            .contains("announce"));
        Data {
            tmp,
            torrent,
            info_hash,
        }
    }

    fn src(&self) -> PathBuf {
        self.tmp.path().join("src")
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// `peer --torrent T --dir DIR --json` on `host`, discovering (the default).
fn peer_on(host: &Host, torrent: &Path, dir: &Path, extra: &[&str]) -> (Proc, Started) {
    let mut cmd: Command = host.command(bin_path("peer"));
    cmd.arg("--torrent")
        .arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--json"])
        .args(extra);
    let mut proc = Proc::spawn(host.name(), cmd);
    let started = expect_event!(proc, STEP, Event::Started(s) => s);
    (proc, started)
}

fn lan(n: usize) -> Option<Lan> {
    let test = std::thread::current();
    if skip_unless_root(test.name().unwrap_or("discovery test")) {
        return None;
    }
    Some(Lan::new(n, LanOptions::default()).expect("building the test LAN"))
}

#[test]
fn one_seed_and_three_leechers_swarm_with_no_tracker_anywhere() {
    let Some(lan) = lan(4) else { return };
    let data = Data::new(2 << 20, 61);
    let (_seed, _) = peer_on(lan.host(0), &data.torrent, &data.src(), &[]);
    let mut leechers: Vec<(Proc, PathBuf)> = (1..4)
        .map(|i| {
            let dir = data.dir(&format!("leech{i}"));
            let (p, started) = peer_on(lan.host(i), &data.torrent, &dir, &["--exit-when-done"]);
            assert_eq!(started.have, 0);
            (p, dir)
        })
        .collect();
    for (p, dir) in &mut leechers {
        let found = expect_event!(p, STEP, Event::PeerDiscovered { info_hash, via, .. } => (info_hash, via));
        assert_eq!(found, (data.info_hash.clone(), "lsd-v4".to_string()));
        expect_done(p);
        assert!(p.wait_exit(STEP).unwrap().success(), "{}", p.output());
        assert!(same_file(
            &data.src().join("data.bin"),
            &dir.join("data.bin")
        ));
    }
}

#[test]
fn a_host_on_another_bridge_never_connects_and_two_swarms_do_not_mix() {
    let Some(lan) = lan(3) else { return };
    let Some(other) = lan_other() else { return };
    let (a, b) = (Data::new(1 << 20, 62), Data::new(1 << 20, 63));
    // Swarm A seeds on host 0, swarm B on host 1; host 2 leeches both.
    let (_seed_a, _) = peer_on(lan.host(0), &a.torrent, &a.src(), &[]);
    let (_seed_b, _) = peer_on(lan.host(1), &b.torrent, &b.src(), &[]);
    // The far host, on a bridge of its own, wants swarm A too.
    let (mut far, _) = peer_on(other.host(0), &a.torrent, &a.dir("far"), &[]);
    for (data, name) in [(&a, "la"), (&b, "lb")] {
        let dir = data.dir(name);
        let (mut p, _) = peer_on(lan.host(2), &data.torrent, &dir, &["--exit-when-done"]);
        expect_done(&mut p);
        assert!(p.wait_exit(STEP).unwrap().success(), "{}", p.output());
        // Every peer it heard of was of its own swarm.
        for line in p.output().lines().filter_map(|l| l.strip_prefix("out| ")) {
            if let Ok(Event::PeerDiscovered { info_hash, .. }) = serde_json::from_str(line) {
                assert_eq!(info_hash, data.info_hash, "{name} heard another swarm");
            }
        }
        assert!(same_file(
            &data.src().join("data.bin"),
            &dir.join("data.bin")
        ));
    }
    // By now the far host has had every chance to hear the LAN: it heard nothing.
    far.signal(libc::SIGTERM);
    assert!(far.wait_exit(STEP).unwrap().success());
    let out = far.output();
    assert!(
        !out.contains("peer_discovered") && !out.contains("peer_connected"),
        "{out}"
    );
}

fn lan_other() -> Option<Lan> {
    Some(Lan::new(1, LanOptions::default()).expect("building the second LAN"))
}

/// Junk and forged announces, as fast as Python sends them, from host 1.
const FLOOD: &str = r#"
import socket, sys, os
ih = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
forged = ("BT-SEARCH * HTTP/1.1\r\nHost: x\r\nPort: %d\r\nInfohash: " + ih + "\r\n\r\n\r\n")
print("ready", flush=True)
n = 0
while n < 30000:
    if n % 3 == 0:
        s.sendto(os.urandom(n % 1500), ("239.192.152.143", 6771))
    else:
        s.sendto((forged % (1 + n % 60000)).encode(), ("239.192.152.143", 6771))
    n += 1
print("done", flush=True)
"#;

#[test]
fn a_flood_of_junk_and_forged_announces_does_not_stop_the_swarm() {
    let Some(lan) = lan(4) else { return };
    // The seeder's link is slow enough (20 Mbit/s) that the flood runs
    // while the transfer does; the flooding host is not limited.
    lan.host(0).set_rate(Some(20)).unwrap();
    let data = Data::new(6 << 20, 64);
    let (_seed, _) = peer_on(lan.host(0), &data.torrent, &data.src(), &[]);
    let dir = data.dir("leech");
    let (mut leech, _) = peer_on(lan.host(2), &data.torrent, &dir, &["--exit-when-done"]);
    expect_event!(leech, STEP, Event::PeerConnected { .. });
    let mut flood = Proc::spawn("flood", {
        let mut cmd = lan.host(1).command("python3");
        cmd.args(["-u", "-c", FLOOD, &data.info_hash]);
        cmd
    });
    flood.expect_line("ready", STEP);
    expect_done(&mut leech);
    assert!(
        leech.wait_exit(STEP).unwrap().success(),
        "{}",
        leech.output()
    );
    assert!(same_file(
        &data.src().join("data.bin"),
        &dir.join("data.bin")
    ));
    flood.expect_line("done", STEP);
    // After the flood a newcomer still finds the seeder at once: the
    // forged announces took at most a few places in its table.
    let dir = data.dir("newcomer");
    let (mut late, _) = peer_on(lan.host(3), &data.torrent, &dir, &["--exit-when-done"]);
    expect_done(&mut late);
    assert!(late.wait_exit(STEP).unwrap().success(), "{}", late.output());
    assert!(same_file(
        &data.src().join("data.bin"),
        &dir.join("data.bin")
    ));
}

#[test]
fn a_chat_room_forms_with_no_tracker() {
    use lanswarm::chat_lab::Member;
    let Some(lan) = lan(3) else { return };
    let member = |i: usize, name: &str| {
        let mut cmd = lan.host(i).command(bin_path("peer"));
        cmd.args(["chat", "--json", "--name", name, "--room", "lan-only"]);
        Member::spawn(name, cmd)
    };
    let mut ann = member(0, "ann");
    let mut bob = member(1, "bob");
    ann.expect_joined("bob");
    bob.expect_joined("ann");
    let mut cid = member(2, "cid");
    ann.expect_joined("cid");
    bob.expect_joined("cid");
    // cid speaks once it has met both (it may hear of them in either order).
    cid.expect_joined_all(&["ann", "bob"]);
    let (seq, to) = cid.say("hello, LAN");
    assert_eq!(to.len(), 2, "{to:?}");
    cid.expect_delivered(seq, 2);
    for m in [&mut ann, &mut bob] {
        let (from, text, private) = m.expect_message();
        assert_eq!(
            (from.as_str(), text.as_str(), private),
            ("cid", "hello, LAN", false)
        );
    }
}

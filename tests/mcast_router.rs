//! Multicast across a router ([`lanswarm::router_lab`]): two segments, a
//! router namespace running smcroute or pimd from Debian.
//!
//! - smcroute (static routes): `mcast send --ttl 1` stays on its segment,
//!   `--ttl 2` and more cross, arriving with one less; a source-specific
//!   join across the router receives only its source.
//! - pimd (PIM-SM, IGMP): the router forwards a group to a segment while a
//!   host there is a member, stops after an IGMPv2 leave within the last
//!   member query time and after an IGMPv3 leave within the group membership
//!   interval, and forwards a source-specific join only from its source.
//! - No daemon: a swarm (`tracker`, `peer`) with peers on both segments.
//!
//! Needs root; a test whose daemon is not installed (smcroute and pimd
//! conflict: `.ci/run` installs one, then the other) skips and says why.

use lanswarm::expect_event;
use lanswarm::fixture::{
    create_torrent, expect_done, same_file, start_peer, write_random_file, TrackerProc, STEP,
};
use lanswarm::mcast_lab::{expect, python, send, start, T};
use lanswarm::netns::{skip_unless_root, Host};
use lanswarm::process::{bin_path, Proc};
use lanswarm::router_lab::{
    skip_unless_daemon, started_or_skip, Daemon, PimdOptions, RouterLab, RunningDaemon, Side,
    StaticRoute,
};
use mcast::events::RecvMessage;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tracker::events::Event as TrackerEvent;

/// The running test's name (the harness names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

/// The lab and its daemon, or `None` (after saying why) when the test must skip.
fn lab_with(
    daemon: Daemon,
    a: usize,
    b: usize,
    routes: &[StaticRoute],
) -> Option<(RouterLab, RunningDaemon)> {
    let test = test_name();
    if skip_unless_daemon(&test, daemon) {
        return None;
    }
    let lab = RouterLab::new(a, b).expect("building the router lab");
    let started = match daemon {
        Daemon::Smcroute => lab.start_smcroute(routes),
        Daemon::Pimd => lab.start_pimd(PIMD),
    };
    let running = started_or_skip(&test, started)?;
    eprintln!(
        "{test}: {} ready after {:.1} s",
        daemon.program(),
        running.ready_after.as_secs_f64()
    );
    Some((lab, running))
}

/// Two hosts on segment A, `b` on B, and smcroute forwarding `group` from A to B.
fn smcroute_a_to_b(group: &str, b: usize) -> Option<(RouterLab, RunningDaemon)> {
    let route = StaticRoute::any_source(Side::A, group.parse().unwrap(), Side::B);
    lab_with(Daemon::Smcroute, 2, b, &[route])
}

/// `mcast recv --no-ack` on `host`, joined.
fn recv(host: &Host, name: &str, group: &str, source: Option<&Host>) -> Proc {
    let mut args = vec!["recv", "--no-ack", "--group", group];
    let src = source.map(|s| s.ipv4().to_string());
    if let Some(s) = &src {
        args.extend(["--source", s]);
    }
    start(host, name, &args)
}

/// `mcast send TEXT --group G --ttl N` from `host`, `count` times 100 ms apart.
fn send_to(host: &Host, text: &str, group: &str, ttl: u8, count: u32) {
    let (ttl, count) = (ttl.to_string(), count.to_string());
    let args = [
        text,
        "--group",
        group,
        "--ttl",
        &ttl,
        "--count",
        &count,
        "--interval",
        "100ms",
        "--wait",
        "0ms",
    ];
    assert_eq!(
        send(host, &args).sent,
        u64::from(count.parse::<u32>().unwrap())
    );
}

fn from(host: &Host) -> IpAddr {
    IpAddr::V4(host.ipv4())
}

#[test]
fn ttl_1_stays_on_its_segment_ttl_2_crosses_the_router_one_lower() {
    const G: &str = "239.77.1.1";
    let Some((lab, _smcroute)) = smcroute_a_to_b(G, 1) else {
        return;
    };
    let (sender, near_host) = (lab.host(Side::A, 0), lab.host(Side::A, 1));
    let mut near = recv(near_host, "recv-a", G, None);
    let mut far = recv(lab.host(Side::B, 0), "recv-b", G, None);

    send_to(sender, "ttl1", G, 1, 1);
    let m: RecvMessage = expect(&mut near);
    assert_eq!((m.text.as_str(), m.ttl), ("ttl1", Some(1)));

    send_to(sender, "ttl2", G, 2, 1);
    let m: RecvMessage = expect(&mut near);
    assert_eq!((m.text.as_str(), m.ttl), ("ttl2", Some(2)));
    // The first datagram across the router is the TTL 2 one, one lower.
    let m: RecvMessage = expect(&mut far);
    assert_eq!((m.text.as_str(), m.ttl), ("ttl2", Some(1)));
    assert_eq!(m.from.ip(), from(sender));

    send_to(sender, "ttl9", G, 9, 1);
    let m: RecvMessage = expect(&mut far);
    assert_eq!((m.text.as_str(), m.ttl), ("ttl9", Some(8)));
}

#[test]
fn ssm_join_across_smcroute_receives_only_its_source() {
    const S: &str = "232.77.1.1";
    let Some((lab, _smcroute)) = smcroute_a_to_b(S, 2) else {
        return;
    };
    let (wanted, other) = (lab.host(Side::A, 0), lab.host(Side::A, 1));
    let mut ssm = recv(lab.host(Side::B, 0), "recv-ssm", S, Some(wanted));
    let mut witness = recv(lab.host(Side::B, 1), "recv-any", S, None);

    // The other source's datagram crosses (the witness gets it) …
    send_to(other, "from-other", S, 2, 1);
    let m: RecvMessage = expect(&mut witness);
    assert_eq!((m.text.as_str(), m.from.ip()), ("from-other", from(other)));
    // … but the source-specific receiver's first datagram is the wanted one's.
    send_to(wanted, "from-wanted", S, 2, 1);
    let m: RecvMessage = expect(&mut ssm);
    assert_eq!(
        (m.text.as_str(), m.from.ip()),
        ("from-wanted", from(wanted))
    );
    assert_eq!(m.ttl, Some(1));
}

/// Prints every UDP datagram an interface sees (incoming), as JSON lines.
const PY_SNIFFER: &str = r#"
import json, socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind((sys.argv[1], 0x0800))
print(json.dumps({"event": "ready"}), flush=True)
while True:
    p = s.recv(65535)
    if len(p) < 28 or p[9] != 17:
        continue
    ihl = (p[0] & 15) * 4
    total = struct.unpack("!H", p[2:4])[0]
    print(json.dumps({"event": "udp", "dst": socket.inet_ntoa(p[16:20]),
                      "text": p[ihl + 8:total].decode("latin-1")}), flush=True)
"#;

/// What the sniffer prints.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Sniffed {
    Ready,
    Udp { dst: IpAddr, text: String },
}

/// pimd with a 2 s IGMP query interval: its group membership interval is
/// then 3 × 2 + 10 = 16 s.
const PIMD: PimdOptions = PimdOptions {
    igmp_query_interval: Some(2),
};
/// pimd's last member query time after an IGMPv2 leave (RFC 2236 defaults,
/// compiled into pimd): 2 group-specific queries 1 s apart.
const LAST_MEMBER_QUERY_TIME: Duration = Duration::from_secs(2);
/// Slack for a loaded machine on top of the daemon's timers.
const SLACK: Duration = Duration::from_secs(5);

#[test]
fn pimd_forwards_to_members_only_and_stops_after_they_leave() {
    const G2: &str = "239.77.2.2"; // joined with IGMPv2
    const G3: &str = "239.77.2.3"; // joined with IGMPv3
    const S: &str = "232.77.2.1"; // source-specific
    let Some((lab, mut pimd)) = lab_with(Daemon::Pimd, 2, 3, &[]) else {
        return;
    };
    let (a0, a1) = (lab.host(Side::A, 0), lab.host(Side::A, 1));
    let (b0, b1, b2) = (
        lab.host(Side::B, 0),
        lab.host(Side::B, 1),
        lab.host(Side::B, 2),
    );
    b0.ns()
        .sysctl("net.ipv4.conf.eth0.force_igmp_version", "2")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sniffer = Proc::spawn(
        "sniffer",
        python(b2, dir.path(), "sniff.py", PY_SNIFFER, &["eth0"]),
    );
    sniffer.wait_event(T, |e: Sniffed| matches!(e, Sniffed::Ready).then_some(()));

    // Members on segment B make the router forward, one TTL lower.
    let mut r2 = recv(b0, "recv-v2", G2, None);
    let mut r3 = recv(b1, "recv-v3", G3, None);
    let mut ssm = recv(b2, "recv-ssm", S, Some(a0));
    for (group, receiver) in [(G2, &mut r2), (G3, &mut r3)] {
        send_to(a0, "crossed", group, 2, 3);
        let m: RecvMessage = expect(receiver);
        assert_eq!((m.text.as_str(), m.ttl), ("crossed", Some(1)), "{group}");
    }

    // Source-specific: the router forwards the joined source only.
    send_to(a1, "from-a1", S, 2, 3);
    send_to(a0, "from-a0", S, 2, 3);
    let m: RecvMessage = expect(&mut ssm);
    assert_eq!((m.text.as_str(), m.from.ip()), ("from-a0", from(a0)));
    sniffer.wait_event(T, |e: Sniffed| match e {
        Sniffed::Udp { text, .. } if text == "from-a0" => Some(()),
        Sniffed::Udp { text, .. } if text == "from-a1" => {
            panic!("the router forwarded a source nobody joined")
        }
        _ => None,
    });
    let (a0_ip, s_group) = (a0.ipv4(), S.parse::<Ipv4Addr>().unwrap());
    let mroutes = lab.mroutes().unwrap();
    let forwards = |src: Ipv4Addr| {
        mroutes
            .iter()
            .any(|m| m.source == src && m.group == s_group && m.forwards_to(Side::B))
    };
    assert!(forwards(a0_ip) && !forwards(a1.ipv4()), "{mroutes:?}");

    // The kernel route for each group goes to segment B now; after the
    // leaves pimd takes segment B off it again.
    let to_b = |g: &str| format!("src {a0_ip} grp {g} from eth-a to eth-b");
    let off_b = |g: &str| format!("src {a0_ip} grp {g} from eth-a to register_vif0");
    pimd.expect_log(&[&to_b(G2)], T);
    pimd.expect_log(&[&to_b(G3)], T);
    let left = Instant::now();
    for r in [&mut r2, &mut r3] {
        r.signal(libc::SIGTERM);
        assert!(r.wait_exit(T).unwrap().success());
    }
    // IGMPv2 leave: group-specific queries, then the group is gone.
    pimd.expect_log(&[&off_b(G2)], LAST_MEMBER_QUERY_TIME + SLACK);
    let v2_stop = left.elapsed();
    // IGMPv3 leave (a TO_IN({}) record): pimd 2.3.2 ignores it, so the group
    // lasts until its membership interval runs out after the last report.
    pimd.expect_log(&[&off_b(G3)], PIMD.group_membership_interval() + SLACK);
    let v3_stop = left.elapsed();
    eprintln!(
        "{}: forwarding stopped {:.1} s after an IGMPv2 leave, {:.1} s after an IGMPv3 leave",
        test_name(),
        v2_stop.as_secs_f64(),
        v3_stop.as_secs_f64()
    );

    // And nothing crosses any more: datagrams sent to both groups before a
    // marker the SSM member still gets never reach segment B.
    send_to(a0, "late", G2, 2, 1);
    send_to(a0, "late", G3, 2, 1);
    send_to(a0, "marker", S, 2, 1);
    sniffer.wait_event(T, |e: Sniffed| match e {
        Sniffed::Udp { text, dst, .. } if text == "late" => {
            panic!("a datagram for {dst} crossed after its last member left")
        }
        Sniffed::Udp { text, .. } if text == "marker" => Some(()),
        _ => None,
    });
}

/// `tracker --listen ADDR --json` on `host`, listening.
fn start_tracker_on(host: &Host, addr: SocketAddr) -> TrackerProc {
    let mut cmd = host.command(bin_path("tracker"));
    cmd.args(["--listen", &addr.to_string(), "--json"]);
    let mut proc = Proc::spawn("tracker", cmd);
    expect_event!(proc, STEP, TrackerEvent::Listening { .. });
    TrackerProc { proc, addr }
}

/// `peer --torrent T --dir DIR --listen IP:0 --json` on `host`.
fn peer_on(host: &Host, torrent: &Path, dir: &Path) -> Command {
    let mut cmd = host.command(bin_path("peer"));
    cmd.arg("--torrent")
        .arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--listen", &format!("{}:0", host.ipv4()), "--json"]);
    cmd
}

#[test]
fn swarm_with_peers_on_both_segments_works_across_the_router() {
    if skip_unless_root(&test_name()) {
        return;
    }
    let lab = RouterLab::new(2, 2).expect("building the router lab");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data.bin");
    write_random_file(&data, 2 << 20, 77);
    let tracker_addr = SocketAddr::new(from(lab.host(Side::A, 0)), 6969);
    let mut tracker = start_tracker_on(lab.host(Side::A, 0), tracker_addr);
    let torrent = create_torrent(
        &data,
        tracker_addr,
        Some(64 << 10),
        &tmp.path().join("t.torrent"),
    );

    let seed_dir = tmp.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::copy(&data, seed_dir.join("data.bin")).unwrap();
    let (_seeder, seeded) =
        start_peer("seeder", peer_on(lab.host(Side::A, 1), &torrent, &seed_dir));
    assert_eq!(seeded.have, seeded.pieces);
    tracker.expect_join(&seeded.peer_id, STEP);

    // Leechers on both segments, one on A beside the seeder, two across.
    let leechers: Vec<(&Host, String)> = [(Side::A, 0), (Side::B, 0), (Side::B, 1)]
        .into_iter()
        .map(|(side, i)| (lab.host(side, i), format!("leech-{side:?}{i}")))
        .collect();
    let mut running: Vec<Proc> = leechers
        .iter()
        .map(|(host, name)| {
            let mut cmd = peer_on(host, &torrent, &tmp.path().join(name));
            cmd.arg("--exit-when-done");
            start_peer(name, cmd).0
        })
        .collect();
    let mut from_a_to_b = 0;
    for ((host, name), proc) in leechers.iter().zip(&mut running) {
        let done = expect_done(proc);
        assert!(
            same_file(&data, &tmp.path().join(name).join("data.bin")),
            "{name} has a wrong copy"
        );
        let across: Vec<_> = done
            .peers
            .iter()
            .filter(|p| {
                let ip = p.addr.parse::<SocketAddr>().map(|a| a.ip());
                ip.is_ok_and(|ip| !same_segment(ip, host))
            })
            .collect();
        assert!(
            !across.is_empty(),
            "{name} met no peer across the router: {done:?}"
        );
        if host.ipv4().octets()[2] == Side::B.subnet() {
            from_a_to_b += across.iter().map(|p| p.downloaded).sum::<u64>();
        }
    }
    assert!(
        from_a_to_b > 0,
        "segment B downloaded nothing from segment A"
    );
}

/// Whether `ip` is on `host`'s segment (the same /24).
fn same_segment(ip: IpAddr, host: &Host) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == host.ipv4().octets()[..3],
        IpAddr::V6(_) => false,
    }
}

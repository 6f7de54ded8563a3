//! Group management on one segment, between namespace hosts: `mcast igmp`
//! watching joins and leaves made by `mcast recv` (IGMPv3, IGMPv2, SSM,
//! MLDv2, and a report with a bad checksum), `mcast groups` listing what
//! `mcast recv` joined, and two `mcast querier`s electing the lower
//! address, the other taking over when it dies. Needs root (skips otherwise).

use lanswarm::mcast_lab::*;
use lanswarm::netns::Host;
use lanswarm::process::Proc;
use mcast::events::{Event, IgmpSummary, Listening, QuerierStarted, Seen};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};
use wire::igmp::IgmpMessage;
use wire::membership::{GroupRecord, Query, RecordType};
use wire::mld::MldMessage;
use wire::procnet::{FilterMode, InterfaceGroups};

/// Starts `mcast igmp --iface eth0` on `host` and waits until it captures.
fn watch(host: &Host) -> Proc {
    let mut p = spawn(host, "igmp", &["igmp", "--iface", "eth0"]);
    let ready: Listening = expect(&mut p);
    assert_eq!(ready.iface.as_deref(), Some("eth0"));
    p
}

/// Waits for an IGMP message the watcher received from `from` that `pick`
/// accepts.
fn igmp_from<T>(
    watcher: &mut Proc,
    from: &Host,
    mut pick: impl FnMut(&Seen<IgmpMessage>) -> Option<T>,
) -> T {
    let from = IpAddr::V4(from.ipv4());
    watcher.wait_event(T, |e: Event| match e {
        Event::Igmp(seen) if seen.src == from => pick(&seen),
        _ => None,
    })
}

/// The record for `group` in a v3 report, if the message is one.
fn record(m: &IgmpMessage, group: Ipv4Addr) -> Option<GroupRecord<Ipv4Addr>> {
    match m {
        IgmpMessage::V3Report { records } => records.iter().find(|r| r.group == group).cloned(),
        _ => None,
    }
}

/// Stops a process with SIGTERM and waits for its clean exit.
fn stop(p: &mut Proc) {
    p.signal(libc::SIGTERM);
    let status = p.wait_exit(T).unwrap();
    assert!(
        status.success(),
        "{} failed: {status}\n{}",
        p.name,
        p.output()
    );
}

/// Sends an IGMPv2 report for a group with its checksum's lowest bit flipped.
const PY_BAD_CHECKSUM: &str = r#"
import socket, struct, sys
group = socket.inet_aton(sys.argv[1])
body = bytes([0x16, 0, 0, 0]) + group
total = sum(struct.unpack("!4H", body))
while total >> 16:
    total = (total & 0xffff) + (total >> 16)
wrong = (~total & 0xffff) ^ 1
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.sendto(body[:2] + struct.pack("!H", wrong) + group, (sys.argv[1], 0))
print('{"event":"sent"}', flush=True)
"#;

#[test]
fn igmp_shows_joins_and_leaves_of_recv_decoded() {
    let Some(lan) = lab(4) else {
        return;
    };
    let (v3_host, v2_host, watcher_host, ssm_source) =
        (lan.host(0), lan.host(1), lan.host(2), lan.host(3));
    v2_host
        .ns()
        .sysctl("net.ipv4.conf.eth0.force_igmp_version", "2")
        .unwrap();
    let mut watcher = watch(watcher_host);

    // IGMPv3: a join is a TO_EX({}) record, a leave a TO_IN({}) record,
    // both sent to 224.0.0.22.
    let g3 = Ipv4Addr::new(239, 7, 7, 3);
    let mut r3 = start(v3_host, "recv-v3", &["recv", "--group", "239.7.7.3"]);
    let join = igmp_from(&mut watcher, v3_host, |s| {
        record(&s.message, g3).map(|r| (s.clone(), r))
    });
    assert_eq!(join.1.mode, RecordType::ChangeToExclude);
    assert!(join.1.sources.is_empty());
    let seen = join.0;
    assert_eq!(seen.dst, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 22)));
    assert!(seen.checksum_ok && seen.router_alert && seen.ttl == 1);
    stop(&mut r3);
    // (The join is reported twice; the leave is the first TO_IN record.)
    let leave = igmp_from(&mut watcher, v3_host, |s| {
        record(&s.message, g3).filter(|r| r.mode == RecordType::ChangeToInclude)
    });
    assert!(leave.sources.is_empty());

    // IGMPv2: a report to the group itself, a leave to 224.0.0.2.
    let g2 = Ipv4Addr::new(239, 7, 7, 2);
    let mut r2 = start(v2_host, "recv-v2", &["recv", "--group", "239.7.7.2"]);
    let report = igmp_from(&mut watcher, v2_host, |s| {
        matches!(s.message, IgmpMessage::V2Report { group } if group == g2).then_some(s.dst)
    });
    assert_eq!(report, IpAddr::V4(g2));
    stop(&mut r2);
    let leave_dst = igmp_from(&mut watcher, v2_host, |s| {
        matches!(s.message, IgmpMessage::V2Leave { group } if group == g2).then_some(s.dst)
    });
    assert_eq!(leave_dst, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 2)));

    // A source-specific join: an ALLOW record naming the source.
    let gs = Ipv4Addr::new(232, 7, 7, 7);
    let source = ssm_source.ipv4().to_string();
    let _rs = start(
        v3_host,
        "recv-ssm",
        &["recv", "--group", "232.7.7.7", "--source", &source],
    );
    let ssm = igmp_from(&mut watcher, v3_host, |s| record(&s.message, gs));
    assert_eq!(ssm.mode, RecordType::AllowNewSources);
    assert_eq!(ssm.sources, [ssm_source.ipv4()]);

    // A report with a wrong checksum is shown, marked, not dropped.
    let dir = tempfile::tempdir().unwrap();
    let out = python(
        ssm_source,
        dir.path(),
        "bad.py",
        PY_BAD_CHECKSUM,
        &["239.7.7.99"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bad = igmp_from(&mut watcher, ssm_source, |s| {
        matches!(s.message, IgmpMessage::V2Report { .. }).then(|| s.clone())
    });
    assert!(!bad.checksum_ok);
    assert_eq!(
        bad.message,
        IgmpMessage::V2Report {
            group: Ipv4Addr::new(239, 7, 7, 99)
        }
    );

    watcher.signal(libc::SIGTERM);
    let summary: IgmpSummary = expect(&mut watcher);
    assert!(
        summary.seen >= 6 && summary.bad_checksum >= 1,
        "{summary:?}"
    );
    assert!(watcher.wait_exit(T).unwrap().success());
}

#[test]
fn igmp_shows_mld_joins_on_ipv6() {
    let Some(lan) = lab_with(2, IPV6) else {
        return;
    };
    let mut watcher = watch(lan.host(1));
    let group: Ipv6Addr = "ff15::77".parse().unwrap();
    let _r = start(lan.host(0), "recv6", &["recv", "--group", "ff15::77"]);
    let record = watcher.wait_event(T, |e: Event| match e {
        Event::Mld(Seen {
            message: MldMessage::V2Report { records },
            checksum_ok: true,
            ..
        }) => records.into_iter().find(|r| r.group == group),
        _ => None,
    });
    assert_eq!(record.mode, RecordType::ChangeToExclude);
}

/// `mcast groups --iface eth0` on `host`, run to completion.
fn groups(host: &Host) -> InterfaceGroups {
    let mut p = spawn(host, "groups", &["groups", "--iface", "eth0"]);
    let eth0: InterfaceGroups = expect(&mut p);
    assert!(p.wait_exit(T).unwrap().success(), "{}", p.output());
    eth0
}

#[test]
fn groups_lists_the_joins_of_recv() {
    let Some(lan) = lab(2) else {
        return;
    };
    let host = lan.host(0);
    let source = lan.host(1).ipv4();
    let _any = start(host, "recv", &["recv", "--group", "239.7.8.1"]);
    let _ssm = start(
        host,
        "recv-ssm",
        &[
            "recv",
            "--group",
            "232.7.8.1",
            "--source",
            &source.to_string(),
        ],
    );
    let eth0 = groups(host);
    assert_eq!((eth0.name.as_str(), eth0.igmp_version), ("eth0", Some(3)));
    let find = |g: &str| {
        let g: IpAddr = g.parse().unwrap();
        eth0.groups
            .iter()
            .find(|h| h.group == g)
            .unwrap_or_else(|| panic!("{g} not in {eth0:?}"))
            .clone()
    };
    let any = find("239.7.8.1");
    assert_eq!((any.mode, any.users), (FilterMode::Exclude, 1));
    assert!(any.sources.is_empty());
    let ssm = find("232.7.8.1");
    assert_eq!(ssm.mode, FilterMode::Include);
    assert_eq!(ssm.sources, [IpAddr::V4(source)]);

    // Forcing IGMPv2 shows as the version in use.
    host.ns()
        .sysctl("net.ipv4.conf.eth0.force_igmp_version", "2")
        .unwrap();
    assert_eq!(groups(host).igmp_version, Some(2));
}

/// Starts `mcast querier --iface eth0 --interval 1` on `host` and waits
/// until it is ready.
fn querier(host: &Host, name: &str) -> (Proc, QuerierStarted) {
    let mut p = spawn(
        host,
        name,
        &["querier", "--iface", "eth0", "--interval", "1"],
    );
    let started: QuerierStarted = expect(&mut p);
    (p, started)
}

/// The next general query the watcher sees, by its sender.
fn next_query(watcher: &mut Proc) -> IpAddr {
    watcher.wait_event(T, |e: Event| match e {
        Event::Igmp(Seen {
            src,
            message: IgmpMessage::Query(Query { .. }),
            checksum_ok: true,
            ..
        }) => Some(src),
        _ => None,
    })
}

#[test]
fn querier_election_lower_address_queries_other_takes_over() {
    let Some(lan) = lab(3) else {
        return;
    };
    let (low, high) = (lan.host(0), lan.host(1));
    let (low_ip, high_ip) = (IpAddr::V4(low.ipv4()), IpAddr::V4(high.ipv4()));
    let mut watcher = watch(lan.host(2));

    // The higher address starts first, alone: it queries.
    let (mut q_high, started) = querier(high, "querier-high");
    assert_eq!(started.address, high.ipv4());
    assert_eq!(next_query(&mut watcher), high_ip);

    // The lower address comes: the higher one steps down for it.
    let (mut q_low, _) = querier(low, "querier-low");
    q_high.wait_event(T, |e: Event| match e {
        Event::SteppedDown { querier } if querier == low.ipv4() => Some(()),
        _ => None,
    });
    // From the lower one's next query on, only it queries.
    while next_query(&mut watcher) != low_ip {}
    for _ in 0..3 {
        assert_eq!(next_query(&mut watcher), low_ip, "{}", q_high.output());
    }
    assert!(
        !q_low.output().contains("stepped_down"),
        "the lower address stepped down:\n{}",
        q_low.output()
    );

    // The lower one dies: after the other-querier-present interval
    // (2 × 1 s + 0.5 s / 2) the higher one takes over.
    let died = Instant::now();
    q_low.kill();
    let silent_ms = q_high.wait_event(T, |e: Event| match e {
        Event::TookOver {
            previous,
            silent_ms,
        } if previous == low.ipv4() => Some(silent_ms),
        _ => None,
    });
    let took = died.elapsed();
    assert!(
        silent_ms >= 2_250,
        "took over after {silent_ms} ms of silence"
    );
    assert!(
        took < Duration::from_secs(5),
        "took over only after {took:?}"
    );
    while next_query(&mut watcher) != high_ip {}
    eprintln!("querier: took over {took:?} after the lower querier died (silent {silent_ms} ms)");
}

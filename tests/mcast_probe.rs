//! `mcast probe` between namespace hosts: a clean link shows no loss, a
//! token-bucket-limited link shows loss, and foreign or malformed datagrams on
//! the probe port are counted, never fatal. Needs root (skips otherwise).

use lanswarm::mcast_lab::*;
use lanswarm::netns::LanOptions;
use mcast::events::{ProbeRecvSummary, ProbeReport};

#[test]
fn probe_reports_a_clean_link_and_ignores_foreign_datagrams() {
    let Some(lan) = lab(2) else {
        return;
    };
    let mut rx = start(lan.host(1), "probe-recv", &["probe", "recv"]);
    // A foreign datagram and a truncated probe header, before the real run.
    let g = ["--group", "224.3.29.72", "--port", "10002"];
    send(lan.host(0), &[&["hello probe"][..], &g].concat());
    send(lan.host(0), &[&["LSWP\u{1}\u{1}"][..], &g].concat());

    let s = probe_send(
        lan.host(0),
        &["--rate", "2000", "--count", "1000", "--size", "1400"],
    );
    assert_eq!(s.sent, 1000);
    let r = expect::<ProbeReport>(&mut rx).figures;
    assert_eq!(r.sent, Some(1000), "{r:?}");
    assert_eq!(r.received, 1000, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.duplicates, 0);
    let p50 = r.latency_p50_us.unwrap();
    let p99 = r.latency_p99_us.unwrap();
    assert!(p50 <= p99 && p99 < 1_000_000, "{r:?}");
    let summary: ProbeRecvSummary = expect(&mut rx);
    assert_eq!(summary.foreign, 2, "{summary:?}");
    assert!(rx.wait_exit(T).unwrap().success());
}

#[test]
fn probe_detects_loss_on_a_rate_limited_link() {
    let limited = LanOptions {
        rate_mbit: Some(5),
        ..LanOptions::default()
    };
    let Some(lan) = lab_with(2, limited) else {
        return;
    };
    let mut rx = start(lan.host(1), "probe-recv", &["probe", "recv"]);
    // 1400-byte datagrams at 4000/s is ~45 Mbit/s into a 5 Mbit/s bucket.
    probe_send(lan.host(0), &["--rate", "4000", "--count", "2000"]);
    let r = expect::<ProbeReport>(&mut rx).figures;
    assert_eq!(r.received + r.lost, 2000, "{r:?}");
    assert!(r.lost > 1000, "most datagrams exceed the rate limit: {r:?}");
    assert!(r.received > 0, "{r:?}");
}

#[test]
fn probe_over_ipv6_with_interrupted_receiver() {
    let Some(lan) = lab_with(2, IPV6) else {
        return;
    };
    let g = ["--group", "ff15::72", "--iface", "eth0"];
    let mut rx = start(
        lan.host(1),
        "probe-recv",
        &[&["probe", "recv", "--senders", "2"][..], &g].concat(),
    );
    probe_send(
        lan.host(0),
        &[&["--rate", "1000", "--count", "200"][..], &g].concat(),
    );
    // Only one of two senders ran: Ctrl-C still reports and exits 0.
    rx.signal(libc::SIGINT);
    let r = expect::<ProbeReport>(&mut rx).figures;
    assert_eq!((r.received, r.lost), (200, 0), "{r:?}");
    assert_eq!(rx.wait_exit(T).unwrap().code(), Some(0));
}

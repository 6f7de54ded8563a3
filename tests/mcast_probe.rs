//! `mcast probe` between namespace hosts: a clean link shows no loss, a
//! token-bucket-limited link shows loss, and foreign or malformed datagrams on
//! the probe port are counted, never fatal. Needs root (skips otherwise).

mod mcast_support;

use lanswarm::netns::{skip_unless_root, Lan, LanOptions};
use lanswarm::process::Proc;
use mcast_support::*;
use serde_json::Value;

/// Runs `mcast probe send` on `host` to completion; returns its summary.
fn probe_send(host: &lanswarm::netns::Host, args: &[&str]) -> Value {
    let mut cmd = mcast(host, &["probe", "send", "--json"]);
    cmd.args(args);
    let mut p = Proc::spawn("probe-send", cmd);
    let s = p.expect_event("summary", T);
    assert!(p.wait_exit(T).unwrap().success(), "{}", p.output());
    s
}

#[test]
fn probe_reports_a_clean_link_and_ignores_foreign_datagrams() {
    if skip_unless_root("probe_reports_a_clean_link_and_ignores_foreign_datagrams") {
        return;
    }
    let lan = lan(2);
    let mut rx = start_joined(lan.host(1), "probe-recv", &["probe", "recv"]);
    // A foreign datagram and a truncated probe header, before the real run.
    let g = ["--group", "224.3.29.72", "--port", "10002"];
    send(lan.host(0), &[&["hello probe"][..], &g].concat());
    send(lan.host(0), &[&["LSWP\u{1}\u{1}"][..], &g].concat());

    let s = probe_send(
        lan.host(0),
        &["--rate", "2000", "--count", "1000", "--size", "1400"],
    );
    assert_eq!(s["sent"], 1000);
    let r = rx.expect_event("report", T);
    assert_eq!(r["sent"], 1000, "{r}");
    assert_eq!(r["received"], 1000, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicates"], 0);
    let p50 = r["latency_p50_us"].as_u64().unwrap();
    let p99 = r["latency_p99_us"].as_u64().unwrap();
    assert!(p50 <= p99 && p99 < 1_000_000, "{r}");
    let summary = rx.expect_event("summary", T);
    assert_eq!(summary["foreign"], 2, "{summary}");
    assert!(rx.wait_exit(T).unwrap().success());
}

#[test]
fn probe_detects_loss_on_a_rate_limited_link() {
    if skip_unless_root("probe_detects_loss_on_a_rate_limited_link") {
        return;
    }
    let lan = Lan::new(
        2,
        LanOptions {
            rate_mbit: Some(5),
            ipv6: false,
        },
    )
    .unwrap();
    let mut rx = start_joined(lan.host(1), "probe-recv", &["probe", "recv"]);
    // 1400-byte datagrams at 4000/s is ~45 Mbit/s into a 5 Mbit/s bucket.
    probe_send(lan.host(0), &["--rate", "4000", "--count", "2000"]);
    let r = rx.expect_event("report", T);
    let (received, lost) = (r["received"].as_u64().unwrap(), r["lost"].as_u64().unwrap());
    assert_eq!(received + lost, 2000, "{r}");
    assert!(lost > 1000, "most datagrams exceed the rate limit: {r}");
    assert!(received > 0, "{r}");
}

#[test]
fn probe_over_ipv6_with_interrupted_receiver() {
    if skip_unless_root("probe_over_ipv6_with_interrupted_receiver") {
        return;
    }
    let lan = lan_v6(2);
    let g = ["--group", "ff15::72", "--iface", "eth0"];
    let mut rx = start_joined(
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
    let r = rx.expect_event("report", T);
    assert_eq!(
        (r["received"].as_u64(), r["lost"].as_u64()),
        (Some(200), Some(0)),
        "{r}"
    );
    assert_eq!(rx.wait_exit(T).unwrap().code(), Some(0));
}

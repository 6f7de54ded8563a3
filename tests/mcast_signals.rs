//! Ctrl-C and SIGTERM at the earliest moment a script may send them: right
//! after `mcast` says it is ready. Every subcommand must already have its
//! handlers then, and stop cleanly: the summary printed, exit 0.
//!
//! Each process starts with its stdout full, so it is held at its first line
//! (`joined`, `start`, `sent`) until we read; we signal it there. A program
//! that installed its handlers only after that line dies of the signal.
//! Needs root (skips otherwise).

use lanswarm::mcast_lab::{lab, Stalled};
use mcast::events::{
    ChatSummary, Event, IgmpSummary, Joined, ProbeRecvSummary, ProbeSendSummary, QuerierSummary,
    RecvSummary, SendSummary,
};

/// Starts `mcast ARGS…` with its stdout held full, sends `sig` once it is
/// writing its first line, and checks that it exits 0 having printed
/// `first` (its readiness line) first. Returns its last event: the summary.
fn signal_when_ready(args: &[&str], sig: i32, first: fn(&Event) -> bool) -> Option<Event> {
    let lan = lab(1)?;
    let mut p = Stalled::spawn(lan.host(0), args);
    p.wait_blocked_on_stdout();
    p.signal(sig);
    let ended = p.finish();
    assert_eq!(
        ended.status.code(),
        Some(0),
        "{args:?}: {} (a signal before the handlers kills the process)\n{}",
        ended.status,
        ended.stderr
    );
    let events = ended.events;
    assert!(events.first().is_some_and(first), "{args:?}: {events:?}");
    events.into_iter().last()
}

#[test]
fn recv_stops_cleanly_on_sigterm_right_after_joined() {
    let joined = |e: &Event| matches!(e, Event::Joined(Joined::Recv(_)));
    if let Some(last) = signal_when_ready(&["recv"], libc::SIGTERM, joined) {
        let summary = RecvSummary::try_from(last).expect("recv summary");
        assert_eq!((summary.received, summary.acked), (0, 0));
    }
}

#[test]
fn probe_recv_stops_cleanly_on_sigterm_right_after_joined() {
    let joined = |e: &Event| matches!(e, Event::Joined(Joined::Probe(_)));
    if let Some(last) = signal_when_ready(&["probe", "recv"], libc::SIGTERM, joined) {
        let summary = ProbeRecvSummary::try_from(last).expect("probe recv summary");
        assert_eq!((summary.streams, summary.foreign), (0, 0));
    }
}

#[test]
fn chat_leaves_cleanly_on_sigterm_right_after_joined() {
    let joined = |e: &Event| matches!(e, Event::Joined(Joined::Chat(_)));
    if let Some(last) = signal_when_ready(&["chat", "--name", "ann"], libc::SIGTERM, joined) {
        let summary = ChatSummary::try_from(last).expect("chat summary");
        assert_eq!((summary.sent, summary.received), (0, 0));
    }
}

#[test]
fn send_stops_cleanly_on_sigint_right_after_the_first_send() {
    let args = ["send", "hi", "--count", "100", "--interval", "10s"];
    let sent = |e: &Event| matches!(e, Event::Sent { seq: 0, .. });
    if let Some(last) = signal_when_ready(&args, libc::SIGINT, sent) {
        assert_eq!(SendSummary::try_from(last).expect("send summary").sent, 1);
    }
}

#[test]
fn probe_send_stops_cleanly_on_sigterm_right_after_start() {
    let args = ["probe", "send", "--rate", "1", "--count", "1000"];
    let start = |e: &Event| matches!(e, Event::Start(_));
    if let Some(last) = signal_when_ready(&args, libc::SIGTERM, start) {
        let summary = ProbeSendSummary::try_from(last).expect("probe send summary");
        assert!(summary.sent < 1000, "stopped early: {summary:?}");
    }
}

#[test]
fn igmp_stops_cleanly_on_sigint_right_after_listening() {
    let listening = |e: &Event| matches!(e, Event::Listening(_));
    if let Some(last) = signal_when_ready(&["igmp"], libc::SIGINT, listening) {
        IgmpSummary::try_from(last).expect("igmp summary");
    }
}

#[test]
fn querier_stops_cleanly_on_sigterm_right_after_starting() {
    let args = ["querier", "--iface", "eth0"];
    let started = |e: &Event| matches!(e, Event::QuerierStarted(_));
    if let Some(last) = signal_when_ready(&args, libc::SIGTERM, started) {
        let summary = QuerierSummary::try_from(last).expect("querier summary");
        assert!(summary.querier, "{summary:?}");
    }
}

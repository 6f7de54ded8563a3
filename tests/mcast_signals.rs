//! Ctrl-C and SIGTERM at the earliest moment a script may send them: right
//! after `mcast` says it is ready. Every subcommand must already have its
//! handlers then, and stop cleanly: the summary printed, exit 0.
//!
//! Each process starts with its stdout full, so it is held at its first line
//! (`joined`, `start`, `sent`) until we read; we signal it there. A program
//! that installed its handlers only after that line dies of the signal.
//! Needs root (skips otherwise).

use lanswarm::mcast_lab::{lab, Ended, Stalled};
use mcast::events::{
    ChatSummary, Event, Joined, ProbeRecvSummary, ProbeSendSummary, RecvSummary, SendSummary,
};

/// Starts `mcast ARGS…` with its stdout held full, sends `sig` once it is
/// writing its first line, and returns what it printed.
fn signal_when_ready(test: &str, args: &[&str], sig: i32) -> Option<Ended> {
    let lan = lab(test, 1)?;
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
    Some(ended)
}

/// The first and the last event.
fn ends(ended: Ended) -> (Event, Event) {
    let mut events = ended.events.into_iter();
    let first = events.next().expect("a first event");
    let last = events.last().expect("a last event");
    (first, last)
}

#[test]
fn recv_stops_cleanly_on_sigterm_right_after_joined() {
    let Some(ended) = signal_when_ready(
        "recv_stops_cleanly_on_sigterm_right_after_joined",
        &["recv"],
        libc::SIGTERM,
    ) else {
        return;
    };
    let (first, last) = ends(ended);
    assert!(matches!(first, Event::Joined(Joined::Recv(_))), "{first:?}");
    assert_eq!(
        RecvSummary::try_from(last),
        Ok(RecvSummary {
            received: 0,
            acked: 0
        })
    );
}

#[test]
fn probe_recv_stops_cleanly_on_sigterm_right_after_joined() {
    let Some(ended) = signal_when_ready(
        "probe_recv_stops_cleanly_on_sigterm_right_after_joined",
        &["probe", "recv"],
        libc::SIGTERM,
    ) else {
        return;
    };
    let (first, last) = ends(ended);
    assert!(
        matches!(first, Event::Joined(Joined::Probe(_))),
        "{first:?}"
    );
    assert_eq!(
        ProbeRecvSummary::try_from(last),
        Ok(ProbeRecvSummary {
            streams: 0,
            finished: 0,
            foreign: 0
        })
    );
}

#[test]
fn chat_leaves_cleanly_on_sigterm_right_after_joined() {
    let Some(ended) = signal_when_ready(
        "chat_leaves_cleanly_on_sigterm_right_after_joined",
        &["chat", "--name", "ann"],
        libc::SIGTERM,
    ) else {
        return;
    };
    let (first, last) = ends(ended);
    assert!(matches!(first, Event::Joined(Joined::Chat(_))), "{first:?}");
    let summary = ChatSummary::try_from(last).expect("chat summary");
    assert_eq!((summary.sent, summary.received), (0, 0), "{summary:?}");
}

#[test]
fn send_stops_cleanly_on_sigint_right_after_the_first_send() {
    let Some(ended) = signal_when_ready(
        "send_stops_cleanly_on_sigint_right_after_the_first_send",
        &["send", "hi", "--count", "100", "--interval", "10s"],
        libc::SIGINT,
    ) else {
        return;
    };
    let (first, last) = ends(ended);
    assert!(matches!(first, Event::Sent { seq: 0, .. }), "{first:?}");
    let summary = SendSummary::try_from(last).expect("send summary");
    assert_eq!(summary.sent, 1, "{summary:?}");
}

#[test]
fn probe_send_stops_cleanly_on_sigterm_right_after_start() {
    let Some(ended) = signal_when_ready(
        "probe_send_stops_cleanly_on_sigterm_right_after_start",
        &["probe", "send", "--rate", "1", "--count", "1000"],
        libc::SIGTERM,
    ) else {
        return;
    };
    let (first, last) = ends(ended);
    assert!(matches!(first, Event::Start(_)), "{first:?}");
    let summary = ProbeSendSummary::try_from(last).expect("probe send summary");
    assert!(summary.sent < 1000, "stopped early: {summary:?}");
}

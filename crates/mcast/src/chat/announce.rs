//! When a chat member sends a present, without sockets or clocks.
//!
//! A present answers joins, so newcomers learn who is there, and doubles as
//! the heartbeat that keeps us from expiring at the others. Answers are
//! rate-limited: joins heard within [`ANSWER_PERIOD`] of our last present
//! are answered together by one present at the end of that period (it is
//! multicast, so one reaches every newcomer). So whatever number of joins
//! arrive, we send at most one present per [`ANSWER_PERIOD`], plus one per
//! heartbeat interval when we have been silent that long.

use std::time::{Duration, Instant};

/// Least time between two presents sent in answer to joins.
pub const ANSWER_PERIOD: Duration = Duration::from_secs(1);

/// Decides when to send a present.
#[derive(Debug, Clone)]
pub struct Announcer {
    heartbeat: Duration,
    /// When we last sent a present.
    last_present: Option<Instant>,
    /// When we last sent anything (joins, lines and presents refresh us at the others).
    last_sent: Instant,
    /// A join is waiting for its answer.
    pending: bool,
}

impl Announcer {
    /// `now`: when we sent our join. We send something at least every `heartbeat`.
    pub fn new(now: Instant, heartbeat: Duration) -> Self {
        Announcer {
            heartbeat,
            last_present: None,
            last_sent: now,
            pending: false,
        }
    }

    /// Someone joined: they want a present.
    pub fn join_heard(&mut self) {
        self.pending = true;
    }

    /// We sent a datagram other than a present (a line) at `now`.
    pub fn sent_other(&mut self, now: Instant) {
        self.last_sent = self.last_sent.max(now);
    }

    /// When [`Announcer::poll`] next has something to do.
    pub fn deadline(&self) -> Instant {
        let beat = self.last_sent + self.heartbeat;
        match (self.pending, self.last_present) {
            (true, Some(last)) => beat.min(last + ANSWER_PERIOD),
            (true, None) => self.last_sent,
            (false, _) => beat,
        }
    }

    /// Whether to send a present at `now`; if so, it counts as sent.
    pub fn poll(&mut self, now: Instant) -> bool {
        if now < self.deadline() {
            return false;
        }
        self.pending = false;
        self.last_present = Some(now);
        self.last_sent = self.last_sent.max(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BEAT: Duration = Duration::from_secs(10);

    #[test]
    fn a_join_is_answered_at_once_then_joins_are_answered_together() {
        let t0 = Instant::now();
        let mut a = Announcer::new(t0, BEAT);
        assert!(!a.poll(t0));
        a.join_heard();
        assert!(a.poll(t0 + Duration::from_millis(5)));
        assert!(!a.poll(t0 + Duration::from_millis(6)));
        // More joins within the period: one answer at its end.
        let t1 = t0 + Duration::from_millis(300);
        a.join_heard();
        a.join_heard();
        assert!(!a.poll(t1));
        assert_eq!(a.deadline(), t0 + Duration::from_millis(5) + ANSWER_PERIOD);
        assert!(a.poll(a.deadline()));
        assert!(!a.poll(a.deadline() - Duration::from_millis(1)));
    }

    #[test]
    fn silence_is_broken_by_a_heartbeat() {
        let t0 = Instant::now();
        let mut a = Announcer::new(t0, BEAT);
        assert_eq!(a.deadline(), t0 + BEAT);
        a.sent_other(t0 + Duration::from_secs(4));
        assert!(!a.poll(t0 + BEAT));
        assert!(a.poll(t0 + Duration::from_secs(14)));
        assert_eq!(a.deadline(), t0 + Duration::from_secs(24));
    }

    proptest! {
        /// However many joins arrive, presents are at least ANSWER_PERIOD
        /// apart (heartbeats are slower still).
        #[test]
        fn presents_are_rate_limited(events in proptest::collection::vec((0u64..50, any::<bool>()), 1..2000)) {
            let t0 = Instant::now();
            let mut a = Announcer::new(t0, BEAT);
            let mut now = t0;
            let mut last: Option<Instant> = None;
            for (step_ms, join) in events {
                now += Duration::from_millis(step_ms);
                if join {
                    a.join_heard();
                }
                if a.poll(now) {
                    if let Some(l) = last {
                        prop_assert!(now - l >= ANSWER_PERIOD);
                    }
                    last = Some(now);
                }
            }
        }
    }
}

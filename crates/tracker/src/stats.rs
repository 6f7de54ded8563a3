//! The tracker's counters: what it served, refused and dropped.
//!
//! Plain relaxed atomics, one `fetch_add` where something happens, so the
//! announce path pays a few nanoseconds and takes no lock. Announces per
//! second come from a once-a-second sample ([`meter`]): the count since the
//! previous sample over the time since it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wire::tracker::TrackerStats;

/// How often [`meter`] samples the announce count.
pub const METER_PERIOD: Duration = Duration::from_secs(1);

/// What a [`Counters`] field counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// An announce answered.
    Announce,
    /// A request answered with `error_code: 1`.
    BadRequest,
    /// A connection closed for an oversize or truncated frame.
    BadFrame,
    /// A connection refused at `--max-connections` or `--max-connections-per-ip`.
    ConnectionRefused,
    /// An announce refused by a bound, the allow-list, or a held address.
    AnnounceRefused,
    /// A connection closed at its age or request cap, or, idle when the
    /// tracker was full, to give its slot to a newcomer.
    ConnectionRecycled,
    /// A connection closed for silence (no request, or no reply taken, in time).
    Timeout,
    /// A web event subscriber refused at the cap.
    SubscriberRefused,
    /// A web client dropped for falling behind (an event stream too far
    /// behind, or no data taken for the idle timeout).
    SubscriberDropped,
}

/// The counters, shared by every task of one tracker.
#[derive(Debug, Default)]
pub struct Counters {
    announces: AtomicU64,
    bad_requests: AtomicU64,
    bad_frames: AtomicU64,
    connections_refused: AtomicU64,
    announces_refused: AtomicU64,
    connections_recycled: AtomicU64,
    timeouts: AtomicU64,
    subscribers_refused: AtomicU64,
    subscribers_dropped: AtomicU64,
    /// The last announce rate, as `f64` bits.
    rate_bits: AtomicU64,
}

impl Counters {
    fn cell(&self, what: Count) -> &AtomicU64 {
        match what {
            Count::Announce => &self.announces,
            Count::BadRequest => &self.bad_requests,
            Count::BadFrame => &self.bad_frames,
            Count::ConnectionRefused => &self.connections_refused,
            Count::AnnounceRefused => &self.announces_refused,
            Count::ConnectionRecycled => &self.connections_recycled,
            Count::Timeout => &self.timeouts,
            Count::SubscriberRefused => &self.subscribers_refused,
            Count::SubscriberDropped => &self.subscribers_dropped,
        }
    }

    /// Counts one `what`.
    pub fn add(&self, what: Count) {
        self.cell(what).fetch_add(1, Ordering::Relaxed);
    }

    /// The current value of one counter.
    pub fn get(&self, what: Count) -> u64 {
        self.cell(what).load(Ordering::Relaxed)
    }

    /// Announces per second at the last sample.
    pub fn announce_rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// Every counter now, as the status listing carries them.
    pub fn snapshot(&self) -> TrackerStats {
        TrackerStats {
            announces: self.get(Count::Announce),
            announces_per_sec: (self.announce_rate() * 10.0).round() / 10.0,
            bad_requests: self.get(Count::BadRequest),
            bad_frames: self.get(Count::BadFrame),
            connections_refused: self.get(Count::ConnectionRefused),
            announces_refused: self.get(Count::AnnounceRefused),
            connections_recycled: self.get(Count::ConnectionRecycled),
            timeouts: self.get(Count::Timeout),
            subscribers_refused: self.get(Count::SubscriberRefused),
            subscribers_dropped: self.get(Count::SubscriberDropped),
        }
    }
}

/// The announce count at one instant, to measure a rate from.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    at: Instant,
    announces: u64,
}

impl Sample {
    /// Reads the announce count at `at`.
    pub fn take(counters: &Counters, at: Instant) -> Sample {
        Sample {
            at,
            announces: counters.get(Count::Announce),
        }
    }

    /// Stores the rate between `self` and a later `next`; returns `next`.
    pub fn advance(self, counters: &Counters, next: Sample) -> Sample {
        let secs = next.at.saturating_duration_since(self.at).as_secs_f64();
        if secs > 0.0 {
            let rate = next.announces.saturating_sub(self.announces) as f64 / secs;
            counters.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        }
        next
    }
}

/// Updates the announce rate every [`METER_PERIOD`]; runs until aborted.
pub async fn meter(counters: Arc<Counters>) {
    let mut ticker = tokio::time::interval(METER_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last = Sample::take(&counters, Instant::now());
    loop {
        ticker.tick().await;
        last = last.advance(&counters, Sample::take(&counters, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_snapshot() {
        let c = Counters::default();
        for _ in 0..3 {
            c.add(Count::Announce);
        }
        c.add(Count::BadRequest);
        c.add(Count::SubscriberDropped);
        let s = c.snapshot();
        assert_eq!(s.announces, 3);
        assert_eq!(s.bad_requests, 1);
        assert_eq!(s.subscribers_dropped, 1);
        assert_eq!(s.connections_refused, 0);
        assert_eq!(s.announces_per_sec, 0.0);
    }

    #[test]
    fn rate_is_the_count_since_the_last_sample_over_its_age() {
        let c = Counters::default();
        let t0 = Instant::now();
        let first = Sample::take(&c, t0);
        for _ in 0..30 {
            c.add(Count::Announce);
        }
        let second = first.advance(&c, Sample::take(&c, t0 + Duration::from_secs(2)));
        assert_eq!(c.announce_rate(), 15.0);
        // A sample at the same instant changes nothing.
        second.advance(&c, Sample::take(&c, t0 + Duration::from_secs(2)));
        assert_eq!(c.announce_rate(), 15.0);
        assert_eq!(c.snapshot().announces_per_sec, 15.0);
    }
}

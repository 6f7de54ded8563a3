//! Per-stream probe statistics: loss, duplicates, reordering and latency
//! percentiles, in fixed memory per stream whatever sequence numbers arrive
//! ([`SeqWindow`] for the numbers, [`Histogram`] for the latencies).

use super::histogram::Histogram;
use super::window::{Arrival, SeqWindow};

/// What one sender run looked like from the receiver.
#[derive(Debug, Default)]
pub struct StreamStats {
    window: SeqWindow,
    received: u64,
    duplicates: u64,
    reordered: u64,
    late: u64,
    latencies_us: Histogram,
    total_sent: Option<u64>,
}

/// The final figures of a stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Datagrams the sender said it sent (known once its end marker arrived).
    pub sent: Option<u64>,
    /// Distinct datagrams received.
    pub received: u64,
    /// Datagrams expected but never received.
    pub lost: u64,
    /// Extra copies of datagrams already received.
    pub duplicates: u64,
    /// Datagrams that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// Datagrams more than [`WINDOW`](super::window::WINDOW) behind the
    /// highest number seen: too late to tell from duplicates, so counted
    /// neither as received (they count as lost) nor as duplicates.
    #[serde(default)]
    pub late: u64,
    /// Median one-way latency in microseconds.
    pub latency_p50_us: Option<u64>,
    /// 99th percentile one-way latency in microseconds.
    pub latency_p99_us: Option<u64>,
    /// Largest one-way latency in microseconds.
    pub latency_max_us: Option<u64>,
}

impl Report {
    /// Lost datagrams as a fraction of those expected (0.0 when none were expected).
    pub fn loss_ratio(&self) -> f64 {
        let expected = self.received + self.lost;
        if expected == 0 {
            0.0
        } else {
            self.lost as f64 / expected as f64
        }
    }
}

impl StreamStats {
    /// Records a data datagram with sequence number `seq` that took `latency_ns`.
    pub fn record(&mut self, seq: u64, latency_ns: u64) {
        match self.window.insert(seq) {
            Arrival::Duplicate => self.duplicates += 1,
            Arrival::TooOld => self.late += 1,
            Arrival::New { reordered } => {
                self.received += 1;
                self.reordered += u64::from(reordered);
                self.latencies_us.record(latency_ns / 1_000);
            }
        }
    }

    /// Records the sender's end marker, carrying how many datagrams it sent.
    pub fn finish(&mut self, total_sent: u64) {
        self.total_sent = Some(total_sent);
    }

    /// Whether the end marker has arrived.
    pub fn is_finished(&self) -> bool {
        self.total_sent.is_some()
    }

    /// Distinct datagrams received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Computes the report. Without an end marker, the datagrams expected are
    /// those up to the highest sequence number seen.
    pub fn report(&self) -> Report {
        let by_seq = self.window.highest().map_or(0, |m| m.saturating_add(1));
        let expected = self.total_sent.unwrap_or(0).max(by_seq);
        let h = &self.latencies_us;
        Report {
            sent: self.total_sent,
            received: self.received,
            lost: expected.saturating_sub(self.received),
            duplicates: self.duplicates,
            reordered: self.reordered,
            late: self.late,
            latency_p50_us: h.percentile(50.0),
            latency_p99_us: h.percentile(99.0),
            latency_max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_without_loss() {
        let mut s = StreamStats::default();
        for seq in 0..100 {
            s.record(seq, (seq + 1) * 1_000);
        }
        s.finish(100);
        let r = s.report();
        assert_eq!(
            (r.sent, r.received, r.lost, r.duplicates, r.reordered),
            (Some(100), 100, 0, 0, 0)
        );
        assert_eq!(r.latency_p50_us, Some(50));
        assert_eq!(r.latency_p99_us, Some(99));
        assert_eq!(r.latency_max_us, Some(100));
        assert_eq!(r.loss_ratio(), 0.0);
    }

    #[test]
    fn loss_duplicates_and_reordering_are_counted() {
        let mut s = StreamStats::default();
        for seq in [0, 1, 3, 2, 2, 5, 4, 4, 7] {
            s.record(seq, 10_000);
        }
        s.finish(10);
        let r = s.report();
        assert_eq!(r.received, 7); // 0 1 2 3 4 5 7
        assert_eq!(r.lost, 3); // 6 8 9 (8 and 9 lost at the tail)
        assert_eq!(r.duplicates, 2);
        assert_eq!(r.reordered, 2); // 2 after 3, 4 after 5
        assert!((r.loss_ratio() - 0.3).abs() < 1e-9);
    }

    #[test]
    fn without_end_marker_expected_follows_highest_sequence() {
        let mut s = StreamStats::default();
        s.record(0, 1);
        s.record(4, 1);
        let r = s.report();
        assert_eq!((r.sent, r.received, r.lost), (None, 2, 3));
        assert!(!s.is_finished());
    }

    #[test]
    fn hostile_sequence_numbers_do_not_overflow_or_allocate() {
        let mut s = StreamStats::default();
        s.record(u64::MAX, 1);
        let r = s.report();
        assert_eq!(r.received, 1);
        assert_eq!(r.lost, u64::MAX - 1);
    }

    #[test]
    fn datagrams_behind_the_window_are_late_and_count_as_lost() {
        use crate::probe::window::WINDOW;
        let mut s = StreamStats::default();
        s.record(WINDOW + 10, 1_000);
        s.record(5, 1_000);
        s.record(20, 1_000);
        s.record(20, 1_000);
        s.finish(WINDOW + 11);
        let r = s.report();
        assert_eq!(
            (r.received, r.late, r.duplicates, r.reordered),
            (2, 1, 1, 1)
        );
        assert_eq!(r.lost, WINDOW + 11 - 2);
    }

    #[test]
    fn empty_stream_reports_nothing() {
        let r = StreamStats::default().report();
        assert_eq!((r.received, r.lost, r.latency_p50_us), (0, 0, None));
    }
}

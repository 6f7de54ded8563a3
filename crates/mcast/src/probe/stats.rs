//! Per-stream probe statistics: loss, duplicates, reordering and latency percentiles.

use std::collections::HashSet;

/// Latency samples kept per stream; beyond this, packets are still counted but
/// their latency is not stored (bounds memory at ~32 MiB per stream).
pub const MAX_LATENCY_SAMPLES: usize = 4_000_000;

/// What one sender run looked like from the receiver.
#[derive(Debug, Default)]
pub struct StreamStats {
    seen: HashSet<u64>,
    max_seq: Option<u64>,
    duplicates: u64,
    reordered: u64,
    latencies_ns: Vec<u64>,
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
        if !self.seen.insert(seq) {
            self.duplicates += 1;
            return;
        }
        match self.max_seq {
            Some(max) if seq < max => self.reordered += 1,
            _ => self.max_seq = Some(seq),
        }
        if self.latencies_ns.len() < MAX_LATENCY_SAMPLES {
            self.latencies_ns.push(latency_ns);
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

    /// Computes the report. Without an end marker, the datagrams expected are
    /// those up to the highest sequence number seen.
    pub fn report(&self) -> Report {
        let received = self.seen.len() as u64;
        let by_seq = self.max_seq.map_or(0, |m| m.saturating_add(1));
        let expected = self.total_sent.unwrap_or(0).max(by_seq);
        let mut sorted = self.latencies_ns.clone();
        sorted.sort_unstable();
        let us = |v: Option<u64>| v.map(|ns| ns / 1_000);
        Report {
            sent: self.total_sent,
            received,
            lost: expected.saturating_sub(received),
            duplicates: self.duplicates,
            reordered: self.reordered,
            latency_p50_us: us(percentile(&sorted, 50.0)),
            latency_p99_us: us(percentile(&sorted, 99.0)),
            latency_max_us: us(sorted.last().copied()),
        }
    }
}

/// Nearest-rank percentile of an ascending slice; `None` when empty.
pub fn percentile(sorted: &[u64], pct: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
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
    fn percentiles_use_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), Some(500));
        assert_eq!(percentile(&v, 99.0), Some(990));
        assert_eq!(percentile(&v, 100.0), Some(1000));
        assert_eq!(percentile(&v, 0.0), Some(1));
    }

    #[test]
    fn empty_stream_reports_nothing() {
        let r = StreamStats::default().report();
        assert_eq!((r.received, r.lost, r.latency_p50_us), (0, 0, None));
    }
}

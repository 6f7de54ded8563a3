//! Latency percentiles in fixed memory: a log-linear histogram.
//!
//! Values (microseconds) below 256 each have their own bucket; above, every
//! power of two is split into 128 buckets, so a percentile is off by less
//! than 1/128 (0.8 %) of its value. The largest value is kept exactly.
//! Values are capped at [`MAX_VALUE`] (about 12 days).

/// Largest value recorded as is; larger ones count as this.
pub const MAX_VALUE: u64 = (1 << 40) - 1;
const LINEAR: u64 = 256;
const SUB: u64 = 128;
/// Buckets: the linear ones, then 128 for each further power of two up to 2^40.
const BUCKETS: usize = (LINEAR + 32 * SUB) as usize;

/// Counts of values per bucket, their number and the largest one.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// [`BUCKETS`] counts (allocated zeroed: cheap for a stream that ends up a one-off).
    counts: Box<[u32]>,
    total: u64,
    max: Option<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: None,
        }
    }
}

fn bucket(v: u64) -> usize {
    let v = v.min(MAX_VALUE);
    if v < LINEAR {
        return v as usize;
    }
    let bits = 64 - u64::from(v.leading_zeros());
    let shift = bits - 8;
    (LINEAR + (shift - 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// The largest value that falls into bucket `i`.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = (i - LINEAR) / SUB + 1;
    let m = (i - LINEAR) % SUB + SUB;
    ((m + 1) << shift) - 1
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, v: u64) {
        let b = &mut self.counts[bucket(v)];
        *b = b.saturating_add(1);
        self.total += 1;
        self.max = self.max.max(Some(v));
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value recorded.
    pub fn max(&self) -> Option<u64> {
        self.max
    }

    /// Nearest-rank percentile (`pct` in 0..=100), to within its bucket:
    /// the bucket's largest value, never more than the largest recorded.
    pub fn percentile(&self, pct: f64) -> Option<u64> {
        let max = self.max?;
        let counted: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let rank = ((pct / 100.0) * counted as f64)
            .ceil()
            .clamp(1.0, counted as f64) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(bucket_high(i).min(max));
            }
        }
        Some(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Nearest-rank percentile of an ascending slice.
    fn exact(sorted: &[u64], pct: f64) -> u64 {
        let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(50.0), None);
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.percentile(100.0), Some(100));
        assert_eq!(h.percentile(0.0), Some(1));
        assert_eq!((h.len(), h.max()), (100, Some(100)));
    }

    #[test]
    fn buckets_are_contiguous_and_cover_every_value() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(bucket(bucket_high(i)), i);
            assert_eq!(bucket(bucket_high(i) + 1), i + 1);
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_high(BUCKETS - 1), MAX_VALUE);
    }

    proptest! {
        #[test]
        fn percentiles_are_within_a_bucket_of_the_exact_ones(
            mut values in proptest::collection::vec(0u64..MAX_VALUE, 1..300),
            pct in 0.0f64..=100.0,
        ) {
            let mut h = Histogram::default();
            for &v in &values {
                h.record(v);
            }
            values.sort_unstable();
            let want = exact(&values, pct);
            let got = h.percentile(pct).unwrap();
            prop_assert!(got >= want, "{got} < {want}");
            prop_assert!(got - want <= want / SUB, "{got} vs {want}");
            prop_assert_eq!(h.max(), values.last().copied());
        }
    }
}

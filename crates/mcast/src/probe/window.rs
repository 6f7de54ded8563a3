//! A sliding window over sequence numbers: duplicates, reordering and
//! lateness in fixed memory, whatever numbers arrive.
//!
//! The window remembers which of the [`WINDOW`] sequence numbers up to the
//! highest one seen have arrived (a ring of bits). A number above the
//! highest slides the window forward; one inside it is new or a duplicate;
//! one below it is too late to tell and is reported as such. Sliding costs
//! at most `WINDOW / 64` word writes, however far a number jumps.

/// Sequence numbers tracked behind the highest one seen (a power of two).
pub const WINDOW: u64 = 8192;
const WORDS: usize = (WINDOW / 64) as usize;

/// What one arriving sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Seen for the first time; `reordered` when a higher number came first.
    New { reordered: bool },
    /// Already seen (inside the window).
    Duplicate,
    /// More than [`WINDOW`] below the highest number seen: too old to tell
    /// a late datagram from a duplicate.
    TooOld,
}

/// Which of the last [`WINDOW`] sequence numbers arrived.
#[derive(Debug, Clone)]
pub struct SeqWindow {
    /// `WORDS` words (allocated zeroed).
    bits: Box<[u64]>,
    highest: Option<u64>,
}

impl Default for SeqWindow {
    fn default() -> Self {
        SeqWindow {
            bits: vec![0; WORDS].into_boxed_slice(),
            highest: None,
        }
    }
}

impl SeqWindow {
    /// The highest sequence number seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Records `seq` and says what it was.
    pub fn insert(&mut self, seq: u64) -> Arrival {
        let highest = match self.highest {
            None => {
                self.highest = Some(seq);
                self.set(seq);
                return Arrival::New { reordered: false };
            }
            Some(h) => h,
        };
        if seq > highest {
            // Forget the numbers that slide out: they are the slots of
            // highest+1 ..= seq in the ring.
            self.clear(highest.wrapping_add(1), seq - highest);
            self.highest = Some(seq);
            self.set(seq);
            return Arrival::New { reordered: false };
        }
        if highest - seq >= WINDOW {
            return Arrival::TooOld;
        }
        if self.get(seq) {
            Arrival::Duplicate
        } else {
            self.set(seq);
            Arrival::New {
                reordered: seq < highest,
            }
        }
    }

    fn slot(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn get(&self, seq: u64) -> bool {
        let (w, b) = Self::slot(seq);
        self.bits[w] & b != 0
    }

    fn set(&mut self, seq: u64) {
        let (w, b) = Self::slot(seq);
        self.bits[w] |= b;
    }

    /// Clears the slots of `count` numbers from `start` on (all of them
    /// when `count` covers the window).
    fn clear(&mut self, start: u64, count: u64) {
        if count >= WINDOW {
            self.bits.fill(0);
            return;
        }
        let (mut at, mut left) = (start % WINDOW, count);
        while left > 0 {
            let bit = at % 64;
            let n = left.min(64 - bit);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            self.bits[(at / 64) as usize] &= !mask;
            at = (at + n) % WINDOW;
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn new_duplicate_reordered_and_too_old() {
        let mut w = SeqWindow::default();
        assert_eq!(w.insert(5), Arrival::New { reordered: false });
        assert_eq!(w.insert(5), Arrival::Duplicate);
        assert_eq!(w.insert(3), Arrival::New { reordered: true });
        assert_eq!(w.insert(3), Arrival::Duplicate);
        assert_eq!(w.insert(5 + WINDOW), Arrival::New { reordered: false });
        // 5 is now exactly WINDOW behind: too old; 6 is the oldest still held.
        assert_eq!(w.insert(5), Arrival::TooOld);
        assert_eq!(w.insert(6), Arrival::New { reordered: true });
        assert_eq!(w.highest(), Some(5 + WINDOW));
    }

    #[test]
    fn huge_jumps_and_the_largest_number_cost_nothing() {
        let mut w = SeqWindow::default();
        assert_eq!(w.insert(0), Arrival::New { reordered: false });
        assert_eq!(w.insert(u64::MAX), Arrival::New { reordered: false });
        assert_eq!(w.insert(u64::MAX), Arrival::Duplicate);
        assert_eq!(w.insert(0), Arrival::TooOld);
        assert_eq!(w.insert(u64::MAX - 1), Arrival::New { reordered: true });
    }

    /// The reference: every number ever seen, as the old receiver kept them.
    fn model(seqs: &[u64]) -> Vec<Arrival> {
        let mut seen = BTreeSet::new();
        let mut highest: Option<u64> = None;
        seqs.iter()
            .map(|&s| {
                let a = match highest {
                    Some(h) if h >= s && h - s >= WINDOW => Arrival::TooOld,
                    _ if !seen.insert(s) => Arrival::Duplicate,
                    Some(h) => Arrival::New { reordered: s < h },
                    None => Arrival::New { reordered: false },
                };
                highest = highest.max(Some(s));
                a
            })
            .collect()
    }

    proptest! {
        /// Within the window the answers are exactly those of a set of every
        /// number seen; numbers near each other and far apart both occur.
        #[test]
        fn agrees_with_a_set_of_everything_seen(
            base in any::<u64>(),
            steps in proptest::collection::vec(
                prop_oneof![0u64..64, 0u64..(3 * WINDOW), Just(WINDOW - 1), Just(WINDOW)],
                1..400,
            ),
            back in proptest::collection::vec(any::<bool>(), 400),
        ) {
            let mut seqs = Vec::new();
            let mut cur = base / 2;
            for (i, s) in steps.iter().enumerate() {
                cur = if back[i] { cur.saturating_sub(*s) } else { cur.saturating_add(*s) };
                seqs.push(cur);
            }
            let mut w = SeqWindow::default();
            let got: Vec<Arrival> = seqs.iter().map(|&s| w.insert(s)).collect();
            prop_assert_eq!(got, model(&seqs));
        }
    }
}

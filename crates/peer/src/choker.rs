//! Whom to upload to: a LAN-friendly choking policy, sans-IO.
//!
//! Every round the choker unchokes up to `slots` interested peers, the ones
//! with the best rate (the rate they give us while we download; the rate we
//! reach to them once we seed, which favours peers that can take data fast),
//! plus one optimistic unchoke that rotates every few rounds so newcomers get
//! a chance to prove themselves.

use std::collections::HashSet;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Rounds between changes of the optimistic unchoke.
const OPTIMISTIC_EVERY: u32 = 3;

/// What the choker knows of one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u64,
    pub interested: bool,
    /// Bytes per second in the last round (see module doc).
    pub rate: f64,
}

#[derive(Debug)]
pub struct Choker {
    slots: usize,
    round: u32,
    optimistic: Option<u64>,
    rng: SmallRng,
}

impl Choker {
    pub fn new(slots: usize) -> Self {
        Self {
            slots,
            round: 0,
            optimistic: None,
            rng: SmallRng::from_os_rng(),
        }
    }

    /// Total peers that may be unchoked at once (regular slots + optimistic).
    pub fn capacity(&self) -> usize {
        self.slots + 1
    }

    /// Runs one round and returns the set of peers to have unchoked.
    pub fn round(&mut self, peers: &[Candidate]) -> HashSet<u64> {
        let mut interested: Vec<&Candidate> = peers.iter().filter(|p| p.interested).collect();
        interested.sort_by(|a, b| b.rate.total_cmp(&a.rate));
        let mut unchoked: HashSet<u64> = interested.iter().take(self.slots).map(|p| p.id).collect();

        let optimistic_valid = self
            .optimistic
            .is_some_and(|id| interested.iter().any(|p| p.id == id) && !unchoked.contains(&id));
        if !optimistic_valid || self.round.is_multiple_of(OPTIMISTIC_EVERY) {
            let choked: Vec<u64> = interested
                .iter()
                .map(|p| p.id)
                .filter(|id| !unchoked.contains(id))
                .collect();
            self.optimistic = if choked.is_empty() {
                None
            } else {
                Some(choked[self.rng.random_range(0..choked.len())])
            };
        }
        if let Some(id) = self.optimistic {
            unchoked.insert(id);
        }
        self.round = self.round.wrapping_add(1);
        unchoked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u64, interested: bool, rate: f64) -> Candidate {
        Candidate {
            id,
            interested,
            rate,
        }
    }

    #[test]
    fn best_rates_plus_one_optimistic() {
        let mut ch = Choker::new(2);
        let peers = [
            c(1, true, 10.0),
            c(2, true, 30.0),
            c(3, true, 20.0),
            c(4, false, 99.0),
            c(5, true, 0.0),
        ];
        let set = ch.round(&peers);
        assert_eq!(set.len(), 3);
        assert!(set.contains(&2) && set.contains(&3), "{set:?}");
        assert!(!set.contains(&4), "uninterested peers stay choked");
    }

    #[test]
    fn optimistic_rotates_over_rounds() {
        let mut ch = Choker::new(1);
        let peers: Vec<Candidate> = (0..6)
            .map(|i| c(i, true, if i == 0 { 100.0 } else { 0.0 }))
            .collect();
        let mut seen = HashSet::new();
        for _ in 0..60 {
            let set = ch.round(&peers);
            assert!(set.contains(&0));
            assert_eq!(set.len(), 2);
            seen.extend(set);
        }
        assert!(
            seen.len() >= 4,
            "optimistic unchoke never rotated: {seen:?}"
        );
    }

    #[test]
    fn few_peers_all_unchoked() {
        let mut ch = Choker::new(4);
        let set = ch.round(&[c(1, true, 0.0), c(2, true, 0.0)]);
        assert_eq!(set, HashSet::from([1, 2]));
        assert!(ch.round(&[]).is_empty());
    }
}

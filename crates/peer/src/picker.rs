//! Which piece to request next: rarest first, at random among the rarest,
//! with an end-game that asks several peers for the last pieces; and how
//! many requests to keep queued at one peer ([`Pipeline`]).
//!
//! The picker is sans-IO: it counts how many connected peers have each piece
//! (availability) and how many requests for it are in flight, and answers
//! "what should I ask this peer for?".
//!
//! **Peers that promise and never deliver.** A peer must earn our trust:
//! until it delivers a piece it gets one request at a time
//! ([`Pipeline::depth`]), and only peers that deliver get end-game
//! duplicates ([`Picker::pick`] with `trusted`), so the last pieces, held
//! by suspects, are asked of peers that have shown they send. Each request
//! has a deadline that follows the peer's measured rate
//! ([`Pipeline::request_timeout`]); a request that misses it costs the
//! peer its trust.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use wire::Bitfield;

/// In end-game, how many peers may be asked for the same piece at once.
const ENDGAME_MAX_DUPLICATES: u8 = 3;

#[derive(Debug)]
pub struct Picker {
    availability: Vec<u16>,
    requested: Vec<u8>,
    /// Sum of `requested`: requests in flight (or awaiting verification) overall.
    total_requested: usize,
    /// Connected peers that have every piece.
    seeds: usize,
    /// Copies of each piece whose data is arriving now (header in, not yet
    /// verified): never asked of anyone again meanwhile, end-game included.
    arriving: Vec<u8>,
    rng: SmallRng,
}

impl Picker {
    pub fn new(piece_count: u32) -> Self {
        Self::with_rng(piece_count, SmallRng::from_os_rng())
    }

    /// A picker with a fixed seed, for reproducible tests.
    pub fn seeded(piece_count: u32, seed: u64) -> Self {
        Self::with_rng(piece_count, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(piece_count: u32, rng: SmallRng) -> Self {
        Self {
            availability: vec![0; piece_count as usize],
            requested: vec![0; piece_count as usize],
            arriving: vec![0; piece_count as usize],
            total_requested: 0,
            seeds: 0,
            rng,
        }
    }

    /// A peer's bitfield arrived, replacing `previous` (all absent for a new peer).
    pub fn peer_bitfield(&mut self, previous: &Bitfield, current: &Bitfield) {
        if previous.is_complete() && !previous.is_empty() {
            self.seeds = self.seeds.saturating_sub(1);
        }
        if current.is_complete() && !current.is_empty() {
            self.seeds += 1;
        }
        for (i, (old, new)) in previous
            .as_bools()
            .iter()
            .zip(current.as_bools())
            .enumerate()
        {
            match (old, new) {
                (false, true) => self.availability[i] = self.availability[i].saturating_add(1),
                (true, false) => self.availability[i] = self.availability[i].saturating_sub(1),
                _ => {}
            }
        }
    }

    /// A peer announced piece `index`; `now_complete` when that was its last one.
    pub fn peer_have(&mut self, index: u32, now_complete: bool) {
        if now_complete {
            self.seeds += 1;
        }
        if let Some(a) = self.availability.get_mut(index as usize) {
            *a = a.saturating_add(1);
        }
    }

    /// A peer with bitfield `had` went away.
    pub fn peer_gone(&mut self, had: &Bitfield) {
        if had.is_complete() && !had.is_empty() {
            self.seeds = self.seeds.saturating_sub(1);
        }
        for i in had.iter_present() {
            if let Some(a) = self.availability.get_mut(i as usize) {
                *a = a.saturating_sub(1);
            }
        }
    }

    /// How many connected peers have piece `index`.
    pub fn availability(&self, index: u32) -> u16 {
        self.availability.get(index as usize).copied().unwrap_or(0)
    }

    /// How many requests for piece `index` are in flight.
    pub fn in_flight(&self, index: u32) -> u8 {
        self.requested.get(index as usize).copied().unwrap_or(0)
    }

    /// Chooses a piece to request from a peer holding `remote`, given what
    /// we `have` and what this peer is already fetching for us (`asked`).
    /// Marks the choice as requested. Normal mode considers only pieces that
    /// nobody is fetching; when there are none left (end-game), a piece
    /// already requested elsewhere may be duplicated.
    ///
    /// A seed's upload is the swarm's scarcest resource: from a seed, while
    /// other peers are busy serving us, we ask only for pieces that no
    /// non-seed peer holds (so the seed injects new pieces instead of
    /// repeating ones the swarm already has). When nothing else is in flight
    /// we take whatever the seed has, so a swarm of choking peers never stalls us.
    ///
    /// `trusted`: the peer has delivered (and let no request time out since).
    /// Only trusted peers get end-game duplicates, so a piece held by a
    /// peer that does not deliver is asked of one that does, not of another
    /// suspect.
    pub fn pick(
        &mut self,
        have: &Bitfield,
        remote: &Bitfield,
        asked: &[u32],
        trusted: bool,
    ) -> Option<u32> {
        let spare_seed =
            remote.is_complete() && !remote.is_empty() && self.total_requested > asked.len();
        let seeds = self.seeds.max(1).min(u16::MAX as usize) as u16;
        let normal = self.choose(have, remote, |_, requested, availability| {
            requested == 0 && (!spare_seed || availability <= seeds)
        });
        // End-game only once every missing piece is requested somewhere.
        let choice = match normal {
            Some(i) => i,
            None if !trusted || self.any_missing_unrequested(have) => return None,
            None => self.choose(have, remote, |i, requested, _| {
                requested < ENDGAME_MAX_DUPLICATES && !asked.contains(&i)
            })?,
        };
        self.requested[choice as usize] += 1;
        self.total_requested += 1;
        Some(choice)
    }

    fn any_missing_unrequested(&self, have: &Bitfield) -> bool {
        have.iter_missing()
            .any(|i| self.requested[i as usize] == 0 && self.arriving[i as usize] == 0)
    }

    /// The data of piece `index` started arriving (from any peer).
    pub fn arrival_started(&mut self, index: u32) {
        if let Some(a) = self.arriving.get_mut(index as usize) {
            *a = a.saturating_add(1);
        }
    }

    /// A copy of piece `index` that was arriving is verified, failed or dropped.
    pub fn arrival_ended(&mut self, index: u32) {
        if let Some(a) = self.arriving.get_mut(index as usize) {
            *a = a.saturating_sub(1);
        }
    }

    /// Among the eligible pieces of lowest availability (and, among those,
    /// fewest requests in flight), the first found scanning from a random
    /// place, wrapping around. The scan stops at the first piece that no
    /// other can beat (held by this peer alone, requested nowhere), so with
    /// one seed a pick costs the distance to the next missing piece rather
    /// than a pass over every piece (4,096 pieces per GiB at 256 KiB).
    fn choose(
        &mut self,
        have: &Bitfield,
        remote: &Bitfield,
        eligible: impl Fn(u32, u8, u16) -> bool,
    ) -> Option<u32> {
        let theirs = remote.as_bools();
        let mine = have.as_bools();
        let n = theirs.len().min(mine.len()).min(self.availability.len());
        if n == 0 {
            return None;
        }
        let start = self.rng.random_range(0..n);
        let mut best: Option<((u16, u8), u32)> = None;
        for i in (start..n).chain(0..start) {
            if !theirs[i] || mine[i] || self.arriving[i] > 0 {
                continue;
            }
            let idx = i as u32;
            let key = (self.availability[i], self.requested[i]);
            if best.is_some_and(|(b, _)| key >= b) || !eligible(idx, key.1, key.0) {
                continue;
            }
            best = Some((key, idx));
            if key.0 <= 1 && key.1 == 0 {
                break;
            }
        }
        best.map(|(_, i)| i)
    }

    /// A request for `index` ended without the piece (peer gone, choked,
    /// cancelled, bad data): it may be picked again.
    pub fn release(&mut self, index: u32) {
        if let Some(r) = self.requested.get_mut(index as usize) {
            if *r > 0 {
                *r -= 1;
                self.total_requested -= 1;
            }
        }
    }

    /// Requests in flight or awaiting verification, over all peers.
    pub fn total_requested(&self) -> usize {
        self.total_requested
    }

    /// Piece `index` is verified: no request for it is needed any more.
    pub fn completed(&mut self, index: u32) {
        if let Some(r) = self.requested.get_mut(index as usize) {
            self.total_requested -= *r as usize;
            *r = 0;
        }
    }
}

/// How many requests to keep queued at one peer: enough for about
/// `Pipeline::QUEUE_TIME` (50 ms) of data at the rate the peer has been
/// delivering, so a fast peer (loopback) is kept saturated while a slow one
/// (a rate-limited LAN link) is not handed seconds of work that other peers
/// could have shared. Without a measurement yet, a small queue.
///
/// It also says whether the peer has earned trust ([`Pipeline::trusted`]):
/// until its first piece a peer gets a single request, and after a request
/// of ours timed out, its trust is gone until it delivers again.
#[derive(Debug, Default)]
pub struct Pipeline {
    /// Bytes per second, smoothed over piece arrivals.
    rate: f64,
    last_arrival: Option<Instant>,
    /// A piece arrived since the start or the last timed-out request.
    delivered: bool,
}

impl Pipeline {
    const QUEUE_TIME: f64 = 0.05;
    /// Requests once the peer has delivered its first piece, before a rate.
    const START: usize = 4;
    const MIN: usize = 2;
    /// The shortest deadline of a request: scheduling hiccups on a busy
    /// host must not pass for a stalled peer.
    pub const MIN_TIMEOUT: Duration = Duration::from_secs(5);
    /// The longest deadline of a request.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
    /// The slowest rate assumed of a peer not yet measured (bytes/s): a
    /// piece gets at least the time to arrive at this rate.
    const SLOWEST_RATE: f64 = 128.0 * 1024.0;
    /// How many times the expected time a request may take.
    const SLACK: f64 = 4.0;

    /// Whether the peer has delivered, and let no request time out since.
    pub fn trusted(&self) -> bool {
        self.delivered
    }

    /// A request to the peer timed out: it loses our trust, and the rate
    /// we expect of it halves.
    pub fn timed_out(&mut self) {
        self.delivered = false;
        self.rate /= 2.0;
    }

    /// How long a request to this peer may wait for its piece of
    /// `piece_length` bytes, with `depth` requests queued there: the time
    /// the queue takes at the measured rate, [`Pipeline::SLACK`] times over;
    /// unmeasured, the time at [`Pipeline::SLOWEST_RATE`]; between
    /// [`Pipeline::MIN_TIMEOUT`] and [`Pipeline::MAX_TIMEOUT`].
    pub fn request_timeout(&self, piece_length: u64, depth: usize) -> Duration {
        let queue = piece_length as f64 * depth.max(1) as f64;
        let secs = if self.rate > 0.0 {
            Self::SLACK * queue / self.rate
        } else {
            queue / Self::SLOWEST_RATE
        };
        Duration::from_secs_f64(secs.min(Self::MAX_TIMEOUT.as_secs_f64()))
            .clamp(Self::MIN_TIMEOUT, Self::MAX_TIMEOUT)
    }

    /// A piece of `bytes` bytes arrived at `at`.
    pub fn arrived(&mut self, bytes: u64, at: Instant) {
        self.delivered = true;
        if let Some(prev) = self.last_arrival {
            let secs = at.duration_since(prev).as_secs_f64().max(1e-6);
            let sample = bytes as f64 / secs;
            self.rate = if self.rate == 0.0 {
                sample
            } else {
                0.8 * self.rate + 0.2 * sample
            };
        }
        self.last_arrival = Some(at);
    }

    /// Requests to keep in flight for pieces of `piece_length`, at most `max`.
    pub fn depth(&self, piece_length: u64, max: usize) -> usize {
        if !self.delivered {
            return 1;
        }
        if self.rate == 0.0 {
            return Self::START.min(max);
        }
        let want = (self.rate * Self::QUEUE_TIME / piece_length.max(1) as f64).ceil() as usize + 1;
        want.clamp(Self::MIN, max.max(Self::MIN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_asked_only_for_what_the_swarm_lacks_while_others_serve_us() {
        let mut p = Picker::seeded(4, 5);
        let seed = Bitfield::full(4);
        let leecher = bf(&[1, 1, 0, 0]);
        p.peer_bitfield(&Bitfield::new(4), &seed);
        p.peer_bitfield(&Bitfield::new(4), &leecher);
        let have = Bitfield::new(4);
        // Busy with the leecher (piece 0 or 1 in flight there)...
        assert!(matches!(p.pick(&have, &leecher, &[], true), Some(0 | 1)));
        // ...so the seed is asked only for pieces 2 and 3, which only it has.
        let mut from_seed = vec![];
        while let Some(i) = p.pick(&have, &seed, &from_seed, true) {
            from_seed.push(i);
        }
        from_seed.sort();
        assert_eq!(from_seed, vec![2, 3]);
        // Nothing else in flight: the seed may serve anything.
        let mut q = Picker::seeded(4, 6);
        q.peer_bitfield(&Bitfield::new(4), &seed);
        q.peer_bitfield(&Bitfield::new(4), &leecher);
        assert!(q.pick(&have, &seed, &[], true).is_some());
        assert_eq!(q.availability(0), 2);
    }

    fn bf(bits: &[u8]) -> Bitfield {
        Bitfield::from_wire(bits).unwrap()
    }

    #[test]
    fn rarest_first() {
        let mut p = Picker::seeded(4, 1);
        let a = bf(&[1, 1, 1, 1]);
        let b = bf(&[1, 1, 0, 1]);
        p.peer_bitfield(&Bitfield::new(4), &a);
        p.peer_bitfield(&Bitfield::new(4), &b);
        // Piece 2 is held by one peer only.
        assert_eq!(p.pick(&Bitfield::new(4), &a, &[], true), Some(2));
        assert_eq!(p.in_flight(2), 1);
    }

    #[test]
    fn random_among_equally_rare() {
        let remote = Bitfield::full(50);
        let mut firsts = std::collections::HashSet::new();
        for seed in 0..20 {
            let mut p = Picker::seeded(50, seed);
            p.peer_bitfield(&Bitfield::new(50), &remote);
            firsts.insert(p.pick(&Bitfield::new(50), &remote, &[], true).unwrap());
        }
        assert!(firsts.len() > 5, "picks are not spread: {firsts:?}");
    }

    #[test]
    fn never_picks_what_we_have_or_they_lack() {
        let mut p = Picker::seeded(3, 2);
        let remote = bf(&[1, 0, 1]);
        p.peer_bitfield(&Bitfield::new(3), &remote);
        let have = bf(&[1, 0, 0]);
        assert_eq!(p.pick(&have, &remote, &[], true), Some(2));
        // Only piece 2 is left and this peer is already fetching it.
        assert_eq!(p.pick(&have, &remote, &[2], true), None);
    }

    #[test]
    fn endgame_duplicates_then_release() {
        let mut p = Picker::seeded(2, 3);
        let remote = Bitfield::full(2);
        let have = bf(&[1, 0]);
        assert_eq!(p.pick(&have, &remote, &[], true), Some(1));
        // Another peer: nothing unrequested is left, so end-game duplicates piece 1.
        assert_eq!(p.pick(&have, &remote, &[], true), Some(1));
        assert_eq!(p.in_flight(1), 2);
        p.release(1);
        assert_eq!(p.in_flight(1), 1);
        assert_eq!(p.total_requested(), 1);
        p.completed(1);
        assert_eq!(p.in_flight(1), 0);
        assert_eq!(p.total_requested(), 0);
        p.release(1);
        assert_eq!(
            p.total_requested(),
            0,
            "release after completion must not underflow"
        );
    }

    #[test]
    fn a_piece_whose_data_is_arriving_is_never_asked_again() {
        let mut p = Picker::seeded(2, 3);
        let remote = Bitfield::full(2);
        let have = bf(&[1, 0]);
        assert_eq!(p.pick(&have, &remote, &[], true), Some(1));
        // Its header came in: the request is no longer in the connection's
        // list, but the end-game must not ask anyone for it while it streams.
        p.arrival_started(1);
        assert_eq!(p.pick(&have, &remote, &[], true), None);
        // The copy was dropped: the end-game may duplicate it again.
        p.arrival_ended(1);
        assert_eq!(p.pick(&have, &remote, &[], true), Some(1));
    }

    #[test]
    fn availability_tracks_peers() {
        let mut p = Picker::seeded(3, 4);
        let a = bf(&[1, 0, 1]);
        p.peer_bitfield(&Bitfield::new(3), &a);
        p.peer_have(1, false);
        assert_eq!((p.availability(0), p.availability(1)), (1, 1));
        p.peer_gone(&Bitfield::full(3));
        assert_eq!(
            (p.availability(0), p.availability(1), p.availability(2)),
            (0, 0, 0)
        );
    }

    #[test]
    fn pipeline_follows_the_measured_rate() {
        use std::time::Duration;
        let mut p = Pipeline::default();
        assert_eq!(p.depth(1 << 20, 32), 1, "one request until it delivers");
        let mut first = Pipeline::default();
        first.arrived(1 << 20, Instant::now());
        assert_eq!(first.depth(1 << 20, 32), Pipeline::START);
        let t0 = Instant::now();
        // 64 KiB pieces arriving every 26 ms: ~2.5 MB/s, a 20 Mbit/s share.
        for i in 0..20 {
            p.arrived(64 << 10, t0 + Duration::from_millis(26 * i));
        }
        let slow = p.depth(64 << 10, 32);
        assert!((2..=6).contains(&slow), "slow link depth {slow}");
        // 1 MiB pieces every 0.5 ms: ~2 GB/s, loopback.
        let mut q = Pipeline::default();
        for i in 0..20 {
            q.arrived(1 << 20, t0 + Duration::from_micros(500 * i));
        }
        assert_eq!(q.depth(1 << 20, 32), 32);
    }

    #[test]
    fn endgame_duplicates_go_only_to_peers_that_deliver() {
        let mut p = Picker::seeded(2, 7);
        let remote = Bitfield::full(2);
        let have = Bitfield::new(2);
        // Two suspects take both pieces in normal mode.
        assert!(p.pick(&have, &remote, &[], false).is_some());
        assert!(p.pick(&have, &remote, &[], false).is_some());
        // A third suspect gets no duplicate; a peer that delivers does.
        assert_eq!(p.pick(&have, &remote, &[], false), None);
        let dup = p.pick(&have, &remote, &[], true).unwrap();
        assert_eq!(p.in_flight(dup), 2);
    }

    #[test]
    fn request_deadlines_follow_the_rate_and_a_timeout_costs_trust() {
        use std::time::Duration;
        let mut p = Pipeline::default();
        // Unmeasured: the time at the slowest assumed rate, at least the minimum.
        assert_eq!(p.request_timeout(64 << 10, 1), Pipeline::MIN_TIMEOUT);
        assert_eq!(p.request_timeout(4 << 20, 1), Duration::from_secs(32));
        assert_eq!(p.request_timeout(16 << 20, 1), Pipeline::MAX_TIMEOUT);
        assert!(!p.trusted());
        let t0 = Instant::now();
        // 64 KiB every 100 ms: 640 KiB/s. 32 queued take ~3.3 s, 4x that.
        for i in 0..30 {
            p.arrived(64 << 10, t0 + Duration::from_millis(100 * i));
        }
        assert!(p.trusted());
        let t = p.request_timeout(64 << 10, 32).as_secs_f64();
        assert!((12.0..14.0).contains(&t), "{t}");
        assert_eq!(p.request_timeout(64 << 10, 1), Pipeline::MIN_TIMEOUT);
        assert_eq!(p.request_timeout(1 << 30, 32), Pipeline::MAX_TIMEOUT);
        p.timed_out();
        assert!(!p.trusted());
        assert_eq!(p.depth(64 << 10, 32), 1);
        assert!(p.request_timeout(64 << 10, 32).as_secs_f64() > t);
    }
}

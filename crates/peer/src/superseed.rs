//! Super-seeding, sans-IO: an initial seeder that hands out each piece to one
//! peer at a time, so that it uploads about one copy of the file and the
//! peers spread the rest among themselves.
//!
//! A super-seeder tells each peer of our protocol that it has nothing (an
//! empty Bitfield) and then offers it pieces one by one with Have. A peer
//! can request only what it was offered. A piece is offered to one peer
//! only, and only once ("fresh": never offered, or every peer that held it
//! has left; what peers claim before then does not count, so a peer that
//! claims to hold everything cannot stop the offers); the peer gets a new
//! offer once one of its offers has *spread*: the peer announced the piece
//! and so did another peer (or no other peer lacks it, as when it is alone).
//! Each peer has at most `window` offers that have not spread, which keeps
//! the seeder's link busy while the peers relay, and hands a peer that
//! relays slowly, or not at all, no more than that.
//!
//! **End-game.** Once every piece is out, the last ones sit at one peer each,
//! and that peer alone would have to send each of them to every other peer:
//! the swarm's finish would wait on it. So a peer whose offers have spread,
//! when nothing fresh is left, is offered a piece that has not spread yet
//! (the least held, and least offered, first), within a budget of
//! `piece_count / ENDGAME_SHARE` offers, so that the seeder, idle by then,
//! sends the last pieces to a few peers at once for at most a twentieth of a
//! copy more.
//!
//! A peer that leaves takes its offers and its pieces with it: what nobody
//! else holds becomes fresh again and is offered to someone else. Peers of
//! the original protocol know no Have; they are not tracked here and the
//! seeder serves them its whole bitfield as usual.
//!
//! Peers are named by the swarm's connection ids. Every input returns the
//! offers it made possible, as (connection, piece) pairs for the caller to
//! send; memory is one bitfield and at most `window` offers per peer.

use std::collections::HashMap;

use wire::Bitfield;

/// Offers, per peer, that may wait to spread at once (see the module doc).
pub const DEFAULT_WINDOW: u16 = 4;
/// The end-game may offer one piece in this many again.
pub const ENDGAME_SHARE: u32 = 20;

/// Offer piece `.1` to connection `.0`.
pub type Offer = (u64, u32);

#[derive(Debug)]
struct Offeree {
    /// What the peer has told us it holds.
    has: Bitfield,
    /// Pieces offered to it that have not spread yet, oldest first.
    pending: Vec<u32>,
    /// Its bitfield arrived: offers may start.
    ready: bool,
}

/// The super-seeder's view of the swarm: who holds what, and the offers out.
#[derive(Debug)]
pub struct SuperSeed {
    window: usize,
    /// Per piece: tracked peers known to hold it.
    holders: Vec<u16>,
    /// Per piece: the peer it is offered to, until it has spread.
    offered_to: Vec<Option<u64>>,
    /// Per piece: how many times it was offered.
    offers: Vec<u16>,
    /// End-game offers left (see the module doc).
    endgame_left: u32,
    /// Pieces that nobody holds and nobody is offered.
    fresh: u32,
    /// Where the search for the next fresh piece resumes.
    cursor: u32,
    peers: HashMap<u64, Offeree>,
    /// Pieces offered so far, repeats included.
    offers_made: u64,
}

impl SuperSeed {
    /// A super-seeder of `piece_count` pieces, with `window` unspread offers per peer.
    pub fn new(piece_count: u32, window: usize) -> Self {
        Self {
            window: window.max(1),
            holders: vec![0; piece_count as usize],
            offered_to: vec![None; piece_count as usize],
            offers: vec![0; piece_count as usize],
            endgame_left: piece_count / ENDGAME_SHARE,
            fresh: piece_count,
            cursor: 0,
            peers: HashMap::new(),
            offers_made: 0,
        }
    }

    fn piece_count(&self) -> u32 {
        self.holders.len() as u32
    }

    /// Whether connection `id` is super-seeded (it joined and has not left).
    pub fn tracks(&self, id: u64) -> bool {
        self.peers.contains_key(&id)
    }

    /// Offers made so far, counting a piece offered again after its peer left.
    pub fn offers_made(&self) -> u64 {
        self.offers_made
    }

    /// A peer of our protocol connected; it is told we have nothing, and
    /// gets offers once its bitfield arrives. When its connection `replaces`
    /// another one to the same peer (both ends dialed at once), it takes
    /// over that one's state and offers, which it must be told again: the
    /// returned offers.
    pub fn join(&mut self, id: u64, replaces: Option<u64>) -> Vec<Offer> {
        if self.peers.contains_key(&id) {
            return Vec::new();
        }
        if let Some(old) = replaces.and_then(|old| self.peers.remove(&old).map(|p| (old, p))) {
            let (old, peer) = old;
            for &i in &peer.pending {
                if self.offered_to[i as usize] == Some(old) {
                    self.offered_to[i as usize] = Some(id);
                }
            }
            let again = peer.pending.iter().map(|&i| (id, i)).collect();
            self.peers.insert(id, peer);
            return again;
        }
        let count = self.piece_count();
        self.peers.insert(
            id,
            Offeree {
                has: Bitfield::new(count),
                pending: Vec::new(),
                ready: false,
            },
        );
        Vec::new()
    }

    /// Peer `id` sent its bitfield (replacing whatever it said before).
    pub fn bitfield(&mut self, id: u64, bits: &Bitfield) -> Vec<Offer> {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Vec::new();
        };
        if bits.len() != peer.has.len() {
            return Vec::new();
        }
        let previous = std::mem::replace(&mut peer.has, bits.clone());
        peer.ready = true;
        for i in 0..self.piece_count() {
            match (previous.has(i), bits.has(i)) {
                (false, true) => self.add_holder(i),
                (true, false) => self.remove_holder(i),
                _ => {}
            }
        }
        self.settle()
    }

    /// Peer `id` announced piece `index`.
    pub fn have(&mut self, id: u64, index: u32) -> Vec<Offer> {
        let count = self.piece_count();
        let Some(peer) = self.peers.get_mut(&id) else {
            return Vec::new();
        };
        if index >= count || !peer.has.set(index, true) {
            return Vec::new();
        }
        self.add_holder(index);
        self.settle()
    }

    /// Peer `id` left: its offers are void and its pieces gone; what nobody
    /// else holds is offered to others.
    pub fn leave(&mut self, id: u64) -> Vec<Offer> {
        let Some(peer) = self.peers.remove(&id) else {
            return Vec::new();
        };
        for i in peer.pending {
            self.withdraw(i, id);
        }
        for i in peer.has.iter_present() {
            self.remove_holder(i);
        }
        // Fresh pieces may now lie behind the cursor.
        self.cursor = 0;
        self.settle()
    }

    /// Whether piece `i` may be offered to a peer that lacks it: it is
    /// offered to nobody now, and we never offered it or every peer that
    /// held it left. (What peers claim to hold does not count before we
    /// offered a piece: a peer claiming everything cannot stop the offers.)
    fn is_fresh(&self, i: u32) -> bool {
        let i = i as usize;
        self.offered_to[i].is_none() && (self.offers[i] == 0 || self.holders[i] == 0)
    }

    /// Changes piece `i` with `f`, keeping the count of fresh pieces true.
    fn change(&mut self, i: u32, f: impl FnOnce(&mut Self)) {
        let before = self.is_fresh(i);
        f(self);
        match (before, self.is_fresh(i)) {
            (false, true) => {
                self.fresh += 1;
                self.cursor = self.cursor.min(i);
            }
            (true, false) => self.fresh = self.fresh.saturating_sub(1),
            _ => {}
        }
    }

    /// Withdraws the offer of piece `i` to `id`, if it was offered to it.
    fn withdraw(&mut self, i: u32, id: u64) {
        self.change(i, |s| {
            if s.offered_to[i as usize] == Some(id) {
                s.offered_to[i as usize] = None;
            }
        });
    }

    fn add_holder(&mut self, i: u32) {
        self.change(i, |s| {
            s.holders[i as usize] = s.holders[i as usize].saturating_add(1);
        });
    }

    fn remove_holder(&mut self, i: u32) {
        self.change(i, |s| {
            s.holders[i as usize] = s.holders[i as usize].saturating_sub(1);
        });
    }

    /// Whether piece `index`, offered to `id`, has spread: `id` holds it and
    /// so does another peer, or no other peer that could take it lacks it.
    fn spread(&self, id: u64, index: u32) -> bool {
        let Some(peer) = self.peers.get(&id) else {
            return true;
        };
        if !peer.has.has(index) {
            return false;
        }
        self.holders[index as usize] >= 2
            || !self
                .peers
                .iter()
                .any(|(&other, p)| other != id && p.ready && !p.has.has(index))
    }

    /// Retires the offers that have spread, then tops every ready peer's
    /// offers up to the window with fresh pieces.
    fn settle(&mut self) -> Vec<Offer> {
        let ids: Vec<u64> = self.peers.keys().copied().collect();
        for &id in &ids {
            let pending = std::mem::take(&mut self.peers.get_mut(&id).expect("listed").pending);
            let (spread, waiting): (Vec<u32>, Vec<u32>) =
                pending.into_iter().partition(|&i| self.spread(id, i));
            for i in spread {
                self.withdraw(i, id);
            }
            self.peers.get_mut(&id).expect("listed").pending = waiting;
        }
        let mut offers = Vec::new();
        for id in ids {
            loop {
                let peer = &self.peers[&id];
                if !peer.ready || peer.pending.len() >= self.window {
                    break;
                }
                let index = match self.next_fresh(id) {
                    Some(index) => {
                        self.change(index, |s| s.offered_to[index as usize] = Some(id));
                        index
                    }
                    None => match self.endgame_piece(id) {
                        Some(index) => {
                            self.endgame_left -= 1;
                            index
                        }
                        None => break,
                    },
                };
                self.offers[index as usize] = self.offers[index as usize].saturating_add(1);
                self.offers_made += 1;
                self.peers.get_mut(&id).expect("listed").pending.push(index);
                offers.push((id, index));
            }
        }
        offers
    }

    /// With nothing fresh left, a piece offered to another peer that has not
    /// spread, which peer `id` lacks and is not offered: the least held,
    /// then the least offered. None once the end-game budget is spent.
    fn endgame_piece(&self, id: u64) -> Option<u32> {
        if self.endgame_left == 0 || self.fresh > 0 {
            return None;
        }
        let peer = &self.peers[&id];
        (0..self.piece_count())
            .filter(|&i| {
                self.offered_to[i as usize].is_some_and(|to| to != id)
                    && !peer.has.has(i)
                    && !peer.pending.contains(&i)
            })
            .min_by_key(|&i| (self.holders[i as usize], self.offers[i as usize]))
    }

    /// The next fresh piece that peer `id` lacks, searching from the cursor.
    fn next_fresh(&mut self, id: u64) -> Option<u32> {
        if self.fresh == 0 {
            return None;
        }
        let count = self.piece_count();
        let has = &self.peers[&id].has;
        let found = (0..count)
            .map(|step| (self.cursor + step) % count)
            .find(|&i| self.is_fresh(i) && !has.has(i))?;
        self.cursor = (found + 1) % count;
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(offers: &[Offer], id: u64) -> Vec<u32> {
        offers.iter().filter(|o| o.0 == id).map(|o| o.1).collect()
    }

    /// Joins `id` with an empty bitfield; returns its first offers.
    fn join(s: &mut SuperSeed, id: u64, count: u32) -> Vec<u32> {
        assert!(s.join(id, None).is_empty());
        pieces(&s.bitfield(id, &Bitfield::new(count)), id)
    }

    #[test]
    fn each_piece_goes_to_one_peer_and_a_new_one_follows_its_spread() {
        let mut s = SuperSeed::new(8, 1);
        assert_eq!(join(&mut s, 1, 8), vec![0]);
        assert_eq!(join(&mut s, 2, 8), vec![1]);
        // Peer 1 has its piece, but nobody else does yet: no new offer.
        assert!(s.have(1, 0).is_empty());
        // Peer 2 got piece 0 from peer 1: it spread, and peer 1 gets piece 2.
        assert_eq!(s.have(2, 0), vec![(1, 2)]);
        assert_eq!(s.have(2, 1), vec![]);
        assert_eq!(s.have(1, 1), vec![(2, 3)]);
        assert_eq!(s.offers_made(), 4);
    }

    #[test]
    fn the_window_bounds_unspread_offers() {
        let mut s = SuperSeed::new(16, 3);
        assert_eq!(join(&mut s, 1, 16), vec![0, 1, 2]);
        assert_eq!(join(&mut s, 2, 16), vec![3, 4, 5]);
        // Peer 1 holds all three, but none has spread: it waits.
        for i in 0..3 {
            assert!(s.have(1, i).is_empty());
        }
        assert_eq!(s.have(2, 1), vec![(1, 6)]);
    }

    #[test]
    fn a_lone_peer_is_not_kept_waiting_for_a_spread() {
        let mut s = SuperSeed::new(3, 1);
        assert_eq!(join(&mut s, 1, 3), vec![0]);
        assert_eq!(s.have(1, 0), vec![(1, 1)]);
        assert_eq!(s.have(1, 1), vec![(1, 2)]);
        assert_eq!(s.have(1, 2), vec![]);
        assert_eq!(s.offers_made(), 3, "each piece exactly once");
    }

    #[test]
    fn pieces_a_peer_holds_are_not_offered_to_it() {
        let mut s = SuperSeed::new(4, 4);
        s.join(1, None);
        assert_eq!(pieces(&s.bitfield(1, &s_bits(4, &[0, 2])), 1), vec![1, 3]);
        // A second peer gets the two we never offered.
        assert_eq!(join(&mut s, 2, 4), vec![0, 2]);
        assert!(join(&mut s, 3, 4).is_empty(), "all offered once");
    }

    #[test]
    fn a_peer_claiming_every_piece_does_not_stop_the_offers() {
        let mut s = SuperSeed::new(4, 2);
        s.join(9, None);
        assert!(s.bitfield(9, &Bitfield::full(4)).is_empty());
        assert_eq!(join(&mut s, 1, 4), vec![0, 1]);
        assert_eq!(join(&mut s, 2, 4), vec![2, 3]);
    }

    #[test]
    fn a_leaving_peer_gives_back_what_nobody_else_holds() {
        let mut s = SuperSeed::new(4, 2);
        assert_eq!(join(&mut s, 1, 4), vec![0, 1]);
        assert_eq!(join(&mut s, 2, 4), vec![2, 3]);
        assert!(s.have(1, 0).is_empty());
        assert!(s.have(2, 0).is_empty(), "0 spread, but nothing is fresh");
        // Peer 1 leaves holding piece 0 (peer 2 has it too) and owing piece 1.
        assert_eq!(s.leave(1), vec![]);
        // Peer 2 still has two offers out; once one spreads, it gets piece 1.
        assert_eq!(s.have(2, 2), vec![(2, 1)]);
        let mut t = SuperSeed::new(2, 1);
        assert_eq!(join(&mut t, 1, 2), vec![0]);
        assert_eq!(join(&mut t, 2, 2), vec![1]);
        assert!(t.have(1, 0).is_empty());
        // Peer 1 leaves before piece 0 spread: it is offered again.
        assert_eq!(t.have(2, 1), vec![]);
        assert_eq!(t.leave(1), vec![(2, 0)]);
        assert!(!t.tracks(1) && t.tracks(2));
    }

    #[test]
    fn peers_not_ready_or_unknown_get_nothing_and_bad_input_is_ignored() {
        let mut s = SuperSeed::new(4, 2);
        s.join(1, None);
        assert!(s.have(1, 0).is_empty(), "no offers before the bitfield");
        assert!(s.have(9, 0).is_empty());
        assert!(s.have(1, 99).is_empty());
        assert!(s.bitfield(1, &Bitfield::new(5)).is_empty());
        assert!(s.leave(9).is_empty());
        // Piece 0 is held by peer 1: the offers are 1 and 2.
        assert_eq!(pieces(&s.bitfield(1, &s_bits(4, &[0])), 1), vec![1, 2]);
    }

    fn s_bits(count: u32, set: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(count);
        for &i in set {
            b.set(i, true);
        }
        b
    }

    #[test]
    fn a_whole_swarm_gets_every_piece_about_once_from_the_seeder() {
        // Simulate 5 peers that relay at once: every piece is offered once,
        // a few more in the end-game, and every peer ends with everything.
        let count = 40;
        let mut s = SuperSeed::new(count, 2);
        let mut queue: Vec<Offer> = Vec::new();
        for id in 0..5 {
            s.join(id, None);
            queue.extend(s.bitfield(id, &Bitfield::new(count)));
        }
        let mut held = vec![vec![false; count as usize]; 5];
        while let Some((id, piece)) = queue.pop() {
            // The offeree downloads it, then every other peer copies it.
            for peer in std::iter::once(id).chain((0..5).filter(|&p| p != id)) {
                if !held[peer as usize][piece as usize] {
                    held[peer as usize][piece as usize] = true;
                    queue.extend(s.have(peer, piece));
                }
            }
        }
        assert!(held.iter().all(|h| h.iter().all(|&x| x)));
        let made = s.offers_made();
        assert!((u64::from(count)..=u64::from(count + count / ENDGAME_SHARE)).contains(&made));
    }

    #[test]
    fn the_end_game_offers_unspread_pieces_again_within_its_budget() {
        // 40 pieces: a budget of 2 end-game offers.
        let mut s = SuperSeed::new(40, 20);
        assert_eq!(join(&mut s, 1, 40).len(), 20);
        assert_eq!(join(&mut s, 2, 40).len(), 20);
        // Peer 2 gets its 20 and they spread to peer 1: peer 2 has room, and
        // nothing is fresh, so it is offered two of peer 1's unspread pieces.
        let mut extra = Vec::new();
        for i in 20..40 {
            extra.extend(s.have(2, i));
        }
        for i in 20..40 {
            extra.extend(s.have(1, i));
        }
        assert_eq!(extra.len(), 2, "{extra:?}");
        assert!(extra.iter().all(|&(id, i)| id == 2 && i < 20), "{extra:?}");
        assert_ne!(extra[0].1, extra[1].1);
        assert_eq!(s.offers_made(), 42);
        // Peer 1 holding everything: no more offers for anyone.
        for i in 0..20 {
            assert!(s.have(1, i).is_empty());
        }
    }

    #[test]
    fn a_replacing_connection_takes_over_the_offers() {
        let mut s = SuperSeed::new(8, 2);
        assert_eq!(join(&mut s, 1, 8), vec![0, 1]);
        assert_eq!(join(&mut s, 2, 8), vec![2, 3]);
        assert!(s.have(1, 0).is_empty());
        // Peer 1's second connection (id 5) replaces connection 1: it is
        // told of the same offers again, and no piece is offered twice.
        assert_eq!(s.join(5, Some(1)), vec![(5, 0), (5, 1)]);
        assert!(!s.tracks(1) && s.tracks(5));
        assert!(s.leave(1).is_empty());
        assert_eq!(s.have(2, 0), vec![(5, 4)]);
        assert_eq!(s.offers_made(), 5);
    }
}

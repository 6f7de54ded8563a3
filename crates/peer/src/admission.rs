//! Who may hold a connection, and whom we dial (sans-IO): the caps on
//! connections per address and in total, the connections still opening,
//! bans by address, and the bounds and backoff of our dials.
//!
//! A peer id is a claim, not an identity: everything here keys on what a
//! connection proves. A connection we dialed proves the listener's
//! `IP:port`; one that dialed us proves only its IP (its port is
//! ephemeral). So a ban falls on the `IP:port` we dialed, or on the whole IP
//! of a peer that dialed us, where a new source port does not escape it.
//!
//! The swarm ([`crate::swarm`]) keeps one [`Admission`] in its state; time
//! comes in as a parameter.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Most admitted connections at once.
pub const MAX_PEERS: usize = 64;
/// Most admitted connections from one IP address.
pub const MAX_PER_IP: usize = 8;
/// Most connections still opening (handshake, admission) at once.
pub const MAX_OPENING: usize = 32;
/// Most connections still opening from one IP address.
pub const MAX_OPENING_PER_IP: usize = 8;
/// Most dials whose TCP connect is under way.
pub const MAX_DIALS: usize = 8;
/// Peers we ask a tracker for; entries of a reply beyond these are ignored.
pub const NUMWANT: usize = 50;
/// Dial candidates kept waiting for a free dial.
const MAX_QUEUED_DIALS: usize = 2 * NUMWANT;
/// The ticket of a connection that does not wait: it goes behind everyone.
pub const NO_TICKET: u64 = u64::MAX;
/// Most opened connections waiting for a slot, from one IP and in all.
const MAX_WAITING_PER_IP: usize = 16;
const MAX_WAITING: usize = 64;
/// A connection younger than this is never evicted for a newcomer (an
/// honest peer says what it wants right after its Bitfield).
pub const EVICT_GRACE: Duration = Duration::from_secs(1);
/// A connection silent for this long is evictable, whatever it said before
/// (a third longer than our keep-alive period).
pub const EVICT_SILENCE: Duration = Duration::from_secs(60);
/// First wait before dialing an address again; doubled at every dial that
/// did not give a lasting connection.
const REDIAL_BASE: Duration = Duration::from_secs(1);
const REDIAL_MAX: Duration = Duration::from_secs(300);
/// A dialed connection that lasted this long clears the address's backoff.
pub const STABLE: Duration = Duration::from_secs(60);
/// Addresses whose dial history we keep, and bans we keep.
const MAX_DIAL_RECORDS: usize = 4096;
const MAX_BANS: usize = 4096;

/// What a ban or a strike falls on: what the connection proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Culprit {
    /// A peer that dialed us: its IP address, whatever its source port.
    Ip(IpAddr),
    /// A peer we dialed: the listener at that address.
    Listener(SocketAddr),
}

impl Culprit {
    /// The culprit behind a connection with `addr`, `outgoing` if we dialed.
    pub fn of(addr: SocketAddr, outgoing: bool) -> Self {
        if outgoing {
            Culprit::Listener(addr)
        } else {
            Culprit::Ip(addr.ip())
        }
    }
}

impl fmt::Display for Culprit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Culprit::Ip(ip) => write!(f, "{ip}"),
            Culprit::Listener(addr) => write!(f, "{addr}"),
        }
    }
}

/// Why a slot is not free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The address holds [`MAX_PER_IP`] connections.
    Address(IpAddr),
    /// The swarm holds [`MAX_PEERS`] connections.
    Total,
}

#[derive(Debug, Clone, Copy)]
struct DialRecord {
    /// Dials since the last lasting connection.
    failures: u32,
    /// No dial before this.
    next: Instant,
}

/// The admission state of one swarm. `T` is what the driver needs to stop a
/// connection that is still opening (a cancellation token, say).
#[derive(Debug)]
pub struct Admission<T> {
    /// Connections opening, by id (ids grow: the first is the oldest).
    opening: BTreeMap<u64, (IpAddr, T)>,
    /// Opened connections waiting for a slot, in turn (by id), with what held them.
    waiting: BTreeMap<u64, (IpAddr, Full)>,
    bans: HashSet<Culprit>,
    ban_order: VecDeque<Culprit>,
    dials: HashMap<SocketAddr, DialRecord>,
    /// Dials whose TCP connect is under way.
    connecting: usize,
    queue: VecDeque<(SocketAddr, bool)>,
}

impl<T> Default for Admission<T> {
    fn default() -> Self {
        Self {
            opening: BTreeMap::new(),
            waiting: BTreeMap::new(),
            bans: HashSet::new(),
            ban_order: VecDeque::new(),
            dials: HashMap::new(),
            connecting: 0,
            queue: VecDeque::new(),
        }
    }
}

impl<T> Admission<T> {
    // --- Connections still opening.

    /// Connection `id` from `ip` starts opening. Returns the openings that
    /// make way for it: the oldest of its address when that address has
    /// [`MAX_OPENING_PER_IP`], the oldest of all when [`MAX_OPENING`] are
    /// opening. An honest opening takes a round trip; to push one out, a
    /// stranger must open that many connections within it.
    pub fn opening_started(&mut self, id: u64, ip: IpAddr, stop: T) -> Vec<T> {
        let mut evicted = Vec::new();
        let of_ip = self.opening.values().filter(|(i, _)| *i == ip).count();
        if of_ip >= MAX_OPENING_PER_IP {
            let oldest = self.opening.iter().find(|(_, (i, _))| *i == ip);
            if let Some(&old) = oldest.map(|(id, _)| id) {
                evicted.extend(self.opening.remove(&old).map(|(_, t)| t));
            }
        }
        if self.opening.len() >= MAX_OPENING {
            evicted.extend(self.opening.pop_first().map(|(_, (_, t))| t));
        }
        self.opening.insert(id, (ip, stop));
        evicted
    }

    /// Connection `id` is no longer opening (it opened, or is gone).
    pub fn opening_ended(&mut self, id: u64) {
        self.opening.remove(&id);
    }

    pub fn opening_count(&self) -> usize {
        self.opening.len()
    }

    // --- Waiting for a slot, in turn.

    /// Whether connection `ticket` (its opening id: older ones first) from
    /// `ip` gets a slot, given the connections held: `of_ip` from its
    /// address and `total` in all. Slots go in turn: those waiting ahead of
    /// it for the same kind of slot count as holding one. When none is free
    /// it waits in line (if the line has room) until it asks again, or
    /// [`Admission::stop_waiting`].
    pub fn slot_in_turn(
        &mut self,
        ticket: u64,
        ip: IpAddr,
        of_ip: usize,
        total: usize,
    ) -> Result<(), Full> {
        let ahead = self.waiting.range(..ticket).map(|(_, w)| w);
        let (ahead_ip, ahead_total) = ahead.fold((0, 0), |(i, t), (_, full)| match full {
            Full::Address(a) if *a == ip => (i + 1, t),
            Full::Address(_) => (i, t),
            Full::Total => (i, t + 1),
        });
        match Self::slot(ip, of_ip + ahead_ip, total + ahead_total) {
            Ok(()) => {
                self.waiting.remove(&ticket);
                Ok(())
            }
            Err(full) => {
                let of_ip = self.waiting.values().filter(|(i, _)| *i == ip).count();
                let queued = self.waiting.contains_key(&ticket);
                let room = of_ip < MAX_WAITING_PER_IP && self.waiting.len() < MAX_WAITING;
                if ticket != NO_TICKET && (queued || room) {
                    self.waiting.insert(ticket, (ip, full));
                }
                Err(full)
            }
        }
    }

    /// Whether connection `ticket` has a place in the line for a slot.
    pub fn is_waiting(&self, ticket: u64) -> bool {
        self.waiting.contains_key(&ticket)
    }

    /// Connection `ticket` no longer waits for a slot.
    pub fn stop_waiting(&mut self, ticket: u64) {
        self.waiting.remove(&ticket);
    }

    // --- Bans.

    /// Bans `culprit` (the oldest ban goes once [`MAX_BANS`] are kept).
    pub fn ban(&mut self, culprit: Culprit) {
        if !self.bans.insert(culprit) {
            return;
        }
        self.ban_order.push_back(culprit);
        if self.ban_order.len() > MAX_BANS {
            if let Some(old) = self.ban_order.pop_front() {
                self.bans.remove(&old);
            }
        }
    }

    /// Whether a connection with `addr` is banned: any connection from a
    /// banned IP, and ours to a banned listener.
    pub fn is_banned(&self, addr: SocketAddr, outgoing: bool) -> bool {
        self.bans.contains(&Culprit::Ip(addr.ip()))
            || (outgoing && self.bans.contains(&Culprit::Listener(addr)))
    }

    // --- Slots.

    /// Whether one more connection from `ip` fits, given the connections
    /// held: `of_ip` from that address and `total` in all.
    pub fn slot(ip: IpAddr, of_ip: usize, total: usize) -> Result<(), Full> {
        if of_ip >= MAX_PER_IP {
            Err(Full::Address(ip))
        } else if total >= MAX_PEERS {
            Err(Full::Total)
        } else {
            Ok(())
        }
    }

    // --- Dials.

    /// Offers `addr` (`legacy`: of the original protocol) for dialing.
    /// Refused when banned, backing off, or already queued; the queue keeps
    /// the first [`MAX_QUEUED_DIALS`] offers.
    pub fn offer_dial(&mut self, addr: SocketAddr, legacy: bool, now: Instant) -> bool {
        if self.is_banned(addr, true)
            || self.dials.get(&addr).is_some_and(|r| r.next > now)
            || self.queue.len() >= MAX_QUEUED_DIALS
            || self.queue.iter().any(|&(a, _)| a == addr)
        {
            return false;
        }
        self.queue.push_back((addr, legacy));
        true
    }

    /// The next queued dial to start, if fewer than [`MAX_DIALS`] are
    /// connecting and `room` allows one more connection. `skip` says which
    /// queued addresses no longer need a dial (connected meanwhile).
    /// The dial counts as connecting until [`Admission::connect_ended`].
    pub fn next_dial(
        &mut self,
        room: bool,
        now: Instant,
        mut skip: impl FnMut(SocketAddr) -> bool,
    ) -> Option<(SocketAddr, bool)> {
        if !room || self.connecting >= MAX_DIALS {
            return None;
        }
        while let Some((addr, legacy)) = self.queue.pop_front() {
            if skip(addr)
                || self.is_banned(addr, true)
                || self.dials.get(&addr).is_some_and(|r| r.next > now)
            {
                continue;
            }
            self.dial_started(addr, now);
            return Some((addr, legacy));
        }
        None
    }

    /// Dials whose TCP connect is under way.
    pub fn connecting(&self) -> usize {
        self.connecting
    }

    fn dial_started(&mut self, addr: SocketAddr, now: Instant) {
        self.connecting += 1;
        if self.dials.len() >= MAX_DIAL_RECORDS && !self.dials.contains_key(&addr) {
            // Forget the address whose backoff ends first.
            let first = self.dials.iter().min_by_key(|(_, r)| r.next);
            if let Some(&old) = first.map(|(a, _)| a) {
                self.dials.remove(&old);
            }
        }
        let record = self.dials.entry(addr).or_insert(DialRecord {
            failures: 0,
            next: now,
        });
        let wait = REDIAL_BASE
            .saturating_mul(1 << record.failures.min(16))
            .min(REDIAL_MAX);
        record.next = now + wait;
        // Counted as failed until it proves lasting (see `dial_ended`).
        record.failures = record.failures.saturating_add(1);
    }

    /// The TCP connect of a dial is over, connected or not.
    pub fn connect_ended(&mut self) {
        self.connecting = self.connecting.saturating_sub(1);
    }

    /// A dialed connection to `addr` ended after `lasted`: a lasting one
    /// clears the address's backoff.
    pub fn dial_ended(&mut self, addr: SocketAddr, lasted: Duration) {
        if lasted >= STABLE {
            if let Some(r) = self.dials.get_mut(&addr) {
                r.failures = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }
    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(ip(last), port)
    }
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_oldest_opening_of_a_crowded_address_gives_way() {
        let mut a = Admission::default();
        for id in 0..MAX_OPENING_PER_IP as u64 {
            assert!(a.opening_started(id, ip(1), id).is_empty());
        }
        // Another address is not affected by the first one's crowd.
        assert!(a.opening_started(100, ip(2), 100).is_empty());
        assert_eq!(a.opening_started(101, ip(1), 101), vec![0]);
        assert_eq!(a.opening_started(102, ip(1), 102), vec![1]);
        a.opening_ended(102);
        assert!(a.opening_started(103, ip(1), 103).is_empty());
        assert_eq!(a.opening_count(), MAX_OPENING_PER_IP + 1);
    }

    #[test]
    fn the_oldest_opening_gives_way_when_too_many_open() {
        let mut a = Admission::default();
        let mut id = 0;
        for n in 0..MAX_OPENING {
            let evicted = a.opening_started(id, ip((n / MAX_OPENING_PER_IP) as u8), id);
            assert!(evicted.is_empty());
            id += 1;
        }
        assert_eq!(a.opening_started(id, ip(200), id), vec![0]);
        assert_eq!(a.opening_count(), MAX_OPENING);
    }

    #[test]
    fn bans_fall_on_what_the_connection_proved() {
        let mut a = Admission::<()>::default();
        // A peer that dialed us: its IP, whatever the source port.
        a.ban(Culprit::of(addr(2, 40000), false));
        assert!(a.is_banned(addr(2, 40001), false));
        assert!(a.is_banned(addr(2, 6881), true));
        assert!(!a.is_banned(addr(1, 40000), false));
        // A listener we dialed: that listener, not its neighbours.
        a.ban(Culprit::of(addr(3, 6881), true));
        assert!(a.is_banned(addr(3, 6881), true));
        assert!(!a.is_banned(addr(3, 6882), true));
        assert!(!a.is_banned(addr(3, 40000), false));
        assert_eq!(
            Culprit::of(addr(3, 6881), true).to_string(),
            "127.0.0.3:6881"
        );
        assert_eq!(Culprit::of(addr(2, 9), false).to_string(), "127.0.0.2");
    }

    #[test]
    fn the_ban_list_is_bounded() {
        let mut a = Admission::<()>::default();
        for port in 0..=MAX_BANS as u16 {
            a.ban(Culprit::Listener(addr(1, port)));
        }
        assert_eq!(a.bans.len(), MAX_BANS);
        assert!(!a.is_banned(addr(1, 0), true), "the oldest ban went");
        assert!(a.is_banned(addr(1, MAX_BANS as u16), true));
    }

    #[test]
    fn slots_per_address_and_in_total() {
        type A = Admission<()>;
        assert_eq!(A::slot(ip(1), 0, 0), Ok(()));
        assert_eq!(
            A::slot(ip(1), MAX_PER_IP, MAX_PER_IP),
            Err(Full::Address(ip(1)))
        );
        assert_eq!(A::slot(ip(1), 0, MAX_PEERS), Err(Full::Total));
    }

    #[test]
    fn slots_go_in_turn_to_those_waiting() {
        let mut a = Admission::<()>::default();
        let full = MAX_PER_IP;
        // 5 waits first for a slot of 127.0.0.1, then 9 does.
        assert_eq!(
            a.slot_in_turn(5, ip(1), full, 10),
            Err(Full::Address(ip(1)))
        );
        assert_eq!(
            a.slot_in_turn(9, ip(1), full, 10),
            Err(Full::Address(ip(1)))
        );
        // Another address is not held up by that line.
        assert_eq!(a.slot_in_turn(7, ip(2), 0, 10), Ok(()));
        // One slot frees: 9 (or a newcomer) must let 5 have it.
        assert!(a.slot_in_turn(9, ip(1), full - 1, 10).is_err());
        assert!(a.slot_in_turn(12, ip(1), full - 1, 10).is_err());
        assert_eq!(a.slot_in_turn(5, ip(1), full - 1, 10), Ok(()));
        assert_eq!(a.slot_in_turn(9, ip(1), full - 1, 10), Ok(()));
        // One that gives up leaves the line.
        a.stop_waiting(12);
        assert!(a.waiting.is_empty());
        // The line is bounded: beyond it, refused without a place.
        for t in 100..100 + MAX_WAITING_PER_IP as u64 + 5 {
            assert!(a.slot_in_turn(t, ip(3), full, 10).is_err());
        }
        assert_eq!(a.waiting.len(), MAX_WAITING_PER_IP);
        assert!(a.is_waiting(100) && !a.is_waiting(100 + MAX_WAITING_PER_IP as u64));
    }

    #[test]
    fn dials_in_flight_are_bounded_and_the_queue_too() {
        let t = Instant::now();
        let mut a = Admission::<()>::default();
        let offered = (0..3000u32)
            .filter(|&i| a.offer_dial(addr(1 + (i / 60000) as u8, i as u16 + 1), false, t))
            .count();
        assert_eq!(offered, MAX_QUEUED_DIALS);
        assert!(!a.offer_dial(addr(1, 1), false, t), "queued once");
        let mut started = Vec::new();
        while let Some((d, _)) = a.next_dial(true, t, |_| false) {
            started.push(d);
        }
        assert_eq!(started.len(), MAX_DIALS);
        assert_eq!(a.connecting(), MAX_DIALS);
        a.connect_ended();
        assert!(a.next_dial(false, t, |_| false).is_none(), "no room");
        // A queued address connected meanwhile is skipped.
        let next = a.next_dial(true, t, |d| d == addr(1, 9)).unwrap();
        assert_eq!(next.0, addr(1, 10));
    }

    #[test]
    fn redials_back_off_until_a_connection_lasts() {
        let t = Instant::now();
        let mut a = Admission::<()>::default();
        let peer = addr(5, 6881);
        let dial_at = |a: &mut Admission<()>, at: Instant| {
            a.offer_dial(peer, false, at)
                && a.next_dial(true, at, |_| false)
                    .inspect(|_| a.connect_ended())
                    == Some((peer, false))
        };
        assert!(dial_at(&mut a, t));
        assert!(!dial_at(&mut a, t + Duration::from_millis(999)));
        assert!(dial_at(&mut a, t + secs(1)));
        // Each failure doubles the wait: 2 s now, then 4 s.
        assert!(!dial_at(&mut a, t + secs(2)));
        assert!(dial_at(&mut a, t + secs(3)));
        assert!(!dial_at(&mut a, t + secs(6)));
        assert!(dial_at(&mut a, t + secs(7)));
        // A lasting connection clears it: the next redial waits the base again.
        a.dial_ended(peer, STABLE);
        assert!(dial_at(&mut a, t + secs(15)));
        assert!(dial_at(&mut a, t + secs(16)));
        assert!(!dial_at(&mut a, t + secs(17)));
    }

    #[test]
    fn the_dial_record_is_bounded() {
        let t = Instant::now();
        let mut a = Admission::<()>::default();
        for i in 0..(MAX_DIAL_RECORDS + 10) as u32 {
            a.dial_started(addr((i >> 16) as u8, i as u16), t + secs(i as u64));
            a.connect_ended();
        }
        assert_eq!(a.dials.len(), MAX_DIAL_RECORDS);
    }
}

//! Connections per source IP: a count per address, taken when a connection
//! is accepted and given back when it closes ([`Ticket`]'s drop).
//!
//! The table holds only addresses with an open connection, so it is
//! bounded by the connection cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per source IP, with a cap.
#[derive(Debug)]
pub struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection's place in [`PerIp`]; dropping it frees the place.
#[derive(Debug)]
pub struct Ticket {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A table allowing `max` connections from one IP.
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            open: Mutex::default(),
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for one more connection from `ip`, or `None` at the cap.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Ticket {
            table: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    /// Addresses with a connection open.
    pub fn sources(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_ip_and_frees_on_drop() {
        let table = PerIp::new(2);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let t1 = table.enter(a).unwrap();
        let _t2 = table.enter(a).unwrap();
        assert!(table.enter(a).is_none());
        let _t3 = table.enter(b).expect("another IP has its own cap");
        // A mapped IPv6 source is the same host.
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert!(table.enter(mapped).is_none());
        drop(t1);
        assert_eq!(table.open(a), 1);
        assert!(table.enter(a).is_some());
        assert_eq!(table.sources(), 2);
    }
}

/// The connections waiting for a request, and since when: when every slot
/// is taken, the one idle the longest gives its slot (its permit, handed
/// over directly) to a newcomer, so a crowd of idle connections cannot keep
/// clients out: it only churns itself.
#[derive(Debug)]
pub struct IdleSet<P> {
    next: std::sync::atomic::AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting<P>>>,
}

/// A connection waiting for a request: since when, and how it gives way.
type Waiting<P> = (std::time::Instant, Arc<Handoff<P>>);

/// How an idle connection is told to give way, and to whom its slot goes.
#[derive(Debug)]
pub struct Handoff<P> {
    evicted: tokio_util::sync::CancellationToken,
    to: Mutex<Option<tokio::sync::oneshot::Sender<P>>>,
}

impl<P> Default for Handoff<P> {
    fn default() -> Self {
        Handoff {
            evicted: tokio_util::sync::CancellationToken::new(),
            to: Mutex::new(None),
        }
    }
}

impl<P> Handoff<P> {
    /// Completes when the connection must give way.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await
    }

    /// Gives `slot` to the newcomer this connection gave way to, if any;
    /// otherwise it is dropped (freed).
    pub fn pass_on(&self, slot: P) {
        let to = self.to.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(to) = to {
            let _ = to.send(slot);
        }
    }
}

impl<P> Default for IdleSet<P> {
    fn default() -> Self {
        IdleSet {
            next: std::sync::atomic::AtomicU64::new(0),
            waiting: Mutex::default(),
        }
    }
}

impl<P> IdleSet<P> {
    /// A fresh id for a connection.
    pub fn id(&self) -> u64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Connection `id` waits for a request since `since`.
    pub fn waiting(&self, id: u64, since: std::time::Instant, handoff: &Arc<Handoff<P>>) {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.insert(id, (since, handoff.clone()));
    }

    /// Connection `id` is busy (a request came) or gone.
    pub fn busy(&self, id: u64) {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.remove(&id);
    }

    /// Tells the connection idle the longest, if any has waited at least
    /// `min_idle` by `now`, to close and pass its slot to `to`. Gives `to`
    /// back when there is none.
    pub fn evict_oldest(
        &self,
        now: std::time::Instant,
        min_idle: std::time::Duration,
        to: tokio::sync::oneshot::Sender<P>,
    ) -> Result<(), tokio::sync::oneshot::Sender<P>> {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = w
            .iter()
            .filter(|(_, (since, _))| now.duration_since(*since) >= min_idle)
            .min_by_key(|(_, (since, _))| *since)
            .map(|(&id, _)| id);
        match oldest.and_then(|id| w.remove(&id)) {
            Some((_, handoff)) => {
                *handoff.to.lock().unwrap_or_else(|e| e.into_inner()) = Some(to);
                handoff.evicted.cancel();
                Ok(())
            }
            None => Err(to),
        }
    }

    /// Connections waiting for a request.
    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no connection is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod idle_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_connection_idle_longest_gives_its_slot_to_the_newcomer() {
        let set = IdleSet::<&str>::default();
        let t0 = Instant::now();
        let conns: Vec<Arc<Handoff<&str>>> = (0..3).map(|_| Arc::default()).collect();
        for (i, h) in conns.iter().enumerate() {
            set.waiting(i as u64, t0 + Duration::from_secs(i as u64), h);
        }
        // A request came on connection 0: it is not idle.
        set.busy(0);
        let now = t0 + Duration::from_secs(10);
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        assert!(set.evict_oldest(now, Duration::from_secs(1), tx).is_ok());
        assert!(!conns[0].evicted.is_cancelled());
        assert!(conns[1].evicted.is_cancelled());
        assert!(!conns[2].evicted.is_cancelled());
        // The evicted connection hands its slot over as it closes.
        conns[1].pass_on("slot of 1");
        assert_eq!(rx.try_recv(), Ok("slot of 1"));
        // A connection that closes on its own frees its slot.
        conns[2].pass_on("slot of 2");
        // Nobody idle long enough: nobody goes.
        let (tx, _rx) = tokio::sync::oneshot::channel();
        assert!(set
            .evict_oldest(t0 + Duration::from_secs(2), Duration::from_secs(1), tx)
            .is_err());
        assert_eq!(set.len(), 1);
    }
}

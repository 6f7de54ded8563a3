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

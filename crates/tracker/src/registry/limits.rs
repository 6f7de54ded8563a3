//! The registry's bounds: how many swarms and peers it holds, in all and
//! per IP, and which swarms it serves at all. Sans-IO.
//!
//! A peer is counted against the IP it is listed at (the TCP source, or
//! the `ip` field a trusted relay vouched for), whether it announced here
//! or was learned from a replica. An IP's swarms are those in which it has
//! at least one peer. Configured swarms (`--torrent`) are counted like the
//! others but never refused for the swarm cap, and with
//! [`Limits::only_configured`] they are the only ones that take peers.
//!
//! [`Usage`] keeps the running totals; the registry asks it before adding
//! a peer ([`Usage::admit`]) and tells it of every peer added or removed.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;

/// Default cap on swarms.
pub const DEFAULT_MAX_SWARMS: usize = 16_384;
/// Default cap on peers over all swarms.
pub const DEFAULT_MAX_PEERS: usize = 200_000;
/// Default cap on peers listed at one IP (over all swarms).
pub const DEFAULT_MAX_PEERS_PER_IP: usize = 16_384;
/// Default cap on swarms one IP has peers in.
pub const DEFAULT_MAX_SWARMS_PER_IP: usize = 256;

/// What the registry may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Swarms in all (configured ones included; they are never refused).
    pub max_swarms: usize,
    /// Peers in all.
    pub max_peers: usize,
    /// Peers listed at one IP.
    pub max_peers_per_ip: usize,
    /// Swarms in which one IP has peers.
    pub max_swarms_per_ip: usize,
    /// Only configured swarms take peers (`--only-torrents`).
    pub only_configured: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_swarms: DEFAULT_MAX_SWARMS,
            max_peers: DEFAULT_MAX_PEERS,
            max_peers_per_ip: DEFAULT_MAX_PEERS_PER_IP,
            max_swarms_per_ip: DEFAULT_MAX_SWARMS_PER_IP,
            only_configured: false,
        }
    }
}

/// Why an announce (or a replica's record) was refused. The text is what
/// the client reads in the error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this tracker serves only the swarms of its torrent files (--only-torrents)")]
    NotServed,
    #[error("tracker full: {0} swarms already, no new swarm can be created")]
    TooManySwarms(usize),
    #[error("tracker full: {0} peers already registered")]
    TooManyPeers(usize),
    #[error("too many peers from {ip}: at most {max} per IP address")]
    PeersPerIp { ip: IpAddr, max: usize },
    #[error("too many swarms from {ip}: at most {max} per IP address")]
    SwarmsPerIp { ip: IpAddr, max: usize },
    /// The address is listed under another peer id, which alone may change
    /// or remove it (until it goes silent).
    #[error("address is registered by another peer id; only that peer may change or remove it")]
    AddressHeld,
}

/// One IP's share of the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpUsage {
    pub peers: usize,
    pub swarms: usize,
}

/// Running totals, kept in step with the swarms.
#[derive(Debug, Default)]
pub(super) struct Usage {
    peers: usize,
    per_ip: HashMap<IpAddr, IpUsage>,
}

/// Where a new peer would go.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    /// Its swarm does not exist yet.
    pub new_swarm: bool,
    /// Its swarm is configured (`--torrent`).
    pub configured: bool,
    /// Its IP has no peer in that swarm yet.
    pub new_ip_in_swarm: bool,
}

impl Usage {
    pub(super) fn peers(&self) -> usize {
        self.peers
    }

    pub(super) fn ip(&self, ip: IpAddr) -> IpUsage {
        self.per_ip.get(&ip).copied().unwrap_or_default()
    }

    /// Whether a new peer at `ip` may be added, with `swarms` swarms held.
    pub(super) fn admit(
        &self,
        limits: &Limits,
        ip: IpAddr,
        at: Placement,
        swarms: usize,
    ) -> Result<(), Refusal> {
        if limits.only_configured && !at.configured {
            return Err(Refusal::NotServed);
        }
        if at.new_swarm && swarms >= limits.max_swarms {
            return Err(Refusal::TooManySwarms(limits.max_swarms));
        }
        if self.peers >= limits.max_peers {
            return Err(Refusal::TooManyPeers(limits.max_peers));
        }
        let mine = self.ip(ip);
        if mine.peers >= limits.max_peers_per_ip {
            return Err(Refusal::PeersPerIp {
                ip,
                max: limits.max_peers_per_ip,
            });
        }
        if at.new_ip_in_swarm && mine.swarms >= limits.max_swarms_per_ip {
            return Err(Refusal::SwarmsPerIp {
                ip,
                max: limits.max_swarms_per_ip,
            });
        }
        Ok(())
    }

    /// Counts a peer added at `ip` (`first_in_swarm`: the IP's first there).
    pub(super) fn added(&mut self, ip: IpAddr, first_in_swarm: bool) {
        self.peers += 1;
        let mine = self.per_ip.entry(ip).or_default();
        mine.peers += 1;
        mine.swarms += usize::from(first_in_swarm);
    }

    /// Counts a peer removed at `ip` (`last_in_swarm`: the IP's last there).
    pub(super) fn removed(&mut self, ip: IpAddr, last_in_swarm: bool) {
        self.peers = self.peers.saturating_sub(1);
        if let Entry::Occupied(mut e) = self.per_ip.entry(ip) {
            let mine = e.get_mut();
            mine.peers = mine.peers.saturating_sub(1);
            mine.swarms = mine.swarms.saturating_sub(usize::from(last_in_swarm));
            if mine.peers == 0 {
                e.remove();
            }
        }
    }

    /// IPs with peers.
    #[cfg(test)]
    pub(super) fn ips(&self) -> usize {
        self.per_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    const NEW: Placement = Placement {
        new_swarm: true,
        configured: false,
        new_ip_in_swarm: true,
    };
    const OLD: Placement = Placement {
        new_swarm: false,
        configured: false,
        new_ip_in_swarm: false,
    };

    #[test]
    fn each_bound_refuses_with_its_reason() {
        let limits = Limits {
            max_swarms: 3,
            max_peers: 5,
            max_peers_per_ip: 2,
            max_swarms_per_ip: 1,
            only_configured: false,
        };
        let mut u = Usage::default();
        assert_eq!(u.admit(&limits, ip(1), NEW, 0), Ok(()));
        u.added(ip(1), true);
        assert_eq!(
            u.admit(&limits, ip(1), NEW, 1),
            Err(Refusal::SwarmsPerIp { ip: ip(1), max: 1 })
        );
        assert_eq!(u.admit(&limits, ip(1), OLD, 1), Ok(()));
        u.added(ip(1), false);
        assert_eq!(
            u.admit(&limits, ip(1), OLD, 1),
            Err(Refusal::PeersPerIp { ip: ip(1), max: 2 })
        );
        assert_eq!(
            u.admit(&limits, ip(2), NEW, 3),
            Err(Refusal::TooManySwarms(3))
        );
        for n in 2..5 {
            u.added(ip(n), true);
        }
        assert_eq!(
            u.admit(&limits, ip(9), OLD, 3),
            Err(Refusal::TooManyPeers(5))
        );
        let only = Limits {
            only_configured: true,
            ..limits
        };
        assert_eq!(u.admit(&only, ip(9), OLD, 3), Err(Refusal::NotServed));
        // Removing frees the IP's share, and forgets an IP with none.
        u.removed(ip(1), false);
        u.removed(ip(1), true);
        assert_eq!(u.ip(ip(1)), IpUsage::default());
        assert_eq!((u.peers(), u.ips()), (3, 3));
        assert_eq!(u.admit(&limits, ip(1), NEW, 2), Ok(()));
    }

    #[test]
    fn refusals_read_clearly() {
        let text = Refusal::PeersPerIp { ip: ip(7), max: 4 }.to_string();
        assert_eq!(
            text,
            "too many peers from 127.0.0.7: at most 4 per IP address"
        );
        assert!(Refusal::NotServed.to_string().contains("--only-torrents"));
    }
}

//! LAN discovery, the I/O side: [`wire::discovery::Discovery`] driven over
//! the kit's multicast sockets.
//!
//! One socket bound to port 6771 joins 239.192.152.143 on every chosen
//! interface, and one joins `ff15::efc0:988f` where IPv6 multicast works.
//! Announces go out on each interface in turn (`IP_MULTICAST_IF`), with the
//! configured TTL (1 by default: the datagrams stay on the LAN); answers go
//! back by unicast from the same socket. Peers found are handed to the
//! session, which dials them like peers from a tracker.

use std::net::SocketAddr;
use std::time::Instant;

use lanio::iface::Iface;
use lanio::multicast::{self, SendOptions};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wire::discovery::{Announce, Discovery, DiscoveryEvent, LSD_V4, LSD_V6, MAX_DATAGRAM};
use wire::InfoHash;

/// A peer found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub addr: SocketAddr,
    pub info_hash: InfoHash,
    /// Which group it was heard on: `lsd-v4` or `lsd-v6`.
    pub via: &'static str,
}

/// Where and how to announce.
#[derive(Debug, Clone)]
pub struct Options {
    /// The interfaces to join and send on (all multicast-capable ones by default).
    pub ifaces: Vec<Iface>,
    /// TTL / hop limit of announces.
    pub ttl: u32,
}

impl Options {
    /// Every multicast-capable interface, or only `only` when given.
    pub fn new(only: Option<Iface>, ttl: u32) -> anyhow::Result<Options> {
        let ifaces = match only {
            Some(i) => vec![i],
            None => lanio::iface::multicast_interfaces()?,
        };
        Ok(Options { ifaces, ttl })
    }
}

/// One address family's socket and group.
struct Family {
    sock: UdpSocket,
    group: SocketAddr,
    via: &'static str,
}

fn open_family(group: SocketAddr, via: &'static str, opts: &Options) -> anyhow::Result<Family> {
    let first = opts.ifaces.first();
    let sock = multicast::bind_receiver(group.ip(), group.port(), first, None)?;
    for iface in opts.ifaces.iter().skip(1) {
        if let Err(e) = multicast::join_on(&sock, group.ip(), iface) {
            tracing::debug!("discovery: {e:#}");
        }
    }
    multicast::configure_sending(&sock, group.ip(), first, send_options(opts))?;
    Ok(Family {
        sock: multicast::into_tokio(sock)?,
        group,
        via,
    })
}

fn send_options(opts: &Options) -> SendOptions {
    SendOptions {
        ttl: opts.ttl,
        multicast_loop: true,
    }
}

/// Runs discovery until `stop`: announces `disc`'s swarms, answers
/// searches, and sends every peer found to `found` (dropped when the
/// session is not keeping up: it will hear of the peer again).
pub async fn run(
    mut disc: Discovery,
    opts: Options,
    found: mpsc::Sender<Found>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if opts.ifaces.is_empty() {
        anyhow::bail!("no multicast-capable interface for LAN discovery");
    }
    let v4 = open_family(SocketAddr::V4(LSD_V4), "lsd-v4", &opts)?;
    let v6 = match open_family(SocketAddr::V6(LSD_V6), "lsd-v6", &opts) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::debug!("discovery over IPv6 is off: {e:#}");
            None
        }
    };
    let families: Vec<&Family> = std::iter::once(&v4).chain(v6.as_ref()).collect();
    let (mut buf4, mut buf6) = (vec![0u8; MAX_DATAGRAM + 1], vec![0u8; MAX_DATAGRAM + 1]);
    loop {
        let deadline = disc.poll_timeout().map(tokio::time::Instant::from_std);
        let (family, received) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = sleep_until(deadline) => {
                disc.handle_timeout(Instant::now());
                (None, None)
            }
            r = multicast::recv_with_ttl(&v4.sock, &mut buf4) => (Some(&v4), Some((r, true))),
            r = recv_v6(v6.as_ref(), &mut buf6) => (v6.as_ref(), Some((r, false))),
        };
        if let (Some(family), Some((received, is_v4))) = (family, received) {
            match received {
                Ok(r) => {
                    let buf = if is_v4 { &buf4 } else { &buf6 };
                    // A cut datagram is oversize: handled as such (dropped and counted).
                    let len = if r.truncated { buf.len() } else { r.len };
                    disc.handle_datagram(Instant::now(), r.from, &buf[..len]);
                    drain(&mut disc, family, &families, &opts, &found).await;
                    continue;
                }
                Err(e) => tracing::debug!("discovery receive: {e}"),
            }
        }
        drain(&mut disc, &v4, &families, &opts, &found).await;
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn recv_v6(f: Option<&Family>, buf: &mut [u8]) -> std::io::Result<multicast::Received> {
    match f {
        Some(f) => multicast::recv_with_ttl(&f.sock, buf).await,
        None => std::future::pending().await,
    }
}

/// Carries out what discovery asks for: multicasts on every interface and
/// family, unicast answers from the family the question came on, peers found.
async fn drain(
    disc: &mut Discovery,
    heard_on: &Family,
    families: &[&Family],
    opts: &Options,
    found: &mpsc::Sender<Found>,
) {
    while let Some(event) = disc.poll_event() {
        match event {
            DiscoveryEvent::Multicast(announce) => {
                for family in families {
                    multicast_everywhere(family, &announce, opts).await;
                }
            }
            DiscoveryEvent::Unicast(to, announce) => {
                let bytes = announce.encode(&heard_on.group.to_string());
                if let Err(e) = heard_on.sock.send_to(&bytes, to).await {
                    tracing::debug!("discovery answer to {to}: {e}");
                }
            }
            DiscoveryEvent::Discovered { addr, info_hash } => {
                let _ = found.try_send(Found {
                    addr,
                    info_hash,
                    via: heard_on.via,
                });
            }
        }
    }
}

async fn multicast_everywhere(family: &Family, announce: &Announce, opts: &Options) {
    let bytes = announce.encode(&family.group.to_string());
    let sock = socket2::SockRef::from(&family.sock);
    for iface in &opts.ifaces {
        if family.group.ip().is_ipv4() && iface.v4.is_none() {
            continue;
        }
        if let Err(e) =
            multicast::configure_sending(&sock, family.group.ip(), Some(iface), send_options(opts))
        {
            tracing::debug!("discovery on {}: {e:#}", iface.name);
            continue;
        }
        if let Err(e) = family.sock.send_to(&bytes, family.group).await {
            tracing::debug!("discovery announce on {}: {e}", iface.name);
        }
    }
}

/// A random cookie that marks this process's datagrams.
pub fn new_cookie() -> String {
    format!("{:016x}", rand::random::<u64>())
}

//! `tracker --seed-udp PORT`: the seed's chat directory over UDP text, so
//! that the seed's own clients register with us and our tracker takes part
//! in the seed servers' exchange on their multicast group.
//!
//! - [`directory`]: the server as a sans-IO state machine.
//! - This module: the two sockets (clients on `PORT`, the group socket on
//!   the group's port, joined with [`lanio::multicast`]), the task that
//!   drives the directory, and the registry side: each client the
//!   directory knows is a peer of the room `lobby` (no `proto`, peer id
//!   and name `ip:port`), refreshed while it stays, and a client asking
//!   for the list gets the directory's clients plus our own chat members
//!   of `lobby` (their UDP port is their TCP port).
//!
//! The wire formats are [`wire::seed_chat`]'s. See the README's Protocol
//! section for the exchange.

pub mod directory;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lanio::multicast::{bind_receiver, configure_sending, into_tokio, SendOptions};
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};
use wire::chat::{room_hash, DEFAULT_ROOM};
use wire::seed_chat::{render_list, MAX_DATAGRAM};
use wire::tracker::Event;

use crate::handler::{Note, Tracker};
use crate::registry::{Announce, Change};
use crate::report::Reporter;
use directory::{Action, Directory, Dropped};

/// How `--seed-udp` is set up.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    /// Where clients send `READY`, `RETURN` and `QUIT_CLIENT`.
    pub listen: SocketAddrV4,
    /// The servers' multicast group and port.
    pub group: SocketAddrV4,
    /// TTL of our datagrams to the group (0 keeps them on this host).
    pub ttl: u32,
}

/// The two sockets, bound before the tracker says it listens.
#[derive(Debug)]
pub struct Bound {
    client: UdpSocket,
    group_socket: UdpSocket,
    group: SocketAddrV4,
}

impl Bound {
    /// Binds the client port and joins the group (looping our own
    /// datagrams back, so servers on one host hear each other).
    pub fn bind(config: &SeedConfig) -> anyhow::Result<Bound> {
        let client = std::net::UdpSocket::bind(config.listen)
            .with_context(|| format!("cannot bind the seed's UDP port {}", config.listen))?;
        client.set_nonblocking(true)?;
        let group_ip = IpAddr::V4(*config.group.ip());
        let sock = bind_receiver(group_ip, config.group.port(), None, None)
            .with_context(|| format!("cannot join the seed servers' group {}", config.group))?;
        let opts = SendOptions {
            ttl: config.ttl,
            multicast_loop: true,
        };
        configure_sending(&sock, group_ip, None, opts)?;
        Ok(Bound {
            client: UdpSocket::from_std(client)?,
            group_socket: into_tokio(sock)?,
            group: config.group,
        })
    }

    /// The clients' address, as bound.
    pub fn client_addr(&self) -> std::io::Result<SocketAddr> {
        self.client.local_addr()
    }
}

/// The `ip:port` a seed client is listed and named under.
fn client_id(addr: SocketAddrV4) -> String {
    addr.to_string()
}

/// Drives the directory until the task is dropped: datagrams from clients
/// and servers, replies when due, registry refreshes twice per interval.
pub async fn run(bound: Arc<Bound>, tracker: Arc<Tracker>, reporter: Reporter, interval: Duration) {
    let lobby = Lobby {
        tracker,
        reporter,
        bound: bound.clone(),
    };
    if let Ok(addr) = bound.client_addr() {
        info!(
            "seed directory on {addr} (UDP), servers' group {}",
            bound.group
        );
    }
    let mut directory = Directory::new();
    let mut client_buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut group_buf = vec![0u8; MAX_DATAGRAM + 1];
    let period = (interval / 2).max(Duration::from_millis(100));
    let mut refresh = tokio::time::interval(period);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = directory.next_due();
        let wake = due.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        );
        let now = Instant::now();
        let result = tokio::select! {
            got = bound.client.recv_from(&mut client_buf) => match got {
                Ok((len, from)) => match (from, len > MAX_DATAGRAM) {
                    (_, true) => Err(oversize(&mut directory, from)),
                    (SocketAddr::V4(from), false) => directory.on_client(from, &client_buf[..len], now),
                    (SocketAddr::V6(_), false) => Ok(Vec::new()),
                },
                Err(e) => {
                    debug!("seed client socket: {e}");
                    Ok(Vec::new())
                }
            },
            got = bound.group_socket.recv_from(&mut group_buf) => match got {
                Ok((len, from)) if len > MAX_DATAGRAM => Err(oversize(&mut directory, from)),
                Ok((len, from)) => directory.on_server(from, &group_buf[..len]),
                Err(e) => {
                    debug!("seed group socket: {e}");
                    Ok(Vec::new())
                }
            },
            _ = tokio::time::sleep_until(wake), if due.is_some() => {
                for client in directory.due(Instant::now()) {
                    lobby.send_list(&directory, client).await;
                }
                Ok(Vec::new())
            }
            _ = refresh.tick() => {
                lobby.refresh(&directory);
                Ok(Vec::new())
            }
        };
        match result {
            Ok(actions) => {
                for action in actions {
                    lobby.apply(action).await;
                }
            }
            Err(dropped) => lobby.reporter.seed_dropped(&dropped, directory.dropped),
        }
    }
}

fn oversize(directory: &mut Directory, from: SocketAddr) -> Dropped {
    directory.dropped += 1;
    Dropped {
        from,
        reason: format!("datagram longer than {MAX_DATAGRAM} bytes"),
    }
}

/// The registry side: seed clients as peers of the room `lobby`.
struct Lobby {
    tracker: Arc<Tracker>,
    reporter: Reporter,
    bound: Arc<Bound>,
}

impl Lobby {
    async fn apply(&self, action: Action) {
        match action {
            Action::Register(addr) => self.announce(addr, Some(Event::Started)),
            Action::Unregister(addr) => self.announce(addr, Some(Event::Stopped)),
            Action::ToGroup(msg) => {
                self.send(
                    &self.bound.group_socket,
                    msg.render(),
                    self.bound.group.into(),
                )
                .await
            }
            Action::Answer(to, msg) => self.send(&self.bound.group_socket, msg.render(), to).await,
        }
    }

    async fn send(&self, socket: &UdpSocket, text: String, to: SocketAddr) {
        if let Err(e) = socket.send_to(text.as_bytes(), to).await {
            warn!("seed: cannot send to {to}: {e}");
        }
    }

    /// Registers, refreshes (`event` None) or removes a seed client.
    fn announce(&self, addr: SocketAddrV4, event: Option<Event>) {
        let id = client_id(addr);
        let announce = Announce {
            swarm: Some(room_hash(DEFAULT_ROOM)),
            addr: addr.into(),
            peer_id: &id,
            event,
            numwant: Some(0),
            proto: None,
            name: Some(&id),
            left: None,
            downloaded: None,
        };
        let outcome = self
            .tracker
            .registry()
            .announce(&announce, Instant::now(), &mut rand::rng());
        match outcome.change {
            Change::Refreshed | Change::Absent => {}
            Change::NameTaken => warn!("seed client {id}: a chat member already holds that name"),
            Change::Refused(why) => warn!("seed client {id} not registered: {why}"),
            change => self.reporter.note(&Note {
                change,
                swarm: outcome.swarm,
                peer_id: id,
                addr: addr.into(),
            }),
        }
    }

    fn refresh(&self, directory: &Directory) {
        for client in directory.clients() {
            self.announce(client, None);
        }
    }

    /// The list for a client: the directory's clients, then our own chat
    /// members of the lobby.
    async fn send_list(&self, directory: &Directory, client: SocketAddrV4) {
        let members: Vec<SocketAddrV4> = self
            .tracker
            .registry()
            .addrs(room_hash(DEFAULT_ROOM))
            .into_iter()
            .filter_map(|(addr, proto)| match (addr, proto) {
                (SocketAddr::V4(v4), Some(_)) => Some(v4),
                _ => None,
            })
            .collect();
        let list = render_list("", directory.clients().chain(members));
        debug!("seed: list for {client}: {} bytes", list.len());
        self.send(&self.bound.client, list, client.into()).await;
    }
}

/// The address clients reach the seed directory at: `--seed-udp PORT` on
/// the tracker's IPv4 listen address (the wildcard for an IPv6 one).
pub fn client_listen(tracker_listen: SocketAddr, port: u16) -> SocketAddrV4 {
    let ip = match tracker_listen.ip() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    SocketAddrV4::new(ip, port)
}

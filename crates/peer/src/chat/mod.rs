//! `peer chat`: a room found through the tracker, messages sent directly.
//!
//! | module | holds |
//! |---|---|
//! | [`room`] | sans-IO: members, identity checks, seqs, acknowledgements, queues for absent members |
//! | [`conn`] | one TCP connection to a member: hello exchange, framed messages both ways |
//! | [`directory`] | announcing to the trackers, reading the room's list |
//! | [`ui`] | typed commands, bounded stdin lines, the human line of each event |
//! | this module | start-up, the one task that owns the room, the seed's UDP datagrams, leaving |
//!
//! One task owns the [`room::Room`] and every connection's outbox; the
//! connection tasks report to it over one bounded channel, so nothing is
//! locked. On start it registers, dials every member listed, waits (at most
//! [`JOIN_WAIT`]) for their hellos and shows who is online; then it
//! handles typed lines, connections, datagrams, a refresh of the list every
//! half interval (dialling members it lost, when its name sorts first, so
//! two members never dial each other at once) and a tick for the room's
//! timers. Leaving (end of input, `/quit`) waits a little for the lines
//! sent to be acknowledged, then sends `bye` to everyone and `stopped` to
//! the trackers; Ctrl-C leaves at once.

pub mod conn;
pub mod directory;
pub mod room;
pub mod ui;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use lanio::{BadInput, EventWriter, Signals};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use wire::chat::{validate_name, ChatMessage, MAX_TEXT};
use wire::tracker::Event as Announce;

use crate::cli::ChatArgs;
use crate::discover;
use crate::events::Event;
use conn::{Inbound, Me, OUTBOX};
use directory::{Directory, Listing};
use room::{ConnId, Output, Room, MAX_MEMBERS};
use ui::{Command, Lines};

/// Longest wait on start for the members listed to say hello.
pub const JOIN_WAIT: Duration = Duration::from_secs(3);
/// Connections open at once (members, and strangers still saying hello).
pub const MAX_CONNECTIONS: usize = MAX_MEMBERS + 16;
/// Seed clients kept from the lists at most.
const MAX_SEED_CLIENTS: usize = 1024;
/// Refreshes of the list: half the tracker's interval, within these bounds.
const REFRESH_MIN: Duration = Duration::from_secs(1);
const REFRESH_MAX: Duration = Duration::from_secs(15);
/// How long leaving may take: lines sent waiting for acknowledgements,
/// then goodbyes written and trackers told.
const LEAVE_WAIT: Duration = Duration::from_secs(3);

/// Runs `peer chat` until the person leaves (or `--send` is done).
pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let (listener, udp) = bind(args.listen).await?;
    let local = listener.local_addr()?;
    // Before anything says we are here: a script may signal us at once.
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let out = EventWriter::<Event>::stdout(args.json);
    let directory = Directory::new(args.tracker.clone(), &args.name, &args.room, local.port());
    let listing = if args.tracker.is_empty() {
        Listing::default()
    } else {
        register(&directory, &out).await?
    };
    let mut chat = Chat::new(&args, out.clone(), udp, local);
    if !args.discover.no_discover {
        chat.discovered = discover_room(&args, local.port(), &out).await;
    }
    let result = chat
        .session(
            &listener,
            &mut signals,
            &directory,
            listing,
            args.send.as_deref(),
        )
        .await;
    chat.leave(&directory).await;
    out.finish(Duration::from_secs(2));
    result
}

fn check_args(args: &ChatArgs) -> Result<(), BadInput> {
    validate_name(&args.name).map_err(|e| BadInput(format!("--name {e}")))?;
    if args.name.chars().any(char::is_whitespace) {
        return Err(BadInput("--name may not hold spaces (/msg NAME …)".into()));
    }
    validate_name(&args.room).map_err(|e| BadInput(format!("--room {e}")))?;
    if args.tracker.is_empty() && args.discover.no_discover {
        return Err(BadInput(
            "give a --tracker, or leave out --no-discover to find the room on the LAN".into(),
        ));
    }
    if !(args.timeout > 0.0 && args.timeout <= 86_400.0) {
        return Err(BadInput(
            "--timeout must be more than 0 and at most 86400 seconds".into(),
        ));
    }
    if let Some(text) = &args.send {
        if text.len() > MAX_TEXT {
            return Err(BadInput(format!(
                "--send TEXT is longer than {MAX_TEXT} bytes"
            )));
        }
    }
    Ok(())
}

/// The TCP listener and the UDP socket on the same port (a free one for
/// port 0: tried a few times, since the UDP port may be taken).
async fn bind(listen: SocketAddr) -> anyhow::Result<(TcpListener, UdpSocket)> {
    let mut last = None;
    for _ in 0..10 {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr()?;
        match UdpSocket::bind(local).await {
            Ok(udp) => return Ok((listener, udp)),
            Err(e) if listen.port() == 0 => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("cannot bind UDP {local}")),
        }
    }
    Err(last.expect("tried")).context("no port free for both TCP and UDP")
}

/// The first announce: the room's list, or why we cannot join.
async fn register(directory: &Directory, out: &EventWriter<Event>) -> anyhow::Result<Listing> {
    let (listing, answered, errors) = directory.announce(Some(Announce::Started)).await;
    let refused = errors
        .iter()
        .find(|e| matches!(e, directory::AnnounceError::Refused { .. }));
    if let Some(refused) = refused {
        let message = refused.to_string();
        directory
            .only(answered)
            .announce(Some(Announce::Stopped))
            .await;
        bail!("{message}");
    }
    if answered.is_empty() {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bail!("no tracker answered: {}", all.join("; "));
    }
    for e in errors {
        out.emit(&Event::TrackerError {
            error: e.to_string(),
        });
    }
    Ok(listing)
}

/// Starts LAN discovery of the room: its id announced, members heard
/// handed over. `None` (with a warning) when it cannot run here.
async fn discover_room(
    args: &ChatArgs,
    port: u16,
    out: &EventWriter<Event>,
) -> Option<mpsc::Receiver<discover::Found>> {
    let iface = match args
        .discover
        .iface
        .as_deref()
        .map(lanio::iface::Iface::resolve)
        .transpose()
    {
        Ok(i) => i,
        Err(e) => {
            out.emit(&Event::Notice {
                text: format!("LAN discovery is off: {e:#}"),
            });
            return None;
        }
    };
    let opts = match discover::Options::new(iface, args.discover.discover_ttl) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("LAN discovery is off: {e:#}");
            return None;
        }
    };
    let mut disc = wire::discovery::Discovery::new(
        port,
        discover::new_cookie(),
        wire::discovery::DiscoveryConfig::default(),
    );
    disc.add_swarm(wire::chat::room_hash(&args.room), Instant::now());
    let (tx, rx) = mpsc::channel(64);
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(async move {
        if let Err(e) = discover::run(disc, opts, tx, stop).await {
            tracing::warn!("LAN discovery stopped: {e:#}");
        }
    });
    Some(rx)
}

async fn recv_found(rx: &mut Option<mpsc::Receiver<discover::Found>>) -> Option<discover::Found> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The address this host uses to reach `peer` (no packet is sent).
fn local_towards(peer: SocketAddr) -> Option<std::net::IpAddr> {
    let wildcard: SocketAddr = if peer.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = std::net::UdpSocket::bind(wildcard).ok()?;
    sock.connect(peer).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

/// The µs since the Unix epoch: the first seq, so a restarted member's
/// seqs stay above its earlier ones.
fn first_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

/// The state of the task that owns the room.
struct Chat {
    room: Room,
    out: EventWriter<Event>,
    me: Arc<Me>,
    local: SocketAddr,
    udp: UdpSocket,
    /// Each connection's outbox; dropping it closes the connection.
    conns: HashMap<ConnId, mpsc::Sender<ChatMessage>>,
    /// Connections we dialled and that have not said hello yet, by name listed.
    dialing: HashMap<ConnId, String>,
    next_conn: ConnId,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound: mpsc::Receiver<Inbound>,
    tasks: JoinSet<()>,
    seed_clients: BTreeSet<SocketAddrV4>,
    /// The members of the previous list.
    listed: BTreeMap<String, SocketAddr>,
    /// While joining: the dials not yet answered; member_joined is not shown.
    joining: Option<HashSet<ConnId>>,
    send_timeout: Duration,
    /// Members found on the LAN (when discovery runs).
    discovered: Option<mpsc::Receiver<discover::Found>>,
    /// Addresses already dialled because discovery found them.
    dialed_found: HashSet<SocketAddr>,
}

impl Chat {
    fn new(args: &ChatArgs, out: EventWriter<Event>, udp: UdpSocket, local: SocketAddr) -> Chat {
        let (inbound_tx, inbound) = mpsc::channel(1024);
        Chat {
            room: Room::new(&args.name, first_seq()),
            out,
            me: Arc::new(Me {
                name: args.name.clone(),
                room: args.room.clone(),
            }),
            local,
            udp,
            conns: HashMap::new(),
            dialing: HashMap::new(),
            next_conn: 1,
            inbound_tx,
            inbound,
            tasks: JoinSet::new(),
            seed_clients: BTreeSet::new(),
            listed: BTreeMap::new(),
            joining: Some(HashSet::new()),
            send_timeout: Duration::from_secs_f64(args.timeout),
            discovered: None,
            dialed_found: HashSet::new(),
        }
    }

    /// From the first list to leaving: the one loop.
    async fn session(
        &mut self,
        listener: &TcpListener,
        signals: &mut Signals,
        directory: &Directory,
        listing: Listing,
        send: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut refresh_every = self.take_listing(listing, true);
        let join_deadline = tokio::time::Instant::now() + JOIN_WAIT;
        self.finish_joining_if_done();
        let mut stdin = Lines::new(tokio::io::stdin());
        let mut stdin_open = send.is_none();
        // After the end of input or /quit: until lines sent are acknowledged.
        let mut leaving: Option<tokio::time::Instant> = None;
        let mut goal: Option<(u64, tokio::time::Instant)> = None;
        let mut next_refresh = tokio::time::Instant::now() + refresh_every;
        // Refreshes run beside the loop: a tracker that does not answer
        // must not hold the chat up.
        let (listing_tx, mut listings) = mpsc::channel(1);
        let mut refreshing = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut datagram = vec![0u8; 64 * 1024];
        loop {
            if self.joining.is_none() {
                if let (Some(text), None) = (send, goal) {
                    let seq = self.say(text);
                    goal = Some((seq, tokio::time::Instant::now() + self.send_timeout));
                }
            }
            if let Some((seq, _)) = goal {
                if self.room.unacknowledged(seq).is_empty() {
                    return Ok(());
                }
            }
            if leaving.is_some() && !self.room.awaiting_online() {
                return Ok(());
            }
            let goal_deadline = goal.map(|(_, at)| at);
            tokio::select! {
                _ = signals.recv() => return Ok(()),
                Some(inbound) = self.inbound.recv() => self.inbound(inbound),
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => self.accept(stream, addr),
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                got = self.udp.recv_from(&mut datagram) => match got {
                    Ok((len, from)) => self.datagram(&datagram[..len.min(MAX_TEXT)], from),
                    Err(e) => tracing::debug!("UDP: {e}"),
                },
                line = stdin.next(), if stdin_open && self.joining.is_none() => {
                    let quit = match line {
                        None => true,
                        Some(line) => {
                            if line.cut {
                                self.notice(format!("that line was cut to {} bytes", ui::MAX_LINE));
                            }
                            self.command(ui::parse_command(&line.text))
                        }
                    };
                    if quit {
                        stdin_open = false;
                        leaving = Some(tokio::time::Instant::now() + LEAVE_WAIT);
                    }
                }
                _ = tokio::time::sleep_until(leaving.unwrap_or(join_deadline)), if leaving.is_some() => {
                    return Ok(());
                }
                _ = tokio::time::sleep_until(join_deadline), if self.joining.is_some() => {
                    self.finish_joining();
                }
                _ = tokio::time::sleep_until(goal_deadline.unwrap_or(join_deadline)), if goal_deadline.is_some() => {
                    let (seq, _) = goal.expect("a deadline has a goal");
                    let missing = self.room.unacknowledged(seq).join(", ");
                    bail!("not acknowledged within {:?} by: {missing}", self.send_timeout);
                }
                _ = tokio::time::sleep_until(next_refresh), if !refreshing => {
                    refreshing = true;
                    let (directory, tx) = (directory.clone(), listing_tx.clone());
                    self.tasks.spawn(async move {
                        let _ = tx.send(directory.announce(None).await).await;
                    });
                }
                Some((listing, _, errors)) = listings.recv() => {
                    refreshing = false;
                    for e in errors {
                        self.out.emit(&Event::TrackerError { error: e.to_string() });
                    }
                    refresh_every = self.take_listing(listing, false);
                    next_refresh = tokio::time::Instant::now() + refresh_every;
                }
                _ = tick.tick() => {
                    let outputs = self.room.tick(Instant::now());
                    self.apply(outputs);
                }
                Some(found) = recv_found(&mut self.discovered) => self.found(found),
            }
        }
    }

    /// Takes in a list: seed clients come and go, lost members are dialled
    /// (all of them on start). The next refresh's delay.
    fn take_listing(&mut self, listing: Listing, first: bool) -> Duration {
        let seed: BTreeSet<SocketAddrV4> = listing
            .seed_clients
            .iter()
            .copied()
            .take(MAX_SEED_CLIENTS)
            .collect();
        let show = !first;
        for gone in self.seed_clients.difference(&seed) {
            if show {
                self.out.emit(&Event::MemberLeft {
                    name: gone.to_string(),
                    reason: "left the seed's directory".into(),
                });
            }
        }
        for new in seed.difference(&self.seed_clients) {
            if show {
                self.out.emit(&Event::MemberJoined {
                    name: new.to_string(),
                    addr: new.to_string(),
                });
            }
        }
        self.seed_clients = seed;
        let dialing: HashSet<&String> = self.dialing.values().collect();
        let lost: Vec<(String, SocketAddr)> = listing
            .members
            .iter()
            .filter(|(name, _)| !self.room.is_online(name) && !dialing.contains(name))
            .filter(|(name, _)| {
                first || (self.listed.contains_key(*name) && self.room.me() < name.as_str())
            })
            .take(MAX_MEMBERS)
            .map(|(n, a)| (n.clone(), *a))
            .collect();
        for (name, addr) in lost {
            let Some(conn) = self.dial(name, addr) else {
                break;
            };
            if let Some(joining) = &mut self.joining {
                joining.insert(conn);
            }
        }
        self.listed = listing.members;
        let interval = listing.interval.unwrap_or(REFRESH_MAX * 2);
        (interval / 2).clamp(REFRESH_MIN, REFRESH_MAX)
    }

    /// A member heard on the LAN. Of two members that hear each other, the
    /// one with the lower address (as each sees itself towards the other)
    /// dials, so they never dial each other at once.
    fn found(&mut self, found: discover::Found) {
        self.out.emit(&Event::PeerDiscovered {
            addr: found.addr.to_string(),
            info_hash: found.info_hash.to_hex(),
            via: found.via.to_string(),
        });
        let me = local_towards(found.addr).map(|ip| SocketAddr::new(ip, self.local.port()));
        let we_dial =
            me.is_some_and(|me| (me.ip(), me.port()) < (found.addr.ip(), found.addr.port()));
        if !we_dial
            || self.dialed_found.len() >= MAX_CONNECTIONS
            || !self.dialed_found.insert(found.addr)
        {
            return;
        }
        // The name is not known until the hello; the address stands in.
        if let Some(conn) = self.dial(found.addr.to_string(), found.addr) {
            if let Some(joining) = &mut self.joining {
                joining.insert(conn);
            }
        }
    }

    fn new_conn(&mut self) -> Option<(ConnId, mpsc::Receiver<ChatMessage>)> {
        if self.conns.len() >= MAX_CONNECTIONS {
            return None;
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let (tx, rx) = mpsc::channel(OUTBOX);
        self.conns.insert(conn, tx);
        Some((conn, rx))
    }

    fn dial(&mut self, name: String, addr: SocketAddr) -> Option<ConnId> {
        let (conn, outbox) = self.new_conn()?;
        self.dialing.insert(conn, name);
        let (me, room) = (self.me.clone(), self.inbound_tx.clone());
        self.tasks.spawn(async move {
            match tokio::time::timeout(conn::HELLO_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => conn::run(conn, stream, addr, me, room, outbox).await,
                Ok(Err(e)) => {
                    let reason = format!("cannot connect: {e}");
                    let _ = room.send(Inbound::Refused { conn, addr, reason }).await;
                }
                Err(_) => {
                    let reason = "cannot connect: timed out".to_string();
                    let _ = room.send(Inbound::Refused { conn, addr, reason }).await;
                }
            }
        });
        Some(conn)
    }

    fn accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        let Some((conn, outbox)) = self.new_conn() else {
            self.room.counters.refused += 1;
            tracing::debug!(%addr, "refused: {MAX_CONNECTIONS} connections open");
            return;
        };
        let (me, room) = (self.me.clone(), self.inbound_tx.clone());
        self.tasks
            .spawn(conn::run(conn, stream, addr, me, room, outbox));
    }

    fn inbound(&mut self, inbound: Inbound) {
        let now = Instant::now();
        match inbound {
            Inbound::Hello { conn, name, addr } => {
                self.answered(conn);
                if !self.conns.contains_key(&conn) {
                    return;
                }
                match self.room.hello(conn, &name, addr) {
                    Ok(outputs) => self.apply(outputs),
                    Err(refusal) => {
                        self.conns.remove(&conn);
                        self.refused(addr, refusal.to_string());
                    }
                }
            }
            Inbound::Refused { conn, addr, reason } => {
                let dialled = self.answered(conn);
                self.conns.remove(&conn);
                match dialled {
                    Some(name) => tracing::debug!(%addr, "{name}: {reason}"),
                    None => {
                        self.room.counters.refused += 1;
                        self.refused(addr, reason);
                    }
                }
            }
            Inbound::Message { conn, msg } => {
                let outputs = self.room.received(conn, msg, now);
                self.apply(outputs);
            }
            Inbound::Closed { conn, reason } => {
                self.conns.remove(&conn);
                let outputs = self.room.closed(conn, &reason, now);
                self.apply(outputs);
            }
        }
        self.finish_joining_if_done();
    }

    /// A dialled connection got its answer; the name it was dialled for.
    fn answered(&mut self, conn: ConnId) -> Option<String> {
        if let Some(joining) = &mut self.joining {
            joining.remove(&conn);
        }
        self.dialing.remove(&conn)
    }

    fn finish_joining_if_done(&mut self) {
        if self.joining.as_ref().is_some_and(HashSet::is_empty) {
            self.finish_joining();
        }
    }

    fn finish_joining(&mut self) {
        if self.joining.take().is_none() {
            return;
        }
        self.out.emit(&Event::Joined {
            name: self.me.name.clone(),
            room: self.me.room.clone(),
            listen: self.local.to_string(),
            members: self.everyone(),
        });
    }

    /// Members online and seed clients, for `joined` and `/who`.
    fn everyone(&self) -> Vec<String> {
        let mut all = self.room.online();
        all.extend(self.seed_clients.iter().map(ToString::to_string));
        all
    }

    fn refused(&self, addr: SocketAddr, reason: String) {
        self.out.say(ui::note(&format!(
            "refused a connection from {addr}: {reason}"
        )));
        self.out.emit(&Event::PeerRefused {
            addr: addr.to_string(),
            reason,
        });
    }

    fn notice(&self, text: String) {
        self.out.emit(&Event::Notice { text });
    }

    /// Carries out what the room asks.
    fn apply(&mut self, outputs: Vec<Output>) {
        let mut slow = Vec::new();
        for output in outputs {
            match output {
                Output::Send(conn, msg) => {
                    let full = self.conns.get(&conn).is_some_and(|tx| {
                        matches!(tx.try_send(msg), Err(mpsc::error::TrySendError::Full(_)))
                    });
                    if full {
                        slow.push(conn);
                    }
                }
                Output::Close(conn, reason) => {
                    tracing::debug!(conn, "closing: {reason}");
                    self.conns.remove(&conn);
                }
                Output::Show(Event::MemberJoined { .. }) if self.joining.is_some() => {}
                Output::Show(event) => self.out.emit(&event),
            }
        }
        for conn in slow {
            if self.conns.remove(&conn).is_some() {
                let reason = format!("too slow: {OUTBOX} messages waiting to be written");
                let outputs = self.room.closed(conn, &reason, Instant::now());
                self.apply(outputs);
            }
        }
    }

    /// A typed command; true to leave.
    fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Say(text) => {
                self.say(&text);
            }
            Command::Msg { to, text } => self.whisper(&to, &text),
            Command::Who => self.out.emit(&Event::Who {
                members: self.everyone(),
                away: self.room.away(),
            }),
            Command::Quit => return true,
            Command::Help => self.notice(ui::HELP.to_string()),
            Command::Nothing => {}
            Command::Unknown(text) => self.notice(text),
        }
        false
    }

    /// A line for the room: to every member, and to every seed client as a
    /// datagram. Its seq.
    fn say(&mut self, text: &str) -> u64 {
        let text = self.fit(text);
        let (seq, outputs) = self
            .room
            .send(None, text)
            .expect("the room always takes a line");
        self.apply(outputs);
        for client in &self.seed_clients {
            if let Err(e) = self.udp.try_send_to(text.as_bytes(), (*client).into()) {
                tracing::debug!(%client, "UDP: {e}");
            }
        }
        seq
    }

    fn whisper(&mut self, to: &str, text: &str) {
        let text = self.fit(text);
        if let Ok(client) = to.parse::<SocketAddrV4>() {
            if self.seed_clients.contains(&client) {
                let sent = self.udp.try_send_to(text.as_bytes(), client.into());
                self.notice(match sent {
                    Ok(_) => format!("sent to {client} as a datagram (not acknowledged)"),
                    Err(e) => format!("cannot send to {client}: {e}"),
                });
                return;
            }
        }
        match self.room.send(Some(to), text) {
            Ok((_, outputs)) => self.apply(outputs),
            Err(e) => self.notice(e),
        }
    }

    /// `text` within [`MAX_TEXT`], saying so when it is cut.
    fn fit<'t>(&self, text: &'t str) -> &'t str {
        let fitted = ui::truncate(text, MAX_TEXT);
        if fitted.len() < text.len() {
            self.notice(format!("the line was cut to {MAX_TEXT} bytes"));
        }
        fitted
    }

    /// A datagram on our UDP port: a line from a seed client.
    fn datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        self.room.counters.received += 1;
        self.out.emit(&Event::Message {
            from: from.to_string(),
            text: lanio::escape::escape_bytes(bytes),
            private: false,
        });
    }

    /// Says goodbye to everyone, tells the trackers, and shows the totals.
    async fn leave(&mut self, directory: &Directory) {
        let bye = ChatMessage::Bye {
            from: Some(self.me.name.clone()),
        };
        for conn in self.room.connections() {
            if let Some(tx) = self.conns.get(&conn) {
                let _ = tx.try_send(bye.clone());
            }
        }
        self.conns.clear();
        let tell_trackers = directory.announce(Some(Announce::Stopped));
        let (tasks, inbound) = (&mut self.tasks, &mut self.inbound);
        // Connections report their end on the way out: keep taking reports.
        let drain = async {
            loop {
                tokio::select! {
                    done = tasks.join_next() => if done.is_none() { break },
                    _ = inbound.recv() => {}
                }
            }
        };
        let _ = tokio::time::timeout(LEAVE_WAIT, futures::future::join(tell_trackers, drain)).await;
        self.tasks.abort_all();
        let c = self.room.counters;
        self.out.emit(&Event::Left {
            sent: c.sent,
            received: c.received,
            forged: c.forged,
            refused: c.refused,
            queue_dropped: c.queue_dropped,
        });
    }
}

//! One peer connection's driver: the socket, the clock and the tasks around
//! a [`wire::Connection`], which holds the whole protocol (handshake, flags,
//! requests, the upload queue, timers, why it closed).
//!
//! The driver is a `tokio::select!` over the socket, the swarm's commands,
//! the connection's next deadline ([`Connection::poll_timeout`]) and a free
//! upload slot of the writer; once a second it also asks the swarm for more
//! requests. It passes on what the connection reports: events to the swarm,
//! messages and uploads to the writer task ([`crate::writer`]). A received
//! piece streams from the socket ([`crate::reader`]) chunk by chunk into the
//! swarm's receive pool ([`crate::receive`]), which hashes and writes it as
//! it arrives. Nothing a peer sends can make us allocate beyond one
//! non-piece frame (bounded by the piece count) and the swarm's chunk budget,
//! nor, before it has opened, beyond its opening message.
//!
//! Before the driver starts, a connection opens (counted among the
//! openings, see [`crate::admission`]) and is admitted, waiting its turn
//! for a slot if the swarm or its address is full.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::SinkExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;
use wire::{ConnEvent, Connection, Disconnect, PeerCodec, PeerId, Role};

use crate::admission;
use crate::chunks::Chunk;
use crate::events::Event;
use crate::picker::Pipeline;
use crate::reader::{Incoming, Reader};
use crate::receive::{PieceSink, Source};
use crate::swarm::{Arrival, Command, ConnInfo, Registration, Swarm};
use crate::writer::{self, Outgoing, Writer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection waits for the peer to close its side.
const LINGER: Duration = Duration::from_secs(1);
/// Pieces a peer may have queued at us before we stop reading from it.
const MAX_QUEUED_UPLOADS: usize = 64;
/// How often we try to request more, besides after every event.
const REFILL_EVERY: Duration = Duration::from_secs(1);
/// How long an opened connection waits for a slot when the swarm (or its
/// address) is full, while useless connections are asked to give way.
const ADMIT_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting connection asks again, besides when a slot frees.
const ADMIT_RETRY: Duration = Duration::from_millis(500);

/// Opens a TCP connection to a peer from the tracker's list (the dial's
/// connect, bounded in time); `None` if it failed.
pub async fn connect(addr: SocketAddr) -> Option<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!("cannot connect to {addr}: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("connecting to {addr} timed out");
            None
        }
    }
}

/// Runs a connection we dialed ([`connect`]).
pub async fn dialed(swarm: Arc<Swarm>, stream: TcpStream, addr: SocketAddr, legacy: bool) {
    run(swarm, stream, addr, Role::Outgoing { legacy }).await;
}

/// Runs a connection a peer opened to us.
pub async fn accepted(swarm: Arc<Swarm>, stream: TcpStream, addr: SocketAddr) {
    run(swarm, stream, addr, Role::Incoming).await;
}

async fn run(swarm: Arc<Swarm>, stream: TcpStream, addr: SocketAddr, role: Role) {
    let _ = stream.set_nodelay(true);
    let piece_count = swarm.piece_count();
    let (rd, wr) = stream.into_split();
    // Until the remote has opened, no frame beyond its opening message; then
    // messages other than Piece are bounded by the piece count (a Bitfield),
    // and pieces stream through the swarm's chunk budget.
    let read_codec = PeerCodec::opening(
        piece_count as usize + 64,
        Some(piece_count),
        wire::codec::opening_limit(role, piece_count),
    )
    .with_max_piece_frame(swarm.max_frame());
    let mut reader = Reader::new(rd, read_codec, swarm.receiver.chunks().clone());
    let codec = PeerCodec::new(swarm.max_frame(), Some(piece_count));
    let mut writer = FramedWrite::new(wr, codec);
    let mut conn = Connection::new(swarm.conn_config(), role, Instant::now());
    let outgoing = matches!(role, Role::Outgoing { .. });

    // Counted among the connections opening until it has opened; then it
    // may wait its turn for a slot.
    let opening = Opening::start(&swarm, addr, outgoing);
    let admitted = match open(&swarm, &mut conn, &mut reader, &mut writer, &opening.stop).await {
        Ok((peer_id, legacy)) => {
            swarm.opening_ended(opening.id);
            admit(&swarm, opening.id, addr, peer_id, outgoing)
                .await
                .map(|reg| (peer_id, legacy, reg))
        }
        Err(reason) => Err(reason),
    };
    drop(opening);
    let (peer_id, legacy, reg) = match admitted {
        Ok(admitted) => admitted,
        Err(reason) => {
            tracing::info!("{addr}: refused: {reason}");
            swarm.out.emit(&Event::PeerRefused {
                addr: addr.to_string(),
                reason: reason.to_string(),
            });
            conn.close(reason);
            let _ = tokio::time::timeout(LINGER, send_direct(&mut conn, &mut writer)).await;
            return;
        }
    };
    tracing::info!(
        "{addr}: connected ({})",
        if legacy {
            "original protocol"
        } else {
            "proto 1"
        }
    );
    swarm.out.emit(&Event::PeerConnected {
        addr: addr.to_string(),
        peer_id: peer_id.map(|p| p.to_hex()),
        legacy,
        outgoing,
    });

    let writer = writer::spawn(swarm.clone(), writer, reg.conn.counters.clone());
    conn.send_bitfield(&swarm.bitfield_for(reg.conn.id));
    let mut link = Link {
        swarm: swarm.clone(),
        conn,
        source: Source::new(swarm.clone(), reg.conn.clone()),
        info: reg.conn,
        commands: reg.commands,
        out: writer.out,
        upload_slots: writer.slots,
        receiving: None,
        pipeline: Pipeline::default(),
    };
    let reason = link.drive(&mut reader).await;

    // A piece cut off is wanted again; pieces already received are still
    // verified and kept.
    if let Some(Receiving {
        into: Destination::Dropped { arrival, .. },
        ..
    }) = link.receiving.take()
    {
        swarm.piece_unusable(arrival);
    }
    link.source.settled().await;
    let in_flight = link.conn.take_in_flight();
    swarm.connection_closed(link.info.id, link.conn.remote(), &in_flight);
    if reason.is_stall() {
        swarm.peer_stalled(&link.info, &reason);
    }
    drop(link.out);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer.task).await;
    // The writer has sent our last words and a FIN. Closing while the peer's
    // bytes sit unread would make the kernel answer with RST, which can wipe
    // those last words (a Close) from the peer's receive queue: read until the
    // peer closes too, briefly.
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = reader.next().await {}
    })
    .await;
    tracing::info!("{addr}: disconnected: {reason}");
    swarm.out.emit(&Event::PeerDisconnected {
        addr: addr.to_string(),
        reason: reason.to_string(),
    });
}

/// A connection's place among those opening ([`Swarm::opening_started`]),
/// given up on drop.
struct Opening<'a> {
    swarm: &'a Swarm,
    id: u64,
    /// Cancelled when newer openings push this one out.
    stop: CancellationToken,
}

impl<'a> Opening<'a> {
    fn start(swarm: &'a Swarm, addr: SocketAddr, outgoing: bool) -> Self {
        let (id, stop) = swarm.opening_started(addr, outgoing);
        Opening { swarm, id, stop }
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.swarm.opening_ended(self.id);
        self.swarm.stop_waiting(self.id);
    }
}

/// Registers opened connection `ticket`, waiting its turn up to
/// [`ADMIT_WAIT`] for a slot while the swarm (or the connection's address)
/// is full and useless connections are asked to give way.
async fn admit(
    swarm: &Swarm,
    ticket: u64,
    addr: SocketAddr,
    peer_id: Option<PeerId>,
    outgoing: bool,
) -> Result<Registration, Disconnect> {
    let give_up = tokio::time::Instant::now() + ADMIT_WAIT;
    let mut waiting = false;
    loop {
        let freed = swarm.slot_freed().notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        match swarm.register_in_turn(ticket, addr, peer_id, outgoing) {
            Err(full @ (Disconnect::TooManyPeers | Disconnect::TooManyFromAddress(_)))
                if tokio::time::Instant::now() < give_up && swarm.is_waiting(ticket) =>
            {
                if !waiting {
                    waiting = true;
                    swarm.out.emit(&Event::SlotWait {
                        addr: addr.to_string(),
                        reason: full.to_string(),
                    });
                }
            }
            done => return done,
        }
        let retry = (tokio::time::Instant::now() + ADMIT_RETRY).min(give_up);
        tokio::select! {
            _ = freed => {}
            _ = tokio::time::sleep_until(retry) => {}
            _ = swarm.shutdown.cancelled() => return Err(Disconnect::ShuttingDown),
        }
    }
}

/// Runs the opening until the connection is established (returning the
/// remote's peer id, none for a legacy peer, and whether it is legacy) or
/// refused. Writes go straight to the socket: the writer task starts only
/// for admitted peers.
async fn open(
    swarm: &Swarm,
    conn: &mut Connection,
    reader: &mut Reader,
    writer: &mut Writer,
    stop: &CancellationToken,
) -> Result<(Option<PeerId>, bool), Disconnect> {
    loop {
        let deadline = conn.poll_timeout();
        match timeout_at(deadline, send_direct(conn, writer)).await {
            Some(Ok(())) => {}
            Some(Err(reason)) => conn.close(reason),
            None => conn.handle_timeout(Instant::now()),
        }
        // Established is always the first event, Closed the last.
        match conn.poll_event() {
            Some(ConnEvent::Established { peer_id, legacy }) => return Ok((peer_id, legacy)),
            Some(ConnEvent::Closed(reason)) => return Err(reason),
            Some(_) | None => {}
        }
        let deadline = conn.poll_timeout();
        tokio::select! {
            msg = reader.next() => match msg {
                Some(Ok(Incoming::Message(m))) => conn.handle(m, Instant::now()),
                // Refused before the handshake: the connection closes.
                Some(Ok(Incoming::PieceHead { index, .. })) => {
                    let _ = conn.handle_piece_header(index, Instant::now());
                }
                Some(Ok(Incoming::Data { .. })) => {}
                Some(Err(e)) => conn.close(e.into()),
                None => conn.handle_eof(),
            },
            _ = sleep_until(deadline) => conn.handle_timeout(Instant::now()),
            _ = stop.cancelled() => conn.close(Disconnect::OpeningEvicted),
            _ = swarm.shutdown.cancelled() => conn.close(Disconnect::ShuttingDown),
        }
    }
}

/// Sends what the connection has queued straight to the socket.
async fn send_direct(conn: &mut Connection, writer: &mut Writer) -> Result<(), Disconnect> {
    while let Some(msg) = conn.poll_transmit(Instant::now()) {
        writer.feed(msg).await?;
    }
    SinkExt::<wire::Message>::flush(writer).await?;
    Ok(())
}

/// Resolves at `deadline`; never without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs `f` until `deadline`; `None` if the deadline came first.
async fn timeout_at<T>(
    deadline: Option<Instant>,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), f).await.ok(),
        None => Some(f.await),
    }
}

/// An admitted connection, from the driver's side.
struct Link {
    swarm: Arc<Swarm>,
    conn: Connection,
    info: ConnInfo,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Messages and pieces for the writer task.
    out: mpsc::Sender<Outgoing>,
    upload_slots: Arc<Semaphore>,
    /// This connection as the source of the pieces it receives.
    source: Arc<Source>,
    /// The piece whose data is arriving.
    receiving: Option<Receiving>,
    /// Sizes our request queue to this peer from its measured rate.
    pipeline: Pipeline,
}

/// A piece whose data is arriving, and where it goes.
struct Receiving {
    len: usize,
    into: Destination,
}

enum Destination {
    /// Hashed and written as it arrives, by the receive pool.
    Stored(PieceSink),
    /// Read and dropped, then settled: a piece of the wrong length (`bad`,
    /// a strike), or one held or being received from someone else already.
    Dropped { arrival: Arrival, bad: bool },
}

impl Link {
    /// Runs until the connection closes; returns why.
    async fn drive(&mut self, reader: &mut Reader) -> Disconnect {
        let mut refill = tokio::time::interval(REFILL_EVERY);
        refill.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while let Some(event) = self.conn.poll_event() {
                if let ConnEvent::Closed(reason) = event {
                    // Our last words (a Close, unless the peer said goodbye first).
                    let _ = self.flush().await;
                    return reason;
                }
                self.on_event(event).await;
            }
            if let Err(reason) = self.flush().await {
                self.conn.close(reason);
                continue;
            }
            let queued = self.conn.uploads_queued();
            let deadline = self.conn.poll_timeout();
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => self.conn.close(Disconnect::SwarmClosed),
                },
                // A peer with many uploads queued waits until we catch up.
                msg = reader.next(), if queued < MAX_QUEUED_UPLOADS => match msg {
                    Some(Ok(Incoming::Message(m))) => self.conn.handle(m, Instant::now()),
                    Some(Ok(Incoming::PieceHead { index, len })) => self.on_piece_head(index, len),
                    Some(Ok(Incoming::Data { chunk, last: false })) => {
                        if let Some(Receiving { into: Destination::Stored(sink), .. }) = &mut self.receiving {
                            sink.push(chunk);
                        }
                    }
                    Some(Ok(Incoming::Data { chunk, last: true })) => self.piece_received(Some(chunk)),
                    Some(Err(e)) => self.conn.close(e.into()),
                    None => self.conn.handle_eof(),
                },
                slot = self.upload_slots.clone().acquire_owned(), if queued > 0 => {
                    if let (Ok(slot), Some(index)) = (slot, self.conn.poll_upload()) {
                        if self.out.send(Outgoing::Piece { index, slot }).await.is_err() {
                            self.conn.close(Disconnect::WriteFailed);
                        }
                    }
                }
                _ = sleep_until(deadline) => self.conn.handle_timeout(Instant::now()),
                _ = refill.tick() => self.fill(),
            }
        }
    }

    /// Hands queued messages to the writer task.
    async fn flush(&mut self) -> Result<(), Disconnect> {
        let now = Instant::now();
        while let Some(msg) = self.conn.poll_transmit(now) {
            self.out
                .send(Outgoing::Msg(msg))
                .await
                .map_err(|_| Disconnect::WriteFailed)?;
        }
        Ok(())
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Have(index) => {
                self.conn.have(index);
                if self.conn.cancel(index) {
                    // End-game leftover: someone else delivered it first.
                    self.swarm.requests_withdrawn(&[index]);
                }
                self.fill();
            }
            Command::Choke => self.conn.choke(),
            Command::Unchoke => self.conn.unchoke(),
            Command::Refill => self.fill(),
            Command::Close(reason) => self.conn.close(reason),
            Command::Offer(index) => self.conn.have(index),
            Command::Evict => {
                if self.conn.is_useless(
                    Instant::now(),
                    admission::EVICT_GRACE,
                    admission::EVICT_SILENCE,
                ) {
                    self.conn.close(Disconnect::Evicted);
                }
            }
        }
    }

    async fn on_event(&mut self, event: ConnEvent) {
        match event {
            ConnEvent::Bitfield { previous } => {
                self.swarm
                    .peer_bitfield(self.info.id, &mut self.conn, &previous);
                self.fill();
            }
            ConnEvent::Have(index) => {
                self.swarm.peer_have(self.info.id, &mut self.conn, index);
                self.fill();
            }
            ConnEvent::Unchoked => self.fill(),
            ConnEvent::Choked { dropped } => self.swarm.requests_withdrawn(&dropped),
            ConnEvent::RequestTimedOut { index } => {
                self.pipeline.timed_out();
                self.swarm.request_timed_out(&self.info, index);
            }
            ConnEvent::Interest(interested) => {
                if self.swarm.peer_interest(self.info.id, interested) {
                    self.conn.unchoke();
                }
            }
            // Pieces stream in through `on_piece_head`, never whole;
            // Established came before the link existed; Closed ends `drive`.
            ConnEvent::Piece { .. } | ConnEvent::Established { .. } | ConnEvent::Closed(_) => {}
        }
    }

    /// A piece's header arrived: its data will stream into the receive
    /// pool, which hashes and stores it while this task goes on reading.
    fn on_piece_head(&mut self, index: u32, len: usize) {
        // A violation closes the connection; its data is then read and dropped.
        let Some(requested) = self.conn.handle_piece_header(index, Instant::now()) else {
            return;
        };
        let arrival = self.swarm.piece_arrived(index, requested);
        let into = if len == 0 || len as u64 != self.swarm.torrent.info.piece_size(index) {
            Destination::Dropped { arrival, bad: true }
        } else {
            match self.swarm.receiver.start(arrival, &self.source) {
                Ok(sink) => Destination::Stored(sink),
                Err(arrival) => Destination::Dropped {
                    arrival,
                    bad: false,
                },
            }
        };
        self.receiving = Some(Receiving { len, into });
        if len == 0 {
            self.piece_received(None);
        }
    }

    /// The current piece's last byte is in, in `last_chunk` unless the
    /// piece is empty.
    fn piece_received(&mut self, last_chunk: Option<Chunk>) {
        let Some(Receiving { len, into }) = self.receiving.take() else {
            return;
        };
        match into {
            Destination::Stored(sink) => sink.finish(last_chunk),
            Destination::Dropped { arrival, bad: true } => {
                self.swarm.piece_failed(arrival, &self.info);
            }
            Destination::Dropped {
                arrival,
                bad: false,
            } => {
                if self.swarm.has_piece(arrival.index()) {
                    self.swarm.piece_verified(arrival, &self.info.counters);
                } else {
                    self.swarm.piece_unusable(arrival);
                }
            }
        }
        self.pipeline.arrived(len as u64, Instant::now());
        self.fill();
    }

    /// Requests pieces up to the pipeline depth, each with a deadline
    /// that follows the peer's rate; end-game duplicates only from a peer
    /// that delivers.
    fn fill(&mut self) {
        let piece_length = self.swarm.torrent.info.piece_length;
        let depth = self.pipeline.depth(piece_length, self.swarm.request_depth);
        self.conn
            .set_request_timeout(self.pipeline.request_timeout(piece_length, depth));
        self.swarm.request_pieces(
            &mut self.conn,
            depth,
            Instant::now(),
            self.pipeline.trusted(),
        );
    }
}

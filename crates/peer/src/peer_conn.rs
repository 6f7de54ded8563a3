//! One peer connection: handshake, then a reader loop driving the sans-IO
//! [`wire::Connection`] and a writer task that serves pieces from disk.
//!
//! The reader and writer run separately so that two peers sending each other
//! large pieces never deadlock on full TCP buffers. Every wait has a limit: a
//! peer that does not complete its handshake, stops sending requested pieces,
//! or stops reading what we send is disconnected, and nothing it sends can
//! make us allocate beyond one frame of the torrent's piece size.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use wire::{ConnEvent, Connection, Message, PeerCodec, PeerId, WireError};

use crate::swarm::{Command, Counters, Registration, Swarm};
use crate::{hashing, zerocopy};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer with requests outstanding must deliver a piece within this time.
const PIECE_TIMEOUT: Duration = Duration::from_secs(30);
/// A (non-legacy) peer silent for this long is gone; we send keep-alives at a third of it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A peer that does not take our data for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a closing connection waits for the peer to close its side.
const LINGER: Duration = Duration::from_secs(1);
/// Outgoing items (control messages and piece uploads) queued per connection.
const OUTBOX: usize = 64;
/// Received pieces waiting for verification per connection.
const VERIFY_QUEUE: usize = 4;
/// Pieces of one connection hashed at the same time.
const VERIFY_PARALLEL: usize = 2;
/// Requests in flight over all peers, in bytes (bounds a leecher's memory).
const GLOBAL_IN_FLIGHT_BYTES: u64 = 24 * 1024 * 1024;

type Reader = FramedRead<OwnedReadHalf, PeerCodec>;
type Writer = FramedWrite<OwnedWriteHalf, PeerCodec>;

/// What the writer task sends.
enum Outgoing {
    Msg(Message),
    /// Read piece `index` from disk and send it.
    Piece(u32),
}

/// Dials a peer from the tracker's list and runs the connection.
pub async fn dial(swarm: Arc<Swarm>, addr: SocketAddr, legacy: bool) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("cannot connect to {addr}: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("connecting to {addr} timed out");
            return;
        }
    };
    run(swarm, stream, addr, Some(legacy)).await;
}

/// Runs a connection a peer opened to us.
pub async fn accepted(swarm: Arc<Swarm>, stream: TcpStream, addr: SocketAddr) {
    run(swarm, stream, addr, None).await;
}

/// `outgoing` is `Some(legacy)` for connections we dialed.
async fn run(swarm: Arc<Swarm>, stream: TcpStream, addr: SocketAddr, outgoing: Option<bool>) {
    let _ = stream.set_nodelay(true);
    let codec = PeerCodec::new(swarm.max_frame(), Some(swarm.piece_count()));
    let (rd, wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, codec);
    let mut writer = FramedWrite::new(wr, codec);

    let hs = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&swarm, &mut reader, &mut writer, outgoing)) => {
            r.unwrap_or_else(|_| Err("handshake timed out".into()))
        }
        _ = swarm.shutdown.cancelled() => Err("shutting down".into()),
    };
    let (peer_id, legacy, first) = match hs {
        Ok(h) => h,
        Err(reason) => {
            tracing::info!("{addr}: refused: {reason}");
            swarm.out.event(
                "peer_refused",
                json!({"addr": addr.to_string(), "reason": reason}),
            );
            return;
        }
    };
    let reg = match swarm.register(addr, peer_id, outgoing.is_some()) {
        Ok(r) => r,
        Err(reason) => {
            tracing::debug!("{addr}: not admitted: {reason}");
            let _ = writer.send(Message::Close).await;
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
    swarm.out.event(
        "peer_connected",
        json!({"addr": addr.to_string(), "peer_id": peer_id.map(|p| p.to_hex()), "legacy": legacy,
               "outgoing": outgoing.is_some()}),
    );

    let (out_tx, out_rx) = mpsc::channel(OUTBOX);
    let cancelled = Arc::new(Mutex::new(HashSet::new()));
    let writer_task = tokio::spawn(write_loop(
        swarm.clone(),
        writer,
        out_rx,
        reg.counters.clone(),
        cancelled.clone(),
    ));
    let (verify_tx, verify_rx) = mpsc::channel(VERIFY_QUEUE);
    let verifier_task = tokio::spawn(verify_loop(
        swarm.clone(),
        verify_rx,
        reg.id,
        reg.identity.clone(),
        reg.counters.clone(),
        addr,
        outgoing.is_some(),
    ));
    let mut link = Link {
        swarm: swarm.clone(),
        conn: Connection::new(swarm.piece_count(), legacy),
        verify: verify_tx,
        reg,
        addr,
        out: out_tx,
        cancelled,
        last_piece: Instant::now(),
        pipeline: Pipeline::default(),
        last_rx: Instant::now(),
        last_tx: Instant::now(),
    };
    let ours = swarm.have_snapshot();
    link.conn.send_bitfield(&ours);
    let outcome = match first {
        Some(msg) => link.on_message(msg).await,
        None => Ok(()),
    };
    let reason = match outcome {
        Ok(()) => link.drive(&mut reader).await,
        Err(reason) => reason,
    };
    // Pieces already received are still verified and kept.
    drop(link.verify);
    let _ = verifier_task.await;
    let in_flight = link.conn.take_in_flight();
    swarm.unregister(link.reg.id, link.conn.remote(), &in_flight);
    drop(link.out);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    // The writer has sent our last words and a FIN. Closing while the peer's
    // bytes sit unread would make the kernel answer with RST, which can wipe
    // those last words (a Close) from the peer's receive queue: read until the
    // peer closes too, briefly.
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = reader.next().await {}
    })
    .await;
    tracing::info!("{addr}: disconnected: {reason}");
    swarm.out.event(
        "peer_disconnected",
        json!({"addr": addr.to_string(), "reason": reason}),
    );
}

/// Opens the connection. Returns the remote's peer id (None for a legacy
/// peer), whether it is legacy, and a first message to process.
async fn handshake(
    swarm: &Swarm,
    reader: &mut Reader,
    writer: &mut Writer,
    outgoing: Option<bool>,
) -> Result<(Option<PeerId>, bool, Option<Message>), String> {
    let ours = Message::Handshake {
        info_hash: swarm.info_hash,
        peer_id: swarm.peer_id,
    };
    if outgoing == Some(true) {
        // The seed's original protocol: no handshake, Bitfield first.
        return Ok((None, true, None));
    }
    if outgoing == Some(false) {
        writer
            .send(&ours)
            .await
            .map_err(|e| format!("sending handshake: {e}"))?;
    }
    let first = match reader.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(stream_error(&e)),
        None => return Err("closed before the handshake".into()),
    };
    match first {
        Message::Handshake { info_hash, peer_id } => {
            if info_hash != swarm.info_hash {
                return Err(format!("info hash mismatch ({info_hash})"));
            }
            if peer_id == swarm.peer_id {
                return Err("connected to ourselves".into());
            }
            if outgoing.is_none() {
                writer
                    .send(&ours)
                    .await
                    .map_err(|e| format!("sending handshake: {e}"))?;
            }
            Ok((Some(peer_id), false, None))
        }
        // An incoming peer of the original protocol opens with its Bitfield
        // (whose length the codec has checked).
        bf @ Message::Bitfield(_) if outgoing.is_none() => Ok((None, true, Some(bf))),
        other => Err(format!("expected a handshake, got {}", other.name())),
    }
}

/// The established connection, from the reader side.
struct Link {
    swarm: Arc<Swarm>,
    conn: Connection,
    /// Received pieces on their way to hashing and disk.
    verify: mpsc::Sender<(u32, bytes::Bytes, bool)>,
    reg: Registration,
    addr: SocketAddr,
    out: mpsc::Sender<Outgoing>,
    cancelled: Arc<Mutex<HashSet<u32>>>,
    last_piece: Instant,
    /// Sizes our request queue to this peer from its measured rate.
    pipeline: Pipeline,
    last_rx: Instant,
    last_tx: Instant,
}

impl Link {
    /// Runs until the connection ends; returns why.
    async fn drive(&mut self, reader: &mut Reader) -> String {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Err(reason) = self.flush().await {
                return reason;
            }
            let step = tokio::select! {
                cmd = self.reg.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => Err("swarm closed".to_string()),
                },
                msg = reader.next() => match msg {
                    None => Err("closed by peer".to_string()),
                    Some(Err(e)) => Err(stream_error(&e)),
                    Some(Ok(m)) => {
                        self.last_rx = Instant::now();
                        self.on_message(m).await
                    }
                },
                _ = tick.tick() => self.on_tick(),
            };
            if let Err(reason) = step {
                // Best effort: tell the peer we are going (not after its own Close).
                if reason != "closed by peer" && !reason.starts_with("peer sent Close") {
                    self.conn.close();
                    let _ = self.flush().await;
                }
                return reason;
            }
        }
    }

    /// Hands queued messages to the writer task.
    async fn flush(&mut self) -> Result<(), String> {
        while let Some(msg) = self.conn.poll_transmit() {
            self.last_tx = Instant::now();
            self.out
                .send(Outgoing::Msg(msg))
                .await
                .map_err(|_| "write failed".to_string())?;
        }
        Ok(())
    }

    fn on_command(&mut self, cmd: Command) -> Result<(), String> {
        match cmd {
            Command::Have(index) => {
                self.conn.have(index);
                if self.conn.cancel(index) {
                    // End-game leftover: someone else delivered it first.
                    self.swarm.lock().picker.release(index);
                }
                self.fill();
            }
            Command::Choke => self.conn.choke(),
            Command::Unchoke => self.conn.unchoke(),
            Command::Refill => self.fill(),
            Command::Close(reason) => return Err(reason),
        }
        Ok(())
    }

    fn on_tick(&mut self) -> Result<(), String> {
        let now = Instant::now();
        if !self.conn.in_flight().is_empty() && now.duration_since(self.last_piece) > PIECE_TIMEOUT
        {
            return Err(format!(
                "no piece for {}s despite requests",
                PIECE_TIMEOUT.as_secs()
            ));
        }
        if !self.conn.is_legacy() {
            if now.duration_since(self.last_rx) > IDLE_TIMEOUT {
                return Err("idle timeout".into());
            }
            if now.duration_since(self.last_tx) > IDLE_TIMEOUT / 3 {
                self.conn.keep_alive();
            }
        }
        self.fill();
        Ok(())
    }

    async fn on_message(&mut self, msg: Message) -> Result<(), String> {
        self.conn
            .handle(msg)
            .map_err(|e| format!("protocol violation: {e}"))?;
        while let Some(event) = self.conn.poll_event() {
            self.on_event(event).await?;
        }
        Ok(())
    }

    async fn on_event(&mut self, event: ConnEvent) -> Result<(), String> {
        match event {
            ConnEvent::Bitfield { previous } => {
                let mut st = self.swarm.lock();
                st.picker.peer_bitfield(&previous, self.conn.remote());
                let have = st.have.clone();
                drop(st);
                self.conn.update_interest(&have);
                self.fill();
            }
            ConnEvent::Have(index) => {
                let mut st = self.swarm.lock();
                st.picker.peer_have(index, self.conn.remote().is_complete());
                let wanted = !st.have.has(index);
                drop(st);
                if wanted {
                    self.conn.set_interested(true);
                }
                self.fill();
            }
            ConnEvent::Unchoked => {
                self.last_piece = Instant::now();
                self.fill();
            }
            ConnEvent::Choked { dropped } => {
                let mut st = self.swarm.lock();
                for i in dropped {
                    st.picker.release(i);
                }
            }
            ConnEvent::Interest(interested) => {
                if self.swarm.peer_interest(self.reg.id, interested) {
                    self.conn.unchoke();
                }
            }
            ConnEvent::Request(index) => {
                if self.swarm.has_piece(index) {
                    self.cancelled
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&index);
                    self.out
                        .send(Outgoing::Piece(index))
                        .await
                        .map_err(|_| "write failed".to_string())?;
                } else {
                    tracing::debug!("{}: asked for piece {index}, which we lack", self.addr);
                }
            }
            ConnEvent::Cancel(index) => {
                self.cancelled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(index);
            }
            ConnEvent::Piece {
                index,
                data,
                requested,
            } => {
                self.on_piece(index, data, requested).await?;
            }
            ConnEvent::Closing => return Err("peer sent Close".into()),
        }
        Ok(())
    }

    /// Hands a received piece to the verifier, which hashes and stores it
    /// while this task goes on reading. The picker keeps the piece counted as
    /// requested until the verifier decides, so nobody asks for it meanwhile.
    async fn on_piece(
        &mut self,
        index: u32,
        data: bytes::Bytes,
        requested: bool,
    ) -> Result<(), String> {
        self.last_piece = Instant::now();
        self.pipeline.arrived(data.len() as u64, self.last_piece);
        self.verify
            .send((index, data, requested))
            .await
            .map_err(|_| "verifier stopped".to_string())?;
        self.fill();
        Ok(())
    }

    /// Requests pieces up to the pipeline depth, and keeps our interest true
    /// to what the peer has.
    fn fill(&mut self) {
        if !self.conn.am_interested() {
            return;
        }
        let depth = if self.conn.is_legacy() {
            1
        } else {
            self.pipeline.depth(
                self.swarm.torrent.info.piece_length,
                self.swarm.request_depth,
            )
        };
        let global_max =
            (GLOBAL_IN_FLIGHT_BYTES / self.swarm.torrent.info.piece_length.max(1)).max(2) as usize;
        if !self.conn.peer_choking() {
            let mut st = self.swarm.lock();
            while self.conn.in_flight().len() < depth {
                let st = &mut *st;
                // Every peer may keep one request going; beyond that, respect
                // the global budget that bounds a leecher's memory.
                if !self.conn.in_flight().is_empty() && st.picker.total_requested() >= global_max {
                    break;
                }
                let Some(index) =
                    st.picker
                        .pick(&st.have, self.conn.remote(), self.conn.in_flight())
                else {
                    break;
                };
                if self.conn.in_flight().is_empty() {
                    self.last_piece = Instant::now();
                }
                if self.conn.request(index).is_err() {
                    st.picker.release(index);
                    break;
                }
            }
        }
        if self.conn.in_flight().is_empty() {
            let have = self.swarm.have_snapshot();
            self.conn.update_interest(&have);
        }
    }
}

/// Why a connection's byte stream failed: the network, or the peer's input.
fn stream_error(e: &WireError) -> String {
    match e {
        WireError::Frame(wire::FrameError::Io(io)) => format!("connection lost: {io}"),
        other => format!("bad input: {other}"),
    }
}

/// How many requests to keep queued at one peer: enough for about
/// [`Pipeline::QUEUE_TIME`] of data at the rate the peer has been
/// delivering, so a fast peer (loopback) is kept saturated while a slow one
/// (a rate-limited LAN link) is not handed seconds of work that other peers
/// could have shared. Without a measurement yet, a small queue.
#[derive(Debug, Default)]
struct Pipeline {
    /// Bytes per second, smoothed over piece arrivals.
    rate: f64,
    last_arrival: Option<Instant>,
}

impl Pipeline {
    const QUEUE_TIME: f64 = 0.05;
    const START: usize = 4;
    const MIN: usize = 2;

    fn arrived(&mut self, bytes: u64, at: Instant) {
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

    fn depth(&self, piece_length: u64, max: usize) -> usize {
        if self.rate == 0.0 {
            return Self::START.min(max);
        }
        let want = (self.rate * Self::QUEUE_TIME / piece_length.max(1) as f64).ceil() as usize + 1;
        want.clamp(Self::MIN, max.max(Self::MIN))
    }
}

/// Sends queued messages and serves piece requests straight from the page
/// cache: a Piece's 17 header bytes go out with `MSG_MORE`, its body with
/// `sendfile`, so uploads cost no copies in user space.
async fn write_loop(
    swarm: Arc<Swarm>,
    mut writer: Writer,
    mut rx: mpsc::Receiver<Outgoing>,
    counters: Arc<Counters>,
    cancelled: Arc<Mutex<HashSet<u32>>>,
) {
    let result: Result<(), String> = async {
        while let Some(item) = rx.recv().await {
            match item {
                Outgoing::Msg(msg) => {
                    within(SinkExt::<Message>::feed(&mut writer, msg)).await?;
                }
                Outgoing::Piece(index) => {
                    if cancelled
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&index)
                    {
                        continue;
                    }
                    // Whatever the codec buffered goes first, to keep the order.
                    within(SinkExt::<Message>::flush(&mut writer)).await?;
                    let info = &swarm.torrent.info;
                    let len = info.piece_size(index);
                    let header = piece_header(index, len);
                    let stream = writer.get_ref().as_ref();
                    let storage = &swarm.storage;
                    let send = async {
                        zerocopy::send_more(stream, &header).await?;
                        for span in storage.piece_spans(index) {
                            let file = storage.span_file(&span)?;
                            let mut sent = 0;
                            zerocopy::sendfile_all(stream, &file, span.offset, span.len, &mut sent)
                                .await?;
                        }
                        Ok::<(), std::io::Error>(())
                    };
                    tokio::time::timeout(WRITE_TIMEOUT, send)
                        .await
                        .map_err(|_| "peer stopped reading".to_string())?
                        .map_err(|e| format!("sending piece {index}: {e}"))?;
                    swarm.note_uploaded(&counters, len);
                }
            }
            if rx.is_empty() {
                within(SinkExt::<Message>::flush(&mut writer)).await?;
            }
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            SinkExt::<Message>::close(&mut writer),
        )
        .await;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::debug!("writer ended: {e}");
    }
}

/// Runs a write with the stall limit.
async fn within(f: impl std::future::Future<Output = Result<(), WireError>>) -> Result<(), String> {
    tokio::time::timeout(WRITE_TIMEOUT, f)
        .await
        .map_err(|_| "peer stopped reading".to_string())?
        .map_err(|e| e.to_string())
}

/// Frame length, message length, id and index of a Piece of `len` bytes:
/// the same bytes [`Message::encode`] writes before the data.
fn piece_header(index: u32, len: u64) -> [u8; 8 + wire::message::PIECE_HEADER_LEN] {
    let body = wire::message::PIECE_HEADER_LEN as u64 + len;
    let mut h = [0u8; 17];
    h[..8].copy_from_slice(&body.to_be_bytes());
    h[8..12].copy_from_slice(&((body - 4) as u32).to_be_bytes());
    h[12] = wire::message::id::PIECE;
    h[13..].copy_from_slice(&index.to_be_bytes());
    h
}

/// Hashes and stores the pieces one connection received, off the reader's
/// path and up to [`VERIFY_PARALLEL`] at a time, so hashing (the costliest
/// step) uses every core. A piece that fails its hash is thrown away and
/// counts against the peer; the second such piece bans it.
async fn verify_loop(
    swarm: Arc<Swarm>,
    mut rx: mpsc::Receiver<(u32, bytes::Bytes, bool)>,
    conn_id: u64,
    identity: String,
    counters: Arc<Counters>,
    addr: SocketAddr,
    outgoing: bool,
) {
    let mut running = tokio::task::JoinSet::new();
    let mut open = true;
    while open || !running.is_empty() {
        tokio::select! {
            next = rx.recv(), if open && running.len() < VERIFY_PARALLEL => match next {
                Some((index, data, requested)) => {
                    let sw = swarm.clone();
                    running.spawn_blocking(move || (index, requested, check_and_store(&sw, index, &data)));
                }
                None => open = false,
            },
            Some(done) = running.join_next() => {
                let (index, requested, checked) =
                    done.unwrap_or_else(|e| (0, false, Err(format!("verifier task failed: {e}"))));
                match checked {
                    Ok(true) => swarm.piece_verified(index, &counters),
                    Ok(false) => {
                        if requested {
                            swarm.lock().picker.release(index);
                        }
                        tracing::warn!("{addr}: piece {index} failed its hash check");
                        swarm.out.event("piece_failed", json!({"addr": addr.to_string(), "piece": index}));
                        if swarm.strike(conn_id, &identity, addr, outgoing) {
                            let reason = "sent 2 pieces that failed their hash check";
                            swarm.out.event("peer_banned", json!({"addr": addr.to_string(), "reason": reason}));
                            swarm.close_conn(conn_id, format!("banned: {reason}"));
                            open = false;
                            rx.close();
                        } else {
                            swarm.refill_conn(conn_id);
                        }
                    }
                    Err(e) => {
                        if requested {
                            swarm.lock().picker.release(index);
                        }
                        tracing::error!("{e}");
                        swarm.close_conn(conn_id, e);
                        open = false;
                        rx.close();
                    }
                }
            }
        }
    }
}

/// Checks piece `index` against its hash and writes it if good. Returns
/// whether it was good (a piece we already hold counts as good).
fn check_and_store(swarm: &Swarm, index: u32, data: &[u8]) -> Result<bool, String> {
    if swarm.has_piece(index) {
        return Ok(true);
    }
    let info = &swarm.torrent.info;
    let good = data.len() as u64 == info.piece_size(index)
        && hashing::sha1(data) == info.piece_hash[index as usize];
    if good {
        swarm
            .storage
            .write_piece(index, data)
            .map_err(|e| format!("cannot write piece {index}: {e}"))?;
    }
    Ok(good)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_follows_the_measured_rate() {
        let mut p = Pipeline::default();
        assert_eq!(p.depth(1 << 20, 32), Pipeline::START);
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
}

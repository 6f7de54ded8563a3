//! One peer connection's state machine (`wire::Connection`), driven as the
//! peer's driver drives it, by an arbitrary sequence of messages from the
//! remote, engine calls and the passing of time.
//!
//! Invariants checked after every step: no panic; Established comes first
//! and once; Closed comes once and is the last event; nothing is sent after
//! our Close; a legacy peer never gets Have, Cancel or KeepAlive nor more
//! than one request at a time; requests are for pieces that exist, never
//! twice at once; and the state stays bounded (what a step adds is bounded
//! by what it fed).
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wire::{Bitfield, Config, ConnEvent, Connection, InfoHash, Message, PeerId, Role, Timeouts};

const HASH: InfoHash = InfoHash([7; 20]);
const ME: PeerId = PeerId([1; 20]);

#[derive(Arbitrary, Debug)]
enum Remote {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    /// A bitfield of `len` pieces (the right length is likely), with these bits set.
    Bitfield {
        right_len: bool,
        len: u8,
        bits: Vec<u8>,
    },
    Request(u32),
    Piece {
        index: u32,
        len: u8,
    },
    Cancel(u32),
    Close,
    Handshake {
        right_hash: bool,
        own_id: bool,
        id: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Recv(Remote),
    Eof,
    /// Time passes (milliseconds); the driver fires what is due.
    Tick(u32),
    /// Time jumps to the next deadline.
    ToDeadline,
    SendBitfield(Vec<u8>),
    UpdateInterest(Vec<u8>),
    SetInterested(bool),
    Choke,
    Unchoke,
    Request(u32),
    /// Fill the request room at this depth with pieces the remote has.
    Fill(u8),
    Cancel(u32),
    Have(u32),
    TakeInFlight,
    Upload,
    Close,
}

#[derive(Arbitrary, Debug)]
struct Input {
    pieces: u8,
    role: u8,
    /// Small time limits (seconds; 0 and huge are edge cases).
    timeouts: [u16; 4],
    ops: Vec<Op>,
}

fn bitfield(len: u32, bits: &[u8]) -> Bitfield {
    let mut bf = Bitfield::new(len);
    for &b in bits {
        if len > 0 {
            bf.set(u32::from(b) % len, true);
        }
    }
    bf
}

/// Indices mostly in range, sometimes just past it or far out.
fn index(n: u32, pieces: u32) -> u32 {
    match n >> 30 {
        0 | 1 => n % pieces.max(1),
        2 => pieces + (n & 3),
        _ => n,
    }
}

fn limit(s: u16) -> Duration {
    if s == u16::MAX {
        Duration::MAX
    } else {
        Duration::from_secs(u64::from(s))
    }
}

#[derive(Default)]
struct Seen {
    established: bool,
    legacy: bool,
    closed: bool,
    sent_close: bool,
}

fuzz_target!(|input: Input| {
    let pieces = u32::from(input.pieces % 64) + 1;
    let config = Config {
        info_hash: HASH,
        peer_id: ME,
        piece_count: pieces,
        timeouts: Timeouts {
            handshake: limit(input.timeouts[0]),
            piece: limit(input.timeouts[1]),
            idle: limit(input.timeouts[2]),
            keep_alive: limit(input.timeouts[3]),
        },
    };
    let role = match input.role % 3 {
        0 => Role::Incoming,
        1 => Role::Outgoing { legacy: false },
        _ => Role::Outgoing { legacy: true },
    };
    let mut now = Instant::now();
    let mut conn = Connection::new(config, role, now);
    let mut seen = Seen::default();
    // Every piece we ever offered: the remote may be sent only those.
    let mut ours = Bitfield::new(pieces);
    drain(&mut conn, &mut seen, now, pieces);
    for op in input.ops {
        match op {
            Op::Recv(r) => {
                let msg = match r {
                    Remote::KeepAlive => Message::KeepAlive,
                    Remote::Choke => Message::Choke,
                    Remote::Unchoke => Message::Unchoke,
                    Remote::Interested => Message::Interested,
                    Remote::NotInterested => Message::NotInterested,
                    Remote::Have(i) => Message::Have(index(i, pieces)),
                    Remote::Bitfield {
                        right_len,
                        len,
                        bits,
                    } => {
                        let len = if right_len { pieces } else { u32::from(len) };
                        Message::Bitfield(bitfield(len, &bits))
                    }
                    Remote::Request(i) => Message::Request(index(i, pieces)),
                    Remote::Piece { index: i, len } => Message::Piece {
                        index: index(i, pieces),
                        data: Bytes::from(vec![0u8; usize::from(len)]),
                    },
                    Remote::Cancel(i) => Message::Cancel(index(i, pieces)),
                    Remote::Close => Message::Close,
                    Remote::Handshake {
                        right_hash,
                        own_id,
                        id,
                    } => Message::Handshake {
                        info_hash: if right_hash { HASH } else { InfoHash([id; 20]) },
                        peer_id: if own_id { ME } else { PeerId([id | 0x80; 20]) },
                    },
                };
                conn.handle(msg, now);
            }
            Op::Eof => conn.handle_eof(),
            Op::Tick(ms) => {
                now += Duration::from_millis(u64::from(ms));
                conn.handle_timeout(now);
            }
            Op::ToDeadline => {
                if let Some(t) = conn.poll_timeout() {
                    assert!(!seen.closed, "a timer runs when closed");
                    now = now.max(t);
                    conn.handle_timeout(now);
                }
            }
            Op::SendBitfield(bits) => {
                let bf = bitfield(pieces, &bits);
                for i in bf.iter_present() {
                    ours.set(i, true);
                }
                conn.send_bitfield(&bf);
            }
            Op::UpdateInterest(bits) => {
                let want = conn.update_interest(&bitfield(pieces, &bits));
                assert_eq!(
                    want && conn.is_open(),
                    conn.am_interested() && conn.is_open()
                );
            }
            Op::SetInterested(b) => conn.set_interested(b),
            Op::Choke => conn.choke(),
            Op::Unchoke => conn.unchoke(),
            Op::Request(i) => {
                let i = index(i, pieces);
                if conn.request(i, now).is_ok() {
                    assert!(i < pieces, "request for piece {i} of {pieces} accepted");
                }
            }
            Op::Fill(depth) => {
                let room = conn.request_room(usize::from(depth));
                let wanted: Vec<u32> = conn
                    .remote()
                    .iter_present()
                    .filter(|i| !conn.in_flight().contains(i))
                    .take(room)
                    .collect();
                for i in wanted {
                    conn.request(i, now)
                        .expect("room was given for this request");
                }
            }
            Op::Cancel(i) => {
                let _ = conn.cancel(index(i, pieces));
            }
            // The engine announces only pieces it verified, so in range.
            Op::Have(i) => {
                ours.set(i % pieces, true);
                conn.have(i % pieces);
            }
            Op::TakeInFlight => {
                let _ = conn.take_in_flight();
            }
            Op::Upload => {
                if let Some(i) = conn.poll_upload() {
                    assert!(
                        i < pieces && ours.has(i),
                        "upload of piece {i} we do not have"
                    );
                }
            }
            Op::Close => conn.close(wire::Disconnect::SwarmClosed),
        }
        drain(&mut conn, &mut seen, now, pieces);
        check(&conn, &seen, pieces);
    }
    conn.handle_eof();
    drain(&mut conn, &mut seen, now, pieces);
    assert!(seen.closed, "handle_eof did not close");
    assert!(conn.poll_timeout().is_none());
});

fn drain(conn: &mut Connection, seen: &mut Seen, now: Instant, pieces: u32) {
    while let Some(msg) = conn.poll_transmit(now) {
        assert!(!seen.sent_close, "{msg:?} sent after Close");
        if seen.legacy {
            assert!(
                !matches!(
                    msg,
                    Message::Have(_) | Message::Cancel(_) | Message::KeepAlive
                ),
                "{msg:?} sent to a legacy peer"
            );
        }
        match &msg {
            Message::Request(i) | Message::Have(i) | Message::Cancel(i) => {
                assert!(*i < pieces, "{msg:?} out of range")
            }
            Message::Bitfield(bf) => assert_eq!(bf.len(), pieces),
            Message::Close => seen.sent_close = true,
            _ => {}
        }
    }
    while let Some(event) = conn.poll_event() {
        assert!(!seen.closed, "{event:?} after Closed");
        match event {
            ConnEvent::Established { legacy, peer_id } => {
                assert!(!seen.established, "established twice");
                assert_ne!(peer_id, Some(ME));
                seen.established = true;
                seen.legacy = legacy;
            }
            ConnEvent::Closed(_) => seen.closed = true,
            other => {
                assert!(seen.established, "{other:?} before Established");
                match other {
                    ConnEvent::Have(i) => assert!(i < pieces),
                    ConnEvent::Piece { index, .. } => assert!(index < pieces),
                    ConnEvent::Choked { dropped } => assert!(dropped.len() <= pieces as usize),
                    _ => {}
                }
            }
        }
    }
}

fn check(conn: &Connection, seen: &Seen, pieces: u32) {
    assert_eq!(
        seen.closed,
        !conn.is_open() && conn.close_reason().is_some()
    );
    let in_flight = conn.in_flight();
    assert!(in_flight.len() <= pieces as usize);
    assert!(in_flight.iter().all(|&i| i < pieces));
    let mut sorted = in_flight.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        in_flight.len(),
        "a piece requested twice at once"
    );
    if seen.legacy {
        assert!(
            in_flight.len() <= 1,
            "legacy peer with {} requests",
            in_flight.len()
        );
    }
    if seen.closed {
        assert_eq!(conn.uploads_queued(), 0);
        assert!(conn.poll_timeout().is_none(), "a timer runs after close");
    }
    assert_eq!(conn.remote().len(), pieces);
}

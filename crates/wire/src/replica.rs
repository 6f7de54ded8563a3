//! Tracker replication datagrams: how trackers share their registries over
//! a multicast group. Sans-IO: bytes in, typed values out, and back.
//!
//! Every datagram is at most [`MAX_DATAGRAM`] bytes and starts with a
//! 22-byte header; all integers are big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `LSRP` |
//! | 4 | 1 | version, 1 |
//! | 5 | 1 | kind: 1 changes, 2 snapshot request, 3 snapshot part, 4 heartbeat |
//! | 6 | 8 | sender: the sending tracker's id (random per run, never 0) |
//! | 14 | 8 | seq: for changes, this datagram's number (1, 2, …); otherwise the last changes number sent |
//!
//! The body depends on the kind:
//!
//! - **changes**: count (u16), then that many records.
//! - **snapshot request**: reason (u8): 0 the sender just started, 1 it saw a gap.
//! - **snapshot part**: snapshot number (u32), part (u16), parts (u16, part < parts),
//!   count (u16), then that many records (joins only).
//! - **heartbeat**: nothing.
//!
//! A record is one registry change:
//!
//! | field | size | |
//! |---|---|---|
//! | op | 1 | 1 join, 2 refresh, 3 seed, 4 leave, 5 expire |
//! | info hash | 20 | the swarm |
//! | family | 1 | 4 or 6 |
//! | ip | 4 or 16 | the peer's listed address |
//! | port | 2 | never 0 |
//! | age | 4 | milliseconds between the change (or, for expire, the peer's last announce) and sending |
//!
//! and for join, refresh and seed also:
//!
//! | field | size | |
//! |---|---|---|
//! | origin | 8 | id of the tracker the peer announced to |
//! | flags | 1 | bit 0: seed; bit 1: proto follows; other bits 0 |
//! | proto | 4 | only with flag bit 1 |
//! | peer id length | 2 | at most [`MAX_PEER_ID`] |
//! | peer id | n | UTF-8 |
//!
//! Ages instead of timestamps: trackers share no clock, so a receiver dates
//! a change as "now minus age".
//!
//! [`Datagram::decode`] never panics and returns a typed [`DatagramError`]
//! for anything that is not exactly this format; the number of records it
//! allocates for is bounded by the datagram's length.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::InfoHash;

/// The first four bytes of every replication datagram.
pub const MAGIC: [u8; 4] = *b"LSRP";
/// The format version this module reads and writes.
pub const VERSION: u8 = 1;
/// Largest datagram sent or accepted: fits an Ethernet MTU with room for
/// IPv6 and UDP headers.
pub const MAX_DATAGRAM: usize = 1400;
/// Bytes before the body.
pub const HEADER_LEN: usize = 22;
/// Longest peer id carried (the tracker accepts no longer one).
pub const MAX_PEER_ID: usize = 256;
/// Largest encoded record (IPv6, proto, longest peer id).
pub const MAX_RECORD_LEN: usize = 1 + 20 + 1 + 16 + 2 + 4 + 8 + 1 + 4 + 2 + MAX_PEER_ID;

const KIND_CHANGES: u8 = 1;
const KIND_SNAPSHOT_REQUEST: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
const KIND_HEARTBEAT: u8 = 4;

const FLAG_SEED: u8 = 1;
const FLAG_PROTO: u8 = 2;

/// A tracker's identity on the replication group: random per run, never 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackerId(u64);

impl TrackerId {
    /// The id `n`, or `None` for 0 (which names no tracker).
    pub fn new(n: u64) -> Option<TrackerId> {
        (n != 0).then_some(TrackerId(n))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TrackerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for TrackerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrackerId({self})")
    }
}

/// A tracker id that is not 16 hex digits, or is zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tracker id is 16 hexadecimal digits, not all zero; got {0:?}")]
pub struct TrackerIdError(pub String);

impl FromStr for TrackerId {
    type Err = TrackerIdError;

    fn from_str(s: &str) -> Result<TrackerId, TrackerIdError> {
        let bad = || TrackerIdError(s.chars().take(40).collect());
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u64::from_str_radix(s, 16)
            .ok()
            .and_then(TrackerId::new)
            .ok_or_else(bad)
    }
}

impl Serialize for TrackerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TrackerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TrackerId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A peer's full state, as carried by join, refresh and seed records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    pub swarm: InfoHash,
    pub addr: SocketAddr,
    /// Milliseconds since the peer last announced, at sending time.
    pub age_ms: u32,
    /// The tracker the peer announced to.
    pub origin: TrackerId,
    pub seed: bool,
    pub proto: Option<u32>,
    pub peer_id: String,
}

/// A peer gone, as carried by leave and expire records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    pub swarm: InfoHash,
    pub addr: SocketAddr,
    /// Milliseconds since the leave (for an expiry: since the peer's last
    /// announce), at sending time.
    pub age_ms: u32,
}

/// One registry change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Join(PeerRecord),
    Refresh(PeerRecord),
    Seed(PeerRecord),
    Leave(Removal),
    Expire(Removal),
}

impl Record {
    fn op(&self) -> u8 {
        match self {
            Record::Join(_) => 1,
            Record::Refresh(_) => 2,
            Record::Seed(_) => 3,
            Record::Leave(_) => 4,
            Record::Expire(_) => 5,
        }
    }

    /// The swarm and address the record is about.
    pub fn key(&self) -> (InfoHash, SocketAddr) {
        match self {
            Record::Join(p) | Record::Refresh(p) | Record::Seed(p) => (p.swarm, p.addr),
            Record::Leave(r) | Record::Expire(r) => (r.swarm, r.addr),
        }
    }

    /// Bytes this record takes in a datagram.
    pub fn encoded_len(&self) -> usize {
        let (swarm_addr, peer) = match self {
            Record::Join(p) | Record::Refresh(p) | Record::Seed(p) => (p.addr, Some(p)),
            Record::Leave(r) | Record::Expire(r) => (r.addr, None),
        };
        let ip = if swarm_addr.is_ipv4() { 4 } else { 16 };
        let base = 1 + 20 + 1 + ip + 2 + 4;
        match peer {
            None => base,
            Some(p) => base + 8 + 1 + if p.proto.is_some() { 4 } else { 0 } + 2 + p.peer_id.len(),
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (swarm, addr, age_ms) = match self {
            Record::Join(p) | Record::Refresh(p) | Record::Seed(p) => (p.swarm, p.addr, p.age_ms),
            Record::Leave(r) | Record::Expire(r) => (r.swarm, r.addr, r.age_ms),
        };
        if addr.port() == 0 {
            return Err(EncodeError::ZeroPort);
        }
        if let Record::Join(p) | Record::Refresh(p) | Record::Seed(p) = self {
            if p.peer_id.len() > MAX_PEER_ID {
                return Err(EncodeError::PeerIdTooLong(p.peer_id.len()));
            }
        }
        out.push(self.op());
        out.extend_from_slice(&swarm.0);
        match addr.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&addr.port().to_be_bytes());
        out.extend_from_slice(&age_ms.to_be_bytes());
        if let Record::Join(p) | Record::Refresh(p) | Record::Seed(p) = self {
            out.extend_from_slice(&p.origin.0.to_be_bytes());
            let mut flags = 0;
            if p.seed {
                flags |= FLAG_SEED;
            }
            if p.proto.is_some() {
                flags |= FLAG_PROTO;
            }
            out.push(flags);
            if let Some(proto) = p.proto {
                out.extend_from_slice(&proto.to_be_bytes());
            }
            out.extend_from_slice(&(p.peer_id.len() as u16).to_be_bytes());
            out.extend_from_slice(p.peer_id.as_bytes());
        }
        Ok(())
    }

    fn decode(r: &mut Reader<'_>) -> Result<Record, DatagramError> {
        let op = r.u8("record op")?;
        if !(1..=5).contains(&op) {
            return Err(DatagramError::Op(op));
        }
        let swarm = InfoHash(r.array("info hash")?);
        let ip = match r.u8("address family")? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>("IPv4 address")?)),
            6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>("IPv6 address")?)),
            other => return Err(DatagramError::Family(other)),
        };
        let port = r.u16("port")?;
        if port == 0 {
            return Err(DatagramError::ZeroPort);
        }
        let addr = SocketAddr::new(ip, port);
        let age_ms = r.u32("age")?;
        if op >= 4 {
            let removal = Removal {
                swarm,
                addr,
                age_ms,
            };
            return Ok(if op == 4 {
                Record::Leave(removal)
            } else {
                Record::Expire(removal)
            });
        }
        let origin = TrackerId::new(r.u64("origin")?).ok_or(DatagramError::ZeroOrigin)?;
        let flags = r.u8("flags")?;
        if flags & !(FLAG_SEED | FLAG_PROTO) != 0 {
            return Err(DatagramError::Flags(flags));
        }
        let proto = if flags & FLAG_PROTO != 0 {
            Some(r.u32("proto")?)
        } else {
            None
        };
        let len = r.u16("peer id length")?;
        if usize::from(len) > MAX_PEER_ID {
            return Err(DatagramError::PeerIdTooLong(len));
        }
        let peer_id = std::str::from_utf8(r.bytes(usize::from(len), "peer id")?)
            .map_err(|_| DatagramError::PeerIdNotUtf8)?
            .to_string();
        let peer = PeerRecord {
            swarm,
            addr,
            age_ms,
            origin,
            seed: flags & FLAG_SEED != 0,
            proto,
            peer_id,
        };
        Ok(match op {
            1 => Record::Join(peer),
            2 => Record::Refresh(peer),
            _ => Record::Seed(peer),
        })
    }
}

/// Why a tracker asks for snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotReason {
    /// It just started and knows nothing yet.
    Start,
    /// It missed datagrams of some sender.
    Gap,
}

/// One part of a snapshot: a sender's whole registry, split over datagrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPart {
    /// Numbers this snapshot among the sender's snapshots.
    pub snapshot: u32,
    pub part: u16,
    pub parts: u16,
    /// Join records only.
    pub records: Vec<Record>,
}

/// What a datagram carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Changes(Vec<Record>),
    SnapshotRequest(SnapshotReason),
    Snapshot(SnapshotPart),
    Heartbeat,
}

/// One replication datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub sender: TrackerId,
    pub seq: u64,
    pub body: Body,
}

/// Why bytes are not a replication datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    #[error("datagram of {0} bytes is larger than {MAX_DATAGRAM}")]
    TooLarge(usize),
    #[error("datagram ends inside the {0}")]
    Truncated(&'static str),
    #[error("not a replication datagram (bad magic)")]
    BadMagic,
    #[error("unsupported version {0}")]
    Version(u8),
    #[error("unknown datagram kind {0}")]
    Kind(u8),
    #[error("sender id 0")]
    ZeroSender,
    #[error("unknown record op {0}")]
    Op(u8),
    #[error("unknown address family {0}")]
    Family(u8),
    #[error("port 0")]
    ZeroPort,
    #[error("origin id 0")]
    ZeroOrigin,
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    #[error("peer id of {0} bytes is longer than {MAX_PEER_ID}")]
    PeerIdTooLong(u16),
    #[error("peer id is not UTF-8")]
    PeerIdNotUtf8,
    #[error("unknown snapshot reason {0}")]
    Reason(u8),
    #[error("part {part} of {parts}")]
    BadPart { part: u16, parts: u16 },
    #[error("snapshot part holds a {0} record (only joins belong there)")]
    NotAJoin(&'static str),
    #[error("{0} bytes after the last record")]
    Trailing(usize),
}

/// A record that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("peer id of {0} bytes is longer than {MAX_PEER_ID}")]
    PeerIdTooLong(usize),
    #[error("port 0")]
    ZeroPort,
    #[error("a snapshot carries join records only")]
    NotAJoin,
}

/// A bounds-checked cursor over a datagram.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DatagramError> {
        if self.rest.len() < n {
            return Err(DatagramError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DatagramError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DatagramError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DatagramError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DatagramError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DatagramError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn records(&mut self) -> Result<Vec<Record>, DatagramError> {
        let count = self.u16("record count")?;
        // Each record takes at least 32 bytes: never reserve past what is there.
        let mut records = Vec::with_capacity(usize::from(count).min(self.rest.len() / 32));
        for _ in 0..count {
            records.push(Record::decode(self)?);
        }
        Ok(records)
    }
}

impl Datagram {
    /// Parses one datagram.
    pub fn decode(bytes: &[u8]) -> Result<Datagram, DatagramError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(DatagramError::TooLarge(bytes.len()));
        }
        let mut r = Reader { rest: bytes };
        if r.array::<4>("magic")? != MAGIC {
            return Err(DatagramError::BadMagic);
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(DatagramError::Version(version));
        }
        let kind = r.u8("kind")?;
        let sender = TrackerId::new(r.u64("sender")?).ok_or(DatagramError::ZeroSender)?;
        let seq = r.u64("seq")?;
        let body = match kind {
            KIND_CHANGES => Body::Changes(r.records()?),
            KIND_SNAPSHOT_REQUEST => Body::SnapshotRequest(match r.u8("reason")? {
                0 => SnapshotReason::Start,
                1 => SnapshotReason::Gap,
                other => return Err(DatagramError::Reason(other)),
            }),
            KIND_SNAPSHOT => {
                let snapshot = r.u32("snapshot number")?;
                let part = r.u16("part")?;
                let parts = r.u16("parts")?;
                if part >= parts {
                    return Err(DatagramError::BadPart { part, parts });
                }
                let records = r.records()?;
                if let Some(other) = records.iter().find_map(|rec| match rec {
                    Record::Join(_) => None,
                    Record::Refresh(_) => Some("refresh"),
                    Record::Seed(_) => Some("seed"),
                    Record::Leave(_) => Some("leave"),
                    Record::Expire(_) => Some("expire"),
                }) {
                    return Err(DatagramError::NotAJoin(other));
                }
                Body::Snapshot(SnapshotPart {
                    snapshot,
                    part,
                    parts,
                    records,
                })
            }
            KIND_HEARTBEAT => Body::Heartbeat,
            other => return Err(DatagramError::Kind(other)),
        };
        if !r.rest.is_empty() {
            return Err(DatagramError::Trailing(r.rest.len()));
        }
        Ok(Datagram { sender, seq, body })
    }

    /// Encodes a datagram that fits in [`MAX_DATAGRAM`]: for changes and
    /// snapshot parts, build with [`Packer`] instead, which splits.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        match &self.body {
            Body::Changes(records) => {
                let mut p = Packer::changes(self.sender, self.seq);
                for r in records {
                    p.push_unchecked(r)?;
                }
                Ok(p.finish())
            }
            Body::Snapshot(s) => {
                let mut p = Packer::snapshot(self.sender, self.seq, s.snapshot);
                for r in &s.records {
                    p.push_unchecked(r)?;
                }
                let mut out = p.finish();
                set_part(&mut out, s.part, s.parts);
                Ok(out)
            }
            Body::SnapshotRequest(reason) => {
                let mut out = header(KIND_SNAPSHOT_REQUEST, self.sender, self.seq);
                out.push(match reason {
                    SnapshotReason::Start => 0,
                    SnapshotReason::Gap => 1,
                });
                Ok(out)
            }
            Body::Heartbeat => Ok(header(KIND_HEARTBEAT, self.sender, self.seq)),
        }
    }
}

fn header(kind: u8, sender: TrackerId, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// Offset of the part field in a snapshot datagram (after the snapshot number).
const PART_AT: usize = HEADER_LEN + 4;

fn set_part(datagram: &mut [u8], part: u16, parts: u16) {
    datagram[PART_AT..PART_AT + 2].copy_from_slice(&part.to_be_bytes());
    datagram[PART_AT + 2..PART_AT + 4].copy_from_slice(&parts.to_be_bytes());
}

/// Builds one changes or snapshot datagram, record by record, never past
/// [`MAX_DATAGRAM`].
#[derive(Debug)]
pub struct Packer {
    buf: Vec<u8>,
    count_at: usize,
    count: u16,
    snapshot: bool,
}

impl Packer {
    /// A changes datagram numbered `seq`.
    pub fn changes(sender: TrackerId, seq: u64) -> Packer {
        let buf = header(KIND_CHANGES, sender, seq);
        Packer::with_count(buf, false)
    }

    /// A snapshot part (its part and parts are set by [`pack_snapshot`]).
    fn snapshot(sender: TrackerId, seq: u64, snapshot: u32) -> Packer {
        let mut buf = header(KIND_SNAPSHOT, sender, seq);
        buf.extend_from_slice(&snapshot.to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0, 1]);
        Packer::with_count(buf, true)
    }

    fn with_count(mut buf: Vec<u8>, snapshot: bool) -> Packer {
        let count_at = buf.len();
        buf.extend_from_slice(&[0, 0]);
        Packer {
            buf,
            count_at,
            count: 0,
            snapshot,
        }
    }

    /// Adds `record` if it fits: `Ok(false)` when the datagram is full.
    pub fn push(&mut self, record: &Record) -> Result<bool, EncodeError> {
        if self.buf.len() + record.encoded_len() > MAX_DATAGRAM || self.count == u16::MAX {
            return Ok(false);
        }
        self.push_unchecked(record)?;
        Ok(true)
    }

    fn push_unchecked(&mut self, record: &Record) -> Result<(), EncodeError> {
        if self.snapshot && !matches!(record, Record::Join(_)) {
            return Err(EncodeError::NotAJoin);
        }
        let before = self.buf.len();
        if let Err(e) = record.encode_into(&mut self.buf) {
            self.buf.truncate(before);
            return Err(e);
        }
        self.count = self.count.wrapping_add(1);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The datagram's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let at = self.count_at;
        self.buf[at..at + 2].copy_from_slice(&self.count.to_be_bytes());
        self.buf
    }
}

/// Changes datagrams holding `records` in order, numbered from `first_seq`
/// on. Records that cannot be encoded are returned apart, with their error.
pub fn pack_changes<'a>(
    sender: TrackerId,
    first_seq: u64,
    records: impl IntoIterator<Item = &'a Record>,
) -> (Vec<Vec<u8>>, Vec<(Record, EncodeError)>) {
    let mut seq = first_seq;
    pack(
        || {
            let p = Packer::changes(sender, seq);
            seq += 1;
            p
        },
        records,
    )
}

/// The datagrams of snapshot number `snapshot`: `records` (joins) split into
/// parts, each marked "part i of n". An empty registry is one empty part, so
/// that receivers still learn `seq`.
pub fn pack_snapshot<'a>(
    sender: TrackerId,
    seq: u64,
    snapshot: u32,
    records: impl IntoIterator<Item = &'a Record>,
) -> (Vec<Vec<u8>>, Vec<(Record, EncodeError)>) {
    let (mut out, bad) = pack(|| Packer::snapshot(sender, seq, snapshot), records);
    if out.is_empty() {
        out.push(Packer::snapshot(sender, seq, snapshot).finish());
    }
    // More than u16::MAX parts would need a registry of millions of peers;
    // the parts past it are not sent.
    out.truncate(usize::from(u16::MAX));
    let parts = out.len() as u16;
    for (i, d) in out.iter_mut().enumerate() {
        set_part(d, i as u16, parts);
    }
    (out, bad)
}

fn pack<'a>(
    mut fresh: impl FnMut() -> Packer,
    records: impl IntoIterator<Item = &'a Record>,
) -> (Vec<Vec<u8>>, Vec<(Record, EncodeError)>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut current: Option<Packer> = None;
    for record in records {
        let p = current.get_or_insert_with(&mut fresh);
        match p.push(record) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                bad.push((record.clone(), e));
                continue;
            }
        }
        // Full: close it and start the next one (a record always fits an empty one).
        out.extend(current.take().map(Packer::finish));
        let p = current.insert(fresh());
        if let Err(e) = p.push(record) {
            bad.push((record.clone(), e));
        }
    }
    out.extend(current.filter(|p| !p.is_empty()).map(Packer::finish));
    (out, bad)
}

/// A snapshot request datagram.
pub fn snapshot_request(sender: TrackerId, seq: u64, reason: SnapshotReason) -> Vec<u8> {
    let d = Datagram {
        sender,
        seq,
        body: Body::SnapshotRequest(reason),
    };
    d.encode().expect("a request has no records")
}

/// A heartbeat datagram: "I am here, and my last changes datagram was `seq`".
pub fn heartbeat(sender: TrackerId, seq: u64) -> Vec<u8> {
    header(KIND_HEARTBEAT, sender, seq)
}

/// Datagrams dropped by a receiving tracker, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    /// Its own datagrams, looped back.
    pub own: u64,
    /// From a source outside `--replicate-from`.
    pub foreign: u64,
    /// Not a replication datagram of this version.
    pub malformed: u64,
    /// Larger than [`MAX_DATAGRAM`].
    pub oversize: u64,
    /// Records refused because a bound was reached (replicas tracked, peers
    /// per origin tracker).
    pub over_limit: u64,
}

/// A replica as shown by `tracker status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub id: TrackerId,
    /// Where its datagrams come from.
    pub addr: SocketAddr,
    pub last_heard_secs: f64,
    /// Its last changes datagram number.
    pub seq: u64,
    /// Changes datagrams of it not received (not yet covered by a snapshot).
    pub lag: u64,
}

/// The replication part of `tracker status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    /// This tracker's id.
    pub id: TrackerId,
    /// The group and port it replicates on.
    pub group: SocketAddr,
    /// Its last changes datagram number.
    pub seq: u64,
    pub replicas: Vec<ReplicaStatus>,
    pub dropped: DropCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> TrackerId {
        TrackerId::new(n).unwrap()
    }

    fn peer(port: u16, peer_id: &str) -> PeerRecord {
        PeerRecord {
            swarm: InfoHash([7; 20]),
            addr: SocketAddr::from(([10, 77, 0, 5], port)),
            age_ms: 1500,
            origin: id(0xabc),
            seed: true,
            proto: Some(1),
            peer_id: peer_id.into(),
        }
    }

    #[test]
    fn a_join_has_the_documented_bytes() {
        let (datagrams, bad) = pack_changes(id(0x0102), 9, &[Record::Join(peer(7001, "p"))]);
        assert!(bad.is_empty());
        let d = &datagrams[0];
        let expected: Vec<u8> = [
            &b"LSRP"[..],
            &[1, 1],
            &[0, 0, 0, 0, 0, 0, 1, 2],
            &[0, 0, 0, 0, 0, 0, 0, 9],
            &[0, 1],
            &[1],
            &[7; 20],
            &[4, 10, 77, 0, 5],
            &[0x1b, 0x59],
            &[0, 0, 0x05, 0xdc],
            &[0, 0, 0, 0, 0, 0, 0x0a, 0xbc],
            &[3],
            &[0, 0, 0, 1],
            &[0, 1, b'p'],
        ]
        .concat();
        assert_eq!(d, &expected);
        let back = Datagram::decode(d).unwrap();
        assert_eq!(back.sender, id(0x0102));
        assert_eq!(back.seq, 9);
        assert_eq!(
            back.body,
            Body::Changes(vec![Record::Join(peer(7001, "p"))])
        );
    }

    #[test]
    fn changes_split_at_the_limit_with_consecutive_numbers() {
        let records: Vec<Record> = (1..=100)
            .map(|i| Record::Refresh(peer(i, &"x".repeat(40))))
            .collect();
        let (datagrams, bad) = pack_changes(id(1), 5, &records);
        assert!(bad.is_empty());
        assert!(datagrams.len() > 1);
        let mut back = Vec::new();
        for (i, d) in datagrams.iter().enumerate() {
            assert!(d.len() <= MAX_DATAGRAM);
            let d = Datagram::decode(d).unwrap();
            assert_eq!(d.seq, 5 + i as u64);
            let Body::Changes(r) = d.body else { panic!() };
            back.extend(r);
        }
        assert_eq!(back, records);
    }

    #[test]
    fn snapshots_number_their_parts_and_refuse_other_records() {
        let records: Vec<Record> = (1..=60)
            .map(|i| Record::Join(peer(i, &"y".repeat(200))))
            .collect();
        let (datagrams, bad) = pack_snapshot(id(3), 44, 2, &records);
        assert!(bad.is_empty());
        let n = datagrams.len();
        assert!(n > 5);
        for (i, d) in datagrams.iter().enumerate() {
            let Body::Snapshot(s) = Datagram::decode(d).unwrap().body else {
                panic!()
            };
            assert_eq!((s.snapshot, s.part, s.parts), (2, i as u16, n as u16));
        }
        let (empty, _) = pack_snapshot(id(3), 44, 3, &[]);
        assert_eq!(empty.len(), 1);
        let leave = Record::Leave(Removal {
            swarm: InfoHash::default(),
            addr: "10.0.0.1:1".parse().unwrap(),
            age_ms: 0,
        });
        let (_, bad) = pack_snapshot(id(3), 44, 4, &[leave]);
        assert_eq!(bad[0].1, EncodeError::NotAJoin);
    }

    #[test]
    fn unencodable_records_are_set_aside() {
        let long = Record::Join(peer(1, &"z".repeat(MAX_PEER_ID + 1)));
        let ok = Record::Join(peer(2, "ok"));
        let (datagrams, bad) = pack_changes(id(1), 1, [&long, &ok]);
        assert_eq!(bad.len(), 1);
        assert_eq!(
            Datagram::decode(&datagrams[0]).unwrap().body,
            Body::Changes(vec![ok])
        );
    }

    #[test]
    fn every_bad_input_has_its_error() {
        use DatagramError as E;
        let good = pack_changes(id(1), 1, &[Record::Join(peer(7001, "p"))])
            .0
            .remove(0);
        let patch = |at: usize, bytes: &[u8]| {
            let mut d = good.clone();
            d[at..at + bytes.len()].copy_from_slice(bytes);
            d
        };
        let cases: Vec<(Vec<u8>, DatagramError)> = vec![
            (vec![0; MAX_DATAGRAM + 1], E::TooLarge(MAX_DATAGRAM + 1)),
            (b"LS".to_vec(), E::Truncated("magic")),
            (patch(0, b"XXXX"), E::BadMagic),
            (patch(4, &[2]), E::Version(2)),
            (patch(5, &[9]), E::Kind(9)),
            (patch(6, &[0; 8]), E::ZeroSender),
            (patch(24, &[6]), E::Op(6)),
            (patch(45, &[5]), E::Family(5)),
            (patch(50, &[0, 0]), E::ZeroPort),
            (patch(56, &[0; 8]), E::ZeroOrigin),
            (patch(64, &[0x80]), E::Flags(0x80)),
            (patch(69, &[1, 1]), E::PeerIdTooLong(257)),
            (patch(71, &[0xff]), E::PeerIdNotUtf8),
            (good[..good.len() - 1].to_vec(), E::Truncated("peer id")),
            ([&good[..], &[0]].concat(), E::Trailing(1)),
            (patch(22, &[0, 2]), E::Truncated("record op")),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                Datagram::decode(&bytes),
                Err(expected.clone()),
                "{expected}"
            );
        }
        let mut req = snapshot_request(id(1), 0, SnapshotReason::Gap);
        *req.last_mut().unwrap() = 7;
        assert_eq!(Datagram::decode(&req), Err(E::Reason(7)));
        let mut part = pack_snapshot(id(1), 0, 1, &[]).0.remove(0);
        set_part(&mut part, 1, 1);
        assert_eq!(
            Datagram::decode(&part),
            Err(E::BadPart { part: 1, parts: 1 })
        );
    }

    #[test]
    fn requests_and_heartbeats_round_trip() {
        for reason in [SnapshotReason::Start, SnapshotReason::Gap] {
            let d = Datagram::decode(&snapshot_request(id(5), 17, reason)).unwrap();
            assert_eq!(
                (d.sender, d.seq, d.body),
                (id(5), 17, Body::SnapshotRequest(reason))
            );
        }
        let d = Datagram::decode(&heartbeat(id(6), 3)).unwrap();
        assert_eq!((d.sender, d.seq, d.body), (id(6), 3, Body::Heartbeat));
    }

    #[test]
    fn tracker_ids_print_and_parse_as_16_hex_digits() {
        let t = id(0xfeed);
        assert_eq!(t.to_string(), "000000000000feed");
        assert_eq!("000000000000FEED".parse::<TrackerId>(), Ok(t));
        assert!("0000000000000000".parse::<TrackerId>().is_err());
        assert!("feed".parse::<TrackerId>().is_err());
        assert!("+00000000000feed".parse::<TrackerId>().is_err());
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""000000000000feed""#);
        assert_eq!(
            serde_json::from_str::<TrackerId>(r#""000000000000feed""#).unwrap(),
            t
        );
        assert_eq!(TrackerId::new(0), None);
    }

    #[test]
    fn max_record_len_is_the_largest() {
        let mut p = peer(1, &"w".repeat(MAX_PEER_ID));
        p.addr = "[fd77::1]:1".parse().unwrap();
        let r = Record::Join(p);
        assert_eq!(r.encoded_len(), MAX_RECORD_LEN);
        let mut out = Vec::new();
        r.encode_into(&mut out).unwrap();
        assert_eq!(out.len(), MAX_RECORD_LEN);
    }
}

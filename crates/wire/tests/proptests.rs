//! Property tests for the `wire` crate.
//!
//! - Round trips: every peer message (bare body and framed through
//!   [`PeerCodec`], directly and through tokio-util's `FramedWrite`/`FramedRead`),
//!   tracker requests and responses, torrents (hex and Python-repr piece
//!   hashes, info hash stability) and Python bytes reprs.
//! - Framing: a byte stream split at arbitrary points (down to byte by byte)
//!   decodes to exactly what decoding it in one go gives, and every frame of a
//!   multi-frame buffer comes out.
//! - Hostile input: arbitrary bytes fed to every decoder never panic, and the
//!   frame decoders never size a buffer by what a length field claims: claims
//!   above the limit are `FrameError::TooLarge` with the buffer untouched, and
//!   the buffer stays within the frame limit (plus header and the allocator's
//!   amortised doubling) whatever the claim.

use std::fmt::Debug;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

use wire::codec::encode_framed;
use wire::connection::{Config as ConnConfig, RequestRefused, Role};
use wire::replica::TrackerId;
use wire::torrent::validate_file_name;
use wire::tracker::{
    AnnounceRequest, AnnounceResponse, Event, PeerEntry, ReplicaStatus, RequestError, RoomMember,
    RoomStatus, StatusPeer, StatusResponse, SwarmStatus, TrackerRequest, TrackerStats,
    MAX_STRING_LEN,
};
use wire::{
    pyrepr, Bitfield, ConnEvent, Connection, Disconnect, FileEntry, FrameCodec, FrameError, Info,
    InfoHash, Layout, Message, MessageError, PeerCodec, PeerId, ProtocolError, Timeouts, Timer,
    Torrent, WireError, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN, MAX_PIECE_LENGTH,
};

/// A small frame limit, so that "just under the limit" is cheap to generate.
const SMALL_MAX: usize = 1024;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Piece indices: mostly small (meaningful for a connection), sometimes any.
fn index() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 0u32..48, 1 => any::<u32>()]
}

/// Any peer message; Bitfields cover exactly `pieces` pieces.
fn message(pieces: u32) -> BoxedStrategy<Message> {
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        Just(Message::Close),
        index().prop_map(Message::Have),
        prop::collection::vec(any::<bool>(), pieces as usize)
            .prop_map(|bits| Message::Bitfield(Bitfield::from_bools(bits))),
        index().prop_map(Message::Request),
        (index(), prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(index, data)| {
            Message::Piece {
                index,
                data: Bytes::from(data),
            }
        }),
        index().prop_map(Message::Cancel),
        (any::<[u8; 20]>(), any::<[u8; 20]>()).prop_map(|(h, p)| Message::Handshake {
            info_hash: InfoHash(h),
            peer_id: PeerId(p),
        }),
    ]
    .boxed()
}

/// A piece count and some messages for a torrent of that many pieces.
fn messages(max: usize) -> impl Strategy<Value = (u32, Vec<Message>)> {
    (0u32..40).prop_flat_map(move |n| (Just(n), prop::collection::vec(message(n), 0..max)))
}

/// Read sizes for feeding a decoder, used in turn and cycled: `[1]` is byte
/// by byte, a single huge size is all at once.
fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(vec![1]),
        1 => Just(vec![usize::MAX]),
        4 => prop::collection::vec(1usize..80, 1..12),
    ]
}

/// Any text: arbitrary Unicode, including control characters and quotes.
fn text(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max_chars).prop_map(|c| c.into_iter().collect())
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn truncate_bytes(mut s: String, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// peer_id strings up to [`MAX_STRING_LEN`] bytes, including exactly the limit.
fn peer_id_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(140).prop_map(|s| truncate_bytes(s, MAX_STRING_LEN)),
        1 => "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}:[0-9]{1,5}",
        1 => Just("x".repeat(MAX_STRING_LEN)),
        1 => Just("\u{e9}".repeat(MAX_STRING_LEN / 2)),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    select(vec![Event::Started, Event::Completed, Event::Stopped])
}

fn announce() -> impl Strategy<Value = AnnounceRequest> {
    let progress = (
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
    );
    (
        1u16..=65535,
        prop::option::of(any::<[u8; 4]>().prop_map(Ipv4Addr::from)),
        peer_id_string(),
        prop::option::of(event()),
        prop::option::of(any::<[u8; 20]>().prop_map(InfoHash)),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        progress,
    )
        .prop_map(
            |(port, ip, peer_id, event, info_hash, numwant, proto, (left, downloaded))| {
                AnnounceRequest {
                    port,
                    ip,
                    peer_id,
                    event,
                    info_hash,
                    numwant,
                    proto,
                    left,
                    downloaded,
                }
            },
        )
}

fn tracker_request() -> impl Strategy<Value = TrackerRequest> {
    prop_oneof![
        8 => announce().prop_map(TrackerRequest::Announce),
        1 => Just(TrackerRequest::Status),
    ]
}

fn peer_entry() -> impl Strategy<Value = PeerEntry> {
    (
        text(30),
        text(20),
        any::<u16>(),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(peer_id, peer_ip, peer_port, proto)| PeerEntry {
            peer_id,
            peer_ip,
            peer_port,
            proto,
        })
}

fn announce_response() -> impl Strategy<Value = AnnounceResponse> {
    (
        any::<u8>(),
        text(40),
        any::<u32>(),
        prop::collection::vec(peer_entry(), 0..6),
        prop::option::of(any::<u64>()),
    )
        .prop_map(
            |(error_code, message, num_of_peer, peers, interval)| AnnounceResponse {
                error_code,
                message,
                num_of_peer,
                peers,
                interval,
            },
        )
}

fn status_response() -> impl Strategy<Value = StatusResponse> {
    // Seconds in milliseconds steps: such decimals survive serde_json's float
    // parser exactly (its default parser is not correctly rounded for every
    // 17-digit float, which is not what this test is about).
    let status_peer = (
        text(30),
        text(20),
        any::<u16>(),
        any::<bool>(),
        0u64..1_000_000_000_000,
        prop::option::of(any::<u32>()),
        prop::option::of(text(20)),
        (
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u64>()),
            prop::option::of(1u64..),
        ),
    )
        .prop_map(
            |(
                peer_id,
                peer_ip,
                peer_port,
                seed,
                millis,
                proto,
                name,
                (left, downloaded, tracker),
            )| {
                StatusPeer {
                    entry: PeerEntry {
                        peer_id,
                        peer_ip,
                        peer_port,
                        proto,
                    },
                    seed,
                    last_seen_secs: millis as f64 / 1000.0,
                    name,
                    left,
                    downloaded,
                    tracker: tracker.and_then(TrackerId::new),
                }
            },
        );
    let swarm = (
        any::<[u8; 20]>().prop_map(|h| InfoHash(h).to_hex()),
        prop::option::of(text(30)),
        prop::collection::vec(status_peer, 0..4),
    )
        .prop_map(|(info_hash, file_name, peers)| SwarmStatus {
            info_hash,
            file_name,
            peers,
        });
    let stats =
        prop::option::of(
            (any::<u64>(), 0u64..1_000_000_000).prop_map(|(n, milli)| TrackerStats {
                announces: n,
                announces_per_sec: milli as f64 / 1000.0,
                bad_requests: n / 3,
                bad_frames: n / 5,
                connections_refused: n / 7,
                timeouts: n / 11,
                subscribers_refused: n / 13,
                subscribers_dropped: n / 17,
                announces_refused: n / 19,
                connections_recycled: n / 23,
            }),
        );
    let member =
        (text(20), text(20), 0u64..1_000_000).prop_map(|(addr, name, millis)| RoomMember {
            addr,
            name,
            last_seen_secs: millis as f64 / 1000.0,
        });
    let room = (text(20), prop::collection::vec(member, 0..3))
        .prop_map(|(name, members)| RoomStatus { name, members });
    let replica =
        (text(20), 0u64..1_000_000, any::<u64>()).prop_map(|(addr, millis, peers)| ReplicaStatus {
            addr,
            last_seen_secs: millis as f64 / 1000.0,
            peers,
        });
    (
        prop::collection::vec(swarm, 0..4),
        prop::collection::vec(room, 0..2),
        prop::collection::vec(replica, 0..2),
        stats,
    )
        .prop_map(|(swarms, rooms, replicas, stats)| StatusResponse {
            swarms,
            rooms,
            replicas,
            stats,
            replication: None,
            totals: None,
        })
}

/// File names that a torrent may carry (validated by the crate's own rule).
fn file_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_][A-Za-z0-9_. -]{0,30}",
        text(20),
        Just("..hidden".to_string()),
    ]
    .prop_filter("a plain file name", |s| validate_file_name(s).is_ok())
}

/// Valid torrents: the piece count always matches the file length.
fn torrent() -> impl Strategy<Value = Torrent> {
    let piece_length = prop_oneof![
        2 => 1u64..=4096,
        1 => Just(MAX_PIECE_LENGTH),
        1 => 1u64..=MAX_PIECE_LENGTH,
    ];
    (piece_length, 0u64..12)
        .prop_flat_map(|(pl, pieces)| {
            let file_length = if pieces == 0 {
                Just(0u64).boxed()
            } else {
                ((pieces - 1) * pl + 1..=pieces * pl).boxed()
            };
            (
                Just(pl),
                prop::collection::vec(any::<[u8; 20]>(), pieces as usize),
                file_length,
                file_name(),
                text(20),
                any::<u16>(),
                text(40),
            )
        })
        .prop_map(
            |(piece_length, piece_hash, file_length, file_name, announce, port, comment)| Torrent {
                announce,
                port,
                announce_list: Vec::new(),
                comment,
                info: Info {
                    piece_length,
                    piece_hash,
                    file_name,
                    file_length,
                    files: None,
                },
            },
        )
}

/// Valid directory torrents: nested paths, empty files, pieces that span
/// files; the piece count always matches the total length.
fn dir_torrent() -> impl Strategy<Value = Torrent> {
    let entry = (0u8..3, file_name(), 0u64..40);
    (1u64..=32, prop::collection::vec(entry, 1..8), file_name()).prop_map(
        |(piece_length, entries, name)| {
            // Directory `dN/` (or none) then a unique leaf: no duplicates and
            // no file that is also a directory.
            let files: Vec<FileEntry> = entries
                .into_iter()
                .enumerate()
                .map(|(i, (depth, leaf, length))| {
                    let mut path: Vec<String> = (0..depth).map(|d| format!("d{d}")).collect();
                    path.push(format!("{i}-{leaf}"));
                    FileEntry { path, length }
                })
                .collect();
            let total: u64 = files.iter().map(|f| f.length).sum();
            let pieces = Info::expected_pieces(total, piece_length) as usize;
            Torrent {
                announce: "127.0.0.1".into(),
                port: 6666,
                announce_list: Vec::new(),
                comment: String::new(),
                info: Info {
                    piece_length,
                    piece_hash: (0..pieces).map(|i| [i as u8; 20]).collect(),
                    file_name: name,
                    file_length: total,
                    files: Some(files),
                },
            }
        },
    )
}

/// Single-file and directory torrents.
fn any_torrent() -> impl Strategy<Value = Torrent> {
    prop_oneof![3 => torrent(), 1 => dir_torrent()]
}

/// Arbitrary JSON whose object keys are mostly drawn from `keys`, with leaves
/// that include the values the parsers look for, so that the typed-error paths
/// (and not only "bad JSON") are exercised.
fn json_value(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let interesting = select(vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(65535),
        json!(65536),
        json!(u64::MAX),
        json!(1.5),
        json!("started"),
        json!("stopped"),
        json!("status"),
        json!("announce"),
        json!("1.2.3.4"),
        json!("ab".repeat(20)),
        json!(".."),
        json!("a/b"),
        json!("b'\\x00'"),
        json!("x".repeat(MAX_STRING_LEN + 1)),
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text(12).prop_map(Value::String),
        interesting,
    ];
    let key = prop_oneof![4 => select(keys).prop_map(|k| k.to_string()), 1 => text(6)].boxed();
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..10)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const TRACKER_KEYS: &[&str] = &[
    "port",
    "ip",
    "peer_id",
    "event",
    "info_hash",
    "numwant",
    "proto",
    "request",
];
const RESPONSE_KEYS: &[&str] = &[
    "error_code",
    "message",
    "num-of-peer",
    "peers",
    "peer-id",
    "peer-ip",
    "peer-port",
    "proto",
    "interval",
];
const TORRENT_KEYS: &[&str] = &[
    "announce",
    "port",
    "comment",
    "info",
    "piece_length",
    "piece_hash",
    "file_name",
    "file_length",
    "name",
    "files",
    "path",
    "length",
];

/// JSON bytes: valid, cut short, or with one byte overwritten.
fn json_bytes(keys: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    (
        json_value(keys),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0u8..3,
    )
        .prop_map(|(v, at, byte, how)| {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            let i = at.index(bytes.len());
            match how {
                0 => {}
                1 => bytes.truncate(i),
                _ => bytes[i] = byte,
            }
            bytes
        })
}

/// Byte streams that look like frames often enough to matter: segments of
/// a header (with a claim anywhere from 0 to u64::MAX) and some bytes, or raw
/// bytes.
fn frame_like_bytes(max_frame: usize) -> impl Strategy<Value = Vec<u8>> {
    let claim = prop_oneof![
        4 => 0u64..=(max_frame as u64 + 16),
        1 => any::<u64>(),
        1 => (10u32..64).prop_map(|shift| 1u64 << shift),
        1 => Just(u64::MAX),
    ];
    let segment = prop_oneof![
        3 => (claim, prop::collection::vec(any::<u8>(), 0..96)).prop_map(|(c, body)| {
            let mut s = c.to_be_bytes().to_vec();
            s.extend(body);
            s
        }),
        1 => prop::collection::vec(any::<u8>(), 0..32),
    ];
    prop::collection::vec(segment, 0..8).prop_map(|s| s.concat())
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// What a decoder made of one byte stream.
#[derive(Debug, PartialEq)]
struct Outcome<T> {
    items: Vec<T>,
    /// The error that ended the stream (Debug form), if any.
    error: Option<String>,
}

/// Feeds `input` to `codec` as successive reads of the sizes in `reads`
/// (cycled), calling `decode` until it wants more after each read and
/// `decode_eof` at the end, as `FramedRead` does; stops at the first error.
/// Also returns the largest buffer capacity seen.
fn feed<D>(codec: &mut D, input: &[u8], reads: &[usize]) -> (Outcome<D::Item>, usize)
where
    D: Decoder,
    D::Error: Debug,
{
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut max_capacity = 0;
    let mut pos = 0;
    let mut sizes = reads.iter().cycle();
    loop {
        loop {
            let result = codec.decode(&mut buf);
            max_capacity = max_capacity.max(buf.capacity());
            match result {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => {
                    let error = Some(format!("{e:?}"));
                    return (Outcome { items, error }, max_capacity);
                }
            }
        }
        if pos == input.len() {
            break;
        }
        let n = (*sizes.next().unwrap()).clamp(1, input.len() - pos);
        buf.extend_from_slice(&input[pos..pos + n]);
        max_capacity = max_capacity.max(buf.capacity());
        pos += n;
    }
    let error = loop {
        let result = codec.decode_eof(&mut buf);
        max_capacity = max_capacity.max(buf.capacity());
        match result {
            Ok(Some(item)) => items.push(item),
            Ok(None) => break None,
            Err(e) => break Some(format!("{e:?}")),
        }
    };
    (Outcome { items, error }, max_capacity)
}

/// The most the frame decoder may reserve ahead of the data for a frame still
/// arriving. `READ_AHEAD` in `frame.rs` (private; 256 KiB, then 1 MiB + 64)
/// must stay within this ceiling; with small limits, the limit itself bounds it.
const READ_AHEAD_ALLOWANCE: usize = 2 * 1024 * 1024;

/// The most buffer a frame decoder may hold for a stream of `input_len`
/// bytes: the bytes received plus one header and one read-ahead (at most the
/// frame limit), doubled for `Vec`'s amortised growth. Whatever a length
/// field claims.
fn capacity_bound(max_frame: usize, input_len: usize) -> usize {
    2 * (input_len + FRAME_HEADER_LEN + max_frame.min(READ_AHEAD_ALLOWANCE))
}

/// The framed bytes of `bodies`, written by hand (not by the codec under test).
fn frames_by_hand(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in bodies {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// The piece count to decode `msg` with: a Bitfield's own length, else `other`.
fn count_for(msg: &Message, other: u32) -> u32 {
    match msg {
        Message::Bitfield(bf) => bf.len(),
        _ => other,
    }
}

/// One message through every encode/decode path.
fn check_message_round_trip(msg: &Message, other_count: u32) -> Result<(), TestCaseError> {
    let pieces = count_for(msg, other_count);
    let body = msg.to_bytes();
    prop_assert_eq!(body.len(), msg.encoded_len());
    prop_assert_eq!(
        u32::from_be_bytes(body[..4].try_into().unwrap()) as usize,
        body.len() - 4
    );
    let mut appended = BytesMut::from(&b"prefix"[..]);
    msg.encode(&mut appended);
    prop_assert_eq!(&appended[6..], &body[..]);

    prop_assert_eq!(&Message::decode(body.clone(), Some(pieces))?, msg);
    prop_assert_eq!(&Message::decode(body.clone(), None)?, msg);

    // Framed, through both Encoder impls, then the Decoder.
    let mut codec = PeerCodec::new(DEFAULT_MAX_FRAME, Some(pieces));
    let mut buf = BytesMut::new();
    codec.encode(msg.clone(), &mut buf)?;
    codec.encode(msg, &mut buf)?;
    let one = frames_by_hand(&[body.to_vec()]);
    prop_assert_eq!(&buf[..], &[&one[..], &one[..]].concat()[..]);
    prop_assert_eq!(&encode_framed(msg)[..], &one[..]);
    let first = codec.decode(&mut buf)?;
    prop_assert_eq!(first.as_ref(), Some(msg));
    let second = codec.decode_eof(&mut buf)?;
    prop_assert_eq!(second.as_ref(), Some(msg));
    prop_assert_eq!(codec.decode(&mut buf)?, None);
    prop_assert_eq!(codec.decode_eof(&mut buf)?, None);
    prop_assert!(buf.is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

#[test]
fn every_message_variant_round_trips() {
    let all = [
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(u32::MAX),
        Message::Bitfield(Bitfield::from_wire(&[1, 0, 1]).unwrap()),
        Message::Bitfield(Bitfield::new(0)),
        Message::Request(258),
        Message::Piece {
            index: 2,
            data: Bytes::from_static(b"ab"),
        },
        Message::Piece {
            index: 0,
            data: Bytes::new(),
        },
        Message::Cancel(7),
        Message::Close,
        Message::Handshake {
            info_hash: InfoHash([0xa9; 20]),
            peer_id: PeerId([0; 20]),
        },
    ];
    for msg in &all {
        check_message_round_trip(msg, 5).unwrap_or_else(|e| panic!("{msg:?}: {e}"));
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn message_round_trips(
        msg in (0u32..300).prop_flat_map(message),
        other_count in any::<u32>(),
    ) {
        check_message_round_trip(&msg, other_count)?;
    }

    #[test]
    fn pyrepr_round_trips_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let repr = pyrepr::to_repr(&bytes);
        prop_assert!(repr.is_ascii() && repr.starts_with('b'), "{}", repr);
        prop_assert_eq!(pyrepr::parse(&repr)?, bytes);
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn tracker_request_round_trips(req in tracker_request()) {
        let json = req.to_json();
        prop_assert!(std::str::from_utf8(&json).is_ok());
        prop_assert_eq!(TrackerRequest::parse(&json)?, req);
    }

    #[test]
    fn over_long_peer_id_is_refused(
        req in announce(),
        len in (MAX_STRING_LEN + 1)..(3 * MAX_STRING_LEN),
        wide in any::<bool>(),
    ) {
        let mut req = req;
        req.peer_id = if wide {
            // Two-byte characters: over the limit in bytes, not in chars.
            "\u{e9}".repeat(len.div_ceil(2))
        } else {
            "p".repeat(len)
        };
        let json = TrackerRequest::Announce(req).to_json();
        prop_assert_eq!(
            TrackerRequest::parse(&json),
            Err(RequestError::TooLong { key: "peer_id" })
        );
    }

    #[test]
    fn out_of_range_port_is_refused(
        port in prop_oneof![i64::MIN..=0, 65536i64..=i64::MAX],
        peer_id in peer_id_string(),
    ) {
        let body = json!({ "port": port, "peer_id": peer_id }).to_string();
        prop_assert_eq!(
            TrackerRequest::parse(body.as_bytes()),
            Err(RequestError::BadPort(port as i128))
        );
    }

    #[test]
    fn announce_response_round_trips(resp in announce_response()) {
        prop_assert_eq!(AnnounceResponse::parse(&resp.to_json())?, resp);
    }

    #[test]
    fn status_response_round_trips(status in status_response()) {
        let json = serde_json::to_vec(&status)?;
        prop_assert_eq!(serde_json::from_slice::<StatusResponse>(&json)?, status);
    }

    #[test]
    fn torrent_round_trips_with_a_stable_info_hash(
        t in torrent(),
        forms in prop::collection::vec(0u8..3, 12),
    ) {
        let hash = t.info_hash();
        let pretty = t.to_json_pretty();
        let back = Torrent::from_json(pretty.as_bytes())?;
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.info_hash(), hash);

        // Reformatted (compact) JSON: the same swarm.
        let mut value: Value = serde_json::from_str(&pretty)?;
        let compact = serde_json::to_vec(&value)?;
        prop_assert_eq!(Torrent::from_json(&compact)?.info_hash(), hash);

        // The seed tool's Python-repr piece hashes (mixed with upper- and
        // lowercase hex): the same torrent and the same swarm.
        let seed_style: Vec<Value> = t
            .info
            .piece_hash
            .iter()
            .zip(forms.iter().cycle())
            .map(|(h, form)| match form {
                0 => Value::String(pyrepr::to_repr(h)),
                1 => Value::String(InfoHash(*h).to_hex().to_uppercase()),
                _ => Value::String(InfoHash(*h).to_hex()),
            })
            .collect();
        value["info"]["piece_hash"] = Value::Array(seed_style);
        let from_seed = Torrent::from_json(value.to_string().as_bytes())?;
        prop_assert_eq!(&from_seed, &t);
        prop_assert_eq!(from_seed.info_hash(), hash);
    }

    #[test]
    fn directory_torrents_round_trip_and_pieces_cover_the_files(t in dir_torrent()) {
        let back = Torrent::from_json(t.to_json_pretty().as_bytes())?;
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.info_hash(), t.info_hash());
        let layout = Layout::new(&t.info);
        let mut per_file = vec![0u64; layout.file_count()];
        for p in 0..t.info.piece_count() {
            let spans = layout.piece_spans(p);
            let sum: u64 = spans.iter().map(|s| s.len).sum();
            prop_assert_eq!(sum, t.info.piece_size(p));
            for s in spans {
                prop_assert_eq!(s.offset, per_file[s.file], "spans run in order");
                per_file[s.file] += s.len;
            }
        }
        let lengths: Vec<u64> = t.info.file_list().iter().map(|&(_, l)| l).collect();
        prop_assert_eq!(per_file, lengths);
    }

    #[test]
    fn info_hash_names_the_info_only(t in any_torrent(), which in any::<prop::sample::Index>()) {
        let hash = t.info_hash();
        let mut outside = t.clone();
        outside.announce.push('x');
        outside.port = outside.port.wrapping_add(1);
        outside.comment.push('x');
        prop_assert_eq!(outside.info_hash(), hash);

        let mut renamed = t.clone();
        renamed.info.file_name.push('x');
        prop_assert_ne!(renamed.info_hash(), hash);
        if !t.info.piece_hash.is_empty() {
            let mut other = t.clone();
            let i = which.index(other.info.piece_hash.len());
            other.info.piece_hash[i][0] ^= 1;
            prop_assert_ne!(other.info_hash(), hash);
        }
    }
}

// ---------------------------------------------------------------------------
// Framing: splits, many frames per read, the real Framed path
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn frames_survive_any_split(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..10),
        reads in chunking(),
    ) {
        let wire = frames_by_hand(&bodies);
        let expected = Outcome {
            items: bodies.iter().map(|b| BytesMut::from(&b[..])).collect(),
            error: None,
        };
        // All at once, byte by byte, and at the generated split points.
        for reads in [vec![usize::MAX], vec![1], reads] {
            let (got, cap) = feed(&mut FrameCodec::default(), &wire, &reads);
            prop_assert_eq!(&got, &expected, "reads {:?}", reads);
            prop_assert!(cap <= capacity_bound(200, wire.len()), "capacity {}", cap);
        }
        // The encoder writes what we wrote by hand.
        let mut encoded = BytesMut::new();
        for b in &bodies {
            FrameCodec::default().encode(&b[..], &mut encoded)?;
        }
        prop_assert_eq!(&encoded[..], &wire[..]);
    }

    #[test]
    fn peer_messages_survive_any_split((pieces, msgs) in messages(10), reads in chunking()) {
        let mut codec = PeerCodec::new(DEFAULT_MAX_FRAME, Some(pieces));
        let mut wire = BytesMut::new();
        for m in &msgs {
            codec.encode(m, &mut wire)?;
        }
        let expected = Outcome { items: msgs, error: None };
        for reads in [vec![usize::MAX], vec![1], reads] {
            let (got, _) = feed(&mut codec, &wire, &reads);
            prop_assert_eq!(&got, &expected, "reads {:?}", reads);
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// The binaries' path: `FramedWrite` into a pipe that passes at most
    /// `pipe` bytes at a time, `FramedRead` on the other end until EOF.
    #[test]
    fn peer_messages_through_tokio_framed((pieces, msgs) in messages(12), pipe in 1usize..300) {
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        let got: Vec<Message> = rt.block_on(async {
            let (a, b) = tokio::io::duplex(pipe);
            let mut sink = FramedWrite::new(a, PeerCodec::new(DEFAULT_MAX_FRAME, Some(pieces)));
            let stream = FramedRead::new(b, PeerCodec::new(DEFAULT_MAX_FRAME, Some(pieces)));
            let send = async {
                for m in &msgs {
                    sink.send(m.clone()).await.unwrap();
                }
                SinkExt::<Message>::close(&mut sink).await.unwrap();
            };
            let receive = stream.map(|r| r.unwrap()).collect::<Vec<_>>();
            tokio::join!(send, receive).1
        });
        prop_assert_eq!(got, msgs);
    }
}

// ---------------------------------------------------------------------------
// Hostile input: length claims
// ---------------------------------------------------------------------------

/// A length prefix: anything from 0 to u64::MAX, biased to the limit's edge.
fn claim(max_frame: usize) -> impl Strategy<Value = u64> {
    let max = max_frame as u64;
    prop_oneof![
        2 => 0..=max,
        1 => Just(max),
        1 => Just(max + 1),
        2 => (max + 1)..=u64::MAX,
        1 => (10u32..64).prop_map(|s| 1u64 << s),
        1 => Just(u64::MAX),
        1 => Just(i64::MAX as u64 + 1),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// With a 1 KiB limit, a claim above it is `TooLarge` as soon as the
    /// header is in, with the buffer not grown by one byte; a legal claim
    /// with part of its body never makes the buffer bigger than one frame's
    /// worth, however the bytes arrive.
    #[test]
    fn length_claims_never_size_the_buffer(
        claim in claim(SMALL_MAX),
        tail in prop::collection::vec(any::<u8>(), 0..SMALL_MAX),
        reads in chunking(),
    ) {
        let legal = claim <= SMALL_MAX as u64;
        let mut tail = tail;
        if legal {
            // An incomplete frame: the sender stops before the end.
            tail.truncate((claim as usize).saturating_sub(1));
        }
        let mut input = claim.to_be_bytes().to_vec();
        input.extend_from_slice(&tail);
        // The input is at most one frame's worth, so the bound is the limit's.
        let bound = capacity_bound(SMALL_MAX, 0);

        // The refusal itself allocates nothing.
        let mut buf = BytesMut::from(&input[..]);
        let capacity = buf.capacity();
        let first = FrameCodec::new(SMALL_MAX).decode(&mut buf);
        if legal {
            prop_assert!(buf.capacity() <= bound, "capacity {}", buf.capacity());
            if claim == 0 {
                prop_assert_eq!(first?.map(|f| f.len()), Some(0));
            } else {
                prop_assert!(first?.is_none());
            }
        } else {
            prop_assert!(
                matches!(first, Err(FrameError::TooLarge { len, max: SMALL_MAX }) if len == claim),
                "{:?}", first
            );
            prop_assert_eq!(buf.capacity(), capacity, "grew the buffer for a refused claim");
            prop_assert_eq!(buf.len(), input.len(), "consumed input of a refused frame");
        }

        // Arriving in pieces, through both codecs.
        let (frames, cap) = feed(&mut FrameCodec::new(SMALL_MAX), &input, &reads);
        prop_assert!(cap <= bound, "frame codec capacity {} > {}", cap, bound);
        let (msgs, cap) = feed(&mut PeerCodec::new(SMALL_MAX, Some(3)), &input, &reads);
        prop_assert!(cap <= bound, "peer codec capacity {} > {}", cap, bound);
        let too_large = format!("{:?}", FrameError::TooLarge { len: claim, max: SMALL_MAX });
        if !legal {
            prop_assert_eq!(frames, Outcome { items: vec![], error: Some(too_large.clone()) });
            prop_assert_eq!(msgs.error, Some(format!("Frame({too_large})")));
            prop_assert!(msgs.items.is_empty());
        } else if claim > 0 {
            let truncated = FrameError::Truncated { buffered: input.len() };
            prop_assert_eq!(frames, Outcome { items: vec![], error: Some(format!("{truncated:?}")) });
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// With the default 16 MiB limit, a legal claim near the limit backed by
    /// a few KiB grows the buffer with the data (plus the decoder's bounded
    /// read-ahead), not with the claim.
    #[test]
    fn buffer_grows_with_data_not_with_a_legal_claim(
        claim in (DEFAULT_MAX_FRAME as u64 / 2)..=DEFAULT_MAX_FRAME as u64,
        received in 0usize..8192,
        reads in chunking(),
    ) {
        let mut input = claim.to_be_bytes().to_vec();
        input.resize(FRAME_HEADER_LEN + received, 0xab);
        let (got, cap) = feed(&mut FrameCodec::default(), &input, &reads);
        let bound = capacity_bound(DEFAULT_MAX_FRAME, input.len());
        prop_assert!(bound < claim as usize, "the bound must be below the claim to mean anything");
        prop_assert!(cap <= bound, "{} bytes of buffer for {} received", cap, input.len());
        prop_assert!(got.items.is_empty());
        prop_assert_eq!(
            got.error,
            Some(format!("{:?}", FrameError::Truncated { buffered: input.len() }))
        );
    }
}

// ---------------------------------------------------------------------------
// Hostile input: arbitrary bytes into every decoder
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary byte streams into the frame and peer codecs: no panic, the
    /// buffer bounded by the input and the limit, the same outcome however
    /// the stream is split.
    #[test]
    fn codecs_take_any_stream(
        (max_frame, input) in select(vec![0usize, 1, 16, 64, SMALL_MAX, DEFAULT_MAX_FRAME])
            .prop_flat_map(|max| (Just(max), prop_oneof![
                // Claims around this limit (up to 16 MiB for the default).
                frame_like_bytes(max),
                frame_like_bytes(64),
                prop::collection::vec(any::<u8>(), 0..512),
            ])),
        pieces in prop::option::of(0u32..8),
        reads in chunking(),
    ) {
        let bound = capacity_bound(max_frame, input.len());
        let (whole, cap) = feed(&mut FrameCodec::new(max_frame), &input, &[usize::MAX]);
        prop_assert!(cap <= bound, "capacity {} > {}", cap, bound);
        let (split, cap) = feed(&mut FrameCodec::new(max_frame), &input, &reads);
        prop_assert!(cap <= bound, "capacity {} > {}", cap, bound);
        prop_assert_eq!(&split, &whole);
        prop_assert!(whole.items.iter().all(|f| f.len() <= max_frame));

        let (whole_msgs, cap) = feed(&mut PeerCodec::new(max_frame, pieces), &input, &[usize::MAX]);
        prop_assert!(cap <= bound, "capacity {} > {}", cap, bound);
        let (split_msgs, cap) = feed(&mut PeerCodec::new(max_frame, pieces), &input, &reads);
        prop_assert!(cap <= bound, "capacity {} > {}", cap, bound);
        prop_assert_eq!(&split_msgs, &whole_msgs);
        // The peer codec decodes exactly the frames the frame codec finds.
        prop_assert!(whole_msgs.items.len() <= whole.items.len());
        for (frame, msg) in whole.items.iter().zip(&whole_msgs.items) {
            prop_assert_eq!(
                &Message::decode(Bytes::copy_from_slice(frame), pieces)?,
                msg
            );
        }
    }

    /// Arbitrary frame bodies into `Message::decode`: a message or a typed
    /// error, never a panic; what decodes re-encodes to the same bytes.
    #[test]
    fn message_decode_takes_any_body(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            // A correct N with an arbitrary id and payload.
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..48)).prop_map(|(id, p)| {
                let mut b = ((p.len() + 1) as u32).to_be_bytes().to_vec();
                b.push(id);
                b.extend(p);
                b
            }),
            // A correct N and a Bitfield id with bytes that are mostly 0 or 1.
            prop::collection::vec(prop_oneof![9 => 0u8..2, 1 => any::<u8>()], 0..12).prop_map(|p| {
                let mut b = ((p.len() + 1) as u32).to_be_bytes().to_vec();
                b.push(5);
                b.extend(p);
                b
            }),
        ],
        pieces in prop::option::of(0u32..12),
    ) {
        match Message::decode(Bytes::from(body.clone()), pieces) {
            Ok(msg) => prop_assert_eq!(&msg.to_bytes()[..], &body[..]),
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                if body.len() < 4 {
                    prop_assert_eq!(e, MessageError::Truncated(body.len()));
                }
            }
        }
    }

    #[test]
    fn tracker_request_parse_takes_anything(
        body in prop_oneof![json_bytes(TRACKER_KEYS), prop::collection::vec(any::<u8>(), 0..64)],
    ) {
        if let Ok(req) = TrackerRequest::parse(&body) {
            prop_assert_eq!(TrackerRequest::parse(&req.to_json())?, req);
        }
    }

    #[test]
    fn announce_response_parse_takes_anything(
        body in prop_oneof![json_bytes(RESPONSE_KEYS), prop::collection::vec(any::<u8>(), 0..64)],
    ) {
        if let Ok(resp) = AnnounceResponse::parse(&body) {
            prop_assert_eq!(AnnounceResponse::parse(&resp.to_json())?, resp);
        }
        let _ = serde_json::from_slice::<StatusResponse>(&body);
    }

    #[test]
    fn torrent_from_json_takes_anything(
        body in prop_oneof![json_bytes(TORRENT_KEYS), prop::collection::vec(any::<u8>(), 0..64)],
    ) {
        if let Ok(t) = Torrent::from_json(&body) {
            prop_assert_eq!(Torrent::from_json(t.to_json_pretty().as_bytes())?, t);
        }
    }

    /// A valid torrent with one field of `info` (or the top level) replaced
    /// by arbitrary JSON: a torrent or a typed error, never a panic.
    #[test]
    fn torrent_with_one_bad_field(
        t in any_torrent(),
        key in select(TORRENT_KEYS),
        replacement in json_value(TORRENT_KEYS),
    ) {
        let mut value: Value = serde_json::from_str(&t.to_json_pretty())?;
        if value.get(key).is_some() {
            value[key] = replacement;
        } else {
            value["info"][key] = replacement;
        }
        if let Ok(back) = Torrent::from_json(value.to_string().as_bytes()) {
            prop_assert!(back.info.validate().is_ok());
            prop_assert!(validate_file_name(&back.info.file_name).is_ok());
        }
    }

    #[test]
    fn pyrepr_parse_takes_anything(
        s in prop_oneof![
            text(40),
            (
                select(vec!["b'", "b\"", "b", "'", ""]),
                prop::collection::vec(
                    select(vec!["\\", "x", "'", "\"", "a", "0", "f", "g", "\\x", "\\x4", "\u{e9}", "\n", "t", "\\t"]),
                    0..16,
                ),
                select(vec!["'", "\"", "", "'x"]),
            ).prop_map(|(open, body, close)| format!("{open}{}{close}", body.concat())),
        ],
    ) {
        if let Ok(bytes) = pyrepr::parse(&s) {
            prop_assert_eq!(pyrepr::parse(&pyrepr::to_repr(&bytes))?, bytes);
        }
    }
}

// ---------------------------------------------------------------------------
// The connection state machine on decoded messages
// ---------------------------------------------------------------------------

/// One step of a connection's life.
#[derive(Debug, Clone)]
enum Step {
    /// Arbitrary frame body from the remote (fed only if it decodes).
    Raw(Vec<u8>),
    /// A well-formed message from the remote.
    Remote(Message),
    Unchoke,
    Choke,
    Interested(bool),
    Request(u32),
    Cancel(u32),
    Have(u32),
    /// Time passes until a KeepAlive is due.
    KeepAlive,
}

fn step(pieces: u32) -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..16).prop_map(Step::Raw),
        8 => prop_oneof![
            message(pieces),
            // Bitfields of the wrong length, too.
            prop::collection::vec(any::<bool>(), 0..8)
                .prop_map(|b| Message::Bitfield(Bitfield::from_bools(b))),
        ].prop_map(Step::Remote),
        1 => Just(Step::Unchoke),
        1 => Just(Step::Choke),
        1 => any::<bool>().prop_map(Step::Interested),
        3 => index().prop_map(Step::Request),
        1 => index().prop_map(Step::Cancel),
        1 => index().prop_map(Step::Have),
        1 => Just(Step::KeepAlive),
    ]
}

const OUR_HASH: InfoHash = InfoHash([7; 20]);
const OUR_ID: PeerId = PeerId([1; 20]);

fn conn_config(pieces: u32) -> ConnConfig {
    ConnConfig {
        info_hash: OUR_HASH,
        peer_id: OUR_ID,
        piece_count: pieces,
        timeouts: Timeouts::default(),
    }
}

/// A connection past its opening (legacy: dialed; ours: the peer's
/// handshake answered), with our empty bitfield sent.
fn opened(pieces: u32, legacy: bool, now: Instant) -> Result<Connection, TestCaseError> {
    let mut conn = Connection::new(conn_config(pieces), Role::Outgoing { legacy }, now);
    if !legacy {
        conn.handle(
            Message::Handshake {
                info_hash: OUR_HASH,
                peer_id: PeerId([2; 20]),
            },
            now,
        );
    }
    let opened = matches!(
        conn.poll_event(),
        Some(ConnEvent::Established { legacy: l, .. }) if l == legacy
    );
    prop_assert!(opened, "not open");
    while conn.poll_transmit(now).is_some() {}
    conn.send_bitfield(&Bitfield::new(pieces));
    Ok(conn)
}

/// Splits what `Connection::handle` reported: the protocol error it closed
/// for, if any, and the other events.
fn handled(events: Vec<ConnEvent>) -> (Result<(), ProtocolError>, Vec<ConnEvent>) {
    let mut result = Ok(());
    let mut rest = Vec::new();
    for ev in events {
        match ev {
            ConnEvent::Closed(Disconnect::Protocol(e)) => result = Err(e),
            ConnEvent::Closed(_) => {}
            other => rest.push(other),
        }
    }
    (result, rest)
}

/// Checks what `Connection::handle` did with `msg`.
fn check_handled(
    msg: &Message,
    result: &Result<(), ProtocolError>,
    pieces: u32,
    was_in_flight: bool,
    events: &[ConnEvent],
) -> Result<(), TestCaseError> {
    let out_of_range = |what: &'static str, index: u32| {
        Err(ProtocolError::IndexOutOfRange {
            what,
            index,
            count: pieces,
        })
    };
    match *msg {
        Message::Have(i) if i >= pieces => prop_assert_eq!(result, &out_of_range("Have", i)),
        Message::Request(i) if i >= pieces => {
            prop_assert_eq!(result, &out_of_range("Request", i))
        }
        Message::Cancel(i) if i >= pieces => prop_assert_eq!(result, &out_of_range("Cancel", i)),
        Message::Piece { index, .. } if index >= pieces => {
            prop_assert_eq!(result, &out_of_range("Piece", index))
        }
        Message::Piece { index, .. } if was_in_flight => {
            prop_assert!(result.is_ok());
            prop_assert!(
                matches!(events, [ConnEvent::Piece { index: i, requested: true, .. }] if *i == index),
                "{:?}",
                events
            );
        }
        Message::Piece { index, .. } => prop_assert!(
            result == &Err(ProtocolError::UnrequestedPiece(index))
                || matches!(
                    events,
                    [ConnEvent::Piece {
                        requested: false,
                        ..
                    }]
                ),
            "{:?} {:?}",
            result,
            events
        ),
        Message::Bitfield(ref bf) if bf.len() != pieces => prop_assert_eq!(
            result,
            &Err(ProtocolError::BitfieldLength {
                expected: pieces,
                actual: bf.len()
            })
        ),
        Message::Handshake { .. } => {
            prop_assert_eq!(result, &Err(ProtocolError::UnexpectedHandshake))
        }
        _ => prop_assert!(result.is_ok(), "{:?} gave {:?}", msg, result),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    /// Any sequence of decoded remote messages and local commands on an open
    /// connection: no panic, the documented typed errors, consistent state,
    /// and every queued message decodable by a peer of the same torrent.
    /// When a step closes the connection, the next steps run on a new one.
    #[test]
    fn connection_handles_any_decoded_messages(
        (pieces, steps) in (0u32..24).prop_flat_map(|n| {
            (Just(n), prop::collection::vec(step(n), 0..60))
        }),
        legacy in any::<bool>(),
    ) {
        let mut now = Instant::now();
        let mut conn = opened(pieces, legacy, now)?;
        for step in steps {
            if conn.close_reason().is_some() {
                conn = opened(pieces, legacy, now)?;
            }
            let incoming = match step {
                Step::Raw(body) => Message::decode(Bytes::from(body), Some(pieces)).ok(),
                Step::Remote(msg) => {
                    // Through the wire, as a peer would see it.
                    match Message::decode(msg.to_bytes(), Some(pieces)) {
                        Ok(decoded) => {
                            prop_assert_eq!(&decoded, &msg);
                            Some(decoded)
                        }
                        Err(e) => {
                            prop_assert!(matches!(e, MessageError::BitfieldLength { .. }), "{:?}", e);
                            // Without the codec's check, the connection must refuse it.
                            Some(msg)
                        }
                    }
                }
                Step::Unchoke => { conn.unchoke(); None }
                Step::Choke => { conn.choke(); None }
                Step::Interested(b) => { conn.set_interested(b); None }
                Step::Request(i) => {
                    let before = conn.in_flight().to_vec();
                    match conn.request(i, now) {
                        Ok(()) => prop_assert_eq!(conn.in_flight().last(), Some(&i)),
                        Err(RequestRefused::AlreadyRequested) => prop_assert!(before.contains(&i)),
                        Err(RequestRefused::NotAvailable) => prop_assert!(!conn.remote().has(i)),
                        Err(RequestRefused::Choked) => prop_assert!(conn.peer_choking()),
                        Err(RequestRefused::OneAtATime) => {
                            prop_assert!(legacy && !before.is_empty())
                        }
                        Err(RequestRefused::NotOpen) => prop_assert!(!conn.is_open()),
                    }
                    None
                }
                Step::Cancel(i) => {
                    let was = conn.in_flight().contains(&i);
                    prop_assert_eq!(conn.cancel(i), was);
                    None
                }
                Step::Have(i) => { conn.have(i); None }
                Step::KeepAlive => {
                    if let Some(due) = conn.deadline(Timer::KeepAlive) {
                        now = now.max(due);
                        conn.handle_timeout(now);
                    }
                    None
                }
            };
            if let Some(msg) = incoming {
                let was_in_flight = matches!(
                    msg, Message::Piece { index, .. } if conn.in_flight().contains(&index)
                );
                conn.handle(msg.clone(), now);
                let (result, events) =
                    handled(std::iter::from_fn(|| conn.poll_event()).collect());
                check_handled(&msg, &result, pieces, was_in_flight, &events)?;
            }

            // State stays consistent.
            prop_assert_eq!(conn.remote().len(), pieces);
            prop_assert_eq!(conn.remote().count() as usize, conn.remote().iter_present().count());
            let in_flight = conn.in_flight();
            prop_assert!(in_flight.iter().all(|&i| i < pieces));
            let mut unique = in_flight.to_vec();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), in_flight.len());
            if conn.peer_choking() {
                prop_assert!(in_flight.is_empty());
            }
            if legacy {
                prop_assert!(in_flight.len() <= 1, "{:?} in flight at a legacy peer", in_flight);
            }

            // Whatever we queue, the peer can decode.
            while let Some(out) = conn.poll_transmit(now) {
                if legacy {
                    prop_assert!(
                        !matches!(out, Message::Have(_) | Message::Cancel(_) | Message::KeepAlive),
                        "legacy peer sent {:?}", out
                    );
                }
                let mut buf = BytesMut::new();
                PeerCodec::for_torrent(pieces).encode(&out, &mut buf)?;
                prop_assert_eq!(PeerCodec::for_torrent(pieces).decode(&mut buf)?, Some(out));
            }
        }
    }
}

/// One thing that happens to a connection, from its first moment on.
#[derive(Debug, Clone)]
enum Happening {
    /// A message from the remote, `ms` after the previous happening (the
    /// clock may also step back: drivers pass what they read).
    Message(Message, i64),
    /// The driver wakes up at this offset from the previous happening.
    Timeout(i64),
    /// The driver's own calls.
    Request(u32),
    Cancel(u32),
    Have(u32),
    Unchoke,
    Choke,
    Interested(bool),
    Bitfield(Vec<bool>),
    Upload,
    Close,
    Eof,
}

fn happening(pieces: u32) -> impl Strategy<Value = Happening> {
    let ms = prop_oneof![4 => -1_000i64..200_000, 1 => Just(i64::MAX / 4), 1 => Just(i64::MIN / 4)];
    let handshake =
        (any::<bool>(), any::<bool>()).prop_map(|(right_hash, other_id)| Message::Handshake {
            info_hash: if right_hash {
                OUR_HASH
            } else {
                InfoHash([9; 20])
            },
            peer_id: if other_id { PeerId([2; 20]) } else { OUR_ID },
        });
    prop_oneof![
        10 => (prop_oneof![4 => message(pieces), 1 => handshake], ms.clone())
            .prop_map(|(m, ms)| Happening::Message(m, ms)),
        3 => ms.prop_map(Happening::Timeout),
        2 => index().prop_map(Happening::Request),
        1 => index().prop_map(Happening::Cancel),
        1 => index().prop_map(Happening::Have),
        1 => Just(Happening::Unchoke),
        1 => Just(Happening::Choke),
        1 => any::<bool>().prop_map(Happening::Interested),
        1 => prop::collection::vec(any::<bool>(), 0..30).prop_map(Happening::Bitfield),
        2 => Just(Happening::Upload),
        1 => Just(Happening::Close),
        1 => Just(Happening::Eof),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Incoming),
        any::<bool>().prop_map(|legacy| Role::Outgoing { legacy }),
    ]
}

/// `base` moved by `ms` milliseconds, clamped to what an `Instant` can hold.
fn shift(base: Instant, ms: i64) -> Instant {
    let d = Duration::from_millis(ms.unsigned_abs());
    let moved = if ms >= 0 {
        base.checked_add(d)
    } else {
        base.checked_sub(d)
    };
    moved.unwrap_or(base)
}

proptest! {
    #![proptest_config(config(256))]

    /// Any role, any happenings in any order at any times, the opening
    /// included: nothing panics, the events keep their shape (Established
    /// first, at most one Closed and nothing after it), the driver is never
    /// asked to wake in the past, and legacy peers never get Have, Cancel or
    /// KeepAlive.
    #[test]
    fn connection_survives_any_messages_at_any_times(
        (pieces, happenings) in (0u32..24).prop_flat_map(|n| {
            (Just(n), prop::collection::vec(happening(n), 0..80))
        }),
        role in role(),
    ) {
        let start = Instant::now();
        let mut now = start;
        let mut conn = Connection::new(conn_config(pieces), role, now);
        let mut established = matches!(role, Role::Outgoing { legacy: true });
        let mut seen_open = false;
        let mut closed = false;
        for h in happenings {
            match h {
                Happening::Message(msg, ms) => {
                    now = shift(now, ms);
                    conn.handle(msg, now);
                }
                Happening::Timeout(ms) => {
                    now = shift(now, ms);
                    conn.handle_timeout(now);
                    if let Some(next) = conn.poll_timeout() {
                        prop_assert!(next > now, "asked to wake at {:?}, now {:?}", next, now);
                    }
                }
                Happening::Request(i) => { let _ = conn.request(i, now); }
                Happening::Cancel(i) => { conn.cancel(i); }
                Happening::Have(i) => conn.have(i),
                Happening::Unchoke => conn.unchoke(),
                Happening::Choke => conn.choke(),
                Happening::Interested(b) => conn.set_interested(b),
                Happening::Bitfield(bits) => conn.send_bitfield(&Bitfield::from_bools(bits)),
                Happening::Upload => {
                    if let Some(i) = conn.poll_upload() {
                        prop_assert!(i < pieces);
                    }
                }
                Happening::Close => conn.close(Disconnect::ShuttingDown),
                Happening::Eof => conn.handle_eof(),
            }
            while let Some(ev) = conn.poll_event() {
                prop_assert!(!closed, "{:?} after Closed", ev);
                match ev {
                    ConnEvent::Established { legacy, .. } => {
                        prop_assert!(!seen_open, "opened twice");
                        seen_open = true;
                        established = true;
                        prop_assert_eq!(legacy, conn.is_legacy());
                    }
                    ConnEvent::Closed(reason) => {
                        closed = true;
                        prop_assert_eq!(Some(&reason), conn.close_reason());
                    }
                    other => prop_assert!(established, "{:?} before Established", other),
                }
            }
            while let Some(out) = conn.poll_transmit(now) {
                if conn.is_legacy() {
                    prop_assert!(
                        !matches!(out, Message::Have(_) | Message::Cancel(_) | Message::KeepAlive),
                        "legacy peer sent {:?}", out
                    );
                }
            }
            if closed {
                prop_assert_eq!(conn.poll_timeout(), None);
                prop_assert_eq!(conn.uploads_queued(), 0);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Fixed regressions for the claims in the issue
// ---------------------------------------------------------------------------

#[test]
fn sixteen_exbibyte_claim_is_refused_without_allocating() {
    for max in [SMALL_MAX, DEFAULT_MAX_FRAME] {
        let mut buf = BytesMut::with_capacity(16);
        buf.put_slice(&[0xff; 8]);
        let capacity = buf.capacity();
        let err = PeerCodec::new(max, None).decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Frame(FrameError::TooLarge { len: u64::MAX, max: m }) if m == max
            ),
            "{err:?}"
        );
        assert_eq!(buf.capacity(), capacity);
    }
}

// ---------------------------------------------------------------------------
// LAN discovery datagrams (BEP 14)
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn discovery_parse_takes_anything(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        let _ = wire::discovery::Announce::parse(&bytes);
    }

    #[test]
    fn discovery_parse_takes_near_misses(
        port in "[0-9]{0,7}",
        hashes in prop::collection::vec("[0-9a-fA-F]{0,42}", 0..40),
        cookie in text(80),
        junk in text(40),
    ) {
        let mut s = format!("BT-SEARCH * HTTP/1.1\r\nPort: {port}\r\n{junk}\r\n");
        for h in &hashes {
            s.push_str(&format!("Infohash: {h}\r\n"));
        }
        s.push_str(&format!("cookie: {cookie}\r\n\r\n"));
        if let Ok(a) = wire::discovery::Announce::parse(s.as_bytes()) {
            prop_assert!(a.port > 0);
            prop_assert!(!a.info_hashes.is_empty() && a.info_hashes.len() <= wire::discovery::MAX_HASHES);
        }
    }

    #[test]
    fn discovery_round_trips(
        port in 1u16..,
        hashes in prop::collection::vec(any::<[u8; 20]>(), 1..=wire::discovery::MAX_HASHES),
        cookie in prop::option::of("[A-Za-z0-9]{1,32}"),
    ) {
        let mut info_hashes: Vec<InfoHash> = hashes.into_iter().map(InfoHash).collect();
        info_hashes.dedup();
        let a = wire::discovery::Announce { port, info_hashes, cookie };
        let bytes = a.encode("239.192.152.143:6771");
        if bytes.len() <= wire::discovery::MAX_DATAGRAM {
            prop_assert_eq!(wire::discovery::Announce::parse(&bytes)?, a);
        }
    }
}

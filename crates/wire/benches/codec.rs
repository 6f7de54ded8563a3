//! Throughput of the peer wire with 256 KiB pieces, against a plain copy of
//! the same bytes in the same group, so the ratio can be read off:
//!
//! - `piece_256k/plain_copy`: `extend_from_slice` of the framed bytes into a
//!   `BytesMut` of the same size (the baseline);
//! - `piece_256k/encode`: `PeerCodec` encoding the Piece messages into a
//!   `BytesMut` (header plus one copy of the data);
//! - `piece_256k/decode`: `PeerCodec` decoding them from a buffer holding all
//!   the frames (zero-copy: each Piece's data is a slice of the buffer).
//!
//! Every function handles the same [`FRAMES`] framed pieces per iteration.
//! `message_decode` times `Message::decode` of a Have and of a Bitfield of
//! 2,000 pieces.
//!
//! Run: `cargo bench -p wire --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tokio_util::codec::{Decoder, Encoder};
use wire::{Bitfield, Message, PeerCodec};

const PIECE_LEN: usize = 256 * 1024;
/// Pieces per iteration: 4 MiB of data, bigger than most L2 caches.
const FRAMES: usize = 16;
const BITFIELD_PIECES: u32 = 2_000;

fn pieces() -> Vec<Message> {
    (0..FRAMES as u32)
        .map(|index| Message::Piece {
            index,
            data: Bytes::from(
                (0..PIECE_LEN)
                    .map(|i| (i as u32).wrapping_mul(index + 7) as u8)
                    .collect::<Vec<u8>>(),
            ),
        })
        .collect()
}

fn piece_throughput(c: &mut Criterion) {
    let msgs = pieces();
    let mut codec = PeerCodec::for_torrent(FRAMES as u32);
    let mut wire_bytes = BytesMut::new();
    for m in &msgs {
        codec.encode(m, &mut wire_bytes).unwrap();
    }
    let wire_bytes = wire_bytes.freeze();
    let total = wire_bytes.len();

    let mut group = c.benchmark_group("piece_256k");
    group.throughput(Throughput::Bytes(total as u64));

    let mut dst = BytesMut::with_capacity(total);
    group.bench_function("plain_copy", |b| {
        b.iter(|| {
            dst.clear();
            dst.extend_from_slice(black_box(&wire_bytes));
            black_box(dst.len())
        })
    });

    group.bench_function("encode", |b| {
        b.iter(|| {
            dst.clear();
            for m in black_box(&msgs) {
                codec.encode(m, &mut dst).unwrap();
            }
            black_box(dst.len())
        })
    });
    assert_eq!(
        &dst[..],
        &wire_bytes[..],
        "encode benchmark wrote other bytes"
    );

    group.bench_function("decode", |b| {
        b.iter_batched(
            || BytesMut::from(&wire_bytes[..]),
            |mut src| {
                let mut n = 0;
                while let Some(msg) = codec.decode(&mut src).unwrap() {
                    black_box(&msg);
                    n += 1;
                }
                assert_eq!(n, FRAMES);
                src
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn message_decode(c: &mut Criterion) {
    let have = Message::Have(1_234).to_bytes();
    let bits: Vec<bool> = (0..BITFIELD_PIECES).map(|i| i % 3 != 0).collect();
    let bitfield = Message::Bitfield(Bitfield::from_bools(bits)).to_bytes();

    let mut group = c.benchmark_group("message_decode");
    group.throughput(Throughput::Bytes(have.len() as u64));
    group.bench_function("have", |b| {
        b.iter(|| Message::decode(black_box(have.clone()), Some(BITFIELD_PIECES)).unwrap())
    });
    group.throughput(Throughput::Bytes(bitfield.len() as u64));
    group.bench_function("bitfield_2000", |b| {
        b.iter(|| Message::decode(black_box(bitfield.clone()), Some(BITFIELD_PIECES)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, piece_throughput, message_decode);
criterion_main!(benches);

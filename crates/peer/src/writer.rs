//! A peer connection's writer task: control messages in order, and piece
//! uploads straight from the page cache.
//!
//! It runs apart from the connection's driver so that two peers sending each
//! other large pieces never deadlock on full TCP buffers. A Piece's 17 header
//! bytes go out with `MSG_MORE`, its body with `sendfile`, so uploads cost no
//! copies in user space. The driver hands it a few pieces at a time
//! ([`uploads_ahead`]; each holds an upload slot until sent); the rest wait in the
//! [`wire::Connection`]'s upload queue, where a Cancel can still reach them.

use std::sync::Arc;
use std::time::Duration;

use futures::SinkExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedWrite;
use wire::{Message, PeerCodec, WireError};

use crate::swarm::{Counters, Swarm};
use crate::zerocopy;

/// A peer that does not take our data for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Control messages queued for the writer.
const OUTBOX: usize = 64;
/// Bytes of pieces handed to the writer before it has sent them: enough
/// that a busy machine's scheduling delays never leave the writer waiting
/// for the driver (they cost no memory: pieces go from the page cache with
/// `sendfile`), few enough that a Cancel usually finds its piece still in the
/// connection's queue.
const UPLOADS_AHEAD_BYTES: u64 = 8 * 1024 * 1024;
/// Bounds on the pieces handed to the writer ahead.
const UPLOADS_AHEAD_MIN: usize = 2;
const UPLOADS_AHEAD_MAX: usize = 64;

/// How many pieces of `piece_length` the writer may hold before sending them.
pub fn uploads_ahead(piece_length: u64) -> usize {
    ((UPLOADS_AHEAD_BYTES / piece_length.max(1)) as usize)
        .clamp(UPLOADS_AHEAD_MIN, UPLOADS_AHEAD_MAX)
}

pub type Writer = FramedWrite<OwnedWriteHalf, PeerCodec>;

/// What the writer sends.
pub enum Outgoing {
    Msg(Message),
    /// Read piece `index` from disk and send it; `slot` is released once sent.
    Piece {
        index: u32,
        slot: OwnedSemaphorePermit,
    },
}

/// The driver's side of a writer task.
pub struct WriterHandle {
    pub out: mpsc::Sender<Outgoing>,
    /// Upload slots: take one before handing the writer a piece.
    pub slots: Arc<Semaphore>,
    pub task: JoinHandle<()>,
}

/// Starts the writer task for a registered connection.
pub fn spawn(swarm: Arc<Swarm>, writer: Writer, counters: Arc<Counters>) -> WriterHandle {
    let slots = Arc::new(Semaphore::new(uploads_ahead(
        swarm.torrent.info.piece_length,
    )));
    let (out, rx) = mpsc::channel(OUTBOX);
    let task = tokio::spawn(write_loop(swarm, writer, rx, counters));
    WriterHandle { out, slots, task }
}

async fn write_loop(
    swarm: Arc<Swarm>,
    mut writer: Writer,
    mut rx: mpsc::Receiver<Outgoing>,
    counters: Arc<Counters>,
) {
    let result: Result<(), String> = async {
        while let Some(item) = rx.recv().await {
            match item {
                Outgoing::Msg(msg) => {
                    within(SinkExt::<Message>::feed(&mut writer, msg)).await?;
                }
                Outgoing::Piece { index, slot } => {
                    // Whatever the codec buffered goes first, to keep the order.
                    within(SinkExt::<Message>::flush(&mut writer)).await?;
                    let info = &swarm.torrent.info;
                    let len = info.piece_size(index);
                    let header = piece_header(index, len);
                    let stream = writer.get_ref().as_ref();
                    let storage = &swarm.storage;
                    let send = async {
                        zerocopy::send_more(stream, &header).await?;
                        // A piece of a directory torrent may span files: one
                        // sendfile per file, each opened only when its turn comes.
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
                    drop(slot);
                    swarm.piece_uploaded(&counters, len);
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
    h[..8].copy_from_slice(&lanio::frame::header(body));
    h[8..12].copy_from_slice(&((body - 4) as u32).to_be_bytes());
    h[12] = wire::message::id::PIECE;
    h[13..].copy_from_slice(&index.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_ahead_follow_the_piece_size() {
        assert_eq!(uploads_ahead(1 << 20), 8);
        assert_eq!(uploads_ahead(16 << 20), UPLOADS_AHEAD_MIN);
        assert_eq!(uploads_ahead(64 << 10), UPLOADS_AHEAD_MAX);
        assert_eq!(uploads_ahead(0), UPLOADS_AHEAD_MAX);
    }

    #[test]
    fn piece_header_matches_the_codec() {
        let data = bytes::Bytes::from_static(b"abc");
        let msg = Message::Piece {
            index: 258,
            data: data.clone(),
        };
        let mut buf = bytes::BytesMut::new();
        tokio_util::codec::Encoder::encode(&mut PeerCodec::default(), &msg, &mut buf).unwrap();
        let header = piece_header(258, data.len() as u64);
        assert_eq!(&buf[..header.len()], &header[..]);
        assert_eq!(&buf[header.len()..], &data[..]);
    }
}

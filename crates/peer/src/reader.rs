//! A connection's reading side: messages, and pieces streamed in chunks.
//!
//! [`Reader::next`] yields whole messages (decoded by
//! [`wire::PeerCodec::decode_head`]), and for a Piece its header, then its
//! data in [`Chunk`]s taken from the swarm's budget ([`crate::chunks`]):
//! the bytes go from the socket straight into a chunk, which the caller
//! hands on to be hashed and written. A piece is never held whole, and when
//! the budget is used up the reader waits for a chunk to come back instead
//! of reading on.
//!
//! Headers and other messages are read in small reads (so that little of a
//! piece's data lands in the message buffer, from which it is copied into
//! its first chunk), piece data in reads of up to a chunk. Non-piece frames
//! are bounded by the codec's frame limit.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use wire::{FrameError, Head, Message, PeerCodec, WireError};

use crate::chunks::{Chunk, ChunkPool};

/// Bytes asked of the socket at a time while a header or a message is
/// expected.
const HEADER_READ: usize = 4096;

/// What the peer sent next.
#[derive(Debug)]
pub enum Incoming {
    /// A whole message, never a Piece.
    Message(Message),
    /// The header of piece `index`, whose `len` bytes follow as [`Incoming::Data`].
    PieceHead { index: u32, len: usize },
    /// The next chunk of the piece's data; `last` for the chunk that ends it.
    Data { chunk: Chunk, last: bool },
}

/// The reading half of a peer connection.
pub struct Reader {
    rd: OwnedReadHalf,
    codec: PeerCodec,
    /// Bytes read but not yet decoded.
    buf: BytesMut,
    pool: Arc<ChunkPool>,
    /// Data bytes of the current piece still to come.
    body_left: usize,
    /// The chunk being filled, kept here so that a cancelled `next` loses nothing.
    chunk: Option<Chunk>,
}

impl Reader {
    pub fn new(rd: OwnedReadHalf, codec: PeerCodec, pool: Arc<ChunkPool>) -> Reader {
        Reader {
            rd,
            codec,
            buf: BytesMut::with_capacity(HEADER_READ),
            pool,
            body_left: 0,
            chunk: None,
        }
    }

    /// The next item from the peer; `None` when it closed the connection
    /// between frames. Cancel-safe: a `next` dropped before it resolves
    /// loses no bytes.
    pub async fn next(&mut self) -> Option<Result<Incoming, WireError>> {
        loop {
            if self.body_left == 0 {
                match self.codec.decode_head(&mut self.buf) {
                    Err(e) => return Some(Err(e)),
                    Ok(Some(Head::Message(m))) => return Some(Ok(Incoming::Message(m))),
                    Ok(Some(Head::Piece { index, len })) => {
                        self.body_left = len;
                        return Some(Ok(Incoming::PieceHead { index, len }));
                    }
                    Ok(None) => {}
                }
                self.buf.reserve(HEADER_READ);
                let read = (&mut self.rd)
                    .take(HEADER_READ as u64)
                    .read_buf(&mut self.buf)
                    .await;
                match read {
                    Ok(0) if self.buf.is_empty() => return None,
                    Ok(0) => return Some(Err(self.truncated())),
                    Ok(_) => continue,
                    Err(e) => return Some(Err(e.into())),
                }
            }
            let chunk = match &mut self.chunk {
                Some(chunk) => chunk,
                empty => empty.insert(self.pool.take().await),
            };
            let n = if self.buf.is_empty() {
                match self.rd.read(chunk.spare(self.body_left)).await {
                    Ok(0) => return Some(Err(self.truncated())),
                    Ok(n) => {
                        chunk.advance(n);
                        n
                    }
                    Err(e) => return Some(Err(e.into())),
                }
            } else {
                let n = chunk.fill_from(&self.buf, self.body_left);
                self.buf.advance(n);
                n
            };
            self.body_left -= n;
            if chunk.is_full() || self.body_left == 0 {
                let chunk = self.chunk.take().expect("filled above");
                return Some(Ok(Incoming::Data {
                    chunk,
                    last: self.body_left == 0,
                }));
            }
        }
    }

    fn truncated(&self) -> WireError {
        FrameError::Truncated {
            buffered: self.buf.len() + self.chunk.as_ref().map_or(0, Chunk::len),
        }
        .into()
    }
}

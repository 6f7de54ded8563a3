//! The buffers received piece data travels in, under one byte budget for
//! all of a swarm's connections.
//!
//! A connection's reader takes a [`Chunk`] (up to [`CHUNK`] bytes), fills it
//! from the socket and hands it to the receive pool ([`crate::receive`]),
//! which hashes and writes it and drops it, returning the buffer here. When
//! the budget is used up, [`ChunkPool::take`] waits until a chunk comes back
//! (backpressure: the reader stops reading and TCP slows the sender); it
//! never allocates beyond the budget. Freed buffers are kept for reuse, so
//! the pool's memory is at most the budget, whatever the piece length and
//! the number of connections.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Size of one chunk: the most written with one `pwrite` (larger writes cost
/// 2–3× more into memory the host has reclaimed) and hashed in one go.
pub const CHUNK: usize = 256 * 1024;
/// Bytes of received data buffered at most, over all connections.
pub const BUDGET: usize = 16 * 1024 * 1024;

/// A budget of chunk buffers, shared by a swarm's connections.
#[derive(Debug)]
pub struct ChunkPool {
    permits: Arc<Semaphore>,
    free: Mutex<Vec<Box<[u8]>>>,
    chunk: usize,
}

impl ChunkPool {
    /// A pool of `budget` bytes in chunks of `chunk` bytes (at least one chunk).
    pub fn new(budget: usize, chunk: usize) -> Arc<ChunkPool> {
        let chunk = chunk.max(1);
        Arc::new(ChunkPool {
            permits: Arc::new(Semaphore::new((budget / chunk).max(1))),
            free: Mutex::new(Vec::new()),
            chunk,
        })
    }

    /// Bytes a chunk holds.
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// An empty chunk, once the budget has room for one. Cancel-safe.
    pub async fn take(self: &Arc<Self>) -> Chunk {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        let data = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0u8; self.chunk].into_boxed_slice());
        Chunk {
            data: Some(data),
            len: 0,
            _permit: permit,
            pool: self.clone(),
        }
    }

    /// Chunks that can be taken now without waiting.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// A buffer of received bytes, holding its share of the budget until dropped.
#[derive(Debug)]
pub struct Chunk {
    data: Option<Box<[u8]>>,
    len: usize,
    _permit: OwnedSemaphorePermit,
    pool: Arc<ChunkPool>,
}

impl Chunk {
    /// The bytes received so far.
    pub fn filled(&self) -> &[u8] {
        &self.data.as_ref().expect("present until drop")[..self.len]
    }

    /// Room for more: at most `max` bytes, after those received.
    pub fn spare(&mut self, max: usize) -> &mut [u8] {
        let data = self.data.as_mut().expect("present until drop");
        let end = data.len().min(self.len + max);
        &mut data[self.len..end]
    }

    /// `n` more bytes of [`Chunk::spare`] were filled.
    pub fn advance(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.len <= self.pool.chunk);
    }

    /// Copies as much of `src` as fits; returns how much.
    pub fn fill_from(&mut self, src: &[u8], max: usize) -> usize {
        let spare = self.spare(max);
        let n = spare.len().min(src.len());
        spare[..n].copy_from_slice(&src[..n]);
        self.advance(n);
        n
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.pool.chunk
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(data);
        }
        // The permit goes back after the buffer, so a waiter finds it free.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_makes_takers_wait_and_buffers_are_reused() {
        let pool = ChunkPool::new(3 * 8, 8);
        let mut a = pool.take().await;
        assert_eq!(a.fill_from(b"0123456789", 100), 8);
        assert!(a.is_full());
        assert_eq!(a.filled(), b"01234567");
        let b = pool.take().await;
        let _c = pool.take().await;
        assert_eq!(pool.available(), 0);
        // A fourth waits until one comes back.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), pool.take()).await;
        assert!(waiting.is_err(), "took beyond the budget");
        let ptr = a.filled().as_ptr();
        drop(a);
        let mut d = pool.take().await;
        assert!(d.is_empty());
        assert_eq!(d.spare(3).len(), 3);
        assert_eq!(d.spare(100).as_ptr(), ptr, "a freed buffer is reused");
        drop(b);
        assert_eq!(pool.available(), 1);
    }
}

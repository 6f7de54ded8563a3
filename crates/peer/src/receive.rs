//! The receive pool: received pieces hashed and written chunk by chunk, as
//! they arrive, on threads sized to the cores.
//!
//! A connection's reader ([`crate::reader`]) streams a piece's data in
//! [`Chunk`]s into a [`PieceSink`]. Each piece is a *strand*: its chunks are
//! processed strictly in order (the running SHA-1 needs them so) by one
//! thread at a time, each chunk fed to the hash and written to its place in
//! the file with one `pwrite` of at most [`crate::chunks::CHUNK`] bytes.
//! Different pieces are different strands, so the pool's threads work on
//! several at once, also consecutive pieces of one connection. The thread
//! that reads the socket only copies bytes into chunks.
//!
//! Only one strand writes a piece's region at a time: a piece is *claimed*
//! when its data starts to arrive, and a second copy that arrives meanwhile
//! (an end-game duplicate), or a copy of a piece we hold, is read and
//! dropped, never written. The claim ends after the piece is settled, so a
//! verified piece is marked held before anyone may claim it again (and then
//! finds it held).
//!
//! After the last chunk the strand settles the piece's [`Arrival`] with the
//! swarm: verified (the hash matched), failed (a strike against the peer),
//! or unusable (cut off by a closing connection, or not storable: the
//! connection is closed). A failed piece is simply not marked held; the
//! bytes it left in the file are overwritten by the next copy.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sha1::{Digest, Sha1};
use tokio::sync::Notify;
use wire::Disconnect;

use crate::chunks::{Chunk, ChunkPool};
use crate::swarm::{Arrival, ConnInfo, Swarm};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receive pool of one swarm: the chunk budget and the worker threads.
pub struct Receiver {
    inner: Arc<Inner>,
    chunks: Arc<ChunkPool>,
}

struct Inner {
    run: Mutex<RunQueue>,
    ready: Condvar,
    threads: usize,
    /// Pieces whose data is being received and written.
    claims: Mutex<HashSet<u32>>,
}

#[derive(Default)]
struct RunQueue {
    strands: VecDeque<Arc<Strand>>,
    spawned: usize,
    /// Workers waiting for a strand: only then is one woken (a wake-up
    /// is a system call even when nobody waits).
    idle: usize,
    closed: bool,
}

impl Receiver {
    /// A pool of `threads` workers (started on first use) over the chunk
    /// budget `chunks`.
    pub fn new(chunks: Arc<ChunkPool>, threads: usize) -> Receiver {
        Receiver {
            inner: Arc::new(Inner {
                run: Mutex::default(),
                ready: Condvar::new(),
                threads: threads.max(1),
                claims: Mutex::default(),
            }),
            chunks,
        }
    }

    /// One worker per core.
    pub fn threads_for_cores() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// The chunk budget readers take their buffers from.
    pub fn chunks(&self) -> &Arc<ChunkPool> {
        &self.chunks
    }

    /// Starts receiving piece `arrival.index()` from `source` into its place
    /// in the file. Gives the arrival back when the data must be dropped
    /// instead: the piece is held already, or another copy of it is being
    /// received.
    pub fn start(&self, arrival: Arrival, source: &Arc<Source>) -> Result<PieceSink, Arrival> {
        let index = arrival.index();
        if !lock(&self.inner.claims).insert(index) {
            return Err(arrival);
        }
        // Checked after claiming: a piece verified meanwhile is held by now.
        if source.swarm.has_piece(index) {
            lock(&self.inner.claims).remove(&index);
            return Err(arrival);
        }
        source.pending.count.fetch_add(1, Ordering::AcqRel);
        let strand = Arc::new(Strand {
            feed: Mutex::default(),
            work: Mutex::new(Work {
                index,
                arrival: Some(arrival),
                hasher: Sha1::new(),
                at: 0,
                error: None,
                source: source.clone(),
            }),
        });
        Ok(PieceSink {
            strand,
            inner: self.inner.clone(),
            ended: false,
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        lock(&self.inner.run).closed = true;
        self.inner.ready.notify_all();
    }
}

impl Inner {
    fn schedule(self: &Arc<Self>, strand: Arc<Strand>) {
        let mut run = lock(&self.run);
        run.strands.push_back(strand);
        while run.spawned < self.threads {
            run.spawned += 1;
            let inner = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("receive-{}", run.spawned))
                .spawn(move || inner.work());
            if let Err(e) = spawned {
                tracing::error!("cannot start a receive thread: {e}");
                run.spawned -= 1;
                break;
            }
        }
        let wake = run.idle > 0;
        drop(run);
        if wake {
            self.ready.notify_one();
        }
    }

    /// A worker thread: runs strands until the pool is dropped.
    fn work(self: Arc<Self>) {
        loop {
            let strand = {
                let mut run = lock(&self.run);
                loop {
                    if let Some(s) = run.strands.pop_front() {
                        break s;
                    }
                    if run.closed {
                        return;
                    }
                    run.idle += 1;
                    run = self.ready.wait(run).unwrap_or_else(|e| e.into_inner());
                    run.idle -= 1;
                }
            };
            strand.run(&self);
        }
    }
}

/// What a connection's pieces need to be settled, and how many are still
/// being received or checked.
pub struct Source {
    swarm: Arc<Swarm>,
    conn: ConnInfo,
    pending: Pending,
}

#[derive(Debug, Default)]
struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

impl Source {
    pub fn new(swarm: Arc<Swarm>, conn: ConnInfo) -> Arc<Source> {
        Arc::new(Source {
            swarm,
            conn,
            pending: Pending::default(),
        })
    }

    /// Resolves once every piece started from this source is settled.
    pub async fn settled(&self) {
        loop {
            let idle = self.pending.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.pending.count.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    fn one_settled(&self) {
        if self.pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pending.idle.notify_waiters();
        }
    }
}

/// The receiving end of one piece's strand, held by the connection while
/// the piece's data arrives. Dropped before [`PieceSink::finish`], the
/// piece is abandoned (wanted again).
pub struct PieceSink {
    strand: Arc<Strand>,
    inner: Arc<Inner>,
    ended: bool,
}

impl PieceSink {
    /// The next chunk of the piece's data, in order.
    pub fn push(&mut self, chunk: Chunk) {
        self.feed(|f| f.chunks.push_back(chunk));
    }

    /// All the data is in, its last chunk (if any) with it: check it and
    /// settle the piece, in one hand-off to the pool.
    pub fn finish(mut self, last: Option<Chunk>) {
        self.ended = true;
        self.feed(|f| {
            f.chunks.extend(last);
            f.end = Some(End::Complete);
        });
    }

    fn feed(&self, change: impl FnOnce(&mut Feed)) {
        let schedule = {
            let mut f = lock(&self.strand.feed);
            change(&mut f);
            !std::mem::replace(&mut f.scheduled, true)
        };
        if schedule {
            self.inner.schedule(self.strand.clone());
        }
    }
}

impl Drop for PieceSink {
    fn drop(&mut self) {
        if !self.ended {
            self.feed(|f| {
                f.chunks.clear();
                f.end = Some(End::Abandoned);
            });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Complete,
    Abandoned,
}

/// One piece being received.
struct Strand {
    /// What the connection handed over; locked briefly by both sides.
    feed: Mutex<Feed>,
    /// The piece's running state; locked only by the thread running the strand.
    work: Mutex<Work>,
}

#[derive(Debug, Default)]
struct Feed {
    chunks: VecDeque<Chunk>,
    end: Option<End>,
    /// In the run queue or being run: whoever adds work to an unscheduled
    /// strand schedules it.
    scheduled: bool,
}

struct Work {
    index: u32,
    arrival: Option<Arrival>,
    hasher: Sha1,
    /// Bytes of the piece received so far.
    at: u64,
    error: Option<std::io::Error>,
    source: Arc<Source>,
}

enum Step {
    Chunk(Chunk),
    End(End),
}

impl Strand {
    /// Processes what the strand has, in order, then unschedules it.
    fn run(&self, inner: &Inner) {
        let mut work = lock(&self.work);
        loop {
            let step = {
                let mut f = lock(&self.feed);
                if let Some(chunk) = f.chunks.pop_front() {
                    Step::Chunk(chunk)
                } else if let Some(end) = f.end.take() {
                    Step::End(end)
                } else {
                    f.scheduled = false;
                    return;
                }
            };
            match step {
                Step::Chunk(chunk) => work.absorb(&chunk),
                Step::End(end) => work.settle(end, inner),
            }
        }
    }
}

impl Work {
    /// Hashes a chunk and writes it to its place.
    fn absorb(&mut self, chunk: &Chunk) {
        if self.error.is_some() {
            return;
        }
        let data = chunk.filled();
        self.hasher.update(data);
        let storage = &self.source.swarm.storage;
        if let Err(e) = storage.write_piece_part(self.index, self.at, data) {
            self.error = Some(e);
        }
        self.at += data.len() as u64;
    }

    fn settle(&mut self, end: End, inner: &Inner) {
        let Some(arrival) = self.arrival.take() else {
            return;
        };
        let source = &self.source;
        let swarm = &source.swarm;
        let info = &swarm.torrent.info;
        match (end, self.error.take()) {
            (End::Abandoned, _) => swarm.piece_unusable(arrival),
            (End::Complete, Some(e)) => {
                swarm.piece_unusable(arrival);
                let reason = Disconnect::Storage(format!("cannot write piece {}: {e}", self.index));
                tracing::error!("{reason}");
                swarm.close_connection(source.conn.id, reason);
            }
            (End::Complete, None) => {
                let digest: [u8; 20] = std::mem::take(&mut self.hasher).finalize().into();
                let good = self.at == info.piece_size(self.index)
                    && info.piece_hash.get(self.index as usize) == Some(&digest);
                if good {
                    swarm.piece_verified(arrival, &source.conn.counters);
                } else {
                    swarm.piece_failed(arrival, &source.conn);
                }
            }
        }
        // Only now may another copy claim it (and find it held, if verified).
        lock(&inner.claims).remove(&self.index);
        source.one_settled();
    }
}

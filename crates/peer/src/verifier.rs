//! A peer connection's verifier task: hashes and stores the pieces the
//! connection received, off the reader's path and up to `VERIFY_PARALLEL` (2)
//! at a time, so hashing (the costliest step) uses every core.
//!
//! Each piece travels as an [`Arrival`], which the swarm settles: verified
//! (stored, announced), failed (wanted again; a strike against the peer) or
//! unusable (wanted again; the connection closes).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wire::Disconnect;

use crate::hashing;
use crate::swarm::{Arrival, ConnInfo, Swarm};

/// Received pieces waiting for verification per connection.
const VERIFY_QUEUE: usize = 4;
/// Pieces of one connection hashed at the same time.
const VERIFY_PARALLEL: usize = 2;

/// A received piece for the verifier.
pub type Received = (Arrival, Bytes);

/// Starts the verifier task of connection `conn`. It ends once the sender
/// is dropped and every piece sent is settled.
pub fn spawn(swarm: Arc<Swarm>, conn: ConnInfo) -> (mpsc::Sender<Received>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(VERIFY_QUEUE);
    (tx, tokio::spawn(verify_loop(swarm, rx, conn)))
}

async fn verify_loop(swarm: Arc<Swarm>, mut rx: mpsc::Receiver<Received>, conn: ConnInfo) {
    let mut running = tokio::task::JoinSet::new();
    let mut open = true;
    while open || !running.is_empty() {
        tokio::select! {
            next = rx.recv(), if open && running.len() < VERIFY_PARALLEL => match next {
                Some((arrival, data)) => {
                    let sw = swarm.clone();
                    running.spawn_blocking(move || {
                        let checked = check_and_store(&sw, arrival.index(), &data);
                        (arrival, checked)
                    });
                }
                None => open = false,
            },
            Some(done) = running.join_next() => {
                let stop = match done {
                    Ok((arrival, Ok(true))) => {
                        swarm.piece_verified(arrival, &conn.counters);
                        false
                    }
                    Ok((arrival, Ok(false))) => swarm.piece_failed(arrival, &conn),
                    Ok((arrival, Err(reason))) => {
                        swarm.piece_unusable(arrival);
                        tracing::error!("{reason}");
                        swarm.close_connection(conn.id, reason);
                        true
                    }
                    Err(e) => {
                        let reason = Disconnect::Storage(format!("verifier task failed: {e}"));
                        tracing::error!("{reason}");
                        swarm.close_connection(conn.id, reason);
                        true
                    }
                };
                if stop && open {
                    open = false;
                    rx.close();
                    // Pieces still queued will not be checked: wanted again.
                    while let Ok((arrival, _)) = rx.try_recv() {
                        swarm.piece_unusable(arrival);
                    }
                }
            }
        }
    }
}

/// Checks piece `index` against its hash and writes it if good. Returns
/// whether it was good (a piece we already hold counts as good).
fn check_and_store(swarm: &Swarm, index: u32, data: &[u8]) -> Result<bool, Disconnect> {
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
            .map_err(|e| Disconnect::Storage(format!("cannot write piece {index}: {e}")))?;
    }
    Ok(good)
}

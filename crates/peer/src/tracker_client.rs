//! Talking to the tracker: one framed JSON request, one framed reply.
//!
//! Each announce uses a fresh connection, so trackers that close after every
//! reply (as the seed's do) work, and a broken tracker costs one timeout.
//! The request goes out as soon as the connection is open: a connection
//! that sends nothing would block the seed's tracker. Which tracker to ask,
//! and when, is [`crate::announcer`]'s business.

use std::time::Duration;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use wire::tracker::{AnnounceRequest, AnnounceResponse};
use wire::{Bitfield, FrameCodec, Info};

/// Largest reply we accept from a tracker (200 peers fit in a few KiB).
const MAX_REPLY: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one announce to `tracker` (HOST:PORT) and returns its reply.
/// An error reply (`error_code != 0`) is returned as an error.
pub async fn announce(tracker: &str, req: &AnnounceRequest) -> anyhow::Result<AnnounceResponse> {
    let exchange = async {
        let stream = TcpStream::connect(tracker)
            .await
            .with_context(|| format!("connecting to tracker {tracker}"))?;
        stream.set_nodelay(true).ok();
        let mut framed = Framed::new(stream, FrameCodec::new(MAX_REPLY));
        framed.send(bytes::Bytes::from(req.to_json())).await?;
        let reply = match framed.next().await {
            Some(frame) => frame.context("reading tracker reply")?,
            None => bail!("tracker {tracker} closed the connection without replying"),
        };
        let resp = AnnounceResponse::parse(&reply)
            .with_context(|| format!("malformed reply from tracker {tracker}"))?;
        if resp.is_error() {
            bail!(
                "tracker {tracker} refused the announce: {}",
                lanio::escape::escape_str(&resp.message)
            );
        }
        Ok(resp)
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("tracker {tracker} did not answer within {TIMEOUT:?}"))?
}

/// The `left` an announce reports: bytes of the pieces not yet held.
pub fn bytes_left(info: &Info, have: &Bitfield) -> u64 {
    have.iter_missing().map(|i| info.piece_size(i)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_counts_the_missing_pieces_the_last_one_short() {
        let info = Info {
            piece_length: 10,
            piece_hash: vec![[0; 20]; 3],
            file_name: "f".into(),
            file_length: 25,
            files: None,
        };
        let mut have = Bitfield::new(3);
        assert_eq!(bytes_left(&info, &have), 25);
        have.set(2, true);
        assert_eq!(bytes_left(&info, &have), 20);
        have.set(0, true);
        have.set(1, true);
        assert_eq!(bytes_left(&info, &have), 0);
    }
}

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
use wire::FrameCodec;

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
            bail!("tracker {tracker} refused the announce: {}", resp.message);
        }
        Ok(resp)
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("tracker {tracker} did not answer within {TIMEOUT:?}"))?
}

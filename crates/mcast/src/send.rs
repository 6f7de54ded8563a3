//! `mcast send`: multicast a raw message, then count the unicast `ack` replies.

use crate::cli::SendArgs;
use crate::escape::escape_bytes;
use crate::events::{Event, SendSummary, Summary};
use crate::Out;
use anyhow::Context as _;
use lanio::group::{check_payload_len, destination, max_payload};
use lanio::multicast::{bind_sender, into_tokio, recv_with_ttl, SendOptions};
use lanio::Signals;
use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::SocketAddr;
use tokio::time::{sleep_until, Instant};

/// The payload receivers answer with.
pub const ACK: &[u8] = b"ack";

/// At most this many distinct responders are listed (acks are still counted).
const MAX_LISTED_RESPONDERS: usize = 10_000;

/// Counts acks and other replies arriving at the sender.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AckTally {
    /// Number of `ack` datagrams.
    pub acks: u64,
    /// Distinct addresses that sent an `ack`.
    pub responders: BTreeSet<SocketAddr>,
    /// Datagrams that were not an `ack`.
    pub ignored: u64,
}

impl AckTally {
    /// Records one reply; returns true if it was an `ack`.
    pub fn record(&mut self, from: SocketAddr, payload: &[u8]) -> bool {
        if payload != ACK {
            self.ignored += 1;
            return false;
        }
        self.acks += 1;
        if self.responders.len() < MAX_LISTED_RESPONDERS {
            self.responders.insert(from);
        }
        true
    }
}

/// Reads the message: the argument itself, or all of stdin for `-`.
///
/// Never reads more than one byte past `limit`, so an endless stdin cannot
/// exhaust memory; the caller then rejects the oversize message.
fn read_message(arg: &str, limit: usize) -> anyhow::Result<Vec<u8>> {
    if arg != "-" {
        return Ok(arg.as_bytes().to_vec());
    }
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .context("reading the message from stdin")?;
    Ok(buf)
}

/// Runs `mcast send`: its events go to `out`; a signal stops it cleanly.
pub async fn run(args: SendArgs, out: &Out, signals: &mut Signals) -> anyhow::Result<()> {
    let group = args.group;
    let message = read_message(&args.message, max_payload(group))?;
    check_payload_len(group, message.len())?;
    let iface = args.common.resolve_iface()?;
    let opts = SendOptions {
        ttl: args.ttl,
        multicast_loop: !args.no_loop,
    };
    let sock = bind_sender(group, iface.as_ref(), opts)?;
    let sock = into_tokio(sock)?;
    let dest = destination(group, args.port, iface.as_ref().map_or(0, |i| i.index));

    let mut tally = AckTally::default();
    let mut sent = 0u64;
    let mut buf = vec![0u8; 2048];
    'sending: for seq in 0..args.count {
        sock.send_to(&message, dest)
            .await
            .with_context(|| format!("sending to {dest}"))?;
        sent += 1;
        out.emit(&Event::Sent {
            seq,
            to: dest,
            bytes: message.len(),
            ttl: args.ttl,
        });
        let last = seq + 1 == args.count;
        // Between repeats, collect until the next send is due; after the last
        // one, until `wait` passes without a new ack.
        let mut deadline = Instant::now() + if last { args.wait } else { args.interval };
        loop {
            tokio::select! {
                r = recv_with_ttl(&sock, &mut buf) => {
                    let r = r.context("receiving acks")?;
                    let payload = &buf[..r.len];
                    if tally.record(r.from, payload) {
                        out.emit(&Event::Ack { from: r.from });
                        if last {
                            deadline = Instant::now() + args.wait;
                        }
                    } else {
                        tracing::debug!(from = %r.from, text = %escape_bytes(payload), "ignoring a reply that is not an ack");
                    }
                }
                _ = sleep_until(deadline) => break,
                _ = signals.recv() => break 'sending,
            }
        }
    }
    out.emit(&Event::Summary(Summary::Send(SendSummary {
        sent,
        acks: tally.acks,
        responders: tally.responders.into_iter().collect(),
        ignored: tally.ignored,
    })));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_acks_per_responder_and_ignores_the_rest() {
        let a: SocketAddr = "10.0.0.2:10000".parse().unwrap();
        let b: SocketAddr = "10.0.0.3:10000".parse().unwrap();
        let mut t = AckTally::default();
        assert!(t.record(a, b"ack"));
        assert!(t.record(a, b"ack"));
        assert!(t.record(b, b"ack"));
        assert!(!t.record(b, b"ack\n"));
        assert!(!t.record(b, b""));
        assert_eq!(t.acks, 3);
        assert_eq!(t.responders.len(), 2);
        assert_eq!(t.ignored, 2);
    }

    #[test]
    fn message_argument_is_taken_verbatim() {
        assert_eq!(read_message("hi\tthere", 10).unwrap(), b"hi\tthere");
    }
}

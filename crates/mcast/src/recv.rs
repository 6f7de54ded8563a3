//! `mcast recv`: join a group, print every datagram and answer it with `ack`.

use crate::cli::RecvArgs;
use crate::escape::escape_bytes;
use crate::events::{Event, Joined, Message, RecvJoined, RecvMessage, RecvSummary, Summary};
use crate::idle::IdleTimeout;
use crate::send::ACK;
use crate::Out;
use anyhow::Context as _;
use lanio::multicast::{bind_receiver, into_tokio, recv_with_ttl};
use lanio::Signals;
use tokio::time::sleep_until;

/// Runs `mcast recv`: its events go to `out`; a signal stops it cleanly.
pub async fn run(args: RecvArgs, out: &Out, signals: &mut Signals) -> anyhow::Result<()> {
    let iface = args.common.resolve_iface()?;
    let sock = bind_receiver(args.group, args.port, iface.as_ref(), args.source)?;
    let sock = into_tokio(sock)?;
    out.emit(&Event::Joined(Joined::Recv(RecvJoined {
        group: args.group,
        port: args.port,
        source: args.source,
        iface: iface.map(|i| i.name),
    })));

    // One byte more than the largest datagram, so nothing is ever cut silently.
    let mut buf = vec![0u8; 65_536];
    let (mut received, mut acked) = (0u64, 0u64);
    let idle = IdleTimeout::new(args.timeout);
    let mut deadline = idle.deadline_from_now();
    while !matches!(args.count, Some(n) if received >= n) {
        tokio::select! {
            r = recv_with_ttl(&sock, &mut buf) => {
                let r = r.context("receiving datagrams")?;
                deadline = idle.deadline_from_now();
                received += 1;
                out.emit(&Event::Message(Message::Recv(RecvMessage {
                    from: r.from,
                    bytes: r.len,
                    text: escape_bytes(&buf[..r.len]),
                    ttl: r.ttl,
                    truncated: r.truncated,
                })));
                if !args.no_ack {
                    // A failing ack (e.g. unreachable sender) must not stop the receiver.
                    match sock.send_to(ACK, r.from).await {
                        Ok(_) => acked += 1,
                        Err(e) => tracing::warn!(to = %r.from, "could not send ack: {e}"),
                    }
                }
            }
            _ = sleep_until(deadline) => break,
            _ = signals.recv() => break,
        }
    }
    out.emit(&Event::Summary(Summary::Recv(RecvSummary {
        received,
        acked,
    })));
    Ok(())
}

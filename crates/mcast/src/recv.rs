//! `mcast recv`: join a group, print every datagram and answer it with `ack`.

use crate::cli::RecvArgs;
use crate::escape::escape_bytes;
use crate::idle::IdleTimeout;
use crate::output::Output;
use crate::send::ACK;
use anyhow::Context as _;
use lanio::multicast::{bind_receiver, into_tokio, recv_with_ttl};
use serde_json::json;
use tokio::time::sleep_until;

/// Runs `mcast recv`.
pub async fn run(args: RecvArgs) -> anyhow::Result<()> {
    let out = Output::new(args.common.json);
    let iface = args.common.resolve_iface()?;
    let sock = bind_receiver(args.group, args.port, iface.as_ref(), args.source)?;
    let sock = into_tokio(sock)?;
    let iface_name = iface.as_ref().map(|i| i.name.clone());
    out.event(
        "joined",
        json!({"group": args.group.to_string(), "port": args.port,
               "source": args.source.map(|s| s.to_string()), "iface": iface_name}),
        || match args.source {
            Some(s) => format!("joined {}:{} for source {s}", args.group, args.port),
            None => format!("joined {}:{}", args.group, args.port),
        },
    );

    // One byte more than the largest datagram, so nothing is ever cut silently.
    let mut buf = vec![0u8; 65_536];
    let (mut received, mut acked) = (0u64, 0u64);
    let idle = IdleTimeout::new(args.timeout);
    let mut deadline = idle.deadline_from_now();
    let shutdown = crate::signal::shutdown();
    tokio::pin!(shutdown);
    while !matches!(args.count, Some(n) if received >= n) {
        tokio::select! {
            r = recv_with_ttl(&sock, &mut buf) => {
                let r = r.context("receiving datagrams")?;
                deadline = idle.deadline_from_now();
                received += 1;
                let payload = &buf[..r.len];
                let text = escape_bytes(payload);
                out.event(
                    "message",
                    json!({"from": r.from.to_string(), "bytes": r.len, "text": text,
                           "ttl": r.ttl, "truncated": r.truncated}),
                    || format!("from {} ({} bytes): {text}", r.from, r.len),
                );
                if !args.no_ack {
                    // A failing ack (e.g. unreachable sender) must not stop the receiver.
                    match sock.send_to(ACK, r.from).await {
                        Ok(_) => acked += 1,
                        Err(e) => tracing::warn!(to = %r.from, "could not send ack: {e}"),
                    }
                }
            }
            _ = sleep_until(deadline) => break,
            _ = &mut shutdown => break,
        }
    }
    out.event(
        "summary",
        json!({"received": received, "acked": acked}),
        || format!("summary: received {received}, acked {acked}"),
    );
    Ok(())
}

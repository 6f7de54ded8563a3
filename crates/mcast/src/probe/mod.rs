//! `mcast probe`: measure a multicast path like omping or iperf2.
//!
//! - [`packet`]: the probe datagram format.
//! - [`receiver`]: the receiver's streams, bounded, without sockets.
//! - [`stats`]: loss, duplicate, reordering and latency bookkeeping per stream.
//! - [`window`]: the sliding window over sequence numbers [`stats`] uses.
//! - [`histogram`]: the fixed-size latency histogram [`stats`] uses.
//!
//! The sender paces numbered, timestamped datagrams from a dedicated thread
//! and finishes with an end marker that carries the number sent. Receivers
//! keep one [`stats::StreamStats`] per sender run and source, in fixed memory
//! (see [`receiver`] for the bounds); since both ends read
//! `CLOCK_MONOTONIC` of the same machine, latency is one-way.

pub mod histogram;
pub mod packet;
pub mod receiver;
pub mod stats;
pub mod window;

use crate::cli::{ProbeRecvArgs, ProbeSendArgs};
use crate::events::{
    Event, Joined, ProbeJoined, ProbeRecvSummary, ProbeReport, ProbeSendSummary, ProbeStart,
    Summary,
};
use crate::idle::IdleTimeout;
use crate::Out;
use anyhow::Context as _;
use lanio::group::{check_payload_len, destination};
use lanio::multicast::{bind_receiver, bind_sender, into_tokio, SendOptions};
use lanio::{bad_input, Signals};
use packet::{monotonic_ns, Kind, ProbePacket, HEADER_LEN};
use receiver::ProbeReceiver;
use std::hash::{BuildHasher, Hasher};
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many copies of the end marker are sent (it is plain UDP too).
const END_COPIES: u64 = 3;

/// A random 64-bit value from the standard library's hash keys (no extra dependency).
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(monotonic_ns());
    h.finish()
}

/// Shared between the pacing thread and the async side.
#[derive(Debug, Default)]
struct PaceState {
    /// Set to stop sending early (Ctrl-C).
    stop: AtomicBool,
    /// Datagrams sent so far, for the progress display.
    sent: AtomicU64,
}

/// What the pacing thread did.
#[derive(Debug, Clone, Copy)]
struct SendResult {
    sent: u64,
    errors: u64,
    elapsed: Duration,
}

/// Runs `mcast probe send`: its events go to `out`; a signal stops it cleanly.
pub async fn run_send(args: ProbeSendArgs, out: &Out, signals: &mut Signals) -> anyhow::Result<()> {
    if args.size < HEADER_LEN {
        return Err(bad_input(format!(
            "--size {} is smaller than the {HEADER_LEN}-byte probe header",
            args.size
        )));
    }
    check_payload_len(args.group, args.size)?;
    let iface = args.common.resolve_iface()?;
    let opts = SendOptions {
        ttl: args.ttl,
        multicast_loop: !args.no_loop,
    };
    let sock = bind_sender(args.group, iface.as_ref(), opts)?;
    sock.set_nonblocking(false)?;
    let _ = sock.set_send_buffer_size(4 << 20);
    let dest = destination(args.group, args.port, iface.as_ref().map_or(0, |i| i.index));
    let run = random_u64();
    out.emit(&Event::Start(ProbeStart {
        to: dest,
        run: format!("{run:016x}"),
        rate: args.rate,
        size: args.size,
        count: args.count,
    }));

    let state = Arc::new(PaceState::default());
    let thread_state = Arc::clone(&state);
    let (rate, size, count) = (args.rate, args.size, args.count);
    let dest_addr = socket2::SockAddr::from(dest);
    let mut pacer = tokio::task::spawn_blocking(move || {
        pace(&sock, &dest_addr, run, rate, size, count, &thread_state)
    });
    // Progress on a terminal only; never mixed into --json output.
    let show_progress = !out.is_json() && std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        tokio::select! {
            r = &mut pacer => break r,
            _ = signals.recv() => {
                state.stop.store(true, Ordering::Relaxed);
                break pacer.await;
            }
            _ = tick.tick(), if show_progress => {
                let done = state.sent.load(Ordering::Relaxed);
                eprint!("\r{done} / {count} sent ({:.0}%)", done as f64 * 100.0 / count as f64);
            }
        }
    }
    .context("probe sender thread failed")?;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let pps = result.sent as f64 / secs;
    let mbit = pps * (size as f64) * 8.0 / 1e6;
    out.emit(&Event::Summary(Summary::ProbeSend(ProbeSendSummary {
        sent: result.sent,
        send_errors: result.errors,
        elapsed_s: secs,
        rate_pps: pps,
        mbit_s: mbit,
    })));
    Ok(())
}

/// Sends `count` datagrams of `size` bytes at `rate` per second, then the end marker.
fn pace(
    sock: &socket2::Socket,
    dest: &socket2::SockAddr,
    run: u64,
    rate: u64,
    size: usize,
    count: u64,
    state: &PaceState,
) -> SendResult {
    let mut buf = vec![0u8; size];
    let interval_ns = 1_000_000_000 / rate;
    let start = Instant::now();
    let (mut sent, mut errors) = (0u64, 0u64);
    for seq in 0..count {
        if state.stop.load(Ordering::Relaxed) {
            break;
        }
        let due = start
            + Duration::from_nanos((u128::from(seq) * 1_000_000_000 / u128::from(rate)) as u64);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            let ahead = due - now;
            if ahead > Duration::from_micros(300) {
                std::thread::sleep(ahead - Duration::from_micros(200));
            } else {
                std::thread::yield_now();
            }
        }
        let packet = ProbePacket {
            kind: Kind::Data,
            run,
            seq,
            sent_ns: monotonic_ns(),
            interval_ns,
        };
        packet.encode_into(&mut buf);
        match sock.send_to(&buf, dest) {
            Ok(_) => {
                sent += 1;
                state.sent.store(sent, Ordering::Relaxed);
            }
            Err(e) => {
                errors += 1;
                tracing::debug!("probe send failed: {e}");
            }
        }
    }
    let elapsed = start.elapsed();
    let end = ProbePacket {
        kind: Kind::End,
        run,
        seq: sent,
        sent_ns: monotonic_ns(),
        interval_ns,
    };
    end.encode_into(&mut buf);
    for _ in 0..END_COPIES {
        let _ = sock.send_to(&buf[..HEADER_LEN], dest);
    }
    SendResult {
        sent,
        errors,
        elapsed,
    }
}

/// Runs `mcast probe recv`: its events go to `out`; a signal stops it
/// cleanly (with the reports so far).
pub async fn run_recv(args: ProbeRecvArgs, out: &Out, signals: &mut Signals) -> anyhow::Result<()> {
    let iface = args.common.resolve_iface()?;
    let sock = bind_receiver(args.group, args.port, iface.as_ref(), args.source)?;
    let _ = sock.set_recv_buffer_size(8 << 20);
    let sock = into_tokio(sock)?;
    out.emit(&Event::Joined(Joined::Probe(ProbeJoined {
        group: args.group,
        port: args.port,
        source: args.source,
    })));
    let mut state = ProbeReceiver::default();
    let mut buf = vec![0u8; 65_536];
    let idle = IdleTimeout::new(args.timeout);
    let mut deadline = idle.deadline_from_now();
    while state.finished < args.senders {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (len, from) = r.context("receiving probe datagrams")?;
                state.handle(from, &buf[..len], monotonic_ns());
                deadline = idle.deadline_from_now();
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = signals.recv() => break,
        }
    }
    for (run, from, figures) in state.reports() {
        out.emit(&Event::Report(ProbeReport {
            from,
            run: format!("{run:016x}"),
            loss_pct: figures.loss_ratio() * 100.0,
            figures,
        }));
    }
    out.emit(&Event::Summary(Summary::ProbeRecv(ProbeRecvSummary {
        streams: state.seen,
        finished: state.finished,
        foreign: state.foreign,
        evicted: state.evicted,
        stray_ends: state.stray_ends,
    })));
    Ok(())
}

//! The receiving side of `mcast probe`, without sockets: datagrams in (with
//! their source and arrival time), per-stream reports out.
//!
//! A stream is one sender run *from one source*: the run id together with
//! the address and port its datagrams come from. So a datagram that names a
//! run but comes from elsewhere never touches that run's figures, and an
//! end marker counts only from the source that sent the run's data: one for
//! a run this source never sent data for is a stray, counted and ignored.
//! (Any source can still send a run of its own and end it, which counts
//! towards `--senders`; only a source-specific join keeps strangers out.)
//!
//! At most [`MAX_STREAMS`] streams are held. A new one evicts, in this
//! order, the idlest of: streams with fewer than [`ESTABLISHED`] datagrams
//! (one-off or spoofed sources), then unfinished ones, then finished ones.
//! Evictions are counted. (A stream that starts while more than
//! [`MAX_STREAMS`] new sources arrive between two of its datagrams is
//! itself churned until it has sent [`ESTABLISHED`]: a receiver that must
//! hear one sender through such a flood uses a source-specific join.) Each stream's state is fixed in size
//! ([`StreamStats`]), so the whole receiver is too.

use super::packet::{Kind, ProbePacket};
use super::stats::{Report, StreamStats};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Streams held at once.
pub const MAX_STREAMS: usize = 64;
/// Datagrams after which a stream is no longer among the first evicted.
pub const ESTABLISHED: u64 = 8;

/// One stream's source and run id.
pub type StreamKey = (SocketAddr, u64);

#[derive(Debug)]
struct Stream {
    stats: StreamStats,
    /// Order of first appearance, for the reports.
    serial: u64,
    last_ns: u64,
}

impl Stream {
    /// Eviction order: lowest first.
    fn eviction_rank(&self) -> (u8, u64) {
        let tier = if self.stats.is_finished() {
            2
        } else if self.stats.received() >= ESTABLISHED {
            1
        } else {
            0
        };
        (tier, self.last_ns)
    }
}

/// Receiver-side state for all streams, fed one datagram at a time.
#[derive(Debug, Default)]
pub struct ProbeReceiver {
    streams: HashMap<StreamKey, Stream>,
    /// Streams ever seen (held or evicted).
    pub seen: u64,
    /// Datagrams that are not probe datagrams.
    pub foreign: u64,
    /// Streams dropped to make room for new ones.
    pub evicted: u64,
    /// End markers for a run their source sent no data for.
    pub stray_ends: u64,
    /// Streams whose end marker arrived (evicted ones included).
    pub finished: usize,
}

impl ProbeReceiver {
    /// Handles one datagram from `from` received at `now_ns` (`CLOCK_MONOTONIC`).
    pub fn handle(&mut self, from: SocketAddr, datagram: &[u8], now_ns: u64) {
        let packet = match ProbePacket::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.foreign += 1;
                tracing::debug!(%from, "ignoring datagram: {e}");
                return;
            }
        };
        let key = (from, packet.run);
        match packet.kind {
            Kind::Data => {
                let stream = self.stream(key, now_ns);
                stream.last_ns = now_ns;
                let latency_ns = now_ns.saturating_sub(packet.sent_ns);
                stream.stats.record(packet.seq, latency_ns);
            }
            Kind::End => match self.streams.get_mut(&key) {
                None => {
                    self.stray_ends += 1;
                    tracing::debug!(%from, run = packet.run, "end marker for no stream of its source");
                }
                Some(s) => {
                    s.last_ns = now_ns;
                    if !s.stats.is_finished() {
                        s.stats.finish(packet.seq);
                        self.finished += 1;
                    }
                }
            },
        }
    }

    /// The stream of `key`, made (evicting another if full) when new.
    fn stream(&mut self, key: StreamKey, now_ns: u64) -> &mut Stream {
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            let victim = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.eviction_rank())
                .map(|(k, _)| *k);
            if let Some(victim) = victim {
                self.streams.remove(&victim);
                self.evicted += 1;
            }
        }
        let serial = &mut self.seen;
        self.streams.entry(key).or_insert_with(|| {
            *serial += 1;
            Stream {
                stats: StreamStats::default(),
                serial: *serial,
                last_ns: now_ns,
            }
        })
    }

    /// Streams held now.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is held.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Reports for the streams held, in order of first appearance.
    pub fn reports(&self) -> Vec<(u64, SocketAddr, Report)> {
        let mut held: Vec<_> = self.streams.iter().collect();
        held.sort_by_key(|(_, s)| s.serial);
        held.into_iter()
            .map(|((from, run), s)| (*run, *from, s.stats.report()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn datagram(kind: Kind, run: u64, seq: u64, sent_ns: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 100];
        ProbePacket {
            kind,
            run,
            seq,
            sent_ns,
            interval_ns: 0,
        }
        .encode_into(&mut buf);
        buf
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn receiver_separates_runs_and_counts_foreign_datagrams() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let mut r = ProbeReceiver::default();
        r.handle(a, b"hello", 0);
        r.handle(a, b"LSWP\x01", 0);
        r.handle(a, &datagram(Kind::Data, 1, 0, 1_000), 3_000);
        r.handle(b, &datagram(Kind::Data, 2, 1, 1_000), 2_000);
        r.handle(a, &datagram(Kind::End, 1, 1, 0), 0);
        r.handle(a, &datagram(Kind::End, 1, 1, 0), 0);
        assert_eq!(r.foreign, 2);
        assert_eq!(r.finished, 1);
        let reports = r.reports();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].1, a);
        assert_eq!(reports[0].2.received, 1);
        assert_eq!(reports[0].2.lost, 0);
        assert_eq!(reports[1].2.lost, 1);
    }

    #[test]
    fn end_markers_count_only_from_the_source_of_the_data() {
        let (real, forger) = (addr(5000), addr(5001));
        let mut r = ProbeReceiver::default();
        r.handle(forger, &datagram(Kind::End, 7, 1_000_000_000_000, 0), 0);
        for seq in 0..10 {
            r.handle(real, &datagram(Kind::Data, 7, seq, 0), 1);
        }
        r.handle(forger, &datagram(Kind::End, 7, 1_000_000_000_000, 0), 2);
        assert_eq!((r.stray_ends, r.finished), (2, 0));
        r.handle(real, &datagram(Kind::End, 7, 12, 0), 3);
        let reports = r.reports();
        assert_eq!(reports.len(), 1);
        assert_eq!((reports[0].2.sent, reports[0].2.lost), (Some(12), 2));
        assert_eq!(r.finished, 1);
    }

    #[test]
    fn data_naming_a_run_from_another_source_is_another_stream() {
        let (real, spoofer) = (addr(5000), addr(6000));
        let mut r = ProbeReceiver::default();
        r.handle(real, &datagram(Kind::Data, 7, 0, 0), 0);
        r.handle(spoofer, &datagram(Kind::Data, 7, 0, 0), 0);
        r.handle(spoofer, &datagram(Kind::Data, 7, 1 << 50, 0), 0);
        let reports = r.reports();
        assert_eq!(reports.len(), 2);
        assert_eq!(
            (reports[0].1, reports[0].2.received, reports[0].2.lost),
            (real, 1, 0)
        );
        assert_eq!(reports[0].2.duplicates, 0);
    }

    #[test]
    fn a_flood_of_new_streams_evicts_one_offs_not_the_busy_or_finished() {
        let (busy, done) = (addr(1), addr(2));
        let mut r = ProbeReceiver::default();
        for seq in 0..20 {
            r.handle(done, &datagram(Kind::Data, 1, seq, 0), seq);
            r.handle(busy, &datagram(Kind::Data, 2, seq, 0), seq);
        }
        r.handle(done, &datagram(Kind::End, 1, 20, 0), 20);
        let mut now = 100;
        for i in 0..10_000u64 {
            now += 1;
            // The busy stream goes on at one datagram for every 100 of the flood.
            if i % 100 == 0 {
                r.handle(busy, &datagram(Kind::Data, 2, 20 + i / 100, 0), now);
            }
            let port = 10_000 + (i % 50_000) as u16;
            r.handle(addr(port), &datagram(Kind::Data, i, i * 7919, 0), now);
        }
        assert_eq!(r.len(), MAX_STREAMS);
        assert_eq!(r.seen, 10_002);
        assert_eq!(r.evicted, 10_002 - MAX_STREAMS as u64);
        let reports = r.reports();
        let find = |a| reports.iter().find(|(_, f, _)| *f == a).map(|x| &x.2);
        assert_eq!(find(done).unwrap().received, 20);
        assert_eq!(find(busy).unwrap().received, 120);
        assert_eq!(find(busy).unwrap().lost, 0);
        assert_eq!(r.finished, 1);
    }

    #[test]
    fn when_all_are_established_the_idlest_goes() {
        let mut r = ProbeReceiver::default();
        for s in 0..MAX_STREAMS as u16 {
            for seq in 0..ESTABLISHED {
                r.handle(
                    addr(s),
                    &datagram(Kind::Data, 1, seq, 0),
                    1_000 + u64::from(s),
                );
            }
        }
        r.handle(addr(999), &datagram(Kind::Data, 1, 0, 0), 5_000);
        assert_eq!(r.evicted, 1);
        assert!(r.reports().iter().all(|(_, from, _)| *from != addr(0)));
    }

    proptest! {
        /// Whatever arrives, the receiver holds at most MAX_STREAMS streams
        /// and every stream it ever saw is held or counted as evicted.
        #[test]
        fn streams_stay_bounded_and_accounted(
            datagrams in proptest::collection::vec(
                (0u16..200, 0u64..100, any::<u64>(), any::<bool>()), 0..600)
        ) {
            let mut r = ProbeReceiver::default();
            for (i, (port, run, seq, end)) in datagrams.into_iter().enumerate() {
                let kind = if end { Kind::End } else { Kind::Data };
                r.handle(addr(port), &datagram(kind, run, seq, 0), i as u64);
                prop_assert!(r.len() <= MAX_STREAMS);
                prop_assert_eq!(r.seen, r.len() as u64 + r.evicted);
            }
        }
    }
}

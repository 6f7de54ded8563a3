//! `mcast querier`: an IGMP querier for a segment without a multicast
//! router, so that hosts keep reporting their groups and snooping switches
//! keep forwarding them.
//!
//! It sends IGMPv3 general queries (understood by IGMPv2 hosts too) every
//! `--interval` seconds, steps down when it hears a query from a lower
//! address, and takes over again once that querier has been silent for the
//! other-querier-present interval. The election is [`wire::querier`]; this
//! module only feeds it the queries heard on [`crate::igmp_socket`] and the
//! clock, and does what it says.

use crate::cli::QuerierArgs;
use crate::events::{Event, QuerierStarted, QuerierSummary, Summary};
use crate::igmp_socket::IgmpSocket;
use crate::Out;
use anyhow::Context as _;
use lanio::iface::{multicast_interfaces, Iface};
use lanio::{bad_input, Signals};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use wire::igmp::{self, IgmpMessage, ALL_SYSTEMS};
use wire::inet::{self, Decoded};
use wire::membership::Query;
use wire::querier::{Action, Querier, QuerierConfig, Role};

/// Runs `mcast querier` until a signal stops it.
pub async fn run(args: QuerierArgs, out: &Out, signals: &mut Signals) -> anyhow::Result<()> {
    let iface = match args.common.resolve_iface()? {
        Some(iface) => iface,
        None => only_interface()?,
    };
    let me = iface.require_v4()?;
    let config = QuerierConfig::new(Duration::from_secs(args.interval));
    let sock = IgmpSocket::open(&iface, me)?;
    let query = config.general_query();
    let query_bytes = IgmpMessage::Query(query.clone()).encode();
    let mut election = Querier::new(me, config, Instant::now());
    out.emit(&Event::QuerierStarted(QuerierStarted {
        iface: iface.name.clone(),
        address: me,
        interval_s: args.interval,
        max_resp_ms: query.max_resp_ms,
        other_querier_present_ms: millis(config.other_querier_present()),
    }));
    let mut summary = QuerierSummary::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        while let Some(action) = election.poll(Instant::now()) {
            match action {
                Action::SendGeneralQuery => match sock.send_to_all_systems(&query_bytes) {
                    Ok(()) => {
                        summary.queries_sent += 1;
                        out.emit(&Event::QuerySent {
                            from: me,
                            to: ALL_SYSTEMS,
                            max_resp_ms: query.max_resp_ms,
                        });
                    }
                    Err(e) => tracing::warn!("sending a general query on {}: {e}", iface.name),
                },
                Action::TookOver {
                    previous,
                    silent_for,
                } => out.emit(&Event::TookOver {
                    previous,
                    silent_ms: millis(silent_for),
                }),
                Action::SteppedDown { querier } => out.emit(&Event::SteppedDown { querier }),
            }
        }
        let wake = tokio::time::Instant::from_std(election.next_deadline());
        tokio::select! {
            r = sock.recv(&mut buf) => {
                let n = r.context("receiving IGMP")?;
                if let Some((from, heard)) = valid_query(&buf[..n]) {
                    summary.queries_heard += 1;
                    out.emit(&Event::QueryHeard {
                        from,
                        version: heard.version,
                        group: heard.group,
                    });
                    if let Some(Action::SteppedDown { querier }) =
                        election.on_query(from, &heard, Instant::now())
                    {
                        out.emit(&Event::SteppedDown { querier });
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
            _ = signals.recv() => break,
        }
    }
    summary.querier = election.role() == Role::Querier;
    out.emit(&Event::Summary(Summary::Querier(summary)));
    Ok(())
}

/// The sender and the query in an IPv4 packet holding an IGMP query with a
/// right checksum; anything else is not a query to elect by.
pub fn valid_query(packet: &[u8]) -> Option<(Ipv4Addr, Query<Ipv4Addr>)> {
    let pkt = inet::parse_ipv4(packet).ok()??;
    let IpAddr::V4(from) = pkt.ip.src else {
        return None;
    };
    if !igmp::checksum_ok(pkt.payload) {
        return None;
    }
    match pkt.decode().ok()? {
        Decoded::Igmp(IgmpMessage::Query(q)) => Some((from, q)),
        _ => None,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Without `--iface`: the one multicast interface with an IPv4 address.
fn only_interface() -> anyhow::Result<Iface> {
    let mut candidates: Vec<Iface> = multicast_interfaces()?
        .into_iter()
        .filter(|i| i.v4.is_some())
        .collect();
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(bad_input(
            "no interface that is up, can multicast and has an IPv4 address: give one with --iface",
        )),
        _ => {
            let names: Vec<&str> = candidates.iter().map(|i| i.name.as_str()).collect();
            Err(bad_input(format!(
                "several interfaces could be queried ({}): choose one with --iface",
                names.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(src: [u8; 4], igmp: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45,
            0xc0,
            0,
            (20 + igmp.len()) as u8,
            0,
            0,
            0,
            0,
            1,
            2,
            0,
            0,
        ];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[224, 0, 0, 1]);
        p.extend_from_slice(igmp);
        p
    }

    #[test]
    fn only_queries_with_a_right_checksum_count() {
        let query = QuerierConfig::new(Duration::from_secs(1)).general_query();
        let bytes = IgmpMessage::Query(query.clone()).encode();
        let (from, heard) = valid_query(&packet([10, 0, 0, 1], &bytes)).unwrap();
        assert_eq!(from, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(heard, query);
        let mut bad = bytes.clone();
        bad[2] ^= 1;
        assert_eq!(valid_query(&packet([10, 0, 0, 1], &bad)), None);
        let report = IgmpMessage::V2Report {
            group: Ipv4Addr::new(239, 1, 1, 1),
        }
        .encode();
        assert_eq!(valid_query(&packet([10, 0, 0, 1], &report)), None);
        assert_eq!(valid_query(&[0x45]), None);
    }
}

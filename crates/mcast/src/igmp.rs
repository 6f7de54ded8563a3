//! `mcast igmp`: watch the IGMP (IPv4) and MLD (IPv6) messages on an
//! interface, or on all of them, and print each one decoded.
//!
//! Packets come from [`crate::capture`]; [`wire::inet`] finds the message in
//! them and [`wire::igmp`] / [`wire::mld`] decode it. A message whose
//! checksum is wrong is printed all the same, marked as such; one that does
//! not decode is printed as `malformed`, with its first bytes in hex.

use crate::capture::{if_name, Capture, Direction};
use crate::cli::IgmpArgs;
use crate::events::{Event, IgmpSummary, Listening, Malformed, Seen, Summary};
use crate::Out;
use anyhow::Context as _;
use lanio::Signals;
use std::collections::HashMap;
use wire::inet::{self, Decoded};

/// Bytes of a malformed packet shown in hex.
const HEAD_BYTES: usize = 32;

/// Runs `mcast igmp`: its events go to `out`; a signal stops it cleanly.
pub async fn run(args: IgmpArgs, out: &Out, signals: &mut Signals) -> anyhow::Result<()> {
    let iface = args.common.resolve_iface()?;
    let capture = Capture::open(iface.as_ref())?;
    out.emit(&Event::Listening(Listening {
        iface: iface.map(|i| i.name),
    }));
    let mut buf = vec![0u8; 65_536];
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut summary = IgmpSummary::default();
    while !matches!(args.count, Some(n) if summary.seen + summary.malformed >= n) {
        tokio::select! {
            r = capture.recv(&mut buf) => {
                let c = r.context("capturing packets")?;
                let name = names.entry(c.ifindex).or_insert_with(|| if_name(c.ifindex));
                if let Some(event) = describe(&buf[..c.len], name, c.direction) {
                    summary.count(&event);
                    out.emit(&event);
                }
            }
            _ = signals.recv() => break,
        }
    }
    out.emit(&Event::Summary(Summary::Igmp(summary)));
    Ok(())
}

/// The event for one captured packet (from its IP header on); `None` for a
/// packet that carries neither IGMP nor MLD.
pub fn describe(packet: &[u8], iface: &str, direction: Direction) -> Option<Event> {
    let malformed = |src, dst, error: String| {
        Event::Malformed(Malformed {
            iface: iface.to_string(),
            direction,
            src,
            dst,
            error,
            bytes: packet.len(),
            head: hex(&packet[..packet.len().min(HEAD_BYTES)]),
        })
    };
    let pkt = match inet::parse(packet) {
        Ok(Some(pkt)) => pkt,
        Ok(None) => return None,
        Err(e) => return Some(malformed(None, None, e.to_string())),
    };
    let ip = pkt.ip;
    let head = Seen {
        iface: iface.to_string(),
        direction,
        src: ip.src,
        dst: ip.dst,
        ttl: ip.ttl,
        router_alert: ip.router_alert,
        checksum_ok: pkt.checksum_ok(),
        message: (),
    };
    Some(match pkt.decode() {
        Ok(Decoded::Igmp(m)) => Event::Igmp(head.with(m)),
        Ok(Decoded::Mld(m)) => Event::Mld(head.with(m)),
        Err(e) => malformed(Some(ip.src), Some(ip.dst), e.to_string()),
    })
}

impl Seen<()> {
    /// The same header facts around a decoded message.
    fn with<M>(self, message: M) -> Seen<M> {
        Seen {
            iface: self.iface,
            direction: self.direction,
            src: self.src,
            dst: self.dst,
            ttl: self.ttl,
            router_alert: self.router_alert,
            checksum_ok: self.checksum_ok,
            message,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl IgmpSummary {
    fn count(&mut self, event: &Event) {
        match event {
            Event::Igmp(Seen { checksum_ok, .. }) | Event::Mld(Seen { checksum_ok, .. }) => {
                self.seen += 1;
                self.bad_checksum += u64::from(!checksum_ok);
            }
            Event::Malformed(_) => self.malformed += 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use wire::igmp::IgmpMessage;
    use wire::mld::MldMessage;

    /// IPv4 header with Router Alert, then `igmp`.
    fn ipv4(src: [u8; 4], dst: [u8; 4], igmp: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x46,
            0xc0,
            0,
            (24 + igmp.len()) as u8,
            0,
            0,
            0x40,
            0,
            1,
            2,
            0,
            0,
        ];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[0x94, 4, 0, 0]);
        p.extend_from_slice(igmp);
        p
    }

    #[test]
    fn a_leave_is_described_with_its_group() {
        let group = Ipv4Addr::new(239, 1, 2, 3);
        let leave = IgmpMessage::V2Leave { group }.encode();
        let packet = ipv4([10, 0, 0, 2], [224, 0, 0, 2], &leave);
        let Some(Event::Igmp(seen)) = describe(&packet, "eth0", Direction::In) else {
            panic!("not an IGMP event")
        };
        assert_eq!(seen.message, IgmpMessage::V2Leave { group });
        assert_eq!(seen.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(seen.checksum_ok && seen.router_alert);
        assert_eq!(seen.ttl, 1);
    }

    #[test]
    fn a_bad_checksum_is_shown_not_dropped() {
        let mut report = IgmpMessage::V2Report {
            group: Ipv4Addr::new(239, 1, 2, 3),
        }
        .encode();
        report[2] ^= 0xff;
        let packet = ipv4([10, 0, 0, 2], [239, 1, 2, 3], &report);
        let event = describe(&packet, "eth0", Direction::In).unwrap();
        let Event::Igmp(seen) = &event else {
            panic!("{event:?}")
        };
        assert!(!seen.checksum_ok);
        let mut summary = IgmpSummary::default();
        summary.count(&event);
        assert_eq!((summary.seen, summary.bad_checksum), (1, 1));
    }

    #[test]
    fn malformed_messages_and_other_packets() {
        // A 10-byte query: neither the short nor the long form.
        let packet = ipv4(
            [10, 0, 0, 1],
            [224, 0, 0, 1],
            &[0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let Some(Event::Malformed(m)) = describe(&packet, "eth0", Direction::Out) else {
            panic!("not malformed")
        };
        assert_eq!(m.direction, Direction::Out);
        assert!(m.error.contains("query of 10 bytes"), "{}", m.error);
        assert_eq!(m.head, hex(&packet[..HEAD_BYTES]));
        // UDP is none of our business.
        let mut udp = ipv4([10, 0, 0, 1], [224, 0, 0, 1], &[0; 8]);
        udp[9] = 17;
        assert_eq!(describe(&udp, "eth0", Direction::In), None);
        // A cut-off header is malformed, not ignored.
        assert!(matches!(
            describe(&[0x45, 0, 0], "eth0", Direction::In),
            Some(Event::Malformed(_))
        ));
    }

    #[test]
    fn mld_in_ipv6() {
        let src = "fe80::2".parse().unwrap();
        let dst = "ff02::16".parse().unwrap();
        let msg = MldMessage::V2Report { records: vec![] }.encode(src, dst);
        let mut p = vec![0x60, 0, 0, 0, 0, (8 + msg.len()) as u8, 0, 1];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
        p.extend_from_slice(&msg);
        let Some(Event::Mld(seen)) = describe(&p, "eth0", Direction::In) else {
            panic!("not MLD")
        };
        assert!(seen.checksum_ok && seen.router_alert);
    }
}

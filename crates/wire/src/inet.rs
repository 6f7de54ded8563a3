//! The IP layer under IGMP and MLD: finds the membership message in a
//! captured IPv4 or IPv6 packet (as a `SOCK_DGRAM` packet socket delivers it:
//! from the IP header on, possibly with link-layer padding after it).
//!
//! ```text
//! IPv4   ver/IHL(1) TOS(1) total-length(2) id(2) flags/fragment(2) TTL(1)
//!        protocol(1) checksum(2) source(4) destination(4) options(IHL×4 − 20)
//!        → protocol 2 is IGMP; option 148 (length 4) is Router Alert
//! IPv6   ver/class/flow(4) payload-length(2) next-header(1) hop-limit(1)
//!        source(16) destination(16), then extension headers
//!        (hop-by-hop 0, routing 43, destination options 60: next(1) len(1, 8-byte units beyond the first 8))
//!        → ICMPv6 (58) types 130, 131, 132, 143 are MLD; hop-by-hop option 5 is Router Alert
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::igmp::{self, IgmpMessage};
use crate::membership::DecodeError;
use crate::mld::{self, MldMessage, NEXT_HEADER_ICMPV6};

/// IPv4 protocol number of IGMP.
pub const PROTO_IGMP: u8 = 2;
/// IPv4 option type of Router Alert (RFC 2113).
const IPV4_ROUTER_ALERT: u8 = 148;
/// IPv6 hop-by-hop option type of Router Alert (RFC 2711).
const IPV6_ROUTER_ALERT: u8 = 5;
const IPV6_HEADER_LEN: usize = 40;

/// Why a packet's IP header cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    #[error("{len} bytes is too short for an IP header")]
    TooShort { len: usize },
    #[error("IP version {0} is neither 4 nor 6")]
    Version(u8),
    #[error("header length {header} is outside the packet's {len} bytes")]
    HeaderLength { header: usize, len: usize },
    #[error("the header says {declared} bytes but {captured} were captured")]
    Truncated { declared: usize, captured: usize },
    #[error("an extension header runs past the end of the packet")]
    ExtensionHeader,
}

/// Which membership protocol a packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IGMP in IPv4.
    Igmp,
    /// MLD in ICMPv6.
    Mld,
}

/// What the IP header says about a membership message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit (membership messages are sent with 1).
    pub ttl: u8,
    /// Whether the Router Alert option is present (required by IGMPv2+ and MLD).
    pub router_alert: bool,
}

/// A membership message found in a packet, not yet decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub ip: IpInfo,
    pub protocol: Protocol,
    /// The IGMP or ICMPv6 message, without padding.
    pub payload: &'a [u8],
}

/// A decoded membership message of either family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Igmp(IgmpMessage),
    Mld(MldMessage),
}

impl Packet<'_> {
    /// Decodes the message (whatever its checksum).
    pub fn decode(&self) -> Result<Decoded, DecodeError> {
        match self.protocol {
            Protocol::Igmp => igmp::decode(self.payload).map(Decoded::Igmp),
            Protocol::Mld => mld::decode(self.payload).map(Decoded::Mld),
        }
    }

    /// Whether the message's checksum is right.
    pub fn checksum_ok(&self) -> bool {
        match (self.protocol, self.ip.src, self.ip.dst) {
            (Protocol::Mld, IpAddr::V6(src), IpAddr::V6(dst)) => {
                mld::checksum_ok(src, dst, self.payload)
            }
            _ => igmp::checksum_ok(self.payload),
        }
    }
}

/// Finds an IGMP or MLD message in an IPv4 or IPv6 packet (by the version
/// nibble). `Ok(None)`: a well-formed packet carrying something else.
pub fn parse(buf: &[u8]) -> Result<Option<Packet<'_>>, IpError> {
    match buf.first().map(|b| b >> 4) {
        None => Err(IpError::TooShort { len: 0 }),
        Some(4) => parse_ipv4(buf),
        Some(6) => parse_ipv6(buf),
        Some(v) => Err(IpError::Version(v)),
    }
}

/// Finds an IGMP message in an IPv4 packet; `Ok(None)` for other protocols
/// and for fragments.
pub fn parse_ipv4(buf: &[u8]) -> Result<Option<Packet<'_>>, IpError> {
    if buf.len() < 20 {
        return Err(IpError::TooShort { len: buf.len() });
    }
    if buf[0] >> 4 != 4 {
        return Err(IpError::Version(buf[0] >> 4));
    }
    let header = usize::from(buf[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if header < 20 || header > total {
        return Err(IpError::HeaderLength { header, len: total });
    }
    if total > buf.len() {
        return Err(IpError::Truncated {
            declared: total,
            captured: buf.len(),
        });
    }
    let fragment = u16::from_be_bytes([buf[6], buf[7]]) & 0x3fff != 0;
    if buf[9] != PROTO_IGMP || fragment {
        return Ok(None);
    }
    let addr = |at: usize| {
        IpAddr::V4(Ipv4Addr::new(
            buf[at],
            buf[at + 1],
            buf[at + 2],
            buf[at + 3],
        ))
    };
    Ok(Some(Packet {
        ip: IpInfo {
            src: addr(12),
            dst: addr(16),
            ttl: buf[8],
            router_alert: has_option(&buf[20..header], IPV4_ROUTER_ALERT, OptionStyle::Ipv4),
        },
        protocol: Protocol::Igmp,
        payload: &buf[header..total],
    }))
}

/// Finds an MLD message in an IPv6 packet, after its hop-by-hop, routing and
/// destination options headers; `Ok(None)` for anything else (fragments too).
pub fn parse_ipv6(buf: &[u8]) -> Result<Option<Packet<'_>>, IpError> {
    if buf.len() < IPV6_HEADER_LEN {
        return Err(IpError::TooShort { len: buf.len() });
    }
    if buf[0] >> 4 != 6 {
        return Err(IpError::Version(buf[0] >> 4));
    }
    let end = IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    if end > buf.len() {
        return Err(IpError::Truncated {
            declared: end,
            captured: buf.len(),
        });
    }
    let packet = &buf[..end];
    let mut next = packet[6];
    let mut at = IPV6_HEADER_LEN;
    let mut router_alert = false;
    while matches!(next, 0 | 43 | 60) {
        let ext = packet.get(at..at + 2).ok_or(IpError::ExtensionHeader)?;
        let len = (usize::from(ext[1]) + 1) * 8;
        let body = packet
            .get(at + 2..at + len)
            .ok_or(IpError::ExtensionHeader)?;
        if next == 0 {
            router_alert |= has_option(body, IPV6_ROUTER_ALERT, OptionStyle::Ipv6);
        }
        next = ext[0];
        at += len;
    }
    let payload = &packet[at..];
    if next != NEXT_HEADER_ICMPV6 || !payload.first().is_some_and(|t| mld::is_mld_type(*t)) {
        return Ok(None);
    }
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&packet[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    Ok(Some(Packet {
        ip: IpInfo {
            src: addr(8),
            dst: addr(24),
            ttl: packet[7],
            router_alert,
        },
        protocol: Protocol::Mld,
        payload,
    }))
}

/// IPv4 options and IPv6 hop-by-hop options differ in their one-byte options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptionStyle {
    /// 0 ends the list, 1 is a one-byte no-op.
    Ipv4,
    /// 0 is Pad1 (one byte); there is no end marker.
    Ipv6,
}

/// Whether the type-length-value option list holds an option of type `wanted`.
fn has_option(mut opts: &[u8], wanted: u8, style: OptionStyle) -> bool {
    while let Some(&kind) = opts.first() {
        let single = match style {
            OptionStyle::Ipv4 if kind == 0 => return false,
            OptionStyle::Ipv4 => kind == 1,
            OptionStyle::Ipv6 => kind == 0,
        };
        if single {
            opts = &opts[1..];
            continue;
        }
        if kind == wanted {
            return true;
        }
        let len = match (style, opts.get(1)) {
            (OptionStyle::Ipv4, Some(&l)) if l >= 2 => usize::from(l),
            (OptionStyle::Ipv6, Some(&l)) => usize::from(l) + 2,
            _ => return false,
        };
        opts = opts.get(len..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::internet_checksum;

    /// An IPv4 packet as Linux sends an IGMPv2 report: Router Alert, TTL 1,
    /// then Ethernet padding up to 46 bytes.
    fn igmp_v2_report() -> Vec<u8> {
        let mut p = vec![
            0x46, 0xc0, 0, 32, 0, 0, 0x40, 0, // v4, IHL 6, total 32, DF
            1, 2, 0, 0, // TTL 1, IGMP, header checksum (not checked)
            10, 0, 0, 2, 239, 1, 2, 3, // source, destination
            0x94, 4, 0, 0, // Router Alert
            0x16, 0, 0, 0, 239, 1, 2, 3, // IGMPv2 report
        ];
        let sum = internet_checksum(&[&p[24..32]]);
        p[26..28].copy_from_slice(&sum.to_be_bytes());
        p.resize(46, 0);
        p
    }

    #[test]
    fn igmp_in_ipv4_with_router_alert_and_padding() {
        let bytes = igmp_v2_report();
        let pkt = parse(&bytes).unwrap().unwrap();
        assert_eq!(pkt.protocol, Protocol::Igmp);
        assert_eq!(pkt.ip.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(pkt.ip.dst, IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3)));
        assert_eq!(pkt.ip.ttl, 1);
        assert!(pkt.ip.router_alert);
        assert_eq!(pkt.payload.len(), 8, "padding is not part of the message");
        assert!(pkt.checksum_ok());
        assert_eq!(
            pkt.decode().unwrap(),
            Decoded::Igmp(IgmpMessage::V2Report {
                group: Ipv4Addr::new(239, 1, 2, 3)
            })
        );
    }

    #[test]
    fn other_ipv4_protocols_and_fragments_are_skipped() {
        let mut udp = igmp_v2_report();
        udp[9] = 17;
        assert_eq!(parse(&udp), Ok(None));
        let mut frag = igmp_v2_report();
        frag[6] = 0x20; // more fragments
        assert_eq!(parse(&frag), Ok(None));
    }

    #[test]
    fn bad_ipv4_headers_are_errors() {
        let p = igmp_v2_report();
        assert_eq!(parse(&p[..10]), Err(IpError::TooShort { len: 10 }));
        assert_eq!(
            parse(&p[..30]),
            Err(IpError::Truncated {
                declared: 32,
                captured: 30
            })
        );
        let mut short_ihl = p.clone();
        short_ihl[0] = 0x44;
        assert!(matches!(
            parse(&short_ihl),
            Err(IpError::HeaderLength { header: 16, .. })
        ));
        assert_eq!(parse(&[0x50; 40]), Err(IpError::Version(5)));
    }

    /// An MLDv2 report as Linux sends it: hop-by-hop header with Router
    /// Alert and PadN, then ICMPv6.
    fn mld_v2_report() -> Vec<u8> {
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
        let msg = MldMessage::V2Report { records: vec![] }.encode(src, dst);
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((8 + msg.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 1]); // next: hop-by-hop, hop limit 1
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]); // → ICMPv6; RA; PadN
        p.extend_from_slice(&msg);
        p
    }

    #[test]
    fn mld_after_a_hop_by_hop_header() {
        let bytes = mld_v2_report();
        let pkt = parse(&bytes).unwrap().unwrap();
        assert_eq!(pkt.protocol, Protocol::Mld);
        assert!(pkt.ip.router_alert);
        assert_eq!(pkt.ip.ttl, 1);
        assert!(pkt.checksum_ok());
        assert_eq!(
            pkt.decode().unwrap(),
            Decoded::Mld(MldMessage::V2Report { records: vec![] })
        );
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(!parse(&bad).unwrap().unwrap().checksum_ok());
    }

    #[test]
    fn non_mld_icmpv6_and_broken_extension_headers() {
        let mut echo = mld_v2_report();
        echo[48] = 128; // echo request
        assert_eq!(parse(&echo), Ok(None));
        let mut long_ext = mld_v2_report();
        long_ext[41] = 200; // hop-by-hop header claims 1608 bytes
        assert_eq!(parse(&long_ext), Err(IpError::ExtensionHeader));
    }

    #[test]
    fn option_lists() {
        assert!(has_option(&[1, 1, 0x94, 4, 0, 0], 0x94, OptionStyle::Ipv4));
        assert!(!has_option(&[0, 0x94, 4, 0, 0], 0x94, OptionStyle::Ipv4));
        assert!(!has_option(&[7, 0], 0x94, OptionStyle::Ipv4));
        assert!(has_option(&[0, 1, 0, 5, 2, 0, 0], 5, OptionStyle::Ipv6));
        assert!(!has_option(&[1, 9], 5, OptionStyle::Ipv6));
    }
}

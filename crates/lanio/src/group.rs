//! Multicast group addresses: parsing, validation and datagram size limits.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// Largest UDP payload over IPv4 (65535 - 20 byte IP header - 8 byte UDP header).
pub const MAX_PAYLOAD_V4: usize = 65_507;
/// Largest UDP payload over IPv6 without jumbograms (65535 - 8 byte UDP header).
pub const MAX_PAYLOAD_V6: usize = 65_527;

/// Parses a multicast group address (clap value parser): IPv4 224.0.0.0/4 or IPv6 ff00::/8.
pub fn parse_group(text: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address"))?;
    if ip.is_multicast() {
        Ok(ip)
    } else {
        Err(format!(
            "{ip} is not a multicast group (IPv4 groups are 224.0.0.0/4, IPv6 groups ff00::/8)"
        ))
    }
}

/// Largest payload a single datagram to `group` can carry.
pub fn max_payload(group: IpAddr) -> usize {
    match group {
        IpAddr::V4(_) => MAX_PAYLOAD_V4,
        IpAddr::V6(_) => MAX_PAYLOAD_V6,
    }
}

/// Checks that a payload of `len` bytes fits into one datagram to `group`.
pub fn check_payload_len(group: IpAddr, len: usize) -> anyhow::Result<()> {
    let max = max_payload(group);
    if len > max {
        return Err(crate::exit::bad_input(format!(
            "message is {len} bytes, but a UDP datagram to {group} carries at most {max} bytes"
        )));
    }
    Ok(())
}

/// Whether an IPv6 group is link-local scoped (ff02::/16, ff12::/16, ...), which
/// needs an interface (scope id) to be sent to.
pub fn is_link_local_v6(group: &Ipv6Addr) -> bool {
    group.segments()[0] & 0xff0f == 0xff02
}

/// The destination socket address for `group:port`, scoped to `iface_index`
/// for IPv6 (0 = let the routing table decide).
pub fn destination(group: IpAddr, port: u16, iface_index: u32) -> SocketAddr {
    match group {
        IpAddr::V4(g) => SocketAddr::new(IpAddr::V4(g), port),
        IpAddr::V6(g) => SocketAddr::V6(SocketAddrV6::new(g, port, 0, iface_index)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ipv4_and_ipv6_groups() {
        assert!(parse_group("224.3.29.71").is_ok());
        assert!(parse_group("239.255.0.1").is_ok());
        assert!(parse_group("ff02::1:3").is_ok());
        assert!(parse_group("ff15::1234").is_ok());
    }

    #[test]
    fn rejects_unicast_and_garbage_with_a_clear_message() {
        let err = parse_group("10.0.0.1").unwrap_err();
        assert!(err.contains("not a multicast group"), "{err}");
        assert!(parse_group("fe80::1").is_err());
        assert!(parse_group("224.3.29").is_err());
        assert!(parse_group("hello")
            .unwrap_err()
            .contains("not an IP address"));
    }

    #[test]
    fn payload_limits_depend_on_family() {
        let v4 = parse_group("224.3.29.71").unwrap();
        let v6 = parse_group("ff15::1").unwrap();
        assert!(check_payload_len(v4, MAX_PAYLOAD_V4).is_ok());
        assert!(check_payload_len(v4, MAX_PAYLOAD_V4 + 1).is_err());
        assert!(check_payload_len(v6, MAX_PAYLOAD_V6).is_ok());
        assert!(check_payload_len(v6, MAX_PAYLOAD_V6 + 1).is_err());
    }

    #[test]
    fn link_local_scope_detection() {
        assert!(is_link_local_v6(&"ff02::1".parse().unwrap()));
        assert!(is_link_local_v6(&"ff12::1".parse().unwrap()));
        assert!(!is_link_local_v6(&"ff15::1".parse().unwrap()));
        assert!(!is_link_local_v6(&"ff05::1".parse().unwrap()));
    }
}

//! Address ranges (`10.0.0.0/8`, `fd77::/64`): parsing and membership, for
//! options that accept traffic only from some sources.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 prefix. The address is stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    #[error("prefix length {prefix} is out of range for {addr} (at most {max})")]
    BadPrefix {
        addr: IpAddr,
        prefix: String,
        max: u8,
    },
}

fn bits(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// The address as a 128-bit number (IPv4 in the low 32 bits).
fn as_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(width: u8, prefix: u8) -> u128 {
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (width - prefix)) - 1)
    }
}

fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((n as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(n.into()),
    }
}

impl Cidr {
    /// The range of `addr` with a `prefix`-bit network part, or `None` when
    /// the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let width = bits(addr);
        (prefix <= width).then(|| Cidr {
            addr: from_u128(addr, as_u128(addr) & mask(width, prefix)),
            prefix,
        })
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in the range. An IPv4-mapped IPv6 address counts
    /// as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        as_u128(ip) & mask(bits(ip), self.prefix) == as_u128(self.addr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `ADDR/PREFIX`, or a bare `ADDR` for that one address.
impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let (addr_text, prefix_text) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::BadAddress(addr_text.chars().take(64).collect()))?;
        let max = bits(addr);
        let prefix =
            match prefix_text {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(|| {
                    CidrError::BadPrefix {
                        addr,
                        prefix: p.chars().take(16).collect(),
                        max,
                    }
                })?,
            };
        Ok(Cidr::new(addr, prefix).expect("prefix checked against the width"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        let c: Cidr = "10.77.0.9/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.77.0.0/24");
        assert_eq!(
            "10.1.2.3".parse::<Cidr>().unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            "fd77::5/64".parse::<Cidr>().unwrap().to_string(),
            "fd77::/64"
        );
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().prefix(), 0);
    }

    #[test]
    fn membership() {
        let c: Cidr = "10.77.0.0/24".parse().unwrap();
        assert!(c.contains(ip("10.77.0.200")));
        assert!(!c.contains(ip("10.77.1.1")));
        assert!(c.contains(ip("::ffff:10.77.0.3")), "mapped IPv4");
        assert!(!c.contains(ip("fd77::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        let one: Cidr = "10.0.0.1/32".parse().unwrap();
        assert!(one.contains(ip("10.0.0.1")) && !one.contains(ip("10.0.0.2")));
        let v6: Cidr = "fd77::/16".parse().unwrap();
        assert!(v6.contains(ip("fd77:1::9")) && !v6.contains(ip("fd78::1")));
        assert!("::/0".parse::<Cidr>().unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        assert!(matches!(
            "10.0.0/8".parse::<Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!(
            "fd77::/129".parse::<Cidr>(),
            Err(CidrError::BadPrefix { max: 128, .. })
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<Cidr>(),
            Err(CidrError::BadPrefix { .. })
        ));
        assert!("10.0.0.0/8".parse::<Cidr>().is_ok());
    }
}

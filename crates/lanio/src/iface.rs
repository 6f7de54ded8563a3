//! Resolving `--iface NAME|ADDR` to an interface index and its addresses.
//!
//! Names are looked up with `if_nametoindex`; addresses (and the IPv4 address
//! of a named interface) with `getifaddrs`, which also gives
//! [`local_subnets`]: the networks this host is directly attached to.

use crate::cidr::Cidr;
use crate::exit::bad_input as usage;
use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A local network interface chosen with `--iface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// Kernel interface index (never 0).
    pub index: u32,
    /// First IPv4 address of the interface, if any.
    pub v4: Option<Ipv4Addr>,
}

/// One address entry from `getifaddrs`.
#[derive(Debug, Clone)]
struct IfAddr {
    name: String,
    addr: IpAddr,
    /// Length of the netmask's prefix, when the kernel gave a netmask.
    prefix: Option<u8>,
    /// `IFF_*` flags of the interface.
    flags: u32,
}

impl Iface {
    /// Resolves an interface given by name (`eth0`) or by one of its addresses.
    ///
    /// An unknown name or an address no interface has is a usage error.
    pub fn resolve(spec: &str) -> anyhow::Result<Iface> {
        let addrs = if_addrs()?;
        let name = match spec.parse::<IpAddr>() {
            Ok(ip) => addrs
                .iter()
                .find(|a| a.addr == ip)
                .map(|a| a.name.clone())
                .ok_or_else(|| usage(format!("no local interface has address {ip}")))?,
            Err(_) => spec.to_owned(),
        };
        let index = name_to_index(&name)
            .ok_or_else(|| usage(format!("unknown interface {name:?} (see `ip link`)")))?;
        let v4 = addrs.iter().find_map(|a| match a.addr {
            IpAddr::V4(v4) if a.name == name => Some(v4),
            _ => None,
        });
        Ok(Iface { name, index, v4 })
    }

    /// The IPv4 address to use for IPv4 membership, or an error if there is none.
    pub fn require_v4(&self) -> anyhow::Result<Ipv4Addr> {
        self.v4.ok_or_else(|| {
            usage(format!(
                "interface {} has no IPv4 address, needed for an IPv4 group",
                self.name
            ))
        })
    }
}

/// The subnet of every address of every local interface (loopback
/// included), each once: `10.77.0.0/24`, `127.0.0.0/8`, `fe80::/64`, …
pub fn local_subnets() -> anyhow::Result<Vec<Cidr>> {
    let mut out: Vec<Cidr> = Vec::new();
    for a in if_addrs()? {
        let width = if a.addr.is_ipv4() { 32 } else { 128 };
        let cidr = Cidr::new(a.addr, a.prefix.unwrap_or(width)).expect("prefix within width");
        if !out.contains(&cidr) {
            out.push(cidr);
        }
    }
    Ok(out)
}

/// Every interface that is up and can multicast (`IFF_UP` and
/// `IFF_MULTICAST`), loopback aside, with its first IPv4 address if any.
pub fn multicast_interfaces() -> anyhow::Result<Vec<Iface>> {
    let mut out: Vec<Iface> = Vec::new();
    for a in if_addrs()? {
        let wanted = a.flags & libc::IFF_UP as u32 != 0
            && a.flags & libc::IFF_MULTICAST as u32 != 0
            && a.flags & libc::IFF_LOOPBACK as u32 == 0;
        if !wanted {
            continue;
        }
        let v4 = match a.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        };
        match out.iter_mut().find(|i| i.name == a.name) {
            Some(known) => known.v4 = known.v4.or(v4),
            None => {
                if let Some(index) = name_to_index(&a.name) {
                    out.push(Iface {
                        name: a.name,
                        index,
                        v4,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The prefix length of a netmask's bytes, if it is a contiguous mask.
fn prefix_len(mask: &[u8]) -> Option<u8> {
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let contiguous = mask
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1))
        .skip(ones as usize)
        .all(|bit| bit == 0);
    contiguous.then_some(ones as u8)
}

fn name_to_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// Lists the IPv4 and IPv6 addresses of all local interfaces.
fn if_addrs() -> anyhow::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list returned by getifaddrs, not yet freed.
        let entry = unsafe { &*cur };
        cur = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(entry.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family
        // tells which concrete struct it is.
        let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
        let mask = entry.ifa_netmask;
        let (addr, prefix) = match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET means the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                // SAFETY: a non-null netmask has the address's family.
                let prefix = (!mask.is_null()).then(|| unsafe {
                    (*(mask as *const libc::sockaddr_in))
                        .sin_addr
                        .s_addr
                        .to_ne_bytes()
                });
                (
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))),
                    prefix.and_then(|m| prefix_len(&m)),
                )
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                // SAFETY: a non-null netmask has the address's family.
                let prefix = (!mask.is_null())
                    .then(|| unsafe { (*(mask as *const libc::sockaddr_in6)).sin6_addr.s6_addr });
                (
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)),
                    prefix.and_then(|m| prefix_len(&m)),
                )
            }
            _ => continue,
        };
        out.push(IfAddr {
            name,
            addr,
            prefix,
            flags: entry.ifa_flags,
        });
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_by_name_and_address() {
        let by_name = Iface::resolve("lo").unwrap();
        assert!(by_name.index > 0);
        assert_eq!(by_name.v4, Some(Ipv4Addr::LOCALHOST));
        let by_addr = Iface::resolve("127.0.0.1").unwrap();
        assert_eq!(by_addr, by_name);
    }

    #[test]
    fn loopback_subnet_is_local() {
        let subnets = local_subnets().unwrap();
        assert!(
            subnets.iter().any(|c| c.to_string() == "127.0.0.0/8"),
            "{subnets:?}"
        );
    }

    #[test]
    fn netmask_prefix_lengths() {
        assert_eq!(prefix_len(&[255, 255, 255, 0]), Some(24));
        assert_eq!(prefix_len(&[255, 128, 0, 0]), Some(9));
        assert_eq!(prefix_len(&[0; 16]), Some(0));
        assert_eq!(prefix_len(&[255, 0, 255, 0]), None);
    }

    #[test]
    fn unknown_interface_is_a_usage_error() {
        let err = Iface::resolve("no-such-if0").unwrap_err();
        assert!(err.is::<crate::exit::BadInput>());
        assert!(err.to_string().contains("unknown interface"));
        let err = Iface::resolve("192.0.2.123").unwrap_err();
        assert!(err.is::<crate::exit::BadInput>());
    }
}

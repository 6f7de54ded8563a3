//! Building multicast UDP sockets with socket2 and receiving with the TTL.
//!
//! - [`bind_receiver`]: `SO_REUSEADDR` (deliberately not `SO_REUSEPORT`, see
//!   `bind_shared`) and `IP_MULTICAST_ALL` off, bound to the group port on the
//!   wildcard address, then an any-source join (IGMP/MLD) or a source-specific
//!   join (IGMPv3/MLDv2, `MCAST_JOIN_SOURCE_GROUP`).
//! - [`bind_sender`]: an ephemeral port, ready for [`configure_sending`].
//! - [`configure_sending`]: TTL / hop limit, loopback and `IP_MULTICAST_IF`.
//! - [`recv_with_ttl`]: `recvmsg` returning the sender, the received TTL (hop
//!   limit) and whether the datagram was truncated.

use crate::exit::bad_input as usage;
use crate::iface::Iface;
use anyhow::Context as _;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// How datagrams are sent to the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// IPv4 TTL or IPv6 hop limit (0..=255). 0 keeps datagrams on this host.
    pub ttl: u32,
    /// Whether our own datagrams are looped back to sockets on this host.
    pub multicast_loop: bool,
}

fn new_socket(group: IpAddr) -> io::Result<Socket> {
    let domain = match group {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if group.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    Ok(sock)
}

fn wildcard(group: IpAddr, port: u16) -> SocketAddr {
    match group {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
    }
}

/// Creates a socket on `port` (wildcard address) that any number of receivers
/// on this host can share, configured to receive only the groups it joins.
///
/// Sharing relies on `SO_REUSEADDR` alone: every socket bound to the port
/// gets its own copy of each multicast datagram for a group it joined.
/// `SO_REUSEPORT` must not be set. Sockets that set it and bind the same
/// address and port form a reuseport group, and Linux balances datagrams across
/// such a group by flow hash. For IPv4 multicast this also happens after UDP
/// early demux has picked the one socket that joined the datagram's group
/// (seen on Linux 6.18). So the datagram can land on a socket of that reuseport
/// group that never joined the multicast group, and the socket that did join
/// never sees it. That happens for a lone receiver of one group next to
/// receivers of another group, and for source-specific receivers of one group
/// with different sources.
///
/// `IP_MULTICAST_ALL` is turned off before `bind`: a bound wildcard socket with
/// it on would already queue datagrams for groups other sockets on this host
/// joined.
fn bind_shared(group: IpAddr, port: u16) -> anyhow::Result<Socket> {
    let sock = new_socket(group).context("creating UDP socket")?;
    sock.set_reuse_address(true)?;
    match group {
        IpAddr::V4(_) => {
            sock.set_multicast_all_v4(false)?;
            setsockopt_int(sock.as_raw_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
        }
        IpAddr::V6(_) => {
            sock.set_multicast_all_v6(false)?;
            sock.set_recv_hoplimit_v6(true)?;
        }
    }
    sock.bind(&wildcard(group, port).into())
        .with_context(|| format!("binding UDP port {port}"))?;
    Ok(sock)
}

/// Creates a socket that has joined `group` on `port`.
///
/// Several such sockets can share a port on one host (`SO_REUSEADDR`, not
/// `SO_REUSEPORT`: see `bind_shared`). Each receives only the groups it joined
/// itself (`IP_MULTICAST_ALL` is off). With `source`, the join is
/// source-specific: only datagrams from that source are delivered.
pub fn bind_receiver(
    group: IpAddr,
    port: u16,
    iface: Option<&Iface>,
    source: Option<IpAddr>,
) -> anyhow::Result<Socket> {
    if let Some(src) = source {
        if src.is_ipv4() != group.is_ipv4() {
            return Err(usage(format!(
                "source {src} and group {group} are not the same address family"
            )));
        }
        if src.is_multicast() || src.is_unspecified() {
            return Err(usage(format!("source {src} must be a unicast address")));
        }
    }
    let sock = bind_shared(group, port)?;
    let index = iface.map_or(0, |i| i.index);
    match (group, source) {
        (_, Some(src)) => join_source_group(&sock, index, group, src),
        (IpAddr::V4(g), None) => {
            sock.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(index))
        }
        (IpAddr::V6(g), None) => sock.join_multicast_v6(&g, index),
    }
    .with_context(|| match source {
        Some(src) => format!("joining group {group} for source {src}"),
        None => format!("joining group {group}"),
    })?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Creates an unconnected socket on an ephemeral port, configured with
/// [`configure_sending`] for sending to `group`.
pub fn bind_sender(
    group: IpAddr,
    iface: Option<&Iface>,
    opts: SendOptions,
) -> anyhow::Result<Socket> {
    let sock = new_socket(group).context("creating UDP socket")?;
    sock.bind(&wildcard(group, 0).into())
        .context("binding UDP socket")?;
    configure_sending(&sock, group, iface, opts)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Sets TTL/hop limit, multicast loopback and the outgoing interface.
pub fn configure_sending(
    sock: &Socket,
    group: IpAddr,
    iface: Option<&Iface>,
    opts: SendOptions,
) -> anyhow::Result<()> {
    if opts.ttl > 255 {
        return Err(usage(format!("TTL {} is out of range 0..=255", opts.ttl)));
    }
    match group {
        IpAddr::V4(_) => {
            sock.set_multicast_ttl_v4(opts.ttl)?;
            sock.set_multicast_loop_v4(opts.multicast_loop)?;
            if let Some(iface) = iface {
                // ip_mreqn selects the interface by index, which is exact even
                // when several interfaces share an address.
                let mreqn = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: 0 },
                    imr_address: libc::in_addr {
                        s_addr: u32::from(iface.v4.unwrap_or(Ipv4Addr::UNSPECIFIED)).to_be(),
                    },
                    imr_ifindex: iface.index as libc::c_int,
                };
                setsockopt(
                    sock.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_IF,
                    &mreqn,
                )
                .with_context(|| format!("setting multicast interface {}", iface.name))?;
            }
        }
        IpAddr::V6(_) => {
            sock.set_multicast_hops_v6(opts.ttl)?;
            sock.set_multicast_loop_v6(opts.multicast_loop)?;
            if let Some(iface) = iface {
                sock.set_multicast_if_v6(iface.index)
                    .with_context(|| format!("setting multicast interface {}", iface.name))?;
            }
        }
    }
    Ok(())
}

/// Joins `group` on one more interface (any-source), for a socket that
/// receives a group on several interfaces.
pub fn join_on(sock: &Socket, group: IpAddr, iface: &Iface) -> anyhow::Result<()> {
    match group {
        IpAddr::V4(g) => sock.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(iface.index)),
        IpAddr::V6(g) => sock.join_multicast_v6(&g, iface.index),
    }
    .with_context(|| format!("joining group {group} on {}", iface.name))
}

/// Converts a configured non-blocking socket2 socket into a tokio socket.
pub fn into_tokio(sock: Socket) -> anyhow::Result<UdpSocket> {
    let std_sock: std::net::UdpSocket = sock.into();
    std_sock.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(std_sock)?)
}

fn join_source_group(sock: &Socket, index: u32, group: IpAddr, source: IpAddr) -> io::Result<()> {
    // SAFETY: group_source_req is plain old data; all-zero is a valid value.
    let mut req: libc::group_source_req = unsafe { zeroed() };
    req.gsr_interface = index;
    req.gsr_group = to_storage(SocketAddr::new(group, 0));
    req.gsr_source = to_storage(SocketAddr::new(source, 0));
    let level = if group.is_ipv4() {
        libc::IPPROTO_IP
    } else {
        libc::IPPROTO_IPV6
    };
    setsockopt(sock.as_raw_fd(), level, libc::MCAST_JOIN_SOURCE_GROUP, &req)
}

fn to_storage(addr: SocketAddr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
        }
    }
    storage
}

fn from_storage(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

/// One datagram read by [`recv_with_ttl`].
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Number of payload bytes stored in the buffer.
    pub len: usize,
    /// The sender's address.
    pub from: SocketAddr,
    /// The IPv4 TTL / IPv6 hop limit the datagram arrived with, if reported.
    pub ttl: Option<u8>,
    /// The datagram was larger than the buffer and was cut.
    pub truncated: bool,
}

/// Receives one datagram into `buf`, with its sender and arrival TTL.
pub async fn recv_with_ttl(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let fd = sock.as_raw_fd();
    sock.async_io(Interest::READABLE, || recvmsg_ttl(fd, buf))
        .await
}

fn recvmsg_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero is valid for these plain C structs.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = &mut storage as *mut _ as *mut libc::c_void;
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points to live buffers of the sizes given above.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = from_storage(&storage)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown address family"))?;
    let mut ttl = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled in,
    // bounded by msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let is_ttl = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_TTL)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_HOPLIMIT);
            if is_ttl {
                let value = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                ttl = u8::try_from(value).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received {
        len: n as usize,
        from,
        ttl,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_round_trips_both_families() {
        for addr in [
            "10.1.2.3:4567".parse::<SocketAddr>().unwrap(),
            "[fd77::1]:10000".parse().unwrap(),
        ] {
            assert_eq!(from_storage(&to_storage(addr)), Some(addr));
        }
    }

    #[test]
    fn receivers_share_a_port_without_forming_a_reuseport_group() {
        // Binding only (no join, no traffic): the second socket takes the
        // first one's port.
        for group in ["239.1.1.1", "ff15::4242"] {
            let group: IpAddr = group.parse().unwrap();
            let first = bind_shared(group, 0).unwrap();
            let port = first.local_addr().unwrap().as_socket().unwrap().port();
            let second = bind_shared(group, port).unwrap();
            for sock in [&first, &second] {
                assert!(sock.reuse_address().unwrap(), "{group}");
                assert!(!sock.reuse_port().unwrap(), "{group}: no SO_REUSEPORT");
                let all = match group {
                    IpAddr::V4(_) => sock.multicast_all_v4().unwrap(),
                    IpAddr::V6(_) => sock.multicast_all_v6().unwrap(),
                };
                assert!(!all, "{group}: IP_MULTICAST_ALL off");
            }
        }
    }

    #[test]
    fn ssm_source_must_match_family_and_be_unicast() {
        let group: IpAddr = "232.1.1.1".parse().unwrap();
        let err = bind_receiver(group, 0, None, Some("fd00::1".parse().unwrap())).unwrap_err();
        assert!(err.is::<crate::exit::BadInput>(), "{err:#}");
        let err = bind_receiver(group, 0, None, Some("224.0.0.1".parse().unwrap())).unwrap_err();
        assert!(err.is::<crate::exit::BadInput>(), "{err:#}");
    }
}

//! The raw IGMP socket `mcast querier` sends its queries on and hears other
//! queriers' on (needs root: `CAP_NET_RAW`).
//!
//! The kernel writes the IP header: TTL 1, TOS 0xc0 (internetwork
//! control), the Router Alert option (RFC 2113, required by RFC 2236 and
//! 3376), and the interface's address as source, which is the address the
//! querier election compares. The socket is bound to its interface, so it
//! hears only IGMP that arrived there; its own queries are not looped back.

use anyhow::Context as _;
use lanio::iface::Iface;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;
use wire::igmp::ALL_SYSTEMS;

/// IPv4 Router Alert option: type 148, length 4, value 0.
const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0, 0];
/// TOS of IGMP messages (as Linux sends its own).
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;

/// A raw IGMP socket on one interface.
#[derive(Debug)]
pub struct IgmpSocket {
    fd: AsyncFd<Socket>,
}

impl IgmpSocket {
    /// Opens the socket on `iface`, whose IPv4 address is `addr`.
    pub fn open(iface: &Iface, addr: Ipv4Addr) -> anyhow::Result<IgmpSocket> {
        let sock = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_IGMP)),
        )
        .context("opening a raw IGMP socket (needs root)")?;
        sock.bind_device(Some(iface.name.as_bytes()))
            .with_context(|| format!("binding to interface {}", iface.name))?;
        sock.set_multicast_if_v4(&addr)?;
        sock.set_multicast_ttl_v4(1)?;
        sock.set_multicast_loop_v4(false)?;
        sock.set_tos_v4(TOS_INTERNETWORK_CONTROL)?;
        // SAFETY: ROUTER_ALERT is a live 4-byte array, the length we pass.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_OPTIONS,
                ROUTER_ALERT.as_ptr() as *const libc::c_void,
                ROUTER_ALERT.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("setting the Router Alert option");
        }
        sock.set_nonblocking(true)?;
        Ok(IgmpSocket {
            // SAFETY: the AsyncFd owns the socket, so its descriptor stays
            // open for as long as the registration lives.
            fd: unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)?,
        })
    }

    /// Sends one IGMP message to the all-systems group 224.0.0.1.
    pub fn send_to_all_systems(&self, msg: &[u8]) -> io::Result<()> {
        let to = SockAddr::from(SocketAddrV4::new(ALL_SYSTEMS, 0));
        self.fd.get_ref().send_to(msg, &to).map(drop)
    }

    /// Receives the next IGMP packet, IP header included, into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: initialised bytes are valid MaybeUninit<u8>, and recv
            // only ever writes initialised bytes into them.
            let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            match guard.try_io(|fd| fd.get_ref().recv(uninit)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

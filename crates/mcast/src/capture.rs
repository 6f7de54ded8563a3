//! Capturing the IGMP and MLD packets an interface sends and receives, for
//! `mcast igmp` (needs root: `CAP_NET_RAW`).
//!
//! A packet socket (`AF_PACKET`) in cooked mode (`SOCK_DGRAM`) hands over
//! every packet from its IP header on, incoming and outgoing, before the IP
//! layer drops reports for groups this host never joined. A classic BPF
//! filter keeps only IPv4 protocol 2 (IGMP) and IPv6 packets whose first
//! next header is hop-by-hop (0, as MLD packets carry Router Alert) or
//! ICMPv6 (58), so the rest of the traffic never reaches user space.
//! All-multicast membership on the watched interfaces keeps network cards
//! from filtering out groups nobody here joined (it ends with the socket).
//!
//! Unlike a raw IGMP socket this sees messages with a bad checksum too,
//! and IGMPv2 reports, which go to the group itself.

use anyhow::Context as _;
use lanio::iface::Iface;
use socket2::{Domain, SockFilter, Socket, Type};
use std::ffi::CStr;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, RawFd};
use tokio::io::unix::AsyncFd;

const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86dd;

/// Whether a captured packet came in or went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

/// One captured packet: `len` bytes of the buffer, from the IP header on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    pub len: usize,
    pub ifindex: u32,
    pub direction: Direction,
}

/// A packet socket watching one interface or all of them.
#[derive(Debug)]
pub struct Capture {
    fd: AsyncFd<Socket>,
}

/// `ld [SKF_AD_PROTOCOL]` … `ret`: the filter described in the module notes.
fn filter() -> [libc::sock_filter; 10] {
    use libc::{sock_filter, BPF_ABS, BPF_B, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let op = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ld = |size: u32, k: u32| op(BPF_LD | size | BPF_ABS, 0, 0, k);
    let jeq = |k: u32, jt: u8, jf: u8| op(BPF_JMP | BPF_JEQ | BPF_K, jt, jf, k);
    let ret = |k: u32| op(BPF_RET | BPF_K, 0, 0, k);
    let protocol = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    [
        ld(BPF_W, protocol),      // 0: A = ethertype
        jeq(ETH_P_IP, 0, 2),      // 1: IPv4 → 2, else → 4
        ld(BPF_B, 9),             // 2: A = IPv4 protocol
        jeq(2, 4, 5),             // 3: IGMP → 8, else → 9
        jeq(ETH_P_IPV6, 0, 4),    // 4: IPv6 → 5, else → 9
        ld(BPF_B, 6),             // 5: A = IPv6 next header
        jeq(58, 1, 0),            // 6: ICMPv6 → 8, else → 7
        jeq(0, 0, 1),             // 7: hop-by-hop → 8, else → 9
        ret(u32::from(u16::MAX)), // 8: accept
        ret(0),                   // 9: drop
    ]
}

impl Capture {
    /// Opens the socket on `iface`, or on every interface.
    pub fn open(iface: Option<&Iface>) -> anyhow::Result<Capture> {
        // Protocol 0 receives nothing until bind, so no packet gets in
        // before the filter is attached.
        let sock = Socket::new(Domain::PACKET, Type::DGRAM, None)
            .context("opening a packet socket (needs root)")?;
        let prog: Vec<SockFilter> = filter()
            .iter()
            .map(|f| SockFilter::new(f.code, f.jt, f.jf, f.k))
            .collect();
        sock.attach_filter(&prog)
            .context("attaching the IGMP/MLD filter")?;
        let index = iface.map_or(0, |i| i.index);
        bind_all(sock.as_raw_fd(), index).context("binding the packet socket")?;
        let watched = match iface {
            Some(i) => vec![i.index],
            None => all_interfaces(),
        };
        for index in watched {
            if let Err(e) = all_multicast(sock.as_raw_fd(), index) {
                tracing::warn!("all-multicast on interface {index}: {e}");
            }
        }
        sock.set_nonblocking(true)?;
        Ok(Capture {
            // SAFETY: the AsyncFd owns the socket, so its descriptor stays
            // open for as long as the registration lives.
            fd: unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)?,
        })
    }

    /// Receives the next packet into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Captured> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_packet(fd.as_raw_fd(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

fn bind_all(fd: RawFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a live sockaddr_ll of the length we pass.
    let rc = unsafe {
        libc::bind(
            fd,
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn all_multicast(fd: RawFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
    let mut mreq: libc::packet_mreq = unsafe { zeroed() };
    mreq.mr_ifindex = ifindex as i32;
    mreq.mr_type = libc::PACKET_MR_ALLMULTI as u16;
    // SAFETY: `mreq` is a live packet_mreq of the length we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq as *const libc::packet_mreq as *const libc::c_void,
            size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn recv_packet(fd: RawFd, buf: &mut [u8]) -> io::Result<Captured> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut from: libc::sockaddr_ll = unsafe { zeroed() };
    let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` and `from` are live buffers of the lengths we pass.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            0,
            &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
            &mut from_len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Captured {
        len: n as usize,
        ifindex: from.sll_ifindex as u32,
        direction: if from.sll_pkttype == libc::PACKET_OUTGOING {
            Direction::Out
        } else {
            Direction::In
        },
    })
}

/// Every interface's index (`if_nameindex`).
fn all_interfaces() -> Vec<u32> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array ending in a zero entry, freed below.
    unsafe {
        let head = libc::if_nameindex();
        if head.is_null() {
            return out;
        }
        let mut cur = head;
        while (*cur).if_index != 0 {
            out.push((*cur).if_index);
            cur = cur.add(1);
        }
        libc::if_freenameindex(head);
    }
    out
}

/// The name of interface `index`, or the number when it has none (any more).
pub fn if_name(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes, as if_indextoname needs.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return format!("if{index}");
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_jumps_stay_inside_and_end_in_accept_or_drop() {
        let prog = filter();
        let jump = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        for (i, f) in prog.iter().enumerate() {
            if f.code == jump {
                assert!(
                    i + 1 + usize::from(f.jt.max(f.jf)) < prog.len(),
                    "jump at {i}"
                );
            }
        }
        assert_eq!((prog[8].code, prog[8].k), (ret, 65_535));
        assert_eq!((prog[9].code, prog[9].k), (ret, 0));
    }
}

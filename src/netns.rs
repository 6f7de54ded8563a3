//! Throw-away network namespaces for tests, demos and benchmarks.
//!
//! Everything here exists only inside namespaces this process created, named
//! `lsw-<pid>-<n>-<tag>`, so no traffic reaches the machine's real interfaces.
//! All of it is deleted on drop (also while unwinding from a failed assertion),
//! and namespaces left behind by processes that died are removed by
//! [`cleanup_stale`], which [`Netns::new`] runs once per process.
//!
//! - [`Netns`]: one namespace with `lo` up; run commands inside it, or make
//!   sockets there from the test itself ([`Netns::run_inside`]).
//! - [`Lan`]: N hosts, each in its own namespace with `eth0`, connected by veth
//!   pairs to a Linux bridge that lives in a dedicated namespace. Hosts get
//!   `10.77.0.<i+1>/24` (and `fd77::<i+1>/64` with [`LanOptions::ipv6`]; on
//!   subnet `s` of [`Lan::with_subnet`], `10.77.s.<i+1>` and `fd77:0:0:s::<i+1>`),
//!   multicast routes (`224.0.0.0/4`, `ff00::/8` on `eth0`) and, with
//!   [`LanOptions::rate_mbit`], a `tbf` rate limit on their `eth0`.
//!   The bridge floods multicast (IGMP/MLD snooping off), like a hub.
//!   [`Lan::attach`] plugs an interface of another namespace (a router's)
//!   into the bridge.
//! - [`is_root`], [`skip_unless_root`]: namespaces need root; tests skip without.
//!
//! ```no_run
//! use lanswarm::netns::{skip_unless_root, Lan, LanOptions};
//!
//! if skip_unless_root("my_test") {
//!     return;
//! }
//! let lan = Lan::new(3, LanOptions { rate_mbit: Some(100), ipv6: false }).unwrap();
//! let server = lan.server();
//! let out = lan.clients()[0]
//!     .command("ping")
//!     .args(["-c1", &server.ipv4().to_string()])
//!     .output()
//!     .unwrap();
//! assert!(out.status.success());
//! // Namespaces, veths and the bridge disappear when `lan` is dropped.
//! ```

use std::ffi::OsStr;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// Prefix of every namespace created here.
pub const PREFIX: &str = "lsw-";

/// Name of the host side interface in every [`Lan`] host.
pub const HOST_IF: &str = "eth0";

/// Most hosts a [`Lan`] can have (one /24 minus the bridge's spare addresses).
pub const MAX_HOSTS: usize = 250;

static COUNTER: AtomicU32 = AtomicU32::new(0);
static CLEANUP: Once = Once::new();

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns `true` (after printing why) when `test` must be skipped because
/// network namespaces need root. Use as `if skip_unless_root("name") { return; }`.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root to create network namespaces (run the tests as root)");
    true
}

/// Runs `cmd`, returning its stdout, or an error carrying its stderr.
fn run(mut cmd: Command) -> io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn ip(args: &[&str]) -> io::Result<String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run(cmd)
}

/// Deletes `lsw-<pid>-…` namespaces whose creating process no longer exists.
pub fn cleanup_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let alive = match rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) {
            Some(pid) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
            None => true, // not one of ours after all
        };
        if !alive {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A network namespace with `lo` up, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `lsw-<pid>-<n>-<tag>` (tag shortened to keep names readable).
    pub fn new(tag: &str) -> io::Result<Netns> {
        CLEANUP.call_once(cleanup_stale);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(24)
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{tag}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    /// `ip` execs the program, so the child's pid is the program's own and
    /// signals reach it directly.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `ip -n NAME ARGS…` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        run(cmd)
    }

    /// Runs `program args…` inside the namespace to completion, returning stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let mut cmd = self.command(program);
        cmd.args(args);
        run(cmd)
    }

    /// Runs `f` on a thread that entered the namespace, and returns what it
    /// returns: sockets made there stay in the namespace wherever they are
    /// used afterwards (a test's own clients).
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = format!("/var/run/netns/{}", self.name);
        let file = std::fs::File::open(&path)?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    use std::os::fd::AsRawFd as _;
                    // SAFETY: setns on an open namespace file; it changes only this thread.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(f())
                })
                .join()
                .map_err(|_| io::Error::other("the thread inside the namespace panicked"))?
        })
    }

    /// Sets a sysctl inside the namespace, e.g. `("net.ipv6.conf.all.accept_dad", "0")`.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(drop)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

/// How to build a [`Lan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LanOptions {
    /// Rate limit (token bucket, `tc … tbf`) on every host's `eth0` egress, in Mbit/s.
    pub rate_mbit: Option<u32>,
    /// Also give hosts IPv6 addresses `fd77::<i+1>/64` (DAD off, usable at once).
    pub ipv6: bool,
}

/// One host of a [`Lan`]: a namespace whose `eth0` is plugged into the bridge.
#[derive(Debug)]
pub struct Host {
    ns: Netns,
    index: usize,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
}

impl Host {
    /// Position in [`Lan::hosts`] (0 is the server).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Namespace name of this host.
    pub fn name(&self) -> &str {
        self.ns.name()
    }

    /// The host's namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The interface connected to the LAN ([`HOST_IF`]).
    pub fn ifname(&self) -> &str {
        HOST_IF
    }

    /// IPv4 address on `eth0` (`10.77.0.<index+1>`).
    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    /// IPv6 address on `eth0` (`fd77::<index+1>`), if the LAN has IPv6.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6
    }

    /// A command running `program` on this host.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.ns.command(program)
    }

    /// Limits `eth0` egress to `mbit` Mbit/s with a token bucket, or removes the
    /// limit with `None`.
    pub fn set_rate(&self, mbit: Option<u32>) -> io::Result<()> {
        let ns = self.ns.name();
        let mut cmd = Command::new("tc");
        match mbit {
            Some(rate) => {
                // Burst: 10 ms worth of traffic, but at least a few full frames.
                let burst = (u64::from(rate) * 1_250).max(16 * 1_514);
                cmd.args(["-n", ns, "qdisc", "replace", "dev", HOST_IF, "root", "tbf"])
                    .args(["rate", &format!("{rate}mbit"), "burst", &burst.to_string()])
                    .args(["latency", "50ms"]);
            }
            None => {
                cmd.args(["-n", ns, "qdisc", "del", "dev", HOST_IF, "root"]);
            }
        }
        run(cmd).map(drop)
    }
}

/// N hosts on one Ethernet segment (a bridge in its own namespace).
///
/// Fields drop in order: hosts first, then the bridge namespace.
#[derive(Debug)]
pub struct Lan {
    hosts: Vec<Host>,
    bridge: Netns,
    subnet: u8,
    ipv6: bool,
}

impl Lan {
    /// Builds the LAN: bridge namespace, `n_hosts` host namespaces, veth pairs,
    /// addresses, multicast routes and optional rate limits.
    pub fn new(n_hosts: usize, opts: LanOptions) -> io::Result<Lan> {
        Lan::with_subnet(n_hosts, opts, 0)
    }

    /// Like [`Lan::new`], on `10.77.<subnet>.0/24` (and `fd77:0:0:<subnet>::/64`),
    /// so that several LANs can be joined by a router.
    pub fn with_subnet(n_hosts: usize, opts: LanOptions, subnet: u8) -> io::Result<Lan> {
        if n_hosts == 0 || n_hosts > MAX_HOSTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a LAN has 1 to {MAX_HOSTS} hosts, not {n_hosts}"),
            ));
        }
        let bridge = Netns::new("br")?;
        bridge.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        bridge.ip(&["link", "set", "br0", "up"])?;
        let mut lan = Lan {
            hosts: Vec::with_capacity(n_hosts),
            bridge,
            subnet,
            ipv6: opts.ipv6,
        };
        for index in 0..n_hosts {
            let host = lan.add_host(index, &opts)?;
            lan.hosts.push(host);
        }
        Ok(lan)
    }

    fn add_host(&self, index: usize, opts: &LanOptions) -> io::Result<Host> {
        let ns = Netns::new(&format!("h{index}"))?;
        if opts.ipv6 {
            // Addresses must be usable at once: no duplicate address detection.
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        }
        let octet = u8::try_from(index + 1).expect("index checked against MAX_HOSTS");
        let (ipv4, ipv6) = self.plug(&ns, HOST_IF, &format!("veth{index}"), octet)?;
        ns.ip(&["route", "add", "224.0.0.0/4", "dev", HOST_IF])?;
        if opts.ipv6 {
            ns.ip(&[
                "-6", "route", "add", "ff00::/8", "dev", HOST_IF, "table", "main",
            ])?;
        }
        let host = Host {
            ns,
            index,
            ipv4,
            ipv6,
        };
        if let Some(rate) = opts.rate_mbit {
            host.set_rate(Some(rate))?;
        }
        Ok(host)
    }

    /// Plugs a new veth into the bridge (bridge side named `port`) whose
    /// other end is `ifname` in `ns`, addressed `10.77.<subnet>.<octet>/24`
    /// (and `fd77:0:0:<subnet>::<octet>/64` on an IPv6 LAN), and brings it up.
    fn plug(
        &self,
        ns: &Netns,
        ifname: &str,
        port: &str,
        octet: u8,
    ) -> io::Result<(Ipv4Addr, Option<Ipv6Addr>)> {
        self.bridge.ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            ns.name(),
        ])?;
        self.bridge
            .ip(&["link", "set", port, "master", "br0", "up"])?;
        let ipv4 = self.ipv4(octet);
        ns.ip(&["addr", "add", &format!("{ipv4}/24"), "dev", ifname])?;
        let ipv6 = if self.ipv6 {
            let v6 = self.ipv6(octet);
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                ifname,
                "nodad",
            ])?;
            Some(v6)
        } else {
            None
        };
        ns.ip(&["link", "set", ifname, "up"])?;
        Ok((ipv4, ipv6))
    }

    /// Plugs interface `ifname` of namespace `ns` (a router, say) into this
    /// LAN's bridge with address `10.77.<subnet>.<octet>` (an octet no host
    /// uses: 251 to 254 are always free). Returns the address.
    pub fn attach(&self, ns: &Netns, ifname: &str, octet: u8) -> io::Result<Ipv4Addr> {
        if ns.ip(&["link", "show", ifname]).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already has an interface {ifname}", ns.name()),
            ));
        }
        self.plug(ns, ifname, &format!("att{octet}"), octet)
            .map(|(v4, _)| v4)
    }

    /// The LAN's IPv4 address ending in `octet` (`10.77.<subnet>.<octet>`).
    pub fn ipv4(&self, octet: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, octet)
    }

    /// The LAN's IPv6 address ending in `octet` (`fd77:0:0:<subnet>::<octet>`).
    pub fn ipv6(&self, octet: u8) -> Ipv6Addr {
        Ipv6Addr::new(
            0xfd77,
            0,
            0,
            u16::from(self.subnet),
            0,
            0,
            0,
            u16::from(octet),
        )
    }

    /// All hosts, in creation order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host number `i` (panics if out of range).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Host 0, by convention the server of a client/server testbed.
    pub fn server(&self) -> &Host {
        &self.hosts[0]
    }

    /// Hosts 1.., by convention the clients.
    pub fn clients(&self) -> &[Host] {
        &self.hosts[1..]
    }

    /// The namespace holding the bridge `br0` (e.g. for `tc` or `bridge` inspection).
    pub fn bridge(&self) -> &Netns {
        &self.bridge
    }
}

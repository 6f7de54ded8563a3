//! Two LAN segments joined by a multicast router, built from network
//! namespaces ([`crate::netns`]), and the routing daemons that make the
//! router forward multicast.
//!
//! ```text
//!  segment A  10.77.1.0/24                                 segment B  10.77.2.0/24
//!  a0 .1  a1 .2 …  ──[br0]── eth-a .254 (router) eth-b .254 ──[br0]──  b0 .1  b1 .2 …
//! ```
//!
//! The router forwards unicast (`ip_forward`), so TCP works between the
//! segments as soon as the lab exists; hosts route everything but multicast
//! through it. Multicast crosses only once a daemon installs routes in the
//! kernel's multicast forwarding cache:
//!
//! - [`Daemon::Smcroute`] (`smcrouted`): static routes ([`StaticRoute`]), any
//!   source or one source; it forwards whether or not anyone listens.
//! - [`Daemon::Pimd`] (`pimd`, PIM-SM): the router is the IGMP querier on
//!   both segments and its own rendezvous point (a static `rp-address`), so
//!   it forwards a group to a segment only while a host there is a member,
//!   and for source-specific (IGMPv3) joins in 232/8 only from that source.
//!   pimd 2.3.2 (Debian 12) installs the static RP only about 20 s after it
//!   starts (it shows in the RP set it logs at the fourth 5-second timer
//!   tick; until then joins and data create no routing state at all), so
//!   [`RouterLab::start_pimd`] waits for that RP set line before it returns.
//!
//! The two packages conflict in Debian: install one at a time. A test finds
//! out at run time which is there ([`skip_unless_daemon`]) and skips, saying
//! why, when its daemon is missing or cannot start, or when the kernel has no
//! multicast routing at all (some VM kernels are built without it).
//!
//! Everything lives in namespaces this process made and is deleted on drop,
//! daemons included (their [`Proc`] is killed first).

use std::io;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::netns::{skip_unless_root, Host, Lan, LanOptions, Netns};
use crate::process::Proc;

/// The router's last octet on both segments.
pub const ROUTER_OCTET: u8 = 254;

/// Longest wait for a daemon to be ready (pimd needs about 20 s).
pub const DAEMON_READY: Duration = Duration::from_secs(60);

/// One of the two segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The router's interface on this segment.
    pub fn ifname(self) -> &'static str {
        match self {
            Side::A => "eth-a",
            Side::B => "eth-b",
        }
    }

    /// The third octet of the segment's /24.
    pub fn subnet(self) -> u8 {
        match self {
            Side::A => 1,
            Side::B => 2,
        }
    }
}

/// The two segments and the router.
///
/// Fields drop in order: the segments (hosts, bridges), then the router.
#[derive(Debug)]
pub struct RouterLab {
    a: Lan,
    b: Lan,
    router: Netns,
}

impl RouterLab {
    /// Builds segment A with `hosts_a` hosts, segment B with `hosts_b`, and
    /// the router between them; hosts get a default route via the router.
    pub fn new(hosts_a: usize, hosts_b: usize) -> io::Result<RouterLab> {
        let router = Netns::new("rt")?;
        router.sysctl("net.ipv4.ip_forward", "1")?;
        for conf in ["all", "default"] {
            router.sysctl(&format!("net.ipv4.conf.{conf}.rp_filter"), "0")?;
        }
        let lab = RouterLab {
            a: Lan::with_subnet(hosts_a, LanOptions::default(), Side::A.subnet())?,
            b: Lan::with_subnet(hosts_b, LanOptions::default(), Side::B.subnet())?,
            router,
        };
        for side in [Side::A, Side::B] {
            let lan = lab.segment(side);
            lan.attach(&lab.router, side.ifname(), ROUTER_OCTET)?;
            let gateway = lab.router_ipv4(side).to_string();
            for host in lan.hosts() {
                host.ns()
                    .ip(&["route", "add", "default", "via", &gateway])?;
            }
        }
        Ok(lab)
    }

    /// A segment.
    pub fn segment(&self, side: Side) -> &Lan {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// Host `i` of a segment (panics if out of range).
    pub fn host(&self, side: Side, i: usize) -> &Host {
        self.segment(side).host(i)
    }

    /// The router's namespace.
    pub fn router(&self) -> &Netns {
        &self.router
    }

    /// The router's address on a segment (`10.77.<1|2>.254`).
    pub fn router_ipv4(&self, side: Side) -> Ipv4Addr {
        self.segment(side).ipv4(ROUTER_OCTET)
    }

    /// Starts `smcrouted` in the router with these static routes and waits
    /// until it is ready.
    pub fn start_smcroute(&self, routes: &[StaticRoute]) -> Result<RunningDaemon, DaemonError> {
        let conf: String = routes.iter().map(StaticRoute::conf_line).collect();
        let (dir, conf_path) = write_conf("smcroute.conf", &conf)?;
        let mut cmd = self.router.command(Daemon::Smcroute.find_or_err()?);
        cmd.args(["-n", "-l", "debug", "-f"])
            .arg(&conf_path)
            .arg("-u")
            .arg(dir.path().join("sock"))
            .arg("-P")
            .arg(dir.path().join("pid"));
        let running = start(Daemon::Smcroute, cmd, dir, |line| {
            line.contains("Ready, waiting for client request")
        })?;
        // smcrouted gets ready even when it could not install a route.
        let output = running.proc.output();
        if output.contains("Parse error") {
            return Err(DaemonError::BadRoutes { output });
        }
        Ok(running)
    }

    /// Starts `pimd` in the router (PIM on both segments, the router's
    /// segment A address as static RP for 224.0.0.0/4) and waits until its RP
    /// set holds that RP (see the module notes: about 20 s).
    pub fn start_pimd(&self, opts: PimdOptions) -> Result<RunningDaemon, DaemonError> {
        let rp = self.router_ipv4(Side::A);
        let conf = opts.conf(rp);
        let (dir, conf_path) = write_conf("pimd.conf", &conf)?;
        let mut cmd = self.router.command(Daemon::Pimd.find_or_err()?);
        cmd.args([
            "-f",
            "-s",
            "debug",
            "--debug=kernel,cache,pim_cand_rp,igmp_members",
            "-c",
        ])
        .arg(&conf_path);
        let rp_line = format!("{rp} ");
        start(Daemon::Pimd, cmd, dir, move |line| {
            line.starts_with(&rp_line) && line.contains("224/4")
        })
    }

    /// The router's multicast forwarding cache (`ip mroute show`).
    pub fn mroutes(&self) -> io::Result<Vec<Mroute>> {
        Ok(parse_mroutes(&self.router.ip(&["mroute", "show"])?))
    }
}

/// A multicast routing daemon from Debian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// `smcrouted` from package `smcroute`: static multicast routes.
    Smcroute,
    /// `pimd` from package `pimd`: PIM-SM/SSM with IGMP.
    Pimd,
}

impl Daemon {
    /// The program's name.
    pub fn program(self) -> &'static str {
        match self {
            Daemon::Smcroute => "smcrouted",
            Daemon::Pimd => "pimd",
        }
    }

    /// The Debian package holding it.
    pub fn package(self) -> &'static str {
        match self {
            Daemon::Smcroute => "smcroute",
            Daemon::Pimd => "pimd",
        }
    }

    /// The installed program, searched in `PATH` and the sbin directories.
    pub fn find(self) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
            .map(|dir| dir.join(self.program()))
            .find(|p| p.is_file())
    }

    fn find_or_err(self) -> Result<PathBuf, DaemonError> {
        self.find().ok_or(DaemonError::Missing(self))
    }
}

/// Why a daemon is not running.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "{} is not installed (apt-get install {}; smcroute and pimd conflict, install one at a time)",
        .0.program(),
        .0.package()
    )]
    Missing(Daemon),
    #[error("{} exited before it was ready:\n{output}", .daemon.program())]
    Exited { daemon: Daemon, output: String },
    #[error("{} was not ready after {waited:?}:\n{output}", .daemon.program())]
    NotReady {
        daemon: Daemon,
        waited: Duration,
        output: String,
    },
    #[error("smcrouted refused its routes:\n{output}")]
    BadRoutes { output: String },
    #[error(
        "this kernel has no IPv4 multicast routing (CONFIG_IP_MROUTE: no /proc/net/ip_mr_vif), \
         so no daemon can forward multicast"
    )]
    NoKernelRouting,
    #[error("writing the daemon's configuration: {0}")]
    Io(#[from] io::Error),
}

/// Whether the kernel can route IPv4 multicast (it lists its virtual
/// interfaces in `/proc/net/ip_mr_vif` when it can).
pub fn kernel_routes_multicast() -> bool {
    Path::new("/proc/net/ip_mr_vif").exists()
}

/// Returns `true` (after printing why) when `test` must be skipped: no
/// root, a kernel without multicast routing, or `daemon` is not installed.
pub fn skip_unless_daemon(test: &str, daemon: Daemon) -> bool {
    if skip_unless_root(test) {
        return true;
    }
    if !kernel_routes_multicast() {
        eprintln!("SKIPPED {test}: {}", DaemonError::NoKernelRouting);
        return true;
    }
    if daemon.find().is_some() {
        return false;
    }
    eprintln!("SKIPPED {test}: {}", DaemonError::Missing(daemon));
    true
}

/// Unwraps a started daemon; a daemon that is missing or exits at once
/// skips the test (prints why and returns `None`), one that never gets
/// ready fails it.
pub fn started_or_skip(
    test: &str,
    result: Result<RunningDaemon, DaemonError>,
) -> Option<RunningDaemon> {
    match result {
        Ok(daemon) => Some(daemon),
        Err(e @ (DaemonError::Missing(_) | DaemonError::Exited { .. })) => {
            eprintln!("SKIPPED {test}: the routing daemon cannot start: {e}");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// A running daemon. Dropping it kills the daemon and removes its files.
pub struct RunningDaemon {
    pub daemon: Daemon,
    /// The daemon's process; its log lines can be awaited ([`Proc::wait_for`]).
    pub proc: Proc,
    /// How long the daemon took to be ready.
    pub ready_after: Duration,
    /// Configuration, pid file and control socket.
    pub dir: tempfile::TempDir,
}

impl RunningDaemon {
    /// Waits for a log line of the daemon containing all of `needles`.
    pub fn expect_log(&mut self, needles: &[&str], timeout: Duration) -> String {
        self.proc
            .wait_for(timeout, |_, line| needles.iter().all(|n| line.contains(n)))
            .unwrap_or_else(|e| panic!("waiting for {needles:?} in the log: {e}"))
    }
}

fn write_conf(name: &str, text: &str) -> io::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("lanswarm-mrouter-")
        .tempdir()?;
    let path = dir.path().join(name);
    std::fs::write(&path, text)?;
    Ok((dir, path))
}

fn start(
    daemon: Daemon,
    mut cmd: std::process::Command,
    dir: tempfile::TempDir,
    ready: impl Fn(&str) -> bool,
) -> Result<RunningDaemon, DaemonError> {
    // The daemon starts with no blocked signals, whatever its parent blocks
    // (a program waiting for Ctrl-C with sigwait blocks SIGINT and SIGTERM).
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe and touch
    // only a local set and the child's own mask.
    unsafe {
        cmd.pre_exec(|| {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    let started = Instant::now();
    let mut proc = Proc::spawn(daemon.program(), cmd);
    match proc.wait_for(DAEMON_READY, |_, line| ready(line)) {
        Ok(_) => Ok(RunningDaemon {
            daemon,
            proc,
            ready_after: started.elapsed(),
            dir,
        }),
        Err(output) => {
            let exited = proc.wait_exit(Duration::ZERO).is_ok();
            if exited {
                Err(DaemonError::Exited { daemon, output })
            } else {
                Err(DaemonError::NotReady {
                    daemon,
                    waited: DAEMON_READY,
                    output,
                })
            }
        }
    }
}

/// An smcroute route: `group` (from `source` only, if given) arriving on
/// segment `from` is forwarded to segment `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute {
    pub from: Side,
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub to: Side,
}

impl StaticRoute {
    /// Any source's `group`, from `from` to `to`.
    pub fn any_source(from: Side, group: Ipv4Addr, to: Side) -> StaticRoute {
        StaticRoute {
            from,
            source: None,
            group,
            to,
        }
    }

    /// The route as an `smcroute.conf` line.
    pub fn conf_line(&self) -> String {
        let source = self
            .source
            .map(|s| format!(" source {s}"))
            .unwrap_or_default();
        format!(
            "mroute from {}{source} group {} to {}\n",
            self.from.ifname(),
            self.group,
            self.to.ifname()
        )
    }
}

/// pimd settings beyond the lab's fixed ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PimdOptions {
    /// `igmp-query-interval` in seconds (pimd's default: 12). pimd keeps a
    /// group after its last report for robustness 3 × this + 10 s.
    pub igmp_query_interval: Option<u32>,
}

impl PimdOptions {
    fn conf(&self, rp: Ipv4Addr) -> String {
        let mut conf = String::new();
        for side in [Side::A, Side::B] {
            conf.push_str(&format!("phyint {} enable\n", side.ifname()));
        }
        if let Some(secs) = self.igmp_query_interval {
            conf.push_str(&format!("igmp-query-interval {secs}\n"));
        }
        conf.push_str(&format!(
            "rp-address {rp} 224.0.0.0/4\nspt-threshold infinity\n"
        ));
        conf
    }

    /// How long pimd keeps forwarding a group after the last report from a
    /// segment, when no IGMPv2 leave ends it sooner: robustness (3) × the
    /// query interval + the query response interval (10 s).
    pub fn group_membership_interval(&self) -> Duration {
        Duration::from_secs(3 * u64::from(self.igmp_query_interval.unwrap_or(12)) + 10)
    }
}

/// One entry of the kernel's multicast forwarding cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mroute {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    /// Incoming interface (`unresolved` while the daemon has not decided).
    pub iif: String,
    /// Outgoing interfaces.
    pub oifs: Vec<String>,
}

impl Mroute {
    /// Whether datagrams of this (S,G) leave through the segment's interface.
    pub fn forwards_to(&self, side: Side) -> bool {
        self.oifs.iter().any(|o| o == side.ifname())
    }
}

/// Parses `ip mroute show`: `(S, G)  Iif: IF  Oifs: IF IF …  State: …` lines.
pub fn parse_mroutes(text: &str) -> Vec<Mroute> {
    text.lines()
        .filter_map(|line| {
            let (sg, rest) = line.trim().strip_prefix('(')?.split_once(')')?;
            let (source, group) = sg.split_once(',')?;
            let mut words = rest.split_whitespace();
            let mut iif = String::new();
            let mut oifs = Vec::new();
            let mut in_oifs = false;
            while let Some(w) = words.next() {
                match w {
                    "Iif:" => iif = words.next().unwrap_or_default().to_string(),
                    "Oifs:" => in_oifs = true,
                    "State:" => in_oifs = false,
                    _ if in_oifs => oifs.push(w.to_string()),
                    _ => {}
                }
            }
            Some(Mroute {
                source: source.trim().parse().ok()?,
                group: group.trim().parse().ok()?,
                iif,
                oifs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mroute_lines_from_ip_mroute_show() {
        let text =
            "(10.78.1.1,239.9.1.1)            Iif: eth-a      Oifs: eth-b pimreg  State: resolved
(10.78.1.2,232.1.1.1)            Iif: eth-a      Oifs: pimreg  State: resolved
(10.78.1.1,239.1.1.1)            Iif: unresolved  State: unresolved
";
        let m = parse_mroutes(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].group, Ipv4Addr::new(239, 9, 1, 1));
        assert!(m[0].forwards_to(Side::B));
        assert!(!m[1].forwards_to(Side::B));
        assert_eq!(m[1].oifs, ["pimreg"]);
        assert_eq!(m[2].iif, "unresolved");
        assert!(m[2].oifs.is_empty());
    }

    #[test]
    fn configuration_files() {
        let g = Ipv4Addr::new(239, 1, 2, 3);
        assert_eq!(
            StaticRoute::any_source(Side::A, g, Side::B).conf_line(),
            "mroute from eth-a group 239.1.2.3 to eth-b\n"
        );
        let ssm = StaticRoute {
            source: Some(Ipv4Addr::new(10, 77, 1, 1)),
            ..StaticRoute::any_source(Side::B, g, Side::A)
        };
        assert_eq!(
            ssm.conf_line(),
            "mroute from eth-b source 10.77.1.1 group 239.1.2.3 to eth-a\n"
        );
        let pimd = PimdOptions {
            igmp_query_interval: Some(2),
        };
        let conf = pimd.conf(Ipv4Addr::new(10, 77, 1, 254));
        assert!(
            conf.contains("rp-address 10.77.1.254 224.0.0.0/4\n"),
            "{conf}"
        );
        assert!(conf.contains("igmp-query-interval 2\n"), "{conf}");
        assert_eq!(pimd.group_membership_interval(), Duration::from_secs(16));
    }
}

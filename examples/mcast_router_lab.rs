//! Multicast across a router, by hand: builds two LAN segments joined by a
//! router running a multicast routing daemon, prints how to run `mcast` on
//! each side, and waits for Ctrl-C; then deletes everything it made.
//!
//! ```sh
//! cargo build --workspace --bins --examples
//! sudo target/debug/examples/mcast_router_lab                   # smcroute if installed, else pimd
//! sudo target/debug/examples/mcast_router_lab --daemon pimd     # or smcroute, or none
//! ```
//!
//! With smcroute the router forwards the default `mcast` group 224.3.29.71
//! and the SSM group 232.1.1.1 both ways, whether or not anyone listens.
//! With pimd it forwards any group to a segment while a host there is a
//! member (IGMP), and source-specific joins in 232/8 from their source only.
//! With none, only unicast crosses.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use lanswarm::router_lab::{Daemon, PimdOptions, RouterLab, RunningDaemon, Side, StaticRoute};

const HOSTS: usize = 2;
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 3, 29, 71);
const SSM_GROUP: Ipv4Addr = Ipv4Addr::new(232, 1, 1, 1);

fn main() -> ExitCode {
    // Block Ctrl-C and SIGTERM before any thread exists, so that all threads
    // inherit the mask and sigwait below receives them (the daemon unblocks
    // them for itself).
    let signals = block_stop_signals();
    let choice = match parse_args() {
        Ok(c) => c,
        Err(msg) => {
            eprintln!(
                "mcast_router_lab: {msg}\nusage: mcast_router_lab [--daemon smcroute|pimd|none]"
            );
            return ExitCode::from(2);
        }
    };
    if !lanswarm::netns::is_root() {
        eprintln!("mcast_router_lab: needs root to create network namespaces (run it with sudo)");
        return ExitCode::from(1);
    }
    let lab = match RouterLab::new(HOSTS, HOSTS) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("mcast_router_lab: cannot build the lab: {e}");
            return ExitCode::from(1);
        }
    };
    let daemon = match start_daemon(&lab, choice) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mcast_router_lab: {e}");
            return ExitCode::from(1);
        }
    };
    print_guide(&lab, daemon.as_ref());
    wait_for(&signals);
    eprintln!("\nmcast_router_lab: stopping the daemon, deleting the namespaces");
    drop(daemon);
    drop(lab);
    ExitCode::SUCCESS
}

/// Which daemon to run: `Some(None)` is none at all, `None` is "whichever is installed".
type Choice = Option<Option<Daemon>>;

fn parse_args() -> Result<Choice, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => Ok(None),
        ["--daemon", "smcroute"] => Ok(Some(Some(Daemon::Smcroute))),
        ["--daemon", "pimd"] => Ok(Some(Some(Daemon::Pimd))),
        ["--daemon", "none"] => Ok(Some(None)),
        _ => Err(format!("unexpected arguments {args:?}")),
    }
}

fn start_daemon(lab: &RouterLab, choice: Choice) -> Result<Option<RunningDaemon>, String> {
    let daemon = match choice {
        Some(d) => d,
        None => [Daemon::Smcroute, Daemon::Pimd]
            .into_iter()
            .find(|d| d.find().is_some()),
    };
    let Some(daemon) = daemon else {
        eprintln!(
            "mcast_router_lab: neither smcroute nor pimd is installed: only unicast will cross"
        );
        return Ok(None);
    };
    if !lanswarm::router_lab::kernel_routes_multicast() {
        eprintln!(
            "mcast_router_lab: {}: only unicast will cross",
            lanswarm::router_lab::DaemonError::NoKernelRouting
        );
        return Ok(None);
    }
    eprintln!(
        "mcast_router_lab: starting {} in the router…",
        daemon.program()
    );
    let running = match daemon {
        Daemon::Smcroute => {
            let mut routes = Vec::new();
            for (from, to) in [(Side::A, Side::B), (Side::B, Side::A)] {
                for group in [GROUP, SSM_GROUP] {
                    routes.push(StaticRoute::any_source(from, group, to));
                }
            }
            lab.start_smcroute(&routes)
        }
        Daemon::Pimd => lab.start_pimd(PimdOptions::default()),
    }
    .map_err(|e| e.to_string())?;
    eprintln!(
        "mcast_router_lab: {} ready after {:.1} s",
        daemon.program(),
        running.ready_after.as_secs_f64()
    );
    Ok(Some(running))
}

/// The `mcast` binary next to this example, if built.
fn mcast_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("examples") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .map(PathBuf::from)
        .unwrap_or_default();
    dir.join("mcast")
}

fn print_guide(lab: &RouterLab, daemon: Option<&RunningDaemon>) {
    let mcast = mcast_path();
    let m = mcast.display();
    if !mcast.exists() {
        println!("(build mcast first: cargo build -p mcast; expected at {m})\n");
    }
    println!("Two segments joined by a router:\n");
    for side in [Side::A, Side::B] {
        let lan = lab.segment(side);
        for (i, host) in lan.hosts().iter().enumerate() {
            println!(
                "  {side:?}{i}  {:<15} namespace {}",
                host.ipv4().to_string(),
                host.name()
            );
        }
    }
    println!(
        "  router {} (eth-a) / {} (eth-b), namespace {}, running {}\n",
        lab.router_ipv4(Side::A),
        lab.router_ipv4(Side::B),
        lab.router().name(),
        daemon.map_or("no multicast routing daemon", |d| d.daemon.program()),
    );
    let a0 = lab.host(Side::A, 0);
    let b0 = lab.host(Side::B, 0);
    let b1 = lab.host(Side::B, 1);
    let on = |h: &lanswarm::netns::Host| format!("sudo ip netns exec {}", h.name());
    println!("Try, each in its own terminal:\n");
    println!(
        "  {} {m} recv                      # B0 joins {GROUP}",
        on(b0)
    );
    println!(
        "  {} {m} igmp                      # B1 watches the joins and leaves",
        on(b1)
    );
    println!(
        "  {} {m} send hello --ttl 2        # crosses: B0 sees ttl 1",
        on(a0)
    );
    println!(
        "  {} {m} send hello --ttl 1        # stays on segment A",
        on(a0)
    );
    println!(
        "  {} {m} recv --group {SSM_GROUP} --source {}   # SSM: only A0's datagrams",
        on(b0),
        a0.ipv4()
    );
    println!(
        "  {} {m} groups                    # B0's memberships",
        on(b0)
    );
    println!(
        "  sudo ip netns exec {} ip mroute             # the router's forwarding cache",
        lab.router().name()
    );
    println!("\nCtrl-C here stops the daemon and deletes the namespaces.");
}

fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask
    // changes only this (still single) thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: sigwait on a set every thread blocks; `sig` is a live local.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
}

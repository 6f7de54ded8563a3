//! `mcast`: IP multicast from the command line — send, receive, ack, probe and
//! chat; and group management: watch IGMP/MLD, list memberships, be the querier.
//!
//! Module map:
//! - [`cli`]: clap definitions of the subcommands and their flags.
//! - [`send`]: `mcast send` — multicast a raw message, count unicast `ack` replies.
//! - [`recv`]: `mcast recv` — join (any-source or source-specific), print, answer `ack`.
//! - [`probe`]: `mcast probe send|recv` — paced numbered datagrams; loss, duplicates,
//!   reordering and one-way latency ([`probe::packet`], [`probe::stats`]), in
//!   fixed memory per stream and for a bounded number of streams ([`probe::receiver`]).
//! - [`chat`]: `mcast chat` — group chat with join/leave notices ([`chat::packet`]);
//!   members bound to their source, expiring, bounded ([`chat::room`]); answers
//!   to joins rate-limited, heartbeats ([`chat::announce`]).
//! - [`igmp`]: `mcast igmp` — every IGMP and MLD message on an interface, decoded
//!   ([`wire::inet`], [`wire::igmp`], [`wire::mld`]).
//! - [`capture`]: the packet socket `igmp` reads from (`AF_PACKET`, a BPF filter
//!   for IGMP and MLD, all-multicast).
//! - [`groups`]: `mcast groups` — this host's memberships from `/proc/net` ([`wire::procnet`]).
//! - [`querier`]: `mcast querier` — general queries and the querier election
//!   ([`wire::querier`]).
//! - [`igmp_socket`]: the raw IGMP socket the querier sends and hears queries on.
//! - [`preamble`]: the magic, version and kind bytes that open probe and chat datagrams.
//! - [`events`]: every event the program prints, one serde enum ([`events::Event`])
//!   with its `--json` line and its human sentence; tests read it back.
//! - [`duration`]: `200ms` / `1.5s` style durations.
//! - [`escape`]: escaping control characters in untrusted text.
//! - [`idle`]: idle timeouts restarted on activity.
//!
//! The I/O the three lanswarm programs share comes from the kit, [`lanio`]:
//! [`lanio::multicast`] builds the sockets (reuse, any-source and
//! source-specific joins, TTL, loop, interface, `IP_MULTICAST_ALL` off,
//! `recvmsg` with the arrival TTL), [`lanio::iface`] resolves `--iface`,
//! [`lanio::group`] checks groups and datagram sizes, [`lanio::harness`]
//! runs `main` (`RUST_LOG`, exit codes 0 ok, 1 runtime failure, 2 bad input
//! from [`lanio::BadInput`]), [`lanio::Signals`] turns Ctrl-C and SIGTERM
//! into a clean stop, and [`lanio::EventWriter`] prints the events without
//! ever blocking the sockets.
//!
//! Raw mode: `send` and `recv` put nothing but the message into a datagram and
//! answer with the three bytes `ack`, so scripts in any language interoperate.

pub mod capture;
pub mod chat;
pub mod cli;
pub mod duration;
pub mod escape;
pub mod events;
pub mod groups;
pub mod idle;
pub mod igmp;
pub mod igmp_socket;
pub mod preamble;
pub mod probe;
pub mod querier;
pub mod recv;
pub mod send;

use clap::Parser as _;
use lanio::harness::{Flavor, Program};
use lanio::Signals;
use std::process::ExitCode;
use std::time::Duration;

/// How `mcast` starts: one thread (on exit a thread still parked in a read
/// of stdin, chat's after Ctrl-C, is abandoned), warnings unless `RUST_LOG`
/// says otherwise.
pub const PROGRAM: Program = Program::new("mcast").flavor(Flavor::CurrentThread);

/// How long the last lines may take to reach a stalled stdout before exit.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a subcommand prints its events.
pub type Out = lanio::EventWriter<events::Event>;

/// Runs one parsed command to completion.
///
/// The signal handlers are installed before the subcommand starts, so before
/// it says it is ready (`joined`, `start`, `sent`, `listening`,
/// `querier_started`): a script may signal as
/// soon as it reads that line and still gets the summary and exit 0. Every
/// event is written out (for at most [`FLUSH_TIMEOUT`]) before this returns.
pub async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let out = Out::stdout(cli.command.common().json);
    let result = match cli.command {
        cli::Command::Send(args) => send::run(args, &out, &mut signals).await,
        cli::Command::Recv(args) => recv::run(args, &out, &mut signals).await,
        cli::Command::Probe(args) => match args.role {
            cli::ProbeRole::Send(a) => probe::run_send(a, &out, &mut signals).await,
            cli::ProbeRole::Recv(a) => probe::run_recv(a, &out, &mut signals).await,
        },
        cli::Command::Chat(args) => chat::run(args, &out, &mut signals).await,
        cli::Command::Igmp(args) => igmp::run(args, &out, &mut signals).await,
        cli::Command::Groups(args) => groups::run(args, &out).await,
        cli::Command::Querier(args) => querier::run(args, &out, &mut signals).await,
    };
    out.finish(FLUSH_TIMEOUT);
    result
}

/// The whole program: parse arguments, run, map errors to exit codes.
pub fn main_entry() -> ExitCode {
    let cli = cli::Cli::parse();
    lanio::harness::run(&PROGRAM, || run(cli))
}

//! `mcast`: IP multicast from the command line — send, receive, ack, probe and chat.
//!
//! Module map:
//! - [`cli`]: clap definitions of the subcommands and their flags.
//! - [`send`]: `mcast send` — multicast a raw message, count unicast `ack` replies.
//! - [`recv`]: `mcast recv` — join (any-source or source-specific), print, answer `ack`.
//! - [`probe`]: `mcast probe send|recv` — paced numbered datagrams; loss, duplicates,
//!   reordering and one-way latency ([`probe::packet`], [`probe::stats`]).
//! - [`chat`]: `mcast chat` — group chat with join/leave notices ([`chat::packet`]).
//! - [`sock`]: socket2 socket building: reuse, join/SSM join, TTL, loop, interface,
//!   `IP_MULTICAST_ALL` off, `recvmsg` with the arrival TTL.
//! - [`iface`]: `--iface NAME|ADDR` resolution (`if_nametoindex`, `getifaddrs`).
//! - [`group`]: group validation and datagram size limits.
//! - [`duration`]: `200ms` / `1.5s` style durations.
//! - [`escape`]: escaping control characters in untrusted text.
//! - [`idle`]: idle timeouts restarted on activity.
//! - [`output`]: human lines or `--json` event lines.
//! - [`signal`]: Ctrl-C / SIGTERM for a clean stop.
//! - [`error`]: usage errors and exit codes (0 ok, 1 runtime failure, 2 bad input).
//!
//! Raw mode: `send` and `recv` put nothing but the message into a datagram and
//! answer with the three bytes `ack`, so scripts in any language interoperate.

pub mod chat;
pub mod cli;
pub mod duration;
pub mod error;
pub mod escape;
pub mod idle;
pub mod output;
pub mod probe;
pub mod recv;
pub mod send;
pub mod signal;

use clap::Parser as _;
use std::process::ExitCode;

/// Runs one parsed command to completion.
pub async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Send(args) => send::run(args).await,
        cli::Command::Recv(args) => recv::run(args).await,
        cli::Command::Probe(args) => match args.role {
            cli::ProbeRole::Send(a) => probe::run_send(a).await,
            cli::ProbeRole::Recv(a) => probe::run_recv(a).await,
        },
        cli::Command::Chat(args) => chat::run(args).await,
    }
}

/// The whole program: parse arguments, run, map errors to exit codes.
pub fn main_entry() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCAST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcast: error: starting the runtime: {e}");
            return ExitCode::from(error::EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(run(cli));
    // Do not wait for the blocking thread that may still sit in a stdin read
    // (chat after Ctrl-C): the summary is printed, the process may end.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcast: error: {e:#}");
            error::exit_code(&e)
        }
    }
}

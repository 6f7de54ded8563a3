//! # peer: the lanswarm peer daemon
//!
//! | module | holds |
//! |---|---|
//! | [`cli`] | command-line arguments |
//! | [`create`] | `peer create`: hashing a file into a torrent |
//! | [`hashing`] | streaming SHA-1 of a file's pieces |
//! | [`storage`] | the preallocated data file and its resume file |
//! | [`session`] | one swarm session: start-up, accepting and dialing peers, tracker/choke/progress tasks, shutdown |
//! | [`peer_conn`] | one peer connection's driver: socket, clock and tasks around a `wire::Connection` |
//! | [`writer`] | a connection's writer task: messages, and zero-copy piece uploads |
//! | [`verifier`] | a connection's verifier task: hashing and storing received pieces |
//! | [`swarm`] | the state shared by a swarm's connections (private, see `STATE.md`): pieces, picker, peers, bans, counters |
//! | [`picker`] | rarest-first piece selection with end-game, and the request pipeline depth (sans-IO) |
//! | [`choker`] | the upload-slot policy (sans-IO) |
//! | [`tracker_client`] | announces to the tracker |
//! | [`output`] | JSON event lines, progress bar, human summary |
//! | [`zerocopy`] | `sendfile` from the page cache to a socket |
//! | [`serve`] / [`fetch`] | client/server mode: the seed's one-frame file transfer |
//!
//! The binary's `main` only parses arguments and calls [`run`].

pub mod choker;
pub mod cli;
pub mod create;
pub mod fetch;
pub mod hashing;
pub mod output;
pub mod peer_conn;
pub mod picker;
pub mod serve;
pub mod session;
pub mod storage;
pub mod swarm;
pub mod tracker_client;
pub mod verifier;
pub mod writer;
pub mod zerocopy;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Exit code for a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage or bad input.
pub const EXIT_BAD_INPUT: u8 = 2;

/// An error that should exit with [`EXIT_BAD_INPUT`] rather than [`EXIT_FAILURE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Sets up `tracing` on stderr; `RUST_LOG` overrides the default level.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs the command line, returning the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    init_logging("warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peer: cannot start runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Serve(args)) => serve::run(args).await,
            Some(Command::Fetch(args)) => fetch::run(args).await,
            Some(Command::Create(args)) => create::run(args),
            None => session::run(cli.swarm).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer: {e:#}");
            if e.chain().any(|c| c.is::<BadInput>()) {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

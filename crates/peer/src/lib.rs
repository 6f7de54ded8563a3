//! # peer: the lanswarm peer daemon
//!
//! | module | holds |
//! |---|---|
//! | [`cli`] | command-line arguments |
//! | [`create`] | `peer create`: hashing a file or a directory tree into a torrent |
//! | [`hashing`] | streaming SHA-1 of a file's, or several files', pieces |
//! | [`info`] | `peer info`: what a torrent describes |
//! | [`storage`] | the preallocated data files (one, or a directory's), an LRU of open descriptors, the resume file |
//! | [`durable`] | files written whole and durably (temp, fsync, rename, directory fsync), never through a link |
//! | [`diskspace`] | free space on the download's file system, checked before writing |
//! | [`beneath`] | opening files below the download directory without following links |
//! | [`session`] | one swarm session: start-up, accepting and dialing peers, tracker/choke/progress tasks, shutdown |
//! | [`peer_conn`] | one peer connection's driver: socket, clock and tasks around a `wire::Connection` |
//! | [`writer`] | a connection's writer task: messages, and zero-copy piece uploads |
//! | [`reader`] | a connection's reading side: messages, and pieces streamed in chunks |
//! | [`chunks`] | the buffers received piece data travels in, under one byte budget for all connections |
//! | [`receive`] | the receive pool: pieces hashed and written chunk by chunk as they arrive, on threads sized to the cores |
//! | [`admission`] | who may connect: caps per address and in total, connections opening, evictions, bans by address, dial bounds and redial backoff (sans-IO) |
//! | [`swarm`] | the state shared by a swarm's connections (private, see `STATE.md`): pieces, picker, peers, bans, counters |
//! | [`picker`] | rarest-first piece selection with end-game, and the request pipeline depth (sans-IO) |
//! | [`choker`] | the upload-slot policy (sans-IO) |
//! | [`superseed`] | super-seeding: which piece is offered to which peer, one at a time until it spreads (sans-IO) |
//! | [`announcer`] | which tracker to announce to, when, with which event: failover over several trackers, the seed's tracker's dialect (sans-IO) |
//! | [`tracker_client`] | one announce to one tracker |
//! | [`discover`] | LAN discovery: BEP 14 announces over the kit's multicast sockets |
//! | [`events`] | the `--json` event enum, shared by every subcommand |
//! | [`output`] | events through the kit's non-blocking writer, progress bar, human summary |
//! | [`zerocopy`] | `sendfile` from the page cache to a socket |
//! | [`serve`] / [`fetch`] | client/server mode: the seed's one-frame file transfer |
//! | [`chat`] | `peer chat`: a room through the tracker, messages directly between members, the seed's UDP clients |
//!
//! The binary's `main` only parses arguments and calls [`run`].

pub mod admission;
pub mod announcer;
pub mod beneath;
pub mod chat;
pub mod choker;
pub mod chunks;
pub mod cli;
pub mod create;
pub mod discover;
pub mod diskspace;
pub mod durable;
pub mod events;
pub mod fetch;
pub mod hashing;
pub mod info;
pub mod output;
pub mod peer_conn;
pub mod picker;
pub mod reader;
pub mod receive;
pub mod serve;
pub mod session;
pub mod storage;
pub mod superseed;
pub mod swarm;
pub mod tracker_client;
pub mod writer;
pub mod zerocopy;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Runs the command line, returning the process exit code (see
/// [`lanio::exit`]: 0 success or a clean stop, 1 runtime failure, 2 bad input).
pub fn run(cli: Cli) -> ExitCode {
    if let Some(Command::Chat(args)) = cli.command {
        // One thread: at exit, a read of stdin still waiting is abandoned.
        let program =
            lanio::harness::Program::new("peer chat").flavor(lanio::harness::Flavor::CurrentThread);
        return lanio::harness::run(&program, || chat::run(args));
    }
    lanio::harness::run(&lanio::harness::Program::new("peer"), || async move {
        match cli.command {
            Some(Command::Serve(args)) => serve::run(args).await,
            Some(Command::Fetch(args)) => fetch::run(args).await,
            Some(Command::Create(args)) => create::run(args),
            Some(Command::Info(args)) => info::run(args),
            Some(Command::Chat(_)) => unreachable!("run above"),
            None => session::run(cli.swarm).await,
        }
    })
}

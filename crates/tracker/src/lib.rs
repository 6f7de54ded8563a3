//! # tracker: the lanswarm swarm directory
//!
//! Peers announce themselves over TCP in framed JSON ([`wire::tracker`]) and
//! get back other peers of the same swarm. `tracker status` asks a running
//! tracker for its swarms on the same port.
//!
//! | module | holds |
//! |---|---|
//! | [`registry`] | sans-IO swarm registry: peers by swarm and address, seeds, expiry, random peer choice, bounds ([`registry::limits`]), bounded status snapshots |
//! | [`replication`] | sans-IO replication bookkeeping: outbox, drops, replicas and their sequence gaps, snapshot scheduling |
//! | [`handler`] | sans-IO: one request frame in, one reply frame out (validation, address policy) |
//! | [`admission`] | open connections per source IP, with a cap |
//! | [`server`] | accept loop, connection caps, per-connection tasks, timeouts and recycling, expiry sweep, graceful shutdown ([`serve`], [`serve_with_web`]) |
//! | [`replicator`] | the replication socket: receive and merge, send changes, heartbeats, paced snapshots |
//! | [`stats`] | counters (announces, refusals, drops) as relaxed atomics, and the announce rate |
//! | [`web`] | `--http`: the live page, `/api/status`, `/api/events` (axum on hyper), bounded |
//! | [`events`] | the `--json` events, one serde enum ([`Event`]) that tests read back |
//! | [`report`] | info-level log lines, and the events through a non-blocking [`lanio::EventWriter`] |
//! | [`seed`] | `--seed-udp`: the seed's chat directory over UDP text and its servers' multicast exchange ([`seed::directory`] is its sans-IO core) |
//! | [`status`] | the `tracker status` client: fetch, table and JSON output |
//! | [`cli`] | command-line parsing and dispatch on [`lanio::harness`] (logging, exit codes) |
//!
//! The arrows run one way: `cli` → `status`, `server`; `server` → `report`
//! → `events`; `server` → `web` → `handler` → `registry`; `server` →
//! `replicator` → `handler`, `replication`, `report`; `server` → `seed` →
//! `handler`, `registry`, `report`; `report` → `web` (its feed);
//! `handler`, `server`, `web` → `stats`; `server` → `admission`. Everything → `lanio`, `wire`.
//!
//! Output contract: on start the tracker logs `listening on ADDR` (the bound
//! address) at info level on stderr and, with `--json`, prints
//! `{"event":"listening","addr":"ADDR"}` on stdout. Joins, seeds, leaves and
//! expiries are logged at info level and, with `--json`, printed as events
//! `join`, `seed`, `leave`, `expire`; `shutdown` comes last. With
//! `--http ADDR` it also logs `http on ADDR` and prints
//! `{"event":"http_listening","addr":"ADDR"}`, right after `listening`. A stdout that
//! is not being read never stalls the tracker (see [`lanio::events`]).
//!
//! Run it in-process with [`serve`]:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! tracker::serve(tracker::Config::default(), listener, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

pub mod admission;
pub mod cli;
pub mod events;
pub mod handler;
pub mod registry;
pub mod replication;
pub mod replicator;
pub mod report;
pub mod seed;
pub mod server;
pub mod stats;
pub mod status;
pub mod web;

pub use events::Event;
pub use server::{serve, serve_with_web, Config, SwarmConfig, TrackerCodec};

//! Command line: `tracker [OPTIONS]` runs the tracker, `tracker status`
//! asks a running one for its swarms. This module parses the arguments and
//! dispatches; [`lanio::harness::run`] sets up logging, prints errors and
//! turns them into exit codes.
//!
//! Exit codes: 0 success (including Ctrl-C/SIGTERM), 1 a runtime failure
//! (cannot listen, cannot reach a tracker), 2 bad usage or a bad `--torrent`
//! ([`lanio::BadInput`]).

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use lanio::harness::{Flavor, Program};
use lanio::iface::Iface;
use lanio::{BadInput, Cidr, Signals};
use wire::Torrent;

use crate::registry::limits::{self, Limits};
use crate::replication::DEFAULT_GROUP;
use crate::replicator::ReplicationConfig;
use crate::seed::{self, SeedConfig};
use crate::server::{self, Config, SwarmConfig};
use crate::status;

/// Serving logs joins, leaves and expiries at info level.
const SERVE: Program = Program::new("tracker").log("info");
/// `tracker status` prints its answer and logs only warnings.
const STATUS: Program = Program::new("tracker status").flavor(Flavor::CurrentThread);

const ABOUT: &str = "lanswarm tracker: the swarm directory.

Peers announce themselves over TCP (framed JSON) and get back other peers of
the same swarm. A swarm is named by its info hash; requests without one go to
the default swarm (the first --torrent's, if given). Joins, leaves and expiries
are logged at info level (RUST_LOG overrides). Ctrl-C or SIGTERM stops
accepting, finishes the replies in flight and exits 0.

Chat rooms (`peer chat`) are swarms too; their members announce a `name`,
which one live member of a room holds at a time. With --seed-udp PORT the
tracker also serves the seed project's UDP chat directory and joins the seed
servers' exchange on --seed-group.

With --http ADDR it also serves a web page at http://ADDR/ that shows every
swarm and its peers (address, role, last seen, progress), announces per
second and what was refused or dropped, updating live. The page reads
/api/status (JSON, the same as `tracker status --json`) and /api/events
(server-sent events: join, seed, leave, expire, and stats once a second).
Off by default; it is read-only (other methods get 405) and has no
authentication, so bind it where only the people who may watch can reach it
(e.g. --http 127.0.0.1:8080).

With --replicate, trackers share their registries over a multicast group
(default 239.255.66.66:6666, UDP): a peer announced to any of them is listed
by all. A tracker that starts asks the others for their state.

Exit codes: 0 ok, 1 runtime failure (cannot listen / reach the tracker /
join a group), 2 bad usage or unreadable/invalid --torrent file.";

/// `tracker` command line.
#[derive(Debug, Parser)]
#[command(name = "tracker", version, about = "lanswarm tracker: the swarm directory", long_about = ABOUT)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask a running tracker for its swarms and peers, and print them.
    Status(StatusArgs),
}

/// Options of the tracker itself.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the real address is logged).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6666")]
    pub listen: SocketAddr,
    /// Seconds between peer refreshes, sent in every reply; a peer silent for
    /// twice this is dropped.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval: u64,
    /// A torrent file (JSON) whose swarm is listed with its file name. The
    /// first one is the default swarm, for peers that send no info_hash.
    #[arg(long = "torrent", value_name = "FILE")]
    pub torrents: Vec<PathBuf>,
    /// Serve only the swarms of the --torrent files: announces (and
    /// replicated peers) for any other info hash are refused.
    #[arg(long, requires = "torrents")]
    pub only_torrents: bool,
    /// List a peer at the `ip` it announces rather than its TCP source
    /// address only when the request comes from this range: relays you run
    /// (repeat for several). From anyone else the `ip` key is ignored.
    #[arg(long = "trust-ip-from", value_name = "CIDR")]
    pub trust_ip_from: Vec<Cidr>,
    /// Deprecated: the same as --trust-ip-from 0.0.0.0/0 (believe every
    /// client's `ip` key, so anyone can list any address). Logs a warning.
    #[arg(long)]
    pub trust_ip_field: bool,
    /// Most connections served at once; more are refused, not queued.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000).map(|n| n as usize))]
    pub max_connections: usize,
    /// Most connections from one IP address at once; more are refused.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CONNECTIONS_PER_IP,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000).map(|n| n as usize))]
    pub max_connections_per_ip: usize,
    /// Seconds after which a connection is closed (after its current
    /// reply), however active: clients reconnect.
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = parse_secs)]
    pub max_connection_age: Duration,
    /// Requests after which a connection is closed (after that reply).
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_REQUESTS_PER_CONNECTION,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests_per_connection: u64,
    /// Most swarms held; announces that would create another are refused.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_SWARMS,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000).map(|n| n as usize))]
    pub max_swarms: usize,
    /// Most peers held over all swarms.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_PEERS,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000).map(|n| n as usize))]
    pub max_peers: usize,
    /// Most peers listed at one IP address (over all swarms).
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_PEERS_PER_IP,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000).map(|n| n as usize))]
    pub max_peers_per_ip: usize,
    /// Most swarms one IP address has peers in.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_SWARMS_PER_IP,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000).map(|n| n as usize))]
    pub max_swarms_per_ip: usize,
    /// Seconds a connection may take to send a complete request (or to take
    /// a reply) before it is closed.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub idle_timeout: Duration,
    /// Also serve the live web page and its API (/api/status, /api/events)
    /// on this address, e.g. 127.0.0.1:8080; port 0 picks a free port (the
    /// real address is logged as `http on ADDR`). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Most live event streams (/api/events) at once; more get 503. A viewer
    /// that falls behind is dropped, and its page reconnects.
    #[arg(long, value_name = "N", default_value_t = crate::web::DEFAULT_MAX_SUBSCRIBERS,
          value_parser = clap::value_parser!(u64).range(1..=10_000).map(|n| n as usize))]
    pub http_max_subscribers: usize,
    /// Also print events as JSON lines on stdout (listening, http_listening,
    /// join, seed, leave, expire, seed_dropped, shutdown; with --replicate
    /// also replicating, replica_heard, replicated, snapshot_*,
    /// replica_dropped).
    #[arg(long)]
    pub json: bool,
    /// Share the registry with the other trackers on this multicast group
    /// (UDP); without a value, 239.255.66.66:6666.
    #[arg(long, value_name = "GROUP:PORT", num_args = 0..=1,
          default_missing_value = DEFAULT_GROUP, value_parser = parse_group)]
    pub replicate: Option<SocketAddr>,
    /// Interface (name or address) to replicate on; default: the routing table's choice.
    #[arg(long, value_name = "IF", requires = "replicate")]
    pub iface: Option<String>,
    /// Accept replication datagrams only from this address range (repeat
    /// for several); default: the subnets of this host's interfaces.
    #[arg(long = "replicate-from", value_name = "CIDR", requires = "replicate")]
    pub replicate_from: Vec<Cidr>,
    /// Also serve the seed project's chat directory on this UDP port (the
    /// seed used 8000-8002): `READY`/`RETURN` registers the sender in the
    /// chat room `lobby` as `ip:port` and answers with the list, one
    /// `('ip', port)` per line; `QUIT_CLIENT` leaves. Takes part in the seed
    /// servers' exchange on --seed-group.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub seed_udp: Option<u16>,
    /// The seed servers' multicast group and port (with --seed-udp).
    #[arg(long, value_name = "ADDR:PORT", default_value_t = wire::seed_chat::SEED_GROUP,
          value_parser = parse_seed_group)]
    pub seed_group: SocketAddrV4,
    /// TTL of datagrams to --seed-group: 1 stays on the LAN, 0 on this host.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=255))]
    pub seed_ttl: u32,
}

/// Options of `tracker status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The tracker to ask.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the tracker's answer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
}

/// A `--torrent` file, read and validated.
#[derive(Debug, Clone)]
pub struct LoadedTorrent {
    pub path: PathBuf,
    pub swarm: SwarmConfig,
}

/// Reads and validates a `--torrent` file; a file that cannot be read or is
/// not a valid torrent is bad input (exit 2).
pub fn load_torrent(path: PathBuf) -> Result<LoadedTorrent, BadInput> {
    let shown = path.display();
    let bytes = std::fs::read(&path).map_err(|e| BadInput(format!("cannot read {shown}: {e}")))?;
    let torrent = Torrent::from_json(&bytes)
        .map_err(|e| BadInput(format!("{shown} is not a valid torrent: {e}")))?;
    Ok(LoadedTorrent {
        swarm: SwarmConfig {
            info_hash: torrent.info_hash(),
            file_name: torrent.info.file_name,
        },
        path,
    })
}

fn parse_group(arg: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = arg
        .parse()
        .map_err(|_| format!("{arg:?} is not GROUP:PORT (e.g. {DEFAULT_GROUP})"))?;
    lanio::group::parse_group(&addr.ip().to_string())?;
    if addr.port() == 0 {
        return Err(format!("{arg}: the port must not be 0"));
    }
    Ok(addr)
}

fn parse_seed_group(arg: &str) -> Result<SocketAddrV4, String> {
    let addr: SocketAddrV4 = arg
        .parse()
        .map_err(|_| format!("{arg:?} is not an IPv4 ADDR:PORT"))?;
    if !addr.ip().is_multicast() || addr.port() == 0 {
        return Err(format!(
            "{arg} must be an IPv4 multicast group (224.0.0.0/4) with a port"
        ));
    }
    Ok(addr)
}

fn parse_secs(arg: &str) -> Result<Duration, String> {
    let secs: f64 = arg
        .parse()
        .map_err(|_| format!("{arg:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 1e6) {
        return Err(format!(
            "{arg} must be more than 0 and at most 1000000 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl ServeArgs {
    /// The server configuration these options describe, serving `swarms`.
    pub fn config(&self, swarms: Vec<SwarmConfig>) -> Config {
        Config {
            interval: Duration::from_secs(self.interval),
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_connection_age: self.max_connection_age,
            max_requests_per_connection: self.max_requests_per_connection,
            trust_ip_field: self.trust_ip_field,
            trust_ip_from: self.trust_ip_from.clone(),
            limits: Limits {
                max_swarms: self.max_swarms,
                max_peers: self.max_peers,
                max_peers_per_ip: self.max_peers_per_ip,
                max_swarms_per_ip: self.max_swarms_per_ip,
                only_configured: self.only_torrents,
            },
            json: self.json,
            swarms,
            replication: None,
            seed: None,
            max_subscribers: self.http_max_subscribers,
        }
    }

    /// The replication options, resolved: the interface looked up (an
    /// unknown one is bad input) and the default source ranges listed.
    pub fn replication(&self) -> anyhow::Result<Option<ReplicationConfig>> {
        let Some(group) = self.replicate else {
            return Ok(None);
        };
        let iface = self.iface.as_deref().map(Iface::resolve).transpose()?;
        let accept = if self.replicate_from.is_empty() {
            lanio::iface::local_subnets().context("listing this host's subnets")?
        } else {
            self.replicate_from.clone()
        };
        Ok(Some(ReplicationConfig {
            group,
            iface,
            accept,
        }))
    }
}

/// Parses the command line and runs it; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Status(args)) => {
            lanio::harness::run(&STATUS, || status::run(args.addr, args.timeout, args.json))
        }
        None => lanio::harness::run(&SERVE, || run_tracker(cli.serve)),
    }
}

async fn run_tracker(args: ServeArgs) -> anyhow::Result<()> {
    let torrents = args
        .torrents
        .iter()
        .cloned()
        .map(load_torrent)
        .collect::<Result<Vec<_>, _>>()?;
    for t in &torrents {
        tracing::info!(
            "swarm {} from {} (file {})",
            t.swarm.info_hash,
            t.path.display(),
            t.swarm.file_name
        );
    }
    if args.trust_ip_field {
        tracing::warn!(
            "--trust-ip-field is deprecated: it believes every client's ip key, so anyone \
             can list any address; name your relays with --trust-ip-from CIDR instead"
        );
    }
    // Before `serve` says it listens: a script may signal as soon as it reads that.
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let http = match args.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for http on {addr}"))?,
        ),
        None => None,
    };
    let mut config = args.config(torrents.into_iter().map(|t| t.swarm).collect());
    config.replication = args.replication()?;
    if let Some(port) = args.seed_udp {
        let seed = SeedConfig {
            listen: seed::client_listen(args.listen, port),
            group: args.seed_group,
            ttl: args.seed_ttl,
        };
        config.seed = Some(Arc::new(seed::Bound::bind(&seed)?));
    }
    server::serve_with_web(config, listener, http, async move {
        signals.recv().await;
    })
    .await?;
    Ok(())
}

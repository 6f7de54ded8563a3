//! Command line: `tracker [OPTIONS]` runs the tracker, `tracker status`
//! asks a running one for its swarms. Parsing, logging set-up and the
//! process exit codes live here.
//!
//! Exit codes: 0 success (including Ctrl-C/SIGTERM), 1 a runtime failure
//! (cannot listen, cannot reach a tracker), 2 bad usage or a bad `--torrent`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wire::Torrent;

use crate::server::{self, Config, SwarmConfig};
use crate::status;

const ABOUT: &str = "lanswarm tracker: the swarm directory.

Peers announce themselves over TCP (framed JSON) and get back other peers of
the same swarm. A swarm is named by its info hash; requests without one go to
the default swarm (the first --torrent's, if given). Joins, leaves and expiries
are logged at info level (RUST_LOG overrides). Ctrl-C or SIGTERM stops
accepting, finishes the replies in flight and exits 0.

Exit codes: 0 ok, 1 runtime failure (cannot listen / reach the tracker),
2 bad usage or unreadable/invalid --torrent file.";

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
    #[arg(long = "torrent", value_name = "FILE", value_parser = load_torrent)]
    pub torrents: Vec<LoadedTorrent>,
    /// List peers at the `ip` they announce rather than their TCP source
    /// address (only behind a relay or NAT you control).
    #[arg(long)]
    pub trust_ip_field: bool,
    /// Most connections served at once; more are refused, not queued.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000).map(|n| n as usize))]
    pub max_connections: usize,
    /// Seconds a connection may take to send a complete request (or to take
    /// a reply) before it is closed.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub idle_timeout: Duration,
    /// Also print events as JSON lines on stdout (listening, join, seed,
    /// leave, expire, shutdown).
    #[arg(long)]
    pub json: bool,
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

/// A `--torrent` file, read and validated while parsing arguments.
#[derive(Debug, Clone)]
pub struct LoadedTorrent {
    pub path: PathBuf,
    pub swarm: SwarmConfig,
}

fn load_torrent(arg: &str) -> Result<LoadedTorrent, String> {
    let bytes = std::fs::read(arg).map_err(|e| format!("cannot read {arg}: {e}"))?;
    let torrent =
        Torrent::from_json(&bytes).map_err(|e| format!("{arg} is not a valid torrent: {e}"))?;
    Ok(LoadedTorrent {
        path: arg.into(),
        swarm: SwarmConfig {
            info_hash: torrent.info_hash(),
            file_name: torrent.info.file_name,
        },
    })
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
    /// The server configuration these options describe.
    pub fn config(&self) -> Config {
        Config {
            interval: Duration::from_secs(self.interval),
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            trust_ip_field: self.trust_ip_field,
            json: self.json,
            swarms: self.torrents.iter().map(|t| t.swarm.clone()).collect(),
        }
    }
}

fn init_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Parses the command line and runs it; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Status(args)) => {
            init_logging("warn");
            status::run(&args)
        }
        None => {
            init_logging("info");
            run_tracker(&cli.serve)
        }
    }
}

fn run_tracker(args: &ServeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracker: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    for t in &args.torrents {
        tracing::info!(
            "swarm {} from {} (file {})",
            t.swarm.info_hash,
            t.path.display(),
            t.swarm.file_name
        );
    }
    runtime.block_on(async {
        let shutdown = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tracker: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tracker: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(1);
            }
        };
        match server::serve(args.config(), listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tracker: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// Installs the Ctrl-C (SIGINT) and SIGTERM handlers now, before the
/// tracker announces that it listens, and returns a future that completes on
/// either signal. Must be called inside the runtime.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

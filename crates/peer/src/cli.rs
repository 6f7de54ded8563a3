//! Command-line interface of the `peer` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The lanswarm peer: create torrents, then seed or download them as a swarm.
///
/// Run `peer --torrent FILE.torrent` to join a swarm: if the data file is in
/// DIR and complete, the peer seeds it; otherwise it downloads the missing
/// pieces from every peer that has them, verifying each piece's SHA-1, while
/// uploading to others. A restart resumes where it left off.
///
/// Exit codes: 0 success (also after Ctrl-C/SIGTERM), 1 runtime failure
/// (I/O, network, no tracker), 2 bad usage or bad input (e.g. a malformed or
/// unsafe torrent file).
#[derive(Debug, Parser)]
#[command(name = "peer", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub swarm: SwarmArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a torrent (JSON metadata with SHA-1 piece hashes) for a file or a directory.
    Create(CreateArgs),
    /// Show what a torrent describes: name, info hash, pieces, size, files, tracker.
    Info(InfoArgs),
    /// Client/server mode: send FILE, as one frame, to every client that connects.
    Serve(ServeArgs),
    /// Client/server mode: receive one file from a `peer serve` server.
    Fetch(FetchArgs),
    /// Chat: a room found through the tracker, messages sent directly to
    /// its members over TCP (and to the seed's UDP clients as datagrams).
    #[command(long_about = CHAT_ABOUT)]
    Chat(ChatArgs),
}

/// Describing a torrent.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The torrent file.
    pub torrent: PathBuf,

    /// Print one JSON object (`{"event":"info","info_hash":…}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Joining a swarm.
#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// The torrent file to seed or download.
    #[arg(long, short = 't', value_name = "FILE.torrent")]
    pub torrent: Option<PathBuf>,

    /// Directory holding (or receiving) the data file.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,

    /// Address to accept peers on; port 0 picks a free port.
    #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Tracker to use instead of the ones named in the torrent. Give it
    /// several times for several trackers: the peer announces to one at a
    /// time, moves to the next when one fails (refused, timeout, error
    /// reply), and puts the one that answers first.
    #[arg(long, value_name = "HOST:PORT")]
    pub tracker: Vec<String>,

    /// Exit (0) once the file is complete and the tracker was told, instead of seeding on.
    #[arg(long)]
    pub exit_when_done: bool,

    /// Verify every piece already on disk, whatever the resume file says
    /// (after a crash of the machine, or if the data may have been changed),
    /// then download what is missing or bad.
    #[arg(long)]
    pub recheck: bool,

    #[command(flatten)]
    pub discover: DiscoverArgs,

    /// Print one JSON object per line on stdout (events: started, peer_connected,
    /// peer_disconnected, peer_banned, progress, done) instead of a progress bar.
    #[arg(long)]
    pub json: bool,

    /// How many interested peers we upload to at once (plus one optimistic unchoke).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub upload_slots: usize,

    /// Super-seed: when we start with the whole file, offer each piece to one
    /// peer at a time (we announce nothing, then each piece with Have) and
    /// offer a peer a new piece once one it got has spread to another peer.
    /// An initial seeder then uploads about one copy of the file, and the
    /// peers share the rest among themselves. Peers of the original protocol
    /// are served as usual. Off by default: with a single downloader it only
    /// slows the transfer. Ignored (with a warning) when the file is incomplete.
    #[arg(long)]
    pub super_seed: bool,

    /// Super-seeding: offers per peer that may wait to spread at once.
    #[arg(long, value_name = "N", default_value_t = crate::superseed::DEFAULT_WINDOW,
          value_parser = clap::value_parser!(u16).range(1..=64), hide = true)]
    pub super_seed_window: u16,

    /// Address to announce to the tracker instead of the one it sees (behind NAT/relays;
    /// the tracker must run with --trust-ip-field).
    #[arg(long, value_name = "IPV4", hide = true)]
    pub announce_ip: Option<std::net::Ipv4Addr>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or directory to describe. A directory's regular files go in
    /// sorted order; symbolic links are skipped (with a warning), empty
    /// directories dropped (with a note).
    pub file: PathBuf,

    /// Tracker address written into the torrent. Give it several times for
    /// several trackers: the first is `announce`/`port`, and all of them, in
    /// order, go into `announce_list`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6666")]
    pub tracker: Vec<String>,

    /// Write no tracker into the torrent: its peers find each other by LAN
    /// discovery alone.
    #[arg(long, conflicts_with = "tracker")]
    pub no_tracker: bool,

    /// Piece length in bytes (default: about 1,000–2,000 pieces, 64 KiB..4 MiB).
    #[arg(long, value_name = "BYTES")]
    pub piece_length: Option<u64>,

    /// Free-text comment stored in the torrent.
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub comment: String,

    /// Where to write the torrent (default: FILE.torrent in the current directory).
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: Option<PathBuf>,

    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The file to serve.
    pub file: PathBuf,

    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:7000", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Print one JSON object per line on stdout (events: listening, client_done,
    /// client_failed).
    #[arg(long)]
    pub json: bool,

    /// Send through a user-space buffer instead of zero-copy sendfile(2)
    /// (the baseline the zero-copy path is measured against).
    #[arg(long, hide = true)]
    pub copy: bool,

    /// Most clients served at once; more are closed at once.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_clients: usize,

    /// Most clients served at once from one IP address.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_per_ip: usize,

    /// Drop a client that takes longer than this many seconds to accept
    /// a write (the header, or a 1 MiB slice of the file): a reader that
    /// never reads does not hold its slot.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub write_timeout: f64,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Server address, HOST:PORT.
    pub addr: String,

    /// Output file; written to a temporary name and renamed once complete.
    #[arg(short = 'o', long, value_name = "OUT", default_value = "fetched.bin")]
    pub output: PathBuf,

    /// Print one JSON object per line on stdout (events: connected, progress about
    /// once a second, done) instead of a progress bar.
    #[arg(long)]
    pub json: bool,

    /// Give up if the server does not accept the connection within this many seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub connect_timeout: f64,

    /// Give up if no byte arrives for this many seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub stall_timeout: f64,

    /// Refuse a file longer than this many bytes (the server chooses the
    /// length; without this, any length that fits on the disk is accepted).
    /// The free space is always checked before anything is written.
    #[arg(long, value_name = "BYTES")]
    pub max_size: Option<u64>,
}

/// LAN discovery, for swarms and chat rooms.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Do not look for peers on the LAN. By default the peer also announces
    /// its swarm (or chat room) on the LAN (BEP 14 local discovery: multicast
    /// 239.192.152.143:6771 and `[ff15::efc0:988f]:6771`) and connects to the
    /// peers of the same swarm that it hears there; a torrent without a
    /// tracker, or a chat without --tracker, finds its peers this way alone.
    #[arg(long)]
    pub no_discover: bool,

    /// TTL (hop limit) of discovery announces; 1 keeps them on the LAN.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub discover_ttl: u32,

    /// Discover on this interface only (name or address); default: every
    /// multicast-capable interface.
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
}

/// `peer chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Your name in the room: 1-64 bytes, no control characters or spaces.
    /// The tracker refuses a name another member online holds.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// The room (a swarm of the tracker named by SHA-1 of `lanswarm-chat/ROOM`).
    #[arg(long, value_name = "ROOM", default_value = wire::chat::DEFAULT_ROOM)]
    pub room: String,

    /// A tracker to register with; repeat it for several (the room is
    /// everyone any of them lists). Without one, the room forms on the LAN
    /// by discovery (BEP 14 announces of the room's id).
    #[arg(long, value_name = "HOST:PORT")]
    pub tracker: Vec<String>,

    #[command(flatten)]
    pub discover: DiscoverArgs,

    /// Address to accept members on (TCP) and the seed's clients' datagrams
    /// on (UDP, the same port); port 0 picks a free one.
    #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Print one JSON object per line (events: joined, member_joined,
    /// member_left, message, sent, delivered, queue_dropped, who, notice,
    /// peer_refused, tracker_error, left) instead of lines for a person.
    #[arg(long)]
    pub json: bool,

    /// Send this one line to the room, wait until every member online has
    /// acknowledged it, leave and exit 0 (1 if not all did within --timeout).
    #[arg(long, value_name = "TEXT")]
    pub send: Option<String>,

    /// Seconds --send waits for acknowledgements.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
}

const CHAT_ABOUT: &str = "Chat with the members of a room.

The tracker is the directory: `peer chat` registers there under --name and
learns who else is in the room; messages then go directly to each member over
TCP, never through the tracker. On start it shows who is online, then who
joins and leaves. A typed line goes to the whole room; /msg NAME TEXT to one
member; /who lists the room; /quit, Ctrl-D or Ctrl-C leaves. Standard input
may be a pipe.

Every message is acknowledged by each member, and you see \"delivered n/N\".
One sender's messages arrive in order. A member that drops and comes back
within 2 minutes gets what was sent meanwhile (at most 256 lines are kept;
dropping one is said).

The seed project's UDP chat clients, registered through `tracker --seed-udp`,
are in the room `lobby` as ip:port; lines to them go as UDP datagrams, and a
datagram from one is shown as a line from ip:port.

Exit codes: 0 left the room (or --send delivered to all), 1 runtime failure
(no tracker, name taken, --send not acknowledged in time), 2 bad usage.";

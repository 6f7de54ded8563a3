//! Command-line interface: the clap definitions of all subcommands.

use crate::duration::parse_duration;
use clap::{Args, Parser, Subcommand};
use lanio::group::parse_group;
use lanio::iface::Iface;
use std::net::IpAddr;
use std::time::Duration;

const AFTER_HELP: &str = "\
Groups may be IPv4 (224.0.0.0/4) or IPv6 (ff00::/8, e.g. ff02::1:3 or ff15::1234).
Durations are written like 200ms, 2s, 1.5s or 1m.
With --json, stdout carries one JSON object per line, each with an \"event\" field.

Exit codes:
  0  success, also after Ctrl-C (the summary is printed first)
  1  runtime failure (socket or I/O error)
  2  usage error or bad input (not a multicast group, oversize message, unknown interface)";

const MAIN_AFTER_HELP: &str = "\
Examples:
  mcast recv                                  join 224.3.29.71:10000, print and ack
  mcast send 'very important data'            send once, count acks until 200ms of quiet
  mcast send - --count 5 --interval 2s < msg  repeat a message read from stdin
  mcast recv --group 232.1.1.1 --source 10.0.0.5   source-specific join (IGMPv3)
  mcast probe recv        then   mcast probe send --rate 10000 --count 50000
  mcast chat --name alice --iface eth0
  mcast igmp --iface eth0                     watch joins, leaves and queries (root)
  mcast groups                                this host's memberships, per interface
  mcast querier --iface eth0 --interval 60    be the IGMP querier of a router-less LAN (root)

JSON events (--json):
  send: sent, ack {from}, summary {sent, acks, responders, ignored}
  recv: joined, message {from, bytes, text, ttl}, summary {received, acked}
  probe: start / joined, report {received, lost, duplicates, reordered,
         latency_p50_us, latency_p99_us, ...}, summary
  chat: joined, member_joined, member_left, member_expired, message {from, name,
        bytes, text}, summary
  igmp: listening, igmp / mld {iface, direction, src, dst, ttl, router_alert,
        checksum_ok, message {type, …}}, malformed {error, head}, summary
  groups: groups {index, name, igmp_version, groups [{group, users, mode, sources}]}
  querier: querier_started, query_sent, query_heard {from, version, group},
           stepped_down {querier}, took_over {previous, silent_ms}, summary
";

/// IP multicast from the command line: send and receive raw datagrams with
/// acknowledgements, measure loss and latency, or chat with a group.
#[derive(Debug, Parser)]
#[command(name = "mcast", version, after_help = format!("{MAIN_AFTER_HELP}\n{AFTER_HELP}"))]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a message to a group, then collect and count `ack` replies.
    ///
    /// The datagram holds exactly the message bytes, so receivers in any
    /// language interoperate. Each unicast reply whose payload is `ack` counts.
    #[command(after_help = AFTER_HELP)]
    Send(SendArgs),
    /// Join a group, print every datagram and answer each with a unicast `ack`.
    #[command(after_help = AFTER_HELP)]
    Recv(RecvArgs),
    /// Measure loss, duplicates, reordering and one-way latency (like omping/iperf).
    #[command(after_help = AFTER_HELP)]
    Probe(ProbeArgs),
    /// Group chat: each stdin line goes to the group; others' lines print with their name.
    #[command(after_help = AFTER_HELP)]
    Chat(ChatArgs),
    /// Watch IGMP and MLD on an interface (or all): every query, report and
    /// leave, decoded. Needs root.
    ///
    /// Messages this host sends show too (direction out). A message with a
    /// wrong checksum is shown, marked; one that does not decode is shown
    /// as malformed with its first bytes.
    #[command(after_help = AFTER_HELP)]
    Igmp(IgmpArgs),
    /// List this host's multicast memberships per interface: groups, the
    /// IGMP version in use, and the sources of source-specific joins.
    ///
    /// Read from /proc/net/igmp, igmp6, mcfilter and mcfilter6 (of the
    /// network namespace it runs in).
    #[command(after_help = AFTER_HELP)]
    Groups(GroupsArgs),
    /// Be the IGMP querier of a segment that has no multicast router. Needs root.
    ///
    /// Sends IGMPv3 general queries every --interval seconds; stops when it
    /// hears a querier with a lower address, and takes over again when that
    /// one has been silent for 2 × interval + half the max response time
    /// (RFC 2236/3376 querier election).
    #[command(after_help = AFTER_HELP)]
    Querier(QuerierArgs),
}

impl Command {
    /// The options every subcommand has.
    pub fn common(&self) -> &Common {
        match self {
            Command::Send(a) => &a.common,
            Command::Recv(a) => &a.common,
            Command::Probe(ProbeArgs {
                role: ProbeRole::Send(a),
            }) => &a.common,
            Command::Probe(ProbeArgs {
                role: ProbeRole::Recv(a),
            }) => &a.common,
            Command::Chat(a) => &a.common,
            Command::Igmp(a) => &a.common,
            Command::Groups(a) => &a.common,
            Command::Querier(a) => &a.common,
        }
    }
}

/// Options shared by all subcommands.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Interface (name such as eth0, or one of its addresses) for both the
    /// membership and the sending interface (IP_MULTICAST_IF).
    /// Default: chosen by the routing table.
    #[arg(long, value_name = "NAME|ADDR")]
    pub iface: Option<String>,
    /// Print one JSON object per line (with an "event" field) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Common {
    /// Resolves `--iface`, if given (an unknown interface is a usage error).
    pub fn resolve_iface(&self) -> anyhow::Result<Option<Iface>> {
        self.iface.as_deref().map(Iface::resolve).transpose()
    }
}

/// `mcast send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The message, sent as raw bytes; `-` reads it from stdin.
    #[arg(value_name = "MESSAGE|-", default_value = "very important data")]
    pub message: String,
    /// Multicast group to send to.
    #[arg(long, short, default_value = "224.3.29.71", value_parser = parse_group)]
    pub group: IpAddr,
    /// UDP port of the group.
    #[arg(long, short, default_value_t = 10000)]
    pub port: u16,
    /// TTL (IPv6: hop limit). 1 stays on the local network, 0 on this host.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,
    /// Do not loop our datagrams back to receivers on this host.
    #[arg(long)]
    pub no_loop: bool,
    /// How many times to send the message.
    #[arg(long, short = 'n', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Pause between repeated sends.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// After the last send, stop once this long passes with no new ack.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub wait: Duration,
    #[command(flatten)]
    pub common: Common,
}

/// `mcast recv`.
#[derive(Debug, Args)]
pub struct RecvArgs {
    /// Multicast group to join.
    #[arg(long, short, default_value = "224.3.29.71", value_parser = parse_group)]
    pub group: IpAddr,
    /// UDP port to listen on (shared with other receivers on this host).
    #[arg(long, short, default_value_t = 10000)]
    pub port: u16,
    /// Source-specific join (IGMPv3/MLDv2): only accept datagrams from this source.
    #[arg(long, short)]
    pub source: Option<IpAddr>,
    /// Do not answer datagrams with `ack`.
    #[arg(long)]
    pub no_ack: bool,
    /// Exit after this many datagrams.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Exit once this long passes without a datagram.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub common: Common,
}

/// `mcast probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Which side to run.
    #[command(subcommand)]
    pub role: ProbeRole,
}

/// The two sides of `mcast probe`.
#[derive(Debug, Subcommand)]
pub enum ProbeRole {
    /// Send numbered, timestamped datagrams at a fixed rate.
    #[command(after_help = AFTER_HELP)]
    Send(ProbeSendArgs),
    /// Receive probe datagrams and report loss, duplicates, reordering and latency.
    #[command(after_help = AFTER_HELP)]
    Recv(ProbeRecvArgs),
}

/// `mcast probe send`.
#[derive(Debug, Args)]
pub struct ProbeSendArgs {
    /// Multicast group to send to.
    #[arg(long, short, default_value = "224.3.29.72", value_parser = parse_group)]
    pub group: IpAddr,
    /// UDP port of the group.
    #[arg(long, short, default_value_t = 10002)]
    pub port: u16,
    /// Datagrams per second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rate: u64,
    /// UDP payload size in bytes (at least the 40-byte probe header).
    #[arg(long, default_value_t = 1400)]
    pub size: usize,
    /// Number of datagrams to send.
    #[arg(long, short = 'n', default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// TTL (IPv6: hop limit).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,
    /// Do not loop our datagrams back to receivers on this host.
    #[arg(long)]
    pub no_loop: bool,
    #[command(flatten)]
    pub common: Common,
}

/// `mcast probe recv`.
#[derive(Debug, Args)]
pub struct ProbeRecvArgs {
    /// Multicast group to join.
    #[arg(long, short, default_value = "224.3.29.72", value_parser = parse_group)]
    pub group: IpAddr,
    /// UDP port to listen on.
    #[arg(long, short, default_value_t = 10002)]
    pub port: u16,
    /// Source-specific join (IGMPv3/MLDv2).
    #[arg(long, short)]
    pub source: Option<IpAddr>,
    /// Report and exit after this many senders have finished. Any source
    /// that sends a run and its end marker counts: on a network you do not
    /// trust, name the sender with --source.
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Report and exit once this long passes without a datagram.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub common: Common,
}

/// `mcast chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Your name, shown to the others (at most 32 bytes).
    #[arg(long)]
    pub name: String,
    /// Multicast group of the chat room.
    #[arg(long, short, default_value = "224.3.29.73", value_parser = parse_group)]
    pub group: IpAddr,
    /// UDP port of the chat room.
    #[arg(long, short, default_value_t = 10003)]
    pub port: u16,
    /// TTL (IPv6: hop limit).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,
    /// Forget a member silent this long (at least 3s). We send a present
    /// every third of it when we have nothing else to say.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub member_timeout: Duration,
    #[command(flatten)]
    pub common: Common,
}

/// `mcast igmp`.
#[derive(Debug, Args)]
pub struct IgmpArgs {
    /// Exit after this many messages (malformed ones included).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

/// `mcast groups`.
#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub common: Common,
}

/// `mcast querier`.
#[derive(Debug, Args)]
pub struct QuerierArgs {
    /// Seconds between general queries (RFC default 125).
    #[arg(long, value_name = "SECS", default_value_t = 125,
          value_parser = clap::value_parser!(u64).range(1..=31_744))]
    pub interval: u64,
    #[command(flatten)]
    pub common: Common,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_defaults_match_the_seed_lab() {
        let cli = Cli::try_parse_from(["mcast", "send"]).unwrap();
        let Command::Send(args) = cli.command else {
            panic!("expected send")
        };
        assert_eq!(args.group.to_string(), "224.3.29.71");
        assert_eq!(args.port, 10000);
        assert_eq!(args.ttl, 1);
        assert_eq!(args.count, 1);
        assert_eq!(args.wait, Duration::from_millis(200));
        assert!(!args.no_loop);
    }

    #[test]
    fn querier_interval_defaults_to_the_rfc_and_is_bounded() {
        let cli = Cli::try_parse_from(["mcast", "querier", "--iface", "eth0"]).unwrap();
        let Command::Querier(args) = cli.command else {
            panic!("expected querier")
        };
        assert_eq!(args.interval, 125);
        assert_eq!(args.common.iface.as_deref(), Some("eth0"));
        let err = Cli::try_parse_from(["mcast", "querier", "--interval", "0"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let cli = Cli::try_parse_from(["mcast", "igmp", "-n", "3", "--json"]).unwrap();
        assert!(cli.command.common().json);
    }

    #[test]
    fn unicast_group_is_rejected_at_parse_time() {
        let err = Cli::try_parse_from(["mcast", "recv", "--group", "10.0.0.1"]).unwrap_err();
        assert!(err.to_string().contains("not a multicast group"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}

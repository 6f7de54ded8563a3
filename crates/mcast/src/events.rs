//! Every event `mcast` prints: one enum, tagged on `"event"`.
//!
//! With `--json` each event is one line of JSON (`{"event":"ack","from":…}`);
//! otherwise its [`human`](lanio::events::Event::human) sentence is shown.
//! Both go through [`lanio::EventWriter`], so a stalled stdout never blocks
//! the sockets.
//!
//! Three names are shared by several subcommands with different fields:
//! `joined` ([`Joined`]), `message` ([`Message`]) and `summary`
//! ([`Summary`]). Their payloads are told apart by their fields, so scripts
//! and the tests read every line back into this very type.

use crate::capture::Direction;
use crate::probe::stats;
use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use wire::igmp::IgmpMessage;
use wire::mld::MldMessage;
use wire::procnet::{FilterMode, HostGroup, InterfaceGroups};

/// One line of `mcast` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    // ---- send ----
    /// `send` sent its message once.
    Sent {
        seq: u64,
        to: SocketAddr,
        bytes: usize,
        ttl: u32,
    },
    /// `send` got an `ack`.
    Ack { from: SocketAddr },
    // ---- probe send ----
    /// `probe send` starts its run (it is ready: the handlers are installed).
    Start(ProbeStart),
    // ---- probe recv ----
    /// `probe recv`: what one sender run looked like.
    Report(ProbeReport),
    // ---- chat ----
    /// `chat`: a member became known.
    MemberJoined { name: String, from: SocketAddr },
    /// `chat`: a member left.
    MemberLeft { name: String, from: SocketAddr },
    /// `chat`: a member was silent for the member timeout and is forgotten.
    MemberExpired { name: String, from: SocketAddr },
    // ---- shared names ----
    /// `recv`, `probe recv`, `chat`: the group is joined, the handlers are
    /// installed (a script may signal from now on).
    Joined(Joined),
    /// `recv`: a datagram; `chat`: a member's line.
    Message(Message),
    // ---- igmp ----
    /// `igmp` captures (it is ready).
    Listening(Listening),
    /// `igmp`: an IGMP message.
    Igmp(Seen<IgmpMessage>),
    /// `igmp`: an MLD message.
    Mld(Seen<MldMessage>),
    /// `igmp`: a packet carrying IGMP or MLD that does not decode.
    Malformed(Malformed),
    // ---- groups ----
    /// `groups`: one interface's memberships.
    Groups(InterfaceGroups),
    // ---- querier ----
    /// `querier` starts, as the querier (it is ready).
    QuerierStarted(QuerierStarted),
    /// `querier` sent a general query.
    QuerySent {
        from: Ipv4Addr,
        to: Ipv4Addr,
        max_resp_ms: u32,
    },
    /// `querier` heard another querier's query (right checksum).
    QueryHeard {
        from: Ipv4Addr,
        version: u8,
        /// 0.0.0.0 for a general query.
        group: Ipv4Addr,
    },
    /// `querier` heard a lower address query and stopped querying.
    SteppedDown { querier: Ipv4Addr },
    /// `querier` queries again: `previous` was silent for `silent_ms`.
    TookOver { previous: Ipv4Addr, silent_ms: u64 },
    /// Every subcommand but `groups`, last: what it did.
    Summary(Summary),
}

/// `igmp` is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    /// `--iface`; null: every interface.
    #[serde(deserialize_with = "Option::deserialize")]
    pub iface: Option<String>,
}

/// An IGMP or MLD message `igmp` saw, with what its IP header said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen<M> {
    pub iface: String,
    /// `in`: received; `out`: sent by this host.
    pub direction: Direction,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (hop limit); membership messages are sent with 1.
    pub ttl: u8,
    /// The IP Router Alert option was present.
    pub router_alert: bool,
    /// false: the message is shown, but its checksum is wrong.
    pub checksum_ok: bool,
    /// The decoded message, tagged on `type`.
    pub message: M,
}

/// A packet `igmp` could not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Malformed {
    pub iface: String,
    pub direction: Direction,
    /// From the IP header, when that much was readable.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub error: String,
    /// The packet's length, IP header included.
    pub bytes: usize,
    /// Its first bytes, in hex.
    pub head: String,
}

/// `querier` is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerierStarted {
    pub iface: String,
    /// The address it queries from, which the election compares.
    pub address: Ipv4Addr,
    pub interval_s: u64,
    pub max_resp_ms: u32,
    /// How long a lower querier may be silent before this one takes over.
    pub other_querier_present_ms: u64,
}

/// The payload of a `joined` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Joined {
    Chat(ChatJoined),
    Recv(RecvJoined),
    Probe(ProbeJoined),
}

/// `chat` joined its group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatJoined {
    pub group: IpAddr,
    pub port: u16,
    pub name: String,
}

/// `recv` joined its group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecvJoined {
    pub group: IpAddr,
    pub port: u16,
    /// The source of a source-specific join.
    pub source: Option<IpAddr>,
    /// `--iface`, resolved to a name. Always present (null without
    /// `--iface`): that tells this line from `probe recv`'s.
    #[serde(deserialize_with = "Option::deserialize")]
    pub iface: Option<String>,
}

/// `probe recv` joined its group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeJoined {
    pub group: IpAddr,
    pub port: u16,
    /// The source of a source-specific join.
    pub source: Option<IpAddr>,
}

/// The payload of a `message` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Message {
    Chat(ChatMessage),
    Recv(RecvMessage),
}

/// A datagram `recv` received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecvMessage {
    pub from: SocketAddr,
    pub bytes: usize,
    /// The payload, escaped for printing (see [`crate::escape`]).
    pub text: String,
    /// The TTL (IPv6: hop limit) it arrived with, if the kernel said.
    pub ttl: Option<u8>,
    /// It was larger than the receive buffer and was cut.
    pub truncated: bool,
}

/// A line another chat member sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub from: SocketAddr,
    /// The member's name, escaped.
    pub name: String,
    pub bytes: usize,
    /// The line, escaped.
    pub text: String,
}

/// `probe send` starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeStart {
    pub to: SocketAddr,
    /// The run id, 16 hex digits.
    pub run: String,
    /// Datagrams per second.
    pub rate: u64,
    /// Bytes per datagram.
    pub size: usize,
    pub count: u64,
}

/// One sender run as `probe recv` saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub from: SocketAddr,
    /// The run id, 16 hex digits.
    pub run: String,
    #[serde(flatten)]
    pub figures: stats::Report,
    /// Lost datagrams in percent of those expected.
    pub loss_pct: f64,
}

/// The payload of a `summary` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Summary {
    Send(SendSummary),
    Recv(RecvSummary),
    ProbeSend(ProbeSendSummary),
    ProbeRecv(ProbeRecvSummary),
    Chat(ChatSummary),
    Igmp(IgmpSummary),
    Querier(QuerierSummary),
}

/// What `send` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendSummary {
    pub sent: u64,
    pub acks: u64,
    /// Distinct addresses that sent an `ack`, in address order.
    pub responders: Vec<SocketAddr>,
    /// Replies that were not an `ack`.
    pub ignored: u64,
}

/// What `recv` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecvSummary {
    pub received: u64,
    pub acked: u64,
}

/// What `probe send` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSendSummary {
    pub sent: u64,
    pub send_errors: u64,
    pub elapsed_s: f64,
    pub rate_pps: f64,
    /// Payload throughput, Mbit/s.
    pub mbit_s: f64,
}

/// What `probe recv` saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecvSummary {
    /// Streams (sender runs, each from one source) seen.
    pub streams: u64,
    /// Runs whose end marker arrived.
    pub finished: usize,
    /// Datagrams that were not probe datagrams.
    pub foreign: u64,
    /// Streams dropped to make room for new ones (their reports are not shown).
    #[serde(default)]
    pub evicted: u64,
    /// End markers ignored: their source sent no data of that run.
    #[serde(default)]
    pub stray_ends: u64,
}

/// What `chat` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSummary {
    pub sent: u64,
    pub received: u64,
    /// Other members known at the end.
    pub members: usize,
    /// Datagrams that were not chat datagrams.
    pub foreign: u64,
    /// Datagrams ignored because they claimed a member from another source.
    #[serde(default)]
    pub spoofed: u64,
    /// Members forgotten to make room for newcomers (not shown one by one).
    #[serde(default)]
    pub evicted: u64,
    /// Members that timed out.
    #[serde(default)]
    pub expired: u64,
}

/// What `igmp` saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgmpSummary {
    /// Messages decoded (bad checksums included).
    pub seen: u64,
    pub bad_checksum: u64,
    pub malformed: u64,
}

/// What `querier` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerierSummary {
    pub queries_sent: u64,
    pub queries_heard: u64,
    /// Whether it was the querier at the end.
    pub querier: bool,
}

/// `TryFrom<Event>` for each payload, so a reader can ask for one shape:
/// `RecvSummary::try_from(event)` is the summary of a `recv`, or gives the
/// event back.
macro_rules! payloads {
    ($($ty:ident: $variant:pat => $payload:ident),* $(,)?) => {$(
        impl TryFrom<Event> for $ty {
            type Error = Event;
            fn try_from(event: Event) -> Result<Self, Event> {
                match event {
                    $variant => Ok($payload),
                    other => Err(other),
                }
            }
        }
    )*};
}

payloads!(
    ProbeStart: Event::Start(p) => p,
    ProbeReport: Event::Report(p) => p,
    ChatJoined: Event::Joined(Joined::Chat(p)) => p,
    RecvJoined: Event::Joined(Joined::Recv(p)) => p,
    ProbeJoined: Event::Joined(Joined::Probe(p)) => p,
    ChatMessage: Event::Message(Message::Chat(p)) => p,
    RecvMessage: Event::Message(Message::Recv(p)) => p,
    SendSummary: Event::Summary(Summary::Send(p)) => p,
    RecvSummary: Event::Summary(Summary::Recv(p)) => p,
    ProbeSendSummary: Event::Summary(Summary::ProbeSend(p)) => p,
    ProbeRecvSummary: Event::Summary(Summary::ProbeRecv(p)) => p,
    ChatSummary: Event::Summary(Summary::Chat(p)) => p,
    Listening: Event::Listening(p) => p,
    Malformed: Event::Malformed(p) => p,
    InterfaceGroups: Event::Groups(p) => p,
    QuerierStarted: Event::QuerierStarted(p) => p,
    IgmpSummary: Event::Summary(Summary::Igmp(p)) => p,
    QuerierSummary: Event::Summary(Summary::Querier(p)) => p,
);

impl lanio::events::Event for Event {
    fn human(&self) -> Option<String> {
        Some(match self {
            Event::Sent { to, bytes, ttl, .. } => format!("sent {bytes} bytes to {to} (ttl {ttl})"),
            Event::Ack { from } => format!("ack from {from}"),
            Event::Start(s) => format!(
                "probing {}: {} datagrams of {} bytes at {}/s",
                s.to, s.count, s.size, s.rate
            ),
            Event::Report(r) => r.human(),
            Event::MemberJoined { name, from } => format!("* {name} joined ({from})"),
            Event::MemberLeft { name, .. } => format!("* {name} left"),
            Event::MemberExpired { name, from } => format!("* {name} timed out ({from})"),
            Event::Joined(j) => j.human(),
            Event::Message(Message::Recv(m)) => {
                format!("from {} ({} bytes): {}", m.from, m.bytes, m.text)
            }
            Event::Message(Message::Chat(m)) => format!("<{}> {}", m.name, m.text),
            Event::Listening(l) => match &l.iface {
                Some(i) => format!("watching IGMP and MLD on {i}"),
                None => "watching IGMP and MLD on every interface".to_string(),
            },
            Event::Igmp(seen) => seen.human(),
            Event::Mld(seen) => seen.human(),
            Event::Malformed(m) => format!(
                "{} {}: malformed packet of {} bytes{}: {}; starts {}",
                m.iface,
                m.direction,
                m.bytes,
                m.src.map(|s| format!(" from {s}")).unwrap_or_default(),
                m.error,
                m.head
            ),
            Event::Groups(i) => groups_human(i),
            Event::QuerierStarted(q) => format!(
                "querier on {} as {}: general queries every {} s, max response {} ms; \
                 takes over from a lower querier silent for {} ms",
                q.iface, q.address, q.interval_s, q.max_resp_ms, q.other_querier_present_ms
            ),
            Event::QuerySent { from, to, .. } => format!("general query sent from {from} to {to}"),
            Event::QueryHeard {
                from,
                version,
                group,
            } if group.is_unspecified() => {
                format!("heard an IGMPv{version} general query from {from}")
            }
            Event::QueryHeard {
                from,
                version,
                group,
            } => {
                format!("heard an IGMPv{version} query for {group} from {from}")
            }
            Event::SteppedDown { querier } => {
                format!("{querier} has a lower address and queries: stopped querying")
            }
            Event::TookOver {
                previous,
                silent_ms,
            } => format!("{previous} silent for {silent_ms} ms: querying again"),
            Event::Summary(s) => s.human(),
        })
    }
}

impl<M: Display> Seen<M> {
    fn human(&self) -> String {
        let bad = if self.checksum_ok {
            ""
        } else {
            " [BAD CHECKSUM]"
        };
        format!(
            "{} {} {} -> {} ttl {}: {}{bad}",
            self.iface, self.direction, self.src, self.dst, self.ttl, self.message
        )
    }
}

fn groups_human(i: &InterfaceGroups) -> String {
    let version = i
        .igmp_version
        .map(|v| format!(", IGMPv{v}"))
        .unwrap_or_default();
    let mut text = format!("{} (index {}{version}):", i.name, i.index);
    if i.groups.is_empty() {
        text.push_str(" no groups");
    }
    for g in &i.groups {
        text.push_str(&format!("\n  {}", group_human(g)));
    }
    text
}

fn group_human(g: &HostGroup) -> String {
    let list = |s: &[IpAddr]| {
        s.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sources = match (g.mode, g.sources.is_empty()) {
        (FilterMode::Exclude, true) => "any source".to_string(),
        (FilterMode::Exclude, false) => format!("any source but {}", list(&g.sources)),
        (FilterMode::Include, _) => format!("from {}", list(&g.sources)),
    };
    let users = if g.users == 1 { "user" } else { "users" };
    format!("{} {sources} ({} {users})", g.group, g.users)
}

impl Joined {
    fn human(&self) -> String {
        match self {
            Joined::Recv(j) => match j.source {
                Some(s) => format!("joined {}:{} for source {s}", j.group, j.port),
                None => format!("joined {}:{}", j.group, j.port),
            },
            Joined::Probe(j) => format!("joined {}:{}, waiting for probes", j.group, j.port),
            Joined::Chat(j) => format!(
                "* joined {}:{} as {} (type lines, Ctrl-D or Ctrl-C to leave)",
                j.group, j.port, j.name
            ),
        }
    }
}

impl ProbeReport {
    fn human(&self) -> String {
        let r = &self.figures;
        let us = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}us"));
        format!(
            "report from {}: sent {}, received {}, lost {} ({:.3}%), duplicates {}, reordered {}{}, latency p50 {} p99 {} max {}",
            self.from,
            r.sent.map_or("?".to_string(), |s| s.to_string()),
            r.received, r.lost, self.loss_pct, r.duplicates, r.reordered,
            if r.late > 0 { format!(", too late {}", r.late) } else { String::new() },
            us(r.latency_p50_us), us(r.latency_p99_us), us(r.latency_max_us)
        )
    }
}

impl Summary {
    fn human(&self) -> String {
        match self {
            Summary::Send(s) => {
                let responders: Vec<String> = s.responders.iter().map(|a| a.to_string()).collect();
                format!(
                    "summary: sent {}, acks {}, responders {}{}{}",
                    s.sent,
                    s.acks,
                    responders.len(),
                    if responders.is_empty() { "" } else { ": " },
                    responders.join(", ")
                )
            }
            Summary::Recv(s) => format!("summary: received {}, acked {}", s.received, s.acked),
            Summary::ProbeSend(s) => format!(
                "summary: sent {} in {:.3}s ({:.0}/s, {:.1} Mbit/s payload), send errors {}",
                s.sent, s.elapsed_s, s.rate_pps, s.mbit_s, s.send_errors
            ),
            Summary::ProbeRecv(s) => format!(
                "summary: streams {}, finished {}, foreign datagrams {}, evicted streams {}, stray end markers {}",
                s.streams, s.finished, s.foreign, s.evicted, s.stray_ends
            ),
            Summary::Chat(s) => format!(
                "* left; sent {}, received {}, ignored {} foreign and {} spoofed datagrams; {} members timed out, {} evicted",
                s.sent, s.received, s.foreign, s.spoofed, s.expired, s.evicted
            ),
            Summary::Igmp(s) => format!(
                "summary: {} messages ({} with a bad checksum), {} malformed",
                s.seen, s.bad_checksum, s.malformed
            ),
            Summary::Querier(s) => format!(
                "summary: sent {} queries, heard {}; querier at the end: {}",
                s.queries_sent,
                s.queries_heard,
                if s.querier { "yes" } else { "no" }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanio::events::Event as _;
    use serde_json::Value;

    /// Lines with the fields and values the program printed before it had
    /// this enum (key order aside), and the sentence each shows without
    /// `--json`.
    const LINES: &[(&str, &str)] = &[
        (
            r#"{"event":"sent","seq":0,"to":"224.3.29.71:10000","bytes":19,"ttl":1}"#,
            "sent 19 bytes to 224.3.29.71:10000 (ttl 1)",
        ),
        (
            r#"{"event":"sent","seq":2,"to":"[ff02::4242%3]:10000","bytes":8,"ttl":3}"#,
            "sent 8 bytes to [ff02::4242%3]:10000 (ttl 3)",
        ),
        (
            r#"{"event":"ack","from":"10.77.0.2:10000"}"#,
            "ack from 10.77.0.2:10000",
        ),
        (
            r#"{"event":"summary","sent":1,"acks":2,"responders":["10.77.0.2:10000","10.77.0.3:10000"],"ignored":0}"#,
            "summary: sent 1, acks 2, responders 2: 10.77.0.2:10000, 10.77.0.3:10000",
        ),
        (
            r#"{"event":"joined","group":"224.3.29.71","port":10000,"source":null,"iface":null}"#,
            "joined 224.3.29.71:10000",
        ),
        (
            r#"{"event":"joined","group":"232.1.2.3","port":10000,"source":"10.77.0.1","iface":"eth0"}"#,
            "joined 232.1.2.3:10000 for source 10.77.0.1",
        ),
        (
            r#"{"event":"message","from":"10.77.0.1:41234","bytes":2,"text":"hi","ttl":1,"truncated":false}"#,
            "from 10.77.0.1:41234 (2 bytes): hi",
        ),
        (
            r#"{"event":"message","from":"[fd77::1]:41234","bytes":2,"text":"hi","ttl":null,"truncated":true}"#,
            "from [fd77::1]:41234 (2 bytes): hi",
        ),
        (
            r#"{"event":"summary","received":3,"acked":3}"#,
            "summary: received 3, acked 3",
        ),
        (
            r#"{"event":"start","to":"224.3.29.72:10002","run":"00000000deadbeef","rate":100,"size":1400,"count":1000}"#,
            "probing 224.3.29.72:10002: 1000 datagrams of 1400 bytes at 100/s",
        ),
        (
            r#"{"event":"summary","sent":1000,"send_errors":0,"elapsed_s":9.99,"rate_pps":100.1,"mbit_s":1.12}"#,
            "summary: sent 1000 in 9.990s (100/s, 1.1 Mbit/s payload), send errors 0",
        ),
        (
            r#"{"event":"joined","group":"ff15::72","port":10002,"source":null}"#,
            "joined ff15::72:10002, waiting for probes",
        ),
        (
            r#"{"event":"report","sent":null,"received":2,"lost":3,"duplicates":0,"reordered":0,"late":0,"latency_p50_us":7,"latency_p99_us":9,"latency_max_us":9,"from":"10.77.0.1:5000","run":"0000000000000001","loss_pct":60.0}"#,
            "report from 10.77.0.1:5000: sent ?, received 2, lost 3 (60.000%), duplicates 0, reordered 0, latency p50 7us p99 9us max 9us",
        ),
        (
            r#"{"event":"summary","streams":1,"finished":1,"foreign":2,"evicted":0,"stray_ends":1}"#,
            "summary: streams 1, finished 1, foreign datagrams 2, evicted streams 0, stray end markers 1",
        ),
        (
            r#"{"event":"joined","group":"224.3.29.73","port":10003,"name":"ann"}"#,
            "* joined 224.3.29.73:10003 as ann (type lines, Ctrl-D or Ctrl-C to leave)",
        ),
        (
            r#"{"event":"member_joined","name":"bob","from":"10.77.0.2:10003"}"#,
            "* bob joined (10.77.0.2:10003)",
        ),
        (
            r#"{"event":"message","from":"10.77.0.2:10003","name":"bob","bytes":3,"text":"hi\\u{7}"}"#,
            "<bob> hi\\u{7}",
        ),
        (
            r#"{"event":"member_left","name":"bob","from":"10.77.0.2:10003"}"#,
            "* bob left",
        ),
        (
            r#"{"event":"summary","sent":1,"received":1,"members":0,"foreign":1,"spoofed":2,"evicted":0,"expired":3}"#,
            "* left; sent 1, received 1, ignored 1 foreign and 2 spoofed datagrams; 3 members timed out, 0 evicted",
        ),
        (
            r#"{"event":"listening","iface":"eth0"}"#,
            "watching IGMP and MLD on eth0",
        ),
        (
            r#"{"event":"igmp","iface":"eth0","direction":"in","src":"10.77.0.2","dst":"224.0.0.2","ttl":1,"router_alert":true,"checksum_ok":true,"message":{"type":"v2_leave","group":"239.1.2.3"}}"#,
            "eth0 in 10.77.0.2 -> 224.0.0.2 ttl 1: IGMPv2 leave 239.1.2.3",
        ),
        (
            r#"{"event":"igmp","iface":"eth0","direction":"out","src":"10.77.0.2","dst":"224.0.0.22","ttl":1,"router_alert":true,"checksum_ok":false,"message":{"type":"v3_report","records":[{"mode":"allow_new_sources","group":"232.1.1.1","sources":["10.77.0.1"],"aux_words":0}]}}"#,
            "eth0 out 10.77.0.2 -> 224.0.0.22 ttl 1: IGMPv3 report, 1 record(s): ALLOW 232.1.1.1 {10.77.0.1} [BAD CHECKSUM]",
        ),
        (
            r#"{"event":"mld","iface":"eth0","direction":"in","src":"fe80::1","dst":"ff02::1","ttl":1,"router_alert":true,"checksum_ok":true,"message":{"type":"query","version":2,"group":"::","max_resp_ms":10000,"v3":{"suppress":false,"qrv":2,"qqi_s":125,"sources":[]}}}"#,
            "eth0 in fe80::1 -> ff02::1 ttl 1: MLDv2 general query, max response 10000 ms, S=0 QRV=2 QQI=125s",
        ),
        (
            r#"{"event":"malformed","iface":"eth0","direction":"in","src":"10.77.0.9","dst":"224.0.0.1","error":"x","bytes":30,"head":"46c0"}"#,
            "eth0 in: malformed packet of 30 bytes from 10.77.0.9: x; starts 46c0",
        ),
        (
            r#"{"event":"summary","seen":4,"bad_checksum":1,"malformed":1}"#,
            "summary: 4 messages (1 with a bad checksum), 1 malformed",
        ),
        (
            r#"{"event":"groups","index":2,"name":"eth0","igmp_version":3,"groups":[{"group":"224.3.29.71","users":2,"mode":"exclude","sources":[]},{"group":"232.1.1.1","users":1,"mode":"include","sources":["10.77.0.1"]}]}"#,
            "eth0 (index 2, IGMPv3):\n  224.3.29.71 any source (2 users)\n  232.1.1.1 from 10.77.0.1 (1 user)",
        ),
        (
            r#"{"event":"querier_started","iface":"eth0","address":"10.77.0.1","interval_s":1,"max_resp_ms":500,"other_querier_present_ms":2250}"#,
            "querier on eth0 as 10.77.0.1: general queries every 1 s, max response 500 ms; takes over from a lower querier silent for 2250 ms",
        ),
        (
            r#"{"event":"query_heard","from":"10.77.0.1","version":3,"group":"0.0.0.0"}"#,
            "heard an IGMPv3 general query from 10.77.0.1",
        ),
        (
            r#"{"event":"stepped_down","querier":"10.77.0.1"}"#,
            "10.77.0.1 has a lower address and queries: stopped querying",
        ),
        (
            r#"{"event":"took_over","previous":"10.77.0.1","silent_ms":2300}"#,
            "10.77.0.1 silent for 2300 ms: querying again",
        ),
        (
            r#"{"event":"summary","queries_sent":3,"queries_heard":2,"querier":true}"#,
            "summary: sent 3 queries, heard 2; querier at the end: yes",
        ),
        (
            r#"{"event":"member_expired","name":"bob","from":"10.77.0.2:10003"}"#,
            "* bob timed out (10.77.0.2:10003)",
        ),
    ];

    fn event(i: usize) -> Event {
        serde_json::from_str(LINES[i].0).unwrap_or_else(|e| panic!("{}: {e}", LINES[i].0))
    }

    #[test]
    fn every_line_reads_back_into_the_enum_and_prints_the_same() {
        for (i, (line, human)) in LINES.iter().enumerate() {
            let event = event(i);
            let again: Value = serde_json::to_value(&event).unwrap();
            let orig: Value = serde_json::from_str(line).unwrap();
            assert_eq!(again, orig, "{line}");
            assert_eq!(event.human().as_deref(), Some(*human), "{line}");
        }
    }

    #[test]
    fn shared_names_are_told_apart_by_their_fields() {
        fn is<T: TryFrom<Event>>(line: usize) -> bool {
            T::try_from(event(line)).is_ok()
        }
        assert!(is::<SendSummary>(3) && is::<RecvSummary>(8) && is::<ProbeSendSummary>(10));
        assert!(is::<ProbeRecvSummary>(13) && is::<ChatSummary>(18));
        assert!(is::<RecvJoined>(4) && is::<ProbeJoined>(11) && is::<ChatJoined>(14));
        assert!(is::<RecvMessage>(6) && is::<ChatMessage>(16));
        assert!(is::<ProbeStart>(9) && is::<ProbeReport>(12));
        assert!(is::<Listening>(19) && is::<Malformed>(23) && is::<IgmpSummary>(24));
        assert!(is::<InterfaceGroups>(25) && is::<QuerierStarted>(26) && is::<QuerierSummary>(30));
        assert!(RecvSummary::try_from(event(0)).is_err());
    }
}

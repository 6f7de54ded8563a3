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

use crate::probe::stats;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

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
    // ---- shared names ----
    /// `recv`, `probe recv`, `chat`: the group is joined, the handlers are
    /// installed (a script may signal from now on).
    Joined(Joined),
    /// `recv`: a datagram; `chat`: a member's line.
    Message(Message),
    /// Every subcommand, last: what it did.
    Summary(Summary),
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
    /// Sender runs seen.
    pub streams: usize,
    /// Runs whose end marker arrived.
    pub finished: usize,
    /// Datagrams that were not probe datagrams.
    pub foreign: u64,
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
            Event::Joined(j) => j.human(),
            Event::Message(Message::Recv(m)) => {
                format!("from {} ({} bytes): {}", m.from, m.bytes, m.text)
            }
            Event::Message(Message::Chat(m)) => format!("<{}> {}", m.name, m.text),
            Event::Summary(s) => s.human(),
        })
    }
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
            "report from {}: sent {}, received {}, lost {} ({:.3}%), duplicates {}, reordered {}, latency p50 {} p99 {} max {}",
            self.from,
            r.sent.map_or("?".to_string(), |s| s.to_string()),
            r.received, r.lost, self.loss_pct, r.duplicates, r.reordered,
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
                "summary: streams {}, finished {}, foreign datagrams {}",
                s.streams, s.finished, s.foreign
            ),
            Summary::Chat(s) => format!(
                "* left; sent {}, received {}, ignored {} foreign datagrams",
                s.sent, s.received, s.foreign
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
            r#"{"event":"report","sent":null,"received":2,"lost":3,"duplicates":0,"reordered":0,"latency_p50_us":7,"latency_p99_us":9,"latency_max_us":9,"from":"10.77.0.1:5000","run":"0000000000000001","loss_pct":60.0}"#,
            "report from 10.77.0.1:5000: sent ?, received 2, lost 3 (60.000%), duplicates 0, reordered 0, latency p50 7us p99 9us max 9us",
        ),
        (
            r#"{"event":"summary","streams":1,"finished":1,"foreign":2}"#,
            "summary: streams 1, finished 1, foreign datagrams 2",
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
            r#"{"event":"summary","sent":1,"received":1,"members":0,"foreign":1}"#,
            "* left; sent 1, received 1, ignored 1 foreign datagrams",
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
        assert!(RecvSummary::try_from(event(0)).is_err());
    }
}

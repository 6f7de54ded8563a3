//! Every event the peer prints with `--json`: one enum, tagged on `"event"`.
//!
//! The swarm (`peer --torrent`), `peer serve`, `peer fetch` and `peer
//! create` share it. Two names are used by two commands with different
//! fields, `progress` and `done`; their payloads are [`Progress`] and
//! [`Done`], told apart by their fields.
//!
//! Scripts and the tests read these lines back with `serde_json` into this
//! very type.
//!
//! `peer chat` prints its own events (joined … left, below) with a human
//! line each ([`crate::chat::ui::human`]); the other subcommands' events
//! have none.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One line of `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    // ---- the swarm ----
    /// The swarm session is up: the handlers are installed, the port is open.
    Started(Started),
    /// A connection passed the handshake and was admitted.
    PeerConnected {
        addr: String,
        peer_id: Option<String>,
        legacy: bool,
        outgoing: bool,
    },
    /// An admitted connection ended.
    PeerDisconnected { addr: String, reason: String },
    /// An opened connection found no free slot (`reason`) and waits its
    /// turn while useless connections are asked to give way.
    SlotWait { addr: String, reason: String },
    /// A connection was refused during the handshake.
    PeerRefused { addr: String, reason: String },
    /// We started dialing a peer; `connecting`: dials whose connect is
    /// under way, this one included (bounded).
    DialStarted { addr: String, connecting: usize },
    /// A peer was banned for sending bad data.
    PeerBanned { addr: String, reason: String },
    /// A piece failed its hash check.
    PieceFailed { addr: String, piece: u32 },
    /// A request of ours to a peer that delivers, if slowly, passed its
    /// deadline: it was withdrawn (a strike; the third drops the peer).
    RequestTimedOut { addr: String, piece: u32 },
    /// A peer let our requests time out: its connection was closed
    /// (`reason`), and we do not dial it again for `retry_secs` (`strikes`
    /// such closes so far; the wait doubles with each). `retry_secs` is 0
    /// for a peer that dialed us: it is not ours to redial.
    PeerBackedOff {
        addr: String,
        reason: String,
        strikes: u32,
        retry_secs: f64,
    },
    /// A peer of the swarm was heard on the LAN (BEP 14 discovery); `via`
    /// is the group it was heard on (`lsd-v4` or `lsd-v6`).
    PeerDiscovered {
        addr: String,
        info_hash: String,
        via: String,
    },
    /// An announce to the tracker failed.
    TrackerError { error: String },
    /// A tracker answered an announce: which one, the announce's event
    /// (`None` for a refresh) and how many peers it listed.
    Announced {
        tracker: String,
        announce: Option<String>,
        peers: usize,
    },
    /// The swarm's ended: everything it did, on exit.
    Stopped {
        seconds: f64,
        downloaded: u64,
        uploaded: u64,
        /// The peers that gave or took the most.
        peers: Vec<PeerSummary>,
        /// All the others, as totals.
        #[serde(default, skip_serializing_if = "OtherPeers::is_empty")]
        others: OtherPeers,
    },
    // ---- shared names ----
    /// About once a second while a transfer runs.
    Progress(Progress),
    /// A download is complete and verified.
    Done(Done),
    // ---- peer serve ----
    /// `peer serve` listens.
    Listening {
        addr: String,
        file: String,
        bytes: u64,
    },
    /// `peer serve` sent the whole file to a client.
    ClientDone {
        addr: String,
        bytes: u64,
        seconds: f64,
    },
    /// `peer serve` lost a client mid-file.
    ClientFailed {
        addr: String,
        bytes: u64,
        seconds: f64,
        error: String,
    },
    // ---- peer fetch ----
    /// `peer fetch` got the length of the file.
    Connected { addr: String, bytes: u64 },
    // ---- peer info ----
    /// `peer info`: what a torrent describes.
    Info(TorrentInfo),
    // ---- peer chat ----
    /// `peer chat` is in the room: who was online when it came.
    Joined {
        name: String,
        room: String,
        /// The TCP and UDP port, as bound.
        listen: String,
        /// Members online, and the seed's UDP clients (`ip:port`).
        members: Vec<String>,
    },
    /// A member came (or came back) online.
    MemberJoined { name: String, addr: String },
    /// A member left (`bye`), dropped, or broke the protocol.
    MemberLeft { name: String, reason: String },
    /// A line from a member (escaped). `private` for a whisper.
    Message {
        from: String,
        text: String,
        private: bool,
    },
    /// We sent a line: its `seq` and who should acknowledge it.
    Sent {
        seq: u64,
        private: bool,
        to: Vec<String>,
    },
    /// A member acknowledged our `seq`: `acked` of `of` recipients so far.
    Delivered {
        seq: u64,
        to: String,
        acked: usize,
        of: usize,
    },
    /// Messages kept for an absent member were dropped: the queue was full,
    /// or the member stayed away too long.
    QueueDropped {
        to: String,
        messages: usize,
        reason: String,
    },
    /// The answer to `/who`.
    Who {
        members: Vec<String>,
        away: Vec<String>,
    },
    /// Something for the person at the keyboard (a bad command, a cut line).
    Notice { text: String },
    /// `peer chat` left the room.
    Left {
        sent: u64,
        received: u64,
        /// Messages or hellos that claimed another member's name.
        forged: u64,
        /// Connections closed for breaking the protocol.
        refused: u64,
        queue_dropped: u64,
    },
    // ---- peer create ----
    /// `peer create` wrote a torrent.
    Created {
        torrent: PathBuf,
        info_hash: String,
        pieces: u32,
        piece_length: u64,
        /// Total bytes.
        file_length: u64,
        /// Number of files (1 for a single-file torrent).
        files: usize,
        seconds: f64,
    },
}

/// The payload of a `started` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub info_hash: String,
    /// Pieces in the torrent.
    pub pieces: u32,
    /// Pieces already held and verified.
    pub have: u32,
    /// The peer port, as bound.
    pub listen: String,
    pub peer_id: String,
    /// The data file.
    pub file: PathBuf,
    /// Whether the resume file spared a re-hash.
    pub resume: bool,
    pub tracker: String,
}

/// The payload of an `info` event (`peer info --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorrentInfo {
    /// The file's name, or the top directory's.
    pub name: String,
    pub info_hash: String,
    /// Whether the torrent holds a directory.
    pub directory: bool,
    pub piece_length: u64,
    pub pieces: u32,
    /// Total bytes.
    pub total_length: u64,
    /// Each file with its size (paths below the top directory).
    pub files: Vec<TorrentFile>,
    /// Trackers as HOST:PORT.
    pub trackers: Vec<String>,
    pub comment: String,
}

/// One file of a torrent, in [`TorrentInfo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorrentFile {
    pub path: String,
    pub length: u64,
}

/// What one remote peer did for us and we for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerSummary {
    pub addr: String,
    pub peer_id: Option<String>,
    pub downloaded: u64,
    pub uploaded: u64,
}

/// The peers a summary does not list one by one, as totals: a summary
/// names the top peers only, so its size stays bounded however many came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OtherPeers {
    /// Peer records not listed (a peer forgotten and seen again counts twice).
    pub peers: u64,
    pub downloaded: u64,
    pub uploaded: u64,
}

impl OtherPeers {
    pub fn is_empty(&self) -> bool {
        *self == OtherPeers::default()
    }

    /// Adds one peer's figures.
    pub fn add(&mut self, downloaded: u64, uploaded: u64) {
        self.peers += 1;
        self.downloaded += downloaded;
        self.uploaded += uploaded;
    }

    /// Adds another set of totals.
    pub fn merge(&mut self, other: &OtherPeers) {
        self.peers += other.peers;
        self.downloaded += other.downloaded;
        self.uploaded += other.uploaded;
    }
}

/// The payload of a `progress` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Progress {
    /// The swarm: pieces held, bytes, download rate (B/s), connected peers.
    Swarm {
        have: u32,
        pieces: u32,
        bytes: u64,
        rate: f64,
        peers: usize,
    },
    /// `peer fetch`: bytes received of `total`, rate (B/s), time so far.
    Fetch {
        bytes: u64,
        total: u64,
        rate: f64,
        seconds: f64,
    },
}

/// The payload of a `done` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Done {
    /// The swarm: time and bytes to complete, and who gave what.
    Swarm(SwarmDone),
    /// `peer fetch`: the file is complete at `output`.
    Fetch {
        bytes: u64,
        seconds: f64,
        rate: f64,
        output: PathBuf,
    },
}

/// The payload of the swarm's `done` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmDone {
    pub seconds: f64,
    /// Bytes downloaded (not counting what the resume file vouched for).
    pub bytes: u64,
    /// The peers that gave or took the most.
    pub peers: Vec<PeerSummary>,
    /// All the others, as totals.
    #[serde(default, skip_serializing_if = "OtherPeers::is_empty")]
    pub others: OtherPeers,
}

impl SwarmDone {
    /// Bytes downloaded from the peer with this id (0 if none).
    pub fn downloaded_from(&self, peer_id: &str) -> u64 {
        self.peers
            .iter()
            .filter(|p| p.peer_id.as_deref() == Some(peer_id))
            .map(|p| p.downloaded)
            .sum()
    }
}

/// Only `peer chat`'s events have a human line; the others reach people
/// through the progress bar and summaries.
impl lanio::events::Event for Event {
    fn human(&self) -> Option<String> {
        crate::chat::ui::human(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_names_round_trip_by_their_fields() {
        for line in [
            r#"{"event":"progress","have":1,"pieces":4,"bytes":10,"rate":2.0,"peers":1}"#,
            r#"{"event":"progress","bytes":10,"total":20,"rate":2.0,"seconds":0.5}"#,
            r#"{"event":"done","seconds":1.0,"bytes":5,"peers":[{"addr":"a","peer_id":null,"downloaded":5,"uploaded":0}]}"#,
            r#"{"event":"done","bytes":5,"seconds":1.0,"rate":5.0,"output":"/tmp/x"}"#,
        ] {
            let ev: Event = serde_json::from_str(line).unwrap();
            let back: serde_json::Value = serde_json::to_value(&ev).unwrap();
            let orig: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(back, orig, "{line}");
        }
        let ev: Event = serde_json::from_str(
            r#"{"event":"done","bytes":5,"seconds":1.0,"rate":5.0,"output":"/tmp/x"}"#,
        )
        .unwrap();
        assert!(matches!(ev, Event::Done(Done::Fetch { .. })));
    }
}

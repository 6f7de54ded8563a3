//! Every event the peer prints with `--json`: one enum, tagged on `"event"`.
//!
//! The swarm (`peer --torrent`), `peer serve`, `peer fetch` and `peer
//! create` share it. Two names are used by two commands with different
//! fields, `progress` and `done`; their payloads are [`Progress`] and
//! [`Done`], told apart by their fields.
//!
//! Scripts and the tests read these lines back with `serde_json` into this
//! very type.

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
    /// A connection was refused during the handshake.
    PeerRefused { addr: String, reason: String },
    /// A peer was banned for sending bad data.
    PeerBanned { addr: String, reason: String },
    /// A piece failed its hash check.
    PieceFailed { addr: String, piece: u32 },
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
        peers: Vec<PeerSummary>,
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
    pub peers: Vec<PeerSummary>,
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

/// Events reach people through the progress bar and summaries instead, so
/// none has a human line of its own.
impl lanio::events::Event for Event {}

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

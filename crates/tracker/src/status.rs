//! `tracker status`: ask a running tracker for its swarms (a
//! `{"request":"status"}` frame on its ordinary port) and print them as a
//! table, or with `--json` as one JSON object.
//!
//! The command line ([`crate::cli`]) parses the options and calls [`run`];
//! this module knows nothing of it.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::net::TcpStream;
use wire::tracker::{AnnounceResponse, StatusResponse, TrackerRequest};
use wire::{FrameError, DEFAULT_MAX_FRAME};

/// Why a tracker could not be asked for its status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot connect to tracker at {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot send to {addr}")]
    Send {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} closed the connection without answering")]
    Closed { addr: String },
    #[error("bad reply from {addr}")]
    BadReply {
        addr: String,
        #[source]
        source: FrameError,
    },
    #[error("{addr} refused the status request: {message}")]
    Refused { addr: String, message: String },
    #[error("{addr} answered with something that is not a tracker status")]
    NotStatus { addr: String },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// Fetches the status of the tracker at `addr` (`HOST:PORT`).
pub async fn fetch(addr: &str) -> Result<StatusResponse, StatusError> {
    let addr_owned = || addr.to_string();
    let mut socket = TcpStream::connect(addr)
        .await
        .map_err(|source| StatusError::Connect {
            addr: addr_owned(),
            source,
        })?;
    lanio::frame::write_frame_async(&mut socket, &TrackerRequest::Status.to_json())
        .await
        .map_err(|source| StatusError::Send {
            addr: addr_owned(),
            source,
        })?;
    let frame = lanio::frame::read_frame_async(&mut socket, DEFAULT_MAX_FRAME as u64)
        .await
        .map_err(|source| StatusError::BadReply {
            addr: addr_owned(),
            source,
        })?
        .ok_or_else(|| StatusError::Closed { addr: addr_owned() })?;
    if let Ok(status) = serde_json::from_slice::<StatusResponse>(&frame) {
        return Ok(status);
    }
    match AnnounceResponse::parse(&frame) {
        Ok(err) if err.is_error() => Err(StatusError::Refused {
            addr: addr_owned(),
            message: err.message,
        }),
        _ => Err(StatusError::NotStatus { addr: addr_owned() }),
    }
}

/// Runs `tracker status`: asks the tracker at `addr`, waiting at most
/// `timeout`, and prints the table (or with `json` the JSON object).
pub async fn run(addr: String, timeout: Duration, json: bool) -> anyhow::Result<()> {
    let status = tokio::time::timeout(timeout, fetch(&addr))
        .await
        .map_err(|_| StatusError::Timeout {
            addr: addr.clone(),
            timeout,
        })??;
    if json {
        println!("{}", render_json(&status));
    } else {
        print!("{}", render_table(&status));
    }
    Ok(())
}

/// The `--json` form: one line, `{"swarms":[…]}`.
pub fn render_json(status: &StatusResponse) -> String {
    serde_json::to_string(status).expect("status always serialises")
}

/// The human form: one block per swarm, one row per peer.
pub fn render_table(status: &StatusResponse) -> String {
    let mut out = String::new();
    if status.swarms.is_empty() {
        out.push_str("no swarms\n");
    }
    for (i, swarm) in status.swarms.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let seeds = swarm.peers.iter().filter(|p| p.seed).count();
        let file = swarm
            .file_name
            .as_deref()
            .map_or_else(|| "(unknown)".to_string(), |f| f.escape_debug().to_string());
        let _ = writeln!(
            out,
            "swarm {}  file: {file}  peers: {} ({seeds} seed, {} leech)",
            swarm.info_hash,
            swarm.peers.len(),
            swarm.peers.len() - seeds
        );
        if swarm.peers.is_empty() {
            out.push_str("  (no peers)\n");
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<24} {:<24} {:<5} {:>9}",
            "ADDRESS", "PEER ID", "ROLE", "LAST SEEN"
        );
        for p in &swarm.peers {
            let e = &p.entry;
            let addr = if e.peer_ip.contains(':') {
                format!("[{}]:{}", e.peer_ip, e.peer_port)
            } else {
                format!("{}:{}", e.peer_ip, e.peer_port)
            };
            // Peer ids are strangers' strings: never send control characters to a terminal.
            let id = e.peer_id.escape_debug().to_string();
            let role = if p.seed { "seed" } else { "leech" };
            let seen = format!("{}s ago", p.last_seen_secs.floor() as u64);
            let _ = writeln!(out, "  {addr:<24} {id:<24} {role:<5} {seen:>9}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::tracker::{PeerEntry, StatusPeer, SwarmStatus};

    fn sample() -> StatusResponse {
        StatusResponse {
            swarms: vec![
                SwarmStatus {
                    info_hash: "ab".repeat(20),
                    file_name: Some("movie.mkv".into()),
                    peers: vec![StatusPeer {
                        entry: PeerEntry {
                            peer_id: "127.0.0.1:6881".into(),
                            peer_ip: "127.0.0.1".into(),
                            peer_port: 6881,
                            proto: None,
                        },
                        seed: true,
                        last_seen_secs: 3.4,
                        tracker: None,
                    }],
                },
                SwarmStatus {
                    info_hash: "00".repeat(20),
                    file_name: None,
                    peers: vec![],
                },
            ],
            replication: None,
        }
    }

    #[test]
    fn table_shows_hash_file_and_peers() {
        let table = render_table(&sample());
        assert!(
            table.contains(&format!("swarm {}", "ab".repeat(20))),
            "{table}"
        );
        assert!(table.contains("file: movie.mkv"), "{table}");
        assert!(table.contains("127.0.0.1:6881"), "{table}");
        assert!(table.contains("seed"), "{table}");
        assert!(table.contains("3s ago"), "{table}");
        assert!(table.contains("file: (unknown)"), "{table}");
        assert!(table.contains("(no peers)"), "{table}");
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&sample())).unwrap();
        let peer = &v["swarms"][0]["peers"][0];
        assert_eq!(v["swarms"][0]["file_name"], "movie.mkv");
        assert_eq!(v["swarms"][1]["file_name"], serde_json::Value::Null);
        assert_eq!(peer["peer-id"], "127.0.0.1:6881");
        assert_eq!(peer["peer-ip"], "127.0.0.1");
        assert_eq!(peer["peer-port"], 6881);
        assert_eq!(peer["seed"], true);
        assert_eq!(peer["last_seen_secs"], 3.4);
    }

    #[test]
    fn control_characters_in_peer_ids_are_escaped() {
        let mut s = sample();
        s.swarms[0].peers[0].entry.peer_id = "evil\x1b[2J".into();
        assert!(!render_table(&s).contains('\x1b'));
    }
}

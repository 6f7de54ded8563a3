//! `tracker status`: ask a running tracker for its swarms (a
//! `{"request":"status"}` frame on its ordinary port) and print them as a
//! table, or with `--json` as one JSON object. A replicating tracker also
//! shows, for each peer, the tracker it announced to, and its replicas.
//!
//! The command line ([`crate::cli`]) parses the options and calls [`run`];
//! this module knows nothing of it.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::net::TcpStream;
use wire::replica::ReplicationStatus;
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

/// The human form: one block per swarm, one row per peer; a chat room's
/// peers (those that announced a `name`) show it in a last column.
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
        let names = swarm.peers.iter().any(|p| p.name.is_some());
        let trackers = swarm.peers.iter().any(|p| p.tracker.is_some());
        let _ = writeln!(
            out,
            "  {:<24} {:<24} {:<5} {:>9} {:>14}{}{}",
            "ADDRESS",
            "PEER ID",
            "ROLE",
            "LAST SEEN",
            "LEFT (BYTES)",
            if trackers { "  TRACKER         " } else { "" },
            if names { "  NAME" } else { "" }
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
            let left = p.left.map_or_else(|| "-".to_string(), |n| n.to_string());
            let tracker = match (trackers, p.tracker) {
                (true, Some(t)) => format!("  {t}"),
                (true, None) => format!("  {:<16}", "-"),
                (false, _) => String::new(),
            };
            let name = match &p.name {
                Some(name) => format!("  {}", name.escape_debug()),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {addr:<24} {id:<24} {role:<5} {seen:>9} {left:>14}{tracker}{name}"
            );
        }
    }
    if let Some(s) = &status.stats {
        let _ = writeln!(
            out,
            "\nannounces: {} ({:.1}/s)  bad requests: {}  bad frames: {}  \
             connections refused: {}  timeouts: {}  web viewers refused: {}  dropped: {}",
            s.announces,
            s.announces_per_sec,
            s.bad_requests,
            s.bad_frames,
            s.connections_refused,
            s.timeouts,
            s.subscribers_refused,
            s.subscribers_dropped
        );
    }
    if let Some(r) = &status.replication {
        render_replication(&mut out, r);
    }
    out
}

fn render_replication(out: &mut String, r: &ReplicationStatus) {
    let _ = writeln!(
        out,
        "\nreplicating on {} as tracker {} (last change sent: {})",
        r.group, r.id, r.seq
    );
    if r.replicas.is_empty() {
        out.push_str("  (no replicas heard)\n");
    } else {
        let _ = writeln!(
            out,
            "  {:<16} {:<24} {:>10} {:>8} {:>5}",
            "REPLICA", "ADDRESS", "LAST HEARD", "SEQ", "LAG"
        );
        for p in &r.replicas {
            let heard = format!("{:.1}s ago", p.last_heard_secs);
            let _ = writeln!(
                out,
                "  {:<16} {:<24} {heard:>10} {:>8} {:>5}",
                p.id.to_string(),
                p.addr.to_string(),
                p.seq,
                p.lag
            );
        }
    }
    let d = &r.dropped;
    let _ = writeln!(
        out,
        "  dropped: {} own, {} foreign, {} malformed, {} oversize, {} over limit",
        d.own, d.foreign, d.malformed, d.oversize, d.over_limit
    );
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
                        name: None,
                        left: None,
                        downloaded: None,
                    }],
                },
                SwarmStatus {
                    info_hash: "00".repeat(20),
                    file_name: None,
                    peers: vec![],
                },
            ],
            replication: None,
            rooms: vec![],
            replicas: vec![],
            stats: None,
            totals: None,
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
        assert!(!table.contains("announces:"), "{table}");
    }

    #[test]
    fn table_shows_progress_and_counters_when_listed() {
        let mut s = sample();
        s.swarms[0].peers[0].left = Some(123_456);
        s.stats = Some(wire::tracker::TrackerStats {
            announces: 42,
            announces_per_sec: 2.5,
            bad_requests: 3,
            ..Default::default()
        });
        let table = render_table(&s);
        assert!(table.contains("123456"), "{table}");
        assert!(table.contains("announces: 42 (2.5/s)"), "{table}");
        assert!(table.contains("bad requests: 3"), "{table}");
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
    fn replication_shows_origins_replicas_and_drops() {
        use wire::replica::{DropCounts, ReplicaStatus, TrackerId};
        let mut s = sample();
        let id = |n| TrackerId::new(n).unwrap();
        s.swarms[0].peers[0].tracker = Some(id(0xbeef));
        s.replication = Some(ReplicationStatus {
            id: id(0xa),
            group: "239.255.66.66:6666".parse().unwrap(),
            seq: 12,
            replicas: vec![ReplicaStatus {
                id: id(0xbeef),
                addr: "10.77.0.2:6666".parse().unwrap(),
                last_heard_secs: 0.4,
                seq: 30,
                lag: 2,
            }],
            dropped: DropCounts {
                foreign: 7,
                ..DropCounts::default()
            },
        });
        let table = render_table(&s);
        assert!(table.contains("TRACKER"), "{table}");
        let peer = table
            .lines()
            .find(|l| l.contains("127.0.0.1:6881"))
            .unwrap();
        assert!(peer.ends_with("000000000000beef"), "{peer}");
        assert!(
            table.contains("replicating on 239.255.66.66:6666 as tracker 000000000000000a"),
            "{table}"
        );
        let replica = table
            .lines()
            .find(|l| l.contains("10.77.0.2:6666"))
            .unwrap();
        assert!(
            replica.contains("0.4s ago") && replica.trim_end().ends_with('2'),
            "{replica}"
        );
        assert!(table.contains("7 foreign"), "{table}");
        let v: serde_json::Value = serde_json::from_str(&render_json(&s)).unwrap();
        assert_eq!(v["swarms"][0]["peers"][0]["tracker"], "000000000000beef");
        assert_eq!(v["replication"]["replicas"][0]["lag"], 2);
        assert_eq!(v["replication"]["dropped"]["foreign"], 7);
    }

    #[test]
    fn chat_members_show_their_names() {
        let mut s = sample();
        assert!(!render_table(&s).contains("NAME"));
        s.swarms[0].peers[0].name = Some("ann".into());
        let table = render_table(&s);
        assert!(table.contains("NAME"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.contains("3s ago") && l.ends_with("  ann")),
            "{table}"
        );
    }

    #[test]
    fn control_characters_in_peer_ids_are_escaped() {
        let mut s = sample();
        s.swarms[0].peers[0].entry.peer_id = "evil\x1b[2J".into();
        assert!(!render_table(&s).contains('\x1b'));
    }
}

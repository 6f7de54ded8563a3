//! `tracker status`: ask a running tracker for its swarms (a
//! `{"request":"status"}` frame on its ordinary port) and print them as a
//! table, or with `--json` as one JSON object.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use wire::tracker::{AnnounceResponse, StatusResponse, TrackerRequest};
use wire::FrameCodec;

use crate::cli::StatusArgs;

/// Fetches the status of the tracker at `addr` (`HOST:PORT`).
pub async fn fetch(addr: &str) -> anyhow::Result<StatusResponse> {
    let socket = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to tracker at {addr}"))?;
    let mut framed = Framed::new(socket, FrameCodec::default());
    framed
        .send(Bytes::from(TrackerRequest::Status.to_json()))
        .await
        .with_context(|| format!("cannot send to {addr}"))?;
    let frame = framed
        .next()
        .await
        .ok_or_else(|| anyhow!("{addr} closed the connection without answering"))?
        .with_context(|| format!("bad reply from {addr}"))?;
    if let Ok(status) = serde_json::from_slice::<StatusResponse>(&frame) {
        return Ok(status);
    }
    match AnnounceResponse::parse(&frame) {
        Ok(err) if err.is_error() => bail!("{addr} refused the status request: {}", err.message),
        _ => bail!("{addr} answered with something that is not a tracker status"),
    }
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

/// Runs `tracker status`; exit code 0, or 1 when the tracker cannot be asked.
pub fn run(args: &StatusArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracker status: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let answer =
        runtime.block_on(async { tokio::time::timeout(args.timeout, fetch(&args.addr)).await });
    match answer {
        Ok(Ok(status)) => {
            if args.json {
                println!("{}", render_json(&status));
            } else {
                print!("{}", render_table(&status));
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("tracker status: {e:#}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!(
                "tracker status: no answer from {} within {:?}",
                args.addr, args.timeout
            );
            ExitCode::from(1)
        }
    }
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
            rooms: vec![],
            replicas: vec![],
            stats: None,
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

//! What the tracker tells its operator: tracing lines at info level on
//! stderr, and with `--json` one JSON object per line on stdout, each with an
//! `"event"` field (`listening`, `join`, `seed`, `leave`, `expire`,
//! `shutdown`).

use std::io::Write;
use std::net::SocketAddr;

use serde_json::{json, Value};
use tracing::info;
use wire::InfoHash;

use crate::handler::Note;
use crate::registry::{Change, Departed};

/// Reports tracker events to the log and, optionally, as JSON lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reporter {
    json: bool,
}

impl Reporter {
    pub fn new(json: bool) -> Self {
        Reporter { json }
    }

    fn emit(&self, value: Value) {
        if self.json {
            let mut out = std::io::stdout().lock();
            // A closed stdout must not take the tracker down.
            let _ = writeln!(out, "{value}");
            let _ = out.flush();
        }
    }

    pub fn listening(&self, addr: SocketAddr) {
        info!("listening on {addr}");
        self.emit(json!({"event": "listening", "addr": addr.to_string()}));
    }

    /// A join, a leave or a peer turning seed.
    pub fn note(&self, note: &Note) {
        let Note {
            change,
            swarm,
            peer_id,
            addr,
        } = note;
        let event = match change {
            Change::Joined { seed } => {
                let role = if *seed { "seed" } else { "leech" };
                info!(%swarm, %addr, peer_id, "join ({role})");
                self.emit(json!({
                    "event": "join", "info_hash": swarm.to_hex(), "peer_id": peer_id,
                    "addr": addr.to_string(), "seed": seed,
                }));
                return;
            }
            Change::BecameSeed => {
                info!(%swarm, %addr, peer_id, "completed: now a seed");
                "seed"
            }
            Change::Left => {
                info!(%swarm, %addr, peer_id, "leave");
                "leave"
            }
            Change::Refreshed | Change::Absent => return,
        };
        self.peer_event(event, swarm, peer_id, addr);
    }

    pub fn expired(&self, d: &Departed) {
        info!(swarm = %d.swarm, addr = %d.addr, peer_id = &*d.peer_id, "expire: not heard from in 2 x interval");
        self.peer_event("expire", &d.swarm, &d.peer_id, &d.addr);
    }

    fn peer_event(&self, event: &str, swarm: &InfoHash, peer_id: &str, addr: &SocketAddr) {
        self.emit(json!({
            "event": event, "info_hash": swarm.to_hex(), "peer_id": peer_id,
            "addr": addr.to_string(),
        }));
    }

    pub fn shutdown(&self, open_connections: usize) {
        info!("shutting down: finishing {open_connections} open connection(s)");
        self.emit(json!({"event": "shutdown", "open_connections": open_connections}));
    }
}

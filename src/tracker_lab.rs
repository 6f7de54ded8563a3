//! Trackers and peers on [`netns`](crate::netns) hosts: replicating trackers
//! on one bridge, read back through their typed events
//! ([`tracker::Event`]) and their status, and announces sent from inside a
//! host.
//!
//! ```no_run
//! use lanswarm::mcast_lab::lab;
//! use lanswarm::tracker_lab::{start_tracker_on, status_rows};
//!
//! let Some(lan) = lab(2) else { return };
//! let mut a = start_tracker_on(lan.host(0), "a", &[]);
//! let b = start_tracker_on(lan.host(1), "b", &[]);
//! a.wait_all(std::time::Duration::from_secs(10), [b.id], |e| match e {
//!     tracker::Event::ReplicaHeard { id, .. } => Some(id),
//!     _ => None,
//! });
//! assert!(status_rows(lan.host(0), a.addr).is_empty());
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tracker::Event;
use wire::replica::TrackerId;
use wire::tracker::{AnnounceResponse, StatusResponse, TrackerRequest};

use crate::fixture::STEP;
use crate::netns::Host;
use crate::process::{bin_path, Proc};
use crate::tracker_client::{announce_body, Client};

/// The TCP port trackers listen on in the lab.
pub const TRACKER_PORT: u16 = 6666;

/// A tracker running on a lab host.
pub struct HostTracker {
    pub proc: Proc,
    /// Where peers reach it.
    pub addr: SocketAddr,
    /// Its replication id.
    pub id: TrackerId,
}

/// `tracker --listen IP:6666 --json --replicate ARGS…` on `host` (logging
/// at info level), once it has said it listens and replicates.
pub fn start_tracker_on(host: &Host, name: &str, args: &[&str]) -> HostTracker {
    let mut cmd = host.command(bin_path("tracker"));
    cmd.args(["--listen", &format!("{}:{TRACKER_PORT}", host.ipv4())])
        .args(["--json", "--replicate"])
        .args(args)
        .env("RUST_LOG", "info");
    let mut proc = Proc::spawn(name, cmd);
    let addr = proc.wait_event(STEP, |e| match e {
        Event::Listening { addr } => Some(addr),
        _ => None,
    });
    let id = proc.wait_event(STEP, |e| match e {
        Event::Replicating { id, .. } => Some(id),
        _ => None,
    });
    HostTracker { proc, addr, id }
}

impl HostTracker {
    /// Waits at most `timeout` for the next event `pick` accepts.
    pub fn wait_event<T>(&mut self, timeout: Duration, pick: impl FnMut(Event) -> Option<T>) -> T {
        self.proc.wait_event(timeout, pick)
    }

    /// Waits at most `timeout` until `pick` has named every key of `want`,
    /// in any order; other events are skipped.
    pub fn wait_all<K: Ord + std::fmt::Debug>(
        &mut self,
        timeout: Duration,
        want: impl IntoIterator<Item = K>,
        mut pick: impl FnMut(Event) -> Option<K>,
    ) {
        let mut left: BTreeSet<K> = want.into_iter().collect();
        let deadline = Instant::now() + timeout;
        while !left.is_empty() {
            let wait = deadline.saturating_duration_since(Instant::now());
            let name = self.proc.name.clone();
            let result = self
                .proc
                .try_event(wait, |e| pick(e).filter(|k| left.contains(k)));
            match result {
                Ok(k) => {
                    left.remove(&k);
                }
                Err(e) => panic!("{name}: still waiting for {left:?}: {e}"),
            }
        }
    }
}

/// One peer as a tracker lists it, comparable across trackers:
/// (info hash, address, peer id, seed, tracker it announced to).
pub type PeerRow = (String, String, String, bool, Option<TrackerId>);

/// Asks the tracker at `addr` for its status, from `host`.
pub fn status_from(host: &Host, addr: SocketAddr) -> StatusResponse {
    host.ns()
        .run_inside(|| {
            let reply = Client::connect(addr).request_raw(&TrackerRequest::Status.to_json());
            serde_json::from_slice(&reply).expect("a status reply")
        })
        .expect("enter the host's namespace")
}

/// The peers a status lists, as rows.
pub fn rows(status: &StatusResponse) -> BTreeSet<PeerRow> {
    status
        .swarms
        .iter()
        .flat_map(|s| {
            s.peers.iter().map(|p| {
                (
                    s.info_hash.clone(),
                    format!("{}:{}", p.entry.peer_ip, p.entry.peer_port),
                    p.entry.peer_id.clone(),
                    p.seed,
                    p.tracker,
                )
            })
        })
        .collect()
}

/// The peer rows of the tracker at `addr`, asked from `host`.
pub fn status_rows(host: &Host, addr: SocketAddr) -> BTreeSet<PeerRow> {
    rows(&status_from(host, addr))
}

/// One announce from `host` on a fresh connection: port, peer id and extra
/// JSON members as in [`announce_body`].
pub fn announce_from(
    host: &Host,
    tracker: SocketAddr,
    port: u16,
    peer_id: &str,
    extra: &str,
) -> AnnounceResponse {
    let body = announce_body(port, peer_id, extra);
    host.ns()
        .run_inside(|| Client::connect(tracker).request(&body))
        .expect("enter the host's namespace")
}

/// `peer --torrent T --dir DIR --listen IP:0 --json --no-discover --tracker A
/// [--tracker B …]` on `host`: the peers it finds come from the trackers
/// alone, not from LAN discovery.
pub fn peer_on(host: &Host, torrent: &Path, dir: &Path, trackers: &[SocketAddr]) -> Command {
    let mut cmd = host.command(bin_path("peer"));
    cmd.arg("--torrent")
        .arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args([
            "--listen",
            &format!("{}:0", host.ipv4()),
            "--json",
            "--no-discover",
        ]);
    for t in trackers {
        cmd.args(["--tracker", &t.to_string()]);
    }
    cmd
}

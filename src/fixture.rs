//! Building blocks for swarm tests, demos and benchmarks: a tracker on a
//! free loopback port, generated files, torrents, peers, and a blocking
//! speaker of the wire protocol for writing fake peers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wire::tracker::{AnnounceRequest, AnnounceResponse};
use wire::{Message, Torrent};

use crate::expect_event;
pub use crate::files::{same_file, write_random_file};
use crate::process::{command, Proc};
use peer::events::{Done, Event};
pub use peer::events::{Started, SwarmDone};

/// Generous limit for any single step of a test on a loaded 2-core machine.
pub const STEP: Duration = Duration::from_secs(60);

/// A running tracker on 127.0.0.1 and its address.
pub struct TrackerProc {
    pub proc: Proc,
    pub addr: SocketAddr,
}

/// Starts `tracker --listen 127.0.0.1:0 ARGS…` and waits until it listens.
pub fn start_tracker(args: &[&str]) -> TrackerProc {
    let mut cmd = command("tracker");
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    let mut proc = Proc::spawn("tracker", cmd);
    let line = proc.expect_line("listening on", STEP);
    let addr = line
        .rsplit("listening on")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.trim_matches(|c: char| c == '"' || c == ',').parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    TrackerProc { proc, addr }
}

/// The usual start of a swarm test: a tracker, a generated `data.bin` and
/// its torrent, in a temporary directory removed on drop.
pub struct Scenario {
    pub tmp: tempfile::TempDir,
    pub tracker: TrackerProc,
    pub data: PathBuf,
    pub torrent: PathBuf,
}

impl Scenario {
    /// `size` bytes of data (pseudo-random from `seed`) in pieces of
    /// `piece_length`, and a tracker started with `tracker_args`.
    pub fn new(size: u64, piece_length: u64, seed: u64, tracker_args: &[&str]) -> Scenario {
        let tmp = tempfile::tempdir().expect("temp dir");
        let tracker = start_tracker(tracker_args);
        let data = tmp.path().join("data.bin");
        write_random_file(&data, size, seed);
        let torrent = create_torrent(
            &data,
            tracker.addr,
            Some(piece_length),
            &tmp.path().join("t.torrent"),
        );
        Scenario {
            tmp,
            tracker,
            data,
            torrent,
        }
    }

    /// A path inside the scenario's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A directory named `name` holding a copy of the data: a seeder's.
    pub fn seed_dir(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).expect("create seed dir");
        std::fs::copy(&self.data, dir.join("data.bin")).expect("copy data");
        dir
    }

    /// Starts a seeder in a fresh copy of the data and waits until the
    /// tracker has registered it. Returns the process and its `started` event.
    pub fn start_seeder(&mut self, name: &str) -> (Proc, Started) {
        let started = start_peer(name, peer_command(&self.torrent, &self.seed_dir(name)));
        self.tracker.proc.expect_line("join", STEP);
        started
    }

    /// A leecher command (`--exit-when-done`) downloading into `name/`.
    pub fn leecher_command(&self, name: &str) -> Command {
        let mut cmd = peer_command(&self.torrent, &self.path(name));
        cmd.arg("--exit-when-done");
        cmd
    }

    /// Whether `name/data.bin` is byte-identical to the data.
    pub fn has_right_copy(&self, name: &str) -> bool {
        same_file(&self.data, &self.path(name).join("data.bin"))
    }
}

/// Runs `peer create FILE --tracker ADDR [--piece-length N] -o OUT` and returns OUT.
pub fn create_torrent(
    file: &Path,
    tracker: SocketAddr,
    piece_length: Option<u64>,
    out: &Path,
) -> PathBuf {
    let mut cmd = command("peer");
    cmd.arg("create")
        .arg(file)
        .args(["--tracker", &tracker.to_string()]);
    if let Some(pl) = piece_length {
        cmd.args(["--piece-length", &pl.to_string()]);
    }
    cmd.arg("-o").arg(out);
    let result = cmd.output().expect("run peer create");
    assert!(
        result.status.success(),
        "peer create failed: {}\n{}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    out.to_path_buf()
}

/// A `peer --torrent T --dir DIR --listen 127.0.0.1:0 --json` command.
pub fn peer_command(torrent: &Path, dir: &Path) -> Command {
    let mut cmd = command("peer");
    cmd.arg("--torrent")
        .arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--json"]);
    cmd
}

/// Starts a peer and waits for its `started` event, which it returns.
pub fn start_peer(name: &str, cmd: Command) -> (Proc, Started) {
    let mut proc = Proc::spawn(name, cmd);
    let started = expect_event!(proc, STEP, Event::Started(started) => started);
    (proc, started)
}

/// Waits for a peer's swarm `done` event and returns it.
pub fn expect_done(proc: &mut Proc) -> SwarmDone {
    expect_event!(proc, STEP, Event::Done(Done::Swarm(done)) => done)
}

/// Reads a torrent file.
pub fn load_torrent(path: &Path) -> Torrent {
    Torrent::from_json(&std::fs::read(path).expect("read torrent")).expect("valid torrent")
}

/// A blocking peer-wire speaker over one TCP stream, for fake peers in tests.
pub struct WireStream {
    pub stream: TcpStream,
    pub piece_count: Option<u32>,
}

impl WireStream {
    pub fn new(stream: TcpStream, piece_count: Option<u32>) -> Self {
        stream.set_nodelay(true).ok();
        Self {
            stream,
            piece_count,
        }
    }

    /// Sends one framed message.
    pub fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        self.stream.write_all(&wire::codec::encode_framed(msg))
    }

    /// Receives one framed message (frames over 32 MiB are refused).
    pub fn recv(&mut self) -> std::io::Result<Message> {
        let body = read_frame(&mut self.stream, 32 << 20)?;
        Message::decode(body.into(), self.piece_count)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// Reads one 8-byte-length-prefixed frame.
pub fn read_frame(stream: &mut TcpStream, max: u64) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header)?;
    let len = u64::from_be_bytes(header);
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// One blocking announce, as a fake peer would send it.
pub fn announce(tracker: SocketAddr, req: &AnnounceRequest) -> AnnounceResponse {
    let mut s = TcpStream::connect(tracker).expect("connect tracker");
    s.set_read_timeout(Some(STEP)).ok();
    let body = req.to_json();
    s.write_all(&(body.len() as u64).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let reply = read_frame(&mut s, 1 << 20).expect("tracker reply");
    AnnounceResponse::parse(&reply).expect("tracker reply is JSON")
}

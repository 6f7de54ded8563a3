//! Building blocks for swarm tests, demos and benchmarks: a tracker on a
//! free loopback port, generated files, torrents, peers, and a blocking
//! speaker of the wire protocol for writing fake peers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lanio::frame::FrameError;
use tracker::events::{Event as TrackerEvent, PeerEvent};
use wire::tracker::{AnnounceRequest, AnnounceResponse};
use wire::{Message, Torrent};

use peer::events::{Done, Event};
pub use peer::events::{Started, SwarmDone};

use crate::expect_event;
pub use crate::files::{same_file, write_random_file};
use crate::process::{command, Proc};
use crate::tracker_client::Client;

/// Generous limit for any single step of a test on a loaded 2-core machine.
pub const STEP: Duration = Duration::from_secs(60);

/// A running tracker on 127.0.0.1 and its address.
pub struct TrackerProc {
    pub proc: Proc,
    pub addr: SocketAddr,
}

/// `tracker --listen 127.0.0.1:0 --json ARGS…`, logging at info level: the
/// command [`start_tracker`] runs.
pub fn tracker_command(args: &[&str]) -> Command {
    let mut cmd = command("tracker");
    cmd.args(["--listen", "127.0.0.1:0", "--json"]).args(args);
    cmd.env("RUST_LOG", "info");
    cmd
}

/// Starts `tracker --listen 127.0.0.1:0 --json ARGS…` and waits for its
/// `listening` event, which names the address it bound. Its events
/// ([`TrackerProc::wait_event`]) and its info-level log lines are both in
/// [`Proc::output`].
pub fn start_tracker(args: &[&str]) -> TrackerProc {
    let mut proc = Proc::spawn("tracker", tracker_command(args));
    let addr = proc.wait_event(STEP, |e| match e {
        TrackerEvent::Listening { addr } => Some(addr),
        _ => None,
    });
    TrackerProc { proc, addr }
}

impl TrackerProc {
    /// Waits at most `timeout` for the tracker's next event that `pick`
    /// accepts; earlier events are skipped.
    pub fn wait_event<T>(
        &mut self,
        timeout: Duration,
        pick: impl FnMut(TrackerEvent) -> Option<T>,
    ) -> T {
        self.proc.wait_event(timeout, pick)
    }

    /// Waits at most `timeout` for the peer `peer_id` to join.
    pub fn expect_join(&mut self, peer_id: &str, timeout: Duration) -> PeerEvent {
        self.wait_event(timeout, |e| match e {
            TrackerEvent::Join { peer, .. } if peer.peer_id == peer_id => Some(peer),
            _ => None,
        })
    }
}

/// [`start_tracker`] with `--http 127.0.0.1:0 ARGS…`: the tracker and the
/// address of its web page, from its `http_listening` event.
pub fn start_web_tracker(args: &[&str]) -> (TrackerProc, SocketAddr) {
    let mut all = vec!["--http", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut tracker = start_tracker(&all);
    let http = tracker.wait_event(STEP, |e| match e {
        TrackerEvent::HttpListening { addr } => Some(addr),
        _ => None,
    });
    (tracker, http)
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
        self.tracker.expect_join(&started.1.peer_id, STEP);
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

/// A `peer --torrent T --dir DIR --listen 127.0.0.1:0 --json --no-discover`
/// command. LAN discovery is off: tests on this host must not multicast on
/// its real interfaces (discovery tests run in their own namespaces).
pub fn peer_command(torrent: &Path, dir: &Path) -> Command {
    let mut cmd = command("peer");
    cmd.arg("--torrent")
        .arg(torrent)
        .arg("--dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--json", "--no-discover"]);
    cmd
}

/// Starts a peer and waits for its `started` event, which it returns.
pub fn start_peer(name: &str, cmd: Command) -> (Proc, Started) {
    let mut proc = Proc::spawn(name, cmd);
    let started = expect_event!(proc, STEP, Event::Started(started) => started);
    (proc, started)
}

/// The first half of a resume test: a peer holding `have` pieces (its
/// data already in `partial_dir`) is started and registered, then a
/// leecher into `leech_dir` downloads until it holds those `have` pieces
/// and is killed with SIGKILL (its registration stays at the tracker).
/// Returns the partial peer, to keep it running.
pub fn leech_until_then_kill(
    tracker: &mut TrackerProc,
    torrent: &Path,
    partial_dir: &Path,
    leech_dir: &Path,
    have: u32,
) -> Proc {
    let (partial, ev) = start_peer("partial", peer_command(torrent, partial_dir));
    assert_eq!(ev.have, have, "the partial peer holds the wrong pieces");
    tracker.expect_join(&ev.peer_id, STEP);
    let (mut leech, leech_ev) = start_peer("leech", peer_command(torrent, leech_dir));
    expect_event!(leech, STEP,
        Event::Progress(peer::events::Progress::Swarm { have: got, .. }) if got == have);
    leech.signal(libc::SIGKILL);
    leech.wait_exit(STEP).unwrap();
    tracker.expect_join(&leech_ev.peer_id, STEP);
    partial
}

/// Waits for a peer's swarm `done` event and returns it.
pub fn expect_done(proc: &mut Proc) -> SwarmDone {
    expect_event!(proc, STEP, Event::Done(Done::Swarm(done)) => done)
}

/// Stops a peer with SIGTERM and returns its `stopped` event line as
/// printed (to check its size as well as its content).
pub fn stop_peer(proc: &mut Proc) -> String {
    proc.signal(libc::SIGTERM);
    proc.wait_for(STEP, |stream, l| {
        stream == crate::process::Stream::Stdout && l.contains(r#""event":"stopped""#)
    })
    .unwrap_or_else(|e| panic!("waiting for stopped: {e}"))
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

/// Reads one frame of at most `max` body bytes with [`lanio::frame`]; a
/// stream that ends before it is [`std::io::ErrorKind::UnexpectedEof`].
pub fn read_frame(stream: &mut impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    match lanio::frame::read_frame(stream, max) {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err(ErrorKind::UnexpectedEof.into()),
        Err(FrameError::Io(e)) => Err(e),
        Err(e @ FrameError::Truncated { .. }) => Err(Error::new(ErrorKind::UnexpectedEof, e)),
        Err(e @ FrameError::TooLarge { .. }) => Err(Error::new(ErrorKind::InvalidData, e)),
    }
}

/// One blocking announce on a fresh connection, as a fake peer would send it.
pub fn announce(tracker: SocketAddr, req: &AnnounceRequest) -> AnnounceResponse {
    Client::connect_within(tracker, STEP).request(&req.to_json())
}

/// A process's peak resident set (`VmHWM` of `/proc/PID/status`), in KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// A TCP connection to `to` from the local address `from` (any of
/// 127.0.0.0/8 on loopback): an attacker's many hosts, on one machine.
pub fn connect_from(from: std::net::IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// Opens a connection from `from` to a peer at `to` that sends the 8-byte
/// header of a frame of `claim` bytes, then `sent` bytes of it, before any
/// handshake; the connection is returned open.
pub fn half_frame_from(
    from: std::net::IpAddr,
    to: SocketAddr,
    claim: u64,
    sent: usize,
) -> std::io::Result<TcpStream> {
    let mut stream = connect_from(from, to)?;
    let mut half = claim.to_be_bytes().to_vec();
    half.resize(8 + sent, 0x55);
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    // The peer may close at the header: what it read is what counts.
    let _ = stream.write_all(&half);
    Ok(stream)
}

/// An attacker's connection: reads (and drops) what the peer sends until the
/// peer closes it (true) or `stop` is set (false).
pub fn hold_open(stream: &mut TcpStream, stop: &std::sync::atomic::AtomicBool) -> bool {
    use std::io::ErrorKind;
    use std::sync::atomic::Ordering;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set_read_timeout");
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

//! The P2P-vs-client/server testbed: one server host and N client hosts on an
//! emulated LAN ([`crate::netns::Lan`]), every host's upload limited by `tbf`.
//!
//! [`Testbed::run`] distributes one generated file to N clients, started at
//! once, either with `peer serve` / `peer fetch` ([`Setup::ClientServer`]) or
//! with a tracker, a seeding `peer` and N leeching `peer`s
//! ([`Setup::PeerToPeer`]; [`Setup::SuperSeed`] with the seeder
//! `--super-seed`), and reports the time until the last client holds
//! the file, checked byte for byte against the original. [`cs_bound`] and
//! [`p2p_bound`] give Kurose and Ross's lower bounds for the same run.
//!
//! Used by `examples/lan_testbed.rs` (the full experiment, table and plot) and
//! `tests/lan_testbed.rs` (a small sanity run). Needs root.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::{Host, Lan, LanOptions, PREFIX};
use crate::process::{bin_path, process_cpu_secs, Proc};
use peer::events::{Done as SwarmOrFetch, Event};

/// How long a process may take to start listening, or a transfer to start.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// First TCP port handed out for servers and trackers (a new one per run).
const FIRST_PORT: u16 = 7100;

/// The LAN and file of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Upload limit of every client host, Mbit/s (u_i).
    pub rate_mbit: u32,
    /// Upload limit of the server host, Mbit/s (u_s); `None` means `rate_mbit`.
    pub server_rate_mbit: Option<u32>,
    /// Download limit of every client host, set on the bridge side, Mbit/s;
    /// `None` leaves downloads unlimited.
    pub down_mbit: Option<u32>,
    /// Size of the distributed file, bytes (F).
    pub file_bytes: u64,
}

impl Params {
    /// u_s in Mbit/s.
    pub fn server_mbit(&self) -> u32 {
        self.server_rate_mbit.unwrap_or(self.rate_mbit)
    }

    /// The C/S lower bound for `n` clients, seconds.
    pub fn cs_bound(&self, n: usize) -> f64 {
        cs_bound(
            n,
            self.file_bytes,
            mbit(self.server_mbit()),
            self.down_mbit.map(mbit),
        )
    }

    /// The P2P lower bound for `n` clients, seconds.
    pub fn p2p_bound(&self, n: usize) -> f64 {
        p2p_bound(
            n,
            self.file_bytes,
            mbit(self.server_mbit()),
            mbit(self.rate_mbit),
            self.down_mbit.map(mbit),
        )
    }

    /// The lower bound of `setup` for `n` clients, seconds.
    pub fn bound(&self, setup: Setup, n: usize) -> f64 {
        match setup {
            Setup::ClientServer => self.cs_bound(n),
            Setup::PeerToPeer | Setup::SuperSeed => self.p2p_bound(n),
        }
    }
}

fn mbit(m: u32) -> f64 {
    f64::from(m) * 1e6
}

/// Client/server lower bound in seconds: max(N·F/u_s, F/d_min), with the
/// file `file_bytes` long and rates in bit/s (`d_min` `None`: unlimited).
pub fn cs_bound(n: usize, file_bytes: u64, u_s: f64, d_min: Option<f64>) -> f64 {
    let f = file_bytes as f64 * 8.0;
    let serve = n as f64 * f / u_s;
    let download = d_min.map_or(0.0, |d| f / d);
    serve.max(download)
}

/// Peer-to-peer lower bound in seconds: max(F/u_s, F/d_min, N·F/(u_s + Σu_i)),
/// every client uploading `u_i` bit/s.
pub fn p2p_bound(n: usize, file_bytes: u64, u_s: f64, u_i: f64, d_min: Option<f64>) -> f64 {
    let f = file_bytes as f64 * 8.0;
    let seed = f / u_s;
    let download = d_min.map_or(0.0, |d| f / d);
    let total = n as f64 * f / (u_s + n as f64 * u_i);
    seed.max(download).max(total)
}

/// How the file is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// `peer serve` on the server host, `peer fetch` on every client.
    ClientServer,
    /// `tracker` and a seeding `peer` on the server host, a leeching `peer` on every client.
    PeerToPeer,
    /// As [`Setup::PeerToPeer`], the seeder super-seeding (`peer --super-seed`).
    SuperSeed,
}

impl Setup {
    pub fn label(self) -> &'static str {
        match self {
            Setup::ClientServer => "C/S",
            Setup::PeerToPeer => "P2P",
            Setup::SuperSeed => "P2P super-seed",
        }
    }

    /// A short name, for file names and the command line.
    pub fn tag(self) -> &'static str {
        match self {
            Setup::ClientServer => "cs",
            Setup::PeerToPeer => "p2p",
            Setup::SuperSeed => "ss",
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub setup: Setup,
    pub n: usize,
    /// From starting the clients until the last one holds the whole file.
    pub seconds: f64,
    /// When each client finished, seconds after the start.
    pub client_seconds: Vec<f64>,
    /// Bytes the clients report having received from the server host (for
    /// P2P, from the seeder; ideally one copy of the file), if they say.
    pub from_server: Option<u64>,
    /// CPU time (user + system) of all the run's processes, seconds; compare
    /// with `seconds` × cores to see whether the run was CPU-bound.
    pub cpu_seconds: f64,
    /// CPU time of each client process until the last one was done, seconds.
    pub client_cpu_seconds: Vec<f64>,
    /// CPU time of the server's `peer` (seeder or `peer serve`) until then.
    pub server_cpu_seconds: Option<f64>,
    /// The lower bound for this setup and N.
    pub bound: f64,
}

impl Outcome {
    /// Measured time over the lower bound.
    pub fn ratio(&self) -> f64 {
        self.seconds / self.bound
    }

    /// What the server host uploaded, in copies of the file.
    pub fn server_copies(&self, file_bytes: u64) -> Option<f64> {
        self.from_server
            .map(|b| b as f64 / file_bytes.max(1) as f64)
    }

    /// Mean CPU seconds of one client.
    pub fn cpu_per_client(&self) -> f64 {
        self.client_cpu_seconds.iter().sum::<f64>() / self.client_cpu_seconds.len().max(1) as f64
    }
}

/// A LAN of namespaces, a working directory and a generated file.
/// Dropping it deletes the namespaces and the directory.
pub struct Testbed {
    params: Params,
    // Drops first: the namespaces (and every process still inside goes with its Proc).
    lan: Lan,
    work: WorkDir,
    /// The generated file, in `work/server/`.
    source: PathBuf,
    torrent: Option<PathBuf>,
    /// Where to save every process's output after each run, if anywhere.
    log_dir: Option<PathBuf>,
    runs: u32,
    /// Leechers run with `--exit-when-done` instead of seeding until all are done.
    leechers_exit: bool,
    /// `--upload-slots` of every P2P peer, if not the default.
    upload_slots: Option<usize>,
    /// More arguments for the P2P seeder.
    seeder_args: Vec<String>,
    /// Piece length of the torrent, if not `peer create`'s choice.
    piece_length: Option<u64>,
    next_port: u16,
}

impl Testbed {
    /// Builds a LAN with one server and `max_clients` client hosts, limits
    /// their rates, and generates the file.
    pub fn new(max_clients: usize, params: Params) -> Result<Testbed, String> {
        if !crate::netns::is_root() {
            return Err("the testbed needs root (network namespaces, tc); run it as root".into());
        }
        if params.rate_mbit == 0 || params.server_mbit() == 0 || params.down_mbit == Some(0) {
            return Err("rates must be positive".into());
        }
        let work = WorkDir::create()?;
        let lan = Lan::new(
            max_clients + 1,
            LanOptions {
                rate_mbit: Some(params.rate_mbit),
                ipv6: false,
            },
        )
        .map_err(|e| format!("building the LAN: {e}"))?;
        if params.server_rate_mbit.is_some() {
            lan.server()
                .set_rate(Some(params.server_mbit()))
                .map_err(|e| format!("limiting the server: {e}"))?;
        }
        if let Some(down) = params.down_mbit {
            for host in lan.clients() {
                limit_download(&lan, host, down)?;
            }
        }
        let server_dir = work.path.join("server");
        std::fs::create_dir_all(&server_dir).map_err(|e| format!("{e}"))?;
        let source = server_dir.join("file.bin");
        generate_file(&source, params.file_bytes)
            .map_err(|e| format!("generating {}: {e}", source.display()))?;
        Ok(Testbed {
            params,
            lan,
            work,
            source,
            torrent: None,
            next_port: FIRST_PORT,
            log_dir: None,
            runs: 0,
            leechers_exit: false,
            upload_slots: None,
            seeder_args: Vec::new(),
            piece_length: None,
        })
    }

    /// Saves the output of every process of every later run in `dir`, as
    /// `run<k>-<setup>-n<N>-<process>.log`.
    pub fn keep_logs(&mut self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        self.log_dir = Some(dir.to_path_buf());
        Ok(())
    }

    /// By default every P2P leecher keeps uploading until the last one is
    /// done (then gets SIGTERM and must exit 0), as the lower bound assumes.
    /// With `true`, leechers run with `--exit-when-done` and leave as soon as
    /// they have the file, which can strand the last ones with the seeder alone.
    pub fn set_leechers_exit_when_done(&mut self, exit: bool) {
        self.leechers_exit = exit;
    }

    /// Runs every P2P peer (seeder and leechers) with `--upload-slots
    /// SLOTS`; `None` leaves the peer's default.
    pub fn set_upload_slots(&mut self, slots: Option<usize>) {
        self.upload_slots = slots;
    }

    /// Makes the torrent with pieces of `bytes` (`None`: `peer create`'s
    /// default); call it before the first P2P run.
    pub fn set_piece_length(&mut self, bytes: Option<u64>) {
        self.piece_length = bytes;
    }

    /// Passes `args` to the P2P seeder besides the usual ones (to try its
    /// options, e.g. `--super-seed-window 8`).
    pub fn set_seeder_args(&mut self, args: Vec<String>) {
        self.seeder_args = args;
    }

    /// The arguments every P2P peer gets besides its torrent, directory and
    /// addresses.
    fn peer_args(&self) -> Vec<String> {
        let mut args = vec!["--json".to_string(), "--no-discover".to_string()];
        if let Some(slots) = self.upload_slots {
            args.extend(["--upload-slots".to_string(), slots.to_string()]);
        }
        args
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// How many client hosts the LAN has.
    pub fn max_clients(&self) -> usize {
        self.lan.clients().len()
    }

    /// Distributes the file to the first `n` clients with `setup`.
    pub fn run(&mut self, setup: Setup, n: usize) -> Result<Outcome, String> {
        if n == 0 || n > self.max_clients() {
            return Err(format!("N must be 1..={}, not {n}", self.max_clients()));
        }
        let dirs = self.client_dirs(setup, n)?;
        let cpu_before = children_cpu_seconds();
        let finished = match setup {
            Setup::ClientServer => self.run_cs(&dirs),
            Setup::PeerToPeer => self.run_p2p(&dirs, false),
            Setup::SuperSeed => self.run_p2p(&dirs, true),
        };
        let checked = finished.and_then(|times| {
            for dir in &dirs {
                let copy = dir.join("file.bin");
                same_content(&self.source, &copy)?;
            }
            Ok(times)
        });
        for dir in &dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        let cpu_seconds = children_cpu_seconds() - cpu_before;
        let run = checked?;
        let client_seconds: Vec<f64> = run.done.iter().map(|d| d.0).collect();
        let from_server = match setup {
            Setup::ClientServer => Some(n as u64 * self.params.file_bytes),
            Setup::PeerToPeer | Setup::SuperSeed => {
                let server = format!("{}:", self.lan.server().ipv4());
                bytes_from(run.done.iter().map(|d| &d.1), &server)
            }
        };
        Ok(Outcome {
            setup,
            n,
            seconds: client_seconds.iter().copied().fold(0.0, f64::max),
            client_seconds,
            from_server,
            cpu_seconds,
            client_cpu_seconds: run.client_cpu,
            server_cpu_seconds: run.server_cpu,
            bound: self.params.bound(setup, n),
        })
    }

    /// Fresh, empty download directories for the first `n` clients.
    fn client_dirs(&self, setup: Setup, n: usize) -> Result<Vec<PathBuf>, String> {
        (0..n)
            .map(|i| {
                let dir = self
                    .work
                    .path
                    .join(format!("{}-client{}", setup.tag(), i + 1));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                Ok(dir)
            })
            .collect()
    }

    fn port(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    /// Generous limit for a whole run: several times the bound, plus start-up.
    fn run_timeout(&self, setup: Setup, n: usize) -> Duration {
        Duration::from_secs_f64(5.0 * self.params.bound(setup, n) + 60.0)
    }

    /// `peer serve` on the server, `peer fetch` on every client at once;
    /// returns each client's finishing time and `done` event.
    fn run_cs(&mut self, dirs: &[PathBuf]) -> Result<Finished, String> {
        let n = dirs.len();
        let addr = format!("{}:{}", self.lan.server().ipv4(), self.port());
        let mut cmd = self.lan.server().command(bin_path("peer"));
        cmd.arg("serve")
            .arg(&self.source)
            .args(["--listen", &addr, "--json"]);
        let mut server = Proc::spawn("peer serve", cmd);
        server.try_event(SETUP_TIMEOUT, |e| {
            matches!(e, Event::Listening { .. }).then_some(())
        })?;

        let timeout = self.run_timeout(Setup::ClientServer, n);
        let start = Instant::now();
        let mut clients = spawn_all(&self.lan, dirs, |i, host, dir| {
            let mut cmd = host.command(bin_path("peer"));
            cmd.args(["fetch", &addr, "--json", "-o"])
                .arg(dir.join("file.bin"));
            (format!("peer fetch #{}", i + 1), cmd)
        });
        let finished = wait_all_done(&mut clients, &server, start, timeout, false);
        clients.push(server);
        self.save_logs(Setup::ClientServer, n, &clients);
        finished
    }

    /// A tracker and a seeder (`super_seed`: with `--super-seed`) on the
    /// server, a leecher on every client at once; returns each leecher's
    /// finishing time and `done` event.
    fn run_p2p(&mut self, dirs: &[PathBuf], super_seed: bool) -> Result<Finished, String> {
        let n = dirs.len();
        let server_ip = self.lan.server().ipv4();
        let tracker_addr = format!("{server_ip}:{}", self.port());
        let torrent = self.torrent(&tracker_addr)?;

        let mut cmd = self.lan.server().command(bin_path("tracker"));
        cmd.args(["--listen", &tracker_addr, "--interval", "5"]);
        let mut tracker = Proc::spawn("tracker", cmd);
        tracker
            .wait_for(SETUP_TIMEOUT, |_, l| l.contains("listening on"))
            .map_err(|e| format!("tracker did not start: {e}"))?;

        let server_dir = self.source.parent().expect("source has a directory");
        let mut cmd = self.lan.server().command(bin_path("peer"));
        cmd.arg("--torrent")
            .arg(&torrent)
            .arg("--dir")
            .arg(server_dir)
            .args(["--listen", &format!("{server_ip}:0")])
            .args(["--tracker", &tracker_addr])
            .args(self.peer_args());
        if super_seed {
            cmd.arg("--super-seed");
        }
        cmd.args(&self.seeder_args);
        let mut seeder = Proc::spawn("seeder", cmd);
        let started = seeder.try_event(SETUP_TIMEOUT, |e| match e {
            Event::Started(started) => Some(started),
            _ => None,
        })?;
        if started.have != started.pieces {
            return Err(format!(
                "the seeder does not have the whole file: {started:?}\n{}",
                seeder.output()
            ));
        }

        let timeout = self.run_timeout(Setup::PeerToPeer, n);
        let start = Instant::now();
        let leechers_exit = self.leechers_exit;
        let peer_args = self.peer_args();
        let mut leechers = spawn_all(&self.lan, dirs, |i, host, dir| {
            let mut cmd = host.command(bin_path("peer"));
            cmd.arg("--torrent")
                .arg(&torrent)
                .arg("--dir")
                .arg(dir)
                .args(["--listen", &format!("{}:0", host.ipv4())])
                .args(["--tracker", &tracker_addr])
                .args(&peer_args);
            if leechers_exit {
                cmd.arg("--exit-when-done");
            }
            (format!("leecher #{}", i + 1), cmd)
        });
        let finished = wait_all_done(&mut leechers, &seeder, start, timeout, !self.leechers_exit);
        leechers.extend([seeder, tracker]);
        let setup = if super_seed {
            Setup::SuperSeed
        } else {
            Setup::PeerToPeer
        };
        self.save_logs(setup, n, &leechers);
        finished
    }

    /// Writes each process's output to the log directory, if one was given.
    fn save_logs(&mut self, setup: Setup, n: usize, procs: &[Proc]) {
        self.runs += 1;
        let Some(dir) = &self.log_dir else {
            return;
        };
        let tag = setup.tag();
        for p in procs {
            let name: String = p
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let path = dir.join(format!("run{}-{tag}-n{n}-{name}.log", self.runs));
            if let Err(e) = std::fs::write(&path, p.output()) {
                eprintln!("warning: cannot write {}: {e}", path.display());
            }
        }
    }

    /// The torrent of the generated file (made once, with `peer create`).
    fn torrent(&mut self, tracker_addr: &str) -> Result<PathBuf, String> {
        if let Some(t) = &self.torrent {
            return Ok(t.clone());
        }
        let path = self.work.path.join("file.torrent");
        let mut cmd = Command::new(bin_path("peer"));
        cmd.arg("create")
            .arg(&self.source)
            .args(["--tracker", tracker_addr, "-o"])
            .arg(&path);
        if let Some(bytes) = self.piece_length {
            cmd.args(["--piece-length", &bytes.to_string()]);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("running peer create: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "peer create failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        self.torrent = Some(path.clone());
        Ok(path)
    }
}

/// Starts one client process per directory, on client hosts 1, 2, …
fn spawn_all(
    lan: &Lan,
    dirs: &[PathBuf],
    mut make: impl FnMut(usize, &Host, &Path) -> (String, Command),
) -> Vec<Proc> {
    // Build every command first so the processes start as close together as possible.
    let cmds: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| make(i, &lan.clients()[i], dir))
        .collect();
    cmds.into_iter()
        .map(|(name, cmd)| Proc::spawn(&name, cmd))
        .collect()
}

/// When a client finished (seconds after the start) and its `done` event.
type Done = (f64, SwarmOrFetch);

/// What a run's processes did, once every client is done.
struct Finished {
    done: Vec<Done>,
    /// CPU seconds of each client process, and of the server's.
    client_cpu: Vec<f64>,
    server_cpu: Option<f64>,
}

/// Waits for every process's `done` event, notes the CPU time of each and
/// of `server`, then waits for their clean exit: on its own, or with `stop`,
/// after a SIGTERM once every process is done.
fn wait_all_done(
    procs: &mut [Proc],
    server: &Proc,
    start: Instant,
    timeout: Duration,
    stop: bool,
) -> Result<Finished, String> {
    let deadline = start + timeout;
    let mut times = Vec::with_capacity(procs.len());
    for p in procs.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = p.try_event(left, |e| match e {
            Event::Done(done) => Some(done),
            _ => None,
        })?;
        times.push((start.elapsed().as_secs_f64(), event));
    }
    // Not reaped yet (also when exited): /proc still has their times.
    let client_cpu = procs
        .iter()
        .map(|p| process_cpu_secs(p.pid()).unwrap_or(f64::NAN))
        .collect();
    let server_cpu = process_cpu_secs(server.pid());
    if stop {
        for p in procs.iter() {
            p.signal(libc::SIGTERM);
        }
    }
    for p in procs.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        let status = p.wait_exit(left.max(Duration::from_secs(10)))?;
        if !status.success() {
            return Err(format!("{} exited with {status}:\n{}", p.name, p.output()));
        }
    }
    Ok(Finished {
        done: times,
        client_cpu,
        server_cpu,
    })
}

/// User + system CPU seconds of all reaped child processes so far.
fn children_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid rusage.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Sums what `done` events report as `downloaded` from peers whose address
/// starts with `prefix`; `None` if an event has no `peers` list.
fn bytes_from<'a>(events: impl Iterator<Item = &'a SwarmOrFetch>, prefix: &str) -> Option<u64> {
    let mut total = 0;
    for event in events {
        let SwarmOrFetch::Swarm(done) = event else {
            return None;
        };
        for peer in &done.peers {
            if peer.addr.starts_with(prefix) {
                total += peer.downloaded;
            }
        }
    }
    Some(total)
}

/// Limits what `host` receives, with `tbf` on its port on the bridge.
fn limit_download(lan: &Lan, host: &Host, mbit: u32) -> Result<(), String> {
    // Burst: 10 ms of traffic, at least a few full frames (as for uploads).
    let burst = (u64::from(mbit) * 1_250).max(16 * 1_514);
    let port = format!("veth{}", host.index());
    let out = Command::new("tc")
        .args(["-n", lan.bridge().name(), "qdisc", "replace", "dev", &port])
        .args(["root", "tbf", "rate", &format!("{mbit}mbit")])
        .args(["burst", &burst.to_string(), "latency", "50ms"])
        .output()
        .map_err(|e| format!("running tc: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "tc on {port}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Writes `len` random bytes (from /dev/urandom) to `path`.
fn generate_file(path: &Path, len: u64) -> io::Result<()> {
    let mut random = File::open("/dev/urandom")?.take(len);
    let mut file = File::create(path)?;
    let copied = io::copy(&mut random, &mut file)?;
    if copied != len {
        return Err(io::Error::other(format!("wrote {copied} of {len} bytes")));
    }
    Ok(())
}

/// Checks that `copy` holds exactly the bytes of `original`.
fn same_content(original: &Path, copy: &Path) -> Result<(), String> {
    let open = |p: &Path| File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut a, mut b) = (open(original)?, open(copy)?);
    let (mut buf_a, mut buf_b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut a, &mut buf_a).map_err(|e| e.to_string())?;
        let m = read_full(&mut b, &mut buf_b).map_err(|e| e.to_string())?;
        if n != m || buf_a[..n] != buf_b[..m] {
            return Err(format!(
                "{} differs from {} near byte {offset}",
                copy.display(),
                original.display()
            ));
        }
        if n == 0 {
            return Ok(());
        }
        offset += n as u64;
    }
}

/// Reads until `buf` is full or the end of the file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The testbed's working directory, `$TMPDIR/lanswarm-testbed-<pid>-<n>`,
/// removed on drop.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn create() -> Result<WorkDir, String> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "{}{}-{}",
            WORK_PREFIX,
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

const WORK_PREFIX: &str = "lanswarm-testbed-";

/// Emergency clean-up for a signal handler: kills every process inside this
/// process's namespaces, deletes those namespaces (with their veths and
/// bridge) and removes this process's working directories. The normal path
/// is dropping the [`Testbed`]; this is for when the program must exit
/// without unwinding (Ctrl-C); exit right after calling it.
pub fn cleanup_this_process() {
    let own_dir = format!("{WORK_PREFIX}{}-", std::process::id());
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&own_dir) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let own = format!("{PREFIX}{}-", std::process::id());
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&own))
        .collect();
    // Note the processes first (`ip netns pids` needs the name), delete the
    // namespaces, and kill last: the caller exits right after, before the
    // main thread, seeing its children die, starts tearing down on its own.
    let pids: Vec<i32> = names.iter().flat_map(|n| pids_in(n)).collect();
    for name in &names {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
    for pid in pids {
        // SAFETY: kill(2) on a process that ran in one of our own namespaces.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// The processes running in namespace `name`.
fn pids_in(name: &str) -> Vec<i32> {
    let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn cs_bound_grows_with_n_and_respects_download() {
        // 64 MiB at 100 Mbit/s: 5.37 s per copy.
        let one = cs_bound(1, 64 * MIB, 100e6, None);
        assert!((one - 5.368709).abs() < 1e-3, "{one}");
        assert!((cs_bound(16, 64 * MIB, 100e6, None) - 16.0 * one).abs() < 1e-9);
        // A slow download dominates for one client.
        assert!((cs_bound(1, 64 * MIB, 100e6, Some(50e6)) - 2.0 * one).abs() < 1e-9);
    }

    #[test]
    fn p2p_bound_takes_the_largest_term() {
        let f = 64 * MIB;
        let seed = f as f64 * 8.0 / 100e6;
        // Equal rates: the server's single copy dominates for every N.
        for n in [1, 2, 4, 8, 16] {
            assert!((p2p_bound(n, f, 100e6, 100e6, None) - seed).abs() < 1e-9);
        }
        // Slow clients: the aggregate term dominates.
        let agg = p2p_bound(16, f, 100e6, 10e6, None);
        assert!((agg - 16.0 * f as f64 * 8.0 / 260e6).abs() < 1e-9);
        // Slow downloads dominate.
        assert!((p2p_bound(4, f, 100e6, 100e6, Some(25e6)) - 4.0 * seed).abs() < 1e-9);
    }
}

//! Swarm throughput, memory and CPU against copies that verify nothing,
//! all measured in the same interleaved rounds.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! # the full run (issue 15): 1 GiB, 5 rounds, warm and cold, 4 piece lengths, 1 and 8 leechers
//! cargo run --release --example swarm_bench
//! # a quick look
//! cargo run --release --example swarm_bench -- --rounds 1 --size 128 --many-size 32 \
//!     --pieces 1024 --conditions warm
//! # an A/B of two builds in the same rounds (this build seeds for both)
//! cargo run --release --example swarm_bench -- --many 0 --no-peers \
//!     --conditions warm --leecher /path/to/other/peer
//! ```
//!
//! Contenders, each 1 seeder → 1 leecher and 1 seeder → N leechers on
//! loopback:
//! - `socat` with its default 8 KiB buffer, and `socat -b 1048576` (the raw
//!   ceiling: a plain TCP copy into a file, nothing verified); N leechers are
//!   N socat pairs at once;
//! - lanswarm (`peer`, tracker on 127.0.0.1) at each piece length, and
//!   with each `--leecher` binary as well;
//! - rqbit and aria2c (with opentracker) when installed; their rows are
//!   skipped, with how to install them, when they are not. The benchmark
//!   installs nothing.
//!
//! Each round runs every contender in both memory conditions, interleaved,
//! each round starting one contender further along the list (so that none
//! always runs right after the same one):
//! *warm* (right after writing and deleting a scratch file, 2 GiB by
//! default, in `/dev/shm`: the memory was just in use) and *cold* (after
//! idling 5 s, when the host may have taken idle memory back). Before
//! each run the bench directory's file system is synced (`syncfs`), so the
//! discards of the copies the run before deleted land outside the timed
//! run. An rqbit or aria2c leecher still running after `--stall-secs` is
//! stopped and its run counted as that long. The table
//! gives the median over rounds of MB/s (aggregate for N leechers) and its
//! ratio to `socat -b 1048576` in the same condition and fan-out, the best
//! round's MB/s, the same median and ratio for *durable* MB/s, the largest
//! leecher peak RSS, the median leecher CPU seconds (user + system, per
//! leecher, from `wait4`) and the median CPU time the host took from this
//! VM while the copies were made (*steal* in `/proc/stat`, summed over the
//! cores: on a shared host, noise that no contender can help). Every copy
//! is compared with the source.
//!
//! MB/s counts until every copy is whole: socat's receiver has exited,
//! lanswarm's leecher has said `done` (every piece verified and written).
//! Durable MB/s counts until every copy is also on disk: the benchmark then
//! `fdatasync`s each copy, which costs the disk's time for contenders that
//! leave their data in the page cache, and little for lanswarm, whose
//! leecher syncs its data before its resume file vouches for it and exits
//! only after that.
//!
//! Files go in `--dir` (default `$BENCH_DIR` or `/tmp`); N leechers need N
//! copies, hence the smaller `--many-size`.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use lanswarm::fixture::*;
use lanswarm::process::{bin_path, host_steal_secs, wait_usage, Proc, Usage};

#[derive(Parser, Debug)]
#[command(
    about = "Swarm throughput, memory and CPU against socat (and rqbit, aria2c) in the same rounds.\n\n\
Full run: cargo run --release --example swarm_bench\n\
Quick run: cargo run --release --example swarm_bench -- --rounds 1 --size 128 --many-size 32 --pieces 1024 --conditions warm"
)]
struct Args {
    /// Interleaved rounds (the table shows medians).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// File size for 1 → 1, MiB.
    #[arg(long, default_value_t = 1024)]
    size: u64,
    /// File size for 1 → N, MiB (each leecher writes a copy).
    #[arg(long, default_value_t = 256)]
    many_size: u64,
    /// Leechers in the fan-out runs (0: none).
    #[arg(long, default_value_t = 8)]
    many: usize,
    /// lanswarm piece lengths, KiB.
    #[arg(long, value_delimiter = ',', default_values_t = [256, 1024, 4096, 16384])]
    pieces: Vec<u64>,
    /// Memory conditions to run each round in: warm, cold.
    #[arg(long, value_delimiter = ',', default_values_t = [Cond::Warm, Cond::Cold])]
    conditions: Vec<Cond>,
    /// Scratch written and deleted before a warm run, MiB.
    #[arg(long, default_value_t = 2048)]
    scratch: u64,
    /// Where the scratch file goes.
    #[arg(long, default_value = "/dev/shm")]
    scratch_dir: PathBuf,
    /// rqbit or aria2c leechers still running after this many seconds are
    /// stopped, and the run counted as that long (its MB/s a ceiling).
    #[arg(long, default_value_t = 60.0)]
    stall_secs: f64,
    /// Idle time before a cold run, seconds.
    #[arg(long, default_value_t = 5.0)]
    idle: f64,
    /// Directory for the data and the copies.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also run leechers from this `peer` binary at each piece length, as
    /// rows of their own (an A/B of two builds in the same rounds).
    #[arg(long)]
    leecher: Vec<PathBuf>,
    /// Leave out rqbit and aria2c even when installed.
    #[arg(long)]
    no_peers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
enum Cond {
    Warm,
    Cold,
}

impl std::fmt::Display for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cond::Warm => "warm",
            Cond::Cold => "cold",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Contender {
    Socat(Option<usize>),
    /// Piece length, and the leecher binary when not this build's `peer`.
    Lanswarm(u64, Option<PathBuf>),
    Rqbit,
    Aria2,
}

impl Contender {
    fn name(&self) -> String {
        match self {
            Contender::Socat(None) => "socat (default 8 KiB buffer)".into(),
            Contender::Socat(Some(b)) => format!("socat -b {b} (raw ceiling, unverified)"),
            Contender::Lanswarm(p, leecher) => {
                let pieces = if *p >= 1 << 20 {
                    format!("{} MiB pieces", p >> 20)
                } else {
                    format!("{} KiB pieces", p >> 10)
                };
                match leecher {
                    Some(bin) => format!("lanswarm {}, {pieces}", bin.display()),
                    None => format!("lanswarm, {pieces}"),
                }
            }
            Contender::Rqbit => "rqbit".into(),
            Contender::Aria2 => "aria2c".into(),
        }
    }
}

const CEILING: Contender = Contender::Socat(Some(1 << 20));

/// One run: wall seconds until every copy is whole (in the page cache),
/// wall seconds until every copy is also on disk, the largest leecher peak
/// RSS, mean leecher CPU, and the CPU seconds the host took from this VM
/// until every copy was whole.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    durable_secs: f64,
    rss_kib: u64,
    cpu: f64,
    stolen: f64,
}

/// A run's clock: wall time, and the CPU time the host gave to others
/// ([`host_steal_secs`]), both since the run started. A shared host's
/// steal is noise no contender can help, so each sample shows it.
struct Clock {
    start: Instant,
    steal: f64,
}

impl Clock {
    fn start() -> Self {
        Clock {
            start: Instant::now(),
            steal: host_steal_secs(),
        }
    }

    fn secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// CPU seconds stolen since the start.
    fn stolen(&self) -> f64 {
        (host_steal_secs() - self.steal).max(0.0)
    }
}

/// Syncs each copy's data to disk (`fdatasync`), as a contender that does
/// not sync leaves it to the page cache; for one that already did (lanswarm
/// syncs before its resume file vouches for the data) this is nearly free.
fn sync_copies(copies: &[PathBuf]) {
    for c in copies {
        std::fs::File::open(c)
            .and_then(|f| f.sync_data())
            .unwrap_or_else(|e| panic!("sync {}: {e}", c.display()));
    }
}

fn installed(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A port for a contender to listen on, free now and below the kernel's
/// ephemeral range (32768 and up here): a port the kernel hands out (bind
/// to 0) can be taken by an outgoing connection, such as a socat sender's
/// retries, before the listener binds it. Ports are not reused in one run.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let port = LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN)
}

/// Whether two files have the same bytes, read in pieces.
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba);
        if n != read_full(&mut fb, &mut bb) || ba[..n] != bb[..n] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut at = 0;
    while at < buf.len() {
        match f.read(&mut buf[at..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => at += n,
        }
    }
    at
}

fn check_copies(data: &Path, copies: &[PathBuf], who: &str) {
    for c in copies {
        assert!(
            same_bytes(data, c),
            "{who}: {} differs from the source",
            c.display()
        );
        let _ = std::fs::remove_file(c);
    }
}

/// Commits the file system's journal and waits for it (`syncfs`). The
/// copies deleted after a run free their blocks at the next commit, and
/// with the `discard` mount option that commit also has the disk discard
/// them: 1 GiB here takes about 1.2 s, much of it host CPU taken from this
/// VM (0.4 s of steal while both cores are busy). Left to the journal's
/// timer, or to the first `fsync` of the next contender, that work would
/// land in the next timed run.
fn settle(dir: &Path) {
    let d = std::fs::File::open(dir).expect("open the bench directory");
    // SAFETY: syncfs on a descriptor we own, which stays open for the call.
    let rc = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)) };
    assert_eq!(rc, 0, "syncfs: {}", std::io::Error::last_os_error());
}

/// Settles what the run before left behind (see [`settle`]), then gets the
/// memory into the asked condition.
fn prepare(cond: Cond, args: &Args, root: &Path) {
    settle(root);
    match cond {
        Cond::Warm => {
            let scratch = args
                .scratch_dir
                .join(format!("swarm_bench_scratch_{}", std::process::id()));
            write_random_file(&scratch, args.scratch << 20, 7);
            std::fs::remove_file(&scratch).unwrap();
        }
        Cond::Cold => std::thread::sleep(Duration::from_secs_f64(args.idle)),
    }
}

/// N socat pairs at once, file → loopback → file.
fn run_socat(buf: Option<usize>, data: &Path, root: &Path, n: usize) -> Sample {
    let bopt: Vec<String> = buf
        .map(|b| vec!["-b".into(), b.to_string()])
        .unwrap_or_default();
    let mut receivers = Vec::new();
    let mut copies = Vec::new();
    let t = Clock::start();
    let mut senders = Vec::new();
    for i in 0..n {
        let port = free_port();
        let dst = root.join(format!("socat-copy{i}"));
        let rx = Command::new("socat")
            .args(&bopt)
            .arg("-u")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"))
            .arg(format!("OPEN:{},creat,trunc,wronly", dst.display()))
            .spawn()
            .expect("run socat");
        let tx = Command::new("socat")
            .args(&bopt)
            .arg("-u")
            .arg(format!("OPEN:{},rdonly", data.display()))
            .arg(format!("TCP:127.0.0.1:{port},retry=100,interval=0.02"))
            .spawn()
            .expect("run socat");
        receivers.push(rx);
        senders.push(tx);
        copies.push(dst);
    }
    let mut rss = 0;
    let mut cpu = 0.0;
    for rx in &receivers {
        let (code, u) = wait_usage(rx.id(), "socat");
        assert_eq!(code, 0, "socat receiver failed");
        rss = rss.max(u.peak_rss_kib);
        cpu += u.cpu_secs;
    }
    let (secs, stolen) = (t.secs(), t.stolen());
    sync_copies(&copies);
    let durable_secs = t.secs();
    for mut tx in senders {
        let _ = tx.wait();
    }
    check_copies(data, &copies, "socat");
    Sample {
        secs,
        durable_secs,
        stolen,
        rss_kib: rss,
        cpu: cpu / n as f64,
    }
}

/// A tracker, a seeder and N lanswarm leechers started together; the time
/// until the last leecher says `done` (every piece verified and written),
/// and until the last one has exited (its data synced to disk).
fn run_lanswarm(
    torrent: &Path,
    leecher: Option<&Path>,
    data: &Path,
    root: &Path,
    n: usize,
    tag: &str,
) -> Sample {
    let mut tracker = start_tracker(&[]);
    let seed_dir = root.join(format!("{tag}-seed"));
    std::fs::create_dir_all(&seed_dir).unwrap();
    // The torrent names the file as `peer create` saw it.
    let name = data.file_name().unwrap();
    let _ = std::fs::remove_file(seed_dir.join(name));
    std::fs::hard_link(data, seed_dir.join(name)).unwrap();
    let mut cmd = peer_command(torrent, &seed_dir);
    cmd.args(["--tracker", &tracker.addr.to_string()]);
    let (_seed, started) = start_peer("seed", cmd);
    assert_eq!(started.have, started.pieces, "the seeder lacks pieces");
    tracker.expect_join(&started.peer_id, STEP);
    let t = Clock::start();
    let mut leechers: Vec<(Proc, PathBuf)> = (0..n)
        .map(|i| {
            let dir = root.join(format!("{tag}-leech{i}"));
            let _ = std::fs::remove_dir_all(&dir);
            let mut cmd = peer_command(torrent, &dir);
            if let Some(bin) = leecher {
                // The same arguments to another build.
                let mut other = Command::new(bin);
                other.args(cmd.get_args());
                cmd = other;
            }
            cmd.args(["--exit-when-done", "--tracker", &tracker.addr.to_string()]);
            (Proc::spawn(&format!("leech{i}"), cmd), dir)
        })
        .collect();
    for (proc, _) in &mut leechers {
        proc.wait_for(Duration::from_secs(600), |stream, l| {
            stream == lanswarm::process::Stream::Stdout && l.contains(r#""event":"done""#)
        })
        .unwrap_or_else(|e| panic!("waiting for done: {e}"));
    }
    let (secs, stolen) = (t.secs(), t.stolen());
    let mut usage = Vec::new();
    for (proc, _) in &mut leechers {
        let (code, u) = proc.wait_with_usage();
        assert_eq!(code, 0, "{} failed:\n{}", proc.name, proc.output());
        usage.push(u);
    }
    let copies: Vec<PathBuf> = leechers.iter().map(|(_, d)| d.join(name)).collect();
    sync_copies(&copies);
    let durable_secs = t.secs();
    check_copies(data, &copies, "lanswarm");
    for (_, d) in &leechers {
        let _ = std::fs::remove_dir_all(d);
    }
    summarize(secs, durable_secs, stolen, &usage)
}

fn summarize(secs: f64, durable_secs: f64, stolen: f64, usage: &[Usage]) -> Sample {
    Sample {
        secs,
        durable_secs,
        stolen,
        rss_kib: usage.iter().map(|u| u.peak_rss_kib).max().unwrap_or(0),
        cpu: usage.iter().map(|u| u.cpu_secs).sum::<f64>() / usage.len().max(1) as f64,
    }
}

/// The info hash (hex) of a torrent from [`bencoded_torrent`]: the SHA-1
/// of its info dictionary, which runs from after `4:info` to the last `e`.
fn bt_info_hash(torrent: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    let key = b"4:infod";
    let at = torrent
        .windows(key.len())
        .position(|w| w == key)
        .expect("an info dictionary")
        + key.len()
        - 1;
    Sha1::digest(&torrent[at..torrent.len() - 1])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A BitTorrent v1 .torrent (bencoded) for `data`, for rqbit and aria2c.
fn bencoded_torrent(data: &Path, piece: u64, announce: &str) -> Vec<u8> {
    use sha1::{Digest, Sha1};
    let mut f = std::fs::File::open(data).unwrap();
    let len = f.metadata().unwrap().len();
    let mut pieces = Vec::new();
    let mut buf = vec![0u8; piece as usize];
    loop {
        let n = read_full(&mut f, &mut buf);
        if n == 0 {
            break;
        }
        pieces.extend_from_slice(&Sha1::digest(&buf[..n]));
    }
    let mut out = Vec::new();
    let s = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(format!("{}:", b.len()).as_bytes());
        out.extend_from_slice(b);
    };
    out.extend_from_slice(b"d");
    s(&mut out, b"announce");
    s(&mut out, announce.as_bytes());
    s(&mut out, b"info");
    out.extend_from_slice(b"d");
    s(&mut out, b"length");
    out.extend_from_slice(format!("i{len}e").as_bytes());
    s(&mut out, b"name");
    s(&mut out, b"data.bin");
    s(&mut out, b"piece length");
    out.extend_from_slice(format!("i{piece}e").as_bytes());
    s(&mut out, b"pieces");
    s(&mut out, &pieces);
    out.extend_from_slice(b"ee");
    out
}

/// rqbit or aria2c: a seeder and N leechers through an opentracker (aria2c)
/// or by direct address (rqbit, given the seeder as initial peer).
fn run_other(
    who: &Contender,
    data: &Path,
    root: &Path,
    n: usize,
    stall_secs: f64,
) -> Option<Sample> {
    let tracker_port = free_port();
    let announce = format!("http://127.0.0.1:{tracker_port}/announce");
    let torrent = root.join("bt.torrent");
    let bencoded = bencoded_torrent(data, 1 << 20, &announce);
    std::fs::write(&torrent, &bencoded).unwrap();
    let seed_dir = root.join("bt-seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let _ = std::fs::remove_file(seed_dir.join("data.bin"));
    std::fs::hard_link(data, seed_dir.join("data.bin")).unwrap();
    let seed_port = free_port();
    let quiet = |c: &mut Command| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    };
    let mut tracker = None;
    let mut seed = match who {
        Contender::Aria2 => {
            // Debian's opentracker serves only the torrents it is told of.
            let whitelist = root.join("opentracker-whitelist");
            std::fs::write(&whitelist, format!("{}\n", bt_info_hash(&bencoded))).unwrap();
            let port = tracker_port.to_string();
            let mut t = Command::new("opentracker");
            t.args(["-i", "127.0.0.1", "-p", &port, "-P", &port, "-w"])
                .arg(&whitelist);
            quiet(&mut t);
            tracker = Some(t.spawn().ok()?);
            let mut c = Command::new("aria2c");
            c.args(aria2_common())
                .args([
                    "--seed-ratio=0.0",
                    "--bt-seed-unverified=true",
                    "--check-integrity=false",
                ])
                .arg(format!("--listen-port={seed_port}"))
                .arg("-d")
                .arg(&seed_dir)
                .arg(&torrent);
            quiet(&mut c);
            c.spawn().ok()?
        }
        _ => {
            let mut c = Command::new("rqbit");
            c.args(["--disable-dht", "--http-api-listen-addr"])
                .arg(format!("127.0.0.1:{}", free_port()))
                .args(["download", "--overwrite", "-o"])
                .arg(&seed_dir)
                .arg(&torrent);
            quiet(&mut c);
            c.spawn().ok()?
        }
    };
    // Both seeders hash the data first; give them time to start serving.
    std::thread::sleep(Duration::from_secs(3));
    let t = Clock::start();
    let mut leechers = Vec::new();
    for i in 0..n {
        let dir = root.join(format!("bt-leech{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = match who {
            Contender::Aria2 => {
                let mut c = Command::new("aria2c");
                c.args(aria2_common())
                    .args(["--seed-time=0", "--file-allocation=none"])
                    .arg(format!("--listen-port={}", free_port()))
                    .arg("-d")
                    .arg(&dir)
                    .arg(&torrent);
                c
            }
            _ => {
                let mut c = Command::new("rqbit");
                c.args(["--disable-dht", "--http-api-listen-addr"])
                    .arg(format!("127.0.0.1:{}", free_port()))
                    .args(["download", "--exit-on-finish", "--initial-peers"])
                    .arg(format!("127.0.0.1:{seed_port}"))
                    .arg("-o")
                    .arg(&dir)
                    .arg(&torrent);
                c
            }
        };
        quiet(&mut c);
        leechers.push((c.spawn().ok()?, dir));
    }
    // A leecher that stalls (rqbit's do, now and then, for minutes) is
    // stopped after `--stall-secs` and its run counted as that long.
    let pids: Vec<u32> = leechers.iter().map(|(c, _)| c.id()).collect();
    let (finished, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let timed_out = matches!(
            done_rx.recv_timeout(Duration::from_secs_f64(stall_secs)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if timed_out {
            for &pid in &pids {
                // SAFETY: kill(2) touches no memory of ours. The pids
                // are our children's; one already reaped could only be
                // someone else's after the kernel wrapped pid_max.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        timed_out
    });
    let mut usage = Vec::new();
    let mut codes = Vec::new();
    for (child, _) in &leechers {
        let (code, u) = wait_usage(child.id(), &who.name());
        codes.push(code);
        usage.push(u);
    }
    let _ = finished.send(());
    let stalled = watchdog.join().unwrap();
    let ok = !stalled && codes.iter().all(|&c| c == 0);
    let (secs, stolen) = (t.secs(), t.stolen());
    let copies: Vec<PathBuf> = leechers.iter().map(|(_, d)| d.join("data.bin")).collect();
    if ok {
        sync_copies(&copies);
    }
    let durable_secs = t.secs();
    let _ = seed.kill();
    let _ = seed.wait();
    if let Some(mut t) = tracker {
        let _ = t.kill();
        let _ = t.wait();
    }
    if stalled {
        eprintln!(
            "{}: a leecher had not finished after {stall_secs} s; stopped, and the run counted as {secs:.0} s",
            who.name()
        );
        for (_, d) in &leechers {
            let _ = std::fs::remove_dir_all(d);
        }
        return Some(summarize(secs, secs, stolen, &usage));
    }
    if !ok || !copies.iter().all(|c| same_bytes(data, c)) {
        eprintln!(
            "{}: a run failed or left a wrong copy; row skipped",
            who.name()
        );
        return None;
    }
    for (_, d) in &leechers {
        let _ = std::fs::remove_dir_all(d);
    }
    Some(summarize(secs, durable_secs, stolen, &usage))
}

fn aria2_common() -> [&'static str; 6] {
    [
        "--enable-dht=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--bt-require-crypto=false",
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    let args = Args::parse();
    let root_dir = args
        .dir
        .clone()
        .or_else(|| std::env::var_os("BENCH_DIR").map(PathBuf::from))
        .unwrap_or_else(|| "/tmp".into());
    let tmp = tempfile::tempdir_in(root_dir).unwrap();
    let root = tmp.path();

    let mut contenders = vec![Contender::Socat(None), CEILING];
    for &p in &args.pieces {
        contenders.push(Contender::Lanswarm(p << 10, None));
        for bin in &args.leecher {
            contenders.push(Contender::Lanswarm(p << 10, Some(bin.clone())));
        }
    }
    if !args.no_peers {
        if installed("rqbit") {
            contenders.push(Contender::Rqbit);
        } else {
            eprintln!("rqbit is not installed (cargo install rqbit): its rows are skipped");
        }
        if installed("aria2c") && installed("opentracker") {
            contenders.push(Contender::Aria2);
        } else {
            eprintln!("aria2c or opentracker is not installed (apt install aria2 opentracker): its rows are skipped");
        }
    }
    assert!(installed("socat"), "socat is needed (apt install socat)");

    let mut fanouts = vec![(1usize, args.size)];
    if args.many > 1 {
        fanouts.push((args.many, args.many_size));
    }
    // Data and torrents per size and piece length.
    let mut data_for = std::collections::HashMap::new();
    let mut torrent_for = std::collections::HashMap::new();
    for &(_, size) in &fanouts {
        if data_for.contains_key(&size) {
            continue;
        }
        let data = root.join(format!("data-{size}.bin"));
        eprintln!("generating {size} MiB and its torrents …");
        write_random_file(&data, size << 20, 42);
        for &p in &args.pieces {
            let t = root.join(format!("data-{size}-{p}.torrent"));
            create_torrent(&data, "127.0.0.1:6666".parse().unwrap(), Some(p << 10), &t);
            torrent_for.insert((size, p << 10), t);
        }
        data_for.insert(size, data);
    }

    // samples[(contender, fanout, cond)] over rounds.
    let mut samples: std::collections::HashMap<(usize, usize, Cond), Vec<Sample>> =
        Default::default();
    for round in 0..args.rounds {
        for &cond in &args.conditions {
            for &(n, size) in &fanouts {
                // Each round starts one contender further on: a run pays for
                // what the one before it left (1 GiB just deleted, memory the
                // host takes back), and no contender should always follow
                // the same one.
                let k = contenders.len();
                for ci in (0..k).map(|i| (i + round) % k) {
                    let c = &contenders[ci];
                    let data = &data_for[&size];
                    prepare(cond, &args, root);
                    eprintln!("round {} {cond} 1→{n}: {}", round + 1, c.name());
                    let s = match c {
                        Contender::Socat(b) => Some(run_socat(*b, data, root, n)),
                        Contender::Lanswarm(p, leecher) => Some(run_lanswarm(
                            &torrent_for[&(size, *p)],
                            leecher.as_deref(),
                            data,
                            root,
                            n,
                            &format!("ls{p}"),
                        )),
                        other => run_other(other, data, root, n, args.stall_secs),
                    };
                    if let Some(s) = s {
                        eprintln!(
                            "  {:.2} s, durable {:.2} s, CPU {:.2} s, host steal {:.2} s, RSS {:.1} MiB",
                            s.secs,
                            s.durable_secs,
                            s.cpu,
                            s.stolen,
                            s.rss_kib as f64 / 1024.0
                        );
                        samples.entry((ci, n, cond)).or_default().push(s);
                    }
                }
            }
        }
    }

    println!(
        "lanswarm swarm benchmark: {} round(s), binaries from {}, {} cores",
        args.rounds,
        bin_path("peer").parent().unwrap().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for &(n, size) in &fanouts {
        for &cond in &args.conditions {
            println!();
            println!(
                "### 1 seeder → {n} leecher{}, {size} MiB, {cond}",
                if n > 1 { "s (MB/s aggregate)" } else { "" }
            );
            println!();
            println!("| contender | median MB/s | ratio to socat -b 1 MiB | best MB/s | durable MB/s | durable ratio | leecher peak RSS | leecher CPU s | CPU s per GiB | host steal ms |");
            println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            let ceiling_idx = contenders.iter().position(|c| *c == CEILING).unwrap();
            let bytes = (n as u64 * (size << 20)) as f64;
            let rate = |ci: usize, durable: bool| -> Option<f64> {
                let v = samples.get(&(ci, n, cond))?;
                Some(median(
                    v.iter()
                        .map(|s| bytes / 1e6 / if durable { s.durable_secs } else { s.secs })
                        .collect(),
                ))
            };
            let ratio = |mbps: f64, durable: bool| {
                rate(ceiling_idx, durable).map_or("–".into(), |c| format!("{:.2}", mbps / c))
            };
            for (ci, c) in contenders.iter().enumerate() {
                let Some(v) = samples.get(&(ci, n, cond)) else {
                    println!("| {} | – | – | – | – | – | – | – | – | – |", c.name());
                    continue;
                };
                let mbps = rate(ci, false).unwrap();
                let durable = rate(ci, true).unwrap();
                let best = bytes / 1e6 / v.iter().map(|s| s.secs).fold(f64::INFINITY, f64::min);
                let cpu = median(v.iter().map(|s| s.cpu).collect());
                let rss = v.iter().map(|s| s.rss_kib).max().unwrap_or(0);
                let stolen = median(v.iter().map(|s| s.stolen).collect());
                println!(
                    "| {} | {mbps:.0} | {} | {best:.0} | {durable:.0} | {} | {:.1} MiB | {cpu:.2} | {:.2} | {:.0} |",
                    c.name(),
                    ratio(mbps, false),
                    ratio(durable, true),
                    rss as f64 / 1024.0,
                    cpu / (size as f64 / 1024.0),
                    stolen * 1e3,
                );
            }
        }
    }
}

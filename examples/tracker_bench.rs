//! Benchmark: the tracker under many concurrent clients on loopback.
//!
//! Measures announces/s and latency p50/p99 twice, with persistent
//! connections (many announces per connection) and with one connection per
//! announce (the seed's peers), and in the same run the same workloads
//! against a trivial framed echo server (read a frame, send it back): the
//! baseline every figure is given as a ratio to. Runs alternate between the
//! two servers over several rounds, so that load from elsewhere on a shared
//! machine weighs on both alike. The tracker and the echo
//! server run in this process on the same runtime as the clients (the
//! tracker through `tracker::serve`), so both compete for the same 2 cores.
//!
//! Then it starts the real `tracker` binary, registers 100,000 peers (from
//! several 127.0.0.x source addresses) and reports its VmRSS/VmHWM from
//! `/proc/PID/status`, next to the same figures for the empty tracker.
//!
//! ```text
//! cargo build --release -p tracker
//! cargo run --release --example tracker_bench
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use lanswarm::process::{command, Proc};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_util::codec::Framed;
use wire::tracker::AnnounceResponse;
use wire::FrameCodec;

/// Tracker throughput, latency and memory against a framed echo baseline.
#[derive(Debug, Parser)]
#[command(name = "tracker_bench")]
struct Args {
    /// Seconds measured per run (after a short warm-up).
    #[arg(long, default_value_t = 1.5)]
    secs: f64,
    /// Runs per server and workload, alternating echo and tracker so that
    /// load from elsewhere on the machine affects both alike.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent clients with persistent connections.
    #[arg(long, default_value_t = 64)]
    persistent_clients: usize,
    /// Concurrent clients opening one connection per announce.
    #[arg(long, default_value_t = 32)]
    oneshot_clients: usize,
    /// Peers registered in the swarm before measuring (so replies list 50).
    #[arg(long, default_value_t = 1000)]
    swarm: u16,
    /// Peers registered for the memory measurement.
    #[arg(long, default_value_t = 100_000)]
    rss_peers: u32,
    /// Skip the memory measurement (it needs the release `tracker` binary).
    #[arg(long)]
    no_rss: bool,
}

/// Source addresses for client sockets, so short connections do not run out
/// of ephemeral ports on one address.
const SOURCE_IPS: u8 = 16;

fn source_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        1 + (i % SOURCE_IPS as usize) as u8,
    ))
}

async fn connect_from(src: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    // Choose the source port at connect() time, from the full 4-tuple (and
    // reusing loopback TIME_WAIT ports), not at bind() time: a bind to port 0
    // searches every bound port of the address and is slow with many
    // TIME_WAIT sockets.
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a valid int option value.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(SocketAddr::new(src, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn announce_body(port: u16, extra: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"port":{port},"peer_id":"127.0.0.1:{port}","event":"started"{extra}}}"#
    ))
}

/// Results of the runs against one server, merged.
#[derive(Default)]
struct Run {
    latencies_us: Vec<u32>,
    elapsed: Duration,
    errors: usize,
    /// Size of one reply body, for reading the ratios.
    reply_bytes: usize,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Adds another run's measurements.
    fn merge(&mut self, other: Run) {
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
        self.errors += other.errors;
        self.reply_bytes = self.reply_bytes.max(other.reply_bytes);
    }

    fn percentile(&mut self, p: f64) -> f64 {
        self.latencies_us.sort_unstable();
        match self.latencies_us.len() {
            0 => f64::NAN,
            n => f64::from(self.latencies_us[((n - 1) as f64 * p) as usize]),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Persistent,
    OnePerRequest,
}

/// One client: announces until `deadline`, recording latencies after `warm`.
async fn client(
    server: SocketAddr,
    mode: Mode,
    index: usize,
    warm: Instant,
    deadline: Instant,
) -> (Vec<u32>, usize, usize) {
    // Client ports above the pre-registered swarm's range.
    let body = announce_body(20_000 + index as u16, "");
    let src = source_ip(index);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut conn: Option<Framed<TcpStream, FrameCodec>> = None;
    let mut reply_bytes = 0;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        if conn.is_none() {
            match connect_from(src, server).await {
                Ok(s) => conn = Some(Framed::new(s, FrameCodec::default())),
                Err(_) => {
                    errors += 1;
                    continue;
                }
            }
        }
        let framed = conn.as_mut().expect("connected above");
        let ok = match framed.send(body.clone()).await {
            Ok(()) => match framed.next().await {
                Some(Ok(reply)) => {
                    if reply_bytes == 0 {
                        // Sanity: the reply is what was asked for.
                        reply_bytes = reply.len();
                        if let Ok(r) = AnnounceResponse::parse(&reply) {
                            assert_eq!(r.error_code, 0, "tracker refused: {}", r.message);
                        }
                    }
                    true
                }
                _ => false,
            },
            Err(_) => false,
        };
        if !ok {
            errors += 1;
            conn = None;
            continue;
        }
        if mode == Mode::OnePerRequest {
            conn = None;
        }
        if t0 >= warm {
            latencies.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
    (latencies, errors, reply_bytes)
}

async fn run_clients(server: SocketAddr, mode: Mode, clients: usize, secs: f64) -> Run {
    let warm = Instant::now() + Duration::from_millis(500);
    let deadline = warm + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(client(server, mode, i, warm, deadline)))
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut reply_bytes = 0;
    for t in tasks {
        let (lat, err, bytes) = t.await.expect("client task");
        all.extend(lat);
        errors += err;
        reply_bytes = reply_bytes.max(bytes);
    }
    Run {
        latencies_us: all,
        elapsed: Instant::now().saturating_duration_since(warm),
        errors,
        reply_bytes,
    }
}

/// The baseline: reads a frame and sends it straight back.
async fn echo_server(listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let _ = socket.set_nodelay(true);
                tokio::spawn(async move {
                    let mut framed = Framed::new(socket, FrameCodec::default());
                    while let Some(Ok(frame)) = framed.next().await {
                        if framed.send(frame.freeze()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }
}

/// Registers `n` peers (ports 1..=n) on one connection.
async fn fill_swarm(server: SocketAddr, n: u16) {
    let stream = connect_from(source_ip(0), server).await.expect("connect");
    let mut framed = Framed::new(stream, FrameCodec::default());
    for port in 1..=n {
        framed
            .send(announce_body(port, r#","numwant":0"#))
            .await
            .unwrap();
        framed.next().await.unwrap().unwrap();
    }
}

fn fmt_rate(r: f64) -> String {
    let s = format!("{:.0}", r);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `VmRSS` and `VmHWM` of a process, in kB.
fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Registers `peers` peers with a `tracker` child process, from 8 source
/// addresses in parallel; returns (empty, full) (VmRSS, VmHWM) and the count
/// the tracker reports.
async fn measure_rss(peers: u32) -> ((u64, u64), (u64, u64), u32) {
    let mut cmd = command("tracker");
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--max-connections",
        "64",
    ]);
    cmd.env("RUST_LOG", "warn");
    let mut proc = Proc::spawn("tracker", cmd);
    let addr: SocketAddr = proc.wait_event(Duration::from_secs(10), |e| match e {
        tracker::Event::Listening { addr } => Some(addr),
        _ => None,
    });
    let empty = rss_kb(proc.pid());
    const CONNS: u32 = 8;
    let per_conn = peers.div_ceil(CONNS);
    let tasks: Vec<_> = (0..CONNS)
        .map(|c| {
            tokio::spawn(async move {
                let src = source_ip(c as usize);
                let stream = connect_from(src, addr).await.expect("connect");
                let mut framed = Framed::new(stream, FrameCodec::default());
                let first = c * per_conn;
                let last = ((c + 1) * per_conn).min(peers);
                // Ports 1..=per_conn per source address: distinct (ip, port) peers.
                for i in first..last {
                    let port = (i - first + 1) as u16;
                    let body = format!(
                        r#"{{"port":{port},"peer_id":"{src}:{port}","event":"started","proto":1}}"#
                    );
                    framed.send(Bytes::from(body)).await.unwrap();
                    framed.next().await.unwrap().unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Count check with one more announce (num-of-peer counts the others).
    let stream = connect_from(source_ip(0), addr).await.unwrap();
    let mut framed = Framed::new(stream, FrameCodec::default());
    framed.send(announce_body(1, "")).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    let counted = AnnounceResponse::parse(&reply).unwrap().num_of_peer + 1;
    let full = rss_kb(proc.pid());
    proc.signal(libc::SIGTERM);
    let _ = proc.wait_exit(Duration::from_secs(10));
    (empty, full, counted)
}

/// Whether the `tracker` binary sits next to this example's directory
/// (`target/<profile>/tracker`), as `lanswarm::process::command` expects.
fn tracker_binary_built() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("tracker")))
        .is_some_and(|path| path.exists())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.no_rss && !tracker_binary_built() {
        eprintln!(
            "tracker_bench: the memory measurement runs the `tracker` binary: build it first \
             (`cargo build --release -p tracker`), or pass --no-rss"
        );
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async_main(args))
}

async fn async_main(args: Args) -> ExitCode {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "tracker_bench: {cores} cores; {} persistent / {} one-shot clients; {} rounds of \
         {:.1} s per server, alternating; swarm of {} peers, default numwant (50 peers per \
         tracker reply)\n",
        args.persistent_clients, args.oneshot_clients, args.rounds, args.secs, args.swarm
    );

    // Baseline echo server and the tracker, both in this process.
    let (stop_tx, stop_rx) = watch::channel(false);
    let echo_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo_listener.local_addr().unwrap();
    tokio::spawn(echo_server(echo_listener, stop_rx.clone()));

    let tracker_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tracker_addr = tracker_listener.local_addr().unwrap();
    let config = tracker::Config {
        max_connections: 4096,
        ..tracker::Config::default()
    };
    let mut tracker_stop = stop_rx.clone();
    let tracker_task = tokio::spawn(tracker::serve(config, tracker_listener, async move {
        let _ = tracker_stop.changed().await;
    }));
    fill_swarm(tracker_addr, args.swarm).await;

    let mut rows = Vec::new();
    for (label, mode, clients) in [
        (
            "persistent connections",
            Mode::Persistent,
            args.persistent_clients,
        ),
        (
            "one connection per request",
            Mode::OnePerRequest,
            args.oneshot_clients,
        ),
    ] {
        let (mut echo, mut tracker) = (Run::default(), Run::default());
        for _ in 0..args.rounds.max(1) {
            echo.merge(run_clients(echo_addr, mode, clients, args.secs).await);
            tracker.merge(run_clients(tracker_addr, mode, clients, args.secs).await);
        }
        rows.push((label, echo, tracker));
    }
    let _ = stop_tx.send(true);
    let _ = tracker_task.await;

    println!(
        "{:<28} {:<8} {:>7} {:>12} {:>9} {:>9} {:>7} {:>22}",
        "workload",
        "server",
        "reply B",
        "announces/s",
        "p50 µs",
        "p99 µs",
        "errors",
        "ratio to echo (rate/p50/p99)"
    );
    for (label, echo, tracker) in &mut rows {
        let base = (echo.rate(), echo.percentile(0.50), echo.percentile(0.99));
        for (name, run) in [("echo", echo), ("tracker", tracker)] {
            let (rate, p50, p99) = (run.rate(), run.percentile(0.50), run.percentile(0.99));
            println!(
                "{:<28} {:<8} {:>7} {:>12} {:>9.0} {:>9.0} {:>7} {:>22}",
                label,
                name,
                run.reply_bytes,
                fmt_rate(rate),
                p50,
                p99,
                run.errors,
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    rate / base.0,
                    p50 / base.1,
                    p99 / base.2
                )
            );
        }
    }

    let mut ok = true;
    let persistent = rows[0].2.rate();
    let oneshot = rows[1].2.rate();
    println!();
    for (what, got, target) in [
        ("persistent announces/s", persistent, 50_000.0),
        ("one-connection-per-request announces/s", oneshot, 10_000.0),
    ] {
        let pass = got >= target;
        ok &= pass;
        println!(
            "target {what} >= {}: {} ({})",
            fmt_rate(target),
            fmt_rate(got),
            if pass { "PASS" } else { "MISS" }
        );
    }

    if !args.no_rss {
        let (empty, full, counted) = measure_rss(args.rss_peers).await;
        let per_peer = (full.0.saturating_sub(empty.0) * 1024) as f64 / f64::from(args.rss_peers);
        println!(
            "\nmemory (tracker process): empty VmRSS {:.1} MB (VmHWM {:.1} MB); \
             with {counted} peers VmRSS {:.1} MB (VmHWM {:.1} MB), ~{per_peer:.0} bytes/peer; \
             ratio to empty {:.1}x",
            empty.0 as f64 / 1024.0,
            empty.1 as f64 / 1024.0,
            full.0 as f64 / 1024.0,
            full.1 as f64 / 1024.0,
            full.0 as f64 / empty.0.max(1) as f64
        );
        let pass = counted == args.rss_peers && full.1 <= 100 * 1024;
        ok &= pass;
        println!(
            "target {} peers in <= 100 MB: VmHWM {:.1} MB ({})",
            args.rss_peers,
            full.1 as f64 / 1024.0,
            if pass { "PASS" } else { "MISS" }
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

//! Benchmark: `mcast probe` between two network namespaces on a bridge.
//!
//! Sends 1,400-byte datagrams at increasing rates from host 0 to host 1 and
//! prints, per rate, what arrived. Then it reports the highest rate with less
//! than 0.1% loss and the one-way latency (p50/p99) at half that rate, next to
//! a baseline measured in the same run: the same rate delivered on one host
//! (multicast loopback, no veth or bridge), with the ratio between the two.
//!
//! Needs root (network namespaces) and the release `mcast` binary:
//!
//! ```text
//! cargo build --release -p mcast
//! cargo run --release --example mcast_probe_bench
//! ```
//!
//! `MCAST_BENCH_SECS` sets the seconds per step (default 1).

use lanswarm::mcast_lab::mcast;
use lanswarm::netns::{is_root, Host, Lan, LanOptions};
use lanswarm::process::{bin_path, Proc, Stream};
use mcast::events::{Event, ProbeJoined, ProbeReport, ProbeSendSummary};
use std::process::ExitCode;
use std::time::Duration;

const SIZE: usize = 1_400;
const LOSS_LIMIT_PCT: f64 = 0.1;
const GROUP: &str = "239.7.7.7";
const WAIT: Duration = Duration::from_secs(60);

/// One probe run: what the sender managed and what the receiver saw.
struct Step {
    target_pps: u64,
    sent_pps: f64,
    sent: u64,
    received: u64,
    lost: u64,
    p50_us: u64,
    p99_us: u64,
}

impl Step {
    fn loss_pct(&self) -> f64 {
        let expected = self.received + self.lost;
        if expected == 0 {
            100.0
        } else {
            self.lost as f64 * 100.0 / expected as f64
        }
    }

    /// Whether the sender reached (95% of) the target rate.
    fn kept_up(&self) -> bool {
        self.sent_pps >= 0.95 * self.target_pps as f64
    }

    /// Verdict for the table: `ok`, `loss` or `sender` (sender could not keep up).
    fn verdict(&self) -> &'static str {
        if self.loss_pct() >= LOSS_LIMIT_PCT {
            "loss"
        } else if !self.kept_up() {
            "sender"
        } else {
            "ok"
        }
    }

    fn mbit(&self) -> f64 {
        self.sent_pps * (SIZE * 8) as f64 / 1e6
    }
}

/// Runs one probe of `secs` seconds at `pps` from `tx` to `rx`.
fn probe(tx: &Host, rx: &Host, pps: u64, secs: f64) -> Result<Step, String> {
    let count = ((pps as f64 * secs) as u64).max(500).to_string();
    let group = ["--group", GROUP, "--port", "10002"];
    let recv_args = [&["probe", "recv", "--json", "--timeout", "3s"][..], &group].concat();
    let mut receiver = Proc::spawn("probe-recv", mcast(rx, &recv_args));
    event::<ProbeJoined>(&mut receiver)?;
    let rate = pps.to_string();
    let size = SIZE.to_string();
    let send_args = [
        &[
            "probe", "send", "--json", "--rate", &rate, "--count", &count, "--size", &size,
        ][..],
        &group,
    ]
    .concat();
    let mut sender = Proc::spawn("probe-send", mcast(tx, &send_args));
    let summary: ProbeSendSummary = event(&mut sender)?;
    let report = event::<ProbeReport>(&mut receiver)?.figures;
    Ok(Step {
        target_pps: pps,
        sent_pps: summary.rate_pps,
        sent: summary.sent,
        received: report.received,
        lost: report.lost,
        p50_us: report.latency_p50_us.unwrap_or(0),
        p99_us: report.latency_p99_us.unwrap_or(0),
    })
}

/// Waits for the next event of shape `E` (e.g. `ProbeReport`) on stdout.
fn event<E: TryFrom<Event>>(p: &mut Proc) -> Result<E, String> {
    let mut found = None;
    p.wait_for(WAIT, |stream, line| {
        found = (stream == Stream::Stdout)
            .then(|| serde_json::from_str::<Event>(line).ok())
            .flatten()
            .and_then(|e| E::try_from(e).ok());
        found.is_some()
    })?;
    found.ok_or_else(|| "no event".into())
}

fn row(s: &Step) {
    println!(
        "{:>10} | {:>10.0} | {:>8.1} | {:>8} | {:>8} | {:>7} | {:>7.3} | {:>7} | {:>7} | {}",
        s.target_pps,
        s.sent_pps,
        s.mbit(),
        s.sent,
        s.received,
        s.lost,
        s.loss_pct(),
        s.p50_us,
        s.p99_us,
        s.verdict()
    );
}

fn header() {
    println!(
        "{:>10} | {:>10} | {:>8} | {:>8} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7} | verdict",
        "target/s", "sent/s", "Mbit/s", "sent", "received", "lost", "loss %", "p50 us", "p99 us"
    );
    println!("{}", "-".repeat(108));
}

fn main() -> ExitCode {
    if !is_root() {
        eprintln!("mcast_probe_bench needs root to create network namespaces; run it as root.");
        return ExitCode::FAILURE;
    }
    if !bin_path_exists() {
        eprintln!("build the mcast binary first: cargo build --release -p mcast");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcast_probe_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bin_path_exists() -> bool {
    std::panic::catch_unwind(|| bin_path("mcast")).is_ok()
}

fn run() -> Result<(), String> {
    let secs: f64 = std::env::var("MCAST_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let lan = Lan::new(2, LanOptions::default()).map_err(|e| e.to_string())?;
    let (tx, rx) = (lan.host(0), lan.host(1));
    println!(
        "mcast probe: {SIZE}-byte datagrams, {} -> {} over veth + bridge, {secs} s per step",
        tx.ipv4(),
        rx.ipv4()
    );
    header();
    let mut best: Option<Step> = None;
    let mut max_sent_pps = 0f64;
    let mut failures = 0;
    let mut pps = 1_000u64;
    while failures < 2 && pps <= 2_000_000 {
        let step = probe(tx, rx, pps, secs)?;
        row(&step);
        if step.loss_pct() < LOSS_LIMIT_PCT {
            max_sent_pps = max_sent_pps.max(step.sent_pps);
        }
        // The sender must also have kept up with the target rate.
        if step.verdict() == "ok" {
            failures = 0;
            best = Some(step);
        } else {
            failures += 1;
        }
        pps = pps * 3 / 2;
    }
    let best = best.ok_or("no rate had less than 0.1% loss")?;
    let half = best.target_pps / 2;
    let latency_secs = secs.max(2.0);
    let bridged = probe(tx, rx, half, latency_secs)?;
    let local = probe(tx, tx, half, latency_secs)?;
    println!();
    println!(
        "highest rate with < {LOSS_LIMIT_PCT}% loss: {} datagrams/s ({:.0} sent/s, {:.1} Mbit/s)",
        best.target_pps,
        best.sent_pps,
        best.mbit()
    );
    if max_sent_pps > best.sent_pps * 1.02 {
        println!(
            "  (above that the sender fell behind its target; the most it sent without loss was {max_sent_pps:.0}/s, {:.1} Mbit/s)",
            max_sent_pps * (SIZE * 8) as f64 / 1e6
        );
    }
    println!();
    println!("latency at half that rate ({half} datagrams/s):");
    println!(
        "{:<28} | {:>8} | {:>8} | {:>7}",
        "path", "p50 us", "p99 us", "loss %"
    );
    println!("{}", "-".repeat(60));
    for (name, s) in [
        ("two namespaces, bridge", &bridged),
        ("baseline: same host (loop)", &local),
    ] {
        println!(
            "{name:<28} | {:>8} | {:>8} | {:>7.3}",
            s.p50_us,
            s.p99_us,
            s.loss_pct()
        );
    }
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    println!(
        "ratio bridge / same host: p50 {:.2}x, p99 {:.2}x",
        ratio(bridged.p50_us, local.p50_us),
        ratio(bridged.p99_us, local.p99_us)
    );
    Ok(())
}

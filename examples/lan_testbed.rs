//! P2P versus client/server on an emulated LAN.
//!
//! Builds a LAN of network namespaces on a bridge (one server host, N client
//! hosts, every host's upload limited with `tbf`), then for each N distributes
//! a generated file with `peer serve`/`peer fetch` and with a tracker, a
//! seeding `peer` and N leeching `peer`s (and the same with the seeder
//! super-seeding), all clients started at once. Prints the time until the
//! last client holds a verified file next to Kurose and Ross's lower bounds,
//! what the server uploaded and the CPU time per client, and plots time
//! against N as SVG.
//!
//! Needs root. Build the binaries first, then run (from the workspace root):
//!
//! ```text
//! cargo build --release --workspace --examples
//! sudo target/release/examples/lan_testbed --plot docs/p2p-vs-cs.svg
//! ```
//!
//! Every namespace, veth and bridge it made is deleted on exit, on failure
//! and on Ctrl-C/SIGTERM.

#[path = "lan_testbed/plot.rs"]
mod plot;
#[path = "lan_testbed/signals.rs"]
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lanswarm::testbed::{Outcome, Params, Setup, Testbed};

/// P2P versus client/server distribution of one file on an emulated LAN
/// (network namespaces on a bridge, tbf rate limits). Needs root.
#[derive(Debug, Parser)]
#[command(name = "lan_testbed")]
struct Args {
    /// Numbers of clients to try, e.g. `1,2,4,8,16`.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "1,2,4,8,16")]
    n_list: Vec<usize>,

    /// Size of the generated file, MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,

    /// Upload limit of every host (tbf on its interface), Mbit/s.
    #[arg(long, default_value_t = 100)]
    rate_mbit: u32,

    /// Upload limit of the server host, Mbit/s (default: --rate-mbit).
    #[arg(long)]
    server_rate_mbit: Option<u32>,

    /// Download limit of every client (tbf on its bridge port), Mbit/s (default: none).
    #[arg(long)]
    down_mbit: Option<u32>,

    /// Which setups to run: cs (peer serve/fetch), p2p (a seeder and N
    /// leechers), ss (the same, the seeder with --super-seed).
    #[arg(long, value_delimiter = ',', default_value = "cs,p2p,ss", value_parser = parse_setup)]
    setups: Vec<Setup>,

    /// Runs of each setup and N; the table shows the median run (the machine's
    /// other load makes single P2P runs noisy).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    repeat: u32,

    /// P2P leechers leave as soon as they are done (`peer --exit-when-done`)
    /// instead of uploading until the last client is done.
    #[arg(long)]
    exit_when_done: bool,

    /// Piece length of the torrent, KiB (default: `peer create`'s choice,
    /// 64 KiB for 64 MiB).
    #[arg(long, value_name = "KIB")]
    piece_kib: Option<u64>,

    /// `--upload-slots` of every P2P peer. The bound assumes every peer
    /// uploads to all the others from the start; with the peer's default of
    /// 4 (and a choking round every 5 s) late-interested peers wait seconds
    /// for a slot, so the testbed gives every peer 16.
    #[arg(long, value_name = "N", default_value_t = 16)]
    upload_slots: usize,

    /// One more argument for the P2P seeder (repeat it for several), e.g.
    /// `--seeder-arg=--super-seed-window --seeder-arg=8`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    seeder_arg: Vec<String>,

    /// Save the output of every process of every run in this directory.
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,

    /// Where to write the SVG plot (time against N).
    #[arg(long, default_value = "docs/p2p-vs-cs.svg")]
    plot: PathBuf,
}

fn parse_setup(s: &str) -> Result<Setup, String> {
    [Setup::ClientServer, Setup::PeerToPeer, Setup::SuperSeed]
        .into_iter()
        .find(|setup| setup.tag() == s)
        .ok_or_else(|| format!("unknown setup {s:?} (use cs, p2p or ss)"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !lanswarm::netns::is_root() {
        eprintln!("lan_testbed: needs root (network namespaces and tc); run it with sudo");
        return ExitCode::from(1);
    }
    if args.n_list.is_empty() || args.n_list.contains(&0) {
        eprintln!("lan_testbed: --n-list needs positive numbers of clients");
        return ExitCode::from(2);
    }
    signals::clean_up_on_signal();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lan_testbed: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let params = Params {
        rate_mbit: args.rate_mbit,
        server_rate_mbit: args.server_rate_mbit,
        down_mbit: args.down_mbit,
        file_bytes: args.size_mib * 1024 * 1024,
    };
    let max_n = *args.n_list.iter().max().expect("non-empty");
    eprintln!(
        "building a LAN of 1 server + {max_n} clients, {} Mbit/s uploads, {} MiB file…",
        args.rate_mbit, args.size_mib
    );
    let mut bed = Testbed::new(max_n, params.clone())?;
    bed.set_leechers_exit_when_done(args.exit_when_done);
    bed.set_upload_slots(Some(args.upload_slots));
    bed.set_piece_length(args.piece_kib.map(|k| k * 1024));
    bed.set_seeder_args(args.seeder_arg.clone());
    if let Some(dir) = &args.logs {
        bed.keep_logs(dir)?;
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    for &n in &args.n_list {
        for &setup in &args.setups {
            let mut runs = Vec::new();
            for _ in 0..args.repeat {
                eprint!("N = {n:>2}, {}: ", setup.label());
                let outcome = bed.run(setup, n)?;
                report_run(&outcome, &params);
                runs.push(outcome);
            }
            runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
            let outcome = runs.swap_remove(runs.len() / 2);
            outcomes.push(outcome);
        }
    }
    drop(bed);
    print_table(&args.n_list, &args.setups, &params, &outcomes);
    if let Some(dir) = args.plot.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    plot::write_svg(&args.plot, &args.n_list, &params, &outcomes)?;
    eprintln!("plot written to {}", args.plot.display());
    Ok(())
}

/// One line on stderr per run: time, bound, and what explains the difference.
fn report_run(outcome: &Outcome, params: &Params) {
    let first = outcome
        .client_seconds
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let served = outcome.from_server.map_or_else(String::new, |b| {
        format!(
            ", server sent {:.2} × F",
            b as f64 / params.file_bytes as f64
        )
    });
    eprintln!(
        "{:.2} s (bound {:.2} s, ×{:.2}; first client done at {first:.2} s{served}; \
         {:.1} CPU-s, {:.2} per client)",
        outcome.seconds,
        outcome.bound,
        outcome.ratio(),
        outcome.cpu_seconds,
        outcome.cpu_per_client(),
    );
}

fn print_table(n_list: &[usize], setups: &[Setup], params: &Params, outcomes: &[Outcome]) {
    println!(
        "F = {} MiB, u_s = {} Mbit/s, u_i = {} Mbit/s, d_min = {}",
        params.file_bytes / (1024 * 1024),
        params.server_mbit(),
        params.rate_mbit,
        params
            .down_mbit
            .map_or_else(|| "unlimited".to_string(), |d| format!("{d} Mbit/s"))
    );
    println!(
        "| {:>3} | {:<14} | {:>8} | {:>9} | {:>7} | {:>13} | {:>14} | {:>14} |",
        "N",
        "setup",
        "time (s)",
        "bound (s)",
        "× bound",
        "server sent",
        "CPU-s / client",
        "server CPU-s"
    );
    println!(
        "|{:-<5}|{:-<16}|{:-<10}|{:-<11}|{:-<9}|{:-<15}|{:-<16}|{:-<16}|",
        "", "", "", "", "", "", "", ""
    );
    for &n in n_list {
        for &setup in setups {
            let Some(o) = outcomes.iter().find(|o| o.setup == setup && o.n == n) else {
                continue;
            };
            let sent = o
                .server_copies(params.file_bytes)
                .map_or_else(|| "-".to_string(), |c| format!("{c:.2} F"));
            let server_cpu = o
                .server_cpu_seconds
                .map_or_else(|| "-".to_string(), |c| format!("{c:.2}"));
            println!(
                "| {:>3} | {:<14} | {:>8.2} | {:>9.2} | {:>7.2} | {:>13} | {:>14.2} | {:>14} |",
                n,
                setup.label(),
                o.seconds,
                o.bound,
                o.ratio(),
                sent,
                o.cpu_per_client(),
                server_cpu,
            );
        }
    }
}

//! Time from a leecher's start to its first connected peer: LAN discovery
//! alone against a tracker, in the same run (interleaved rounds, medians).
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! sudo target/release/examples/discovery_bench [ROUNDS]     # default 5
//! ```
//!
//! Two hosts (network namespaces on a bridge): a seeder (and, for the
//! tracker rows, a tracker) on one, the leecher on the other. Needs root.

use std::time::{Duration, Instant};

use lanswarm::expect_event;
use lanswarm::files::write_random_file;
use lanswarm::netns::{is_root, Lan, LanOptions};
use lanswarm::process::{bin_path, command, Proc};
use peer::events::Event;

const T: Duration = Duration::from_secs(60);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !is_root() {
        eprintln!("discovery_bench needs root (network namespaces)");
        std::process::exit(2);
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let lan = Lan::new(2, LanOptions::default()).expect("building the LAN");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    write_random_file(&src.join("data.bin"), 1 << 20, 5);
    let tracker_addr = format!("{}:6969", lan.host(0).ipv4());
    let torrent = |name: &str, tracker: Option<&str>| {
        let path = tmp.path().join(name);
        let mut cmd = command("peer");
        cmd.arg("create")
            .arg(src.join("data.bin"))
            .arg("-o")
            .arg(&path);
        match tracker {
            Some(t) => cmd.args(["--tracker", t]),
            None => cmd.arg("--no-tracker"),
        };
        assert!(cmd.status().unwrap().success());
        path
    };
    let lsd = torrent("lsd.torrent", None);
    let tracked = torrent("tracked.torrent", Some(&tracker_addr));
    let mut tracker = Proc::spawn("tracker", {
        let mut cmd = lan.host(0).command(bin_path("tracker"));
        cmd.args(["--listen", &tracker_addr, "--json"]);
        cmd
    });
    expect_event!(tracker, T, tracker::Event::Listening { .. });
    let peer = |host: usize, torrent: &std::path::Path, dir: &std::path::Path, extra: &[&str]| {
        let mut cmd = lan.host(host).command(bin_path("peer"));
        cmd.arg("--torrent")
            .arg(torrent)
            .arg("--dir")
            .arg(dir)
            .arg("--json")
            .args(extra);
        cmd
    };
    let (mut by_lsd, mut by_tracker) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (torrent, extra, times) in [
            (&lsd, &[][..], &mut by_lsd),
            (&tracked, &["--no-discover"][..], &mut by_tracker),
        ] {
            let mut seed = Proc::spawn("seed", peer(0, torrent, &src, extra));
            expect_event!(seed, T, Event::Started(_));
            let dir = tmp.path().join(format!("leech{round}"));
            let t = Instant::now();
            let mut leech = Proc::spawn("leech", peer(1, torrent, &dir, extra));
            expect_event!(leech, T, Event::PeerConnected { .. });
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            drop(leech);
            drop(seed);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    println!("| leecher start → first connected peer (median of {rounds}) | ms |");
    println!("|---|---:|");
    println!("| LAN discovery alone (BEP 14) | {:.0} |", median(by_lsd));
    println!("| tracker | {:.0} |", median(by_tracker));
}

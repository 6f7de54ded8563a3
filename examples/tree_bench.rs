//! A directory torrent against `tar c | socat | tar x`, in the same run.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! cargo run --release --example tree_bench -- [FILES] [KIB] [ROUNDS]   # default 10000 100 3
//! ```
//!
//! Builds a tree of FILES files of KIB KiB each (in 100 directories),
//! hashes it with `peer create`, then in interleaved rounds moves it over
//! loopback (a) with `tar c DIR | socat` into `socat | tar x` and (b) from
//! one seeding `peer` to one leeching `peer` with a tracker, checking the
//! copy each time. Prints the medians, the ratio, and the leecher's peak
//! RSS. Without socat (Debian package `socat`) the baseline row is skipped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use lanswarm::files::write_tree;
use lanswarm::fixture::*;
use lanswarm::process::{bin_path, Proc};
use sha1::{Digest, Sha1};

/// Every regular file below `dir` with its SHA-1, sorted: a small stand-in
/// for the tree's contents (holding 1 GiB of them would inflate this
/// process, and with it the peak RSS its children inherit at fork).
fn tree_digest(dir: &Path) -> Vec<(String, [u8; 20])> {
    fn visit(dir: &Path, prefix: &str, out: &mut Vec<(String, [u8; 20])>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                visit(&entry.path(), &format!("{name}/"), out);
            } else {
                let data = std::fs::read(entry.path()).unwrap();
                out.push((name, Sha1::digest(&data).into()));
            }
        }
    }
    let mut out = Vec::new();
    visit(dir, "", &mut out);
    out.sort();
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether a TCP socket listens on `port` (per /proc/net/tcp).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
    })
}

/// `tar c` of `src/tree` through socat into `tar x` in `dst`; seconds.
fn tar_socat(src: &Path, dst: &Path) -> f64 {
    std::fs::create_dir_all(dst).unwrap();
    let port = free_port();
    let mut receiver = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "socat -u TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr - | tar x -C '{}'",
            dst.display()
        ))
        .spawn()
        .unwrap();
    // Wait until socat listens (without touching the port).
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !listening(port) {
        assert!(Instant::now() < deadline, "socat did not listen");
        std::thread::yield_now();
    }
    let t = Instant::now();
    let sent = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar c -C '{}' tree | socat -u - TCP:127.0.0.1:{port}",
            src.display()
        ))
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(receiver.wait().unwrap().success());
    t.elapsed().as_secs_f64()
}

/// One seeder (over `src/tree`) to one leecher into `dst`; seconds and the
/// leecher's peak RSS in KiB.
fn swarm(src: &Path, torrent: &Path, dst: &Path) -> (f64, u64) {
    let mut tracker = start_tracker(&[]);
    let mut cmd = peer_command(torrent, src);
    cmd.args(["--tracker", &tracker.addr.to_string()]);
    let (_seed, seed_ev) = start_peer("seed", cmd);
    tracker.expect_join(&seed_ev.peer_id, STEP);
    let t = Instant::now();
    let mut cmd = peer_command(torrent, dst);
    cmd.args(["--exit-when-done", "--tracker", &tracker.addr.to_string()]);
    let mut leech = Proc::spawn("leech", cmd);
    let (code, rss) = leech.wait_with_peak_rss();
    assert_eq!(code, 0, "leecher failed:\n{}", leech.output());
    (t.elapsed().as_secs_f64(), rss)
}

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (files, kib, rounds) = (arg(1, 10_000), arg(2, 100), arg(3, 3) as usize);
    let tmp =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let src = tmp.path().join("src");
    let names: Vec<(String, u64)> = (0..files)
        .map(|i| (format!("d{:02}/f{i:05}.bin", i % 100), kib << 10))
        .collect();
    let spec: Vec<(&str, u64)> = names.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    eprintln!("writing {files} files of {kib} KiB …");
    write_tree(&src.join("tree"), &spec);
    let total = files * (kib << 10);
    let torrent = tmp.path().join("tree.torrent");
    let t = Instant::now();
    create_torrent(
        &src.join("tree"),
        "127.0.0.1:6666".parse().unwrap(),
        None,
        &torrent,
    );
    let create = t.elapsed().as_secs_f64();
    let expected = tree_digest(&src.join("tree"));
    println!(
        "lanswarm tree benchmark: {files} files x {kib} KiB = {:.0} MiB, binaries from {}",
        total as f64 / 1048576.0,
        bin_path("peer").parent().unwrap().display()
    );
    println!(
        "peer create: {create:.2} s ({:.0} MB/s)",
        total as f64 / 1e6 / create
    );
    let socat = have("socat");
    if !socat {
        println!("(socat not found: `apt-get install socat` for the tar | socat baseline)");
    }
    let (mut base, mut ours, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        if socat {
            let dst = tmp.path().join(format!("tar{round}"));
            base.push(tar_socat(&src, &dst));
            if round == 0 {
                assert!(
                    tree_digest(&dst.join("tree")) == expected,
                    "tar copy differs"
                );
            }
            std::fs::remove_dir_all(&dst).unwrap();
        }
        let dst = tmp.path().join(format!("peer{round}"));
        let (secs, peak) = swarm(&src, &torrent, &dst);
        ours.push(secs);
        rss.push(peak);
        assert!(
            tree_digest(&dst.join("tree")) == expected,
            "peer copy differs"
        );
        std::fs::remove_dir_all(&dst).unwrap();
        eprintln!(
            "round {}: tar|socat {:?} s, peer {secs:.2} s",
            round + 1,
            base.last()
        );
    }
    let mb = |s: f64| total as f64 / 1e6 / s;
    println!("| transfer (median of {rounds}) | seconds | MB/s | ratio (speed, to tar pipe) | peak RSS |");
    println!("|---|---:|---:|---:|---:|");
    let ours_m = median(ours);
    if socat {
        let b = median(base);
        println!(
            "| tar c DIR \\| socat → socat \\| tar x | {b:.2} | {:.0} | 1.00 | – |",
            mb(b)
        );
        println!(
            "| 1 seeder → 1 leecher (peer, verified) | {ours_m:.2} | {:.0} | {:.2} | {:.1} MiB |",
            mb(ours_m),
            b / ours_m,
            *rss.iter().max().unwrap() as f64 / 1024.0
        );
    } else {
        println!(
            "| 1 seeder → 1 leecher (peer, verified) | {ours_m:.2} | {:.0} | – | {:.1} MiB |",
            mb(ours_m),
            *rss.iter().max().unwrap() as f64 / 1024.0
        );
    }
}

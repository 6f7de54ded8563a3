//! Swarm throughput and memory, against baselines measured in the same run.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! cargo run --release --example swarm_bench -- [SIZE_MIB]   # default 1024
//! ```
//!
//! 1. `peer create` (hashing) against `sha1sum` on the same file.
//! 2. A raw TCP copy of the file into a file (a plain Rust read/write loop
//!    over loopback, best of 3) as the transfer baseline; and, for reference,
//!    the same through `std::io::copy`, which the kernel does with
//!    sendfile/splice and no user-space copies.
//! 3. One seeder to one leecher: wall time, MB/s, ratio to the raw copy and
//!    the leecher's peak RSS.
//! 4. One seeder to four leechers started together.
//!
//! Everything runs on 127.0.0.1 in a temporary directory that is removed at the end.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lanswarm::fixture::*;
use lanswarm::process::{bin_path, Proc};

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn time_cmd(cmd: &mut Command) -> f64 {
    let t = Instant::now();
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

/// read() into a buffer, write_all() it out, until EOF.
fn copy_loop(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).unwrap();
    }
}

/// File → TCP (loopback) → file, either with a plain user-space copy loop
/// on both ends (`kernel == false`, the issue's baseline) or with
/// `std::io::copy`, which Linux turns into sendfile/splice (`kernel == true`).
fn raw_tcp_copy(src: &Path, dst: &Path, kernel: bool) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let src = src.to_path_buf();
    let t = Instant::now();
    let sender = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut f = std::fs::File::open(src).unwrap();
        if kernel {
            std::io::copy(&mut BufReader::new(f), &mut sock).unwrap();
        } else {
            copy_loop(&mut f, &mut sock);
        }
    });
    let mut sock = TcpStream::connect(addr).unwrap();
    let mut out = std::fs::File::create(dst).unwrap();
    if kernel {
        std::io::copy(&mut sock, &mut BufWriter::new(&mut out)).unwrap();
    } else {
        copy_loop(&mut sock, &mut out);
    }
    drop(out);
    sender.join().unwrap();
    t.elapsed().as_secs_f64()
}

fn seed_dir(root: &Path, name: &str, data: &Path) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    // A hard link: the seeder reads the same page-cached file.
    std::fs::hard_link(data, dir.join("data.bin")).unwrap();
    dir
}

/// Starts `n` leechers at once; returns the wall time until the last one
/// exits and each one's peak RSS in KiB.
fn swarm_run(root: &Path, torrent: &Path, data: &Path, n: usize, tag: &str) -> (f64, Vec<u64>) {
    let mut tracker = start_tracker(&[]);
    let mut cmd = peer_command(torrent, &seed_dir(root, &format!("{tag}-seed"), data));
    cmd.args(["--tracker", &tracker.addr.to_string()]);
    let (_seed, started) = start_peer("seed", cmd);
    tracker.expect_join(&started.peer_id, STEP);
    let t = Instant::now();
    let mut leechers: Vec<(Proc, PathBuf)> = (0..n)
        .map(|i| {
            let dir = root.join(format!("{tag}-leech{i}"));
            let mut cmd = peer_command(torrent, &dir);
            cmd.args(["--exit-when-done", "--tracker", &tracker.addr.to_string()]);
            (Proc::spawn(&format!("leech{i}"), cmd), dir)
        })
        .collect();
    let mut rss = Vec::new();
    for (proc, _) in &mut leechers {
        let (code, peak) = proc.wait_with_peak_rss();
        assert_eq!(code, 0, "{} failed:\n{}", proc.name, proc.output());
        rss.push(peak);
    }
    let secs = t.elapsed().as_secs_f64();
    for (_, dir) in &leechers {
        let got = dir.join("data.bin");
        assert_eq!(
            std::fs::metadata(&got).unwrap().len(),
            std::fs::metadata(data).unwrap().len()
        );
        std::fs::remove_file(got).unwrap();
    }
    (secs, rss)
}

fn main() {
    let size_mib: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let size = size_mib << 20;
    let tmp =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let root = tmp.path();
    let data = root.join("data.bin");
    eprintln!("generating {size_mib} MiB …");
    write_random_file(&data, size, 42);
    println!(
        "lanswarm swarm benchmark: {size_mib} MiB file, binaries from {}",
        bin_path("peer").parent().unwrap().display()
    );
    println!();

    // 1. Hashing.
    let _warm = time_cmd(Command::new("sha1sum").arg(&data));
    let sha1sum = time_cmd(Command::new("sha1sum").arg(&data));
    let torrent = root.join("data.torrent");
    let create = time_cmd(
        Command::new(bin_path("peer"))
            .arg("create")
            .arg(&data)
            .args(["--tracker", "127.0.0.1:6666", "-o"])
            .arg(&torrent),
    );
    let t = load_torrent(&torrent);
    println!("| hashing | seconds | MB/s | ratio to sha1sum (speed) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| sha1sum | {sha1sum:.3} | {:.0} | 1.00 |",
        mbps(size, sha1sum)
    );
    println!(
        "| peer create ({} pieces of {} KiB) | {create:.3} | {:.0} | {:.2} |",
        t.info.piece_count(),
        t.info.piece_length >> 10,
        mbps(size, create),
        sha1sum / create
    );
    println!();

    // 2. Baseline transfer.
    let copy_dst = root.join("copy.bin");
    let best = |kernel: bool| {
        let runs: Vec<f64> = (0..3)
            .map(|_| {
                let secs = raw_tcp_copy(&data, &copy_dst, kernel);
                std::fs::remove_file(&copy_dst).unwrap();
                secs
            })
            .collect();
        runs.into_iter().fold(f64::MAX, f64::min)
    };
    let raw = best(false);
    let kernel = best(true);

    // 3 and 4. Swarm runs.
    let (one, rss_one) = swarm_run(root, &torrent, &data, 1, "one");
    let (four, rss_four) = swarm_run(root, &torrent, &data, 4, "four");
    let total_four = 4 * size;
    println!("| transfer | seconds | MB/s | ratio to raw TCP copy | leecher peak RSS |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| raw TCP copy, file to file (plain read/write loop) | {raw:.3} | {:.0} | 1.00 | – |",
        mbps(size, raw)
    );
    println!(
        "| kernel copy, file to file (std::io::copy: sendfile/splice) | {kernel:.3} | {:.0} | {:.2} | – |",
        mbps(size, kernel),
        raw / kernel
    );
    println!(
        "| 1 seeder → 1 leecher | {one:.3} | {:.0} | {:.2} | {:.1} MiB |",
        mbps(size, one),
        raw / one,
        rss_one[0] as f64 / 1024.0
    );
    println!(
        "| 1 seeder → 4 leechers (all done) | {four:.3} | {:.0} aggregate | {:.2} (vs 4 raw copies) | max {:.1} MiB |",
        mbps(total_four, four),
        4.0 * raw / four,
        *rss_four.iter().max().unwrap() as f64 / 1024.0
    );
}

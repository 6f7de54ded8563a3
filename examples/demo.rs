//! The lanswarm demo: a tracker, a seeder and three leechers on 127.0.0.1
//! sharing a generated file.
//!
//! ```text
//! cargo run --release --example demo            # 64 MiB
//! cargo run --release --example demo -- 256     # file size in MiB
//! ```
//!
//! It builds the binaries, generates the file, starts everything, shows each
//! leecher's progress, then prints who got what from whom, the tracker's view
//! of the swarm, and a SHA-1 check of every copy. All processes it started are
//! stopped at the end (also on failure or Ctrl-C).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use lanswarm::fixture::*;
use lanswarm::process::{bin_path, command, Proc, Stream};
use peer::events::{Done, Event, Progress};
use sha1::{Digest, Sha1};

const LEECHERS: usize = 3;

fn sha1_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).expect("open for hashing");
    let mut h = Sha1::new();
    std::io::copy(&mut f, &mut h).expect("read for hashing");
    wire::ids::to_hex(&h.finalize())
}

fn build_binaries() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile_release = bin_path_dir_is_release();
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "tracker", "-p", "peer"]);
    if profile_release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building the binaries failed");
}

fn bin_path_dir_is_release() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|d| d.ends_with("release")))
        .unwrap_or(false)
}

fn main() {
    let size_mib: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    println!(
        "lanswarm demo: 1 tracker, 1 seeder, {LEECHERS} leechers, {size_mib} MiB on 127.0.0.1"
    );
    build_binaries();
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let data = root.join("demo.bin");
    write_random_file(&data, size_mib << 20, 0x5eed);

    let mut tracker = start_tracker(&[]);
    println!("tracker   listening on {}", tracker.addr);
    let torrent = create_torrent(&data, tracker.addr, None, &root.join("demo.bin.torrent"));
    let t = load_torrent(&torrent);
    println!(
        "torrent   {} ({} pieces of {} KiB), info hash {}",
        torrent.display(),
        t.info.piece_count(),
        t.info.piece_length >> 10,
        t.info_hash()
    );
    let seed_dir = root.join("seeder");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::hard_link(&data, seed_dir.join("demo.bin")).unwrap();
    let (_seed, seed_ev) = start_peer("seeder", peer_command(&torrent, &seed_dir));
    let seed_id = seed_ev.peer_id.as_str();
    tracker.expect_join(seed_id, STEP);
    println!(
        "seeder    {} verified {} pieces",
        seed_ev.listen, seed_ev.have
    );

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix:>9} [{bar:40}] {bytes:>9}/{total_bytes} {bytes_per_sec:>11} {msg}",
    )
    .unwrap()
    .progress_chars("=> ");
    let start = Instant::now();
    let mut leechers: Vec<(Proc, ProgressBar, std::path::PathBuf)> = (1..=LEECHERS)
        .map(|i| {
            let dir = root.join(format!("leecher{i}"));
            let mut cmd = peer_command(&torrent, &dir);
            cmd.arg("--exit-when-done");
            let bar = bars.add(ProgressBar::new(t.info.file_length));
            bar.set_style(style.clone());
            bar.set_prefix(format!("leecher{i}"));
            (Proc::spawn(&format!("leecher{i}"), cmd), bar, dir)
        })
        .collect();

    // Follow every leecher's JSON events until all are done.
    let mut dones: Vec<Option<SwarmDone>> = vec![None; LEECHERS];
    let mut names = std::collections::HashMap::new();
    names.insert(seed_ev.peer_id.clone(), "seeder".to_string());
    while dones.iter().any(Option::is_none) {
        for (i, (proc, bar, _)) in leechers.iter_mut().enumerate() {
            if dones[i].is_some() {
                continue;
            }
            let got = proc.wait_for(Duration::from_millis(50), |s, l| {
                s == Stream::Stdout && l.starts_with('{')
            });
            let Ok(line) = got else {
                if start.elapsed() > Duration::from_secs(600) {
                    panic!("{} did not finish:\n{}", proc.name, proc.output());
                }
                continue;
            };
            match serde_json::from_str::<Event>(&line) {
                Ok(Event::Started(started)) => {
                    names.insert(started.peer_id, proc.name.clone());
                }
                Ok(Event::Progress(Progress::Swarm { bytes, peers, .. })) => {
                    bar.set_position(bytes);
                    bar.set_message(format!("{peers} peers"));
                }
                Ok(Event::Done(Done::Swarm(done))) => {
                    bar.finish_with_message(format!("done in {:.2}s", done.seconds));
                    dones[i] = Some(done);
                }
                _ => {}
            }
        }
    }
    let total = start.elapsed().as_secs_f64();
    println!();
    println!("all {LEECHERS} leechers complete in {total:.2}s");
    println!();
    println!(
        "{:<10} {:>8} {:>12}   received from",
        "leecher", "seconds", "avg MB/s"
    );
    for (i, done) in dones.iter().enumerate() {
        let done = done.as_ref().unwrap();
        let (secs, bytes) = (done.seconds, done.bytes);
        let mut sources: Vec<String> = done
            .peers
            .iter()
            .filter(|p| p.downloaded > 0)
            .map(|p| {
                let name = p
                    .peer_id
                    .as_ref()
                    .and_then(|id| names.get(id))
                    .cloned()
                    .unwrap_or_else(|| p.addr.clone());
                format!("{name} {:.1} MiB", p.downloaded as f64 / 1048576.0)
            })
            .collect();
        sources.sort();
        println!(
            "{:<10} {:>8.2} {:>12.1}   {}",
            format!("leecher{}", i + 1),
            secs,
            bytes as f64 / 1e6 / secs.max(1e-9),
            sources.join(", ")
        );
    }
    println!();
    let status = command("tracker")
        .args(["status", "--addr", &tracker.addr.to_string()])
        .output()
        .expect("run tracker status");
    println!(
        "tracker status:\n{}",
        String::from_utf8_lossy(&status.stdout)
    );

    let want = sha1_file(&data);
    println!("SHA-1 of the original: {want}");
    let mut ok = true;
    for (proc, _, dir) in &mut leechers {
        let got = sha1_file(&dir.join("demo.bin"));
        let verdict = if got == want { "OK" } else { "MISMATCH" };
        ok &= got == want;
        println!("  {:<10} {got} {verdict}", proc.name);
        let _ = proc.wait_exit(STEP);
    }
    println!("binaries: {}", bin_path("peer").parent().unwrap().display());
    if !ok {
        eprintln!("hash check failed");
        std::process::exit(1);
    }
    println!("hash check passed; stopping the seeder and tracker");
}

//! `peer serve` against clients that connect and never read (issue 14,
//! item 10): the caps per address and in total keep a good client served,
//! the write deadline frees the slots of those that never read, and when
//! the server runs out of descriptors its accept loop backs off with one
//! log line per period instead of spinning.

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Instant;

use lanswarm::expect_event;
use lanswarm::files::assert_same_file;
use lanswarm::fixture::connect_from;
use lanswarm::process::{command, process_cpu_secs, Proc};
use lanswarm::transfer::{random_file, start_fetch, WAIT};
use peer::events::Event;

fn ip(b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, b, c))
}

/// `peer serve FILE` on loopback with `extra` flags and at most `nofile`
/// descriptors; returns it with its address.
fn serve(file: &Path, extra: &[&str], nofile: Option<u64>) -> (Proc, String) {
    let mut cmd = command("peer");
    cmd.arg("serve")
        .arg(file)
        .args(["--listen", "127.0.0.1:0", "--json"])
        .args(extra);
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut server = Proc::spawn("serve", cmd);
    let addr = expect_event!(server, WAIT, Event::Listening { addr, .. } => addr);
    (server, addr)
}

/// Fetches into a fresh directory; returns the seconds it took.
fn good_fetch(addr: &str, file: &Path, name: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let t = Instant::now();
    let mut fetch = start_fetch(name, addr, &out, &[]);
    let status = fetch.wait_exit(WAIT).unwrap();
    assert!(status.success(), "{}", fetch.output());
    assert_same_file(file, &out);
    t.elapsed().as_secs_f64()
}

#[test]
fn readers_that_never_read_do_not_keep_a_good_client_out() {
    let src = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "f.bin", 8 << 20);
    let (server, addr) = serve(&file, &["--write-timeout", "2"], None);
    let baseline = good_fetch(&addr, &file, "baseline");

    // 300 connections from one host that never read: 8 get a slot.
    let to = addr.parse().unwrap();
    let hogs: Vec<TcpStream> = (0..300)
        .filter_map(|_| connect_from(ip(8, 1), to).ok())
        .collect();
    assert!(hogs.len() >= 250, "only {} connected", hogs.len());
    let attacked = good_fetch(&addr, &file, "attacked");
    assert!(
        attacked < baseline * 5.0 + 2.0,
        "{attacked:.2}s with the hogs, {baseline:.2}s without"
    );
    drop(hogs);
    drop(server);
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_quietly() {
    let src = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "f.bin", 8 << 20);
    let (mut server, addr) = serve(&file, &["--write-timeout", "2"], Some(40));
    let to = addr.parse().unwrap();
    let cpu_before = process_cpu_secs(server.pid()).expect("the server is running");
    let log_before = server.output().len();

    // 60 readers that never read, 5 per host: more than the descriptors.
    let start = Instant::now();
    let hogs: Vec<TcpStream> = (0..60)
        .filter_map(|i| connect_from(ip(9, 1 + i / 5), to).ok())
        .collect();
    assert!(!hogs.is_empty());
    // Let the server meet the wall for a while (the write deadline frees
    // the slots after 2 s); the load is the pacing, nothing waits on it.
    while start.elapsed().as_secs_f64() < 1.5 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let cpu = process_cpu_secs(server.pid()).expect("the server is running") - cpu_before;
    let output = server.output();
    let log = output.len() - log_before;
    // It did run out: its accept failed (and said so, once per period).
    assert!(output.contains("Too many open files"), "{output}");
    assert!(cpu < 0.8, "the server used {cpu:.2} CPU-s in 1.5 s");
    assert!(log < 20_000, "{log} bytes of log in 1.5 s");
    drop(hogs);
    // Once they are gone, a good client is served.
    good_fetch(&addr, &file, "after");
    server.kill();
}

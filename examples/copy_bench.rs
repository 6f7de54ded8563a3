//! One copy fewer? What a verified received GiB costs in CPU, by the way
//! its bytes go from the socket to the file and through SHA-1.
//!
//! ```text
//! cargo run --release --example copy_bench [-- --size 1024 --rounds 5 --dir /tmp]
//! ```
//!
//! A thread sends `--size` MiB over loopback TCP from memory; the receiving
//! thread puts it in a fresh, preallocated file and hashes every byte, one
//! way per row, in interleaved rounds:
//! - **buffer** (what the leecher does): `recv` into a 256 KiB buffer, hash
//!   it, `pwrite` it: two copies (socket → buffer → page cache);
//! - **mmap**: `recv` straight into a shared mapping of the file, then hash
//!   from the mapping: one copy, but every page is faulted in for writing;
//! - **mmap + populate**: the same, each 256 KiB made writable first with
//!   one `madvise(MADV_POPULATE_WRITE)` instead of a fault per page;
//! - **splice**: socket → pipe → file with `splice`, then `pread` to hash:
//!   the kernel copies into the page cache, and reading back to hash is a
//!   copy again.
//!
//! Reported: median wall seconds and the receiving thread's CPU seconds
//! (user + system, `RUSAGE_THREAD`), and their ratio to **buffer**, with
//! `recv` alone (bytes discarded, nothing hashed) as the floor.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use sha1::{Digest, Sha1};

#[derive(Parser, Debug)]
#[command(
    about = "CPU cost of a received, verified GiB: buffer + pwrite against recv into a mapping, and splice"
)]
struct Args {
    /// MiB sent per run.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Interleaved rounds (the table shows medians).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Directory for the received file.
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
}

const CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    RecvOnly,
    Buffer,
    Mmap,
    MmapPopulate,
    Splice,
}

impl Way {
    const ALL: [Way; 5] = [
        Way::RecvOnly,
        Way::Buffer,
        Way::Mmap,
        Way::MmapPopulate,
        Way::Splice,
    ];

    fn name(self) -> &'static str {
        match self {
            Way::RecvOnly => "recv only (floor: nothing written or hashed)",
            Way::Buffer => "buffer: recv, hash, pwrite (the leecher)",
            Way::Mmap => "mmap: recv into the file's mapping, hash it",
            Way::MmapPopulate => "mmap + MADV_POPULATE_WRITE per 256 KiB",
            Way::Splice => "splice socket → pipe → file, pread to hash",
        }
    }
}

fn thread_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn check(ret: libc::c_int, what: &str) {
    if ret < 0 {
        panic!("{what}: {}", std::io::Error::last_os_error());
    }
}

/// Moves exactly `len` bytes from `from` (a pipe or a socket) to `to` with
/// `splice`; `to_off` is the file offset to write at (advanced by the
/// kernel), `None` when `to` is a pipe.
fn splice_exact(
    from: libc::c_int,
    to: libc::c_int,
    mut to_off: Option<&mut libc::loff_t>,
    len: usize,
    what: &str,
) {
    let mut moved = 0;
    while moved < len {
        let off = to_off
            .as_deref_mut()
            .map_or(std::ptr::null_mut(), |o| o as *mut libc::loff_t);
        // SAFETY: both descriptors are open for the call; `off` is null or
        // a valid loff_t the kernel advances.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                off,
                len - moved,
                libc::SPLICE_F_MOVE,
            )
        };
        assert!(n > 0, "splice {what}: {}", std::io::Error::last_os_error());
        moved += n as usize;
    }
}

/// SHA-1 of a file, read in 4 MiB parts.
fn file_digest(path: &std::path::Path) -> [u8; 20] {
    let mut file = File::open(path).unwrap();
    let mut buf = vec![0u8; 4 * 1024 * 1024];
    let mut hasher = Sha1::new();
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return hasher.finalize().into();
        }
        hasher.update(&buf[..n]);
    }
}

/// Receives `len` bytes from `sock` into `file` the given way; returns the
/// SHA-1 of the bytes.
fn receive(way: Way, sock: &mut TcpStream, file: &File, len: usize) -> [u8; 20] {
    let mut hasher = Sha1::new();
    match way {
        Way::RecvOnly | Way::Buffer => {
            let mut buf = vec![0u8; CHUNK];
            let mut at = 0;
            while at < len {
                let want = CHUNK.min(len - at);
                sock.read_exact(&mut buf[..want]).unwrap();
                if way == Way::Buffer {
                    hasher.update(&buf[..want]);
                    file.write_all_at(&buf[..want], at as u64).unwrap();
                }
                at += want;
            }
        }
        Way::Mmap | Way::MmapPopulate => {
            // SAFETY: a shared mapping of `len` bytes of a file at least that
            // long, unmapped below; nothing else maps or truncates it meanwhile.
            let map = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(map, libc::MAP_FAILED, "mmap failed");
            // SAFETY: the mapping is valid for `len` bytes until munmap.
            let bytes = unsafe { std::slice::from_raw_parts_mut(map.cast::<u8>(), len) };
            let mut at = 0;
            while at < len {
                let want = CHUNK.min(len - at);
                let part = &mut bytes[at..at + want];
                if way == Way::MmapPopulate {
                    // SAFETY: a page-aligned range inside the mapping.
                    let r = unsafe {
                        libc::madvise(
                            part.as_mut_ptr().cast(),
                            want,
                            23, /* MADV_POPULATE_WRITE */
                        )
                    };
                    check(r, "madvise(MADV_POPULATE_WRITE)");
                }
                sock.read_exact(part).unwrap();
                hasher.update(&*part);
                at += want;
            }
            // SAFETY: unmapping what was mapped above; `bytes` is not used after.
            unsafe { libc::munmap(map, len) };
        }
        Way::Splice => {
            let mut pipe = [0; 2];
            // SAFETY: pipe2 fills the two descriptors, closed below.
            check(unsafe { libc::pipe2(pipe.as_mut_ptr(), 0) }, "pipe2");
            // SAFETY: plain fcntl on the pipe just made.
            unsafe { libc::fcntl(pipe[1], libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
            let mut buf = vec![0u8; CHUNK];
            let mut at = 0usize;
            while at < len {
                let want = CHUNK.min(len - at);
                splice_exact(sock.as_raw_fd(), pipe[1], None, want, "from the socket");
                let mut off = at as libc::loff_t;
                splice_exact(
                    pipe[0],
                    file.as_raw_fd(),
                    Some(&mut off),
                    want,
                    "to the file",
                );
                file.read_exact_at(&mut buf[..want], at as u64).unwrap();
                hasher.update(&buf[..want]);
                at += want;
            }
            // SAFETY: closing the pipe made above.
            unsafe {
                libc::close(pipe[0]);
                libc::close(pipe[1]);
            }
        }
    }
    hasher.finalize().into()
}

/// One run: returns (wall seconds, receiver CPU seconds, digest).
fn run(way: Way, data: &[u8], path: &PathBuf, sends: usize) -> (f64, f64, [u8; 20]) {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    let len = data.len() * sends;
    // SAFETY: plain syscall on an open descriptor.
    check(
        unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) },
        "fallocate",
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut out = TcpStream::connect(addr).unwrap();
            for _ in 0..sends {
                out.write_all(data).unwrap();
            }
        });
        let (mut sock, _) = listener.accept().unwrap();
        let cpu0 = thread_cpu();
        let t = Instant::now();
        let digest = receive(way, &mut sock, &file, len);
        (t.elapsed().as_secs_f64(), thread_cpu() - cpu0, digest)
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    // 64 MiB of varied bytes, sent size/64 times.
    let block = 64 * 1024 * 1024;
    let sends = (args.size * 1024 * 1024).div_ceil(block).max(1);
    let mut data = vec![0u8; block];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    let mut whole = Sha1::new();
    for _ in 0..sends {
        whole.update(&data);
    }
    let expected: [u8; 20] = whole.finalize().into();
    let path = args.dir.join(format!("copy_bench.{}", std::process::id()));
    let mb = (block * sends) as f64 / 1e6;
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); Way::ALL.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); Way::ALL.len()];
    for round in 1..=args.rounds {
        for (i, way) in Way::ALL.iter().enumerate() {
            let (w, c, digest) = run(*way, &data, &path, sends);
            if *way != Way::RecvOnly {
                assert_eq!(digest, expected, "{}: wrong bytes hashed", way.name());
                let got = file_digest(&path);
                assert_eq!(got, expected, "{}: wrong bytes in the file", way.name());
            }
            eprintln!("round {round}: {:<48} {w:.3} s, CPU {c:.3} s", way.name());
            wall[i].push(w);
            cpu[i].push(c);
        }
    }
    let _ = std::fs::remove_file(&path);
    let (bw, bc) = (median(&mut wall[1].clone()), median(&mut cpu[1].clone()));
    println!(
        "\n### {:.0} MB received, hashed and written, {} round(s), medians\n",
        mb, args.rounds
    );
    println!("| way | MB/s | wall s | ratio to buffer | receiver CPU s | CPU ratio to buffer |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, way) in Way::ALL.iter().enumerate() {
        let w = median(&mut wall[i]);
        let c = median(&mut cpu[i]);
        println!(
            "| {} | {:.0} | {w:.3} | {:.2} | {c:.3} | {:.2} |",
            way.name(),
            mb / w,
            w / bw,
            c / bc
        );
    }
}

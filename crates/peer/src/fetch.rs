//! `peer fetch`: the seed's client/server protocol, client side.
//!
//! The server sends one frame: an 8-byte big-endian length, then the file.
//! The body is streamed to a temporary file beside OUT through a fixed buffer
//! (the length field never sizes an allocation), and the temporary file is
//! renamed to OUT only once exactly that many bytes have arrived. On any
//! failure, or on Ctrl-C, the temporary file is removed, so nothing that looks
//! complete is left behind.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

use lanio::{BadInput, EventWriter, Signals};

use crate::cli::FetchArgs;
use crate::events::{Done, Event, Progress as ProgressEvent};
use crate::output::FLUSH_AT_EXIT;
use crate::serve::mbit_per_s;

/// Receive buffer: every read lands here before it is written to disk.
const RECV_BUF: usize = 256 * 1024;
/// How often `--json` prints a `progress` event.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub async fn run(args: FetchArgs) -> anyhow::Result<()> {
    let connect_timeout = seconds_arg(args.connect_timeout, "--connect-timeout")?;
    let stall_timeout = seconds_arg(args.stall_timeout, "--stall-timeout")?;
    let (dir, name) = split_output(&args.output)?;

    let mut signals = Signals::install().context("installing the signal handlers")?;
    let events = EventWriter::stdout(args.json);
    let start = Instant::now();
    let fetch = Fetch {
        addr: &args.addr,
        output: &args.output,
        dir: &dir,
        name: &name,
        connect_timeout,
        stall_timeout,
        max_size: args.max_size,
        events: events.clone(),
        start,
    };
    // Dropping the transfer future on a signal drops its temporary file,
    // which removes it.
    let bytes = tokio::select! {
        r = fetch.run() => r?,
        _ = signals.recv() => return interrupted(&args.output),
    };
    let seconds = start.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        bytes as f64 / seconds
    } else {
        0.0
    };
    eprintln!(
        "fetched {bytes} bytes from {} into {} in {seconds:.3} s ({:.1} MB/s, {:.1} Mbit/s)",
        args.addr,
        args.output.display(),
        rate / 1e6,
        mbit_per_s(bytes, seconds)
    );
    events.emit(&Event::Done(Done::Fetch {
        bytes,
        seconds,
        rate,
        output: args.output.clone(),
    }));
    events.finish(FLUSH_AT_EXIT);
    Ok(())
}

fn interrupted(output: &Path) -> anyhow::Result<()> {
    eprintln!("interrupted: {} not written", output.display());
    Ok(())
}

/// Parses a timeout flag given in seconds.
pub(crate) fn seconds_arg(secs: f64, flag: &str) -> Result<Duration, BadInput> {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(BadInput(format!(
            "{flag} must be a positive number of seconds, not {secs}"
        ))),
    }
}

/// Splits OUT into the directory that will hold the temporary file and OUT's file name.
fn split_output(output: &Path) -> Result<(PathBuf, String), BadInput> {
    let bad = |why: &str| BadInput(format!("bad output path {}: {why}", output.display()));
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad("it does not end in a file name"))?
        .to_string();
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad("its directory does not exist"));
    }
    if output.is_dir() {
        return Err(bad("it is a directory"));
    }
    Ok((dir, name))
}

/// The server announced a file longer than `--max-size`.
#[derive(Debug, thiserror::Error)]
#[error("server {addr} announced {len} bytes, more than --max-size {max}")]
pub struct TooLarge {
    pub addr: String,
    pub len: u64,
    pub max: u64,
}

/// One download, from connecting to renaming the finished file.
struct Fetch<'a> {
    addr: &'a str,
    output: &'a Path,
    dir: &'a Path,
    name: &'a str,
    connect_timeout: Duration,
    stall_timeout: Duration,
    /// Longest file we accept (`--max-size`).
    max_size: Option<u64>,
    events: EventWriter<Event>,
    start: Instant,
}

impl Fetch<'_> {
    /// Returns the number of bytes received into OUT.
    async fn run(&self) -> anyhow::Result<u64> {
        let mut stream = timeout(self.connect_timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot connect to {}: no answer within {:?}",
                    self.addr,
                    self.connect_timeout
                )
            })?
            .with_context(|| format!("cannot connect to {}", self.addr))?;

        // The length is the server's to choose: it never sizes a buffer.
        let header = lanio::frame::read_header_async(&mut stream, u64::MAX);
        let len = match timeout(self.stall_timeout, header).await {
            Err(_) => bail!(
                "server {} sent no length within {:?}",
                self.addr,
                self.stall_timeout
            ),
            Ok(r) => r
                .with_context(|| format!("reading the length from {}", self.addr))?
                .with_context(|| {
                    format!("reading the length from {}: connection closed", self.addr)
                })?,
        };
        self.events.emit(&Event::Connected {
            addr: self.addr.to_string(),
            bytes: len,
        });
        // Refused before a byte is written: more than we accept, or than fits.
        if let Some(max) = self.max_size.filter(|&max| len > max) {
            return Err(TooLarge {
                addr: self.addr.to_string(),
                len,
                max,
            }
            .into());
        }
        crate::diskspace::ensure_room(self.dir, len)?;

        let mut part = PartFile::create(self.dir, self.name)?;
        let mut progress = Progress::new(len, &self.events, self.start);
        let mut buf = vec![0u8; RECV_BUF];
        let mut got = 0u64;
        while got < len {
            let want = (len - got).min(RECV_BUF as u64) as usize;
            let n = match timeout(self.stall_timeout, stream.read(&mut buf[..want])).await {
                Err(_) => bail!(
                    "stalled: no data from {} for {:?} after {got} of {len} bytes",
                    self.addr,
                    self.stall_timeout
                ),
                Ok(r) => r.with_context(|| {
                    format!("receiving from {} after {got} of {len} bytes", self.addr)
                })?,
            };
            if n == 0 {
                bail!(
                    "short stream: {} closed the connection after {got} of {len} bytes",
                    self.addr
                );
            }
            part.file
                .write_all(&buf[..n])
                .with_context(|| format!("writing {}", part.path.display()))?;
            got += n as u64;
            progress.update(got);
        }
        progress.finish();
        part.persist(self.output, len)?;
        Ok(len)
    }
}

/// The temporary file a download is written to; removed on drop unless persisted.
struct PartFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl PartFile {
    fn create(dir: &Path, name: &str) -> anyhow::Result<PartFile> {
        let path = dir.join(format!(".{name}.{}.part", std::process::id()));
        // Anything already at this name (a planted link included) is refused.
        let file = crate::durable::create_new(&path).with_context(|| {
            format!(
                "cannot create {} (something is already there, or the directory is not writable)",
                path.display()
            )
        })?;
        Ok(PartFile {
            path,
            file,
            keep: false,
        })
    }

    /// Renames the file to `output` if it holds exactly `len` bytes.
    fn persist(mut self, output: &Path, len: u64) -> anyhow::Result<()> {
        self.file.flush()?;
        let on_disk = self.file.metadata()?.len();
        if on_disk != len {
            bail!(
                "{} holds {on_disk} bytes, expected {len}",
                self.path.display()
            );
        }
        // Synced, renamed, the directory synced: OUT is whole after a crash.
        crate::durable::commit(&self.file, &self.path, output).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.path.display(),
                output.display()
            )
        })?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A progress bar on a terminal, `progress` events with `--json`, or nothing.
enum Progress {
    Bar(ProgressBar),
    Json {
        events: EventWriter<Event>,
        total: u64,
        start: Instant,
        last_at: Instant,
        last_bytes: u64,
    },
    Quiet,
}

impl Progress {
    fn new(total: u64, events: &EventWriter<Event>, start: Instant) -> Progress {
        if events.is_json() {
            let now = Instant::now();
            Progress::Json {
                events: events.clone(),
                total,
                start,
                last_at: now,
                last_bytes: 0,
            }
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("valid template"),
            );
            Progress::Bar(bar)
        } else {
            Progress::Quiet
        }
    }

    fn update(&mut self, got: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(got),
            Progress::Json {
                events,
                total,
                start,
                last_at,
                last_bytes,
            } => {
                let now = Instant::now();
                let dt = now.duration_since(*last_at);
                if dt >= PROGRESS_EVERY {
                    let rate = (got - *last_bytes) as f64 / dt.as_secs_f64();
                    events.emit(&Event::Progress(ProgressEvent::Fetch {
                        bytes: got,
                        total: *total,
                        rate,
                        seconds: now.duration_since(*start).as_secs_f64(),
                    }));
                    *last_at = now;
                    *last_bytes = got;
                }
            }
            Progress::Quiet => {}
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

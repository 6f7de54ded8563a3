//! `peer serve`: the seed's client/server protocol, server side.
//!
//! Every client that connects gets one frame: the file's length as an 8-byte
//! big-endian integer ([`wire::FRAME_HEADER_LEN`]), then the file's bytes.
//! Each client runs in its own task with its own view of the file, so a slow
//! or vanished client only ends its own transfer.
//!
//! The body is sent with `sendfile(2)` straight from the page cache to the
//! socket (zero-copy, see [`crate::zerocopy`]). `--copy` switches to a plain
//! user-space copy with a fixed buffer, kept as the baseline that the
//! zero-copy path is measured against.
//!
//! A stranger's connection costs little and not for long: at most
//! `--max-clients` are served at once and `--max-per-ip` from one address
//! (more are closed at once), every write has a deadline (`--write-timeout`,
//! so a client that never reads loses its slot), and when `accept` fails (out
//! of descriptors, say) the loop backs off and logs one line per period.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use lanio::{BadInput, EventWriter, Signals};

use crate::cli::ServeArgs;
use crate::events::Event;
use crate::output::FLUSH_AT_EXIT;

/// Buffer of the user-space copy path.
const COPY_BUF: usize = 256 * 1024;
/// How long a finished transfer waits for the client to close the connection.
const LINGER: Duration = Duration::from_secs(60);
/// The slice of the file that must reach the socket within the write deadline.
const DEADLINE_SLICE: u64 = 1024 * 1024;
/// At most one log line per this period about refused connections or
/// failing accepts.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// Backoff after a failed accept: the first wait, doubled up to the last.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// How the file body reaches the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    SendFile,
    Copy,
}

/// What the server needs to know about every connection.
struct Shared {
    path: PathBuf,
    method: Method,
    events: EventWriter<Event>,
    write_timeout: Duration,
    slots: Mutex<Slots>,
}

/// The connections being served, in total and per IP address.
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a new connection was closed without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Full,
    TooManyFromIp,
}

impl Slots {
    /// Takes a slot for a client from `ip`, within the caps.
    fn take(&mut self, ip: IpAddr, max_total: usize, max_per_ip: usize) -> Result<(), Refusal> {
        if self.total >= max_total {
            return Err(Refusal::Full);
        }
        let n = self.per_ip.entry(ip).or_default();
        if *n >= max_per_ip {
            return Err(Refusal::TooManyFromIp);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    fn give_back(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// A slot held by a client's task, given back when the task ends.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.shared.slots).give_back(self.ip);
    }
}

fn lock(slots: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts things that happen often and logs them at most once per
/// [`LOG_EVERY`], with the count since the last line.
struct Throttled {
    what: &'static str,
    count: u64,
    last: Option<Instant>,
}

impl Throttled {
    fn new(what: &'static str) -> Throttled {
        Throttled {
            what,
            count: 0,
            last: None,
        }
    }

    fn note(&mut self, detail: impl std::fmt::Display) {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            tracing::warn!(
                "{} (x{} since the last line): {detail}",
                self.what,
                self.count
            );
            self.count = 0;
            self.last = Some(now);
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Fail early, as bad input, if the file cannot be served at all.
    let meta = std::fs::metadata(&args.file)
        .map_err(|e| BadInput(format!("cannot serve {}: {e}", args.file.display())))?;
    if !meta.is_file() {
        return Err(BadInput(format!(
            "cannot serve {}: not a regular file",
            args.file.display()
        ))
        .into());
    }
    let write_timeout = crate::fetch::seconds_arg(args.write_timeout, "--write-timeout")?;
    if args.max_clients == 0 || args.max_per_ip == 0 {
        return Err(BadInput("--max-clients and --max-per-ip must be at least 1".into()).into());
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("local address")?;
    // Handlers first: whoever reads "listening" may signal us at once.
    let mut signals = Signals::install().context("installing the signal handlers")?;
    let events = EventWriter::stdout(args.json);
    eprintln!("listening on {local}");
    events.emit(&Event::Listening {
        addr: local.to_string(),
        file: args.file.display().to_string(),
        bytes: meta.len(),
    });
    let shared = Arc::new(Shared {
        path: args.file,
        method: if args.copy {
            Method::Copy
        } else {
            Method::SendFile
        },
        events: events.clone(),
        write_timeout,
        slots: Mutex::new(Slots::default()),
    });

    let mut refused = Throttled::new("refused connections");
    let mut failed = Throttled::new("accept failed, backing off");
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    backoff = ACCEPT_BACKOFF.0;
                    let taken = lock(&shared.slots).take(addr.ip(), args.max_clients, args.max_per_ip);
                    match taken {
                        Ok(()) => {
                            let slot = Slot { shared: shared.clone(), ip: addr.ip() };
                            tokio::spawn(async move {
                                serve_client(stream, addr, &slot.shared).await;
                                drop(slot);
                            });
                        }
                        // Dropping the stream closes it: no task, no buffer.
                        Err(why) => refused.note(format_args!("{addr}: {why:?}")),
                    }
                }
                // Out of descriptors and similar: keep serving the clients we
                // have, and retry after a pause instead of spinning.
                Err(e) => {
                    failed.note(&e);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = signals.recv() => break,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                }
            },
            _ = signals.recv() => break,
        }
    }
    eprintln!("shutting down");
    events.finish(FLUSH_AT_EXIT);
    Ok(())
}

/// Sends the file to one client and reports how it went.
async fn serve_client(mut stream: TcpStream, addr: SocketAddr, shared: &Shared) {
    let start = Instant::now();
    let mut sent = 0u64;
    let result = send_file(&mut stream, shared, &mut sent).await;
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            eprintln!(
                "{addr}: sent {sent} bytes in {seconds:.3} s ({:.1} Mbit/s)",
                mbit_per_s(sent, seconds)
            );
            shared.events.emit(&Event::ClientDone {
                addr: addr.to_string(),
                bytes: sent,
                seconds,
            });
        }
        Err(e) => {
            eprintln!("{addr}: transfer aborted after {sent} bytes: {e}");
            shared.events.emit(&Event::ClientFailed {
                addr: addr.to_string(),
                bytes: sent,
                seconds,
                error: e.to_string(),
            });
        }
    }
}

/// Writes the frame header and the file body; `sent` counts body bytes.
async fn send_file(stream: &mut TcpStream, shared: &Shared, sent: &mut u64) -> io::Result<()> {
    // Each client opens the file itself, so it gets its own offset and a
    // consistent length even if several clients are being served.
    let file = File::open(&shared.path)?;
    let len = file.metadata()?.len();
    let deadline = shared.write_timeout;
    stream.set_nodelay(true)?;
    within(deadline, stream.write_all(&lanio::frame::header(len))).await?;
    match shared.method {
        Method::SendFile => {
            // Slice by slice, each within the deadline.
            while *sent < len {
                let slice = (len - *sent).min(DEADLINE_SLICE);
                let mut slice_sent = 0;
                let r = within(
                    deadline,
                    crate::zerocopy::sendfile_all(stream, &file, *sent, slice, &mut slice_sent),
                )
                .await;
                *sent += slice_sent;
                r.map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => file_shrank(len, *sent),
                    _ => e,
                })?;
            }
        }
        Method::Copy => send_body_copy(stream, file, len, sent, deadline).await?,
    }
    stream.shutdown().await?;
    linger_until_closed(stream).await;
    Ok(())
}

/// Runs a write, failing with `TimedOut` if it takes longer than `deadline`.
async fn within<T>(
    deadline: Duration,
    write: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(deadline, write).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("write deadline: the client read nothing for {deadline:?}"),
        )
    })?
}

/// After our FIN, waits (bounded) for the client to close its side, reading
/// and discarding anything it sends. Closing a socket with unread input makes
/// the kernel send RST, which can destroy the end of the file still queued in
/// our send buffer; waiting also makes `client_done` mean "delivered".
async fn linger_until_closed(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Moves `len` bytes of `file` to the socket through a fixed user-space buffer.
async fn send_body_copy(
    stream: &mut TcpStream,
    file: File,
    len: u64,
    sent: &mut u64,
    deadline: Duration,
) -> io::Result<()> {
    let mut file = tokio::fs::File::from_std(file);
    let mut buf = vec![0u8; COPY_BUF];
    while *sent < len {
        let want = (len - *sent).min(COPY_BUF as u64) as usize;
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(file_shrank(len, *sent));
        }
        within(deadline, stream.write_all(&buf[..n])).await?;
        *sent += n as u64;
    }
    Ok(())
}

fn file_shrank(len: u64, sent: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("file shrank while being served: {sent} of {len} bytes read"),
    )
}

pub(crate) fn mbit_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds / 1e6
    } else {
        0.0
    }
}

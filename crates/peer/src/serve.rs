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

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    });

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move { serve_client(stream, addr, &shared).await });
                }
                // Out of descriptors and similar: keep serving the clients we have.
                Err(e) => tracing::warn!("accept failed: {e}"),
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
    let result = send_file(&mut stream, &shared.path, shared.method, &mut sent).await;
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
async fn send_file(
    stream: &mut TcpStream,
    path: &Path,
    method: Method,
    sent: &mut u64,
) -> io::Result<()> {
    // Each client opens the file itself, so it gets its own offset and a
    // consistent length even if several clients are being served.
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    stream.set_nodelay(true)?;
    stream.write_all(&lanio::frame::header(len)).await?;
    match method {
        Method::SendFile => crate::zerocopy::sendfile_all(stream, &file, 0, len, sent)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => file_shrank(len, *sent),
                _ => e,
            })?,
        Method::Copy => send_body_copy(stream, file, len, sent).await?,
    }
    stream.shutdown().await?;
    linger_until_closed(stream).await;
    Ok(())
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
) -> io::Result<()> {
    let mut file = tokio::fs::File::from_std(file);
    let mut buf = vec![0u8; COPY_BUF];
    while *sent < len {
        let want = (len - *sent).min(COPY_BUF as u64) as usize;
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(file_shrank(len, *sent));
        }
        stream.write_all(&buf[..n]).await?;
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

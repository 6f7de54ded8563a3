//! Zero-copy sends: file bytes go from the page cache to a socket with
//! `sendfile(2)`, driven by tokio's readiness so the socket stays
//! non-blocking and a full send buffer parks the task instead of a thread.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Largest chunk handed to one `sendfile` call.
const CHUNK: usize = 4 * 1024 * 1024;

/// Sends `bytes` with `MSG_MORE`, telling the kernel more data follows at
/// once, so a small header and the body that follows share segments.
pub async fn send_more(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    while !bytes.is_empty() {
        stream.writable().await?;
        let res = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: `fd` is open while `stream` is borrowed and `bytes` is a
            // valid readable slice of the given length.
            let n = unsafe {
                libc::send(
                    fd,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match res {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` starting at `offset` to `stream`. `sent`
/// counts the bytes sent so far (also when an error cuts the transfer short).
/// A file shorter than `offset + len` is an `UnexpectedEof` error.
pub async fn sendfile_all(
    stream: &TcpStream,
    file: &File,
    offset: u64,
    len: u64,
    sent: &mut u64,
) -> io::Result<()> {
    let (sock, src) = (stream.as_raw_fd(), file.as_raw_fd());
    let mut off = offset as libc::off_t;
    while *sent < len {
        let want = ((len - *sent) as usize).min(CHUNK);
        stream.writable().await?;
        // `try_io` clears readiness on WouldBlock, so the next `writable()` waits for room.
        let res = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors stay open for the call (borrowed), and
            // `off` is a valid off_t the kernel advances.
            let n = unsafe { libc::sendfile(sock, src, &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match res {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ended after {} of {len} bytes", *sent),
                ))
            }
            Ok(n) => *sent += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

//! A raw, blocking client of the tracker protocol, for tests that speak to
//! a tracker frame by frame: good requests, bad ones, half-sent frames,
//! and connections the tracker is expected to close.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lanio::frame;
use wire::tracker::AnnounceResponse;

use crate::fixture::read_frame;

/// Longest wait for anything the tracker should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// Largest reply a test accepts from the tracker.
const MAX_REPLY: u64 = 64 << 20;

/// An announce body for `port` / `peer_id`, plus extra JSON members
/// (`extra` is either empty or starts with a comma).
pub fn announce_body(port: u16, peer_id: &str, extra: &str) -> String {
    format!(r#"{{"port":{port},"peer_id":"{peer_id}"{extra}}}"#)
}

/// One framed connection to the tracker.
pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    /// Connects; reads and writes then wait at most [`WAIT`].
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_within(addr, WAIT)
    }

    /// Connects; reads and writes then wait at most `timeout`.
    pub fn connect_within(addr: SocketAddr, timeout: Duration) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to tracker");
        stream.set_read_timeout(Some(timeout)).unwrap();
        stream.set_write_timeout(Some(timeout)).unwrap();
        Client { stream }
    }

    /// Writes bytes as they are: for headers and frames that are wrong on purpose.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to tracker");
    }

    /// Writes one frame holding `body`.
    pub fn send_frame(&mut self, body: &[u8]) {
        frame::write_frame(&mut self.stream, body).expect("write to tracker");
    }

    /// Reads one frame body.
    pub fn recv(&mut self) -> std::io::Result<Vec<u8>> {
        read_frame(&mut self.stream, MAX_REPLY)
    }

    /// Sends a request body and returns the raw reply body.
    pub fn request_raw(&mut self, body: &[u8]) -> Vec<u8> {
        self.send_frame(body);
        self.recv().expect("reply from tracker")
    }

    /// Sends a request body and parses the reply as an announce response.
    pub fn request(&mut self, body: &(impl AsRef<[u8]> + ?Sized)) -> AnnounceResponse {
        let reply = self.request_raw(body.as_ref());
        AnnounceResponse::parse(&reply).unwrap_or_else(|e| {
            panic!(
                "reply {:?} is not a response: {e}",
                String::from_utf8_lossy(&reply)
            )
        })
    }

    /// Asserts the request is refused with error_code 1 and a message containing `needle`.
    pub fn expect_error(&mut self, body: &[u8], needle: &str) -> String {
        let reply = self.request_raw(body);
        let r = AnnounceResponse::parse(&reply).expect("error reply parses");
        assert_eq!(r.error_code, 1, "{body:?} was accepted: {r:?}");
        assert!(
            r.message.contains(needle),
            "error message {:?} does not name {needle:?}",
            r.message
        );
        r.message
    }

    /// Waits (at most [`WAIT`]) for the tracker to close this connection;
    /// returns any frame bodies that came first.
    pub fn expect_closed(&mut self) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + WAIT;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        // A close with our requests still unread is a reset, which may drop
        // reply bytes already in flight; only a clean close must end on a
        // frame boundary.
        let mut reset = false;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    reset = true;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("connection not closed by the tracker: {e}"),
            }
            assert!(Instant::now() < deadline, "connection not closed in time");
        }
        let mut frames = Vec::new();
        let mut rest = &bytes[..];
        let on_boundary = loop {
            match frame::read_frame(&mut rest, u64::MAX) {
                Ok(Some(body)) => frames.push(body),
                Ok(None) => break true,
                Err(_) => break false,
            }
        };
        assert!(
            reset || on_boundary,
            "the tracker closed in the middle of a frame"
        );
        frames
    }
}

/// A well-behaved client on a fresh connection gets a proper answer.
pub fn assert_serves(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let r = c.request(&announce_body(
        6001,
        "well-behaved",
        r#","event":"started""#,
    ));
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.message, "started ACK");
    assert!(r.interval.is_some());
}

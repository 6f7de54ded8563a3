//! Shared by the `tests/tracker_*.rs` integration tests: start a real
//! `tracker` process and talk framed JSON to it over blocking sockets.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lanswarm::process::{command, Proc};
use wire::tracker::AnnounceResponse;

/// Longest wait for anything the tracker should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts `tracker --listen 127.0.0.1:0 --json ARGS…` and waits for its
/// `listening` event; returns the process and its address.
pub fn start(args: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = command("tracker");
    cmd.args(["--listen", "127.0.0.1:0", "--json"]).args(args);
    cmd.env("RUST_LOG", "info");
    let mut proc = Proc::spawn("tracker", cmd);
    let event = proc.expect_event("listening", WAIT);
    let addr = event["addr"]
        .as_str()
        .expect("listening event has addr")
        .parse()
        .expect("addr parses");
    (proc, addr)
}

/// An announce body for `port` / `peer_id`, plus extra JSON members
/// (`extra` is either empty or starts with a comma).
pub fn announce(port: u16, peer_id: &str, extra: &str) -> String {
    format!(r#"{{"port":{port},"peer_id":"{peer_id}"{extra}}}"#)
}

/// One framed connection to the tracker.
pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to tracker");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        Client { stream }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to tracker");
    }

    pub fn send_frame(&mut self, body: &[u8]) {
        let mut frame = (body.len() as u64).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        self.send_raw(&frame);
    }

    /// Reads one frame body.
    pub fn recv(&mut self) -> std::io::Result<Vec<u8>> {
        let mut header = [0u8; 8];
        self.stream.read_exact(&mut header)?;
        let len = u64::from_be_bytes(header);
        assert!(len < 64 << 20, "tracker sent a {len}-byte frame");
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(body)
    }

    /// Sends a request body and returns the raw reply body.
    pub fn request_raw(&mut self, body: &[u8]) -> Vec<u8> {
        self.send_frame(body);
        self.recv().expect("reply from tracker")
    }

    /// Sends a request body and parses the reply as an announce response.
    pub fn request(&mut self, body: &str) -> AnnounceResponse {
        let reply = self.request_raw(body.as_bytes());
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
        while rest.len() >= 8 {
            let len = u64::from_be_bytes(rest[..8].try_into().unwrap()) as usize;
            if rest.len() < 8 + len {
                break;
            }
            frames.push(rest[8..8 + len].to_vec());
            rest = &rest[8 + len..];
        }
        assert!(
            reset || rest.is_empty(),
            "the tracker closed in the middle of a frame"
        );
        frames
    }
}

/// A well-behaved client on a fresh connection gets a proper answer.
pub fn assert_serves(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let r = c.request(&announce(6001, "well-behaved", r#","event":"started""#));
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.message, "started ACK");
    assert!(r.interval.is_some());
}

//! A blocking HTTP/1 client for the tracker's web server (`tracker --http`),
//! on hyper: plain requests, and an event stream read one message at a time.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// A whole answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Sends one request on a fresh connection; the answer's head and the
/// connection, or an error message.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> Result<hyper::Response<Incoming>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request {method} {path}: {e}"))?;
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("{method} {path}: {e}"))
}

/// `method path` on the server at `addr`, waiting at most `timeout` for the
/// whole answer.
pub fn request(addr: SocketAddr, method: &str, path: &str, timeout: Duration) -> Reply {
    runtime().block_on(async {
        let exchange = async {
            let response = send(addr, method, path).await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the body of {path}: {e}"))?
                .to_bytes()
                .to_vec();
            Ok::<_, String>(Reply {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("{method} {path} on {addr}: no answer within {timeout:?}"),
        }
    })
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Reply {
    request(addr, "GET", path, timeout)
}

/// An open `/api/events` stream.
pub struct EventStream {
    rt: Runtime,
    body: Incoming,
    /// Text received and not yet split into messages.
    pending: String,
}

/// What opening an event stream gave.
pub enum Opened {
    /// 200: messages follow.
    Stream(EventStream),
    /// Anything else, read whole.
    Refused(Reply),
}

impl EventStream {
    /// `GET path` and, on 200, the stream (subscribed once this returns).
    pub fn open(addr: SocketAddr, path: &str, timeout: Duration) -> Opened {
        let rt = runtime();
        let response = rt
            .block_on(async { tokio::time::timeout(timeout, send(addr, "GET", path)).await })
            .unwrap_or_else(|_| panic!("GET {path}: no answer within {timeout:?}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status != 200 {
            let body = rt
                .block_on(response.into_body().collect())
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            return Opened::Refused(Reply {
                status,
                headers,
                body,
            });
        }
        Opened::Stream(EventStream {
            rt,
            body: response.into_body(),
            pending: String::new(),
        })
    }

    /// The `data` of the next message (comments and keep-alives skipped),
    /// or `None` when the stream ends or nothing comes within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if !data.is_empty() {
                    return Some(data.join("\n"));
                }
                continue;
            }
            let frame = self
                .rt
                .block_on(async { tokio::time::timeout_at(deadline, self.body.frame()).await })
                .ok()??
                .ok()?;
            if let Ok(chunk) = frame.into_data() {
                self.pending.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
    }

    /// The next message that is JSON with `"event": name`, skipping others.
    pub fn next_event(&mut self, name: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let data = self.next(left)?;
            let value: serde_json::Value = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"));
            if value["event"] == name {
                return Some(value);
            }
        }
    }
}

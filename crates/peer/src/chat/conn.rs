//! One TCP connection to another member: the hello exchange, then
//! messages both ways, framed with our 8-byte length.
//!
//! Each side sends its hello at once and must receive the other's, for the
//! same room, within [`HELLO_TIMEOUT`]. The task then reports what arrives
//! to the room's task ([`Inbound`]) and writes what the room gives it
//! (its outbox). A frame over [`MAX_CHAT_FRAME`], a body that is not a chat
//! message or a write that stalls for [`WRITE_TIMEOUT`] closes the
//! connection; what the messages mean (a second hello, a forged name) is
//! the room's to judge. The room closes it by dropping the outbox sender;
//! what is already in the outbox is written first, so a `bye` gets out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::codec::Framed;
use wire::chat::{ChatMessage, MAX_CHAT_FRAME};
use wire::FrameCodec;

use super::room::ConnId;

/// How long the other side has to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one write may wait for the other side to read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting to be written on one connection, at most. A member
/// that lets more pile up is too slow and is disconnected.
pub const OUTBOX: usize = 512;

/// What a connection tells the room.
#[derive(Debug)]
pub enum Inbound {
    /// The other side's hello arrived: the room decides.
    Hello {
        conn: ConnId,
        name: String,
        addr: SocketAddr,
    },
    /// The connection ended before a hello was accepted.
    Refused {
        conn: ConnId,
        addr: SocketAddr,
        reason: String,
    },
    /// A message after the hello.
    Message { conn: ConnId, msg: ChatMessage },
    /// The connection ended.
    Closed { conn: ConnId, reason: String },
}

/// Who we are, for our hello.
#[derive(Debug)]
pub struct Me {
    pub name: String,
    pub room: String,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("no hello within {0:?}")]
    NoHello(Duration),
    #[error("closed before its hello")]
    ClosedEarly,
    #[error("first message is not a hello")]
    NotHello,
    #[error("hello for room {0:?}, not ours")]
    OtherRoom(String),
    #[error("bad frame: {0}")]
    Frame(#[from] wire::FrameError),
    #[error("{0}")]
    Message(#[from] wire::chat::ChatError),
    #[error("write stalled for {0:?}")]
    WriteStalled(Duration),
    #[error("connection closed")]
    Eof,
    #[error("closed by us")]
    Dropped,
}

type Stream = Framed<TcpStream, FrameCodec>;

/// Runs one connection to its end, reporting to `room`.
pub async fn run(
    conn: ConnId,
    stream: TcpStream,
    addr: SocketAddr,
    me: Arc<Me>,
    room: mpsc::Sender<Inbound>,
    outbox: mpsc::Receiver<ChatMessage>,
) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, FrameCodec::new(MAX_CHAT_FRAME));
    let name = match handshake(&mut framed, &me).await {
        Ok(name) => name,
        Err(e) => {
            let reason = e.to_string();
            let _ = room.send(Inbound::Refused { conn, addr, reason }).await;
            return;
        }
    };
    if room
        .send(Inbound::Hello { conn, name, addr })
        .await
        .is_err()
    {
        return;
    }
    let end = converse(conn, &mut framed, &room, outbox).await;
    let _ = timeout(WRITE_TIMEOUT, SinkExt::<Bytes>::close(&mut framed)).await;
    let reason = end.to_string();
    let _ = room.send(Inbound::Closed { conn, reason }).await;
}

async fn send(framed: &mut Stream, msg: &ChatMessage) -> Result<(), End> {
    match timeout(WRITE_TIMEOUT, framed.send(Bytes::from(msg.encode()))).await {
        Ok(result) => result.map_err(End::Frame),
        Err(_) => Err(End::WriteStalled(WRITE_TIMEOUT)),
    }
}

async fn next(framed: &mut Stream) -> Result<ChatMessage, End> {
    match framed.next().await {
        Some(frame) => Ok(ChatMessage::decode(&frame?)?),
        None => Err(End::Eof),
    }
}

/// Sends our hello and reads theirs; the name it gives.
async fn handshake(framed: &mut Stream, me: &Me) -> Result<String, End> {
    let hello = ChatMessage::Hello {
        name: me.name.clone(),
        room: me.room.clone(),
    };
    send(framed, &hello).await?;
    let first = match timeout(HELLO_TIMEOUT, next(framed)).await {
        Ok(Ok(msg)) => msg,
        Ok(Err(End::Eof)) => return Err(End::ClosedEarly),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(End::NoHello(HELLO_TIMEOUT)),
    };
    match first {
        ChatMessage::Hello { name, room } if room == me.room => Ok(name),
        ChatMessage::Hello { room, .. } => Err(End::OtherRoom(lanio::escape::escape_str(&room))),
        _ => Err(End::NotHello),
    }
}

/// Messages both ways until either side ends it.
async fn converse(
    conn: ConnId,
    framed: &mut Stream,
    room: &mpsc::Sender<Inbound>,
    mut outbox: mpsc::Receiver<ChatMessage>,
) -> End {
    loop {
        tokio::select! {
            msg = outbox.recv() => match msg {
                Some(msg) => {
                    if let Err(e) = send(framed, &msg).await {
                        return e;
                    }
                }
                None => return End::Dropped,
            },
            got = next(framed) => match got {
                Ok(msg) => {
                    if room.send(Inbound::Message { conn, msg }).await.is_err() {
                        return End::Dropped;
                    }
                }
                Err(e) => return e,
            },
        }
    }
}

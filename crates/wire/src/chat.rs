//! `peer chat`: rooms, names, and the messages members send each other.
//!
//! A room is a tracker swarm whose info hash is SHA-1 of `lanswarm-chat/`
//! followed by the room's name ([`room_hash`]). Members announce with the
//! optional key `name` and connect to each other directly over TCP; each
//! frame (our 8-byte length, then the body) carries one UTF-8 JSON object
//! tagged on `"type"`:
//!
//! | type | keys | meaning |
//! |---|---|---|
//! | `hello` | `name`, `room` | first message each way: who I am, which room |
//! | `say` | `seq`, `text`, `from`? | a line for the whole room |
//! | `whisper` | `seq`, `text`, `from`? | a line for the receiver alone |
//! | `ack` | `seq` | the `say` or `whisper` `seq` was shown |
//! | `bye` | `from`? | I am leaving (no queue is kept for me) |
//!
//! `seq` is the sender's own counter, increasing over all it sends (it
//! starts at the microseconds since the Unix epoch, so a restarted member's
//! numbers stay above its earlier ones). `from`, when present, must be the
//! name the connection's `hello` gave; receivers drop a message that claims
//! another name. Unknown keys are ignored.
//!
//! Limits, checked by [`ChatMessage::decode`] before anything is kept: a body
//! of at most [`MAX_CHAT_FRAME`] bytes, names and rooms of 1 to [`MAX_NAME`]
//! bytes without control characters ([`validate_name`]), text of at most
//! [`MAX_TEXT`] bytes. Text may hold control characters; receivers escape
//! them before printing.

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::ids::InfoHash;

/// What a room's info hash is computed over, before the room's name.
pub const ROOM_PREFIX: &str = "lanswarm-chat/";
/// The room members join when they name none.
pub const DEFAULT_ROOM: &str = "lobby";
/// Longest name or room name, in bytes.
pub const MAX_NAME: usize = 64;
/// Longest line of text, in bytes.
pub const MAX_TEXT: usize = 4096;
/// Longest chat frame body: a maximal message with every string escaped
/// fits easily; anything longer closes the connection.
pub const MAX_CHAT_FRAME: usize = 32 * 1024;
/// The `proto` a chat member announces: it speaks these messages over TCP.
/// Room entries without `proto` are the seed's UDP clients.
pub const CHAT_PROTO: u32 = 1;

/// The swarm that stands for `room`: SHA-1 of `lanswarm-chat/ROOM`.
pub fn room_hash(room: &str) -> InfoHash {
    let mut h = Sha1::new();
    h.update(ROOM_PREFIX.as_bytes());
    h.update(room.as_bytes());
    InfoHash(h.finalize().into())
}

/// Why a name (or a room's name) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is {0} bytes long, more than {MAX_NAME}")]
    TooLong(usize),
    #[error("holds a control or bidirectional-text character at byte {0}")]
    Control(usize),
}

/// Checks a member's or a room's name: 1 to [`MAX_NAME`] bytes, no control
/// characters.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    match name
        .char_indices()
        .find(|(_, c)| crate::torrent::is_unprintable(*c))
    {
        Some((at, _)) => Err(NameError::Control(at)),
        None => Ok(()),
    }
}

/// One message between two members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatMessage {
    /// The first message on a connection, from each side.
    Hello { name: String, room: String },
    /// A line for the whole room.
    Say {
        seq: u64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// A line for the receiver alone.
    Whisper {
        seq: u64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// The message `seq` was received and shown.
    Ack { seq: u64 },
    /// The sender leaves the room.
    Bye {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
}

/// Why a chat frame was refused. Every one of them closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("chat frame of {0} bytes exceeds {MAX_CHAT_FRAME}")]
    TooLarge(usize),
    #[error("not a chat message: {0}")]
    Malformed(String),
    #[error("name {0}")]
    Name(NameError),
    #[error("room name {0}")]
    Room(NameError),
    #[error("text of {0} bytes exceeds {MAX_TEXT}")]
    TextTooLong(usize),
}

impl ChatMessage {
    /// Parses and checks one frame body.
    pub fn decode(body: &[u8]) -> Result<ChatMessage, ChatError> {
        if body.len() > MAX_CHAT_FRAME {
            return Err(ChatError::TooLarge(body.len()));
        }
        let msg: ChatMessage = serde_json::from_slice(body).map_err(|e| {
            let mut text = e.to_string();
            text.truncate(200);
            ChatError::Malformed(text)
        })?;
        msg.validate()?;
        Ok(msg)
    }

    /// The frame body (JSON).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a chat message always serialises")
    }

    /// Checks the limits; [`ChatMessage::decode`] does it for received ones.
    pub fn validate(&self) -> Result<(), ChatError> {
        let check_from = |from: &Option<String>| match from {
            Some(name) => validate_name(name).map_err(ChatError::Name),
            None => Ok(()),
        };
        match self {
            ChatMessage::Hello { name, room } => {
                validate_name(name).map_err(ChatError::Name)?;
                validate_name(room).map_err(ChatError::Room)
            }
            ChatMessage::Say { text, from, .. } | ChatMessage::Whisper { text, from, .. } => {
                if text.len() > MAX_TEXT {
                    return Err(ChatError::TextTooLong(text.len()));
                }
                check_from(from)
            }
            ChatMessage::Ack { .. } => Ok(()),
            ChatMessage::Bye { from } => check_from(from),
        }
    }

    /// The name a message claims to come from, if it says.
    pub fn claimed_name(&self) -> Option<&str> {
        match self {
            ChatMessage::Hello { name, .. } => Some(name),
            ChatMessage::Say { from, .. }
            | ChatMessage::Whisper { from, .. }
            | ChatMessage::Bye { from } => from.as_deref(),
            ChatMessage::Ack { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn room_hash_is_sha1_of_prefix_and_name() {
        // SHA-1("lanswarm-chat/lobby"), computed independently.
        let expected: InfoHash = crate::ids::to_hex(&Sha1::digest(b"lanswarm-chat/lobby"))
            .parse()
            .unwrap();
        assert_eq!(room_hash(DEFAULT_ROOM), expected);
        assert_ne!(room_hash("lobby"), room_hash("lobby2"));
    }

    #[test]
    fn documented_json() {
        let cases = [
            (
                ChatMessage::Hello {
                    name: "ann".into(),
                    room: "lobby".into(),
                },
                json!({"type": "hello", "name": "ann", "room": "lobby"}),
            ),
            (
                ChatMessage::Say {
                    seq: 7,
                    text: "hi".into(),
                    from: Some("ann".into()),
                },
                json!({"type": "say", "seq": 7, "text": "hi", "from": "ann"}),
            ),
            (
                ChatMessage::Whisper {
                    seq: 8,
                    text: "psst".into(),
                    from: None,
                },
                json!({"type": "whisper", "seq": 8, "text": "psst"}),
            ),
            (
                ChatMessage::Ack { seq: 7 },
                json!({"type": "ack", "seq": 7}),
            ),
            (ChatMessage::Bye { from: None }, json!({"type": "bye"})),
        ];
        for (msg, expected) in cases {
            let body = msg.encode();
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                expected
            );
            assert_eq!(ChatMessage::decode(&body).unwrap(), msg);
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("ann"), Ok(()));
        assert_eq!(validate_name("grüße aus köln"), Ok(()));
        assert_eq!(validate_name("127.0.0.1:4242"), Ok(()));
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"x".repeat(65)), Err(NameError::TooLong(65)));
        assert_eq!(validate_name(&"x".repeat(64)), Ok(()));
        assert_eq!(validate_name("a\x1b[2J"), Err(NameError::Control(1)));
        assert_eq!(validate_name("a\u{85}"), Err(NameError::Control(1)));
        // A bidi override would make the name display as another.
        assert_eq!(validate_name("ab\u{202e}c"), Err(NameError::Control(2)));
    }

    #[test]
    fn bad_messages_have_their_errors() {
        let long = "x".repeat(MAX_TEXT + 1);
        type Check = fn(&ChatError) -> bool;
        let cases: Vec<(Vec<u8>, Check)> = vec![
            (b"{nope".to_vec(), |e| matches!(e, ChatError::Malformed(_))),
            (br#"{"type":"shout","text":"x"}"#.to_vec(), |e| {
                matches!(e, ChatError::Malformed(_))
            }),
            (br#"{"type":"say","text":"x"}"#.to_vec(), |e| {
                matches!(e, ChatError::Malformed(_))
            }),
            (
                br#"{"type":"hello","name":"","room":"lobby"}"#.to_vec(),
                |e| *e == ChatError::Name(NameError::Empty),
            ),
            (
                br#"{"type":"hello","name":"a","room":"l\u0007"}"#.to_vec(),
                |e| *e == ChatError::Room(NameError::Control(1)),
            ),
            (
                format!(r#"{{"type":"say","seq":1,"text":"{long}"}}"#).into_bytes(),
                |e| *e == ChatError::TextTooLong(MAX_TEXT + 1),
            ),
            (br#"{"type":"bye","from":"\n"}"#.to_vec(), |e| {
                *e == ChatError::Name(NameError::Control(0))
            }),
            (vec![b' '; MAX_CHAT_FRAME + 1], |e| {
                *e == ChatError::TooLarge(MAX_CHAT_FRAME + 1)
            }),
        ];
        for (body, ok) in cases {
            let err = ChatMessage::decode(&body).unwrap_err();
            assert!(ok(&err), "{}: {err}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn a_maximal_message_fits_the_frame() {
        // Every character escaped as \u00XX: six bytes each.
        let msg = ChatMessage::Whisper {
            seq: u64::MAX,
            text: "\u{1}".repeat(MAX_TEXT),
            from: Some("\"".repeat(MAX_NAME)),
        };
        assert!(msg.encode().len() <= MAX_CHAT_FRAME);
        assert_eq!(ChatMessage::decode(&msg.encode()).unwrap(), msg);
    }

    #[test]
    fn claimed_names() {
        let say =
            ChatMessage::decode(br#"{"type":"say","seq":1,"text":"x","from":"bob"}"#).unwrap();
        assert_eq!(say.claimed_name(), Some("bob"));
        assert_eq!(ChatMessage::Ack { seq: 1 }.claimed_name(), None);
    }
}

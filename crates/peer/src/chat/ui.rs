//! What a person types and sees.
//!
//! - [`Command`]: a typed line (`/msg NAME TEXT`, `/who`, `/quit`, `/help`,
//!   or a line for the room).
//! - [`Lines`]: standard input (a terminal or a pipe) as lines of at most
//!   [`MAX_LINE`] bytes; a longer line is cut, and says so.
//! - [`human`]: the line a chat event shows without `--json`, with the
//!   local time and who it is from. Everything received was escaped when the
//!   event was made ([`lanio::escape`]).

use tokio::io::{AsyncRead, AsyncReadExt};
use wire::chat::MAX_TEXT;

use crate::events::Event;

/// Longest typed line kept: a line of text plus `/msg NAME `.
pub const MAX_LINE: usize = MAX_TEXT + 80;

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A line for the whole room.
    Say(String),
    /// A line for one member (or one seed client, `ip:port`).
    Msg {
        to: String,
        text: String,
    },
    Who,
    Quit,
    Help,
    /// An empty line: nothing to do.
    Nothing,
    /// A `/word` we do not know, or `/msg` without a name and text.
    Unknown(String),
}

/// What `/help` says.
pub const HELP: &str =
    "type a line to send it to the room; /msg NAME TEXT to one member; /who lists the room; /quit (or Ctrl-D, Ctrl-C) leaves";

/// Reads one typed line.
pub fn parse_command(line: &str) -> Command {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Command::Nothing;
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Say(line.to_string());
    };
    let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
    match word {
        "quit" | "exit" => Command::Quit,
        "who" => Command::Who,
        "help" => Command::Help,
        "msg" => match args.trim_start().split_once(' ') {
            Some((to, text)) if !text.trim().is_empty() => Command::Msg {
                to: to.to_string(),
                text: text.to_string(),
            },
            _ => Command::Unknown("/msg needs a name and a line: /msg NAME TEXT".into()),
        },
        // `//text` sends a line that starts with a slash.
        _ if rest.starts_with('/') => Command::Say(rest.to_string()),
        other => Command::Unknown(format!(
            "unknown command /{}; {HELP}",
            lanio::escape::escape_str(other)
        )),
    }
}

/// One line read by [`Lines`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// The line was longer than [`MAX_LINE`] and was cut.
    pub cut: bool,
}

/// Lines from a byte stream, each at most [`MAX_LINE`] bytes, never
/// holding more than that. Safe to use in `select!`: a cancelled call
/// loses nothing.
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    /// Skipping the rest of a line that was too long.
    skipping: bool,
    eof: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: Vec::new(),
            skipping: false,
            eof: false,
        }
    }

    /// The next line; `None` at the end of input.
    pub async fn next(&mut self) -> Option<Line> {
        loop {
            if let Some(line) = self.take_line() {
                return Some(line);
            }
            if self.eof {
                if self.buf.is_empty() {
                    return None;
                }
                let text = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                return Some(Line { text, cut: false });
            }
            let mut chunk = [0u8; 4096];
            match self.reader.read(&mut chunk).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn take_line(&mut self) -> Option<Line> {
        let newline = self.buf.iter().position(|b| *b == b'\n');
        if self.skipping {
            let Some(at) = newline else {
                self.buf.clear();
                return None;
            };
            self.buf.drain(..=at);
            self.skipping = false;
            return self.take_line();
        }
        match newline {
            Some(at) if at <= MAX_LINE => {
                let line: Vec<u8> = self.buf.drain(..=at).take(at).collect();
                Some(Line {
                    text: String::from_utf8_lossy(&line).into_owned(),
                    cut: false,
                })
            }
            _ if self.buf.len() > MAX_LINE => {
                let line = cut_at_char(&self.buf[..MAX_LINE]);
                self.buf.drain(..MAX_LINE);
                self.skipping = true;
                Some(Line {
                    text: line,
                    cut: true,
                })
            }
            _ => None,
        }
    }
}

/// `bytes` as text, without a character split at the end.
fn cut_at_char(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes).into_owned();
    text.trim_end_matches('\u{fffd}').to_string()
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The local time of day, `HH:MM:SS`.
pub fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to fill in.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live values of the right types.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        let secs = now.rem_euclid(86_400);
        return format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// A line from `who` at the current time.
pub fn line(who: &str, text: &str) -> String {
    format!("[{}] {who}: {text}", clock())
}

/// A note from the program itself (`*` as the sender).
pub fn note(text: &str) -> String {
    format!("[{}] * {text}", clock())
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "nobody".into()
    } else {
        list.join(", ")
    }
}

/// The human line of a chat event; `None` for every other event.
pub fn human(event: &Event) -> Option<String> {
    Some(match event {
        Event::Joined {
            name,
            room,
            listen,
            members,
        } => note(&format!(
            "you are {name} in room {room} (port {listen}); online: {}",
            names(members)
        )),
        Event::MemberJoined { name, addr } => note(&format!("{name} joined ({addr})")),
        Event::MemberLeft { name, reason } => note(&format!("{name} left ({reason})")),
        Event::Message {
            from,
            text,
            private: false,
        } => line(from, text),
        Event::Message {
            from,
            text,
            private: true,
        } => line(&format!("{from} (private)"), text),
        Event::Delivered { to, acked, of, .. } => note(&format!("delivered {acked}/{of} ({to})")),
        Event::QueueDropped {
            to,
            messages,
            reason,
        } => note(&format!("dropped {messages} line(s) kept for {to}: {reason}")),
        Event::Who { members, away } if away.is_empty() => {
            note(&format!("online: {}", names(members)))
        }
        Event::Who { members, away } => note(&format!(
            "online: {}; away: {}",
            names(members),
            names(away)
        )),
        Event::Notice { text } => note(text),
        Event::Left {
            sent,
            received,
            forged,
            refused,
            queue_dropped,
        } => note(&format!(
            "left the room: sent {sent}, received {received}, forged names {forged}, connections refused {refused}, lines dropped {queue_dropped}"
        )),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_command("hello"), Command::Say("hello".into()));
        assert_eq!(parse_command("hello\r\n"), Command::Say("hello".into()));
        assert_eq!(
            parse_command("/msg bob hi there"),
            Command::Msg {
                to: "bob".into(),
                text: "hi there".into()
            }
        );
        assert!(matches!(parse_command("/msg bob"), Command::Unknown(_)));
        assert!(matches!(parse_command("/msg bob  "), Command::Unknown(_)));
        assert_eq!(parse_command("/who"), Command::Who);
        assert_eq!(parse_command("/quit"), Command::Quit);
        assert_eq!(parse_command("   "), Command::Nothing);
        assert_eq!(parse_command("//etc"), Command::Say("/etc".into()));
        assert!(matches!(parse_command("/dance"), Command::Unknown(_)));
        assert!(matches!(
            parse_command("/\x1b[2J"),
            Command::Unknown(t) if !t.contains('\x1b')
        ));
    }

    #[tokio::test]
    async fn lines_are_bounded_and_cut_lines_say_so() {
        let long = "é".repeat(MAX_LINE);
        let input = format!("one\ntwo\r\n{long}\nthree\nlast");
        let mut lines = Lines::new(input.as_bytes());
        let mut got = Vec::new();
        while let Some(line) = lines.next().await {
            assert!(line.text.len() <= MAX_LINE);
            got.push((line.text.len().min(20), line.cut));
            assert!(lines.buf.capacity() <= 4 * MAX_LINE + 8192);
        }
        assert_eq!(
            got,
            [(3, false), (4, false), (20, true), (5, false), (4, false)]
        );
    }

    #[test]
    fn every_chat_line_has_a_time_and_a_sender() {
        let msg = human(&Event::Message {
            from: "bob".into(),
            text: "hi".into(),
            private: true,
        })
        .unwrap();
        assert!(msg.starts_with('['), "{msg}");
        assert_eq!(&msg[9..], "] bob (private): hi");
        let left = human(&Event::MemberLeft {
            name: "bob".into(),
            reason: "left".into(),
        })
        .unwrap();
        assert!(left.ends_with("] * bob left (left)"), "{left}");
        assert!(human(&Event::TrackerError { error: "x".into() }).is_none());
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("hi", 10), "hi");
    }
}

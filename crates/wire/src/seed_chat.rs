//! The seed project's chat directory: UDP datagrams of plain text.
//!
//! - **Client to server** (the seed's ports 8000–8002): `READY` or `RETURN`
//!   registers the sender and asks for the list; `QUIT_CLIENT` leaves.
//! - **Server to servers** (multicast group [`SEED_GROUP`]):
//!   `INSERT_CLIENTS_DATA ('127.0.0.1', 4242)`, `REQUEST_CLIENTS_DATA`,
//!   `QUIT_CLIENT_DATA ('127.0.0.1', 4242)`; the answer to a request, by
//!   unicast, is `RESPONSE_CLIENTS_DATA` and a newline, then one address per
//!   line.
//! - **Server to client**: the list, one address per line.
//!
//! An address is the Python repr of a `(host, port)` tuple. The seed's
//! servers `eval` it; we accept exactly `('a.b.c.d', port)` ([`parse_tuple`])
//! and nothing else, and a list line that is anything else is dropped and
//! counted ([`AddrList::dropped`]). Lists are cut at a caller's bound, so a
//! datagram never makes us keep more than we chose.

use std::net::{Ipv4Addr, SocketAddrV4};

/// The seed servers' multicast group and port.
pub const SEED_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(228, 0, 0, 1), 9999);
/// Largest datagram we read or send; longer lists are cut to fit.
pub const MAX_DATAGRAM: usize = 8 * 1024;

const INSERT: &str = "INSERT_CLIENTS_DATA";
const REQUEST: &str = "REQUEST_CLIENTS_DATA";
const RESPONSE: &str = "RESPONSE_CLIENTS_DATA";
const QUIT_DATA: &str = "QUIT_CLIENT_DATA";

/// Why a tuple is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TupleError {
    #[error("not of the form ('a.b.c.d', port)")]
    Shape,
    #[error("{0:?} is not a dotted-quad IPv4 address")]
    Ip(String),
    #[error("{0:?} is not a port (1-65535)")]
    Port(String),
}

/// Parses `('a.b.c.d', port)`, the repr Python gives a UDP source address.
pub fn parse_tuple(text: &str) -> Result<SocketAddrV4, TupleError> {
    let inner = text
        .strip_prefix("('")
        .and_then(|t| t.strip_suffix(')'))
        .ok_or(TupleError::Shape)?;
    let (ip, port) = inner.split_once("', ").ok_or(TupleError::Shape)?;
    let short = |s: &str| s.chars().take(40).collect::<String>();
    let ip: Ipv4Addr = ip.parse().map_err(|_| TupleError::Ip(short(ip)))?;
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    let port = port_ok
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|p| *p != 0 && !port.starts_with('0'))
        .ok_or_else(|| TupleError::Port(short(port)))?;
    Ok(SocketAddrV4::new(ip, port))
}

/// The Python repr of an address tuple: `('127.0.0.1', 4242)`.
pub fn tuple_repr(addr: SocketAddrV4) -> String {
    format!("('{}', {})", addr.ip(), addr.port())
}

/// Addresses read from a list, and how many lines were not addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrList {
    pub addrs: Vec<SocketAddrV4>,
    /// Lines that were not `('a.b.c.d', port)`, or past the bound.
    pub dropped: usize,
}

/// Reads one address per line (empty lines are skipped), keeping at most
/// `max`.
pub fn parse_list(text: &str, max: usize) -> AddrList {
    let mut list = AddrList::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match parse_tuple(line) {
            Ok(addr) if list.addrs.len() < max => list.addrs.push(addr),
            _ => list.dropped += 1,
        }
    }
    list
}

/// One address per line, as many as fit in [`MAX_DATAGRAM`] after `head`.
pub fn render_list(head: &str, addrs: impl IntoIterator<Item = SocketAddrV4>) -> String {
    let mut out = String::from(head);
    for addr in addrs {
        let line = tuple_repr(addr);
        let sep = usize::from(!out.is_empty() && !out.ends_with('\n'));
        if out.len() + sep + line.len() > MAX_DATAGRAM {
            break;
        }
        if sep == 1 {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out
}

/// A datagram a client sends to a directory server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRequest {
    /// `READY`: register me and send me the list.
    Ready,
    /// `RETURN`: the same, for a client that is back.
    Return,
    /// `QUIT_CLIENT`: forget me.
    Quit,
}

impl ClientRequest {
    /// Reads a client's datagram (surrounding whitespace ignored).
    pub fn parse(datagram: &[u8]) -> Option<ClientRequest> {
        match std::str::from_utf8(datagram).ok()?.trim() {
            "READY" => Some(ClientRequest::Ready),
            "RETURN" => Some(ClientRequest::Return),
            "QUIT_CLIENT" => Some(ClientRequest::Quit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientRequest::Ready => "READY",
            ClientRequest::Return => "RETURN",
            ClientRequest::Quit => "QUIT_CLIENT",
        }
    }
}

/// A datagram between directory servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// A client registered with the sender.
    Insert(SocketAddrV4),
    /// The sender asks every server for its clients.
    Request,
    /// The answer to a request.
    Response(AddrList),
    /// A client left.
    Quit(SocketAddrV4),
}

/// Why a server datagram is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerMessageError {
    #[error("not UTF-8")]
    NotText,
    #[error("unknown message {0:?}")]
    Unknown(String),
    #[error("bad address: {0}")]
    Tuple(#[from] TupleError),
}

impl ServerMessage {
    /// Reads a datagram from the group (or a response), keeping at most
    /// `max` addresses of a response.
    pub fn parse(datagram: &[u8], max: usize) -> Result<ServerMessage, ServerMessageError> {
        let text = std::str::from_utf8(datagram).map_err(|_| ServerMessageError::NotText)?;
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(rest) = text.strip_prefix(RESPONSE) {
            if rest.is_empty() || rest.starts_with('\n') {
                return Ok(ServerMessage::Response(parse_list(rest, max)));
            }
        }
        if text == REQUEST {
            return Ok(ServerMessage::Request);
        }
        if let Some(tuple) = text.strip_prefix(INSERT).and_then(|t| t.strip_prefix(' ')) {
            return Ok(ServerMessage::Insert(parse_tuple(tuple)?));
        }
        if let Some(tuple) = text
            .strip_prefix(QUIT_DATA)
            .and_then(|t| t.strip_prefix(' '))
        {
            return Ok(ServerMessage::Quit(parse_tuple(tuple)?));
        }
        let head: String = text.chars().take(40).collect();
        Err(ServerMessageError::Unknown(head))
    }

    /// The datagram's text.
    pub fn render(&self) -> String {
        match self {
            ServerMessage::Insert(a) => format!("{INSERT} {}", tuple_repr(*a)),
            ServerMessage::Request => REQUEST.to_string(),
            ServerMessage::Response(list) => {
                render_list(&format!("{RESPONSE}\n"), list.addrs.iter().copied())
            }
            ServerMessage::Quit(a) => format!("{QUIT_DATA} {}", tuple_repr(*a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn tuples_as_python_writes_them() {
        assert_eq!(
            parse_tuple("('127.0.0.1', 4242)"),
            Ok(addr("127.0.0.1:4242"))
        );
        assert_eq!(tuple_repr(addr("10.0.0.2:65535")), "('10.0.0.2', 65535)");
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "(\"127.0.0.1\", 4242)",
            "('127.0.0.1',4242)",
            "('127.0.0.1', 4242",
            "('localhost', 4242)",
            "('127.0.0.01', 4242)",
            "('127.0.0.1', 0)",
            "('127.0.0.1', 65536)",
            "('127.0.0.1', 042)",
            "('127.0.0.1', +42)",
            "('127.0.0.1', 4242, 0)",
            "__import__('os').system('rm -rf /')",
            "('::1', 4242)",
            "",
        ] {
            assert!(parse_tuple(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_round_trip() {
        let list = AddrList {
            addrs: vec![addr("127.0.0.1:1"), addr("10.1.2.3:4242")],
            dropped: 0,
        };
        for msg in [
            ServerMessage::Insert(addr("127.0.0.1:4242")),
            ServerMessage::Request,
            ServerMessage::Response(list),
            ServerMessage::Response(AddrList::default()),
            ServerMessage::Quit(addr("10.0.0.9:5")),
        ] {
            let text = msg.render();
            assert_eq!(
                ServerMessage::parse(text.as_bytes(), 100),
                Ok(msg),
                "{text}"
            );
        }
        assert_eq!(
            ServerMessage::Insert(addr("127.0.0.1:4242")).render(),
            "INSERT_CLIENTS_DATA ('127.0.0.1', 4242)"
        );
        assert_eq!(
            ServerMessage::parse(b"RESPONSE_CLIENTS_DATA\n('1.2.3.4', 5)\n", 10),
            Ok(ServerMessage::Response(AddrList {
                addrs: vec![addr("1.2.3.4:5")],
                dropped: 0
            }))
        );
    }

    #[test]
    fn bad_lines_are_counted_and_lists_bounded() {
        let text =
            "RESPONSE_CLIENTS_DATA\n('1.2.3.4', 5)\nos.system('x')\n('1.2.3.5', 6)\n('1.2.3.6', 7)";
        let Ok(ServerMessage::Response(list)) = ServerMessage::parse(text.as_bytes(), 2) else {
            panic!()
        };
        assert_eq!(list.addrs, [addr("1.2.3.4:5"), addr("1.2.3.5:6")]);
        assert_eq!(list.dropped, 2);
        assert!(ServerMessage::parse(b"INSERT_CLIENTS_DATA 42", 2).is_err());
        assert!(ServerMessage::parse(b"RESPONSE_CLIENTS_DATAX", 2).is_err());
        assert!(ServerMessage::parse(b"\xff", 2).is_err());
    }

    #[test]
    fn client_requests() {
        assert_eq!(ClientRequest::parse(b"READY"), Some(ClientRequest::Ready));
        assert_eq!(
            ClientRequest::parse(b"RETURN\n"),
            Some(ClientRequest::Return)
        );
        assert_eq!(
            ClientRequest::parse(b"QUIT_CLIENT"),
            Some(ClientRequest::Quit)
        );
        assert_eq!(ClientRequest::parse(b"hello"), None);
    }

    #[test]
    fn long_lists_are_cut_to_one_datagram() {
        let many = (1..=2000u16).map(|p| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), p));
        let text = render_list("", many);
        assert!(text.len() <= MAX_DATAGRAM);
        let list = parse_list(&text, usize::MAX);
        assert_eq!(list.dropped, 0);
        assert!(list.addrs.len() > 300);
    }
}

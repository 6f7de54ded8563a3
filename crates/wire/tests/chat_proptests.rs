//! Property tests for the chat formats: `peer chat`'s framed JSON messages
//! ([`wire::chat`]) and the seed's UDP text ([`wire::seed_chat`]).
//!
//! - Round trips: every valid chat message, every address tuple and server
//!   message.
//! - Hostile input: arbitrary bytes (and arbitrary JSON-ish bytes) never
//!   panic, and whatever decodes is within the limits; a valid message always
//!   encodes within the frame limit.

use std::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;
use wire::chat::{validate_name, ChatMessage, MAX_CHAT_FRAME, MAX_NAME, MAX_TEXT};
use wire::seed_chat::{
    parse_list, parse_tuple, tuple_repr, AddrList, ClientRequest, ServerMessage, MAX_DATAGRAM,
};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Names within the rule: 1..=64 bytes, no control or bidirectional-text
/// characters.
fn name() -> impl Strategy<Value = String> + Clone {
    "[^\\p{Cc}\u{200e}\u{200f}\u{061c}\u{202a}-\u{202e}\u{2066}-\u{2069}]{1,64}".prop_map(
        |mut s| {
            while s.len() > MAX_NAME {
                s.pop();
            }
            s
        },
    )
}

/// Any text up to the limit, control characters included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        prop::collection::vec(any::<char>(), 0..1200).prop_map(|cs| {
            let mut s: String = cs.into_iter().collect();
            while s.len() > MAX_TEXT {
                s.pop();
            }
            s
        }),
    ]
}

fn message() -> impl Strategy<Value = ChatMessage> {
    let from = prop::option::of(name());
    prop_oneof![
        (name(), name()).prop_map(|(name, room)| ChatMessage::Hello { name, room }),
        (any::<u64>(), text(), from.clone()).prop_map(|(seq, text, from)| ChatMessage::Say {
            seq,
            text,
            from
        }),
        (any::<u64>(), text(), from.clone()).prop_map(|(seq, text, from)| ChatMessage::Whisper {
            seq,
            text,
            from
        }),
        any::<u64>().prop_map(|seq| ChatMessage::Ack { seq }),
        from.prop_map(|from| ChatMessage::Bye { from }),
    ]
}

/// Bytes that look like chat JSON often enough to reach the validation.
fn chat_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec!["type", "name", "room", "seq", "text", "from", "x"]);
    let value = prop_oneof![
        prop::sample::select(vec!["hello", "say", "whisper", "ack", "bye"])
            .prop_map(|v| format!("\"{v}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        ".{0,80}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("null".to_string()),
        Just("[1,{}]".to_string()),
    ];
    prop_oneof![
        prop::collection::vec((key, value), 0..6).prop_map(|kv| {
            let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(",")).into_bytes()
        }),
        prop::collection::vec(any::<u8>(), 0..300),
    ]
}

fn addr() -> impl Strategy<Value = SocketAddrV4> {
    (any::<u32>(), 1u16..).prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn chat_messages_round_trip_within_the_frame(msg in message()) {
        let body = msg.encode();
        prop_assert!(body.len() <= MAX_CHAT_FRAME, "{} bytes", body.len());
        prop_assert_eq!(ChatMessage::decode(&body).unwrap(), msg);
    }

    #[test]
    fn chat_decode_takes_anything(body in chat_like_bytes()) {
        if let Ok(msg) = ChatMessage::decode(&body) {
            prop_assert!(msg.validate().is_ok());
            if let Some(name) = msg.claimed_name() {
                prop_assert!(validate_name(name).is_ok());
            }
            if let ChatMessage::Say { text, .. } | ChatMessage::Whisper { text, .. } = &msg {
                prop_assert!(text.len() <= MAX_TEXT);
            }
            prop_assert_eq!(ChatMessage::decode(&msg.encode()).unwrap(), msg);
        }
    }

    #[test]
    fn tuples_round_trip(a in addr()) {
        prop_assert_eq!(parse_tuple(&tuple_repr(a)), Ok(a));
    }

    #[test]
    fn server_messages_round_trip(
        a in addr(),
        addrs in prop::collection::vec(addr(), 0..50),
        which in 0..4u8,
    ) {
        let msg = match which {
            0 => ServerMessage::Insert(a),
            1 => ServerMessage::Request,
            2 => ServerMessage::Quit(a),
            _ => ServerMessage::Response(AddrList { addrs, dropped: 0 }),
        };
        let text = msg.render();
        prop_assert!(text.len() <= MAX_DATAGRAM);
        prop_assert_eq!(ServerMessage::parse(text.as_bytes(), 1000), Ok(msg));
    }

    #[test]
    fn seed_parsers_take_anything(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        text in "(\\(|'|,| |[0-9]|\\.|\\)|\n|[A-Z_]){0,120}",
        max in 0usize..8,
    ) {
        for input in [&bytes[..], text.as_bytes()] {
            let _ = ClientRequest::parse(input);
            if let Ok(ServerMessage::Response(list)) = ServerMessage::parse(input, max) {
                prop_assert!(list.addrs.len() <= max);
            }
            let list = parse_list(&String::from_utf8_lossy(input), max);
            prop_assert!(list.addrs.len() <= max);
            for a in list.addrs {
                prop_assert!(a.port() != 0);
            }
        }
    }
}

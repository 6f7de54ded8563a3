//! The seed's chat directory (UDP text): client requests, messages between
//! directory servers, address tuples. Whatever parses renders back to text
//! that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::seed_chat::{
    parse_list, parse_tuple, tuple_repr, ClientRequest, ServerMessage, MAX_DATAGRAM,
};

fuzz_target!(|data: &[u8]| {
    let Some((&max, datagram)) = data.split_first() else {
        return;
    };
    let max = usize::from(max);
    if let Some(r) = ClientRequest::parse(datagram) {
        assert_eq!(ClientRequest::parse(r.as_str().as_bytes()), Some(r));
    }
    if let Ok(m) = ServerMessage::parse(datagram, max) {
        if let ServerMessage::Response(list) = &m {
            assert!(list.addrs.len() <= max);
        }
        let text = m.render();
        assert!(text.len() <= MAX_DATAGRAM.max(datagram.len()));
        let back = ServerMessage::parse(text.as_bytes(), usize::MAX).expect("rendered reads back");
        match (&m, &back) {
            (ServerMessage::Response(a), ServerMessage::Response(b)) => {
                assert_eq!(b.dropped, 0);
                if datagram.len() <= MAX_DATAGRAM {
                    assert_eq!(a.addrs, b.addrs);
                } else {
                    assert_eq!(a.addrs[..b.addrs.len()], b.addrs[..]);
                }
            }
            _ => assert_eq!(back, m),
        }
    }
    if let Ok(text) = std::str::from_utf8(datagram) {
        if let Ok(addr) = parse_tuple(text) {
            assert_eq!(tuple_repr(addr), text);
        }
        let list = parse_list(text, max);
        assert!(list.addrs.len() <= max);
    }
});

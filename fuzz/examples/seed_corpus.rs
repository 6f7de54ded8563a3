//! Writes the committed seed corpus, fuzz/corpus/<target>/, from the
//! encoders themselves plus a few hand-made edge cases:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`.
//! Existing files of the same name are overwritten; others (crash inputs
//! kept as regression seeds) are left alone.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use bytes::Bytes;
use mcast::chat::packet::{ChatPacket, Kind as ChatKind};
use mcast::probe::packet::{Kind as ProbeKind, ProbePacket, HEADER_LEN};
use wire::chat::ChatMessage;
use wire::discovery::Announce;
use wire::igmp::IgmpMessage;
use wire::membership::{GroupRecord, Query, RecordType, SourceQuery};
use wire::mld::MldMessage;
use wire::replica::{
    heartbeat, pack_changes, snapshot_request, PeerRecord, Record, Removal, SnapshotReason,
    TrackerId,
};
use wire::seed_chat::{AddrList, ClientRequest, ServerMessage};
use wire::tracker::{AnnounceRequest, AnnounceResponse, Event, PeerEntry, TrackerRequest};
use wire::{Bitfield, InfoHash, Message, PeerId};

fn put(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn messages() -> Vec<Message> {
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(3),
        Message::Bitfield(Bitfield::from_bools(vec![true, false, true, true, false])),
        Message::Request(1),
        Message::Piece {
            index: 2,
            data: Bytes::from_static(b"hello piece"),
        },
        Message::Cancel(4),
        Message::Close,
        Message::Handshake {
            info_hash: InfoHash([7; 20]),
            peer_id: PeerId([2; 20]),
        },
    ]
}

fn main() {
    // frame: [max hi, max lo, chunk] then framed bytes.
    let mut stream = vec![0x10, 0x00, 7];
    for m in messages() {
        stream.extend_from_slice(&wire::codec::encode_framed(&m));
    }
    put("frame", "messages", &stream);
    put(
        "frame",
        "huge-claim",
        [0xff, 0xff, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2],
    );
    put(
        "frame",
        "empty-frames",
        [0, 0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );

    // peer_message: [piece count + 1 or 0] then one body; a stream too.
    for (i, m) in messages().iter().enumerate() {
        let mut b = vec![6u8];
        b.extend_from_slice(&m.to_bytes());
        put("peer_message", &format!("{}-{i}", m.name()), b);
    }
    let mut s = vec![0u8];
    s.extend_from_slice(&stream[3..]);
    put("peer_message", "stream", s);
    put("peer_message", "length-mismatch", [0, 0, 0, 0, 9, 1]);

    // tracker_request
    let a = AnnounceRequest {
        port: 6881,
        ip: Some(Ipv4Addr::new(10, 0, 0, 2)),
        peer_id: "-LS0001-abcdefghijkl".into(),
        event: Some(Event::Started),
        info_hash: Some(InfoHash([0xab; 20])),
        numwant: Some(50),
        proto: Some(1),
        left: Some(1000),
        downloaded: Some(0),
    };
    put(
        "tracker_request",
        "announce",
        TrackerRequest::Announce(a.clone()).to_json(),
    );
    put(
        "tracker_request",
        "status",
        TrackerRequest::Status.to_json(),
    );
    put("tracker_request", "minimal", br#"{"port":1,"peer_id":"x"}"#);
    put(
        "tracker_request",
        "with-name",
        br#"{"port":9,"peer_id":"p","event":"stopped","name":"alice","numwant":99999999999}"#,
    );
    put(
        "tracker_request",
        "bad-port",
        br#"{"port":-1,"peer_id":"x"}"#,
    );

    // tracker_reply
    let r = AnnounceResponse {
        error_code: 0,
        message: "started ACK".into(),
        num_of_peer: 1,
        peers: vec![PeerEntry {
            peer_id: "-LS0001-abcdefghijkl".into(),
            peer_ip: "10.0.0.3".into(),
            peer_port: 6882,
            proto: Some(1),
        }],
        interval: Some(30),
    };
    put("tracker_reply", "announce", r.to_json());
    put(
        "tracker_reply",
        "error",
        AnnounceResponse::error("tracker busy").to_json(),
    );

    // torrent: one file and a directory, as the encoder writes them.
    let one = r#"{"announce":"127.0.0.1","port":6969,"comment":"c","info":{"piece_length":4,"piece_hash":["0000000000000000000000000000000000000000","1111111111111111111111111111111111111111","2222222222222222222222222222222222222222"],"file_name":"a.bin","file_length":10}}"#;
    let t = wire::Torrent::from_json(one.as_bytes()).expect("sample torrent");
    put("torrent", "one-file", t.to_json_pretty());
    let dir = r#"{"info":{"piece_length":8,"piece_hash":["0000000000000000000000000000000000000000","1111111111111111111111111111111111111111"],"name":"top","files":[{"length":5,"path":["a","x.txt"]},{"length":0,"path":["empty"]},{"length":7,"path":["b"]}]}}"#;
    let t = wire::Torrent::from_json(dir.as_bytes()).expect("sample directory torrent");
    put("torrent", "directory", t.to_json_pretty());
    put(
        "torrent",
        "pyrepr-hashes",
        r#"{"announce":"h","port":1,"info":{"piece_length":1,"piece_hash":["b'\\x00\\x01abcdefghijklmnopq'"],"file_name":"f","file_length":1}}"#,
    );
    put(
        "torrent",
        "dotdot",
        r#"{"info":{"piece_length":8,"piece_hash":[],"name":"top","files":[{"length":0,"path":[".."]}]}}"#,
    );

    // pyrepr
    put(
        "pyrepr",
        "hash",
        wire::pyrepr::to_repr(&[0xa9, 0x99, b'>', b'6', b'G', b'\'', b'\\', 0]),
    );
    put("pyrepr", "dquote", "b\"it's\"");
    put("pyrepr", "bad-escape", "b'\\x4'");

    // chat
    let chats = [
        ChatMessage::Hello {
            name: "alice".into(),
            room: "lobby".into(),
        },
        ChatMessage::Say {
            seq: 1,
            text: "hi".into(),
            from: Some("bob".into()),
        },
        ChatMessage::Whisper {
            seq: 2,
            text: "psst".into(),
            from: None,
        },
        ChatMessage::Ack { seq: 2 },
        ChatMessage::Bye { from: None },
    ];
    for (i, m) in chats.iter().enumerate() {
        put("chat", &format!("msg-{i}"), m.encode());
    }

    // seed_chat: [max] then a datagram.
    let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 7), 4242);
    let server = [
        ServerMessage::Insert(addr),
        ServerMessage::Request,
        ServerMessage::Response(AddrList {
            addrs: vec![addr, addr],
            dropped: 0,
        }),
        ServerMessage::Quit(addr),
    ];
    for (i, m) in server.iter().enumerate() {
        let mut b = vec![16u8];
        b.extend_from_slice(m.render().as_bytes());
        put("seed_chat", &format!("server-{i}"), b);
    }
    for r in [
        ClientRequest::Ready,
        ClientRequest::Return,
        ClientRequest::Quit,
    ] {
        put("seed_chat", r.as_str(), format!("\x04{}\n", r.as_str()));
    }

    // replica
    let me = TrackerId::new(42).unwrap();
    let peer = PeerRecord {
        swarm: InfoHash([1; 20]),
        addr: SocketAddr::new(Ipv4Addr::new(10, 0, 0, 9).into(), 6881),
        age_ms: 10,
        origin: me,
        seed: true,
        proto: Some(1),
        peer_id: "-LS0001-abcdefghijkl".into(),
    };
    let gone = Removal {
        swarm: InfoHash([2; 20]),
        addr: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 1),
        age_ms: 5,
    };
    let records = [
        Record::Join(peer.clone()),
        Record::Refresh(PeerRecord {
            proto: None,
            seed: false,
            ..peer.clone()
        }),
        Record::Seed(peer),
        Record::Leave(gone),
        Record::Expire(gone),
    ];
    for (i, d) in pack_changes(me, 1, records.iter()).0.iter().enumerate() {
        put("replica", &format!("changes-{i}"), d);
    }
    put(
        "replica",
        "snapshot-request",
        snapshot_request(me, 3, SnapshotReason::Gap),
    );
    put("replica", "heartbeat", heartbeat(me, 7));

    // discovery
    let ann = Announce {
        port: 6881,
        info_hashes: vec![InfoHash([3; 20]), InfoHash([4; 20])],
        cookie: Some("cookie1".into()),
    };
    put("discovery", "announce", ann.encode("239.192.152.143:6771"));
    put(
        "discovery",
        "no-cookie",
        Announce {
            cookie: None,
            ..ann.clone()
        }
        .encode("[ff15::efc0:988f]:6771"),
    );

    // igmp, mld, inet
    let q4 = Query {
        version: 3,
        group: Ipv4Addr::new(239, 1, 2, 3),
        max_resp_ms: 10_000,
        v3: Some(SourceQuery {
            suppress: false,
            qrv: 2,
            qqi_s: 125,
            sources: vec![Ipv4Addr::new(10, 0, 0, 1)],
        }),
    };
    let igmps = [
        IgmpMessage::Query(q4.clone()),
        IgmpMessage::Query(Query {
            version: 2,
            v3: None,
            ..q4.clone()
        }),
        IgmpMessage::Query(Query {
            version: 1,
            v3: None,
            max_resp_ms: 10_000,
            group: Ipv4Addr::UNSPECIFIED,
        }),
        IgmpMessage::V1Report {
            group: Ipv4Addr::new(239, 1, 2, 3),
        },
        IgmpMessage::V2Report {
            group: Ipv4Addr::new(239, 1, 2, 3),
        },
        IgmpMessage::V2Leave {
            group: Ipv4Addr::new(239, 1, 2, 3),
        },
        IgmpMessage::V3Report {
            records: vec![GroupRecord {
                mode: RecordType::ChangeToInclude,
                group: Ipv4Addr::new(232, 1, 1, 1),
                sources: vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
                aux_words: 0,
            }],
        },
    ];
    for (i, m) in igmps.iter().enumerate() {
        put("igmp", &format!("msg-{i}"), m.encode());
        // querier: [interval hi, lo, robustness] then ops (arbitrary's bytes).
        if i < 3 {
            put(
                "querier",
                &format!("query-{i}"),
                [&[0, 125, 2, 0][..], &m.encode()].concat(),
            );
        }
        // inet: an IPv4 header (protocol 2, TTL 1, Router Alert) around it.
        let payload = m.encode();
        let total = 24 + payload.len();
        let mut ip = vec![
            0x46,
            0xc0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            1,
            2,
            0,
            0,
        ];
        ip.extend_from_slice(&[10, 0, 0, 1, 224, 0, 0, 22, 0x94, 4, 0, 0]);
        let sum = wire::membership::internet_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip.extend_from_slice(&payload);
        put("inet", &format!("igmp-{i}"), ip);
    }
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let dst: Ipv6Addr = "ff02::16".parse().unwrap();
    let q6 = Query {
        version: 2,
        group: "ff05::1:3".parse().unwrap(),
        max_resp_ms: 10_000,
        v3: Some(SourceQuery {
            suppress: true,
            qrv: 2,
            qqi_s: 125,
            sources: vec![src],
        }),
    };
    let mlds = [
        MldMessage::Query(q6.clone()),
        MldMessage::Query(Query {
            version: 1,
            v3: None,
            ..q6.clone()
        }),
        MldMessage::V1Report {
            group: "ff05::1:3".parse().unwrap(),
        },
        MldMessage::V1Done {
            group: "ff05::1:3".parse().unwrap(),
        },
        MldMessage::V2Report {
            records: vec![GroupRecord {
                mode: RecordType::ModeIsExclude,
                group: "ff05::1:3".parse().unwrap(),
                sources: vec![],
                aux_words: 1,
            }],
        },
    ];
    for (i, m) in mlds.iter().enumerate() {
        let payload = m.encode(src, dst);
        put("mld", &format!("msg-{i}"), &payload);
        // inet: IPv6 header, hop-by-hop with Router Alert, then ICMPv6.
        let len = 8 + payload.len();
        let mut ip = vec![0x60, 0, 0, 0, (len >> 8) as u8, len as u8, 0, 1];
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
        ip.extend_from_slice(&payload);
        put("inet", &format!("mld-{i}"), ip);
    }

    // procnet: this host's files, or samples in their format.
    let read = |p: &str, fallback: &str| fs::read_to_string(p).unwrap_or_else(|_| fallback.into());
    let igmp = read(
        "/proc/net/igmp",
        "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n",
    );
    let igmp6 = read(
        "/proc/net/igmp6",
        "1    lo              ff020000000000000000000000000001     1 0000000C 0\n",
    );
    let filter = read(
        "/proc/net/mcfilter",
        "Idx Device        MCA        SRC    INC    EXC\n  3 dummy0 0xe8010101 0x0a090007      1      0\n",
    );
    put("procnet", "host", format!("{igmp}\0{igmp6}\0{filter}"));
    let filter6 = read("/proc/net/mcfilter6", "");
    put("procnet", "filter6", format!("\0\0{filter6}"));

    // mcast probe and chat datagrams.
    for (i, kind) in [ProbeKind::Data, ProbeKind::End].into_iter().enumerate() {
        let mut buf = vec![0u8; HEADER_LEN + 8];
        ProbePacket {
            kind,
            run: 77,
            seq: 5,
            sent_ns: 1_000,
            interval_ns: 10,
        }
        .encode_into(&mut buf);
        put("mcast_probe", &format!("kind-{i}"), buf);
    }
    for (i, kind) in [
        ChatKind::Join,
        ChatKind::Message,
        ChatKind::Leave,
        ChatKind::Present,
    ]
    .into_iter()
    .enumerate()
    {
        let p = ChatPacket {
            kind,
            member: 99,
            name: b"alice".to_vec(),
            text: b"hello".to_vec(),
        };
        put("mcast_chat", &format!("kind-{i}"), p.encode());
    }

    // Stateful targets take structured input (arbitrary's bytes): a few
    // byte strings of various lengths to start from.
    for t in ["connection", "discovery_state"] {
        put(t, "zeros", [0u8; 64]);
        put(t, "ramp", (0..=255u8).collect::<Vec<_>>());
        put(t, "ones", [1u8; 128]);
    }
    put("querier", "empty", [0, 10, 2]);
}

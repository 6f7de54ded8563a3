//! `mcast send` / `mcast recv` between namespace hosts: acks from several
//! hosts (one a Python receiver), shared ports, SSM, TTL, loopback, IPv6 and a
//! clean stop on Ctrl-C. Needs root (skips otherwise).

use lanswarm::mcast_lab::*;
use lanswarm::netns::Host;
use lanswarm::process::Proc;
use mcast::events::{RecvMessage, RecvSummary};
use std::net::SocketAddr;

const PY_RECEIVER: &str = r#"
import json, socket, struct, sys
group, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("0.0.0.0"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print(json.dumps({"event": "joined"}), flush=True)
data, addr = s.recvfrom(65535)
s.sendto(b"ack", addr)
print(json.dumps({"event": "message", "hex": data.hex(), "from": addr[0]}), flush=True)
"#;

const PY_SENDER: &str = r#"
import json, socket, sys
group, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.settimeout(15)
s.sendto(b"Hello Everybody", (group, port))
data, addr = s.recvfrom(1024)
print(json.dumps({"event": "reply", "hex": data.hex(), "from": addr[0], "port": addr[1]}), flush=True)
"#;

/// What the Python scripts above print.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Py {
    Joined,
    Message {
        hex: String,
        from: String,
    },
    Reply {
        hex: String,
        from: String,
        port: u16,
    },
}

/// The host's `port` on its IPv4 address.
fn at(host: &Host, port: u16) -> SocketAddr {
    SocketAddr::new(host.ipv4().into(), port)
}

#[test]
fn send_collects_acks_from_three_receivers_one_in_python() {
    let Some(lan) = lab(4) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut r1 = start(lan.host(1), "recv1", &["recv", "--count", "1"]);
    let mut r2 = start(
        lan.host(2),
        "recv2",
        &["recv", "--count", "1", "--iface", "eth0"],
    );
    let cmd = python(
        lan.host(3),
        dir.path(),
        "recv.py",
        PY_RECEIVER,
        &["224.3.29.71", "10000"],
    );
    let mut py = Proc::spawn("python-recv", cmd);
    py.wait_event(T, |e: Py| matches!(e, Py::Joined).then_some(()));

    let summary = send(lan.host(0), &["very important data", "--wait", "1s"]);
    assert_eq!(summary.sent, 1);
    assert_eq!(summary.acks, 3, "{summary:?}");
    let expected: Vec<SocketAddr> = (1..=3).map(|i| at(lan.host(i), 10000)).collect();
    assert_eq!(summary.responders, expected);

    for r in [&mut r1, &mut r2] {
        let m: RecvMessage = expect(r);
        assert_eq!(m.text, "very important data");
        assert_eq!(m.bytes, 19);
        assert_eq!(m.ttl, Some(1), "default TTL is 1");
        assert_eq!(m.from.ip(), lan.host(0).ipv4());
        assert_eq!(expect::<RecvSummary>(r).acked, 1);
        assert!(r.wait_exit(T).unwrap().success());
    }
    // Raw mode: the Python receiver sees exactly the message bytes.
    let (hex_data, from) = py.wait_event(T, |e: Py| match e {
        Py::Message { hex, from } => Some((hex, from)),
        _ => None,
    });
    assert_eq!(hex_data, hex(b"very important data"));
    assert_eq!(from, lan.host(0).ipv4().to_string());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn python_sender_is_printed_and_acked_by_mcast_recv() {
    let Some(lan) = lab(2) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        lan.host(1),
        "recv",
        &[
            "recv",
            "--group",
            "224.0.0.100",
            "--port",
            "10001",
            "--count",
            "1",
        ],
    );
    let cmd = python(
        lan.host(0),
        dir.path(),
        "send.py",
        PY_SENDER,
        &["224.0.0.100", "10001"],
    );
    let mut py = Proc::spawn("python-send", cmd);
    let m: RecvMessage = expect(&mut r);
    assert_eq!(m.text, "Hello Everybody");
    assert_eq!(m.ttl, Some(255));
    let (hex_data, from, port) = py.wait_event(T, |e: Py| match e {
        Py::Reply { hex, from, port } => Some((hex, from, port)),
        _ => None,
    });
    assert_eq!(hex_data, hex(b"ack"));
    assert_eq!(from, lan.host(1).ipv4().to_string());
    assert_eq!(port, 10001, "the ack comes from the receiver's bound port");
}

/// Datagrams sent to one group by separate `mcast send` processes. Each
/// process sends from a fresh ephemeral port, so the kernel computes a fresh
/// flow hash for every datagram: if it ever load-balanced a group's datagrams
/// across the sockets sharing the port (as it does within an `SO_REUSEPORT`
/// group), some of these would land on the wrong receiver.
const FRESH_FLOWS: usize = 8;

/// Sends `text #k` for k in 1..=FRESH_FLOWS from `host`, each from a new process.
fn send_fresh_flows(host: &Host, text: &str, args: &[&str]) -> Vec<String> {
    (1..=FRESH_FLOWS)
        .map(|k| {
            let msg = format!("{text} #{k}");
            let s = send(host, &[&[msg.as_str()][..], args].concat());
            assert_eq!(s.sent, 1, "{s:?}");
            msg
        })
        .collect()
}

/// Asserts that the next messages of `r` are exactly `texts`, in order.
fn expect_texts(r: &mut Proc, texts: &[impl AsRef<str>]) {
    for want in texts {
        let m: RecvMessage = expect(r);
        assert_eq!(
            m.text,
            want.as_ref(),
            "{}: unexpected message {m:?}; output:\n{}",
            r.name,
            r.output()
        );
    }
}

/// The text of the next message of `r`.
fn next_text(r: &mut Proc) -> String {
    expect::<RecvMessage>(r).text
}

#[test]
fn receivers_share_a_port_and_each_gets_only_its_own_group() {
    let Some(lan) = lab(2) else {
        return;
    };
    let h1 = lan.host(1);
    let g1 = ["--group", "239.1.1.1", "--port", "10000"];
    let g2 = ["--group", "239.1.1.2", "--port", "10000"];
    let mut a = start(h1, "a", &[&["recv"][..], &g1].concat());
    let mut b = start(h1, "b", &[&["recv"][..], &g1].concat());
    let mut c = start(h1, "c", &[&["recv"][..], &g2].concat());

    let s1 = send(
        lan.host(0),
        &[&["for group 1", "--wait", "1s"][..], &g1].concat(),
    );
    assert_eq!(s1.acks, 2, "both receivers of group 1 answer: {s1:?}");
    assert_eq!(s1.responders, [at(h1, 10000)]);
    let s2 = send(
        lan.host(0),
        &[&["for group 2", "--wait", "1s"][..], &g2].concat(),
    );
    assert_eq!(s2.acks, 1, "only the group 2 receiver answers: {s2:?}");

    // More group 2 datagrams, each on a new flow, then a last one to group 1.
    // Group 1's receivers must see nothing between their two messages, and the
    // group 2 receiver every group 2 datagram, in order.
    let more = send_fresh_flows(lan.host(0), "for group 2", &g2);
    send(lan.host(0), &[&["group 1 again"][..], &g1].concat());

    for r in [&mut a, &mut b] {
        expect_texts(r, &["for group 1", "group 1 again"]);
    }
    // With IP_MULTICAST_ALL on, c would have seen group 1's datagram first.
    expect_texts(&mut c, &[&["for group 2".to_string()][..], &more].concat());
}

/// The source-specific group (232.0.0.0/8) of the SSM tests.
const SSM_GROUP: [&str; 4] = ["--group", "232.1.2.3", "--port", "10000"];

/// `mcast recv ARGS…` on `rx`, joined to [`SSM_GROUP`] for `source` only.
fn ssm_receiver(rx: &Host, name: &str, source: &Host, args: &[&str]) -> Proc {
    let src = source.ipv4().to_string();
    let join = [&["recv", "--source", &src][..], &SSM_GROUP, args].concat();
    start(rx, name, &join)
}

#[test]
fn ssm_receivers_sharing_a_group_and_port_each_get_only_their_source() {
    let Some(lan) = lab(3) else {
        return;
    };
    let (s0, s2, rx) = (lan.host(0), lan.host(2), lan.host(1));
    let mut x = ssm_receiver(rx, "x", s0, &["--no-ack"]);
    let mut y = ssm_receiver(rx, "y", s2, &["--no-ack"]);

    let from0 = send_fresh_flows(s0, "from host 0", &SSM_GROUP);
    let from2 = send_fresh_flows(s2, "from host 2", &SSM_GROUP);
    expect_texts(&mut x, &from0);
    expect_texts(&mut y, &from2);
}

#[test]
fn ssm_join_receives_only_from_the_chosen_source() {
    let Some(lan) = lab(3) else {
        return;
    };
    let (good, bad, rx) = (lan.host(0), lan.host(1), lan.host(2));
    let group = SSM_GROUP;
    let mut ssm = ssm_receiver(rx, "ssm", good, &[]);
    // Any-source control on another port shows the other source's datagram does arrive.
    let asm_group = ["--group", "232.1.2.3", "--port", "10009", "--no-ack"];
    let mut asm = start(rx, "asm", &[&["recv"][..], &asm_group].concat());

    let s = send(
        bad,
        &[&["from the wrong source", "--wait", "500ms"][..], &group].concat(),
    );
    assert_eq!(
        s.acks, 0,
        "the SSM receiver must ignore other sources: {s:?}"
    );
    send(
        bad,
        &[
            &["control", "--port", "10009"][..],
            &["--group", "232.1.2.3"],
        ]
        .concat(),
    );
    assert_eq!(next_text(&mut asm), "control");

    let s = send(
        good,
        &[&["from the right source", "--wait", "1s"][..], &group].concat(),
    );
    assert_eq!(s.acks, 1, "{s:?}");
    let m: RecvMessage = expect(&mut ssm);
    assert_eq!(m.text, "from the right source");
    assert_eq!(m.from.ip(), good.ipv4());
}

#[test]
fn ttl_and_loop_options_take_effect() {
    let Some(lan) = lab(2) else {
        return;
    };
    let (h0, h1) = (lan.host(0), lan.host(1));
    let (local, remote) = (at(h0, 10000), at(h1, 10000));
    let mut r0 = start(h0, "local", &["recv"]);
    let mut r1 = start(h1, "remote", &["recv"]);
    let text_and_ttl = |r: &mut Proc| {
        let m: RecvMessage = expect(r);
        (m.text, m.ttl)
    };

    // TTL 7: both answer (loopback is on by default); the remote sees TTL 7.
    let s = send(h0, &["ttl7", "--ttl", "7", "--wait", "1s"]);
    assert_eq!(s.responders, sorted([local, remote]), "{s:?}");
    assert_eq!(text_and_ttl(&mut r1), ("ttl7".into(), Some(7)));
    assert_eq!(next_text(&mut r0), "ttl7");

    // TTL 0 never leaves the host.
    let s = send(h0, &["ttl0", "--ttl", "0", "--wait", "1s"]);
    assert_eq!(s.responders, [local], "{s:?}");
    assert_eq!(next_text(&mut r0), "ttl0");

    // --no-loop: our own host's receiver stays silent.
    let s = send(h0, &["noloop", "--no-loop", "--wait", "1s"]);
    assert_eq!(s.responders, [remote], "{s:?}");

    // A last default send: the next message of each receiver shows what it missed.
    let s = send(h0, &["last", "--wait", "1s"]);
    assert_eq!(s.acks, 2, "{s:?}");
    assert_eq!(
        next_text(&mut r0),
        "last",
        "local receiver got the --no-loop datagram"
    );
    assert_eq!(
        next_text(&mut r1),
        "noloop",
        "remote receiver got the TTL 0 datagram"
    );
    assert_eq!(text_and_ttl(&mut r1), ("last".into(), Some(1)));
}

fn sorted<const N: usize>(mut v: [SocketAddr; N]) -> [SocketAddr; N] {
    v.sort();
    v
}

#[test]
fn ipv6_groups_work_with_iface_by_name_and_by_address() {
    let Some(lan) = lab_with(3, IPV6) else {
        return;
    };
    let (h0, h1, h2) = (lan.host(0), lan.host(1), lan.host(2));
    let h2_addr = h2.ipv6().unwrap().to_string();
    for group in ["ff15::4242", "ff02::4242"] {
        let args = ["recv", "--group", group, "--port", "10000", "--count", "1"];
        let mut r1 = start(h1, "r1", &[&args[..], &["--iface", "eth0"]].concat());
        let mut r2 = start(h2, "r2", &[&args[..], &["--iface", &h2_addr]].concat());
        let s = send(
            h0,
            &[
                "hello v6", "--group", group, "--iface", "eth0", "--ttl", "3", "--wait", "1s",
            ],
        );
        assert_eq!(s.acks, 2, "{group}: {s:?}");
        for r in [&mut r1, &mut r2] {
            let m: RecvMessage = expect(r);
            assert_eq!(m.text, "hello v6");
            assert_eq!(m.ttl, Some(3), "hop limit");
            assert!(m.from.is_ipv6(), "an IPv6 sender: {m:?}");
        }
    }
}

#[test]
fn recv_survives_odd_datagrams_and_stops_cleanly_on_ctrl_c() {
    let Some(lan) = lab(2) else {
        return;
    };
    let mut r = start(lan.host(1), "recv", &["recv", "--no-ack"]);
    // Empty, binary, escape sequences and the largest possible datagram.
    let mut big = mcast(lan.host(0), &["send", "-", "--json"]);
    big.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = big.spawn().unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&vec![b'z'; 65_507]).unwrap();
    }
    assert!(child.wait().unwrap().success());
    send(lan.host(0), &["\x1b[2J\x07bell\r\n"]);
    assert_eq!(expect::<RecvMessage>(&mut r).bytes, 65_507);
    assert_eq!(next_text(&mut r), "\\u{1b}[2J\\u{7}bell\\r\\n");

    r.signal(libc::SIGINT);
    let summary: RecvSummary = expect(&mut r);
    assert_eq!(summary.received, 2);
    assert_eq!(summary.acked, 0);
    assert_eq!(r.wait_exit(T).unwrap().code(), Some(0));
}

#[test]
fn repeated_sends_are_each_acked_and_recv_times_out_when_idle() {
    let Some(lan) = lab(2) else {
        return;
    };
    let mut r = start(lan.host(1), "recv", &["recv", "--timeout", "1500ms"]);
    let s = send(
        lan.host(0),
        &[
            "again",
            "--count",
            "3",
            "--interval",
            "100ms",
            "--wait",
            "1s",
        ],
    );
    assert_eq!((s.sent, s.acks), (3, 3), "{s:?}");
    for _ in 0..3 {
        assert_eq!(next_text(&mut r), "again");
    }
    // Nothing more arrives: the idle timeout ends the receiver with its summary.
    assert_eq!(expect::<RecvSummary>(&mut r).received, 3);
    assert_eq!(r.wait_exit(T).unwrap().code(), Some(0));
}

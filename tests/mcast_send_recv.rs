//! `mcast send` / `mcast recv` between namespace hosts on a bridge: acks from
//! several hosts (one a Python receiver), shared ports, SSM, TTL, loopback,
//! IPv6 and a clean stop on Ctrl-C. Needs root (skips otherwise).

mod mcast_support;

use lanswarm::netns::skip_unless_root;
use lanswarm::process::Proc;
use mcast_support::*;

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

#[test]
fn send_collects_acks_from_three_receivers_one_in_python() {
    if skip_unless_root("send_collects_acks_from_three_receivers_one_in_python") {
        return;
    }
    let lan = lan(4);
    let dir = tempfile::tempdir().unwrap();
    let mut r1 = start_joined(lan.host(1), "recv1", &["recv", "--count", "1"]);
    let mut r2 = start_joined(
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
    py.expect_event("joined", T);

    let summary = send(lan.host(0), &["very important data", "--wait", "1s"]);
    assert_eq!(summary["sent"], 1);
    assert_eq!(summary["acks"], 3, "{summary}");
    let expected: Vec<String> = (1..=3)
        .map(|i| format!("{}:10000", lan.host(i).ipv4()))
        .collect();
    assert_eq!(responders(&summary), expected);

    for r in [&mut r1, &mut r2] {
        let m = next_message(r);
        assert_eq!(m["text"], "very important data");
        assert_eq!(m["bytes"], 19);
        assert_eq!(m["ttl"], 1, "default TTL is 1");
        assert!(m["from"]
            .as_str()
            .unwrap()
            .starts_with(&lan.host(0).ipv4().to_string()));
        assert_eq!(r.expect_event("summary", T)["acked"], 1);
        assert!(r.wait_exit(T).unwrap().success());
    }
    // Raw mode: the Python receiver sees exactly the message bytes.
    let m = py.expect_event("message", T);
    assert_eq!(m["hex"], hex(b"very important data"));
    assert_eq!(m["from"], lan.host(0).ipv4().to_string());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn python_sender_is_printed_and_acked_by_mcast_recv() {
    if skip_unless_root("python_sender_is_printed_and_acked_by_mcast_recv") {
        return;
    }
    let lan = lan(2);
    let dir = tempfile::tempdir().unwrap();
    let mut r = start_joined(
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
    let m = next_message(&mut r);
    assert_eq!(m["text"], "Hello Everybody");
    assert_eq!(m["ttl"], 255);
    let reply = py.expect_event("reply", T);
    assert_eq!(reply["hex"], hex(b"ack"));
    assert_eq!(reply["from"], lan.host(1).ipv4().to_string());
    assert_eq!(
        reply["port"], 10001,
        "the ack comes from the receiver's bound port"
    );
}

/// Datagrams sent to one group by separate `mcast send` processes. Each
/// process sends from a fresh ephemeral port, so the kernel computes a fresh
/// flow hash for every datagram: if it ever load-balanced a group's datagrams
/// across the sockets sharing the port (as it does within an `SO_REUSEPORT`
/// group), some of these would land on the wrong receiver.
const FRESH_FLOWS: usize = 8;

/// Sends `text #k` for k in 1..=FRESH_FLOWS from `host`, each from a new process.
fn send_fresh_flows(host: &lanswarm::netns::Host, text: &str, args: &[&str]) -> Vec<String> {
    (1..=FRESH_FLOWS)
        .map(|k| {
            let msg = format!("{text} #{k}");
            let s = send(host, &[&[msg.as_str()][..], args].concat());
            assert_eq!(s["sent"], 1, "{s}");
            msg
        })
        .collect()
}

/// Asserts that the next messages of `r` are exactly `texts`, in order.
fn expect_texts(r: &mut Proc, texts: &[String]) {
    for want in texts {
        let m = next_message(r);
        assert_eq!(
            m["text"].as_str(),
            Some(want.as_str()),
            "{}: unexpected message {m}; output:\n{}",
            r.name,
            r.output()
        );
    }
}

#[test]
fn receivers_share_a_port_and_each_gets_only_its_own_group() {
    if skip_unless_root("receivers_share_a_port_and_each_gets_only_its_own_group") {
        return;
    }
    let lan = lan(2);
    let h1 = lan.host(1);
    let g1 = ["--group", "239.1.1.1", "--port", "10000"];
    let g2 = ["--group", "239.1.1.2", "--port", "10000"];
    let mut a = start_joined(h1, "a", &[&["recv"][..], &g1].concat());
    let mut b = start_joined(h1, "b", &[&["recv"][..], &g1].concat());
    let mut c = start_joined(h1, "c", &[&["recv"][..], &g2].concat());

    let s1 = send(
        lan.host(0),
        &[&["for group 1", "--wait", "1s"][..], &g1].concat(),
    );
    assert_eq!(s1["acks"], 2, "both receivers of group 1 answer: {s1}");
    assert_eq!(responders(&s1), vec![format!("{}:10000", h1.ipv4())]);
    let s2 = send(
        lan.host(0),
        &[&["for group 2", "--wait", "1s"][..], &g2].concat(),
    );
    assert_eq!(s2["acks"], 1, "only the group 2 receiver answers: {s2}");

    // More group 2 datagrams, each on a new flow, then a last one to group 1.
    // Group 1's receivers must see nothing between their two messages, and the
    // group 2 receiver every group 2 datagram, in order.
    let more = send_fresh_flows(lan.host(0), "for group 2", &g2);
    send(lan.host(0), &[&["group 1 again"][..], &g1].concat());

    for r in [&mut a, &mut b] {
        expect_texts(r, &["for group 1".into(), "group 1 again".into()]);
    }
    // With IP_MULTICAST_ALL on, c would have seen group 1's datagram first.
    expect_texts(&mut c, &[&["for group 2".to_string()][..], &more].concat());
}

#[test]
fn ssm_receivers_sharing_a_group_and_port_each_get_only_their_source() {
    if skip_unless_root("ssm_receivers_sharing_a_group_and_port_each_get_only_their_source") {
        return;
    }
    let lan = lan(3);
    let (s0, s2, rx) = (lan.host(0), lan.host(2), lan.host(1));
    let group = ["--group", "232.1.2.3", "--port", "10000"];
    let recv_from = |name: &str, src: &lanswarm::netns::Host| {
        let src = src.ipv4().to_string();
        start_joined(
            rx,
            name,
            &[&["recv", "--no-ack", "--source", &src][..], &group].concat(),
        )
    };
    let mut x = recv_from("x", s0);
    let mut y = recv_from("y", s2);

    let from0 = send_fresh_flows(s0, "from host 0", &group);
    let from2 = send_fresh_flows(s2, "from host 2", &group);
    expect_texts(&mut x, &from0);
    expect_texts(&mut y, &from2);
}

#[test]
fn ssm_join_receives_only_from_the_chosen_source() {
    if skip_unless_root("ssm_join_receives_only_from_the_chosen_source") {
        return;
    }
    let lan = lan(3);
    let (good, bad, rx) = (lan.host(0), lan.host(1), lan.host(2));
    let group = ["--group", "232.1.2.3", "--port", "10000"];
    let src = good.ipv4().to_string();
    let mut ssm = start_joined(
        rx,
        "ssm",
        &[&["recv", "--source", &src][..], &group].concat(),
    );
    // Any-source control on another port shows the other source's datagram does arrive.
    let asm_group = ["--group", "232.1.2.3", "--port", "10009", "--no-ack"];
    let mut asm = start_joined(rx, "asm", &[&["recv"][..], &asm_group].concat());

    let s = send(
        bad,
        &[&["from the wrong source", "--wait", "500ms"][..], &group].concat(),
    );
    assert_eq!(
        s["acks"], 0,
        "the SSM receiver must ignore other sources: {s}"
    );
    send(
        bad,
        &[
            &["control", "--port", "10009"][..],
            &["--group", "232.1.2.3"],
        ]
        .concat(),
    );
    assert_eq!(next_message(&mut asm)["text"], "control");

    let s = send(
        good,
        &[&["from the right source", "--wait", "1s"][..], &group].concat(),
    );
    assert_eq!(s["acks"], 1, "{s}");
    let m = next_message(&mut ssm);
    assert_eq!(m["text"], "from the right source");
    assert!(m["from"].as_str().unwrap().starts_with(&src));
}

#[test]
fn ttl_and_loop_options_take_effect() {
    if skip_unless_root("ttl_and_loop_options_take_effect") {
        return;
    }
    let lan = lan(2);
    let (h0, h1) = (lan.host(0), lan.host(1));
    let local = format!("{}:10000", h0.ipv4());
    let remote = format!("{}:10000", h1.ipv4());
    let mut r0 = start_joined(h0, "local", &["recv"]);
    let mut r1 = start_joined(h1, "remote", &["recv"]);

    // TTL 7: both answer (loopback is on by default); the remote sees TTL 7.
    let s = send(h0, &["ttl7", "--ttl", "7", "--wait", "1s"]);
    assert_eq!(responders(&s), sorted(&[&local, &remote]), "{s}");
    let m = next_message(&mut r1);
    assert_eq!(
        (m["text"].as_str(), m["ttl"].as_u64()),
        (Some("ttl7"), Some(7))
    );
    assert_eq!(next_message(&mut r0)["text"], "ttl7");

    // TTL 0 never leaves the host.
    let s = send(h0, &["ttl0", "--ttl", "0", "--wait", "1s"]);
    assert_eq!(responders(&s), vec![local.clone()], "{s}");
    assert_eq!(next_message(&mut r0)["text"], "ttl0");

    // --no-loop: our own host's receiver stays silent.
    let s = send(h0, &["noloop", "--no-loop", "--wait", "1s"]);
    assert_eq!(responders(&s), vec![remote.clone()], "{s}");

    // A last default send: the next message of each receiver shows what it missed.
    let s = send(h0, &["last", "--wait", "1s"]);
    assert_eq!(s["acks"], 2, "{s}");
    assert_eq!(
        next_message(&mut r0)["text"],
        "last",
        "local receiver got the --no-loop datagram"
    );
    assert_eq!(
        next_message(&mut r1)["text"],
        "noloop",
        "remote receiver got the TTL 0 datagram"
    );
    let m = next_message(&mut r1);
    assert_eq!(
        (m["text"].as_str(), m["ttl"].as_u64()),
        (Some("last"), Some(1))
    );
}

fn sorted(v: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn ipv6_groups_work_with_iface_by_name_and_by_address() {
    if skip_unless_root("ipv6_groups_work_with_iface_by_name_and_by_address") {
        return;
    }
    let lan = lan_v6(3);
    let (h0, h1, h2) = (lan.host(0), lan.host(1), lan.host(2));
    let h2_addr = h2.ipv6().unwrap().to_string();
    for group in ["ff15::4242", "ff02::4242"] {
        let args = ["recv", "--group", group, "--port", "10000", "--count", "1"];
        let mut r1 = start_joined(h1, "r1", &[&args[..], &["--iface", "eth0"]].concat());
        let mut r2 = start_joined(h2, "r2", &[&args[..], &["--iface", &h2_addr]].concat());
        let s = send(
            h0,
            &[
                "hello v6", "--group", group, "--iface", "eth0", "--ttl", "3", "--wait", "1s",
            ],
        );
        assert_eq!(s["acks"], 2, "{group}: {s}");
        for r in [&mut r1, &mut r2] {
            let m = next_message(r);
            assert_eq!(m["text"], "hello v6");
            assert_eq!(m["ttl"], 3, "hop limit");
            assert!(
                m["from"].as_str().unwrap().starts_with('['),
                "an IPv6 sender: {m}"
            );
        }
    }
}

#[test]
fn recv_survives_odd_datagrams_and_stops_cleanly_on_ctrl_c() {
    if skip_unless_root("recv_survives_odd_datagrams_and_stops_cleanly_on_ctrl_c") {
        return;
    }
    let lan = lan(2);
    let mut r = start_joined(lan.host(1), "recv", &["recv", "--no-ack"]);
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
    assert_eq!(next_message(&mut r)["bytes"], 65_507);
    let m = next_message(&mut r);
    assert_eq!(m["text"], "\\u{1b}[2J\\u{7}bell\\r\\n");

    r.signal(libc::SIGINT);
    let summary = r.expect_event("summary", T);
    assert_eq!(summary["received"], 2);
    assert_eq!(summary["acked"], 0);
    assert_eq!(r.wait_exit(T).unwrap().code(), Some(0));
}

#[test]
fn repeated_sends_are_each_acked_and_recv_times_out_when_idle() {
    if skip_unless_root("repeated_sends_are_each_acked_and_recv_times_out_when_idle") {
        return;
    }
    let lan = lan(2);
    let mut r = start_joined(lan.host(1), "recv", &["recv", "--timeout", "1500ms"]);
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
    assert_eq!(
        (s["sent"].as_u64(), s["acks"].as_u64()),
        (Some(3), Some(3)),
        "{s}"
    );
    for _ in 0..3 {
        assert_eq!(next_message(&mut r)["text"], "again");
    }
    // Nothing more arrives: the idle timeout ends the receiver with its summary.
    assert_eq!(r.expect_event("summary", T)["received"], 3);
    assert_eq!(r.wait_exit(T).unwrap().code(), Some(0));
}

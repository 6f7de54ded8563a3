//! The `lanswarm::netns` test hosts used by the mcast tests: hosts reach each
//! other over the bridge, rate limits are installed, and everything is gone
//! after drop, even when a test panics. Needs root (skips otherwise).

use lanswarm::mcast_lab::{lab_with, IPV6};
use lanswarm::netns::{skip_unless_root, LanOptions, Netns};
use std::time::Duration;

const SERVER: &str = r#"
import socket, sys
s = socket.create_server(("::", 5000), family=socket.AF_INET6, dualstack_ipv6=True)
print("ready", flush=True)
for _ in range(int(sys.argv[1])):
    c, _ = s.accept()
    c.sendall(b"hi")
    c.close()
"#;

const CLIENT: &str = r#"
import socket, sys
print(socket.create_connection((sys.argv[1], 5000), timeout=10).recv(2).decode())
"#;

fn namespaces() -> String {
    String::from_utf8(
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

#[test]
fn lan_hosts_reach_each_other_and_vanish_on_drop() {
    let Some(lan) = lab_with(
        3,
        LanOptions {
            rate_mbit: Some(50),
            ..IPV6
        },
    ) else {
        return;
    };
    let names: Vec<String> = lan.hosts().iter().map(|h| h.name().to_owned()).collect();
    assert_eq!(lan.clients().len(), 2);
    // A TCP server on the server host, reached by every client over v4 and v6.
    let mut server = lanswarm::process::Proc::spawn("server", {
        let mut cmd = lan.server().command("python3");
        cmd.args(["-u", "-c", SERVER, &(2 * lan.clients().len()).to_string()]);
        cmd
    });
    server.expect_line("ready", Duration::from_secs(15));
    for client in lan.clients() {
        let v4 = lan.server().ipv4().to_string();
        let v6 = lan.server().ipv6().unwrap().to_string();
        for addr in [v4, v6] {
            let out = client
                .command("python3")
                .args(["-c", CLIENT, &addr])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} cannot reach {addr}: {out:?}",
                client.name()
            );
            assert_eq!(out.stdout, b"hi\n");
        }
    }
    let qdisc = lan.host(1).ns().ip(&["link", "show", "eth0"]).unwrap();
    assert!(qdisc.contains("qdisc tbf"), "{qdisc}");
    let routes = lan.host(2).ns().ip(&["route"]).unwrap();
    assert!(routes.contains("224.0.0.0/4 dev eth0"), "{routes}");
    let bridge = lan.bridge().name().to_owned();
    drop(server);
    drop(lan);
    let left = namespaces();
    for name in names.iter().chain([&bridge]) {
        assert!(!left.contains(name.as_str()), "{name} left behind: {left}");
    }
}

#[test]
fn namespaces_are_deleted_when_a_test_panics() {
    if skip_unless_root("namespaces_are_deleted_when_a_test_panics") {
        return;
    }
    let mut name = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = Netns::new("panic").unwrap();
        name = ns.name().to_owned();
        assert!(namespaces().contains(&name));
        panic!("simulated test failure");
    }));
    assert!(result.is_err());
    assert!(
        !name.is_empty() && !namespaces().contains(&name),
        "{name} survived the panic"
    );
}

//! Shared helpers for the `mcast_*` integration tests: running `mcast` (and
//! Python scripts) on namespace hosts and reading their JSON events.

#![allow(dead_code)] // each test file uses a different subset

use lanswarm::netns::{Host, Lan, LanOptions};
use lanswarm::process::{bin_path, Proc};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Upper bound for any single expected event; generous for a loaded debug build.
pub const T: Duration = Duration::from_secs(15);

/// A LAN of `n` hosts with IPv4 only.
pub fn lan(n: usize) -> Lan {
    Lan::new(n, LanOptions::default()).expect("building the test LAN")
}

/// A LAN of `n` hosts with IPv4 and IPv6 addresses.
pub fn lan_v6(n: usize) -> Lan {
    let opts = LanOptions {
        ipv6: true,
        ..LanOptions::default()
    };
    Lan::new(n, opts).expect("building the test LAN")
}

/// `mcast ARGS…` on `host`.
pub fn mcast(host: &Host, args: &[&str]) -> Command {
    let mut cmd = host.command(bin_path("mcast"));
    cmd.args(args);
    cmd
}

/// Starts `mcast ARGS… --json` on `host` and waits until it has joined its group.
pub fn start_joined(host: &Host, name: &str, args: &[&str]) -> Proc {
    let mut cmd = mcast(host, args);
    cmd.arg("--json");
    let mut p = Proc::spawn(name, cmd);
    p.expect_event("joined", T);
    p
}

/// Runs `mcast send ARGS… --json` on `host` to completion and returns its summary.
pub fn send(host: &Host, args: &[&str]) -> Value {
    let mut cmd = mcast(host, &["send"]);
    cmd.args(args).arg("--json");
    let mut p = Proc::spawn("send", cmd);
    let summary = p.expect_event("summary", T);
    let status = p.wait_exit(T).unwrap();
    assert!(status.success(), "send failed: {status}\n{}", p.output());
    summary
}

/// The sorted `responders` of a send summary.
pub fn responders(summary: &Value) -> Vec<String> {
    let mut r: Vec<String> = summary["responders"]
        .as_array()
        .expect("responders array")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    r.sort();
    r
}

/// Waits for the next `message` event of a receiver and returns it.
pub fn next_message(p: &mut Proc) -> Value {
    p.expect_event("message", T)
}

/// Writes a Python script into `dir` and returns a command running it on `host`.
pub fn python(host: &Host, dir: &Path, name: &str, source: &str, args: &[&str]) -> Command {
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    let mut cmd = host.command("python3");
    cmd.arg("-u").arg(&path).args(args);
    cmd
}

/// A process on `host` whose stdin is a FIFO we write to (the lead's `Proc`
/// closes stdin, so a shell opens the FIFO and execs `mcast`).
pub struct Interactive {
    pub proc: Proc,
    stdin: Option<File>,
}

impl Interactive {
    /// Starts `mcast ARGS…` on `host` with stdin fed by [`Interactive::line`].
    pub fn spawn(host: &Host, dir: &Path, name: &str, args: &[&str]) -> Interactive {
        let fifo = dir.join(format!("{name}.stdin"));
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let mut cmd = host.command("sh");
        cmd.arg("-c")
            .arg(r#"f="$1"; shift; exec "$0" "$@" < "$f""#)
            .arg(bin_path("mcast"))
            .arg(&fifo)
            .args(args);
        let proc = Proc::spawn(name, cmd);
        // Blocks until the shell opened the reading end.
        let stdin = OpenOptions::new().write(true).open(&fifo).unwrap();
        Interactive {
            proc,
            stdin: Some(stdin),
        }
    }

    /// Types one line.
    pub fn line(&mut self, text: &[u8]) {
        use std::io::Write as _;
        let f = self.stdin.as_mut().expect("stdin still open");
        f.write_all(text).unwrap();
        f.write_all(b"\n").unwrap();
        f.flush().unwrap();
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

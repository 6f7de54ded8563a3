//! The `mcast` lab: `mcast` (and Python scripts) run on [`netns`](crate::netns) hosts, their
//! JSON lines read back into the program's own [`Event`] enum.
//!
//! ```no_run
//! use lanswarm::mcast_lab::{expect, lab, send, start};
//! use mcast::events::RecvMessage;
//!
//! let Some(lan) = lab(2) else { return };
//! let mut r = start(lan.host(1), "recv", &["recv"]);
//! assert_eq!(send(lan.host(0), &["hi", "--wait", "1s"]).acks, 1);
//! assert_eq!(expect::<RecvMessage>(&mut r).text, "hi");
//! ```

use crate::netns::{skip_unless_root, Host, Lan, LanOptions};
use crate::process::{bin_path, Proc};
use mcast::events::{Event, ProbeSendSummary, SendSummary};
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Upper bound for any single expected event; generous for a loaded debug build.
pub const T: Duration = Duration::from_secs(15);

/// A LAN of `n` IPv4 hosts for the running test, or `None` (after saying
/// why) when namespaces cannot be made: `let Some(lan) = lab(2) else { return };`
pub fn lab(n: usize) -> Option<Lan> {
    lab_with(n, LanOptions::default())
}

/// [`lab`] with options (IPv6, a rate limit).
pub fn lab_with(n: usize, opts: LanOptions) -> Option<Lan> {
    // The test harness names each test's thread after the test.
    let thread = std::thread::current();
    if skip_unless_root(thread.name().unwrap_or("this test")) {
        return None;
    }
    Some(Lan::new(n, opts).expect("building the test LAN"))
}

/// IPv4 and IPv6 addresses, no rate limit.
pub const IPV6: LanOptions = LanOptions {
    rate_mbit: None,
    ipv6: true,
};

/// `mcast ARGS…` on `host`.
pub fn mcast(host: &Host, args: &[&str]) -> Command {
    let mut cmd = host.command(bin_path("mcast"));
    cmd.args(args);
    cmd
}

/// `mcast ARGS… --json` on `host`, running.
pub fn spawn(host: &Host, name: &str, args: &[&str]) -> Proc {
    let mut cmd = mcast(host, args);
    cmd.arg("--json");
    Proc::spawn(name, cmd)
}

/// Waits (at most [`T`]) for the next event of shape `E` (a payload of
/// [`Event`], e.g. `RecvMessage`, `ChatSummary`) and returns it.
pub fn expect<E: TryFrom<Event>>(p: &mut Proc) -> E {
    p.wait_event(T, |e: Event| E::try_from(e).ok())
}

/// Waits for a `joined` event of any subcommand.
pub fn joined(p: &mut Proc) {
    p.wait_event(T, |e: Event| matches!(e, Event::Joined(_)).then_some(()))
}

/// Starts `mcast ARGS… --json` on `host` and waits until it has joined its group.
pub fn start(host: &Host, name: &str, args: &[&str]) -> Proc {
    let mut p = spawn(host, name, args);
    joined(&mut p);
    p
}

/// Runs `mcast ARGS… --json` on `host` to completion (exit 0) and returns
/// its summary.
pub fn run_to_summary<S: TryFrom<Event>>(host: &Host, name: &str, args: &[&str]) -> S {
    let mut p = spawn(host, name, args);
    let summary = expect(&mut p);
    let status = p.wait_exit(T).unwrap();
    assert!(status.success(), "{name} failed: {status}\n{}", p.output());
    summary
}

/// Runs `mcast send ARGS…` on `host` to completion; returns its summary.
pub fn send(host: &Host, args: &[&str]) -> SendSummary {
    run_to_summary(host, "send", &[&["send"][..], args].concat())
}

/// Runs `mcast probe send ARGS…` on `host` to completion; returns its summary.
pub fn probe_send(host: &Host, args: &[&str]) -> ProbeSendSummary {
    run_to_summary(host, "probe-send", &[&["probe", "send"][..], args].concat())
}

/// The name in the next `member_joined` event of a chat member.
pub fn member_joined(p: &mut Proc) -> String {
    p.wait_event(T, |e: Event| match e {
        Event::MemberJoined { name, .. } => Some(name),
        _ => None,
    })
}

/// The name in the next `member_left` event of a chat member.
pub fn member_left(p: &mut Proc) -> String {
    p.wait_event(T, |e: Event| match e {
        Event::MemberLeft { name, .. } => Some(name),
        _ => None,
    })
}

/// Writes a Python script into `dir` and returns a command running it on `host`.
pub fn python(host: &Host, dir: &Path, name: &str, source: &str, args: &[&str]) -> Command {
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    let mut cmd = host.command("python3");
    cmd.arg("-u").arg(&path).args(args);
    cmd
}

/// A process on `host` whose stdin is a FIFO we write to ([`Proc`] closes
/// stdin, so a shell opens the FIFO and execs `mcast`).
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

/// A process whose stdout is a pipe we filled before it started: its first
/// write to stdout blocks until [`Stalled::finish`] reads the pipe. That
/// holds the process right at the line that says it is ready, for as long
/// as a test likes: the moment a script that has read that line may signal.
pub struct Stalled {
    child: Child,
    stdout: File,
    /// Open until the process ends (chat would leave on end of input).
    _stdin: ChildStdin,
}

/// What a [`Stalled`] process printed and how it ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub events: Vec<Event>,
    pub stderr: String,
}

impl Stalled {
    /// Starts `mcast ARGS… --json` on `host` with stdout held full.
    pub fn spawn(host: &Host, args: &[&str]) -> Stalled {
        let (read, write) = full_pipe();
        let mut cmd = mcast(host, args);
        cmd.arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning mcast");
        // Our copy of the write end goes with `cmd`: the pipe ends with the process.
        drop(cmd);
        Stalled {
            _stdin: child.stdin.take().expect("piped stdin"),
            child,
            stdout: File::from(read),
        }
    }

    /// Waits until one of the process's threads sits in `write(1, …)`:
    /// it has said it is ready, and nobody has read that yet.
    pub fn wait_blocked_on_stdout(&mut self) {
        let tasks = format!("/proc/{}/task", self.child.id());
        let writing = format!("{} 0x1 ", libc::SYS_write);
        let deadline = Instant::now() + T;
        loop {
            let blocked = std::fs::read_dir(&tasks).into_iter().flatten().any(|t| {
                t.ok()
                    .and_then(|t| std::fs::read_to_string(t.path().join("syscall")).ok())
                    .is_some_and(|s| s.starts_with(&writing))
            });
            if blocked {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mcast exited ({status}) before writing to stdout");
            }
            assert!(Instant::now() < deadline, "mcast never wrote to stdout");
            // Polling the process's state in /proc (there is no event for
            // "blocked in write"); nothing here is ordered by the sleep.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the pid of our own child and a valid signal.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Reads stdout and stderr until the process ends (at most [`T`]);
    /// returns its exit status and events.
    pub fn finish(self) -> Ended {
        let Stalled {
            mut child,
            mut stdout,
            _stdin,
        } = self;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            let mut err = String::new();
            let _ = stdout.read_to_string(&mut out);
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = tx.send((child.wait(), out, err));
        });
        let Ok((status, out, stderr)) = rx.recv_timeout(T) else {
            // SAFETY: kill(2) with the pid of our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("mcast still running after {T:?}");
        };
        // The filler is blank lines; every other line is an event.
        let events = out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}\n{stderr}")))
            .collect();
        Ended {
            status: status.expect("waiting for mcast"),
            events,
            stderr,
        }
    }
}

/// A pipe (both ends close-on-exec) whose buffer is full of newlines.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills in two new descriptors, which we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are fresh descriptors owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_GETPIPE_SZ on a pipe we own.
    let size = unsafe { libc::fcntl(fds[1], libc::F_GETPIPE_SZ) };
    assert!(size > 0, "F_GETPIPE_SZ");
    let mut file = File::from(write);
    file.write_all(&vec![b'\n'; size as usize]).unwrap();
    (read, file.into())
}

/// A field of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`): what an mcast
/// process holds while it is under attack.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

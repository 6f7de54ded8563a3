//! Spawning the lanswarm binaries and waiting on their output.
//!
//! Tests synchronise on what a process prints, never on sleeps: [`Proc`]
//! reads the child's stdout and stderr on background threads and lets a test
//! wait, with a timeout, for the first line that matches.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Path of a workspace binary (`tracker`, `peer`, `mcast`), built next to
/// the running test or example (`target/<profile>/`).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "binary {} not found: build it first (`cargo test --workspace` or `cargo build --workspace`)",
        path.display()
    );
    path
}

/// A `Command` for a workspace binary.
pub fn command(name: &str) -> Command {
    Command::new(bin_path(name))
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A running child process whose output lines can be awaited.
/// The child is killed when this is dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Receiver<(Stream, String)>,
    /// Every line seen so far, for failure messages.
    log: Arc<Mutex<Vec<(Stream, String)>>>,
    /// The threads reading stdout and stderr (finished at end of stream).
    readers: Vec<thread::JoinHandle<()>>,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr piped (stdin closed).
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null());
        Proc::start(name, cmd)
    }

    /// Spawns `cmd` with stdin, stdout and stderr piped; the test types on
    /// the returned stdin (dropping it is the end of input).
    pub fn spawn_with_stdin(name: &str, mut cmd: Command) -> (Proc, ChildStdin) {
        cmd.stdin(Stdio::piped());
        let mut proc = Proc::start(name, cmd);
        let stdin = proc.child.stdin.take().expect("piped stdin");
        (proc, stdin)
    }

    fn start(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name} ({cmd:?}): {e}"));
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let mut readers = Vec::new();
        for (stream, reader) in [
            (
                Stream::Stdout,
                Box::new(out) as Box<dyn std::io::Read + Send>,
            ),
            (Stream::Stderr, Box::new(err)),
        ] {
            let tx = tx.clone();
            let log = log.clone();
            readers.push(thread::spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push((stream, line.clone()));
                    let _ = tx.send((stream, line));
                }
            }));
        }
        Proc {
            name: name.to_string(),
            child,
            lines: rx,
            log,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far, for assertion messages.
    pub fn output(&self) -> String {
        let log = self.log.lock().unwrap();
        let mut s = String::new();
        for (stream, line) in log.iter() {
            s.push_str(match stream {
                Stream::Stdout => "out| ",
                Stream::Stderr => "err| ",
            });
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// Waits for the next line (on either stream) that satisfies `pred`.
    /// Lines that do not match are skipped (they stay in [`Proc::output`]).
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(Stream, &str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) if pred(stream, &line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: timed out after {timeout:?}; output so far:\n{}",
                        self.name,
                        self.output()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{}: exited before the expected line; output:\n{}",
                        self.name,
                        self.output()
                    ))
                }
            }
        }
    }

    /// Waits for a line containing `needle`; panics with the output on timeout.
    pub fn expect_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for(timeout, |_, l| l.contains(needle))
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"))
    }

    /// Waits for the next event on stdout, deserialized into the program's
    /// own event enum `E`, for which `pick` returns `Some`; panics with the
    /// output on timeout (see [`Proc::try_event`]).
    pub fn wait_event<E, T>(&mut self, timeout: Duration, pick: impl FnMut(E) -> Option<T>) -> T
    where
        E: serde::de::DeserializeOwned,
    {
        self.try_event(timeout, pick).unwrap_or_else(|e| {
            panic!(
                "waiting for an event of {}: {e}",
                std::any::type_name::<E>()
            )
        })
    }

    /// Like [`Proc::wait_event`], but an error instead of a panic. A JSON
    /// line with an `"event"` that `E` does not know is an error too (the
    /// kit's own `output_dropped` notice aside): the enum must cover them all.
    pub fn try_event<E, T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(E) -> Option<T>,
    ) -> Result<T, String>
    where
        E: serde::de::DeserializeOwned,
    {
        let mut found = None;
        let mut unknown = None;
        let result = self.wait_for(timeout, |stream, line| {
            if stream != Stream::Stdout {
                return false;
            }
            match serde_json::from_str::<E>(line) {
                Ok(event) => {
                    found = pick(event);
                    found.is_some()
                }
                Err(e) => {
                    let tagged = serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_owned));
                    if tagged.is_some_and(|t| t != lanio::events::OUTPUT_DROPPED) {
                        unknown = Some(format!("{line}: {e}"));
                    }
                    unknown.is_some()
                }
            }
        });
        if let Some(bad) = unknown {
            return Err(format!(
                "{}: an event line that does not decode: {bad}\n{}",
                self.name,
                self.output()
            ));
        }
        result?;
        found.ok_or_else(|| "a matched line was not picked".to_string())
    }

    /// A figure of `/proc/PID/status` in KiB, e.g. `"VmRSS"` or `"VmHWM"`
    /// (the resident set now, and its peak).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("{}: /proc status: {e}", self.name));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{}: no {field} in /proc status", self.name))
    }

    /// Sends a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                self.drain_output(deadline);
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: still running after {timeout:?}; output:\n{}",
                    self.name,
                    self.output()
                ));
            }
            // Polling an exit status; not used to order events between processes.
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// After the exit: lets the readers take in what is still in the pipes,
    /// so that [`Proc::output`] holds everything the process printed (until
    /// `deadline`, in case a grandchild holds a pipe open).
    fn drain_output(&self, deadline: Instant) {
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for the process to exit and returns its status code and peak
    /// resident set size in KiB (from `wait4`'s rusage).
    pub fn wait_with_peak_rss(&mut self) -> (i32, u64) {
        let (code, usage) = self.wait_with_usage();
        (code, usage.peak_rss_kib)
    }

    /// Waits for the process to exit and returns its status code and what
    /// it used (from `wait4`'s rusage).
    pub fn wait_with_usage(&mut self) -> (i32, Usage) {
        wait_usage(self.child.id(), &self.name)
    }
}

/// What a process used, from `wait4`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
    /// User plus system CPU time, seconds.
    pub cpu_secs: f64,
}

/// Seconds in `ticks` of the kernel's clock, the unit `/proc` counts CPU
/// time in (`None` if the tick rate cannot be read).
fn ticks_to_secs(ticks: u64) -> Option<f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// User + system CPU seconds process `pid` has used so far, from
/// `/proc/PID/stat` (`None` once it is gone).
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    ticks_to_secs(ticks)
}

/// CPU seconds the host has taken from this machine since it booted,
/// summed over its cores: *steal* in `/proc/stat`, 0 where there is none.
/// On a shared host it is noise no process here can help.
pub fn host_steal_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    let ticks = cpu
        .split_whitespace()
        .nth(8)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ticks_to_secs(ticks).unwrap_or(0.0)
}

/// Reaps child `pid` (a process this one spawned) and returns its exit code
/// and usage.
pub fn wait_usage(pid: u32, name: &str) -> (i32, Usage) {
    let mut status = 0i32;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid, with valid out-pointers.
    let rc = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert!(rc > 0, "wait4 failed for {name}");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (
        code,
        Usage {
            peak_rss_kib: usage.ru_maxrss as u64,
            cpu_secs: secs(usage.ru_utime) + secs(usage.ru_stime),
        },
    )
}

impl Proc {
    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for the first event of a process that matches a pattern of the
/// program's event enum, and evaluates to the expression after `=>`
/// (`()` when there is none). Panics with the output on timeout.
///
/// ```ignore
/// let addr = expect_event!(server, WAIT, Event::Listening { addr, .. } => addr);
/// expect_event!(leech, STEP, Event::Done(Done::Swarm { .. }));
/// ```
#[macro_export]
macro_rules! expect_event {
    ($proc:expr, $timeout:expr, $pat:pat $(if $guard:expr)? => $val:expr) => {
        $proc.wait_event($timeout, |event| match event {
            $pat $(if $guard)? => Some($val),
            #[allow(unreachable_patterns)]
            _ => None,
        })
    };
    ($proc:expr, $timeout:expr, $pat:pat $(if $guard:expr)?) => {
        $crate::expect_event!($proc, $timeout, $pat $(if $guard)? => ())
    };
}

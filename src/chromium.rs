//! Headless Chromium driven over the DevTools protocol, for browser tests.
//!
//! The browser runs with `--remote-debugging-pipe`: it reads commands on its
//! file descriptor 3 and writes answers and events on 4, each a JSON object
//! ended by a NUL byte. No port, no websocket, nothing else to install. One
//! page is opened ([`Browser::open`]); [`Browser::eval`] runs JavaScript in
//! it, [`Browser::wait_until`] polls an expression, and
//! [`Browser::screenshot`] saves a PNG.
//!
//! [`Browser::launch`] returns `Err(why)` when there is no Chromium or it
//! does not start, so that a test can skip and say why. The browser runs in
//! its own process group, with a fresh profile directory; dropping the
//! [`Browser`] closes it and kills the group.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// Executables tried, in order, when `CHROMIUM` is not set.
const CANDIDATES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Longest wait for one DevTools answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A running headless browser with (after [`Browser::open`]) one page.
pub struct Browser {
    child: Child,
    commands: File,
    answers: Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    profile: tempfile::TempDir,
}

/// The Chromium executable: `$CHROMIUM`, else the first candidate on `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| CANDIDATES.iter().map(move |name| dir.join(name)))
        .find(|p| p.is_file())
}

/// A pipe whose two ends are above fd 9 and close on exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((high(r)?, high(w)?))
}

/// `fd` moved to a number above 9, so that placing the child's 3 and 4
/// never overwrites it.
fn high(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new one or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

impl Browser {
    /// Starts headless Chromium with a `width` × `height` window and waits
    /// until it answers; `Err` says why it cannot be used.
    pub fn launch(width: u32, height: u32) -> Result<Browser, String> {
        let exe =
            find().ok_or("no Chromium found (install the chromium package, or set CHROMIUM)")?;
        let profile = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let (cmd_read, cmd_write) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let (ans_read, ans_write) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let log = File::create(profile.path().join("chromium.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0);
        let (child_in, child_out) = (cmd_read.as_raw_fd(), ans_write.as_raw_fd());
        // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // dup2 leaves the new descriptors open across exec.
                if libc::dup2(child_in, 3) < 0 || libc::dup2(child_out, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        drop((cmd_read, ans_write));
        let (tx, answers) = mpsc::channel();
        let mut from = File::from(ans_read);
        std::thread::spawn(move || {
            // NUL-separated JSON messages, until the browser closes its end.
            let mut pending = Vec::new();
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|&b| b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(value) = serde_json::from_slice(&message[..end]) {
                        if tx.send(value).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            commands: File::from(cmd_write),
            answers,
            next_id: 0,
            session: None,
            profile,
        };
        browser.call("Browser.getVersion", json!({})).map_err(|e| {
            format!(
                "{} does not answer: {e}{}",
                exe.display(),
                browser.log_tail()
            )
        })?;
        Ok(browser)
    }

    /// The end of the browser's own log, for error messages.
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        if tail.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = tail.into_iter().rev().collect();
        format!("\n--- chromium log ---\n{}", lines.join("\n"))
    }

    /// Sends one command (to the page once one is open) and waits for its
    /// answer; events in between are skipped.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            if !method.starts_with("Browser.") && !method.starts_with("Target.") {
                message["sessionId"] = json!(session);
            }
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .map_err(|e| format!("{method}: the browser is gone ({e})"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = match self.answers.recv_timeout(left) {
                Ok(answer) => answer,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{method}: no answer within {CALL_TIMEOUT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("{method}: the browser closed the pipe"))
                }
            };
            if answer["id"] != id {
                continue;
            }
            if let Some(error) = answer.get("error") {
                return Err(format!("{method}: {error}"));
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Opens `url` in a new page, which later calls address.
    pub fn open(&mut self, url: &str) -> Result<(), String> {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"].clone();
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or("attachToTarget gave no sessionId")?;
        self.session = Some(session.to_string());
        self.call("Page.enable", json!({}))?;
        self.call("Page.navigate", json!({"url": url}))?;
        Ok(())
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value; a thrown exception is an error.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("{expression}: {exception}"));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `expression` until it is truthy (not false, null, 0, "" or
    /// undefined) and returns that value, or fails after `timeout`.
    pub fn wait_until(&mut self, expression: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression).unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(format!("still false after {timeout:?}: {expression}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves the whole page (not only the window) as a PNG at `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), String> {
        let metrics = self.call("Page.getLayoutMetrics", json!({}))?;
        let size = &metrics["cssContentSize"];
        let (width, height) = (size["width"].as_f64(), size["height"].as_f64());
        let (Some(width), Some(height)) = (width, height) else {
            return Err(format!("no page size in {metrics}"));
        };
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
        )?;
        let data = shot["data"].as_str().ok_or("no screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("screenshot: {e}"))?;
        std::fs::write(path, png).map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.session = None;
        let _ = self.call("Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The browser's helpers are in its process group.
        let group = self.child.id() as i32;
        // SAFETY: signals the process group this Browser started.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

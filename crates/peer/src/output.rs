//! What the peer tells its user: JSON lines for scripts, or a progress bar
//! and a human summary for people.
//!
//! With `--json`, stdout carries one JSON object per line, each with an
//! `"event"` field. Otherwise a progress bar is drawn on stderr when it is a
//! terminal, and notable events are logged.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// The peer's output sink. Cheap to call from any task.
pub struct Output {
    json: bool,
    bar: Option<ProgressBar>,
    stdout: Mutex<std::io::Stdout>,
}

impl Output {
    /// `total` is the size of the progress bar in bytes.
    pub fn new(json: bool, total: u64) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar
        });
        Self {
            json,
            bar,
            stdout: Mutex::new(std::io::stdout()),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Emits a JSON event (only in `--json` mode). `fields` must be an object.
    pub fn event(&self, event: &str, fields: Value) {
        if !self.json {
            return;
        }
        let mut obj = match fields {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        obj.insert("event".into(), event.into());
        let line = Value::Object(obj).to_string();
        let mut out = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
        // A closed stdout (e.g. `| head`) must not kill the peer.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Updates the progress bar.
    pub fn progress(&self, bytes: u64, peers: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            bar.set_message(format!("{peers} peers"));
        }
    }

    /// Prints a line for a person (stdout, above the bar), unless in JSON mode.
    pub fn say(&self, text: &str) {
        if self.json {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let mut out = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(out, "{text}");
            }
        }
    }

    /// Removes the progress bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Human-readable byte count.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
    }
}

//! What the peer tells its user: JSON lines for scripts, or a progress bar
//! and a human summary for people.
//!
//! With `--json`, stdout carries one JSON object per line, each with an
//! `"event"` field. Otherwise a progress bar is drawn on stderr when it is a
//! terminal, and notable events are logged.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lanio::EventWriter;

use crate::events::Event;

/// How long the last events may take to reach a slow stdout at exit.
pub const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// The peer's output sink. Cheap to call from any task; never blocks on
/// stdout (see [`lanio::events`]).
pub struct Output {
    events: EventWriter<Event>,
    bar: Option<ProgressBar>,
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
            events: EventWriter::stdout(json),
            bar,
        }
    }

    pub fn is_json(&self) -> bool {
        self.events.is_json()
    }

    /// Emits an event (only in `--json` mode).
    pub fn emit(&self, event: &Event) {
        self.events.emit(event);
    }

    /// Waits (at most [`FLUSH_AT_EXIT`]) for every event to be written.
    pub fn close(&self) {
        self.events.finish(FLUSH_AT_EXIT);
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
        if self.is_json() {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => self.events.say(text),
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

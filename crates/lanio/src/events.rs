//! JSON event lines: what a program tells the scripts that drive it.
//!
//! Each program declares its events as one serde enum tagged on `"event"`:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! #[serde(tag = "event", rename_all = "snake_case")]
//! enum Event {
//!     Listening { addr: String },
//!     Shutdown { open_connections: usize },
//! }
//! impl lanio::events::Event for Event {
//!     fn human(&self) -> Option<String> {
//!         match self {
//!             Event::Listening { addr } => Some(format!("listening on {addr}")),
//!             Event::Shutdown { .. } => None,
//!         }
//!     }
//! }
//! let out = lanio::EventWriter::stdout(true);
//! out.emit(&Event::Listening { addr: "127.0.0.1:6666".into() });
//! out.finish(std::time::Duration::from_secs(1));
//! ```
//!
//! With `--json` every line on stdout is one such object; otherwise the
//! event's [`Event::human`] sentence is printed, if it has one.
//!
//! **Never blocking.** Lines go through a queue to one writer thread, so a
//! task that emits never waits for stdout. A reader that stalls (a full
//! pipe nobody drains) fills the queue up to a byte budget; lines beyond it
//! are dropped and counted. When the writer gets going again it first
//! reports the count: `{"event":"output_dropped","lines":N}` with `--json`,
//! a warning on stderr otherwise. A closed stdout (`| head`) is ignored.

use std::io::Write;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// The event name of the writer's own notice about dropped lines.
pub const OUTPUT_DROPPED: &str = "output_dropped";

/// Default bound on the text waiting to be written: 4 MiB.
pub const DEFAULT_BUDGET: usize = 4 << 20;

/// A program's event: serialisable as a JSON object with an `"event"` tag,
/// and optionally shown to a person as one line.
pub trait Event: Serialize {
    /// The line shown without `--json`, or `None` to show nothing.
    fn human(&self) -> Option<String> {
        None
    }
}

enum Msg {
    Line(String),
    Flush(mpsc::Sender<()>),
}

struct Shared {
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// Lines dropped since the last report.
    dropped: AtomicU64,
    /// Lines dropped in all.
    dropped_total: AtomicU64,
    budget: usize,
    json: bool,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
}

/// Prints a program's events and lines without ever blocking the caller.
/// Cheap to clone; all clones share one queue and one writer thread.
pub struct EventWriter<E> {
    shared: Arc<Shared>,
    _event: PhantomData<fn(&E)>,
}

impl<E> Clone for EventWriter<E> {
    fn clone(&self) -> Self {
        EventWriter {
            shared: self.shared.clone(),
            _event: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for EventWriter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter")
            .field("json", &self.shared.json)
            .field(
                "dropped",
                &self.shared.dropped_total.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl<E: Event> EventWriter<E> {
    /// A writer to stdout: JSON lines when `json`, else human lines.
    pub fn stdout(json: bool) -> Self {
        Self::to_sink(json, DEFAULT_BUDGET, Box::new(std::io::stdout()))
    }

    /// A writer to any sink, with a bound of `budget` bytes waiting.
    pub fn to_sink(json: bool, budget: usize, sink: Box<dyn Write + Send>) -> Self {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            budget,
            json,
            tx: Mutex::new(Some(tx)),
        });
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || write_loop(&worker, rx, sink));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the output thread, output is off: {e}");
            shared.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
        EventWriter {
            shared,
            _event: PhantomData,
        }
    }

    /// Whether events are printed as JSON lines.
    pub fn is_json(&self) -> bool {
        self.shared.json
    }

    /// Prints an event: its JSON with `--json`, else its human line if any.
    pub fn emit(&self, event: &E) {
        if self.shared.json {
            match serde_json::to_string(event) {
                Ok(line) => self.enqueue(line),
                Err(e) => tracing::warn!("cannot encode an event: {e}"),
            }
        } else if let Some(line) = event.human() {
            self.enqueue(line);
        }
    }

    /// Prints a line for a person; nothing with `--json`.
    pub fn say(&self, text: impl Into<String>) {
        if !self.shared.json {
            self.enqueue(text.into());
        }
    }

    /// Lines dropped so far because stdout was not being read.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped_total.load(Ordering::Relaxed)
    }

    fn enqueue(&self, mut line: String) {
        line.push('\n');
        let len = line.len();
        let shared = &self.shared;
        let queued = shared.queued.fetch_add(len, Ordering::AcqRel);
        let sent = queued + len <= shared.budget && {
            let tx = shared.tx.lock().unwrap_or_else(|p| p.into_inner());
            tx.as_ref()
                .is_some_and(|tx| tx.send(Msg::Line(line)).is_ok())
        };
        if !sent {
            shared.queued.fetch_sub(len, Ordering::AcqRel);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            shared.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits up to `timeout` for every queued line to be written, then
    /// stops the writer. Call it once, last, before the process exits; a
    /// stalled stdout costs at most `timeout`. Lines still dropped are
    /// reported on stderr.
    pub fn finish(&self, timeout: Duration) {
        let tx = self
            .shared
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(tx) = tx {
            let (ack_tx, ack_rx) = mpsc::channel();
            if tx.send(Msg::Flush(ack_tx)).is_ok() {
                let _ = ack_rx.recv_timeout(timeout);
            }
        }
        let dropped = self.dropped();
        if dropped > 0 {
            tracing::warn!("{dropped} output line(s) were dropped: stdout was not being read");
        }
    }
}

fn write_loop(shared: &Shared, rx: mpsc::Receiver<Msg>, mut sink: Box<dyn Write + Send>) {
    let mut batch = String::new();
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Take whatever else is waiting, up to ~64 KiB, for one write.
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(line) => {
                    shared.queued.fetch_sub(line.len(), Ordering::AcqRel);
                    let dropped = shared.dropped.swap(0, Ordering::Relaxed);
                    if dropped > 0 {
                        report_dropped(shared.json, dropped, &mut batch);
                    }
                    batch.push_str(&line);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
            if batch.len() < 64 << 10 {
                next = rx.try_recv().ok();
            }
        }
        // A closed or broken stdout must not take the program down.
        let _ = sink.write_all(batch.as_bytes());
        let _ = sink.flush();
        batch.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

fn report_dropped(json: bool, lines: u64, batch: &mut String) {
    if json {
        batch.push_str(&format!(
            "{{\"event\":\"{OUTPUT_DROPPED}\",\"lines\":{lines}}}\n"
        ));
    } else {
        tracing::warn!("{lines} output line(s) dropped: stdout was not being read");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;
    use std::time::Instant;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(tag = "event", rename_all = "snake_case")]
    enum Ev {
        Ack { from: String, n: u32 },
        Quiet,
    }
    impl Event for Ev {
        fn human(&self) -> Option<String> {
            match self {
                Ev::Ack { from, n } => Some(format!("ack {n} from {from}")),
                Ev::Quiet => None,
            }
        }
    }

    /// A sink that appends to a shared buffer, and can be held shut.
    #[derive(Clone, Default)]
    struct Sink {
        data: Arc<Mutex<Vec<u8>>>,
        gate: Arc<(Mutex<bool>, Condvar)>,
    }
    impl Sink {
        fn hold(&self, closed: bool) {
            *self.gate.0.lock().unwrap() = closed;
            self.gate.1.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(self.data.lock().unwrap().clone()).unwrap()
        }
    }
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.gate;
            let mut held = lock.lock().unwrap();
            while *held {
                held = cv.wait(held).unwrap();
            }
            self.data.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_round_trip_through_the_enum() {
        let sink = Sink::default();
        let out = EventWriter::<Ev>::to_sink(true, DEFAULT_BUDGET, Box::new(sink.clone()));
        out.emit(&Ev::Ack {
            from: "10.0.0.1:9".into(),
            n: 2,
        });
        out.emit(&Ev::Quiet);
        out.say("not in json mode");
        out.finish(Duration::from_secs(5));
        let lines: Vec<Ev> = sink
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                Ev::Ack {
                    from: "10.0.0.1:9".into(),
                    n: 2
                },
                Ev::Quiet
            ]
        );
    }

    #[test]
    fn human_mode_prints_sentences_only() {
        let sink = Sink::default();
        let out = EventWriter::<Ev>::to_sink(false, DEFAULT_BUDGET, Box::new(sink.clone()));
        out.emit(&Ev::Ack {
            from: "h".into(),
            n: 1,
        });
        out.emit(&Ev::Quiet);
        out.say("hello");
        out.finish(Duration::from_secs(5));
        assert_eq!(sink.text(), "ack 1 from h\nhello\n");
    }

    #[test]
    fn a_stalled_reader_never_blocks_and_drops_are_reported() {
        let sink = Sink::default();
        sink.hold(true);
        let out = EventWriter::<Ev>::to_sink(true, 4096, Box::new(sink.clone()));
        let start = Instant::now();
        for n in 0..100_000 {
            out.emit(&Ev::Ack {
                from: "x".into(),
                n,
            });
        }
        assert!(start.elapsed() < Duration::from_secs(5), "emitting blocked");
        let dropped = out.dropped();
        assert!(
            dropped > 99_000,
            "only {dropped} dropped within a 4 KiB budget"
        );
        // A finish against a stalled reader returns after its timeout.
        let t = Instant::now();
        let finisher = out.clone();
        let handle = std::thread::spawn(move || finisher.finish(Duration::from_millis(200)));
        handle.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        // Once the reader drains, every line not dropped is written.
        sink.hold(false);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = sink.text();
            let written = text.lines().filter(|l| !l.contains(OUTPUT_DROPPED)).count() as u64;
            if written + dropped == 100_000 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{written} written, {dropped} dropped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn drop_count_is_reported_when_output_resumes() {
        let sink = Sink::default();
        sink.hold(true);
        let out = EventWriter::<Ev>::to_sink(true, 200, Box::new(sink.clone()));
        for n in 0..50 {
            out.emit(&Ev::Ack {
                from: "x".into(),
                n,
            });
        }
        let dropped = out.dropped();
        assert!(dropped > 0);
        sink.hold(false);
        // Wait until the queue has drained, then emit one more.
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.shared.queued.load(Ordering::Acquire) > 0 {
            assert!(Instant::now() < deadline, "queue never drained");
            std::thread::yield_now();
        }
        out.emit(&Ev::Quiet);
        out.finish(Duration::from_secs(5));
        let text = sink.text();
        // Every dropped line is told of. When the writer thread starts late,
        // some lines are dropped before its first write and told of in a
        // notice of their own, so the notices add up to the count.
        let prefix = format!("{{\"event\":\"{OUTPUT_DROPPED}\",\"lines\":");
        let told: u64 = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix(&prefix)?
                    .strip_suffix('}')?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        assert_eq!(told, dropped, "{text}");
        assert_eq!(text.lines().last(), Some("{\"event\":\"quiet\"}"));
    }
}

//! Printing events, either as human-readable lines or as JSON lines.
//!
//! With `--json` every line on stdout is one JSON object with an `"event"` field;
//! otherwise the same event is shown as a short sentence. Diagnostics go to stderr.

use serde_json::{Map, Value};
use std::io::Write;

/// Where events go: stdout, formatted as JSON or as text.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Creates an output printing JSON lines when `json` is true.
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Whether events are printed as JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints one event. `fields` must be a JSON object (from `serde_json::json!`);
    /// `human` builds the text line, and is only called without `--json`.
    pub fn event(&self, event: &str, fields: Value, human: impl FnOnce() -> String) {
        let line = if self.json {
            json_line(event, fields)
        } else {
            human()
        };
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not crash the process.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Builds `{"event": event, ...fields}` as a single line of JSON.
pub fn json_line(event: &str, fields: Value) -> String {
    let mut map = Map::new();
    map.insert("event".into(), Value::String(event.into()));
    if let Value::Object(fields) = fields {
        map.extend(fields);
    }
    Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_line_is_one_object_with_event_and_fields() {
        let line = json_line("ack", json!({"from": "10.0.0.1:10000", "n": 2}));
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v, json!({"event": "ack", "from": "10.0.0.1:10000", "n": 2}));
    }
}

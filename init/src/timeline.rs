//! The boot timeline: one JSON object per line in `/run/boot-timeline.jsonl`
//! (`{"ms":1234,"src":"init","event":"modules-start"}`), mirrored on the console as
//! `timeline: <event> <ms> [<name>]`. Events before `/run` exists are kept and written once it does.
//! Spans are pairs of `<phase>-start` / `<phase>-end` events with the same name.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use nix::time::{ClockId, clock_gettime};

use crate::console;

/// Where the timeline lives once `/run` is mounted.
pub const DEFAULT_PATH: &str = "/run/boot-timeline.jsonl";

/// Milliseconds since boot (`CLOCK_BOOTTIME`, which counts suspend too).
pub fn boot_ms() -> u64 {
    let Ok(ts) = clock_gettime(ClockId::CLOCK_BOOTTIME) else {
        return 0;
    };
    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
    let millis = u64::try_from(ts.tv_nsec()).unwrap_or(0) / 1_000_000;
    secs.saturating_mul(1000).saturating_add(millis)
}

/// Appends JSON-escaped `s` to `out`.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One timeline record as a JSON line (with the trailing newline).
pub fn json_line(ms: u64, src: &str, event: &str, name: Option<&str>) -> String {
    let mut line = format!("{{\"ms\":{ms},\"src\":");
    push_json_string(&mut line, src);
    line.push_str(",\"event\":");
    push_json_string(&mut line, event);
    if let Some(name) = name {
        line.push_str(",\"name\":");
        push_json_string(&mut line, name);
    }
    line.push_str("}\n");
    line
}

/// The init side of the timeline.
#[derive(Debug, Default)]
pub struct Timeline {
    file: Option<File>,
    pending: Vec<String>,
}

impl Timeline {
    /// A timeline with nowhere to write yet.
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Records an event now.
    pub fn event(&mut self, event: &str, name: Option<&str>) {
        self.event_at(boot_ms(), event, name);
    }

    /// Records an event at a given time.
    pub fn event_at(&mut self, ms: u64, event: &str, name: Option<&str>) {
        match name {
            Some(n) => console::line(&format!("timeline: {event} {ms} {n}")),
            None => console::line(&format!("timeline: {event} {ms}")),
        }
        let line = json_line(ms, "init", event, name);
        match &mut self.file {
            Some(f) => {
                if f.write_all(line.as_bytes()).is_err() {
                    self.file = None;
                }
            }
            None => self.pending.push(line),
        }
    }

    /// Starts writing to `path` (appending), flushing the events recorded so far.
    pub fn attach(&mut self, path: &Path) {
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(mut f) => {
                let pending = std::mem::take(&mut self.pending).concat();
                if let Err(e) = f.write_all(pending.as_bytes()) {
                    log::warn!("writing {}: {e}", path.display());
                }
                self.file = Some(f);
            }
            Err(e) => log::warn!("opening {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_names() {
        let cases = [
            (
                json_line(5, "init", "mounts-end", None),
                "{\"ms\":5,\"src\":\"init\",\"event\":\"mounts-end\"}\n",
            ),
            (
                json_line(7, "init", "hook-start", Some("/etc/init.d/a\"b\\c\n")),
                "{\"ms\":7,\"src\":\"init\",\"event\":\"hook-start\",\"name\":\"/etc/init.d/a\\\"b\\\\c\\n\"}\n",
            ),
            (
                json_line(0, "s", "e", Some("\u{1}")),
                "{\"ms\":0,\"src\":\"s\",\"event\":\"e\",\"name\":\"\\u0001\"}\n",
            ),
        ];
        for (i, (got, want)) in cases.iter().enumerate() {
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn pending_events_are_flushed_on_attach() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("t.jsonl");
        let mut t = Timeline::new();
        t.event_at(1, "a", None);
        t.attach(&path);
        t.event_at(2, "b", Some("x"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            text,
            json_line(1, "init", "a", None) + &json_line(2, "init", "b", Some("x"))
        );
    }
}

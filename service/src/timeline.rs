//! Boot timeline records: one JSON line per event appended to `/run/boot-timeline.jsonl`, shared with
//! `init`: `{"ms":<CLOCK_BOOTTIME ms>,"src":"service","event":"...","name":"..."}`.

use std::io::Write;
use std::path::Path;

use nix::time::{ClockId, clock_gettime};

/// Milliseconds since boot, including time suspended.
pub fn boottime_ms() -> u64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(|ts| {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
            secs * 1000 + nanos / 1_000_000
        })
        .unwrap_or(0)
}

/// Formats one record. `extra` holds additional `"key": value` JSON pairs (for example the exit status).
pub fn format_record(
    ms: u64,
    event: &str,
    name: &str,
    extra: &[(&str, serde_json::Value)],
) -> String {
    let text = |s: &str| serde_json::Value::from(s).to_string();
    let mut line = format!(
        "{{\"ms\":{ms},\"src\":\"service\",\"event\":{},\"name\":{}",
        text(event),
        text(name)
    );
    for (key, value) in extra {
        line.push_str(&format!(",{}:{value}", text(key)));
    }
    line.push_str("}\n");
    line
}

/// Appends a record. The timeline is diagnostic: a failure is logged at debug level and otherwise ignored.
pub fn record(file: &Path, event: &str, name: &str, extra: &[(&str, serde_json::Value)]) {
    let line = format_record(boottime_ms(), event, name, extra);
    // One write(2) on an O_APPEND file keeps lines from concurrent writers whole.
    if let Some(parent) = file.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(err) = result {
        log::debug!("boot timeline {}: {err}", file.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_one_json_line() {
        let line = format_record(1234, "service-start", "sshd", &[("pid", 42.into())]);
        assert_eq!(
            line,
            "{\"ms\":1234,\"src\":\"service\",\"event\":\"service-start\",\"name\":\"sshd\",\"pid\":42}\n"
        );
    }

    #[test]
    fn records_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t.jsonl");
        record(&file, "a", "x", &[]);
        record(&file, "b", "y", &[]);
        let text = std::fs::read_to_string(&file).expect("timeline written");
        let events: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["event"].to_string()
            })
            .collect();
        assert_eq!(events, vec!["\"a\"", "\"b\""]);
    }
}

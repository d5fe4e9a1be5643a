//! The console: where progress lines go, and making sure there is one.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::sys::{StdioState, replace_fd, stdio_state};

/// Writes one line to standard error (the console for PID 1). A failed write has nowhere to go.
pub fn line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

/// If the kernel started init without stdin, stdout or stderr (no `/dev/console` where init started), points
/// each missing one at `console`, so later output and children's stdio reach the console.
///
/// Rust's runtime reopens closed descriptors 0–2 on `/dev/null` before `main`, and
/// [`crate::sys::early_stdio`] opens a placeholder before that when `/dev/console` is missing, so "missing"
/// here means closed, `/dev/null` or the placeholder: the kernel never hands PID 1 either.
pub fn ensure_stdio(console: &Path) {
    let missing: Vec<i32> = (0..=2)
        .filter(|fd| stdio_state(*fd) != StdioState::Other)
        .collect();
    if missing.is_empty() {
        return;
    }
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(console);
    let Ok(file) = opened else {
        return;
    };
    for fd in missing {
        let _ = replace_fd(&file, fd);
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn tells_null_from_other_descriptors() {
        let null = std::fs::File::open("/dev/null").unwrap_or_else(|e| panic!("/dev/null: {e}"));
        assert_eq!(stdio_state(null.as_raw_fd()), StdioState::Null);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let file = std::fs::File::create(dir.path().join("f")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stdio_state(file.as_raw_fd()), StdioState::Other);
        let root = std::fs::File::open("/").unwrap_or_else(|e| panic!("/: {e}"));
        assert_eq!(stdio_state(root.as_raw_fd()), StdioState::Placeholder);
        // Far above any descriptor the test process opens.
        assert_eq!(stdio_state(1_000_000), StdioState::Closed);
    }
}

//! The serial console capture: qemu's console stream copied to a log file and kept in memory so that tests
//! can wait for a line with a deadline instead of sleeping.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::VmError;

/// The console text seen so far.
#[derive(Debug)]
pub struct Console {
    state: Mutex<State>,
    changed: Condvar,
    log: PathBuf,
}

#[derive(Debug, Default)]
struct State {
    text: String,
    done: bool,
}

impl Console {
    /// Starts copying the child's stdout (the console) and stderr (qemu's own messages) into `log`.
    pub fn capture(child: &mut Child, log: &Path, echo: bool) -> Result<Arc<Self>, VmError> {
        let file = File::create(log).map_err(crate::path_io::io::<VmError>("creating", log))?;
        let console = Arc::new(Self {
            state: Mutex::default(),
            changed: Condvar::new(),
            log: log.to_path_buf(),
        });
        let file = Arc::new(Mutex::new(file));
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, Arc::clone(&console), Arc::clone(&file), echo);
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, Arc::clone(&console), file, true);
        }
        Ok(console)
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything captured so far, with carriage returns removed.
    pub fn text(&self) -> String {
        self.lock().text.clone()
    }

    /// Whether any captured line contains `pattern`.
    pub fn contains(&self, pattern: &str) -> bool {
        self.lock().text.contains(pattern)
    }

    /// The first complete line containing `pattern`.
    pub fn find(&self, pattern: &str) -> Option<String> {
        find_line(&self.lock().text, pattern)
    }

    /// Waits up to `timeout` for a line containing `pattern`.
    pub fn wait_for(&self, pattern: &str, timeout: Duration) -> Option<String> {
        let until = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(line) = find_line(&state.text, pattern) {
                return Some(line);
            }
            let left = until.checked_duration_since(Instant::now())?;
            if state.done {
                return None;
            }
            state = match self.changed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Waits briefly for the readers to drain after qemu exited.
    pub(crate) fn finish(&self) {
        let until = Instant::now() + Duration::from_secs(2);
        let mut state = self.lock();
        while !state.done && Instant::now() < until {
            state = match self.changed.wait_timeout(state, Duration::from_millis(50)) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, chunk: &str) {
        self.lock().text.push_str(chunk);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.lock().done = true;
        self.changed.notify_all();
    }
}

fn spawn_reader(
    mut from: impl Read + Send + 'static,
    console: Arc<Console>,
    file: Arc<Mutex<File>>,
    echo: bool,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
            if let Ok(mut f) = file.lock() {
                let _ = f.write_all(chunk.as_bytes());
            }
            if echo {
                let _ = std::io::stderr().write_all(chunk.as_bytes());
            }
            console.append(&chunk);
        }
        console.close();
    });
}

/// The first complete line of `text` containing `pattern`.
fn find_line(text: &str, pattern: &str) -> Option<String> {
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .find(|l| l.contains(pattern))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::find_line;

    #[test]
    fn only_complete_lines_match() {
        assert_eq!(find_line("a\nhello wor", "hello"), None);
        assert_eq!(
            find_line("a\nhello world\n", "hello").as_deref(),
            Some("hello world")
        );
    }
}

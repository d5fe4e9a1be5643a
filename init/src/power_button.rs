//! The ACPI power button without acpid: with `button` and `evdev` loaded, qemu's `system_powerdown`
//! shows up as `KEY_POWER` on an input event device. A thread watches every `/dev/input/event*` (looking
//! for new ones every couple of seconds) and turns a press into SIGPWR for PID 1.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `EV_KEY` from `linux/input-event-codes.h`.
const EV_KEY: u16 = 0x01;
/// `KEY_POWER`.
const KEY_POWER: u16 = 116;
/// `sizeof(struct input_event)` on 64-bit: a 16-byte timeval, type, code (u16 each), value (i32).
pub const EVENT_SIZE: usize = 24;
/// How often to look for new event devices, in milliseconds.
const RESCAN_MS: u16 = 2000;

/// Whether a buffer of whole `input_event` records holds a power-key press (value 1).
pub fn has_power_press(events: &[u8]) -> bool {
    events.chunks_exact(EVENT_SIZE).any(|e| {
        let word = |at: usize| {
            e.get(at..at + 2)
                .and_then(|b| b.try_into().ok())
                .map(u16::from_ne_bytes)
        };
        let value = e
            .get(20..24)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_ne_bytes);
        word(16) == Some(EV_KEY) && word(18) == Some(KEY_POWER) && value == Some(1)
    })
}

fn open_new(dir: &Path, open: &mut Vec<(PathBuf, File)>, seen: &mut HashSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let is_event = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("event"));
        if !is_event || seen.contains(&path) {
            continue;
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        if let Ok(file) = opened {
            log::debug!("watching {} for the power button", path.display());
            seen.insert(path.clone());
            open.push((path, file));
        }
    }
}

/// Reads what is pending on one device; `None` when the device is gone.
fn drain(file: &mut File) -> Option<bool> {
    let mut buf = [0u8; EVENT_SIZE * 16];
    let mut pressed = false;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => pressed |= has_power_press(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(pressed),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn watch(dir: PathBuf) {
    let mut open: Vec<(PathBuf, File)> = Vec::new();
    let mut seen = HashSet::new();
    loop {
        open_new(&dir, &mut open, &mut seen);
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = open
                .iter()
                .map(|(_, f)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            if poll(&mut fds, PollTimeout::from(RESCAN_MS)).is_err() {
                continue;
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let mut gone = Vec::new();
        for (i, ((path, file), is_ready)) in open.iter_mut().zip(ready).enumerate() {
            if !is_ready {
                continue;
            }
            match drain(file) {
                Some(true) => {
                    log::info!("power button pressed ({})", path.display());
                    let _ = kill(Pid::this(), Signal::SIGPWR);
                }
                Some(false) => {}
                None => gone.push(i),
            }
        }
        for i in gone.into_iter().rev() {
            let (path, _) = open.remove(i);
            seen.remove(&path);
        }
    }
}

/// Starts the watcher thread. Call after the signals are blocked, so the thread inherits the mask.
pub fn spawn(dir: &Path) {
    let dir = dir.to_path_buf();
    if let Err(e) = std::thread::Builder::new()
        .name("power-button".into())
        .spawn(move || watch(dir))
    {
        log::error!("starting the power button watcher: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; 16];
        e.extend(kind.to_ne_bytes());
        e.extend(code.to_ne_bytes());
        e.extend(value.to_ne_bytes());
        e
    }

    #[test]
    fn finds_power_presses_only() {
        let sync = event(0, 0, 0);
        let cases = [
            (event(EV_KEY, KEY_POWER, 1), true),
            (event(EV_KEY, KEY_POWER, 0), false),
            (event(EV_KEY, 30, 1), false),
            (event(2, KEY_POWER, 1), false),
            (
                [sync.clone(), event(EV_KEY, KEY_POWER, 1), sync.clone()].concat(),
                true,
            ),
            (event(EV_KEY, KEY_POWER, 1)[..20].to_vec(), false),
            (Vec::new(), false),
        ];
        for (i, (bytes, want)) in cases.iter().enumerate() {
            assert_eq!(has_power_press(bytes), *want, "case {i}");
        }
    }
}

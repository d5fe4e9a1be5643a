//! Keeping one session per console alive: respawn when a session ends, with a back-off when it ends
//! too fast, and reaping of every child (the getty may be PID 1 of its container).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::console::Console;

/// A session that lasted less than this counts as failing fast.
pub const MIN_UPTIME: Duration = Duration::from_secs(2);
/// The first pause after a fast failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest pause between two fast failures.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// A failure of the supervisor itself (not of a session).
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot set up signal handling")]
    Signals(#[source] Errno),
    #[error("cannot wait for signals")]
    Wait(#[source] Errno),
}

/// Starts one session for a console and returns its process id.
pub trait Launcher {
    fn launch(&mut self, console: &Console) -> nix::Result<Pid>;
    /// Called when a session on `console` has ended, before any restart: gives the terminal back to
    /// root, so that it is not left to the last user while a restart is backing off.
    fn ended(&mut self, _console: &Console) {}
}

/// How long to wait before restarting a session: nothing after a session that lasted, doubling pauses
/// (1 s, 2 s, 4 s ... 30 s) while sessions keep ending within [`MIN_UPTIME`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    current: Duration,
}

impl Backoff {
    /// The pause before the next start, after a session that ran for `uptime`.
    pub fn after(&mut self, uptime: Duration) -> Duration {
        self.current = if uptime >= MIN_UPTIME {
            Duration::ZERO
        } else if self.current.is_zero() {
            FIRST_DELAY
        } else {
            (self.current * 2).min(MAX_DELAY)
        };
        self.current
    }
}

#[derive(Debug)]
struct Slot {
    console: Console,
    pid: Option<Pid>,
    started: Instant,
    next_start: Option<Instant>,
    backoff: Backoff,
}

/// Runs one session per console until SIGTERM or SIGINT, restarting sessions that end.
pub fn supervise(
    consoles: Vec<Console>,
    launcher: &mut dyn Launcher,
) -> Result<(), SuperviseError> {
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(signal);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(SuperviseError::Signals)?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(SuperviseError::Signals)?;
    let now = Instant::now();
    let mut slots: Vec<Slot> = consoles
        .into_iter()
        .map(|console| Slot {
            console,
            pid: None,
            started: now,
            next_start: Some(now),
            backoff: Backoff::default(),
        })
        .collect();
    loop {
        start_due(&mut slots, launcher);
        let timeout = next_timeout(&slots);
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(SuperviseError::Wait(e)),
        }
        while let Ok(Some(info)) = signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => reap(&mut slots, launcher),
                Ok(Signal::SIGTERM | Signal::SIGINT) => {
                    stop(&slots);
                    return Ok(());
                }
                _ => {}
            }
        }
    }
}

fn start_due(slots: &mut [Slot], launcher: &mut dyn Launcher) {
    let now = Instant::now();
    for slot in slots
        .iter_mut()
        .filter(|s| s.next_start.is_some_and(|at| at <= now))
    {
        slot.next_start = None;
        slot.started = now;
        match launcher.launch(&slot.console) {
            Ok(pid) => slot.pid = Some(pid),
            Err(e) => {
                log::error!("cannot start a session on {}: {e}", slot.console.tty);
                schedule(slot, Duration::ZERO);
            }
        }
    }
}

fn schedule(slot: &mut Slot, uptime: Duration) {
    let delay = slot.backoff.after(uptime);
    if !delay.is_zero() {
        log::warn!(
            "session on {} ended after {:.1}s; restarting in {}s",
            slot.console.tty,
            uptime.as_secs_f64(),
            delay.as_secs()
        );
    }
    slot.next_start = Some(Instant::now() + delay);
}

fn next_timeout(slots: &[Slot]) -> PollTimeout {
    let now = Instant::now();
    match slots.iter().filter_map(|s| s.next_start).min() {
        None => PollTimeout::NONE,
        Some(at) => {
            let wait = at.saturating_duration_since(now);
            // Round up so that the start is due when poll returns.
            let millis = wait.as_millis().saturating_add(1);
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
        }
    }
}

/// Reaps every exited child; sessions among them are scheduled for a restart.
fn reap(slots: &mut [Slot], launcher: &mut dyn Launcher) {
    loop {
        let pid = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => status.pid(),
        };
        let Some(slot) = slots.iter_mut().find(|s| s.pid.is_some() && s.pid == pid) else {
            continue;
        };
        slot.pid = None;
        launcher.ended(&slot.console);
        let uptime = slot.started.elapsed();
        log::debug!(
            "session on {} ended after {:.1}s",
            slot.console.tty,
            uptime.as_secs_f64()
        );
        schedule(slot, uptime);
    }
}

/// Hangs up every running session (its process group gets SIGHUP, then SIGCONT, like a real hang-up).
fn stop(slots: &[Slot]) {
    for pid in slots.iter().filter_map(|s| s.pid) {
        let _ = killpg(pid, Signal::SIGHUP);
        let _ = killpg(pid, Signal::SIGCONT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_failures_back_off_and_a_lasting_session_resets() {
        let mut b = Backoff::default();
        let fast = Duration::from_millis(100);
        let delays: Vec<u64> = (0..7).map(|_| b.after(fast).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.after(Duration::from_secs(60)), Duration::ZERO);
        assert_eq!(b.after(fast), FIRST_DELAY);
        assert_eq!(Backoff::default().after(MIN_UPTIME), Duration::ZERO);
    }
}

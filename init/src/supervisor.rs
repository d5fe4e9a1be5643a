//! PID 1's process duties: signals arrive through a `signalfd`, every child and orphan is reaped, and a
//! child can be waited for while power requests stay responsive.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::power::{HANDLED_SIGNALS, PowerAction};

/// Setting up signal handling failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalsError {
    /// Blocking the handled signals failed.
    #[error("blocking signals")]
    Block(#[source] Errno),
    /// Creating the signalfd failed.
    #[error("creating the signalfd")]
    SignalFd(#[source] Errno),
}

/// The handled signals, blocked and read from a signalfd.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks the handled signals in the calling thread (threads started later inherit the mask; children
    /// get an empty mask from `std::process::Command`) and opens a signalfd for them.
    pub fn install() -> Result<Signals, SignalsError> {
        let mut mask = SigSet::empty();
        for s in HANDLED_SIGNALS {
            mask.add(s);
        }
        mask.thread_block().map_err(SignalsError::Block)?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(SignalsError::SignalFd)?;
        Ok(Signals { fd })
    }

    /// The next pending signal, waiting at most `timeout` (`None`: forever). `None` on timeout.
    pub fn next(&self, timeout: Option<Duration>) -> Option<Signal> {
        if let Some(signal) = self.read() {
            return Some(signal);
        }
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(d) => {
                PollTimeout::try_from(d.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&self.fd),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, timeout) {
            Ok(n) if n > 0 => self.read(),
            _ => None,
        }
    }

    fn read(&self) -> Option<Signal> {
        let info = self.fd.read_signal().ok()??;
        Signal::try_from(i32::try_from(info.ssi_signo).ok()?).ok()
    }
}

/// Reaps every child that has exited, without blocking. Returns them; `Err(ECHILD)` when there are no
/// children at all.
pub fn reap() -> Result<Vec<(Pid, WaitStatus)>, Errno> {
    let mut reaped = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(reaped),
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    reaped.push((pid, status));
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) if !reaped.is_empty() => return Ok(reaped),
            Err(e) => return Err(e),
        }
    }
}

/// How waiting for a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The child exited (or was killed) with this status.
    Exited(WaitStatus),
    /// A power request arrived first; the child is still running.
    PowerRequest(PowerAction),
}

/// Waits for `pid` to end, reaping every other child meanwhile; a power request ends the wait first (boot
/// hooks run to completion as in LinuxKit, so only a power request bounds this wait).
pub fn wait_for(signals: &Signals, pid: Pid) -> Waited {
    loop {
        if let Some(status) = reaped(pid) {
            return Waited::Exited(status);
        }
        if let Some(action) = signals.next(None).and_then(PowerAction::from_signal) {
            return Waited::PowerRequest(action);
        }
    }
}

/// Waits for `pid` to end until `deadline`, reaping every other child meanwhile. `None` when the deadline
/// passed first (the child still runs). Power requests are acknowledged on the console and change nothing:
/// shutdown is already under way.
pub fn wait_until(signals: &Signals, pid: Pid, deadline: Instant) -> Option<WaitStatus> {
    loop {
        if let Some(status) = reaped(pid) {
            return Some(status);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if let Some(action) = signals
            .next(Some(deadline - now))
            .and_then(PowerAction::from_signal)
        {
            acknowledge(action, deadline - now);
        }
    }
}

/// The status of `pid` if it has ended; every other exited child is reaped too.
fn reaped(pid: Pid) -> Option<WaitStatus> {
    match reap() {
        Ok(reaped) => reaped
            .into_iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, status)| status),
        // The child is gone without us seeing it; do not wait forever.
        Err(_) => Some(WaitStatus::Exited(pid, 0)),
    }
}

/// Says on the console that a power request arrived while shutting down: the first request's action
/// stands, and the current step ends within `left`.
pub fn acknowledge(action: PowerAction, left: Duration) {
    log::info!(
        "{} requested during shutdown: already shutting down; this step ends within {:.1}s",
        action.name(),
        left.as_secs_f64()
    );
}

/// Reaps until no process is left or `bound` passes; true when none is left.
pub fn wait_for_all(signals: &Signals, bound: Duration) -> bool {
    // A bound too large for the clock means: wait as long as it takes.
    let deadline = Instant::now().checked_add(bound);
    loop {
        match reap() {
            Err(Errno::ECHILD) => return true,
            // Something was reaped: look again at once, it may have been the last one.
            Ok(reaped) if !reaped.is_empty() => continue,
            _ => {}
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        let left = deadline.map(|d| d - now);
        // SIGCHLD wakes this loop; a power request is acknowledged, shutdown is already under way.
        if let Some(action) = signals.next(left).and_then(PowerAction::from_signal) {
            acknowledge(action, left.unwrap_or(Duration::MAX));
        }
    }
}

/// Reaps orphans until a power request arrives.
pub fn reap_until_power_request(signals: &Signals) -> PowerAction {
    loop {
        let _ = reap();
        if let Some(action) = signals.next(None).and_then(PowerAction::from_signal) {
            return action;
        }
    }
}

/// A human-readable exit status.
pub fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

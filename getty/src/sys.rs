//! Every `unsafe` call of the crate: fork, the controlling-terminal ioctl, `vhangup` and signal
//! dispositions.

use std::os::fd::{AsFd, AsRawFd};

use nix::sys::signal::{SigHandler, Signal};
use nix::unistd::ForkResult;

nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);

/// Forks the process.
///
/// Callers must be single-threaded (the getty binary is), so that the child may allocate and run
/// ordinary Rust code before it execs or exits.
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: the getty binary never starts a thread, so the child inherits no lock held by another
    // thread and may run arbitrary code; library callers are told the same in the doc comment.
    unsafe { nix::unistd::fork() }
}

/// Makes the open terminal `fd` the controlling terminal of the calling process, which must be a
/// session leader without one. A terminal that is another session's controlling tty is taken over
/// (`TIOCSCTTY` with argument 1, allowed to root), as `login` and agetty do.
pub fn set_controlling_tty(fd: impl AsFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument, not a pointer, and `fd` is a live descriptor
    // borrowed for the duration of the call.
    unsafe { tiocsctty(fd.as_fd().as_raw_fd(), 1) }.map(drop)
}

/// Signals whose disposition a login shell must get back as the default. Rust's runtime ignores
/// `SIGPIPE`, and an ignored disposition would survive `exec`.
const RESET_SIGNALS: [Signal; 7] = [
    Signal::SIGPIPE,
    Signal::SIGCHLD,
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGTTOU,
];

/// Restores the default disposition of the signals a session or shell relies on.
pub fn default_signal_dispositions() -> nix::Result<()> {
    for signal in RESET_SIGNALS {
        // SAFETY: installing SIG_DFL runs no handler code, so no async-signal-safety rule applies.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }?;
    }
    Ok(())
}

/// Ignores `signal` (used around `TIOCSCTTY`/terminal set-up, where a stray `SIGHUP` or `SIGTTOU`
/// must not kill the session before it starts).
pub fn ignore_signal(signal: Signal) -> nix::Result<()> {
    // SAFETY: SIG_IGN runs no handler code.
    unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) }.map(drop)
}

/// Hangs up the calling process's controlling terminal: every descriptor anybody still has open on it
/// (a previous user's shell, or a process that kept it to read the next password) stops working. The
/// caller loses the terminal as its controlling one and must reopen it.
pub fn vhangup() -> nix::Result<()> {
    // SAFETY: vhangup takes no arguments and touches only kernel state.
    nix::errno::Errno::result(unsafe { libc::vhangup() }).map(drop)
}

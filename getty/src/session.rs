//! One login session on one console, run in its own process: new session, controlling terminal, line
//! settings, the login dialogue, then the user's shell.

use std::path::PathBuf;

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::Pid;

use crate::console::Console;
use crate::issue::SystemNames;
use crate::login::{self, LoginSettings, Outcome};
use crate::shell;
use crate::supervisor::Launcher;
use crate::sys;
use crate::tty::{self, TtyTerminal};

/// Everything a session needs besides its console.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The directory holding the console devices (`/dev`).
    pub dev: PathBuf,
    pub login: LoginSettings,
    /// The message of the day shown after a login.
    pub motd: PathBuf,
}

/// Runs a session in the calling process, which must be a fresh child (it becomes a session leader).
/// Returns the exit status when no shell was started; on success it does not return.
pub fn run(console: &Console, settings: &SessionSettings) -> i32 {
    if let Err(e) = sys::default_signal_dispositions()
        .and_then(|()| sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None))
    {
        log::error!(
            "cannot reset signals for the session on {}: {e}",
            console.tty
        );
        return 1;
    }
    let path = settings.dev.join(&console.tty);
    let file = match tty::open_controlling(&path)
        .and_then(|file| tty::configure(&file, &path, console).map(|()| file))
        .and_then(|file| tty::attach_stdio(&file, &path).map(|()| file))
    {
        Ok(file) => file,
        Err(e) => {
            log::error!("{}", chain(&e));
            return 1;
        }
    };
    let mut term = TtyTerminal::new(file, login::PASSWORD_TIMEOUT);
    let outcome = login::converse(
        &mut term,
        &settings.login,
        &SystemNames::current(),
        &console.tty,
    );
    let file = term.into_file();
    match outcome {
        Ok(Outcome::LoggedIn(account)) => {
            let plan = shell::plan(&account, console.kind.term());
            shell::show_motd(&mut &file, &settings.motd, &plan.home);
            let error = shell::exec(&account, &plan, &file);
            // Standard error is the terminal now: the user sees why there is no shell.
            log::error!("{}", chain(&error));
            1
        }
        Ok(Outcome::GaveUp) => 1,
        Ok(Outcome::HungUp) => 0,
        Err(e) => {
            log::error!("login dialogue on {} failed: {e}", console.tty);
            1
        }
    }
}

/// An error with its causes, `outer: inner: ...`.
pub use logging::error_chain as chain;

/// Starts each session in a forked child of the (single-threaded) getty process.
#[derive(Debug)]
pub struct ForkLauncher {
    pub settings: SessionSettings,
}

impl Launcher for ForkLauncher {
    fn launch(&mut self, console: &Console) -> nix::Result<Pid> {
        match sys::fork()? {
            nix::unistd::ForkResult::Parent { child } => Ok(child),
            nix::unistd::ForkResult::Child => std::process::exit(run(console, &self.settings)),
        }
    }
    fn ended(&mut self, console: &Console) {
        if let Err(e) = tty::reclaim_path(&self.settings.dev.join(&console.tty)) {
            log::warn!("{}", chain(&e));
        }
    }
}

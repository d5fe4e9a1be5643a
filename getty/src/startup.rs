//! What `rungetty.sh` did before its loops: the PS1 hint, `getty.shadow`, the per-console messages,
//! then supervision in the foreground (container mode) or in the background (init mode).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;

use crate::accounts;
use crate::console::{self, Console, Decision};
use crate::crypt::HashKind;
use crate::login::LoginSettings;
use crate::securetty::{self, SecureTtys};
use crate::session::{ForkLauncher, SessionSettings};
use crate::supervisor::{self, SuperviseError};
use crate::sys;
use crate::tty;

/// The PS1 hint LinuxKit writes in container mode.
pub const NAMESPACE_HINT: &str = "export PS1=\"(ns: getty) $PS1\"\n";

/// Every path and switch of a getty run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The kernel command line (`/proc/cmdline`).
    pub cmdline: PathBuf,
    /// The directory holding the console devices (`/dev`).
    pub dev: PathBuf,
    pub passwd: PathBuf,
    pub shadow: PathBuf,
    pub securetty: PathBuf,
    pub issue: PathBuf,
    pub motd: PathBuf,
    /// The host's shadow file, copied over `shadow` when present (`/hostroot/etc/getty.shadow`).
    pub getty_shadow: PathBuf,
    /// Where the PS1 hint goes in container mode (`/etc/profile.d`).
    pub profile_dir: PathBuf,
    /// `INSECURE=true`: autologin as root.
    pub insecure: bool,
    /// `INITGETTY` set: run from `/etc/init.d/001-getty`, return at once and supervise in the background.
    pub init_mode: bool,
    /// The pause after a failed login.
    pub fail_delay: Duration,
}

/// A failed start-up step.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot read the kernel command line {path}")]
    Cmdline {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot copy {from} to {to}")]
    CopyShadow {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot go to the background")]
    Daemonize(#[source] Errno),
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
}

/// Writes `/etc/profile.d/namespace.sh` (container mode only).
pub fn write_namespace_hint(profile_dir: &Path) -> Result<(), StartupError> {
    let path = profile_dir.join("namespace.sh");
    std::fs::create_dir_all(profile_dir)
        .and_then(|()| std::fs::write(&path, NAMESPACE_HINT))
        .map_err(|source| StartupError::Write { path, source })
}

/// Copies the host's `getty.shadow` over the shadow file and appends a newline, when it exists.
/// Returns whether it did. A new shadow file is created readable by root only.
pub fn install_getty_shadow(from: &Path, to: &Path) -> Result<bool, StartupError> {
    if !from.is_file() {
        return Ok(false);
    }
    let err = |source| StartupError::CopyShadow {
        from: from.into(),
        to: to.into(),
        source,
    };
    let mut contents = std::fs::read(from).map_err(err)?;
    contents.push(b'\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)
        .map_err(err)?;
    file.write_all(&contents).map_err(err)?;
    Ok(true)
}

/// Whether `path` exists and is a character device.
pub fn is_char_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// Prints the skip messages (to the log and `/dev/console`) and, for each started console, the
/// securetty warning and `starting getty for` (to the log and the console itself). Returns the
/// consoles to start.
pub fn announce(decisions: Vec<Decision>, config: &Config) -> Vec<Console> {
    let secure = SecureTtys::parse(&std::fs::read_to_string(&config.securetty).unwrap_or_default());
    let securetty_name = config.securetty.display().to_string();
    let mut consoles = Vec::new();
    for decision in decisions {
        if let Some(message) = decision.skip_message() {
            log::info!("{message}");
            tty::write_message(&config.dev.join("console"), &format!("getty: {message}"));
        }
        let Decision::Start(console) = decision else {
            continue;
        };
        let device = config.dev.join(&console.tty);
        if !secure.allows(&console.tty) {
            let message = securetty::warning(&console.tty, &securetty_name);
            log::info!("{message}");
            tty::write_message(&device, &format!("getty: {message}"));
        }
        let message = format!("starting getty for {}", console.tty);
        log::info!("{message}");
        tty::write_message(&device, &format!("getty: {message}"));
        consoles.push(console);
    }
    consoles
}

/// Warns when no password can open the root account and there is no autologin, the usual reason for
/// "the password does not work" reports.
pub fn report_root_password(config: &Config) {
    if config.insecure {
        return;
    }
    let hash = accounts::read(&config.shadow).ok().and_then(|c| {
        accounts::shadow_entries(&c)
            .into_iter()
            .find(|(u, _)| *u == "root")
            .map(|(_, h)| h.to_string())
    });
    match hash.as_deref().map(HashKind::of) {
        Some(kind) if kind.can_match() => {}
        Some(kind) => log::warn!(
            "root's password in {} is {kind:?}: password login as root will not work (supply /etc/getty.shadow or set INSECURE=true)",
            config.shadow.display()
        ),
        None => log::warn!(
            "{} has no entry for root: password login as root will not work",
            config.shadow.display()
        ),
    }
}

/// The whole program: set-up, messages, then supervision (in a background child in init mode).
pub fn run(config: &Config) -> Result<(), StartupError> {
    if !config.init_mode {
        write_namespace_hint(&config.profile_dir)?;
    }
    install_getty_shadow(&config.getty_shadow, &config.shadow)?;
    report_root_password(config);
    let cmdline =
        std::fs::read_to_string(&config.cmdline).map_err(|source| StartupError::Cmdline {
            path: config.cmdline.clone(),
            source,
        })?;
    let decisions = console::plan(&cmdline, |tty| is_char_device(&config.dev.join(tty)));
    let consoles = announce(decisions, config);
    if config.init_mode {
        match sys::fork().map_err(StartupError::Daemonize)? {
            nix::unistd::ForkResult::Parent { .. } => return Ok(()),
            nix::unistd::ForkResult::Child => {
                nix::unistd::setsid().map_err(StartupError::Daemonize)?;
            }
        }
    }
    if consoles.is_empty() {
        log::warn!("no console to start a getty on");
        return Ok(());
    }
    // Orphaned processes of the sessions (background jobs) are reaped here, as under tini -s.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        log::warn!("cannot become a child subreaper: {e}");
    }
    let mut launcher = ForkLauncher {
        settings: SessionSettings {
            dev: config.dev.clone(),
            login: LoginSettings {
                passwd: config.passwd.clone(),
                shadow: config.shadow.clone(),
                securetty: config.securetty.clone(),
                issue: config.issue.clone(),
                autologin: config.insecure,
                fail_delay: config.fail_delay,
            },
            motd: config.motd.clone(),
        },
    };
    supervisor::supervise(consoles, &mut launcher)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn getty_shadow_is_copied_with_a_newline() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("getty.shadow"), dir.path().join("shadow"));
        assert!(!install_getty_shadow(&from, &to).unwrap());
        assert!(!to.exists());
        std::fs::write(&from, "root:$6$abc$def:17322:0:::::").unwrap();
        assert!(install_getty_shadow(&from, &to).unwrap());
        assert_eq!(
            std::fs::read_to_string(&to).unwrap(),
            "root:$6$abc$def:17322:0:::::\n"
        );
        assert_eq!(
            std::fs::metadata(&to).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn namespace_hint_is_linuxkits() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("etc/profile.d");
        write_namespace_hint(&profile).unwrap();
        assert_eq!(
            std::fs::read_to_string(profile.join("namespace.sh")).unwrap(),
            "export PS1=\"(ns: getty) $PS1\"\n"
        );
    }

    #[test]
    fn char_devices_are_recognised() {
        assert!(is_char_device(Path::new("/dev/null")));
        assert!(!is_char_device(Path::new("/")));
        assert!(!is_char_device(Path::new("/nonexistent/ttyS9")));
    }
}

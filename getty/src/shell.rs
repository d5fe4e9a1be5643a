//! Turning the session into the user's login shell.

use std::convert::Infallible;
use std::ffi::{CString, NulError};
use std::fs::File;
use std::io::Write;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::{Mode, fchmod};
use nix::unistd::{Gid, Uid};

use crate::accounts::Account;

/// `PATH` for root, as `login` sets it.
pub const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `PATH` for everybody else.
pub const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A failed step between authentication and the shell.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("user {user:?} has a field with a NUL byte")]
    Nul {
        user: String,
        #[source]
        source: NulError,
    },
    #[error("cannot set group {gid} for {user:?}")]
    Group {
        user: String,
        gid: u32,
        #[source]
        source: Errno,
    },
    #[error("cannot set user {uid} for {user:?}")]
    User {
        user: String,
        uid: u32,
        #[source]
        source: Errno,
    },
    #[error("cannot run shell {shell}")]
    Exec {
        shell: String,
        #[source]
        source: Errno,
    },
}

/// What a login shell gets: program, `argv[0]` (`-sh`), environment and working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginShell {
    pub program: String,
    pub argv0: String,
    pub env: Vec<(String, String)>,
    pub home: String,
}

/// Plans the login shell of `account` on a terminal of type `term`. The environment is fresh: only
/// `HOME`, `SHELL`, `USER`, `LOGNAME`, `PATH` and `TERM`.
pub fn plan(account: &Account, term: &str) -> LoginShell {
    let program = account.shell_or_default().to_string();
    let base = program.rsplit('/').next().unwrap_or(&program);
    let home = if account.home.is_empty() {
        "/".to_string()
    } else {
        account.home.clone()
    };
    let path = if account.uid == 0 {
        ROOT_PATH
    } else {
        USER_PATH
    };
    let env = [
        ("HOME", home.as_str()),
        ("SHELL", program.as_str()),
        ("USER", account.name.as_str()),
        ("LOGNAME", account.name.as_str()),
        ("PATH", path),
        ("TERM", term),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    LoginShell {
        argv0: format!("-{base}"),
        program,
        env,
        home,
    }
}

/// Prints the message of the day unless the user has a `.hushlogin` in their home.
pub fn show_motd(out: &mut impl Write, motd: &Path, home: &str) {
    if Path::new(home).join(".hushlogin").exists() {
        return;
    }
    if let Ok(text) = std::fs::read_to_string(motd) {
        let _ = out.write_all(text.as_bytes());
    }
}

/// Gives the terminal to the user, drops to their identity, changes to their home (or `/`) and execs
/// the shell. Returns only on failure.
pub fn exec(account: &Account, shell: &LoginShell, tty: &File) -> ShellError {
    match try_exec(account, shell, tty) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(account: &Account, shell: &LoginShell, tty: &File) -> Result<Infallible, ShellError> {
    let user = &account.name;
    let nul = |source| ShellError::Nul {
        user: user.clone(),
        source,
    };
    let (uid, gid) = (Uid::from_raw(account.uid), Gid::from_raw(account.gid));
    // Like login: try, but a terminal that cannot change owner does not stop the login.
    let _ = nix::unistd::fchown(tty, Some(uid), Some(gid));
    let _ = fchmod(tty, Mode::from_bits_truncate(0o600));
    let c_user = CString::new(user.as_str()).map_err(nul)?;
    let group_err = |source| ShellError::Group {
        user: user.clone(),
        gid: account.gid,
        source,
    };
    nix::unistd::setgid(gid).map_err(group_err)?;
    nix::unistd::initgroups(&c_user, gid).map_err(group_err)?;
    nix::unistd::setuid(uid).map_err(|source| ShellError::User {
        user: user.clone(),
        uid: account.uid,
        source,
    })?;
    // Only now, as the user: a home the user cannot enter is not entered with root's rights.
    let mut env = shell.env.clone();
    if nix::unistd::chdir(shell.home.as_str()).is_err() {
        let _ = writeln!(&*tty, "No directory {}, logging in with HOME=/", shell.home);
        let _ = nix::unistd::chdir("/");
        for (key, value) in &mut env {
            if key == "HOME" {
                *value = "/".into();
            }
        }
    }
    let program = CString::new(shell.program.as_str()).map_err(nul)?;
    let argv = [CString::new(shell.argv0.as_str()).map_err(nul)?];
    let envp = env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(nul)?;
    nix::unistd::execve(&program, &argv, &envp).map_err(|source| ShellError::Exec {
        shell: shell.program.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, uid: u32, home: &str, shell: &str) -> Account {
        Account {
            name: name.into(),
            password: "x".into(),
            uid,
            gid: uid,
            home: home.into(),
            shell: shell.into(),
        }
    }

    #[test]
    fn root_and_user_shells() {
        let root = plan(&account("root", 0, "/root", "/bin/sh"), "vt100");
        assert_eq!(
            (
                root.program.as_str(),
                root.argv0.as_str(),
                root.home.as_str()
            ),
            ("/bin/sh", "-sh", "/root")
        );
        let env: Vec<(&str, &str)> = root
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("HOME", "/root"),
                ("SHELL", "/bin/sh"),
                ("USER", "root"),
                ("LOGNAME", "root"),
                ("PATH", ROOT_PATH),
                ("TERM", "vt100")
            ]
        );
        let alice = plan(&account("alice", 1000, "", "/usr/bin/bash"), "linux");
        assert_eq!((alice.argv0.as_str(), alice.home.as_str()), ("-bash", "/"));
        assert!(alice.env.contains(&("PATH".into(), USER_PATH.into())));
        let bare = plan(&account("bare", 5, "/x", ""), "linux");
        assert_eq!(
            (bare.program.as_str(), bare.argv0.as_str()),
            ("/bin/sh", "-sh")
        );
    }

    #[test]
    fn motd_is_shown_unless_hushed() {
        let dir = tempfile::tempdir().unwrap();
        let motd = dir.path().join("motd");
        std::fs::write(&motd, "Welcome to LinuxKit!\n").unwrap();
        let home = dir.path().to_str().unwrap();
        let mut out = Vec::new();
        show_motd(&mut out, &motd, home);
        assert_eq!(out, b"Welcome to LinuxKit!\n");
        std::fs::write(dir.path().join(".hushlogin"), "").unwrap();
        let mut out = Vec::new();
        show_motd(&mut out, &motd, home);
        assert!(out.is_empty());
    }
}

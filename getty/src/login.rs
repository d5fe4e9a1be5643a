//! The login dialogue: banner, `<host> login: `, `Password: `, and the password check.
//!
//! It talks to the user through [`Terminal`], so it runs the same on a real console, a pseudo-terminal
//! or a scripted fake. It behaves like agetty followed by busybox `login`: three tries, a delay and the
//! same `Login incorrect` whatever was wrong, root only on a secure tty, autologin prints
//! `<host> login: root (automatic login)`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::accounts::{self, Account};
use crate::crypt;
use crate::issue::{self, SystemNames};
use crate::securetty::SecureTtys;

/// How many wrong logins end the session (it is then respawned).
pub const MAX_TRIES: u32 = 3;
/// How many empty user names in a row end the session.
pub const MAX_EMPTY_NAMES: u32 = 10;
/// The longest pause after a failed login `--fail-delay` accepts.
pub const FAIL_DELAY_LIMIT: durations::Limit = durations::Limit::up_to(Duration::from_secs(60));
/// How long the password prompt waits (busybox `login`'s timeout).
pub const PASSWORD_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest line read from the user.
pub const MAX_LINE: usize = 256;

/// The user's side of the dialogue.
pub trait Terminal {
    /// Writes text as is (the line discipline turns `\n` into `\r\n`).
    fn write_text(&mut self, text: &str) -> io::Result<()>;
    /// Reads one line with echo; `None` when the line hung up or reached end of input.
    fn read_line(&mut self) -> io::Result<Option<String>>;
    /// Shows `prompt` and reads one line without echo (echo goes off before the prompt appears, so a
    /// fast typist is never echoed); `None` as for [`Terminal::read_line`].
    fn read_secret(&mut self, prompt: &str) -> io::Result<Option<String>>;
}

/// The files and settings a login consults.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    pub passwd: PathBuf,
    pub shadow: PathBuf,
    pub securetty: PathBuf,
    pub issue: PathBuf,
    /// `INSECURE=true`: log root in without asking.
    pub autologin: bool,
    /// The pause after a failed login.
    pub fail_delay: Duration,
}

/// How a dialogue ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The user is authenticated: run their shell.
    LoggedIn(Account),
    /// Too many failures or empty names.
    GaveUp,
    /// The terminal hung up.
    HungUp,
}

/// The account used for autologin when `/etc/passwd` has no usable root entry.
pub fn fallback_root() -> Account {
    Account {
        name: "root".into(),
        password: "x".into(),
        uid: 0,
        gid: 0,
        home: "/root".into(),
        shell: "/bin/sh".into(),
    }
}

/// Runs the dialogue on `term` for the console `tty` (a name under `/dev`).
pub fn converse(
    term: &mut dyn Terminal,
    settings: &LoginSettings,
    names: &SystemNames,
    tty: &str,
) -> io::Result<Outcome> {
    if let Ok(text) = std::fs::read_to_string(&settings.issue) {
        term.write_text(&issue::expand(&text, names, tty))?;
    }
    let prompt = format!("{} login: ", names.nodename);
    if settings.autologin {
        term.write_text(&format!("{prompt}root (automatic login)\n"))?;
        let root = read_account(settings, "root").unwrap_or_else(fallback_root);
        return Ok(Outcome::LoggedIn(root));
    }
    let mut failures = 0;
    let mut empty_names = 0;
    while failures < MAX_TRIES {
        term.write_text(&prompt)?;
        let Some(name) = term.read_line()? else {
            return Ok(Outcome::HungUp);
        };
        let name = name.trim();
        if name.is_empty() {
            empty_names += 1;
            if empty_names >= MAX_EMPTY_NAMES {
                return Ok(Outcome::GaveUp);
            }
            continue;
        }
        empty_names = 0;
        let Some(password) = term.read_secret("Password: ")? else {
            return Ok(Outcome::HungUp);
        };
        if let Some(account) = authenticate(settings, tty, name, &password) {
            return Ok(Outcome::LoggedIn(account));
        }
        failures += 1;
        std::thread::sleep(settings.fail_delay);
        term.write_text("Login incorrect\n")?;
    }
    Ok(Outcome::GaveUp)
}

fn read_account(settings: &LoginSettings, name: &str) -> Option<Account> {
    let contents = accounts::read(&settings.passwd).ok()?;
    accounts::find_account(&contents, &settings.passwd, name)
        .ok()
        .flatten()
}

/// A SHA-512 crypt hash (5000 rounds, the default) of a random password nobody knows, verified
/// whenever there is no real hash to check, so that an unknown user, a locked account or root on an
/// insecure tty cost the same work as a wrong password: the answer's timing says nothing.
pub const DECOY_HASH: &str = "$6$guestkitdecoy$Ss8CTJI/ElHGVtWXZj.lfTG0WMWLEJGXBP7KCYIck8VEEjw9o5S/I74BtFd/aRuVjlACawSWPLNYyGzkb.QDM.";

/// Checks a user name and password. Every reason to refuse (unknown user, root on an insecure tty,
/// locked, empty or unsupported hash, wrong password, unreadable files) gives the same `None`, after
/// the same work: one hash is always computed ([`DECOY_HASH`] when there is no usable one).
pub fn authenticate(
    settings: &LoginSettings,
    tty: &str,
    name: &str,
    password: &str,
) -> Option<Account> {
    let account = read_account(settings, name);
    let hash = account.as_ref().and_then(|account| {
        if account.uid == 0 {
            let list = std::fs::read_to_string(&settings.securetty).unwrap_or_default();
            if !SecureTtys::parse(&list).allows(tty) {
                return None;
            }
        }
        let shadow_hash = match accounts::read(&settings.shadow) {
            Ok(contents) => accounts::find_shadow_hash(&contents, &settings.shadow, name)
                .ok()
                .flatten(),
            Err(_) => None,
        };
        accounts::effective_hash(account, shadow_hash)
    });
    match hash.filter(|hash| crypt::HashKind::of(hash).can_match()) {
        Some(hash) if crypt::verify(password.as_bytes(), &hash) => account,
        Some(_) => None,
        None => {
            let _ = crypt::verify(password.as_bytes(), DECOY_HASH);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted user: answers `read_line`/`read_secret` from a queue and records what was shown.
    #[derive(Debug, Default)]
    struct ScriptedUser {
        answers: VecDeque<&'static str>,
        screen: String,
        secrets_read: usize,
    }

    impl Terminal for ScriptedUser {
        fn write_text(&mut self, text: &str) -> io::Result<()> {
            self.screen.push_str(text);
            Ok(())
        }
        fn read_line(&mut self) -> io::Result<Option<String>> {
            Ok(self.answers.pop_front().map(|a| {
                self.screen.push_str(a);
                self.screen.push('\n');
                a.to_string()
            }))
        }
        fn read_secret(&mut self, prompt: &str) -> io::Result<Option<String>> {
            self.screen.push_str(prompt);
            self.secrets_read += 1;
            Ok(self.answers.pop_front().map(str::to_string))
        }
    }

    const SHA512_S3CRET: &str = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";

    fn settings(dir: &tempfile::TempDir, autologin: bool) -> LoginSettings {
        let path = |name: &str| dir.path().join(name);
        std::fs::write(
            path("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n\
             locked:x:1001:1001::/:/bin/sh\nempty:x:1002:1002::/:/bin/sh\nnoshadow:x:1003:1003::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            path("shadow"),
            format!("root:{SHA512_S3CRET}:0::::::\nalice:{SHA512_S3CRET}::::::\nlocked:!{SHA512_S3CRET}::::::\nempty:::::::\n"),
        )
        .unwrap();
        std::fs::write(path("securetty"), "console\nttyS0\nhvc0\n").unwrap();
        std::fs::write(path("issue"), "Welcome to \\n on \\l\n").unwrap();
        LoginSettings {
            passwd: path("passwd"),
            shadow: path("shadow"),
            securetty: path("securetty"),
            issue: path("issue"),
            autologin,
            fail_delay: Duration::ZERO,
        }
    }

    fn names() -> SystemNames {
        SystemNames {
            nodename: "box".into(),
            ..SystemNames::default()
        }
    }

    fn run(answers: &[&'static str], tty: &str, autologin: bool) -> (Outcome, ScriptedUser) {
        let dir = tempfile::tempdir().unwrap();
        let mut user = ScriptedUser {
            answers: answers.iter().copied().collect(),
            ..ScriptedUser::default()
        };
        let outcome = converse(&mut user, &settings(&dir, autologin), &names(), tty).unwrap();
        (outcome, user)
    }

    #[test]
    fn right_password_logs_in_after_banner_and_prompts() {
        let (outcome, user) = run(&["alice", "s3cret"], "ttyS1", false);
        assert!(matches!(outcome, Outcome::LoggedIn(a) if a.name == "alice" && a.uid == 1000));
        assert_eq!(
            user.screen,
            "Welcome to box on ttyS1\nbox login: alice\nPassword: "
        );
    }

    #[test]
    fn every_refusal_looks_the_same() {
        let cases: [(&[&'static str], &str); 7] = [
            (&["alice", "wrong"], "wrong password"),
            (&["locked", "s3cret"], "locked account"),
            (&["empty", ""], "empty password"),
            (&["noshadow", ""], "no shadow entry"),
            (&["nobody", "s3cret"], "unknown user"),
            (&["root", "s3cret"], "root on a tty missing from securetty"),
            (&["root", "wrong"], "root with a wrong password"),
        ];
        for (answers, why) in cases {
            let mut script = answers.to_vec();
            script.extend_from_slice(answers);
            script.extend_from_slice(answers);
            let (outcome, user) = run(&script, "ttyS1", false);
            assert_eq!(outcome, Outcome::GaveUp, "{why}");
            assert_eq!(
                user.secrets_read, 3,
                "{why}: a password is always asked for"
            );
            assert_eq!(user.screen.matches("Login incorrect\n").count(), 3, "{why}");
            let first = user.screen.split("Login incorrect").next().unwrap();
            assert_eq!(first.matches("box login: ").count(), 1, "{why}");
        }
    }

    #[test]
    fn fail_delay_extremes_are_clear_errors() {
        assert_eq!(FAIL_DELAY_LIMIT.parse("0"), Ok(Duration::ZERO));
        assert_eq!(FAIL_DELAY_LIMIT.parse("60"), Ok(Duration::from_secs(60)));
        assert_eq!(
            FAIL_DELAY_LIMIT.parse("500ms"),
            Ok(Duration::from_millis(500))
        );
        for (bad, says) in [
            ("60.001", "above the maximum of 60s"),
            ("18446744073709551616", "above the maximum"),
            ("-1", "negative"),
            ("NaN", "not a finite"),
            ("3 s", "not a duration"),
        ] {
            let err = FAIL_DELAY_LIMIT.parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_decoy_is_a_real_hash_that_costs_work() {
        assert_eq!(crypt::HashKind::of(DECOY_HASH), crypt::HashKind::Sha512);
        // Verifying against it must hash (not fail parsing): a wrong password takes the same path as
        // any other SHA-512 field, so compare with the work of a known-wrong password on a real hash.
        let decoy = crypt::verify(b"s3cret", DECOY_HASH);
        assert!(!decoy);
        assert!(crypt::verify(b"s3cret", SHA512_S3CRET));
        let mut parsed = DECOY_HASH.splitn(4, '$');
        assert_eq!(parsed.nth(1), Some("6"));
        assert_eq!(parsed.next(), Some("guestkitdecoy"));
        assert_eq!(parsed.next().map(str::len), Some(86));
    }

    #[test]
    fn root_logs_in_with_a_password_on_a_secure_tty() {
        let (outcome, _) = run(&["root", "s3cret"], "ttyS0", false);
        assert!(matches!(outcome, Outcome::LoggedIn(a) if a.uid == 0));
    }

    #[test]
    fn empty_names_reprompt_and_hangup_ends() {
        let (outcome, user) = run(&["", "  ", "alice", "s3cret"], "ttyS1", false);
        assert!(matches!(outcome, Outcome::LoggedIn(_)));
        assert_eq!(user.screen.matches("box login: ").count(), 3);
        assert_eq!(run(&[""; 10], "ttyS1", false).0, Outcome::GaveUp);
        assert_eq!(run(&[], "ttyS1", false).0, Outcome::HungUp);
        assert_eq!(run(&["alice"], "ttyS1", false).0, Outcome::HungUp);
    }

    #[test]
    fn autologin_takes_root_without_asking() {
        let (outcome, user) = run(&[], "hvc7", true);
        assert!(matches!(outcome, Outcome::LoggedIn(a) if a.uid == 0 && a.home == "/root"));
        assert_eq!(
            user.screen,
            "Welcome to box on hvc7\nbox login: root (automatic login)\n"
        );
        assert_eq!(user.secrets_read, 0);
    }
}

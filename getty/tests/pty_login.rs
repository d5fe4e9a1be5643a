//! The getty binary on real pseudo-terminals: the test holds the master side and plays the user.
//!
//! Needs root: sessions take the pty as controlling terminal and the login shell drops to the user's id.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `s3cret`, from `openssl passwd -6 -salt saltsalt s3cret`.
const SHA512_S3CRET: &str = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";
/// How long any single expected output may take before the test gives up (a hang guard, not a
/// speed requirement).
const PATIENCE: Duration = Duration::from_secs(60);

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root: the sessions take a pty as controlling terminal and switch user ids"
    );
}

/// A scratch root with account files, a `dev` directory and one pty.
struct Rig {
    dir: tempfile::TempDir,
    master: File,
    _slave: OwnedFd,
    /// The pty's name under `/dev` (`pts/7`).
    tty: String,
    seen: String,
}

impl Rig {
    fn new(shadow_root_hash: &str) -> Rig {
        require_root();
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let path = nix::unistd::ttyname(pty.slave.as_fd()).expect("ttyname of the pty slave");
        let tty = path
            .strip_prefix("/dev")
            .expect("pty under /dev")
            .to_str()
            .unwrap()
            .to_string();
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        std::fs::create_dir_all(p("dev")).unwrap();
        std::os::unix::fs::symlink("/dev/pts", p("dev/pts")).unwrap();
        std::fs::write(p("dev/console"), "").unwrap();
        for home in ["root", "alice"] {
            std::fs::create_dir_all(p(home)).unwrap();
        }
        let root = dir.path().display();
        std::fs::write(
            p("passwd"),
            format!(
                "root:x:0:0:root:{root}/root:/bin/sh\nalice:x:4242:4242::{root}/alice:/bin/sh\n\
                 locked:x:4243:4243::/:/bin/sh\nempty:x:4244:4244::/:/bin/sh\n"
            ),
        )
        .unwrap();
        std::fs::write(
            p("shadow"),
            format!(
                "root:{shadow_root_hash}:0::::::\nalice:{SHA512_S3CRET}::::::\nlocked:!{SHA512_S3CRET}::::::\nempty:::::::\n"
            ),
        )
        .unwrap();
        std::fs::write(p("securetty"), format!("console\n{tty}\n")).unwrap();
        std::fs::write(p("issue"), "Welcome to the rig on \\l\n").unwrap();
        std::fs::write(p("motd"), "MOTD-LINE\n").unwrap();
        std::fs::write(p("cmdline"), format!("quiet console={tty}\n")).unwrap();
        Rig {
            master: File::from(pty.master),
            _slave: pty.slave,
            tty,
            dir,
            seen: String::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the getty binary on this rig with extra environment variables.
    fn start(&self, env: &[(&str, &str)]) -> Getty {
        let log = File::create(self.path("getty.log")).unwrap();
        // GETTY_TEST_BINARY runs the suite against another build, such as the static musl one.
        let binary = std::env::var_os("GETTY_TEST_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_getty").into());
        let mut cmd = Command::new(binary);
        for (flag, name) in [
            ("--cmdline", "cmdline"),
            ("--dev", "dev"),
            ("--passwd", "passwd"),
            ("--shadow", "shadow"),
            ("--securetty", "securetty"),
            ("--issue", "issue"),
            ("--motd", "motd"),
            ("--getty-shadow", "hostroot/etc/getty.shadow"),
            ("--profile-dir", "etc/profile.d"),
        ] {
            cmd.arg(flag).arg(self.path(name));
        }
        cmd.args(["--fail-delay", "0"])
            .env_remove("INSECURE")
            .env_remove("INITGETTY")
            .envs(env.iter().copied());
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Getty { child }
    }

    /// Reads the pty until `pattern` shows up; returns everything up to and including it.
    fn expect(&mut self, pattern: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(at) = self.seen.find(pattern) {
                let end = at + pattern.len();
                let head = self.seen[..end].to_string();
                self.seen.drain(..end);
                return head;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited for {pattern:?} on {}; the pty showed {:?}",
                self.tty,
                self.seen
            );
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(left.min(Duration::from_millis(500))).unwrap();
            if poll(&mut fds, timeout).unwrap_or(0) == 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            match self.master.read(&mut buf) {
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("reading the pty master: {e}"),
            }
        }
    }

    /// Reads the number printed between two markers.
    fn read_number(&mut self, before: &str, after: &str) -> i32 {
        self.expect(before);
        let text = self.expect(after);
        let digits = text.trim_end_matches(after);
        digits.parse().unwrap_or_else(|_| {
            panic!("expected a number between {before:?} and {after:?}, got {digits:?}")
        })
    }

    /// Types a line as a terminal would (ending in CR).
    fn type_line(&mut self, text: &str) {
        self.master
            .write_all(format!("{text}\r").as_bytes())
            .unwrap();
    }

    /// Logs in as `user` and waits for the message of the day.
    fn log_in(&mut self, user: &str, password: &str) -> String {
        self.expect(" login: ");
        self.type_line(user);
        self.expect("Password: ");
        self.type_line(password);
        self.expect("MOTD-LINE")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("getty.log")).unwrap_or_default()
    }
}

/// The running getty; stopped with SIGTERM (which hangs up its sessions) when dropped.
struct Getty {
    child: Child,
}

impl Drop for Getty {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn password_login_runs_the_users_login_shell() {
    let mut rig = Rig::new("*");
    // The password comes from the host's getty.shadow, as in LinuxKit.
    std::fs::create_dir_all(rig.path("hostroot/etc")).unwrap();
    std::fs::write(
        rig.path("hostroot/etc/getty.shadow"),
        format!("root:{SHA512_S3CRET}:17322:0:::::"),
    )
    .unwrap();
    let _getty = rig.start(&[]);
    let banner = rig.expect(" login: ");
    assert!(
        banner.contains(&format!("getty: starting getty for {}", rig.tty)),
        "{banner:?}"
    );
    assert!(
        banner.contains(&format!("Welcome to the rig on {}", rig.tty)),
        "{banner:?}"
    );
    rig.type_line("root");
    rig.expect("Password: ");
    rig.type_line("s3cret");
    let after_password = rig.expect("MOTD-LINE");
    assert!(
        !after_password.contains("s3cret"),
        "the password was echoed: {after_password:?}"
    );
    rig.type_line(
        "echo MARK-$((40+2)) \"ENV:$HOME:$USER:$LOGNAME:$TERM:$SHELL:$0:$(tty):$(id -u)\"",
    );
    let home = rig.path("root");
    let want = format!(
        "MARK-42 ENV:{}:root:root:linux:/bin/sh:-sh:/dev/{}:0",
        home.display(),
        rig.tty
    );
    rig.expect(&want);
    rig.type_line("echo PWD-$(pwd)");
    rig.expect(&format!("PWD-{}", home.display()));
    let shadow = std::fs::read_to_string(rig.path("shadow")).unwrap();
    assert_eq!(shadow, format!("root:{SHA512_S3CRET}:17322:0:::::\n"));
    let hint = std::fs::read_to_string(rig.path("etc/profile.d/namespace.sh")).unwrap();
    assert_eq!(hint, "export PS1=\"(ns: getty) $PS1\"\n");
}

#[test]
fn a_user_gets_their_own_identity() {
    let mut rig = Rig::new("*");
    let _getty = rig.start(&[]);
    rig.log_in("alice", "s3cret");
    rig.type_line("echo ID-$(id -u)-$(id -g) $PATH");
    rig.expect("ID-4242-4242 /usr/local/bin:/usr/bin:/bin");
}

#[test]
fn wrong_locked_and_empty_passwords_are_refused_alike() {
    let mut rig = Rig::new(SHA512_S3CRET);
    let _getty = rig.start(&[]);
    for (user, password) in [("root", "wrong"), ("locked", "s3cret"), ("empty", "")] {
        rig.expect(" login: ");
        rig.type_line(user);
        rig.expect("Password: ");
        rig.type_line(password);
        let answer = rig.expect("Login incorrect");
        assert_eq!(
            answer.trim(),
            "Login incorrect",
            "{user}: the refusal says nothing else"
        );
    }
    // The session gave up after three tries and was respawned; the right password still works.
    let banner = rig.expect(" login: ");
    assert!(banner.contains("Welcome to the rig"), "{banner:?}");
    rig.type_line("root");
    rig.expect("Password: ");
    rig.type_line("s3cret");
    rig.expect("MOTD-LINE");
}

#[test]
fn root_needs_a_secure_tty() {
    let mut rig = Rig::new(SHA512_S3CRET);
    std::fs::write(rig.path("securetty"), "console\nttyS0\n").unwrap();
    let _getty = rig.start(&[]);
    let banner = rig.expect(" login: ");
    let warning = format!(
        "getty: cmdline has console={tty} but does not exist in {}; will not be able to log in as root on this tty {tty}.",
        rig.path("securetty").display(),
        tty = rig.tty
    );
    assert!(banner.contains(&warning), "{banner:?}");
    rig.type_line("root");
    rig.expect("Password: ");
    rig.type_line("s3cret");
    rig.expect("Login incorrect");
}

#[test]
fn insecure_logs_root_in_without_a_prompt() {
    let mut rig = Rig::new("*");
    let _getty = rig.start(&[("INSECURE", "true")]);
    rig.expect("login: root (automatic login)");
    rig.expect("MOTD-LINE");
    rig.type_line("echo AUTO-$(id -u)");
    rig.expect("AUTO-0");
}

#[test]
fn the_prompt_returns_after_logout() {
    let mut rig = Rig::new(SHA512_S3CRET);
    let _getty = rig.start(&[]);
    rig.log_in("root", "s3cret");
    rig.type_line("exit");
    let again = rig.expect(" login: ");
    assert!(again.contains("Welcome to the rig"), "{again:?}");
    rig.type_line("root");
    rig.expect("Password: ");
    rig.type_line("s3cret");
    rig.expect("MOTD-LINE");
    rig.type_line("echo SECOND-$((1+1))");
    rig.expect("SECOND-2");
}

/// After a non-root user logs out, the tty is root's again (mode 0600) and a descriptor opened on it
/// during the session (what the user could have kept to read the next password) is dead.
#[test]
fn a_finished_session_gives_the_tty_back_to_root_and_hangs_it_up() {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut rig = Rig::new("*");
    let _getty = rig.start(&[]);
    rig.log_in("alice", "s3cret");
    rig.type_line("echo IN-$(id -u)");
    rig.expect("IN-4242");
    let device = Path::new("/dev").join(&rig.tty);
    let during = std::fs::metadata(&device).unwrap();
    assert_eq!((during.uid(), during.mode() & 0o777), (4242, 0o600));
    let mut lingering = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(&device)
        .unwrap();
    assert!(
        lingering.write(b"").is_ok(),
        "the descriptor works during the session"
    );
    rig.type_line("exit");
    rig.expect(" login: ");
    let after = std::fs::metadata(&device).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode() & 0o777),
        (0, 0, 0o600),
        "the tty after logout"
    );
    let err = lingering
        .write(b"injected\n")
        .expect_err("a descriptor from the finished session still writes");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // The new session works on the same tty.
    rig.type_line("alice");
    rig.expect("Password: ");
    rig.type_line("s3cret");
    rig.expect("MOTD-LINE");
}

#[test]
fn orphans_are_reaped_and_sigterm_hangs_up_sessions() {
    let mut rig = Rig::new("*");
    let mut getty = rig.start(&[("INSECURE", "true")]);
    rig.expect("MOTD-LINE");
    // A background job outlives its shell's session and is re-parented to the getty (a subreaper).
    // The quotes keep the markers out of the echo of the typed line.
    rig.type_line("sleep 1 & echo ORPH''AN-$!-E''ND; exit");
    let orphan = rig.read_number("ORPHAN-", "-END");
    rig.expect("(automatic login)");
    wait_until_gone(orphan);
    rig.expect("MOTD-LINE");
    rig.type_line("echo SHE''LL-$$-E''ND");
    let shell = rig.read_number("SHELL-", "-END");
    kill(Pid::from_raw(getty.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = getty.child.wait().unwrap();
    assert!(
        status.success(),
        "getty should stop cleanly on SIGTERM, got {status}"
    );
    wait_until_gone(shell);
}

/// Waits until process `pid` no longer exists, not even as a zombie.
fn wait_until_gone(pid: i32) {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + PATIENCE;
    while proc_dir.exists() {
        let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "process {pid} is still there: {stat}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn duplicates_and_missing_devices_are_reported() {
    let mut rig = Rig::new("*");
    let tty = rig.tty.clone();
    std::fs::write(
        rig.path("cmdline"),
        format!("console={tty},9600 console={tty} console=ttyNOPE0"),
    )
    .unwrap();
    let _getty = rig.start(&[("INSECURE", "true")]);
    rig.expect("(automatic login)");
    let duplicate = format!("getty: already processed tty for {tty}, not starting twice");
    let missing = "getty: cmdline has console=ttyNOPE0 but /dev/ttyNOPE0 is not a character device; not starting getty for ttyNOPE0";
    let console = std::fs::read_to_string(rig.path("dev/console")).unwrap();
    assert!(
        console.contains(&duplicate) && console.contains(missing),
        "/dev/console got {console:?}"
    );
    let log = rig.log();
    assert!(
        log.contains(&duplicate) && log.contains(missing),
        "the log got {log:?}"
    );
}

#[test]
fn init_mode_returns_at_once_and_keeps_the_session() {
    let mut rig = Rig::new("*");
    let mut getty = rig.start(&[("INITGETTY", "true"), ("INSECURE", "true")]);
    let status = getty.child.wait().unwrap();
    assert!(
        status.success(),
        "the init.d hook must return success, got {status}"
    );
    rig.expect("(automatic login)");
    rig.type_line("echo INIT-$((2*3))");
    rig.expect("INIT-6");
    assert!(
        !rig.path("etc/profile.d/namespace.sh").exists(),
        "init mode writes no PS1 hint"
    );
    stop_daemons_of(rig.dir.path());
}

/// Stops the background getty of an init-mode test: the processes whose command line names `dir`.
fn stop_daemons_of(dir: &Path) {
    let needle = dir.to_str().unwrap().as_bytes();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.windows(needle.len()).any(|w| w == needle) && pid != std::process::id() as i32 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}

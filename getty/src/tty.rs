//! A console as the controlling terminal of a session: opening, line settings, and the
//! [`Terminal`](crate::login::Terminal) the login dialogue talks to.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, fchmod};
use nix::sys::termios::{
    BaudRate, ControlFlags, FlushArg, InputFlags, LocalFlags, OutputFlags, SetArg,
    SpecialCharacterIndices as Cc, Termios, cfsetspeed, tcflush, tcgetattr, tcsetattr,
};
use nix::unistd::{Gid, Uid};

use crate::console::Console;
use crate::login::{MAX_LINE, Terminal};
use crate::sys;

/// A failed step in taking over a console.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start a new session for {path}")]
    NewSession {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot make {path} the controlling terminal")]
    Control {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot give {path} back to root")]
    Reclaim {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot hang up earlier users of {path}")]
    Hangup {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot apply the line settings of {path}")]
    Settings {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot attach standard input, output and error to {path}")]
    Stdio {
        path: PathBuf,
        #[source]
        source: Errno,
    },
}

/// Opens a console device for appending a message without making it anybody's controlling terminal
/// and without waiting for a modem carrier.
pub fn open_for_message(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
}

/// Writes one line to a console device, ignoring failures (a message must never stop a getty).
pub fn write_message(path: &Path, line: &str) {
    if let Ok(mut file) = open_for_message(path) {
        let _ = file.write_all(format!("{line}\r\n").as_bytes());
    }
}

/// Starts a new session and opens `path` as its controlling terminal, in blocking mode, after handing
/// the terminal back to root: owner root, mode 0600 ([`reclaim`]), and a `vhangup` that kills every
/// descriptor a previous session left open on it.
pub fn open_controlling(path: &Path) -> Result<File, TtyError> {
    nix::unistd::setsid().map_err(|source| TtyError::NewSession {
        path: path.into(),
        source,
    })?;
    let file = open_as_controlling(path)?;
    // Both steps need privileges (CAP_CHOWN, CAP_SYS_TTY_CONFIG) that LinuxKit's getty image has;
    // without them the login still works, as it did before, and the log says why the tty was not
    // handed back.
    if let Err(e) = reclaim(&file, path) {
        log::warn!("{}", crate::session::chain(&e));
    }
    // The hang-up signals the session leader, which is this process: ignore it for the moment.
    let hung_up = sys::ignore_signal(Signal::SIGHUP).and_then(|()| sys::vhangup());
    if let Err(source) = sys::default_signal_dispositions() {
        log::warn!(
            "cannot restore signal dispositions on {}: {source}",
            path.display()
        );
    }
    match hung_up {
        Ok(()) => {
            drop(file);
            open_as_controlling(path)
        }
        Err(source) => {
            let e = TtyError::Hangup {
                path: path.into(),
                source,
            };
            log::warn!("{}", crate::session::chain(&e));
            Ok(file)
        }
    }
}

/// Gives a console back to root with mode 0600, so that the user of a finished session can no longer
/// open it.
pub fn reclaim(file: &File, path: &Path) -> Result<(), TtyError> {
    let err = |source| TtyError::Reclaim {
        path: path.into(),
        source,
    };
    nix::unistd::fchown(file, Some(Uid::from_raw(0)), Some(Gid::from_raw(0))).map_err(err)?;
    fchmod(file, Mode::from_bits_truncate(0o600)).map_err(err)
}

/// Opens `path` without waiting for a carrier or taking it as controlling terminal, and gives it back
/// to root.
pub fn reclaim_path(path: &Path) -> Result<(), TtyError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| TtyError::Open {
            path: path.into(),
            source,
        })?;
    reclaim(&file, path)
}

fn open_as_controlling(path: &Path) -> Result<File, TtyError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| TtyError::Open {
            path: path.into(),
            source,
        })?;
    sys::set_controlling_tty(&file).map_err(|source| TtyError::Control {
        path: path.into(),
        source,
    })?;
    let flags = fcntl(&file, FcntlArg::F_GETFL).map_err(|source| TtyError::Control {
        path: path.into(),
        source,
    })?;
    let blocking = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(&file, FcntlArg::F_SETFL(blocking)).map_err(|source| TtyError::Control {
        path: path.into(),
        source,
    })?;
    Ok(file)
}

/// Makes `file` standard input, output and error.
pub fn attach_stdio(file: &File, path: &Path) -> Result<(), TtyError> {
    let err = |source| TtyError::Stdio {
        path: path.into(),
        source,
    };
    nix::unistd::dup2_stdin(file).map_err(err)?;
    nix::unistd::dup2_stdout(file).map_err(err)?;
    nix::unistd::dup2_stderr(file).map_err(err)
}

/// The termios baud constant for a speed in bits per second.
pub fn baud_rate(speed: u32) -> Option<BaudRate> {
    use BaudRate::*;
    const TABLE: [(u32, BaudRate); 30] = [
        (50, B50),
        (75, B75),
        (110, B110),
        (134, B134),
        (150, B150),
        (200, B200),
        (300, B300),
        (600, B600),
        (1200, B1200),
        (1800, B1800),
        (2400, B2400),
        (4800, B4800),
        (9600, B9600),
        (19200, B19200),
        (38400, B38400),
        (57600, B57600),
        (115200, B115200),
        (230400, B230400),
        (460800, B460800),
        (500000, B500000),
        (576000, B576000),
        (921600, B921600),
        (1000000, B1000000),
        (1152000, B1152000),
        (1500000, B1500000),
        (2000000, B2000000),
        (2500000, B2500000),
        (3000000, B3000000),
        (3500000, B3500000),
        (4000000, B4000000),
    ];
    TABLE
        .iter()
        .find(|(bps, _)| *bps == speed)
        .map(|(_, rate)| *rate)
}

/// Sane login settings: 8 bits, canonical input with echo and the usual control characters, CR read
/// as NL, NL written as CR NL, and for local (serial) lines no modem control. The speed is set when
/// the console has a known one; otherwise the line keeps its current speed.
pub fn configure(file: &File, path: &Path, console: &Console) -> Result<(), TtyError> {
    let err = |source| TtyError::Settings {
        path: path.into(),
        source,
    };
    let mut t = tcgetattr(file).map_err(err)?;
    apply_login_settings(&mut t, console.kind.is_local());
    if let Some(rate) = console.baud().and_then(baud_rate) {
        cfsetspeed(&mut t, rate).map_err(err)?;
    } else {
        log::warn!(
            "unsupported speed {:?} for {}, keeping the line's current speed",
            console.speed,
            console.tty
        );
    }
    tcflush(file, FlushArg::TCIFLUSH).map_err(err)?;
    tcsetattr(file, SetArg::TCSANOW, &t).map_err(err)
}

fn apply_login_settings(t: &mut Termios, local: bool) {
    let keep_cflags = ControlFlags::CBAUD | ControlFlags::CBAUDEX | ControlFlags::CRTSCTS;
    t.control_flags &= keep_cflags;
    t.control_flags |= ControlFlags::CS8 | ControlFlags::CREAD | ControlFlags::HUPCL;
    if local {
        t.control_flags |= ControlFlags::CLOCAL;
    }
    t.input_flags = InputFlags::BRKINT
        | InputFlags::ICRNL
        | InputFlags::IXON
        | InputFlags::IMAXBEL
        | InputFlags::IUTF8;
    t.output_flags = OutputFlags::OPOST | OutputFlags::ONLCR;
    t.local_flags = LocalFlags::ISIG
        | LocalFlags::ICANON
        | LocalFlags::IEXTEN
        | LocalFlags::ECHO
        | LocalFlags::ECHOE
        | LocalFlags::ECHOK
        | LocalFlags::ECHOCTL
        | LocalFlags::ECHOKE;
    let chars: [(Cc, u8); 13] = [
        (Cc::VINTR, 0x03),
        (Cc::VQUIT, 0x1c),
        (Cc::VERASE, 0x7f),
        (Cc::VKILL, 0x15),
        (Cc::VEOF, 0x04),
        (Cc::VTIME, 0),
        (Cc::VMIN, 1),
        (Cc::VSTART, 0x11),
        (Cc::VSTOP, 0x13),
        (Cc::VSUSP, 0x1a),
        (Cc::VREPRINT, 0x12),
        (Cc::VWERASE, 0x17),
        (Cc::VLNEXT, 0x16),
    ];
    for (index, value) in chars {
        if let Some(slot) = t.control_chars.get_mut(index as usize) {
            *slot = value;
        }
    }
}

/// The login dialogue's view of a terminal device.
#[derive(Debug)]
pub struct TtyTerminal {
    file: File,
    password_timeout: Duration,
}

impl TtyTerminal {
    /// A terminal whose password prompt gives up after `password_timeout` (busybox `login` allows 60 s).
    pub fn new(file: File, password_timeout: Duration) -> TtyTerminal {
        TtyTerminal {
            file,
            password_timeout,
        }
    }

    /// Reads a line, or shows the timeout message and gives `None` when none comes in time.
    fn read_line_within_timeout(&mut self) -> io::Result<Option<String>> {
        if self.wait_for_line()? {
            return read_line_from(&mut self.file);
        }
        let seconds = self.password_timeout.as_secs();
        self.write_text(&format!("\nLogin timed out after {seconds} seconds\n"))?;
        Ok(None)
    }

    /// Waits until a whole line can be read; `false` after the password timeout.
    fn wait_for_line(&self) -> io::Result<bool> {
        let deadline = Instant::now() + self.password_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => {}
                Ok(_) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives the device back, for the shell's set-up.
    pub fn into_file(self) -> File {
        self.file
    }
}

impl Terminal for TtyTerminal {
    fn write_text(&mut self, text: &str) -> io::Result<()> {
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }

    fn read_line(&mut self) -> io::Result<Option<String>> {
        read_line_from(&mut self.file)
    }

    fn read_secret(&mut self, prompt: &str) -> io::Result<Option<String>> {
        let saved = tcgetattr(&self.file).map_err(io::Error::from)?;
        let mut quiet = saved.clone();
        quiet.local_flags &=
            !(LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ECHOK | LocalFlags::ECHONL);
        tcsetattr(&self.file, SetArg::TCSANOW, &quiet).map_err(io::Error::from)?;
        let line = self
            .write_text(prompt)
            .and_then(|()| self.read_line_within_timeout());
        let restored = tcsetattr(&self.file, SetArg::TCSANOW, &saved).map_err(io::Error::from);
        let line = line?;
        restored?;
        if line.is_some() {
            self.write_text("\n")?;
        }
        Ok(line)
    }
}

/// Reads up to a newline, keeping at most [`MAX_LINE`] bytes. End of input and a hung-up line (EIO)
/// give `None`.
fn read_line_from(input: &mut impl Read) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match input.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < MAX_LINE => line.push(byte[0]),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Some(text.trim_end_matches('\r').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_at_newline_and_are_bounded() {
        let mut input: &[u8] = b"root\r\nsecond\n";
        assert_eq!(read_line_from(&mut input).unwrap().as_deref(), Some("root"));
        assert_eq!(
            read_line_from(&mut input).unwrap().as_deref(),
            Some("second")
        );
        assert_eq!(read_line_from(&mut input).unwrap(), None);
        let long = vec![b'a'; MAX_LINE * 2];
        let mut input: &[u8] = &[long.as_slice(), b"\n"].concat();
        assert_eq!(
            read_line_from(&mut input).unwrap().map(|l| l.len()),
            Some(MAX_LINE)
        );
    }

    fn pty_terminal(timeout: Duration) -> (File, TtyTerminal) {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = File::from(pty.slave);
        let mut t = tcgetattr(&slave).unwrap();
        apply_login_settings(&mut t, false);
        tcsetattr(&slave, SetArg::TCSANOW, &t).unwrap();
        (File::from(pty.master), TtyTerminal::new(slave, timeout))
    }

    fn drain(master: &mut File) -> String {
        let mut out = String::new();
        loop {
            let ready = {
                let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
                poll(&mut fds, PollTimeout::from(200u16)).unwrap_or(0) > 0
            };
            if !ready {
                return out;
            }
            let mut buf = [0u8; 512];
            let n = master.read(&mut buf).unwrap();
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    #[test]
    fn secrets_are_not_echoed_and_the_prompt_times_out() {
        let (mut master, mut term) = pty_terminal(Duration::from_secs(60));
        let user = std::thread::spawn(move || {
            let secret = term.read_secret("Password: ").unwrap();
            (secret, term)
        });
        let mut shown = String::new();
        while !shown.contains("Password: ") {
            shown.push_str(&drain(&mut master));
        }
        master.write_all(b"hunter2\r").unwrap();
        let (secret, mut term) = user.join().unwrap();
        assert_eq!(secret.as_deref(), Some("hunter2"));
        shown.push_str(&drain(&mut master));
        assert_eq!(shown, "Password: \r\n", "the secret is not echoed");
        master.write_all(b"alice\r").unwrap();
        assert_eq!(term.read_line().unwrap().as_deref(), Some("alice"));
        assert_eq!(
            drain(&mut master),
            "alice\r\n",
            "echo is back on after the secret"
        );

        let (mut master, mut term) = pty_terminal(Duration::from_millis(100));
        assert_eq!(term.read_secret("Password: ").unwrap(), None);
        assert_eq!(
            drain(&mut master),
            "Password: \r\nLogin timed out after 0 seconds\r\n"
        );
    }

    #[test]
    fn common_speeds_map_and_odd_ones_do_not() {
        assert_eq!(baud_rate(115200), Some(BaudRate::B115200));
        assert_eq!(baud_rate(38400), Some(BaudRate::B38400));
        assert_eq!(baud_rate(9600), Some(BaudRate::B9600));
        assert_eq!(baud_rate(12345), None);
        assert_eq!(baud_rate(0), None);
    }
}

//! `-detach`: log through syslog (`/dev/log`, facility daemon, tag `vsudd`) instead of the console, as
//! vsudd does. Like vsudd it does not fork: a supervisor keeps tracking the process.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The syslog tag vsudd uses.
pub const TAG: &str = "vsudd";
/// syslog facility "daemon" (3), shifted into place.
const FACILITY_DAEMON: u8 = 3 << 3;

/// Formats one syslog line (RFC 3164 without a timestamp; syslogd adds one): `<PRI>TAG[PID]: MESSAGE`.
pub fn syslog_line(level: Level, pid: u32, message: &str) -> String {
    let severity = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    format!("<{}>{TAG}[{pid}]: {message}", FACILITY_DAEMON | severity)
}

/// A `log` backend writing to a syslog datagram socket, reconnecting once when a send fails.
#[derive(Debug)]
pub struct SyslogLogger {
    path: PathBuf,
    socket: Mutex<UnixDatagram>,
    filter: LevelFilter,
}

impl SyslogLogger {
    /// Connects to the syslog socket at `path` (normally `/dev/log`).
    pub fn connect(path: &Path, filter: LevelFilter) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(SyslogLogger {
            path: path.to_owned(),
            socket: Mutex::new(socket),
            filter,
        })
    }

    /// Installs this logger as the `log` backend (the first installed logger wins).
    pub fn install(self) {
        let filter = self.filter;
        if log::set_boxed_logger(Box::new(self)).is_ok() {
            log::set_max_level(filter);
        }
    }
}

impl Log for SyslogLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.filter
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = syslog_line(
            record.level(),
            std::process::id(),
            &record.args().to_string(),
        );
        let mut socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        if socket.send(line.as_bytes()).is_err() {
            // syslogd may have been restarted: reconnect once; a second failure has nowhere to go.
            if let Ok(fresh) =
                UnixDatagram::unbound().and_then(|s| s.connect(&self.path).map(|()| s))
            {
                let _ = fresh.send(line.as_bytes());
                *socket = fresh;
            }
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_daemon_priority_and_the_vsudd_tag() {
        assert_eq!(
            syslog_line(Level::Info, 42, "Listening on port 2374"),
            "<30>vsudd[42]: Listening on port 2374"
        );
        assert_eq!(syslog_line(Level::Error, 1, "x"), "<27>vsudd[1]: x");
    }

    #[test]
    fn logger_sends_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let logger = SyslogLogger::connect(&path, LevelFilter::Info).unwrap();
        logger.log(
            &Record::builder()
                .level(Level::Info)
                .args(format_args!("hello"))
                .build(),
        );
        logger.log(
            &Record::builder()
                .level(Level::Debug)
                .args(format_args!("hidden"))
                .build(),
        );
        let mut buf = [0; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("<30>vsudd[{}]: hello", std::process::id())
        );
        server.set_nonblocking(true).unwrap();
        assert!(
            server.recv(&mut buf).is_err(),
            "debug must be filtered at the default level"
        );
    }
}

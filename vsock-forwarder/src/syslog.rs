//! `-syslog PORT:PATH`: datagrams arriving on a unixgram socket are sent to the host over one long-lived
//! stream, each framed RFC 5425 style (`"<length> " + bytes`).
//!
//! As in vsudd: the stream is read-shutdown; a failed write reconnects and first replays the last message
//! that was sent successfully (its loss is only noticed on the next write); each datagram gets two tries,
//! then it is dropped. Diagnostics go to a separate console sink (vsudd: `/dev/console`, prefix
//! `vsyslog: `) so that they cannot loop back through syslog. Unlike vsudd, datagrams of any size are
//! forwarded whole (vsudd truncated them at 4096 bytes).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::io::Interest;
use tokio::net::UnixDatagram;

use crate::config::SyslogSpec;
use crate::endpoint::Endpoint;
use crate::stream::{Stream, connect, remove_stale_socket};
use crate::sys::next_datagram_len;

/// Tries per datagram, as in vsudd.
const TRIES: usize = 2;

/// Why the syslog forward stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// Creating the unixgram socket failed.
    #[error("Failed to listen to unixgram:{}", path.display())]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading a datagram failed.
    #[error("Failed to read from {}", path.display())]
    Read {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The host side of the syslog forward: connection, replay buffer and console.
#[derive(Debug)]
pub struct SyslogSender<W: Write> {
    target: Endpoint,
    label: String,
    conn: Option<Stream>,
    last: Option<Vec<u8>>,
    connected_once: bool,
    console: W,
}

/// Builds a frame: the decimal length, a space, the message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = format!("{} ", message.len()).into_bytes();
    framed.extend_from_slice(message);
    framed
}

impl<W: Write> SyslogSender<W> {
    /// A sender to `target` (vsock CID 2 in production), logging to `console`.
    pub fn new(target: Endpoint, label: String, console: W) -> Self {
        SyslogSender {
            target,
            label,
            conn: None,
            last: None,
            connected_once: false,
            console,
        }
    }

    /// The console sink (for tests).
    pub fn console(&self) -> &W {
        &self.console
    }

    fn say(&mut self, message: String) {
        // Nowhere better to report a console failure.
        let _ = writeln!(self.console, "vsyslog: {message}");
    }

    /// Sends one message, reconnecting and replaying as described in the module docs. Returns `false`
    /// when the message was dropped.
    pub async fn send(&mut self, message: &[u8]) -> bool {
        for attempt in 1..=TRIES {
            let Some(conn) = self.connection().await else {
                continue;
            };
            if let Err(err) = conn.write_all(&frame(message)).await {
                self.conn = None;
                self.say(format!(
                    "Failed to write: {} ({err})",
                    String::from_utf8_lossy(message)
                ));
                continue;
            }
            if attempt > 1 {
                self.say(format!(
                    "Forwarded on attempt {attempt}: {}",
                    String::from_utf8_lossy(message)
                ));
            }
            self.last = Some(message.to_vec());
            return true;
        }
        self.last = None;
        self.say(format!(
            "Failed to send log: Failed to send datagram, too many retries: {}",
            String::from_utf8_lossy(message)
        ));
        false
    }

    async fn connection(&mut self) -> Option<&mut Stream> {
        if self.conn.is_none() {
            let mut conn = match connect(&self.target).await {
                Ok(conn) => conn,
                Err(err) => {
                    let what = match &self.target {
                        Endpoint::Vsock { port, .. } => format!("vsock port {port}"),
                        other => other.to_string(),
                    };
                    self.say(format!("Failed to dial {what}: {err}"));
                    return None;
                }
            };
            half_close_read(&conn);
            if self.connected_once {
                self.say(format!("Opened new conn to {}", self.label));
            }
            self.connected_once = true;
            if let Some(last) = self.last.take() {
                self.say(format!(
                    "Replaying last message: {}",
                    String::from_utf8_lossy(&last)
                ));
                if conn.write_all(&frame(&last)).await.is_err() {
                    return None;
                }
            }
            self.conn = Some(conn);
        }
        self.conn.as_mut()
    }
}

/// `shutdown(SHUT_RD)`: the host never sends anything back. Failure changes nothing that matters.
fn half_close_read(conn: &Stream) {
    use std::os::fd::AsFd;
    let fd = match conn {
        Stream::Vsock(s) => s.as_fd(),
        Stream::Unix(s) => s.as_fd(),
        Stream::Tcp(s) => s.as_fd(),
    };
    let _ = nix::sys::socket::shutdown(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        nix::sys::socket::Shutdown::Read,
    );
}

/// Creates the unixgram socket at `path`, replacing a stale one.
pub fn bind_datagram(path: &Path) -> Result<UnixDatagram, SyslogError> {
    let listen_error = |source| SyslogError::Listen {
        path: path.to_owned(),
        source,
    };
    remove_stale_socket(path).map_err(listen_error)?;
    UnixDatagram::bind(path).map_err(listen_error)
}

/// Receives one whole datagram, however long.
pub async fn recv_whole(socket: &UnixDatagram) -> io::Result<Vec<u8>> {
    loop {
        socket.readable().await?;
        let result = socket.try_io(Interest::READABLE, || {
            let len = next_datagram_len(socket)?;
            let mut buf = vec![0; len];
            let n = socket.try_recv(&mut buf)?;
            buf.truncate(n);
            Ok(buf)
        });
        match result {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Runs the syslog forward until reading fails.
pub async fn run<W: Write>(spec: &SyslogSpec, console: W) -> Result<(), SyslogError> {
    let socket = bind_datagram(&spec.path)?;
    let mut sender = SyslogSender::new(spec.target.clone(), spec.label.clone(), console);
    loop {
        let message = recv_whole(&socket)
            .await
            .map_err(|source| SyslogError::Read {
                path: spec.path.clone(),
                source,
            })?;
        sender.send(&message).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_octet_counted() {
        assert_eq!(frame(b"<13>hello"), b"9 <13>hello");
        assert_eq!(frame(b""), b"0 ");
    }
}

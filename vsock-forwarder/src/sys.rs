//! Thin wrappers over the system calls the daemon needs beyond tokio: vsock listen backlog, pid file,
//! stdio redirection, datagram sizing, vsock connect timeouts. All through `nix`; the one `unsafe` is
//! tokio's reactor registration.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{Backlog, MsgFlags, listen, recv, send};
use tokio_vsock::{VsockAddr, VsockListener};

/// Listens on AF_VSOCK `cid:port` with backlog SOMAXCONN (vsudd's; tokio-vsock alone uses 128).
pub fn vsock_listen(cid: u32, port: u32) -> io::Result<VsockListener> {
    let listener = VsockListener::bind(VsockAddr::new(cid, port))?;
    // Linux lets listen() on a listening socket change its backlog.
    listen(&listener, Backlog::MAXCONN)?;
    Ok(listener)
}

/// Whether the peer of a connected stream socket has closed for good: a zero-length `send` fails with
/// EPIPE once the peer can receive nothing more (AF_UNIX and AF_VSOCK after the peer's close, TCP after a
/// reset), and succeeds after a mere half-close. `write(2)` of zero bytes never reaches the socket, hence
/// `send`. MSG_NOSIGNAL: no SIGPIPE.
pub fn peer_closed<F: AsFd>(socket: &F) -> bool {
    use std::os::fd::AsRawFd;
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    matches!(
        send(socket.as_fd().as_raw_fd(), &[], flags),
        Err(Errno::EPIPE | Errno::ENOTCONN | Errno::ECONNRESET)
    )
}

/// AF_VSOCK's `SO_VM_SOCKETS_CONNECT_TIMEOUT` (a `struct timeval`; `_OLD`, the 64-bit layout).
const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;

use nix::{setsockopt_impl, sockopt_impl};

sockopt_impl!(
    /// How long a vsock `connect` may take before it fails with ETIMEDOUT (the kernel's default: 2 s).
    VsockConnectTimeout,
    SetOnly,
    libc::AF_VSOCK,
    SO_VM_SOCKETS_CONNECT_TIMEOUT,
    nix::sys::time::TimeVal
);

/// A non-blocking AF_VSOCK stream socket whose connect to `cid:port` has been started and may take up to
/// `timeout` (instead of the kernel's 2 s: a loaded guest under TCG can take longer, and a client that
/// gives up leaves the listener a connection it has already accepted). Wait for writability, then
/// [`connect_result`].
pub fn vsock_start_connect(cid: u32, port: u32, timeout: Duration) -> io::Result<OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, VsockAddr, connect, setsockopt, socket,
    };
    use nix::sys::time::TimeVal;
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let micros = libc::suseconds_t::from(timeout.subsec_micros());
    let seconds = libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX);
    setsockopt(&fd, VsockConnectTimeout, &TimeVal::new(seconds, micros))?;
    use std::os::fd::AsRawFd;
    match connect(fd.as_raw_fd(), &VsockAddr::new(cid, port)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(err) => Err(err.into()),
    }
}

/// Registers `fd` with the tokio reactor, to wait for its readiness.
pub fn register(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor; it is neither replaced nor closed while registered (it is
    // closed only after deregistration, when the AsyncFd or what `into_inner` returned is dropped).
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|err| err.into_parts().1)
}

/// The outcome of a non-blocking connect once the socket is writable (`SO_ERROR`).
pub fn connect_result<F: AsFd>(socket: &F) -> io::Result<()> {
    match nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::SocketError)? {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Writes the decimal pid to `path` (mode 0600, truncated), as vsudd does.
pub fn write_pidfile(path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    write!(file, "{}", std::process::id())
}

/// Points stdin, stdout and stderr at `/dev/null`.
pub fn redirect_stdio_to_null() -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(null.as_fd())?;
    nix::unistd::dup2_stdout(null.as_fd())?;
    nix::unistd::dup2_stderr(null.as_fd())?;
    Ok(())
}

/// The console for the syslog forward's own diagnostics: `/dev/console`, or stderr when it cannot be
/// opened (vsudd gave up instead).
pub fn open_console() -> Box<dyn Write + Send> {
    match OpenOptions::new().write(true).open("/dev/console") {
        Ok(file) => Box::new(file),
        Err(_) => Box::new(io::stderr()),
    }
}

/// The size of the next datagram queued on `socket`, without consuming it (`MSG_PEEK | MSG_TRUNC`).
pub fn next_datagram_len<F: AsFd>(socket: &F) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut probe = [0u8; 1];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT;
    Ok(recv(socket.as_fd().as_raw_fd(), &mut probe, flags)?)
}

/// Unblocks the signals the daemon handles (SIGUSR1, SIGTERM, SIGINT) in the calling thread; threads
/// started later (the runtime's) inherit the mask. A parent can leave them blocked across exec, and then
/// tokio's handlers never run; vsudd's Go `signal.Notify` unblocks them the same way.
pub fn unblock_handled_signals() -> io::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGUSR1, Signal::SIGTERM, Signal::SIGINT] {
        set.add(signal);
    }
    set.thread_unblock().map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;

    use super::*;

    #[test]
    fn pidfile_holds_the_pid_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        std::fs::write(&path, "999999999999 stale").unwrap();
        write_pidfile(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::process::id().to_string()
        );
        let meta = std::fs::metadata(&path).unwrap();
        // An existing file keeps its mode; a new one gets 0600.
        std::fs::remove_file(&path).unwrap();
        write_pidfile(&path).unwrap();
        let meta_new = std::fs::metadata(&path).unwrap();
        assert_eq!(
            meta_new.permissions().mode() & 0o777,
            0o600,
            "old mode {:o}",
            meta.permissions().mode()
        );
    }

    #[test]
    fn a_closed_peer_is_told_from_a_half_closed_one() {
        use std::net::Shutdown;
        use std::os::unix::net::UnixStream;
        let (a, b) = UnixStream::pair().unwrap();
        assert!(!peer_closed(&a), "open");
        b.shutdown(Shutdown::Write).unwrap();
        assert!(!peer_closed(&a), "half-closed by the peer");
        drop(b);
        assert!(peer_closed(&a), "closed by the peer");
    }

    #[test]
    fn datagram_length_is_reported_beyond_4096_bytes() {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(&[7u8; 10_000]).unwrap();
        assert_eq!(next_datagram_len(&b).unwrap(), 10_000);
        let mut buf = vec![0; 10_000];
        assert_eq!(b.recv(&mut buf).unwrap(), 10_000);
        assert!(
            next_datagram_len(&b).is_err(),
            "an empty queue must not report a length"
        );
    }
}

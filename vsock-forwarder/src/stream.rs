//! The runtime side of [`Endpoint`]: one stream type and one listener type over vsock, unix and TCP.
//!
//! AF_VSOCK appears only here and in [`crate::sys`]; everything else works on [`Stream`] or on any
//! `AsyncRead + AsyncWrite` through the [`Acceptor`] trait, so tests use unix and TCP sockets.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

use crate::endpoint::Endpoint;

/// A connected stream of any supported family.
#[derive(Debug)]
pub enum Stream {
    /// AF_VSOCK.
    Vsock(VsockStream),
    /// AF_UNIX stream.
    Unix(UnixStream),
    /// TCP.
    Tcp(TcpStream),
}

macro_rules! each_stream {
    ($self:expr, $s:ident => $body:expr) => {
        match $self.get_mut() {
            Stream::Vsock($s) => $body,
            Stream::Unix($s) => $body,
            Stream::Tcp($s) => $body,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_flush(cx))
    }

    /// Half-closes: `shutdown(SHUT_WR)` for every family.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// Whether a stream's peer has closed for good, not merely half-closed: nothing written to the stream
/// can be read any more. Asked once, after the stream's end-of-file, by [`crate::copy`].
pub trait PeerProbe {
    /// True when the peer has closed (or reset) the connection.
    fn peer_closed(&self) -> bool;
}

impl PeerProbe for Stream {
    fn peer_closed(&self) -> bool {
        match self {
            Stream::Vsock(s) => crate::sys::peer_closed(s),
            Stream::Unix(s) => crate::sys::peer_closed(s),
            Stream::Tcp(s) => crate::sys::peer_closed(s),
        }
    }
}

impl PeerProbe for UnixStream {
    fn peer_closed(&self) -> bool {
        crate::sys::peer_closed(self)
    }
}

impl PeerProbe for TcpStream {
    fn peer_closed(&self) -> bool {
        crate::sys::peer_closed(self)
    }
}

/// Dials `endpoint` once.
pub async fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
    match endpoint {
        Endpoint::Vsock { cid, port } => VsockStream::connect(VsockAddr::new(*cid, *port))
            .await
            .map(Stream::Vsock),
        Endpoint::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
        Endpoint::Tcp(addr) => TcpStream::connect(addr).await.map(Stream::Tcp),
    }
}

/// Dials `endpoint` once, allowing a vsock connect `timeout` instead of the kernel's 2 s (unix and TCP
/// connects are not limited here; callers bound them).
pub async fn connect_within(endpoint: &Endpoint, timeout: Duration) -> io::Result<Stream> {
    let Endpoint::Vsock { cid, port } = endpoint else {
        return connect(endpoint).await;
    };
    let fd = crate::sys::register(crate::sys::vsock_start_connect(*cid, *port, timeout)?)?;
    loop {
        let mut ready = fd.writable().await?;
        match crate::sys::connect_result(fd.get_ref()) {
            // Spurious wake-up: writable but not yet connected.
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => ready.clear_ready(),
            result => {
                result?;
                break;
            }
        }
    }
    let fd = fd.into_inner();
    VsockStream::new(vsock::VsockStream::from(fd)).map(Stream::Vsock)
}

/// Formats a vsock peer the way vsudd does: `%08x.%08x` (CID.port).
pub fn vsock_peer(addr: &VsockAddr) -> String {
    format!("{:08x}.{:08x}", addr.cid(), addr.port())
}

/// Something that hands out connections: a real listener, or anything a test builds.
pub trait Acceptor: Send + 'static {
    /// The accepted connection type.
    type Conn: AsyncRead + AsyncWrite + PeerProbe + Unpin + Send + 'static;

    /// Waits for the next connection and describes its peer for the log.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Conn, String)>> + Send;
}

/// A listening socket of any supported family.
#[derive(Debug)]
pub enum Listener {
    /// AF_VSOCK.
    Vsock(VsockListener),
    /// AF_UNIX stream.
    Unix(UnixListener),
    /// TCP.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `endpoint`. A unix path that already holds a socket is replaced (a stale one from an earlier run).
    pub async fn bind(endpoint: &Endpoint) -> io::Result<Self> {
        match endpoint {
            Endpoint::Vsock { cid, port } => {
                crate::sys::vsock_listen(*cid, *port).map(Listener::Vsock)
            }
            Endpoint::Unix(path) => {
                remove_stale_socket(path)?;
                UnixListener::bind(path).map(Listener::Unix)
            }
            Endpoint::Tcp(addr) => TcpListener::bind(addr).await.map(Listener::Tcp),
        }
    }
}

/// Removes `path` when it is a socket; leaves anything else for `bind` to fail on.
pub fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

impl Acceptor for Listener {
    type Conn = Stream;

    async fn accept(&mut self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Vsock(l) => l
                .accept()
                .await
                .map(|(s, peer)| (Stream::Vsock(s), vsock_peer(&peer))),
            Listener::Unix(l) => l
                .accept()
                .await
                .map(|(s, _)| (Stream::Unix(s), "unix".to_owned())),
            Listener::Tcp(l) => l
                .accept()
                .await
                .map(|(s, peer)| (Stream::Tcp(s), peer.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn vsock_peers_print_like_vsudd() {
        assert_eq!(
            vsock_peer(&VsockAddr::new(2, 0x4000_0001)),
            "00000002.40000001"
        );
    }

    #[tokio::test]
    async fn unix_and_tcp_listeners_accept_streams() {
        let dir = tempfile::tempdir().unwrap();
        let unix = Endpoint::Unix(dir.path().join("l.sock"));
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        let mut listener = Listener::bind(&unix).await.unwrap();
        // A second bind replaces the stale socket.
        drop(listener);
        listener = Listener::bind(&unix).await.unwrap();
        let mut client = connect(&unix).await.unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, "unix");
        client.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");

        let plain = Endpoint::Unix(dir.path().join("plain"));
        assert!(
            Listener::bind(&plain).await.is_err(),
            "a regular file must not be removed"
        );
        assert!(dir.path().join("plain").exists());

        let mut tcp = Listener::bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let Listener::Tcp(inner) = &tcp else {
            panic!("not tcp")
        };
        let addr = inner.local_addr().unwrap();
        let _client = connect(&Endpoint::Tcp(addr)).await.unwrap();
        let (_server, peer) = tcp.accept().await.unwrap();
        assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    }
}

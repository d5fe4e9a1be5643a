//! The copy engine: moves bytes both ways between two streams with one fixed-size buffer per direction.
//!
//! * Backpressure: a direction reads only after its buffer has been written out, so a slow reader stalls
//!   the writer at the kernel socket buffers plus one copy buffer; memory per connection is at most
//!   `2 × buffer_size` (buffers are allocated on first use and freed when their direction ends).
//! * Half-close: end-of-file on one side becomes `shutdown(SHUT_WR)` on the other, and the opposite
//!   direction keeps flowing until it ends too.
//! * Errors (a reset peer): the first error in either direction ends both; the caller drops both streams.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes moved so far on one connection, readable while the copy runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes written to `b` that were read from `a` (vsudd's "read": from the accepted side).
    pub a_to_b: AtomicU64,
    /// Bytes written to `a` that were read from `b` (vsudd's "written").
    pub b_to_a: AtomicU64,
}

impl Counters {
    /// The current `(a_to_b, b_to_a)` byte counts.
    pub fn get(&self) -> (u64, u64) {
        (
            self.a_to_b.load(Ordering::Relaxed),
            self.b_to_a.load(Ordering::Relaxed),
        )
    }
}

/// Which direction failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading `a` or writing `b` failed.
    #[error("copying a to b")]
    AToB(#[source] io::Error),
    /// Reading `b` or writing `a` failed.
    #[error("copying b to a")]
    BToA(#[source] io::Error),
}

/// One direction's state.
#[derive(Debug)]
struct Direction {
    size: usize,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    done: bool,
}

impl Direction {
    fn new(size: usize) -> Self {
        Direction {
            size,
            buf: Box::default(),
            start: 0,
            end: 0,
            eof: false,
            done: false,
        }
    }

    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
        count: &AtomicU64,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        while !self.done {
            if self.start == self.end && !self.eof {
                ready!(self.poll_fill(cx, r.as_mut()))?;
            }
            while self.start < self.end {
                let n = ready!(w.as_mut().poll_write(cx, &self.buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
            if self.eof {
                ready!(w.as_mut().poll_flush(cx))?;
                ready!(poll_half_close(cx, w.as_mut()))?;
                self.done = true;
                self.buf = Box::default();
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_fill<R: AsyncRead + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        r: Pin<&mut R>,
    ) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            self.buf = vec![0; self.size].into_boxed_slice();
        }
        let mut read_buf = ReadBuf::new(&mut self.buf);
        ready!(r.poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        self.start = 0;
        self.end = n;
        self.eof = n == 0;
        Poll::Ready(Ok(()))
    }
}

/// `shutdown(SHUT_WR)`; a peer that has already gone (ENOTCONN) counts as done.
fn poll_half_close<W: AsyncWrite + ?Sized>(
    cx: &mut Context<'_>,
    w: Pin<&mut W>,
) -> Poll<io::Result<()>> {
    match ready!(w.poll_shutdown(cx)) {
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
        other => Poll::Ready(other),
    }
}

/// Copies `a → b` and `b → a` until both directions have reached end-of-file, propagating each
/// end-of-file as a half-close. Returns at the first error. Counts bytes into `counters` as they go.
pub async fn copy_both_ways<A, B>(
    a: &mut A,
    b: &mut B,
    buffer_size: usize,
    counters: &Counters,
) -> Result<(), CopyError>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut a_to_b = Direction::new(buffer_size.max(1));
    let mut b_to_a = Direction::new(buffer_size.max(1));
    poll_fn(|cx| {
        let forward = a_to_b.poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b), &counters.a_to_b);
        if let Poll::Ready(Err(err)) = forward {
            return Poll::Ready(Err(CopyError::AToB(err)));
        }
        let backward = b_to_a.poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a), &counters.b_to_a);
        if let Poll::Ready(Err(err)) = backward {
            return Poll::Ready(Err(CopyError::BToA(err)));
        }
        if forward.is_ready() && backward.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    use super::*;

    #[tokio::test]
    async fn bytes_flow_both_ways_and_are_counted() {
        let (mut client, mut a) = UnixStream::pair().unwrap();
        let (mut b, mut server) = UnixStream::pair().unwrap();
        let counters = Counters::default();
        let copy = async { copy_both_ways(&mut a, &mut b, 7, &counters).await };
        let peers = async {
            client
                .write_all(b"hello through a small buffer")
                .await
                .unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello through a small buffer");
            server.write_all(b"reply").await.unwrap();
            server.shutdown().await.unwrap();
            let mut reply = Vec::new();
            client.read_to_end(&mut reply).await.unwrap();
            assert_eq!(reply, b"reply");
        };
        let (result, ()) = tokio::join!(copy, peers);
        result.unwrap();
        assert_eq!(counters.get(), (28, 5));
    }

    /// A stream whose reads fail with a reset.
    struct ResetStream;

    impl AsyncRead for ResetStream {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
    }

    impl AsyncWrite for ResetStream {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_reset_ends_both_directions_with_the_error() {
        let (_other, mut b) = UnixStream::pair().unwrap();
        let counters = Counters::default();
        let err = copy_both_ways(&mut ResetStream, &mut b, 1024, &counters)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CopyError::AToB(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
    }
}

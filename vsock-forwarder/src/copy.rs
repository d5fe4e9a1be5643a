//! The copy engine: moves bytes both ways between two streams with one fixed-size buffer per direction.
//!
//! * Backpressure: a direction reads only after its buffer has been written out, so a slow reader stalls
//!   the writer at the kernel socket buffers plus one copy buffer; memory per connection is at most
//!   `2 × buffer_size` (buffers are allocated on first use and freed when their direction ends).
//! * Half-close: end-of-file on one side becomes `shutdown(SHUT_WR)` on the other, and the opposite
//!   direction keeps flowing until it ends too.
//! * Errors (a reset peer): the first error in either direction ends both; the caller drops both streams.
//! * A peer that closed for good (not a half-close: it can receive nothing more) ends the connection as
//!   soon as its end-of-file is read, instead of waiting for the other side to finish a reply nobody
//!   can read ([`PeerProbe`]). A peer that only half-closed is asked again after 1 s, 2 s, 4 s… (at
//!   most every [`MAX_RECHECK`]), so one that closes later while the other side is silent is released
//!   too.
//! * Idle timeout: no byte in either direction for the timeout ends both ([`CopyError::Idle`]).

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep};

use crate::stream::PeerProbe;

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

/// The per-connection limits of the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyLimits {
    /// Bytes of buffer per direction.
    pub buffer_size: usize,
    /// End the copy after this long without a byte in either direction (`None`: never).
    pub idle_timeout: Option<Duration>,
}

/// Why the copy ended early.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// No byte moved either way for this long.
    #[error("idle for {0:?}")]
    Idle(Duration),
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

/// The first re-check of a half-closed side.
pub const FIRST_RECHECK: Duration = Duration::from_secs(1);
/// The longest pause between re-checks of a half-closed side.
pub const MAX_RECHECK: Duration = Duration::from_secs(64);

/// Watches one side after its end-of-file: has its peer closed for good since?
#[derive(Default)]
struct CloseWatch {
    recheck: Option<(Pin<Box<Sleep>>, Duration)>,
}

impl CloseWatch {
    /// True once `side`, which has reached end-of-file, has closed for good: asked at once, then at each
    /// re-check.
    fn poll_closed<S: PeerProbe + ?Sized>(&mut self, cx: &mut Context<'_>, side: &S) -> bool {
        let Some((sleep_until, interval)) = &mut self.recheck else {
            if side.peer_closed() {
                return true;
            }
            let mut first = Box::pin(sleep(FIRST_RECHECK));
            // Registers the waker for the first re-check.
            let _ = first.as_mut().poll(cx);
            self.recheck = Some((first, FIRST_RECHECK));
            return false;
        };
        while sleep_until.as_mut().poll(cx).is_ready() {
            if side.peer_closed() {
                return true;
            }
            *interval = (*interval * 2).min(MAX_RECHECK);
            sleep_until.as_mut().reset(Instant::now() + *interval);
        }
        false
    }
}

/// What the copy has done so far; a change restarts the idle timer.
type Progress = (u64, u64, bool, bool);

/// The idle timer: restarted whenever the copy makes progress.
struct IdleTimer {
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    seen: Progress,
}

impl IdleTimer {
    fn new(timeout: Duration) -> Self {
        IdleTimer {
            timeout,
            sleep: Box::pin(sleep(timeout)),
            seen: (0, 0, false, false),
        }
    }

    /// Ready when nothing has moved for the timeout.
    fn poll_expired(&mut self, cx: &mut Context<'_>, now: Progress) -> Poll<()> {
        if now != self.seen {
            self.seen = now;
            self.sleep.as_mut().reset(Instant::now() + self.timeout);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// Copies `a → b` and `b → a` until both directions have reached end-of-file, propagating each
/// end-of-file as a half-close, or until one side's end-of-file turns out to be a full close (its peer
/// can receive nothing more). Returns at the first error, or with [`CopyError::Idle`] when nothing moved
/// for `limits.idle_timeout`. Counts bytes into `counters` as they go.
pub async fn copy_both_ways<A, B>(
    a: &mut A,
    b: &mut B,
    limits: CopyLimits,
    counters: &Counters,
) -> Result<(), CopyError>
where
    A: AsyncRead + AsyncWrite + PeerProbe + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + PeerProbe + Unpin + ?Sized,
{
    let mut a_to_b = Direction::new(limits.buffer_size.max(1));
    let mut b_to_a = Direction::new(limits.buffer_size.max(1));
    let mut idle = limits.idle_timeout.map(IdleTimer::new);
    let (mut a_watch, mut b_watch) = (CloseWatch::default(), CloseWatch::default());
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
            return Poll::Ready(Ok(()));
        }
        // After an end-of-file: a close and a half-close look the same to read().
        if forward.is_ready() && a_watch.poll_closed(cx, &*a) {
            return Poll::Ready(Ok(()));
        }
        if backward.is_ready() && b_watch.poll_closed(cx, &*b) {
            return Poll::Ready(Ok(()));
        }
        if let Some(timer) = &mut idle {
            let (sent, received) = counters.get();
            let now = (sent, received, a_to_b.done, b_to_a.done);
            if timer.poll_expired(cx, now).is_ready() {
                return Poll::Ready(Err(CopyError::Idle(timer.timeout)));
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    use super::*;

    fn limits(buffer_size: usize) -> CopyLimits {
        CopyLimits {
            buffer_size,
            idle_timeout: None,
        }
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_and_are_counted() {
        let (mut client, mut a) = UnixStream::pair().unwrap();
        let (mut b, mut server) = UnixStream::pair().unwrap();
        let counters = Counters::default();
        let copy = async { copy_both_ways(&mut a, &mut b, limits(7), &counters).await };
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

    #[tokio::test]
    async fn a_client_that_closes_ends_the_copy_while_the_target_is_silent() {
        let (mut client, mut a) = UnixStream::pair().unwrap();
        let (mut b, mut server) = UnixStream::pair().unwrap();
        client.write_all(b"request").await.unwrap();
        drop(client);
        let counters = Counters::default();
        // The target never answers nor closes; without the probe this would wait for it for ever.
        let copy = copy_both_ways(&mut a, &mut b, limits(64), &counters);
        tokio::time::timeout(Duration::from_secs(30), copy)
            .await
            .expect("the copy ended when the client closed")
            .unwrap();
        assert_eq!(counters.get(), (7, 0));
        drop(b);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_half_closes_then_closes_is_released_at_the_next_recheck() {
        let (mut client, mut a) = UnixStream::pair().unwrap();
        let (mut b, _server) = UnixStream::pair().unwrap();
        let counters = Counters::default();
        let start = Instant::now();
        let copy = async {
            let result = copy_both_ways(&mut a, &mut b, limits(64), &counters).await;
            (result, start.elapsed())
        };
        let close_at = Duration::from_secs(10);
        let peer = async {
            client.write_all(b"request").await.unwrap();
            client.shutdown().await.unwrap();
            // Still waiting for a reply that the silent target never sends; then gives up and closes.
            tokio::time::sleep(close_at).await;
            drop(client);
        };
        let ((result, ended_after), ()) = tokio::join!(copy, peer);
        result.unwrap();
        // Re-checks at 1, 3, 7 and 15 s (virtual time): the close at 10 s is seen at 15 s.
        assert!(
            ended_after >= close_at && ended_after <= close_at + MAX_RECHECK,
            "ended after {ended_after:?}"
        );
        assert_eq!(counters.get(), (7, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_restarts_the_idle_timer_and_silence_ends_the_copy() {
        let (mut client, mut a) = UnixStream::pair().unwrap();
        let (mut b, mut server) = UnixStream::pair().unwrap();
        let hour = Duration::from_secs(3600);
        let limits = CopyLimits {
            buffer_size: 64,
            idle_timeout: Some(hour),
        };
        let counters = Counters::default();
        let start = Instant::now();
        let copy = async {
            let result = copy_both_ways(&mut a, &mut b, limits, &counters).await;
            drop((a, b));
            result
        };
        let peers = async {
            // Five bytes 45 minutes apart (virtual time): never an hour without traffic.
            for _ in 0..5 {
                tokio::time::sleep(hour * 3 / 4).await;
                client.write_all(b"x").await.unwrap();
                let mut x = [0; 1];
                server.read_exact(&mut x).await.unwrap();
            }
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            start.elapsed()
        };
        let (result, closed_after) = tokio::join!(copy, peers);
        assert!(
            matches!(result, Err(CopyError::Idle(t)) if t == hour),
            "{result:?}"
        );
        assert!(
            closed_after >= hour * 3 / 4 * 5 + hour,
            "closed after {closed_after:?}, before an hour of silence"
        );
        assert_eq!(counters.get(), (5, 0));
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

    impl PeerProbe for ResetStream {
        fn peer_closed(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_reset_ends_both_directions_with_the_error() {
        let (_other, mut b) = UnixStream::pair().unwrap();
        let counters = Counters::default();
        let err = copy_both_ways(&mut ResetStream, &mut b, limits(1024), &counters)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CopyError::AToB(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
    }
}

//! Dialling a target that may not be listening yet: retry with capped exponential backoff for a bounded time.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout_at};

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first attempt (zero: one attempt).
    pub deadline: Duration,
    /// The first pause between attempts; it doubles after each failure.
    pub first_delay: Duration,
    /// The longest pause between attempts.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Retries for `deadline`, pausing 20 ms at first and never more than 1 s.
    pub fn new(deadline: Duration) -> Self {
        RetryPolicy {
            deadline,
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// Errors that mean "not listening yet" (or a full backlog) rather than "never going to work".
pub fn is_retryable(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(err.kind(), NotFound | ConnectionRefused | ConnectionReset | WouldBlock | TimedOut | Interrupted)
        // ENODEV: the vsock transport module is not loaded yet.
        || err.raw_os_error() == Some(libc::ENODEV)
}

/// Calls `dial` until it succeeds, fails with a non-retryable error, or the policy's deadline passes;
/// returns the last error then. An attempt still in progress at the deadline is abandoned.
pub async fn dial_with_retry<T, F, Fut>(policy: RetryPolicy, mut dial: F) -> io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let deadline = Instant::now() + policy.deadline;
    let mut delay = policy.first_delay;
    loop {
        let err = match timeout_at(deadline.max(Instant::now() + policy.max_delay), dial()).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(err)) => err,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
        };
        if !is_retryable(&err) || Instant::now() + delay > deadline {
            return Err(err);
        }
        sleep(delay).await;
        delay = (delay * 2).min(policy.max_delay);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_target_appears() {
        let attempts = Cell::new(0);
        let result = dial_with_retry(RetryPolicy::new(Duration::from_secs(10)), || {
            attempts.set(attempts.get() + 1);
            let n = attempts.get();
            async move {
                if n < 5 {
                    Err(io::Error::from(io::ErrorKind::ConnectionRefused))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_with_capped_backoff() {
        let start = Instant::now();
        let attempts = Cell::new(0u32);
        let result: io::Result<()> =
            dial_with_retry(RetryPolicy::new(Duration::from_secs(5)), || {
                attempts.set(attempts.get() + 1);
                async { Err(io::Error::from(io::ErrorKind::NotFound)) }
            })
            .await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::NotFound);
        // 20+40+...+640 ms, then 1 s pauses: 10 attempts fit in 5 s of (virtual) time.
        assert_eq!(attempts.get(), 10);
        assert!(start.elapsed() <= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_and_zero_deadlines_try_once() {
        for (deadline, kind) in [
            (Duration::from_secs(5), io::ErrorKind::PermissionDenied),
            (Duration::ZERO, io::ErrorKind::NotFound),
        ] {
            let attempts = Cell::new(0);
            let result: io::Result<()> = dial_with_retry(RetryPolicy::new(deadline), || {
                attempts.set(attempts.get() + 1);
                async move { Err(io::Error::from(kind)) }
            })
            .await;
            assert_eq!(result.unwrap_err().kind(), kind);
            assert_eq!(attempts.get(), 1, "{kind:?}");
        }
    }
}

//! A log budget for messages that remote peers can trigger repeatedly (failed dials, resets, accept errors).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Allows `burst` messages per `window`; counts what it suppresses and reports it with the next allowed one.
#[derive(Debug)]
pub struct LogBudget {
    burst: u32,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` messages were dropped since the last one logged.
    Log {
        /// Messages dropped before this one.
        suppressed: u64,
    },
    /// Drop it.
    Drop,
}

impl LogBudget {
    /// A budget of `burst` messages per `window`.
    pub const fn new(burst: u32, window: Duration) -> Self {
        LogBudget {
            burst,
            window,
            state: Mutex::new(Window {
                start: None,
                used: 0,
                suppressed: 0,
            }),
        }
    }

    /// Decides about one message at time `now`.
    pub fn check(&self, now: Instant) -> Verdict {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = state
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            state.start = Some(now);
            state.used = 0;
        }
        if state.used >= self.burst {
            state.suppressed += 1;
            return Verdict::Drop;
        }
        state.used += 1;
        let suppressed = std::mem::take(&mut state.suppressed);
        Verdict::Log { suppressed }
    }
}

/// Logs at `$level` through `$budget` (a [`LogBudget`]), noting how many earlier messages were dropped.
#[macro_export]
macro_rules! log_limited {
    ($budget:expr, $level:expr, $($arg:tt)+) => {
        if let $crate::ratelimit::Verdict::Log { suppressed } = $budget.check(std::time::Instant::now()) {
            if suppressed > 0 {
                log::log!($level, "({suppressed} similar messages suppressed)");
            }
            log::log!($level, $($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_drops_the_excess_and_reports_it() {
        let budget = LogBudget::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(budget.check(t0), Verdict::Log { suppressed: 0 });
        assert_eq!(budget.check(t0), Verdict::Log { suppressed: 0 });
        assert_eq!(budget.check(t0), Verdict::Drop);
        assert_eq!(budget.check(t0 + Duration::from_millis(999)), Verdict::Drop);
        assert_eq!(
            budget.check(t0 + Duration::from_secs(1)),
            Verdict::Log { suppressed: 2 }
        );
        assert_eq!(
            budget.check(t0 + Duration::from_secs(1)),
            Verdict::Log { suppressed: 0 }
        );
    }
}

//! The numeric knobs (connection caps, copy buffer size, connect and idle timeouts), each parsed from the
//! command line and range-checked into a typed value before anything uses it.
//!
//! Counts are whole decimal numbers between 1 and a documented maximum; durations are Go-style text
//! (`500ms`, `10s`, `15m`, `24h`) or seconds, checked by the [`durations`] crate. Anything else (`1e20`,
//! `NaN`, `-1`, a number above the maximum) is an error naming the flag and the value; nothing panics.

use std::time::Duration;

use durations::{DurationError, Limit};

/// The largest `-max-connections` and `-max-connections-per-rule`: the kernel's default `nr_open`
/// (2^20); each connection holds two descriptors, so more can never be open at once.
pub const MAX_CONNECTIONS: u64 = 1 << 20;

/// The largest `-buffer-size`: 16 MiB per direction.
pub const MAX_BUFFER_SIZE: u64 = 16 << 20;

/// `-connect-timeout` accepts up to one day.
pub const CONNECT_TIMEOUT: Limit = Limit::up_to(Duration::from_secs(24 * 3600));

/// `-idle-timeout` accepts up to the [`durations::CEILING`] (one week).
pub const IDLE_TIMEOUT: Limit = Limit::up_to(durations::CEILING);

/// The default `-idle-timeout`: a day, so that clients that keep an API connection open without
/// traffic (an event stream, a gRPC channel) are not cut, while abandoned connections are still
/// reclaimed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Resource limits; the connection caps are enforced by [`crate::forward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many forwarded connections at once over all rules.
    pub max_connections: usize,
    /// At most this many at once on one rule; `None`: `max_connections` divided evenly among the rules
    /// (see [`Limits::per_rule`]).
    pub max_connections_per_rule: Option<usize>,
    /// Bytes of copy buffer per direction (two per connection).
    pub buffer_size: usize,
    /// How long to keep retrying a target that is not listening yet (zero: one attempt).
    pub connect_timeout: Duration,
    /// Close a connection after this long without a byte in either direction (`None`: never).
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_connections_per_rule: None,
            buffer_size: 32 * 1024,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

impl Limits {
    /// The cap of each of `rules` rules: the explicit `-max-connections-per-rule`, else the global cap
    /// divided evenly (at least 1), so that rules at their caps together never hold every global slot.
    pub fn per_rule(&self, rules: usize) -> usize {
        self.max_connections_per_rule
            .unwrap_or_else(|| self.max_connections / rules.max(1))
            .clamp(1, self.max_connections.max(1))
    }
}

/// A numeric flag that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    /// Not a whole decimal number (`1e20`, `NaN`, `-1`, `1.5`).
    #[error("invalid value {value:?} for flag -{flag}: not a whole number")]
    NotCount {
        /// The flag name.
        flag: &'static str,
        /// The text given.
        value: String,
    },
    /// A whole number outside `1..=max`.
    #[error("invalid value {value:?} for flag -{flag}: must be between 1 and {max}")]
    CountRange {
        /// The flag name.
        flag: &'static str,
        /// The text given.
        value: String,
        /// The largest value accepted.
        max: u64,
    },
    /// A duration that does not parse or is out of range.
    #[error("invalid value {value:?} for flag -{flag}")]
    Duration {
        /// The flag name.
        flag: &'static str,
        /// The text given.
        value: String,
        /// What was wrong.
        #[source]
        source: DurationError,
    },
}

/// Parses a count between 1 and `max` (at most [`MAX_CONNECTIONS`] or [`MAX_BUFFER_SIZE`], so it fits
/// in `usize` and in tokio's semaphore).
pub fn parse_count(flag: &'static str, text: &str, max: u64) -> Result<usize, LimitError> {
    let value = text.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LimitError::NotCount {
            flag,
            value: text.to_owned(),
        });
    }
    let out_of_range = || LimitError::CountRange {
        flag,
        value: text.to_owned(),
        max,
    };
    // Only digits: a parse failure is an overflow of u64, far above any maximum.
    let count: u64 = value.parse().map_err(|_| out_of_range())?;
    if count == 0 || count > max {
        return Err(out_of_range());
    }
    usize::try_from(count).map_err(|_| out_of_range())
}

/// Parses a duration within `limit`.
pub fn parse_timeout(flag: &'static str, text: &str, limit: Limit) -> Result<Duration, LimitError> {
    limit.parse(text).map_err(|source| LimitError::Duration {
        flag,
        value: text.to_owned(),
        source,
    })
}

/// Parses `-idle-timeout`: `0` disables it.
pub fn parse_idle_timeout(text: &str) -> Result<Option<Duration>, LimitError> {
    let timeout = parse_timeout("idle-timeout", text, IDLE_TIMEOUT)?;
    Ok(Some(timeout).filter(|t| !t.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use logging::error_chain as chain;

    #[test]
    fn counts_are_accepted_from_1_to_the_maximum() {
        assert_eq!(parse_count("max-connections", "1", MAX_CONNECTIONS), Ok(1));
        assert_eq!(
            parse_count("max-connections", "1048576", MAX_CONNECTIONS),
            Ok(1 << 20)
        );
        assert_eq!(
            parse_count("buffer-size", "16777216", MAX_BUFFER_SIZE),
            Ok(16 << 20)
        );
    }

    #[test]
    fn counts_at_their_extremes_are_clear_errors() {
        let cases = [
            ("0", "must be between 1 and 1048576"),
            ("1048577", "must be between 1 and 1048576"),
            // Above 2^61: tokio's semaphore would panic; above 2^64: u64 overflows.
            ("2305843009213693952", "must be between 1 and 1048576"),
            ("99999999999999999999", "must be between 1 and 1048576"),
            ("1e20", "not a whole number"),
            ("NaN", "not a whole number"),
            ("inf", "not a whole number"),
            ("-1", "not a whole number"),
            ("1.5", "not a whole number"),
            ("", "not a whole number"),
        ];
        for (text, needle) in cases {
            let err = parse_count("max-connections", text, MAX_CONNECTIONS).unwrap_err();
            let message = chain(&err);
            assert!(
                message.contains(needle) && message.contains("-max-connections"),
                "{text:?}: {message}"
            );
        }
        let err = parse_count("buffer-size", "16777217", MAX_BUFFER_SIZE).unwrap_err();
        assert!(chain(&err).contains("between 1 and 16777216"), "{err}");
    }

    #[test]
    fn timeouts_accept_go_durations_and_seconds() {
        let parse = |t| parse_timeout("connect-timeout", t, CONNECT_TIMEOUT);
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_idle_timeout("0"), Ok(None));
        assert_eq!(
            parse_idle_timeout("168h"),
            Ok(Some(Duration::from_secs(7 * 86400)))
        );
    }

    #[test]
    fn timeouts_at_their_extremes_are_clear_errors() {
        let cases = [
            ("connect-timeout", "25h", "above the maximum"),
            ("connect-timeout", "1e20", "above the maximum"),
            ("connect-timeout", "1e20s", "is not a duration"),
            ("connect-timeout", "NaN", "not a finite number"),
            ("connect-timeout", "-1", "negative"),
            ("connect-timeout", "-1s", "is not a duration"),
            ("connect-timeout", "10x", "is not a duration"),
            ("idle-timeout", "169h", "above the maximum"),
            ("idle-timeout", "inf", "not a finite number"),
        ];
        for (flag, text, needle) in cases {
            let result = if flag == "idle-timeout" {
                parse_idle_timeout(text).map(|_| ())
            } else {
                parse_timeout(flag, text, CONNECT_TIMEOUT).map(|_| ())
            };
            let message = chain(&result.unwrap_err());
            assert!(
                message.contains(needle) && message.contains(&format!("-{flag}")),
                "{flag} {text:?}: {message}"
            );
        }
    }

    #[test]
    fn rules_share_the_global_cap_unless_told_otherwise() {
        let limits = Limits {
            max_connections: 4,
            ..Limits::default()
        };
        assert_eq!(limits.per_rule(1), 4);
        assert_eq!(limits.per_rule(2), 2);
        assert_eq!(limits.per_rule(5), 1);
        let explicit = Limits {
            max_connections_per_rule: Some(100),
            ..limits
        };
        assert_eq!(explicit.per_rule(2), 4, "never above the global cap");
    }
}

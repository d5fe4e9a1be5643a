//! Durations from outside input (runtime.json, config.json annotations, the kernel command line, flags),
//! checked into a range before any arithmetic can overflow.
//!
//! Every knob has a documented maximum ([`Limit`]); a value above it, negative, NaN, infinite or not a
//! number is an error that the caller wraps with the file and field it came from. Nothing here panics:
//! `Duration::from_secs_f64` and `Instant + Duration` panic or overflow near 1e19 s, so values are
//! rejected long before that.
//!
//! Two spellings are accepted:
//! - seconds as a number (`5`, `0.25`, `1e3`), as runtime.json, annotations and the command line use;
//! - Go-style durations (`250ms`, `10s`, `2m`, `1h`, `1m30s`, bare `0`), as LinuxKit's Go flags use.

use std::time::Duration;

/// The largest duration any knob accepts: one week. Far beyond any sensible timeout or backoff, and far
/// below the point where `Instant` or `Duration` arithmetic overflows.
pub const CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a duration from outside input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    /// Not a number of seconds, nor a Go-style duration.
    #[error("{value:?} is not a duration (seconds, or Go-style like 250ms, 10s, 2m, 1h)")]
    Syntax { value: String },
    /// NaN or infinite.
    #[error("{value} is not a finite number of seconds")]
    NotFinite { value: f64 },
    /// Below zero.
    #[error("{value} s is negative")]
    Negative { value: f64 },
    /// Above the knob's maximum.
    #[error("{value} s is above the maximum of {max:?}")]
    TooLarge { value: f64, max: Duration },
}

/// The range one knob accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The largest value accepted (at most [`CEILING`]).
    pub max: Duration,
}

impl Limit {
    /// A limit of `max`, clamped to [`CEILING`].
    pub const fn up_to(max: Duration) -> Self {
        if max.as_secs() > CEILING.as_secs() {
            Limit { max: CEILING }
        } else {
            Limit { max }
        }
    }

    /// Checks seconds given as a number (JSON, annotations, the command line).
    pub fn seconds(&self, value: f64) -> Result<Duration, DurationError> {
        if !value.is_finite() {
            return Err(DurationError::NotFinite { value });
        }
        if value < 0.0 {
            return Err(DurationError::Negative { value });
        }
        if value > self.max.as_secs_f64() {
            return Err(DurationError::TooLarge {
                value,
                max: self.max,
            });
        }
        // In range: cannot panic (finite, non-negative, at most CEILING).
        Ok(Duration::from_secs_f64(value))
    }

    /// Parses text: a number of seconds, or a Go-style duration.
    pub fn parse(&self, text: &str) -> Result<Duration, DurationError> {
        let text = text.trim();
        if let Ok(value) = text.parse::<f64>() {
            return self.seconds(value);
        }
        let total = parse_go(text).ok_or_else(|| DurationError::Syntax {
            value: text.to_owned(),
        })?;
        self.seconds(total)
    }
}

/// Sums a Go-style duration (`1h2m3s4ms`) into seconds; `None` when it is malformed.
fn parse_go(text: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 6] = [
        ("ms", 1e-3),
        ("us", 1e-6),
        ("ns", 1e-9),
        ("h", 3600.0),
        ("m", 60.0),
        ("s", 1.0),
    ];
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (unit, scale) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit))?;
        rest = rest.get(unit.len()..)?;
        total += number * scale;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Limit = Limit::up_to(Duration::from_secs(60));

    #[test]
    fn numbers_in_range_are_accepted() {
        assert_eq!(MINUTE.seconds(0.0), Ok(Duration::ZERO));
        assert_eq!(MINUTE.seconds(60.0), Ok(Duration::from_secs(60)));
        assert_eq!(MINUTE.seconds(0.25), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn extremes_are_errors_not_panics() {
        for value in [1e20, 1e19, f64::MAX, 60.001] {
            assert!(
                matches!(MINUTE.seconds(value), Err(DurationError::TooLarge { .. })),
                "{value}"
            );
        }
        assert!(matches!(
            MINUTE.seconds(f64::NAN),
            Err(DurationError::NotFinite { .. })
        ));
        assert!(matches!(
            MINUTE.seconds(f64::INFINITY),
            Err(DurationError::NotFinite { .. })
        ));
        assert!(matches!(
            MINUTE.seconds(-1.0),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            MINUTE.seconds(-0.0001),
            Err(DurationError::Negative { .. })
        ));
    }

    #[test]
    fn text_is_seconds_or_go_style() {
        let day = Limit::up_to(Duration::from_secs(86400));
        assert_eq!(day.parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(day.parse("1e3"), Ok(Duration::from_secs(1000)));
        assert_eq!(day.parse("0"), Ok(Duration::ZERO));
        assert_eq!(day.parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(day.parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(day.parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(day.parse("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in [
            "", "s", "5x", "ms", "1e20s", "-5s", "NaN", "inf", "5 s", "1h-2m",
        ] {
            assert!(day.parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            day.parse("1e20"),
            Err(DurationError::TooLarge { .. })
        ));
        assert!(matches!(
            day.parse("25h"),
            Err(DurationError::TooLarge { .. })
        ));
    }

    #[test]
    fn limits_are_clamped_to_the_ceiling() {
        assert_eq!(Limit::up_to(Duration::MAX).max, CEILING);
    }
}

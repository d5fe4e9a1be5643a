//! The kernel command line (`/proc/cmdline`) as a list of parameters.
//!
//! Tokenising follows the kernel's `next_arg`: parameters are separated by whitespace, and double quotes
//! group spaces into one parameter (`opt="a b"` or `"opt=a b"`). Everything after a bare `--` is for
//! init, not the kernel, and is kept apart.

use std::time::Duration;

use durations::{DurationError, Limit};

/// Default `guestkit.shutdown_timeout` (T): the steps of shutdown get shares of it (see
/// [`crate::shutdown::Budget`]).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `guestkit.shutdown_timeout` accepted.
pub const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3600);

/// One `key` or `key=value` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The part before the first `=`.
    pub key: String,
    /// The part after the first `=`, quotes removed; `None` when there is no `=`.
    pub value: Option<String>,
}

/// A parsed kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// Kernel parameters in order.
    pub params: Vec<Param>,
    /// Words after `--`, which the kernel passes to init as arguments.
    pub init_args: Vec<String>,
}

/// A command line value that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CmdlineError {
    /// `guestkit.shutdown_timeout` was not a duration in range.
    #[error("/proc/cmdline: guestkit.shutdown_timeout={value:?}: {reason}")]
    ShutdownTimeout {
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: DurationError,
    },
}

impl Cmdline {
    /// Parses the text of `/proc/cmdline`. Never fails: an unterminated quote runs to the end.
    pub fn parse(text: &str) -> Cmdline {
        let mut cmdline = Cmdline::default();
        let mut after_dashes = false;
        for word in split_words(text) {
            if after_dashes {
                cmdline.init_args.push(word);
            } else if word == "--" {
                after_dashes = true;
            } else {
                cmdline.params.push(param(&word));
            }
        }
        cmdline
    }

    /// The value of the last `key=value` parameter named `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|p| p.key == key)
            .and_then(|p| p.value.as_deref())
    }

    /// Whether a parameter is exactly `key=value`.
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.params
            .iter()
            .any(|p| p.key == key && p.value.as_deref() == Some(value))
    }

    /// Every value of the parameters named `key`, in order (`console=` may repeat).
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |p| p.key == key)
            .filter_map(|p| p.value.as_deref())
    }

    /// Whether cgroup v1 was asked for: only the exact token `linuxkit.unified_cgroup_hierarchy=0` does that.
    pub fn wants_cgroup_v1(&self) -> bool {
        self.has("linuxkit.unified_cgroup_hierarchy", "0")
    }

    /// `guestkit.shutdown_timeout=SECS` (seconds or Go-style, at most [`MAX_SHUTDOWN_TIMEOUT`]), or the
    /// 5 s default when absent.
    pub fn shutdown_timeout(&self) -> Result<Duration, CmdlineError> {
        match self.value("guestkit.shutdown_timeout") {
            None => Ok(DEFAULT_SHUTDOWN_TIMEOUT),
            Some(v) => Limit::up_to(MAX_SHUTDOWN_TIMEOUT)
                .parse(v)
                .map_err(|reason| CmdlineError::ShutdownTimeout {
                    value: v.to_string(),
                    reason,
                }),
        }
    }
}

fn param(word: &str) -> Param {
    match word.split_once('=') {
        Some((k, v)) => Param {
            key: k.to_string(),
            value: Some(v.to_string()),
        },
        None => Param {
            key: word.to_string(),
            value: None,
        },
    }
}

/// Splits on unquoted whitespace and drops the quote characters themselves.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
            in_word = true;
        } else if c.is_whitespace() && !quoted {
            if in_word {
                words.push(std::mem::take(&mut current));
                in_word = false;
            }
        } else {
            current.push(c);
            in_word = true;
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str, value: Option<&str>) -> Param {
        Param {
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn tokenises_like_the_kernel() {
        let cases: &[(&str, Vec<Param>, Vec<&str>)] = &[
            ("", vec![], vec![]),
            ("quiet", vec![p("quiet", None)], vec![]),
            (
                "console=ttyS0 panic=-1\n",
                vec![p("console", Some("ttyS0")), p("panic", Some("-1"))],
                vec![],
            ),
            (
                "a=\"x y\" b",
                vec![p("a", Some("x y")), p("b", None)],
                vec![],
            ),
            ("\"a=x y\"", vec![p("a", Some("x y"))], vec![]),
            ("a==b", vec![p("a", Some("=b"))], vec![]),
            ("a -- x y", vec![p("a", None)], vec!["x", "y"]),
            (
                "a=\"unterminated",
                vec![p("a", Some("unterminated"))],
                vec![],
            ),
            ("  \t ", vec![], vec![]),
            ("a=", vec![p("a", Some(""))], vec![]),
        ];
        for (i, (input, params, args)) in cases.iter().enumerate() {
            let c = Cmdline::parse(input);
            assert_eq!(&c.params, params, "case {i}: {input:?}");
            assert_eq!(c.init_args, *args, "case {i}: {input:?}");
        }
    }

    #[test]
    fn cgroup_v1_needs_the_exact_token() {
        let cases = [
            ("linuxkit.unified_cgroup_hierarchy=0", true),
            ("linuxkit.unified_cgroup_hierarchy=1", false),
            ("linuxkit.unified_cgroup_hierarchy", false),
            ("linuxkit.unified_cgroup_hierarchy=00", false),
            (
                "x linuxkit.unified_cgroup_hierarchy=1 linuxkit.unified_cgroup_hierarchy=0",
                true,
            ),
            ("", false),
        ];
        for (i, (input, want)) in cases.iter().enumerate() {
            assert_eq!(
                Cmdline::parse(input).wants_cgroup_v1(),
                *want,
                "case {i}: {input:?}"
            );
        }
    }

    #[test]
    fn shutdown_timeout_defaults_and_rejects_garbage() {
        let cases = [
            ("", Some(DEFAULT_SHUTDOWN_TIMEOUT)),
            (
                "guestkit.shutdown_timeout=12",
                Some(Duration::from_secs(12)),
            ),
            ("guestkit.shutdown_timeout=0", Some(Duration::ZERO)),
            ("guestkit.shutdown_timeout=3600", Some(MAX_SHUTDOWN_TIMEOUT)),
            (
                "guestkit.shutdown_timeout=1 guestkit.shutdown_timeout=3",
                Some(Duration::from_secs(3)),
            ),
            (
                "guestkit.shutdown_timeout=1.5",
                Some(Duration::from_millis(1500)),
            ),
            (
                "guestkit.shutdown_timeout=2m",
                Some(Duration::from_secs(120)),
            ),
            ("guestkit.shutdown_timeout", Some(DEFAULT_SHUTDOWN_TIMEOUT)),
            ("guestkit.shutdown_timeout=3601", None),
            ("guestkit.shutdown_timeout=1e20", None),
            ("guestkit.shutdown_timeout=NaN", None),
            ("guestkit.shutdown_timeout=-1", None),
            ("guestkit.shutdown_timeout=soon", None),
        ];
        for (i, (input, want)) in cases.iter().enumerate() {
            let got = Cmdline::parse(input).shutdown_timeout();
            match (want, &got) {
                (Some(want), Ok(got)) => assert_eq!(got, want, "case {i}: {input:?}"),
                (None, Err(e)) => {
                    let text = e.to_string();
                    assert!(
                        text.contains("/proc/cmdline: guestkit.shutdown_timeout="),
                        "case {i}: {text}"
                    );
                }
                _ => panic!("case {i}: {input:?} gave {got:?}"),
            }
        }
    }

    #[test]
    fn console_values_keep_order() {
        let c = Cmdline::parse("console=tty0 console=ttyS0,115200");
        assert_eq!(
            c.values("console").collect::<Vec<_>>(),
            ["tty0", "ttyS0,115200"]
        );
    }
}

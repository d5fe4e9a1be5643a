//! The command line: LinuxKit's `metadata [-v] [provider ...] [file=PATH]`, plus long options for
//! the things LinuxKit hard-codes (roots, endpoint, deadline).

use std::path::PathBuf;
use std::time::Duration;

use crate::providers::{DEFAULT_ORDER, NAMES};

/// Parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// `-v`.
    pub verbose: bool,
    /// Provider tokens in order (`aws`, `file=/x`); LinuxKit's default when none are given.
    pub providers: Vec<String>,
    /// `--config-root DIR` (default `/run/config`).
    pub config_root: PathBuf,
    /// `--sysfs DIR` (default `/sys`).
    pub sysfs: PathBuf,
    /// `--dev DIR` (default `/dev`).
    pub dev: PathBuf,
    /// `--imds URL`: the link-local server for every provider that uses it (and MMDS).
    pub imds: Option<String>,
    /// `--deadline SECS`: the overall probe deadline (default 10).
    pub deadline: Duration,
    /// `--timeout SECS`: one request's limit (default 2, LinuxKit's).
    pub request_timeout: Duration,
    /// `--sequential`: probe like LinuxKit, one provider after another.
    pub sequential: bool,
    /// `--no-hostname`: do not call sethostname.
    pub no_hostname: bool,
    /// `--link DIR` (repeatable): also make DIR resolve to the config root (`/var/config`).
    pub links: Vec<PathBuf>,
}

/// A bad command line.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgsError {
    /// LinuxKit's message for an unknown token.
    #[error("Unrecognised metadata provider: {0}")]
    UnknownProvider(String),
    /// An option without its value.
    #[error("option {0} needs a value")]
    MissingValue(String),
    /// A value that does not parse.
    #[error("option {option}: invalid value {value:?}")]
    BadValue { option: String, value: String },
    /// A duration out of range or malformed.
    #[error("option {option}")]
    Duration {
        option: String,
        #[source]
        source: durations::DurationError,
    },
}

/// `--deadline`: at most one hour (an onboot container holds up the boot while it runs).
pub const DEADLINE_LIMIT: durations::Limit = durations::Limit::up_to(Duration::from_secs(3600));
/// `--timeout`: at most ten minutes per request.
pub const TIMEOUT_LIMIT: durations::Limit = durations::Limit::up_to(Duration::from_secs(600));

impl Default for Args {
    fn default() -> Self {
        Self {
            verbose: false,
            providers: Vec::new(),
            config_root: "/run/config".into(),
            sysfs: "/sys".into(),
            dev: "/dev".into(),
            imds: None,
            deadline: Duration::from_secs(10),
            request_timeout: Duration::from_secs(2),
            sequential: false,
            no_hostname: false,
            links: Vec::new(),
        }
    }
}

/// A duration (seconds or Go-style) within `limit`; zero is refused (nothing could answer).
fn seconds(option: &str, value: &str, limit: durations::Limit) -> Result<Duration, ArgsError> {
    let duration = limit.parse(value).map_err(|source| ArgsError::Duration {
        option: option.into(),
        source,
    })?;
    if duration.is_zero() {
        return Err(ArgsError::BadValue {
            option: option.into(),
            value: value.into(),
        });
    }
    Ok(duration)
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, ArgsError> {
    let mut out = Args::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| ArgsError::MissingValue(name.to_string()))
        };
        match arg.as_str() {
            "-v" | "--verbose" => out.verbose = true,
            "--sequential" => out.sequential = true,
            "--no-hostname" => out.no_hostname = true,
            "--config-root" => out.config_root = value(&arg)?.into(),
            "--sysfs" => out.sysfs = value(&arg)?.into(),
            "--dev" => out.dev = value(&arg)?.into(),
            "--imds" => out.imds = Some(value(&arg)?),
            "--link" => out.links.push(value(&arg)?.into()),
            "--deadline" => out.deadline = seconds(&arg, &value(&arg)?, DEADLINE_LIMIT)?,
            "--timeout" => out.request_timeout = seconds(&arg, &value(&arg)?, TIMEOUT_LIMIT)?,
            token if token.starts_with("file=") && token.len() > 5 => {
                out.providers.push(token.to_string())
            }
            token if NAMES.contains(&token) => out.providers.push(token.to_string()),
            other => return Err(ArgsError::UnknownProvider(other.to_string())),
        }
    }
    if out.providers.is_empty() {
        out.providers = DEFAULT_ORDER.iter().map(|s| s.to_string()).collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, ArgsError> {
        parse(s.split_whitespace().map(str::to_string))
    }

    #[test]
    fn linuxkit_forms() {
        let a = args("").unwrap();
        assert_eq!(a.providers[..4], ["aws", "gcp", "hetzner", "openstack"]);
        let a = args("-v cdrom file=/x/y aws").unwrap();
        assert!(a.verbose);
        assert_eq!(a.providers, ["cdrom", "file=/x/y", "aws"]);
        assert_eq!(args("nope"), Err(ArgsError::UnknownProvider("nope".into())));
        assert_eq!(
            args("file="),
            Err(ArgsError::UnknownProvider("file=".into()))
        );
    }

    #[test]
    fn long_options() {
        let a =
            args("--deadline 1.5 --imds http://10.0.2.2:8080 --config-root /tmp/c aws").unwrap();
        assert_eq!(a.deadline, Duration::from_millis(1500));
        assert_eq!(a.imds.as_deref(), Some("http://10.0.2.2:8080"));
        assert_eq!(a.config_root, PathBuf::from("/tmp/c"));
        assert_eq!(
            args("--link /var/config cdrom").unwrap().links,
            [PathBuf::from("/var/config")]
        );
        assert_eq!(
            args("--deadline 1m30s").unwrap().deadline,
            Duration::from_secs(90)
        );
        assert_eq!(
            args("--deadline 3600").unwrap().deadline,
            Duration::from_secs(3600)
        );
        assert_eq!(
            args("--timeout 600").unwrap().request_timeout,
            Duration::from_secs(600)
        );
        for (bad, why) in [
            ("--deadline -1", "negative"),
            ("--deadline 3600.5", "above the maximum"),
            ("--deadline 1e300", "above the maximum"),
            ("--deadline NaN", "not a finite"),
            ("--deadline inf", "not a finite"),
            ("--deadline 10x", "not a duration"),
            ("--timeout 601", "above the maximum"),
        ] {
            let err = args(bad).unwrap_err();
            let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
            assert!(text.starts_with("option --"), "{bad}: {text}");
            assert!(text.contains(why), "{bad}: {text}");
        }
        assert!(matches!(
            args("--deadline 0"),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            args("--deadline"),
            Err(ArgsError::MissingValue(_))
        ));
    }
}

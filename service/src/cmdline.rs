//! The kernel command line switches `service` honours.

use std::time::Duration;

use durations::Limit;

/// The largest `guestkit.onboot_timeout` accepted: a day.
pub const MAX_ONBOOT_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Switches read from `/proc/cmdline`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootOptions {
    /// `linuxkit.runc_debug=1`: `runc --debug` and debug messages.
    pub runc_debug: bool,
    /// `linuxkit.runc_console=1`: onboot containers write to the console instead of log files.
    pub runc_console: bool,
    /// `guestkit.onboot_timeout=SECS`: kill an onboot container that runs longer (0 or absent: no limit).
    pub onboot_timeout: Option<Duration>,
    /// `guestkit.onboot_log_max_bytes=N`: the cap of each onboot/onshutdown log file (None: the default,
    /// [`crate::logs::DEFAULT_ONBOOT_LOG_CAP`]).
    pub onboot_log_max_bytes: Option<u64>,
    /// `guestkit.service_log_max_bytes=N`: the size at which `service supervise` rotates a service's log file
    /// (None: the default, [`crate::logs::DEFAULT_SERVICE_LOG_CAP`]; 0: never).
    pub service_log_max_bytes: Option<u64>,
}

/// Parses a kernel command line. Unknown or malformed values are reported in the returned warnings and
/// otherwise ignored: a typo on the command line must not stop the boot.
pub fn parse_boot_options(cmdline: &str) -> (BootOptions, Vec<String>) {
    let mut options = BootOptions::default();
    let mut warnings = Vec::new();
    for token in cmdline.split_whitespace() {
        let (key, value) = token.split_once('=').unwrap_or((token, ""));
        match key {
            "linuxkit.runc_debug" => options.runc_debug = value == "1",
            "linuxkit.runc_console" => options.runc_console = value == "1",
            "guestkit.onboot_timeout" => match Limit::up_to(MAX_ONBOOT_TIMEOUT).parse(value) {
                Ok(Duration::ZERO) => options.onboot_timeout = None,
                Ok(limit) => options.onboot_timeout = Some(limit),
                Err(err) => warnings.push(format!(
                    "/proc/cmdline: ignoring guestkit.onboot_timeout={value:?}: {err}"
                )),
            },
            "guestkit.onboot_log_max_bytes" => {
                options.onboot_log_max_bytes = log_cap(key, value, &mut warnings);
            }
            "guestkit.service_log_max_bytes" => {
                options.service_log_max_bytes = log_cap(key, value, &mut warnings);
            }
            _ => {}
        }
    }
    (options, warnings)
}

/// A log cap in bytes, up to [`crate::logs::MAX_LOG_CAP`]; anything else is a warning and None.
fn log_cap(key: &str, value: &str, warnings: &mut Vec<String>) -> Option<u64> {
    match value.parse::<u64>() {
        Ok(bytes) if bytes <= crate::logs::MAX_LOG_CAP => Some(bytes),
        _ => {
            warnings.push(format!(
                "/proc/cmdline: ignoring {key}={value:?}: not a whole number of bytes up to {}",
                crate::logs::MAX_LOG_CAP
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_are_read() {
        let (options, warnings) = parse_boot_options(
            "console=ttyS0 linuxkit.runc_debug=1 linuxkit.runc_console=0 guestkit.onboot_timeout=2.5",
        );
        assert!(options.runc_debug);
        assert!(!options.runc_console);
        assert_eq!(options.onboot_timeout, Some(Duration::from_millis(2500)));
        assert!(warnings.is_empty());
    }

    #[test]
    fn log_caps_are_range_checked() {
        assert_eq!(
            parse_boot_options("guestkit.service_log_max_bytes=65536")
                .0
                .service_log_max_bytes,
            Some(65536)
        );
        assert_eq!(
            parse_boot_options("guestkit.onboot_log_max_bytes=4096")
                .0
                .onboot_log_max_bytes,
            Some(4096)
        );
        assert_eq!(
            parse_boot_options("guestkit.onboot_log_max_bytes=0")
                .0
                .onboot_log_max_bytes,
            Some(0)
        );
        for bad in [
            "-1",
            "1e20",
            "NaN",
            "1099511627777",
            "18446744073709551616",
            "lots",
            "",
        ] {
            for key in [
                "guestkit.onboot_log_max_bytes",
                "guestkit.service_log_max_bytes",
            ] {
                let (options, warnings) = parse_boot_options(&format!("{key}={bad}"));
                assert_eq!(options.onboot_log_max_bytes, None, "{bad}");
                assert_eq!(options.service_log_max_bytes, None, "{bad}");
                assert!(
                    warnings.len() == 1 && warnings[0].contains(key),
                    "{bad}: {warnings:?}"
                );
            }
        }
    }

    #[test]
    fn bad_timeout_is_a_warning() {
        for bad in [
            "guestkit.onboot_timeout=soon",
            "guestkit.onboot_timeout=-3",
            "guestkit.onboot_timeout",
            "guestkit.onboot_timeout=1e20",
            "guestkit.onboot_timeout=1e19",
            "guestkit.onboot_timeout=NaN",
            "guestkit.onboot_timeout=86401",
        ] {
            let (options, warnings) = parse_boot_options(bad);
            assert_eq!(options.onboot_timeout, None, "{bad}");
            assert_eq!(warnings.len(), 1, "{bad}");
            assert!(
                warnings[0].contains("guestkit.onboot_timeout="),
                "{bad}: {warnings:?}"
            );
        }
        assert_eq!(
            parse_boot_options("guestkit.onboot_timeout=0")
                .0
                .onboot_timeout,
            None
        );
        assert_eq!(
            parse_boot_options("guestkit.onboot_timeout=86400")
                .0
                .onboot_timeout,
            Some(MAX_ONBOOT_TIMEOUT)
        );
    }
}

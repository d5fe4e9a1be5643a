//! The one log setup every guestkit program uses.
//!
//! LinuxKit's daemons print informational messages as bare lines and everything else with its level, so
//! that a serial console stays readable; `-v` turns on debug messages and `-q` keeps only errors. This crate
//! reproduces that format on top of the `log` facade, writing to standard error (the console for programs
//! that `init` starts).

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// How chatty a program is, as chosen by its `-q`/`-v` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only (`-q`).
    Quiet,
    /// Informational messages and above (the default).
    Normal,
    /// Everything including debug messages (`-v`).
    Verbose,
}

impl Verbosity {
    fn filter(self) -> LevelFilter {
        match self {
            Verbosity::Quiet => LevelFilter::Error,
            Verbosity::Normal => LevelFilter::Info,
            Verbosity::Verbose => LevelFilter::Debug,
        }
    }
}

/// Formats one record the LinuxKit way: `message` at info level, `level: message` otherwise, with an
/// optional `program: ` prefix.
pub fn format_line(prefix: &str, level: Level, message: &str) -> String {
    let mut line = String::with_capacity(prefix.len() + message.len() + 10);
    if !prefix.is_empty() {
        line.push_str(prefix);
        line.push_str(": ");
    }
    if level != Level::Info {
        line.push_str(&level.as_str().to_ascii_lowercase());
        line.push_str(": ");
    }
    line.push_str(message);
    line.push('\n');
    line
}

#[derive(Debug)]
struct ConsoleLogger {
    prefix: &'static str,
    filter: LevelFilter,
}

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.filter
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(self.prefix, record.level(), &record.args().to_string());
        // A failed write to the console has nowhere better to go.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the console logger. `prefix` (for example `"init"`) starts every line when not empty.
/// Calling it twice keeps the first logger.
pub fn init(prefix: &'static str, verbosity: Verbosity) {
    let logger = Box::new(ConsoleLogger {
        prefix,
        filter: verbosity.filter(),
    });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(verbosity.filter());
    }
}

/// An error and its causes on one line: `outer: cause: root cause`, as every program prints them.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_bare_and_other_levels_are_named() {
        assert_eq!(
            format_line("", Level::Info, "Starting service"),
            "Starting service\n"
        );
        assert_eq!(format_line("", Level::Error, "boom"), "error: boom\n");
        assert_eq!(
            format_line("init", Level::Warn, "slow"),
            "init: warn: slow\n"
        );
    }

    #[test]
    fn verbosity_maps_to_filters() {
        assert_eq!(Verbosity::Quiet.filter(), LevelFilter::Error);
        assert_eq!(Verbosity::Normal.filter(), LevelFilter::Info);
        assert_eq!(Verbosity::Verbose.filter(), LevelFilter::Debug);
    }
}

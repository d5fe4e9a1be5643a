//! vsock-forwarder: LinuxKit vsudd compatible vsock forwarder. See the library docs and README.md.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use log::LevelFilter;
use logging::Verbosity;
use vsock_forwarder::cli::{Args, translate_legacy_args};
use vsock_forwarder::config::Config;
use vsock_forwarder::daemon::{self, error_chain};
use vsock_forwarder::detach::SyslogLogger;
use vsock_forwarder::sys;

fn main() -> ExitCode {
    // Before any thread exists: an inherited mask must not swallow SIGUSR1/SIGTERM (seen in the guest,
    // where containers start with SIGUSR1 blocked).
    if let Err(err) = sys::unblock_handled_signals() {
        eprintln!("vsock-forwarder: unblocking signals: {err}");
    }
    let args = Args::parse_from(translate_legacy_args(std::env::args_os()));
    let verbosity = match (args.verbose, args.quiet) {
        (true, _) => Verbosity::Verbose,
        (_, true) => Verbosity::Quiet,
        _ => Verbosity::Normal,
    };
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("vsock-forwarder: {}", error_chain(&err));
            return ExitCode::from(2);
        }
    };
    // Until the logger is chosen, failures go to stderr (the console), as vsudd's log.Fatal does.
    if let Err(err) = setup(&config, verbosity) {
        eprintln!("vsock-forwarder: {err:#}");
        return ExitCode::FAILURE;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// vsudd's order: the pid file, then `-detach` (syslog logging, stdio on /dev/null).
fn setup(config: &Config, verbosity: Verbosity) -> anyhow::Result<()> {
    if let Some(path) = &config.pidfile {
        sys::write_pidfile(path)
            .with_context(|| format!("Failed to open pidfile {}", path.display()))?;
    }
    if !config.detach {
        logging::init("", verbosity);
        return Ok(());
    }
    let filter = match verbosity {
        Verbosity::Quiet => LevelFilter::Error,
        Verbosity::Normal => LevelFilter::Info,
        Verbosity::Verbose => LevelFilter::Debug,
    };
    SyslogLogger::connect(Path::new("/dev/log"), filter)
        .context("Failed to open syslog")?
        .install();
    sys::redirect_stdio_to_null().context("Failed to open /dev/null")?;
    Ok(())
}

fn run(config: Config) -> anyhow::Result<()> {
    if config.rules.is_empty() && config.syslog.is_none() {
        return Ok(());
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let console = sys::open_console();
    runtime.block_on(daemon::run(config, console))?;
    Ok(())
}

//! `getty`: a login on every `console=` of the kernel command line (LinuxKit's `rungetty.sh`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use getty::startup::{self, Config};

/// Starts a login session on every console named by `console=` on the kernel command line and
/// respawns it when it ends. `INSECURE=true` logs root in without a password; `INITGETTY` (set by
/// `/etc/init.d/001-getty`) returns at once and keeps the sessions going in the background.
#[derive(Debug, Parser)]
#[command(name = "getty", version)]
struct Args {
    /// The kernel command line.
    #[arg(long, default_value = "/proc/cmdline")]
    cmdline: PathBuf,
    /// The directory holding the console devices.
    #[arg(long, default_value = "/dev")]
    dev: PathBuf,
    #[arg(long, default_value = "/etc/passwd")]
    passwd: PathBuf,
    #[arg(long, default_value = "/etc/shadow")]
    shadow: PathBuf,
    /// The ttys on which root may log in with a password.
    #[arg(long, default_value = "/etc/securetty")]
    securetty: PathBuf,
    /// The banner shown before the login prompt.
    #[arg(long, default_value = "/etc/issue")]
    issue: PathBuf,
    /// The message shown after a login.
    #[arg(long, default_value = "/etc/motd")]
    motd: PathBuf,
    /// Copied over --shadow, plus a newline, when it exists.
    #[arg(long, default_value = "/hostroot/etc/getty.shadow")]
    getty_shadow: PathBuf,
    /// Where namespace.sh (the PS1 hint) goes in container mode.
    #[arg(long, default_value = "/etc/profile.d")]
    profile_dir: PathBuf,
    /// The pause after a failed login: seconds (`3`, `0.5`) or Go-style (`500ms`), at most 60 s.
    #[arg(long, default_value = "3", value_parser = fail_delay)]
    fail_delay: Duration,
    /// Debug messages.
    #[arg(short, long)]
    verbose: bool,
    /// Errors only.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
}

fn fail_delay(text: &str) -> Result<Duration, durations::DurationError> {
    getty::login::FAIL_DELAY_LIMIT.parse(text)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let verbosity = match (args.verbose, args.quiet) {
        (true, _) => logging::Verbosity::Verbose,
        (_, true) => logging::Verbosity::Quiet,
        _ => logging::Verbosity::Normal,
    };
    logging::init("getty", verbosity);
    let config = Config {
        cmdline: args.cmdline,
        dev: args.dev,
        passwd: args.passwd,
        shadow: args.shadow,
        securetty: args.securetty,
        issue: args.issue,
        motd: args.motd,
        getty_shadow: args.getty_shadow,
        profile_dir: args.profile_dir,
        insecure: std::env::var("INSECURE").is_ok_and(|v| v == "true"),
        init_mode: std::env::var_os("INITGETTY").is_some_and(|v| !v.is_empty()),
        fail_delay: args.fail_delay,
    };
    startup::run(&config)?;
    Ok(())
}

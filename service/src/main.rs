//! `service`: see the library documentation.

use std::process::ExitCode;

use logging::Verbosity;
use service::cli::{USAGE, parse_invocation};
use service::commands::run;
use service::layout::Layout;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let invocation = match parse_invocation(&argv) {
        Ok(invocation) => invocation,
        Err(err) => {
            eprintln!("{err}");
            eprint!("{USAGE}");
            return ExitCode::from(1);
        }
    };
    let verbosity = match (invocation.globals.quiet, invocation.globals.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    logging::init("", verbosity);
    // Test and debugging hook: every path under another root (the guest never sets it).
    let layout = match std::env::var_os("GUESTKIT_SERVICE_ROOT") {
        Some(root) => Layout::under(std::path::Path::new(&root)),
        None => Layout::default(),
    };
    ExitCode::from(run(invocation, &layout))
}

//! `metadata [-v] [provider ...] [file=PATH]`: see the library documentation.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use metadata::http::Policy;
use metadata::providers::{Endpoints, Env};
use metadata::run::{Plan, run};
use metadata::select::Strategy;

fn plan(args: &metadata::cli::Args) -> Plan {
    let mut policy = Policy {
        request_timeout: args.request_timeout,
        ..Policy::default()
    };
    let mut endpoints = Endpoints::default();
    if let Some(imds) = &args.imds {
        endpoints.imds.clone_from(imds);
        endpoints.mmds.clone_from(imds);
        endpoints.imds_v6 = None;
    }
    let strategy = if args.sequential {
        // LinuxKit: one attempt per provider, no retries.
        policy.backoff_start = args.request_timeout;
        Strategy::Sequential(args.request_timeout)
    } else {
        Strategy::Parallel
    };
    let env = Env {
        sysfs: args.sysfs.clone(),
        dev: args.dev.clone(),
        endpoints,
        policy,
        ..Env::default()
    };
    Plan {
        providers: args.providers.clone(),
        config_root: args.config_root.clone(),
        env,
        deadline: args.deadline,
        strategy,
        set_hostname: !args.no_hostname,
        links: args.links.clone(),
        configure_network: true,
    }
}

fn main() -> ExitCode {
    let args = match metadata::cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            logging::init("metadata", logging::Verbosity::Normal);
            log::error!("{}", metadata::apply::chain(&e));
            return ExitCode::from(1);
        }
    };
    logging::init(
        "metadata",
        if args.verbose {
            logging::Verbosity::Verbose
        } else {
            logging::Verbosity::Normal
        },
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("starting the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let summary = runtime.block_on(run(&plan(&args)));
    // Probes that lost the race may still be in a blocking DNS lookup (reqwest resolves with
    // getaddrinfo on the blocking pool; musl waits 5 s for an absent nameserver). Dropping the
    // runtime would wait for them, delaying the exit of an onboot container that already has its
    // answer, so leave them behind.
    runtime.shutdown_background();
    log::info!("{}", summary.line());
    ExitCode::from(summary.exit_code())
}

//! Starting every listener and the syslog forward, then waiting for them and for signals.

use std::io::Write;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

use crate::config::{Config, listening_line};
use crate::forward::{self, ForwardError, Forwarder, Shared};
use crate::syslog;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A listener could not be bound.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers")]
    Signals(#[source] std::io::Error),
}

/// Logs the counter report.
pub fn log_report(shared: &Shared) {
    for line in shared.stats.report() {
        log::info!("{line}");
    }
}

/// Runs until every listener and the syslog forward have stopped, or SIGTERM/SIGINT arrives; SIGUSR1 logs
/// the counters. `console` receives the syslog forward's own diagnostics.
pub async fn run<W: Write + Send + 'static>(config: Config, console: W) -> Result<(), DaemonError> {
    let shared = Shared::new(&config.limits);
    let rule_cap = config.limits.per_rule(config.rules.len());
    let mut tasks = JoinSet::new();
    for rule in config.rules {
        if rule.legacy {
            log::info!(
                "incoming port forward from {} to {}",
                rule.label,
                target_text(&rule.target)
            );
        } else {
            log::info!("forward from {} to {}", rule.listen, rule.target);
        }
        let listener = forward::bind(&rule).await?;
        log::info!("{}", listening_line(&rule));
        let forwarder = Forwarder::new(rule, config.limits, Arc::clone(&shared), rule_cap);
        tasks.spawn(async move {
            if let Err(err) = forward::serve(listener, forwarder).await {
                log::error!("{}", error_chain(&err));
            }
        });
    }
    if let Some(spec) = config.syslog {
        tasks.spawn(async move {
            if let Err(err) = syslog::run(&spec, console).await {
                log::error!("vsyslog: {}", error_chain(&err));
            }
        });
    }
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    loop {
        tokio::select! {
            _ = usr1.recv() => log_report(&shared),
            _ = term.recv() => break,
            _ = int.recv() => break,
            next = tasks.join_next() => if next.is_none() { break },
        }
    }
    log_report(&shared);
    Ok(())
}

fn target_text(target: &crate::endpoint::Endpoint) -> String {
    match target {
        crate::endpoint::Endpoint::Unix(path) => path.display().to_string(),
        other => other.to_string(),
    }
}

/// `error: cause: cause…` on one line.
pub use logging::error_chain;

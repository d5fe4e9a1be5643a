//! The listener loop and the per-connection task: accept (within the connection cap), dial the target
//! with retry, copy both ways, count.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use log::Level;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Limits, Rule};
use crate::copy::{CopyError, copy_both_ways};
use crate::dial::{RetryPolicy, dial_with_retry};
use crate::endpoint::Endpoint;
use crate::log_limited;
use crate::ratelimit::LogBudget;
use crate::stats::Stats;
use crate::stream::{Acceptor, Listener, connect};

/// Pause after an accept error caused by a resource shortage (EMFILE, ENOBUFS…), before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A listener that could not be started or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Binding the listening socket failed (`what` is vsudd's "vsock port N" or the endpoint).
    #[error("Failed to bind to {what}")]
    Bind {
        /// The listener, as vsudd names it.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `accept` failed with an error that retrying will not fix.
    #[error("Error accepting connection on {label}")]
    Accept {
        /// The listener label.
        label: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// State shared by every listener: the connection cap, the connection ids, the counters.
#[derive(Debug)]
pub struct Shared {
    /// Counters for the report.
    pub stats: Stats,
    slots: Arc<Semaphore>,
    next_id: AtomicU64,
    budget: LogBudget,
}

impl Shared {
    /// Shared state for `limits.max_connections` concurrent connections.
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Shared {
            stats: Stats::default(),
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            next_id: AtomicU64::new(1),
            budget: LogBudget::new(20, Duration::from_secs(1)),
        })
    }
}

/// One rule with its limits, ready to serve connections.
#[derive(Debug)]
pub struct Forwarder {
    /// The rule.
    pub rule: Rule,
    /// Limits for each connection.
    pub limits: Limits,
    /// State shared with the other listeners.
    pub shared: Arc<Shared>,
}

/// Binds the rule's listener.
pub async fn bind(rule: &Rule) -> Result<Listener, ForwardError> {
    Listener::bind(&rule.listen).await.map_err(|source| {
        let what = match (&rule.listen, rule.legacy) {
            (Endpoint::Vsock { port, .. }, true) => format!("vsock port {port}"),
            (listen, _) => listen.to_string(),
        };
        ForwardError::Bind { what, source }
    })
}

/// Accepts connections for ever, each in its own task. Waits for a free slot before each accept, so at
/// the cap new clients queue in the kernel backlog. Returns only when accepting fails for good.
pub async fn serve<A: Acceptor>(
    mut acceptor: A,
    forwarder: Arc<Forwarder>,
) -> Result<(), ForwardError> {
    let shared = &forwarder.shared;
    loop {
        let Ok(slot) = Arc::clone(&shared.slots).acquire_owned().await else {
            return Ok(());
        };
        match acceptor.accept().await {
            Ok((conn, peer)) => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                log::info!("Connection {id} to: {} from: {peer}", forwarder.rule.label);
                tokio::spawn(forward_one(conn, id, Arc::clone(&forwarder), slot));
            }
            Err(err) if is_resource_shortage(&err) => {
                log_limited!(
                    shared.budget,
                    Level::Warn,
                    "Error accepting connection: {err} (retrying)"
                );
                drop(slot);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
            Err(source) => {
                return Err(ForwardError::Accept {
                    label: forwarder.rule.label.clone(),
                    source,
                });
            }
        }
    }
}

fn is_resource_shortage(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::ECONNABORTED
                | libc::EINTR
        )
    )
}

async fn forward_one<C>(mut conn: C, id: u64, forwarder: Arc<Forwarder>, slot: OwnedSemaphorePermit)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let Forwarder {
        rule,
        limits,
        shared,
    } = &*forwarder;
    let live = shared.stats.open(id, &rule.label);
    let policy = RetryPolicy::new(limits.connect_timeout);
    match dial_with_retry(policy, || connect(&rule.target)).await {
        Err(err) => {
            shared.stats.dial_failed();
            match (&rule.target, rule.legacy) {
                (Endpoint::Unix(path), true) => log_limited!(
                    shared.budget,
                    Level::Info,
                    "{id} Failed to connect to Unix domain socket {} {err}",
                    path.display()
                ),
                (target, _) => log_limited!(
                    shared.budget,
                    Level::Info,
                    "{id} Failed to connect to {target}: {err}"
                ),
            }
        }
        Ok(mut target) => {
            if let Err(err) =
                copy_both_ways(&mut conn, &mut target, limits.buffer_size, &live.counters).await
            {
                let (from, to, source) = match err {
                    CopyError::AToB(e) => (rule.listen.kind(), rule.target.kind(), e),
                    CopyError::BToA(e) => (rule.target.kind(), rule.listen.kind(), e),
                };
                log_limited!(
                    shared.budget,
                    Level::Info,
                    "{id} error copying from {from} to {to}: {source}"
                );
            }
            let (read, written) = live.counters.get();
            log::info!("{id} Done. read: {read} written: {written}");
        }
    }
    // Close both sockets before giving the slot back, so the cap bounds open descriptors too.
    drop(conn);
    shared.stats.close(id);
    drop(slot);
}

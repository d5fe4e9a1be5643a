//! The listener loop and the per-connection task: accept (within the connection cap), dial the target
//! with retry, copy both ways, count.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use log::Level;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Limits, Rule};
use crate::copy::{CopyError, CopyLimits, copy_both_ways};
use crate::dial::{RetryPolicy, dial_with_retry};
use crate::endpoint::Endpoint;
use crate::log_limited;
use crate::ratelimit::LogBudget;
use crate::stats::Stats;
use crate::stream::{Acceptor, Listener, PeerProbe, connect_within};

/// Pause after an accept error caused by a resource shortage (EMFILE, ENOBUFS…), before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The kernel's default vsock connect timeout.
const KERNEL_VSOCK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// This rule's own connection cap, so that it cannot take every global slot.
    slots: Arc<Semaphore>,
}

impl Forwarder {
    /// A forwarder for `rule` allowed `rule_cap` connections at once (within the global cap in `shared`).
    pub fn new(rule: Rule, limits: Limits, shared: Arc<Shared>, rule_cap: usize) -> Arc<Self> {
        Arc::new(Forwarder {
            rule,
            limits,
            shared,
            slots: Arc::new(Semaphore::new(rule_cap)),
        })
    }
}

/// A connection's places under the rule's cap and the global one, given back when it closes.
#[derive(Debug)]
pub struct Slot {
    _rule: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
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

/// Accepts connections for ever, each in its own task. Waits for a free slot under the rule's cap and then
/// the global cap before each accept, so at either cap new clients queue in the kernel backlog while the
/// other rules keep serving. Returns only when accepting fails for good.
pub async fn serve<A: Acceptor>(
    mut acceptor: A,
    forwarder: Arc<Forwarder>,
) -> Result<(), ForwardError> {
    let shared = &forwarder.shared;
    loop {
        let Ok(rule_slot) = Arc::clone(&forwarder.slots).acquire_owned().await else {
            return Ok(());
        };
        let Ok(global_slot) = Arc::clone(&shared.slots).acquire_owned().await else {
            return Ok(());
        };
        let slot = Slot {
            _rule: rule_slot,
            _global: global_slot,
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

async fn forward_one<C>(mut conn: C, id: u64, forwarder: Arc<Forwarder>, slot: Slot)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + PeerProbe + Unpin + Send,
{
    let Forwarder {
        rule,
        limits,
        shared,
        ..
    } = &*forwarder;
    let live = shared.stats.open(id, &rule.label);
    let policy = RetryPolicy::new(limits.connect_timeout);
    // A vsock attempt may take the whole -connect-timeout (at least the kernel's 2 s), so that a slow peer
    // is not left with a connection its client already gave up on.
    let attempt = limits.connect_timeout.max(KERNEL_VSOCK_CONNECT_TIMEOUT);
    match dial_with_retry(policy, || connect_within(&rule.target, attempt)).await {
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
            let copy = CopyLimits {
                buffer_size: limits.buffer_size,
                idle_timeout: limits.idle_timeout,
            };
            let result = copy_both_ways(&mut conn, &mut target, copy, &live.counters).await;
            let (listen, target) = (rule.listen.kind(), rule.target.kind());
            match result {
                Ok(()) => {}
                Err(CopyError::Idle(idle)) => {
                    log::info!("{id} Closing: idle for {idle:?} (-idle-timeout)");
                }
                Err(CopyError::AToB(err)) => copy_failed(shared, id, listen, target, &err),
                Err(CopyError::BToA(err)) => copy_failed(shared, id, target, listen, &err),
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

fn copy_failed(shared: &Shared, id: u64, from: &str, to: &str, err: &io::Error) {
    log_limited!(
        shared.budget,
        Level::Info,
        "{id} error copying from {from} to {to}: {err}"
    );
}

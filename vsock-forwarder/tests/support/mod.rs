//! Shared pieces of the integration tests: a forwarder on real unix/TCP listeners, backends, and process
//! measurements from /proc.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use vsock_forwarder::config::{Limits, Rule};
use vsock_forwarder::endpoint::Endpoint;
use vsock_forwarder::forward::{self, Forwarder, Shared};
use vsock_forwarder::stream::Listener;

/// Starts a forwarder from `listen` to `target` through the same `bind` + `serve` path the daemon uses.
/// Returns the shared counters and the address actually listened on (TCP port 0 is resolved).
pub async fn start_forwarder(
    listen: Endpoint,
    target: Endpoint,
    limits: Limits,
) -> (Arc<Shared>, Endpoint) {
    let (shared, mut bound) = start_forwarders(vec![(listen, target)], limits).await;
    (shared, bound.remove(0))
}

/// Starts one listener per `(listen, target)` rule, sharing the global cap as the daemon's do (each rule
/// capped at `limits.per_rule(rules.len())`). Returns the shared counters and the bound addresses.
pub async fn start_forwarders(
    rules: Vec<(Endpoint, Endpoint)>,
    limits: Limits,
) -> (Arc<Shared>, Vec<Endpoint>) {
    let shared = Shared::new(&limits);
    let rule_cap = limits.per_rule(rules.len());
    let mut bound_all = Vec::new();
    for (listen, target) in rules {
        let rule = Rule {
            label: listen.to_string(),
            listen,
            target,
            legacy: false,
        };
        let listener = forward::bind(&rule)
            .await
            .expect("binding the forwarder's listener");
        bound_all.push(match &listener {
            Listener::Tcp(l) => Endpoint::Tcp(l.local_addr().expect("tcp local address")),
            _ => rule.listen.clone(),
        });
        let forwarder = Forwarder::new(rule, limits, Arc::clone(&shared), rule_cap);
        tokio::spawn(forward::serve(listener, forwarder));
    }
    (shared, bound_all)
}

/// Limits for tests: small buffers, short retries, no idle timeout, the global cap shared evenly.
pub fn limits(buffer_size: usize, max_connections: usize, connect_timeout: Duration) -> Limits {
    Limits {
        max_connections,
        max_connections_per_rule: None,
        buffer_size,
        connect_timeout,
        idle_timeout: None,
    }
}

/// Serves every connection on `listener` with `handler`, each in its own task.
pub fn serve_with<F, Fut>(listener: UnixListener, handler: F)
where
    F: Fn(tokio::net::UnixStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(handler(conn));
        }
    });
}

/// An echo backend at `path`: echoes until end-of-file, then half-closes. Uses a 512-byte buffer.
pub fn echo_backend(path: &Path) {
    let listener = UnixListener::bind(path).expect("binding the echo backend");
    serve_with(listener, |mut conn| async move {
        let mut buf = [0u8; 512];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if conn.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = conn.shutdown().await;
    });
}

/// Polls `condition` every 10 ms; panics with `what` after `limit` (a guard against hangs, not a timing
/// assertion).
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Resident set size of this process in bytes (`VmRSS` in /proc/self/status).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("reading /proc/self/fd")
        .count()
}

/// Raises the soft RLIMIT_NOFILE to at least `needed`; fails the test, naming the limit, when the hard
/// limit is lower.
pub fn require_open_files(needed: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    assert!(
        hard >= needed,
        "this test needs RLIMIT_NOFILE >= {needed} but the hard limit is {hard}; raise it (ulimit -Hn, or run with \
         CAP_SYS_RESOURCE)"
    );
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raising the soft RLIMIT_NOFILE");
}

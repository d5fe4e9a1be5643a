//! 100 000 forwarded connections leave no descriptor behind.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use vsock_forwarder::endpoint::Endpoint;
use vsock_forwarder::stream::connect;

use support::{echo_backend, limits, open_fds, start_forwarder, wait_until};

const CONNECTIONS: usize = 100_000;
const CONCURRENCY: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_connections_leak_no_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("echo.sock");
    echo_backend(&backend);
    let listen = Endpoint::Unix(dir.path().join("in.sock"));
    let (shared, bound) = start_forwarder(
        listen,
        Endpoint::Unix(backend),
        limits(4096, 256, Duration::from_secs(30)),
    )
    .await;
    let before = open_fds();

    let mut tasks = JoinSet::new();
    for worker in 0..CONCURRENCY {
        let bound = bound.clone();
        tasks.spawn(async move {
            for _ in (worker..CONNECTIONS).step_by(CONCURRENCY) {
                let mut conn = connect(&bound).await.expect("connecting to the forwarder");
                conn.write_all(b"x").await.unwrap();
                conn.shutdown().await.unwrap();
                let mut reply = Vec::new();
                conn.read_to_end(&mut reply).await.unwrap();
                assert_eq!(reply, b"x");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("client task");
    }
    assert_eq!(shared.stats.accepted(), CONNECTIONS as u64);
    wait_until(
        "every forwarded connection is closed",
        Duration::from_secs(60),
        || shared.stats.active() == 0,
    )
    .await;
    // The echo backend closes its side right after the client has seen end-of-file; give it a moment.
    let settled = tokio::time::timeout(Duration::from_secs(30), async {
        while open_fds() != before {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "{} descriptors open after {CONNECTIONS} connections, {before} before",
        open_fds()
    );
}

//! Many concurrent forwarded connections keep memory bounded by the per-connection buffers.
//!
//! Everything (clients, forwarder, echo backend) runs in this process, so each connection costs four
//! descriptors. The 10 000-connection run needs RLIMIT_NOFILE >= 40 200 and is opt-in
//! (`cargo test -p vsock-forwarder --test many_connections -- --ignored`); the default run uses 4 000
//! connections, which fits the 20 000 descriptors of the development machines.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use vsock_forwarder::endpoint::Endpoint;
use vsock_forwarder::stream::{Stream, connect};

use support::{echo_backend, limits, require_open_files, rss_bytes, start_forwarder, wait_until};

/// Copy buffer per direction in these runs.
const BUFFER: usize = 16 * 1024;
/// Bytes each client sends and reads back: enough to pass through both copy buffers.
const PAYLOAD: usize = 2 * BUFFER;
/// Allowance per connection beyond the forwarder's two copy buffers: the echo backend's 512-byte buffer,
/// task and stream structures on three sides, the connection registry, allocator slack.
const OVERHEAD_PER_CONNECTION: u64 = 16 * 1024;
/// What every client sends (shared, so clients add no per-connection payload memory).
static PAYLOAD_BYTES: [u8; PAYLOAD] = [0x5a; PAYLOAD];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_thousand_concurrent_connections_stay_within_the_memory_bound() {
    concurrent_connections(4_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RLIMIT_NOFILE >= 40200; run with --ignored where the hard limit allows it"]
async fn ten_thousand_concurrent_connections_stay_within_the_memory_bound() {
    concurrent_connections(10_000).await;
}

async fn concurrent_connections(count: usize) {
    require_open_files(4 * count as u64 + 200);
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("echo.sock");
    echo_backend(&backend);
    let listen = Endpoint::Unix(dir.path().join("in.sock"));
    let (shared, bound) = start_forwarder(
        listen,
        Endpoint::Unix(backend),
        limits(BUFFER, count, Duration::from_secs(30)),
    )
    .await;
    // Warm the runtime and allocator up with one connection before taking the baseline.
    drop(open_and_echo(&bound).await);
    wait_until(
        "the warm-up connection is closed",
        Duration::from_secs(30),
        || shared.stats.active() == 0,
    )
    .await;
    let baseline = rss_bytes();

    let mut open = Vec::with_capacity(count);
    for wave in 0..count.div_ceil(500) {
        let mut tasks = JoinSet::new();
        for _ in wave * 500..((wave + 1) * 500).min(count) {
            let bound = bound.clone();
            tasks.spawn(async move { open_and_echo(&bound).await });
        }
        while let Some(conn) = tasks.join_next().await {
            open.push(conn.expect("client task"));
        }
    }
    assert_eq!(open.len(), count);
    assert_eq!(
        shared.stats.active(),
        count,
        "every connection must be open at once"
    );

    let grown = rss_bytes().saturating_sub(baseline);
    let per_connection = 2 * BUFFER as u64 + OVERHEAD_PER_CONNECTION;
    let bound_bytes = count as u64 * per_connection;
    println!(
        "{count} connections: RSS grew by {grown} bytes ({} per connection; bound {per_connection})",
        grown / count as u64
    );
    assert!(
        grown <= bound_bytes,
        "RSS grew by {grown} bytes for {count} connections; bound {bound_bytes}"
    );

    drop(open);
    wait_until(
        "every connection is closed",
        Duration::from_secs(60),
        || shared.stats.active() == 0,
    )
    .await;
}

/// Connects (retrying while the listen backlog is full), sends the payload and reads it back.
async fn open_and_echo(bound: &Endpoint) -> Stream {
    let mut conn = loop {
        match connect(bound).await {
            Ok(conn) => break conn,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(err) => panic!("connecting to the forwarder: {err}"),
        }
    };
    let (mut reader, mut writer) = tokio::io::split(conn);
    let write = async {
        writer.write_all(&PAYLOAD_BYTES).await.unwrap();
        writer
    };
    let read = async {
        let mut chunk = [0u8; 1024];
        for _ in 0..PAYLOAD / chunk.len() {
            reader.read_exact(&mut chunk).await.unwrap();
            assert!(chunk.iter().all(|&b| b == 0x5a), "echo corrupted");
        }
        reader
    };
    let (writer, reader) = tokio::join!(write, read);
    conn = reader.unsplit(writer);
    conn
}

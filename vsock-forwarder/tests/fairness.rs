//! Two rules under one global cap, over real unix sockets: one rule's idle connections at its own cap do
//! not starve the other, and idle connections are closed after `-idle-timeout`, freeing their slots.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use vsock_forwarder::endpoint::Endpoint;
use vsock_forwarder::stream::{Stream, connect};

use support::{echo_backend, limits, serve_with, start_forwarders, wait_until};

const GUARD: Duration = Duration::from_secs(30);

/// A backend that answers the first byte of each connection with `!`, then holds it silently until the
/// forwarder closes it.
fn silent_backend(path: &std::path::Path) {
    let listener = UnixListener::bind(path).expect("binding the silent backend");
    serve_with(listener, |mut conn| async move {
        let mut byte = [0u8; 1];
        if conn.read_exact(&mut byte).await.is_ok() && conn.write_all(b"!").await.is_ok() {
            let mut rest = Vec::new();
            let _ = conn.read_to_end(&mut rest).await;
        }
    });
}

/// Connects to `bound` and sends one byte; the reply is read later.
async fn open(bound: &Endpoint) -> Stream {
    let mut client = connect(bound).await.expect("connecting to rule A");
    client.write_all(b"a").await.expect("writing to rule A");
    client
}

/// Reads one byte with a guard against hangs.
async fn one_byte(client: &mut Stream) -> std::io::Result<u8> {
    let mut byte = [0u8; 1];
    tokio::time::timeout(GUARD, client.read_exact(&mut byte))
        .await
        .expect("a reply within the guard")?;
    Ok(byte[0])
}

async fn echo_through(bound: &Endpoint) -> Vec<u8> {
    let mut client = connect(bound).await.expect("connecting to rule B");
    client.write_all(b"for rule B").await.unwrap();
    client.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(GUARD, client.read_to_end(&mut reply))
        .await
        .expect("rule B served while rule A is at its cap")
        .unwrap();
    reply
}

#[tokio::test]
async fn idle_connections_at_one_rules_cap_do_not_starve_another_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (silent, echo) = (dir.path().join("silent.sock"), dir.path().join("echo.sock"));
    silent_backend(&silent);
    echo_backend(&echo);
    let rules = vec![
        (
            Endpoint::Unix(dir.path().join("a.sock")),
            Endpoint::Unix(silent),
        ),
        (
            Endpoint::Unix(dir.path().join("b.sock")),
            Endpoint::Unix(echo),
        ),
    ];
    // A global cap of 4 over two rules: each rule may hold 2.
    let (shared, bound) = start_forwarders(rules, limits(4096, 4, GUARD)).await;
    let mut idle_on_a = Vec::new();
    for _ in 0..6 {
        idle_on_a.push(open(&bound[0]).await);
    }
    wait_until("rule A holds its cap of 2", GUARD, || {
        shared.stats.active() == 2
    })
    .await;

    for round in 0..3 {
        assert_eq!(
            echo_through(&bound[1]).await,
            b"for rule B",
            "round {round}"
        );
    }
    assert_eq!(
        shared.stats.accepted(),
        2 + 3,
        "rule A went above its cap, or rule B was not served"
    );
    // Rule A's first two were served; the other four still wait in the backlog.
    let mut served = 0;
    for client in idle_on_a.iter_mut().take(2) {
        served += usize::from(one_byte(client).await.unwrap() == b'!');
    }
    assert_eq!(served, 2);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_timeout_and_free_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.sock");
    silent_backend(&silent);
    let rules = vec![(
        Endpoint::Unix(dir.path().join("a.sock")),
        Endpoint::Unix(silent),
    )];
    let mut limits = limits(4096, 2, GUARD);
    limits.idle_timeout = Some(Duration::from_millis(300));
    let (shared, bound) = start_forwarders(rules, limits).await;

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(open(&bound[0]).await);
    }
    // Each connection sits idle (client and backend both silent, both still open) until the forwarder
    // closes it: end-of-file on the client, after at most the backend's "!". The two beyond the cap of 2
    // are served only because the idle ones gave their slots back.
    for (i, client) in clients.iter_mut().enumerate() {
        let mut got = Vec::new();
        tokio::time::timeout(GUARD, client.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| panic!("client {i} was not closed after the idle timeout"))
            .unwrap();
        assert!(got.is_empty() || got == b"!", "client {i}: {got:?}");
    }
    wait_until("every idle connection is counted closed", GUARD, || {
        shared.stats.active() == 0
    })
    .await;
    assert_eq!(shared.stats.accepted(), 4);
}

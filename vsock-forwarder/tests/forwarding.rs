//! The listener loop and copy engine over real unix and TCP sockets on loopback: half-close both ways,
//! resets, backpressure, late targets, failed dials and the connection cap.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use vsock_forwarder::endpoint::Endpoint;
use vsock_forwarder::stream::{Stream, connect};

use support::{echo_backend, limits, serve_with, start_forwarder, wait_until};

const GUARD: Duration = Duration::from_secs(30);

/// The listen/target pairs every half-close test runs over.
fn pairs(dir: &Path) -> Vec<(Endpoint, Endpoint)> {
    let unix_in = Endpoint::Unix(dir.join("in.sock"));
    let tcp_in = Endpoint::Tcp("127.0.0.1:0".parse().unwrap());
    vec![
        (unix_in.clone(), Endpoint::Unix(dir.join("backend.sock"))),
        (tcp_in, Endpoint::Unix(dir.join("backend2.sock"))),
    ]
}

async fn read_all<R: AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .await
        .expect("reading to end-of-file");
    out
}

async fn half_close_roundtrip<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    first: &[u8],
    reply: &[u8],
) {
    client.write_all(first).await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(read_all(client).await, reply);
}

#[tokio::test]
async fn client_half_close_reaches_the_target_and_the_reply_still_flows() {
    let dir = tempfile::tempdir().unwrap();
    for (listen, target) in pairs(dir.path()) {
        let Endpoint::Unix(backend_path) = &target else {
            unreachable!()
        };
        // The backend answers only after it has seen end-of-file: the reply direction must survive it.
        serve_with(
            UnixListener::bind(backend_path).unwrap(),
            |mut conn| async move {
                let got = read_all(&mut conn).await;
                conn.write_all(format!("got {} bytes", got.len()).as_bytes())
                    .await
                    .unwrap();
                conn.shutdown().await.unwrap();
            },
        );
        let (shared, bound) = start_forwarder(listen, target, limits(4096, 16, GUARD)).await;
        let mut client = connect(&bound).await.unwrap();
        half_close_roundtrip(&mut client, &[b'x'; 100_000], b"got 100000 bytes").await;
        wait_until("the connection is closed", GUARD, || {
            shared.stats.active() == 0
        })
        .await;
        assert!(
            shared
                .stats
                .report()
                .last()
                .unwrap()
                .contains("bytes read: 100000 written: 16"),
            "{:?}",
            shared.stats.report()
        );
    }
}

#[tokio::test]
async fn target_half_close_reaches_the_client_and_the_client_can_still_send() {
    let dir = tempfile::tempdir().unwrap();
    for (listen, target) in pairs(dir.path()) {
        let Endpoint::Unix(backend_path) = &target else {
            unreachable!()
        };
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        serve_with(
            UnixListener::bind(backend_path).unwrap(),
            move |mut conn| {
                let done_tx = done_tx.clone();
                async move {
                    conn.write_all(b"banner").await.unwrap();
                    conn.shutdown().await.unwrap();
                    let _ = done_tx.send(read_all(&mut conn).await);
                }
            },
        );
        let (_shared, bound) = start_forwarder(listen, target, limits(4096, 16, GUARD)).await;
        let mut client = connect(&bound).await.unwrap();
        assert_eq!(
            read_all(&mut client).await,
            b"banner",
            "the target's end-of-file must reach the client"
        );
        half_close_roundtrip(&mut client, b"sent after the server half-closed", b"").await;
        let mut done_rx = done_rx;
        assert_eq!(
            done_rx.recv().await.unwrap(),
            b"sent after the server half-closed"
        );
    }
}

#[tokio::test]
async fn a_client_reset_closes_the_target_and_the_listener_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("backend.sock");
    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel();
    serve_with(UnixListener::bind(&backend).unwrap(), move |mut conn| {
        let ended_tx = ended_tx.clone();
        async move {
            let mut buf = vec![0; 1024];
            // Read until the forwarder closes its side (end-of-file or an error both count).
            while let Ok(n) = conn.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            let _ = ended_tx.send(());
        }
    });
    let listen = Endpoint::Tcp("127.0.0.1:0".parse().unwrap());
    let (shared, bound) = start_forwarder(
        listen,
        Endpoint::Unix(backend.clone()),
        limits(4096, 16, GUARD),
    )
    .await;
    let Endpoint::Tcp(addr) = bound else {
        unreachable!()
    };
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.write_all(b"some data").await.unwrap();
    wait_until("the connection is forwarded", GUARD, || {
        shared
            .stats
            .report()
            .last()
            .unwrap()
            .contains("bytes read: 9")
    })
    .await;
    client.set_zero_linger().unwrap();
    drop(client); // RST
    tokio::time::timeout(GUARD, ended_rx.recv())
        .await
        .expect("the target connection must be closed")
        .unwrap();
    wait_until("the connection is closed", GUARD, || {
        shared.stats.active() == 0
    })
    .await;

    let mut again = tokio::net::TcpStream::connect(addr).await.unwrap();
    again.write_all(b"x").await.unwrap();
    wait_until("the next connection is forwarded", GUARD, || {
        shared
            .stats
            .report()
            .last()
            .unwrap()
            .contains("bytes read: 10")
    })
    .await;
    assert_eq!(shared.stats.accepted(), 2);
}

#[tokio::test]
async fn a_target_reset_closes_the_client() {
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = backend.accept().await.unwrap();
        let mut buf = [0; 4];
        conn.read_exact(&mut buf).await.unwrap();
        conn.set_zero_linger().unwrap();
        drop(conn); // RST
    });
    let dir = tempfile::tempdir().unwrap();
    let listen = Endpoint::Unix(dir.path().join("in.sock"));
    let (shared, bound) =
        start_forwarder(listen, Endpoint::Tcp(backend_addr), limits(4096, 16, GUARD)).await;
    let mut client = connect(&bound).await.unwrap();
    client.write_all(b"ping").await.unwrap();
    // The client sees end-of-file (or a reset) instead of hanging.
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(GUARD, client.read_to_end(&mut buf))
        .await
        .expect("the client must be closed");
    wait_until("the connection is closed", GUARD, || {
        shared.stats.active() == 0
    })
    .await;
}

#[tokio::test]
async fn a_slow_reader_stalls_the_writer_instead_of_filling_memory() {
    const OFFERED: u64 = 256 * 1024 * 1024;
    const BUFFER: usize = 16 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("backend.sock");
    let sent = Arc::new(AtomicU64::new(0));
    let sent_by_backend = Arc::clone(&sent);
    serve_with(UnixListener::bind(&backend).unwrap(), move |mut conn| {
        let sent = Arc::clone(&sent_by_backend);
        async move {
            let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
            while sent.load(Ordering::Relaxed) < OFFERED {
                if conn.write_all(&chunk).await.is_err() {
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            conn.shutdown().await.unwrap();
        }
    });
    let listen = Endpoint::Unix(dir.path().join("in.sock"));
    let (_shared, bound) =
        start_forwarder(listen, Endpoint::Unix(backend), limits(BUFFER, 16, GUARD)).await;
    let mut client = connect(&bound).await.unwrap();

    // Wait until the writer has made no progress for 5 samples in a row: it is blocked.
    let mut last = u64::MAX;
    let mut still = 0;
    while still < 5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sent.load(Ordering::Relaxed);
        still = if now == last { still + 1 } else { 0 };
        last = now;
        assert!(
            now < OFFERED,
            "the writer was never stalled: all {OFFERED} bytes were accepted"
        );
    }
    let Stream::Unix(unix_client) = &client else {
        unreachable!()
    };
    let in_flight_bound = 2 * BUFFER as u64 + 8 * socket_buffers(unix_client);
    assert!(
        last <= in_flight_bound,
        "{last} bytes accepted while the reader slept; bound {in_flight_bound}"
    );

    // Now read everything and check it arrived intact and in order.
    let mut buf = vec![0; 1 << 20];
    let mut received = 0u64;
    loop {
        let n = client.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        for (i, byte) in buf[..n].iter().enumerate() {
            let expected = (((received + i as u64) % 65536) % 251) as u8;
            assert_eq!(*byte, expected, "byte {} corrupted", received + i as u64);
        }
        received += n as u64;
    }
    assert_eq!(received, OFFERED);
}

/// SO_SNDBUF + SO_RCVBUF of one socket: the kernel's queueing on each hop is of this order.
fn socket_buffers(socket: &tokio::net::UnixStream) -> u64 {
    use nix::sys::socket::{getsockopt, sockopt};
    let send = getsockopt(socket, sockopt::SndBuf).unwrap();
    let recv = getsockopt(socket, sockopt::RcvBuf).unwrap();
    (send + recv) as u64
}

#[tokio::test]
async fn a_target_that_appears_late_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("late.sock");
    let listen = Endpoint::Unix(dir.path().join("in.sock"));
    let (shared, bound) = start_forwarder(
        listen,
        Endpoint::Unix(backend.clone()),
        limits(4096, 16, GUARD),
    )
    .await;
    let mut client = connect(&bound).await.unwrap();
    client
        .write_all(b"sent before the target existed")
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo_backend(&backend);
    assert_eq!(
        read_all(&mut client).await,
        b"sent before the target existed"
    );
    assert!(
        shared
            .stats
            .report()
            .last()
            .unwrap()
            .contains("failed to connect: 0")
    );
}

#[tokio::test]
async fn a_failed_dial_closes_one_connection_not_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("missing.sock");
    let listen = Endpoint::Unix(dir.path().join("in.sock"));
    let (shared, bound) = start_forwarder(
        listen,
        Endpoint::Unix(backend.clone()),
        limits(4096, 16, Duration::ZERO),
    )
    .await;
    let mut client = connect(&bound).await.unwrap();
    assert_eq!(
        read_all(&mut client).await,
        b"",
        "the client must be closed when the target is missing"
    );
    assert!(
        shared
            .stats
            .report()
            .last()
            .unwrap()
            .contains("failed to connect: 1")
    );

    echo_backend(&backend);
    let mut client = connect(&bound).await.unwrap();
    half_close_roundtrip(&mut client, b"second try", b"second try").await;
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_in_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dir.path().join("backend.sock");
    echo_backend(&backend);
    let listen = Endpoint::Unix(dir.path().join("in.sock"));
    let (shared, bound) =
        start_forwarder(listen, Endpoint::Unix(backend), limits(4096, 2, GUARD)).await;
    let mut first = connect(&bound).await.unwrap();
    let mut second = connect(&bound).await.unwrap();
    for client in [&mut first, &mut second] {
        client.write_all(b"1").await.unwrap();
        let mut one = [0; 1];
        client.read_exact(&mut one).await.unwrap();
    }
    // The third connects (the kernel queues it) but is not accepted while two are open.
    let mut third = connect(&bound).await.unwrap();
    third.write_all(b"3").await.unwrap();
    let mut reply = [0; 1];
    let early =
        tokio::time::timeout(Duration::from_millis(300), third.read_exact(&mut reply)).await;
    assert!(
        early.is_err(),
        "a third connection was served above the cap of 2"
    );
    assert_eq!(shared.stats.accepted(), 2);

    drop(first);
    tokio::time::timeout(GUARD, third.read_exact(&mut reply))
        .await
        .expect("served once a slot frees")
        .unwrap();
    assert_eq!(&reply, b"3");
    assert_eq!(shared.stats.accepted(), 3);
}

//! The syslog forward over unix sockets standing in for the host's vsock port: framing, long datagrams,
//! reconnect with replay, and dropping after two tries.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use vsock_forwarder::config::SyslogSpec;
use vsock_forwarder::endpoint::Endpoint;
use vsock_forwarder::syslog;

const GUARD: Duration = Duration::from_secs(30);

/// A console sink the test can read.
#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Console {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Reads one `"<len> <bytes>"` frame.
async fn read_frame(host: &mut BufReader<UnixStream>) -> Vec<u8> {
    let mut len = Vec::new();
    host.read_until(b' ', &mut len).await.unwrap();
    let len: usize = std::str::from_utf8(&len[..len.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    let mut message = vec![0; len];
    host.read_exact(&mut message).await.unwrap();
    message
}

fn start(dir: &Path) -> (PathBuf, PathBuf, Console) {
    let host = dir.join("host.sock");
    let gram = dir.join("log.sock");
    let spec = SyslogSpec {
        target: Endpoint::Unix(host.clone()),
        label: "514".into(),
        path: gram.clone(),
    };
    let console = Console::default();
    let sink = console.clone();
    tokio::spawn(async move { syslog::run(&spec, sink).await });
    (host, gram, console)
}

async fn send(gram: &Path, message: &[u8]) {
    let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
    support::wait_until("the unixgram socket exists", GUARD, || gram.exists()).await;
    client.send_to(message, gram).unwrap();
}

#[tokio::test]
async fn datagrams_are_framed_whole_and_replayed_after_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let (host_path, gram, console) = start(dir.path());
    let host = UnixListener::bind(&host_path).unwrap();

    send(&gram, b"<13>short").await;
    let long: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    send(&gram, &long).await;
    let (conn, _) = host.accept().await.unwrap();
    let mut conn = BufReader::new(conn);
    assert_eq!(read_frame(&mut conn).await, b"<13>short");
    assert_eq!(
        read_frame(&mut conn).await,
        long,
        "a 10 000-byte datagram must arrive whole"
    );

    // The host drops the connection: the next write fails, the forwarder reconnects and first replays
    // the last message it had sent.
    drop(conn);
    send(&gram, b"<13>after the reconnect").await;
    let (conn, _) = tokio::time::timeout(GUARD, host.accept())
        .await
        .expect("a reconnect")
        .unwrap();
    let mut conn = BufReader::new(conn);
    assert_eq!(read_frame(&mut conn).await, long);
    assert_eq!(read_frame(&mut conn).await, b"<13>after the reconnect");
    let text = console.text();
    assert!(text.contains("vsyslog: Opened new conn to 514"), "{text}");
    assert!(
        text.contains("vsyslog: Replaying last message: abc"),
        "{text}"
    );
    assert!(
        text.contains("vsyslog: Forwarded on attempt 2: <13>after the reconnect"),
        "{text}"
    );
}

#[tokio::test]
async fn a_message_is_dropped_after_two_tries_and_the_next_one_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let (host_path, gram, console) = start(dir.path());

    send(&gram, b"<13>nobody listening").await;
    support::wait_until("the drop is reported", GUARD, || {
        console.text().contains("Failed to send log")
    })
    .await;
    assert!(
        console
            .text()
            .contains("too many retries: <13>nobody listening"),
        "{}",
        console.text()
    );

    let host = UnixListener::bind(&host_path).unwrap();
    send(&gram, b"<13>host is up").await;
    let (conn, _) = tokio::time::timeout(GUARD, host.accept())
        .await
        .expect("a connection")
        .unwrap();
    let mut conn = BufReader::new(conn);
    assert_eq!(
        read_frame(&mut conn).await,
        b"<13>host is up",
        "a dropped message must not be replayed"
    );
}

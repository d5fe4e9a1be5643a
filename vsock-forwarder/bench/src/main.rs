//! vsock-forwarder-bench: throughput and connections-per-second through any forwarder.
//!
//! `serve ENDPOINT` runs the backend: for each connection it reads to end-of-file, then replies with the
//! byte count (8 bytes, little endian) and closes. `throughput` and `cps` dial ENDPOINT (the forwarder,
//! socat, or the backend directly) and check every reply, so a forwarder that loses data or breaks
//! half-close fails the run instead of looking fast. `bench/run.sh` drives a full comparison.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use vsock_forwarder::endpoint::Endpoint;
use vsock_forwarder::stream::{Acceptor, Listener, Stream, connect, connect_within};

#[derive(Debug, Parser)]
#[command(name = "vsock-forwarder-bench")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the counting backend on ENDPOINT (for example unix:/tmp/bench/backend.sock).
    Serve { endpoint: Endpoint },
    /// Wait until ENDPOINT accepts connections (up to 10 s).
    Wait { endpoint: Endpoint },
    /// Send BYTES over each of STREAMS parallel connections; print MiB/s.
    Throughput {
        endpoint: Endpoint,
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        #[arg(long, default_value_t = 1)]
        streams: usize,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Open CONNECTIONS short connections, CONCURRENCY at a time; print connections per second.
    Cps {
        endpoint: Endpoint,
        #[arg(long, default_value_t = 5000)]
        connections: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value = "")]
        label: String,
        /// Retry a failed connect for up to this many seconds (0: count it as failed at once).
        #[arg(long, default_value_t = 0)]
        retry_connect: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match args.command {
            Command::Serve { endpoint } => serve(&endpoint).await,
            Command::Wait { endpoint } => wait(&endpoint).await,
            Command::Throughput {
                endpoint,
                bytes,
                streams,
                label,
            } => throughput(&endpoint, bytes, streams, &label).await,
            Command::Cps {
                endpoint,
                connections,
                concurrency,
                label,
                retry_connect,
            } => {
                let retry = Duration::from_secs(retry_connect);
                cps(&endpoint, connections, concurrency, &label, retry).await
            }
        }
    })
}

async fn serve(endpoint: &Endpoint) -> anyhow::Result<()> {
    let mut listener = Listener::bind(endpoint)
        .await
        .with_context(|| format!("binding {endpoint}"))?;
    loop {
        let (mut conn, _) = listener.accept().await.context("accepting")?;
        tokio::spawn(async move {
            let mut buf = vec![0; 256 * 1024];
            let mut total = 0u64;
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(_) => return,
                }
            }
            let _ = conn.write_all(&total.to_le_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

async fn wait(endpoint: &Endpoint) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        match connect(endpoint).await {
            Ok(_) => return Ok(()),
            Err(err) if start.elapsed() > Duration::from_secs(10) => {
                bail!("{endpoint} is not accepting: {err}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sends `bytes`, half-closes, and checks the backend's count.
async fn one_transfer<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut S,
    bytes: u64,
    chunk: &[u8],
) -> io::Result<()> {
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        conn.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    conn.shutdown().await?;
    let mut count = [0u8; 8];
    conn.read_exact(&mut count).await?;
    if u64::from_le_bytes(count) != bytes {
        return Err(io::Error::other(format!(
            "backend counted {} of {bytes} bytes",
            u64::from_le_bytes(count)
        )));
    }
    Ok(())
}

async fn throughput(
    endpoint: &Endpoint,
    bytes: u64,
    streams: usize,
    label: &str,
) -> anyhow::Result<()> {
    let chunk: Arc<[u8]> = vec![0xa5; 256 * 1024].into();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..streams.max(1) {
        let (endpoint, chunk) = (endpoint.clone(), Arc::clone(&chunk));
        tasks.spawn(async move {
            let mut conn = connect(&endpoint).await?;
            one_transfer(&mut conn, bytes, &chunk).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done?.with_context(|| format!("transfer through {endpoint}"))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mib = (bytes * streams.max(1) as u64) as f64 / (1024.0 * 1024.0);
    println!(
        "throughput\t{label}\t{endpoint}\tstreams={streams}\tMiB={mib:.0}\tseconds={seconds:.3}\tMiB/s={:.1}",
        mib / seconds
    );
    Ok(())
}

/// Connects, retrying refused attempts for up to `retry`. Each vsock attempt may itself take up to `retry`
/// (the kernel's 2 s is too short for a loaded TCG guest): a client that gives up on a connect in flight
/// leaves the listener a connection it accepted for nobody, which a forwarder then counts and forwards.
async fn connect_retrying(endpoint: &Endpoint, retry: Duration) -> io::Result<Stream> {
    if retry.is_zero() {
        return connect(endpoint).await;
    }
    let until = Instant::now() + retry;
    loop {
        match connect_within(endpoint, retry).await {
            Err(_) if Instant::now() < until => tokio::time::sleep(Duration::from_millis(50)).await,
            result => return result,
        }
    }
}

async fn cps(
    endpoint: &Endpoint,
    connections: usize,
    concurrency: usize,
    label: &str,
    retry: Duration,
) -> anyhow::Result<()> {
    let concurrency = concurrency.clamp(1, connections.max(1));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for worker in 0..concurrency {
        let endpoint = endpoint.clone();
        tasks.spawn(async move {
            let mut failures = Vec::new();
            for _ in (worker..connections).step_by(concurrency) {
                let result = match connect_retrying(&endpoint, retry).await {
                    Ok(mut conn) => one_transfer(&mut conn, 1, b"x").await,
                    Err(err) => Err(err),
                };
                failures.extend(result.err());
            }
            failures
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        failures.extend(done?);
    }
    let seconds = start.elapsed().as_secs_f64();
    // A failed connection (lost byte, broken half-close, refused) is counted, not retried.
    let ok = connections - failures.len();
    println!(
        "cps\t{label}\t{endpoint}\tconnections={connections}\tconcurrency={concurrency}\tfailed={}\tseconds={seconds:.3}\tconn/s={:.0}",
        failures.len(),
        ok as f64 / seconds
    );
    if let Some(first) = failures.first() {
        eprintln!(
            "{label}: {} of {connections} connections failed; first: {first}",
            failures.len()
        );
    }
    Ok(())
}

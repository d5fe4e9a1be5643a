//! A small, real HTTP/1.1 server on 127.0.0.1 that behaves like the EC2 instance metadata service with
//! IMDSv2 required: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1..=21600) hands
//! out a token, every GET must carry it in `X-aws-ec2-metadata-token` (401 otherwise), and a token stops
//! working after a set number of uses (as an expired one would), so clients must ask for a new one.
//!
//! qemu's `guestfwd=...-cmd:nc 127.0.0.1 PORT` connects one `nc` per guest connection. The server keeps
//! connections alive (HTTP/1.1), bounds every read and write, the header size and the number of connections
//! and requests, and stops when dropped: the accept loop ends and every open connection is shut down and
//! joined. Every request is recorded for the test to inspect.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 4096;
const MAX_CONNECTIONS: usize = 256;
const MAX_REQUESTS_PER_CONNECTION: usize = 200;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server offers.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `meta-data/<path>` → value (`hostname`, `instance-id`, `placement/availability-zone`, ...).
    pub meta: Vec<(String, String)>,
    /// `meta-data/public-keys/N/openssh-key`.
    pub keys: Vec<String>,
    /// `/latest/user-data`.
    pub userdata: String,
    /// How many GETs one token authorises before it is refused as expired.
    pub token_uses: u32,
}

/// One request as the server saw it, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub method: String,
    pub path: String,
    /// The TTL header of a PUT.
    pub ttl: Option<String>,
    /// The token header of a GET.
    pub token: Option<String>,
    pub status: u16,
}

#[derive(Debug, Default)]
struct State {
    /// Token → GETs it may still authorise.
    tokens: HashMap<String, u32>,
    issued: u32,
    log: Vec<Served>,
}

struct Shared {
    instance: Instance,
    state: Mutex<State>,
    stop: AtomicBool,
    connections: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running server; dropping it stops it.
pub struct Imds {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Imds {
    /// Starts serving `instance` on an ephemeral port of 127.0.0.1.
    pub fn start(instance: Instance) -> Result<Self> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            instance,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let for_loop = Arc::clone(&shared);
        let accept = std::thread::spawn(move || accept_loop(&listener, &for_loop));
        Ok(Self {
            port,
            shared,
            accept: Some(accept),
        })
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Served> {
        self.shared.state().log.clone()
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let connections = std::mem::take(
            &mut *self
                .shared
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (stream, handle) in connections {
            let _ = stream.shutdown(Shutdown::Both);
            let _ = handle.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let mut open = shared
                    .connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                open.retain(|(_, h)| !h.is_finished());
                let Ok(handle_side) = stream.try_clone() else {
                    continue;
                };
                if open.len() >= MAX_CONNECTIONS {
                    continue; // dropped: the client sees the connection close
                }
                let for_conn = Arc::clone(shared);
                let handle = std::thread::spawn(move || serve_connection(handle_side, &for_conn));
                open.push((stream, handle));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    keep_alive: bool,
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    // The registry keeps a clone of this socket, so end the connection explicitly.
    if let Ok(end) = stream.try_clone() {
        serve_requests(stream, shared);
        let _ = end.shutdown(Shutdown::Both);
    }
}

fn serve_requests(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut writer = writer;
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let request = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(status) => {
                let _ = respond(&mut writer, status, "", false);
                return;
            }
        };
        let (status, body) = answer(&request, shared);
        if respond(&mut writer, status, &body, request.keep_alive).is_err() || !request.keep_alive {
            return;
        }
    }
}

/// Reads one request: `Ok(None)` at a clean end of the connection, `Err(status)` for a bad one.
fn read_request(reader: &mut impl BufRead) -> Result<Option<Request>, u16> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - head.len()) as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|_| 408u16)?;
        if n == 0 {
            return if head.is_empty() { Ok(None) } else { Err(400) };
        }
        if head.len() + line.len() > MAX_HEAD {
            return Err(431);
        }
        let blank = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if blank && head.len() > line.len() {
            break;
        }
        if blank {
            head.clear(); // stray empty line before a request
        }
    }
    let text = String::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = text.lines();
    let mut start = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path), Some(version)) = (start.next(), start.next(), start.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(505);
    }
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = match headers.get("content-length") {
        Some(v) => v.parse().map_err(|_| 400u16)?,
        None => 0,
    };
    if length > MAX_BODY || headers.contains_key("transfer-encoding") {
        return Err(413);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).map_err(|_| 400u16)?;
    let close = headers
        .get("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    Ok(Some(Request {
        method: method.to_string(),
        keep_alive: version == "HTTP/1.1" && !close,
        path: path.to_string(),
        headers,
    }))
}

fn answer(request: &Request, shared: &Shared) -> (u16, String) {
    let mut state = shared.state();
    let ttl = request.headers.get(TTL_HEADER).cloned();
    let token = request.headers.get(TOKEN_HEADER).cloned();
    let (status, body) = match (request.method.as_str(), request.path.as_str()) {
        ("PUT", "/latest/api/token") => match ttl.as_deref().map(str::parse::<u32>) {
            Some(Ok(1..=21600)) => {
                state.issued += 1;
                let token = format!("imdsv2-token-{}", state.issued);
                state
                    .tokens
                    .insert(token.clone(), shared.instance.token_uses);
                (200, token)
            }
            _ => (400, String::new()),
        },
        ("GET", path) => match token.as_deref().and_then(|t| state.tokens.get_mut(t)) {
            Some(left) if *left > 0 => {
                *left -= 1;
                match content(&shared.instance, path) {
                    Some(body) => (200, body),
                    None => (404, String::new()),
                }
            }
            _ => (401, String::new()),
        },
        (_, "/latest/api/token") | ("HEAD" | "POST" | "DELETE", _) => (405, String::new()),
        _ => (400, String::new()),
    };
    state.log.push(Served {
        method: request.method.clone(),
        path: request.path.clone(),
        ttl,
        token,
        status,
    });
    (status, body)
}

fn content(instance: &Instance, path: &str) -> Option<String> {
    if path == "/latest/user-data" {
        return Some(instance.userdata.clone());
    }
    let meta = path.strip_prefix("/latest/meta-data/")?;
    if meta == "public-keys/" || meta == "public-keys" {
        let list: Vec<String> = (0..instance.keys.len())
            .map(|i| format!("{i}=key-{i}"))
            .collect();
        return Some(list.join("\n"));
    }
    if let Some(rest) = meta.strip_prefix("public-keys/") {
        let (index, leaf) = rest.split_once('/')?;
        let key = instance.keys.get(index.parse::<usize>().ok()?)?;
        return (leaf == "openssh-key").then(|| key.clone());
    }
    instance
        .meta
        .iter()
        .find(|(k, _)| k == meta)
        .map(|(_, v)| v.clone())
}

fn respond(
    writer: &mut impl Write,
    status: u16,
    body: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "HTTP Version Not Supported",
    };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    write!(
        writer,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\nServer: EC2ws\r\n\r\n{body}",
        body.len()
    )?;
    writer.flush()
}

//! Test support: a small real HTTP/1.1 server (std threads, so it can live in another network
//! namespace), network namespaces, and prerequisites that fail loudly when missing.
#![allow(dead_code)]

pub mod clouds;
pub mod fat_loop;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use metadata::http::Policy;
use metadata::providers::{Endpoints, Env};
use metadata::run::Plan;
use metadata::select::Strategy;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// What to send back.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Status, extra headers, body.
    Reply(u16, Vec<(String, String)>, Vec<u8>),
    /// Accept, read the request, never answer (until the client gives up).
    Stall,
    /// Headers at once, then the body one byte per `delay`.
    SlowBody(Vec<u8>, Duration),
    /// Raw bytes instead of HTTP.
    Raw(Vec<u8>),
}

impl Answer {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Answer::Reply(200, Vec::new(), body.into())
    }
    pub fn status(code: u16) -> Self {
        Answer::Reply(code, Vec::new(), Vec::new())
    }
}

pub type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// A running server; it stops when the test process ends.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Starts a server on `bind` (port 0 picks one) in the current network namespace.
    pub fn start(bind: &str, handler: Handler) -> Server {
        let listener = TcpListener::bind(bind)
            .unwrap_or_else(|e| panic!("binding test server to {bind}: {e}"));
        Self::serve(listener, handler)
    }

    /// Starts a server inside the named network namespace.
    pub fn start_in(netns: &str, bind: &str, handler: Handler) -> Server {
        let (tx, rx) = mpsc::channel();
        let (ns, bind) = (netns.to_string(), bind.to_string());
        thread::spawn(move || {
            enter_netns(&ns);
            let listener =
                TcpListener::bind(&bind).unwrap_or_else(|e| panic!("binding {bind} in {ns}: {e}"));
            let _ = tx.send(Self::serve(listener, handler));
            loop {
                thread::park();
            }
        });
        rx.recv().expect("server thread started")
    }

    fn serve(listener: TcpListener, handler: Handler) -> Server {
        let server = Server {
            addr: listener.local_addr().expect("local addr"),
            seen: Arc::default(),
        };
        let seen = server.seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, seen) = (handler.clone(), seen.clone());
                thread::spawn(move || connection(stream, &handler, &seen));
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn read_request(stream: &mut TcpStream, peer: SocketAddr) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    stream.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body,
        peer,
    })
}

fn connection(mut stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<Seen>>) {
    let peer = stream.peer_addr().expect("peer");
    let _ = stream.set_nodelay(true);
    while let Some(req) = read_request(&mut stream, peer) {
        if let Ok(mut s) = seen.lock() {
            s.push(req.clone());
        }
        match handler(&req) {
            Answer::Reply(code, headers, body) => {
                let mut head = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                // One write: a separate body write would meet Nagle + delayed ACK (40 ms a reply).
                let mut reply = head.into_bytes();
                reply.extend_from_slice(&body);
                let _ = stream.write_all(&reply);
            }
            Answer::Stall => {
                thread::sleep(Duration::from_secs(600));
                return;
            }
            Answer::SlowBody(body, delay) => {
                let _ = stream.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                for b in body {
                    if stream.write_all(&[b]).is_err() {
                        return;
                    }
                    thread::sleep(delay);
                }
            }
            Answer::Raw(bytes) => {
                let _ = stream.write_all(&bytes);
                return;
            }
        }
    }
}

/// Fails the test (does not skip) unless running as root.
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} needs root (run the tests as root)"
    );
}

/// Fails the test unless `tool` is on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(tool).is_file());
    assert!(
        found,
        "this test needs `{tool}` on PATH (apt-get install it)"
    );
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A network namespace deleted on drop, with loopback up and `addrs` on it.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str, addrs: &[&str]) -> Netns {
        require_root("creating a network namespace");
        require_tool("ip");
        let name = format!("mdt-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        for a in addrs {
            let mut cmd = Command::new("ip");
            cmd.args(["-n", &ns.name, "addr", "add", a, "dev", "lo"]);
            if a.contains(':') {
                // Usable at once: no duplicate address detection (binding would race it).
                cmd.arg("nodad");
            }
            run(&mut cmd);
        }
        ns
    }

    /// `ip netns exec NS unshare --uts PROGRAM ARGS` (own UTS namespace: sethostname stays inside).
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, "unshare", "--uts"])
            .arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Moves the calling thread into `/run/netns/<name>`.
pub fn enter_netns(name: &str) {
    let file = std::fs::File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("opening netns {name}: {e}"));
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {name}: {e}"));
}

/// The built `metadata` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_metadata"))
}

/// Reads `root/rel` as text, panicking with the path if it is missing.
pub fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// A plan with every endpoint at `base`, empty sysfs/dev under `tmp`, short timeouts.
pub fn plan(base: &str, scaleway: std::net::SocketAddr, providers: &[&str], tmp: &Path) -> Plan {
    let policy = Policy {
        request_timeout: Duration::from_secs(2),
        backoff_start: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        ..Policy::default()
    };
    let env = Env {
        sysfs: tmp.join("sys"),
        dev: tmp.join("dev"),
        endpoints: Endpoints::all_at(base, scaleway),
        policy,
        ..Env::default()
    };
    Plan {
        providers: providers.iter().map(|s| s.to_string()).collect(),
        config_root: tmp.join("config"),
        env,
        deadline: Duration::from_secs(10),
        strategy: Strategy::Parallel,
        set_hostname: false,
        configure_network: false,
        links: Vec::new(),
    }
}

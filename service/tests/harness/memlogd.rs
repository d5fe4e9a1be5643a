//! A stand-in for memlogd: receives log fds on its datagram socket (name as payload, SCM_RIGHTS), reads their
//! lines, and answers dump queries (mode byte 0) on its stream socket with JSON lines like memlogd's.

use std::io::{BufRead, BufReader, IoSliceMut, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// What the fake memlogd received.
#[derive(Default)]
pub struct Received {
    /// (log name, line) in arrival order.
    pub lines: Vec<(String, String)>,
    /// Log names whose fds were received.
    pub names: Vec<String>,
    /// Readers still open.
    pub open_readers: usize,
}

/// Starts the fake memlogd; it lives as long as the test process.
pub fn start(log_socket: &Path, query_socket: &Path) -> Arc<Mutex<Received>> {
    let received = Arc::new(Mutex::new(Received::default()));
    std::fs::create_dir_all(log_socket.parent().expect("parent")).expect("socket dir");
    let sock = UnixDatagram::bind(log_socket).expect("bind memlogd socket");
    let r = received.clone();
    std::thread::spawn(move || {
        loop {
            let mut buf = [0u8; 256];
            let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let (bytes, fds) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let Ok(msg) = recvmsg::<()>(
                    sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                ) else {
                    return;
                };
                let mut fds = Vec::new();
                for c in msg.cmsgs().expect("cmsgs") {
                    if let ControlMessageOwned::ScmRights(received) = c {
                        fds.extend(received);
                    }
                }
                (msg.bytes, fds)
            };
            let name = String::from_utf8_lossy(&buf[..bytes]).into_owned();
            for fd in fds {
                let file = std::fs::File::from(super::sys::own_received_fd(fd));
                let (r, name) = (r.clone(), name.clone());
                if let Ok(mut state) = r.lock() {
                    state.names.push(name.clone());
                    state.open_readers += 1;
                }
                std::thread::spawn(move || {
                    // A FIFO read end was opened non-blocking; make reads block.
                    let _ = nix::fcntl::fcntl(
                        &file,
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
                    );
                    for line in BufReader::new(file).lines().map_while(Result::ok) {
                        if let Ok(mut state) = r.lock() {
                            state.lines.push((name.clone(), line));
                        }
                    }
                    if let Ok(mut state) = r.lock() {
                        state.open_readers -= 1;
                    }
                });
            }
        }
    });
    let listener = UnixListener::bind(query_socket).expect("bind query socket");
    let r = received.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut mode = [0u8; 1];
            if stream.read_exact(&mut mode).is_err() {
                continue;
            }
            // Let readers of finished containers drain, as a real ring would have by now.
            super::wait_until(Duration::from_secs(5), || {
                r.lock().map(|s| s.open_readers == 0).unwrap_or(true)
            });
            let lines = r.lock().map(|s| s.lines.clone()).unwrap_or_default();
            for (source, msg) in lines {
                let entry = serde_json::json!({"time": "2026-01-01T00:00:00Z", "source": source, "msg": msg});
                let _ = writeln!(stream, "{entry}");
            }
        }
    });
    received
}

//! Where container output goes (docs/linuxkit.md §12): files under `/var/log` and `/run/log/<type>`, or
//! memlogd by fd passing when its socket exists.

use std::fs::File;
use std::io::{BufRead, IoSlice, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, sendmsg, socket,
};

/// Errors talking to memlogd.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Creating a FIFO failed.
    #[error("creating FIFO {}", path.display())]
    Fifo {
        /// The FIFO.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// Opening a log file or FIFO failed.
    #[error("opening {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Passing an fd to memlogd failed.
    #[error("passing the log {name} to memlogd at {}", socket.display())]
    Send {
        /// The log name.
        name: String,
        /// memlogd's socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// Sends `fd` to memlogd as the log `name`: one datagram whose payload is the name, with the fd as its only
/// SCM_RIGHTS.
pub fn send_to_memlogd(socket_path: &Path, name: &str, fd: &OwnedFd) -> Result<(), LogError> {
    let failed = |source| LogError::Send {
        name: name.into(),
        socket: socket_path.to_owned(),
        source,
    };
    let sock = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(failed)?;
    let addr = UnixAddr::new(socket_path).map_err(failed)?;
    let fds = [fd.as_raw_fd()];
    sendmsg(
        sock.as_raw_fd(),
        &[IoSlice::new(name.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        Some(&addr),
    )
    .map_err(failed)?;
    Ok(())
}

/// The default cap of an onboot/onshutdown log file (`guestkit.onboot_log_max_bytes`).
pub const DEFAULT_ONBOOT_LOG_CAP: u64 = 16 << 20;
/// The default size at which a service's log file is rotated (`guestkit.service_log_max_bytes`).
pub const DEFAULT_SERVICE_LOG_CAP: u64 = 16 << 20;
/// The largest log cap accepted.
pub const MAX_LOG_CAP: u64 = 1 << 40;

/// Copies `from` into `to` until end of file, keeping the first `cap` bytes; the rest is read and dropped
/// (so the writer never blocks), and one line saying how much was dropped ends the copy. Returns the
/// number of bytes dropped.
pub fn copy_capped(
    from: &mut dyn std::io::Read,
    to: &mut dyn Write,
    cap: u64,
) -> std::io::Result<u64> {
    let mut buffer = [0u8; 8192];
    let (mut kept, mut dropped) = (0u64, 0u64);
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let room = usize::try_from(cap.saturating_sub(kept)).unwrap_or(usize::MAX);
        let take = read.min(room);
        if let Some(part) = buffer.get(..take)
            && !part.is_empty()
        {
            to.write_all(part)?;
        }
        kept += take as u64;
        dropped += (read - take) as u64;
    }
    if dropped > 0 {
        writeln!(
            to,
            "\n[log capped at {cap} bytes: {dropped} more bytes dropped]"
        )?;
    }
    to.flush()?;
    Ok(dropped)
}

/// A log file created (or truncated) for a container to write.
pub fn create_log_file(path: &Path) -> Result<File, LogError> {
    File::create(path).map_err(|source| LogError::Open {
        path: path.to_owned(),
        source,
    })
}

/// The stdout and stderr paths handed to containerd for service `name` (LinuxKit `GetLog`). With memlogd,
/// FIFOs whose read ends have been passed to memlogd; otherwise files truncated now (`/dev/null` if that fails).
pub fn service_log_paths(
    name: &str,
    log_dir: &Path,
    fifo_dir: &Path,
    memlogd_socket: &Path,
) -> Result<(PathBuf, PathBuf), LogError> {
    if memlogd_socket.exists() {
        let stdout = memlogd_fifo(
            &fifo_dir.join(format!("{name}.out.log")),
            &format!("{name}.out"),
            memlogd_socket,
        )?;
        let stderr = memlogd_fifo(&fifo_dir.join(format!("{name}.log")), name, memlogd_socket)?;
        return Ok((stdout, stderr));
    }
    let file_or_null = |path: PathBuf| match create_log_file(&path) {
        Ok(_) => path,
        Err(err) => {
            log::warn!("{err}; using /dev/null");
            PathBuf::from("/dev/null")
        }
    };
    let _ = std::fs::create_dir_all(log_dir);
    Ok((
        file_or_null(log_dir.join(format!("{name}.out.log"))),
        file_or_null(log_dir.join(format!("{name}.log"))),
    ))
}

fn memlogd_fifo(path: &Path, log_name: &str, memlogd_socket: &Path) -> Result<PathBuf, LogError> {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
        |source| LogError::Fifo {
            path: path.to_owned(),
            source,
        },
    )?;
    // Like LinuxKit's goroutine: a blocking open of the read end, which completes when the shim opens the
    // write end (so the shim's open finds a reader, pitfall 4), and only then the fd goes to memlogd. Handing
    // memlogd a reader before any writer exists would make its first read return end-of-file.
    let (path, name, socket) = (
        path.to_owned(),
        log_name.to_owned(),
        memlogd_socket.to_owned(),
    );
    let fifo = path.clone();
    std::thread::spawn(move || {
        let sent = std::fs::File::open(&fifo)
            .map_err(|source| LogError::Open {
                path: fifo.clone(),
                source,
            })
            .and_then(|reader| send_to_memlogd(&socket, &name, &OwnedFd::from(reader)));
        if let Err(err) = sent {
            log::error!("{}", crate::describe(&err));
        }
    });
    Ok(path)
}

/// Rotates every `*.log` file in `dir` that has grown past `cap` bytes (see [`rotate_if_over`]); a cap of 0
/// rotates nothing. Errors are logged: a log that cannot be rotated must not stop the supervisor.
pub fn cap_log_files(dir: &Path, cap: u64) {
    if cap == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log")
            && let Err(err) = rotate_if_over(&path, cap)
        {
            log::warn!("rotating {}: {err}", path.display());
        }
    }
}

/// When the file at `path` is over `cap` bytes: copies it to `<path>.1` (replacing the previous part) and
/// empties it, leaving one line that says so. The writer (containerd's shim, which opens service logs with
/// `O_APPEND`) goes on writing at the new end, so a service's log takes at most twice the cap plus what it
/// writes between two checks. Returns whether it rotated.
pub fn rotate_if_over(path: &Path, cap: u64) -> std::io::Result<bool> {
    if std::fs::metadata(path)?.len() <= cap {
        return Ok(false);
    }
    let mut previous = path.as_os_str().to_owned();
    previous.push(".1");
    std::fs::copy(path, &previous)?;
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(0)?;
    let name = Path::new(&previous)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    writeln!(
        &file,
        "[log rotated at {cap} bytes: the previous part is {name}]"
    )?;
    Ok(true)
}

/// Releases readers still blocked on service FIFOs after a failed start (opening the write end wakes them;
/// memlogd then sees end-of-file at once).
pub fn release_fifos(paths: &[&Path]) {
    use std::os::unix::fs::OpenOptionsExt;
    for path in paths {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
    }
}

/// Copies a log file to `out` (the console), as LinuxKit does after each onboot container.
pub fn dump_file(path: &Path, out: &mut dyn Write) {
    if let Ok(mut file) = File::open(path) {
        let _ = std::io::copy(&mut file, out);
    }
}

/// Prints the lines memlogd holds for log `name` (query mode 0, JSON lines). This is what LinuxKit's
/// remote dump means to do; LinuxKit's own parser no longer matches memlogd's format (docs/linuxkit.md §18.3).
pub fn dump_memlogd(query_socket: &Path, name: &str, out: &mut dyn Write) {
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(query_socket) else {
        return;
    };
    if stream.write_all(&[0]).is_err() {
        return;
    }
    for line in std::io::BufReader::new(stream)
        .lines()
        .map_while(Result::ok)
    {
        if let Some(msg) = memlogd_message_for(&line, name) {
            let _ = writeln!(out, "{msg}");
        }
    }
}

/// The message of a memlogd JSON line if its source is `name`.
pub fn memlogd_message_for(line: &str, name: &str) -> Option<String> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    if entry.get("source")?.as_str()? != name {
        return None;
    }
    Some(entry.get("msg")?.as_str()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_over_the_cap_are_rotated_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = dir.path().join("web.log");
        let small = dir.path().join("db.log");
        std::fs::write(&log, "x".repeat(100)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&small, "y".repeat(10)).unwrap_or_else(|e| panic!("{e}"));
        cap_log_files(dir.path(), 50);
        let rotated = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rotated,
            "[log rotated at 50 bytes: the previous part is web.log.1]\n"
        );
        let previous = dir.path().join("web.log.1");
        assert_eq!(
            std::fs::read_to_string(&previous).ok(),
            Some("x".repeat(100))
        );
        assert_eq!(std::fs::read_to_string(&small).ok(), Some("y".repeat(10)));
        assert!(!dir.path().join("db.log.1").exists());
        // Under the cap again: nothing happens; a cap of 0 never rotates.
        assert_eq!(rotate_if_over(&log, 1000).ok(), Some(false));
        cap_log_files(dir.path(), 0);
        assert_eq!(std::fs::read_to_string(&log).ok(), Some(rotated));
    }

    #[test]
    fn copies_keep_the_first_bytes_up_to_the_cap() {
        let cases: [(&[u8], u64, &str, u64); 4] = [
            (b"hello", 10, "hello", 0),
            (b"hello", 5, "hello", 0),
            (
                b"hello world",
                5,
                "hello\n[log capped at 5 bytes: 6 more bytes dropped]\n",
                6,
            ),
            (
                b"abc",
                0,
                "\n[log capped at 0 bytes: 3 more bytes dropped]\n",
                3,
            ),
        ];
        for (input, cap, want, dropped) in cases {
            let mut out = Vec::new();
            let got = copy_capped(&mut &input[..], &mut out, cap).expect("copy");
            assert_eq!(
                (String::from_utf8_lossy(&out).as_ref(), got),
                (want, dropped)
            );
        }
        let big = vec![b'x'; 100_000];
        let mut out = Vec::new();
        assert_eq!(
            copy_capped(&mut &big[..], &mut out, 4096).expect("copy"),
            100_000 - 4096
        );
        assert!(out.starts_with(&[b'x'; 4096]) && out.len() < 4096 + 100);
    }

    #[test]
    fn memlogd_lines_are_filtered_by_source() {
        let line = r#"{"time":"2026-01-01T00:00:00Z","source":"onboot.000-x.out","msg":"suite PASSED, ok"}"#;
        assert_eq!(
            memlogd_message_for(line, "onboot.000-x.out").as_deref(),
            Some("suite PASSED, ok")
        );
        assert_eq!(memlogd_message_for(line, "onboot.000-x"), None);
        assert_eq!(memlogd_message_for("not json", "x"), None);
    }

    #[test]
    fn file_logs_are_created_and_fds_reach_a_datagram_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (out, err) =
            service_log_paths("svc", dir.path(), dir.path(), &dir.path().join("none.sock"))
                .expect("files");
        assert_eq!(out, dir.path().join("svc.out.log"));
        assert!(err.exists());

        let sock_path = dir.path().join("memlogd.sock");
        let receiver = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind");
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        send_to_memlogd(&sock_path, "onboot.000-x", &OwnedFd::from(a)).expect("send");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"onboot.000-x");
    }
}

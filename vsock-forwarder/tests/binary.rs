//! The real binary on unix sockets: exit codes, vsudd's log lines, the counter report on SIGUSR1 and at
//! SIGTERM, the pid file.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_vsock-forwarder");
const GUARD: Duration = Duration::from_secs(30);

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running vsock-forwarder")
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < GUARD, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn malformed_specs_exit_2_with_a_clear_message() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["-inport", "1234"],
            "invalid value \"1234\" for flag -inport: Failed to parse: 1234",
        ),
        (
            &["-inport", "1:tcp:/x"],
            "cannot forward incoming port to tcp:/x",
        ),
        (
            &["-forward", "unix:/a=tcp:1.2.3.4:5"],
            "not allow-listed (add -allow-tcp 1.2.3.4:5)",
        ),
        (
            &["-syslog", "x:/y"],
            "vsock port \"x\" is neither a decimal number",
        ),
        // Above 2^61 used to panic in tokio's semaphore.
        (
            &["-max-connections", "4611686018427387904"],
            "invalid value \"4611686018427387904\" for flag -max-connections: must be between 1 and 1048576",
        ),
        (
            &["-max-connections-per-rule", "1e20"],
            "for flag -max-connections-per-rule: not a whole number",
        ),
        (
            &["-idle-timeout", "NaN"],
            "invalid value \"NaN\" for flag -idle-timeout: NaN is not a finite number of seconds",
        ),
        (
            &["-connect-timeout=-1"],
            "invalid value \"-1\" for flag -connect-timeout: -1 s is negative",
        ),
    ];
    for (i, (args, needle)) in cases.iter().enumerate() {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        assert!(stderr.contains(needle), "case {i}: {stderr}");
    }
}

#[test]
fn nothing_to_do_exits_0_after_writing_the_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let out = run(&["-pidfile", pidfile.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert!(pid > 1);
}

#[test]
fn forwards_logs_like_vsudd_and_reports_counters() {
    let dir = tempfile::tempdir().unwrap();
    let backend_path = dir.path().join("backend.sock");
    let in_path = dir.path().join("in.sock");
    let log_path = dir.path().join("stderr");
    let backend = UnixListener::bind(&backend_path).unwrap();
    let spec = format!("unix:{}=unix:{}", in_path.display(), backend_path.display());
    let mut child = Command::new(BIN)
        .args(["-forward", &spec, "-connect-timeout", "1s"])
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for("the listener", || {
        log_text(&log_path).contains("Listening on")
    });

    let server = std::thread::spawn(move || {
        let (mut conn, _) = backend.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        conn.write_all(b"pong!").unwrap();
        got
    });
    let mut client = UnixStream::connect(&in_path).unwrap();
    client.write_all(b"ping").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"pong!");
    assert_eq!(server.join().unwrap(), b"ping");
    wait_for("the Done line", || log_text(&log_path).contains("1 Done."));

    signal(&child, Signal::SIGUSR1);
    wait_for("the SIGUSR1 report", || {
        log_text(&log_path).contains("Totals:")
    });
    signal(&child, Signal::SIGTERM);
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status:?}");

    let text = log_text(&log_path);
    let expected = [
        format!(
            "forward from unix:{} to unix:{}",
            in_path.display(),
            backend_path.display()
        ),
        format!("Listening on unix:{}", in_path.display()),
        format!("Connection 1 to: unix:{} from: unix", in_path.display()),
        "1 Done. read: 4 written: 5".to_owned(),
        "Totals: connections: 1 active: 0 closed: 1 failed to connect: 0; bytes read: 4 written: 5"
            .to_owned(),
    ];
    for line in &expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }
    assert_eq!(
        text.matches("Totals:").count(),
        2,
        "one report on SIGUSR1, one at exit:\n{text}"
    );
}

#[test]
fn inport_listens_on_vsock_with_vsudd_lines() {
    assert!(
        Path::new("/dev/vsock").exists(),
        "this test needs AF_VSOCK in the kernel (/dev/vsock missing: modprobe vsock)"
    );
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr");
    let port = 40_000 + std::process::id() % 20_000;
    let guid = format!("{:08x}-facb-11e6-bd58-64006a7986d3", port + 1);
    let mut child = Command::new(BIN)
        .args([
            "-inport",
            &format!("{port}:unix:/nonexistent.sock"),
            "-inport",
            &format!("{guid}:unix:/x.sock"),
        ])
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for("both listeners", || {
        log_text(&log_path).contains("using vsock")
    });
    signal(&child, Signal::SIGTERM);
    assert!(wait_exit(&mut child).success());
    let text = log_text(&log_path);
    let expected = [
        format!("incoming port forward from {port} to /nonexistent.sock"),
        format!("Listening on port {port}"),
        format!("incoming port forward from {guid} to /x.sock"),
        format!("Listening on ServiceId {guid} using vsock"),
    ];
    for line in &expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), signal).unwrap();
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > GUARD {
            let _ = child.kill();
            panic!("vsock-forwarder did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
